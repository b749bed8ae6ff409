/*-------------------------------------------------------------------------
 *
 * session_machine.c
 *	  Owns the charge sessions the heartbeat pipeline keeps: the per-gun
 *	  state machine (a session opens on the first charging sample, counts
 *	  each meter rise by tariff class, notes the end of charging and the
 *	  unplugging), the write-back of evcharge.charge_session in one
 *	  statement per batch, the balance guard for the sessions still charging
 *	  (evcharge.balance_guard), and the bill of each session that ended when
 *	  its pile record is already in.  It reads what it needs of
 *	  evcharge.charge_session itself (each gun's open session and the end of
 *	  its last closed one, LoadSessions); heartbeat_trigger.c hands it the
 *	  batch's guns, their accepted rows in time order and their plans
 *	  (session_plans.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/int.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "energy_split.h"
#include "engine_core.h"
#include "heartbeat_batch.h"
#include "spi_trigger.h"

/*
 * Each gun's open session, and for the guns the session machine will see,
 * the end of the last closed session (a late line of it must not open a
 * new one).  Read after the gun_state upsert, so under the gun's row lock.
 * The LIMIT keeps the look-up a probe of the partial index per gun: as a
 * plain join the planner, not knowing how many guns the array holds, once
 * rescanned every open session for each gun.
 */
static const char *const SessionReadSql =
"SELECT cs.order_no, cs.state, cs.last_ts, cs.high_meter_wh, cs.wh_by_class, cs.jump_wh,"
"       cs.started_at, cs.first_meter_wh, cs.charging_ended_at, cs.high_meter_at,"
"       (SELECT max(coalesce(c2.occupied_until, c2.charging_ended_at)) FROM evcharge.charge_session c2"
"         WHERE (u.active OR cs.order_no IS NOT NULL) AND c2.gun OPERATOR(evcharge.=) u.g"
"           AND c2.state IN ('ended', 'cancelled') AND c2.occupied_until >= u.ts1 - interval '1 day')"
" FROM unnest($1::evcharge.gun_id[], $2::bool[], $3::timestamptz[]) WITH ORDINALITY AS u(g, active, ts1, n)"
" LEFT JOIN LATERAL (SELECT * FROM evcharge.charge_session cs WHERE cs.gun OPERATOR(evcharge.=) u.g"
"                      AND cs.state IN ('pending', 'charging', 'occupied') LIMIT 1) cs ON true"
" ORDER BY u.n";

/* Writes the sessions back, in the order computed (ends before starts). */
static const char *const SessionWriteSql =
"INSERT INTO evcharge.charge_session AS s (order_no, gun, station_id, channel, state, started_at,"
"    charging_ended_at, occupied_until, last_ts, first_meter_wh, high_meter_wh, high_meter_at, wh_by_class,"
"    jump_wh, running_total, updated_at)"
" SELECT u.order_no, u.gun::evcharge.gun_id, u.station_id, 'offline', u.state, u.started_at,"
"        u.charging_ended_at, u.occupied_until, u.last_ts, u.first_meter, u.high_meter, u.high_at,"
"        CASE WHEN u.w4 = 0 THEN ARRAY[u.w0, u.w1, u.w2, u.w3] ELSE ARRAY[u.w0, u.w1, u.w2, u.w3, u.w4] END,"
"        u.jump, u.fen / 100.0, now()"
" FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::timestamptz[], $6::timestamptz[],"
"             $7::timestamptz[], $8::timestamptz[], $9::int8[], $10::int8[], $11::int8[], $12::int8[],"
"             $13::int8[], $14::int8[], $15::int8[], $16::int8[], $17::timestamptz[], $18::int8[])"
"      WITH ORDINALITY AS u(order_no, gun, station_id, state, started_at, charging_ended_at, occupied_until,"
"                           last_ts, first_meter, high_meter, w0, w1, w2, w3, jump, fen, high_at, w4, n)"
" ORDER BY u.n"
" ON CONFLICT (order_no) DO UPDATE SET state = EXCLUDED.state, started_at = EXCLUDED.started_at,"
"    charging_ended_at = EXCLUDED.charging_ended_at, occupied_until = EXCLUDED.occupied_until,"
"    last_ts = EXCLUDED.last_ts, first_meter_wh = EXCLUDED.first_meter_wh,"
"    high_meter_wh = EXCLUDED.high_meter_wh, high_meter_at = EXCLUDED.high_meter_at,"
"    wh_by_class = EXCLUDED.wh_by_class, jump_wh = EXCLUDED.jump_wh,"
"    running_total = EXCLUDED.running_total, updated_at = now()"
" WHERE s.state IN ('pending', 'charging', 'occupied')";

