/*-------------------------------------------------------------------------
 *
 * gun_events.c
 *	  Owns what a batch of heartbeats says about each gun beside its
 *	  sessions: evcharge.gun_state (the gun's newest heartbeat, online),
 *	  fault events (open at the first row with a code, closed at the first
 *	  without), the end of the gun's open offline period at its first
 *	  heartbeat after it, and the end of a network incident once all its
 *	  guns are heard again.  One statement per batch each, over arrays.
 *
 * The gun_state upsert comes first in the trigger and in gun order: its
 * row locks serialise concurrent loaders per gun (the later one waits,
 * then reads the fault, offline and session rows as the earlier one left
 * them) and, taken in the same order by every loader, cannot deadlock.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "heartbeat_batch.h"

/* Each gun's newest accepted heartbeat, in gun order. */
static const char *const GunStateSql =
"INSERT INTO evcharge.gun_state AS g (gun, station_id, status, online, last_heartbeat, current_order,"
"                                     power_w, soc, meter_wh, fault_code, updated_at)"
" SELECT u.gun, u.station_id, u.status::evcharge.gun_status, true, u.ts, u.order_no, u.power_w, u.soc,"
"        u.meter_wh, u.fault_code, now()"
" FROM unnest($1::evcharge.gun_id[], $2::int8[], $3::text[], $4::timestamptz[], $5::text[], $6::int4[],"
"             $7::int2[], $8::int8[], $9::int2[])"
"      WITH ORDINALITY AS u(gun, station_id, status, ts, order_no, power_w, soc, meter_wh, fault_code, n)"
" ORDER BY u.n"
" ON CONFLICT (gun) DO UPDATE SET station_id = EXCLUDED.station_id, status = EXCLUDED.status, online = true,"
"    last_heartbeat = EXCLUDED.last_heartbeat, current_order = EXCLUDED.current_order,"
"    power_w = EXCLUDED.power_w, soc = EXCLUDED.soc, meter_wh = EXCLUDED.meter_wh,"
"    fault_code = EXCLUDED.fault_code, updated_at = EXCLUDED.updated_at"
" WHERE g.last_heartbeat < EXCLUDED.last_heartbeat";

/*
 * Each gun's open fault and open offline period, read after GunStateSql,
 * so under the gun's row lock.  The LIMITs keep each look-up a probe of
 * its partial index per gun (the planner does not know how many guns the
 * array holds).
 */
static const char *const EventContextSql =
"SELECT f.started_at, o.started_at"
" FROM unnest($1::evcharge.gun_id[]) WITH ORDINALITY AS u(g, n)"
" LEFT JOIN LATERAL (SELECT f.started_at FROM evcharge.fault_event f"
"                    WHERE f.gun OPERATOR(evcharge.=) u.g AND f.ended_at IS NULL LIMIT 1) f ON true"
" LEFT JOIN LATERAL (SELECT o.started_at FROM evcharge.offline_period o"
"                    WHERE o.gun OPERATOR(evcharge.=) u.g AND o.ended_at IS NULL LIMIT 1) o ON true"
" ORDER BY u.n";

/*
 * Fault events the batch closed and opened (opened ones may already be
 * closed by a later row of the batch), and offline periods it ended; the
 * network incidents of those periods come back.
 */
static const char *const EventSql =
"WITH fault_close AS ("
"  UPDATE evcharge.fault_event f SET ended_at = c.ended_at"
"  FROM unnest($1::evcharge.gun_id[], $2::timestamptz[]) AS c(gun, ended_at)"
"  WHERE f.gun OPERATOR(evcharge.=) c.gun AND f.ended_at IS NULL"
"  RETURNING 1"
"), fault_open AS ("
"  INSERT INTO evcharge.fault_event (gun, fault_code, started_at, ended_at)"
"  SELECT o.gun, o.code, o.started_at, o.ended_at"
"  FROM unnest($3::evcharge.gun_id[], $4::int2[], $5::timestamptz[], $6::timestamptz[])"
"       WITH ORDINALITY AS o(gun, code, started_at, ended_at, n)"
"  ORDER BY o.n"
"  ON CONFLICT (gun) WHERE ended_at IS NULL DO NOTHING"
"  RETURNING 1"
"), back AS ("
"  UPDATE evcharge.offline_period o SET ended_at = b.ended_at"
"  FROM unnest($7::evcharge.gun_id[], $8::timestamptz[]) AS b(gun, ended_at)"
"  WHERE o.gun OPERATOR(evcharge.=) b.gun AND o.ended_at IS NULL"
"  RETURNING o.network_incident_id"
") "
"SELECT (SELECT count(*) FROM fault_close) + (SELECT count(*) FROM fault_open),"
"       (SELECT array_agg(DISTINCT network_incident_id) FROM back WHERE network_incident_id IS NOT NULL)";

