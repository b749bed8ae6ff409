/*-------------------------------------------------------------------------
 *
 * trafficgen.c
 *	  Owns the traffic generator: a day (or a few hours) of a small charging
 *	  network as its piles would send it, written as COPY text files for
 *	  evcharge's tables, with the ground truth of every session beside it.
 *
 *	  Into --out DIR it writes:
 *	  - operator.copy, station.copy, station_tariff.copy, pile.copy: the
 *	    registry (one operator, its stations in Zhongshan 442000 and Shenzhen
 *	    Longgang 440307, the example time-of-use plans for AC and DC, AC piles
 *	    of 7 kW with 2 guns, DC piles of 60-120 kW with 1-2 guns);
 *	  - heartbeat.copy: every gun's heartbeats in the order they reach the
 *	    platform (idle every --heartbeat-interval s, every 15 s while
 *	    charging, one at each status change), timestamps with +08;
 *	  - pile_record.copy: the piles' own final records, in arrival order,
 *	    and pile_record_arrival.tsv: when each line arrived;
 *	  - sessions_expected.tsv: the ground truth of every session (what the
 *	    meter really did), and summary.tsv: what was generated and every
 *	    defect injected.
 *
 *	  Every session is started at the pile (card, password, VIN), which sends
 *	  its own order number.  Defects, at --defect-rate: heartbeats sent twice
 *	  or out of order (within a few lines); pile records sent twice, late
 *	  (at the end of the file) or never; per run: network incidents (all
 *	  piles of a station silent for 10-30 min), one pile whose first reading
 *	  after an outage is 0, a few heartbeats of an unregistered pile and a
 *	  charging heartbeat without a meter reading.
 *
 *	  Deterministic for a seed: each gun draws from its own generator, and
 *	  the guns' heartbeats are merged in time order through a heap.
 *
 *-------------------------------------------------------------------------
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define CHARGE_STEP 15			/* seconds between samples while charging */
#define LOCAL_OFFSET (8 * 3600)	/* Asia/Shanghai, no daylight saving */
#define MAX_PILES 89999			/* serials 90000+ are for the unregistered pile */
#define LINE_LEN 192

/* ---------- random numbers ---------- */

typedef struct Rng
{
	uint64_t	s[4];
} Rng;

/* splitmix64: seeds the generators. */

/* Copies n bytes of s to p (no terminator: lines are built in place). */
static char *
PutBytes(char *p, const char *s, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i++)
		*p++ = s[i];
	return p;
}

