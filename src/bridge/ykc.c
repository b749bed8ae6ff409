/*-------------------------------------------------------------------------
 *
 * ykc.c
 *	  YKC frames from a pile: checking each and mapping it to what evcharge
 *	  stores, and the frames the platform sends (answers, remote start and
 *	  stop, clock sync, billing model).
 *
 * A pile must log in (0x01) before anything else: any other frame before
 * an admitted login is refused (logged, not answered, nothing stored),
 * and so is a frame whose encryption flag says 3DES (the bridge holds no
 * keys).  The login is looked up by the writer (the 14-digit pile number
 * mapped to the 20-digit pile id, gun count and current type checked,
 * firmware written) and answered after that commit; an unknown number is
 * answered with the refusal 0x02/0x01.  Heartbeats (0x03) are answered at
 * once; real-time data (0x13) becomes a heartbeat row; a transaction
 * record (0x3B) becomes a pile record and is acknowledged (0x40) only
 * after the commit; billing model check and request (0x05, 0x09) are
 * answered from the station's plan in force.  Nothing here touches the
 * database or a socket (docs/bridge.md, "The YKC protocol").
 *
 *-------------------------------------------------------------------------
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "ykc.h"

/* A new item of a frame, its connection referenced. */
static Item *
NewYkcItem(Conn *conn, const YkcFrame *f, ItemKind kind)
{
	Item	   *it = calloc(1, sizeof(Item));

	it->kind = kind;
	it->conn = conn;
	conn->refs++;
	it->ykc_seq = f ? f->seq : 0;
	it->ykc_type = f ? f->type : 0;
	snprintf(it->pile, sizeof(it->pile), "%s", conn->pile);
	snprintf(it->ykc_no, sizeof(it->ykc_no), "%s", conn->ykc_no);
	it->received_us = NowUs();
	it->ts_us = it->received_us;
	it->transaction_id = -1;
	it->fault_code = -1;
	it->model_asked = -1;
	snprintf(it->msg_id, sizeof(it->msg_id), "ykc-%04x-%02x", it->ykc_seq, it->ykc_type);
	return it;
}

/* A platform frame: the next sequence of the connection (or the request's). */
static size_t
Encode(Conn *conn, int echo_seq, uint8_t type, const uint8_t *body, int len, uint8_t *out)
{
	uint16_t	seq = echo_seq >= 0 ? (uint16_t) echo_seq : conn->ykc_seq++;

	return YkcFrameEncode(seq, type, body, len, out);
}

/* The pile number of a body (its first 7 bytes) is the one that logged in. */
static bool
SamePile(const Conn *conn, const uint8_t *b, char *why, size_t whylen)
{
	char		no[15];

	if (!YkcBcdDecode(b, 7, no))
	{
		snprintf(why, whylen, "the pile number is not BCD");
		return false;
	}
	if (strcmp(no, conn->ykc_no) != 0)
	{
		snprintf(why, whylen, "pile number %s is not the one that logged in (%s)", no, conn->ykc_no);
		return false;
	}
	return true;
}

static int
BodyLenOf(uint8_t type)
{
	switch (type)
	{
		case YKC_LOGIN:
			return YKC_LOGIN_LEN;
		case YKC_HEARTBEAT:
			return YKC_HEARTBEAT_LEN;
		case YKC_MODEL_CHECK:
			return YKC_MODEL_CHECK_LEN;
		case YKC_MODEL_REQUEST:
			return YKC_MODEL_REQUEST_LEN;
		case YKC_REALTIME:
			return YKC_REALTIME_LEN;
		case YKC_RECORD:
			return YKC_RECORD_LEN;
		case YKC_REMOTE_START_ACK:
			return YKC_REMOTE_START_ACK_LEN;
		case YKC_REMOTE_STOP_ACK:
			return YKC_REMOTE_STOP_ACK_LEN;
		case YKC_CLOCK_ACK:
			return YKC_CLOCK_ACK_LEN;
		case YKC_MODEL_SET_ACK:
			return YKC_MODEL_SET_ACK_LEN;
		default:
			return -1;
	}
}

