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

#endif							/* EVCHARGE_SPI_TRIGGER_H */
