/*-------------------------------------------------------------------------
 *
 * spi_trigger.c
 *	  Owns what the statement-level triggers (heartbeat_trigger.c,
 *	  pile_record_trigger.c) share: the check of how they were fired and the
 *	  statements they prepare once per backend (SPI_keepplan).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "utils/guc.h"
#include "utils/plancache.h"
#include "utils/resowner.h"

#include "spi_trigger.h"

void
StatementTriggerBegin(FunctionCallInfo fcinfo, const char *name)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	int			ret;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s() must be called as a trigger", name)));
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) ||
		trigdata->tg_newtable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s() must be an AFTER INSERT ... FOR EACH STATEMENT trigger with REFERENCING NEW TABLE AS new_rows",
						name)));

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	if ((ret = SPI_register_trigger_data(trigdata)) != SPI_OK_TD_REGISTER)
		elog(ERROR, "SPI_register_trigger_data failed: %s", SPI_result_code_string(ret));
}

static SPIPlanPtr
Keep(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes, int options)
{
	if (*cache == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes, options);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		*cache = plan;
	}
	return *cache;
}

SPIPlanPtr
KeptPlan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes)
{
	return Keep(cache, sql, nargs, argtypes, 0);
}

SPIPlanPtr
KeptGenericPlan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes)
{
	return Keep(cache, sql, nargs, argtypes, CURSOR_OPT_GENERIC_PLAN);
}

/*
 * With one row per transaction, planning the trigger's statements for each
 * call's arrays cost ten times their execution (GetCachedPlan was half the
 * backend's time): small batches use the generic plan, which the planner
 * makes for unknown arrays (it assumes 100 elements for unnest and 10 for
 * = ANY), the plan those batches need anyway.  The transition table's size
 * is also fixed at the first planning, so a generic plan is only ever used
 * for batches as small as the one it was made for.
 */
SPIPlanPtr
KeptPlanFor(KeptStatement cache, const char *sql, int nargs, Oid *argtypes, int64 nrows)
{
	if (nrows <= KEPT_GENERIC_MAX_ROWS)
		return Keep(&cache[0], sql, nargs, argtypes, CURSOR_OPT_GENERIC_PLAN);
	return Keep(&cache[1], sql, nargs, argtypes, 0);
}

void
ForgetKept(KeptStatement cache)
{
	int			i;

	for (i = 0; i < 2; i++)
		if (cache[i] != NULL)
		{
			SPI_freeplan(cache[i]);
			cache[i] = NULL;
		}
}

/*
 * Runs the form of the statement for a batch of nrows rows.  The generic
 * form is planned with enable_seqscan off: it is made once and kept, maybe
 * while a table is still empty (a new database, the first fault), and a
 * plan that scans a table which has grown since would stay until the
 * table's next analyze; for batches this small the right plan is an index
 * probe per gun whatever the statistics say.  Only the planning sees the
 * setting (SPI_plan_get_cached_plan makes or checks the plan first), not
 * what the statement runs.  Bigger batches plan per call as settings are.
 */
int
KeptExecute(KeptStatement cache, const char *sql, int nargs, Oid *argtypes, Datum *args, int64 nrows)
{
	SPIPlanPtr	plan = KeptPlanFor(cache, sql, nargs, argtypes, nrows);

	if (nrows <= KEPT_GENERIC_MAX_ROWS)
	{
		int			nest = NewGUCNestLevel();
		CachedPlan *cplan;

		(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		cplan = SPI_plan_get_cached_plan(plan);
		AtEOXact_GUC(true, nest);
		if (cplan == NULL)
			elog(ERROR, "SPI_plan_get_cached_plan failed: %s", SPI_result_code_string(SPI_result));
		ReleaseCachedPlan(cplan, CurrentResourceOwner);
	}
	return SPI_execute_plan(plan, args, NULL, false, 0);
}
