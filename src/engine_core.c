/*-------------------------------------------------------------------------
 *
 * engine_core.c
 *	  Owns the arithmetic of the billing engines: the energy split walk and
 *	  the price sums, in plain C (see engine_core.h), exact or reporting an
 *	  overflow, never wrapping.
 *
 * The split (DOMAIN.md, "Prices"): the rise between two samples is shared
 * among the pieces of time between them (cut at segment boundaries on the
 * local wall clock, at changes of the zone's offset and at plan changes)
 * in proportion to their length, in whole Wh: with T the time between the
 * samples and E_k the time from the first sample to the end of piece k,
 * piece k gets floor(rise * E_k / T) - floor(rise * E_(k-1) / T).  T is a
 * difference of two 64-bit times, so it can need 65 bits, and rise * E_k up
 * to 127: both are computed in 128 bits.
 *
 * Two walks give that same result.  By piece: one step per piece, at
 * least one per local day.  By Wh: unit j of the rise (1 <= j <= rise)
 * falls in the piece where floor(rise * E / T) first reaches j, that is at
 * elapsed time x_j = ceil(j * T / rise), so it is counted in the class in
 * force at the instant (first sample + x_j - 1 microsecond).  A rise of a
 * few Wh over centuries takes a few steps that way instead of a step per
 * day; SPLIT_AUTO takes the walk with fewer steps, and the fuzz target
 * checks that the two agree.
 *
 *-------------------------------------------------------------------------
 */
#include "c.h"

#include <stdlib.h>

#include "common/int.h"

#include "engine_core.h"

/* How many steps between two calls of the clock's tick. */
#define TICK_EVERY 4096

/* The zone's offset, known to hold over [from, until). */
typedef struct OffsetCache
{
	bool		valid;
	int64		from;
	int64		until;
	int64		offset_us;
} OffsetCache;

static int
CompareSamples(const void *a, const void *b)
{
	const EngineSample *x = a;
	const EngineSample *y = b;

	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	if (x->wh != y->wh)
		return x->wh > y->wh ? -1 : 1;	/* highest reading first */
	return 0;
}

int
SplitPrepareSamples(EngineSample *s, int n)
{
	int			kept = 0;
	int			i;

	for (i = 0; i < n; i++)
		if (s[i].wh >= 0)		/* -1: the pile had no reading */
			s[kept++] = s[i];
	n = kept;
	if (n == 0)
		return 0;
	qsort(s, n, sizeof(EngineSample), CompareSamples);
	kept = 1;
	for (i = 1; i < n; i++)
		if (s[i].ts != s[kept - 1].ts)
			s[kept++] = s[i];
	return kept;
}

/* Bring the cache to an offset valid at t. */
static bool
OffsetAt(const EngineClock *clock, OffsetCache *c, int64 t)
{
	if (c->valid && t >= c->from && t < c->until)
		return true;
	if (!clock->offset_at(clock->arg, t, &c->offset_us, &c->until))
		return false;
	c->from = t;
	if (c->until <= t)
		c->until = t + 1;		/* a clock that does not move on: keep
								 * walking (t < PG_INT64_MAX: it lies before
								 * a later sample) */
	c->valid = true;
	return true;
}

/* Microseconds after local midnight at t, for a UTC offset. */
static int64
TimeOfDay(int64 t, int64 offset_us)
{
	int128		local = (int128) t + offset_us;
	int64		sod = (int64) (local % ENGINE_USECS_PER_DAY);

	if (sod < 0)
		sod += ENGINE_USECS_PER_DAY;
	return sod;
}

static bool
AddInto(int64 *into, int64 v)
{
	return !pg_add_s64_overflow(*into, v, into);
}

static void
Tick(const EngineClock *clock, uint64 *steps)
{
	if (++*steps % TICK_EVERY == 0 && clock->tick != NULL)
		clock->tick();
}

/* One rise, piece by piece. */
static EngineStatus
WalkPieces(int64 ta, int64 tb, int64 rise, const EnginePlan *plans, int nplan,
		   int *sp, const EngineClock *clock, OffsetCache *oc, uint64 *steps,
		   int64 *result)
{
	int128		total = (int128) tb - ta;
	int128		elapsed = 0;
	int64		given = 0;
	int64		t = ta;

	while (t < tb)
	{
		int128		next;
		int64		sod;
		int			minute;
		int			cls;
		int64		share;

		Tick(clock, steps);
		while (*sp + 1 < nplan && plans[*sp + 1].start <= t)
			(*sp)++;
		if (!OffsetAt(clock, oc, t))
			return ENGINE_ZONE_RANGE;
		sod = TimeOfDay(t, oc->offset_us);
		minute = (int) (sod / ENGINE_USECS_PER_MINUTE);
		cls = plans[*sp].classes[minute];
		next = (int128) t + ((int64) plans[*sp].seg_end[minute] * ENGINE_USECS_PER_MINUTE - sod);
		if (oc->until < next)
			next = oc->until;
		if (*sp + 1 < nplan && plans[*sp + 1].start < next)
			next = plans[*sp + 1].start;
		if (tb < next)
			next = tb;

		elapsed += next - t;
		/* rise < 2^63 and elapsed <= total < 2^64: the product fits */
		share = (int64) ((int128) rise * elapsed / total) - given;
		given += share;
		if (!AddInto(&result[*sp * ENGINE_CLASSES + cls], share))
			return ENGINE_OVERFLOW;
		t = (int64) next;
	}
	return ENGINE_OK;
}

