/*-------------------------------------------------------------------------
 *
 * command.c
 *	  Commands to the charge points, and the registry of who is connected:
 *	  a thread with its own libpq connection that LISTENs.
 *
 * The database makes the commands (evcharge.ocpp_command: start_session()
 * a RemoteStartTransaction, the balance guard and ocpp_stop_charge() a
 * RemoteStopTransaction) and wakes the bridges with NOTIFY evcharge_command
 * (or evcharge_stop).  This thread then takes the open commands of the
 * piles this bridge holds (evcharge.ocpp_take_commands) and hands them to
 * the main thread, which sends them as CALLs with the id cmd-<command_id>;
 * the pile's answer comes back here and is recorded
 * (evcharge.ocpp_command_answer: a rejected start cancels its session).
 * Besides a notification, the open commands are looked for when a pile
 * connects (a command made while it was away) and every 5 s.
 *
 * The thread also keeps evcharge.ocpp_connection: a row per pile this
 * bridge holds, closed when the pile goes and, all of them, when the
 * bridge stops; and the bridge's own row of ocpp_bridge, refreshed every
 * 10 s (one row, however many piles), so that a vanished bridge's piles
 * count as not connected (or, after a crash, when it starts
 * again); start_session() refuses a remote start for an OCPP pile that is
 * not connected.  Events from the main thread (connected, disconnected,
 * answered) wait in a queue while the database is away and are written in
 * order once it is back.  The main thread never waits for this one.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "bridge.h"

typedef enum CmdEventKind
{
	EV_CONNECTED,
	EV_DISCONNECTED,
	EV_ANSWER
} CmdEventKind;

typedef struct CmdEvent
{
	struct CmdEvent *next;
	CmdEventKind kind;
	char		pile[21];
	int64_t		command_id;
	char		answer[64];
} CmdEvent;

static pthread_t thread;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static CmdEvent *events_head,
		   *events_tail;
static Command *ready_head,
		   *ready_tail;
static bool stop_requested;
static bool started;
static int	wake_pipe[2] = {-1, -1};
static PGconn *pg;

static void
Wake(void)
{
	char		b = 1;

	if (wake_pipe[1] >= 0 && write(wake_pipe[1], &b, 1) < 0 && errno != EAGAIN)
		LogEvent(NULL, "command thread: cannot wake it: %s", strerror(errno));
}

static void
PushEvent(CmdEventKind kind, const char *pile, int64_t command_id, const char *answer)
{
	CmdEvent   *e = calloc(1, sizeof(CmdEvent));

	if (e == NULL)
		abort();
	e->kind = kind;
	snprintf(e->pile, sizeof(e->pile), "%s", pile);
	e->command_id = command_id;
	if (answer)
		snprintf(e->answer, sizeof(e->answer), "%s", answer);
	pthread_mutex_lock(&mu);
	if (events_tail)
		events_tail->next = e;
	else
		events_head = e;
	events_tail = e;
	pthread_mutex_unlock(&mu);
	Wake();
}

void
CommandsPileConnected(const char *pile)
{
	PushEvent(EV_CONNECTED, pile, 0, NULL);
}

void
CommandsPileDisconnected(const char *pile)
{
	PushEvent(EV_DISCONNECTED, pile, 0, NULL);
}

void
CommandsAnswer(const char *pile, int64_t command_id, const char *answer)
{
	PushEvent(EV_ANSWER, pile, command_id, answer);
}

Command *
CommandsTake(void)
{
	Command    *list;

	pthread_mutex_lock(&mu);
	list = ready_head;
	ready_head = ready_tail = NULL;
	pthread_mutex_unlock(&mu);
	return list;
}

/* Run one statement; false when the connection failed (logged). */
static bool
Exec(const char *sql, int nparams, const char *const *params)
{
	PGresult   *res = PQexecParams(pg, sql, nparams, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);
	bool		ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;

	if (!ok)
	{
		char		msg[300];

		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(pg));
		msg[strcspn(msg, "\n")] = '\0';
		LogEvent(NULL, "command thread: %s", msg);
	}
	PQclear(res);
	/* A statement that failed for itself is not retried; a lost connection is. */
	return ok || PQstatus(pg) == CONNECTION_OK;
}

