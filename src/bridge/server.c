/*-------------------------------------------------------------------------
 *
 * server.c
 *	  The WebSocket server on libwebsockets: the handshake, reading and
 *	  writing frames, backpressure, and the orderly stop.
 *
 * Charge points connect to ws://HOST:PORT/ocpp/<pile id> with subprotocol
 * ocpp1.6.  The handshake is refused with an HTTP error, and a log line
 * saying why and what is expected, for a path that is not /ocpp/<id>, an
 * id that is not 20 digits (a 16-digit legacy id included), a pile that
 * is not registered, or a database that cannot say; with 401 and a Basic
 * challenge for a password missing or wrong (security profile 1: a pile
 * with a password must present it, one without is admitted unless its
 * operator requires passwords).  With --tls-cert/--tls-key it serves
 * wss:// (profile 2).  The commands of command.c go out as CALLs here and
 * their answers go back to it.  A second connection
 * of one pile replaces the first (a half-open socket after a network
 * change).  Each text message is decoded (frame.c), checked and mapped
 * (ocpp.c): invalid ones get a CALLERROR at once and nothing else; valid
 * ones are queued for the writer, and their answers are sent at once or
 * when the writer hands them back committed.  When more than queue_max
 * messages are outstanding the server stops reading every socket until
 * the writer has caught up to half of it.
 *
 *-------------------------------------------------------------------------
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>
#include <openssl/ssl.h>
#include <strings.h>

#include "bridge.h"
#include "pile_id_parse.h"
#include "ykc.h"

static struct lws_context *context;
static struct lws_protocols protocols[];
static struct lws_protocols ykc_protocols[];
static lws_sorted_usec_list_t ykc_tick;
static Conn *conns;				/* every open connection */
static int	nconns;
static bool paused;
static uint64_t next_serial = 1;

static void PauseAll(void);
static void ResumeAll(void);
static void HashConn(Conn *c);
static void UnhashConn(Conn *c);
static void Enqueue(Item *item);

#define CONN_BUCKETS 16384
static Conn *by_pile[CONN_BUCKETS];

static const char *const expected_layout =
"expected ws://HOST:PORT/ocpp/<pile id> with the 20-digit pile id written without spaces or hyphens: "
"region (6) operator (4) reserved (1) product (2) detail (2) serial (5)";

static unsigned
PileBucket(const char *pile)
{
	unsigned	h = 5381;

	for (; *pile; pile++)
		h = h * 33 + (unsigned char) *pile;
	return h % CONN_BUCKETS;
}

void
ServerWake(void)
{
	if (context)
		lws_cancel_service(context);
}

static void
ConnRelease(Conn *c)
{
	if (--c->refs > 0)
		return;
	free(c->rx);
	while (c->out_head)
	{
		OutFrame   *f = c->out_head;

		c->out_head = f->next;
		free(f);
	}
	free(c);
}

/* Queue bytes for the connection: an OCPP text frame or a YKC frame. */
static void
SendBytes(Conn *c, const void *data, size_t len)
{
	OutFrame   *f;

	if (c->wsi == NULL || len == 0)
		return;
	f = malloc(sizeof(OutFrame) + LWS_PRE + len);
	f->next = NULL;
	f->len = len;
	memcpy(f->data + LWS_PRE, data, len);
	if (c->out_tail)
		c->out_tail->next = f;
	else
		c->out_head = f;
	c->out_tail = f;
	lws_callback_on_writable(c->wsi);
}

/* Queue a text frame for the connection (takes the malloc'd text). */
static void
Send(Conn *c, char *text)
{
	size_t		len;

	if (text == NULL)
		return;
	if (c->wsi == NULL)
	{
		free(text);
		return;
	}
	len = strlen(text);
	if (strncmp(text, "[4,", 3) == 0)
	{
		json_t	   *j = json_loadb(text, len, 0, NULL);

		MetricsCallError(json_string_value(json_array_get(j, 2)));
		json_decref(j);
	}
	SendBytes(c, text, len);
	free(text);
}

static void
CloseConn(Conn *c, int code, const char *reason)
{
	if (c->wsi == NULL || c->closing)
		return;
	c->closing = true;
	c->close_code = code;
	c->close_reason = reason;
	lws_callback_on_writable(c->wsi);
}

static void YkcDone(Item *it);

