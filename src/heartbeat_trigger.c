/*-------------------------------------------------------------------------
 *
 * heartbeat_trigger.c
 *	  Owns heartbeat_ingest(), the statement-level AFTER INSERT trigger on
 *	  evcharge.heartbeat.  Once per statement (a COPY of a million rows is
 *	  one call) it reads the transition table once, in C, and:
 *	  - checks every row against the pile registry (looked up once per pile
 *	    of the batch) and moves the rows it cannot accept to
 *	    evcharge.quarantine with the reason (evcharge.heartbeat_problem()
 *	    words it), removing them from the log, so one bad row never fails
 *	    the batch (rows without gun, time or status included: the table
 *	    has no NOT NULL on them);
 *	  - sorts the accepted rows by gun and time and brings
 *	    evcharge.gun_state up to date with each gun's newest heartbeat (an
 *	    older one arriving late never overwrites it), marking it online;
 *	  - opens and closes fault events, ends the gun's open offline period
 *	    at its first heartbeat after it, and the network incident once all
 *	    its guns are heard again;
 *	  - hands the guns to the session machine (session_machine.c).
 *
 * Every write is one statement per batch over arrays built here.  The
 * gun_state upsert comes first and in gun order: its row locks serialise
 * concurrent loaders per gun (the later one waits, then reads the session
 * and fault rows as the earlier one left them) and, taken in the same
 * order by every loader, cannot deadlock.  The statements are prepared
 * once per backend and kept.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "heartbeat_batch.h"
#include "spi_trigger.h"

PG_FUNCTION_INFO_V1(heartbeat_ingest);

const char *const GunStatusName[GUN_STATUS_COUNT] = {
	"idle", "plugged", "charging", "suspended", "occupied", "fault"
};

/* The registry's facts about one pile of the batch. */
typedef struct PileInfo
{
	bool		registered;
	int32		gun_count;
	int32		rated_power_w;
	int64		station_id;
	char	   *tz;
	char	   *current_type;
	bool		ground_lock;
} PileInfo;

/*
 * One plan of a station, as station_tariff has it (the look-up of a
 * database whose extension SQL predates 0.3.0, below).
 */
typedef struct PlanRow
{
	int64		station_id;
	char	   *current_type;
	TimestampTz lower;			/* never infinite: the table forbids it */
	TimestampTz upper;
	bool		upper_inf;
	bool		lower_inc;
	bool		upper_inc;
	TouTariff  *tariff;
	RiseSplitter *splitter;		/* made for the first gun that uses it */
	bool		splitter_made;
} PlanRow;

/*
 * The registry, one row per pile of the batch (one gun of it given), with
 * the current type the registry holds (the id may not say it).  The column
 * is read through to_jsonb(): this library also serves a database still at
 * 0.2.0 until ALTER EXTENSION UPDATE, whose pile table has no current_type
 * and whose piles' type is the id's (the coalesce; from 0.3.0 on the
 * registry's type is NULL only where the id says none either).  The
 * pile is a probe of its primary key per gun (LIMIT 1, as in ContextSql):
 * the generic plan of small batches, made for an array of unknown length,
 * would otherwise hash the whole registry for a batch of one row.
 */
static const char *const PileSql =
"SELECT p.gun_count, p.rated_power_w, p.station_id, st.tz,"
"       coalesce(evcharge.product_kind(u.g) = 'ground_lock', false),"
"       coalesce(p.current_type, evcharge.current_type(u.g))"
" FROM unnest($1::evcharge.gun_id[]) WITH ORDINALITY AS u(g, n)"
" LEFT JOIN LATERAL (SELECT p.gun_count, p.rated_power_w, p.station_id,"
"                           to_jsonb(p) ->> 'current_type' AS current_type FROM evcharge.pile p"
"                    WHERE p.pile_id OPERATOR(evcharge.=) evcharge.pile(u.g) LIMIT 1) p ON true"
" LEFT JOIN evcharge.station st ON st.station_id = p.station_id"
" ORDER BY u.n";

/*
 * Quarantine: the rows with these keys that heartbeat_problem() refuses go
 * to quarantine whole, with its reason, and leave the log.  A row is
 * removed only if all its columns equal a quarantined one, so an accepted
 * twin with the same gun and time stays.
 */
static const char *const QuarantineSql =
"WITH bad AS ("
"  INSERT INTO evcharge.quarantine (source, reason, gun, ts, payload)"
"  SELECT 'heartbeat', c.reason, c.gun, c.ts, to_jsonb(c) - 'reason'"
"  FROM (SELECT n.*, evcharge.heartbeat_problem(n.gun, n.ts, n.status, n.meter_wh, n.soc,"
"                                               p.pile_id, p.gun_count) AS reason"
"        FROM new_rows n LEFT JOIN evcharge.pile p ON p.pile_id OPERATOR(evcharge.=) evcharge.pile(n.gun)"
"        WHERE EXISTS (SELECT 1 FROM unnest($1::evcharge.gun_id[], $2::timestamptz[]) AS b(gun, ts)"
"                      WHERE b.gun OPERATOR(evcharge.=) n.gun AND b.ts = n.ts)) c"
"  WHERE c.reason IS NOT NULL"
"  RETURNING gun, ts, payload"
"), del AS ("
"  DELETE FROM evcharge.heartbeat h USING bad"
"  WHERE h.gun OPERATOR(evcharge.=) bad.gun AND h.ts = bad.ts"
"    AND to_jsonb(h) = bad.payload"
"  RETURNING 1"
") "
"SELECT (SELECT count(*) FROM bad), (SELECT count(*) FROM del)";

/*
 * Rows without gun, time or status: quarantined with heartbeat_problem()'s
 * reason and deleted from the log, each way of being NULL by a look-up the
 * log's index or partitioning serves (a NULL time can only be in the
 * default partition; a NULL gun is an index search on each partition).
 */
