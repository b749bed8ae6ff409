/*-------------------------------------------------------------------------
 *
 * energy_split.c
 *	  Owns the energy split: how the energy a session's meter samples show
 *	  is shared among the tariff classes (and, for split_energy_by_span,
 *	  among the plans in force one after another).
 *
 * The rules (DOMAIN.md, "Prices" and "What a pile sends"):
 *	- samples are taken in time order, whatever order they come in; samples
 *	  with the same time count once (the highest reading is kept);
 *	- the first reading is the baseline: energy is never measured from zero;
 *	- energy is the rise of the meter above the highest reading seen so
 *	  far, so a register that goes backwards (or a 0 after a reconnect)
 *	  adds nothing and is never billed twice when it comes back; negative
 *	  readings (-1 from a pile that has no value) are not readings;
 *	- the rise between two consecutive samples is shared among the pieces
 *	  of time between them (split at tariff segment boundaries in the
 *	  station's local time, at clock changes and at plan changes) in
 *	  proportion to their length, in whole Wh: piece k gets
 *	  floor(rise * T_k / T) - floor(rise * T_(k-1) / T), where T_k is the
 *	  time up to the end of piece k, so the pieces add up to the rise
 *	  exactly and each gets its exact share rounded down or up by less
 *	  than one Wh; the remainder falls to the later pieces.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "energy_split.h"
#include "tariff.h"

PG_FUNCTION_INFO_V1(split_energy);
PG_FUNCTION_INFO_V1(split_energy_by_span);
PG_FUNCTION_INFO_V1(evcharge_is_time_zone);

typedef struct Sample
{
	TimestampTz ts;
	int64		wh;
} Sample;

/* A plan in force from start (inclusive) until the next span's start. */
typedef struct Span
{
	TimestampTz start;
	uint8		classes[MINUTES_PER_DAY];	/* class of each local minute */
	int16		seg_end[MINUTES_PER_DAY];	/* end minute of its segment */
} Span;

/* The UTC offset of a zone, known to hold over [from, until). */
typedef struct OffsetCache
{
	const pg_tz *tz;
	TimestampTz from;
	TimestampTz until;
	int64		offset_us;
} OffsetCache;

#define UNIX_TO_PG_SECS ((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)

static pg_time_t
FloorUnixSeconds(TimestampTz t)
{
	int64		s = t / USECS_PER_SEC;

	if (t < 0 && t % USECS_PER_SEC != 0)
		s--;
	return (pg_time_t) (s + UNIX_TO_PG_SECS);
}

static TimestampTz
UnixSecondsToTimestamp(pg_time_t s)
{
	return ((int64) s - UNIX_TO_PG_SECS) * USECS_PER_SEC;
}

/* Bring the cache to an offset valid at t. */
static void
OffsetAt(OffsetCache *c, TimestampTz t)
{
	pg_time_t	secs;
	struct pg_tm *tm;
	long		before_gmtoff;
	long		after_gmtoff;
	int			before_isdst;
	int			after_isdst;
	pg_time_t	boundary;
	int			r;

	if (t >= c->from && t < c->until)
		return;
	secs = FloorUnixSeconds(t);
	tm = pg_localtime(&secs, c->tz);
	if (tm == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range for the station's time zone")));
	c->offset_us = (int64) tm->tm_gmtoff * USECS_PER_SEC;
	c->from = UnixSecondsToTimestamp(secs);
	r = pg_next_dst_boundary(&secs, &before_gmtoff, &before_isdst, &boundary,
							 &after_gmtoff, &after_isdst, c->tz);
	c->until = (r == 1) ? UnixSecondsToTimestamp(boundary) : DT_NOEND;
	if (c->until <= t)
		c->until = t + USECS_PER_SEC;	/* cannot happen; keep the walk moving */
}

static int
CompareSamples(const void *a, const void *b)
{
	const Sample *x = a;
	const Sample *y = b;

	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	if (x->wh != y->wh)
		return x->wh > y->wh ? -1 : 1;	/* highest reading first */
	return 0;
}

static void
BuildSpan(Span *span, const TouTariff *t, TimestampTz start)
{
	int			i;

	span->start = start;
	TouTariffMinuteClasses(t, span->classes);
	for (i = 0; i < t->nseg; i++)
	{
		int			m;

		for (m = t->seg[i].start; m < t->seg[i].end; m++)
			span->seg_end[m] = t->seg[i].end;
	}
}

/*
 * Read the sample arrays: equal length, no NULLs.  Returns the samples in
 * time order with one per timestamp and no negative readings.
 */
static Sample *
ReadSamples(ArrayType *ts_arr, ArrayType *wh_arr, int *nout)
{
	Datum	   *ts;
	Datum	   *wh;
	bool	   *ts_nulls;
	bool	   *wh_nulls;
	int			nts;
	int			nwh;
	int			i;
	int			n = 0;
	Sample	   *s;

	if (ARR_NDIM(ts_arr) > 1 || ARR_NDIM(wh_arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("sample arrays must be one-dimensional")));
	deconstruct_array(ts_arr, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &ts, &ts_nulls, &nts);
	deconstruct_array(wh_arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &wh, &wh_nulls, &nwh);
	if (nts != nwh)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ts and meter_wh differ in length: %d and %d", nts, nwh),
				 errdetail("Each sample is a time and a meter reading at the same position of the two arrays."),
				 errhint("Pass arrays of equal length.")));

	s = palloc(sizeof(Sample) * Max(nts, 1));
	for (i = 0; i < nts; i++)
	{
		if (ts_nulls[i] || wh_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("sample %d has a null %s", i + 1, ts_nulls[i] ? "time" : "meter reading"),
					 errhint("Leave out samples without a reading.")));
		if (TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(ts[i])))
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("sample %d has an infinite time", i + 1)));
		if (DatumGetInt64(wh[i]) < 0)
			continue;			/* -1: the pile had no reading */
		s[n].ts = DatumGetTimestampTz(ts[i]);
		s[n].wh = DatumGetInt64(wh[i]);
		n++;
	}
	qsort(s, n, sizeof(Sample), CompareSamples);

	/* One sample per time: the highest reading, sorted first. */
	if (n > 0)
	{
		int			k = 1;

		for (i = 1; i < n; i++)
			if (s[i].ts != s[k - 1].ts)
				s[k++] = s[i];
		n = k;
	}
	*nout = n;
	return s;
}

