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
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "energy_split.h"
#include "spi_trigger.h"
#include "tariff.h"

PG_FUNCTION_INFO_V1(heartbeat_ingest);

static void ProcessSessions(void);

/*
 * One statement does the batch: checked (every new row with the reason it
 * cannot be accepted, or NULL), bad (quarantined), del (removed from the
 * log), latest (each gun's newest accepted row), up (gun_state), back
 * (offline periods that end).
 */
static const char *const IngestSql =
"WITH checked AS ("
"  SELECT n.*, p.station_id,"
"         evcharge.heartbeat_problem(n.gun, n.ts, n.status, n.meter_wh, n.soc, p.pile_id, p.gun_count) AS reason"
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
"    AND jsonb_build_object('gun', h.gun, 'ts', h.ts, 'status', h.status, 'meter_wh', h.meter_wh,"
"                           'power_w', h.power_w, 'voltage_v', h.voltage_v, 'current_a', h.current_a,"
"                           'soc', h.soc, 'fault_code', h.fault_code, 'order_no', h.order_no,"
"                           'received_at', h.received_at) = bad.payload"
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
"), fault_open AS ("
"  INSERT INTO evcharge.fault_event (gun, fault_code, started_at)"
"  SELECT DISTINCT ON (c.gun) c.gun, c.fault_code, c.ts FROM checked c"
"  WHERE c.reason IS NULL AND c.fault_code <> 0"
"    AND NOT EXISTS (SELECT 1 FROM evcharge.fault_event f WHERE f.gun OPERATOR(evcharge.=) c.gun AND f.ended_at IS NULL)"
"  ORDER BY c.gun, c.ts"
"  ON CONFLICT (gun) WHERE ended_at IS NULL DO NOTHING"
"  RETURNING 1"
"), fault_close AS ("
"  UPDATE evcharge.fault_event f SET ended_at = z.ts"
"  FROM (SELECT c.gun, min(c.ts) AS ts FROM checked c, evcharge.fault_event f2"
"        WHERE c.reason IS NULL AND c.fault_code = 0 AND f2.gun OPERATOR(evcharge.=) c.gun"
"          AND f2.ended_at IS NULL AND c.ts > f2.started_at GROUP BY c.gun) z"
"  WHERE f.gun OPERATOR(evcharge.=) z.gun AND f.ended_at IS NULL"
"  RETURNING 1"
"), back AS ("
"  UPDATE evcharge.offline_period o SET ended_at = f.first_ts"
"  FROM (SELECT c.gun, min(c.ts) AS first_ts FROM checked c WHERE c.reason IS NULL GROUP BY c.gun) f"
"  WHERE o.gun OPERATOR(evcharge.=) f.gun AND o.ended_at IS NULL AND f.first_ts > o.started_at"
"  RETURNING o.network_incident_id"
") "
"SELECT (SELECT count(*) FROM bad), (SELECT count(*) FROM del), (SELECT count(*) FROM up)"
"         + (SELECT count(*) FROM fault_open) + (SELECT count(*) FROM fault_close),"
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

Datum
heartbeat_ingest(PG_FUNCTION_ARGS)
{
	int			ret;
	bool		isnull;
	Datum		incidents;

	StatementTriggerBegin(fcinfo, "heartbeat_ingest");

	ret = SPI_execute_plan(KeptPlan(&ingest_plan, IngestSql, 0, NULL), NULL, NULL, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "heartbeat ingest statement failed: %s", SPI_result_code_string(ret));

	incidents = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull);
	if (!isnull)
	{
		Oid			argtypes[1] = {INT8ARRAYOID};
		Datum		args[1];

		args[0] = incidents;
		ret = SPI_execute_plan(KeptPlan(&incident_plan, IncidentSql, 1, argtypes),
							   args, NULL, false, 0);
		if (ret != SPI_OK_UPDATE)
			elog(ERROR, "network incident update failed: %s", SPI_result_code_string(ret));
	}

	ProcessSessions();

	SPI_finish();
	return PointerGetDatum(NULL);
}

/* ---------- sessions ---------- */

/*
 * Each gun of the batch with accepted samples that matter to a session
 * (it has an open session, or charges), its samples in time order, its
 * open session, rated power, zone and the plan in force at its first
 * sample.  Runs after IngestSql, whose gun_state upsert holds a row lock
 * on every gun of the batch until commit: concurrent batches for one gun
 * are serialised, and this statement sees the session as the other left it.
 */