/* Charging sessions of the batch whose wallet would run dry are stopped. */
static const char *const GuardSql = "SELECT evcharge.balance_guard($1)";

/* Sessions ended in this batch get their bill if their pile record is in. */
static const char *const SessionBillSql =
"SELECT evcharge.try_finalise_bill(o) FROM unnest($1::text[]) o";

static KeptStatement session_read_plan = {NULL, NULL};
static KeptStatement session_write_plan = {NULL, NULL};
static SPIPlanPtr session_bill_plan = NULL;
static SPIPlanPtr guard_plan = NULL;

#define SESSION_COLS 18


/* ---------- reading the sessions ---------- */

static SessionOut *
ReadOpenSession(HeapTuple tup, TupleDesc desc, int64 station_id)
{
	SessionOut *s = palloc0(sizeof(SessionOut));
	bool		isnull;
	Datum		v;
	ArrayType  *wh_arr;
	Datum	   *wh_d;
	int			nwh;
	int			c;

	s->order_no = TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull));
	s->station_id = station_id;
	s->state = TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull));
	v = SPI_getbinval(tup, desc, 3, &isnull);
	s->last_ts = isnull ? DT_NOBEGIN : DatumGetTimestampTz(v);
	v = SPI_getbinval(tup, desc, 4, &isnull);
	s->high_meter = isnull ? -1 : DatumGetInt64(v);
	wh_arr = DatumGetArrayTypeP(SPI_getbinval(tup, desc, 5, &isnull));
	deconstruct_array(wh_arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &wh_d, NULL, &nwh);
	for (c = 0; c < TOU_CLASSES && c < nwh; c++)
		s->wh[c] = DatumGetInt64(wh_d[c]);
	s->jump = DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull));
	s->started_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 7, &s->started_null));
	v = SPI_getbinval(tup, desc, 8, &isnull);
	s->first_meter = isnull ? -1 : DatumGetInt64(v);
	s->charging_ended_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 9, &s->charging_ended_null));
	v = SPI_getbinval(tup, desc, 10, &isnull);
	s->high_at = isnull ? s->last_ts : DatumGetTimestampTz(v);
	s->occupied_null = true;
	return s;
}

void
LoadSessions(GunBatch *guns, int nguns, Oid gun_type)
{
	ArrayBuildState *gun = BatchArray(gun_type);
	ArrayBuildState *active = BatchArray(BOOLOID);
	ArrayBuildState *first = BatchArray(TIMESTAMPTZOID);
	Oid			types[3] = {get_array_type(gun_type), BOOLARRAYOID, TIMESTAMPTZARRAYOID};
	Datum		args[3];
	int			i;

	for (i = 0; i < nguns; i++)
	{
		BatchArrayPush(gun, PointerGetDatum(&guns[i].gun), false);
		BatchArrayPush(active, BoolGetDatum(guns[i].active), false);
		BatchArrayPush(first, TimestampTzGetDatum(guns[i].rows[0]->ts), false);
	}
	args[0] = BatchArrayDatum(gun);
	args[1] = BatchArrayDatum(active);
	args[2] = BatchArrayDatum(first);
	BatchExecute(session_read_plan, SessionReadSql, 3, types, args, SPI_OK_SELECT, "session read");
	if ((int) SPI_processed != nguns)
		elog(ERROR, "session read returned " UINT64_FORMAT " rows for %d guns", SPI_processed, nguns);
	for (i = 0; i < nguns; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		v;

		(void) SPI_getbinval(tup, desc, 1, &isnull);
		guns[i].open = isnull ? NULL : ReadOpenSession(tup, desc, guns[i].station_id);
		v = SPI_getbinval(tup, desc, 11, &isnull);
		guns[i].last_closed = isnull ? DT_NOBEGIN : DatumGetTimestampTz(v);
	}
	SPI_freetuptable(SPI_tuptable);
}

void
ForgetSessionStatements(void)
{
	ForgetKept(session_read_plan);
}

/* ---------- the machine ---------- */

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

/*
 * The plan's price of the Wh so far, truncated to the fen (no group
 * price), by the sums price() makes (PriceEnergy).  An amount beyond 64
 * bits is an error (22003), never a wrapped figure that the balance guard
 * would read as a small one.
 */