/*
 * SplitSamples shares the energy of the samples among spans and classes,
 * adding into result[span * 4 + class].
 */
static void
SplitSamples(const Sample *s, int n, Span *spans, int nspan, const pg_tz *tz,
			 int64 *result)
{
	OffsetCache oc;
	int64		high;
	int			i;
	int			sp = 0;

	oc.tz = tz;
	oc.from = 1;
	oc.until = 0;				/* empty: forces the first lookup */
	oc.offset_us = 0;

	if (n == 0)
		return;
	high = s[0].wh;
	for (i = 1; i < n; i++)
	{
		TimestampTz ta = s[i - 1].ts;
		TimestampTz tb = s[i].ts;
		int64		rise;
		int128		total_us = (int128) (tb - ta);
		int128		elapsed_us = 0;
		int64		given = 0;
		TimestampTz t;

		CHECK_FOR_INTERRUPTS();
		if (s[i].wh <= high)
			continue;
		rise = s[i].wh - high;
		high = s[i].wh;

		for (t = ta; t < tb;)
		{
			TimestampTz next;
			int64		sod;
			int			minute;
			int			cls;
			int64		share;

			while (sp + 1 < nspan && spans[sp + 1].start <= t)
				sp++;
			OffsetAt(&oc, t);
			sod = (t + oc.offset_us) % USECS_PER_DAY;
			if (sod < 0)
				sod += USECS_PER_DAY;
			minute = (int) (sod / USECS_PER_MINUTE);
			cls = spans[sp].classes[minute];
			next = t + ((int64) spans[sp].seg_end[minute] * USECS_PER_MINUTE - sod);
			if (oc.until < next)
				next = oc.until;
			if (sp + 1 < nspan && spans[sp + 1].start < next)
				next = spans[sp + 1].start;
			if (tb < next)
				next = tb;

			elapsed_us += (int128) (next - t);
			share = (int64) ((int128) rise * elapsed_us / total_us) - given;
			given += share;
			result[sp * TOU_CLASSES + cls] += share;
			t = next;
		}
	}
}

static const pg_tz *
LookupZone(text *tzname)
{
	char	   *name = text_to_cstring(tzname);
	pg_tz	   *tz = pg_tzset(name);

	if (tz == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("time zone \"%s\" not recognized", name),
				 errhint("Use a zone name such as \"Asia/Shanghai\".")));
	return tz;
}

