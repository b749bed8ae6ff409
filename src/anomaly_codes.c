/*-------------------------------------------------------------------------
 *
 * anomaly_codes.c
 *	  Owns the bill anomaly codes (numbers, names, meanings, which block
 *	  charging the customer) and the text form of a set of them.  Pure C,
 *	  shared by the extension and the fuzz target (see anomaly_codes.h).
 *
 * The numbers are those operators already use in their reports and must
 * never change: 1, 2, 3, 5, 8, 9, 10 and 11 come from the old platform
 * (4, 6 and 7 were never used there and stay unused), 12 onwards are
 * evcharge's own.  A new code takes the next free number.  This array is
 * the one place the codes are written: the table evcharge.anomaly_code is
 * filled from it (anomaly_catalogue()) by the install script and by every
 * upgrade script (sql/install/anomaly_set.sql, sql/upgrade/).
 *
 *-------------------------------------------------------------------------
 */
#include "anomaly_codes.h"

const AnomalyCode AnomalyCodes[] = {
	{1, "bill_lost",
		"The pile never uploaded its final charge record for the session.", 1},
	{2, "bill_lost_offline",
		"The final charge record was lost because the pile was offline when the session ended.", 1},
	{3, "time_anomaly",
		"The record's times are impossible, such as a date in 1999 or an end before the start.", 1},
	{5, "duration_anomaly",
		"The charging duration is implausible, such as longer than the gun was plugged in or too short for the energy delivered.", 1},
	{8, "energy_mismatch",
		"The energy on the pile's record differs from the energy the platform measured from heartbeats.", 1},
	{9, "duration_mismatch",
		"The charging duration on the pile's record differs from the platform's.", 1},
	{10, "occupancy_mismatch",
		"The occupancy duration on the pile's record differs from the platform's; on its own it does not change the amount.", 0},
	{11, "energy_lost",
		"Energy delivered during the session is missing from the record.", 1},
	{12, "no_tariff",
		"No tariff was in force at the station for the session, so it cannot be priced.", 1},
	{13, "nonpositive_amount",
		"The amount is zero or negative although energy was delivered.", 1},
	{14, "channel_not_allowed",
		"The session was started through a channel the partner's contract does not allow, such as an offline password on a QR-only contract.", 1},
	{15, "no_energy_flowed",
		"The session was billed as charging but the heartbeats show no energy flowing.", 1},
	{16, "defective_firmware",
		"The pile runs a firmware version on the operator's list of defective versions.", 1},
	{17, "current_type_unknown",
		"The pile registry does not give the pile's current type (AC or DC), as for a pile removed from it, so the session cannot be priced.", 1},
	{18, "beyond_bill_limits",
		"The bill's energy or amount is beyond what the operator allows one bill to carry.", 1},
	{19, "not_priced",
		"Pricing the session failed with an error, so the bill has no amount.", 1},
	{20, "class_energy_mismatch",
		"The pile's own energy per class (sharp, peak, flat, valley) differs from the platform's split; on its own it does not change the amount.", 0},
};

const int	AnomalyCodeCount = (int) (sizeof(AnomalyCodes) / sizeof(AnomalyCodes[0]));

/* A number larger than this is reported as unknown without computing it. */
#define NUMBER_CAP 1000000000LL

static int
IsBlank(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
		c == '\v';
}

static int
IsDigit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* Characters of an item: digits, ASCII letters and "_". */
static int
IsWordChar(unsigned char c)
{
	return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		c == '_';
}

static unsigned char
AsciiLower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char) (c - 'A' + 'a') : c;
}

const AnomalyCode *
AnomalyCodeByNumber(long long code)
{
	int			i;

	for (i = 0; i < AnomalyCodeCount; i++)
		if (AnomalyCodes[i].code == code)
			return &AnomalyCodes[i];
	return NULL;
}