/* Network incidents whose guns have all been heard again end. */
static const char *const IncidentSql =
"UPDATE evcharge.network_incident i SET ended_at = ("
"  SELECT max(o.ended_at) FROM evcharge.offline_period o WHERE o.network_incident_id = i.network_incident_id)"
" WHERE i.network_incident_id = ANY ($1) AND i.ended_at IS NULL"
"   AND NOT EXISTS (SELECT 1 FROM evcharge.offline_period o"
"                   WHERE o.network_incident_id = i.network_incident_id AND o.ended_at IS NULL)";

static KeptStatement gun_state_plan = {NULL, NULL};
static KeptStatement event_context_plan = {NULL, NULL};
static KeptStatement event_plan = {NULL, NULL};
static KeptStatement incident_plan = {NULL, NULL};

#define GUN_STATE_COLS 9

void
WriteGunState(GunBatch *guns, int nguns, Oid gun_type)
{
	Oid			elem[GUN_STATE_COLS] = {gun_type, INT8OID, TEXTOID, TIMESTAMPTZOID, TEXTOID, INT4OID,
	INT2OID, INT8OID, INT2OID};
	ArrayBuildState *a[GUN_STATE_COLS];
	Oid			types[GUN_STATE_COLS];
	Datum		args[GUN_STATE_COLS];
	int			n = 0;
	int			i;
	int			k;

	for (k = 0; k < GUN_STATE_COLS; k++)
		a[k] = BatchArray(elem[k]);
	for (i = 0; i < nguns; i++)
	{
		const HbRow *r;

		if (guns[i].nrows == 0)
			continue;
		r = guns[i].rows[guns[i].nrows - 1];
		BatchArrayPush(a[0], PointerGetDatum(&guns[i].gun), false);
		BatchArrayPush(a[1], Int64GetDatum(guns[i].station_id), false);
		BatchArrayPush(a[2], CStringGetTextDatum(GunStatusName[r->status]), false);
		BatchArrayPush(a[3], TimestampTzGetDatum(r->ts), false);
		BatchArrayPush(a[4], r->order_no ? CStringGetTextDatum(r->order_no) : (Datum) 0, r->order_no == NULL);
		BatchArrayPush(a[5], Int32GetDatum(r->power_w), r->power_null);
		BatchArrayPush(a[6], Int16GetDatum(r->soc), r->soc_null);
		BatchArrayPush(a[7], Int64GetDatum(r->meter), r->meter_null);
		BatchArrayPush(a[8], Int16GetDatum(r->fault_code), r->fault_null);
		n++;
	}
	if (n == 0)
		return;
	for (k = 0; k < GUN_STATE_COLS; k++)
	{
		types[k] = get_array_type(elem[k]);
		args[k] = BatchArrayDatum(a[k]);
	}
	BatchExecute(gun_state_plan, GunStateSql, GUN_STATE_COLS, types, args, SPI_OK_INSERT, "gun state upsert");
}

/* The fault events and offline ends the batch makes, as the statement's arrays. */
typedef struct EventArrays
{
	ArrayBuildState *closed_gun;	/* faults closed: gun, ended_at */
	ArrayBuildState *closed_at;
	ArrayBuildState *opened_gun;	/* faults opened: gun, code, started_at, ended_at */
	ArrayBuildState *opened_code;
	ArrayBuildState *opened_at;
	ArrayBuildState *opened_end;
	ArrayBuildState *back_gun;	/* offline periods ended: gun, ended_at */
	ArrayBuildState *back_at;
} EventArrays;

/*
 * A gun's faults: one opens at the first row with a code while none is
 * open, and closes at the first later row without one; a fault this batch
 * opened and closed is written closed.
 */
static void
GunFaults(const GunBatch *g, bool fault_open, TimestampTz fault_since, EventArrays *e)
{
	int			opened = -1;	/* place in opened_* of a fault this batch opened */
	int			j;

	for (j = 0; j < g->nrows; j++)
	{
		const HbRow *r = g->rows[j];

		if (r->fault_null)
			continue;
		if (r->fault_code != 0 && !fault_open)
		{
			opened = e->opened_gun->nelems;
			BatchArrayPush(e->opened_gun, PointerGetDatum(&g->gun), false);
			BatchArrayPush(e->opened_code, Int16GetDatum(r->fault_code), false);
			BatchArrayPush(e->opened_at, TimestampTzGetDatum(r->ts), false);
			BatchArrayPush(e->opened_end, (Datum) 0, true);
			fault_open = true;
			fault_since = r->ts;
		}
		else if (r->fault_code == 0 && fault_open && r->ts > fault_since)
		{
			if (opened >= 0)
			{
				/* a by-value element of the array being built, set in place */
				e->opened_end->dvalues[opened] = TimestampTzGetDatum(r->ts);
				e->opened_end->dnulls[opened] = false;
				opened = -1;
			}
			else
			{
				BatchArrayPush(e->closed_gun, PointerGetDatum(&g->gun), false);
				BatchArrayPush(e->closed_at, TimestampTzGetDatum(r->ts), false);
			}
			fault_open = false;
		}
	}
}

