/*-------------------------------------------------------------------------
 *
 * registry.c
 *	  The registry the handshake checks, held in memory: which piles are
 *	  registered, the password hash of each that has one, and whether its
 *	  operator requires passwords (security profile 1).
 *
 * A thread of its own reads the whole registry over its own connection
 * and swaps the new table in; it LISTENs on evcharge_registry, which the
 * statement triggers on pile, station, ocpp_credential and ocpp_policy
 * notify (sql/install/bridge.sql), and reads it again on a notification,
 * after every reconnect and every 5 minutes.  The main thread's look-up is
 * a hash probe under a mutex that the thread takes only to swap a
 * pointer: a slow or absent database never holds up a handshake, and so
 * never the other piles.  What the look-up cannot know is answered "cannot
 * check" (503, the pile tries again) rather than "not registered" (404):
 * before the first read, while the thread's connection is down, and
 * between a notification and the read it causes.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "bridge.h"

typedef struct RegEntry
{
	struct RegEntry *next;
	const PileAuth *auth;		/* its password hash; NULL: none */
	bool		require_password;
	char		pile[21];
} RegEntry;

typedef struct Registry
{
	RegEntry  **buckets;
	size_t		nbuckets;		/* a power of two */
	RegEntry   *entries;
	PileAuth   *auths;
	int			count;
	int			with_password;
} Registry;

static pthread_t thread;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t loaded_cond = PTHREAD_COND_INITIALIZER;
static Registry *current;		/* under mu */
static bool stale = true;		/* under mu: a change may not be in current */
static volatile bool stop_requested;

#define RELOAD_EVERY_US (300 * INT64_C(1000000))

static size_t
Bucket(const char *pile, size_t nbuckets)
{
	uint32_t	h = 2166136261u;

	for (; *pile; pile++)
		h = (h ^ (unsigned char) *pile) * 16777619u;
	return h & (nbuckets - 1);
}

static void
RegistryFree(Registry *r)
{
	if (r == NULL)
		return;
	free(r->buckets);
	free(r->entries);
	free(r->auths);
	free(r);
}

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

/* Read the whole registry; NULL when the query failed (logged). */
static Registry *
Load(PGconn *pg)
{
	PGresult   *res;
	Registry   *r;
	int			n;

	res = PQexec(pg,
				 "SELECT pl.pile_id::text, encode(c.salt, 'hex'), c.iterations, encode(c.hash, 'hex'), "
				 "coalesce(po.require_password, false) "
				 "FROM evcharge.pile pl JOIN evcharge.station st USING (station_id) "
				 "LEFT JOIN evcharge.ocpp_credential c ON c.pile_id OPERATOR(evcharge.=) pl.pile_id "
				 "LEFT JOIN evcharge.ocpp_policy po ON po.operator_id = st.operator_id");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		char		msg[300];

		snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(res));
		msg[strcspn(msg, "\n")] = '\0';
		LogEvent(NULL, "registry: reading it failed: %s", msg);
		PQclear(res);
		return NULL;
	}
	n = PQntuples(res);
	r = XRealloc(NULL, sizeof(Registry));
	memset(r, 0, sizeof(*r));
	r->nbuckets = 1024;
	while (r->nbuckets < (size_t) n * 2)
		r->nbuckets *= 2;
	r->buckets = XRealloc(NULL, r->nbuckets * sizeof(RegEntry *));
	memset(r->buckets, 0, r->nbuckets * sizeof(RegEntry *));
	r->entries = XRealloc(NULL, (size_t) (n > 0 ? n : 1) * sizeof(RegEntry));
	for (int i = 0; i < n; i++)
		if (!PQgetisnull(res, i, 1))
			r->with_password++;
	r->auths = XRealloc(NULL, (size_t) (r->with_password > 0 ? r->with_password : 1) * sizeof(PileAuth));
	r->with_password = 0;
	for (int i = 0; i < n; i++)
	{
		RegEntry   *e = &r->entries[r->count];
		size_t		b;

		memset(e, 0, sizeof(*e));
		snprintf(e->pile, sizeof(e->pile), "%s", PQgetvalue(res, i, 0));
		e->require_password = strcmp(PQgetvalue(res, i, 4), "t") == 0;
		if (!PQgetisnull(res, i, 1))
		{
			PileAuth   *a = &r->auths[r->with_password++];

			memset(a, 0, sizeof(*a));
			a->has_password = true;
			a->salt_len = FromHex(PQgetvalue(res, i, 1), a->salt, sizeof(a->salt));
			a->iterations = atoi(PQgetvalue(res, i, 2));
			if (a->salt_len <= 0 ||
				FromHex(PQgetvalue(res, i, 3), a->hash, sizeof(a->hash)) != (int) sizeof(a->hash))
			{
				/* A row we cannot read: no password will match it. */
				LogEvent(e->pile, "registry: its password hash cannot be read; it cannot connect");
				a->iterations = 0;
			}
			e->auth = a;
		}
		b = Bucket(e->pile, r->nbuckets);
		e->next = r->buckets[b];
		r->buckets[b] = e;
		r->count++;
	}
	PQclear(res);
	return r;
}

static void
SetStale(bool s)
{
	pthread_mutex_lock(&mu);
	stale = s;
	pthread_mutex_unlock(&mu);
}

