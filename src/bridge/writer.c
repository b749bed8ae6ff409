/*-------------------------------------------------------------------------
 *
 * writer.c
 *	  The database writer: a thread that takes the queued items in
 *	  batches and stores each batch in one transaction with COPY.
 *
 * A batch is flushed every flush_ms or as soon as flush_rows items wait,
 * whichever comes first.  In its transaction the writer maps transaction
 * ids (evcharge.ocpp_start_transaction / ocpp_stop_transaction), keeps the
 * registry's firmware, then COPYs the batch's heartbeat rows and pile
 * records, and commits.  Only then are the items handed back to the main
 * thread, which answers the transaction messages among them: nothing is
 * acknowledged that is not stored.  When the database goes away the batch
 * is kept and tried again after a reconnect with exponential backoff (the
 * queue fills meanwhile, and the server stops reading sockets when it is
 * full).  A batch that fails for its data is retried one item per
 * transaction, so one bad message cannot hold up the others; such an item
 * is answered with a CALLERROR.  Everything written is idempotent in the
 * pipeline, so a retried batch or a charge point's resend changes nothing.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "bridge.h"
#include "ykc.h"

static pthread_t thread;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static Item *queue_head,
		   *queue_tail;
static int	queue_len;
static Item *done_head,
		   *done_tail;
static int	outstanding;		/* queued + in flight + done not yet taken */
static bool stop_requested;
static volatile bool connected;
static PGconn *pg;

/* What the writer remembers between batches, per transaction and per gun. */
typedef struct CacheEntry
{
	struct CacheEntry *next;
	char		key[48];
	char		order_no[40];
	int			connector;
	int64_t		meter_wh;		/* gun: the last reading, -1 none */
	char		status[12];		/* gun: the last status written */
} CacheEntry;

#define CACHE_BUCKETS 65536
static CacheEntry *cache[CACHE_BUCKETS];

static CacheEntry *
CacheGet(const char *key, bool create)
{
	uint32_t	h = 2166136261u;
	CacheEntry *e;

	for (const char *p = key; *p; p++)
		h = (h ^ (unsigned char) *p) * 16777619u;
	h %= CACHE_BUCKETS;
	for (e = cache[h]; e; e = e->next)
		if (strcmp(e->key, key) == 0)
			return e;
	if (!create)
		return NULL;
	e = calloc(1, sizeof(CacheEntry));
	snprintf(e->key, sizeof(e->key), "%s", key);
	e->meter_wh = -1;
	e->next = cache[h];
	cache[h] = e;
	return e;
}

static CacheEntry *
GunCache(const char *pile, int connector)
{
	char		key[32];

	snprintf(key, sizeof(key), "G%s%03d", pile, connector);
	return CacheGet(key, true);
}

static CacheEntry *
TxCache(const char *pile, int txid, bool create)
{
	char		key[32];

	snprintf(key, sizeof(key), "T%s%d", pile, txid);
	return CacheGet(key, create);
}

/* A growing buffer of COPY text. */
typedef struct Buf
{
	char	   *data;
	size_t		len;
	size_t		cap;
	int			rows;
} Buf;