/* One event from the main thread into the database; false: connection lost. */
static bool
ApplyEvent(const CmdEvent *e)
{
	char		id[24];
	const char *p3[3] = {e->pile, config.bridge_id, NULL};

	switch (e->kind)
	{
		case EV_CONNECTED:
			return Exec("INSERT INTO evcharge.ocpp_connection AS c (pile_id, bridge_id) VALUES ($1, $2) "
						"ON CONFLICT (pile_id) DO UPDATE SET bridge_id = EXCLUDED.bridge_id, connected_at = now(), "
						"disconnected_at = NULL", 2, p3);
		case EV_DISCONNECTED:
			return Exec("UPDATE evcharge.ocpp_connection SET disconnected_at = now() "
						"WHERE pile_id OPERATOR(evcharge.=) $1::evcharge.pile_id AND bridge_id = $2 AND disconnected_at IS NULL", 2, p3);
		case EV_ANSWER:
			snprintf(id, sizeof(id), "%" PRId64, e->command_id);
			p3[0] = id;
			p3[1] = e->pile;
			p3[2] = e->answer;
			return Exec("SELECT evcharge.ocpp_command_answer($1, $2, $3)", 3, p3);
	}
	return true;
}

/* The open commands of our piles, handed to the main thread. */
static bool
TakeCommands(void)
{
	const char *params[1] = {config.bridge_id};
	PGresult   *res = PQexecParams(pg, "SELECT command_id, pile_id, action, connector_id, coalesce(id_tag, ''), "
									"coalesce(transaction_id, -1) FROM evcharge.ocpp_take_commands($1)",
									1, NULL, params, NULL, NULL, 0);
	Command    *head = NULL,
			   *tail = NULL;

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		LogEvent(NULL, "command thread: taking commands failed: %s", PQerrorMessage(pg));
		PQclear(res);
		return PQstatus(pg) == CONNECTION_OK;
	}
	for (int i = 0; i < PQntuples(res); i++)
	{
		Command    *c = calloc(1, sizeof(Command));

		if (c == NULL)
			abort();
		c->id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		snprintf(c->pile, sizeof(c->pile), "%s", PQgetvalue(res, i, 1));
		snprintf(c->action, sizeof(c->action), "%s", PQgetvalue(res, i, 2));
		c->connector = atoi(PQgetvalue(res, i, 3));
		snprintf(c->id_tag, sizeof(c->id_tag), "%s", PQgetvalue(res, i, 4));
		c->transaction_id = atoi(PQgetvalue(res, i, 5));
		if (tail)
			tail->next = c;
		else
			head = c;
		tail = c;
	}
	PQclear(res);
	if (head)
	{
		pthread_mutex_lock(&mu);
		if (ready_tail)
			ready_tail->next = head;
		else
			ready_head = head;
		ready_tail = tail;
		pthread_mutex_unlock(&mu);
		ServerWake();
	}
	return true;
}

/* Connect and LISTEN; the first time, close what a crash of ours left open. */
static bool
Connect(bool *first)
{
	const char *params[1] = {config.bridge_id};

	pg = DbConnect();
	if (pg == NULL)
		return false;
	if (!Exec("LISTEN evcharge_command", 0, NULL) || !Exec("LISTEN evcharge_stop", 0, NULL))
		goto fail;
	if (*first)
	{
		if (!Exec("UPDATE evcharge.ocpp_connection SET disconnected_at = now() "
				  "WHERE bridge_id = $1 AND disconnected_at IS NULL", 1, params) ||
			!Exec("INSERT INTO evcharge.ocpp_bridge (bridge_id) VALUES ($1) ON CONFLICT (bridge_id) "
				  "DO UPDATE SET started_at = now(), seen_at = now()", 1, params))
			goto fail;
		*first = false;
	}
	LogEvent(NULL, "command thread: connected, listening on evcharge_command and evcharge_stop");
	return true;
fail:
	PQfinish(pg);
	pg = NULL;
	return false;
}