static int64
RunningFen(const TouTariff *t, const int64 *wh, const char *order_no)
{
	EnginePrice p;

	if (t == NULL)
		return 0;
	if (PriceEnergy(wh, t->energy, t->service, true, &p) != ENGINE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("running amount of session \"%s\" out of range", order_no),
				 errdetail("Its Wh per class {" INT64_FORMAT "," INT64_FORMAT "," INT64_FORMAT "," INT64_FORMAT "," INT64_FORMAT "} at the plan's prices exceed 64 bits.",
						   wh[0], wh[1], wh[2], wh[3], wh[4])));
	return p.total_fen;
}

/*
 * Whether a rise of the meter is more than the gun could deliver at its
 * rated power in the time since the highest reading (with 20 % and 10 Wh
 * to spare): rise > rated * dt * 1.2 / 1 h + 10, compared exactly in
 * integers (10 * rise * 1 h > 12 * rated * dt + 100 * 1 h).
 */
static bool
IsMeterJump(int64 rise, int64 rated_w, TimestampTz from, TimestampTz to)
{
	int128		dt = (int128) to - from;
	int128		lhs = (int128) rise * 10 * USECS_PER_HOUR;
	int128		rhs = (int128) rated_w * 12 * dt + (int128) 100 * USECS_PER_HOUR;

	return lhs > rhs;
}

/* An order name for a charge that carried no order number: gun-unix time. */
static char *
OfflineOrderNo(const char *gun, TimestampTz ts)
{
	return psprintf("%s-" INT64_FORMAT, gun, (int64) timestamptz_to_time_t(ts));
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


/*
 * RunSessionMachine walks one gun's samples: opens a session on the first
 * charging sample (the pending one of an app start, or an offline one),
 * counts each meter rise above the highest reading (a rise beyond the
 * rated power over the elapsed time is a jump, not billed), notes the end
 * of charging (occupied, or idle/plugged directly) and the unplugging
 * (idle or plugged after charging), which ends the session.
 */
/* The session ends: unplugged (or its charge superseded) at ts. */
static void
EndSession(SessionBatch *batch, SessionOut *s, TimestampTz ts)
{
	s->state = "ended";
	s->occupied_until = ts;
	s->occupied_null = false;
	batch->ended[batch->nended++] = s->order_no;
}

/*
 * A late sample of the open session (at or before its last one): the bill
 * recounts from the log, but a charging sample from before the session's
 * start (another loader's batch committed first) moves the start back, so
 * that the bill measures from it.
 */
static void
LateSample(SessionOut *cur, const HbRow *r, bool charging, int64 meter)
{
	if (charging && !cur->started_null && r->ts < cur->started_at &&
		(r->order_no == NULL || strcmp(r->order_no, cur->order_no) == 0))
	{
		cur->started_at = r->ts;
		if (meter >= 0)
			cur->first_meter = meter;
	}
}

/*
 * What a charging row does to the gun's sessions; returns the session it
 * charges, and sets *done when the row has nothing more to give (it opened
 * a charge under a new order, or began a pending start).
 */
static SessionOut *
ChargingRow(SessionBatch *batch, SessionOut *cur, const HbRow *r, char *gun, int64 station_id,
			int64 meter, bool *done)
{
	TimestampTz ts = r->ts;
	char	   *order_no = r->order_no;

	*done = false;

	/*
	 * Another order than the open charging session's: the pile ended that
	 * charge and began a new one while we did not hear it.
	 */
	if (cur != NULL && strcmp(cur->state, "charging") == 0 && order_no != NULL &&
		strcmp(order_no, cur->order_no) != 0)
	{
		cur->charging_ended_at = cur->last_ts;
		cur->charging_ended_null = false;
		EndSession(batch, cur, ts);
		*done = true;
		return OpenSession(batch, pstrdup(order_no), gun, station_id, ts, meter);
	}

	/* No session, or charging again after "occupied": the same order resumes, any other starts anew. */
	if (cur == NULL || strcmp(cur->state, "occupied") == 0)
	{
		if (cur != NULL && order_no != NULL && strcmp(order_no, cur->order_no) == 0)
		{
			cur->state = "charging";
			return cur;
		}
		if (cur != NULL)
			EndSession(batch, cur, ts);
		return OpenSession(batch, order_no == NULL ? OfflineOrderNo(gun, ts) : pstrdup(order_no),
						   gun, station_id, ts, meter);
	}

	/* An app start the pile begins, or one it never began (it charges another order). */
	if (strcmp(cur->state, "pending") == 0)
	{
		*done = true;
		if (order_no == NULL || strcmp(order_no, cur->order_no) == 0)
		{
			StartCharging(cur, ts, meter);
			return cur;
		}
		cur->state = "cancelled";
		return OpenSession(batch, pstrdup(order_no), gun, station_id, ts, meter);
	}
	return cur;
}

/*
 * Energy: the rise above the highest reading, split by the plan's classes;
 * a rise faster than the gun can deliver is a meter jump, kept apart.
 */
static void
CountRise(SessionOut *cur, TimestampTz ts, int64 meter, int64 rated, RiseSplitter *splitter)
{
	int64		rise;

	if (meter < 0)
		return;
	if (cur->high_meter < 0)
	{
		cur->high_meter = meter;
		cur->high_at = ts;
		if (cur->first_meter < 0)
			cur->first_meter = meter;
		return;
	}
	if (meter <= cur->high_meter)
		return;

	/*
	 * The rise had the time since the highest reading (a 0 in between, after
	 * an outage, does not shorten it).
	 */
	rise = meter - cur->high_meter; /* both >= 0 */
	if (IsMeterJump(rise, rated, cur->high_at, ts))
	{
		if (pg_add_s64_overflow(cur->jump, rise, &cur->jump))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("meter jumps of session \"%s\" out of range", cur->order_no)));
	}
	else if (splitter != NULL)
		RiseSplitterAdd(splitter, cur->high_at, ts, rise, cur->wh);
	cur->high_meter = meter;
	cur->high_at = ts;
}

