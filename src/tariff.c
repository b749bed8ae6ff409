/*-------------------------------------------------------------------------
 *
 * tariff.c
 *	  Owns evcharge.tou_tariff, one complete daily time-of-use price plan:
 *	  its text form, validation (the day covered exactly once, every class
 *	  used priced, prices of at most 4 decimals), binary I/O, equality and
 *	  hashing, jsonb output, the accessors class_at, tariff_segments and
 *	  tariff_prices, and tariff_classes, the class names in order.
 *
 * Text form (segments in any order on input, sorted on output):
 *	  00:00-08:00 valley, 08:00-14:00 flat, ... | peak 1.0300+0.5100, ...
 * Each price is "electricity+service" in yuan per kWh.  Classes are sharp,
 * peak, flat, valley and deep_valley; p0..p4 and 尖 峰 平 谷 深谷 are
 * accepted on input.
 *
 * Storage (tariff.h): a plan without deep valley is stored, sent and
 * hashed in the 4-class form of releases before 0.3.0 (version 1), so
 * existing rows and binary dumps read the same; a plan with deep valley in
 * the 5-class form (version 2).  TouTariffFromDatum widens version 1 for
 * the engines.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "tariff.h"

PG_FUNCTION_INFO_V1(tou_tariff_in);
PG_FUNCTION_INFO_V1(tou_tariff_out);
PG_FUNCTION_INFO_V1(tou_tariff_recv);
PG_FUNCTION_INFO_V1(tou_tariff_send);
PG_FUNCTION_INFO_V1(tou_tariff_eq);
PG_FUNCTION_INFO_V1(tou_tariff_ne);
PG_FUNCTION_INFO_V1(tou_tariff_hash);
PG_FUNCTION_INFO_V1(tou_tariff_hash_extended);
PG_FUNCTION_INFO_V1(tou_tariff_class_at);
PG_FUNCTION_INFO_V1(tou_tariff_segments);
PG_FUNCTION_INFO_V1(tou_tariff_prices);
PG_FUNCTION_INFO_V1(tou_tariff_to_jsonb);
PG_FUNCTION_INFO_V1(tou_tariff_classes);

const char *const TouClassNames[TOU_CLASSES] = {"sharp", "peak", "flat", "valley", "deep_valley"};

#define CLASS_LIST "sharp, peak, flat, valley and deep_valley (or p0-p4)"

/* Most segments an input may list; a valid plan has at most 1440. */
#define MAX_INPUT_SEGMENTS 2000

#define TARIFF_HINT \
	"Write the segments, then \"|\", then a price per class used, for example " \
	"\"00:00-08:00 valley, 08:00-24:00 flat | flat 0.6400+0.5100, valley 0.3300+0.5500\"."

/* A segment as parsed, with where it stood in the input for messages. */
typedef struct ParsedSegment
{
	int			start;
	int			end;
	int			cls;
	int			order;			/* position in the input list, from 1 */
} ParsedSegment;

/* ---------- small text helpers ---------- */

static const char *
SkipSpaces(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static const char *
TrimEnd(const char *start, const char *end)
{
	while (end > start && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
		end--;
	return end;
}

/* "HH:MM" for a minute of the day (1440 prints as 24:00). */
static char *
MinuteText(int minute)
{
	return psprintf("%02d:%02d", minute / 60, minute % 60);
}

static char *
SegmentText(const ParsedSegment *s)
{
	return psprintf("%s-%s %s", MinuteText(s->start), MinuteText(s->end),
					TouClassNames[s->cls]);
}

static void
pg_attribute_noreturn()
SyntaxError(const char *input, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type tou_tariff: \"%s\"", input),
			 errdetail_internal("%s", detail),
			 errhint("%s", TARIFF_HINT)));
}

/*
 * ParseClass reads a class name at [p, end) exactly (already trimmed);
 * returns the class or -1.
 */
