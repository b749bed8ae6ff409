/*-------------------------------------------------------------------------
 *
 * bridge.h
 *	  What the units of evcharge-bridge share: the settings, a charge
 *	  point's connection, the work items that travel from the WebSocket
 *	  thread to the database writer and back, and each unit's entry points.
 *
 * Five threads.  The main thread runs libwebsockets (server.c): it reads
 * frames (frame.c), checks and maps each message (ocpp.c) into an Item and
 * queues it for the writer (writer.c), which COPYs a batch of items in one
 * transaction and hands them back after the commit; the main thread then
 * sends the answers the commit made possible.  Connections are touched by
 * the main thread only; items carry a counted reference to theirs.  The
 * command thread (command.c) LISTENs for commands to the piles and keeps
 * the record of who is connected; the registry thread (registry.c) keeps
 * in memory what the handshake checks; the metrics thread (metrics.c)
 * serves --metrics.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BRIDGE_H
#define BRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

/* Memory: the bridge cannot go on without it, so running out ends it. */
static inline void *
XRealloc(void *p, size_t n)
{
	void	   *q = realloc(p, n);

	if (q == NULL)
	{
		fputs("evcharge-bridge: out of memory\n", stderr);
		abort();
	}
	return q;
}

/* The release it is built with (the Makefile's EXTVERSION). */
#ifdef EVCHARGE_VERSION
#define BRIDGE_VERSION EVCHARGE_VERSION
#else
#define BRIDGE_VERSION "(unreleased)"
#endif

/* Settings: defaults in config.c, a config file and flags override them. */
typedef struct BridgeConfig
{
	const char *db;				/* libpq conninfo */
	char		ocpp_host[128];
	int			ocpp_port;
	int			flush_ms;		/* flush at least this often */
	int			flush_rows;		/* or when this many items wait */
	int			queue_max;		/* items held at most; then sockets pause */
	int			heartbeat_interval; /* s, told in BootNotification */
	int			max_message_bytes;	/* a bigger frame closes with 1009 */
	int			rate_per_second;	/* messages per connection and second */
	int			rate_burst;
	int			db_retry_max_ms;	/* cap of the reconnect backoff */
	char		bridge_id[64];	/* names this bridge in ocpp_connection */
	const char *tls_cert;		/* PEM files: wss:// (security profile 2) */
	const char *tls_key;
	char		metrics_host[128];	/* --metrics [HOST:]PORT, 127.0.0.1 by default; port 0: none */
	int			metrics_port;
	const char *metrics_token;	/* a bearer token /metrics requires, or NULL */
	char		ykc_host[128];	/* --ykc HOST:PORT: the YKC listener; port 0: none */
	int			ykc_port;
	int			ykc_utc_offset_min; /* the piles' clock: minutes east of UTC (+08:00) */
	int			ykc_model_recheck_s;	/* re-read each YKC pile's billing model this often */
} BridgeConfig;

extern BridgeConfig config;

/* config.c */
extern int	ConfigParseArgs(int argc, char **argv);
extern void Usage(void);

/* main.c: one line per event on stderr */
extern void LogEvent(const char *pile, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));
extern volatile int stopping;

/* A charge point's WebSocket connection. */
typedef struct Conn
{
	struct lws *wsi;			/* NULL once closed */
	char		pile[21];		/* canonical 20 digits */
	int			refs;			/* the socket + items in flight */
	uint64_t	serial;
	/* outgoing text frames, oldest first */
	struct OutFrame *out_head;
	struct OutFrame *out_tail;
	/* message being reassembled from fragments */
	char	   *rx;
	size_t		rx_len;
	bool		rx_overflow;
	/* rate limit: a token bucket */
	double		tokens;
	int64_t		tokens_at_us;
	bool		closing;		/* send a close at the next writable */
	/* YKC (a raw TCP connection of the --ykc listener) */
	bool		ykc;
	bool		ykc_logged_in;	/* pile[] is set once the login is admitted */
	bool		ykc_login_pending;
	char		ykc_no[15];		/* the 14 BCD digits of its login */
	uint16_t	ykc_seq;		/* the sequence of the platform's next frame */
	int			ykc_model_id;	/* the billing model it was given, -1 none */
	int64_t		ykc_model_due_us;	/* when to look at its billing model again */
	struct
	{
		int64_t		command_id; /* 0: free */
		int			gun;
		bool		stop;
	}			ykc_cmd[8];		/* remote commands sent, awaiting the pile's answer */
	int			close_code;
	const char *close_reason;
	struct Conn *hash_next;
	struct Conn *all_next;
	struct Conn *all_prev;
} Conn;