/* The items the writer handed back: answer what the commit allows. */
static void
DrainDone(void)
{
	Item	   *list = WriterTakeDone();

	while (list)
	{
		Item	   *it = list;

		list = it->next;
		if (it->conn->ykc)
			YkcDone(it);
		else if (it->answer_after_commit && (it->stored || it->failed))
			Send(it->conn, OcppAnswer(it));
		ConnRelease(it->conn);
		free(it->samples);
		free(it);
	}
	if (paused && !stopping && WriterOutstanding() <= config.queue_max / 2)
	{
		paused = false;
		LogEvent(NULL, "queue down to %d: reading sockets again", WriterOutstanding());
		ResumeAll();
	}
}

/* The live connection of a pile, or NULL. */
static Conn *
FindConn(const char *pile)
{
	for (Conn *o = by_pile[PileBucket(pile)]; o; o = o->hash_next)
		if (strcmp(o->pile, pile) == 0 && o->wsi && !o->closing)
			return o;
	return NULL;
}

/* Commands the command thread took for our piles: send them as CALLs. */
static void
DrainCommands(void)
{
	Command    *list = CommandsTake();

	while (list)
	{
		Command    *cmd = list;
		Conn	   *c = FindConn(cmd->pile);

		list = cmd->next;
		if (c == NULL)
			LogEvent(cmd->pile, "command %" PRId64 " (%s): the pile is gone; sent when it connects again",
					 cmd->id, cmd->action);
		else if (c->ykc)
		{
			uint8_t		out[YKC_MAX_FRAME];

			LogEvent(c->pile, "sent YKC remote %s for command %" PRId64 " (gun %d)",
					 strcmp(cmd->action, "RemoteStartTransaction") == 0 ? "start (0x34)" : "stop (0x36)",
					 cmd->id, cmd->connector);
			size_t		n = YkcCommandFrame(c, cmd, out);

			SendBytes(c, out, n);
			MetricsCommandSent();
		}
		else
		{
			char		id[32];
			json_t	   *payload;

			snprintf(id, sizeof(id), "cmd-%" PRId64, cmd->id);
			if (strcmp(cmd->action, "RemoteStartTransaction") == 0)
				payload = json_pack("{s:i,s:s}", "connectorId", cmd->connector, "idTag", cmd->id_tag);
			else
				payload = json_pack("{s:i}", "transactionId", cmd->transaction_id);
			LogEvent(c->pile, "sent %s %s (connector %d)", cmd->action, id, cmd->connector);
			Send(c, FrameCall(id, cmd->action, payload));
			MetricsCommandSent();
		}
		free(cmd);
	}
}

static void
PauseAll(void)
{
	for (Conn *c = conns; c; c = c->all_next)
		if (c->wsi)
			lws_rx_flow_control(c->wsi, 0);
}

/*
 * Read every socket again.  By our own list of connections, not with
 * lws_rx_flow_allow_all_protocol(), which compares the protocol by
 * address and so misses every connection: the vhost holds a copy of the
 * protocols array.
 */
static void
ResumeAll(void)
{
	for (Conn *c = conns; c; c = c->all_next)
		if (c->wsi)
			lws_rx_flow_control(c->wsi, 1);
}

/* A token bucket per connection: false when the message is over the rate. */
static bool
RateOk(Conn *c)
{
	int64_t		now = NowUs();

	c->tokens += (double) (now - c->tokens_at_us) / 1e6 * config.rate_per_second;
	if (c->tokens > config.rate_burst)
		c->tokens = config.rate_burst;
	c->tokens_at_us = now;
	if (c->tokens < 1)
		return false;
	c->tokens -= 1;
	return true;
}

