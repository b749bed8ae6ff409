/*-------------------------------------------------------------------------
 *
 * pile_id_parse.c
 *	  Owns the grammar of pile and gun ids: which strings are ids, and the
 *	  numbers they carry.  Pure C, shared by the extension, the bridge and
 *	  the fuzz target (see pile_id_parse.h).
 *
 * Accepted forms: the digits written plainly, or in groups separated by a
 * single space or hyphen ("4420 0000 1200 0020 0045",
 * "4420-0000-1200-0020-0045"), with white space allowed around the whole.
 *
 *-------------------------------------------------------------------------
 */
#include "pile_id_parse.h"

/* Longest digit run we keep; longer inputs are only counted. */
#define MAX_KEPT_DIGITS GUN_ID_DIGITS

/* Digits collected from an input, with the first problem met on the way. */
typedef struct DigitScan
{
	IdParseStatus status;
	size_t		offset;
	size_t		ndigits;
	unsigned char digits[MAX_KEPT_DIGITS];
} DigitScan;

static int
IsBlank(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
		c == '\v';
}

static int
IsSeparator(unsigned char c)
{
	return c == ' ' || c == '-';
}

/*
 * ScanDigits walks the input once: trims surrounding white space, checks
 * that separators stand only between digits, and keeps the digits.  It
 * stops at the first character that cannot belong to an id.
 */
static void
ScanDigits(const char *s, size_t len, DigitScan *scan)
{
	size_t		start = 0;
	size_t		end = len;
	size_t		i;
	int			after_separator = 0;

	scan->status = ID_OK;
	scan->offset = 0;
	scan->ndigits = 0;

	while (start < end && IsBlank((unsigned char) s[start]))
		start++;
	while (end > start && IsBlank((unsigned char) s[end - 1]))
		end--;

	if (start == end)
	{
		scan->status = ID_EMPTY;
		return;
	}

	for (i = start; i < end; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c >= '0' && c <= '9')
		{
			if (scan->ndigits < MAX_KEPT_DIGITS)
				scan->digits[scan->ndigits] = (unsigned char) (c - '0');
			scan->ndigits++;
			after_separator = 0;
		}
		else if (IsSeparator(c))
		{
			if (i == start || i == end - 1)
			{
				scan->status = ID_SEPARATOR_EDGE;
				scan->offset = i;
				return;
			}
			if (after_separator)
			{
				scan->status = ID_SEPARATOR_REPEAT;
				scan->offset = i;
				return;
			}
			after_separator = 1;
		}
		else
		{
			scan->status = ID_BAD_CHAR;
			scan->offset = i;
			return;
		}
	}
}

/* Value of digits[from .. from+count-1]; count is at most 19. */
static uint64_t
DigitsValue(const unsigned char *digits, size_t from, size_t count)
{
	uint64_t	v = 0;
	size_t		i;

	for (i = 0; i < count; i++)
		v = v * 10 + digits[from + i];
	return v;
}

static void
CopyScanProblem(const DigitScan *scan, IdParse *out)
{
	out->status = scan->status;
	out->offset = scan->offset;
	out->ndigits = scan->ndigits;
}

void
ParsePileId(const char *s, size_t len, IdParse *out)
{
	DigitScan	scan;

	out->legacy = 0;
	out->head = 0;
	out->tail = 0;
	ScanDigits(s, len, &scan);
	CopyScanProblem(&scan, out);
	if (scan.status != ID_OK)
		return;

	if (scan.ndigits != PILE_ID_DIGITS && scan.ndigits != LEGACY_PILE_ID_DIGITS)
	{
		out->status = ID_DIGIT_COUNT;
		return;
	}
	out->legacy = scan.ndigits == LEGACY_PILE_ID_DIGITS;
	out->head = DigitsValue(scan.digits, 0, ID_HEAD_DIGITS);
	out->tail = DigitsValue(scan.digits, ID_HEAD_DIGITS,
							scan.ndigits - ID_HEAD_DIGITS);
}

void
ParseGunId(const char *s, size_t len, IdParse *out)
{
	DigitScan	scan;

	out->legacy = 0;
	out->head = 0;
	out->tail = 0;
	ScanDigits(s, len, &scan);
	CopyScanProblem(&scan, out);
	if (scan.status != ID_OK)
		return;

	if (scan.ndigits == LEGACY_PILE_ID_DIGITS + GUN_NO_DIGITS)
	{
		out->status = ID_LEGACY_GUN;
		return;
	}
	if (scan.ndigits != GUN_ID_DIGITS)
	{
		out->status = ID_DIGIT_COUNT;
		return;
	}
	if (DigitsValue(scan.digits, PILE_ID_DIGITS, GUN_NO_DIGITS) == 0)
	{
		out->status = ID_GUN_ZERO;
		return;
	}
	out->head = DigitsValue(scan.digits, 0, ID_HEAD_DIGITS);
	out->tail = DigitsValue(scan.digits, ID_HEAD_DIGITS,
							GUN_ID_DIGITS - ID_HEAD_DIGITS);
}

int
FormatIdDigits(uint64_t head, uint64_t tail, int ndigits, char *buf)
{
	int			i;

	for (i = ID_HEAD_DIGITS - 1; i >= 0; i--)
	{
		buf[i] = (char) ('0' + head % 10);
		head /= 10;
	}
	for (i = ndigits - 1; i >= ID_HEAD_DIGITS; i--)
	{
		buf[i] = (char) ('0' + tail % 10);
		tail /= 10;
	}
	buf[ndigits] = '\0';
	return ndigits;
}
