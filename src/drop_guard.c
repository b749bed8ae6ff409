/*-------------------------------------------------------------------------
 *
 * drop_guard.c
 *	  Owns the guard that keeps one command from destroying the books: the
 *	  event trigger function evcharge_drop_guard(), which runs at the start
 *	  of every DROP EXTENSION and DROP SCHEMA, and the setting
 *	  evcharge.allow_drop that lets a deliberate drop through.
 *
 *	  The bills and the ledger are extension member tables, so DROP
 *	  EXTENSION evcharge drops them with the extension, with no CASCADE
 *	  needed.  At ddl_command_start the tables still exist, but an event
 *	  trigger written in SQL cannot see which objects the command names:
 *	  only the parse tree says, and only C can read it.  So this function
 *	  takes the names and the behaviour (RESTRICT or CASCADE) from the
 *	  DropStmt and hands them to evcharge.drop_guard_check(), which decides
 *	  whether the command reaches evcharge and raises the error with what
 *	  would be lost.  The rule itself lives there, in SQL
 *	  (sql/install/drop_guard.sql).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "drop_guard.h"

PG_FUNCTION_INFO_V1(evcharge_drop_guard);

static bool allow_drop = false;

void
DropGuardDefineSettings(void)
{
	DefineCustomBoolVariable("evcharge.allow_drop",
							 "Lets DROP EXTENSION evcharge (or a drop that cascades to it) through while it holds ledger entries or bills.",
							 "Off: such a drop fails with what it would lose. Set it in the session that drops, deliberately, after a backup.",
							 &allow_drop, false, PGC_SUSET, 0,
							 NULL, NULL, NULL);
}

/*
 * The event trigger (ddl_command_start, tags DROP EXTENSION and DROP
 * SCHEMA): passes what the command drops to evcharge.drop_guard_check(),
 * which raises the error if it would take the books.
 */
Datum
evcharge_drop_guard(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	DropStmt   *stmt;
	const char *kind;
	Datum	   *names;
	int			n = 0;
	ListCell   *lc;
	Oid			argtypes[3] = {TEXTOID, TEXTARRAYOID, BOOLOID};
	Datum		values[3];
	int			rc;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_EVENT_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function evcharge_drop_guard was not called by the event trigger manager"),
				 errhint("It is the event trigger evcharge_drop_guard's function; it is not called directly.")));
	trigdata = (EventTriggerData *) fcinfo->context;

	if (allow_drop || trigdata->parsetree == NULL || !IsA(trigdata->parsetree, DropStmt))
		PG_RETURN_VOID();
	stmt = (DropStmt *) trigdata->parsetree;
	if (stmt->removeType == OBJECT_EXTENSION)
		kind = "extension";
	else if (stmt->removeType == OBJECT_SCHEMA)
		kind = "schema";
	else
		PG_RETURN_VOID();

	/* Extensions and schemas are named by a single identifier each. */
	names = palloc(sizeof(Datum) * (list_length(stmt->objects) + 1));
	foreach(lc, stmt->objects)
	{
		Node	   *obj = (Node *) lfirst(lc);

		if (IsA(obj, String))
			names[n++] = CStringGetTextDatum(strVal(obj));
	}

	values[0] = CStringGetTextDatum(kind);
	values[1] = PointerGetDatum(construct_array(names, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[2] = BoolGetDatum(stmt->behavior == DROP_CASCADE);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "evcharge_drop_guard: SPI_connect failed");
	rc = SPI_execute_with_args("SELECT evcharge.drop_guard_check($1, $2, $3)",
							   3, argtypes, values, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "evcharge_drop_guard: SPI_execute_with_args returned %d", rc);
	SPI_finish();
	PG_RETURN_VOID();
}
