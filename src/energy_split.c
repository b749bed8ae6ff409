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
 * The arithmetic itself is in engine_core.c, exact for every finite time
 * and reading; this file reads the arguments, follows the station's zone
 * and turns the engine's status into errors.  Which zones it follows is
 * time_zone.c's rule (TimeZoneAccepted, TimeZoneOrError).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/int.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "energy_split.h"
#include "engine_core.h"
#include "tariff.h"
#include "time_zone.h"

PG_FUNCTION_INFO_V1(split_energy);
PG_FUNCTION_INFO_V1(split_energy_by_span);

#define UNIX_TO_PG_SECS ((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)

StaticAssertDecl(TOU_CLASSES == ENGINE_CLASSES && MINUTES_PER_DAY == ENGINE_MINUTES_PER_DAY &&
				 TOU_NO_PRICE == ENGINE_NO_PRICE && USECS_PER_DAY == ENGINE_USECS_PER_DAY,
				 "the engine core and tou_tariff agree on classes, minutes and prices");

/* ---------- the station's wall clock, for the walk ---------- */

static pg_time_t
FloorUnixSeconds(TimestampTz t)
{
	int64		s = t / USECS_PER_SEC;

	if (t < 0 && t % USECS_PER_SEC != 0)
		s--;
	return (pg_time_t) (s + UNIX_TO_PG_SECS);
}

/*
 * The engine clock of a zone: the offset at t from pg_localtime, valid
 * until the zone's next boundary (PG_INT64_MAX when there is none, or when
 * it lies beyond the timestamps' range).
 */
static bool
ZoneOffsetAt(void *arg, int64 t, int64 *offset_us, int64 *until)
{
	const pg_tz *tz = arg;
	pg_time_t	secs = FloorUnixSeconds(t);
	struct pg_tm *tm = pg_localtime(&secs, tz);
	long		before_gmtoff;
	long		after_gmtoff;
	int			before_isdst;
	int			after_isdst;
	pg_time_t	boundary;
	int64		boundary_us;

	if (tm == NULL)
		return false;
	*offset_us = (int64) tm->tm_gmtoff * USECS_PER_SEC;
	if (pg_next_dst_boundary(&secs, &before_gmtoff, &before_isdst, &boundary,
							 &after_gmtoff, &after_isdst, tz) == 1 &&
		!pg_mul_s64_overflow((int64) boundary - UNIX_TO_PG_SECS, USECS_PER_SEC, &boundary_us))
		*until = boundary_us;
	else
		*until = PG_INT64_MAX;
	return true;
}

static void
ClockTick(void)
{
	CHECK_FOR_INTERRUPTS();
}

static void
BuildPlan(EnginePlan *plan, const TouTariff *t, TimestampTz start)
{
	int			i;

	plan->start = start;
	TouTariffMinuteClasses(t, plan->classes);
	for (i = 0; i < t->nseg; i++)
	{
		int			m;

		for (m = t->seg[i].start; m < t->seg[i].end; m++)
			plan->seg_end[m] = t->seg[i].end;
	}
}

/*
 * Read the sample arrays: equal length, no NULLs, no infinite time.
 * Returns the samples in time order with one per timestamp and no
 * negative readings.
 */
static EngineSample *
ReadSamples(ArrayType *ts_arr, ArrayType *wh_arr, int *nout)
{
	Datum	   *ts;
	Datum	   *wh;
	bool	   *ts_nulls;
	bool	   *wh_nulls;
	int			nts;
	int			nwh;
	int			i;
	EngineSample *s;

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

	s = palloc(sizeof(EngineSample) * Max(nts, 1));
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
					 errmsg("sample %d has an infinite time", i + 1),
					 errhint("A sample is a finite time and a meter reading.")));
		s[i].ts = DatumGetTimestampTz(ts[i]);
		s[i].wh = DatumGetInt64(wh[i]);
	}
	*nout = SplitPrepareSamples(s, nts);
	return s;
}

/*
 * SplitSamples shares the energy of the samples among spans and classes,
 * adding into result[span * TOU_CLASSES + class]; the engine's status becomes an
 * error.
 */
static void
SplitSamples(const EngineSample *s, int n, const EnginePlan *plans, int nplan,
			 const pg_tz *tz, int64 *result)
{
	EngineClock clock;

	clock.offset_at = ZoneOffsetAt;
	clock.arg = unconstify(pg_tz *, tz);
	clock.tick = ClockTick;
	switch (SplitWalk(s, n, plans, nplan, &clock, SPLIT_AUTO, result))
	{
		case ENGINE_OK:
			break;
		case ENGINE_ZONE_RANGE:
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("timestamp out of range for the station's time zone")));
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("energy per class out of range"),
					 errdetail("The Wh of one class add up to more than 64 bits hold.")));
	}
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
 * flat, valley, and deep valley when the plan has it) of one session under
 * one plan.  A plan without deep valley gives 4 figures, as before 0.3.0.
 */
