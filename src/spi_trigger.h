/*-------------------------------------------------------------------------
 *
 * spi_trigger.h
 *	  What evcharge's statement-level triggers share: checking how they were
 *	  fired, and statements prepared once per backend.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVCHARGE_SPI_TRIGGER_H
#define EVCHARGE_SPI_TRIGGER_H

#include "postgres.h"
#include "executor/spi.h"
#include "fmgr.h"

/*
 * Checks that fcinfo is a call as an AFTER INSERT ... FOR EACH STATEMENT
 * trigger with a transition table; raises 39P01 naming the function if not.
 * Then connects SPI and registers the transition table.
 */
extern void StatementTriggerBegin(FunctionCallInfo fcinfo, const char *name);

/* The statement sql, prepared on first use and kept for the backend's life. */
extern SPIPlanPtr KeptPlan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes);

/*
 * Batches of up to this many rows run the kept statements with a generic
 * plan, made once per backend; bigger batches plan each call for the
 * batch's real size, where planning costs nothing beside the execution.
 */
#define KEPT_GENERIC_MAX_ROWS 256

/*
 * A statement kept in two forms: [0] with a generic plan (CURSOR_OPT_GENERIC_PLAN,
 * planned once, for small batches), [1] planned for each call's parameters.
 */
typedef SPIPlanPtr KeptStatement[2];

/*
 * The form of the statement sql for a batch of nrows rows (see
 * KEPT_GENERIC_MAX_ROWS), prepared on first use and kept for the
 * backend's life; the plan cache replans it when what it reads changes.
 */
extern SPIPlanPtr KeptPlanFor(KeptStatement cache, const char *sql, int nargs, Oid *argtypes,
							  int64 nrows);

/*
 * The statement sql with a generic plan, prepared on first use and kept for
 * the backend's life: for statements whose plan no parameter changes (a
 * function call over an array).
 */
extern SPIPlanPtr KeptGenericPlan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes);

/*
 * SPI_execute_plan of the form for nrows rows (no row limit); the generic
 * form is planned without sequential scans (see spi_trigger.c).
 */
extern int	KeptExecute(KeptStatement cache, const char *sql, int nargs, Oid *argtypes, Datum *args,
						int64 nrows);

/* Frees both forms (the next use prepares them again). */
extern void ForgetKept(KeptStatement cache);

#endif							/* EVCHARGE_SPI_TRIGGER_H */