static void
SleepMs(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static void *
RegistryMain(void *arg)
{
	PGconn	   *pg = NULL;
	bool		dirty = true;
	int64_t		loaded_at = 0;
	int			wait_ms = 100;

	while (!stop_requested)
	{
		struct pollfd pfd;
		PGnotify   *nt;

		if (pg == NULL || PQstatus(pg) != CONNECTION_OK)
		{
			PGresult   *res;

			if (pg)
			{
				PQfinish(pg);
				LogEvent(NULL, "registry: connection lost; the piles known are still admitted");
			}
			SetStale(true);
			pg = DbConnect();
			if (pg == NULL)
			{
				for (int slept = 0; slept < wait_ms && !stop_requested; slept += 100)
					SleepMs(100);
				wait_ms = wait_ms * 2 > config.db_retry_max_ms ? config.db_retry_max_ms : wait_ms * 2;
				continue;
			}
			wait_ms = 100;
			/* Named, so that an operator (and the test) can tell it in pg_stat_activity. */
			res = PQexec(pg, "SELECT set_config('application_name', 'evcharge-bridge registry', false) "
						 "WHERE current_setting('application_name') = 'evcharge-bridge'");
			PQclear(res);
			res = PQexec(pg, "LISTEN evcharge_registry");
			if (PQresultStatus(res) != PGRES_COMMAND_OK)
			{
				PQclear(res);
				PQfinish(pg);
				pg = NULL;
				continue;
			}
			PQclear(res);
			dirty = true;
		}
		if (dirty || NowUs() - loaded_at > RELOAD_EVERY_US)
		{
			int64_t		began = NowUs();
			Registry   *r;
			Registry   *old;

			dirty = false;
			r = Load(pg);
			if (r == NULL)
			{
				if (PQstatus(pg) == CONNECTION_OK)
				{
					/* Not the connection (a grant missing?): try again, backing off. */
					dirty = true;
					for (int slept = 0; slept < wait_ms && !stop_requested; slept += 100)
						SleepMs(100);
					wait_ms = wait_ms * 2 > config.db_retry_max_ms ? config.db_retry_max_ms : wait_ms * 2;
				}
				continue;
			}
			/* A notification that came during the read may not be in it. */
			PQconsumeInput(pg);
			while ((nt = PQnotifies(pg)) != NULL)
			{
				dirty = true;
				PQfreemem(nt);
			}
			pthread_mutex_lock(&mu);
			old = current;
			current = r;
			stale = dirty;
			pthread_cond_broadcast(&loaded_cond);
			pthread_mutex_unlock(&mu);
			RegistryFree(old);
			wait_ms = 100;
			loaded_at = NowUs();
			LogEvent(NULL, "registry: %d pile(s) read, %d with a password, in %lld ms", r->count,
					 r->with_password, (long long) ((loaded_at - began) / 1000));
			if (dirty)
				continue;
		}
		pfd.fd = PQsocket(pg);
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (pfd.fd < 0 || (poll(&pfd, 1, 1000) < 0 && errno != EINTR))
		{
			PQfinish(pg);
			pg = NULL;
			continue;
		}
		if (pfd.revents && PQconsumeInput(pg) != 1)
			continue;			/* the connection broke: reconnect above */
		while ((nt = PQnotifies(pg)) != NULL)
		{
			if (!dirty)
				SetStale(true);
			dirty = true;
			PQfreemem(nt);
		}
		if (dirty)
			SleepMs(50);		/* gather a burst of changes into one read */
	}
	if (pg)
		PQfinish(pg);
	return NULL;
}

/* Start the thread and wait up to wait_ms for the first read. */
int
RegistryStart(int wait_ms)
{
	struct timespec deadline;

	if (pthread_create(&thread, NULL, RegistryMain, NULL) != 0)
	{
		LogEvent(NULL, "cannot start the registry thread: %s", strerror(errno));
		return -1;
	}
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += wait_ms / 1000;
	deadline.tv_nsec += (long) (wait_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L)
	{
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&mu);
	while (current == NULL)
		if (pthread_cond_timedwait(&loaded_cond, &mu, &deadline) == ETIMEDOUT)
			break;
	if (current == NULL)
		LogEvent(NULL, "registry: not read yet (database unreachable): handshakes are refused with 503 until it is");
	pthread_mutex_unlock(&mu);
	return 0;
}

void
RegistryStop(void)
{
	stop_requested = true;
	pthread_join(thread, NULL);
	pthread_mutex_lock(&mu);
	RegistryFree(current);
	current = NULL;
	pthread_mutex_unlock(&mu);
}

/*
 * Whether a pile may connect: it must be registered; and what its password
 * check needs.  On the main thread, a probe of the table in memory.
 */
PileCheck
RegistryCheckPile(const char *pile, PileAuth *auth)
{
	PileCheck	rc;
	const RegEntry *e = NULL;

	memset(auth, 0, sizeof(*auth));
	pthread_mutex_lock(&mu);
	if (current == NULL)
		rc = PILE_DB_DOWN;
	else
	{
		for (e = current->buckets[Bucket(pile, current->nbuckets)]; e; e = e->next)
			if (strcmp(e->pile, pile) == 0)
				break;
		if (e)
		{
			if (e->auth)
				*auth = *e->auth;
			auth->require_password = e->require_password;
			rc = PILE_ADMITTED;
		}
		else
			rc = stale ? PILE_DB_DOWN : PILE_NOT_REGISTERED;
	}
	pthread_mutex_unlock(&mu);
	return rc;
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