Datum
split_energy(PG_FUNCTION_ARGS)
{
	TouTariff  *t = PG_GETARG_TOU_TARIFF_P(0);
	ArrayType  *ts = PG_GETARG_ARRAYTYPE_P(1);
	ArrayType  *wh = PG_GETARG_ARRAYTYPE_P(2);
	const pg_tz *tz = TimeZoneOrError(text_to_cstring(PG_GETARG_TEXT_PP(3)));
	EnginePlan *plan = palloc(sizeof(EnginePlan));
	int64		result[TOU_CLASSES] = {0, 0, 0, 0, 0};
	int			dims[1] = {TouTariffClassCount(t)};
	EngineSample *s;
	int			n;

	s = ReadSamples(ts, wh, &n);
	BuildPlan(plan, t, DT_NOBEGIN);
	SplitSamples(s, n, plan, 1, tz, result);
	PG_RETURN_ARRAYTYPE_P(Int64Array(result, dims[0], 1, dims));
}

/*
 * split_energy_by_span(tariffs[], span_starts[], ts[], meter_wh[], tz):
 * Wh per plan and class, as a two-dimensional array [span][class].  Plan k
 * is in force from span_starts[k] until span_starts[k+1]; the first also
 * before its start, the last also after.  Used to price a session that
 * runs over a price change, a promotion's start or end.  Each span has 4
 * figures when no plan has deep valley (as before 0.3.0), else 5.
 */
Datum
split_energy_by_span(PG_FUNCTION_ARGS)
{
	ArrayType  *tariffs = PG_GETARG_ARRAYTYPE_P(0);
	ArrayType  *starts = PG_GETARG_ARRAYTYPE_P(1);
	ArrayType  *ts = PG_GETARG_ARRAYTYPE_P(2);
	ArrayType  *wh = PG_GETARG_ARRAYTYPE_P(3);
	const pg_tz *tz = TimeZoneOrError(text_to_cstring(PG_GETARG_TEXT_PP(4)));
	Datum	   *tariff_d;
	bool	   *tariff_nulls;
	Datum	   *start_d;
	bool	   *start_nulls;
	int			ntariff;
	int			nstart;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	EnginePlan *spans;
	int64	   *result;
	int			dims[2];
	EngineSample *s;
	int			n;
	int			i;
	int			ncls = TOU_CLASSES_V1;

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

	spans = palloc(sizeof(EnginePlan) * ntariff);
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
		{
			TouTariff  *t = DatumGetTouTariffP(tariff_d[i]);

			BuildPlan(&spans[i], t, DatumGetTimestampTz(start_d[i]));
			ncls = Max(ncls, TouTariffClassCount(t));
		}
	}

	s = ReadSamples(ts, wh, &n);
	result = palloc0(sizeof(int64) * ntariff * TOU_CLASSES);
	SplitSamples(s, n, spans, ntariff, tz, result);
	/* the walk writes TOU_CLASSES per span: keep the first ncls of each */
	if (ncls < TOU_CLASSES)
		for (i = 0; i < ntariff; i++)
			memmove(&result[i * ncls], &result[i * TOU_CLASSES], sizeof(int64) * ncls);
	dims[0] = ntariff;
	dims[1] = ncls;
	PG_RETURN_ARRAYTYPE_P(Int64Array(result, ntariff * ncls, 2, dims));
}

/* ---------- one rise at a time, for the pipeline ---------- */

struct RiseSplitter
{
	EnginePlan	plan;
	const pg_tz *tz;
};

RiseSplitter *
RiseSplitterCreate(const TouTariff *t, const char *tzname)
{
	const pg_tz *tz = TimeZoneAccepted(tzname);
	RiseSplitter *rs;

	if (tz == NULL)
		return NULL;
	rs = palloc(sizeof(RiseSplitter));
	rs->tz = tz;
	BuildPlan(&rs->plan, t, DT_NOBEGIN);
	return rs;
}

void
RiseSplitterAdd(RiseSplitter *rs, TimestampTz a, TimestampTz b, int64 rise, int64 *wh)
{
	EngineSample s[2];

	if (rise <= 0 || b <= a)
		return;
	s[0].ts = a;
	s[0].wh = 0;
	s[1].ts = b;
	s[1].wh = rise;
	SplitSamples(s, 2, &rs->plan, 1, rs->tz, wh);
}
