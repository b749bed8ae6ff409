/*-------------------------------------------------------------------------
 *
 * engine_core.h
 *	  The arithmetic of the billing engines, in plain C with no backend
 *	  dependency (only c.h and common/int.h, which are headers), so that
 *	  the fuzz target test/fuzz/fuzz_engines.c runs the same code as the
 *	  extension under AddressSanitizer and UBSan.
 *
 *	  - The energy split walk: a session's meter samples shared among the
 *	    classes (and plans) by time, on a wall clock that a callback gives.
 *	  - The price sums: Wh per class times the plan's prices, exactly, each
 *	    money figure truncated to the fen once.
 *
 *	  Every operation on times and energies is exact (128-bit where a
 *	  product or a difference of two 64-bit values needs it) or reports
 *	  ENGINE_OVERFLOW; the SQL callers turn a status into an error
 *	  (energy_split.c, pricing.c, session_machine.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVCHARGE_ENGINE_CORE_H
#define EVCHARGE_ENGINE_CORE_H

#include "c.h"

#define ENGINE_CLASSES			5
#define ENGINE_MINUTES_PER_DAY	1440
#define ENGINE_USECS_PER_MINUTE INT64CONST(60000000)
#define ENGINE_USECS_PER_DAY	INT64CONST(86400000000)

/* Prices in ten-thousandths of a yuan per kWh; -1 = the class has none. */
#define ENGINE_NO_PRICE			(-1)
/* 10^-7 yuan (a Wh times a ten-thousandth per kWh) per fen. */
#define ENGINE_UNITS_PER_FEN	INT64CONST(100000)

typedef enum EngineStatus
{
	ENGINE_OK = 0,
	ENGINE_OVERFLOW,			/* a result beyond 64 bits: 22003 */
	ENGINE_ZONE_RANGE,			/* the zone cannot say its offset at a time */
	ENGINE_NEGATIVE,			/* price: negative energy in class bad_class */
	ENGINE_UNPRICED				/* price: energy in class bad_class, which
								 * has no price */
} EngineStatus;

/* One meter sample: a time (microseconds since 2000-01-01 UTC) and Wh. */
typedef struct EngineSample
{
	int64		ts;
	int64		wh;
} EngineSample;

/*
 * A plan in force from start (inclusive) until the next plan's start; the
 * first plan also before its start.  classes[m] is the class of local
 * minute m, seg_end[m] the minute its segment ends (1..1440).
 */
typedef struct EnginePlan
{
	int64		start;
	uint8		classes[ENGINE_MINUTES_PER_DAY];
	int16		seg_end[ENGINE_MINUTES_PER_DAY];
} EnginePlan;

/*
 * The station's wall clock: offset_at sets *offset_us (microseconds east
 * of UTC) valid at t and until the instant *until (> t; PG_INT64_MAX when
 * it never changes again), or returns false when the zone cannot say.
 * tick, when set, is called every few thousand steps of a long walk (the
 * backend checks for a query cancel there).
 */
typedef struct EngineClock
{
	bool		(*offset_at) (void *arg, int64 t, int64 *offset_us, int64 *until);
	void	   *arg;
	void		(*tick) (void);
} EngineClock;

/* How SplitWalk walks a rise: both give the same Wh, to the unit. */
typedef enum SplitMethod
{
	SPLIT_AUTO = 0,				/* whichever takes fewer steps */
	SPLIT_BY_PIECE,				/* every piece of time between two samples */
	SPLIT_BY_WH					/* every Wh of the rise */
} SplitMethod;

/*
 * Samples in time order, one per time (the highest reading), none
 * negative; returns how many are kept, in place.
 */
extern int	SplitPrepareSamples(EngineSample *s, int n);

/*
 * Shares the rises of prepared samples among plans and classes, adding
 * into result[plan * 4 + class].  Exact: every rise is given out whole.
 */
extern EngineStatus SplitWalk(const EngineSample *s, int n,
							  const EnginePlan *plans, int nplan,
							  const EngineClock *clock, SplitMethod method,
							  int64 *result);

/* What energy per class costs under a plan's prices. */
typedef struct EnginePrice
{
	int64		energy_units[ENGINE_CLASSES];	/* 10^-7 yuan, exact */
	int64		service_units[ENGINE_CLASSES];
	int64		energy_sum;
	int64		service_sum;
	int64		wh_sum;
	int64		energy_fen;		/* truncated to the fen */
	int64		service_fen;
	int64		total_fen;		/* energy_fen + service_fen */
	int			bad_class;		/* the class a status names, or -1 */
} EnginePrice;

/*
 * Prices wh[4] at energy[4] + service[4] (ten-thousandths per kWh, or
 * ENGINE_NO_PRICE for both).  Energy in a class without a price is
 * ENGINE_UNPRICED unless skip_unpriced, which leaves it out.
 */
extern EngineStatus PriceEnergy(const int64 *wh, const int64 *energy,
								const int64 *service, bool skip_unpriced,
								EnginePrice *out);

#endif							/* EVCHARGE_ENGINE_CORE_H */
