/*-------------------------------------------------------------------------
 *
 * frame.c
 *	  OCPP-J frames: decoding what a charge point sends, encoding CALL,
 *	  CALLRESULT and CALLERROR, and the times they carry.
 *
 * A frame is a JSON array: CALL [2, id, action, payload], CALLRESULT
 * [3, id, payload], CALLERROR [4, id, code, description, details].  The
 * decoder takes untrusted bytes of any length and never reads past them
 * (jansson parses from the buffer with its length); what is not JSON, or
 * not one of those shapes, is reported with a reason for the log and the
 * CALLERROR.  Times are RFC 3339 (JSON schema "date-time"): parsed strictly
 * into microseconds since 1970 UTC and written back canonically, so that
 * nothing the pile wrote reaches COPY unchecked.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge.h"

int64_t
NowUs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * Decode one text message into a Frame.  On FRAME_OK the caller owns
 * out->root.  On an error out->id holds the message id when one could be
 * read (else it is empty) and why says what was wrong.
 */
FrameError
FrameDecode(const char *text, size_t len, Frame *out, char *why, size_t whylen)
{
	json_error_t err;
	json_t	   *root;
	json_t	   *t;
	json_t	   *id;
	size_t		n;

	memset(out, 0, sizeof(*out));
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
	if (root == NULL)
	{
		snprintf(why, whylen, "not JSON: %s at byte %d", err.text, err.position);
		return FRAME_NOT_JSON;
	}
	if (!json_is_array(root) || (n = json_array_size(root)) < 3)
	{
		snprintf(why, whylen, "not an OCPP-J frame: expected [2, id, action, payload], [3, id, payload] or [4, id, code, description, details]");
		json_decref(root);
		return FRAME_NOT_FRAME;
	}
	id = json_array_get(root, 1);
	if (!json_is_string(id) || json_string_length(id) == 0 || json_string_length(id) > 36 ||
		strlen(json_string_value(id)) != json_string_length(id))
	{
		snprintf(why, whylen, "the message id is not a string of 1 to 36 characters");
		json_decref(root);
		return FRAME_BAD_ID;
	}
	snprintf(out->id, sizeof(out->id), "%s", json_string_value(id));
	t = json_array_get(root, 0);
	if (!json_is_integer(t) || json_integer_value(t) < 2 || json_integer_value(t) > 4)
	{
		snprintf(why, whylen, "unknown message type: expected 2 (CALL), 3 (CALLRESULT) or 4 (CALLERROR)");
		json_decref(root);
		return FRAME_NOT_FRAME;
	}
	out->type = (int) json_integer_value(t);
	switch (out->type)
	{
		case 2:
			if (n != 4 || !json_is_string(json_array_get(root, 2)))
			{
				snprintf(why, whylen, "a CALL is [2, id, action, payload] with the action a string");
				json_decref(root);
				return FRAME_NOT_FRAME;
			}
			out->action = json_string_value(json_array_get(root, 2));
			out->payload = json_array_get(root, 3);
			break;
		case 3:
			if (n != 3)
			{
				snprintf(why, whylen, "a CALLRESULT is [3, id, payload]");
				json_decref(root);
				return FRAME_NOT_FRAME;
			}
			out->payload = json_array_get(root, 2);
			break;
		default:
			if (n != 5 || !json_is_string(json_array_get(root, 2)))
			{
				snprintf(why, whylen, "a CALLERROR is [4, id, code, description, details]");
				json_decref(root);
				return FRAME_NOT_FRAME;
			}
			out->error_code = json_string_value(json_array_get(root, 2));
			out->payload = json_array_get(root, 4);
			break;
	}
	out->root = root;
	return FRAME_OK;
}

static char *
Dump(json_t *frame)
{
	char	   *s = json_dumps(frame, JSON_COMPACT);

	json_decref(frame);
	return s;
}

/* [3, id, payload]; takes the payload's reference. */
char *
FrameCallResult(const char *id, json_t *payload)
{
	return Dump(json_pack("[i,s,o]", 3, id, payload));
}

/* [4, id, code, description, {}] */
char *
FrameCallError(const char *id, const char *code, const char *description)
{
	char		desc[256];

	/* The spec gives the description no limit; keep the frame small. */
	snprintf(desc, sizeof(desc), "%s", description);
	return Dump(json_pack("[i,s,s,s,{}]", 4, id, code, desc));
}

/* [2, id, action, payload]; takes the payload's reference. */
char *
FrameCall(const char *id, const char *action, json_t *payload)
{
	return Dump(json_pack("[i,s,s,o]", 2, id, action, payload));
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm). */
static int64_t
DaysFromCivil(int64_t y, int m, int d)
{
	int64_t		era;
	int64_t		yoe;
	int64_t		doy;
	int64_t		doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static bool
Digits(const char *s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return false;
		*v = *v * 10 + (s[i] - '0');
	}
	return true;
}

/*
 * RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM), "T" or
 * "t" or " ", "z" too.  false for anything else, including impossible
 * dates (30 February) and years before 1970 or after 9999.
 */
bool
ParseIsoTime(const char *s, int64_t *us)
{
	int			y,
				mo,
				d,
				h,
				mi,
				sec,
				oh = 0,
				om = 0;
	int64_t		frac = 0;
	int			fdigits = 0;
	int			sign = 0;
	const char *p;
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	if (strlen(s) < 20)
		return false;
	if (!Digits(s, 4, &y) || s[4] != '-' || !Digits(s + 5, 2, &mo) || s[7] != '-' ||
		!Digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
		!Digits(s + 11, 2, &h) || s[13] != ':' || !Digits(s + 14, 2, &mi) || s[16] != ':' ||
		!Digits(s + 17, 2, &sec))
		return false;
	p = s + 19;
	if (*p == '.')
	{
		p++;
		if (*p < '0' || *p > '9')
			return false;
		while (*p >= '0' && *p <= '9')
		{
			if (fdigits < 6)
			{
				frac = frac * 10 + (*p - '0');
				fdigits++;
			}
			p++;
		}
		while (fdigits < 6)
		{
			frac *= 10;
			fdigits++;
		}
	}
	if (*p == 'Z' || *p == 'z')
		p++;
	else if (*p == '+' || *p == '-')
	{
		sign = *p == '+' ? 1 : -1;
		if (!Digits(p + 1, 2, &oh) || p[3] != ':' || !Digits(p + 4, 2, &om) || oh > 23 || om > 59)
			return false;
		p += 6;
	}
	else
		return false;
	if (*p != '\0')
		return false;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60)
		return false;
	if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return false;
	if (sec == 60)
		sec = 59;				/* a leap second: PostgreSQL has none */
	*us = ((DaysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) -
		   (int64_t) sign * (oh * 3600 + om * 60)) * 1000000 + frac;
	return true;
}

/* 2026-01-01T00:00:00.000Z, as OCPP answers carry it. */
void
FormatIsoTime(int64_t us, char *buf, size_t len)
{
	time_t		t = (time_t) (us / 1000000);
	struct tm	tm;

	gmtime_r(&t, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
			 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int) ((us % 1000000) / 1000));
}

/* 2026-01-01 00:00:00.000000+00, for COPY into timestamptz. */
void
FormatPgTime(int64_t us, char *buf, size_t len)
{
	time_t		t = (time_t) (us / 1000000);
	struct tm	tm;

	gmtime_r(&t, &tm);
	snprintf(buf, len, "%04d-%02d-%02d %02d:%02d:%02d.%06d+00", tm.tm_year + 1900, tm.tm_mon + 1,
			 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int) (us % 1000000));
}
