/*
 * fuzz_anomaly.c
 *	  libFuzzer target for the text form of evcharge.anomaly_set.
 *
 * anomaly_set_in is a thin wrapper around ParseAnomalySet
 * (src/anomaly_codes.c); this target runs it with AddressSanitizer and
 * UndefinedBehaviorSanitizer and checks, for every input, the properties
 * the type relies on:
 *	  - no read outside the input, whatever its bytes or length;
 *	  - an accepted set holds only codes that exist;
 *	  - formatting an accepted set and parsing the result gives the same set,
 *		and formatting that gives the same text (the canonical form is a
 *		fixed point);
 *	  - the same set written with names, spaced, parses to the same set;
 *	  - an error points inside the input, at an item numbered from 1, and
 *		an unknown code or name is a non-empty run inside the input.
 * It also checks the code table once: codes ascending within 1..63, names
 * unique and found again by AnomalyCodeByName.
 * Build and run: make -C test/fuzz run-anomaly (docs/testing.md).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "anomaly_codes.h"

static void
Check(int ok)
{
	if (!ok)
		abort();
}

static void
CheckTable(void)
{
	int			i;

	Check(AnomalyCodeCount > 0);
	for (i = 0; i < AnomalyCodeCount; i++)
	{
		const AnomalyCode *c = &AnomalyCodes[i];

		Check(c->code >= 1 && c->code <= ANOMALY_MAX_CODE);
		Check(i == 0 || AnomalyCodes[i - 1].code < c->code);
		Check(AnomalyCodeByNumber(c->code) == c);
		Check(AnomalyCodeByName(c->name, strlen(c->name)) == c);
		Check(c->description != NULL && c->description[0] != '\0');
	}
	Check((AnomalyBlockingMask() & ~AnomalyKnownMask()) == 0);
}

/* The set written with names, " + " between them, into buf. */
static size_t
FormatNames(uint64_t set, char *buf, size_t size)
{
	size_t		n = 0;
	int			i;

	for (i = 0; i < AnomalyCodeCount; i++)
	{
		size_t		len = strlen(AnomalyCodes[i].name);

		if ((set & ANOMALY_BIT(AnomalyCodes[i].code)) == 0)
			continue;
		Check(n + len + 4 < size);
		if (n > 0)
		{
			memcpy(buf + n, " + ", 3);
			n += 3;
		}
		memcpy(buf + n, AnomalyCodes[i].name, len);
		n += len;
	}
	return n;
}

static void
CheckAccepted(uint64_t set)
{
	char		text[ANOMALY_TEXT_SIZE];
	char		again_text[ANOMALY_TEXT_SIZE];
	char		names[2048];
	AnomalyParse again;
	size_t		n;

	Check((set & ~AnomalyKnownMask()) == 0);

	n = FormatAnomalySet(set, text);
	Check(n < ANOMALY_TEXT_SIZE && n == strlen(text));
	Check((n == 0) == (set == 0));
	ParseAnomalySet(text, n, &again);
	Check(again.status == ANOMALY_OK && again.set == set);
	Check(FormatAnomalySet(again.set, again_text) == n &&
		  memcmp(text, again_text, n + 1) == 0);

	n = FormatNames(set, names, sizeof(names));
	ParseAnomalySet(names, n, &again);
	Check(again.status == ANOMALY_OK && again.set == set);
}

static void
CheckRejected(const AnomalyParse *r, size_t len)
{
	Check(r->offset < len);
	Check(r->item >= 1);
	if (r->status == ANOMALY_UNKNOWN_CODE || r->status == ANOMALY_UNKNOWN_NAME)
		Check(r->length > 0 && r->offset + r->length <= len);
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int	table_checked = 0;
	AnomalyParse r;
	char	   *copy;

	if (!table_checked)
	{
		CheckTable();
		table_checked = 1;
	}

	/*
	 * Copy into an exact-size heap block so that ASan catches any read past
	 * the end; the parser must not rely on a terminating NUL.
	 */
	copy = malloc(size ? size : 1);
	if (copy == NULL)
		return 0;
	if (size)
		memcpy(copy, data, size);
	ParseAnomalySet(copy, size, &r);
	if (r.status == ANOMALY_OK)
		CheckAccepted(r.set);
	else
		CheckRejected(&r, size);
	free(copy);
	return 0;
}