/* One whole text message from a charge point. */
static void
HandleMessage(Conn *c, const char *text, size_t len)
{
	Frame		f;
	char		why[300];
	FrameError fe = FrameDecode(text, len, &f, why, sizeof(why));
	const char *code;
	MapResult	res;

	if (fe != FRAME_OK)
	{
		const char *ecode = fe == FRAME_NOT_JSON ? "FormationViolation" : "ProtocolError";

		LogEvent(c->pile, "bad frame: %s: answered %s", why, ecode);
		Send(c, FrameCallError(f.id[0] ? f.id : "-1", ecode, why));
		return;
	}
	if (f.type != 2)
	{
		/* An answer to a command of ours (cmd-<command_id>), recorded. */
		char	   *end = NULL;
		long long	cmd = strncmp(f.id, "cmd-", 4) == 0 ? strtoll(f.id + 4, &end, 10) : 0;

		if (cmd > 0 && end && *end == '\0')
		{
			char		answer[64];
			const char *st = f.type == 3 ? json_string_value(json_object_get(f.payload, "status")) : NULL;

			if (f.type == 4)
				snprintf(answer, sizeof(answer), "CALLERROR %.40s", f.error_code ? f.error_code : "?");
			else if (st && (strcmp(st, "Accepted") == 0 || strcmp(st, "Rejected") == 0))
				snprintf(answer, sizeof(answer), "%s", st);
			else
				snprintf(answer, sizeof(answer), "invalid answer");
			LogEvent(c->pile, "command %lld answered: %s", cmd, answer);
			CommandsAnswer(c->pile, cmd, answer);
		}
		else
			LogEvent(c->pile, "%s for message %s, which the bridge did not send: ignored",
					 f.type == 3 ? "CALLRESULT" : "CALLERROR", f.id);
		json_decref(f.root);
		return;
	}
	MetricsMessage(f.action);
	if (!RateOk(c))
	{
		LogEvent(c->pile, "%s over the rate limit of %d a second: answered GenericError", f.action,
				 config.rate_per_second);
		MetricsRateLimited();
		Send(c, FrameCallError(f.id, "GenericError", "too many messages: over the rate limit of this connection"));
		json_decref(f.root);
		return;
	}
	code = OcppValidate(f.action, f.payload, why, sizeof(why));
	if (code)
	{
		LogEvent(c->pile, "%s refused: %s: answered %s", f.action, why, code);
		Send(c, FrameCallError(f.id, code, why));
		json_decref(f.root);
		return;
	}
	OcppHandleCall(c, &f, &res);
	json_decref(f.root);
	if (res.reply)
		Send(c, res.reply);
	if (res.item)
		Enqueue(res.item);
}

/*
 * The pile id of a request path /ocpp/<id>, or a reason to refuse it and
 * the HTTP status to refuse it with.
 */
static int
PileFromPath(const char *uri, char *pile, char *why, size_t whylen)
{
	const char *id;
	IdParse		p;
	size_t		len;

	if (strncmp(uri, "/ocpp/", 6) != 0 || strchr(uri + 6, '/') != NULL || uri[6] == '\0')
	{
		snprintf(why, whylen, "path \"%.80s\" is not /ocpp/<pile id>", uri);
		return HTTP_STATUS_NOT_FOUND;
	}
	id = uri + 6;
	len = strlen(id);
	for (size_t i = 0; i < len; i++)
		if (id[i] < '0' || id[i] > '9')
		{
			snprintf(why, whylen, "pile id \"%.40s\" has a character other than a digit at offset %zu", id, i);
			return HTTP_STATUS_BAD_REQUEST;
		}
	ParsePileId(id, len, &p);
	if (p.status == ID_OK && p.legacy)
	{
		snprintf(why, whylen, "pile id \"%s\" is a 16-digit legacy id, which OCPP piles may not use", id);
		return HTTP_STATUS_BAD_REQUEST;
	}
	if (p.status != ID_OK || len != PILE_ID_DIGITS)
	{
		snprintf(why, whylen, "pile id \"%.40s\" has %zu digits, not 20", id, len);
		return HTTP_STATUS_BAD_REQUEST;
	}
	FormatIdDigits(p.head, p.tail, PILE_ID_DIGITS, pile);
	return 0;
}

static int
Refuse(struct lws *wsi, int status, const char *why, const char *hint)
{
	char		body[600];

	LogEvent(NULL, "connection refused (HTTP %d): %s; %s", status, why, hint);
	MetricsRefused(status);
	snprintf(body, sizeof(body), "%s; %s\n", why, hint);
	lws_return_http_status(wsi, (unsigned) status, body);
	return 1;
}