/*
 * The end of charging (the first row that does not charge) and of the
 * session (the gun idle, unplugged or at fault); returns the session still
 * open after the row, or NULL.
 */
static SessionOut *
AfterRow(SessionBatch *batch, SessionOut *cur, const HbRow *r, bool charging)
{
	if (!charging && strcmp(cur->state, "charging") == 0)
	{
		cur->charging_ended_at = r->ts;
		cur->charging_ended_null = false;
		cur->state = "occupied";
	}
	if (r->status == GUN_IDLE || r->status == GUN_PLUGGED || r->status == GUN_FAULT)
	{
		EndSession(batch, cur, r->ts);
		return NULL;
	}
	return cur;
}

static void
RunSessionMachine(GunBatch *g, char *gun, SessionBatch *batch)
{
	SessionOut *cur = NULL;
	int			first_row = batch->n;	/* this gun's rows start here */
	int			i;

	/* The open session, if any, is the first of the gun's rows. */
	if (g->open != NULL)
	{
		cur = NewSessionRow(batch);
		*cur = *g->open;
		cur->gun = gun;
	}

	for (i = 0; i < g->nrows; i++)
	{
		const HbRow *r = g->rows[i];
		int64		meter = r->meter_null ? -1 : r->meter;
		bool		charging = r->status == GUN_CHARGING || r->status == GUN_SUSPENDED;
		bool		done;

		if (cur != NULL && strcmp(cur->state, "pending") != 0 && r->ts <= cur->last_ts)
		{
			LateSample(cur, r, charging, meter);
			continue;
		}
		/* A late line of a session that has already ended opens nothing. */
		if (cur == NULL && r->ts <= g->last_closed)
			continue;
		if (charging)
		{
			cur = ChargingRow(batch, cur, r, gun, g->station_id, meter, &done);
			if (done)
				continue;
		}
		if (cur == NULL || strcmp(cur->state, "pending") == 0)
			continue;
		CountRise(cur, r->ts, meter, g->rated_power_w, g->splitter);
		cur->last_ts = r->ts;
		cur = AfterRow(batch, cur, r, charging);
	}

	/* Running amounts at the plan's prices, for this gun's rows only. */
	for (i = first_row; i < batch->n; i++)
		batch->rows[i].fen = RunningFen(g->tariff, batch->rows[i].wh, batch->rows[i].order_no);
}

/* The strings v[0..n) as a text[]. */
static Datum
TextArray(char **v, int n)
{
	ArrayBuildState *a = BatchArray(TEXTOID);
	int			i;

	for (i = 0; i < n; i++)
		BatchArrayPush(a, CStringGetTextDatum(v[i]), false);
	return BatchArrayDatum(a);
}