/* One rise, Wh by Wh (see the file header). */
static EngineStatus
WalkWh(int64 ta, int64 tb, int64 rise, const EnginePlan *plans, int nplan,
	   int *sp, const EngineClock *clock, OffsetCache *oc, uint64 *steps,
	   int64 *result)
{
	int128		total = (int128) tb - ta;
	int64		j;

	for (j = 1; j <= rise; j++)
	{
		int128		jt = (int128) j * total;
		int128		x = jt / rise + (jt % rise != 0 ? 1 : 0);
		int64		q = (int64) ((int128) ta + x - 1);	/* ta <= q < tb */
		int64		sod;
		int			cls;

		Tick(clock, steps);
		while (*sp + 1 < nplan && plans[*sp + 1].start <= q)
			(*sp)++;
		if (!OffsetAt(clock, oc, q))
			return ENGINE_ZONE_RANGE;
		sod = TimeOfDay(q, oc->offset_us);
		cls = plans[*sp].classes[sod / ENGINE_USECS_PER_MINUTE];
		if (!AddInto(&result[*sp * ENGINE_CLASSES + cls], 1))
			return ENGINE_OVERFLOW;
	}
	return ENGINE_OK;
}

EngineStatus
SplitWalk(const EngineSample *s, int n, const EnginePlan *plans, int nplan,
		  const EngineClock *clock, SplitMethod method, int64 *result)
{
	OffsetCache oc = {false, 0, 0, 0};
	uint64		steps = 0;
	int64		high;
	int			sp = 0;
	int			i;

	if (n == 0)
		return ENGINE_OK;
	high = s[0].wh;
	for (i = 1; i < n; i++)
	{
		int64		ta = s[i - 1].ts;
		int64		tb = s[i].ts;
		int64		rise;
		bool		by_wh;
		EngineStatus st;

		if (s[i].wh <= high)
			continue;
		rise = s[i].wh - high;	/* both >= 0: no overflow */
		high = s[i].wh;

		by_wh = method == SPLIT_BY_WH ||
			(method == SPLIT_AUTO &&
			 (int128) rise < ((int128) tb - ta) / ENGINE_USECS_PER_DAY);
		if (by_wh)
			st = WalkWh(ta, tb, rise, plans, nplan, &sp, clock, &oc, &steps, result);
		else
			st = WalkPieces(ta, tb, rise, plans, nplan, &sp, clock, &oc, &steps, result);
		if (st != ENGINE_OK)
			return st;
	}
	return ENGINE_OK;
}

EngineStatus
PriceEnergy(const int64 *wh, const int64 *energy, const int64 *service,
			bool skip_unpriced, EnginePrice *out)
{
	int			i;

	memset(out, 0, sizeof(EnginePrice));
	out->bad_class = -1;
	for (i = 0; i < ENGINE_CLASSES; i++)
	{
		if (wh[i] < 0)
		{
			out->bad_class = i;
			return ENGINE_NEGATIVE;
		}
		if (wh[i] == 0)
			continue;
		if (energy[i] == ENGINE_NO_PRICE || service[i] == ENGINE_NO_PRICE)
		{
			if (skip_unpriced)
				continue;
			out->bad_class = i;
			return ENGINE_UNPRICED;
		}
		if (pg_mul_s64_overflow(wh[i], energy[i], &out->energy_units[i]) ||
			pg_mul_s64_overflow(wh[i], service[i], &out->service_units[i]))
		{
			out->bad_class = i;
			return ENGINE_OVERFLOW;
		}
		if (pg_add_s64_overflow(out->energy_sum, out->energy_units[i], &out->energy_sum) ||
			pg_add_s64_overflow(out->service_sum, out->service_units[i], &out->service_sum) ||
			pg_add_s64_overflow(out->wh_sum, wh[i], &out->wh_sum))
			return ENGINE_OVERFLOW;
	}
	/* Truncation: the sums are >= 0 (prices are, energies are). */
	out->energy_fen = out->energy_sum / ENGINE_UNITS_PER_FEN;
	out->service_fen = out->service_sum / ENGINE_UNITS_PER_FEN;
	/* each is below 2^63 / 10^5: the sum fits */
	out->total_fen = out->energy_fen + out->service_fen;
	return ENGINE_OK;
}