/* 401 with a Basic challenge: the pile's password is missing or wrong. */
static int
RefuseAuth(struct lws *wsi, const char *why, const char *hint)
{
	unsigned char buf[LWS_PRE + 1024];
	unsigned char *start = &buf[LWS_PRE],
			   *p = start,
			   *end = &buf[sizeof(buf) - 1];
	char		body[600];
	static const char challenge[] = "Basic realm=\"evcharge\", charset=\"UTF-8\"";
	int			n;

	LogEvent(NULL, "connection refused (HTTP 401): %s; %s", why, hint);
	MetricsRefused(401);
	n = snprintf(body, sizeof(body), "%s; %s\n", why, hint);
	if (n < 0 || n >= (int) sizeof(body))
		n = (int) strlen(body);
	if (lws_add_http_header_status(wsi, HTTP_STATUS_UNAUTHORIZED, &p, end) ||
		lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_WWW_AUTHENTICATE, (const unsigned char *) challenge,
									 (int) strlen(challenge), &p, end) ||
		lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, (const unsigned char *) "text/plain", 10,
									 &p, end) ||
		lws_add_http_header_content_length(wsi, (lws_filepos_t) n, &p, end) ||
		lws_finalize_http_header(wsi, &p, end) ||
		end - p < n)
		return 1;
	memcpy(p, body, (size_t) n);
	p += n;
	lws_write(wsi, start, (size_t) (p - start), LWS_WRITE_HTTP_HEADERS);
	return 1;
}

/*
 * Security profile 1: HTTP Basic, the user the pile id and the password the
 * one whose hash the registry keeps.  0 to admit, else refused (answered).
 */
static int
CheckPassword(struct lws *wsi, const char *pile, const PileAuth *auth)
{
	char		hdr[512] = "";
	char		dec[384];
	char		why[300];
	const char *colon;
	int			n;

	if (!auth->has_password)
	{
		if (!auth->require_password)
			return 0;
		snprintf(why, sizeof(why), "pile %s has no password and its operator requires one", pile);
		return RefuseAuth(wsi, why, "set one with evcharge.ocpp_set_password() and configure it in the pile");
	}
	if (lws_hdr_copy(wsi, hdr, sizeof(hdr), WSI_TOKEN_HTTP_AUTHORIZATION) <= 0 ||
		strncasecmp(hdr, "Basic ", 6) != 0)
	{
		snprintf(why, sizeof(why), "pile %s has a password and sent no HTTP Basic authorization", pile);
		return RefuseAuth(wsi, why, "the pile must connect with its id as user and its password (OCPP security profile 1)");
	}
	n = lws_b64_decode_string(hdr + 6, dec, sizeof(dec));
	colon = n > 0 ? memchr(dec, ':', (size_t) n) : NULL;
	if (colon == NULL || (size_t) (colon - dec) != strlen(pile) || memcmp(dec, pile, strlen(pile)) != 0)
	{
		snprintf(why, sizeof(why), "pile %s sent HTTP Basic authorization for another user", pile);
		return RefuseAuth(wsi, why, "the user must be the pile id");
	}
	if (!PasswordMatches(auth, colon + 1, (size_t) (n - (colon + 1 - dec))))
	{
		snprintf(why, sizeof(why), "pile %s sent a wrong password", pile);
		return RefuseAuth(wsi, why, "the pile must present the password set with evcharge.ocpp_set_password()");
	}
	return 0;
}

/*
 * Writes the connection's next queued frame (text for OCPP, raw bytes for
 * YKC) and asks for another writable callback while frames or a close are
 * pending; -1 when the socket took less than the frame (close it).
 */
static int
WriteNextFrame(struct lws *wsi, Conn *c, enum lws_write_protocol mode)
{
	OutFrame   *f = c->out_head;

	if (lws_write(wsi, (unsigned char *) f->data + LWS_PRE, f->len, mode) < (int) f->len)
		return -1;
	c->out_head = f->next;
	if (c->out_head == NULL)
		c->out_tail = NULL;
	free(f);
	if (c->out_head || c->closing)
		lws_callback_on_writable(wsi);
	return 0;
}