static int
ParseClass(const char *p, const char *end)
{
	static const char *const aliases[][4] = {
		{"sharp", "p0", "\xe5\xb0\x96", NULL},	/* 尖 */
		{"peak", "p1", "\xe5\xb3\xb0", NULL},	/* 峰 */
		{"flat", "p2", "\xe5\xb9\xb3", NULL},	/* 平 */
		{"valley", "p3", "\xe8\xb0\xb7", NULL},	/* 谷 */
		{"deep_valley", "p4", "\xe6\xb7\xb1\xe8\xb0\xb7", NULL}	/* 深谷 */
	};
	size_t		len = end - p;
	int			c;
	int			a;

	for (c = 0; c < TOU_CLASSES; c++)
		for (a = 0; a < 3; a++)
			if (strlen(aliases[c][a]) == len && pg_strncasecmp(p, aliases[c][a], len) == 0)
				return c;
	return -1;
}

/* Reads "HH:MM" at *pp; returns minutes or -1.  Advances *pp past it. */
static int
ParseClock(const char **pp, const char *end)
{
	const char *p = *pp;
	int			h;
	int			m;

	if (end - p < 5 || !isdigit((unsigned char) p[0]) || !isdigit((unsigned char) p[1]) ||
		p[2] != ':' || !isdigit((unsigned char) p[3]) || !isdigit((unsigned char) p[4]))
		return -1;
	h = (p[0] - '0') * 10 + (p[1] - '0');
	m = (p[3] - '0') * 10 + (p[4] - '0');
	if (m > 59 || h > 24 || (h == 24 && m != 0))
		return -1;
	*pp = p + 5;
	return h * 60 + m;
}

/*
 * ScanPrice reads one price at p, as the grammar writes it (docs/reference/
 * tariff.md): digits, then optionally a point and 1 to 4 digits; nothing
 * else (no sign, no exponent, no point without a digit on each side).  It
 * stops after the number and returns where, with the value in
 * ten-thousandths.  When the text is not a number it returns NULL with
 * *bad at the offending place and *expected saying what should stand
 * there; when it is a number out of range (a minus sign, more than 4
 * decimals, above the maximum) it returns NULL with *bad NULL and *why set.
 */
static const char *
ScanPrice(const char *p, const char *end, int64 *out, const char **bad,
		  const char **expected, const char **why)
{
	int64		v = 0;
	int			decimals = 0;
	bool		big = false;

	*bad = NULL;
	if (p < end && *p == '-')
	{
		*why = "is negative";
		return NULL;
	}
	if (p >= end || !isdigit((unsigned char) *p))
	{
		*bad = p;
		*expected = "a digit";
		return NULL;
	}
	for (; p < end && isdigit((unsigned char) *p); p++)
	{
		v = v * 10 + (*p - '0');
		if (v > TOU_MAX_PRICE)
		{
			big = true;
			v = TOU_MAX_PRICE;	/* keeps the loop from overflowing */
		}
	}
	if (p < end && *p == '.')
	{
		p++;
		if (p >= end || !isdigit((unsigned char) *p))
		{
			*bad = p;
			*expected = "a digit after the decimal point";
			return NULL;
		}
		for (; p < end && isdigit((unsigned char) *p); p++)
		{
			if (++decimals > 4)
				continue;
			v = v * 10 + (*p - '0');
			if (v > TOU_MAX_PRICE)
			{
				big = true;
				v = TOU_MAX_PRICE;
			}
		}
	}
	if (decimals > 4)
	{
		*why = "has more than 4 decimals";
		return NULL;
	}
	for (; decimals < 4; decimals++)
	{
		v *= 10;
		if (v > TOU_MAX_PRICE)
		{
			big = true;
			v = TOU_MAX_PRICE;
		}
	}
	if (big)
	{
		*why = "is above 9999.9999 yuan per kWh";
		return NULL;
	}
	*out = v;
	return p;
}

/*
 * The 22P02 error of a price whose text is not "class electricity+service":
 * the character position (from 1, in the whole input) and what was expected
 * there.
 */
static void
pg_attribute_noreturn()
PriceSyntaxError(const char *input, const char *item, const char *itemend,
				 const char *bad, const char *expected)
{
	int			position = pg_mbstrlen_with_len(input, (int) (bad - input)) + 1;
	char	   *found;

	if (bad >= itemend)
		found = psprintf("the price ends at character %d", position);
	else if (*bad == ' ' || *bad == '\t' || *bad == '\n' || *bad == '\r')
		found = psprintf("character %d is white space", position);
	else
		found = psprintf("character %d is \"%s\"", position, pnstrdup(bad, pg_mblen(bad)));
	SyntaxError(input, psprintf("Price \"%s\" is not written \"class electricity+service\" with two numbers, as in \"peak 1.0300+0.5100\": %s where %s is expected.",
								pnstrdup(item, itemend - item), found, expected));
}