static uint64_t
SplitMix(uint64_t *x)
{
	uint64_t	z = (*x += UINT64_C(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

/* A generator of its own for stream `stream` of seed `seed`. */
static void
RngInit(Rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t	x = seed * UINT64_C(0x100000001B3) ^ (stream + 1) * UINT64_C(0xD6E8FEB86659FD93);
	int			i;

	for (i = 0; i < 4; i++)
		r->s[i] = SplitMix(&x);
}

/* Rotates left by k bits. */
static uint64_t
Rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256**: the next 64 random bits. */
static uint64_t
RngNext(Rng *r)
{
	uint64_t	result = Rotl(r->s[1] * 5, 7) * 9;
	uint64_t	t = r->s[1] << 17;

	r->s[2] ^= r->s[0];
	r->s[3] ^= r->s[1];
	r->s[1] ^= r->s[2];
	r->s[0] ^= r->s[3];
	r->s[2] ^= t;
	r->s[3] = Rotl(r->s[3], 45);
	return result;
}

/* Uniform in [0, 1). */
static double
RngU(Rng *r)
{
	return (double) (RngNext(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform in [lo, hi]. */
static double
RngRange(Rng *r, double lo, double hi)
{
	return lo + (hi - lo) * RngU(r);
}

/* Uniform integer in [0, n). */
static int64_t
RngInt(Rng *r, int64_t n)
{
	return n <= 0 ? 0 : (int64_t) (RngNext(r) % (uint64_t) n);
}

/* About standard normal: the sum of 12 uniforms less 6 (no libm). */
static double
RngNormal(Rng *r)
{
	double		x = -6.0;
	int			i;

	for (i = 0; i < 12; i++)
		x += RngU(r);
	return x;
}

/* Natural logarithm of x > 0, to about 1e-15 (no libm). */
static double
Ln(double x)
{
	uint64_t	bits;
	int			e;
	double		m;
	double		z;
	double		z2;
	double		term;
	double		sum = 0;
	int			k;

	memcpy(&bits, &x, sizeof(bits));
	e = (int) ((bits >> 52) & 0x7ff) - 1023;
	bits = (bits & UINT64_C(0x000FFFFFFFFFFFFF)) | UINT64_C(0x3FF0000000000000);
	memcpy(&m, &bits, sizeof(m));
	if (m > 1.4142135623730951)
	{
		m /= 2;
		e++;
	}
	/* ln m = 2 atanh z, z = (m - 1) / (m + 1), |z| < 0.172 */
	z = (m - 1) / (m + 1);
	z2 = z * z;
	term = z;
	for (k = 1; k < 40; k += 2)
	{
		sum += term / k;
		term *= z2;
	}
	return 2 * sum + e * 0.6931471805599453;
}

/* Exponential with the given mean. */
static double
RngExp(Rng *r, double mean)
{
	return -mean * Ln(1.0 - RngU(r) + 1e-300);
}

/* ---------- time ---------- */

/* Days since 1970-01-01 of a civil date (H. Hinnant's algorithm). */
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

/* The civil date of a day number. */
static void
CivilFromDays(int64_t z, int *y, int *m, int *d)
{
	int64_t		era;
	int64_t		doe;
	int64_t		yoe;
	int64_t		doy;
	int64_t		mp;

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

/* Epoch seconds of the span's start: local midnight of the day. */
static int64_t SpanStart;

/*
 * Writes the time `rel` seconds after the span's start as
 * "YYYY-MM-DD HH:MM:SS+08" (22 characters, no terminator); the date part is
 * cached per day.
 */
static char *
PutTs(char *p, int64_t rel)
{
	static int64_t cached_day = INT64_MIN;
	static char date[12];
	int64_t		local = SpanStart + rel + LOCAL_OFFSET;
	int64_t		day = local >= 0 ? local / 86400 : (local - 86399) / 86400;
	int			sod = (int) (local - day * 86400);
	int			h = sod / 3600;
	int			mi = sod / 60 % 60;
	int			s = sod % 60;

	if (day != cached_day)
	{
		int			y;
		int			m;
		int			d;

		CivilFromDays(day, &y, &m, &d);
		snprintf(date, sizeof(date), "%04d-%02d-%02d ", y, m, d);
		cached_day = day;
	}
	memcpy(p, date, 11);
	p += 11;
	*p++ = (char) ('0' + h / 10);
	*p++ = (char) ('0' + h % 10);
	*p++ = ':';
	*p++ = (char) ('0' + mi / 10);
	*p++ = (char) ('0' + mi % 10);
	*p++ = ':';
	*p++ = (char) ('0' + s / 10);
	*p++ = (char) ('0' + s % 10);
	*p++ = '+';
	*p++ = '0';
	*p++ = '8';
	return p;
}

/* The time as a C string, for the smaller files. */
static const char *
TsStr(char *buf, int64_t rel)
{
	*PutTs(buf, rel) = '\0';
	return buf;
}

/* Writes a non-negative or negative integer in decimal. */
static char *
PutInt(char *p, int64_t v)
{
	char		tmp[24];
	int			n = 0;
	uint64_t	u;

	if (v < 0)
	{
		*p++ = '-';
		u = (uint64_t) (-(v + 1)) + 1;
	}
	else
		u = (uint64_t) v;
	do
	{
		tmp[n++] = (char) ('0' + u % 10);
		u /= 10;
	} while (u > 0);
	while (n > 0)
		*p++ = tmp[--n];
	return p;
}

/* ---------- the network ---------- */

typedef enum Mode
{
	M_IDLE,
	M_PLUGGED,
	M_CHARGING,
	M_OCCUPIED,
	M_DONE
} Mode;

typedef enum RecordKind
{
	R_ONCE,
	R_TWICE,
	R_LATE,
	R_LOST
} RecordKind;

static const char *const RecordKindName[] = {"once", "twice", "late", "lost"};

#define F_FULL 1				/* charging ended because the car was done */
#define F_ZERO 2				/* first reading after the outage was 0 */
#define F_OFFLINE 4				/* the pile was silent during part of it */
#define F_INCIDENT 8			/* ... because of a network incident */
#define F_NOMETER 16			/* one charging heartbeat had no meter reading */

typedef struct Session
{
	/* the plan */
	int64_t		start;			/* first charging sample, s after span start */
	int64_t		stay;			/* when the driver stops at the latest, s after start */
	int64_t		occ_extra;		/* s the car stays plugged after a stop (occ_flag) */
	int			occ_flag;		/* stays plugged after the driver's stop */
	int64_t		ret;			/* s until the driver is back after the car is done */
	double		target;			/* state of charge the car stops at */
	int64_t		lead;			/* s plugged before charging; 0: none */
	double		cap_kwh;		/* battery */
	double		soc0;			/* state of charge at the start */
	double		pcar;			/* most the car takes, W */
	const char *started_by;
	RecordKind	record;
	int			flags;
	int			nometer_tick;	/* charging tick sent without a meter; -1 none */
	char		order_no[72];	/* 22 digits; room for any int */
	/* what happened */
	int			started;		/* charging began within the span */
	int			closed;			/* unplugged within the span */
	int64_t		end;			/* first sample no longer charging */
	int64_t		unplug;			/* idle again */
	int64_t		meter0;			/* register at the first sample */
	int64_t		meter1;			/* register at the end (or at the span's end) */
} Session;

typedef struct Station
{
	long		id;
	int			region;
	char		name[64];
	int			first_pile;
	int			npiles;
} Station;

typedef struct Pile
{
	char		id[40];			/* 20 digits */
	int			station;
	int			serial;
	int			dc;
	int			guns;
	int			rated_w;
	const char *firmware;
	int			first_gun;
} Pile;

typedef struct Gun
{
	int			pile;
	int			no;
	char		id[64];			/* 23 digits */
	Rng			rng;
	Session    *sess;
	int			nsess;
	int			k;				/* current or next session */
	Mode		mode;
	int64_t		t;				/* next sample */
	int64_t		next_idle;		/* next regular heartbeat */
	double		meter;			/* lifetime register, Wh */
	double		soc;
	double		power;			/* W over the current charging step */
	int			tick;			/* charging samples so far in the session */
	int			zero_next;		/* the next sample sent reads 0 */
} Gun;

/* An outage: a pile, or every pile of a station, sends nothing in [start, end). */
typedef struct Gap
{
	int			station;		/* -1: one pile */
	int			pile;			/* -1: the whole station */
	int64_t		start;
	int64_t		end;
	int			zero;			/* first reading afterwards is 0 */
} Gap;

/* A heartbeat line that is not a gun's own (the unregistered pile). */
typedef struct Extra
{
	int64_t		t;
	char		line[LINE_LEN];
	int			len;
} Extra;

typedef struct Options
{
	int			stations;
	int			piles_per_station;
	int			year;
	int			month;
	int			day;
	double		hours;
	uint64_t	seed;
	const char *out;
	int			interval;
	double		charging_share;	/* < 0: the day's own profile */
	double		defect_rate;
	int			incidents;
	int			operator_id;
	long		first_station;
	double		ac_share;
	int			guns_per_pile;	/* 0: by pile type */
	int			record_at_end;	/* records sent when charging ends, not at unplugging */
	int			quiet;
} Options;

static Options opt;
static Station *stations;
static Pile *piles;
static int npiles;
static Gun *guns;
static int nguns;
static Gap gaps[256];
static int ngaps;
static Extra extras[16];
static int nextras;
static int64_t span_end;		/* s after span start */

/* Counters for summary.tsv. */
static long long n_lines;
static long long n_dup;
static long long n_ooo;
static long long n_zero_lines;
static long long n_nometer;
static char first_nometer[256];

/* Sessions started per gun and day, by hour of day (local). */
static const double HourWeight[24] = {
	/* 00-05: taxis and night shifts charge at the valley price */
	1.6, 1.4, 1.1, 0.8, 0.6, 0.5,
	/* 06-11 */
	0.5, 0.6, 0.8, 0.9, 0.9, 0.9,
	/* 12-17: the afternoon peak price keeps some away */
	1.0, 0.9, 0.6, 0.6, 0.7, 0.9,
	/* 18-23: after work, and waiting for the night price */
	1.4, 1.6, 1.5, 1.4, 1.7, 1.9,
};

static const char *const ZhongshanNames[] = {
	"Shiqi Sunwen West Road", "Dongqu Xingzhong Plaza", "Xiaolan bus depot", "Guzhen lighting market",
	"Tanzhou ferry car park", "Sanxiang highway service area",
};
static const char *const LonggangNames[] = {
	"Bantian Huawei base", "Buji metro P+R", "Henggang taxi hub", "Longcheng square",
	"Pingdi logistics park", "Dayun sports centre",
};

static const char *const DcPlan =
"00:00-08:00 valley, 08:00-14:00 flat, 14:00-17:00 peak, 17:00-19:00 flat, 19:00-22:00 peak, 22:00-24:00 flat"
" | peak 1.0300+0.5100, flat 0.6400+0.5100, valley 0.3300+0.5500";
static const char *const AcPlan =
"00:00-08:00 valley, 08:00-24:00 flat | flat 0.7000+0.4500, valley 0.3000+0.4500";

/* ---------- output ---------- */

/* Opens a file of the output directory for writing, with a large buffer. */
static FILE *
OpenOut(const char *name)
{
	char		path[4096];
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/%s", opt.out, name);
	f = fopen(path, "w");
	if (f == NULL)
	{
		fprintf(stderr, "trafficgen: cannot write %s: %s\n", path, strerror(errno));
		exit(1);
	}
	setvbuf(f, NULL, _IOFBF, 1 << 20);
	return f;
}

/* Closes an output file; a failed write ends the program. */
static void
CloseOut(FILE *f)
{
	if (ferror(f) || fclose(f) != 0)
	{
		fprintf(stderr, "trafficgen: write failed: %s\n", strerror(errno));
		exit(1);
	}
}

/* realloc, or the program ends. */
static void *
XRealloc(void *p, size_t n)
{
	void	   *q = realloc(p, n ? n : 1);

	if (q == NULL)
	{
		fprintf(stderr, "trafficgen: out of memory\n");
		exit(1);
	}
	return q;
}

/* mkdir -p. */
static void
MakeDirs(const char *dir)
{
	char		path[4096];
	size_t		i;

	snprintf(path, sizeof(path), "%s", dir);
	for (i = 1; path[i] != '\0'; i++)
		if (path[i] == '/')
		{
			path[i] = '\0';
			if (mkdir(path, 0777) != 0 && errno != EEXIST)
				break;
			path[i] = '/';
		}
	if (mkdir(path, 0777) != 0 && errno != EEXIST)
	{
		fprintf(stderr, "trafficgen: cannot create %s: %s\n", dir, strerror(errno));
		exit(1);
	}
}

/*
 * The heartbeat file and its defects: a line is sent out of order (held
 * back 5-45 s of traffic, behind its gun's next lines) or twice (its copy
 * 0-10 s later), each at --defect-rate.  Held lines wait in an array
 * sorted by release time.
 */
typedef struct Held
{
	int64_t		release;
	int			len;
	char		line[LINE_LEN];
} Held;

static FILE *hb_file;
static Rng hb_rng;
static Held *held;
static int	nheld;
static int	held_cap;

/* Keeps a line until the traffic reaches `release` (after those held before it). */
static void
Hold(const char *line, int len, int64_t release)
{
	int			i;

	if (nheld == held_cap)
	{
		held_cap = held_cap ? held_cap * 2 : 256;
		held = XRealloc(held, sizeof(Held) * (size_t) held_cap);
	}
	for (i = nheld; i > 0 && held[i - 1].release > release; i--)
		;
	memmove(&held[i + 1], &held[i], sizeof(Held) * (size_t) (nheld - i));
	held[i].release = release;
	held[i].len = len;
	memcpy(held[i].line, line, (size_t) len);
	nheld++;
}

/* Writes the held lines whose time has come (all of them at the end). */
static void
FlushHeld(int64_t now, int all)
{
	int			i = 0;

	while (i < nheld && (all || held[i].release <= now))
	{
		fwrite(held[i].line, 1, (size_t) held[i].len, hb_file);
		n_lines++;
		i++;
	}
	if (i > 0)
	{
		memmove(&held[0], &held[i], sizeof(Held) * (size_t) (nheld - i));
		nheld -= i;
	}
}

/* Sends one heartbeat line, the traffic being at time `now`. */
static void
PutHeartbeat(const char *line, int len, int64_t now)
{
	double		r = opt.defect_rate;

	FlushHeld(now, 0);
	if (r > 0 && RngU(&hb_rng) < r)
	{
		Hold(line, len, now + 5 + RngInt(&hb_rng, 41));
		n_ooo++;
	}
	else
	{
		fwrite(line, 1, (size_t) len, hb_file);
		n_lines++;
	}
	if (r > 0 && RngU(&hb_rng) < r)
	{
		Hold(line, len, now + RngInt(&hb_rng, 11));
		n_dup++;
	}
}

/*
 * Formats one heartbeat: gun, ts, status, meter_wh, power_w, soc,
 * fault_code, order_no; meter < -1 and soc < 0 are written as \N.
 */
static int
FormatHeartbeat(char *buf, const char *gun, int64_t t, const char *status, int64_t meter,
				int64_t power, int soc, const char *order_no)
{
	char	   *p = buf;
	size_t		n = strlen(gun);

	p = PutBytes(p, gun, n);
	*p++ = '\t';
	p = PutTs(p, t);
	*p++ = '\t';
	n = strlen(status);
	p = PutBytes(p, status, n);
	*p++ = '\t';
	if (meter < -1)
	{
		*p++ = '\\';
		*p++ = 'N';
	}
	else
		p = PutInt(p, meter);
	*p++ = '\t';
	p = PutInt(p, power);
	*p++ = '\t';
	if (soc < 0)
	{
		*p++ = '\\';
		*p++ = 'N';
	}
	else
		p = PutInt(p, soc);
	*p++ = '\t';
	*p++ = '0';
	*p++ = '\t';
	if (order_no == NULL)
	{
		*p++ = '\\';
		*p++ = 'N';
	}
	else
	{
		n = strlen(order_no);
		p = PutBytes(p, order_no, n);
	}
	*p++ = '\n';
	return (int) (p - buf);
}

/* ---------- planning ---------- */

/* Is pile p silent at t?  *zero: the outage ends with a 0 reading. */
static int
InGap(int p, int64_t t, int *zero, int *incident)
{
	int			i;

	for (i = 0; i < ngaps; i++)
		if ((gaps[i].pile == p || gaps[i].station == piles[p].station) &&
			t >= gaps[i].start && t < gaps[i].end)
		{
			*zero = gaps[i].zero;
			*incident = gaps[i].station >= 0;
			return 1;
		}
	return 0;
}

/* The latest a session can be unplugged, s after span start. */
static int64_t
LatestUnplug(const Session *s)
{
	return s->start + s->stay + CHARGE_STEP + (s->occ_extra > s->ret ? s->occ_extra : s->ret) + 60;
}

/* The next session start at or after t: the day's profile, or a flat rate. */
static int64_t
NextArrival(Gun *g, int64_t t, double per_day, double mean_gap)
{
	double		wmax = 0;
	double		x = (double) t;
	int			h;

	if (opt.charging_share >= 0)
		return t + 60 + (int64_t) RngExp(&g->rng, mean_gap);
	for (h = 0; h < 24; h++)
		if (HourWeight[h] > wmax)
			wmax = HourWeight[h];
	/* Thinning: candidates at the highest rate, kept by the hour's weight. */
	for (;;)
	{
		x += RngExp(&g->rng, 86400.0 / (per_day * wmax));
		if (x >= (double) span_end)
			return span_end;
		h = (int) (((int64_t) x / 3600) % 24);
		if (RngU(&g->rng) * wmax < HourWeight[h])
			return (int64_t) x;
	}
}

/* Draws a session of gun g starting at `start`; its order number too. */
static void
DrawSession(Gun *g, Session *s, int64_t start, int first_in_share)
{
	const Pile *p = &piles[g->pile];
	double		u = RngU(&g->rng);
	double		u2 = RngU(&g->rng);
	double		v = RngU(&g->rng);
	int			y;
	int			m;
	int			d;
	int64_t		local = SpanStart + start + LOCAL_OFFSET;
	int64_t		day = local / 86400;
	int			sod = (int) (local % 86400);

	memset(s, 0, sizeof(*s));
	s->start = start;
	/*
	 * 20 min to 4 h: DC stays are mostly short (u squared), AC ones mostly
	 * long (the larger of two uniforms: distributed as the square root).
	 */
	s->stay = (int64_t) (60.0 * (20.0 + 220.0 * (p->dc ? u * u : (u > u2 ? u : u2))));
	s->occ_flag = RngU(&g->rng) < 0.2;
	s->occ_extra = (int64_t) (60.0 * RngRange(&g->rng, 3, 45));
	/*
	 * The car is done at its target (DC: mostly 80-95 %, AC: full); the
	 * DC driver is back a few minutes later, now and then much later; an
	 * AC car stays parked until the driver's time is up.
	 */
	s->target = p->dc && RngU(&g->rng) < 0.6 ? RngRange(&g->rng, 80, 95) : 100;
	if (RngU(&g->rng) < 0.85)
		s->ret = 30 + (int64_t) RngExp(&g->rng, 300);
	else
		s->ret = (int64_t) (60.0 * RngRange(&g->rng, 20, 90));
	if (s->ret > 20 * 60 && RngU(&g->rng) < 0.85)
		s->ret = 20 * 60;
	s->lead = first_in_share || RngU(&g->rng) < 0.4 ? 0 : 20 + RngInt(&g->rng, 70);
	s->cap_kwh = p->dc ? RngRange(&g->rng, 45, 80) : RngRange(&g->rng, 40, 70);
	s->soc0 = p->dc ? RngRange(&g->rng, 8, 60) : RngRange(&g->rng, 15, 70);
	if (p->dc)
	{
		s->pcar = RngRange(&g->rng, 55000, 160000);
		if (s->pcar > 0.98 * p->rated_w)
			s->pcar = 0.98 * p->rated_w;
	}
	else
		s->pcar = RngRange(&g->rng, 6500, 6950);
	s->started_by = v < 0.45 ? "card" : v < 0.6 ? "password" : "vin";
	s->nometer_tick = -1;
	/* The pile's own order number: local start time, pile serial, gun. */
	CivilFromDays(day, &y, &m, &d);
	snprintf(s->order_no, sizeof(s->order_no), "%04d%02d%02d%02d%02d%02d%05d%03d",
			 y, m, d, sod / 3600, sod / 60 % 60, sod % 60, p->serial, g->no);
}

/*
 * Plans gun g's sessions.  The day's profile: sessions start by the hour
 * weights, each ends (unplugged) within the span.  With --charging-share:
 * a flat rate that keeps about that share of guns busy, a session may be
 * under way at the span's start and still running at its end.
 */
static void
PlanGun(Gun *g)
{
	const Pile *p = &piles[g->pile];
	int			cap = 8;
	double		per_day = p->dc ? 8.0 : 2.5;
	double		mean_busy = 60.0 * (p->dc ? 20.0 + 220.0 / 3 + 10 : 20.0 + 220.0 * 2 / 3 + 10);
	double		share = opt.charging_share;
	double		mean_gap = share > 0 && share < 1 ? mean_busy * (1 - share) / share : 60;
	int64_t		t = 0;

	g->sess = XRealloc(NULL, sizeof(Session) * (size_t) cap);
	g->nsess = 0;
	if (share >= 0 && RngU(&g->rng) < share)
	{
		DrawSession(g, &g->sess[0], RngInt(&g->rng, 60), 1);
		t = LatestUnplug(&g->sess[0]);
		g->nsess = 1;
	}
	for (;;)
	{
		Session    *s;
		int64_t		a = NextArrival(g, t, per_day, mean_gap);

		if (a >= span_end - 60)
			break;
		if (g->nsess == cap)
		{
			cap *= 2;
			g->sess = XRealloc(g->sess, sizeof(Session) * (size_t) cap);
		}
		s = &g->sess[g->nsess];
		DrawSession(g, s, a, 0);
		if (share < 0)
		{
			/* Within the span: cut the stay, or give up the session. */
			int64_t		room = span_end - LatestUnplug(s);

			if (room < 0)
				s->stay += room;
			if (s->stay < 20 * 60)
				break;
		}
		g->nsess++;
		t = LatestUnplug(s) + 60 + RngInt(&g->rng, 600);
	}
}

/*
 * Makes the stations, their piles and guns (type, rating, guns, firmware,
 * id, a register to start from), then plans every gun's sessions.
 */
static void
BuildNetwork(Rng *r)
{
	int			i;
	int			j;
	int			serial = 0;

	size_t		ngun_max;

	npiles = opt.stations * opt.piles_per_station;
	ngun_max = (size_t) npiles * (size_t) (opt.guns_per_pile > 2 ? opt.guns_per_pile : 2);
	stations = XRealloc(NULL, sizeof(Station) * (size_t) opt.stations);
	piles = XRealloc(NULL, sizeof(Pile) * (size_t) npiles);
	guns = XRealloc(NULL, sizeof(Gun) * ngun_max);
	memset(piles, 0, sizeof(Pile) * (size_t) npiles);
	memset(guns, 0, sizeof(Gun) * ngun_max);
	memset(stations, 0, sizeof(Station) * (size_t) opt.stations);
	memset(piles, 0, sizeof(Pile) * (size_t) npiles);
	memset(guns, 0, sizeof(Gun) * ngun_max);
	for (i = 0; i < opt.stations; i++)
	{
		Station    *st = &stations[i];
		int			zs = i % 2 == 0;
		const char *const *names = zs ? ZhongshanNames : LonggangNames;
		int			k = i / 2;

		st->id = opt.first_station + i;
		st->region = zs ? 442000 : 440307;
		if (k < 6)
			snprintf(st->name, sizeof(st->name), "%s", names[k]);
		else
			snprintf(st->name, sizeof(st->name), "%s station %d", zs ? "Zhongshan" : "Longgang", k + 1);
		st->first_pile = i * opt.piles_per_station;
		st->npiles = opt.piles_per_station;
		for (j = 0; j < opt.piles_per_station; j++)
		{
			Pile	   *p = &piles[st->first_pile + j];
			double		u = RngU(r);
			int			gn;

			p->station = i;
			p->serial = ++serial;
			p->dc = RngU(r) >= opt.ac_share;
			if (!p->dc)
			{
				p->rated_w = 7000;
				p->guns = 2;
				p->firmware = u < 0.6 ? "AC-2.3.1" : u < 0.9 ? "AC-2.3.4" : "AC-2.1.0";
			}
			else
			{
				double		w = RngU(r);

				p->rated_w = w < 0.35 ? 60000 : w < 0.6 ? 80000 : 120000;
				p->guns = p->rated_w == 60000 ? 1 : p->rated_w == 120000 ? 2 : 1 + (RngU(r) < 0.5);
				p->firmware = u < 0.5 ? "DC-3.0.4" : u < 0.88 ? "DC-3.1.2" : u < 0.95 ? "DC-1.9.2" : "DC-1.9.7";
			}
			/* region 6 + operator 4 + reserved 0 + product 00 + detail + serial 5 */
			snprintf(p->id, sizeof(p->id), "%06d%04d000%s%05d", st->region, opt.operator_id,
					 p->dc ? "02" : "01", p->serial);
			if (opt.guns_per_pile > 0)
				p->guns = opt.guns_per_pile;
			p->first_gun = nguns;
			for (gn = 1; gn <= p->guns; gn++)
			{
				Gun		   *g = &guns[nguns];

				g->pile = st->first_pile + j;
				g->no = gn;
				snprintf(g->id, sizeof(g->id), "%s%03d", p->id, gn);
				RngInit(&g->rng, opt.seed, (uint64_t) nguns + 1000);
				g->meter = p->dc ? RngRange(&g->rng, 5e6, 9e8) : RngRange(&g->rng, 2e5, 3e7);
				g->meter = (double) (int64_t) g->meter;
				nguns++;
			}
		}
	}
	for (i = 0; i < nguns; i++)
		PlanGun(&guns[i]);
}

/* Two intervals overlap. */
static int
Overlaps(int64_t a0, int64_t a1, int64_t b0, int64_t b1)
{
	return a0 < b1 && b0 < a1;
}

/*
 * Sessions that can take the 0-after-outage defect: the gun free `len` +
 * 2 min before it starts, no incident at the station near then, and (on a
 * day of sessions that end) 20 min left in the span.  With which < 0,
 * counts them; otherwise returns the which-th as gun * 100000 + session.
 */
static long
ZeroCandidates(int64_t len, long which)
{
	long		n = 0;
	int			i;
	int			j;
	int			k;

	for (i = 0; i < nguns; i++)
		for (j = 0; j < guns[i].nsess && j < 100000; j++)
		{
			Session    *s = &guns[i].sess[j];
			int64_t		free_from = j > 0 ? LatestUnplug(&guns[i].sess[j - 1]) : 0;
			int			clash = 0;

			if (s->start < len + 120 || s->start + (opt.charging_share < 0 ? 20 * 60 : 120) > span_end ||
				s->start - len - 120 < free_from)
				continue;
			for (k = 0; k < ngaps; k++)
				if (gaps[k].station == piles[guns[i].pile].station &&
					Overlaps(gaps[k].start - 600, gaps[k].end + 600, s->start - len, s->start + 600))
					clash = 1;
			if (clash)
				continue;
			if (n++ == which)
				return (long) i * 100000 + j;
		}
	return n;
}

/*
 * The per-run defects: network incidents, the pile that reads 0 after an
 * outage, the records sent twice, late or never, a charging heartbeat
 * without a meter, and the unregistered pile's heartbeats.
 */
static void
PlanDefects(Rng *r, FILE *summary)
{
	int			i;
	int			j;
	int64_t		span = span_end;
	char		b0[32];
	char		b1[32];
	long		nsess = 0;
	int			counts[4] = {0, 0, 0, 0};
	int			kind;

	/*
	 * Network incidents: every pile of a station silent 10-30 min at once
	 * (at most a third of a short span).
	 */
	for (i = 0; i < opt.incidents && span >= 15 * 60; i++)
	{
		Gap		   *gp = &gaps[ngaps];
		int64_t		len = 60 * (10 + RngInt(r, 21));

		if (len > span / 3)
			len = span / 3;
		gp->station = (int) RngInt(r, opt.stations);
		gp->pile = -1;
		gp->start = (int64_t) RngRange(r, 0.25 * (double) span, 0.75 * (double) span);
		gp->end = gp->start + len;
		gp->zero = 0;
		ngaps++;
		fprintf(summary, "network_incident\t%d\tstation %ld (%s), %d piles silent %s - %s\n",
				1, stations[gp->station].id, stations[gp->station].name, stations[gp->station].npiles,
				TsStr(b0, gp->start), TsStr(b1, gp->end));
	}

	/*
	 * The pile that reads 0 after an outage: a session starts as it comes
	 * back, 12-20 min after it fell silent, with nothing else going on at
	 * the gun and no incident at its station then.
	 */
	{
		int64_t		len = 60 * (12 + RngInt(r, 9));
		long		ncand = ZeroCandidates(len, -1);

		if (ncand == 0)
			fprintf(summary, "zero_after_reconnect\t0\tno session fits\n");
		else
		{
			long		pick = ZeroCandidates(len, RngInt(r, ncand));
			Gun		   *g = &guns[pick / 100000];
			Session    *s = &g->sess[pick % 100000];
			Gap		   *gp = &gaps[ngaps++];

			gp->station = -1;
			gp->pile = g->pile;
			gp->start = s->start - len;
			gp->end = s->start;
			gp->zero = 1;
			s->flags |= F_ZERO;
			s->lead = 0;
			fprintf(summary, "zero_after_reconnect\t1\tpile %s silent %s - %s, comes back reading 0 as gun %d starts order %s\n",
					piles[g->pile].id, TsStr(b0, gp->start), TsStr(b1, gp->end), g->no, s->order_no);
		}
	}

	/* Pile records: twice, late, lost, each at the defect rate. */
	for (i = 0; i < nguns; i++)
		for (j = 0; j < guns[i].nsess; j++)
		{
			Session    *s = &guns[i].sess[j];
			double		u = RngU(r);

			nsess++;
			if (s->flags & F_ZERO)
				continue;
			if (u < opt.defect_rate)
				s->record = R_TWICE;
			else if (u < 2 * opt.defect_rate)
				s->record = R_LATE;
			else if (u < 3 * opt.defect_rate)
				s->record = R_LOST;
			counts[s->record]++;
		}
	/* At least one of each when defects are asked for and there are sessions. */
	for (kind = R_TWICE; kind <= R_LOST && opt.defect_rate > 0 && nsess >= 8; kind++)
	{
		long		tries;

		for (tries = 0; counts[kind] == 0 && tries < 100000; tries++)
		{
			long		n = RngInt(r, nsess);

			for (i = 0; i < nguns && n >= guns[i].nsess; i++)
				n -= guns[i].nsess;
			if (guns[i].sess[n].record == R_ONCE && !(guns[i].sess[n].flags & F_ZERO) &&
				(opt.charging_share < 0 || LatestUnplug(&guns[i].sess[n]) < span_end))
			{
				guns[i].sess[n].record = (RecordKind) kind;
				counts[kind]++;
				counts[R_ONCE]--;
			}
		}
	}

	/* A charging heartbeat without a meter: one, and one more per 200 sessions. */
	{
		long		want = opt.defect_rate > 0 ? 1 + nsess / 200 : 0;
		long		tries;

		for (tries = 0; want > 0 && tries < 100000 && nsess > 0; tries++)
		{
			long		n = RngInt(r, nsess);
			Session    *s;

			for (i = 0; i < nguns && n >= guns[i].nsess; i++)
				n -= guns[i].nsess;
			s = &guns[i].sess[n];
			if (s->stay < 30 * 60 || s->flags || s->nometer_tick >= 0)
				continue;
			s->nometer_tick = (int) (s->stay / CHARGE_STEP / 3);
			want--;
		}
	}

	/* The unregistered pile: a DC pile of station 1 that nobody entered. */
	if (opt.defect_rate > 0)
	{
		char		gun[48];
		int			k;

		snprintf(gun, sizeof(gun), "%06d%04d00002%05d001", stations[0].region, opt.operator_id, 90001);
		for (k = 0; k < 3; k++)
		{
			Extra	   *e = &extras[nextras++];

			e->t = (int64_t) ((double) span * (0.2 + 0.3 * k)) + RngInt(r, 600);
			e->len = FormatHeartbeat(e->line, gun, e->t, "idle", 4200000 + 17 * k, 0, -1, NULL);
		}
		fprintf(summary, "unregistered_pile\t%d\tpile %.20s (not in pile.copy), idle heartbeats\n", nextras, gun);
	}
}

/* ---------- simulation ---------- */

/* The gun's next sample time. */
static int64_t
NextTime(const Gun *g)
{
	const Session *s = g->k < g->nsess ? &g->sess[g->k] : NULL;
	int64_t		t = g->next_idle;

	switch (g->mode)
	{
		case M_IDLE:
			if (s != NULL && s->lead > 0 && s->start - s->lead < t)
				t = s->start - s->lead;
			if (s != NULL && s->start < t)
				t = s->start;
			break;
		case M_PLUGGED:
			if (s->start < t)
				t = s->start;
			break;
		case M_CHARGING:
			t = g->t + CHARGE_STEP;
			break;
		case M_OCCUPIED:
			if (s->unplug < t)
				t = s->unplug;
			break;
		case M_DONE:
			break;
	}
	return t;
}

/* Power for the next charging step: near the car's limit, tapering above 80 %. */
static double
ChargePower(Gun *g, const Session *s)
{
	const Pile *p = &piles[g->pile];
	double		w = s->pcar;

	if (p->dc)
	{
		if (g->tick < 4)
			w *= 0.4 + 0.15 * g->tick;
		if (g->soc > 80)
			w *= 1.0 - 0.9 * (g->soc - 80) / 20;
		w *= 1 + 0.015 * RngNormal(&g->rng);
	}
	else
	{
		if (g->soc > 96)
			w *= 0.6;
		w *= 1 + 0.008 * RngNormal(&g->rng);
	}
	if (w > p->rated_w)
		w = p->rated_w;
	if (w < 500)
		w = 500;
	return w;
}

/* Closes the gun's current session at t (the idle sample). */
static void
CloseSession(Gun *g, int64_t t)
{
	Session    *s = &g->sess[g->k];

	s->unplug = t;
	s->closed = 1;
	g->k++;
	g->mode = M_IDLE;
	g->next_idle = t + opt.interval;
}

/*
 * Takes gun g's sample at g->t: moves its state on, and sends the
 * heartbeat unless its pile is silent then.
 */
static void
StepGun(Gun *g)
{
	Session    *s = g->k < g->nsess ? &g->sess[g->k] : NULL;
	int64_t		t = g->t;
	const char *status = "idle";
	const char *order = NULL;
	int			soc = -1;
	int64_t		power = 0;
	int64_t		meter;
	int			nometer = 0;
	int			zero = 0;
	int			incident = 0;
	char		line[LINE_LEN];
	int			len;

	switch (g->mode)
	{
		case M_IDLE:
		case M_PLUGGED:
			if (s != NULL && t == s->start)
			{
				g->mode = M_CHARGING;
				s->started = 1;
				g->tick = 0;
				g->soc = s->soc0;
				s->meter0 = (int64_t) g->meter;
				g->power = ChargePower(g, s);
				status = "charging";
				order = s->order_no;
				soc = (int) g->soc;
				power = (int64_t) g->power;
			}
			else if (s != NULL && s->lead > 0 && t == s->start - s->lead)
			{
				g->mode = M_PLUGGED;
				status = "plugged";
				g->next_idle = t + opt.interval;
			}
			else
			{
				status = g->mode == M_PLUGGED ? "plugged" : "idle";
				g->next_idle = t + opt.interval - 1 + RngInt(&g->rng, 3);
			}
			break;
		case M_CHARGING:
			{
				double		e = g->power * CHARGE_STEP / 3600.0;

				g->meter += e;
				g->soc += e / (s->cap_kwh * 10.0);
				g->tick++;
				if (g->soc >= s->target)
				{
					/* Done: occupied until the driver is back. */
					if (g->soc > 100)
						g->soc = 100;
					s->flags |= F_FULL;
					s->end = t;
					s->meter1 = (int64_t) g->meter;
					g->mode = M_OCCUPIED;
					s->unplug = t + (s->ret > 30 ? s->ret : 30);
					if (!piles[g->pile].dc && s->start + s->stay > s->unplug)
						s->unplug = s->start + s->stay;
					status = "occupied";
					order = s->order_no;
					soc = (int) g->soc;
					g->next_idle = t + opt.interval;
				}
				else if (t >= s->start + s->stay)
				{
					s->end = t;
					s->meter1 = (int64_t) g->meter;
					soc = (int) g->soc;
					if (s->occ_flag)
					{
						g->mode = M_OCCUPIED;
						s->unplug = t + s->occ_extra;
						status = "occupied";
						order = s->order_no;
					}
					else
					{
						CloseSession(g, t);
						soc = -1;
					}
					g->next_idle = t + opt.interval;
				}
				else
				{
					status = "charging";
					order = s->order_no;
					soc = (int) g->soc;
					power = (int64_t) g->power;
					nometer = g->tick == s->nometer_tick;
					g->power = ChargePower(g, s);
				}
			}
			break;
		case M_OCCUPIED:
			if (t == s->unplug)
				CloseSession(g, t);
			else
			{
				status = "occupied";
				order = s->order_no;
				soc = (int) g->soc;
				g->next_idle = t + opt.interval - 1 + RngInt(&g->rng, 3);
			}
			break;
		case M_DONE:
			return;
	}

	meter = (int64_t) g->meter;
	if (InGap(g->pile, t, &zero, &incident))
	{
		/* Silent: the pile is offline, the charge goes on. */
		if (zero)
			g->zero_next = 1;
		if (s != NULL && s->started && (!s->closed || s->unplug == t))
			s->flags |= F_OFFLINE | (incident ? F_INCIDENT : 0);
	}
	else
	{
		if (g->zero_next)
		{
			meter = 0;
			g->zero_next = 0;
			n_zero_lines++;
		}
		if (nometer)
		{
			s->flags |= F_NOMETER;
			if (n_nometer++ == 0)
			{
				char		b0[32];

				snprintf(first_nometer, sizeof(first_nometer), "gun %s, order %s, at %s", g->id, order,
						 TsStr(b0, t));
			}
		}
		len = FormatHeartbeat(line, g->id, t, status, nometer ? -2 : meter, power, soc, order);
		while (nextras > 0 && extras[0].t <= t)
		{
			PutHeartbeat(extras[0].line, extras[0].len, t);
			memmove(&extras[0], &extras[1], sizeof(extras[0]) * (size_t) (nextras - 1));
			nextras--;
		}
		PutHeartbeat(line, len, t);
	}

	g->t = NextTime(g);
	if (g->t >= span_end)
	{
		/* A session still under way at the span's end stays open. */
		if (g->mode == M_CHARGING || g->mode == M_OCCUPIED)
		{
			Session    *cur = &g->sess[g->k];

			if (g->mode == M_CHARGING)
			{
				cur->meter1 = (int64_t) g->meter;
				cur->end = -1;
			}
		}
		g->mode = M_DONE;
	}
}

/* The heap of guns by next sample time (ties: gun order). */
static int *heap;
static int heap_n;

/* Gun a samples before gun b. */
static int
HeapLess(int a, int b)
{
	if (guns[a].t != guns[b].t)
		return guns[a].t < guns[b].t;
	return a < b;
}

/* Moves heap entry i down to its place. */
static void
HeapDown(int i)
{
	for (;;)
	{
		int			l = 2 * i + 1;
		int			m = i;
		int			tmp;

		if (l < heap_n && HeapLess(heap[l], heap[m]))
			m = l;
		if (l + 1 < heap_n && HeapLess(heap[l + 1], heap[m]))
			m = l + 1;
		if (m == i)
			return;
		tmp = heap[i];
		heap[i] = heap[m];
		heap[m] = tmp;
		i = m;
	}
}

/* Runs every gun through the span, writing heartbeat.copy. */
static void
Simulate(void)
{
	int			i;

	heap = XRealloc(NULL, sizeof(int) * (size_t) nguns);
	for (i = 0; i < nguns; i++)
	{
		Gun		   *g = &guns[i];

		g->mode = M_IDLE;
		g->k = 0;
		g->next_idle = RngInt(&g->rng, opt.interval);
		g->t = NextTime(g);
		if (g->t < span_end)
			heap[heap_n++] = i;
		else
			g->mode = M_DONE;
	}
	for (i = heap_n / 2 - 1; i >= 0; i--)
		HeapDown(i);
	while (heap_n > 0)
	{
		Gun		   *g = &guns[heap[0]];

		StepGun(g);
		if (g->mode == M_DONE)
			heap[0] = heap[--heap_n];
		HeapDown(0);
	}
	while (nextras > 0)
	{
		PutHeartbeat(extras[0].line, extras[0].len, extras[0].t);
		memmove(&extras[0], &extras[1], sizeof(extras[0]) * (size_t) (nextras - 1));
		nextras--;
	}
	FlushHeld(0, 1);
}

/* ---------- the other files ---------- */

typedef struct Arrival
{
	int64_t		t;
	int			gun;
	int			sess;
	int			copy;
} Arrival;

/* qsort order of pile records: arrival, then gun, session, copy. */
static int
ArrivalCmp(const void *a, const void *b)
{
	const Arrival *x = a;
	const Arrival *y = b;

	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	if (x->gun != y->gun)
		return x->gun < y->gun ? -1 : 1;
	if (x->sess != y->sess)
		return x->sess < y->sess ? -1 : 1;
	return x->copy - y->copy;
}

/*
 * pile_record.copy in arrival order (a few seconds after unplugging, or
 * after charging ended with --records-at charge-end; after the outage if
 * the pile was silent then; a second copy minutes later; late ones after
 * the span), and when each arrived.
 */
static long
WriteRecords(Rng *r)
{
	Arrival    *arr = NULL;
	long		n = 0;
	long		cap = 0;
	long		i;
	int			gi;
	int			si;
	FILE	   *f;
	FILE	   *fa;
	char		b0[32];
	char		b1[32];

	for (gi = 0; gi < nguns; gi++)
		for (si = 0; si < guns[gi].nsess; si++)
		{
			Session    *s = &guns[gi].sess[si];
			int64_t		t;
			int			k;

			if (!s->closed || s->record == R_LOST)
				continue;
			if (n + 2 > cap)
			{
				cap = cap ? cap * 2 : 1024;
				arr = XRealloc(arr, sizeof(Arrival) * (size_t) cap);
			}
			t = (opt.record_at_end ? s->end : s->unplug) + 3 + RngInt(r, 38);
			/* A pile that is silent sends it when it is back. */
			for (k = 0; k < ngaps; k++)
				if ((gaps[k].pile == guns[gi].pile || gaps[k].station == piles[guns[gi].pile].station) &&
					t >= gaps[k].start && t < gaps[k].end)
					t = gaps[k].end + 5 + RngInt(r, 56);
			if (s->record == R_LATE)
				t = span_end + 600 + RngInt(r, 3600);
			arr[n].t = t;
			arr[n].gun = gi;
			arr[n].sess = si;
			arr[n].copy = 0;
			n++;
			if (s->record == R_TWICE)
			{
				arr[n] = arr[n - 1];
				arr[n].t = t + 60 + RngInt(r, 840);
				arr[n].copy = 1;
				n++;
			}
		}
	if (n > 0)
		qsort(arr, (size_t) n, sizeof(Arrival), ArrivalCmp);
	f = OpenOut("pile_record.copy");
	fa = OpenOut("pile_record_arrival.tsv");
	fprintf(fa, "line\tarrived_at\n");
	for (i = 0; i < n; i++)
	{
		const Gun  *g = &guns[arr[i].gun];
		const Session *s = &g->sess[arr[i].sess];

		fprintf(f, "%s\t%s\t%s\t%s\t%lld\t%s\n", s->order_no, g->id, TsStr(b0, s->start), TsStr(b1, s->end),
				(long long) (s->meter1 - s->meter0),
				!(s->flags & F_FULL) ? "stopped by user" : s->target >= 100 ? "full" : "soc limit reached");
		fprintf(fa, "%ld\t%s\n", i + 1, TsStr(b0, arr[i].t));
	}
	CloseOut(f);
	CloseOut(fa);
	free(arr);
	return n;
}

/* sessions_expected.tsv: the ground truth of each session. */
static long
WriteTruth(long *closed, long *open)
{
	FILE	   *f = OpenOut("sessions_expected.tsv");
	int			gi;
	int			si;
	long		n = 0;
	char		b0[32];
	char		b1[32];
	char		b2[32];

	*closed = *open = 0;
	fprintf(f, "gun\torder_no\tchannel\tstart\tend\tenergy_wh\tunplugged\tstarted_by\trecord\tmeter_start_wh\tmeter_end_wh\tstop\tnotes\n");
	for (gi = 0; gi < nguns; gi++)
		for (si = 0; si < guns[gi].nsess; si++)
		{
			const Session *s = &guns[gi].sess[si];
			char		notes[128] = "";
			if (!s->started)
				continue;		/* planned, but the span ended first */
			if (s->flags & F_ZERO)
				strcat(notes, ",zero-after-reconnect");
			if (s->flags & F_INCIDENT)
				strcat(notes, ",incident");
			else if (s->flags & F_OFFLINE)
				strcat(notes, ",offline");
			if (s->flags & F_NOMETER)
				strcat(notes, ",no-meter-row");
			fprintf(f, "%s\t%s\toffline\t%s\t%s\t%lld\t%s\t%s\t%s\t%lld\t%lld\t%s\t%s\n",
					guns[gi].id, s->order_no, TsStr(b0, s->start),
					s->end > 0 ? TsStr(b1, s->end) : "\\N",
					(long long) (s->meter1 - s->meter0),
					s->closed ? TsStr(b2, s->unplug) : "\\N", s->started_by,
					s->closed ? RecordKindName[s->record] : "open", (long long) s->meter0,
					(long long) s->meter1,
					s->end <= 0 ? "\\N" : (s->flags & F_FULL) ? "done" : "driver", notes[0] ? notes + 1 : "");
			n++;
			if (s->closed)
				(*closed)++;
			else
				(*open)++;
		}
	CloseOut(f);
	return n;
}

/* operator.copy, station.copy, station_tariff.copy, pile.copy. */
static void
WriteRegistry(void)
{
	FILE	   *f;
	int			i;
	int			valid_year = opt.year < 2026 ? opt.year : 2026;

	f = OpenOut("operator.copy");
	fprintf(f, "%d\tPearl River Charging Co.\n", opt.operator_id);
	CloseOut(f);

	f = OpenOut("station.copy");
	for (i = 0; i < opt.stations; i++)
		fprintf(f, "%ld\t%d\t%s\tAsia/Shanghai\t%d\n", stations[i].id, opt.operator_id, stations[i].name,
				stations[i].region);
	CloseOut(f);

	f = OpenOut("station_tariff.copy");
	for (i = 0; i < opt.stations; i++)
	{
		fprintf(f, "%ld\tAC\t%s\t[%d-01-01 00:00:00+08,)\tAC %d\n", stations[i].id, AcPlan, valid_year, valid_year);
		fprintf(f, "%ld\tDC\t%s\t[%d-01-01 00:00:00+08,)\tDC %d\n", stations[i].id, DcPlan, valid_year, valid_year);
	}
	CloseOut(f);

	f = OpenOut("pile.copy");
	for (i = 0; i < npiles; i++)
		fprintf(f, "%s\t%ld\t%d\t%d\t%s\n", piles[i].id, stations[piles[i].station].id, piles[i].guns,
				piles[i].rated_w, piles[i].firmware);
	CloseOut(f);
}

/* ---------- main ---------- */

/* The options. */
static void
Usage(FILE *f)
{
	fprintf(f,
			"usage: trafficgen --out DIR [options]\n"
			"  --stations N            stations (default 4)\n"
			"  --piles-per-station M   piles per station (default 6)\n"
			"  --day YYYY-MM-DD        the day, local time +08 (default 2026-11-20)\n"
			"  --hours H               span from the day's 00:00, hours (default 24; fractions allowed)\n"
			"  --seed S                random seed (default 1)\n"
			"  --heartbeat-interval S  idle heartbeat period, seconds (default 60; 15 while charging)\n"
			"  --charging-share F      keep about this share of guns charging, flat over the span;\n"
			"                          sessions may run past its ends (default: the day's profile,\n"
			"                          every session unplugged within the span)\n"
			"  --defect-rate R         per heartbeat line: sent twice, out of order; per session:\n"
			"                          record twice, late, lost (default 0.01; 0: clean traffic)\n"
			"  --incidents N           network incidents (default 1)\n"
			"  --records-at WHEN       pile records sent at unplug (default) or charge-end\n"
			"  --ac-share F            share of AC piles (default 0.35)\n"
			"  --guns-per-pile N       every pile has N guns (default: AC 2, DC 1-2 by power)\n"
			"  --operator N            operator number (default 20)\n"
			"  --first-station N       first station id (default 101)\n"
			"  --quiet                 no summary on stderr\n");
}

/* The value of option `name` at argv[*i], as --name V or --name=V. */
static const char *
OptValue(int argc, char **argv, int *i, const char *name)
{
	size_t		n = strlen(name);

	if (strncmp(argv[*i], name, n) != 0)
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] != '\0')
		return NULL;
	if (*i + 1 >= argc)
	{
		fprintf(stderr, "trafficgen: %s needs a value\n", name);
		exit(2);
	}
	return argv[++*i];
}

/* A numeric option value within [lo, hi], or the program ends. */
static double
NumArg(const char *name, const char *v, double lo, double hi)
{
	char	   *end;
	double		x = strtod(v, &end);

	if (end == v || *end != '\0' || !(x >= lo && x <= hi))
	{
		fprintf(stderr, "trafficgen: %s must be a number from %g to %g, not \"%s\"\n", name, lo, hi, v);
		exit(2);
	}
	return x;
}

/* Reads the options into opt, defaults first. */
static void
ParseArgs(int argc, char **argv)
{
	int			i;
	const char *v;

	opt.stations = 4;
	opt.piles_per_station = 6;
	opt.year = 2026;
	opt.month = 11;
	opt.day = 20;
	opt.hours = 24;
	opt.seed = 1;
	opt.interval = 60;
	opt.charging_share = -1;
	opt.defect_rate = 0.01;
	opt.incidents = 1;
	opt.operator_id = 20;
	opt.first_station = 101;
	opt.ac_share = 0.35;
	for (i = 1; i < argc; i++)
	{
		if ((v = OptValue(argc, argv, &i, "--stations")) != NULL)
			opt.stations = (int) NumArg("--stations", v, 1, 100000);
		else if ((v = OptValue(argc, argv, &i, "--piles-per-station")) != NULL)
			opt.piles_per_station = (int) NumArg("--piles-per-station", v, 1, 1000);
		else if ((v = OptValue(argc, argv, &i, "--day")) != NULL)
		{
			char		extra;
			int			y = 0;
			int			m = 0;
			int			d = 0;

			if (sscanf(v, "%4d-%2d-%2d%c", &opt.year, &opt.month, &opt.day, &extra) == 3)
				CivilFromDays(DaysFromCivil(opt.year, opt.month, opt.day), &y, &m, &d);
			if (y != opt.year || m != opt.month || d != opt.day || opt.year < 2015)
			{
				fprintf(stderr, "trafficgen: --day must be YYYY-MM-DD (2015 or later), not \"%s\"\n", v);
				exit(2);
			}
		}
		else if ((v = OptValue(argc, argv, &i, "--hours")) != NULL)
			opt.hours = NumArg("--hours", v, 0.05, 24 * 31);
		else if ((v = OptValue(argc, argv, &i, "--seed")) != NULL)
			opt.seed = (uint64_t) NumArg("--seed", v, 0, 9e15);
		else if ((v = OptValue(argc, argv, &i, "--out")) != NULL)
			opt.out = v;
		else if ((v = OptValue(argc, argv, &i, "--heartbeat-interval")) != NULL)
			opt.interval = (int) NumArg("--heartbeat-interval", v, 5, 3600);
		else if ((v = OptValue(argc, argv, &i, "--charging-share")) != NULL)
			opt.charging_share = NumArg("--charging-share", v, 0, 0.99);
		else if ((v = OptValue(argc, argv, &i, "--defect-rate")) != NULL)
			opt.defect_rate = NumArg("--defect-rate", v, 0, 0.3);
		else if ((v = OptValue(argc, argv, &i, "--incidents")) != NULL)
			opt.incidents = (int) NumArg("--incidents", v, 0, 200);
		else if ((v = OptValue(argc, argv, &i, "--ac-share")) != NULL)
			opt.ac_share = NumArg("--ac-share", v, 0, 1);
		else if ((v = OptValue(argc, argv, &i, "--records-at")) != NULL)
		{
			if (strcmp(v, "unplug") != 0 && strcmp(v, "charge-end") != 0)
			{
				fprintf(stderr, "trafficgen: --records-at is unplug or charge-end, not \"%s\"\n", v);
				exit(2);
			}
			opt.record_at_end = strcmp(v, "charge-end") == 0;
		}
		else if ((v = OptValue(argc, argv, &i, "--guns-per-pile")) != NULL)
			opt.guns_per_pile = (int) NumArg("--guns-per-pile", v, 1, 8);
		else if ((v = OptValue(argc, argv, &i, "--operator")) != NULL)
			opt.operator_id = (int) NumArg("--operator", v, 1, 9999);
		else if ((v = OptValue(argc, argv, &i, "--first-station")) != NULL)
			opt.first_station = (long) NumArg("--first-station", v, 1, 1e12);
		else if (strcmp(argv[i], "--quiet") == 0)
			opt.quiet = 1;
		else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
		{
			Usage(stdout);
			exit(0);
		}
		else
		{
			fprintf(stderr, "trafficgen: unknown argument \"%s\"\n", argv[i]);
			Usage(stderr);
			exit(2);
		}
	}
	if (opt.out == NULL)
	{
		Usage(stderr);
		exit(2);
	}
	if ((long) opt.stations * opt.piles_per_station > MAX_PILES)
	{
		fprintf(stderr, "trafficgen: at most %d piles (5-digit serials, 90000+ kept for the unregistered pile)\n",
				MAX_PILES);
		exit(2);
	}
}

/*
 * Registry, defects, heartbeats, pile records, truth, summary: in that
 * order, each with its own random stream.
 */
int
main(int argc, char **argv)
{
	Rng			net_rng;
	Rng			defect_rng;
	FILE	   *summary;
	long		nrec;
	long		ntruth;
	long		closed;
	long		open;
	clock_t		c0 = clock();
	char		b0[32];
	char		b1[32];

	ParseArgs(argc, argv);
	SpanStart = DaysFromCivil(opt.year, opt.month, opt.day) * 86400 - LOCAL_OFFSET;
	span_end = (int64_t) (opt.hours * 3600);
	MakeDirs(opt.out);
	RngInit(&net_rng, opt.seed, 1);
	RngInit(&defect_rng, opt.seed, 2);
	RngInit(&hb_rng, opt.seed, 3);

	BuildNetwork(&net_rng);
	WriteRegistry();
	summary = OpenOut("summary.tsv");
	fprintf(summary, "kind\tcount\tdetail\n");
	PlanDefects(&defect_rng, summary);

	hb_file = OpenOut("heartbeat.copy");
	Simulate();
	CloseOut(hb_file);
	nrec = WriteRecords(&defect_rng);
	ntruth = WriteTruth(&closed, &open);

	{
		int			counts[4] = {0, 0, 0, 0};
		int			gi;
		int			si;

		for (gi = 0; gi < nguns; gi++)
			for (si = 0; si < guns[gi].nsess; si++)
				if (guns[gi].sess[si].closed)
					counts[guns[gi].sess[si].record]++;
		fprintf(summary, "record_twice\t%d\tpile records sent twice, the copy minutes later\n", counts[R_TWICE]);
		fprintf(summary, "record_late\t%d\tpile records sent after the span (end of pile_record.copy)\n", counts[R_LATE]);
		fprintf(summary, "record_lost\t%d\tpile records never sent (bill lost)\n", counts[R_LOST]);
	}
	fprintf(summary, "charging_without_meter\t%lld\tcharging heartbeats with no meter reading%s%s\n", n_nometer,
			n_nometer ? ", the first: " : "", first_nometer);
	fprintf(summary, "zero_reading\t%lld\theartbeats reading 0 as their pile came back\n", n_zero_lines);
	fprintf(summary, "duplicate_heartbeat\t%lld\theartbeat lines sent twice, the copy 0-10 s later\n", n_dup);
	fprintf(summary, "out_of_order_heartbeat\t%lld\theartbeat lines sent 5-45 s late\n", n_ooo);
	fprintf(summary, "span\t%g\thours, %s - %s\n", opt.hours, TsStr(b0, 0), TsStr(b1, span_end));
	fprintf(summary, "stations\t%d\t\n", opt.stations);
	fprintf(summary, "piles\t%d\t\n", npiles);
	fprintf(summary, "guns\t%d\t\n", nguns);
	fprintf(summary, "heartbeat_lines\t%lld\tin heartbeat.copy, defects included\n", n_lines);
	fprintf(summary, "sessions\t%ld\t%ld unplugged within the span, %ld still open at its end\n", ntruth, closed, open);
	fprintf(summary, "pile_record_lines\t%ld\tin pile_record.copy\n", nrec);
	CloseOut(summary);

	if (!opt.quiet)
		fprintf(stderr, "trafficgen: %d stations, %d piles, %d guns; %lld heartbeats, %ld sessions "
				"(%ld open at the end), %ld pile records; %.2f s CPU -> %s\n",
				opt.stations, npiles, nguns, n_lines, ntruth, open, nrec,
				(double) (clock() - c0) / CLOCKS_PER_SEC, opt.out);
	return 0;
}
