/*-------------------------------------------------------------------------
 *
 * db.c
 *	  Opening a libpq connection the way every part of the bridge does,
 *	  and the handshake's registry look-up (main thread).
 *
 * Connections carry application_name evcharge-bridge (unless the conninfo
 * names another) and a connect timeout of 3 s, so that a database that
 * does not answer never blocks the bridge for long.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "bridge.h"

/* A new connection, or NULL (logged). */
PGconn *
DbConnect(void)
{
	const char *keys[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
	const char *vals[] = {"3", "evcharge-bridge", config.db, NULL};
	PGconn	   *pg = PQconnectdbParams(keys, vals, 1);

	if (PQstatus(pg) != CONNECTION_OK)
	{
		char		msg[300];

		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(pg));
		msg[strcspn(msg, "\n")] = '\0';
		LogEvent(NULL, "database unreachable: %s", msg);
		PQfinish(pg);
		return NULL;
	}
	return pg;
}

static PGconn *registry_pg = NULL;

/*
 * Whether a pile may connect: it must be registered.  On the main thread,
 * one short query per handshake; a lost connection is opened again once.
 */
PileCheck
RegistryCheckPile(const char *pile)
{
	const char *params[1] = {pile};

	for (int attempt = 0; attempt < 2; attempt++)
	{
		PGresult   *res;

		if (registry_pg == NULL || PQstatus(registry_pg) != CONNECTION_OK)
		{
			if (registry_pg)
				PQfinish(registry_pg);
			registry_pg = DbConnect();
			if (registry_pg == NULL)
				return PILE_DB_DOWN;
		}
		res = PQexecParams(registry_pg, "SELECT 1 FROM evcharge.pile WHERE pile_id = $1::evcharge.pile_id",
						   1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) == PGRES_TUPLES_OK)
		{
			bool		found = PQntuples(res) > 0;

			PQclear(res);
			return found ? PILE_ADMITTED : PILE_NOT_REGISTERED;
		}
		PQclear(res);
		if (PQstatus(registry_pg) == CONNECTION_OK)
		{
			LogEvent(pile, "registry look-up failed: %s", PQerrorMessage(registry_pg));
			return PILE_DB_DOWN;
		}
	}
	return PILE_DB_DOWN;
}