/* A command sent to the pile and awaiting its answer, taken off the list. */
static int64_t
TakeCommand(Conn *conn, int gun, bool stop)
{
	for (int i = 0; i < 8; i++)
		if (conn->ykc_cmd[i].command_id && conn->ykc_cmd[i].gun == gun && conn->ykc_cmd[i].stop == stop)
		{
			int64_t		id = conn->ykc_cmd[i].command_id;

			conn->ykc_cmd[i].command_id = 0;
			return id;
		}
	return 0;
}

/*
 * One frame of a YKC pile, its CRC checked.  res gets an item to queue, a
 * reply to send now, or a close; every refusal is logged here.
 */
void
YkcHandleFrame(Conn *conn, const YkcFrame *f, YkcResult *res)
{
	const uint8_t *b = f->body;
	const char *who = conn->ykc_logged_in ? conn->pile : NULL;
	char		why[200];
	int			want = BodyLenOf(f->type);
	uint8_t		body[64];
	Item	   *it;

	memset(res, 0, sizeof(*res));
	MetricsYkcFrame(f->type);
	if (f->encrypted != 0)
	{
		LogEvent(who, "YKC frame 0x%02X from pile number %s with encryption flag %d: this bridge takes no 3DES; closing",
				 f->type, conn->ykc_no[0] ? conn->ykc_no : "(not logged in)", f->encrypted);
		MetricsYkcRefused("encrypted");
		res->close = true;
		return;
	}
	if (want < 0)
	{
		LogEvent(who, "YKC frame type 0x%02X (sequence %u) is not one this bridge takes: ignored, not answered",
				 f->type, f->seq);
		MetricsYkcRefused("unknown_type");
		return;
	}
	if (f->body_len < want)
	{
		LogEvent(who, "YKC frame 0x%02X has a body of %d bytes, not %d: ignored, not answered", f->type,
				 f->body_len, want);
		MetricsYkcRefused("length");
		return;
	}
	if (f->type != YKC_LOGIN && !conn->ykc_logged_in)
	{
		LogEvent(NULL, "YKC frame 0x%02X before a successful login (pile number %s): refused, not answered",
				 f->type, conn->ykc_no[0] ? conn->ykc_no : "unknown");
		MetricsYkcRefused("before_login");
		return;
	}
	if (f->type != YKC_LOGIN && !SamePile(conn, f->type == YKC_REALTIME || f->type == YKC_RECORD ||
										  f->type == YKC_REMOTE_START_ACK ? b + 16 : b, why, sizeof(why)))
	{
		LogEvent(who, "YKC frame 0x%02X refused: %s", f->type, why);
		MetricsYkcRefused("other");
		return;
	}
	switch (f->type)
	{
		case YKC_LOGIN:
			{
				char		no[15];
				char		fw[9];

				if (!YkcBcdDecode(b, 7, no))
				{
					LogEvent(NULL, "YKC login with a pile number that is not BCD: closing");
					MetricsYkcRefused("login_refused");
					res->close = true;
					return;
				}
				if (conn->ykc_logged_in && strcmp(no, conn->ykc_no) != 0)
				{
					LogEvent(conn->pile, "YKC login as pile number %s on the connection of %s: closing", no,
							 conn->ykc_no);
					res->close = true;
					return;
				}
				if (conn->ykc_login_pending)
				{
					LogEvent(NULL, "YKC login of pile number %s again while its first is looked up: ignored", no);
					return;
				}
				snprintf(conn->ykc_no, sizeof(conn->ykc_no), "%s", no);
				it = NewYkcItem(conn, f, ITEM_YKC_LOGIN);
				snprintf(it->ykc_no, sizeof(it->ykc_no), "%s", no);
				snprintf(it->current_type, sizeof(it->current_type), "%s", b[7] == 0 ? "DC" : "AC");
				it->gun_count = b[8];
				memcpy(fw, b + 10, 8);
				fw[8] = '\0';
				for (int i = 0; i < 8; i++)
					if (fw[i] != '\0' && (fw[i] < 0x20 || fw[i] > 0x7E))
						fw[i] = '?';
				snprintf(it->firmware, sizeof(it->firmware), "%s", fw);
				it->answer_after_commit = true;
				conn->ykc_login_pending = true;
				res->item = it;
				return;
			}
		case YKC_HEARTBEAT:
			memcpy(body, b, 8);
			body[8] = 0;
			res->reply_len = Encode(conn, f->seq, YKC_HEARTBEAT_ACK, body, 9, res->reply);
			return;
		case YKC_MODEL_CHECK:
		case YKC_MODEL_REQUEST:
			it = NewYkcItem(conn, f, ITEM_YKC_MODEL);
			if (f->type == YKC_MODEL_CHECK)
			{
				char		id[5];

				it->model_asked = YkcBcdDecode(b + 7, 2, id) ? atoi(id) : -2;
			}
			it->answer_after_commit = true;
			res->item = it;
			return;
		case YKC_REALTIME:
			{
				char		gun[3];
				Sample	   *s;
				uint32_t	fault;

				if (!YkcBcdDecode(b, 16, why) || !YkcBcdDecode(b + 23, 1, gun) || atoi(gun) < 1)
				{
					LogEvent(conn->pile, "YKC real-time data with a serial or gun number that is not BCD: ignored");
					MetricsYkcRefused("other");
					return;
				}
				it = NewYkcItem(conn, f, ITEM_YKC_REALTIME);
				memcpy(it->serial, why, 33);
				it->connector = atoi(gun);
				it->ykc_status = b[24];
				it->plugged = b[26] == 1;
				it->nsamples = 1;
				it->samples = s = calloc(1, sizeof(Sample));
				s->ts_us = it->ts_us;
				s->voltage_v = YkcLe(b + 27, 2) / 10.0;
				s->current_a = YkcLe(b + 29, 2) / 10.0;
				s->power_w = (int64_t) llround(s->voltage_v * s->current_a);
				s->soc = b[40] <= 100 ? b[40] : -1;
				/* charged energy of the session, 0.0001 kWh: the session's register from 0 */
				s->meter_wh = (int64_t) (YkcLe(b + 46, 4) / 10);
				fault = YkcLe(b + 58, 2);
				if (it->ykc_status == 1)
				{
					it->fault_code = 99;
					for (int k = 0; k < 16; k++)
						if (fault & (1u << k))
						{
							it->fault_code = k + 1;
							break;
						}
				}
				if (it->ykc_status > 3)
				{
					LogEvent(conn->pile, "YKC real-time data with status %d (0-3 expected): ignored", it->ykc_status);
					free(it->samples);
					it->conn->refs--;
					free(it);
					MetricsYkcRefused("other");
					return;
				}
				res->item = it;
				return;
			}
		case YKC_RECORD:
			{
				char		gun[3];
				char		card[17];

				it = NewYkcItem(conn, f, ITEM_YKC_RECORD);
				if (!YkcBcdDecode(b, 16, it->serial) || !YkcBcdDecode(b + 23, 1, gun) || atoi(gun) < 1 ||
					!YkcCp56Decode(b + 24, config.ykc_utc_offset_min, &it->started_us) ||
					!YkcCp56Decode(b + 31, config.ykc_utc_offset_min, &it->ts_us))
				{
					/*
					 * Acknowledged as illegal (0x01): the pile stops resending a
					 * record nothing could be made of; the log keeps its serial.
					 */
					LogEvent(conn->pile, "YKC transaction record with a bad serial, gun or time (serial %.32s): answered illegal, not stored",
							 it->serial[0] ? it->serial : "?");
					it->result_code = 1;
					res->reply_len = YkcAnswer(conn, it, res->reply);
					it->conn->refs--;
					free(it);
					MetricsYkcRefused("other");
					return;
				}
				it->connector = atoi(gun);
				for (int k = 0; k < 4; k++)
					it->class_wh[k] = (int64_t) (YkcLe(b + 38 + 16 * k + 4, 4) / 10);
				it->meter = (int64_t) (YkcLe64(b + 107, 5) / 10);	/* meter at stop */
				it->energy_wh = (int64_t) (YkcLe(b + 112, 4) / 10);
				memcpy(it->vin, b + 124, 17);
				it->vin[17] = '\0';
				for (int k = 0; k < 17; k++)
					if (it->vin[k] != '\0' && (it->vin[k] < '0' || it->vin[k] > 'Z'))
						it->vin[0] = '\0';
				/* start type: 1 app (remote), 2 card, 4 offline card, 5 VIN */
				snprintf(it->id_tag, sizeof(it->id_tag), "%s", b[141] == 1 ? "remote" : b[141] == 2 || b[141] == 4 ? "card" :
						 b[141] == 5 ? "vin" : "");
				snprintf(it->reason, sizeof(it->reason), "0x%02X", b[149]);
				if (YkcBcdDecode(b + 150, 8, card) && strspn(card, "0") != 16)
					snprintf(it->card_no, sizeof(it->card_no), "%s", card);
				it->answer_after_commit = true;
				res->item = it;
				return;
			}
		case YKC_REMOTE_START_ACK:
		case YKC_REMOTE_STOP_ACK:
			{
				bool		stop = f->type == YKC_REMOTE_STOP_ACK;
				const uint8_t *p = stop ? b + 7 : b + 23;
				char		gun[3];
				int64_t		cmd;

				if (!YkcBcdDecode(p, 1, gun))
					return;
				cmd = TakeCommand(conn, atoi(gun), stop);
				if (cmd == 0)
				{
					LogEvent(conn->pile, "YKC remote %s answer for gun %s, which the bridge did not ask: ignored",
							 stop ? "stop" : "start", gun);
					return;
				}
				LogEvent(conn->pile, "command %" PRId64 " answered: %s (reason 0x%02X)", cmd,
						 p[1] == 1 ? "Accepted" : "Rejected", p[2]);
				CommandsAnswer(conn->pile, cmd, p[1] == 1 ? "Accepted" : "Rejected");
				return;
			}
		case YKC_CLOCK_ACK:
		case YKC_MODEL_SET_ACK:
			LogEvent(conn->pile, "YKC %s answered", f->type == YKC_CLOCK_ACK ? "clock sync" : "billing model set");
			return;
		default:
			return;
	}
}

