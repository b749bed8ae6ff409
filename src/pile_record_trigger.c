/*-------------------------------------------------------------------------
 *
 * pile_record_trigger.c
 *	  Owns pile_record_ingest(), the statement-level AFTER INSERT trigger on
 *	  evcharge.pile_record.  Once per statement it quarantines records it
 *	  cannot accept (no order number, gun, start or end; unregistered gun,
 *	  negative energy; and for an order the
 *	  platform does not know an end before the start or a clock before its
 *	  operator's anomaly_policy.plausible_from; for a known order these are anomaly 3 on its bill), opens an
 *	  ended session for a record whose order the platform never saw (the
 *	  pile was offline throughout), and finalises the bill of every order
 *	  the batch closes.  A record that arrives a second time changes
 *	  nothing: the first one made the bill.  A quarantined row keeps the
 *	  whole record (to_jsonb) and is deleted from pile_record by it, so a
 *	  good record of the same order in the same batch stays.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "utils/tuplestore.h"

#include "spi_trigger.h"

PG_FUNCTION_INFO_V1(pile_record_ingest);

static const char *const RecordSql =
"WITH checked AS ("
"  SELECT n.*, p.station_id, CASE"
"    WHEN n.order_no IS NULL OR n.order_no = '' THEN 'no order number'"
"    WHEN n.gun IS NULL THEN 'no gun'"
"    WHEN n.started_at IS NULL OR n.ended_at IS NULL THEN 'no start or end'"
"    WHEN p.pile_id IS NULL OR evcharge.gun_no(n.gun) > p.gun_count"
"      THEN format('gun %s is not registered', n.gun)"
"    WHEN n.energy_wh < 0 THEN 'negative energy'"
"    WHEN s.order_no IS NOT NULL THEN NULL"
"    WHEN n.ended_at < n.started_at THEN 'ends before it starts, for an order the platform does not know'"
"    WHEN n.started_at < ap.plausible_from"
"      THEN format('time before %s (the operator''s plausible_from: the pile''s clock is not set),"
" for an order the platform does not know', to_char(ap.plausible_from, 'YYYY-MM-DD HH24:MI:SSOF'))"
"  END AS reason"
"  FROM new_rows n LEFT JOIN evcharge.pile p ON p.pile_id OPERATOR(evcharge.=) evcharge.pile(n.gun)"
"  LEFT JOIN evcharge.station st ON st.station_id = p.station_id"
"  LEFT JOIN evcharge.anomaly_policy ap ON ap.operator_id = st.operator_id"
"  LEFT JOIN evcharge.charge_session s ON s.order_no = n.order_no"
"), bad AS ("
"  INSERT INTO evcharge.quarantine (source, reason, gun, ts, payload)"
"  SELECT 'pile_record', c.reason, c.gun, c.ended_at, to_jsonb(c) - 'station_id' - 'reason'"
"  FROM checked c WHERE c.reason IS NOT NULL"
"  RETURNING payload"
"), del AS ("
"  DELETE FROM evcharge.pile_record r USING bad"
"  WHERE r.order_no = bad.payload->>'order_no' AND bad.payload->>'order_no' <> ''"
"    AND to_jsonb(r) = bad.payload"
"  RETURNING 1"
"), del_unnamed AS ("
"  DELETE FROM evcharge.pile_record r"
"  WHERE EXISTS (SELECT 1 FROM bad WHERE coalesce(bad.payload->>'order_no', '') = '')"
"    AND (r.order_no IS NULL OR r.order_no = '') AND to_jsonb(r) IN (SELECT payload FROM bad)"
"  RETURNING 1"
"), unseen AS ("
"  INSERT INTO evcharge.charge_session (order_no, gun, station_id, channel, state, started_at,"
"                                       charging_ended_at, occupied_until)"
"  SELECT DISTINCT ON (c.order_no) c.order_no, c.gun, c.station_id, 'offline', 'ended', c.started_at,"
"         c.ended_at, c.ended_at"
"  FROM checked c WHERE c.reason IS NULL"
"    AND NOT EXISTS (SELECT 1 FROM evcharge.charge_session s WHERE s.order_no = c.order_no)"
"  ORDER BY c.order_no, c.received_at"
"  ON CONFLICT (order_no) DO NOTHING"
"  RETURNING 1"
") "
"SELECT (SELECT count(*) FROM del) + (SELECT count(*) FROM del_unnamed), (SELECT count(*) FROM unseen),"
"       (SELECT array_agg(DISTINCT c.order_no) FROM checked c WHERE c.reason IS NULL)";

static const char *const BillSql = "SELECT evcharge.try_finalise_bill(o) FROM unnest($1::text[]) o ORDER BY o";

static KeptStatement record_plan = {NULL, NULL};
static SPIPlanPtr bill_plan = NULL;

Datum
pile_record_ingest(PG_FUNCTION_ARGS)
{
	int			ret;
	bool		isnull;
	Datum		orders;

	StatementTriggerBegin(fcinfo, "pile_record_ingest");

	ret = KeptExecute(record_plan, RecordSql, 0, NULL, NULL,
					  tuplestore_tuple_count(((TriggerData *) fcinfo->context)->tg_newtable));
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "pile record statement failed: %s", SPI_result_code_string(ret));
	orders = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
	if (!isnull)
	{
		Oid			argtypes[1] = {TEXTARRAYOID};
		Datum		args[1];

		args[0] = orders;
		ret = SPI_execute_plan(KeptGenericPlan(&bill_plan, BillSql, 1, argtypes), args, NULL, false, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "bill finalisation failed: %s", SPI_result_code_string(ret));
	}
	SPI_finish();
	return PointerGetDatum(NULL);
}