static void
BufAdd(Buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap)
	{
		b->cap = (b->len + n + 1) * 2 + 4096;
		b->data = XRealloc(b->data, b->cap);
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void
BufStr(Buf *b, const char *s)
{
	BufAdd(b, s, strlen(s));
}

/* A text field in COPY's text format: \N for NULL, backslash escapes. */
static void
BufField(Buf *b, const char *s, bool last)
{
	if (s == NULL)
		BufStr(b, "\\N");
	else
		for (; *s; s++)
		{
			switch (*s)
			{
				case '\\':
					BufStr(b, "\\\\");
					break;
				case '\t':
					BufStr(b, "\\t");
					break;
				case '\n':
					BufStr(b, "\\n");
					break;
				case '\r':
					BufStr(b, "\\r");
					break;
				default:
					BufAdd(b, s, 1);
			}
		}
	BufStr(b, last ? "\n" : "\t");
}

static void
BufInt(Buf *b, int64_t v, bool present)
{
	char		n[32];

	snprintf(n, sizeof(n), "%lld", (long long) v);
	BufField(b, present ? n : NULL, false);
}

/* One heartbeat row: gun, ts, status, meter_wh, power_w, voltage_v, current_a, soc, fault_code, order_no, received_at */
static void
HeartbeatRow(Buf *b, const Item *it, int64_t ts_us, const char *status, const Sample *s, int64_t meter_wh,
			 int fault_code, const char *order_no)
{
	char		gun[32];
	char		ts[48];
	char		num[32];

	snprintf(gun, sizeof(gun), "%s%03d", it->pile, it->connector);
	BufField(b, gun, false);
	FormatPgTime(ts_us, ts, sizeof(ts));
	BufField(b, ts, false);
	BufField(b, status, false);
	BufInt(b, meter_wh, meter_wh >= 0);
	BufInt(b, s ? s->power_w : 0, s && s->power_w != INT64_MIN && llabs(s->power_w) < 2000000000);
	if (s && !isnan(s->voltage_v))
	{
		snprintf(num, sizeof(num), "%.2f", s->voltage_v);
		BufField(b, num, false);
	}
	else
		BufField(b, NULL, false);
	if (s && !isnan(s->current_a))
	{
		snprintf(num, sizeof(num), "%.2f", s->current_a);
		BufField(b, num, false);
	}
	else
		BufField(b, NULL, false);
	BufInt(b, s ? s->soc : 0, s && s->soc >= 0);
	BufInt(b, fault_code, fault_code >= 0);
	BufField(b, order_no, false);
	FormatPgTime(it->received_us, ts, sizeof(ts));
	BufField(b, ts, true);
	b->rows++;
}

static PGresult *
Exec(const char *sql, int n, const char *const *params)
{
	return PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
}

/* Run a statement expecting tuples or a command; false on error (logged). */
static bool
Ok(PGresult *res, const char *what)
{
	ExecStatusType st = PQresultStatus(res);

	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return true;
	LogEvent(NULL, "%s failed: %s", what, PQresultErrorMessage(res));
	PQclear(res);
	return false;
}

static bool
Copy(const char *sql, Buf *b)
{
	PGresult   *res;

	if (b->rows == 0)
		return true;
	res = PQexec(pg, sql);
	if (PQresultStatus(res) != PGRES_COPY_IN)
		return Ok(res, "COPY");
	PQclear(res);
	if (PQputCopyData(pg, b->data, (int) b->len) != 1 || PQputCopyEnd(pg, NULL) != 1)
		return false;
	res = PQgetResult(pg);
	if (!Ok(res, "COPY"))
		return false;
	PQclear(res);
	while ((res = PQgetResult(pg)) != NULL)
		PQclear(res);
	return true;
}

/* The order and connector of a transaction id of a pile, from the cache or the table. */
static CacheEntry *
ResolveTx(const Item *it)
{
	CacheEntry *e = TxCache(it->pile, it->transaction_id, false);
	char		txid[16];
	const char *params[2] = {txid, it->pile};
	PGresult   *res;

	if (e)
		return e;
	snprintf(txid, sizeof(txid), "%d", it->transaction_id);
	res = Exec("SELECT order_no, connector_id FROM evcharge.ocpp_transaction "
			   "WHERE transaction_id = $1 AND pile_id OPERATOR(evcharge.=) $2::evcharge.pile_id", 2, params);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
	{
		e = TxCache(it->pile, it->transaction_id, true);
		snprintf(e->order_no, sizeof(e->order_no), "%s", PQgetvalue(res, 0, 0));
		e->connector = atoi(PQgetvalue(res, 0, 1));
	}
	PQclear(res);
	return e;
}

/*
 * A StopTransaction: its transaction closed (ocpp_stop_transaction), or,
 * for a transactionId this pile was never given (-1 after an offline
 * start), the transaction it stops found or made from the stop alone
 * (ocpp_stop_unknown_transaction); then the charging rows of its
 * transactionData, an occupied row at the stop and the pile record.  False
 * when the database failed (logged).
 */
static bool
StopItem(Item *it, Buf *hb, Buf *rec)
{
	char		txid[16],
				meter[32],
				ts[48],
				first_ts[48],
				first_wh[32];
	char		hint[16] = "";
	const char *params[9] = {it->pile, txid, meter, ts, it->reason, it->id_tag, NULL, NULL, NULL};
	const Sample *first = NULL;
	PGresult   *res;
	char		gun[32];
	char		order[40];
	char		start_ts[48];
	char		energy[32];
	char		id_tag[24];
	bool		has_energy;
	bool		remote;
	int			connector;

	snprintf(txid, sizeof(txid), "%d", it->transaction_id);
	snprintf(meter, sizeof(meter), "%lld", (long long) it->meter);
	FormatPgTime(it->ts_us, ts, sizeof(ts));
	res = Exec("SELECT order_no, connector_id, started_at, meter_start_wh, id_tag, remote "
			   "FROM evcharge.ocpp_stop_transaction($1::evcharge.pile_id, $2::int, $3::bigint, "
			   "$4::timestamptz, $5)", 5, params);
	if (!Ok(res, "StopTransaction"))
		return false;
	/* A function of one row: its columns are NULL when no transaction was found. */
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
	{
		has_energy = !PQgetisnull(res, 0, 3);
		snprintf(energy, sizeof(energy), "%lld", (long long) (it->meter - atoll(PQgetvalue(res, 0, 3))));
	}
	else
	{
		/* Never given to this pile: the earliest sample of transactionData is its start. */
		PQclear(res);
		for (int k = 0; k < it->nsamples; k++)
			if (it->samples[k].ts_us <= it->ts_us && (first == NULL || it->samples[k].ts_us < first->ts_us))
				first = &it->samples[k];
		if (first)
		{
			FormatPgTime(first->ts_us, first_ts, sizeof(first_ts));
			snprintf(first_wh, sizeof(first_wh), "%lld", (long long) first->meter_wh);
			params[6] = first_ts;
			params[7] = first_wh;
		}
		/* The connector: the one gun of the pile this bridge saw in a session state. */
		for (int c = 1; c <= 64; c++)
		{
			char		key[32];
			const CacheEntry *g;

			snprintf(key, sizeof(key), "G%s%03d", it->pile, c);
			g = CacheGet(key, false);
			if (g && (strcmp(g->status, "charging") == 0 || strcmp(g->status, "suspended") == 0 ||
					  strcmp(g->status, "occupied") == 0))
			{
				if (hint[0])
				{
					hint[0] = '\0';
					break;
				}
				snprintf(hint, sizeof(hint), "%d", c);
			}
		}
		params[8] = hint[0] ? hint : NULL;
		res = Exec("SELECT order_no, connector_id, started_at, energy_wh, id_tag, remote, outcome "
				   "FROM evcharge.ocpp_stop_unknown_transaction($1::evcharge.pile_id, $2::int, $3::bigint, "
				   "$4::timestamptz, $5, $6, $7::timestamptz, $8::bigint, $9::int)", 9, params);
		if (!Ok(res, "StopTransaction"))
			return false;
		if (PQgetisnull(res, 0, 0))
		{
			LogEvent(it->pile, "StopTransaction for transaction %d: the pile is not registered: answered, not stored",
					 it->transaction_id);
			PQclear(res);
			return true;
		}
		has_energy = !PQgetisnull(res, 0, 3);
		snprintf(energy, sizeof(energy), "%s", PQgetvalue(res, 0, 3));
		LogEvent(it->pile, "StopTransaction for transaction %d, which this pile was never given: %s, order %s, connector %s, %s",
				 it->transaction_id,
				 strcmp(PQgetvalue(res, 0, 6), "matched") == 0 ? "it closes the pile's one open transaction that fits" :
				 strcmp(PQgetvalue(res, 0, 6), "resent") == 0 ? "a resend of a stop stored already" :
				 "stored as a transaction known from its stop alone",
				 PQgetvalue(res, 0, 0), PQgetisnull(res, 0, 1) ? "unknown (the record goes to quarantine)" : PQgetvalue(res, 0, 1),
				 has_energy ? "energy from its readings" : "no start reading: energy unknown");
	}
	snprintf(order, sizeof(order), "%s", PQgetvalue(res, 0, 0));
	connector = PQgetisnull(res, 0, 1) ? 0 : atoi(PQgetvalue(res, 0, 1));
	snprintf(start_ts, sizeof(start_ts), "%s", PQgetvalue(res, 0, 2));
	snprintf(id_tag, sizeof(id_tag), "%s", PQgetvalue(res, 0, 4));
	remote = PQgetvalue(res, 0, 5)[0] == 't';
	PQclear(res);
	snprintf(it->result_order, sizeof(it->result_order), "%s", order);
	if (connector > 0)
	{
		CacheEntry *g;

		it->connector = connector;
		for (int k = 0; k < it->nsamples; k++)
			if (it->samples[k].ts_us < it->ts_us)
				HeartbeatRow(hb, it, it->samples[k].ts_us, "charging", &it->samples[k],
							 it->samples[k].meter_wh, -1, order);
		HeartbeatRow(hb, it, it->ts_us, "occupied", NULL, it->meter, 0, order);
		g = GunCache(it->pile, connector);

		/*
		 * The gun is occupied until unplugged, unless it has moved on
		 * already: a pile that was offline sends its StopTransaction late,
		 * after its StatusNotification of the unplug, and that status stays
		 * the gun's (else every clock-aligned reading after it would be
		 * stored as occupied).
		 */
		if (g->status[0] == '\0' || strcmp(g->order_no, order) == 0)
		{
			g->meter_wh = it->meter;
			snprintf(g->status, sizeof(g->status), "occupied");
		}
		snprintf(gun, sizeof(gun), "%s%03d", it->pile, connector);
	}
	/* pile_record: order_no, gun, started_at, ended_at, energy_wh, stop_reason, start_by, card_no, received_at */
	BufField(rec, order, false);
	BufField(rec, connector > 0 ? gun : NULL, false);
	BufField(rec, start_ts, false);
	BufField(rec, ts, false);
	BufField(rec, has_energy ? energy : NULL, false);
	BufField(rec, it->reason, false);
	BufField(rec, remote ? "remote" : id_tag[0] ? "card" : NULL, false);
	BufField(rec, remote || id_tag[0] == '\0' ? NULL : id_tag, false);
	FormatPgTime(it->received_us, ts, sizeof(ts));
	BufField(rec, ts, true);
	rec->rows++;
	return true;
}

/* Up to n integers of a PostgreSQL array's text form "{1,2,3}"; how many. */
static int
ParseIntArray(const char *s, int64_t *out, int n)
{
	int			k = 0;

	if (*s == '{')
		s++;
	while (*s && *s != '}' && k < n)
	{
		char	   *end;

		out[k++] = strtoll(s, &end, 10);
		s = *end == ',' ? end + 1 : end;
		if (end == s && *s != '}')
			break;
	}
	return k;
}

/* YKC login: the pile number mapped to a registered pile, checked, its firmware kept. */
static bool
YkcLoginItem(Item *it)
{
	char		guns[16];
	const char *params[4] = {it->ykc_no, it->current_type, guns, it->firmware};
	PGresult   *res;

	snprintf(guns, sizeof(guns), "%d", it->gun_count);
	res = Exec("SELECT pile_id::text, refusal FROM evcharge.ykc_login($1, $2, $3::int, $4)", 4, params);
	if (!Ok(res, "YKC login"))
		return false;
	if (PQgetisnull(res, 0, 0))
	{
		it->result_code = 1;
		snprintf(it->result_why, sizeof(it->result_why), "%s", PQgetvalue(res, 0, 1));
	}
	else
	{
		it->result_code = 0;
		snprintf(it->pile, sizeof(it->pile), "%s", PQgetvalue(res, 0, 0));
	}
	PQclear(res);
	return true;
}

/* The order of a YKC serial, from the cache or ykc_transaction(); NULL: not a gun. */
static const char *
YkcOrder(Item *it)
{
	char		key[48];
	char		gun[16];
	char		ts[48];
	const char *params[4] = {it->pile, gun, it->serial, ts};
	CacheEntry *e;
	PGresult   *res;

	snprintf(key, sizeof(key), "Y%s", it->serial);
	e = CacheGet(key, false);
	if (e)
		return e->order_no;
	snprintf(gun, sizeof(gun), "%d", it->connector);
	FormatPgTime(it->ts_us, ts, sizeof(ts));
	res = Exec("SELECT evcharge.ykc_transaction($1::evcharge.pile_id, $2::int, $3, $4::timestamptz)", 4, params);
	if (!Ok(res, "YKC transaction"))
		return NULL;
	if (PQgetisnull(res, 0, 0))
	{
		PQclear(res);
		return "";
	}
	e = CacheGet(key, true);
	snprintf(e->order_no, sizeof(e->order_no), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return e->order_no;
}

/* YKC real-time data: one heartbeat row, its status as the gun's story says. */
static bool
YkcRealtimeItem(Item *it, Buf *hb)
{
	CacheEntry *g = GunCache(it->pile, it->connector);
	bool		in_tx = strcmp(g->status, "charging") == 0 || strcmp(g->status, "suspended") == 0 ||
		strcmp(g->status, "occupied") == 0;
	const char *status;
	const char *order = NULL;

	if (it->ykc_status == 0)
		return true;			/* "offline": the pile says nothing of the gun */
	if (it->ykc_status == 3)
	{
		order = YkcOrder(it);
		if (order == NULL)
			return false;
		if (order[0] == '\0')
		{
			LogEvent(it->pile, "YKC real-time data of gun %d, which is not a registered gun: not stored", it->connector);
			return true;
		}
		snprintf(g->order_no, sizeof(g->order_no), "%s", order);
		g->meter_wh = it->samples[0].meter_wh;
		snprintf(g->status, sizeof(g->status), "charging");
		HeartbeatRow(hb, it, it->ts_us, "charging", &it->samples[0], it->samples[0].meter_wh, 0, order);
		return true;
	}
	/* Idle and plugged after a charge is a gun still occupied; before one, plugged. */
	status = it->ykc_status == 1 ? "fault" : it->plugged ? (in_tx ? "occupied" : "plugged") : "idle";
	if ((strcmp(status, "occupied") == 0 || strcmp(status, "fault") == 0) && in_tx && g->order_no[0])
		order = g->order_no;
	HeartbeatRow(hb, it, it->ts_us, status, &it->samples[0], -1, it->ykc_status == 1 ? it->fault_code : 0, order);
	snprintf(g->status, sizeof(g->status), "%s", status);
	if (order == NULL)
		g->order_no[0] = '\0';
	return true;
}

/*
 * A YKC transaction record: its transaction closed (ykc_record), and the
 * first time a pile record with the pile's energy per class.  A resend
 * finds the first and adds nothing; it is acknowledged again.
 */
static bool
YkcRecordItem(Item *it, Buf *rec)
{
	char		gun[16],
				started[48],
				ended[48],
				energy[32],
				meter[32],
				cls[96];
	const char *params[7] = {it->pile, gun, it->serial, started, ended, energy, meter};
	PGresult   *res;
	char		gunid[32];

	snprintf(gun, sizeof(gun), "%d", it->connector);
	FormatPgTime(it->started_us, started, sizeof(started));
	FormatPgTime(it->ts_us, ended, sizeof(ended));
	snprintf(energy, sizeof(energy), "%lld", (long long) it->energy_wh);
	snprintf(meter, sizeof(meter), "%lld", (long long) it->meter);
	res = Exec("SELECT order_no, first, remote FROM evcharge.ykc_record($1::evcharge.pile_id, $2::int, $3, "
			   "$4::timestamptz, $5::timestamptz, $6::bigint, $7::bigint)", 7, params);
	if (!Ok(res, "YKC transaction record"))
		return false;
	if (PQgetisnull(res, 0, 0))
	{
		LogEvent(it->pile, "YKC transaction record %s of gun %d, which is not a registered gun: acknowledged illegal, not stored",
				 it->serial, it->connector);
		it->result_code = 1;
		PQclear(res);
		return true;
	}
	snprintf(it->result_order, sizeof(it->result_order), "%s", PQgetvalue(res, 0, 0));
	if (PQgetvalue(res, 0, 1)[0] != 't')
	{
		LogEvent(it->pile, "YKC transaction record %s resent: order %s has it already; acknowledged again",
				 it->serial, it->result_order);
		PQclear(res);
		return true;
	}
	if (PQgetvalue(res, 0, 2)[0] == 't')
		snprintf(it->id_tag, sizeof(it->id_tag), "remote");
	PQclear(res);
	snprintf(gunid, sizeof(gunid), "%s%03d", it->pile, it->connector);
	snprintf(cls, sizeof(cls), "{%lld,%lld,%lld,%lld}", (long long) it->class_wh[0], (long long) it->class_wh[1],
			 (long long) it->class_wh[2], (long long) it->class_wh[3]);
	/* order_no, gun, started_at, ended_at, energy_wh, wh_by_class, stop_reason, start_by, card_no, vin, received_at */
	BufField(rec, it->result_order, false);
	BufField(rec, gunid, false);
	BufField(rec, started, false);
	BufField(rec, ended, false);
	BufField(rec, energy, false);
	BufField(rec, cls, false);
	BufField(rec, it->reason, false);
	BufField(rec, it->id_tag[0] ? it->id_tag : NULL, false);
	BufField(rec, strcmp(it->id_tag, "card") == 0 && it->card_no[0] ? it->card_no : NULL, false);
	BufField(rec, it->vin[0] ? it->vin : NULL, false);
	FormatPgTime(it->received_us, ended, sizeof(ended));
	BufField(rec, ended, true);
	rec->rows++;
	return true;
}

/*
 * The billing model of a YKC pile: the station's plan in force for its
 * current type, as ykc_billing_model() gives it (prices in 0.00001 yuan,
 * the class of each half-hour), into the 0x0A body.  A plan that a YKC
 * model cannot express comes back without one, and its reason is logged:
 * nothing rounded is ever sent.
 */
static bool
YkcModelItemStore(Item *it)
{
	const char *params[1] = {it->pile};
	PGresult   *res;
	int64_t		energy[4],
				service[4],
				cls[48];
	uint8_t    *m = it->model;
	char		id[8];

	res = Exec("SELECT model_id, extract(epoch FROM valid_until)::bigint, energy_price, service_fee, classes, problem "
			   "FROM evcharge.ykc_billing_model($1::evcharge.pile_id)", 1, params);
	if (!Ok(res, "YKC billing model"))
		return false;
	if (PQgetisnull(res, 0, 0))
	{
		LogEvent(it->pile, "YKC billing model not sent: %s", PQgetvalue(res, 0, 5));
		PQclear(res);
		return true;
	}
	it->model_id = atoi(PQgetvalue(res, 0, 0));
	it->model_until_us = PQgetisnull(res, 0, 1) ? 0 : atoll(PQgetvalue(res, 0, 1)) * 1000000;
	if (ParseIntArray(PQgetvalue(res, 0, 2), energy, 4) != 4 || ParseIntArray(PQgetvalue(res, 0, 3), service, 4) != 4 ||
		ParseIntArray(PQgetvalue(res, 0, 4), cls, 48) != 48)
	{
		LogEvent(it->pile, "YKC billing model not sent: ykc_billing_model() gave arrays of the wrong size");
		PQclear(res);
		return true;
	}
	PQclear(res);
	snprintf(id, sizeof(id), "%04d", it->model_id % 10000);
	YkcBcdEncode(id, 2, m);
	for (int k = 0; k < 4; k++)
	{
		YkcPutLe(m + 2 + 8 * k, (uint64_t) energy[k], 4);
		YkcPutLe(m + 2 + 8 * k + 4, (uint64_t) service[k], 4);
	}
	m[34] = 0;					/* loss ratio: none */
	for (int h = 0; h < 48; h++)
		m[35 + h] = (uint8_t) cls[h];
	it->has_model = true;
	return true;
}

/*
 * Store items[0..n) in one transaction.  Returns 1 when committed, 0 when
 * the data failed (rolled back, connection fine), -1 when the connection
 * failed.
 */
static int
FlushItems(Item **items, int n)
{
	Buf			hb = {0};
	Buf			rec = {0};
	Buf			yrec = {0};
	PGresult   *res;
	int			rc = -1;
	int64_t		began = NowUs();

	res = PQexec(pg, "BEGIN");
	if (!Ok(res, "BEGIN"))
		goto out;
	PQclear(res);
	for (int i = 0; i < n; i++)
	{
		Item	   *it = items[i];
		char		num1[32],
					num2[32],
					ts[48];

		switch (it->kind)
		{
			case ITEM_BOOT:
				{
					const char *params[2] = {it->pile, it->firmware};

					res = Exec("UPDATE evcharge.pile SET firmware = $2 WHERE pile_id OPERATOR(evcharge.=) $1::evcharge.pile_id "
							   "AND firmware IS DISTINCT FROM $2", 2, params);
					if (!Ok(res, "firmware update"))
						goto fail;
					PQclear(res);
				}
				break;
			case ITEM_AUTHORIZE:
				{
					const char *params[2] = {it->pile, it->id_tag};

					res = Exec("SELECT evcharge.ocpp_authorize($1::evcharge.pile_id, $2)", 2, params);
					if (!Ok(res, "Authorize"))
						goto fail;
					snprintf(it->result_status, sizeof(it->result_status), "%s", PQgetvalue(res, 0, 0));
					PQclear(res);
				}
				break;
			case ITEM_STATUS:
				{
					CacheEntry *g = GunCache(it->pile, it->connector);
					bool		in_tx = strcmp(it->status, "charging") == 0 || strcmp(it->status, "suspended") == 0 ||
						strcmp(it->status, "occupied") == 0;

					/* A charging row needs a reading: only when one is known. */
					if (strcmp(it->status, "charging") != 0 || g->meter_wh >= 0)
						HeartbeatRow(&hb, it, it->ts_us, it->status, NULL,
									 strcmp(it->status, "charging") == 0 ? g->meter_wh : -1,
									 it->fault_code, in_tx && g->order_no[0] ? g->order_no : NULL);
					snprintf(g->status, sizeof(g->status), "%s", it->status);
					if (!in_tx)
						g->order_no[0] = '\0';
				}
				break;
			case ITEM_START:
				{
					const char *params[5] = {it->pile, num1, it->id_tag, num2, ts};
					CacheEntry *g;
					CacheEntry *t;

					snprintf(num1, sizeof(num1), "%d", it->connector);
					snprintf(num2, sizeof(num2), "%lld", (long long) it->meter);
					FormatPgTime(it->ts_us, ts, sizeof(ts));
					res = Exec("SELECT transaction_id, order_no, status FROM evcharge.ocpp_start_transaction("
							   "$1::evcharge.pile_id, $2::int, $3, $4::bigint, $5::timestamptz)", 5, params);
					if (!Ok(res, "StartTransaction"))
						goto fail;
					snprintf(it->result_status, sizeof(it->result_status), "%s", PQgetvalue(res, 0, 2));
					if (PQgetisnull(res, 0, 0))
					{
						it->result_txid = 0;
						LogEvent(it->pile, "StartTransaction on connector %d: not a registered gun, answered Invalid",
								 it->connector);
						PQclear(res);
						break;
					}
					it->result_txid = atoi(PQgetvalue(res, 0, 0));
					snprintf(it->result_order, sizeof(it->result_order), "%s", PQgetvalue(res, 0, 1));
					PQclear(res);
					t = TxCache(it->pile, it->result_txid, true);
					snprintf(t->order_no, sizeof(t->order_no), "%s", it->result_order);
					t->connector = it->connector;
					g = GunCache(it->pile, it->connector);
					snprintf(g->order_no, sizeof(g->order_no), "%s", it->result_order);
					g->meter_wh = it->meter;
					snprintf(g->status, sizeof(g->status), "charging");
					HeartbeatRow(&hb, it, it->ts_us, "charging", NULL, it->meter, 0, it->result_order);
				}
				break;
			case ITEM_METER:
				{
					CacheEntry *t = NULL;
					CacheEntry *g;
					const char *status;
					const char *order = NULL;

					if (it->transaction_id >= 0)
					{
						t = ResolveTx(it);
						if (t == NULL)
						{
							if (PQstatus(pg) != CONNECTION_OK)
								goto fail;
							LogEvent(it->pile, "MeterValues for transaction %d, which this pile was never given: not stored",
									 it->transaction_id);
							break;
						}
						it->connector = t->connector ? t->connector : it->connector;
						order = t->order_no;
						status = "charging";
					}
					g = GunCache(it->pile, it->connector);
					if (t == NULL)
					{
						/* Clock-aligned readings outside a transaction: with the gun's last status. */
						if (g->status[0] == '\0')
							break;
						status = g->status;
						order = g->order_no[0] ? g->order_no : NULL;
					}
					for (int k = 0; k < it->nsamples; k++)
					{
						HeartbeatRow(&hb, it, it->samples[k].ts_us, status, &it->samples[k],
									 it->samples[k].meter_wh, -1, order);
						g->meter_wh = it->samples[k].meter_wh;
					}
				}
				break;
			case ITEM_STOP:
				if (!StopItem(it, &hb, &rec))
					goto fail;
				break;
			case ITEM_YKC_LOGIN:
				if (!YkcLoginItem(it))
					goto fail;
				break;
			case ITEM_YKC_REALTIME:
				if (!YkcRealtimeItem(it, &hb))
					goto fail;
				break;
			case ITEM_YKC_RECORD:
				if (!YkcRecordItem(it, &yrec))
					goto fail;
				break;
			case ITEM_YKC_MODEL:
				if (!YkcModelItemStore(it))
					goto fail;
				break;
		}
	}
	if (!Copy("COPY evcharge.heartbeat (gun, ts, status, meter_wh, power_w, voltage_v, current_a, soc, "
			  "fault_code, order_no, received_at) FROM STDIN", &hb))
		goto fail;
	if (!Copy("COPY evcharge.pile_record (order_no, gun, started_at, ended_at, energy_wh, stop_reason, "
			  "start_by, card_no, received_at) FROM STDIN", &rec))
		goto fail;
	if (!Copy("COPY evcharge.pile_record (order_no, gun, started_at, ended_at, energy_wh, wh_by_class, stop_reason, "
			  "start_by, card_no, vin, received_at) FROM STDIN", &yrec))
		goto fail;
	res = PQexec(pg, "COMMIT");
	if (!Ok(res, "COMMIT"))
		goto fail;
	PQclear(res);
	rc = 1;
	MetricsFlush(n, NowUs() - began);
	if (hb.rows + rec.rows + yrec.rows > 0 || n > 0)
		LogEvent(NULL, "flush: %d message(s), %d heartbeat row(s), %d pile record(s) committed", n, hb.rows,
				 rec.rows + yrec.rows);
	goto out;
fail:
	if (PQstatus(pg) == CONNECTION_OK)
	{
		res = PQexec(pg, "ROLLBACK");
		PQclear(res);
		rc = PQstatus(pg) == CONNECTION_OK ? 0 : -1;
	}
out:
	free(hb.data);
	free(rec.data);
	free(yrec.data);
	return rc;
}

/* Connect, waiting with exponential backoff; false only when stopping. */
static bool
EnsureConnected(bool give_up_when_stopping)
{
	int			wait_ms = 100;

	while (pg == NULL || PQstatus(pg) != CONNECTION_OK)
	{
		if (pg)
		{
			PQfinish(pg);
			pg = NULL;
			connected = false;
		}
		pg = DbConnect();
		if (pg)
		{
			PGresult   *res = PQexec(pg, "SET synchronous_commit = on");

			PQclear(res);
			connected = true;
			LogEvent(NULL, "database connected");
			return true;
		}
		if (give_up_when_stopping && stop_requested)
			return false;
		LogEvent(NULL, "database down: trying again in %d ms", wait_ms);
		{
			struct timespec ts = {wait_ms / 1000, (wait_ms % 1000) * 1000000L};

			nanosleep(&ts, NULL);
		}
		wait_ms = wait_ms * 2 > config.db_retry_max_ms ? config.db_retry_max_ms : wait_ms * 2;
	}
	return true;
}

/* Store a batch, retrying across reconnects; data failures item by item. */
static void
FlushBatch(Item **items, int n)
{
	int			attempts = 0;

	for (;;)
	{
		int			rc;

		if (!EnsureConnected(true))
			break;
		rc = FlushItems(items, n);
		if (rc == 1)
		{
			for (int i = 0; i < n; i++)
				items[i]->stored = true;
			return;
		}
		if (rc == 0)
		{
			if (n == 1)
			{
				items[0]->failed = true;
				LogEvent(items[0]->pile, "message %s could not be stored for its data: answered with InternalError",
						 items[0]->msg_id);
				return;
			}
			for (int i = 0; i < n; i++)
				FlushBatch(&items[i], 1);
			return;
		}
		/* The connection failed: keep the batch and try again. */
		if (stop_requested && ++attempts >= 3)
			break;
	}
	LogEvent(NULL, "stopping with the database down: %d message(s) not stored and not answered", n);
}

static void *
WriterMain(void *arg)
{
	Item	  **batch = NULL;
	int			cap = 0;

	EnsureConnected(true);
	for (;;)
	{
		Item	   *list;
		int			n;

		pthread_mutex_lock(&mu);
		while (queue_head == NULL && !stop_requested)
			pthread_cond_wait(&cond, &mu);
		if (queue_head == NULL && stop_requested)
		{
			pthread_mutex_unlock(&mu);
			break;
		}
		/* Wait for more until flush_ms after the oldest or flush_rows. */
		while (!stop_requested && queue_len < config.flush_rows)
		{
			int64_t		due = queue_head->received_us + (int64_t) config.flush_ms * 1000;
			int64_t		now = NowUs();
			struct timespec ts;

			if (now >= due)
				break;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += (due - now) / 1000000;
			ts.tv_nsec += ((due - now) % 1000000) * 1000;
			if (ts.tv_nsec >= 1000000000)
			{
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&cond, &mu, &ts);
		}
		list = queue_head;
		queue_head = queue_tail = NULL;
		queue_len = 0;
		pthread_mutex_unlock(&mu);

		n = 0;
		for (Item *it = list; it; it = it->next)
		{
			if (n == cap)
			{
				cap = cap * 2 + 1024;
				batch = XRealloc(batch, sizeof(Item *) * (size_t) cap);
			}
			batch[n++] = it;
		}
		if (n == 0)
			continue;
		FlushBatch(batch, n);

		pthread_mutex_lock(&mu);
		if (done_tail)
			done_tail->next = list;
		else
			done_head = list;
		done_tail = batch[n - 1];
		pthread_mutex_unlock(&mu);
		ServerWake();
	}
	free(batch);
	if (pg)
		PQfinish(pg);
	return NULL;
}

int
WriterStart(void)
{
	if (pthread_create(&thread, NULL, WriterMain, NULL) != 0)
	{
		LogEvent(NULL, "cannot start the writer thread: %s", strerror(errno));
		return -1;
	}
	return 0;
}

void
WriterStop(void)
{
	pthread_mutex_lock(&mu);
	stop_requested = true;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&mu);
	pthread_join(thread, NULL);
}

void
WriterEnqueue(Item *item)
{
	item->next = NULL;
	pthread_mutex_lock(&mu);
	if (queue_tail)
		queue_tail->next = item;
	else
		queue_head = item;
	queue_tail = item;
	queue_len++;
	outstanding++;
	if (queue_len == 1 || queue_len >= config.flush_rows)
		pthread_cond_signal(&cond);
	pthread_mutex_unlock(&mu);
}

Item *
WriterTakeDone(void)
{
	Item	   *list;

	pthread_mutex_lock(&mu);
	list = done_head;
	done_head = done_tail = NULL;
	for (Item *it = list; it; it = it->next)
		outstanding--;
	pthread_mutex_unlock(&mu);
	return list;
}

int
WriterOutstanding(void)
{
	int			n;

	pthread_mutex_lock(&mu);
	n = outstanding;
	pthread_mutex_unlock(&mu);
	return n;
}

bool
WriterConnected(void)
{
	return connected;
}