/* A gun's open offline period ends at its first heartbeat after its start. */
static void
GunBack(const GunBatch *g, TimestampTz since, EventArrays *e)
{
	int			j;

	for (j = 0; j < g->nrows; j++)
		if (g->rows[j]->ts > since)
		{
			BatchArrayPush(e->back_gun, PointerGetDatum(&g->gun), false);
			BatchArrayPush(e->back_at, TimestampTzGetDatum(g->rows[j]->ts), false);
			return;
		}
}

/* Network incidents of the periods ended whose guns are all back end. */
static void
EndIncidents(Datum incidents)
{
	Oid			types[1] = {INT8ARRAYOID};
	Datum		args[1];

	args[0] = incidents;
	BatchExecute(incident_plan, IncidentSql, 1, types, args, SPI_OK_UPDATE, "network incident update");
}

void
WriteGunEvents(GunBatch *guns, int nguns, Oid gun_type)
{
	ArrayBuildState *in = BatchArray(gun_type);
	EventArrays e;
	Oid			gun_array = get_array_type(gun_type);
	Oid			types[8] = {gun_array, TIMESTAMPTZARRAYOID, gun_array, INT2ARRAYOID,
	TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID, gun_array, TIMESTAMPTZARRAYOID};
	Datum		args[8];
	Datum		incidents;
	bool		isnull;
	int			i;

	/* Each gun's open fault and offline period. */
	for (i = 0; i < nguns; i++)
		BatchArrayPush(in, PointerGetDatum(&guns[i].gun), false);
	args[0] = BatchArrayDatum(in);
	BatchExecute(event_context_plan, EventContextSql, 1, types, args, SPI_OK_SELECT, "gun event read");
	if ((int) SPI_processed != nguns)
		elog(ERROR, "gun event read returned " UINT64_FORMAT " rows for %d guns", SPI_processed, nguns);

	/* What the batch's rows make of them. */
	e.closed_gun = BatchArray(gun_type);
	e.closed_at = BatchArray(TIMESTAMPTZOID);
	e.opened_gun = BatchArray(gun_type);
	e.opened_code = BatchArray(INT2OID);
	e.opened_at = BatchArray(TIMESTAMPTZOID);
	e.opened_end = BatchArray(TIMESTAMPTZOID);
	e.back_gun = BatchArray(gun_type);
	e.back_at = BatchArray(TIMESTAMPTZOID);
	for (i = 0; i < nguns; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Datum		v;

		v = SPI_getbinval(tup, desc, 1, &isnull);
		GunFaults(&guns[i], !isnull, isnull ? DT_NOBEGIN : DatumGetTimestampTz(v), &e);
		v = SPI_getbinval(tup, desc, 2, &isnull);
		if (!isnull)
			GunBack(&guns[i], DatumGetTimestampTz(v), &e);
	}
	SPI_freetuptable(SPI_tuptable);

	/* Written in one statement; the incidents it touched, in another. */
	if (e.closed_gun->nelems == 0 && e.opened_gun->nelems == 0 && e.back_gun->nelems == 0)
		return;
	args[0] = BatchArrayDatum(e.closed_gun);
	args[1] = BatchArrayDatum(e.closed_at);
	args[2] = BatchArrayDatum(e.opened_gun);
	args[3] = BatchArrayDatum(e.opened_code);
	args[4] = BatchArrayDatum(e.opened_at);
	args[5] = BatchArrayDatum(e.opened_end);
	args[6] = BatchArrayDatum(e.back_gun);
	args[7] = BatchArrayDatum(e.back_at);
	BatchExecute(event_plan, EventSql, 8, types, args, SPI_OK_SELECT, "fault and offline update");
	incidents = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	if (!isnull)
	{
		incidents = datumCopy(incidents, false, -1);
		SPI_freetuptable(SPI_tuptable);
		EndIncidents(incidents);
	}
}

void
ForgetGunEventStatements(void)
{
	ForgetKept(gun_state_plan);
	ForgetKept(event_context_plan);
	ForgetKept(event_plan);
	ForgetKept(incident_plan);
}