static const char *const SessionSql =
"SELECT b.gun::text, b.ts, b.status, b.meter, b.order_no, p.rated_power_w, st.tz, st.station_id,"
"       (SELECT t.tariff FROM evcharge.station_tariff t WHERE t.station_id = p.station_id"
"          AND t.current_type = evcharge.current_type(b.gun) AND t.valid @> b.ts[1]),"
"       cs.order_no, cs.state, cs.last_ts, cs.high_meter_wh, cs.wh_by_class, cs.jump_wh,"
"       cs.started_at, cs.first_meter_wh, cs.charging_ended_at, cs.high_meter_at,"
"       (SELECT max(coalesce(c2.occupied_until, c2.charging_ended_at)) FROM evcharge.charge_session c2"
"         WHERE c2.gun OPERATOR(evcharge.=) b.gun AND c2.state IN ('ended', 'cancelled')"
"           AND c2.occupied_until >= b.ts[1] - interval '1 day')"
" FROM (SELECT n.gun, array_agg(n.ts ORDER BY n.ts, n.received_at) AS ts,"
"              array_agg(n.status::text ORDER BY n.ts, n.received_at) AS status,"
"              array_agg(coalesce(n.meter_wh, -1) ORDER BY n.ts, n.received_at) AS meter,"
"              array_agg(n.order_no ORDER BY n.ts, n.received_at) AS order_no"
"       FROM new_rows n JOIN evcharge.pile p ON p.pile_id OPERATOR(evcharge.=) evcharge.pile(n.gun)"
"       WHERE evcharge.heartbeat_problem(n.gun, n.ts, n.status, n.meter_wh, n.soc, p.pile_id, p.gun_count) IS NULL"
"       GROUP BY n.gun) b"
" JOIN evcharge.pile p ON p.pile_id OPERATOR(evcharge.=) evcharge.pile(b.gun)"
" JOIN evcharge.station st ON st.station_id = p.station_id"
" LEFT JOIN evcharge.charge_session cs ON cs.gun OPERATOR(evcharge.=) b.gun"
"      AND cs.state IN ('pending', 'charging', 'occupied')"
" WHERE cs.order_no IS NOT NULL OR b.status && ARRAY['charging', 'suspended', 'occupied']"
" ORDER BY b.gun";

/* Writes the sessions back, in the order computed (ends before starts). */
static const char *const SessionWriteSql =
"INSERT INTO evcharge.charge_session AS s (order_no, gun, station_id, channel, state, started_at,"
"    charging_ended_at, occupied_until, last_ts, first_meter_wh, high_meter_wh, high_meter_at, wh_by_class,"
"    jump_wh, running_total, updated_at)"
" SELECT u.order_no, u.gun::evcharge.gun_id, u.station_id, 'offline', u.state, u.started_at,"
"        u.charging_ended_at, u.occupied_until, u.last_ts, u.first_meter, u.high_meter, u.high_at,"
"        ARRAY[u.w0, u.w1, u.w2, u.w3], u.jump, u.fen / 100.0, now()"
" FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::timestamptz[], $6::timestamptz[],"
"             $7::timestamptz[], $8::timestamptz[], $9::int8[], $10::int8[], $11::int8[], $12::int8[],"
"             $13::int8[], $14::int8[], $15::int8[], $16::int8[], $17::timestamptz[])"
"      WITH ORDINALITY AS u(order_no, gun, station_id, state, started_at, charging_ended_at, occupied_until,"
"                           last_ts, first_meter, high_meter, w0, w1, w2, w3, jump, fen, high_at, n)"
" ORDER BY u.n"
" ON CONFLICT (order_no) DO UPDATE SET state = EXCLUDED.state, started_at = EXCLUDED.started_at,"
"    charging_ended_at = EXCLUDED.charging_ended_at, occupied_until = EXCLUDED.occupied_until,"
"    last_ts = EXCLUDED.last_ts, first_meter_wh = EXCLUDED.first_meter_wh,"
"    high_meter_wh = EXCLUDED.high_meter_wh, high_meter_at = EXCLUDED.high_meter_at,"
"    wh_by_class = EXCLUDED.wh_by_class, jump_wh = EXCLUDED.jump_wh,"
"    running_total = EXCLUDED.running_total, updated_at = now()"
" WHERE s.state IN ('pending', 'charging', 'occupied')";