static int
CompareSegmentStart(const void *a, const void *b)
{
	const ParsedSegment *x = a;
	const ParsedSegment *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->order - y->order;
}

/* Price as "1.0300". */
static char *
PriceText(int64 v)
{
	return psprintf(INT64_FORMAT ".%04d", v / TOU_PRICE_SCALE, (int) (v % TOU_PRICE_SCALE));
}

/*
 * StoredForm gives a plan built in the 5-class layout its canonical stored
 * form: version 1, as releases before 0.3.0 wrote it, when deep valley is
 * neither used nor priced (every such plan, so equal plans keep equal
 * bytes and stored rows keep their hashes); version 2 otherwise.  t's
 * size need not be set yet.
 */
static struct varlena *
StoredForm(TouTariff *t, bool deep_used)
{
	TouTariffV1 *v1;
	int			i;

	if (deep_used || t->energy[TOU_DEEP_VALLEY] != TOU_NO_PRICE)
	{
		SET_VARSIZE(t, TouTariffSize(t->nseg));
		t->version = TOU_TARIFF_VERSION_5;
		return (struct varlena *) t;
	}
	v1 = palloc0(TouTariffV1Size(t->nseg));
	SET_VARSIZE(v1, TouTariffV1Size(t->nseg));
	v1->version = TOU_TARIFF_VERSION_4;
	v1->nseg = t->nseg;
	for (i = 0; i < TOU_CLASSES_V1; i++)
	{
		v1->energy[i] = t->energy[i];
		v1->service[i] = t->service[i];
	}
	memcpy(v1->seg, t->seg, sizeof(TouSegment) * t->nseg);
	pfree(t);
	return (struct varlena *) v1;
}

/*
 * TouTariffFromDatum detoasts a stored plan and, for version 1, widens it
 * into a palloc'd 5-class copy whose deep valley has no price.  A version
 * that is neither is corruption (cannot happen: input makes only these).
 */
TouTariff *
TouTariffFromDatum(Datum d)
{
	struct varlena *v = PG_DETOAST_DATUM(d);
	int16		version = ((TouTariff *) v)->version;
	TouTariffV1 *v1;
	TouTariff  *t;
	int			i;

	if (version == TOU_TARIFF_VERSION_5)
		return (TouTariff *) v;
	if (version != TOU_TARIFF_VERSION_4)
		elog(ERROR, "tou_tariff value of unknown version %d", version);
	v1 = (TouTariffV1 *) v;
	t = palloc(TouTariffSize(v1->nseg));
	SET_VARSIZE(t, TouTariffSize(v1->nseg));
	t->version = TOU_TARIFF_VERSION_4;
	t->nseg = v1->nseg;
	for (i = 0; i < TOU_CLASSES_V1; i++)
	{
		t->energy[i] = v1->energy[i];
		t->service[i] = v1->service[i];
	}
	t->energy[TOU_DEEP_VALLEY] = t->service[TOU_DEEP_VALLEY] = TOU_NO_PRICE;
	memcpy(t->seg, v1->seg, sizeof(TouSegment) * v1->nseg);
	return t;
}

/* 5 when the plan uses or prices deep valley, else 4 (as before 0.3.0). */
int
TouTariffClassCount(const TouTariff *t)
{
	int			i;

	if (t->energy[TOU_DEEP_VALLEY] != TOU_NO_PRICE)
		return TOU_CLASSES;
	for (i = 0; i < t->nseg; i++)
		if (t->seg[i].cls == TOU_DEEP_VALLEY)
			return TOU_CLASSES;
	return TOU_CLASSES_V1;
}

/*
 * BuildTariff validates parsed segments and prices and returns the plan.
 * Raises 22023 naming what is wrong: every overlapping pair, every span
 * left uncovered, every class used without a price.
 */
