/*-------------------------------------------------------------------------
 *
 * db.c
 *	  Opening a libpq connection the way every part of the bridge does,
 *	  and the handshake's registry look-up and password check (main
 *	  thread).
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
#include <openssl/crypto.h>
#include <openssl/evp.h>

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

/* Hex digits into bytes; the count, or -1. */
static int
FromHex(const char *hex, unsigned char *out, int max)
{
	int			n = 0;

	for (; hex[0] && hex[1]; hex += 2)
	{
		unsigned	v;

		if (n >= max || sscanf(hex, "%2x", &v) != 1)
			return -1;
		out[n++] = (unsigned char) v;
	}
	return n;
}

/*
 * Whether a pile may connect: it must be registered; and what its password
 * check needs (security profile 1).  On the main thread, one short query
 * per handshake; a lost connection is opened again once.
 */
PileCheck
RegistryCheckPile(const char *pile, PileAuth *auth)
{
	const char *params[1] = {pile};

	memset(auth, 0, sizeof(*auth));
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
		res = PQexecParams(registry_pg,
						   "SELECT encode(c.salt, 'hex'), c.iterations, encode(c.hash, 'hex'), "
						   "coalesce(po.require_password, false) "
						   "FROM evcharge.pile pl JOIN evcharge.station st USING (station_id) "
						   "LEFT JOIN evcharge.ocpp_credential c ON c.pile_id OPERATOR(evcharge.=) pl.pile_id "
						   "LEFT JOIN evcharge.ocpp_policy po ON po.operator_id = st.operator_id "
						   "WHERE pl.pile_id OPERATOR(evcharge.=) $1::evcharge.pile_id",
						   1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) == PGRES_TUPLES_OK)
		{
			bool		found = PQntuples(res) > 0;

			if (found)
			{
				auth->require_password = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
				if (!PQgetisnull(res, 0, 0))
				{
					auth->salt_len = FromHex(PQgetvalue(res, 0, 0), auth->salt, sizeof(auth->salt));
					auth->iterations = atoi(PQgetvalue(res, 0, 1));
					auth->has_password = auth->salt_len > 0 &&
						FromHex(PQgetvalue(res, 0, 2), auth->hash, sizeof(auth->hash)) == (int) sizeof(auth->hash);
					if (!auth->has_password)
					{
						/* A row we cannot read: refuse rather than admit. */
						LogEvent(pile, "registry: its password hash cannot be read");
						auth->has_password = true;
						auth->iterations = 0;
					}
				}
			}
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

/*
 * Whether a password is the pile's: PBKDF2-HMAC-SHA256 with its salt and
 * iterations, the same OpenSSL call as evcharge.ocpp_hash_password(),
 * compared in constant time.
 */
bool
PasswordMatches(const PileAuth *auth, const char *password, size_t len)
{
	unsigned char h[32];

	if (!auth->has_password || auth->iterations <= 0 || len > 1024)
		return false;
	if (PKCS5_PBKDF2_HMAC(password, (int) len, auth->salt, auth->salt_len, auth->iterations,
						  EVP_sha256(), sizeof(h), h) != 1)
		return false;
	return CRYPTO_memcmp(h, auth->hash, sizeof(h)) == 0;
}