/* Sessions ended in this batch get their bill if their pile record is in. */
static const char *const SessionBillSql =
"SELECT evcharge.try_finalise_bill(o) FROM unnest($1::text[]) o";

static SPIPlanPtr session_plan = NULL;
static SPIPlanPtr session_write_plan = NULL;
static SPIPlanPtr session_bill_plan = NULL;

#define SESSION_COLS 17

/* One session as the state machine leaves it. */
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

typedef struct SessionBatch
{
	SessionOut *rows;
	int			n;
	int			cap;
	char	  **ended;
	int			nended;
} SessionBatch;

static SessionOut *
NewSessionRow(SessionBatch *b)
{
	if (b->n == b->cap)
	{
		b->cap = b->cap ? b->cap * 2 : 64;
		b->rows = b->rows ? repalloc(b->rows, sizeof(SessionOut) * b->cap)
			: palloc(sizeof(SessionOut) * b->cap);
		b->ended = b->ended ? repalloc(b->ended, sizeof(char *) * b->cap)
			: palloc(sizeof(char *) * b->cap);
	}
	memset(&b->rows[b->n], 0, sizeof(SessionOut));
	b->rows[b->n].started_null = b->rows[b->n].charging_ended_null = b->rows[b->n].occupied_null = true;
	b->rows[b->n].high_meter = -1;
	b->rows[b->n].first_meter = -1;
	return &b->rows[b->n++];
}

/* The plan's price of the Wh so far, truncated to the fen (no group price). */
static int64
RunningFen(const TouTariff *t, const int64 *wh)
{
	int64		e = 0;
	int64		s = 0;
	int			c;

	if (t == NULL)
		return 0;
	for (c = 0; c < TOU_CLASSES; c++)
		if (wh[c] > 0 && t->energy[c] != TOU_NO_PRICE)
		{
			e += wh[c] * t->energy[c];
			s += wh[c] * t->service[c];
		}
	return e / INT64CONST(100000) + s / INT64CONST(100000);
}