static int
Callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	Conn	  **slot = (Conn **) user;
	Conn	   *c = slot ? *slot : NULL;
	char		uri[256];
	char		pile[32];
	char		why[300];
	int			status;

	switch (reason)
	{
		case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
			{
				char		proto[128] = "";
				PileAuth	auth;

				if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0)
					return Refuse(wsi, HTTP_STATUS_BAD_REQUEST, "no request path", expected_layout);
				if ((status = PileFromPath(uri, pile, why, sizeof(why))) != 0)
					return Refuse(wsi, status, why, expected_layout);
				lws_hdr_copy(wsi, proto, sizeof(proto), WSI_TOKEN_PROTOCOL);
				if (strstr(proto, "ocpp1.6") == NULL)
				{
					snprintf(why, sizeof(why), "pile %s asked for subprotocol \"%.60s\"", pile, proto);
					return Refuse(wsi, HTTP_STATUS_BAD_REQUEST, why, "this bridge speaks ocpp1.6 only");
				}
				switch (RegistryCheckPile(pile, &auth))
				{
					case PILE_ADMITTED:
						return CheckPassword(wsi, pile, &auth);
					case PILE_NOT_REGISTERED:
						snprintf(why, sizeof(why), "pile %s is not registered", pile);
						return Refuse(wsi, HTTP_STATUS_NOT_FOUND, why, "register it in evcharge.pile first");
					default:
						snprintf(why, sizeof(why), "pile %s cannot be checked now: the registry is not read yet, or is being read again (database unreachable, or a registry change)", pile);
						return Refuse(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, why, "the pile should try again later");
				}
			}
		case LWS_CALLBACK_HTTP:
			snprintf(why, sizeof(why), "plain HTTP request for \"%.80s\"", (const char *) in);
			Refuse(wsi, HTTP_STATUS_NOT_FOUND, why, expected_layout);
			return -1;
		case LWS_CALLBACK_ESTABLISHED:
			if (slot == NULL)
				return -1;
			if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0 ||
				PileFromPath(uri, pile, why, sizeof(why)) != 0)
				return -1;
			c = calloc(1, sizeof(Conn));
			c->wsi = wsi;
			c->refs = 1;
			c->serial = next_serial++;
			memcpy(c->pile, pile, PILE_ID_DIGITS);
			c->pile[PILE_ID_DIGITS] = '\0';
			c->tokens = config.rate_burst;
			c->tokens_at_us = NowUs();
			*slot = c;
			HashConn(c);
			CommandsPileConnected(c->pile);
			c->all_next = conns;
			if (conns)
				conns->all_prev = c;
			conns = c;
			nconns++;
			MetricsConnected(nconns, true);
			if (paused)
				lws_rx_flow_control(wsi, 0);
			{
				char		peer[64] = "";

				lws_get_peer_simple(wsi, peer, sizeof(peer));
				LogEvent(c->pile, "connected from %s (%d connected)", peer, nconns);
			}
			break;
		case LWS_CALLBACK_RECEIVE:
			if (c == NULL || c->closing)
				break;
			if (lws_frame_is_binary(wsi))
			{
				LogEvent(c->pile, "binary frame: OCPP-J is text only; closing with 1003");
				CloseConn(c, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, "OCPP-J frames are text");
				break;
			}
			if (c->rx_len + len > (size_t) config.max_message_bytes)
			{
				LogEvent(c->pile, "message over %d bytes: closing with 1009", config.max_message_bytes);
				lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *) "message too large", 17);
				return -1;
			}
			c->rx = XRealloc(c->rx, c->rx_len + len + 1);
			memcpy(c->rx + c->rx_len, in, len);
			c->rx_len += len;
			if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0)
			{
				HandleMessage(c, c->rx, c->rx_len);
				c->rx_len = 0;
			}
			break;
		case LWS_CALLBACK_SERVER_WRITEABLE:
			if (c == NULL)
				break;
			if (c->out_head)
				return WriteNextFrame(wsi, c, LWS_WRITE_TEXT);
			if (c->closing)
			{
				lws_close_reason(wsi, (enum lws_close_status) c->close_code, (unsigned char *) c->close_reason,
								 strlen(c->close_reason));
				return -1;
			}
			break;
		case LWS_CALLBACK_CLOSED:
			if (c == NULL)
				break;
			UnhashConn(c);
			if (c->all_prev)
				c->all_prev->all_next = c->all_next;
			else
				conns = c->all_next;
			if (c->all_next)
				c->all_next->all_prev = c->all_prev;
			nconns--;
			MetricsConnected(nconns, false);
			LogEvent(c->pile, "disconnected (%d connected)", nconns);
			if (FindConn(c->pile) == NULL)
				CommandsPileDisconnected(c->pile);
			c->wsi = NULL;
			*slot = NULL;
			ConnRelease(c);
			break;
		case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
			DrainDone();
			DrainCommands();
			break;
		default:
			break;
	}
	return 0;
}

static struct lws_protocols protocols[] = {
	{"ocpp1.6", Callback, sizeof(Conn *), 4096, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0}
};

