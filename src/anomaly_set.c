/*-------------------------------------------------------------------------
 *
 * anomaly_set.c
 *	  Owns the type evcharge.anomaly_set, the set of anomaly codes a bill
 *	  carries: text and binary I/O, comparison, hashing and sorting, the set
 *	  operators (@>, <@, &&, |, &, -), the functions that read a set
 *	  (anomaly_codes, anomaly_names, anomaly_has, anomaly_blocking), the
 *	  constructor from int[], the catalogue of codes, and the GIN operator
 *	  class that finds the bills carrying a code.
 *
 * The codes and the text grammar live in anomaly_codes.c, which needs no
 * PostgreSQL; this file turns its findings into errors worded like core's.
 *
 * A set is a 64-bit mask, code n in bit n.  Sets are ordered by the mask
 * read as an unsigned number: a total order that btree, sorting and
 * DISTINCT need, and nothing more (it is not containment; use <@ for that).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/gin.h"
#include "access/stratnum.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/sortsupport.h"

#include "anomaly_codes.h"
#include "anomaly_set.h"

/* Version byte of the binary format; bump when the format grows. */
#define ANOMALY_SET_BINARY_VERSION 1

/* Strategy numbers of the GIN operator class (those of core's array_ops). */
#define ANOMALY_GIN_OVERLAP		1	/* && */
#define ANOMALY_GIN_CONTAINS	2	/* @> */
#define ANOMALY_GIN_EQUAL		4	/* = */

PG_FUNCTION_INFO_V1(anomaly_set_in);
PG_FUNCTION_INFO_V1(anomaly_set_out);
PG_FUNCTION_INFO_V1(anomaly_set_recv);
PG_FUNCTION_INFO_V1(anomaly_set_send);
PG_FUNCTION_INFO_V1(anomaly_set_cmp);
PG_FUNCTION_INFO_V1(anomaly_set_eq);
PG_FUNCTION_INFO_V1(anomaly_set_ne);
PG_FUNCTION_INFO_V1(anomaly_set_lt);
PG_FUNCTION_INFO_V1(anomaly_set_le);
PG_FUNCTION_INFO_V1(anomaly_set_gt);
PG_FUNCTION_INFO_V1(anomaly_set_ge);
PG_FUNCTION_INFO_V1(anomaly_set_hash);
PG_FUNCTION_INFO_V1(anomaly_set_hash_extended);
PG_FUNCTION_INFO_V1(anomaly_set_sortsupport);
PG_FUNCTION_INFO_V1(anomaly_set_contains);
PG_FUNCTION_INFO_V1(anomaly_set_contained);
PG_FUNCTION_INFO_V1(anomaly_set_overlaps);
PG_FUNCTION_INFO_V1(anomaly_set_union);
PG_FUNCTION_INFO_V1(anomaly_set_intersect);
PG_FUNCTION_INFO_V1(anomaly_set_minus);
PG_FUNCTION_INFO_V1(anomaly_set_from_codes);
PG_FUNCTION_INFO_V1(anomaly_set_codes);
PG_FUNCTION_INFO_V1(anomaly_set_names);
PG_FUNCTION_INFO_V1(anomaly_set_has);
PG_FUNCTION_INFO_V1(anomaly_set_blocking);
PG_FUNCTION_INFO_V1(anomaly_catalogue);
PG_FUNCTION_INFO_V1(anomaly_set_gin_extract_value);
PG_FUNCTION_INFO_V1(anomaly_set_gin_extract_query);
PG_FUNCTION_INFO_V1(anomaly_set_gin_consistent);
PG_FUNCTION_INFO_V1(anomaly_set_gin_triconsistent);

/*
 * The hint of every error about an unknown code: the codes that exist, with
 * their names, and the written form.  Built from the table, so it never
 * falls behind it.
 */
static char *
KnownCodesHint(void)
{
	StringInfoData hint;
	int			i;

	initStringInfo(&hint);
	appendStringInfoString(&hint, "Known codes: ");
	for (i = 0; i < AnomalyCodeCount; i++)
		appendStringInfo(&hint, "%s%d %s", i > 0 ? ", " : "",
						 AnomalyCodes[i].code, AnomalyCodes[i].name);
	appendStringInfoString(&hint, ".  Write codes by number or name joined by \"+\", "
						   "as in \"9+10+11\" or \"bill_lost+energy_mismatch\".");
	return hint.data;
}