/* An order name for a charge that carried no order number: gun-unix time. */
static char *
OfflineOrderNo(const char *gun, TimestampTz ts)
{
	int64		unix_secs = ts / USECS_PER_SEC +
		(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;

	return psprintf("%s-" INT64_FORMAT, gun, unix_secs);
}

/* A session starts charging at ts with this meter reading as its baseline. */
static void
StartCharging(SessionOut *s, TimestampTz ts, int64 meter)
{
	s->state = "charging";
	s->started_at = ts;
	s->started_null = false;
	s->last_ts = ts;
	s->high_meter = meter;
	s->high_at = ts;
	s->first_meter = meter;
}

/* A new session of the batch, charging from ts. */
static SessionOut *
OpenSession(SessionBatch *b, char *order_no, char *gun, int64 station_id,
			TimestampTz ts, int64 meter)
{
	SessionOut *s = NewSessionRow(b);

	s->order_no = order_no;
	s->gun = gun;
	s->station_id = station_id;
	StartCharging(s, ts, meter);
	return s;
}

static Datum
GetCol(HeapTuple tup, TupleDesc desc, int col, bool *isnull)
{
	return SPI_getbinval(tup, desc, col, isnull);
}

/*
 * RunSessionMachine walks one gun's samples: opens a session on the first
 * charging sample (the pending one of an app start, or an offline one),
 * counts each meter rise above the highest reading (a rise beyond the
 * rated power over the elapsed time is a jump, not billed), notes the end
 * of charging (occupied, or idle/plugged directly) and the unplugging
 * (idle or plugged after charging), which ends the session.
 */
static void
RunSessionMachine(HeapTuple tup, TupleDesc desc, SessionBatch *batch)
{
	bool		isnull;
	char	   *gun = TextDatumGetCString(GetCol(tup, desc, 1, &isnull));
	ArrayType  *ts_arr = DatumGetArrayTypeP(GetCol(tup, desc, 2, &isnull));
	ArrayType  *st_arr = DatumGetArrayTypeP(GetCol(tup, desc, 3, &isnull));
	ArrayType  *m_arr = DatumGetArrayTypeP(GetCol(tup, desc, 4, &isnull));
	ArrayType  *o_arr = DatumGetArrayTypeP(GetCol(tup, desc, 5, &isnull));
	int64		rated = DatumGetInt32(GetCol(tup, desc, 6, &isnull));
	char	   *tz = TextDatumGetCString(GetCol(tup, desc, 7, &isnull));
	int64		station_id = DatumGetInt64(GetCol(tup, desc, 8, &isnull));
	Datum		tariff_d = GetCol(tup, desc, 9, &isnull);
	TouTariff  *tariff = isnull ? NULL : DatumGetTouTariffP(tariff_d);
	RiseSplitter *splitter = tariff ? RiseSplitterCreate(tariff, tz) : NULL;
	Datum	   *ts_d;
	Datum	   *st_d;
	Datum	   *m_d;
	Datum	   *o_d;
	bool	   *o_nulls;
	int			n;
	int			i;
	SessionOut *cur = NULL;
	TimestampTz last_closed;
	int			first_row = batch->n;	/* this gun's rows start here */

	deconstruct_array(ts_arr, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &ts_d, NULL, &n);
	deconstruct_array(st_arr, TEXTOID, -1, false, TYPALIGN_INT, &st_d, NULL, &n);
	deconstruct_array(m_arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &m_d, NULL, &n);
	deconstruct_array(o_arr, TEXTOID, -1, false, TYPALIGN_INT, &o_d, &o_nulls, &n);

	/* The open session, if any. */
	GetCol(tup, desc, 10, &isnull);
	if (!isnull)
	{
		ArrayType  *wh_arr;
		Datum	   *wh_d;
		int			nwh;
		int			c;

		cur = NewSessionRow(batch);
		cur->order_no = TextDatumGetCString(GetCol(tup, desc, 10, &isnull));
		cur->gun = gun;
		cur->station_id = station_id;
		cur->state = pstrdup(TextDatumGetCString(GetCol(tup, desc, 11, &isnull)));
		cur->last_ts = DatumGetTimestampTz(GetCol(tup, desc, 12, &isnull));
		if (isnull)
			cur->last_ts = DT_NOBEGIN;
		cur->high_meter = DatumGetInt64(GetCol(tup, desc, 13, &isnull));
		if (isnull)
			cur->high_meter = -1;
		wh_arr = DatumGetArrayTypeP(GetCol(tup, desc, 14, &isnull));
		deconstruct_array(wh_arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &wh_d, NULL, &nwh);
		for (c = 0; c < TOU_CLASSES && c < nwh; c++)
			cur->wh[c] = DatumGetInt64(wh_d[c]);
		cur->jump = DatumGetInt64(GetCol(tup, desc, 15, &isnull));
		cur->started_at = DatumGetTimestampTz(GetCol(tup, desc, 16, &cur->started_null));
		cur->first_meter = DatumGetInt64(GetCol(tup, desc, 17, &isnull));
		if (isnull)
			cur->first_meter = -1;
		cur->charging_ended_at = DatumGetTimestampTz(GetCol(tup, desc, 18, &cur->charging_ended_null));
		cur->high_at = DatumGetTimestampTz(GetCol(tup, desc, 19, &isnull));
		if (isnull)
			cur->high_at = cur->last_ts;
	}
	last_closed = DatumGetTimestampTz(GetCol(tup, desc, 20, &isnull));
	if (isnull)
		last_closed = DT_NOBEGIN;

	for (i = 0; i < n; i++)
	{
		TimestampTz ts = DatumGetTimestampTz(ts_d[i]);
		char	   *status = TextDatumGetCString(st_d[i]);
		int64		meter = DatumGetInt64(m_d[i]);
		bool		charging = strcmp(status, "charging") == 0 || strcmp(status, "suspended") == 0;

		/*
		 * A late sample of the open session: the bill recounts from the log,
		 * but a charging sample from before the session's start (another
		 * loader's batch committed first) moves the start back, so that the
		 * bill measures from it.
		 */
		if (cur != NULL && strcmp(cur->state, "pending") != 0 && ts <= cur->last_ts)
		{
			if (charging && !cur->started_null && ts < cur->started_at &&
				(o_nulls[i] || strcmp(TextDatumGetCString(o_d[i]), cur->order_no) == 0))
			{
				cur->started_at = ts;
				if (meter >= 0)
					cur->first_meter = meter;
			}
			continue;
		}

		/* A late line of a session that has already ended opens nothing. */
		if (cur == NULL && ts <= last_closed)
			continue;

		/*
		 * Charging under another order than the open session's: the pile ended
		 * that charge and began a new one while we did not hear it.
		 */
		if (charging && cur != NULL && strcmp(cur->state, "charging") == 0 && !o_nulls[i] &&
			strcmp(TextDatumGetCString(o_d[i]), cur->order_no) != 0)
		{
			cur->state = "ended";
			cur->charging_ended_at = cur->last_ts;
			cur->charging_ended_null = false;
			cur->occupied_until = ts;
			cur->occupied_null = false;
			batch->ended[batch->nended++] = cur->order_no;
			cur = OpenSession(batch, TextDatumGetCString(o_d[i]), gun, station_id, ts, meter);
			continue;
		}

		if (charging && (cur == NULL || strcmp(cur->state, "occupied") == 0))
		{
			/* Charging again after "occupied" starts over as a new charge only with a new order. */
			if (cur != NULL && !o_nulls[i] && strcmp(TextDatumGetCString(o_d[i]), cur->order_no) == 0)
				cur->state = "charging";
			else
			{
				if (cur != NULL)
				{
					cur->state = "ended";
					cur->occupied_until = ts;
					cur->occupied_null = false;
					batch->ended[batch->nended++] = cur->order_no;
				}
				cur = OpenSession(batch, o_nulls[i] ? OfflineOrderNo(gun, ts) : TextDatumGetCString(o_d[i]),
								  gun, station_id, ts, meter);
			}
		}
		else if (charging && strcmp(cur->state, "pending") == 0)
		{
			if (o_nulls[i] || strcmp(TextDatumGetCString(o_d[i]), cur->order_no) == 0)
			{
				StartCharging(cur, ts, meter);
			}
			else
			{
				/* The pile charges for another order: the app start never came. */
				cur->state = "cancelled";
				cur = OpenSession(batch, TextDatumGetCString(o_d[i]), gun, station_id, ts, meter);
			}
			continue;
		}

		if (cur == NULL || strcmp(cur->state, "pending") == 0)
			continue;

		/* Energy: the rise above the highest reading. */
		if (meter >= 0)
		{
			if (cur->high_meter < 0)
			{
				cur->high_meter = meter;
				cur->high_at = ts;
				if (cur->first_meter < 0)
					cur->first_meter = meter;
			}
			else if (meter > cur->high_meter)
			{
				/*
				 * The rise had the time since the highest reading (a 0 in
				 * between, after an outage, does not shorten it).
				 */
				int64		rise = meter - cur->high_meter;
				double		allowed = (double) rated * (double) (ts - cur->high_at) / (double) USECS_PER_HOUR * 1.2 + 10.0;

				if ((double) rise > allowed)
					cur->jump += rise;
				else if (splitter != NULL)
					RiseSplitterAdd(splitter, cur->high_at, ts, rise, cur->wh);
				cur->high_meter = meter;
				cur->high_at = ts;
			}
		}
		cur->last_ts = ts;

		if (!charging && strcmp(cur->state, "charging") == 0)
		{
			cur->charging_ended_at = ts;
			cur->charging_ended_null = false;
			cur->state = "occupied";
		}
		if (strcmp(status, "idle") == 0 || strcmp(status, "plugged") == 0 || strcmp(status, "fault") == 0)
		{
			cur->state = "ended";
			cur->occupied_until = ts;
			cur->occupied_null = false;
			batch->ended[batch->nended++] = cur->order_no;
			cur = NULL;
		}
	}

	/* Running amounts at the plan's prices, for this gun's rows only. */
	for (i = first_row; i < batch->n; i++)
		batch->rows[i].fen = RunningFen(tariff, batch->rows[i].wh);
}

static Datum
TextArrayDatum(char **v, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
		d[i] = CStringGetTextDatum(v[i]);
	return PointerGetDatum(construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT));
}

