/*-------------------------------------------------------------------------
 *
 * pile_id.c
 *	  Owns the id types evcharge.pile_id and evcharge.gun_id: text and binary
 *	  I/O, comparison, hashing and sorting, and the accessors that read the
 *	  fields of an id (region, operator, product, current type, serial, gun).
 *
 * The grammar itself lives in pile_id_parse.c, shared with the bridge; this
 * file turns its findings into PostgreSQL errors worded like core's.
 *
 * Ordering is the order of the canonical digit strings, so a legacy 16-digit
 * id sorts before any 20-digit id that it is a prefix of.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "fmgr.h"
#include "libpq/pqformat.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/sortsupport.h"

#include "pile_id.h"
#include "pile_id_parse.h"

#define TEN3	UINT64CONST(1000)
#define TEN4	UINT64CONST(10000)
#define TEN5	UINT64CONST(100000)
#define TEN6	UINT64CONST(1000000)
#define TEN7	UINT64CONST(10000000)
#define TEN10	UINT64CONST(10000000000)
#define TEN13	UINT64CONST(10000000000000)

/* Version byte of the binary format; bump when the format grows. */
#define ID_BINARY_VERSION 1

#define PILE_ID_HINT \
	"A pile id has 20 digits: region (6), operator (4), reserved (1), product (2), detail (2), serial (5), " \
	"for example \"4420 0000 1200 0020 0045\"; a legacy pile id has 16: region (6), operator (4), serial (6)."
#define GUN_ID_HINT \
	"A gun id has 23 digits: the 20-digit pile id followed by the gun number from 001, " \
	"for example \"4420 0000 1200 0020 0045 001\"."

PG_FUNCTION_INFO_V1(pile_id_in);
PG_FUNCTION_INFO_V1(pile_id_out);
PG_FUNCTION_INFO_V1(pile_id_recv);
PG_FUNCTION_INFO_V1(pile_id_send);
PG_FUNCTION_INFO_V1(pile_id_cmp);
PG_FUNCTION_INFO_V1(pile_id_eq);
PG_FUNCTION_INFO_V1(pile_id_ne);
PG_FUNCTION_INFO_V1(pile_id_lt);
PG_FUNCTION_INFO_V1(pile_id_le);
PG_FUNCTION_INFO_V1(pile_id_gt);
PG_FUNCTION_INFO_V1(pile_id_ge);
PG_FUNCTION_INFO_V1(pile_id_hash);
PG_FUNCTION_INFO_V1(pile_id_hash_extended);
PG_FUNCTION_INFO_V1(pile_id_sortsupport);
PG_FUNCTION_INFO_V1(pile_id_region_code);
PG_FUNCTION_INFO_V1(pile_id_province_code);
PG_FUNCTION_INFO_V1(pile_id_operator_code);
PG_FUNCTION_INFO_V1(pile_id_product_kind);
PG_FUNCTION_INFO_V1(pile_id_current_type);
PG_FUNCTION_INFO_V1(pile_id_serial_no);
PG_FUNCTION_INFO_V1(pile_id_is_legacy);

PG_FUNCTION_INFO_V1(gun_id_in);
PG_FUNCTION_INFO_V1(gun_id_out);
PG_FUNCTION_INFO_V1(gun_id_recv);
PG_FUNCTION_INFO_V1(gun_id_send);
PG_FUNCTION_INFO_V1(gun_id_cmp);
PG_FUNCTION_INFO_V1(gun_id_eq);
PG_FUNCTION_INFO_V1(gun_id_ne);
PG_FUNCTION_INFO_V1(gun_id_lt);
PG_FUNCTION_INFO_V1(gun_id_le);
PG_FUNCTION_INFO_V1(gun_id_gt);
PG_FUNCTION_INFO_V1(gun_id_ge);
PG_FUNCTION_INFO_V1(gun_id_hash);
PG_FUNCTION_INFO_V1(gun_id_hash_extended);
PG_FUNCTION_INFO_V1(gun_id_sortsupport);
PG_FUNCTION_INFO_V1(gun_id_region_code);
PG_FUNCTION_INFO_V1(gun_id_province_code);
PG_FUNCTION_INFO_V1(gun_id_operator_code);
PG_FUNCTION_INFO_V1(gun_id_product_kind);
PG_FUNCTION_INFO_V1(gun_id_current_type);
PG_FUNCTION_INFO_V1(gun_id_serial_no);
PG_FUNCTION_INFO_V1(gun_id_is_legacy);
PG_FUNCTION_INFO_V1(gun_id_pile);
PG_FUNCTION_INFO_V1(gun_id_gun_no);
PG_FUNCTION_INFO_V1(gun_id_make);

