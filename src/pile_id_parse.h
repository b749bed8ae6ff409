/*-------------------------------------------------------------------------
 *
 * pile_id_parse.h
 *	  The pile and gun id grammar, free of any PostgreSQL dependency.
 *
 * This unit is compiled into the extension, into the bridge and into the
 * fuzz target, so that the pile side and the database agree on what an id
 * is.  It reads bytes, never past the length it is given, and reports what
 * it found; the callers turn a failure into their own error message.
 *
 * Layout of a pile id (20 digits):
 *	  region (6) operator (4) reserved (1) product (2) detail (2) serial (5)
 * A legacy pile id has 16 digits: region (6) operator (4) serial (6).
 * A gun id is a 20-digit pile id followed by a 3-digit gun number (001..999).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PILE_ID_PARSE_H
#define PILE_ID_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define PILE_ID_DIGITS			20
#define LEGACY_PILE_ID_DIGITS	16
#define GUN_ID_DIGITS			23
#define GUN_NO_DIGITS			3
#define ID_HEAD_DIGITS			10	/* region + operator */

/* What a parse found; anything but ID_OK is a reason to reject the input. */
typedef enum IdParseStatus
{
	ID_OK = 0,
	ID_EMPTY,					/* nothing but white space */
	ID_BAD_CHAR,				/* neither digit nor separator at offset */
	ID_SEPARATOR_EDGE,			/* separator before the first or after the
								 * last digit, at offset */
	ID_SEPARATOR_REPEAT,		/* two separators in a row, second at offset */
	ID_DIGIT_COUNT,				/* ndigits is not a length the type accepts */
	ID_GUN_ZERO,				/* gun number 000 */
	ID_LEGACY_GUN				/* a gun id built on a 16-digit legacy pile id */
} IdParseStatus;

/* Result of a parse.  head and tail are set only when status is ID_OK. */
typedef struct IdParse
{
	IdParseStatus status;
	size_t		offset;			/* byte offset of the offending character */
	size_t		ndigits;		/* digits found (counts past 23 too) */
	int			legacy;			/* 1 for a 16-digit legacy pile id */
	uint64_t	head;			/* value of digits 1-10 */
	uint64_t	tail;			/* value of digits 11 to the end */
} IdParse;

/* Parse a pile id: 20 digits, or 16 for a legacy id. */
extern void ParsePileId(const char *s, size_t len, IdParse *out);

/* Parse a gun id: 23 digits, gun number 001..999, never on a legacy id. */
extern void ParseGunId(const char *s, size_t len, IdParse *out);

/*
 * Write the canonical digit string of an id into buf (at least 24 bytes).
 * ndigits is 20, 16 or 23.  Returns the number of digits written.
 */
extern int	FormatIdDigits(uint64_t head, uint64_t tail, int ndigits, char *buf);

#endif							/* PILE_ID_PARSE_H */