static struct varlena *
BuildTariff(ParsedSegment *segs, int nseg, const int64 *energy, const int64 *service)
{
	StringInfoData problems;
	int			i;
	int			covered;
	int			nproblems = 0;
	bool		used[TOU_CLASSES] = {false, false, false, false, false};
	TouTariff  *t;
	int			nout;

	qsort(segs, nseg, sizeof(ParsedSegment), CompareSegmentStart);

	/* Overlaps: each segment against the later ones that start before it ends. */
	initStringInfo(&problems);
	for (i = 0; i < nseg; i++)
	{
		int			j;

		for (j = i + 1; j < nseg && segs[j].start < segs[i].end; j++)
		{
			if (nproblems++ < 20)
				appendStringInfo(&problems, "%sSegments \"%s\" and \"%s\" both cover %s-%s.",
								 problems.len ? " " : "",
								 SegmentText(&segs[i]), SegmentText(&segs[j]),
								 MinuteText(segs[j].start),
								 MinuteText(Min(segs[i].end, segs[j].end)));
		}
	}
	if (nproblems > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid tou_tariff: %d overlap%s between segments",
						nproblems, nproblems == 1 ? "" : "s"),
				 errdetail_internal("%s", problems.data),
				 errhint("Each minute of the day belongs to exactly one segment: end each segment where the next begins.")));

	/* Gaps. */
	covered = 0;
	for (i = 0; i <= nseg; i++)
	{
		int			next = i < nseg ? segs[i].start : MINUTES_PER_DAY;

		if (next > covered)
		{
			if (nproblems++ < 20)
				appendStringInfo(&problems, "%s%s-%s", problems.len ? ", " : "",
								 MinuteText(covered), MinuteText(next));
		}
		if (i < nseg)
			covered = Max(covered, segs[i].end);
	}
	if (nproblems > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid tou_tariff: the segments leave %d span%s of the day uncovered",
						nproblems, nproblems == 1 ? "" : "s"),
				 errdetail("Not covered: %s.", problems.data),
				 errhint("The segments must cover 00:00-24:00 exactly once; add a segment for each span.")));

	/* Every class used has a price. */
	for (i = 0; i < nseg; i++)
		used[segs[i].cls] = true;
	for (i = 0; i < TOU_CLASSES; i++)
		if (used[i] && energy[i] == TOU_NO_PRICE)
		{
			int			j;

			for (j = 0; j < nseg && segs[j].cls != i; j++)
				;
			appendStringInfo(&problems, "%sClass \"%s\" is used by segment \"%s\" but has no price.",
							 problems.len ? " " : "", TouClassNames[i], SegmentText(&segs[j]));
			nproblems++;
		}
	if (nproblems > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid tou_tariff: %d class%s without a price",
						nproblems, nproblems == 1 ? "" : "es"),
				 errdetail_internal("%s", problems.data),
				 errhint("After \"|\", give each class used its electricity price and service fee, as in \"peak 1.0300+0.5100\".")));

	/* Merge adjacent segments of one class: equal plans get equal bytes. */
	t = palloc0(TouTariffSize(nseg));
	nout = 0;
	for (i = 0; i < nseg; i++)
	{
		if (nout > 0 && t->seg[nout - 1].cls == segs[i].cls)
		{
			t->seg[nout - 1].end = (int16) segs[i].end;
			continue;
		}
		t->seg[nout].start = (int16) segs[i].start;
		t->seg[nout].end = (int16) segs[i].end;
		t->seg[nout].cls = (int16) segs[i].cls;
		nout++;
	}
	t->nseg = (int16) nout;
	for (i = 0; i < TOU_CLASSES; i++)
	{
		t->energy[i] = energy[i];
		t->service[i] = service[i];
	}
	return StoredForm(t, used[TOU_DEEP_VALLEY]);
}

/* ---------- text I/O ---------- */

