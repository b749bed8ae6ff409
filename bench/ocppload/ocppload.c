/*-------------------------------------------------------------------------
 *
 * ocppload.c
 *	  Owns the bridge's load generator: thousands of OCPP 1.6J charge points
 *	  on one libwebsockets client thread, each charging once while it
 *	  reports its meter every 15 s of simulated time, and the figures of
 *	  how fast and how soon evcharge-bridge answered them.  The loop is
 *	  libev's on epoll (libwebsockets' LIBEV event library): poll() over
 *	  10,000 sockets would cost more than the work.
 *
 *	  Pile i (0 .. --piles - 1) is <--pile-prefix><serial 5 digits>, serial
 *	  --first-serial + i; it must be registered (bench/bridge.sh does it).
 *	  Each pile, in phases that all piles finish before the next begins:
 *	  1. connect (at most --connect-concurrency handshakes at a time),
 *	     BootNotification, StatusNotification Available; then the idle
 *	     connections are held --idle-wait seconds (the bridge's memory per
 *	     idle connection is read at the end of it);
 *	  2. StatusNotification Preparing, StartTransaction, StatusNotification
 *	     Charging (piles released at --start-rate a second);
 *	  3. --samples MeterValues of the transaction, the sample of step k
 *	     (1..) timed T + 15 s x k + 15 s x i / piles in simulated time (T:
 *	     --start), with the energy register, power, voltage, current and
 *	     SoC; time is compressed so that the piles together are due to send
 *	     --rate MeterValues a second (factor rate x 15 / piles); --rate 0
 *	     sends each as soon as the previous one is answered;
 *	  4. StopTransaction, StatusNotification Finishing, then Available a
 *	     minute later (which ends the session, and makes its bill).
 *	  Like a real charge point a pile has one CALL in flight: a sample due
 *	  while the previous one is unanswered waits (its delay is reported as
 *	  the lag behind the schedule).
 *
 *	  Reported: for StartTransaction, the MeterValues and StopTransaction,
 *	  the time from sending to the CALLRESULT (p50, p99, max); MeterValues
 *	  answered per second over phase 3 (first due to last answered); the
 *	  lag; and, when given --bridge-pid / --db-pid / --metrics, the bridge's
 *	  VmRSS before connecting, with the idle connections and at the end, the
 *	  CPU (utime + stime, /proc) of the bridge, the database (the postmaster,
 *	  its children and its reaped children) and this program over phase 3,
 *	  and the bridge's rows per flush and flush time over phase 3.  The last
 *	  line is "RESULT key=value ..." for scripts.  Exits 1 on a CALLERROR, a
 *	  refused or lost connection, or no progress for 60 s.
 *
 *	  With --url tcp://HOST:PORT the same piles speak the YKC cloud protocol
 *	  (frames of src/bridge/ykc_frame.c): pile i logs in as
 *	  <--ykc-prefix><serial>; Available, Preparing, Finishing and the last
 *	  Available are real-time data (0x13, which the protocol does not
 *	  answer), StartTransaction is the charge's first real-time data, and
 *	  each sample is a 0x13 and a heartbeat 0x03 whose answer 0x04 is the
 *	  latency; StopTransaction is the transaction record 0x3B, answered 0x40
 *	  after commit.  Real-time data carries no time (the bridge stamps it),
 *	  so a YKC charge runs in real time at 6,992 W.
 *
 *	  Only for benchmarks on loopback: it is not installed.
 *
 *-------------------------------------------------------------------------
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <jansson.h>
#include <libwebsockets.h>

#include "ykc.h"

#define STEP_S 15				/* simulated seconds between samples */
#define STALL_US (60 * 1000000LL)	/* no answer for this long: give up */

typedef enum Phase
{
	PH_CONNECT,					/* connect, boot, Available */
	PH_IDLE,					/* hold the idle connections */
	PH_START,					/* Preparing, StartTransaction, Charging */
	PH_METER,					/* the MeterValues */
	PH_STOP,					/* StopTransaction, Finishing, Available */
	PH_DONE
} Phase;

/* What a pile sends next (or waits for). */
typedef enum Step
{
	ST_CONNECT,
	ST_BOOT,
	ST_AVAILABLE,
	ST_IDLE,					/* booted, waiting for phase 2 */
	ST_PREPARING,
	ST_START,
	ST_CHARGING,
	ST_METER,
	ST_STOP,
	ST_FINISHING,
	ST_UNPLUGGED,
	ST_DONE
} Step;

static const char *const step_action[] = {
	"", "BootNotification", "StatusNotification", "", "StatusNotification", "StartTransaction",
	"StatusNotification", "MeterValues", "StopTransaction", "StatusNotification", "StatusNotification", ""
};

typedef struct Pile
{
	struct lws *wsi;
	int			index;
	char		id[21];
	Step		step;
	bool		busy;			/* a CALL in flight */
	bool		released;		/* phase 2 may begin for it */
	bool		handshaking;	/* counted in connecting */
	int			attempts;		/* connection attempts */
	int			txid;
	int			k_sent;			/* MeterValues sent */
	int			k_due;			/* MeterValues due by the schedule */
	int64_t		meter_wh;
	int64_t		sent_us;		/* when the CALL in flight was written */
	int64_t		due_us;			/* when it was due (MeterValues) */
	unsigned	msg_seq;
	char		inflight[16];
	int			close_code;		/* of the bridge's close frame, if any */
	char	   *rx;				/* an answer arriving in fragments (YKC: bytes not yet framed) */
	size_t		rx_len;
	/* YKC only */
	char		ykc_no[15];		/* the 14-digit pile number it logs in with */
	char		serial[33];		/* the transaction's serial (32 digits) */
	uint16_t	yseq;			/* the next frame's sequence number */
	int64_t		start_wall_us;	/* when its charge began (wall clock) */
	int64_t		energy_dwh;		/* energy of the charge so far, 0.1 Wh */
	uint8_t		outq[64];		/* answers to the platform's frames, to write first */
	size_t		outq_len;
} Pile;

/* Settings */
static char host[128] = "127.0.0.1";
static int	port = 8180;
static char path_prefix[128] = "/ocpp";
static int	npiles = 10000;
static int	first_serial = 1;
static char pile_prefix[16] = "442000001200001";
static int	samples = 120;
static double rate = 20000;
static double start_rate = 2000;
static int	connect_concurrency = 256;
static int	sources = 1;
static double idle_wait = 3;
static char id_tag[21] = "1234567890123456";
static int64_t sim0_us;			/* --start */
static int	bridge_pid;
static int	db_pid;
static char metrics_host[128];
static int	metrics_port;
static double timeout_s = 900;
static bool ykc;				/* --url tcp://: the YKC cloud protocol */
static char ykc_prefix[10] = "320102000";

/* State */
static struct lws_context *context;
static struct ev_loop *loop;	/* libev (epoll): poll() over every socket would cost O(piles) a wake-up */
static Pile *piles;
static Phase phase = PH_CONNECT;
static int	next_connect;		/* piles [0, next_connect) were asked to connect */
static int *retry;				/* piles whose connection failed, to try again */
static int	nretry;
static int	connecting;
static int	n_booted,
			n_charging,
			n_metered,
			n_done;
static int	n_released;
static int64_t phase_began_us;
static int64_t meter_t0_us;		/* real time of the schedule's origin */
static int64_t meter_end_us;
static int64_t last_progress_us;
static int64_t began_us;
static double factor;			/* simulated seconds per real second */
static int	cursor_k = 1,
			cursor_p = 0;		/* the next (sample, pile) of the schedule */
static bool failed;
static lws_sorted_usec_list_t tick_sul;

/* Latencies in µs, and the lag behind the schedule */
static uint32_t *lat_meter,
		   *lat_start,
		   *lat_stop,
		   *lag_meter;
static size_t n_lat_meter,
			n_lat_start,
			n_lat_stop,
			n_lag_meter;
static long errors;