/*
 * ReportAnomalySyntaxError raises the 22P02 error for an input the grammar
 * rejected: the message quotes the input, the detail names the item and
 * its position (characters from 1, in the input as given), the hint lists
 * the known codes.
 */
static void
pg_attribute_noreturn()
ReportAnomalySyntaxError(const char *input, const AnomalyParse *r)
{
	char	   *detail;
	int			position;
	char	   *item;
	unsigned char c;

	position = pg_mbstrlen_with_len(input, (int) r->offset) + 1;
	switch (r->status)
	{
		case ANOMALY_BAD_CHAR:
			c = (unsigned char) input[r->offset];
			if (c < 0x20 || c == 0x7f)
				detail = psprintf("The control character 0x%02X at position %d is not allowed; only code numbers, code names (letters, digits and \"_\") and \"+\" between them may appear.",
								  c, position);
			else
				detail = psprintf("The character \"%s\" at position %d is not allowed; only code numbers, code names (letters, digits and \"_\") and \"+\" between them may appear.",
								  pnstrdup(input + r->offset, pg_mblen(input + r->offset)),
								  position);
			break;
		case ANOMALY_SPACE_IN_ITEM:
			detail = psprintf("White space at position %d inside item %zu; codes are joined by \"+\", not by spaces.",
							  position, r->item);
			break;
		case ANOMALY_EMPTY_ITEM:
			if (r->item == 1)
				detail = psprintf("Item 1 is empty: the \"+\" at position %d has no code before it.",
								  position);
			else
				detail = psprintf("Item %zu is empty: the \"+\" at position %d has no code after it.",
								  r->item, position);
			break;
		case ANOMALY_UNKNOWN_CODE:
			item = pnstrdup(input + r->offset, r->length);
			detail = psprintf("Item %zu, \"%s\" at position %d, is not an anomaly code number.",
							  r->item, item, position);
			break;
		case ANOMALY_UNKNOWN_NAME:
			item = pnstrdup(input + r->offset, r->length);
			detail = psprintf("Item %zu, \"%s\" at position %d, is not an anomaly code name.",
							  r->item, item, position);
			break;
		default:
			elog(ERROR, "unexpected anomaly set parse status %d", (int) r->status);
	}

	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type anomaly_set: \"%s\"", input),
			 errdetail_internal("%s", detail),
			 errhint("%s", KnownCodesHint())));
}

/* The 22023 error of a function given a number that is no anomaly code. */
static void
pg_attribute_noreturn()
ReportUnknownCode(int32 code, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("anomaly code %d does not exist", code),
			 detail ? errdetail_internal("%s", detail) : 0,
			 errhint("%s", KnownCodesHint())));
}

/* ---------- I/O ---------- */

Datum
anomaly_set_in(PG_FUNCTION_ARGS)
{
	char	   *str = PG_GETARG_CSTRING(0);
	AnomalyParse r;

	ParseAnomalySet(str, strlen(str), &r);
	if (r.status != ANOMALY_OK)
		ReportAnomalySyntaxError(str, &r);
	PG_RETURN_ANOMALY_SET(r.set);
}

Datum
anomaly_set_out(PG_FUNCTION_ARGS)
{
	char	   *buf = palloc(ANOMALY_TEXT_SIZE);

	FormatAnomalySet(PG_GETARG_ANOMALY_SET(0), buf);
	PG_RETURN_CSTRING(buf);
}

/*
 * Binary form: version byte, then the mask as an int8.  Receive accepts
 * exactly the masks text input can produce: no bit of an unknown code.
 */
Datum
anomaly_set_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int			version = pq_getmsgbyte(buf);
	AnomalySet	set;
	AnomalySet	unknown;
	int			bit;

	if (version != ANOMALY_SET_BINARY_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary format version %d for type anomaly_set", version),
				 errdetail("This server reads version %d.", ANOMALY_SET_BINARY_VERSION)));
	set = (AnomalySet) pq_getmsgint64(buf);
	unknown = set & ~AnomalyKnownMask();
	if (unknown != 0)
	{
		for (bit = 0; (unknown & ANOMALY_BIT(bit)) == 0; bit++)
			;
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary value for type anomaly_set"),
				 errdetail("Mask 0x%016llX has bit %d set, and no anomaly code has that number.",
						   (unsigned long long) set, bit)));
	}
	PG_RETURN_ANOMALY_SET(set);
}

