/*-------------------------------------------------------------------------
 *
 * ykc_frame.c
 *	  The YKC frame codec: framing and CRC-16/MODBUS, BCD digits,
 *	  CP56Time2a times and little-endian numbers.
 *
 * The CRC is CRC-16/MODBUS (reflected polynomial 0xA001, initial value
 * 0xFFFF) over sequence through body, sent low byte first, as the public
 * implementations and real piles compute it; the specification's text
 * names another polynomial and some of its sample frames do not check out
 * (docs/bridge.md).  CP56Time2a (IEC 60870-5-104) carries milliseconds of
 * the minute, minute, hour, day of month (day of week in its top bits),
 * month and year of the century, in the pile's local time: the bridge
 * converts it with a fixed UTC offset (ykc_utc_offset, +08:00 by default,
 * China having no summer time).  Pure functions, fuzzed by
 * src/bridge/fuzz/fuzz_ykc.c.
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "ykc.h"

/* CRC-16/MODBUS, bit by bit: frames are short. */
uint16_t
YkcCrc16(const uint8_t *p, size_t n)
{
	uint16_t	crc = 0xFFFF;

	for (size_t i = 0; i < n; i++)
	{
		crc ^= p[i];
		for (int b = 0; b < 8; b++)
			crc = (crc & 1) ? (uint16_t) ((crc >> 1) ^ 0xA001) : (uint16_t) (crc >> 1);
	}
	return crc;
}

/*
 * The first frame of buf[0..len).  The length byte gives where the frame
 * ends, so a frame with a bad CRC can be skipped; a wrong start byte or an
 * impossible length leaves no way to find the next frame.
 */
YkcScan
YkcFrameScan(const uint8_t *buf, size_t len, YkcFrame *out)
{
	size_t		flen;
	uint16_t	crc;

	memset(out, 0, sizeof(*out));
	if (len < 1)
		return YKC_NEED_MORE;
	if (buf[0] != YKC_START)
		return YKC_BAD_START;
	if (len < 2)
		return YKC_NEED_MORE;
	if (buf[1] < 4)
		return YKC_BAD_LENGTH;
	flen = 2 + (size_t) buf[1] + 2;
	if (len < flen)
		return YKC_NEED_MORE;
	out->frame_len = flen;
	out->seq = (uint16_t) (buf[2] | (buf[3] << 8));
	out->encrypted = buf[4];
	out->type = buf[5];
	out->body = buf + 6;
	out->body_len = buf[1] - 4;
	crc = YkcCrc16(buf + 2, buf[1]);
	if ((uint8_t) (crc & 0xFF) != buf[flen - 2] || (uint8_t) (crc >> 8) != buf[flen - 1])
		return YKC_BAD_CRC;
	return YKC_FRAME;
}

/* A frame into out (YKC_MAX_FRAME bytes); its length.  Never encrypted. */
size_t
YkcFrameEncode(uint16_t seq, uint8_t type, const uint8_t *body, int body_len, uint8_t *out)
{
	uint16_t	crc;
	size_t		n;

	if (body_len < 0 || body_len > YKC_MAX_BODY)
		return 0;
	out[0] = YKC_START;
	out[1] = (uint8_t) (4 + body_len);
	out[2] = (uint8_t) (seq & 0xFF);
	out[3] = (uint8_t) (seq >> 8);
	out[4] = 0;
	out[5] = type;
	if (body_len > 0)
		memcpy(out + 6, body, (size_t) body_len);
	n = 6 + (size_t) body_len;
	crc = YkcCrc16(out + 2, n - 2);
	out[n] = (uint8_t) (crc & 0xFF);
	out[n + 1] = (uint8_t) (crc >> 8);
	return n + 2;
}

/* BCD, high nibble first: false on a nibble that is no digit. */
bool
YkcBcdDecode(const uint8_t *b, int nbytes, char *digits)
{
	for (int i = 0; i < nbytes; i++)
	{
		int			hi = b[i] >> 4;
		int			lo = b[i] & 0x0F;

		if (hi > 9 || lo > 9)
		{
			digits[0] = '\0';
			return false;
		}
		digits[2 * i] = (char) ('0' + hi);
		digits[2 * i + 1] = (char) ('0' + lo);
	}
	digits[2 * nbytes] = '\0';
	return true;
}

