/*-------------------------------------------------------------------------
 *
 * fuzz_ykc.c
 *	  libFuzzer target for the bridge's YKC input: the frame scanner and
 *	  CRC (ykc_frame.c), BCD and CP56Time2a decoding, and the mapping of
 *	  every frame type (ykc.c), with AddressSanitizer and
 *	  UndefinedBehaviorSanitizer.
 *
 * Each input is a byte stream as a pile would send it over TCP: the
 * frames are scanned one after the other as the server does, the first
 * on a connection not logged in and the rest on one that is, and each
 * frame with a good CRC (and each with a bad one, its CRC recomputed, so
 * that mutations reach the bodies) goes through the mapping and the
 * answers.  Built by `make fuzz-bridge`; run: src/bridge/fuzz/fuzz_ykc
 * -max_total_time=60 src/bridge/fuzz/ykc_corpus (docs/bridge.md).
 *
 *-------------------------------------------------------------------------
 */
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "ykc.h"

volatile int stopping = 0;
BridgeConfig config = {.ykc_utc_offset_min = 480, .rate_per_second = 20, .rate_burst = 200};

/* The fuzz target logs nothing and has no other threads. */
void
LogEvent(const char *pile, const char *fmt,...)
{
}
void
MetricsYkcFrame(int type)
{
}
void
MetricsYkcRefused(const char *why)
{
}
void
CommandsAnswer(const char *pile, int64_t command_id, const char *answer)
{
}
int64_t
NowUs(void)
{
	return 1796316000000000;
}

static void
Handle(Conn *conn, const YkcFrame *f)
{
	YkcResult	res;
	uint8_t		out[YKC_MAX_FRAME];

	YkcHandleFrame(conn, f, &res);
	if (res.item)
	{
		res.item->stored = true;
		res.item->has_model = true;
		(void) YkcAnswer(conn, res.item, out);
		(void) YkcModelPush(conn, res.item, out);
		if (res.item->kind == ITEM_YKC_LOGIN)
			conn->ykc_login_pending = false;
		free(res.item->samples);
		free(res.item);
		conn->refs--;
	}
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Conn		conn;
	size_t		off = 0;
	int			n = 0;
	uint8_t		copy[YKC_MAX_FRAME];
	uint8_t		out[YKC_MAX_FRAME];
	Command		cmd;

	memset(&conn, 0, sizeof(conn));
	conn.refs = 1;
	conn.ykc = true;
	conn.ykc_model_id = -1;
	while (off < size)
	{
		YkcFrame	f;
		YkcScan		r = YkcFrameScan(data + off, size - off, &f);

		if (r == YKC_NEED_MORE || r == YKC_BAD_START || r == YKC_BAD_LENGTH)
			break;
		if (r == YKC_BAD_CRC)
		{
			/* The same frame with its CRC made right, so its body is read. */
			memcpy(copy, data + off, f.frame_len);
			YkcFrameEncode(f.seq, f.type, copy + 6, f.body_len, copy);
			copy[4] = f.encrypted;
			if (YkcFrameScan(copy, f.frame_len, &f) == YKC_BAD_CRC)
				f.body = copy + 6;
		}
		if (n++ == 1 && !conn.ykc_logged_in)
		{
			/* From the second frame on, as a pile that logged in. */
			memcpy(conn.ykc_no, "32010200000001", 15);
			memcpy(conn.pile, "44200000120000100001", 21);
			conn.ykc_logged_in = true;
		}
		Handle(&conn, &f);
		off += f.frame_len;
	}
	/* The platform's own frames for this connection. */
	memset(&cmd, 0, sizeof(cmd));
	cmd.id = (int64_t) size;
	cmd.connector = size > 0 ? data[0] : 1;
	memcpy(cmd.id_tag, "20261203120000123456", 21);
	snprintf(cmd.action, sizeof(cmd.action), "%s", size % 2 ? "RemoteStopTransaction" : "RemoteStartTransaction");
	(void) YkcCommandFrame(&conn, &cmd, out);
	(void) YkcClockFrame(&conn, out);
	if (size >= 7)
	{
		int64_t		us;
		char		digits[15];

		if (YkcCp56Decode(data, 480, &us))
		{
			YkcCp56Encode(us, 480, copy);
			if (!YkcCp56Decode(copy, 480, &us))
				abort();		/* what we encode we must read back */
		}
		(void) YkcBcdDecode(data, 7, digits);
	}
	return 0;
}