static ArrayType *
Int64Array(const int64 *v, int n, int ndims, int *dims)
{
	Datum	   *d = palloc(sizeof(Datum) * n);
	int			lbs[2] = {1, 1};
	int			i;

	for (i = 0; i < n; i++)
		d[i] = Int64GetDatum(v[i]);
	return construct_md_array(d, NULL, ndims, dims, lbs, INT8OID, 8,
							  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
}

/*
 * split_energy(tariff, ts[], meter_wh[], tz): Wh per class (sharp, peak,
 * flat, valley) of one session under one plan.
 */
Datum
split_energy(PG_FUNCTION_ARGS)
{
	TouTariff  *t = PG_GETARG_TOU_TARIFF_P(0);
	ArrayType  *ts = PG_GETARG_ARRAYTYPE_P(1);
	ArrayType  *wh = PG_GETARG_ARRAYTYPE_P(2);
	const pg_tz *tz = LookupZone(PG_GETARG_TEXT_PP(3));
	Span	   *span = palloc(sizeof(Span));
	int64		result[TOU_CLASSES] = {0, 0, 0, 0};
	int			dims[1] = {TOU_CLASSES};
	Sample	   *s;
	int			n;

	s = ReadSamples(ts, wh, &n);
	BuildSpan(span, t, DT_NOBEGIN);
	SplitSamples(s, n, span, 1, tz, result);
	PG_RETURN_ARRAYTYPE_P(Int64Array(result, TOU_CLASSES, 1, dims));
}

/*
 * split_energy_by_span(tariffs[], span_starts[], ts[], meter_wh[], tz):
 * Wh per plan and class, as a two-dimensional array [span][class].  Plan k
 * is in force from span_starts[k] until span_starts[k+1]; the first also
 * before its start, the last also after.  Used to price a session that
 * runs over a price change, a promotion's start or end.
 */
Datum
split_energy_by_span(PG_FUNCTION_ARGS)
{
	ArrayType  *tariffs = PG_GETARG_ARRAYTYPE_P(0);
	ArrayType  *starts = PG_GETARG_ARRAYTYPE_P(1);
	ArrayType  *ts = PG_GETARG_ARRAYTYPE_P(2);
	ArrayType  *wh = PG_GETARG_ARRAYTYPE_P(3);
	const pg_tz *tz = LookupZone(PG_GETARG_TEXT_PP(4));
	Datum	   *tariff_d;
	bool	   *tariff_nulls;
	Datum	   *start_d;
	bool	   *start_nulls;
	int			ntariff;
	int			nstart;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Span	   *spans;
	int64	   *result;
	int			dims[2];
	Sample	   *s;
	int			n;
	int			i;

	get_typlenbyvalalign(ARR_ELEMTYPE(tariffs), &typlen, &typbyval, &typalign);
	deconstruct_array(tariffs, ARR_ELEMTYPE(tariffs), typlen, typbyval, typalign,
					  &tariff_d, &tariff_nulls, &ntariff);
	deconstruct_array(starts, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &start_d, &start_nulls, &nstart);
	if (ntariff == 0 || ntariff != nstart)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%d plans and %d span starts given", ntariff, nstart),
				 errhint("Give one start time per plan, at least one plan.")));

	spans = palloc(sizeof(Span) * ntariff);
	for (i = 0; i < ntariff; i++)
	{
		if (tariff_nulls[i] || start_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("span %d has a null plan or start", i + 1)));
		if (i > 0 && DatumGetTimestampTz(start_d[i]) <= DatumGetTimestampTz(start_d[i - 1]))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("span starts must be in ascending order"),
					 errdetail("Span %d starts at or before span %d.", i + 1, i)));
		BuildSpan(&spans[i], DatumGetTouTariffP(tariff_d[i]), DatumGetTimestampTz(start_d[i]));
	}

	s = ReadSamples(ts, wh, &n);
	result = palloc0(sizeof(int64) * ntariff * TOU_CLASSES);
	SplitSamples(s, n, spans, ntariff, tz, result);
	dims[0] = ntariff;
	dims[1] = TOU_CLASSES;
	PG_RETURN_ARRAYTYPE_P(Int64Array(result, ntariff * TOU_CLASSES, 2, dims));
}

/*
 * is_time_zone(name): whether the split can follow this zone's wall clock;
 * the same lookup split_energy makes, so that a station whose zone passes
 * its check can always be priced.  Abbreviations such as CST are refused:
 * they are ambiguous (China or US Central) and carry no clock changes.
 */
Datum
evcharge_is_time_zone(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));

	PG_RETURN_BOOL(pg_tzset(name) != NULL && pg_tz_acceptable(pg_tzset(name)));
}

/* ---------- one rise at a time, for the pipeline ---------- */

struct RiseSplitter
{
	Span		span;
	const pg_tz *tz;
};

RiseSplitter *
RiseSplitterCreate(const TouTariff *t, const char *tzname)
{
	pg_tz	   *tz = pg_tzset(tzname);
	RiseSplitter *rs;

	if (tz == NULL)
		return NULL;
	rs = palloc(sizeof(RiseSplitter));
	rs->tz = tz;
	BuildSpan(&rs->span, t, DT_NOBEGIN);
	return rs;
}

void
RiseSplitterAdd(RiseSplitter *rs, TimestampTz a, TimestampTz b, int64 rise, int64 *wh)
{
	Sample		s[2];

	if (rise <= 0 || b <= a)
		return;
	s[0].ts = a;
	s[0].wh = 0;
	s[1].ts = b;
	s[1].wh = rise;
	SplitSamples(s, 2, &rs->span, 1, rs->tz, wh);
}
