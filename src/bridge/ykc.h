/*-------------------------------------------------------------------------
 *
 * ykc.h
 *	  The YKC cloud protocol (云快充平台协议 1.5/1.6): the frame codec
 *	  (ykc_frame.c) and the mapping of each frame to what evcharge stores
 *	  (ykc.c).
 *
 * A frame is 0x68, a length byte (sequence + encryption flag + type +
 * body), a little-endian sequence number, the encryption flag (0 none,
 * 1 3DES), the type (piles send odd codes, the platform even ones), the
 * body and a CRC-16/MODBUS over sequence through body, low byte first.
 * Nothing here touches the database or a socket.
 *
 *-------------------------------------------------------------------------
 */
#ifndef YKC_H
#define YKC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define YKC_START 0x68
#define YKC_MAX_FRAME (2 + 255 + 2)
#define YKC_MAX_BODY (255 - 4)

/* Frame types (the pile's odd, the platform's even). */
#define YKC_LOGIN 0x01
#define YKC_LOGIN_ACK 0x02
#define YKC_HEARTBEAT 0x03
#define YKC_HEARTBEAT_ACK 0x04
#define YKC_MODEL_CHECK 0x05
#define YKC_MODEL_CHECK_ACK 0x06
#define YKC_MODEL_REQUEST 0x09
#define YKC_MODEL_REPLY 0x0A
#define YKC_REALTIME 0x13
#define YKC_REMOTE_START_ACK 0x33
#define YKC_REMOTE_START 0x34
#define YKC_REMOTE_STOP_ACK 0x35
#define YKC_REMOTE_STOP 0x36
#define YKC_RECORD 0x3B
#define YKC_RECORD_ACK 0x40
#define YKC_CLOCK_ACK 0x55
#define YKC_CLOCK_SET 0x56
#define YKC_MODEL_SET_ACK 0x57
#define YKC_MODEL_SET 0x58

/* Body lengths of the frames the bridge reads (protocol 1.5/1.6). */
#define YKC_LOGIN_LEN 30
#define YKC_HEARTBEAT_LEN 9
#define YKC_MODEL_CHECK_LEN 9
#define YKC_MODEL_REQUEST_LEN 7
#define YKC_REALTIME_LEN 60
#define YKC_RECORD_LEN 158
#define YKC_REMOTE_START_ACK_LEN 26
#define YKC_REMOTE_STOP_ACK_LEN 10
#define YKC_CLOCK_ACK_LEN 14
#define YKC_MODEL_SET_ACK_LEN 8
/* The billing model's body after the pile number: id, 8 prices, loss, 48 classes. */
#define YKC_MODEL_LEN (2 + 8 * 4 + 1 + 48)

typedef enum YkcScan
{
	YKC_FRAME,					/* a whole frame, CRC good */
	YKC_NEED_MORE,				/* not all of it has arrived yet */
	YKC_BAD_CRC,				/* a whole frame whose CRC is wrong: skip it */
	YKC_BAD_START,				/* not 0x68: the stream is lost, close */
	YKC_BAD_LENGTH				/* a length under 4: close */
} YkcScan;

typedef struct YkcFrame
{
	uint16_t	seq;
	uint8_t		encrypted;
	uint8_t		type;
	const uint8_t *body;		/* borrowed from the input */
	int			body_len;
	size_t		frame_len;		/* bytes of the input the frame takes */
} YkcFrame;

/* ykc_frame.c */
extern uint16_t YkcCrc16(const uint8_t *p, size_t n);
extern YkcScan YkcFrameScan(const uint8_t *buf, size_t len, YkcFrame *out);
extern size_t YkcFrameEncode(uint16_t seq, uint8_t type, const uint8_t *body, int body_len, uint8_t *out);
extern bool YkcBcdDecode(const uint8_t *b, int nbytes, char *digits);	/* 2*nbytes digits + NUL */
extern void YkcBcdEncode(const char *digits, int nbytes, uint8_t *out); /* non-digits as 0 */
extern bool YkcCp56Decode(const uint8_t *b, int utc_offset_min, int64_t *us);
extern void YkcCp56Encode(int64_t us, int utc_offset_min, uint8_t *out);
extern uint32_t YkcLe(const uint8_t *b, int n);	/* little-endian, n <= 4 */
extern uint64_t YkcLe64(const uint8_t *b, int n);	/* n <= 8 */
extern void YkcPutLe(uint8_t *b, uint64_t v, int n);

#endif							/* YKC_H */