static const char *const NullKeySql =
"WITH bad AS ("
"  INSERT INTO evcharge.quarantine (source, reason, gun, ts, payload)"
"  SELECT 'heartbeat', evcharge.heartbeat_problem(n.gun, n.ts, n.status, n.meter_wh, n.soc, NULL, NULL),"
"         n.gun, n.ts, to_jsonb(n)"
"  FROM new_rows n WHERE n.gun IS NULL OR n.ts IS NULL OR n.status IS NULL"
"  RETURNING 1"
"), no_gun AS ("
"  DELETE FROM evcharge.heartbeat h WHERE h.gun IS NULL RETURNING 1"
"), no_ts AS ("
"  DELETE FROM evcharge.heartbeat h WHERE h.ts IS NULL AND h.gun IS NOT NULL RETURNING 1"
"), no_status AS ("
"  DELETE FROM evcharge.heartbeat h"
"  USING (SELECT DISTINCT n.gun, n.ts FROM new_rows n"
"         WHERE n.status IS NULL AND n.gun IS NOT NULL AND n.ts IS NOT NULL) b"
"  WHERE h.gun OPERATOR(evcharge.=) b.gun AND h.ts = b.ts AND h.status IS NULL"
"  RETURNING 1"
") "
"SELECT (SELECT count(*) FROM bad),"
"       (SELECT count(*) FROM no_gun) + (SELECT count(*) FROM no_ts) + (SELECT count(*) FROM no_status)";

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
 * Each gun's open fault, open offline period and open session, and for the
 * guns the session machine will see, the end of the last closed session
 * (a late line of it must not open a new one).  Read after GunStateSql, so
 * under the gun's row lock.  The LIMITs keep each look-up a probe of its
 * partial index per gun: as plain joins the planner, not knowing how many
 * guns the array holds, once rescanned every open session for each gun.
 */
static const char *const ContextSql =
"SELECT f.started_at, o.started_at,"
"       cs.order_no, cs.state, cs.last_ts, cs.high_meter_wh, cs.wh_by_class, cs.jump_wh,"
"       cs.started_at, cs.first_meter_wh, cs.charging_ended_at, cs.high_meter_at,"
"       (SELECT max(coalesce(c2.occupied_until, c2.charging_ended_at)) FROM evcharge.charge_session c2"
"         WHERE (u.active OR cs.order_no IS NOT NULL) AND c2.gun OPERATOR(evcharge.=) u.g"
"           AND c2.state IN ('ended', 'cancelled') AND c2.occupied_until >= u.ts1 - interval '1 day')"
" FROM unnest($1::evcharge.gun_id[], $2::bool[], $3::timestamptz[]) WITH ORDINALITY AS u(g, active, ts1, n)"
" LEFT JOIN LATERAL (SELECT f.started_at FROM evcharge.fault_event f"
"                    WHERE f.gun OPERATOR(evcharge.=) u.g AND f.ended_at IS NULL LIMIT 1) f ON true"
" LEFT JOIN LATERAL (SELECT o.started_at FROM evcharge.offline_period o"
"                    WHERE o.gun OPERATOR(evcharge.=) u.g AND o.ended_at IS NULL LIMIT 1) o ON true"
" LEFT JOIN LATERAL (SELECT * FROM evcharge.charge_session cs WHERE cs.gun OPERATOR(evcharge.=) u.g"
"                      AND cs.state IN ('pending', 'charging', 'occupied') LIMIT 1) cs ON true"
" ORDER BY u.n";

/*
 * The plan in force at a station for a current type at an instant, and
 * until when that answer holds: the one answer plan_in_force() gives (the
 * calendar, the validity ranges, the precedence of declared days,
 * holidays, weekdays and seasons are its, not ours), probed through its
 * indexes.  A question with no plan in force gets no row.
 */
static const char *const PlanSql =
"SELECT u.n, p.station_tariff_id, p.tariff, p.until"
" FROM unnest($1::int8[], $2::text[], $3::timestamptz[]) WITH ORDINALITY AS u(station_id, current_type, at, n)"
" CROSS JOIN LATERAL evcharge.plan_in_force(u.station_id, u.current_type, u.at) p"
" ORDER BY u.n";

/*
 * The same for a database whose extension SQL predates 0.3.0 (the library
 * is installed before ALTER EXTENSION UPDATE, and heartbeats keep coming
 * in between): no plan_in_force there, and no plans by calendar, so the
 * plans of the stations by validity alone, as 0.2.0 read them.
 */
static const char *const LegacyPlanSql =
"SELECT t.station_id, t.current_type, lower(t.valid), upper(t.valid), upper_inf(t.valid),"
"       lower_inc(t.valid), upper_inc(t.valid), t.tariff"
" FROM evcharge.station_tariff t WHERE t.station_id = ANY ($1::int8[])"
" ORDER BY t.station_id";

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

static KeptStatement pile_plan = {NULL, NULL};
static KeptStatement quarantine_plan = {NULL, NULL};
static KeptStatement null_key_plan = {NULL, NULL};
static KeptStatement gun_state_plan = {NULL, NULL};
static KeptStatement context_plan = {NULL, NULL};
static KeptStatement plan_plan = {NULL, NULL};
static KeptStatement legacy_plan_plan = {NULL, NULL};
static KeptStatement event_plan = {NULL, NULL};
static KeptStatement incident_plan = {NULL, NULL};

/* The gun_id type the kept statements were prepared for. */
static Oid	kept_gun_type = InvalidOid;

/* The batch's memory; SPI calls return in SPI's context, so switch back. */
static MemoryContext batch_cxt = NULL;

/* The rows of the batch (the transition table), for KeptExecute. */
static int64 batch_rows = 0;

static void
RunKept(KeptStatement cache, const char *sql, int nargs, Oid *types, Datum *args,
		int expect, const char *what)
{
	int			ret = KeptExecute(cache, sql, nargs, types, args, batch_rows);

	MemoryContextSwitchTo(batch_cxt);
	if (ret != expect)
		elog(ERROR, "%s failed: %s", what, SPI_result_code_string(ret));
}