/*
 * The YKC listener (--ykc): raw TCP connections of libwebsockets on a
 * vhost of their own in the same event loop, so they share the writer,
 * the backpressure (lws_rx_flow_control), the commands and the stop.
 */

/* Add a connection to the piles' hash, closing an older one of the pile. */
static void
HashConn(Conn *c)
{
	unsigned	b = PileBucket(c->pile);

	for (Conn *o = by_pile[b]; o; o = o->hash_next)
		if (strcmp(o->pile, c->pile) == 0 && o->wsi && o != c)
		{
			LogEvent(c->pile, "connected again: closing its previous connection");
			CloseConn(o, LWS_CLOSE_STATUS_POLICY_VIOLATION, "replaced by a new connection");
		}
	c->hash_next = by_pile[b];
	by_pile[b] = c;
}

static void
UnhashConn(Conn *c)
{
	unsigned	b = PileBucket(c->pile);

	for (Conn **pp = &by_pile[b]; *pp; pp = &(*pp)->hash_next)
		if (*pp == c)
		{
			*pp = c->hash_next;
			break;
		}
}

static void
Enqueue(Item *item)
{
	WriterEnqueue(item);
	if (!paused && WriterOutstanding() >= config.queue_max)
	{
		paused = true;
		LogEvent(NULL, "queue full (%d messages): not reading sockets until the database catches up",
				 WriterOutstanding());
		PauseAll();
	}
}

/* A YKC item back from the writer: its answer, and what the login admits. */
static void
YkcDone(Item *it)
{
	Conn	   *c = it->conn;
	uint8_t		out[YKC_MAX_FRAME];
	size_t		n;
	int64_t		now = NowUs();

	if (it->kind == ITEM_YKC_LOGIN)
		c->ykc_login_pending = false;
	if (c->wsi == NULL || c->closing || !(it->stored || it->failed))
		return;
	switch (it->kind)
	{
		case ITEM_YKC_LOGIN:
			n = YkcAnswer(c, it, out);
			SendBytes(c, out, n);
			if (!it->stored || it->result_code != 0)
			{
				LogEvent(NULL, "YKC login of pile number %s refused (0x02 result 0x01): %s; closing", it->ykc_no,
						 it->failed ? "it could not be looked up" : it->result_why);
				MetricsYkcRefused("login_refused");
				CloseConn(c, 0, "login refused");
				break;
			}
			if (!c->ykc_logged_in)
			{
				memcpy(c->pile, it->pile, sizeof(c->pile));
				c->ykc_logged_in = true;
				HashConn(c);
				CommandsPileConnected(c->pile);
				c->ykc_model_due_us = now + (int64_t) config.ykc_model_recheck_s * 1000000;
			}
			LogEvent(c->pile, "YKC pile number %s logged in (%s, %d gun(s), firmware %s)", it->ykc_no,
					 it->current_type, it->gun_count, it->firmware);
			n = YkcClockFrame(c, out);
			SendBytes(c, out, n);
			break;
		case ITEM_YKC_MODEL:
			if (it->has_model)
			{
				n = it->ykc_type == YKC_MODEL_SET ? YkcModelPush(c, it, out) : YkcAnswer(c, it, out);
				if (n > 0 && it->ykc_type == YKC_MODEL_SET)
					LogEvent(c->pile, "billing model %04d sent (0x58): the plan in force changed", it->model_id);
				SendBytes(c, out, n);
				if (it->ykc_type != YKC_MODEL_CHECK || it->model_asked == it->model_id)
					c->ykc_model_id = it->model_id;
			}
			c->ykc_model_due_us = now + (int64_t) config.ykc_model_recheck_s * 1000000;
			if (it->has_model && it->model_until_us > now && it->model_until_us < c->ykc_model_due_us)
				c->ykc_model_due_us = it->model_until_us + 1000000;
			break;
		default:
			if (it->answer_after_commit)
			{
				n = YkcAnswer(c, it, out);
				SendBytes(c, out, n);
			}
			break;
	}
}

/* Once a second: the billing models whose plan may have changed. */
static void
YkcTick(lws_sorted_usec_list_t *sul)
{
	int64_t		now = NowUs();

	if (!paused && !stopping)
		for (Conn *c = conns; c; c = c->all_next)
			if (c->ykc && c->ykc_logged_in && c->wsi && !c->closing && c->ykc_model_due_us <= now)
			{
				c->ykc_model_due_us = INT64_MAX;	/* until the look-up comes back */
				Enqueue(YkcModelItem(c));
			}
	lws_sul_schedule(context, 0, &ykc_tick, YkcTick, LWS_US_PER_SEC);
}