/*
 * ReportIdSyntaxError raises the 22P02 error for an input the grammar
 * rejected: the message quotes the input, the detail says what is wrong and
 * where (positions count characters from 1), the hint shows the layout.
 */
static void
pg_attribute_noreturn()
ReportIdSyntaxError(const char *typname, const char *input, const IdParse *r)
{
	bool		gun = strcmp(typname, "gun_id") == 0;
	const char *hint = gun ? GUN_ID_HINT : PILE_ID_HINT;
	char	   *detail;
	int			position;
	char	   *what;
	unsigned char c;

	position = pg_mbstrlen_with_len(input, (int) r->offset) + 1;
	switch (r->status)
	{
		case ID_EMPTY:
			detail = psprintf("The input has no digits.");
			break;
		case ID_BAD_CHAR:
			c = (unsigned char) input[r->offset];
			if (c < 0x20 || c == 0x7f)
				what = psprintf("control character 0x%02X", c);
			else
				what = psprintf("character \"%s\"",
								pnstrdup(input + r->offset, pg_mblen(input + r->offset)));
			detail = psprintf("The %s at position %d is not a digit; only digits and single spaces or hyphens between groups of digits may appear.",
							  what, position);
			break;
		case ID_SEPARATOR_EDGE:
			detail = psprintf("Separator \"%c\" at position %d does not stand between two digits.",
							  input[r->offset], position);
			break;
		case ID_SEPARATOR_REPEAT:
			detail = psprintf("Two separators in a row at position %d; groups of digits are separated by a single space or hyphen.",
							  position);
			break;
		case ID_DIGIT_COUNT:
			if (gun && r->ndigits == PILE_ID_DIGITS)
				detail = psprintf("Found 20 digits, which is a pile id; a gun id has 23: the pile id and a 3-digit gun number.");
			else if (gun)
				detail = psprintf("Found %zu digits; a gun id has 23.", r->ndigits);
			else if (r->ndigits == GUN_ID_DIGITS)
				detail = psprintf("Found 23 digits, which is a gun id; a pile id has 20, or 16 for a legacy pile id.");
			else
				detail = psprintf("Found %zu digits; a pile id has 20, or 16 for a legacy pile id.",
								  r->ndigits);
			break;
		case ID_GUN_ZERO:
			detail = psprintf("Gun number 000 in digits 21-23; guns are numbered from 001.");
			break;
		case ID_LEGACY_GUN:
			detail = psprintf("Found 19 digits; a gun id has 23.  If this is a 16-digit legacy pile id followed by a gun number: the cloud pile protocol does not accept legacy pile ids, so guns are addressed by the 20-digit pile id.");
			break;
		default:
			elog(ERROR, "unexpected id parse status %d", (int) r->status);
	}

	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type %s: \"%s\"", typname, input),
			 errdetail_internal("%s", detail),
			 errhint("%s", hint)));
}

