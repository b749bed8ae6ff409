/*-------------------------------------------------------------------------
 *
 * anomaly_codes.h
 *	  The bill anomaly codes and the text form of a set of them, free of any
 *	  PostgreSQL dependency.
 *
 * This unit is compiled into the extension and into the fuzz target, and
 * can be compiled into any other program that reads operators' anomaly
 * notes, so that every part agrees on which codes exist, what they are
 * called and how a set of them is written.  It reads bytes, never past the
 * length it is given, allocates nothing and reports what it found; the
 * callers turn a failure into their own error message.
 *
 * A set is a 64-bit mask: code n is bit n (1 << n).  Codes run from 1 to
 * ANOMALY_MAX_CODE; bit 0 is never used.
 *
 * Text form: the codes joined by "+" ("9+10+11"), each item a code number
 * or a code name ("bill_lost+energy_mismatch"), with white space allowed
 * around each item.  The empty string (or white space only) is the empty
 * set.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANOMALY_CODES_H
#define ANOMALY_CODES_H

#include <stddef.h>
#include <stdint.h>

/* Highest code a set can hold: the mask has 64 bits and bit 0 is unused. */
#define ANOMALY_MAX_CODE		63

/*
 * Longest canonical text of a set, with its terminating NUL: codes 1..9 take
 * one digit, 10..63 two, each but the first is preceded by "+".
 */
#define ANOMALY_TEXT_SIZE		192

/* One anomaly code: its number, name, one-sentence meaning, and effect. */
typedef struct AnomalyCode
{
	int			code;			/* number operators use, 1..ANOMALY_MAX_CODE */
	const char *name;			/* snake_case name, accepted on input */
	const char *description;	/* one sentence */
	int			blocks_charge;	/* 1: the bill is not charged until repaired */
} AnomalyCode;

/* Every code, in ascending order of code. */
extern const AnomalyCode AnomalyCodes[];
extern const int AnomalyCodeCount;

/* What a parse found; anything but ANOMALY_OK is a reason to reject it. */
typedef enum AnomalyParseStatus
{
	ANOMALY_OK = 0,
	ANOMALY_BAD_CHAR,			/* a character that belongs to no item, at
								 * offset */
	ANOMALY_SPACE_IN_ITEM,		/* white space between two words of one item,
								 * at offset */
	ANOMALY_EMPTY_ITEM,			/* an item with nothing in it; offset is the
								 * "+" after it (item 1) or before it */
	ANOMALY_UNKNOWN_CODE,		/* a number that is no code; the item is at
								 * offset, length bytes */
	ANOMALY_UNKNOWN_NAME		/* a word that names no code; the item is at
								 * offset, length bytes */
} AnomalyParseStatus;

/* Result of a parse.  set is meaningful only when status is ANOMALY_OK. */
typedef struct AnomalyParse
{
	AnomalyParseStatus status;
	size_t		offset;			/* byte offset of the problem */
	size_t		length;			/* bytes of the offending item (unknown code
								 * or name) */
	size_t		item;			/* number of the offending item, from 1 */
	uint64_t	set;			/* the codes found, as a mask */
} AnomalyParse;

/* Parse the text form of a set: len bytes from s, no NUL needed. */
extern void ParseAnomalySet(const char *s, size_t len, AnomalyParse *out);

/*
 * Write the canonical text of a set (ascending codes joined by "+", the
 * empty string for the empty set) into buf, of at least ANOMALY_TEXT_SIZE
 * bytes.  Returns the length written, without the NUL.
 */
extern size_t FormatAnomalySet(uint64_t set, char *buf);

/* The entry of a code, or NULL when no code has that number. */
extern const AnomalyCode *AnomalyCodeByNumber(long long code);

/* The entry whose name is the len bytes at name (ASCII case ignored). */
extern const AnomalyCode *AnomalyCodeByName(const char *name, size_t len);

/* Mask of every code that exists. */
extern uint64_t AnomalyKnownMask(void);

/* Mask of the codes that stop the bill being charged until repaired. */
extern uint64_t AnomalyBlockingMask(void);

/* The mask of one code; code must be 1..ANOMALY_MAX_CODE. */
#define ANOMALY_BIT(code)		(UINT64_C(1) << (code))

#endif							/* ANOMALY_CODES_H */