/* 2*nbytes digits (fewer: padded with leading zeros) into BCD. */
void
YkcBcdEncode(const char *digits, int nbytes, uint8_t *out)
{
	int			len = (int) strlen(digits);
	int			pad = 2 * nbytes - len;

	for (int i = 0; i < 2 * nbytes; i++)
	{
		int			k = i - pad;
		int			d = (k >= 0 && k < len && digits[k] >= '0' && digits[k] <= '9') ? digits[k] - '0' : 0;

		if (i % 2 == 0)
			out[i / 2] = (uint8_t) (d << 4);
		else
			out[i / 2] |= (uint8_t) d;
	}
}

/* Days since 1970-01-01 of a civil date (proleptic Gregorian). */
static int64_t
DaysFromCivil(int y, int m, int d)
{
	int			era;
	int			yoe,
				doy,
				doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (int64_t) era * 146097 + doe - 719468;
}

static void
CivilFromDays(int64_t z, int *y, int *m, int *d)
{
	int64_t		era,
				doe,
				yoe,
				doy,
				mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int) (doy - (153 * mp + 2) / 5 + 1);
	*m = (int) (mp < 10 ? mp + 3 : mp - 9);
	*y = (int) (yoe + era * 400 + (*m <= 2));
}

/*
 * CP56Time2a in the pile's local time (utc_offset_min east of UTC) into
 * µs since 1970 UTC; false for an invalid one (the IV bit, or a field out
 * of range: a pile whose clock was never set sends such).
 */
bool
YkcCp56Decode(const uint8_t *b, int utc_offset_min, int64_t *us)
{
	int			ms = b[0] | (b[1] << 8);
	int			minute = b[2] & 0x3F;
	int			hour = b[3] & 0x1F;
	int			day = b[4] & 0x1F;
	int			month = b[5] & 0x0F;
	int			year = 2000 + (b[6] & 0x7F);
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int64_t		days;

	if ((b[2] & 0x80) || ms > 59999 || minute > 59 || hour > 23 || month < 1 || month > 12 ||
		day < 1 || day > mdays[month - 1])
		return false;
	if (month == 2 && day == 29 && !((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
		return false;
	days = DaysFromCivil(year, month, day);
	*us = ((days * 86400 + hour * 3600 + minute * 60 - (int64_t) utc_offset_min * 60) * 1000 + ms) * 1000;
	return true;
}

void
YkcCp56Encode(int64_t us, int utc_offset_min, uint8_t *out)
{
	int64_t		ms_all = us / 1000 + (int64_t) utc_offset_min * 60000;
	int64_t		days = ms_all >= 0 ? ms_all / 86400000 : -((-ms_all + 86399999) / 86400000);
	int64_t		ms_day = ms_all - days * 86400000;
	int			y,
				m,
				d;
	int			ms = (int) (ms_day % 60000);
	int			wday = (int) (((days % 7) + 11) % 7);	/* 1970-01-01 was a Thursday (4); Monday 1 .. Sunday 7 */

	if (wday == 0)
		wday = 7;
	CivilFromDays(days, &y, &m, &d);
	out[0] = (uint8_t) (ms & 0xFF);
	out[1] = (uint8_t) (ms >> 8);
	out[2] = (uint8_t) ((ms_day / 60000) % 60);
	out[3] = (uint8_t) (ms_day / 3600000);
	out[4] = (uint8_t) (d | (wday << 5));
	out[5] = (uint8_t) m;
	out[6] = (uint8_t) ((y - 2000) & 0x7F);
}

uint32_t
YkcLe(const uint8_t *b, int n)
{
	uint32_t	v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | b[i];
	return v;
}

uint64_t
YkcLe64(const uint8_t *b, int n)
{
	uint64_t	v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | b[i];
	return v;
}

void
YkcPutLe(uint8_t *b, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
	{
		b[i] = (uint8_t) (v & 0xFF);
		v >>= 8;
	}
}