Datum
tou_tariff_in(PG_FUNCTION_ARGS)
{
	char	   *input = PG_GETARG_CSTRING(0);
	const char *end = input + strlen(input);
	const char *bar = strchr(input, '|');
	const char *p;
	ParsedSegment *segs;
	int			nseg = 0;
	int64		energy[TOU_CLASSES];
	int64		service[TOU_CLASSES];
	int			i;

	if (bar == NULL)
		SyntaxError(input, "There is no \"|\" between the segments and the prices.");
	if (strchr(bar + 1, '|') != NULL)
		SyntaxError(input, "There is more than one \"|\".");

	for (i = 0; i < TOU_CLASSES; i++)
		energy[i] = service[i] = TOU_NO_PRICE;
	segs = palloc(sizeof(ParsedSegment) * MAX_INPUT_SEGMENTS);

	/* Segments: "HH:MM-HH:MM class" separated by commas. */
	p = input;
	while (p < bar)
	{
		const char *itemend = memchr(p, ',', bar - p);
		const char *q;
		ParsedSegment *s;

		if (itemend == NULL)
			itemend = bar;
		q = SkipSpaces(p, itemend);
		if (q == TrimEnd(q, itemend))
			SyntaxError(input, psprintf("Segment %d is empty.", nseg + 1));
		if (nseg >= MAX_INPUT_SEGMENTS)
			SyntaxError(input, psprintf("More than %d segments.", MAX_INPUT_SEGMENTS));
		s = &segs[nseg];
		s->order = nseg + 1;
		s->start = ParseClock(&q, itemend);
		q = SkipSpaces(q, itemend);
		if (s->start < 0 || q >= itemend || *q != '-')
			SyntaxError(input, psprintf("Segment %d \"%s\" does not begin with a span such as \"08:00-14:00\".",
										nseg + 1, pnstrdup(SkipSpaces(p, itemend), TrimEnd(p, itemend) - SkipSpaces(p, itemend))));
		q = SkipSpaces(q + 1, itemend);
		s->end = ParseClock(&q, itemend);
		if (s->end < 0)
			SyntaxError(input, psprintf("Segment %d \"%s\" does not end its span with a time from 00:00 to 24:00.",
										nseg + 1, pnstrdup(SkipSpaces(p, itemend), TrimEnd(p, itemend) - SkipSpaces(p, itemend))));
		{
			const char *cstart = SkipSpaces(q, itemend);
			const char *cend = TrimEnd(cstart, itemend);

			if (cstart == q && cstart < cend)
				SyntaxError(input, psprintf("Segment %d needs a space between its span and its class.", nseg + 1));
			s->cls = ParseClass(cstart, cend);
			if (s->cls < 0)
				SyntaxError(input, psprintf("Segment %d has class \"%s\"; the classes are " CLASS_LIST ".",
											nseg + 1, pnstrdup(cstart, cend - cstart)));
		}
		if (s->end <= s->start)
		{
			if (s->end == 0 && s->start > 0)
				SyntaxError(input, psprintf("Segment %d \"%s\" ends at 00:00; the end of the day is written 24:00.",
											nseg + 1, pnstrdup(SkipSpaces(p, itemend), TrimEnd(p, itemend) - SkipSpaces(p, itemend))));
			SyntaxError(input, psprintf("Segment %d \"%s\" does not end after it starts; a segment that crosses midnight is written as two, ending at 24:00 and starting at 00:00.",
										nseg + 1, pnstrdup(SkipSpaces(p, itemend), TrimEnd(p, itemend) - SkipSpaces(p, itemend))));
		}
		nseg++;
		p = itemend + 1;
		if (itemend == bar)
			break;
	}
	if (nseg == 0)
		SyntaxError(input, "There are no segments before \"|\".");

	/* Prices: "class energy+service" separated by commas. */
	p = bar + 1;
	while (p <= end)
	{
		const char *itemend = memchr(p, ',', end - p);
		const char *q;
		const char *cend;
		const char *plus;
		const char *num;
		const char *bad;
		const char *expected;
		const char *why;
		const char *itemtrim;
		int			cls;
		int64		e;
		int64		s;

		if (itemend == NULL)
			itemend = end;
		q = SkipSpaces(p, itemend);
		itemtrim = TrimEnd(q, itemend);
		if (q == itemtrim)
			SyntaxError(input, "A price after \"|\" is empty.");
		for (cend = q; cend < itemtrim && *cend != ' ' && *cend != '\t' &&
			 *cend != '\n' && *cend != '\r'; cend++)
			;
		cls = ParseClass(q, cend);
		if (cls < 0)
			SyntaxError(input, psprintf("Price \"%s\" names class \"%s\"; the classes are " CLASS_LIST ".",
										pnstrdup(q, itemtrim - q), pnstrdup(q, cend - q)));
		if (energy[cls] != TOU_NO_PRICE)
			SyntaxError(input, psprintf("Class \"%s\" has two prices.", TouClassNames[cls]));
		cend = SkipSpaces(cend, itemtrim);
		plus = memchr(cend, '+', itemtrim - cend);
		if (plus == NULL)
			SyntaxError(input, psprintf("Price \"%s\" is not written \"class electricity+service\", as in \"peak 1.0300+0.5100\".",
										pnstrdup(q, itemtrim - q)));
		/* electricity, "+", service, each with white space around "+" */
		num = ScanPrice(cend, itemtrim, &e, &bad, &expected, &why);
		if (num != NULL)
		{
			num = SkipSpaces(num, itemtrim);
			if (num >= itemtrim || *num != '+')
			{
				bad = num;
				expected = "\"+\" between the electricity price and the service fee";
				num = NULL;
			}
			else
				num = ScanPrice(SkipSpaces(num + 1, itemtrim), itemtrim, &s, &bad, &expected, &why);
		}
		if (num != NULL && SkipSpaces(num, itemtrim) < itemtrim)
		{
			bad = SkipSpaces(num, itemtrim);
			expected = "\",\" before the next price, or the end";
			num = NULL;
		}
		if (num == NULL && bad != NULL)
			PriceSyntaxError(input, q, itemtrim, bad, expected);
		if (num == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid tou_tariff: price \"%s\" %s", pnstrdup(q, itemtrim - q), why),
					 errdetail("Prices are in yuan per kWh, at least 0, with at most 4 decimals."),
					 errhint("Write the price of class \"%s\" as in \"%s 1.0300+0.5100\".",
							 TouClassNames[cls], TouClassNames[cls])));
		energy[cls] = e;
		service[cls] = s;
		p = itemend + 1;
	}

	PG_RETURN_POINTER(BuildTariff(segs, nseg, energy, service));
}