/* Comparison in canonical digit-string order; see the file header. */
static int
PileIdCompare(const PileId *a, const PileId *b)
{
	bool		la = PileIdIsLegacy(a);
	bool		lb = PileIdIsLegacy(b);
	uint64		ta = PileIdTail(a);
	uint64		tb = PileIdTail(b);

	if (a->head != b->head)
		return a->head < b->head ? -1 : 1;
	if (la == lb)
		return ta < tb ? -1 : (ta > tb ? 1 : 0);

	/* One legacy (6 more digits), one full (10 more): compare the 6 shared. */
	if (la)
	{
		uint64		tb6 = tb / TEN4;

		if (ta != tb6)
			return ta < tb6 ? -1 : 1;
		return -1;				/* the shorter string sorts first */
	}
	else
	{
		uint64		ta6 = ta / TEN4;

		if (ta6 != tb)
			return ta6 < tb ? -1 : 1;
		return 1;
	}
}

static int
GunIdCompare(const GunId *a, const GunId *b)
{
	if (a->head != b->head)
		return a->head < b->head ? -1 : 1;
	if (a->tail != b->tail)
		return a->tail < b->tail ? -1 : 1;
	return 0;
}

/* The pile part of a gun id. */
void
GunIdPile(const GunId *g, PileId *p)
{
	p->head = g->head;
	p->tail = g->tail / TEN3;
}

/* ---------- pile_id I/O ---------- */

Datum
pile_id_in(PG_FUNCTION_ARGS)
{
	char	   *str = PG_GETARG_CSTRING(0);
	IdParse		r;
	PileId	   *result;

	ParsePileId(str, strlen(str), &r);
	if (r.status != ID_OK)
		ReportIdSyntaxError("pile_id", str, &r);

	result = palloc(sizeof(PileId));
	result->head = r.head;
	result->tail = r.tail | (r.legacy ? PILE_ID_LEGACY_BIT : 0);
	PG_RETURN_PILE_ID_P(result);
}

Datum
pile_id_out(PG_FUNCTION_ARGS)
{
	PileId	   *p = PG_GETARG_PILE_ID_P(0);
	char	   *buf = palloc(GUN_ID_DIGITS + 1);

	FormatIdDigits(p->head, PileIdTail(p),
				   PileIdIsLegacy(p) ? LEGACY_PILE_ID_DIGITS : PILE_ID_DIGITS,
				   buf);
	PG_RETURN_CSTRING(buf);
}

/*
 * Binary form: version byte, kind byte (0 pile, 1 legacy pile), head and
 * tail as int8.  Receive re-checks everything text input checks.
 */
Datum
pile_id_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int			version = pq_getmsgbyte(buf);
	int			kind;
	uint64		head;
	uint64		tail;
	PileId	   *result;

	if (version != ID_BINARY_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary format version %d for type pile_id", version),
				 errdetail("This server reads version %d.", ID_BINARY_VERSION)));
	kind = pq_getmsgbyte(buf);
	head = (uint64) pq_getmsgint64(buf);
	tail = (uint64) pq_getmsgint64(buf);
	if ((kind != 0 && kind != 1) || head >= TEN10 ||
		tail >= (kind == 1 ? TEN6 : TEN10))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary value for type pile_id"),
				 errdetail("Kind %d, head %llu, tail %llu: the head must have at most 10 digits and the tail at most 10 (6 for a legacy id, kind 1).",
						   kind, (unsigned long long) head,
						   (unsigned long long) tail)));

	result = palloc(sizeof(PileId));
	result->head = head;
	result->tail = tail | (kind == 1 ? PILE_ID_LEGACY_BIT : 0);
	PG_RETURN_PILE_ID_P(result);
}