/* Statements kept for another gun_id type (the extension was recreated) go. */
static void
ForgetPlansIfTypeChanged(Oid gun_type)
{
	if (kept_gun_type == gun_type)
		return;
	ForgetKept(pile_plan);
	ForgetKept(quarantine_plan);
	ForgetKept(gun_state_plan);
	ForgetKept(context_plan);
	ForgetKept(event_plan);
	ForgetKept(plan_plan);
	ForgetKept(legacy_plan_plan);
	kept_gun_type = gun_type;
}

/* ---------- arrays for the statements ---------- */

typedef struct ArrayOut
{
	Datum	   *d;
	bool	   *nulls;
	int			n;
	Oid			elemtype;
} ArrayOut;

static void
ArrayInit(ArrayOut *a, int cap, Oid elemtype)
{
	a->d = palloc(sizeof(Datum) * Max(cap, 1));
	a->nulls = palloc(sizeof(bool) * Max(cap, 1));
	a->n = 0;
	a->elemtype = elemtype;
}

static void
ArrayPush(ArrayOut *a, Datum d, bool isnull)
{
	a->d[a->n] = isnull ? (Datum) 0 : d;
	a->nulls[a->n] = isnull;
	a->n++;
}

static Datum
ArrayDatum(ArrayOut *a)
{
	int16		typlen;
	bool		byval;
	char		align;
	int			dims[1];
	int			lbs[1] = {1};

	get_typlenbyvalalign(a->elemtype, &typlen, &byval, &align);
	dims[0] = a->n;
	return PointerGetDatum(construct_md_array(a->d, a->nulls, 1, dims, lbs, a->elemtype,
											  typlen, byval, align));
}

/* ---------- reading the batch ---------- */

/* Attribute numbers of the columns read, in the heartbeat table. */
typedef struct HbColumns
{
	int			gun;
	int			ts;
	int			status;
	int			meter;
	int			power;
	int			soc;
	int			fault;
	int			order_no;
	int			received_at;
} HbColumns;

static int
ColumnNumber(TupleDesc desc, const char *name)
{
	int			att = SPI_fnumber(desc, name);

	if (att <= 0)
		elog(ERROR, "heartbeat table has no column \"%s\"", name);
	return att;
}

/* Enum value (an OID) to GunStatus, by label, remembered per batch. */
typedef struct StatusMap
{
	Oid			oid[GUN_STATUS_COUNT];
	uint8		status[GUN_STATUS_COUNT];
	int			n;
} StatusMap;

static uint8
StatusOf(StatusMap *m, Datum value)
{
	Oid			oid = DatumGetObjectId(value);
	char	   *label;
	int			i;

	for (i = 0; i < m->n; i++)
		if (m->oid[i] == oid)
			return m->status[i];
	label = DatumGetCString(DirectFunctionCall1(enum_out, value));
	for (i = 0; i < GUN_STATUS_COUNT; i++)
		if (strcmp(label, GunStatusName[i]) == 0)
			break;
	if (i == GUN_STATUS_COUNT)
		elog(ERROR, "unknown gun status \"%s\"", label);
	if (m->n < GUN_STATUS_COUNT)
	{
		m->oid[m->n] = oid;
		m->status[m->n] = (uint8) i;
		m->n++;
	}
	return (uint8) i;
}

/* Reads every row of the transition table into rows (allocated here). */
static HbRow *
ReadNewRows(TriggerData *trigdata, int *nrows, int *nnull)
{
	Tuplestorestate *store = trigdata->tg_newtable;
	TupleDesc	desc = RelationGetDescr(trigdata->tg_relation);
	TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	HbColumns	c;
	StatusMap	statuses = {{0}, {0}, 0};
	HbRow	   *rows;
	Size		cap = 1024;
	int			n = 0;
	int			readptr;

	*nnull = 0;
	c.gun = ColumnNumber(desc, "gun");
	c.ts = ColumnNumber(desc, "ts");
	c.status = ColumnNumber(desc, "status");
	c.meter = ColumnNumber(desc, "meter_wh");
	c.power = ColumnNumber(desc, "power_w");
	c.soc = ColumnNumber(desc, "soc");
	c.fault = ColumnNumber(desc, "fault_code");
	c.order_no = ColumnNumber(desc, "order_no");
	c.received_at = ColumnNumber(desc, "received_at");

	rows = MemoryContextAllocHuge(CurrentMemoryContext, cap * sizeof(HbRow));

	/* A read pointer of our own: the SPI statements scan with theirs. */
	readptr = tuplestore_alloc_read_pointer(store, EXEC_FLAG_REWIND);
	tuplestore_select_read_pointer(store, readptr);
	tuplestore_rescan(store);

	while (tuplestore_gettupleslot(store, true, false, slot))
	{
		HbRow	   *r;
		bool		isnull;
		bool		gun_null;
		bool		ts_null;
		bool		status_null;
		Datum		gun_v;
		Datum		ts_v;
		Datum		status_v;
		Datum		v;

		if (((n + *nnull) & 4095) == 0)
			CHECK_FOR_INTERRUPTS();

		/*
		 * A row without gun, time or status belongs to nothing: it is
		 * quarantined apart (QuarantineNullKeys) and not read further.
		 */
		gun_v = slot_getattr(slot, c.gun, &gun_null);
		ts_v = slot_getattr(slot, c.ts, &ts_null);
		status_v = slot_getattr(slot, c.status, &status_null);
		if (gun_null || ts_null || status_null)
		{
			(*nnull)++;
			continue;
		}
		if ((Size) n == cap)
		{
			cap *= 2;
			rows = repalloc_huge(rows, cap * sizeof(HbRow));
		}
		r = &rows[n++];

		r->gun = *DatumGetGunIdP(gun_v);
		r->ts = DatumGetTimestampTz(ts_v);
		r->status = StatusOf(&statuses, status_v);
		/* received_at is NOT NULL in the table. */
		r->received_at = DatumGetTimestampTz(slot_getattr(slot, c.received_at, &isnull));

		v = slot_getattr(slot, c.meter, &r->meter_null);
		r->meter = r->meter_null ? -1 : DatumGetInt64(v);
		v = slot_getattr(slot, c.power, &r->power_null);
		r->power_w = r->power_null ? 0 : DatumGetInt32(v);
		v = slot_getattr(slot, c.soc, &r->soc_null);
		r->soc = r->soc_null ? 0 : DatumGetInt16(v);
		v = slot_getattr(slot, c.fault, &r->fault_null);
		r->fault_code = r->fault_null ? 0 : DatumGetInt16(v);
		v = slot_getattr(slot, c.order_no, &isnull);
		r->order_no = isnull ? NULL : TextDatumGetCString(v);
	}
	ExecDropSingleTupleTableSlot(slot);
	*nrows = n;
	return rows;
}