Datum
tou_tariff_out(PG_FUNCTION_ARGS)
{
	TouTariff  *t = PG_GETARG_TOU_TARIFF_P(0);
	StringInfoData buf;
	int			i;
	bool		first = true;

	initStringInfo(&buf);
	for (i = 0; i < t->nseg; i++)
		appendStringInfo(&buf, "%s%s-%s %s", i ? ", " : "",
						 MinuteText(t->seg[i].start), MinuteText(t->seg[i].end),
						 TouClassNames[t->seg[i].cls]);
	appendStringInfoString(&buf, " |");
	for (i = 0; i < TOU_CLASSES; i++)
	{
		if (t->energy[i] == TOU_NO_PRICE)
			continue;
		appendStringInfo(&buf, "%s %s %s+%s", first ? "" : ",", TouClassNames[i],
						 PriceText(t->energy[i]), PriceText(t->service[i]));
		first = false;
	}
	PG_RETURN_CSTRING(buf.data);
}

/*
 * Binary form: version byte, segment count (int2), per segment start, end
 * (int2 minutes) and class (byte), then per class energy and service
 * (int8 ten-thousandths, -1 for none).  Version 1 has 4 classes, as every
 * release before 0.3.0 sent it, and is still what a plan without deep
 * valley sends; version 2 has 5.  Receive reads both and validates it all
 * again.
 */