Datum
pile_id_send(PG_FUNCTION_ARGS)
{
	PileId	   *p = PG_GETARG_PILE_ID_P(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendbyte(&buf, ID_BINARY_VERSION);
	pq_sendbyte(&buf, PileIdIsLegacy(p) ? 1 : 0);
	pq_sendint64(&buf, (int64) p->head);
	pq_sendint64(&buf, (int64) PileIdTail(p));
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* ---------- pile_id comparison, hashing, sorting ---------- */

#define PILE_CMP_ARGS PileIdCompare(PG_GETARG_PILE_ID_P(0), PG_GETARG_PILE_ID_P(1))

Datum
pile_id_cmp(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(PILE_CMP_ARGS);
}

Datum
pile_id_eq(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(PILE_CMP_ARGS == 0);
}

Datum
pile_id_ne(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(PILE_CMP_ARGS != 0);
}

Datum
pile_id_lt(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(PILE_CMP_ARGS < 0);
}

Datum
pile_id_le(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(PILE_CMP_ARGS <= 0);
}

Datum
pile_id_gt(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(PILE_CMP_ARGS > 0);
}

Datum
pile_id_ge(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(PILE_CMP_ARGS >= 0);
}

/* Equal ids have equal bytes (the legacy bit included), so hash the bytes. */
Datum
pile_id_hash(PG_FUNCTION_ARGS)
{
	return hash_any((unsigned char *) PG_GETARG_PILE_ID_P(0), sizeof(PileId));
}

Datum
pile_id_hash_extended(PG_FUNCTION_ARGS)
{
	return hash_any_extended((unsigned char *) PG_GETARG_PILE_ID_P(0),
							 sizeof(PileId), PG_GETARG_INT64(1));
}

static int
PileIdFastCmp(Datum x, Datum y, SortSupport ssup)
{
	return PileIdCompare(DatumGetPileIdP(x), DatumGetPileIdP(y));
}

Datum
pile_id_sortsupport(PG_FUNCTION_ARGS)
{
	SortSupport ssup = (SortSupport) PG_GETARG_POINTER(0);

	ssup->comparator = PileIdFastCmp;
	PG_RETURN_VOID();
}

/* ---------- accessors, shared by both types through PileId ---------- */

static int32
PileRegion(const PileId *p)
{
	return (int32) (p->head / TEN4);
}

static int32
PileOperator(const PileId *p)
{
	return (int32) (p->head % TEN4);
}

/* Product code (digits 12-13), or -1 for a legacy id, which has none. */
static int
PileProductCode(const PileId *p)
{
	if (PileIdIsLegacy(p))
		return -1;
	return (int) ((PileIdTail(p) / TEN7) % 100);
}

/* Detail code (digits 14-15), or -1 for a legacy id. */
static int
PileDetailCode(const PileId *p)
{
	if (PileIdIsLegacy(p))
		return -1;
	return (int) ((PileIdTail(p) / TEN5) % 100);
}

static int32
PileSerial(const PileId *p)
{
	if (PileIdIsLegacy(p))
		return (int32) PileIdTail(p);
	return (int32) (PileIdTail(p) % TEN5);
}

static const char *
PileProductKind(const PileId *p)
{
	switch (PileProductCode(p))
	{
		case 0:
			return "pile";
		case 1:
			return "ground_lock";
		default:
			return NULL;
	}
}

static const char *
PileCurrentType(const PileId *p)
{
	switch (PileDetailCode(p))
	{
		case 1:
			return "AC";
		case 2:
			return "DC";
		default:
			return NULL;
	}
}

/* Whether the gun is a parking ground lock's (its id says so). */
bool
GunIdIsGroundLock(const GunId *g)
{
	PileId		p;
	const char *kind;

	GunIdPile(g, &p);
	kind = PileProductKind(&p);
	return kind != NULL && strcmp(kind, "ground_lock") == 0;
}

#define RETURN_TEXT_OR_NULL(s) \
	do { \
		const char *s_ = (s); \
		if (s_ == NULL) \
			PG_RETURN_NULL(); \
		PG_RETURN_TEXT_P(cstring_to_text(s_)); \
	} while (0)

Datum
pile_id_region_code(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(PileRegion(PG_GETARG_PILE_ID_P(0)));
}

Datum
pile_id_province_code(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(PileRegion(PG_GETARG_PILE_ID_P(0)) / 10000);
}

Datum
pile_id_operator_code(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(PileOperator(PG_GETARG_PILE_ID_P(0)));
}

Datum
pile_id_product_kind(PG_FUNCTION_ARGS)
{
	RETURN_TEXT_OR_NULL(PileProductKind(PG_GETARG_PILE_ID_P(0)));
}

Datum
pile_id_current_type(PG_FUNCTION_ARGS)
{
	RETURN_TEXT_OR_NULL(PileCurrentType(PG_GETARG_PILE_ID_P(0)));
}

Datum
pile_id_serial_no(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(PileSerial(PG_GETARG_PILE_ID_P(0)));
}

Datum
pile_id_is_legacy(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(PileIdIsLegacy(PG_GETARG_PILE_ID_P(0)));
}

/* ---------- gun_id I/O ---------- */

Datum
gun_id_in(PG_FUNCTION_ARGS)
{
	char	   *str = PG_GETARG_CSTRING(0);
	IdParse		r;
	GunId	   *result;

	ParseGunId(str, strlen(str), &r);
	if (r.status != ID_OK)
		ReportIdSyntaxError("gun_id", str, &r);

	result = palloc(sizeof(GunId));
	result->head = r.head;
	result->tail = r.tail;
	PG_RETURN_GUN_ID_P(result);
}

Datum
gun_id_out(PG_FUNCTION_ARGS)
{
	GunId	   *g = PG_GETARG_GUN_ID_P(0);
	char	   *buf = palloc(GUN_ID_DIGITS + 1);

	FormatIdDigits(g->head, g->tail, GUN_ID_DIGITS, buf);
	PG_RETURN_CSTRING(buf);
}

/* Binary form: version byte, head and tail (digits 11-23) as int8. */
Datum
gun_id_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int			version = pq_getmsgbyte(buf);
	uint64		head;
	uint64		tail;
	GunId	   *result;

	if (version != ID_BINARY_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary format version %d for type gun_id", version),
				 errdetail("This server reads version %d.", ID_BINARY_VERSION)));
	head = (uint64) pq_getmsgint64(buf);
	tail = (uint64) pq_getmsgint64(buf);
	if (head >= TEN10 || tail >= TEN13 || tail % TEN3 == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary value for type gun_id"),
				 errdetail("Head %llu, tail %llu: the head must have at most 10 digits, the tail at most 13 and its last 3 (the gun number) must not be 000.",
						   (unsigned long long) head, (unsigned long long) tail)));

	result = palloc(sizeof(GunId));
	result->head = head;
	result->tail = tail;
	PG_RETURN_GUN_ID_P(result);
}