typedef struct OutFrame
{
	struct OutFrame *next;
	size_t		len;
	char		data[];			/* LWS_PRE bytes, then the text */
} OutFrame;

/* One meter sample (a meterValue of MeterValues or transactionData). */
typedef struct Sample
{
	int64_t		ts_us;			/* the sample's own time, µs since 1970 UTC */
	int64_t		meter_wh;		/* -1: none */
	int64_t		power_w;		/* INT64_MIN: none */
	double		voltage_v;		/* NAN: none */
	double		current_a;
	int			soc;			/* -1: none */
} Sample;

typedef enum ItemKind
{
	ITEM_BOOT,					/* firmware into the registry */
	ITEM_STATUS,				/* one heartbeat row */
	ITEM_AUTHORIZE,				/* answered after the look-up */
	ITEM_START,					/* mapping + heartbeat row */
	ITEM_METER,					/* heartbeat rows */
	ITEM_STOP,					/* mapping + heartbeat rows + pile record */
	ITEM_YKC_LOGIN,				/* YKC 0x01: the mapping, checks and firmware */
	ITEM_YKC_REALTIME,			/* YKC 0x13: a heartbeat row */
	ITEM_YKC_RECORD,			/* YKC 0x3B: a pile record, answered after commit */
	ITEM_YKC_MODEL				/* YKC 0x05/0x09 or a plan change: the billing model */
} ItemKind;

typedef struct Item
{
	struct Item *next;
	ItemKind	kind;
	Conn	   *conn;
	char		msg_id[40];		/* the CALL's id: the answer echoes it */
	bool		answer_after_commit;
	char		pile[21];
	int			connector;
	int64_t		ts_us;			/* the message's time */
	int64_t		received_us;	/* when the bridge read it */
	/* ITEM_STATUS */
	const char *status;			/* evcharge gun_status */
	int			fault_code;
	/* ITEM_START / ITEM_STOP / ITEM_AUTHORIZE / ITEM_BOOT */
	char		id_tag[24];
	int64_t		meter;			/* meterStart or meterStop, Wh */
	int			transaction_id; /* MeterValues/StopTransaction; -1 none */
	char		reason[32];
	char		firmware[52];
	/* ITEM_METER / ITEM_STOP (transactionData) */
	int			nsamples;
	Sample	   *samples;
	/* YKC items */
	uint16_t	ykc_seq;		/* the request's sequence: the answer echoes it */
	uint8_t		ykc_type;		/* the frame it came from */
	char		ykc_no[15];
	char		serial[33];		/* the transaction serial, 32 digits */
	int			ykc_status;		/* 0x13: 0 offline, 1 fault, 2 idle, 3 charging */
	bool		plugged;
	int			gun_count;		/* login */
	char		current_type[3];	/* login: AC or DC */
	int64_t		started_us;		/* record */
	int64_t		class_wh[4];	/* record: sharp, peak, flat, valley */
	int64_t		energy_wh;		/* record: its total */
	char		vin[18];
	char		card_no[17];	/* record: the physical card, 16 digits */
	int			model_asked;	/* 0x05: the pile's model id; -1 for 0x09 or a push */
	/* set by the writer */
	bool		stored;			/* committed */
	bool		failed;			/* could not be stored: a data error */
	int			result_txid;
	char		result_status[16];
	char		result_order[40];
	int			result_code;	/* YKC: 0 accepted, else why not */
	char		result_why[160];	/* YKC: a refusal's reason, for the log */
	bool		has_model;
	int			model_id;
	int64_t		model_until_us;
	uint8_t		model[2 + 8 * 4 + 1 + 48];	/* the 0x0A body after the pile number */
} Item;

/* writer.c */
extern int	WriterStart(void);
extern void WriterStop(void);	/* flushes what it holds, then joins */
extern void WriterEnqueue(Item *item);
extern Item *WriterTakeDone(void); /* a list of items back from the writer */
extern int	WriterOutstanding(void);
extern bool WriterConnected(void);

/* registry.c: the registry the handshake checks, in memory (its own thread) */
typedef enum PileCheck
{
	PILE_ADMITTED,
	PILE_NOT_REGISTERED,
	PILE_DB_DOWN
} PileCheck;
typedef struct PileAuth
{
	bool		has_password;	/* an ocpp_credential row: it must present it */
	bool		require_password;	/* its operator requires one */
	unsigned char salt[64];
	int			salt_len;
	int			iterations;
	unsigned char hash[32];
} PileAuth;
extern int	RegistryStart(int wait_ms);
extern void RegistryStop(void);
extern PileCheck RegistryCheckPile(const char *pile, PileAuth *auth);
extern bool PasswordMatches(const PileAuth *auth, const char *password, size_t len);