Datum
tou_tariff_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int			version = pq_getmsgbyte(buf);
	int			nclasses;
	int			nseg;
	ParsedSegment *segs;
	int64		energy[TOU_CLASSES];
	int64		service[TOU_CLASSES];
	int			i;

	if (version != TOU_TARIFF_VERSION_4 && version != TOU_TARIFF_VERSION_5)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary format version %d for type tou_tariff", version),
				 errdetail("This server reads versions %d (4 classes) and %d (5 classes, with deep valley).",
						   TOU_TARIFF_VERSION_4, TOU_TARIFF_VERSION_5)));
	nclasses = version == TOU_TARIFF_VERSION_4 ? TOU_CLASSES_V1 : TOU_CLASSES;
	nseg = pq_getmsgint(buf, 2);
	if (nseg < 1 || nseg > MINUTES_PER_DAY)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary value for type tou_tariff"),
				 errdetail("Segment count %d is outside 1..1440.", nseg)));
	segs = palloc(sizeof(ParsedSegment) * nseg);
	for (i = 0; i < nseg; i++)
	{
		segs[i].start = pq_getmsgint(buf, 2);
		segs[i].end = pq_getmsgint(buf, 2);
		segs[i].cls = pq_getmsgbyte(buf);
		segs[i].order = i + 1;
		if (segs[i].start < 0 || segs[i].end > MINUTES_PER_DAY ||
			segs[i].start >= segs[i].end || segs[i].cls >= nclasses)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("invalid binary value for type tou_tariff"),
					 errdetail("Segment %d (start %d, end %d, class %d) is not a span of the day with a known class.",
							   i + 1, segs[i].start, segs[i].end, segs[i].cls)));
	}
	energy[TOU_DEEP_VALLEY] = service[TOU_DEEP_VALLEY] = TOU_NO_PRICE;
	for (i = 0; i < nclasses; i++)
	{
		energy[i] = pq_getmsgint64(buf);
		service[i] = pq_getmsgint64(buf);
		if ((energy[i] == TOU_NO_PRICE) != (service[i] == TOU_NO_PRICE) ||
			energy[i] < TOU_NO_PRICE || energy[i] > TOU_MAX_PRICE ||
			service[i] < TOU_NO_PRICE || service[i] > TOU_MAX_PRICE)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("invalid binary value for type tou_tariff"),
					 errdetail("The prices of class \"%s\" are out of range.", TouClassNames[i])));
	}
	PG_RETURN_POINTER(BuildTariff(segs, nseg, energy, service));
}

