/*-------------------------------------------------------------------------
 *
 * pile_id.h
 *	  In-memory layout of evcharge.pile_id and evcharge.gun_id, for the
 *	  other C units (pipeline, anomalies) that read ids.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVCHARGE_PILE_ID_H
#define EVCHARGE_PILE_ID_H

#include "postgres.h"
#include "fmgr.h"

/*
 * A pile id: the value of digits 1-10 (region, operator) and of the rest.
 * For a 20-digit id, tail holds digits 11-20; for a 16-digit legacy id it
 * holds digits 11-16 and PILE_ID_LEGACY_BIT is set.  16 bytes, passed by
 * reference, like uuid.
 */
typedef struct PileId
{
	uint64		head;
	uint64		tail;
} PileId;

/* A gun id: head as for a pile, tail = digits 11-23 (pile tail * 1000 + gun). */
typedef struct GunId
{
	uint64		head;
	uint64		tail;
} GunId;

#define PILE_ID_LEGACY_BIT	(UINT64CONST(1) << 63)

#define PileIdIsLegacy(p)	(((p)->tail & PILE_ID_LEGACY_BIT) != 0)
#define PileIdTail(p)		((p)->tail & ~PILE_ID_LEGACY_BIT)

#define DatumGetPileIdP(X)	((PileId *) DatumGetPointer(X))
#define PileIdPGetDatum(X)	PointerGetDatum(X)
#define PG_GETARG_PILE_ID_P(n) DatumGetPileIdP(PG_GETARG_DATUM(n))
#define PG_RETURN_PILE_ID_P(x) return PileIdPGetDatum(x)

#define DatumGetGunIdP(X)	((GunId *) DatumGetPointer(X))
#define GunIdPGetDatum(X)	PointerGetDatum(X)
#define PG_GETARG_GUN_ID_P(n) DatumGetGunIdP(PG_GETARG_DATUM(n))
#define PG_RETURN_GUN_ID_P(x) return GunIdPGetDatum(x)

/* Gun number (1..999) of a gun id. */
#define GunIdNumber(g)		((int) ((g)->tail % 1000))

/* The text form of a gun id, for the pipeline's session rows. */
extern Datum gun_id_out(PG_FUNCTION_ARGS);

/* The text form of a pile id. */
extern Datum pile_id_out(PG_FUNCTION_ARGS);

/* The pile part of a gun id. */
extern void GunIdPile(const GunId *g, PileId *p);

/* Whether the gun is a parking ground lock's (its id says so). */
extern bool GunIdIsGroundLock(const GunId *g);

#endif							/* EVCHARGE_PILE_ID_H */
