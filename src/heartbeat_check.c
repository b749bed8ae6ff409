/*-------------------------------------------------------------------------
 *
 * heartbeat_check.c
 *	  Owns heartbeat acceptance: the one definition of which heartbeats the
 *	  pipeline takes (HeartbeatProblemOf), its wording
 *	  (evcharge.heartbeat_problem(), the quarantine reason), the registry
 *	  look-up it needs (each pile of a batch once, with its operator's
 *	  anomaly_policy.plausible_from), and the move of refused rows from the
 *	  log to evcharge.quarantine.  The trigger (heartbeat_trigger.c) asks
 *	  HeartbeatAccepted() of every row; SQL asks heartbeat_problem() of one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "heartbeat_batch.h"

PG_FUNCTION_INFO_V1(heartbeat_problem);

/*
 * The registry, one row per pile of the batch (one gun of it given), with
 * the current type the registry holds (the id may not say it) and the
 * earliest time its operator believes of a pile clock.  The current type is
 * read through to_jsonb(): this library also serves a database still at
 * 0.2.0 until ALTER EXTENSION UPDATE, whose pile table has no current_type
 * and whose piles' type is the id's (the coalesce; from 0.3.0 on the
 * registry's type is NULL only where the id says none either).  The
 * pile is a probe of its primary key per gun (LIMIT 1, as in the session
 * look-up): the generic plan of small batches, made for an array of unknown
 * length, would otherwise hash the whole registry for a batch of one row.
 */
static const char *const PileSql =
"SELECT p.gun_count, p.rated_power_w, p.station_id, st.tz, ap.plausible_from,"
"       coalesce(p.current_type, evcharge.current_type(u.g))"
" FROM unnest($1::evcharge.gun_id[]) WITH ORDINALITY AS u(g, n)"
" LEFT JOIN LATERAL (SELECT p.gun_count, p.rated_power_w, p.station_id,"
"                           to_jsonb(p) ->> 'current_type' AS current_type FROM evcharge.pile p"
"                    WHERE p.pile_id OPERATOR(evcharge.=) evcharge.pile(u.g) LIMIT 1) p ON true"
" LEFT JOIN evcharge.station st ON st.station_id = p.station_id"
" LEFT JOIN evcharge.anomaly_policy ap ON ap.operator_id = st.operator_id"
" ORDER BY u.n";

/*
 * Quarantine: the rows of the transition table at these places (counted
 * from 1 in the order the trigger read them, which is the table's scan
 * order) go to quarantine whole, with the reason given, and leave the log.
 * A row is removed only if all its columns equal a quarantined one, so an
 * accepted twin with the same gun and time stays.
 */
static const char *const QuarantineSql =
"WITH bad AS ("
"  INSERT INTO evcharge.quarantine (source, reason, gun, ts, payload)"
"  SELECT 'heartbeat', b.reason, c.gun, c.ts, to_jsonb(c) - 'place'"
"  FROM (SELECT n.*, row_number() OVER () AS place FROM new_rows n) c"
"  JOIN unnest($1::int8[], $2::text[]) AS b(place, reason) ON b.place = c.place"
"  RETURNING gun, ts, payload"
"), del AS ("
"  DELETE FROM evcharge.heartbeat h USING bad"
"  WHERE h.gun OPERATOR(evcharge.=) bad.gun AND h.ts = bad.ts"
"    AND to_jsonb(h) = bad.payload"
"  RETURNING 1"
") "
"SELECT (SELECT count(*) FROM bad), (SELECT count(*) FROM del)";

/*
 * Rows without gun, time or status, quarantined the same way and deleted
 * from the log, each way of being NULL by a look-up the log's index or
 * partitioning serves (a NULL time can only be in the default partition; a
 * NULL gun is an index search on each partition).
 */
static const char *const NullKeySql =
"WITH bad AS ("
"  INSERT INTO evcharge.quarantine (source, reason, gun, ts, payload)"
"  SELECT 'heartbeat', b.reason, c.gun, c.ts, to_jsonb(c) - 'place'"
"  FROM (SELECT n.*, row_number() OVER () AS place FROM new_rows n) c"
"  JOIN unnest($1::int8[], $2::text[]) AS b(place, reason) ON b.place = c.place"
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

static KeptStatement pile_plan = {NULL, NULL};
static KeptStatement quarantine_plan = {NULL, NULL};
static KeptStatement null_key_plan = {NULL, NULL};

/* Why a heartbeat is refused; HB_ACCEPTED when it is not. */
typedef enum HbProblem
{
	HB_ACCEPTED,
	HB_NO_GUN,
	HB_NO_TIME,
	HB_NO_STATUS,
	HB_NOT_REGISTERED,
	HB_NO_SUCH_GUN,
	HB_LOCK_STATUS,
	HB_NO_METER,
	HB_NO_POLICY,
	HB_CLOCK_NOT_SET,
	HB_CLOCK_AHEAD,
	HB_SOC_RANGE
} HbProblem;

