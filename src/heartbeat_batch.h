/*-------------------------------------------------------------------------
 *
 * heartbeat_batch.h
 *	  One batch of heartbeats as the trigger holds it in memory, and the
 *	  steps the trigger runs over it, each owned by one file:
 *	  heartbeat_trigger.c (reading the batch, the order of the steps),
 *	  heartbeat_check.c (which rows are accepted, quarantine),
 *	  gun_events.c (live state, faults, offline periods, incidents),
 *	  session_plans.c (the plan in force for each gun) and
 *	  session_machine.c (the sessions: read, run, written, billed).
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVCHARGE_HEARTBEAT_BATCH_H
#define EVCHARGE_HEARTBEAT_BATCH_H

#include "postgres.h"
#include "datatype/timestamp.h"
#include "utils/array.h"

#include "energy_split.h"
#include "pile_id.h"
#include "spi_trigger.h"
#include "tariff.h"

/* What a gun reports, in the order of the enum evcharge.gun_status. */
typedef enum GunStatus
{
	GUN_IDLE,
	GUN_PLUGGED,
	GUN_CHARGING,
	GUN_SUSPENDED,
	GUN_OCCUPIED,
	GUN_FAULT,
	GUN_STATUS_COUNT
} GunStatus;

extern const char *const GunStatusName[GUN_STATUS_COUNT];

/* One heartbeat of the batch (the columns the pipeline uses). */
typedef struct HbRow
{
	GunId		gun;
	TimestampTz ts;
	TimestampTz received_at;
	int64		ordinal;		/* its place in the transition table, from 1 */
	int64		meter;			/* -1 when NULL */
	char	   *order_no;		/* NULL when NULL */
	int32		power_w;
	int16		soc;
	int16		fault_code;
	uint8		status;			/* GunStatus */
	bool		meter_null;
	bool		power_null;
	bool		soc_null;
	bool		fault_null;
} HbRow;

/* A session as the database has it and as the state machine leaves it. */
typedef struct SessionOut
{
	char	   *order_no;
	char	   *gun;
	int64		station_id;
	const char *state;
	TimestampTz started_at;
	bool		started_null;
	TimestampTz charging_ended_at;
	bool		charging_ended_null;
	TimestampTz occupied_until;
	bool		occupied_null;
	TimestampTz last_ts;
	int64		first_meter;
	int64		high_meter;		/* -1: none yet */
	TimestampTz high_at;		/* when high_meter was read */
	int64		wh[TOU_CLASSES];
	int64		jump;
	int64		fen;
} SessionOut;

/* One gun of the batch: its accepted rows in time order and its context. */
typedef struct GunBatch
{
	GunId		gun;
	HbRow	  **rows;
	int			nrows;
	bool		active;			/* a row is charging, suspended or occupied */
	/* from the pile registry */
	int64		station_id;
	int32		rated_power_w;
	const char *tz;
	const char *current_type;	/* AC, DC or NULL, as the registry has it */
	/* from the database once the gun's live state row is locked */
	SessionOut *open;			/* its open session, or NULL */
	TimestampTz last_closed;	/* end of its last closed session, or DT_NOBEGIN */
	const TouTariff *tariff;	/* the plan in force at its first row, or NULL */
	RiseSplitter *splitter;		/* that plan in the station's zone, shared by
								 * the guns of the batch under the same plan */
} GunBatch;

/* The registry's facts about one pile of the batch. */
typedef struct PileInfo
{
	bool		registered;
	int32		gun_count;
	int32		rated_power_w;
	int64		station_id;
	char	   *tz;
	char	   *current_type;	/* AC, DC or NULL (a ground lock) */
	bool		ground_lock;	/* a parking ground lock's (by its id) */
	bool		has_policy;		/* its operator has an anomaly_policy row */
	TimestampTz plausible_from; /* that policy's earliest believable time */
} PileInfo;

/* A row of the batch without gun, time or status (not read further). */
typedef struct HbNullKey
{
	int64		ordinal;		/* its place in the transition table, from 1 */
	bool		gun_null;
	bool		ts_null;
} HbNullKey;

/* ---------- arrays for the batch's statements (ArrayBuildState) ---------- */

static inline ArrayBuildState *
BatchArray(Oid elemtype)
{
	return initArrayResult(elemtype, CurrentMemoryContext, false);
}

static inline void
BatchArrayPush(ArrayBuildState *a, Datum d, bool isnull)
{
	accumArrayResult(a, d, isnull, a->element_type, a->mcontext);
}

static inline Datum
BatchArrayDatum(ArrayBuildState *a)
{
	return makeArrayResult(a, a->mcontext);
}

/* ---------- heartbeat_trigger.c ---------- */

/*
 * Runs a kept statement for the batch (the generic plan for small batches,
 * see KeptExecute) and returns to the batch's memory context; an SPI
 * result other than expect is an internal error naming what.
 */
extern void BatchExecute(KeptStatement cache, const char *sql, int nargs, Oid *types,
						 Datum *args, int expect, const char *what);

/* ---------- heartbeat_check.c ---------- */

/* The registry's facts for each pile, given by one of its guns. */
extern PileInfo *LookUpPiles(const GunId *piles, int npiles, Oid gun_type);

/*
 * Whether the row can be accepted, p being its pile's facts (NULL for a row
 * without gun); the one definition of heartbeat acceptance, which
 * evcharge.heartbeat_problem() words.
 */
extern bool HeartbeatAccepted(const HbRow *r, const PileInfo *p);

/*
 * Moves the refused rows to evcharge.quarantine, each with its reason, and
 * out of the log: bad[0..nbad) the rows HeartbeatAccepted() refused, with
 * their piles' facts in pile_of, and nulls[0..nnull) those without gun,
 * time or status.
 */
extern void QuarantineRefused(HbRow **bad, int nbad, const PileInfo *const *pile_of,
							  const HbNullKey *nulls, int nnull);

extern void ForgetCheckStatements(void);

/* ---------- gun_events.c ---------- */

/* Each gun's newest accepted row becomes its live state (gun order). */
extern void WriteGunState(GunBatch *guns, int nguns, Oid gun_type);

/* Fault events, the end of offline periods, and network incidents. */
extern void WriteGunEvents(GunBatch *guns, int nguns, Oid gun_type);

extern void ForgetGunEventStatements(void);

/* ---------- session_plans.c ---------- */

/* Sets each gun's tariff and splitter: the plan in force at its first row. */
extern void FindPlans(GunBatch *guns, int nguns);

extern void ForgetPlanStatements(void);

/* ---------- session_machine.c ---------- */

/* Reads each gun's open session and the end of its last closed one. */
extern void LoadSessions(GunBatch *guns, int nguns, Oid gun_type);

/*
 * Runs the session state machine over the guns that have an open session
 * or an active row, writes the sessions back and bills those that ended.
 * Called inside the trigger's SPI connection; allocates in the current
 * memory context.
 */
extern void ProcessSessions(GunBatch *guns, int nguns);

extern void ForgetSessionStatements(void);

#endif							/* EVCHARGE_HEARTBEAT_BATCH_H */
