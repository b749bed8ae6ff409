/*-------------------------------------------------------------------------
 *
 * session_plans.c
 *	  Owns the plan each gun's session is priced by as the heartbeats come:
 *	  the plan in force at the gun's first row of the batch, as
 *	  evcharge.plan_in_force() answers it (its calendar and precedence are
 *	  its own, not repeated here), asked once per station and current type
 *	  where the answer holds for the whole batch, and the splitter of that
 *	  plan in the station's zone, shared by the guns under it.  A database
 *	  not yet updated to 0.3.0 is read as 0.2.0 read it (by validity alone).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"

#include "heartbeat_batch.h"

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

static KeptStatement plan_plan = {NULL, NULL};
static KeptStatement legacy_plan_plan = {NULL, NULL};

/*
 * The plan in force for each gun at its first row, by validity alone
 * (LegacyPlanSql): 0.2.0's look-up, for a database not yet updated.
 */
static void
FindPlansByValidity(GunBatch *guns, int nguns)
{
	ArrayBuildState *st = BatchArray(INT8OID);
	Oid			types[1] = {INT8ARRAYOID};
	Datum		args[1];
	PlanRow    *plans;
	int			nplans;
	int64		last = -1;
	int			i;

	for (i = 0; i < nguns; i++)
		if (guns[i].open != NULL || guns[i].active)
		{
			/* guns of one pile, hence of one station, are adjacent */
			if (guns[i].station_id != last)
				BatchArrayPush(st, Int64GetDatum(guns[i].station_id), false);
			last = guns[i].station_id;
		}
	if (st->nelems == 0)
		return;
	args[0] = BatchArrayDatum(st);
	BatchExecute(legacy_plan_plan, LegacyPlanSql, 1, types, args, SPI_OK_SELECT, "plan look-up");

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
	ArrayBuildState *st;
	ArrayBuildState *ct;
	ArrayBuildState *at;
	Oid			types[3] = {INT8ARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID};
	Datum		args[3];
	uint64		r;
	int			i;

	if (n == 0)
		return;
	st = BatchArray(INT8OID);
	ct = BatchArray(TEXTOID);
	at = BatchArray(TIMESTAMPTZOID);
	for (i = 0; i < n; i++)
	{
		asks[i].found = false;
		BatchArrayPush(st, Int64GetDatum(asks[i].station_id), false);
		BatchArrayPush(ct, CStringGetTextDatum(asks[i].current_type), false);
		BatchArrayPush(at, TimestampTzGetDatum(asks[i].at), false);
	}
	args[0] = BatchArrayDatum(st);
	args[1] = BatchArrayDatum(ct);
	args[2] = BatchArrayDatum(at);
	BatchExecute(plan_plan, PlanSql, 3, types, args, SPI_OK_SELECT, "plan look-up");
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
void
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

void
ForgetPlanStatements(void)
{
	ForgetKept(plan_plan);
	ForgetKept(legacy_plan_plan);
}