Datum
anomaly_set_send(PG_FUNCTION_ARGS)
{
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendbyte(&buf, ANOMALY_SET_BINARY_VERSION);
	pq_sendint64(&buf, (int64) PG_GETARG_ANOMALY_SET(0));
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* ---------- comparison, hashing, sorting ---------- */

/* Order of the masks as unsigned numbers; see the file header. */
static int
AnomalySetCompare(AnomalySet a, AnomalySet b)
{
	return a < b ? -1 : (a > b ? 1 : 0);
}

#define CMP_ARGS AnomalySetCompare(PG_GETARG_ANOMALY_SET(0), PG_GETARG_ANOMALY_SET(1))

Datum
anomaly_set_cmp(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(CMP_ARGS);
}

Datum
anomaly_set_eq(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(CMP_ARGS == 0);
}

Datum
anomaly_set_ne(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(CMP_ARGS != 0);
}

Datum
anomaly_set_lt(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(CMP_ARGS < 0);
}

Datum
anomaly_set_le(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(CMP_ARGS <= 0);
}

Datum
anomaly_set_gt(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(CMP_ARGS > 0);
}

Datum
anomaly_set_ge(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(CMP_ARGS >= 0);
}

/* Equal sets have equal masks, so hash the mask's bytes. */
Datum
anomaly_set_hash(PG_FUNCTION_ARGS)
{
	AnomalySet	set = PG_GETARG_ANOMALY_SET(0);

	return hash_any((unsigned char *) &set, sizeof(set));
}

Datum
anomaly_set_hash_extended(PG_FUNCTION_ARGS)
{
	AnomalySet	set = PG_GETARG_ANOMALY_SET(0);

	return hash_any_extended((unsigned char *) &set, sizeof(set),
							 PG_GETARG_INT64(1));
}

/*
 * The datum is the mask, so core's unsigned datum comparator is exactly our
 * order, and tuplesort has a specialised fast path for it.
 */
Datum
anomaly_set_sortsupport(PG_FUNCTION_ARGS)
{
	SortSupport ssup = (SortSupport) PG_GETARG_POINTER(0);

	ssup->comparator = ssup_datum_unsigned_cmp;
	PG_RETURN_VOID();
}

/* ---------- set operators ---------- */

/* a @> b: every code of b is in a. */
Datum
anomaly_set_contains(PG_FUNCTION_ARGS)
{
	AnomalySet	a = PG_GETARG_ANOMALY_SET(0);
	AnomalySet	b = PG_GETARG_ANOMALY_SET(1);

	PG_RETURN_BOOL((a & b) == b);
}

/* a <@ b: every code of a is in b. */
Datum
anomaly_set_contained(PG_FUNCTION_ARGS)
{
	AnomalySet	a = PG_GETARG_ANOMALY_SET(0);
	AnomalySet	b = PG_GETARG_ANOMALY_SET(1);

	PG_RETURN_BOOL((a & b) == a);
}

/* a && b: a code in both. */
Datum
anomaly_set_overlaps(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL((PG_GETARG_ANOMALY_SET(0) & PG_GETARG_ANOMALY_SET(1)) != 0);
}

Datum
anomaly_set_union(PG_FUNCTION_ARGS)
{
	PG_RETURN_ANOMALY_SET(PG_GETARG_ANOMALY_SET(0) | PG_GETARG_ANOMALY_SET(1));
}

Datum
anomaly_set_intersect(PG_FUNCTION_ARGS)
{
	PG_RETURN_ANOMALY_SET(PG_GETARG_ANOMALY_SET(0) & PG_GETARG_ANOMALY_SET(1));
}

Datum
anomaly_set_minus(PG_FUNCTION_ARGS)
{
	PG_RETURN_ANOMALY_SET(PG_GETARG_ANOMALY_SET(0) & ~PG_GETARG_ANOMALY_SET(1));
}

/* ---------- functions ---------- */

/*
 * anomaly_set(int[]): the set of the codes in the array, in any order,
 * duplicates allowed, of any dimensions.  A NULL element or a number that is
 * no code is an error, as an unknown code is in text input.
 */
Datum
anomaly_set_from_codes(PG_FUNCTION_ARGS)
{
	ArrayType  *codes = PG_GETARG_ARRAYTYPE_P(0);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	AnomalySet	set = 0;

	deconstruct_array(codes, INT4OID, sizeof(int32), true, TYPALIGN_INT,
					  &elems, &nulls, &n);
	for (i = 0; i < n; i++)
	{
		int32		code;
		const AnomalyCode *entry;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("an anomaly code cannot be NULL"),
					 errdetail("Element %d of the array is NULL.", i + 1)));
		code = DatumGetInt32(elems[i]);
		entry = AnomalyCodeByNumber(code);
		if (entry == NULL)
			ReportUnknownCode(code, psprintf("Element %d of the array is %d.", i + 1, code));
		set |= ANOMALY_BIT(entry->code);
	}
	PG_RETURN_ANOMALY_SET(set);
}