/* Whole frames of a YKC connection's input, then what is left kept. */
static void
YkcReceive(Conn *c, const uint8_t *in, size_t len)
{
	size_t		off = 0;

	if (c->rx_len + len > 16 * YKC_MAX_FRAME)
	{
		LogEvent(c->ykc_logged_in ? c->pile : NULL, "YKC connection sends more than it lets the bridge answer: closing");
		CloseConn(c, 0, "overrun");
		return;
	}
	c->rx = XRealloc(c->rx, c->rx_len + len + 1);
	memcpy(c->rx + c->rx_len, in, len);
	c->rx_len += len;
	while (off < c->rx_len && !c->closing)
	{
		YkcFrame	f;
		YkcResult	res;
		YkcScan		r = YkcFrameScan((const uint8_t *) c->rx + off, c->rx_len - off, &f);

		if (r == YKC_NEED_MORE)
			break;
		if (r == YKC_BAD_START || r == YKC_BAD_LENGTH)
		{
			LogEvent(c->ykc_logged_in ? c->pile : NULL, "YKC %s (pile number %s): the stream is lost; closing",
					 r == YKC_BAD_START ? "frame without the start byte 0x68" : "frame with a length under 4",
					 c->ykc_no[0] ? c->ykc_no : "unknown");
			MetricsYkcRefused(r == YKC_BAD_START ? "start_byte" : "length");
			CloseConn(c, 0, "bad frame");
			break;
		}
		off += f.frame_len;
		if (r == YKC_BAD_CRC)
		{
			LogEvent(c->ykc_logged_in ? c->pile : NULL, "YKC frame 0x%02X (sequence %u) with a wrong CRC: dropped, not answered",
					 f.type, f.seq);
			MetricsYkcRefused("crc");
			continue;
		}
		if (!RateOk(c))
		{
			LogEvent(c->ykc_logged_in ? c->pile : NULL, "YKC frame 0x%02X over the rate limit of %d a second: dropped",
					 f.type, config.rate_per_second);
			MetricsRateLimited();
			continue;
		}
		YkcHandleFrame(c, &f, &res);
		if (res.reply_len)
			SendBytes(c, res.reply, res.reply_len);
		if (res.item)
			Enqueue(res.item);
		if (res.close)
			CloseConn(c, 0, "refused");
	}
	if (off > 0)
	{
		memmove(c->rx, c->rx + off, c->rx_len - off);
		c->rx_len -= off;
	}
}

static int
YkcCallback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	Conn	  **slot = (Conn **) user;
	Conn	   *c = slot ? *slot : NULL;

	switch (reason)
	{
		case LWS_CALLBACK_RAW_ADOPT:
			if (slot == NULL)
				return -1;
			c = calloc(1, sizeof(Conn));
			c->wsi = wsi;
			c->refs = 1;
			c->ykc = true;
			c->ykc_model_id = -1;
			c->ykc_model_due_us = INT64_MAX;
			c->serial = next_serial++;
			c->tokens = config.rate_burst;
			c->tokens_at_us = NowUs();
			*slot = c;
			c->all_next = conns;
			if (conns)
				conns->all_prev = c;
			conns = c;
			nconns++;
			MetricsConnected(nconns, true);
			if (paused)
				lws_rx_flow_control(wsi, 0);
			{
				char		peer[64] = "";

				lws_get_peer_simple(wsi, peer, sizeof(peer));
				LogEvent(NULL, "YKC connection from %s (%d connected)", peer, nconns);
			}
			break;
		case LWS_CALLBACK_RAW_RX:
			if (c && !c->closing && len > 0)
				YkcReceive(c, (const uint8_t *) in, len);
			break;
		case LWS_CALLBACK_RAW_WRITEABLE:
			if (c == NULL)
				break;
			if (c->out_head)
				return WriteNextFrame(wsi, c, LWS_WRITE_RAW);
			if (c->closing)
				return -1;
			break;
		case LWS_CALLBACK_RAW_CLOSE:
			if (c == NULL)
				break;
			if (c->ykc_logged_in)
				UnhashConn(c);
			if (c->all_prev)
				c->all_prev->all_next = c->all_next;
			else
				conns = c->all_next;
			if (c->all_next)
				c->all_next->all_prev = c->all_prev;
			nconns--;
			MetricsConnected(nconns, false);
			LogEvent(c->ykc_logged_in ? c->pile : NULL, "YKC pile number %s disconnected (%d connected)",
					 c->ykc_no[0] ? c->ykc_no : "unknown", nconns);
			if (c->ykc_logged_in && FindConn(c->pile) == NULL)
				CommandsPileDisconnected(c->pile);
			c->wsi = NULL;
			*slot = NULL;
			ConnRelease(c);
			break;
		default:
			break;
	}
	return 0;
}