/* The answer to an item after the commit (0: none), into out. */
size_t
YkcAnswer(Conn *conn, const Item *it, uint8_t *out)
{
	uint8_t		body[128];

	switch (it->kind)
	{
		case ITEM_YKC_LOGIN:
			YkcBcdEncode(it->ykc_no, 7, body);
			body[7] = it->stored && it->result_code == 0 ? 0x00 : 0x01;
			return Encode(conn, it->ykc_seq, YKC_LOGIN_ACK, body, 8, out);
		case ITEM_YKC_RECORD:
			YkcBcdEncode(it->serial, 16, body);
			body[16] = it->failed || it->result_code != 0 ? 0x01 : 0x00;
			if (it->failed)
				return 0;		/* not stored: the pile resends */
			return Encode(conn, it->ykc_seq, YKC_RECORD_ACK, body, 17, out);
		case ITEM_YKC_MODEL:
			if (!it->has_model)
				return 0;
			YkcBcdEncode(conn->ykc_no, 7, body);
			if (it->ykc_type == YKC_MODEL_CHECK)
			{
				memcpy(body + 7, it->model, 2);
				body[9] = it->model_asked == it->model_id ? 0x00 : 0x01;
				return Encode(conn, it->ykc_seq, YKC_MODEL_CHECK_ACK, body, 10, out);
			}
			memcpy(body + 7, it->model, YKC_MODEL_LEN);
			if (it->ykc_type == YKC_MODEL_REQUEST)
				return Encode(conn, it->ykc_seq, YKC_MODEL_REPLY, body, 7 + YKC_MODEL_LEN, out);
			return Encode(conn, -1, YKC_MODEL_SET, body, 7 + YKC_MODEL_LEN, out);
		default:
			return 0;
	}
}