/*
 * The rule, once.  r has gun, time and status (a row without them is
 * HB_NO_GUN, HB_NO_TIME or HB_NO_STATUS, which the caller knows first); p
 * is its pile's facts.  Clocks: not before the operator's plausible_from
 * (anomaly_policy), not more than a day after the transaction's start.
 */
static HbProblem
HeartbeatProblemOf(const HbRow *r, const PileInfo *p)
{
	if (!p->registered)
		return HB_NOT_REGISTERED;
	if (GunIdNumber(&r->gun) > p->gun_count)
		return HB_NO_SUCH_GUN;
	if ((r->status == GUN_CHARGING || r->status == GUN_SUSPENDED || r->status == GUN_OCCUPIED) &&
		p->ground_lock)
		return HB_LOCK_STATUS;
	if (r->status == GUN_CHARGING && r->meter_null)
		return HB_NO_METER;
	if (!p->has_policy)
		return HB_NO_POLICY;
	if (r->ts < p->plausible_from)
		return HB_CLOCK_NOT_SET;
	if (r->ts > GetCurrentTransactionStartTimestamp() + USECS_PER_DAY)
		return HB_CLOCK_AHEAD;
	if (!r->soc_null && (r->soc < 0 || r->soc > 100))
		return HB_SOC_RANGE;
	return HB_ACCEPTED;
}

bool
HeartbeatAccepted(const HbRow *r, const PileInfo *p)
{
	return HeartbeatProblemOf(r, p) == HB_ACCEPTED;
}

static char *
PileText(const GunId *gun)
{
	PileId		pile;

	GunIdPile(gun, &pile);
	return DatumGetCString(DirectFunctionCall1(pile_id_out, PointerGetDatum(&pile)));
}

/* A time as the reasons give it: ISO, with the session zone's offset. */
static char *
TimeText(TimestampTz t)
{
	return text_to_cstring(DatumGetTextPP(DirectFunctionCall2(timestamptz_to_char, TimestampTzGetDatum(t),
															  CStringGetTextDatum("YYYY-MM-DD HH24:MI:SSOF"))));
}

/* The quarantine reason for a problem of r (gun, time and status known). */
static char *
ProblemText(HbProblem k, const HbRow *r, const PileInfo *p)
{
	switch (k)
	{
		case HB_ACCEPTED:
			return NULL;
		case HB_NO_GUN:
			return pstrdup("no gun");
		case HB_NO_TIME:
			return pstrdup("no time");
		case HB_NO_STATUS:
			return pstrdup("no status");
		case HB_NOT_REGISTERED:
			return psprintf("pile %s is not registered", PileText(&r->gun));
		case HB_NO_SUCH_GUN:
			return psprintf("gun %d of pile %s, which has %d gun(s)",
							GunIdNumber(&r->gun), PileText(&r->gun), p->gun_count);
		case HB_LOCK_STATUS:
			return psprintf("status %s, which a parking ground lock cannot have",
							GunStatusName[r->status]);
		case HB_NO_METER:
			return pstrdup("charging without a meter reading");
		case HB_NO_POLICY:
			return pstrdup("the pile's operator has no anomaly_policy row, whose plausible_from bounds pile clocks");
		case HB_CLOCK_NOT_SET:
			return psprintf("time before %s (the operator's plausible_from): the pile's clock is not set",
							TimeText(p->plausible_from));
		case HB_CLOCK_AHEAD:
			return pstrdup("time more than a day ahead: the pile's clock is wrong");
		case HB_SOC_RANGE:
			return psprintf("state of charge %d outside 0-100", r->soc);
	}
	return NULL;
}

PileInfo *
LookUpPiles(const GunId *piles, int npiles, Oid gun_type)
{
	PileInfo   *info = palloc0(sizeof(PileInfo) * Max(npiles, 1));
	ArrayBuildState *a = BatchArray(gun_type);
	Oid			types[1];
	Datum		args[1];
	int			i;

	for (i = 0; i < npiles; i++)
		BatchArrayPush(a, PointerGetDatum(&piles[i]), false);
	types[0] = get_array_type(gun_type);
	args[0] = BatchArrayDatum(a);
	BatchExecute(pile_plan, PileSql, 1, types, args, SPI_OK_SELECT, "pile look-up");
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
		v = SPI_getbinval(tup, desc, 5, &isnull);
		info[i].has_policy = !isnull;
		info[i].plausible_from = isnull ? DT_NOBEGIN : DatumGetTimestampTz(v);
		v = SPI_getbinval(tup, desc, 6, &isnull);
		info[i].current_type = isnull ? NULL : TextDatumGetCString(v);
		info[i].ground_lock = GunIdIsGroundLock(&piles[i]);
	}
	SPI_freetuptable(SPI_tuptable);
	return info;
}