static void *
CommandThread(void *arg)
{
	bool		first = true;
	int			backoff_ms = 100;
	int64_t		next_poll = 0,
				next_refresh = 0;

	for (;;)
	{
		CmdEvent   *events;
		bool		poll_now = false;
		bool		stop;
		bool		lost = false;

		pthread_mutex_lock(&mu);
		stop = stop_requested;
		pthread_mutex_unlock(&mu);

		if (pg == NULL || PQstatus(pg) != CONNECTION_OK)
		{
			if (pg)
			{
				PQfinish(pg);
				pg = NULL;
				LogEvent(NULL, "command thread: database down: trying again");
			}
			if (!Connect(&first))
			{
				struct pollfd pfd = {wake_pipe[0], POLLIN, 0};

				if (stop)
					break;
				poll(&pfd, 1, backoff_ms);
				backoff_ms = backoff_ms * 2 > config.db_retry_max_ms ? config.db_retry_max_ms : backoff_ms * 2;
				continue;
			}
			backoff_ms = 100;
			next_poll = 0;
		}

		/* The main thread's events, in order; on a lost connection the rest wait. */
		pthread_mutex_lock(&mu);
		events = events_head;
		events_head = events_tail = NULL;
		pthread_mutex_unlock(&mu);
		while (events)
		{
			CmdEvent   *e = events;

			if (!ApplyEvent(e))
			{
				lost = true;
				break;
			}
			if (e->kind == EV_CONNECTED)
				poll_now = true;
			events = e->next;
			free(e);
		}
		if (lost)
		{
			CmdEvent   *last = events;

			while (last->next)
				last = last->next;
			pthread_mutex_lock(&mu);
			last->next = events_head;
			if (events_head == NULL)
				events_tail = last;
			events_head = events;
			pthread_mutex_unlock(&mu);
			continue;
		}
		if (stop)
			break;

		/* Notifications: any of them means there may be work. */
		if (PQconsumeInput(pg) == 0)
			continue;
		for (PGnotify *n; (n = PQnotifies(pg)) != NULL;)
		{
			poll_now = true;
			PQfreemem(n);
		}
		if (NowUs() >= next_refresh)
		{
			const char *params[1] = {config.bridge_id};

			if (!Exec("INSERT INTO evcharge.ocpp_bridge (bridge_id) VALUES ($1) "
					  "ON CONFLICT (bridge_id) DO UPDATE SET seen_at = now()", 1, params))
				continue;
			next_refresh = NowUs() + 10 * 1000000LL;
		}
		if (poll_now || NowUs() >= next_poll)
		{
			if (!TakeCommands())
				continue;
			next_poll = NowUs() + 5 * 1000000LL;
		}

		/* Sleep until a notification, an event of the main thread or 1 s. */
		{
			struct pollfd pfd[2] = {{PQsocket(pg), POLLIN, 0}, {wake_pipe[0], POLLIN, 0}};
			char		buf[64];

			if (poll(pfd, 2, 1000) > 0 && (pfd[1].revents & POLLIN))
				while (read(wake_pipe[0], buf, sizeof(buf)) > 0)
					;
		}
	}

	/* Stopping: what we held is no longer connected. */
	if (pg && PQstatus(pg) == CONNECTION_OK)
	{
		const char *params[1] = {config.bridge_id};

		Exec("UPDATE evcharge.ocpp_connection SET disconnected_at = now() "
			 "WHERE bridge_id = $1 AND disconnected_at IS NULL", 1, params);
	}
	if (pg)
		PQfinish(pg);
	pg = NULL;
	return NULL;
}

int
CommandsStart(void)
{
	if (pipe(wake_pipe) != 0)
	{
		LogEvent(NULL, "cannot make the command thread's pipe: %s", strerror(errno));
		return -1;
	}
	for (int i = 0; i < 2; i++)
		(void) fcntl(wake_pipe[i], F_SETFL, fcntl(wake_pipe[i], F_GETFL) | O_NONBLOCK);
	if (pthread_create(&thread, NULL, CommandThread, NULL) != 0)
	{
		LogEvent(NULL, "cannot start the command thread");
		return -1;
	}
	started = true;
	return 0;
}

void
CommandsStop(void)
{
	if (!started)
		return;
	pthread_mutex_lock(&mu);
	stop_requested = true;
	pthread_mutex_unlock(&mu);
	Wake();
	pthread_join(thread, NULL);
	started = false;
}
