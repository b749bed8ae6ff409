/*-------------------------------------------------------------------------
 *
 * heartbeat_trigger.c
 *	  Owns heartbeat_ingest(), the statement-level AFTER INSERT trigger on
 *	  evcharge.heartbeat, and the order of its steps.  Once per statement (a
 *	  COPY of a million rows is one call) it reads the transition table once,
 *	  in C, sorts the rows by gun and time, and:
 *	  1. checks every row (heartbeat_check.c: the registry looked up once
 *	     per pile of the batch) and moves the rows it cannot accept to
 *	     evcharge.quarantine with the reason, removing them from the log, so
 *	     one bad row never fails the batch (rows without gun, time or status
 *	     included: the table has no NOT NULL on them);
 *	  2. brings evcharge.gun_state up to date with each gun's newest
 *	     heartbeat, then its faults, offline periods and network incidents
 *	     (gun_events.c);
 *	  3. reads each gun's sessions, finds the plan in force for those that
 *	     charge, and runs the session machine (session_machine.c,
 *	     session_plans.c).
 *
 * Every write is one statement per batch over arrays built here and in
 * those files.  The gun_state upsert comes first and in gun order: its row
 * locks serialise concurrent loaders per gun, and, taken in the same order
 * by every loader, cannot deadlock.  The statements are prepared once per
 * backend and kept.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "heartbeat_batch.h"
#include "spi_trigger.h"

PG_FUNCTION_INFO_V1(heartbeat_ingest);

const char *const GunStatusName[GUN_STATUS_COUNT] = {
	"idle", "plugged", "charging", "suspended", "occupied", "fault"
};

/* The gun_id type the kept statements were prepared for. */
static Oid	kept_gun_type = InvalidOid;

/* The batch's memory; SPI calls return in SPI's context, so switch back. */
static MemoryContext batch_cxt = NULL;

/* The rows of the batch (the transition table), for KeptExecute. */
static int64 batch_rows = 0;

void
BatchExecute(KeptStatement cache, const char *sql, int nargs, Oid *types, Datum *args,
			 int expect, const char *what)
{
	int			ret = KeptExecute(cache, sql, nargs, types, args, batch_rows);

	MemoryContextSwitchTo(batch_cxt);
	if (ret != expect)
		elog(ERROR, "%s failed: %s", what, SPI_result_code_string(ret));
}