Datum
gun_id_send(PG_FUNCTION_ARGS)
{
	GunId	   *g = PG_GETARG_GUN_ID_P(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendbyte(&buf, ID_BINARY_VERSION);
	pq_sendint64(&buf, (int64) g->head);
	pq_sendint64(&buf, (int64) g->tail);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* ---------- gun_id comparison, hashing, sorting ---------- */

#define GUN_CMP_ARGS GunIdCompare(PG_GETARG_GUN_ID_P(0), PG_GETARG_GUN_ID_P(1))

Datum
gun_id_cmp(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(GUN_CMP_ARGS);
}

Datum
gun_id_eq(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(GUN_CMP_ARGS == 0);
}

Datum
gun_id_ne(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(GUN_CMP_ARGS != 0);
}

Datum
gun_id_lt(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(GUN_CMP_ARGS < 0);
}

Datum
gun_id_le(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(GUN_CMP_ARGS <= 0);
}

Datum
gun_id_gt(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(GUN_CMP_ARGS > 0);
}

Datum
gun_id_ge(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(GUN_CMP_ARGS >= 0);
}

Datum
gun_id_hash(PG_FUNCTION_ARGS)
{
	return hash_any((unsigned char *) PG_GETARG_GUN_ID_P(0), sizeof(GunId));
}

Datum
gun_id_hash_extended(PG_FUNCTION_ARGS)
{
	return hash_any_extended((unsigned char *) PG_GETARG_GUN_ID_P(0),
							 sizeof(GunId), PG_GETARG_INT64(1));
}

static int
GunIdFastCmp(Datum x, Datum y, SortSupport ssup)
{
	return GunIdCompare(DatumGetGunIdP(x), DatumGetGunIdP(y));
}

Datum
gun_id_sortsupport(PG_FUNCTION_ARGS)
{
	SortSupport ssup = (SortSupport) PG_GETARG_POINTER(0);

	ssup->comparator = GunIdFastCmp;
	PG_RETURN_VOID();
}

/* ---------- gun_id accessors ---------- */

/* Declares PileId p, the pile part of argument 0. */
#define GUN_ARG_AS_PILE(p) \
	PileId		p; \
	GunIdPile(PG_GETARG_GUN_ID_P(0), &p)

Datum
gun_id_region_code(PG_FUNCTION_ARGS)
{
	GUN_ARG_AS_PILE(p);
	PG_RETURN_INT32(PileRegion(&p));
}

Datum
gun_id_province_code(PG_FUNCTION_ARGS)
{
	GUN_ARG_AS_PILE(p);
	PG_RETURN_INT32(PileRegion(&p) / 10000);
}

Datum
gun_id_operator_code(PG_FUNCTION_ARGS)
{
	GUN_ARG_AS_PILE(p);
	PG_RETURN_INT32(PileOperator(&p));
}

Datum
gun_id_product_kind(PG_FUNCTION_ARGS)
{
	GUN_ARG_AS_PILE(p);
	RETURN_TEXT_OR_NULL(PileProductKind(&p));
}

Datum
gun_id_current_type(PG_FUNCTION_ARGS)
{
	GUN_ARG_AS_PILE(p);
	RETURN_TEXT_OR_NULL(PileCurrentType(&p));
}

Datum
gun_id_serial_no(PG_FUNCTION_ARGS)
{
	GUN_ARG_AS_PILE(p);
	PG_RETURN_INT32(PileSerial(&p));
}

/* A gun id never rests on a legacy pile id; false, for symmetry. */
Datum
gun_id_is_legacy(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(false);
}

Datum
gun_id_pile(PG_FUNCTION_ARGS)
{
	PileId	   *result = palloc(sizeof(PileId));

	GunIdPile(PG_GETARG_GUN_ID_P(0), result);
	PG_RETURN_PILE_ID_P(result);
}

Datum
gun_id_gun_no(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(GunIdNumber(PG_GETARG_GUN_ID_P(0)));
}

/* gun_id(pile, n): the gun n (1..999) of a 20-digit pile. */
Datum
gun_id_make(PG_FUNCTION_ARGS)
{
	PileId	   *p = PG_GETARG_PILE_ID_P(0);
	int32		n = PG_GETARG_INT32(1);
	GunId	   *result;

	if (PileIdIsLegacy(p))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("legacy pile id \"%s\" cannot carry a gun number",
						DatumGetCString(DirectFunctionCall1(pile_id_out,
															PileIdPGetDatum(p)))),
				 errdetail("The cloud pile protocol does not accept 16-digit legacy pile ids."),
				 errhint("Register the pile under its 20-digit id.")));
	if (n < 1 || n > 999)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("gun number %d is out of range", n),
				 errdetail("Gun numbers have 3 digits."),
				 errhint("Use a gun number from 1 to 999; the first gun is 1.")));

	result = palloc(sizeof(GunId));
	result->head = p->head;
	result->tail = PileIdTail(p) * TEN3 + (uint64) n;
	PG_RETURN_GUN_ID_P(result);
}