/* anomaly_codes(set): the codes, ascending. */
Datum
anomaly_set_codes(PG_FUNCTION_ARGS)
{
	AnomalySet	set = PG_GETARG_ANOMALY_SET(0);
	Datum		elems[ANOMALY_MAX_CODE];
	int			n = 0;
	int			code;

	for (code = 1; code <= ANOMALY_MAX_CODE; code++)
		if (set & ANOMALY_BIT(code))
			elems[n++] = Int32GetDatum(code);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, INT4OID, sizeof(int32),
										  true, TYPALIGN_INT));
}

/* anomaly_names(set): the names, in ascending order of code. */
Datum
anomaly_set_names(PG_FUNCTION_ARGS)
{
	AnomalySet	set = PG_GETARG_ANOMALY_SET(0);
	Datum		elems[ANOMALY_MAX_CODE];
	int			n = 0;
	int			i;

	for (i = 0; i < AnomalyCodeCount; i++)
		if (set & ANOMALY_BIT(AnomalyCodes[i].code))
			elems[n++] = CStringGetTextDatum(AnomalyCodes[i].name);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, TEXTOID, -1, false,
										  TYPALIGN_INT));
}

/*
 * anomaly_has(set, code): the set carries the code.  A number that is no
 * code is an error rather than false, so that a typo (4 for 14) in a report
 * query is not read as "no such bills".
 */
Datum
anomaly_set_has(PG_FUNCTION_ARGS)
{
	AnomalySet	set = PG_GETARG_ANOMALY_SET(0);
	int32		code = PG_GETARG_INT32(1);
	const AnomalyCode *entry = AnomalyCodeByNumber(code);

	if (entry == NULL)
		ReportUnknownCode(code, NULL);
	PG_RETURN_BOOL((set & ANOMALY_BIT(entry->code)) != 0);
}

/* anomaly_blocking(set): a code of the set stops the bill being charged. */
Datum
anomaly_set_blocking(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL((PG_GETARG_ANOMALY_SET(0) & AnomalyBlockingMask()) != 0);
}