/* Statements kept for another gun_id type (the extension was recreated) go. */
static void
ForgetStatementsIfTypeChanged(Oid gun_type)
{
	if (kept_gun_type == gun_type)
		return;
	ForgetCheckStatements();
	ForgetGunEventStatements();
	ForgetPlanStatements();
	ForgetSessionStatements();
	kept_gun_type = gun_type;
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

/*
 * Reads every row of the transition table into rows (allocated here), and
 * the places of those without gun, time or status into *nulls.
 */
static HbRow *
ReadNewRows(TriggerData *trigdata, int *nrows, HbNullKey **nulls, int *nnull)
{
	Tuplestorestate *store = trigdata->tg_newtable;
	TupleDesc	desc = RelationGetDescr(trigdata->tg_relation);
	TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	HbColumns	c;
	StatusMap	statuses = {{0}, {0}, 0};
	HbRow	   *rows;
	Size		cap = 1024;
	Size		null_cap = 16;
	int			n = 0;
	int			readptr;

	*nnull = 0;
	*nulls = palloc(null_cap * sizeof(HbNullKey));
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
		 * quarantined apart and not read further.
		 */
		gun_v = slot_getattr(slot, c.gun, &gun_null);
		ts_v = slot_getattr(slot, c.ts, &ts_null);
		status_v = slot_getattr(slot, c.status, &status_null);
		if (gun_null || ts_null || status_null)
		{
			if ((Size) *nnull == null_cap)
			{
				null_cap *= 2;
				*nulls = repalloc_huge(*nulls, null_cap * sizeof(HbNullKey));
			}
			(*nulls)[*nnull].ordinal = (int64) n + *nnull + 1;
			(*nulls)[*nnull].gun_null = gun_null;
			(*nulls)[*nnull].ts_null = ts_null;
			(*nnull)++;
			continue;
		}
		if ((Size) n == cap)
		{
			cap *= 2;
			rows = repalloc_huge(rows, cap * sizeof(HbRow));
		}
		r = &rows[n];
		r->ordinal = (int64) n + *nnull + 1;
		n++;

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

/* The rows sorted by gun, time and arrival (pointers into rows). */
static HbRow **
SortRows(HbRow *rows, int nrows)
{
	HbRow	  **sorted = MemoryContextAllocHuge(batch_cxt, sizeof(HbRow *) * Max(nrows, 1));
	int			i;

	for (i = 0; i < nrows; i++)
		sorted[i] = &rows[i];
	qsort(sorted, nrows, sizeof(HbRow *), RowCmp);
	return sorted;
}

/* Each sorted row's pile facts, the registry asked once per pile. */
static PileInfo **
LookUpRowPiles(HbRow **sorted, int nrows, Oid gun_type)
{
	GunId	   *piles = MemoryContextAllocHuge(batch_cxt, sizeof(GunId) * Max(nrows, 1));
	int		   *pile_of_row = MemoryContextAllocHuge(batch_cxt, sizeof(int) * Max(nrows, 1));
	PileInfo  **info_of_row = MemoryContextAllocHuge(batch_cxt, sizeof(PileInfo *) * Max(nrows, 1));
	PileInfo   *info;
	int			npiles = 0;
	int			i;

	/* a pile's guns are adjacent in gun order */
	for (i = 0; i < nrows; i++)
	{
		if (npiles == 0 || !SamePile(&piles[npiles - 1], &sorted[i]->gun))
			piles[npiles++] = sorted[i]->gun;
		pile_of_row[i] = npiles - 1;
	}
	info = LookUpPiles(piles, npiles, gun_type);
	for (i = 0; i < nrows; i++)
		info_of_row[i] = &info[pile_of_row[i]];
	return info_of_row;
}

/* The refused rows of a batch, with their piles' facts. */
typedef struct Refused
{
	HbRow	  **rows;
	const PileInfo **piles;
	int			n;
} Refused;

/*
 * Checks each sorted row and groups the accepted ones by gun (each gun's
 * rows in time order, compacted in place in sorted); the refused go to
 * *refused.  Returns the guns.
 */
static GunBatch *
GroupAccepted(HbRow **sorted, int nrows, PileInfo **pile_of, int *nguns, Refused *refused)
{
	Size		cap = 256;
	GunBatch   *guns = palloc(sizeof(GunBatch) * cap);
	int			n = 0;
	int			i;

	refused->rows = palloc(sizeof(HbRow *) * Max(nrows, 1));
	refused->piles = palloc(sizeof(PileInfo *) * Max(nrows, 1));
	refused->n = 0;
	for (i = 0; i < nrows; i++)
	{
		HbRow	   *r = sorted[i];
		const PileInfo *p = pile_of[i];
		GunBatch   *g;

		if ((i & 4095) == 0)
			CHECK_FOR_INTERRUPTS();
		if (!HeartbeatAccepted(r, p))
		{
			refused->rows[refused->n] = r;
			refused->piles[refused->n++] = p;
			continue;
		}
		if (n == 0 || GunCmp(&guns[n - 1].gun, &r->gun) != 0)
		{
			if ((Size) n == cap)
			{
				cap *= 2;
				guns = repalloc_huge(guns, sizeof(GunBatch) * cap);
			}
			g = &guns[n++];
			memset(g, 0, sizeof(GunBatch));
			g->gun = r->gun;
			g->rows = &sorted[i];	/* accepted rows are compacted in place */
			g->station_id = p->station_id;
			g->rated_power_w = p->rated_power_w;
			g->tz = p->tz;
			g->current_type = p->current_type;
			g->last_closed = DT_NOBEGIN;
		}
		g = &guns[n - 1];
		g->rows[g->nrows++] = r;
		if (r->status == GUN_CHARGING || r->status == GUN_SUSPENDED || r->status == GUN_OCCUPIED)
			g->active = true;
	}
	*nguns = n;
	return guns;
}

/* ---------- the trigger ---------- */

Datum
heartbeat_ingest(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc = RelationGetDescr(trigdata->tg_relation);
	Oid			gun_type;
	HbRow	   *rows;
	HbRow	  **sorted;
	HbNullKey  *nulls;
	PileInfo  **pile_of;
	GunBatch   *guns;
	Refused		refused;
	int			nrows;
	int			nnull;
	int			nguns;

	StatementTriggerBegin(fcinfo, "heartbeat_ingest");
	batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "evcharge heartbeat batch",
									  ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(batch_cxt);
	gun_type = TupleDescAttr(desc, SPI_fnumber(desc, "gun") - 1)->atttypid;
	ForgetStatementsIfTypeChanged(gun_type);

	/* Read, sort, check. */
	rows = ReadNewRows(trigdata, &nrows, &nulls, &nnull);
	batch_rows = (int64) nrows + nnull;
	sorted = SortRows(rows, nrows);
	pile_of = LookUpRowPiles(sorted, nrows, gun_type);
	guns = GroupAccepted(sorted, nrows, pile_of, &nguns, &refused);
	QuarantineRefused(refused.rows, refused.n, refused.piles, nulls, nnull);

	/* The guns' live state and events, then their sessions. */
	if (nguns > 0)
	{
		WriteGunState(guns, nguns, gun_type);
		WriteGunEvents(guns, nguns, gun_type);
		LoadSessions(guns, nguns, gun_type);
		FindPlans(guns, nguns);
		ProcessSessions(guns, nguns);
	}

	SPI_finish();
	batch_cxt = NULL;
	return PointerGetDatum(NULL);
}
