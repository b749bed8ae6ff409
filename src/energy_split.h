/*-------------------------------------------------------------------------
 *
 * energy_split.h
 *	  The energy split as the pipeline uses it: one meter rise at a time,
 *	  shared among tariff classes by the same rules as split_energy().
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVCHARGE_ENERGY_SPLIT_H
#define EVCHARGE_ENERGY_SPLIT_H

#include "postgres.h"
#include "datatype/timestamp.h"

#include "tariff.h"

typedef struct RiseSplitter RiseSplitter;

/*
 * A splitter for one plan in one zone; NULL when the zone is unknown.
 * Allocated in the current memory context.
 */
extern RiseSplitter *RiseSplitterCreate(const TouTariff *t, const char *tzname);

/* Add the Wh of a rise between times a < b, per class, into wh[4]. */
extern void RiseSplitterAdd(RiseSplitter *rs, TimestampTz a, TimestampTz b, int64 rise, int64 *wh);

#endif							/* EVCHARGE_ENERGY_SPLIT_H */