static int
GunCmp(const GunId *a, const GunId *b)
{
	if (a->head != b->head)
		return a->head < b->head ? -1 : 1;
	if (a->tail != b->tail)
		return a->tail < b->tail ? -1 : 1;
	return 0;
}

/* By gun, then time, then arrival. */
static int
RowCmp(const void *x, const void *y)
{
	const HbRow *a = *(HbRow *const *) x;
	const HbRow *b = *(HbRow *const *) y;
	int			c = GunCmp(&a->gun, &b->gun);

	if (c != 0)
		return c;
	if (a->ts != b->ts)
		return a->ts < b->ts ? -1 : 1;
	if (a->received_at != b->received_at)
		return a->received_at < b->received_at ? -1 : 1;
	return 0;
}

static bool
SamePile(const GunId *a, const GunId *b)
{
	return a->head == b->head && a->tail / 1000 == b->tail / 1000;
}

/* The registry's facts for each pile, in the order of the first gun given. */
static PileInfo *
LookUpPiles(GunId *piles, int npiles, Oid gun_type)
{
	PileInfo   *info = palloc0(sizeof(PileInfo) * Max(npiles, 1));
	ArrayOut	a;
	Oid			types[1];
	Datum		args[1];
	int			i;

	ArrayInit(&a, npiles, gun_type);
	for (i = 0; i < npiles; i++)
		ArrayPush(&a, PointerGetDatum(&piles[i]), false);
	types[0] = get_array_type(gun_type);
	args[0] = ArrayDatum(&a);
	RunKept(pile_plan, PileSql, 1, types, args, SPI_OK_SELECT, "pile look-up");
	if ((int) SPI_processed != npiles)
		elog(ERROR, "pile look-up returned " UINT64_FORMAT " rows for %d piles", SPI_processed, npiles);

	for (i = 0; i < npiles; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		v;

		v = SPI_getbinval(tup, desc, 1, &isnull);
		info[i].registered = !isnull;
		if (isnull)
			continue;
		info[i].gun_count = DatumGetInt32(v);
		info[i].rated_power_w = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
		info[i].station_id = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
		info[i].tz = TextDatumGetCString(SPI_getbinval(tup, desc, 4, &isnull));
		info[i].ground_lock = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
		v = SPI_getbinval(tup, desc, 6, &isnull);
		info[i].current_type = isnull ? NULL : TextDatumGetCString(v);
	}
	SPI_freetuptable(SPI_tuptable);
	return info;
}

/*
 * Whether evcharge.heartbeat_problem() refuses the row: the same tests in
 * the same terms (it words the reason when the row is quarantined; the
 * trigger checks that both agree).
 */
static bool
RowRefused(const HbRow *r, const PileInfo *p, TimestampTz not_before, TimestampTz not_after)
{
	if (!p->registered)
		return true;
	if (GunIdNumber(&r->gun) > p->gun_count)
		return true;
	if ((r->status == GUN_CHARGING || r->status == GUN_SUSPENDED || r->status == GUN_OCCUPIED) &&
		p->ground_lock)
		return true;
	if (r->status == GUN_CHARGING && r->meter_null)
		return true;
	if (r->ts < not_before || r->ts > not_after)
		return true;
	if (!r->soc_null && (r->soc < 0 || r->soc > 100))
		return true;
	return false;
}

static void
Quarantine(HbRow **bad, int nbad, Oid gun_type)
{
	ArrayOut	guns;
	ArrayOut	ts;
	Oid			types[2];
	Datum		args[2];
	int64		quarantined;
	bool		isnull;
	int			i;

	ArrayInit(&guns, nbad, gun_type);
	ArrayInit(&ts, nbad, TIMESTAMPTZOID);
	for (i = 0; i < nbad; i++)
	{
		ArrayPush(&guns, PointerGetDatum(&bad[i]->gun), false);
		ArrayPush(&ts, TimestampTzGetDatum(bad[i]->ts), false);
	}
	types[0] = get_array_type(gun_type);
	types[1] = TIMESTAMPTZARRAYOID;
	args[0] = ArrayDatum(&guns);
	args[1] = ArrayDatum(&ts);
	RunKept(quarantine_plan, QuarantineSql, 2, types, args, SPI_OK_SELECT, "quarantine");
	quarantined = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	if (quarantined != nbad)
		elog(ERROR, "heartbeat check disagrees with heartbeat_problem(): %d rows refused, " INT64_FORMAT " quarantined",
			 nbad, quarantined);
}

/* Quarantines the batch's rows without gun, time or status. */
static void
QuarantineNullKeys(int nnull)
{
	int64		quarantined;
	int64		deleted;
	bool		isnull;

	RunKept(null_key_plan, NullKeySql, 0, NULL, NULL, SPI_OK_SELECT, "quarantine of rows without a key");
	quarantined = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	deleted = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	SPI_freetuptable(SPI_tuptable);
	if (quarantined != nnull || deleted != nnull)
		elog(ERROR, "%d heartbeats without gun, time or status, " INT64_FORMAT " quarantined, " INT64_FORMAT " deleted",
			 nnull, quarantined, deleted);
}

/* ---------- live state, context, events ---------- */

