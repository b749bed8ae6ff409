/*
 * fuzz_engines.c
 *	  libFuzzer target for the arguments of the billing engines: the energy
 *	  split walk and the price sums (src/engine_core.c).
 *
 * split_energy, split_energy_by_span, price and the pipeline's running
 * amount are thin wrappers around SplitPrepareSamples, SplitWalk and
 * PriceEnergy; this target runs those with AddressSanitizer and
 * UndefinedBehaviorSanitizer (so a signed overflow anywhere aborts) on
 * arguments read from the input: any 64-bit times and readings, plans
 * and plan starts, a wall clock whose offsets and changes come from the
 * input too, and any Wh per class and prices.  It checks, for every input:
 *	  - no overflow, no read outside the arrays, whatever the values;
 *	  - the split gives out every rise whole: the Wh per plan and class are
 *		never negative and add up to the meter's rise above its baseline
 *		(or the walk reports an overflow, never a wrong sum);
 *	  - a class no segment uses gets nothing;
 *	  - the walk by piece and the walk by Wh give the same Wh, to the unit
 *		(checked when both are short);
 *	  - price sums are exact: each fee is the exact product, the sums add
 *		up, the fen figures are the sums truncated, and an overflow is
 *		reported exactly when the exact figures need more than 64 bits.
 * Build and run: make -C test/fuzz run-engines (docs/testing.md).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine_core.h"

/*
 * c.h's port.h names qsort pg_qsort, which lives in libpgport; the C
 * library's will do here.
 */
#undef qsort
void		pg_qsort(void *base, size_t nel, size_t elsize,
					 int (*cmp) (const void *, const void *));

void
pg_qsort(void *base, size_t nel, size_t elsize,
		 int (*cmp) (const void *, const void *))
{
	qsort(base, nel, elsize, cmp);
}

#define MAX_SAMPLES 64
#define MAX_PLANS 4
#define MAX_CHANGES 8
/* Compare the two walks only when both take at most this many steps. */
#define MAX_COMPARE_STEPS 20000

static void
Check(int ok)
{
	if (!ok)
		abort();
}

/* Reads little-endian integers from the input, zeros once it runs out. */
typedef struct Reader
{
	const uint8_t *p;
	size_t		left;
} Reader;

static uint64_t
Take(Reader *r, int bytes)
{
	uint64_t	v = 0;
	int			i;

	for (i = 0; i < bytes; i++)
	{
		uint64_t	b = 0;

		if (r->left > 0)
		{
			b = *r->p++;
			r->left--;
		}
		v |= b << (8 * i);
	}
	return v;
}

/*
 * A time: mostly near a few interesting places (the timestamps' ends, 0,
 * a recent day), sometimes any 64-bit value.
 */
static int64
TakeTime(Reader *r)
{
	static const int64 anchors[] = {
		INT64CONST(-211813488000000000),	/* 4714-11-24 BC, the first */
		INT64CONST(9223371331199999999),	/* 294276-12-31 23:59:59.999999 */
		0,
		INT64CONST(848534400000000),	/* 2026-11-20 */
		PG_INT64_MIN,
		PG_INT64_MAX,
	};
	uint64_t	kind = Take(r, 1);

	if (kind < 32)
		return (int64) Take(r, 8);
	static const int64 units[] = {1, 1000000, INT64CONST(60000000), INT64CONST(3600000000)};

	/*
	 * An anchor plus a number of microseconds, seconds, minutes or hours
	 * (whole minutes meet the segment boundaries exactly), wrapping around
	 * instead of overflowing: any 64-bit value will do.
	 */
	return (int64) ((uint64) anchors[(kind >> 2) % lengthof(anchors)] +
					(uint64) (int64) (int32) Take(r, 4) * (uint64) units[kind & 3]);
}

static int64
TakeReading(Reader *r)
{
	uint64_t	kind = Take(r, 1);

	if (kind < 16)
		return (int64) Take(r, 8);	/* any, negative ones are dropped */
	if (kind < 24)
		return PG_INT64_MAX - (int64) Take(r, 2);
	if (kind < 160)
		return (int64) Take(r, 1);
	return (int64) Take(r, 3);
}

/* A plan: segments of the day from the input, each of a class. */
static void
TakePlan(Reader *r, EnginePlan *plan, int64 start)
{
	int			m = 0;

	plan->start = start;
	while (m < ENGINE_MINUTES_PER_DAY)
	{
		int			len = 1 + (int) (Take(r, 2) % ENGINE_MINUTES_PER_DAY);
		int			cls = (int) (Take(r, 1) % 4);	/* 0, 1, 2 or deep valley (4): class 3 stays unused */
		int			end = m + len > ENGINE_MINUTES_PER_DAY ? ENGINE_MINUTES_PER_DAY : m + len;
		int			i;

		if (cls == 3)
			cls = 4;
		if (r->left == 0)
			end = ENGINE_MINUTES_PER_DAY;
		for (i = m; i < end; i++)
		{
			plan->classes[i] = (uint8) cls;
			plan->seg_end[i] = (int16) end;
		}
		m = end;
	}
}