Datum
tou_tariff_send(PG_FUNCTION_ARGS)
{
	TouTariff  *t = PG_GETARG_TOU_TARIFF_P(0);
	StringInfoData buf;
	int			nclasses = TouTariffClassCount(t);
	int			i;

	pq_begintypsend(&buf);
	pq_sendbyte(&buf, nclasses == TOU_CLASSES ? TOU_TARIFF_VERSION_5 : TOU_TARIFF_VERSION_4);
	pq_sendint16(&buf, t->nseg);
	for (i = 0; i < t->nseg; i++)
	{
		pq_sendint16(&buf, t->seg[i].start);
		pq_sendint16(&buf, t->seg[i].end);
		pq_sendbyte(&buf, t->seg[i].cls);
	}
	for (i = 0; i < nclasses; i++)
	{
		pq_sendint64(&buf, t->energy[i]);
		pq_sendint64(&buf, t->service[i]);
	}
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* ---------- equality and hashing: canonical bytes ---------- */

/*
 * On the stored bytes, not widened: each stored form is canonical for its
 * plans (StoredForm), and hashes of rows stored before 0.3.0 stay valid.
 */
static bool
TariffEqual(const struct varlena *a, const struct varlena *b)
{
	return VARSIZE(a) == VARSIZE(b) && memcmp(a, b, VARSIZE(a)) == 0;
}

Datum
tou_tariff_eq(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(TariffEqual(PG_GETARG_VARLENA_P(0), PG_GETARG_VARLENA_P(1)));
}

Datum
tou_tariff_ne(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(!TariffEqual(PG_GETARG_VARLENA_P(0), PG_GETARG_VARLENA_P(1)));
}

Datum
tou_tariff_hash(PG_FUNCTION_ARGS)
{
	struct varlena *t = PG_GETARG_VARLENA_P(0);

	return hash_any((unsigned char *) t + VARHDRSZ, VARSIZE(t) - VARHDRSZ);
}

Datum
tou_tariff_hash_extended(PG_FUNCTION_ARGS)
{
	struct varlena *t = PG_GETARG_VARLENA_P(0);

	return hash_any_extended((unsigned char *) t + VARHDRSZ, VARSIZE(t) - VARHDRSZ,
							 PG_GETARG_INT64(1));
}

/* ---------- accessors ---------- */

void
TouTariffMinuteClasses(const TouTariff *t, uint8 *map)
{
	int			i;

	for (i = 0; i < t->nseg; i++)
		memset(map + t->seg[i].start, t->seg[i].cls, t->seg[i].end - t->seg[i].start);
}

/* class_at(tariff, time): the class in force at a local time of day. */
Datum
tou_tariff_class_at(PG_FUNCTION_ARGS)
{
	TouTariff  *t = PG_GETARG_TOU_TARIFF_P(0);
	TimeADT		time = PG_GETARG_TIMEADT(1);
	int			minute = (int) ((time / USECS_PER_MINUTE) % MINUTES_PER_DAY);
	int			i;

	for (i = 0; i < t->nseg; i++)
		if (minute >= t->seg[i].start && minute < t->seg[i].end)
			PG_RETURN_TEXT_P(cstring_to_text(TouClassNames[t->seg[i].cls]));
	elog(ERROR, "tou_tariff does not cover minute %d", minute);
	PG_RETURN_NULL();
}

static TimeADT
MinuteTime(int minute)
{
	return (TimeADT) minute * USECS_PER_MINUTE;
}

/* tariff_segments(tariff): (starts, ends, class) rows, in order. */
Datum
tou_tariff_segments(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TouTariff  *t = PG_GETARG_TOU_TARIFF_P(0);
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	for (i = 0; i < t->nseg; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		values[0] = TimeADTGetDatum(MinuteTime(t->seg[i].start));
		values[1] = TimeADTGetDatum(MinuteTime(t->seg[i].end));
		values[2] = CStringGetTextDatum(TouClassNames[t->seg[i].cls]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* tariff_prices(tariff): (class, energy_price, service_fee) per priced class. */
Datum
tou_tariff_prices(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TouTariff  *t = PG_GETARG_TOU_TARIFF_P(0);
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	for (i = 0; i < TOU_CLASSES; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		if (t->energy[i] == TOU_NO_PRICE)
			continue;
		values[0] = CStringGetTextDatum(TouClassNames[i]);
		values[1] = NumericGetDatum(int64_div_fast_to_numeric(t->energy[i], 4));
		values[2] = NumericGetDatum(int64_div_fast_to_numeric(t->service[i], 4));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * tariff_classes(): the class names in class order, {sharp, peak, flat,
 * valley, deep_valley}: the positions of every per-class array (split,
 * price, bills), so that SQL never spells the list itself.
 */
Datum
tou_tariff_classes(PG_FUNCTION_ARGS)
{
	Datum		d[TOU_CLASSES];
	int			i;

	for (i = 0; i < TOU_CLASSES; i++)
		d[i] = CStringGetTextDatum(TouClassNames[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(d, TOU_CLASSES, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * The plan as jsonb:
 * {"segments": [{"start": "00:00", "end": "08:00", "class": "valley"}, ...],
 *  "prices": {"valley": {"energy": 0.3300, "service": 0.5500}, ...}}
 */
Datum
tou_tariff_to_jsonb(PG_FUNCTION_ARGS)
{
	TouTariff  *t = PG_GETARG_TOU_TARIFF_P(0);
	StringInfoData buf;
	int			i;
	bool		first = true;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"segments\": [");
	for (i = 0; i < t->nseg; i++)
		appendStringInfo(&buf, "%s{\"start\": \"%s\", \"end\": \"%s\", \"class\": \"%s\"}",
						 i ? ", " : "", MinuteText(t->seg[i].start),
						 MinuteText(t->seg[i].end), TouClassNames[t->seg[i].cls]);
	appendStringInfoString(&buf, "], \"prices\": {");
	for (i = 0; i < TOU_CLASSES; i++)
	{
		if (t->energy[i] == TOU_NO_PRICE)
			continue;
		appendStringInfo(&buf, "%s\"%s\": {\"energy\": %s, \"service\": %s}",
						 first ? "" : ", ", TouClassNames[i],
						 PriceText(t->energy[i]), PriceText(t->service[i]));
		first = false;
	}
	appendStringInfoString(&buf, "}}");
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}
