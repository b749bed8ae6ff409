/*-------------------------------------------------------------------------
 *
 * heartbeat_batch.h
 *	  One batch of heartbeats as the trigger holds it in memory, shared by
 *	  heartbeat_trigger.c (reading, checking, live state, faults, offline
 *	  periods) and session_machine.c (sessions from the same rows).
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVCHARGE_HEARTBEAT_BATCH_H
#define EVCHARGE_HEARTBEAT_BATCH_H

#include "postgres.h"
#include "datatype/timestamp.h"

#include "energy_split.h"
#include "pile_id.h"
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

/*
 * Runs the session state machine over the guns that have an open session
 * or an active row, writes the sessions back and bills those that ended.
 * Called inside the trigger's SPI connection; allocates in the current
 * memory context.
 */
extern void ProcessSessions(GunBatch *guns, int nguns);

#endif							/* EVCHARGE_HEARTBEAT_BATCH_H */