/* The wall clock of the input: an offset, changing at a few instants. */
typedef struct FuzzZone
{
	int			nchanges;
	int64		at[MAX_CHANGES];	/* ascending */
	int64		offset[MAX_CHANGES + 1];	/* before at[0], ..., after the last */
	int64		limit_low;		/* below: the zone cannot say */
} FuzzZone;

static bool
FuzzOffsetAt(void *arg, int64 t, int64 *offset_us, int64 *until)
{
	const FuzzZone *z = arg;
	int			i;

	if (t < z->limit_low)
		return false;
	for (i = 0; i < z->nchanges && z->at[i] <= t; i++)
		;
	*offset_us = z->offset[i];
	*until = i < z->nchanges ? z->at[i] : PG_INT64_MAX;
	return true;
}

static int	ticks;

static void
FuzzTick(void)
{
	ticks++;
}

static int
CompareInt64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? -1 : (x > y ? 1 : 0);
}

/* Steps the walk by piece can take, at most, over the samples. */
static int128
PieceSteps(const EngineSample *s, int n, const FuzzZone *z, int nplan)
{
	int128		steps = 0;
	int			i;

	for (i = 1; i < n; i++)
		steps += ((int128) s[i].ts - s[i - 1].ts) / (ENGINE_USECS_PER_MINUTE) + 2;
	return steps + z->nchanges + nplan;
}

static void
CheckSplit(Reader *r)
{
	EngineSample s[MAX_SAMPLES];
	EnginePlan *plans = malloc(sizeof(EnginePlan) * MAX_PLANS);
	int64		starts[MAX_PLANS] = {0};
	FuzzZone	zone;
	EngineClock clock;
	int64		by_piece[MAX_PLANS * ENGINE_CLASSES];
	int64		by_wh[MAX_PLANS * ENGINE_CLASSES];
	int64		autom[MAX_PLANS * ENGINE_CLASSES];
	int			nplan = 1 + (int) (Take(r, 1) % MAX_PLANS);
	int			n = (int) (Take(r, 1) % MAX_SAMPLES);
	int			i;
	int128		expected = 0;
	int128		sum = 0;
	int128		rises = 0;
	EngineStatus st;

	/* the zone */
	zone.nchanges = (int) (Take(r, 1) % (MAX_CHANGES + 1));
	for (i = 0; i < zone.nchanges; i++)
		zone.at[i] = TakeTime(r);
	qsort(zone.at, zone.nchanges, sizeof(int64), CompareInt64);
	for (i = 0; i <= zone.nchanges; i++)
	{
		/* mostly whole hours, as real zones have, sometimes any second */
		if (Take(r, 1) < 192)
			zone.offset[i] = ((int64) (int8) Take(r, 1) % 27) * INT64CONST(3600000000);
		else
			zone.offset[i] = ((int64) (int32) Take(r, 4) % (26 * 3600)) * 1000000;
	}
	zone.limit_low = Take(r, 1) < 8 ? TakeTime(r) : PG_INT64_MIN;

	/* the plans, with strictly ascending starts */
	for (i = 0; i < nplan; i++)
		starts[i] = TakeTime(r);
	qsort(starts, nplan, sizeof(int64), CompareInt64);
	for (i = 1; i < nplan; i++)
		if (starts[i] <= starts[i - 1])
			nplan = i;
	for (i = 0; i < nplan; i++)
		TakePlan(r, &plans[i], starts[i]);

	for (i = 0; i < n; i++)
	{
		s[i].ts = TakeTime(r);
		s[i].wh = TakeReading(r);
	}
	n = SplitPrepareSamples(s, n);
	for (i = 0; i < n; i++)
	{
		Check(s[i].wh >= 0);
		Check(i == 0 || s[i - 1].ts < s[i].ts);
	}

	/* the rise above the baseline that must be given out whole */
	if (n > 0)
	{
		int64		high = s[0].wh;

		for (i = 1; i < n; i++)
			if (s[i].wh > high)
			{
				rises += (int128) s[i].wh - high;
				high = s[i].wh;
			}
		expected = (int128) high - s[0].wh;
		Check(rises == expected);
	}

	clock.offset_at = FuzzOffsetAt;
	clock.arg = &zone;
	clock.tick = FuzzTick;

	/* A walk by piece over 290,000 years takes a while: only when short. */
	if (PieceSteps(s, n, &zone, nplan) <= MAX_COMPARE_STEPS * 50)
	{
		memset(by_piece, 0, sizeof(by_piece));
		st = SplitWalk(s, n, plans, nplan, &clock, SPLIT_BY_PIECE, by_piece);
		Check(st == ENGINE_OK || st == ENGINE_ZONE_RANGE || st == ENGINE_OVERFLOW);
		if (st == ENGINE_OK)
		{
			sum = 0;
			for (i = 0; i < nplan * ENGINE_CLASSES; i++)
			{
				Check(by_piece[i] >= 0);
				sum += by_piece[i];
				if (i % ENGINE_CLASSES == 3)
					Check(by_piece[i] == 0);	/* no segment uses class 3 */
			}
			Check(sum == expected);
			if (expected <= MAX_COMPARE_STEPS)
			{
				memset(by_wh, 0, sizeof(by_wh));
				Check(SplitWalk(s, n, plans, nplan, &clock, SPLIT_BY_WH, by_wh) == ENGINE_OK);
				Check(memcmp(by_piece, by_wh, sizeof(int64) * nplan * ENGINE_CLASSES) == 0);
			}
		}
	}

	/* The automatic choice, on anything, with the same properties. */
	if (PieceSteps(s, n, &zone, nplan) <= MAX_COMPARE_STEPS * 50 || expected <= MAX_COMPARE_STEPS * 50)
	{
		memset(autom, 0, sizeof(autom));
		st = SplitWalk(s, n, plans, nplan, &clock, SPLIT_AUTO, autom);
		if (st == ENGINE_OK)
		{
			sum = 0;
			for (i = 0; i < nplan * ENGINE_CLASSES; i++)
			{
				Check(autom[i] >= 0);
				sum += autom[i];
			}
			Check(sum == expected);
		}
	}
	free(plans);
}

