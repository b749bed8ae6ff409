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

/*
 * Price classes, in the order operators list them (p0..p4).  Deep valley
 * (深谷, p4) came in 0.3.0; a plan that neither uses nor prices it is the
 * 4-class plan of earlier releases, and is stored and sent as one.
 */
#define TOU_SHARP	0
#define TOU_PEAK	1
#define TOU_FLAT	2
#define TOU_VALLEY	3
#define TOU_DEEP_VALLEY 4
#define TOU_CLASSES 5
#define TOU_CLASSES_V1 4

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
 *
 * Two stored forms, each canonical for the plans it holds, so that equal
 * plans still have equal bytes (equality and hashing compare bytes):
 * - version 1 (TouTariffV1): 4 classes, the form of every release before
 *   0.3.0 and still the form of every plan without deep valley, so rows
 *   stored by 0.1.0 and 0.2.0 read, compare and hash as they did;
 * - version 2 (TouTariff): 5 classes, for a plan that uses or prices deep
 *   valley.
 * In memory the engines always see a TouTariff: DatumGetTouTariffP widens
 * a version 1 value into a copy with no price for deep valley.
 */
typedef struct TouTariff
{
	int32		vl_len_;		/* varlena header */
	int16		version;		/* TOU_TARIFF_VERSION_5 (or, widened, 1) */
	int16		nseg;
	int64		energy[TOU_CLASSES];
	int64		service[TOU_CLASSES];
	TouSegment	seg[FLEXIBLE_ARRAY_MEMBER];
} TouTariff;

typedef struct TouTariffV1
{
	int32		vl_len_;
	int16		version;		/* TOU_TARIFF_VERSION_4 */
	int16		nseg;
	int64		energy[TOU_CLASSES_V1];
	int64		service[TOU_CLASSES_V1];
	TouSegment	seg[FLEXIBLE_ARRAY_MEMBER];
} TouTariffV1;

#define TOU_TARIFF_VERSION_4 1
#define TOU_TARIFF_VERSION_5 2
#define TouTariffSize(nseg) (offsetof(TouTariff, seg) + (nseg) * sizeof(TouSegment))
#define TouTariffV1Size(nseg) (offsetof(TouTariffV1, seg) + (nseg) * sizeof(TouSegment))

/* The plan of a datum, detoasted and widened to 5 classes. */
extern TouTariff *TouTariffFromDatum(Datum d);

#define DatumGetTouTariffP(X)	TouTariffFromDatum(X)
#define PG_GETARG_TOU_TARIFF_P(n) DatumGetTouTariffP(PG_GETARG_DATUM(n))
#define PG_RETURN_TOU_TARIFF_P(x) PG_RETURN_POINTER(x)

/* How many classes a plan's figures give: 4 without deep valley, else 5. */
extern int	TouTariffClassCount(const TouTariff *t);

extern const char *const TouClassNames[TOU_CLASSES];

/* Fill map[0..1439] with the class of each minute of the day. */
extern void TouTariffMinuteClasses(const TouTariff *t, uint8 *map);

#endif							/* EVCHARGE_TARIFF_H */