static void
WriteGunState(GunBatch *guns, int nguns, Oid gun_type)
{
	ArrayOut	a[9];
	Oid			elem[9] = {gun_type, INT8OID, TEXTOID, TIMESTAMPTZOID, TEXTOID, INT4OID, INT2OID,
	INT8OID, INT2OID};
	Oid			types[9];
	Datum		args[9];
	int			i;
	int			k;

	for (k = 0; k < 9; k++)
		ArrayInit(&a[k], nguns, elem[k]);
	for (i = 0; i < nguns; i++)
	{
		const HbRow *r;

		if (guns[i].nrows == 0)
			continue;
		r = guns[i].rows[guns[i].nrows - 1];
		ArrayPush(&a[0], PointerGetDatum(&guns[i].gun), false);
		ArrayPush(&a[1], Int64GetDatum(guns[i].station_id), false);
		ArrayPush(&a[2], CStringGetTextDatum(GunStatusName[r->status]), false);
		ArrayPush(&a[3], TimestampTzGetDatum(r->ts), false);
		ArrayPush(&a[4], r->order_no ? CStringGetTextDatum(r->order_no) : (Datum) 0, r->order_no == NULL);
		ArrayPush(&a[5], Int32GetDatum(r->power_w), r->power_null);
		ArrayPush(&a[6], Int16GetDatum(r->soc), r->soc_null);
		ArrayPush(&a[7], Int64GetDatum(r->meter), r->meter_null);
		ArrayPush(&a[8], Int16GetDatum(r->fault_code), r->fault_null);
	}
	if (a[0].n == 0)
		return;
	for (k = 0; k < 9; k++)
	{
		types[k] = get_array_type(elem[k]);
		args[k] = ArrayDatum(&a[k]);
	}
	RunKept(gun_state_plan, GunStateSql, 9, types, args, SPI_OK_INSERT, "gun state upsert");
}

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

	s->order_no = TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull));
	s->station_id = station_id;
	s->state = TextDatumGetCString(SPI_getbinval(tup, desc, 4, &isnull));
	v = SPI_getbinval(tup, desc, 5, &isnull);
	s->last_ts = isnull ? DT_NOBEGIN : DatumGetTimestampTz(v);
	v = SPI_getbinval(tup, desc, 6, &isnull);
	s->high_meter = isnull ? -1 : DatumGetInt64(v);
	wh_arr = DatumGetArrayTypeP(SPI_getbinval(tup, desc, 7, &isnull));
	deconstruct_array(wh_arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &wh_d, NULL, &nwh);
	for (c = 0; c < TOU_CLASSES && c < nwh; c++)
		s->wh[c] = DatumGetInt64(wh_d[c]);
	s->jump = DatumGetInt64(SPI_getbinval(tup, desc, 8, &isnull));
	s->started_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 9, &s->started_null));
	v = SPI_getbinval(tup, desc, 10, &isnull);
	s->first_meter = isnull ? -1 : DatumGetInt64(v);
	s->charging_ended_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 11, &s->charging_ended_null));
	v = SPI_getbinval(tup, desc, 12, &isnull);
	s->high_at = isnull ? s->last_ts : DatumGetTimestampTz(v);
	s->occupied_null = true;
	return s;
}

/*
 * Reads each gun's context, then works out its fault events and the end of
 * its offline period and writes them; returns nothing, ends incidents.
 */
