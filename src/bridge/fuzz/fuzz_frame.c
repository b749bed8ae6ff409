/*-------------------------------------------------------------------------
 *
 * fuzz_frame.c
 *	  libFuzzer target for the bridge's untrusted input: the OCPP-J frame
 *	  decoder (frame.c), the schema check and the mapping of each action
 *	  (ocpp.c), with AddressSanitizer and UndefinedBehaviorSanitizer.
 *
 * Each input is one text message as a charge point would send it.  Built
 * by `make fuzz-bridge`; run: src/bridge/fuzz/fuzz_frame -max_total_time=60
 * src/bridge/fuzz/corpus (docs/bridge.md).
 *
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"

volatile int stopping = 0;

/* The fuzz target logs nothing. */
void
LogEvent(const char *pile, const char *fmt,...)
{
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Frame		f;
	char		why[300];
	Conn		conn;
	MapResult	res;

	memset(&conn, 0, sizeof(conn));
	memcpy(conn.pile, "44200000120000100001", 21);
	conn.refs = 1;
	if (FrameDecode((const char *) data, size, &f, why, sizeof(why)) != FRAME_OK)
	{
		free(FrameCallError(f.id[0] ? f.id : "-1", "ProtocolError", why));
		return 0;
	}
	if (f.type == 2 && OcppValidate(f.action, f.payload, why, sizeof(why)) == NULL)
	{
		OcppHandleCall(&conn, &f, &res);
		free(res.reply);
		if (res.item)
		{
			res.item->stored = true;
			free(OcppAnswer(res.item));
			free(res.item->samples);
			free(res.item);
		}
	}
	json_decref(f.root);
	return 0;
}