/* anomaly_catalogue(): (code, name, description, blocks_charge) per code. */
Datum
anomaly_catalogue(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	for (i = 0; i < AnomalyCodeCount; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		values[0] = Int32GetDatum(AnomalyCodes[i].code);
		values[1] = CStringGetTextDatum(AnomalyCodes[i].name);
		values[2] = CStringGetTextDatum(AnomalyCodes[i].description);
		values[3] = BoolGetDatum(AnomalyCodes[i].blocks_charge != 0);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* ---------- GIN operator class: one int4 key per code ---------- */

/* The codes of a set as GIN keys, ascending; none for the empty set. */
static Datum *
AnomalySetKeys(AnomalySet set, int32 *nkeys)
{
	Datum	   *keys = palloc(sizeof(Datum) * ANOMALY_MAX_CODE);
	int			code;

	*nkeys = 0;
	for (code = 1; code <= ANOMALY_MAX_CODE; code++)
		if (set & ANOMALY_BIT(code))
			keys[(*nkeys)++] = Int32GetDatum(code);
	return keys;
}

/* extractValue: the keys of an indexed set.  The empty set has none. */
Datum
anomaly_set_gin_extract_value(PG_FUNCTION_ARGS)
{
	AnomalySet	set = PG_GETARG_ANOMALY_SET(0);
	int32	   *nkeys = (int32 *) PG_GETARG_POINTER(1);

	PG_RETURN_POINTER(AnomalySetKeys(set, nkeys));
}

/*
 * extractQuery: the keys of the query set, and how to search when it has
 * none.  a @> '' holds for every set (search all); a && '' for none (no
 * key, default mode: the scan returns nothing); a = '' for the empty sets
 * only (include the items with no key).
 */
Datum
anomaly_set_gin_extract_query(PG_FUNCTION_ARGS)
{
	AnomalySet	query = PG_GETARG_ANOMALY_SET(0);
	int32	   *nkeys = (int32 *) PG_GETARG_POINTER(1);
	StrategyNumber strategy = PG_GETARG_UINT16(2);
	int32	   *searchMode = (int32 *) PG_GETARG_POINTER(6);
	Datum	   *keys = AnomalySetKeys(query, nkeys);

	switch (strategy)
	{
		case ANOMALY_GIN_OVERLAP:
			break;
		case ANOMALY_GIN_CONTAINS:
			if (*nkeys == 0)
				*searchMode = GIN_SEARCH_MODE_ALL;
			break;
		case ANOMALY_GIN_EQUAL:
			if (*nkeys == 0)
				*searchMode = GIN_SEARCH_MODE_INCLUDE_EMPTY;
			break;
		default:
			elog(ERROR, "anomaly_set_gin_extract_query: unknown strategy number %d",
				 (int) strategy);
	}
	PG_RETURN_POINTER(keys);
}

/*
 * consistent: check[i] says whether the item has the i-th code of the
 * query.  && and @> are decided exactly by the keys; = is not, since the
 * item may hold codes the query lacks, so the heap value is rechecked.
 */
Datum
anomaly_set_gin_consistent(PG_FUNCTION_ARGS)
{
	bool	   *check = (bool *) PG_GETARG_POINTER(0);
	StrategyNumber strategy = PG_GETARG_UINT16(1);
	int32		nkeys = PG_GETARG_INT32(3);
	bool	   *recheck = (bool *) PG_GETARG_POINTER(5);
	bool		any = false;
	bool		all = true;
	int32		i;

	for (i = 0; i < nkeys; i++)
	{
		any |= check[i];
		all &= check[i];
	}

	switch (strategy)
	{
		case ANOMALY_GIN_OVERLAP:
			*recheck = false;
			PG_RETURN_BOOL(any);
		case ANOMALY_GIN_CONTAINS:
			*recheck = false;
			PG_RETURN_BOOL(all);
		case ANOMALY_GIN_EQUAL:
			*recheck = true;
			PG_RETURN_BOOL(all);
		default:
			elog(ERROR, "anomaly_set_gin_consistent: unknown strategy number %d",
				 (int) strategy);
	}
	PG_RETURN_BOOL(false);		/* not reached */
}

/*
 * triConsistent: the same with three-valued checks (GIN_MAYBE when the
 * index does not yet know), which lets GIN skip items early.  For = a
 * possible match is always GIN_MAYBE, meaning "recheck".
 */
Datum
anomaly_set_gin_triconsistent(PG_FUNCTION_ARGS)
{
	GinTernaryValue *check = (GinTernaryValue *) PG_GETARG_POINTER(0);
	StrategyNumber strategy = PG_GETARG_UINT16(1);
	int32		nkeys = PG_GETARG_INT32(3);
	bool		any_true = false;
	bool		any_false = false;
	bool		any_maybe = false;
	int32		i;

	for (i = 0; i < nkeys; i++)
	{
		if (check[i] == GIN_TRUE)
			any_true = true;
		else if (check[i] == GIN_FALSE)
			any_false = true;
		else
			any_maybe = true;
	}

	switch (strategy)
	{
		case ANOMALY_GIN_OVERLAP:
			if (any_true)
				PG_RETURN_GIN_TERNARY_VALUE(GIN_TRUE);
			PG_RETURN_GIN_TERNARY_VALUE(any_maybe ? GIN_MAYBE : GIN_FALSE);
		case ANOMALY_GIN_CONTAINS:
			if (any_false)
				PG_RETURN_GIN_TERNARY_VALUE(GIN_FALSE);
			PG_RETURN_GIN_TERNARY_VALUE(any_maybe ? GIN_MAYBE : GIN_TRUE);
		case ANOMALY_GIN_EQUAL:
			PG_RETURN_GIN_TERNARY_VALUE(any_false ? GIN_FALSE : GIN_MAYBE);
		default:
			elog(ERROR, "anomaly_set_gin_triconsistent: unknown strategy number %d",
				 (int) strategy);
	}
	PG_RETURN_GIN_TERNARY_VALUE(GIN_FALSE);	/* not reached */
}