static void
LoadContextAndWriteEvents(GunBatch *guns, int nguns, Oid gun_type)
{
	ArrayOut	in[3];
	ArrayOut	fc[2];			/* faults closed: gun, ended_at */
	ArrayOut	fo[4];			/* faults opened: gun, code, started_at, ended_at */
	ArrayOut	bk[2];			/* offline periods ended: gun, ended_at */
	Oid			types[8];
	Datum		args[8];
	Oid			gun_array = get_array_type(gun_type);
	int			i;
	int			k;
	bool		isnull;
	Datum		incidents;

	ArrayInit(&in[0], nguns, gun_type);
	ArrayInit(&in[1], nguns, BOOLOID);
	ArrayInit(&in[2], nguns, TIMESTAMPTZOID);
	for (i = 0; i < nguns; i++)
	{
		ArrayPush(&in[0], PointerGetDatum(&guns[i].gun), false);
		ArrayPush(&in[1], BoolGetDatum(guns[i].active), false);
		ArrayPush(&in[2], TimestampTzGetDatum(guns[i].rows[0]->ts), false);
	}
	types[0] = gun_array;
	types[1] = BOOLARRAYOID;
	types[2] = TIMESTAMPTZARRAYOID;
	for (k = 0; k < 3; k++)
		args[k] = ArrayDatum(&in[k]);
	RunKept(context_plan, ContextSql, 3, types, args, SPI_OK_SELECT, "gun context read");
	if ((int) SPI_processed != nguns)
		elog(ERROR, "gun context read returned " UINT64_FORMAT " rows for %d guns", SPI_processed, nguns);

	ArrayInit(&fc[0], nguns, gun_type);
	ArrayInit(&fc[1], nguns, TIMESTAMPTZOID);
	for (k = 0; k < 4; k++)
		ArrayInit(&fo[k], nguns, k == 0 ? gun_type : k == 1 ? INT2OID : TIMESTAMPTZOID);
	ArrayInit(&bk[0], nguns, gun_type);
	ArrayInit(&bk[1], nguns, TIMESTAMPTZOID);

	for (i = 0; i < nguns; i++)
	{
		GunBatch   *g = &guns[i];
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Datum		v;
		bool		fault_open;
		TimestampTz fault_since;
		int			opened = -1;	/* index in fo of a fault this batch opened */
		int			j;

		/* Faults: open at the first row with a code, close at the first without. */
		v = SPI_getbinval(tup, desc, 1, &isnull);
		fault_open = !isnull;
		fault_since = isnull ? DT_NOBEGIN : DatumGetTimestampTz(v);
		for (j = 0; j < g->nrows; j++)
		{
			const HbRow *r = g->rows[j];

			if (r->fault_null)
				continue;
			if (r->fault_code != 0 && !fault_open)
			{
				opened = fo[0].n;
				ArrayPush(&fo[0], PointerGetDatum(&g->gun), false);
				ArrayPush(&fo[1], Int16GetDatum(r->fault_code), false);
				ArrayPush(&fo[2], TimestampTzGetDatum(r->ts), false);
				ArrayPush(&fo[3], (Datum) 0, true);
				fault_open = true;
				fault_since = r->ts;
			}
			else if (r->fault_code == 0 && fault_open && r->ts > fault_since)
			{
				if (opened >= 0)
				{
					fo[3].d[opened] = TimestampTzGetDatum(r->ts);
					fo[3].nulls[opened] = false;
					opened = -1;
				}
				else
				{
					ArrayPush(&fc[0], PointerGetDatum(&g->gun), false);
					ArrayPush(&fc[1], TimestampTzGetDatum(r->ts), false);
				}
				fault_open = false;
			}
		}

		/* Offline: the period ends at the first heartbeat after its start. */
		v = SPI_getbinval(tup, desc, 2, &isnull);
		if (!isnull)
		{
			TimestampTz since = DatumGetTimestampTz(v);

			for (j = 0; j < g->nrows; j++)
				if (g->rows[j]->ts > since)
				{
					ArrayPush(&bk[0], PointerGetDatum(&g->gun), false);
					ArrayPush(&bk[1], TimestampTzGetDatum(g->rows[j]->ts), false);
					break;
				}
		}

		/* The open session and the last closed one, for the session machine. */
		(void) SPI_getbinval(tup, desc, 3, &isnull);
		g->open = isnull ? NULL : ReadOpenSession(tup, desc, g->station_id);
		v = SPI_getbinval(tup, desc, 13, &isnull);
		g->last_closed = isnull ? DT_NOBEGIN : DatumGetTimestampTz(v);
	}
	SPI_freetuptable(SPI_tuptable);

	if (fc[0].n == 0 && fo[0].n == 0 && bk[0].n == 0)
		return;
	types[0] = gun_array;
	types[1] = TIMESTAMPTZARRAYOID;
	types[2] = gun_array;
	types[3] = INT2ARRAYOID;
	types[4] = TIMESTAMPTZARRAYOID;
	types[5] = TIMESTAMPTZARRAYOID;
	types[6] = gun_array;
	types[7] = TIMESTAMPTZARRAYOID;
	args[0] = ArrayDatum(&fc[0]);
	args[1] = ArrayDatum(&fc[1]);
	for (k = 0; k < 4; k++)
		args[2 + k] = ArrayDatum(&fo[k]);
	args[6] = ArrayDatum(&bk[0]);
	args[7] = ArrayDatum(&bk[1]);
	RunKept(event_plan, EventSql, 8, types, args, SPI_OK_SELECT, "fault and offline update");

	incidents = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	if (!isnull)
	{
		Oid			itypes[1] = {INT8ARRAYOID};
		Datum		iargs[1];

		iargs[0] = datumCopy(incidents, false, -1);
		SPI_freetuptable(SPI_tuptable);
		RunKept(incident_plan, IncidentSql, 1, itypes, iargs, SPI_OK_UPDATE, "network incident update");
	}
}

/*
 * The plan in force for each gun at its first row, by validity alone
 * (LegacyPlanSql): 0.2.0's look-up, for a database not yet updated.
 */
static void
FindPlansByValidity(GunBatch *guns, int nguns)
{
	ArrayOut	st;
	Oid			types[1] = {INT8ARRAYOID};
	Datum		args[1];
	PlanRow    *plans;
	int			nplans;
	int64		last = -1;
	int			i;

	ArrayInit(&st, nguns, INT8OID);
	for (i = 0; i < nguns; i++)
		if (guns[i].open != NULL || guns[i].active)
		{
			/* guns of one pile, hence of one station, are adjacent */
			if (guns[i].station_id != last)
				ArrayPush(&st, Int64GetDatum(guns[i].station_id), false);
			last = guns[i].station_id;
		}
	if (st.n == 0)
		return;
	args[0] = ArrayDatum(&st);
	RunKept(legacy_plan_plan, LegacyPlanSql, 1, types, args, SPI_OK_SELECT, "plan look-up");

	nplans = (int) SPI_processed;
	plans = palloc(sizeof(PlanRow) * Max(nplans, 1));
	for (i = 0; i < nplans; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		v;

		plans[i].station_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		plans[i].current_type = TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull));
		plans[i].lower = DatumGetTimestampTz(SPI_getbinval(tup, desc, 3, &isnull));
		v = SPI_getbinval(tup, desc, 4, &isnull);
		plans[i].upper = isnull ? 0 : DatumGetTimestampTz(v);
		plans[i].upper_inf = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
		plans[i].lower_inc = DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull));
		plans[i].upper_inc = DatumGetBool(SPI_getbinval(tup, desc, 7, &isnull));
		/* copied into the batch's context, widened to 5 classes */
		plans[i].tariff = DatumGetTouTariffP(PointerGetDatum(PG_DETOAST_DATUM_COPY(SPI_getbinval(tup, desc, 8, &isnull))));
		plans[i].splitter = NULL;
		plans[i].splitter_made = false;
	}
	SPI_freetuptable(SPI_tuptable);

	for (i = 0; i < nguns; i++)
	{
		GunBatch   *g = &guns[i];
		TimestampTz t = g->rows[0]->ts;
		int			lo = 0;
		int			hi = nplans;
		int			j;

		g->tariff = NULL;
		g->splitter = NULL;
		if ((g->open == NULL && !g->active) || g->current_type == NULL)
			continue;
		/* first plan of the station (plans are in station order) */
		while (lo < hi)
		{
			int			mid = lo + (hi - lo) / 2;

			if (plans[mid].station_id < g->station_id)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (j = lo; j < nplans && plans[j].station_id == g->station_id; j++)
		{
			PlanRow    *p = &plans[j];

			if (strcmp(p->current_type, g->current_type) != 0)
				continue;
			if (t < p->lower || (t == p->lower && !p->lower_inc))
				continue;
			if (!p->upper_inf && (t > p->upper || (t == p->upper && !p->upper_inc)))
				continue;
			g->tariff = p->tariff;
			/* the station's zone is the same for all its guns */
			if (!p->splitter_made && g->tz != NULL)
				p->splitter = RiseSplitterCreate(p->tariff, g->tz);
			p->splitter_made = true;
			g->splitter = p->splitter;
			break;
		}
	}
}

