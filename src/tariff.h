/*-------------------------------------------------------------------------
 *
 * tariff.h
 *	  In-memory layout of evcharge.tou_tariff, a complete daily time-of-use
 *	  price plan, shared by the type (tariff.c), the energy split
 *	  (energy_split.c) and pricing (pricing.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVCHARGE_TARIFF_H
#define EVCHARGE_TARIFF_H

#include "postgres.h"
#include "fmgr.h"

/* Price classes, in the order operators list them (p0..p3). */
#define TOU_SHARP	0
#define TOU_PEAK	1
#define TOU_FLAT	2
#define TOU_VALLEY	3
#define TOU_CLASSES 4

#define MINUTES_PER_DAY 1440

/* Prices are stored in ten-thousandths of a yuan per kWh; -1 = no price. */
#define TOU_PRICE_SCALE 10000
#define TOU_NO_PRICE	(-1)
/* Highest price accepted: 9999.9999 yuan per kWh. */
#define TOU_MAX_PRICE	INT64CONST(99999999)

/* One segment of the day: [start, end) in minutes after local midnight. */
typedef struct TouSegment
{
	int16		start;
	int16		end;
	int16		cls;
	int16		pad;			/* zero, so that equal plans have equal bytes */
} TouSegment;

/*
 * A plan: segments sorted by start, covering 0..1440 exactly once, with
 * adjacent segments of one class merged; per class an electricity price
 * and a service fee, or TOU_NO_PRICE for both when the class has none.
 */
typedef struct TouTariff
{
	int32		vl_len_;		/* varlena header */
	int16		version;		/* TOU_TARIFF_VERSION */
	int16		nseg;
	int64		energy[TOU_CLASSES];
	int64		service[TOU_CLASSES];
	TouSegment	seg[FLEXIBLE_ARRAY_MEMBER];
} TouTariff;

#define TOU_TARIFF_VERSION 1
#define TouTariffSize(nseg) (offsetof(TouTariff, seg) + (nseg) * sizeof(TouSegment))

#define DatumGetTouTariffP(X)	((TouTariff *) PG_DETOAST_DATUM(X))
#define PG_GETARG_TOU_TARIFF_P(n) DatumGetTouTariffP(PG_GETARG_DATUM(n))
#define PG_RETURN_TOU_TARIFF_P(x) PG_RETURN_POINTER(x)

extern const char *const TouClassNames[TOU_CLASSES];

/* Fill map[0..1439] with the class of each minute of the day. */
extern void TouTariffMinuteClasses(const TouTariff *t, uint8 *map);

#endif							/* EVCHARGE_TARIFF_H */