/* Write the batch's sessions back and bill those that ended. */
static void
WriteSessions(SessionBatch *b)
{
	int			n = b->n;
	Oid			elem[SESSION_COLS] = {TEXTOID, TEXTOID, INT8OID, TEXTOID,
		TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID,
		INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID,
	INT8OID, INT8OID, TIMESTAMPTZOID, INT8OID};
	ArrayBuildState *a[SESSION_COLS];
	Datum		args[SESSION_COLS];
	Oid			types[SESSION_COLS];
	int			i;
	int			k;
	int			ret;

	for (k = 0; k < SESSION_COLS; k++)
	{
		a[k] = BatchArray(elem[k]);
		types[k] = get_array_type(elem[k]);
	}
	for (i = 0; i < n; i++)
	{
		SessionOut *s = &b->rows[i];

		BatchArrayPush(a[0], CStringGetTextDatum(s->order_no), false);
		BatchArrayPush(a[1], CStringGetTextDatum(s->gun), false);
		BatchArrayPush(a[2], Int64GetDatum(s->station_id), false);
		BatchArrayPush(a[3], CStringGetTextDatum(s->state), false);
		BatchArrayPush(a[4], TimestampTzGetDatum(s->started_at), s->started_null);
		BatchArrayPush(a[5], TimestampTzGetDatum(s->charging_ended_at), s->charging_ended_null);
		BatchArrayPush(a[6], TimestampTzGetDatum(s->occupied_until), s->occupied_null);
		BatchArrayPush(a[7], TimestampTzGetDatum(s->last_ts), s->last_ts == DT_NOBEGIN);
		BatchArrayPush(a[8], Int64GetDatum(s->first_meter), false);
		BatchArrayPush(a[9], Int64GetDatum(s->high_meter), false);
		for (k = 0; k < TOU_CLASSES_V1; k++)
			BatchArrayPush(a[10 + k], Int64GetDatum(s->wh[k]), false);
		BatchArrayPush(a[14], Int64GetDatum(s->jump), false);
		BatchArrayPush(a[15], Int64GetDatum(s->fen), false);
		BatchArrayPush(a[16], TimestampTzGetDatum(s->high_at),
					   s->high_meter < 0 || s->high_at == DT_NOBEGIN);
		/* $18: written only when not 0 */
		BatchArrayPush(a[17], Int64GetDatum(s->wh[TOU_DEEP_VALLEY]), false);
	}
	for (k = 0; k < SESSION_COLS; k++)
		args[k] = BatchArrayDatum(a[k]);

	ret = KeptExecute(session_write_plan, SessionWriteSql, SESSION_COLS, types, args, n);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "session write failed: %s", SPI_result_code_string(ret));

	/* The balance guard, for the sessions still charging. */
	{
		char	  **charging = palloc(sizeof(char *) * Max(n, 1));
		int			ncharging = 0;

		for (i = 0; i < n; i++)
			if (strcmp(b->rows[i].state, "charging") == 0)
				charging[ncharging++] = b->rows[i].order_no;
		if (ncharging > 0)
		{
			Oid			gtypes[1] = {TEXTARRAYOID};
			Datum		gargs[1];

			gargs[0] = TextArray(charging, ncharging);
			ret = SPI_execute_plan(KeptGenericPlan(&guard_plan, GuardSql, 1, gtypes), gargs, NULL, false, 0);
			if (ret != SPI_OK_SELECT)
				elog(ERROR, "balance guard failed: %s", SPI_result_code_string(ret));
		}
	}

	if (b->nended > 0)
	{
		Oid			btypes[1] = {TEXTARRAYOID};
		Datum		bargs[1];

		bargs[0] = TextArray(b->ended, b->nended);
		ret = SPI_execute_plan(KeptGenericPlan(&session_bill_plan, SessionBillSql, 1, btypes),
							   bargs, NULL, false, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "bill finalisation failed: %s", SPI_result_code_string(ret));
	}
}

/*
 * ProcessSessions runs the session machine over the guns that matter (an
 * open session, or a row that charges), in a memory context of its own that
 * is deleted when the batch is done.
 */
void
ProcessSessions(GunBatch *guns, int nguns)
{
	MemoryContext batch_cxt = AllocSetContextCreate(CurrentMemoryContext,
													"evcharge session batch",
													ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(batch_cxt);
	SessionBatch b = {NULL, 0, 0, NULL, 0};
	int			i;

	for (i = 0; i < nguns; i++)
	{
		GunBatch   *g = &guns[i];

		CHECK_FOR_INTERRUPTS();
		if (g->nrows == 0 || (g->open == NULL && !g->active))
			continue;
		RunSessionMachine(g, DatumGetCString(DirectFunctionCall1(gun_id_out, PointerGetDatum(&g->gun))), &b);
	}
	if (b.n > 0)
		WriteSessions(&b);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(batch_cxt);
}