/* Runs a quarantine statement over (place, reason) pairs; returns its counts. */
static void
RunQuarantine(KeptStatement plan, const char *sql, ArrayBuildState *places,
			  ArrayBuildState *reasons, int64 *quarantined, int64 *deleted)
{
	Oid			types[2] = {INT8ARRAYOID, TEXTARRAYOID};
	Datum		args[2];
	bool		isnull;

	args[0] = BatchArrayDatum(places);
	args[1] = BatchArrayDatum(reasons);
	BatchExecute(plan, sql, 2, types, args, SPI_OK_SELECT, "quarantine");
	*quarantined = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	*deleted = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	SPI_freetuptable(SPI_tuptable);
}

void
QuarantineRefused(HbRow **bad, int nbad, const PileInfo *const *pile_of,
				  const HbNullKey *nulls, int nnull)
{
	int64		quarantined;
	int64		deleted;
	int			i;

	if (nnull > 0)
	{
		ArrayBuildState *places = BatchArray(INT8OID);
		ArrayBuildState *reasons = BatchArray(TEXTOID);

		for (i = 0; i < nnull; i++)
		{
			HbProblem	k = nulls[i].gun_null ? HB_NO_GUN : nulls[i].ts_null ? HB_NO_TIME : HB_NO_STATUS;

			BatchArrayPush(places, Int64GetDatum(nulls[i].ordinal), false);
			BatchArrayPush(reasons, CStringGetTextDatum(ProblemText(k, NULL, NULL)), false);
		}
		RunQuarantine(null_key_plan, NullKeySql, places, reasons, &quarantined, &deleted);
		if (quarantined != nnull || deleted != nnull)
			elog(ERROR, "%d heartbeats without gun, time or status, " INT64_FORMAT " quarantined, " INT64_FORMAT " deleted",
				 nnull, quarantined, deleted);
	}
	if (nbad > 0)
	{
		ArrayBuildState *places = BatchArray(INT8OID);
		ArrayBuildState *reasons = BatchArray(TEXTOID);

		for (i = 0; i < nbad; i++)
		{
			char	   *why = ProblemText(HeartbeatProblemOf(bad[i], pile_of[i]), bad[i], pile_of[i]);

			BatchArrayPush(places, Int64GetDatum(bad[i]->ordinal), false);
			BatchArrayPush(reasons, CStringGetTextDatum(why), false);
		}
		RunQuarantine(quarantine_plan, QuarantineSql, places, reasons, &quarantined, &deleted);
		if (quarantined != nbad)
			elog(ERROR, "%d heartbeats refused, " INT64_FORMAT " quarantined", nbad, quarantined);
	}
}

void
ForgetCheckStatements(void)
{
	ForgetKept(pile_plan);
	ForgetKept(quarantine_plan);
	ForgetKept(null_key_plan);
}

/*
 * evcharge.heartbeat_problem(gun, ts, status, meter_wh, soc, pile,
 * gun_count, plausible_from): why the pipeline would refuse this heartbeat,
 * or NULL; pile, gun_count and plausible_from are the registered pile's and
 * its operator's policy's (pile NULL when it is not registered).  The same
 * test and words as the trigger's (HeartbeatProblemOf, ProblemText).
 */
Datum
heartbeat_problem(PG_FUNCTION_ARGS)
{
	HbRow		r;
	PileInfo	p;
	HbProblem	k;
	char	   *label;
	int			s;

	memset(&r, 0, sizeof(r));
	memset(&p, 0, sizeof(p));
	if (PG_ARGISNULL(0))
		PG_RETURN_TEXT_P(cstring_to_text(ProblemText(HB_NO_GUN, NULL, NULL)));
	if (PG_ARGISNULL(1))
		PG_RETURN_TEXT_P(cstring_to_text(ProblemText(HB_NO_TIME, NULL, NULL)));
	if (PG_ARGISNULL(2))
		PG_RETURN_TEXT_P(cstring_to_text(ProblemText(HB_NO_STATUS, NULL, NULL)));
	r.gun = *PG_GETARG_GUN_ID_P(0);
	r.ts = PG_GETARG_TIMESTAMPTZ(1);
	label = DatumGetCString(DirectFunctionCall1(enum_out, PG_GETARG_DATUM(2)));
	for (s = 0; s < GUN_STATUS_COUNT; s++)
		if (strcmp(label, GunStatusName[s]) == 0)
			break;
	if (s == GUN_STATUS_COUNT)
		elog(ERROR, "unknown gun status \"%s\"", label);
	r.status = (uint8) s;
	r.meter_null = PG_ARGISNULL(3);
	r.soc_null = PG_ARGISNULL(4);
	r.soc = r.soc_null ? 0 : PG_GETARG_INT16(4);

	p.registered = !PG_ARGISNULL(5);
	/* an unknown gun count bounds nothing, as in SQL */
	p.gun_count = PG_ARGISNULL(6) ? PG_INT32_MAX : PG_GETARG_INT32(6);
	p.ground_lock = GunIdIsGroundLock(&r.gun);
	p.has_policy = !PG_ARGISNULL(7);
	p.plausible_from = p.has_policy ? PG_GETARG_TIMESTAMPTZ(7) : DT_NOBEGIN;

	k = HeartbeatProblemOf(&r, &p);
	if (k == HB_ACCEPTED)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(ProblemText(k, &r, &p)));
}