const AnomalyCode *
AnomalyCodeByName(const char *name, size_t len)
{
	int			i;

	for (i = 0; i < AnomalyCodeCount; i++)
	{
		const char *n = AnomalyCodes[i].name;
		size_t		j;

		for (j = 0; j < len && n[j] != '\0'; j++)
			if (AsciiLower((unsigned char) name[j]) != (unsigned char) n[j])
				break;
		if (j == len && n[j] == '\0')
			return &AnomalyCodes[i];
	}
	return NULL;
}

uint64_t
AnomalyKnownMask(void)
{
	uint64_t	mask = 0;
	int			i;

	for (i = 0; i < AnomalyCodeCount; i++)
		mask |= ANOMALY_BIT(AnomalyCodes[i].code);
	return mask;
}

uint64_t
AnomalyBlockingMask(void)
{
	uint64_t	mask = 0;
	int			i;

	for (i = 0; i < AnomalyCodeCount; i++)
		if (AnomalyCodes[i].blocks_charge)
			mask |= ANOMALY_BIT(AnomalyCodes[i].code);
	return mask;
}

/*
 * The code an item names: all digits is a number (leading zeros allowed),
 * anything else a name.  Returns NULL, with the status to report, when no
 * code matches.
 */
static const AnomalyCode *
LookUpItem(const char *s, size_t len, AnomalyParseStatus *status)
{
	long long	value = 0;
	size_t		i;

	for (i = 0; i < len && IsDigit((unsigned char) s[i]); i++)
		if (value <= NUMBER_CAP)
			value = value * 10 + (s[i] - '0');
	if (i < len)
	{
		*status = ANOMALY_UNKNOWN_NAME;
		return AnomalyCodeByName(s, len);
	}
	*status = ANOMALY_UNKNOWN_CODE;
	return AnomalyCodeByNumber(value);
}

/*
 * ParseAnomalySet reads the items from left to right and stops at the
 * first problem, so the one reported is the leftmost.
 */
void
ParseAnomalySet(const char *s, size_t len, AnomalyParse *out)
{
	size_t		i = 0;
	size_t		plus = 0;		/* offset of the last "+" passed */

	out->status = ANOMALY_OK;
	out->offset = 0;
	out->length = 0;
	out->item = 0;
	out->set = 0;

	while (i < len && IsBlank((unsigned char) s[i]))
		i++;
	if (i == len)
		return;					/* empty or white space only: the empty set */

	for (;;)
	{
		size_t		word;
		size_t		word_end;
		const AnomalyCode *entry;
		AnomalyParseStatus unknown;

		out->item++;
		while (i < len && IsBlank((unsigned char) s[i]))
			i++;
		word = i;
		while (i < len && IsWordChar((unsigned char) s[i]))
			i++;
		word_end = i;
		while (i < len && IsBlank((unsigned char) s[i]))
			i++;

		if (i < len && s[i] != '+')
		{
			if (word_end > word && i > word_end && IsWordChar((unsigned char) s[i]))
			{
				out->status = ANOMALY_SPACE_IN_ITEM;
				out->offset = word_end;
			}
			else
			{
				out->status = ANOMALY_BAD_CHAR;
				out->offset = i;
			}
			return;
		}
		if (word_end == word)
		{
			out->status = ANOMALY_EMPTY_ITEM;
			out->offset = out->item == 1 ? i : plus;
			return;
		}

		entry = LookUpItem(s + word, word_end - word, &unknown);
		if (entry == NULL)
		{
			out->status = unknown;
			out->offset = word;
			out->length = word_end - word;
			return;
		}
		out->set |= ANOMALY_BIT(entry->code);

		if (i == len)
			break;
		plus = i++;				/* s[i] is "+" */
	}
	out->item = 0;
}

size_t
FormatAnomalySet(uint64_t set, char *buf)
{
	size_t		n = 0;
	int			code;

	for (code = 1; code <= ANOMALY_MAX_CODE; code++)
	{
		if ((set & ANOMALY_BIT(code)) == 0)
			continue;
		if (n > 0)
			buf[n++] = '+';
		if (code >= 10)
			buf[n++] = (char) ('0' + code / 10);
		buf[n++] = (char) ('0' + code % 10);
	}
	buf[n] = '\0';
	return n;
}