/* Measurements at the start and end of phase 3 */
typedef struct Snapshot
{
	int64_t		at_us;
	double		cpu_bridge,
				cpu_db,
				cpu_self;		/* seconds */
	double		cpu_bridge_main;	/* the bridge's main thread (tid = pid) */
	int			ntasks;			/* its other threads: tid and seconds */
	int			task_tid[16];
	double		task_cpu[16];
	double		flush_rows_sum,
				flush_count,
				flush_seconds_sum;
	bool		metrics_ok;
} Snapshot;
static Snapshot snap_a,
			snap_b;
static long rss_before_kb = -1,
			rss_idle_kb = -1,
			rss_end_kb = -1;

static int64_t
NowUs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
Fail(const char *fmt,...) __attribute__((format(printf, 1, 2)));

/* Report a fatal problem; the main loop ends. */
static void
Fail(const char *fmt,...)
{
	va_list		ap;

	fputs("ocppload: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	failed = true;
	if (loop)
		ev_break(loop, EVBREAK_ALL);
}

/* 2026-11-20T07:45:00.000Z from µs since 1970 (simulated time). */
static void
IsoTime(int64_t us, char *buf, size_t len)
{
	time_t		s = (time_t) (us / 1000000);
	struct tm	tm;

	gmtime_r(&s, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec, (int) (us % 1000000 / 1000));
}

/* An RFC 3339 UTC time (YYYY-MM-DDTHH:MM:SS[.fff]Z) to µs; false if not one. */
static bool
ParseIso(const char *s, int64_t *us)
{
	struct tm	tm;
	int			ms = 0;
	char		z = 0;

	memset(&tm, 0, sizeof(tm));
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
			   &tm.tm_sec) != 6)
		return false;
	s += 19;
	if (*s == '.')
	{
		int			digits = 0;

		for (s++; isdigit((unsigned char) *s); s++, digits++)
			if (digits < 3)
				ms = ms * 10 + (*s - '0');
		for (; digits < 3; digits++)
			ms *= 10;
	}
	z = *s;
	if (z != 'Z' || s[1] != '\0')
		return false;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*us = (int64_t) timegm(&tm) * 1000000 + (int64_t) ms * 1000;
	return true;
}

/* The simulated offset of pile i inside a 15 s step, µs: spreads the piles. */
static int64_t
PileOffsetUs(int i)
{
	return (int64_t) i * STEP_S * 1000000 / npiles;
}

/* Real time at which sample k (1..) of pile i is due. */
static int64_t
DueUs(int k, int i)
{
	double		sim_us = (double) (k - 1) * STEP_S * 1e6 + (double) PileOffsetUs(i);

	return meter_t0_us + (int64_t) (sim_us / factor);
}

/* ---------- /proc ---------- */

