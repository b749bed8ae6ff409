/*-------------------------------------------------------------------------
 *
 * heartbeat_trigger.c
 *	  Owns heartbeat_ingest(), the statement-level AFTER INSERT trigger on
 *	  evcharge.heartbeat.  Once per statement (a COPY of thousands of rows is
 *	  one call) it reads the transition table and, set-based:
 *	  - moves rows it cannot accept to evcharge.quarantine with the reason
 *	    (unregistered pile, gun beyond the pile's gun count, charging without
 *	    a meter reading, a time before 2015 or more than a day ahead, a state
 *	    of charge outside 0-100) and removes them from the log, so one bad
 *	    row never fails the batch;
 *	  - brings evcharge.gun_state up to date with each gun's newest
 *	    heartbeat (an older one arriving late never overwrites it), marking
 *	    the gun online;
 *	  - ends the gun's open offline period, and the network incident once
 *	    all its guns are heard again.
 *
 * Rows are upserted in gun order so that concurrent loaders take row locks
 * in the same order and cannot deadlock; the conflict clause keeps the
 * newest heartbeat whichever loader commits first.  The statements are
 * prepared once per backend and kept (SPI_keepplan).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"

PG_FUNCTION_INFO_V1(heartbeat_ingest);

/*
 * One statement does the batch: checked (every new row with the reason it
 * cannot be accepted, or NULL), bad (quarantined), del (removed from the
 * log), latest (each gun's newest accepted row), up (gun_state), back
 * (offline periods that end).
 */
static const char *const IngestSql =
"WITH checked AS ("
"  SELECT n.*, p.station_id, CASE"
"    WHEN p.pile_id IS NULL THEN format('pile %s is not registered', evcharge.pile(n.gun))"
"    WHEN evcharge.gun_no(n.gun) > p.gun_count"
"      THEN format('gun %s of pile %s, which has %s gun(s)', evcharge.gun_no(n.gun), p.pile_id, p.gun_count)"
"    WHEN n.status = 'charging' AND n.meter_wh IS NULL THEN 'charging without a meter reading'"
"    WHEN n.ts < '2015-01-01 00:00+08' THEN 'time before 2015: the pile''s clock is not set'"
"    WHEN n.ts > now() + interval '1 day' THEN 'time more than a day ahead: the pile''s clock is wrong'"
"    WHEN n.soc NOT BETWEEN 0 AND 100 THEN format('state of charge %s outside 0-100', n.soc)"
"  END AS reason"
"  FROM new_rows n LEFT JOIN evcharge.pile p ON p.pile_id OPERATOR(evcharge.=) evcharge.pile(n.gun)"
"), bad AS ("
"  INSERT INTO evcharge.quarantine (source, reason, gun, ts, payload)"
"  SELECT 'heartbeat', c.reason, c.gun, c.ts,"
"         jsonb_build_object('gun', c.gun, 'ts', c.ts, 'status', c.status, 'meter_wh', c.meter_wh,"
"                            'power_w', c.power_w, 'voltage_v', c.voltage_v, 'current_a', c.current_a,"
"                            'soc', c.soc, 'fault_code', c.fault_code, 'order_no', c.order_no,"
"                            'received_at', c.received_at)"
"  FROM checked c WHERE c.reason IS NOT NULL"
"  RETURNING gun, ts, payload"
"), del AS ("
"  DELETE FROM evcharge.heartbeat h USING bad"
"  WHERE h.gun OPERATOR(evcharge.=) bad.gun AND h.ts = bad.ts"
"    AND h.received_at = (bad.payload->>'received_at')::timestamptz"
"    AND h.status = (bad.payload->>'status')::evcharge.gun_status"
"    AND h.meter_wh IS NOT DISTINCT FROM (bad.payload->>'meter_wh')::bigint"
"  RETURNING 1"
"), latest AS ("
"  SELECT DISTINCT ON (c.gun) c.* FROM checked c WHERE c.reason IS NULL"
"  ORDER BY c.gun, c.ts DESC, c.received_at DESC"
"), up AS ("
"  INSERT INTO evcharge.gun_state AS g (gun, station_id, status, online, last_heartbeat, current_order,"
"                                       power_w, soc, meter_wh, fault_code, updated_at)"
"  SELECT l.gun, l.station_id, l.status, true, l.ts, l.order_no, l.power_w, l.soc, l.meter_wh, l.fault_code, now()"
"  FROM latest l ORDER BY l.gun"
"  ON CONFLICT (gun) DO UPDATE SET station_id = EXCLUDED.station_id, status = EXCLUDED.status, online = true,"
"    last_heartbeat = EXCLUDED.last_heartbeat, current_order = EXCLUDED.current_order,"
"    power_w = EXCLUDED.power_w, soc = EXCLUDED.soc, meter_wh = EXCLUDED.meter_wh,"
"    fault_code = EXCLUDED.fault_code, updated_at = EXCLUDED.updated_at"
"  WHERE g.last_heartbeat < EXCLUDED.last_heartbeat"
"  RETURNING 1"
"), back AS ("
"  UPDATE evcharge.offline_period o SET ended_at = f.first_ts"
"  FROM (SELECT c.gun, min(c.ts) AS first_ts FROM checked c WHERE c.reason IS NULL GROUP BY c.gun) f"
"  WHERE o.gun OPERATOR(evcharge.=) f.gun AND o.ended_at IS NULL AND f.first_ts > o.started_at"
"  RETURNING o.network_incident_id"
") "
"SELECT (SELECT count(*) FROM bad), (SELECT count(*) FROM del), (SELECT count(*) FROM up),"
"       (SELECT array_agg(DISTINCT network_incident_id) FROM back WHERE network_incident_id IS NOT NULL)";