static struct lws_protocols ykc_protocols[] = {
	{"ykc", YkcCallback, sizeof(Conn *), 1024, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0}
};

/* Run until SIGTERM; then flush, answer, close with 1001. */
int
ServerRun(void)
{
	struct lws_context_creation_info info;
	int64_t		deadline;

	lws_set_log_level(LLL_ERR, NULL);
	memset(&info, 0, sizeof(info));
	/*
	 * The context's own vhost is the OCPP listener; a bridge for YKC piles
	 * only keeps it, unlistening, and adds the YKC vhost below.
	 */
	info.port = config.ocpp_port ? config.ocpp_port : CONTEXT_PORT_NO_LISTEN;
	info.iface = config.ocpp_host[0] && strcmp(config.ocpp_host, "0.0.0.0") != 0 ? config.ocpp_host : NULL;
	info.protocols = protocols;
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6;
	info.pt_serv_buf_size = 32 * 1024;
	if (config.tls_cert)
	{
		/* Security profile 2: wss://, TLS 1.2 or later (OCPP's minimum). */
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.ssl_cert_filepath = config.tls_cert;
		info.ssl_private_key_filepath = config.tls_key;
		info.ssl_options_set = SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1;
	}
	context = lws_create_context(&info);
	if (context == NULL)
	{
		if (config.ocpp_port)
			LogEvent(NULL, "cannot listen on %s:%d", config.ocpp_host, config.ocpp_port);
		else
			LogEvent(NULL, "cannot start libwebsockets");
		WriterStop();
		CommandsStop();
		return -1;
	}
	if (config.ocpp_port)
		LogEvent(NULL, "listening on %s:%d (%s)", config.ocpp_host, config.ocpp_port,
				 config.tls_cert ? "wss://, TLS" : "ws://");
	else
		LogEvent(NULL, "no --ocpp: not listening for OCPP charge points");
	if (config.ykc_port)
	{
		struct lws_context_creation_info vi;

		memset(&vi, 0, sizeof(vi));
		vi.port = config.ykc_port;
		vi.iface = config.ykc_host[0] && strcmp(config.ykc_host, "0.0.0.0") != 0 ? config.ykc_host : NULL;
		vi.protocols = ykc_protocols;
		vi.vhost_name = "ykc";
		vi.options = LWS_SERVER_OPTION_ADOPT_APPLY_LISTEN_ACCEPT_CONFIG | LWS_SERVER_OPTION_DISABLE_IPV6;
		vi.listen_accept_role = "raw-skt";
		vi.listen_accept_protocol = "ykc";
		if (lws_create_vhost(context, &vi) == NULL)
		{
			LogEvent(NULL, "cannot listen for YKC on %s:%d", config.ykc_host, config.ykc_port);
			lws_context_destroy(context);
			context = NULL;
			WriterStop();
			CommandsStop();
			return -1;
		}
		LogEvent(NULL, "listening for YKC piles on %s:%d (TCP)", config.ykc_host, config.ykc_port);
		lws_sul_schedule(context, 0, &ykc_tick, YkcTick, LWS_US_PER_SEC);
	}
	while (!stopping)
		lws_service(context, 0);

	LogEvent(NULL, "SIGTERM: flushing %d message(s), then closing %d connection(s) with 1001",
			 WriterOutstanding(), nconns);
	PauseAll();
	WriterStop();
	DrainDone();
	for (Conn *c = conns; c; c = c->all_next)
		CloseConn(c, LWS_CLOSE_STATUS_GOINGAWAY, "evcharge-bridge is stopping");
	deadline = NowUs() + 2000000;
	while (nconns > 0 && NowUs() < deadline)
		lws_service(context, 0);
	lws_context_destroy(context);
	context = NULL;
	CommandsStop();
	return 0;
}