/*
 * Whether the database's extension SQL has plan_in_force (0.3.0 on): a
 * syscache probe per batch, so that a backend that was connected before
 * ALTER EXTENSION UPDATE switches to it at its next batch.
 */
static bool
HavePlanInForce(void)
{
	Oid			argtypes[3] = {INT8OID, TEXTOID, TIMESTAMPTZOID};

	return OidIsValid(LookupFuncName(list_make2(makeString("evcharge"), makeString("plan_in_force")),
									 3, argtypes, true));
}

/* One question to plan_in_force and its answer. */
typedef struct PlanAsk
{
	int64		station_id;
	const char *current_type;
	TimestampTz at;
	const char *tz;
	bool		found;
	const TouTariff *tariff;	/* copied into the batch's context, 5 classes */
	RiseSplitter *splitter;
	TimestampTz until;			/* the answer holds from at until then */
} PlanAsk;

/* Asks plan_in_force each question of asks[0..n) in one statement. */
static void
AskPlans(PlanAsk *asks, int n)
{
	ArrayOut	st;
	ArrayOut	ct;
	ArrayOut	at;
	Oid			types[3] = {INT8ARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID};
	Datum		args[3];
	uint64		r;
	int			i;

	if (n == 0)
		return;
	ArrayInit(&st, n, INT8OID);
	ArrayInit(&ct, n, TEXTOID);
	ArrayInit(&at, n, TIMESTAMPTZOID);
	for (i = 0; i < n; i++)
	{
		asks[i].found = false;
		ArrayPush(&st, Int64GetDatum(asks[i].station_id), false);
		ArrayPush(&ct, CStringGetTextDatum(asks[i].current_type), false);
		ArrayPush(&at, TimestampTzGetDatum(asks[i].at), false);
	}
	args[0] = ArrayDatum(&st);
	args[1] = ArrayDatum(&ct);
	args[2] = ArrayDatum(&at);
	RunKept(plan_plan, PlanSql, 3, types, args, SPI_OK_SELECT, "plan look-up");
	for (r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		PlanAsk    *a = &asks[DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull)) - 1];

		a->found = true;
		a->tariff = DatumGetTouTariffP(PointerGetDatum(PG_DETOAST_DATUM_COPY(SPI_getbinval(tup, desc, 3, &isnull))));
		a->until = DatumGetTimestampTz(SPI_getbinval(tup, desc, 4, &isnull));
		/* the station's zone is the same for all its guns */
		a->splitter = a->tz != NULL ? RiseSplitterCreate(a->tariff, a->tz) : NULL;
	}
	SPI_freetuptable(SPI_tuptable);
}

/* Orders guns by station, then current type (then place, to be stable). */
static int
CompareStationType(const void *a, const void *b, void *arg)
{
	const GunBatch *guns = arg;
	const GunBatch *x = &guns[*(const int *) a];
	const GunBatch *y = &guns[*(const int *) b];
	int			c;

	if (x->station_id != y->station_id)
		return x->station_id < y->station_id ? -1 : 1;
	c = strcmp(x->current_type, y->current_type);
	if (c != 0)
		return c;
	return *(const int *) a - *(const int *) b;
}

/*
 * The plan in force for each gun the session machine will see, at its
 * first row: plan_in_force's answer for the gun's station, current type
 * and time (PlanSql).  The guns are grouped by station and current type
 * (a station's piles need not be adjacent in gun order): one question per
 * group, at its earliest time, whose answer says until when it holds;
 * when every gun of the group is before then (the usual case: a batch
 * spans seconds, not a midnight or a plan change), they all have that
 * plan.  The guns of the other groups are asked about one by one (once
 * per pile and time), in a second statement.
 */
static void
FindPlans(GunBatch *guns, int nguns)
{
	int		   *run_of = palloc(sizeof(int) * Max(nguns, 1));	/* -1: needs none */
	int		   *order = palloc(sizeof(int) * Max(nguns, 1));
	int			nneed = 0;
	int			k;
	PlanAsk    *runs = palloc(sizeof(PlanAsk) * Max(nguns, 1));
	TimestampTz *run_last = palloc(sizeof(TimestampTz) * Max(nguns, 1));
	PlanAsk    *each;
	int		   *each_of;
	int			nruns = 0;
	int			neach = 0;
	int			i;

	if (!HavePlanInForce())
	{
		FindPlansByValidity(guns, nguns);
		return;
	}
	for (i = 0; i < nguns; i++)
	{
		GunBatch   *g = &guns[i];

		g->tariff = NULL;
		g->splitter = NULL;
		run_of[i] = -1;
		if ((g->open != NULL || g->active) && g->current_type != NULL)
			order[nneed++] = i;
	}
	qsort_arg(order, nneed, sizeof(int), CompareStationType, guns);
	for (k = 0; k < nneed; k++)
	{
		GunBatch   *g = &guns[order[k]];
		TimestampTz t = g->rows[0]->ts;
		PlanAsk    *run = nruns > 0 ? &runs[nruns - 1] : NULL;

		i = order[k];
		if (run == NULL || run->station_id != g->station_id || strcmp(run->current_type, g->current_type) != 0)
		{
			run = &runs[nruns++];
			run->station_id = g->station_id;
			run->current_type = g->current_type;
			run->tz = g->tz;
			run->at = t;
			run_last[nruns - 1] = t;
		}
		run->at = Min(run->at, t);
		run_last[nruns - 1] = Max(run_last[nruns - 1], t);
		run_of[i] = nruns - 1;
	}
	AskPlans(runs, nruns);

	/* Runs whose answer holds for all their guns; the rest, gun by gun. */
	each = palloc(sizeof(PlanAsk) * Max(nguns, 1));
	each_of = palloc(sizeof(int) * Max(nguns, 1));
	for (i = 0; i < nguns; i++)
	{
		PlanAsk    *run;
		GunBatch   *g = &guns[i];
		PlanAsk    *prev = neach > 0 ? &each[neach - 1] : NULL;

		each_of[i] = -1;
		if (run_of[i] < 0)
			continue;
		run = &runs[run_of[i]];
		if (run->found && run_last[run_of[i]] < run->until)
		{
			g->tariff = run->tariff;
			g->splitter = run->splitter;
			continue;
		}
		if (prev != NULL && prev->station_id == g->station_id &&
			strcmp(prev->current_type, g->current_type) == 0 && prev->at == g->rows[0]->ts)
		{
			each_of[i] = neach - 1;
			continue;
		}
		each[neach].station_id = g->station_id;
		each[neach].current_type = g->current_type;
		each[neach].tz = g->tz;
		each[neach].at = g->rows[0]->ts;
		each_of[i] = neach++;
	}
	AskPlans(each, neach);
	for (i = 0; i < nguns; i++)
		if (each_of[i] >= 0 && each[each_of[i]].found)
		{
			guns[i].tariff = each[each_of[i]].tariff;
			guns[i].splitter = each[each_of[i]].splitter;
		}
}