/* Network incidents whose guns have all been heard again end. */
static const char *const IncidentSql =
"UPDATE evcharge.network_incident i SET ended_at = ("
"  SELECT max(o.ended_at) FROM evcharge.offline_period o WHERE o.network_incident_id = i.network_incident_id)"
" WHERE i.network_incident_id = ANY ($1) AND i.ended_at IS NULL"
"   AND NOT EXISTS (SELECT 1 FROM evcharge.offline_period o"
"                   WHERE o.network_incident_id = i.network_incident_id AND o.ended_at IS NULL)";

static SPIPlanPtr ingest_plan = NULL;
static SPIPlanPtr incident_plan = NULL;

static SPIPlanPtr
PreparedPlan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes)
{
	if (*cache == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for the heartbeat trigger: %s",
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed for the heartbeat trigger");
		*cache = plan;
	}
	return *cache;
}

Datum
heartbeat_ingest(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	int			ret;
	bool		isnull;
	Datum		incidents;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("heartbeat_ingest() must be called as a trigger")));
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) ||
		trigdata->tg_newtable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("heartbeat_ingest() must be an AFTER INSERT ... FOR EACH STATEMENT trigger with REFERENCING NEW TABLE AS new_rows")));

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	if ((ret = SPI_register_trigger_data(trigdata)) != SPI_OK_TD_REGISTER)
		elog(ERROR, "SPI_register_trigger_data failed: %s", SPI_result_code_string(ret));

	ret = SPI_execute_plan(PreparedPlan(&ingest_plan, IngestSql, 0, NULL), NULL, NULL, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "heartbeat ingest statement failed: %s", SPI_result_code_string(ret));

	incidents = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull);
	if (!isnull)
	{
		Oid			argtypes[1] = {INT8ARRAYOID};
		Datum		args[1];

		args[0] = incidents;
		ret = SPI_execute_plan(PreparedPlan(&incident_plan, IncidentSql, 1, argtypes),
							   args, NULL, false, 0);
		if (ret != SPI_OK_UPDATE)
			elog(ERROR, "network incident update failed: %s", SPI_result_code_string(ret));
	}

	SPI_finish();
	return PointerGetDatum(NULL);
}