/* utime + stime (+ cutime + cstime) of a process, in seconds; its ppid. */
static double
ProcCpu(int pid, bool children, int *ppid)
{
	char		fn[64];
	char		buf[1024];
	FILE	   *f;
	size_t		n;
	char	   *p;
	unsigned long long utime,
				stime;
	long long	cutime,
				cstime;
	int			pp;

	snprintf(fn, sizeof(fn), "/proc/%d/stat", pid);
	if ((f = fopen(fn, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* After the command's closing parenthesis: state, ppid, ... */
	if ((p = strrchr(buf, ')')) == NULL ||
		sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %lld %lld", &pp, &utime, &stime,
			   &cutime, &cstime) != 5)
		return -1;
	if (ppid)
		*ppid = pp;
	return (double) (utime + stime + (children ? (unsigned long long) (cutime + cstime) : 0)) /
		(double) sysconf(_SC_CLK_TCK);
}

/* The database's CPU: the postmaster, its live children, its reaped ones. */
static double
DbCpu(void)
{
	double		total = ProcCpu(db_pid, true, NULL);
	DIR		   *d;
	struct dirent *e;

	if (total < 0 || (d = opendir("/proc")) == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
	{
		int			pid = atoi(e->d_name);
		int			pp = 0;
		double		c;

		if (pid <= 0 || pid == db_pid)
			continue;
		c = ProcCpu(pid, false, &pp);
		if (c >= 0 && pp == db_pid)
			total += c;
	}
	closedir(d);
	return total;
}

/* VmRSS of a process, kB; -1 if unknown. */
static long
ProcRssKb(int pid)
{
	char		fn[64];
	char		line[256];
	FILE	   *f;
	long		kb = -1;

	snprintf(fn, sizeof(fn), "/proc/%d/status", pid);
	if ((f = fopen(fn, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0)
		{
			kb = atol(line + 6);
			break;
		}
	fclose(f);
	return kb;
}

/* ---------- the bridge's metrics endpoint ---------- */

/* GET /metrics (blocking, 2 s at most); the flush histograms' sums and count. */
static bool
FetchMetrics(Snapshot *s)
{
	struct sockaddr_in sa;
	struct timeval tv = {2, 0};
	int			fd;
	char	   *body = NULL;
	size_t		len = 0,
				cap = 0;
	ssize_t		n;
	char		req[256];
	const char *p;

	if (metrics_port == 0)
		return false;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t) metrics_port);
	if (inet_pton(AF_INET, metrics_host, &sa.sin_addr) != 1 || (fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return false;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	snprintf(req, sizeof(req), "GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n", metrics_host);
	if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0 || write(fd, req, strlen(req)) != (ssize_t) strlen(req))
	{
		close(fd);
		return false;
	}
	for (;;)
	{
		if (len + 4097 > cap)
		{
			char	   *nb = realloc(body, cap = cap * 2 + 8192);

			if (nb == NULL)
				break;
			body = nb;
		}
		if ((n = read(fd, body + len, cap - len - 1)) <= 0)
			break;
		len += (size_t) n;
	}
	close(fd);
	if (body == NULL)
		return false;
	body[len] = '\0';
	s->metrics_ok = false;
	if ((p = strstr(body, "\nevcharge_bridge_flush_rows_sum ")) != NULL)
		s->flush_rows_sum = atof(p + 32);
	if ((p = strstr(body, "\nevcharge_bridge_flush_rows_count ")) != NULL)
	{
		s->flush_count = atof(p + 34);
		s->metrics_ok = true;
	}
	if ((p = strstr(body, "\nevcharge_bridge_flush_seconds_sum ")) != NULL)
		s->flush_seconds_sum = atof(p + 35);
	free(body);
	return s->metrics_ok;
}

/* The CPU of each of the bridge's threads (/proc/PID/task). */
static void
BridgeThreads(Snapshot *s)
{
	char		dir[64];
	DIR		   *d;
	struct dirent *e;

	s->ntasks = 0;
	s->cpu_bridge_main = -1;
	snprintf(dir, sizeof(dir), "/proc/%d/task", bridge_pid);
	if ((d = opendir(dir)) == NULL)
		return;
	while ((e = readdir(d)) != NULL)
	{
		int			tid = atoi(e->d_name);
		char		fn[96];
		char		buf[1024];
		FILE	   *f;
		size_t		n;
		char	   *p;
		unsigned long long ut,
					st;

		if (tid <= 0)
			continue;
		snprintf(fn, sizeof(fn), "%s/%d/stat", dir, tid);
		if ((f = fopen(fn, "r")) == NULL)
			continue;
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		if ((p = strrchr(buf, ')')) == NULL ||
			sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
			continue;
		if (tid == bridge_pid)
			s->cpu_bridge_main = (double) (ut + st) / (double) sysconf(_SC_CLK_TCK);
		else if (s->ntasks < 16)
		{
			s->task_tid[s->ntasks] = tid;
			s->task_cpu[s->ntasks++] = (double) (ut + st) / (double) sysconf(_SC_CLK_TCK);
		}
	}
	closedir(d);
}

static void
TakeSnapshot(Snapshot *s)
{
	s->at_us = NowUs();
	if (bridge_pid)
		BridgeThreads(s);
	s->cpu_bridge = bridge_pid ? ProcCpu(bridge_pid, false, NULL) : -1;
	s->cpu_db = db_pid ? DbCpu() : -1;
	s->cpu_self = ProcCpu(getpid(), false, NULL);
	FetchMetrics(s);
}

/* ---------- piles ---------- */

static void
Record(uint32_t *arr, size_t *n, int64_t us)
{
	arr[(*n)++] = us < 0 ? 0 : us > UINT32_MAX ? UINT32_MAX : (uint32_t) us;
}

/* Whether the pile has a CALL to send now. */
static bool
HasWork(const Pile *p)
{
	if (p->wsi == NULL)
		return false;
	if (p->outq_len > 0)
		return true;
	if (p->busy)
		return false;
	switch (p->step)
	{
		case ST_BOOT:
		case ST_AVAILABLE:
		case ST_START:
		case ST_CHARGING:
			return true;
		case ST_STOP:
		case ST_FINISHING:
		case ST_UNPLUGGED:
			return phase >= PH_STOP;	/* after every pile's MeterValues */
		case ST_PREPARING:
			return p->released;
		case ST_METER:
			return p->k_due > p->k_sent;
		default:
			return false;
	}
}

static void
Kick(Pile *p)
{
	if (HasWork(p))
		lws_callback_on_writable(p->wsi);
}

static void ConnectFailed(Pile *p, const char *why);

static void
Connect(Pile *p)
{
	struct lws_client_connect_info ci;
	char		path[192];
	char		iface[32];

	memset(&ci, 0, sizeof(ci));
	snprintf(path, sizeof(path), "%s/%s", path_prefix, p->id);
	ci.context = context;
	ci.address = host;
	ci.port = port;
	ci.path = path;
	ci.host = host;
	ci.origin = host;
	if (ykc)
	{
		ci.method = "RAW";
		ci.local_protocol_name = "ykc";
		ci.path = "/";
	}
	else
		ci.protocol = "ocpp1.6";
	ci.userdata = p;
	ci.pwsi = &p->wsi;
	if (sources > 1)
	{
		/* Source addresses 127.0.0.1 .. 127.0.0.<sources>: more than one port range. */
		snprintf(iface, sizeof(iface), "127.0.0.%d", 1 + p->index % sources);
		ci.iface = iface;
	}
	p->attempts++;
	p->step = ST_CONNECT;
	p->handshaking = true;
	connecting++;
	if (lws_client_connect_via_info(&ci) == NULL)
	{
		/* Failed at once; CLIENT_CONNECTION_ERROR may have run already. */
		p->wsi = NULL;
		if (p->handshaking)
		{
			p->handshaking = false;
			connecting--;
			ConnectFailed(p, "the connection could not be made");
		}
	}
}

/* A pile's connection failed: try again later, up to 5 times. */
static void
ConnectFailed(Pile *p, const char *why)
{
	if (phase != PH_CONNECT || p->attempts >= 5)
		Fail("pile %s: cannot connect: %s", p->id, why);
	else
	{
		fprintf(stderr, "ocppload: pile %s: connection failed (%s), trying again\n", p->id, why);
		retry[nretry++] = p->index;
	}
}

/* Connect more piles while fewer than --connect-concurrency handshakes run. */
static void
ConnectMore(void)
{
	while (phase == PH_CONNECT && !failed && connecting < connect_concurrency)
	{
		if (nretry > 0)
			Connect(&piles[retry[--nretry]]);
		else if (next_connect < npiles)
			Connect(&piles[next_connect++]);
		else
			break;
	}
}

/* The text of the pile's next CALL into buf (after LWS_PRE); its length. */
static int
BuildCall(Pile *p, char *buf, size_t cap)
{
	char		ts[80];
	int64_t		sim;
	int64_t		off = PileOffsetUs(p->index);
	const char *status = NULL;

	snprintf(p->inflight, sizeof(p->inflight), "%c%u", "cbaipsgmxfud"[p->step], ++p->msg_seq);
	switch (p->step)
	{
		case ST_BOOT:
			return snprintf(buf, cap, "[2,\"%s\",\"BootNotification\",{\"chargePointVendor\":\"evcharge-bench\","
							"\"chargePointModel\":\"AC7\",\"firmwareVersion\":\"AC-2.3.1\"}]", p->inflight);
		case ST_AVAILABLE:
			sim = sim0_us + off - 120 * 1000000LL;
			status = "Available";
			break;
		case ST_PREPARING:
			sim = sim0_us + off - 60 * 1000000LL;
			status = "Preparing";
			break;
		case ST_CHARGING:
			sim = sim0_us + off;
			status = "Charging";
			break;
		case ST_START:
			IsoTime(sim0_us + off, ts, sizeof(ts));
			return snprintf(buf, cap, "[2,\"%s\",\"StartTransaction\",{\"connectorId\":1,\"idTag\":\"%s\","
							"\"meterStart\":%" PRId64 ",\"timestamp\":\"%s\"}]", p->inflight, id_tag, p->meter_wh, ts);
		case ST_METER:
			{
				int			k = p->k_sent + 1;

				/* About 7 kW: 29 Wh a step, give or take. */
				p->meter_wh += 27 + (k * 7 + p->index) % 5;
				IsoTime(sim0_us + off + (int64_t) k * STEP_S * 1000000, ts, sizeof(ts));
				return snprintf(buf, cap, "[2,\"%s\",\"MeterValues\",{\"connectorId\":1,\"transactionId\":%d,"
								"\"meterValue\":[{\"timestamp\":\"%s\",\"sampledValue\":["
								"{\"value\":\"%" PRId64 "\",\"context\":\"Sample.Periodic\","
								"\"measurand\":\"Energy.Active.Import.Register\",\"unit\":\"Wh\"},"
								"{\"value\":\"%d\",\"measurand\":\"Power.Active.Import\",\"unit\":\"W\"},"
								"{\"value\":\"%.1f\",\"measurand\":\"Voltage\",\"unit\":\"V\"},"
								"{\"value\":\"%.1f\",\"measurand\":\"Current.Import\",\"unit\":\"A\"},"
								"{\"value\":\"%d\",\"measurand\":\"SoC\",\"unit\":\"Percent\",\"location\":\"EV\"}]}]}]",
								p->inflight, p->txid, ts, p->meter_wh, 6900 + (13 * k + p->index) % 200,
								228.0 + (k + p->index) % 50 / 10.0, 30.0 + (k % 10) / 10.0, 20 + k * 60 / samples);
			}
		case ST_STOP:
			IsoTime(sim0_us + off + ((int64_t) samples * STEP_S + 5) * 1000000, ts, sizeof(ts));
			return snprintf(buf, cap, "[2,\"%s\",\"StopTransaction\",{\"transactionId\":%d,\"idTag\":\"%s\","
							"\"meterStop\":%" PRId64 ",\"timestamp\":\"%s\",\"reason\":\"EVDisconnected\"}]",
							p->inflight, p->txid, id_tag, p->meter_wh, ts);
		case ST_FINISHING:
			sim = sim0_us + off + ((int64_t) samples * STEP_S + 5) * 1000000;
			status = "Finishing";
			break;
		case ST_UNPLUGGED:
			sim = sim0_us + off + ((int64_t) samples * STEP_S + 65) * 1000000;
			status = "Available";
			break;
		default:
			return -1;
	}
	IsoTime(sim, ts, sizeof(ts));
	return snprintf(buf, cap, "[2,\"%s\",\"StatusNotification\",{\"connectorId\":1,\"errorCode\":\"NoError\","
					"\"status\":\"%s\",\"timestamp\":\"%s\"}]", p->inflight, status, ts);
}

static void SendNextYkc(Pile *p);

static void
SendNext(Pile *p)
{
	unsigned char buf[LWS_PRE + 2048];
	int			n;

	if (!HasWork(p))
		return;
	if (ykc)
	{
		SendNextYkc(p);
		return;
	}
	n = BuildCall(p, (char *) buf + LWS_PRE, sizeof(buf) - LWS_PRE);
	if (n <= 0 || n >= (int) (sizeof(buf) - LWS_PRE))
	{
		Fail("pile %s: cannot build its %s", p->id, step_action[p->step]);
		return;
	}
	if (p->step == ST_METER)
	{
		p->due_us = rate > 0 ? DueUs(p->k_sent + 1, p->index) : 0;
		p->k_sent++;
	}
	p->sent_us = NowUs();
	if (lws_write(p->wsi, buf + LWS_PRE, (size_t) n, LWS_WRITE_TEXT) < n)
	{
		Fail("pile %s: write failed", p->id);
		return;
	}
	p->busy = true;
	if (p->step == ST_METER && rate > 0)
		Record(lag_meter, &n_lag_meter, p->sent_us - p->due_us);
}

static void EnterPhase(Phase ph);

/*
 * The pile's step is done: answered (lat: µs from sending), or, for a YKC
 * frame the protocol does not answer, written (lat -1).  On to the next.
 */
static void
StepDone(Pile *p, int64_t lat)
{
	last_progress_us = NowUs();
	p->busy = false;
	switch (p->step)
	{
		case ST_BOOT:
			p->step = ST_AVAILABLE;
			break;
		case ST_AVAILABLE:
			p->step = ST_IDLE;
			if (++n_booted == npiles)
				EnterPhase(PH_IDLE);
			break;
		case ST_PREPARING:
			p->step = ST_START;
			break;
		case ST_START:
			if (lat >= 0)
				Record(lat_start, &n_lat_start, lat);
			p->step = ST_CHARGING;
			break;
		case ST_CHARGING:
			p->step = ST_METER;
			if (++n_charging == npiles)
				EnterPhase(PH_METER);
			break;
		case ST_METER:
			Record(lat_meter, &n_lat_meter, lat);
			if (p->k_sent == samples)
			{
				p->step = ST_STOP;
				if (++n_metered == npiles)
					EnterPhase(PH_STOP);
			}
			break;
		case ST_STOP:
			Record(lat_stop, &n_lat_stop, lat);
			p->step = ST_FINISHING;
			break;
		case ST_FINISHING:
			p->step = ST_UNPLUGGED;
			break;
		case ST_UNPLUGGED:
			p->step = ST_DONE;
			if (++n_done == npiles)
				EnterPhase(PH_DONE);
			break;
		default:
			break;
	}
	Kick(p);
}

/* A whole message from the bridge for pile p. */
static void
HandleAnswer(Pile *p, const char *text, size_t len)
{
	json_error_t jerr;
	json_t	   *root = json_loadb(text, len, 0, &jerr);
	int			type;
	const char *id;
	json_t	   *payload;
	int64_t		now = NowUs();
	int64_t		lat;

	if (!json_is_array(root) || json_array_size(root) < 3)
	{
		Fail("pile %s: not an OCPP-J frame: %.*s", p->id, (int) (len > 200 ? 200 : len), text);
		json_decref(root);
		return;
	}
	type = (int) json_integer_value(json_array_get(root, 0));
	id = json_string_value(json_array_get(root, 1));
	if (type == 2)
	{
		/* A command from the central system: none is expected here. */
		fprintf(stderr, "ocppload: pile %s: unexpected CALL %s ignored\n", p->id,
				json_string_value(json_array_get(root, 2)));
		json_decref(root);
		return;
	}
	if (!p->busy || id == NULL || strcmp(id, p->inflight) != 0)
	{
		Fail("pile %s: answer to %s, which is not in flight (%s)", p->id, id ? id : "?", p->inflight);
		json_decref(root);
		return;
	}
	if (type == 4)
	{
		errors++;
		Fail("pile %s: %s answered with CALLERROR %s: %s", p->id, step_action[p->step],
			 json_string_value(json_array_get(root, 2)), json_string_value(json_array_get(root, 3)));
		json_decref(root);
		return;
	}
	payload = json_array_get(root, 2);
	lat = now - p->sent_us;
	if (p->step == ST_BOOT &&
		strcmp(json_string_value(json_object_get(payload, "status")) ?
			   json_string_value(json_object_get(payload, "status")) : "", "Accepted") != 0)
		Fail("pile %s: BootNotification not Accepted", p->id);
	if (p->step == ST_START)
	{
		const char *st = json_string_value(json_object_get(json_object_get(payload, "idTagInfo"), "status"));

		p->txid = (int) json_integer_value(json_object_get(payload, "transactionId"));
		if (st == NULL || strcmp(st, "Accepted") != 0 || p->txid <= 0)
		{
			errors++;
			Fail("pile %s: StartTransaction answered %s, transactionId %d", p->id, st ? st : "?", p->txid);
		}
	}
	json_decref(root);
	StepDone(p, lat);
}

static int
Callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	Pile	   *p = (Pile *) user;

	switch (reason)
	{
		case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
			if (p == NULL)
				break;
			p->wsi = NULL;
			if (p->handshaking)
			{
				p->handshaking = false;
				connecting--;
				ConnectFailed(p, in ? (const char *) in : "?");
			}
			break;
		case LWS_CALLBACK_CLIENT_ESTABLISHED:
			if (p == NULL)
				break;
			if (p->handshaking)
			{
				p->handshaking = false;
				connecting--;
			}
			p->wsi = wsi;
			p->step = ST_BOOT;
			Kick(p);
			ConnectMore();
			break;
		case LWS_CALLBACK_CLIENT_WRITEABLE:
			if (p)
				SendNext(p);
			break;
		case LWS_CALLBACK_CLIENT_RECEIVE:
			if (p == NULL)
				break;
			if (p->rx_len == 0 && lws_is_first_fragment(wsi) && lws_is_final_fragment(wsi) &&
				lws_remaining_packet_payload(wsi) == 0)
			{
				HandleAnswer(p, in, len);
				break;
			}
			{
				char	   *nb = realloc(p->rx, p->rx_len + len + 1);

				if (nb == NULL)
				{
					Fail("out of memory");
					break;
				}
				p->rx = nb;
				memcpy(p->rx + p->rx_len, in, len);
				p->rx_len += len;
				if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0)
				{
					HandleAnswer(p, p->rx, p->rx_len);
					p->rx_len = 0;
				}
			}
			break;
		case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
			if (p)
			{
				p->close_code = len >= 2 ? (((const unsigned char *) in)[0] << 8) | ((const unsigned char *) in)[1] : 1005;
				if (phase != PH_DONE && !failed)
					fprintf(stderr, "ocppload: pile %s: the bridge closes with %d: %.*s\n", p->id, p->close_code,
							len > 2 ? (int) len - 2 : 0, len > 2 ? (const char *) in + 2 : "");
			}
			break;
		case LWS_CALLBACK_CLIENT_CLOSED:
			if (p)
			{
				p->wsi = NULL;
				if (phase != PH_DONE && !failed)
					Fail("pile %s: the connection closed (%s; at %s %s, %s)", p->id,
						 p->close_code ? "the bridge sent a close frame" : "no close frame",
						 step_action[p->step], p->inflight, p->busy ? "unanswered" : "answered");
			}
			break;
		default:
			break;
	}
	return 0;
}

/* ---------- YKC ---------- */

/* Wall-clock µs since 1970: YKC real-time data carries no time, the bridge stamps it. */
static int64_t
WallUs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * The bench's plan class of a moment, YKC's order (0 sharp, 1 peak, 2 flat,
 * 3 valley): valley before 08:00 Beijing time, flat after (bench/bridge.sh).
 */
static int
YkcClassAt(int64_t wall_us)
{
	int64_t		s = wall_us / 1000000 + 8 * 3600;

	return (s % 86400) < 8 * 3600 ? 3 : 2;
}

/* Fixed-width fields, not strings: no NUL goes on the wire. */
static const char ykc_vin[17] = "LSVAB4180E2000001";
static const char ykc_firmware[8] = "AC-2.3.1";

/* Appends a frame to out; its length. */
static size_t
YkcPut(Pile *p, uint8_t type, const uint8_t *body, int len, uint8_t *out)
{
	return YkcFrameEncode(p->yseq++, type, body, len, out);
}

/*
 * A real-time data frame (0x13) of gun 1: status 2 idle or 3 charging,
 * plugged or not; while charging 230.0 V x 30.4 A and the energy so far.
 */
static size_t
YkcRealtime(Pile *p, int status, bool plugged, uint8_t *out)
{
	uint8_t		b[YKC_REALTIME_LEN];
	bool		charging = status == 3;

	memset(b, 0, sizeof(b));
	YkcBcdEncode(charging ? p->serial : "", 16, b);
	YkcBcdEncode(p->ykc_no, 7, b + 16);
	YkcBcdEncode("01", 1, b + 23);
	b[24] = (uint8_t) status;
	b[26] = plugged ? 1 : 0;
	YkcPutLe(b + 27, charging ? 2300 : 0, 2);
	YkcPutLe(b + 29, charging ? 304 : 0, 2);
	b[31] = 75;					/* gun temperature */
	b[40] = (uint8_t) (charging ? 20 + p->k_sent * 60 / samples : 0);	/* SoC */
	b[41] = 70;					/* battery temperature */
	YkcPutLe(b + 42, (uint64_t) ((WallUs() - p->start_wall_us) / 60000000), 2);	/* minutes charged */
	YkcPutLe(b + 46, (uint64_t) p->energy_dwh, 4);
	YkcPutLe(b + 50, (uint64_t) p->energy_dwh, 4);
	return YkcPut(p, YKC_REALTIME, b, YKC_REALTIME_LEN, out);
}

/* A heartbeat (0x03) of gun 1: answered 0x04 at once. */
static size_t
YkcHeartbeat(Pile *p, uint8_t *out)
{
	uint8_t		b[YKC_HEARTBEAT_LEN];

	memset(b, 0, sizeof(b));
	YkcBcdEncode(p->ykc_no, 7, b);
	YkcBcdEncode("01", 1, b + 7);
	return YkcPut(p, YKC_HEARTBEAT, b, YKC_HEARTBEAT_LEN, out);
}

/* The transaction record (0x3B): the whole energy in the class of its start. */
static size_t
YkcRecord(Pile *p, uint8_t *out)
{
	uint8_t		b[YKC_RECORD_LEN];
	int64_t		end = WallUs();
	int			cls = YkcClassAt(p->start_wall_us);

	memset(b, 0, sizeof(b));
	YkcBcdEncode(p->serial, 16, b);
	YkcBcdEncode(p->ykc_no, 7, b + 16);
	YkcBcdEncode("01", 1, b + 23);
	YkcCp56Encode(p->start_wall_us, 480, b + 24);
	YkcCp56Encode(end, 480, b + 31);
	/* per class: price, energy, energy with loss, amount */
	YkcPutLe(b + 38 + 16 * cls + 4, (uint64_t) p->energy_dwh, 4);
	YkcPutLe(b + 38 + 16 * cls + 8, (uint64_t) p->energy_dwh, 4);
	YkcPutLe(b + 102, 0, 5);	/* meter at start */
	YkcPutLe(b + 107, (uint64_t) p->energy_dwh, 5);	/* meter at stop */
	YkcPutLe(b + 112, (uint64_t) p->energy_dwh, 4);
	YkcPutLe(b + 116, (uint64_t) p->energy_dwh, 4);
	memcpy(b + 124, ykc_vin, sizeof(ykc_vin));
	b[141] = 2;					/* started by card */
	YkcCp56Encode(end, 480, b + 142);
	b[149] = 0x40;				/* stopped: charged to the end */
	YkcBcdEncode(id_tag, 8, b + 150);
	return YkcPut(p, YKC_RECORD, b, YKC_RECORD_LEN, out);
}

/*
 * The pile's next frames, as the OCPP steps: login (answered 0x02), idle
 * (0x13, unanswered), plugged, the charge's first real-time data, a
 * heartbeat, then per sample the real-time data and a heartbeat whose 0x04
 * gives the latency (0x13 has no answer in the protocol), the record
 * (answered 0x40 after commit), plugged and idle after the charge.
 */
static void
SendNextYkc(Pile *p)
{
	unsigned char buf[LWS_PRE + 2 * YKC_MAX_FRAME + 64];
	uint8_t    *out = buf + LWS_PRE;
	size_t		n = 0,
				queued;
	bool		answered = true;

	if (p->outq_len > 0)
	{
		memcpy(out, p->outq, p->outq_len);
		n = p->outq_len;
		p->outq_len = 0;
	}
	queued = n;
	if (!p->busy)
		switch (p->step)
		{
			case ST_BOOT:
				{
					uint8_t		b[YKC_LOGIN_LEN];

					memset(b, 0, sizeof(b));
					YkcBcdEncode(p->ykc_no, 7, b);
					b[7] = 1;	/* AC */
					b[8] = 1;	/* one gun */
					b[9] = 0x10;	/* protocol 1.6 */
					memcpy(b + 10, ykc_firmware, sizeof(ykc_firmware));
					b[29] = 4;
					n += YkcPut(p, YKC_LOGIN, b, YKC_LOGIN_LEN, out + n);
				}
				break;
			case ST_AVAILABLE:
				n += YkcRealtime(p, 2, false, out + n);
				answered = false;
				break;
			case ST_PREPARING:
				if (!p->released)
					break;
				n += YkcRealtime(p, 2, true, out + n);
				answered = false;
				break;
			case ST_START:
				{
					char		stamp[32];
					time_t		bj;
					struct tm	tm;

					p->start_wall_us = WallUs();
					bj = (time_t) (p->start_wall_us / 1000000 + 8 * 3600);
					gmtime_r(&bj, &tm);
					strftime(stamp, sizeof(stamp), "%y%m%d%H%M%S", &tm);
					snprintf(p->serial, sizeof(p->serial), "%.14s01%.12s%04u", p->ykc_no, stamp, (unsigned) p->index % 10000u);
					p->energy_dwh = 0;
					n += YkcRealtime(p, 3, true, out + n);
					answered = false;
				}
				break;
			case ST_CHARGING:
				n += YkcHeartbeat(p, out + n);
				break;
			case ST_METER:
				if (p->k_due <= p->k_sent)
					break;
				/* 6,992 W since the start, in 0.1 Wh */
				p->energy_dwh = (WallUs() - p->start_wall_us) * 6992 / 360 / 1000000;
				p->due_us = rate > 0 ? DueUs(p->k_sent + 1, p->index) : 0;
				p->k_sent++;
				n += YkcRealtime(p, 3, true, out + n);
				n += YkcHeartbeat(p, out + n);
				break;
			case ST_STOP:
				if (phase < PH_STOP)
					break;
				n += YkcRecord(p, out + n);
				break;
			case ST_FINISHING:
				n += YkcRealtime(p, 2, true, out + n);
				answered = false;
				break;
			case ST_UNPLUGGED:
				n += YkcRealtime(p, 2, false, out + n);
				answered = false;
				break;
			default:
				break;
		}
	if (n == 0)
		return;
	if (n > queued)
		p->sent_us = NowUs();
	if (lws_write(p->wsi, out, n, LWS_WRITE_RAW) < (int) n)
	{
		Fail("pile %s: write failed", p->id);
		return;
	}
	if (n == queued)
		return;					/* only the queued answers were written */
	if (p->step == ST_METER && rate > 0)
		Record(lag_meter, &n_lag_meter, p->sent_us - p->due_us);
	if (answered)
		p->busy = true;
	else
		StepDone(p, -1);
}

/* Queues an answer to a frame of the platform's (written before the next step). */
static void
YkcQueue(Pile *p, uint8_t type, const uint8_t *body, int len)
{
	if (p->outq_len + 4 + 2 + (size_t) len + 2 > sizeof(p->outq))
	{
		Fail("pile %s: too many answers queued", p->id);
		return;
	}
	p->outq_len += YkcPut(p, type, body, len, p->outq + p->outq_len);
	lws_callback_on_writable(p->wsi);
}

/* A whole frame from the bridge. */
static void
HandleYkcFrame(Pile *p, const YkcFrame *f)
{
	int64_t		lat = NowUs() - p->sent_us;
	uint8_t		b[16];
	int			want;

	switch (f->type)
	{
		case YKC_LOGIN_ACK:
			want = ST_BOOT;
			if (f->body_len < 8 || f->body[7] != 0)
			{
				Fail("pile %s (YKC %s): login refused (result %d)", p->id, p->ykc_no, f->body_len >= 8 ? f->body[7] : -1);
				return;
			}
			break;
		case YKC_HEARTBEAT_ACK:
			want = p->step == ST_CHARGING ? ST_CHARGING : ST_METER;
			break;
		case YKC_RECORD_ACK:
			want = ST_STOP;
			if (f->body_len < 17 || f->body[16] != 0)
			{
				errors++;
				Fail("pile %s: record %s acknowledged with result %d", p->id, p->serial, f->body_len >= 17 ? f->body[16] : -1);
				return;
			}
			break;
		case YKC_CLOCK_SET:
			/* answered with the pile number and the time set */
			if (f->body_len >= 14)
				YkcQueue(p, YKC_CLOCK_ACK, f->body, 14);
			return;
		case YKC_MODEL_SET:
			memset(b, 0, sizeof(b));
			YkcBcdEncode(p->ykc_no, 7, b);
			b[7] = 1;			/* set */
			YkcQueue(p, YKC_MODEL_SET_ACK, b, YKC_MODEL_SET_ACK_LEN);
			return;
		default:
			fprintf(stderr, "ocppload: pile %s: unexpected YKC frame 0x%02X ignored\n", p->id, f->type);
			return;
	}
	if (!p->busy || (int) p->step != want)
	{
		Fail("pile %s: YKC frame 0x%02X, which answers nothing in flight (step %d)", p->id, f->type, (int) p->step);
		return;
	}
	StepDone(p, lat);
}

/* Bytes from the bridge: every whole frame in them. */
static void
YkcReceive(Pile *p, const uint8_t *in, size_t len)
{
	char	   *nb = realloc(p->rx, p->rx_len + len);
	size_t		off = 0;

	if (nb == NULL)
	{
		Fail("out of memory");
		return;
	}
	p->rx = nb;
	memcpy(p->rx + p->rx_len, in, len);
	p->rx_len += len;
	for (;;)
	{
		YkcFrame	f;
		YkcScan		r = YkcFrameScan((const uint8_t *) p->rx + off, p->rx_len - off, &f);

		if (r == YKC_NEED_MORE)
			break;
		if (r != YKC_FRAME)
		{
			Fail("pile %s: a bad YKC frame from the bridge (scan %d)", p->id, (int) r);
			return;
		}
		off += f.frame_len;
		HandleYkcFrame(p, &f);
		if (failed)
			return;
	}
	memmove(p->rx, p->rx + off, p->rx_len - off);
	p->rx_len -= off;
}

static int
CallbackYkc(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	Pile	   *p = (Pile *) user;

	if (p == NULL)
		return 0;
	switch (reason)
	{
		case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
			p->wsi = NULL;
			if (p->handshaking)
			{
				p->handshaking = false;
				connecting--;
				ConnectFailed(p, in ? (const char *) in : "?");
			}
			break;
		case LWS_CALLBACK_RAW_CONNECTED:
			if (p->handshaking)
			{
				p->handshaking = false;
				connecting--;
			}
			p->wsi = wsi;
			p->step = ST_BOOT;
			Kick(p);
			ConnectMore();
			break;
		case LWS_CALLBACK_RAW_WRITEABLE:
			SendNext(p);
			break;
		case LWS_CALLBACK_RAW_RX:
			YkcReceive(p, in, len);
			break;
		case LWS_CALLBACK_RAW_CLOSE:
			p->wsi = NULL;
			if (p->handshaking)
			{
				p->handshaking = false;
				connecting--;
				ConnectFailed(p, "closed while connecting");
			}
			else if (phase != PH_DONE && !failed)
				Fail("pile %s (YKC %s): the connection closed (at step %d, %s)", p->id, p->ykc_no, (int) p->step,
					 p->busy ? "unanswered" : "answered");
			break;
		default:
			break;
	}
	return 0;
}

static const struct lws_protocols protocols[] = {
	{"ocpp1.6", Callback, 0, 4096, 0, NULL, 0},
	{"ykc", CallbackYkc, 0, 4096, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0}
};

static void
EnterPhase(Phase ph)
{
	int64_t		now = NowUs();

	switch (ph)
	{
		case PH_IDLE:
			printf("phase 1: %d piles connected and booted in %.1f s\n", npiles, (now - phase_began_us) / 1e6);
			break;
		case PH_START:
			if (bridge_pid)
				rss_idle_kb = ProcRssKb(bridge_pid);
			break;
		case PH_METER:
			printf("phase 2: %d transactions started in %.1f s\n", npiles, (now - phase_began_us) / 1e6);
			/* The schedule begins a little later, from a quiet start. */
			TakeSnapshot(&snap_a);
			meter_t0_us = NowUs() + 300000;
			break;
		case PH_STOP:
			meter_end_us = now;
			TakeSnapshot(&snap_b);
			printf("phase 3: %zu MeterValues answered in %.1f s\n", n_lat_meter, (meter_end_us - meter_t0_us) / 1e6);
			break;
		case PH_DONE:
			printf("phase 4: %d transactions stopped in %.1f s\n", npiles, (now - phase_began_us) / 1e6);
			if (bridge_pid)
				rss_end_kb = ProcRssKb(bridge_pid);
			break;
		default:
			break;
	}
	fflush(stdout);
	phase = ph;
	phase_began_us = NowUs();
	if (ph == PH_STOP)
		for (int i = 0; i < npiles; i++)
			Kick(&piles[i]);
	if (ph == PH_DONE)
		ev_break(loop, EVBREAK_ALL);
}

/* Every millisecond: the schedule, pacing, the watchdog. */
static void
Tick(lws_sorted_usec_list_t *sul)
{
	int64_t		now = NowUs();

	if (now - began_us > (int64_t) (timeout_s * 1e6))
		Fail("timeout: %.0f s (phase %d)", timeout_s, (int) phase);
	else if (phase != PH_IDLE && now - last_progress_us > STALL_US)
		Fail("no answer for %lld s (phase %d)", STALL_US / 1000000, (int) phase);
	switch (phase)
	{
		case PH_CONNECT:
			ConnectMore();
			break;
		case PH_IDLE:
			if (now - phase_began_us >= (int64_t) (idle_wait * 1e6))
			{
				EnterPhase(PH_START);
				last_progress_us = now;
			}
			break;
		case PH_START:
			{
				int			allowed = start_rate <= 0 ? npiles :
					(int) ((double) (now - phase_began_us) / 1e6 * start_rate) + 1;

				while (n_released < npiles && n_released < allowed)
				{
					Pile	   *p = &piles[n_released++];

					p->released = true;
					p->step = ST_PREPARING;
					Kick(p);
				}
			}
			break;
		case PH_METER:
			if (rate <= 0)
			{
				/* As fast as answered: everything is due at once. */
				if (cursor_k <= samples)
				{
					for (int i = 0; i < npiles; i++)
					{
						piles[i].k_due = samples;
						Kick(&piles[i]);
					}
					cursor_k = samples + 1;
				}
				break;
			}
			while (cursor_k <= samples && DueUs(cursor_k, cursor_p) <= now)
			{
				Pile	   *p = &piles[cursor_p];

				p->k_due = cursor_k;
				Kick(p);
				if (++cursor_p == npiles)
				{
					cursor_p = 0;
					cursor_k++;
				}
			}
			break;
		default:
			break;
	}
	if (!failed && phase != PH_DONE)
		lws_sul_schedule(context, 0, &tick_sul, Tick, 1000);
}

static int
CmpU32(const void *a, const void *b)
{
	uint32_t	x = *(const uint32_t *) a,
				y = *(const uint32_t *) b;

	return x < y ? -1 : x > y;
}

/* p50, p99 and max of n values (sorted in place), ms. */
static void
Percentiles(uint32_t *v, size_t n, double *p50, double *p99, double *max)
{
	size_t		mid;

	*p50 = *p99 = *max = 0;
	if (n == 0)
		return;
	qsort(v, n, sizeof(uint32_t), CmpU32);
	mid = (n - 1) / 2;
	*p50 = (double) v[mid] / 1000.0;
	*p99 = (double) v[(size_t) ((double) (n - 1) * 0.99)] / 1000.0;
	*max = v[n - 1] / 1000.0;
}

static void
Usage(void)
{
	fputs("usage: ocppload --url ws://HOST:PORT/ocpp|tcp://HOST:PORT --start YYYY-MM-DDTHH:MM:SSZ [options]\n"
		  "  --url tcp://HOST:PORT   YKC piles (the YKC cloud protocol) instead of OCPP 1.6J\n"
		  "  --ykc-prefix DIGITS     the first 9 digits of every YKC pile number (320102000)\n"
		  "  --piles N               charge points (10000)\n"
		  "  --first-serial N        serial of the first pile (1)\n"
		  "  --pile-prefix DIGITS    the first 15 digits of every pile id (442000001200001)\n"
		  "  --samples N             MeterValues per pile (120)\n"
		  "  --rate N                MeterValues per second due, all piles together; 0: as fast as answered (20000)\n"
		  "  --start-rate N          StartTransactions a second in phase 2; 0: all at once (2000)\n"
		  "  --id-tag TAG            the idTag of every StartTransaction (1234567890123456)\n"
		  "  --connect-concurrency N handshakes at a time (256)\n"
		  "  --sources N             source addresses 127.0.0.1..N (1)\n"
		  "  --idle-wait S           seconds the booted piles stay idle before charging (3)\n"
		  "  --bridge-pid PID        the bridge: its VmRSS and CPU\n"
		  "  --db-pid PID            the postmaster: the database's CPU\n"
		  "  --metrics HOST:PORT     the bridge's metrics endpoint: rows per flush, flush time\n"
		  "  --timeout S             give up after S seconds (900)\n", stderr);
}

/* HOST:PORT into host and port; false if malformed. */
static bool
HostPort(const char *s, char *h, size_t hlen, int *p)
{
	const char *colon = strrchr(s, ':');

	if (colon == NULL || colon == s || (size_t) (colon - s) >= hlen || atoi(colon + 1) <= 0 ||
		atoi(colon + 1) > 65535)
		return false;
	memcpy(h, s, (size_t) (colon - s));
	h[colon - s] = '\0';
	*p = atoi(colon + 1);
	return true;
}

static bool
ParseArgs(int argc, char **argv)
{
	static const struct option opts[] = {
		{"url", required_argument, NULL, 'u'},
		{"piles", required_argument, NULL, 'n'},
		{"first-serial", required_argument, NULL, 'f'},
		{"pile-prefix", required_argument, NULL, 'x'},
		{"samples", required_argument, NULL, 's'},
		{"rate", required_argument, NULL, 'r'},
		{"start-rate", required_argument, NULL, 'R'},
		{"id-tag", required_argument, NULL, 'i'},
		{"connect-concurrency", required_argument, NULL, 'c'},
		{"sources", required_argument, NULL, 'S'},
		{"idle-wait", required_argument, NULL, 'w'},
		{"start", required_argument, NULL, 't'},
		{"bridge-pid", required_argument, NULL, 'b'},
		{"db-pid", required_argument, NULL, 'd'},
		{"metrics", required_argument, NULL, 'm'},
		{"timeout", required_argument, NULL, 'T'},
		{"ykc-prefix", required_argument, NULL, 'Y'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	int			c;
	bool		have_start = false;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
	{
		switch (c)
		{
			case 'u':
				if (strncmp(optarg, "tcp://", 6) == 0)
				{
					ykc = true;
					if (!HostPort(optarg + 6, host, sizeof(host), &port))
					{
						fprintf(stderr, "ocppload: --url tcp:// needs HOST:PORT, not \"%s\"\n", optarg + 6);
						return false;
					}
					break;
				}
				{
					const char *hp = strncmp(optarg, "ws://", 5) == 0 ? optarg + 5 : NULL;
					const char *slash = hp ? strchr(hp, '/') : NULL;
					char		hpbuf[160];

					if (slash == NULL || (size_t) (slash - hp) >= sizeof(hpbuf) || strlen(slash) >= sizeof(path_prefix))
					{
						fprintf(stderr, "ocppload: --url must be ws://HOST:PORT/PATH, not \"%s\"\n", optarg);
						return false;
					}
					memcpy(hpbuf, hp, (size_t) (slash - hp));
					hpbuf[slash - hp] = '\0';
					if (!HostPort(hpbuf, host, sizeof(host), &port))
					{
						fprintf(stderr, "ocppload: --url needs HOST:PORT, not \"%s\"\n", hpbuf);
						return false;
					}
					snprintf(path_prefix, sizeof(path_prefix), "%s", slash);
					if (path_prefix[strlen(path_prefix) - 1] == '/')
						path_prefix[strlen(path_prefix) - 1] = '\0';
				}
				break;
			case 'n':
				npiles = atoi(optarg);
				break;
			case 'f':
				first_serial = atoi(optarg);
				break;
			case 'x':
				if (strlen(optarg) != 15 || strspn(optarg, "0123456789") != 15)
				{
					fprintf(stderr, "ocppload: --pile-prefix must be 15 digits\n");
					return false;
				}
				snprintf(pile_prefix, sizeof(pile_prefix), "%s", optarg);
				break;
			case 's':
				samples = atoi(optarg);
				break;
			case 'r':
				rate = atof(optarg);
				break;
			case 'R':
				start_rate = atof(optarg);
				break;
			case 'i':
				if (strlen(optarg) == 0 || strlen(optarg) > 20)
				{
					fprintf(stderr, "ocppload: --id-tag must have 1 to 20 characters\n");
					return false;
				}
				snprintf(id_tag, sizeof(id_tag), "%s", optarg);
				break;
			case 'c':
				connect_concurrency = atoi(optarg);
				break;
			case 'S':
				sources = atoi(optarg);
				break;
			case 'w':
				idle_wait = atof(optarg);
				break;
			case 't':
				if (!ParseIso(optarg, &sim0_us))
				{
					fprintf(stderr, "ocppload: --start must be YYYY-MM-DDTHH:MM:SSZ, not \"%s\"\n", optarg);
					return false;
				}
				have_start = true;
				break;
			case 'b':
				bridge_pid = atoi(optarg);
				break;
			case 'd':
				db_pid = atoi(optarg);
				break;
			case 'm':
				if (!HostPort(optarg, metrics_host, sizeof(metrics_host), &metrics_port))
				{
					fprintf(stderr, "ocppload: --metrics must be HOST:PORT\n");
					return false;
				}
				break;
			case 'T':
				timeout_s = atof(optarg);
				break;
			case 'Y':
				if (strlen(optarg) != 9 || strspn(optarg, "0123456789") != 9)
				{
					fprintf(stderr, "ocppload: --ykc-prefix must be 9 digits\n");
					return false;
				}
				snprintf(ykc_prefix, sizeof(ykc_prefix), "%s", optarg);
				break;
			case 'h':
				Usage();
				exit(0);
			default:
				Usage();
				return false;
		}
	}
	if (ykc && (strlen(id_tag) != 16 || strspn(id_tag, "0123456789") != 16))
	{
		fprintf(stderr, "ocppload: over YKC the --id-tag is a card number of 16 digits\n");
		return false;
	}
	if (!have_start || optind != argc)
	{
		Usage();
		return false;
	}
	if (npiles < 1 || first_serial < 1 || first_serial + npiles - 1 > 99999 || samples < 1 || rate < 0 ||
		connect_concurrency < 1 || sources < 1 || sources > 254 || idle_wait < 0 || timeout_s <= 0)
	{
		fprintf(stderr, "ocppload: a setting is out of range (serials must stay within 1..99999)\n");
		return false;
	}
	return true;
}

/* Room for a descriptor per pile: raise RLIMIT_NOFILE (the hard limit too, as root). */
static void
RaiseFileLimit(void)
{
	struct rlimit rl;
	rlim_t		want = (rlim_t) npiles + 1024;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
		return;
	if (rl.rlim_max < want)
	{
		struct rlimit up = {want, want};

		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			return;
	}
	rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < want)
		fprintf(stderr, "ocppload: warning: only %llu file descriptors for %d piles\n",
				(unsigned long long) rl.rlim_cur, npiles);
}

int
main(int argc, char **argv)
{
	struct lws_context_creation_info info;
	void	   *foreign_loops[1];
	double		m50,
				m99,
				mmax,
				s50,
				s99,
				smax,
				x50,
				x99,
				xmax,
				l50,
				l99,
				lmax;
	double		wall,
				mv_rate;
	int64_t		t0;

	if (!ParseArgs(argc, argv))
		return 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	RaiseFileLimit();
	factor = rate > 0 ? rate * STEP_S / npiles : 0;

	piles = calloc((size_t) npiles, sizeof(Pile));
	lat_meter = calloc((size_t) npiles * (size_t) samples, sizeof(uint32_t));
	lag_meter = calloc((size_t) npiles * (size_t) samples, sizeof(uint32_t));
	lat_start = calloc((size_t) npiles, sizeof(uint32_t));
	lat_stop = calloc((size_t) npiles, sizeof(uint32_t));
	retry = calloc((size_t) npiles, sizeof(int));
	if (!retry || !piles || !lat_meter || !lag_meter || !lat_start || !lat_stop)
	{
		fprintf(stderr, "ocppload: out of memory\n");
		return 1;
	}
	for (int i = 0; i < npiles; i++)
	{
		piles[i].index = i;
		snprintf(piles[i].id, sizeof(piles[i].id), "%s%05d", pile_prefix, first_serial + i);
		piles[i].meter_wh = 1000000 + (int64_t) i * 37;
		snprintf(piles[i].ykc_no, sizeof(piles[i].ykc_no), "%s%05d", ykc_prefix, first_serial + i);
	}

	loop = ev_loop_new(EVBACKEND_EPOLL);
	if (loop == NULL)
	{
		fprintf(stderr, "ocppload: cannot make an epoll event loop\n");
		return 1;
	}
	{
		/* OCPPLOAD_LWS_LOG: libwebsockets' log levels (a bit mask), errors and warnings by default */
		const char *lvl = getenv("OCPPLOAD_LWS_LOG");

		lws_set_log_level(lvl ? atoi(lvl) : LLL_ERR | LLL_WARN, NULL);
	}
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	/*
	 * No fd_limit_per_thread: with it, libwebsockets 4.1 finds a socket's
	 * connection by a linear search (64 % of this program's time).
	 */
	info.options = LWS_SERVER_OPTION_LIBEV;
	info.foreign_loops = foreign_loops;
	info.timeout_secs = 60;
	foreign_loops[0] = loop;
	context = lws_create_context(&info);
	if (context == NULL)
	{
		fprintf(stderr, "ocppload: cannot create the libwebsockets context\n");
		return 1;
	}
	if (bridge_pid)
		rss_before_kb = ProcRssKb(bridge_pid);
	if (ykc)
		printf("ocppload: %d YKC piles on tcp://%s:%d, %d real-time samples each, ", npiles, host, port, samples);
	else
		printf("ocppload: %d piles on ws://%s:%d%s/, %d MeterValues each, ", npiles, host, port, path_prefix, samples);
	if (rate > 0)
		printf("%.0f due a second (%.2f s apart per pile: time x %.1f)\n", rate, npiles / rate, factor);
	else
		printf("each sent as soon as the previous one is answered\n");
	began_us = last_progress_us = phase_began_us = NowUs();
	lws_sul_schedule(context, 0, &tick_sul, Tick, 1000);
	ConnectMore();
	if (!failed)
		ev_run(loop, 0);
	t0 = NowUs();
	lws_context_destroy(context);
	context = NULL;
	if (failed || phase != PH_DONE)
	{
		fprintf(stderr, "ocppload: stopped in phase %d: %d booted, %d charging, %d metered, %d done, %zu MeterValues answered\n",
				(int) phase, n_booted, n_charging, n_metered, n_done, n_lat_meter);
		return 1;
	}

	wall = (double) (meter_end_us - meter_t0_us) / 1e6;
	mv_rate = (double) n_lat_meter / wall;
	Percentiles(lat_meter, n_lat_meter, &m50, &m99, &mmax);
	Percentiles(lat_start, n_lat_start, &s50, &s99, &smax);
	Percentiles(lat_stop, n_lat_stop, &x50, &x99, &xmax);
	Percentiles(lag_meter, n_lag_meter, &l50, &l99, &lmax);
	printf("%s: %zu answered in %.2f s: %.0f a second (due: %.0f); answer p50 %.1f ms, p99 %.1f ms, max %.1f ms; "
		   "lag behind the schedule p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
		   ykc ? "YKC real-time samples (0x13 + heartbeat 0x03/0x04)" : "MeterValues", n_lat_meter, wall, mv_rate, rate, m50, m99, mmax, l50, l99, lmax);
	printf("%s: p50 %.1f ms, p99 %.1f ms, max %.1f ms; %s: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
		   ykc ? "first heartbeat of the charge" : "StartTransaction",
		   s50, s99, smax, ykc ? "transaction record 0x3B/0x40" : "StopTransaction", x50, x99, xmax);
	printf("RESULT protocol=%s piles=%d samples=%d rate_due=%.0f mv_answered=%zu mv_seconds=%.3f mv_per_s=%.1f "
		   "mv_p50_ms=%.2f mv_p99_ms=%.2f mv_max_ms=%.2f lag_p50_ms=%.2f lag_p99_ms=%.2f lag_max_ms=%.2f "
		   "start_p50_ms=%.2f start_p99_ms=%.2f start_max_ms=%.2f stop_p50_ms=%.2f stop_p99_ms=%.2f stop_max_ms=%.2f",
		   ykc ? "ykc" : "ocpp", npiles, samples, rate, n_lat_meter, wall, mv_rate, m50, m99, mmax, l50, l99, lmax,
		   s50, s99, smax, x50, x99, xmax);
	if (bridge_pid)
		printf(" rss_before_kb=%ld rss_idle_kb=%ld rss_end_kb=%ld", rss_before_kb, rss_idle_kb, rss_end_kb);
	{
		double		span = (double) (snap_b.at_us - snap_a.at_us) / 1e6;

		if (bridge_pid && snap_a.cpu_bridge >= 0 && snap_b.cpu_bridge >= 0)
		{
			double		busiest = 0;

			printf(" cpu_bridge_s=%.2f", snap_b.cpu_bridge - snap_a.cpu_bridge);
			if (snap_a.cpu_bridge_main >= 0 && snap_b.cpu_bridge_main >= 0)
				printf(" cpu_bridge_main_s=%.2f", snap_b.cpu_bridge_main - snap_a.cpu_bridge_main);
			/* The busiest other thread: the writer (the command and metrics threads mostly sleep). */
			for (int i = 0; i < snap_b.ntasks; i++)
				for (int j = 0; j < snap_a.ntasks; j++)
					if (snap_a.task_tid[j] == snap_b.task_tid[i] && snap_b.task_cpu[i] - snap_a.task_cpu[j] > busiest)
						busiest = snap_b.task_cpu[i] - snap_a.task_cpu[j];
			printf(" cpu_bridge_writer_s=%.2f", busiest);
		}
		if (db_pid && snap_a.cpu_db >= 0 && snap_b.cpu_db >= 0)
			printf(" cpu_db_s=%.2f", snap_b.cpu_db - snap_a.cpu_db);
		printf(" cpu_gen_s=%.2f cpu_span_s=%.3f", snap_b.cpu_self - snap_a.cpu_self, span);
		if (snap_a.metrics_ok && snap_b.metrics_ok && snap_b.flush_count > snap_a.flush_count)
			printf(" flushes=%.0f rows_per_flush=%.1f flush_ms=%.2f", snap_b.flush_count - snap_a.flush_count,
				   (snap_b.flush_rows_sum - snap_a.flush_rows_sum) / (snap_b.flush_count - snap_a.flush_count),
				   (snap_b.flush_seconds_sum - snap_a.flush_seconds_sum) * 1000 /
				   (snap_b.flush_count - snap_a.flush_count));
	}
	printf(" errors=%ld\n", errors);
	(void) t0;
	return 0;
}