static void
CheckPrice(Reader *r)
{
	int64		wh[ENGINE_CLASSES];
	int64		energy[ENGINE_CLASSES];
	int64		service[ENGINE_CLASSES];
	EnginePrice p;
	EngineStatus st;
	int128		e = 0;
	int128		sv = 0;
	int128		w = 0;
	bool		fits = true;
	bool		skip = Take(r, 1) & 1;
	int			i;

	for (i = 0; i < ENGINE_CLASSES; i++)
	{
		uint64_t	kind = Take(r, 1);

		wh[i] = kind < 64 ? (int64) Take(r, 8) : (int64) Take(r, kind % 8);
		if (Take(r, 1) < 16)
			energy[i] = service[i] = ENGINE_NO_PRICE;
		else
		{
			energy[i] = (int64) (Take(r, 4) % 100000000);	/* 0..9999.9999 */
			service[i] = (int64) (Take(r, 4) % 100000000);
		}
	}
	st = PriceEnergy(wh, energy, service, skip, &p);

	/* What the answer must be, in 128 bits. */
	for (i = 0; i < ENGINE_CLASSES; i++)
	{
		int128		ei;
		int128		si;

		if (wh[i] < 0)
		{
			Check(st == ENGINE_NEGATIVE && p.bad_class == i);
			return;
		}
		if (wh[i] == 0)
			continue;
		if (energy[i] == ENGINE_NO_PRICE)
		{
			if (skip)
				continue;
			Check(st == ENGINE_UNPRICED && p.bad_class == i);
			return;
		}
		ei = (int128) wh[i] * energy[i];
		si = (int128) wh[i] * service[i];
		if (ei > PG_INT64_MAX || si > PG_INT64_MAX)
		{
			Check(st == ENGINE_OVERFLOW && p.bad_class == i);
			return;
		}
		e += ei;
		sv += si;
		w += wh[i];
		if (e > PG_INT64_MAX || sv > PG_INT64_MAX || w > PG_INT64_MAX)
		{
			fits = false;
			break;
		}
		Check(st != ENGINE_OK || (p.energy_units[i] == ei && p.service_units[i] == si));
	}
	if (!fits)
	{
		Check(st == ENGINE_OVERFLOW && p.bad_class == -1);
		return;
	}
	Check(st == ENGINE_OK);
	Check(p.energy_sum == e && p.service_sum == sv && p.wh_sum == w);
	Check(p.energy_fen == e / ENGINE_UNITS_PER_FEN);
	Check(p.service_fen == sv / ENGINE_UNITS_PER_FEN);
	Check(p.total_fen == p.energy_fen + p.service_fen);
	Check((int128) p.energy_fen * ENGINE_UNITS_PER_FEN <= e &&
		  e < (int128) (p.energy_fen + 1) * ENGINE_UNITS_PER_FEN);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Reader		r = {data, size};

	if (size == 0)
		return 0;
	if (Take(&r, 1) & 1)
		CheckPrice(&r);
	else
		CheckSplit(&r);
	return 0;
}