/* A billing-model look-up of the bridge's own (a plan change): pushed with 0x58. */
Item *
YkcModelItem(Conn *conn)
{
	Item	   *it = NewYkcItem(conn, NULL, ITEM_YKC_MODEL);

	it->answer_after_commit = true;
	it->ykc_type = YKC_MODEL_SET;
	return it;
}

/*
 * A remote start (0x34) or stop (0x36) of a command of the platform.  The
 * start's serial is the pile number, the gun and the order number's
 * yyMMddHHmmss and last four digits (the serial's usual layout); the pile
 * brings it back in its real-time data and record, where the writer maps
 * it to the order (ykc_transaction).  The balance sent is the most the
 * field holds: evcharge's balance guard stops the charge, not the pile.
 */
size_t
YkcCommandFrame(Conn *conn, const Command *cmd, uint8_t *out)
{
	uint8_t		body[48];
	char		gun[8];
	char		serial[48];
	bool		stop = strcmp(cmd->action, "RemoteStopTransaction") == 0;
	int			slot = -1;

	for (int i = 0; i < 8; i++)
		if (conn->ykc_cmd[i].command_id == 0 || (conn->ykc_cmd[i].gun == cmd->connector && conn->ykc_cmd[i].stop == stop))
		{
			slot = i;
			break;
		}
	if (slot < 0)
		slot = (int) (cmd->id % 8);
	conn->ykc_cmd[slot].command_id = cmd->id;
	conn->ykc_cmd[slot].gun = cmd->connector;
	conn->ykc_cmd[slot].stop = stop;
	snprintf(gun, sizeof(gun), "%02d", (cmd->connector % 100 + 100) % 100);
	if (stop)
	{
		YkcBcdEncode(conn->ykc_no, 7, body);
		YkcBcdEncode(gun, 1, body + 7);
		return Encode(conn, -1, YKC_REMOTE_STOP, body, 8, out);
	}
	{
		const char *o = cmd->id_tag;
		size_t		olen = strlen(o);

		snprintf(serial, sizeof(serial), "%s%s%.12s%s", conn->ykc_no, gun, olen >= 14 ? o + 2 : "000000000000",
				 olen >= 4 ? o + olen - 4 : "0000");
	}
	YkcBcdEncode(serial, 16, body);
	YkcBcdEncode(conn->ykc_no, 7, body + 16);
	YkcBcdEncode(gun, 1, body + 23);
	memset(body + 24, 0, 16);	/* logical and physical card: none, the app started it */
	YkcPutLe(body + 40, 0xFFFFFFFFu, 4);
	return Encode(conn, -1, YKC_REMOTE_START, body, 44, out);
}

/* Clock sync (0x56): the bridge's time, in the piles' zone. */
size_t
YkcClockFrame(Conn *conn, uint8_t *out)
{
	uint8_t		body[14];

	YkcBcdEncode(conn->ykc_no, 7, body);
	YkcCp56Encode(NowUs(), config.ykc_utc_offset_min, body + 7);
	return Encode(conn, -1, YKC_CLOCK_SET, body, 14, out);
}

/* A plan change: the new model (0x58), when it differs from the pile's. */
size_t
YkcModelPush(Conn *conn, const Item *it, uint8_t *out)
{
	if (!it->has_model || it->model_id == conn->ykc_model_id)
		return 0;
	return YkcAnswer(conn, it, out);
}