static Datum
Int8ArrayDatum(int64 *v, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
		d[i] = Int64GetDatum(v[i]);
	return PointerGetDatum(construct_array(d, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

static Datum
TimestampArrayDatum(TimestampTz *v, bool *nulls, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));
	int			dims[1];
	int			lbs[1] = {1};
	int			i;

	dims[0] = n;
	for (i = 0; i < n; i++)
		d[i] = TimestampTzGetDatum(v[i]);
	return PointerGetDatum(construct_md_array(d, nulls, 1, dims, lbs, TIMESTAMPTZOID, 8,
											  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/* Write the batch's sessions back and bill those that ended. */
static void
WriteSessions(SessionBatch *b)
{
	int			n = b->n;
	char	  **order_no = palloc(sizeof(char *) * Max(n, 1));
	char	  **gun = palloc(sizeof(char *) * Max(n, 1));
	char	  **state = palloc(sizeof(char *) * Max(n, 1));
	int64	   *station = palloc(sizeof(int64) * Max(n, 1));
	TimestampTz *t[5];
	bool	   *tn[5];
	int64	   *v[8];
	Datum		args[SESSION_COLS];
	Oid			types[SESSION_COLS] = {TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID, TEXTARRAYOID,
		TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID,
		INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID,
	INT8ARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID};
	int			i;
	int			k;
	int			ret;

	for (k = 0; k < 5; k++)
	{
		t[k] = palloc(sizeof(TimestampTz) * Max(n, 1));
		tn[k] = palloc(sizeof(bool) * Max(n, 1));
	}
	for (k = 0; k < 8; k++)
		v[k] = palloc(sizeof(int64) * Max(n, 1));

	for (i = 0; i < n; i++)
	{
		SessionOut *s = &b->rows[i];

		order_no[i] = s->order_no;
		gun[i] = s->gun;
		state[i] = unconstify(char *, s->state);
		station[i] = s->station_id;
		t[0][i] = s->started_at;
		tn[0][i] = s->started_null;
		t[1][i] = s->charging_ended_at;
		tn[1][i] = s->charging_ended_null;
		t[2][i] = s->occupied_until;
		tn[2][i] = s->occupied_null;
		t[3][i] = s->last_ts;
		tn[3][i] = (s->last_ts == DT_NOBEGIN);
		t[4][i] = s->high_at;
		tn[4][i] = (s->high_meter < 0 || s->high_at == DT_NOBEGIN);
		v[0][i] = s->first_meter;
		v[1][i] = s->high_meter;
		for (k = 0; k < TOU_CLASSES; k++)
			v[2 + k][i] = s->wh[k];
		v[6][i] = s->jump;
		v[7][i] = s->fen;
	}
	args[0] = TextArrayDatum(order_no, n);
	args[1] = TextArrayDatum(gun, n);
	args[2] = Int8ArrayDatum(station, n);
	args[3] = TextArrayDatum(state, n);
	for (k = 0; k < 4; k++)
		args[4 + k] = TimestampArrayDatum(t[k], tn[k], n);
	for (k = 0; k < 8; k++)
		args[8 + k] = Int8ArrayDatum(v[k], n);
	args[16] = TimestampArrayDatum(t[4], tn[4], n);

	ret = SPI_execute_plan(KeptPlan(&session_write_plan, SessionWriteSql, SESSION_COLS, types),
						   args, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "session write failed: %s", SPI_result_code_string(ret));

	if (b->nended > 0)
	{
		Oid			btypes[1] = {TEXTARRAYOID};
		Datum		bargs[1];

		bargs[0] = TextArrayDatum(b->ended, b->nended);
		ret = SPI_execute_plan(KeptPlan(&session_bill_plan, SessionBillSql, 1, btypes),
							   bargs, NULL, false, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "bill finalisation failed: %s", SPI_result_code_string(ret));
	}
}

/*
 * ProcessSessions runs the session machine over the batch, in a memory
 * context of its own that is deleted when the batch is done.
 */
static void
ProcessSessions(void)
{
	MemoryContext batch_cxt = AllocSetContextCreate(CurrentMemoryContext,
													"evcharge session batch",
													ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(batch_cxt);
	SessionBatch b = {NULL, 0, 0, NULL, 0};
	int			ret;
	uint64		i;

	ret = SPI_execute_plan(KeptPlan(&session_plan, SessionSql, 0, NULL), NULL, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "session read failed: %s", SPI_result_code_string(ret));
	for (i = 0; i < SPI_processed; i++)
	{
		CHECK_FOR_INTERRUPTS();
		RunSessionMachine(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, &b);
	}
	if (b.n > 0)
		WriteSessions(&b);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(batch_cxt);
}
