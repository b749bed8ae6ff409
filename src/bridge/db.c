/*-------------------------------------------------------------------------
 *
 * db.c
 *	  Opening a libpq connection the way every part of the bridge does.
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