/* ---------- the trigger ---------- */

Datum
heartbeat_ingest(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Oid			gun_type;
	HbRow	   *rows;
	HbRow	  **sorted;
	HbRow	  **bad;
	int			nrows;
	int			nnull;
	int			nbad = 0;
	GunId	   *piles;
	int		   *pile_of_row;
	PileInfo   *info;
	int			npiles = 0;
	GunBatch   *guns;
	int			nguns = 0;
	Size		guns_cap = 256;
	TimestampTz not_before;
	TimestampTz not_after;
	int			i;

	StatementTriggerBegin(fcinfo, "heartbeat_ingest");
	batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "evcharge heartbeat batch",
									  ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(batch_cxt);

	gun_type = TupleDescAttr(RelationGetDescr(trigdata->tg_relation),
							 SPI_fnumber(RelationGetDescr(trigdata->tg_relation), "gun") - 1)->atttypid;
	ForgetPlansIfTypeChanged(gun_type);

	rows = ReadNewRows(trigdata, &nrows, &nnull);
	batch_rows = (int64) nrows + nnull;
	if (nnull > 0)
		QuarantineNullKeys(nnull);
	if (nrows == 0)
	{
		SPI_finish();
		return PointerGetDatum(NULL);
	}
	sorted = MemoryContextAllocHuge(batch_cxt, sizeof(HbRow *) * nrows);
	for (i = 0; i < nrows; i++)
		sorted[i] = &rows[i];
	qsort(sorted, nrows, sizeof(HbRow *), RowCmp);

	/* The piles of the batch, each once (its guns are adjacent). */
	piles = MemoryContextAllocHuge(batch_cxt, sizeof(GunId) * nrows);
	pile_of_row = MemoryContextAllocHuge(batch_cxt, sizeof(int) * nrows);
	for (i = 0; i < nrows; i++)
	{
		if (npiles == 0 || !SamePile(&piles[npiles - 1], &sorted[i]->gun))
			piles[npiles++] = sorted[i]->gun;
		pile_of_row[i] = npiles - 1;
	}
	info = LookUpPiles(piles, npiles, gun_type);

	/* The same bounds as heartbeat_problem(): 2015 in China, a day ahead. */
	not_before = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
														 CStringGetDatum("2015-01-01 00:00+08"),
														 ObjectIdGetDatum(InvalidOid),
														 Int32GetDatum(-1)));
	not_after = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
														TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()),
														DirectFunctionCall3(interval_in,
																			CStringGetDatum("1 day"),
																			ObjectIdGetDatum(InvalidOid),
																			Int32GetDatum(-1))));

	/* Check each row; group the accepted ones by gun. */
	bad = palloc(sizeof(HbRow *) * nrows);
	guns = palloc(sizeof(GunBatch) * guns_cap);
	for (i = 0; i < nrows; i++)
	{
		HbRow	   *r = sorted[i];
		PileInfo   *p = &info[pile_of_row[i]];
		GunBatch   *g;

		if ((i & 4095) == 0)
			CHECK_FOR_INTERRUPTS();
		if (RowRefused(r, p, not_before, not_after))
		{
			bad[nbad++] = r;
			continue;
		}
		if (nguns == 0 || GunCmp(&guns[nguns - 1].gun, &r->gun) != 0)
		{
			if ((Size) nguns == guns_cap)
			{
				guns_cap *= 2;
				guns = repalloc_huge(guns, sizeof(GunBatch) * guns_cap);
			}
			g = &guns[nguns++];
			memset(g, 0, sizeof(GunBatch));
			g->gun = r->gun;
			g->rows = &sorted[i];	/* accepted rows are compacted in place */
			g->station_id = p->station_id;
			g->rated_power_w = p->rated_power_w;
			g->tz = p->tz;
			g->current_type = p->current_type;
			g->last_closed = DT_NOBEGIN;
		}
		g = &guns[nguns - 1];
		g->rows[g->nrows++] = r;
		if (r->status == GUN_CHARGING || r->status == GUN_SUSPENDED || r->status == GUN_OCCUPIED)
			g->active = true;
	}

	if (nbad > 0)
		Quarantine(bad, nbad, gun_type);
	if (nguns > 0)
	{
		WriteGunState(guns, nguns, gun_type);
		LoadContextAndWriteEvents(guns, nguns, gun_type);
		FindPlans(guns, nguns);
		ProcessSessions(guns, nguns);
	}

	SPI_finish();
	batch_cxt = NULL;
	return PointerGetDatum(NULL);
}
