/*
 * fuzz_ids.c
 *	  libFuzzer target for the pile_id and gun_id input grammar.
 *
 * pile_id_in and gun_id_in are thin wrappers around ParsePileId and
 * ParseGunId (src/pile_id_parse.c); this target runs those with
 * AddressSanitizer and UndefinedBehaviorSanitizer and checks, for every
 * input, the properties the types rely on:
 *	  - no read outside the input, whatever its bytes or length;
 *	  - an accepted id carries numbers within its digit count;
 *	  - formatting an accepted id and parsing the result gives the same id
 *		(the canonical form is a fixed point);
 *	  - an error offset lies inside the input.
 * Build and run: make -C test/fuzz run (docs/testing.md).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pile_id_parse.h"

static const uint64_t TEN10 = 10000000000ULL;

static void
Check(int ok)
{
	if (!ok)
		abort();
}

static void
CheckPile(const char *s, size_t len)
{
	IdParse		r;
	IdParse		again;
	char		buf[GUN_ID_DIGITS + 1];
	int			n;

	ParsePileId(s, len, &r);
	if (r.status != ID_OK)
	{
		if (r.status == ID_BAD_CHAR || r.status == ID_SEPARATOR_EDGE ||
			r.status == ID_SEPARATOR_REPEAT)
			Check(r.offset < len);
		Check(r.status != ID_GUN_ZERO && r.status != ID_LEGACY_GUN);
		return;
	}
	Check(r.head < TEN10);
	Check(r.legacy ? r.tail < 1000000ULL : r.tail < TEN10);
	n = FormatIdDigits(r.head, r.tail,
					   r.legacy ? LEGACY_PILE_ID_DIGITS : PILE_ID_DIGITS, buf);
	Check((size_t) n == strlen(buf));
	ParsePileId(buf, (size_t) n, &again);
	Check(again.status == ID_OK && again.head == r.head &&
		  again.tail == r.tail && again.legacy == r.legacy);
}

static void
CheckGun(const char *s, size_t len)
{
	IdParse		r;
	IdParse		again;
	char		buf[GUN_ID_DIGITS + 1];
	int			n;

	ParseGunId(s, len, &r);
	if (r.status != ID_OK)
	{
		if (r.status == ID_BAD_CHAR || r.status == ID_SEPARATOR_EDGE ||
			r.status == ID_SEPARATOR_REPEAT)
			Check(r.offset < len);
		return;
	}
	Check(r.head < TEN10);
	Check(r.tail < 10000000000000ULL);
	Check(r.tail % 1000 != 0);
	n = FormatIdDigits(r.head, r.tail, GUN_ID_DIGITS, buf);
	ParseGunId(buf, (size_t) n, &again);
	Check(again.status == ID_OK && again.head == r.head && again.tail == r.tail);

	/* The pile part of a gun id is itself a valid pile id. */
	buf[PILE_ID_DIGITS] = '\0';
	ParsePileId(buf, PILE_ID_DIGITS, &again);
	Check(again.status == ID_OK && !again.legacy && again.head == r.head &&
		  again.tail == r.tail / 1000);
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/*
	 * Copy into an exact-size heap block so that ASan catches any read past
	 * the end; the parsers must not rely on a terminating NUL.
	 */
	char	   *copy = malloc(size ? size : 1);

	if (copy == NULL)
		return 0;
	if (size)
		memcpy(copy, data, size);
	CheckPile(copy, size);
	CheckGun(copy, size);
	free(copy);
	return 0;
}