/* frame.c: OCPP-J frames */
typedef enum FrameError
{
	FRAME_OK = 0,
	FRAME_NOT_JSON,				/* FormationViolation */
	FRAME_NOT_FRAME,			/* ProtocolError */
	FRAME_BAD_ID				/* ProtocolError, no id to echo */
} FrameError;

typedef struct Frame
{
	int			type;			/* 2 CALL, 3 CALLRESULT, 4 CALLERROR */
	char		id[40];
	const char *action;			/* CALL: borrowed from root */
	json_t	   *payload;		/* borrowed from root */
	json_t	   *root;			/* owned: json_decref() when done */
	const char *error_code;		/* CALLERROR */
} Frame;

extern FrameError FrameDecode(const char *text, size_t len, Frame *out, char *why, size_t whylen);
extern char *FrameCallResult(const char *id, json_t *payload); /* steals payload */
extern char *FrameCallError(const char *id, const char *code, const char *description);
extern char *FrameCall(const char *id, const char *action, json_t *payload);
extern bool ParseIsoTime(const char *s, int64_t *us);
extern void FormatIsoTime(int64_t us, char *buf, size_t len); /* 2026-01-01T00:00:00.000Z */
extern void FormatPgTime(int64_t us, char *buf, size_t len);	/* for COPY */
extern int64_t NowUs(void);

/* ocpp.c: checking a CALL and mapping it */
typedef struct MapResult
{
	Item	   *item;			/* to queue, or NULL */
	char	   *reply;			/* to send now, or NULL (malloc'd) */
} MapResult;

extern void OcppHandleCall(Conn *conn, const Frame *frame, MapResult *res);
extern char *OcppAnswer(const Item *item);	/* after the commit */
extern const char *OcppValidate(const char *action, json_t *payload, char *why, size_t whylen);

/* ykc.c: a YKC frame from a pile, and the answers after the commit */
struct YkcFrame;
struct Command;
typedef struct YkcResult
{
	Item	   *item;			/* to queue, or NULL */
	uint8_t		reply[2 + 255 + 2]; /* to send now, when reply_len > 0 */
	size_t		reply_len;
	bool		close;			/* close the connection (after the reply) */
} YkcResult;
extern void YkcHandleFrame(Conn *conn, const struct YkcFrame *f, YkcResult *res);
extern size_t YkcAnswer(Conn *conn, const Item *item, uint8_t *out);	/* 0: nothing to send */
extern size_t YkcCommandFrame(Conn *conn, const struct Command *cmd, uint8_t *out);
extern size_t YkcClockFrame(Conn *conn, uint8_t *out);
extern size_t YkcModelPush(Conn *conn, const Item *item, uint8_t *out);
extern Item *YkcModelItem(Conn *conn);

/* server.c */
extern int	ServerRun(void);
extern void ServerWake(void);	/* from any thread: the main loop looks at the done list */

/* command.c: commands to the piles, and the registry of who is connected */
typedef struct Command
{
	struct Command *next;
	int64_t		id;				/* evcharge.ocpp_command.command_id */
	char		pile[21];
	char		action[32];		/* RemoteStartTransaction, RemoteStopTransaction */
	int			connector;
	char		id_tag[24];
	int			transaction_id; /* RemoteStopTransaction */
} Command;

extern int	CommandsStart(void);
extern void CommandsStop(void); /* writes what waits, closes our connections */
extern void CommandsPileConnected(const char *pile);
extern void CommandsPileDisconnected(const char *pile);
extern void CommandsAnswer(const char *pile, int64_t command_id, const char *answer);
extern Command *CommandsTake(void); /* the commands to send now */

/* metrics.c: the status endpoint (--metrics), Prometheus text */
extern int	MetricsStart(void);
extern void MetricsStop(void);
extern void MetricsMessage(const char *action);
extern void MetricsRateLimited(void);
extern void MetricsCallError(const char *code);
extern void MetricsRefused(int status);
extern void MetricsConnected(int now_connected, bool opened);
extern void MetricsCommandSent(void);
extern void MetricsYkcFrame(int type);
extern void MetricsYkcRefused(const char *why);
extern void MetricsFlush(int rows, int64_t elapsed_us);

/* db.c: a libpq connection as the bridge opens it */
struct pg_conn;
extern struct pg_conn *DbConnect(void);

#endif							/* BRIDGE_H */
