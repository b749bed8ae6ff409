/*-------------------------------------------------------------------------
 *
 * anomaly_set.h
 *	  In-memory form of evcharge.anomaly_set, for the other C units (anomaly
 *	  rules, repairs, reports) that read or build sets of bill anomalies.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVCHARGE_ANOMALY_SET_H
#define EVCHARGE_ANOMALY_SET_H

#include "postgres.h"
#include "fmgr.h"

#include "anomaly_codes.h"

/*
 * A set of anomaly codes: code n is bit n (see anomaly_codes.h).  8 bytes,
 * passed by value, like int8; only bits of known codes are ever set.
 */
typedef uint64 AnomalySet;

#define DatumGetAnomalySet(X)	((AnomalySet) DatumGetInt64(X))
#define AnomalySetGetDatum(X)	Int64GetDatum((int64) (X))
#define PG_GETARG_ANOMALY_SET(n) DatumGetAnomalySet(PG_GETARG_DATUM(n))
#define PG_RETURN_ANOMALY_SET(x) return AnomalySetGetDatum(x)

#endif							/* EVCHARGE_ANOMALY_SET_H */
