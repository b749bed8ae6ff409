/*-------------------------------------------------------------------------
 *
 * metrics.c
 *	  The status endpoint, --metrics HOST:PORT: GET /metrics answers the
 *	  bridge's counters in the Prometheus text format (version 0.0.4).
 *
 * The counters are atomics that the main thread (connections, messages,
 * CALLERRORs, refusals, commands) and the writer (flushes) add to; a
 * thread of its own serves them over plain HTTP, one short request at a
 * time, so a slow scraper never touches the charge points' event loop.
 * It listens on loopback unless told another host, and with a token
 * (metrics_token_file, or EVCHARGE_BRIDGE_METRICS_TOKEN in the
 * environment: never on the command line) answers only a request that
 * carries it as "Authorization: Bearer <token>", 401 otherwise.
 * docs/bridge.md lists the metrics.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bridge.h"

static const char *const actions[] = {
	"BootNotification", "Heartbeat", "StatusNotification", "Authorize", "StartTransaction",
	"MeterValues", "StopTransaction", "DataTransfer", "FirmwareStatusNotification",
	"DiagnosticsStatusNotification", "other"
};
#define NACTIONS (sizeof(actions) / sizeof(actions[0]))

static const char *const error_codes[] = {
	"NotImplemented", "NotSupported", "InternalError", "ProtocolError", "SecurityError",
	"FormationViolation", "PropertyConstraintViolation", "OccurenceConstraintViolation",
	"TypeConstraintViolation", "GenericError", "other"
};
#define NCODES (sizeof(error_codes) / sizeof(error_codes[0]))

static const int refuse_statuses[] = {400, 401, 404, 503, 0};
#define NREFUSE (sizeof(refuse_statuses) / sizeof(refuse_statuses[0]))

static const double rows_buckets[] = {1, 10, 100, 1000, 10000, 100000};
#define NROWSB (sizeof(rows_buckets) / sizeof(rows_buckets[0]))
static const double secs_buckets[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5};
#define NSECSB (sizeof(secs_buckets) / sizeof(secs_buckets[0]))

static atomic_llong messages[NACTIONS];
static atomic_llong callerrors[NCODES];
static atomic_llong refused[NREFUSE];
static atomic_llong connections_total;
static atomic_int connected;
static atomic_llong commands_sent;
static atomic_llong unauthorized;
static atomic_llong rate_limited;
static atomic_llong flushes;
static atomic_llong flush_rows_sum;
static atomic_llong flush_us_sum;
static atomic_llong rows_hist[NROWSB];
static atomic_llong secs_hist[NSECSB];

/* YKC: frames received by type, and frames refused by why. */
static const char *const ykc_refusals[] = {
	"crc", "length", "start_byte", "unknown_type", "before_login", "encrypted", "login_refused", "other"
};
#define NYKCREF (sizeof(ykc_refusals) / sizeof(ykc_refusals[0]))
static atomic_llong ykc_frames[256];
static atomic_llong ykc_refused[NYKCREF];

static pthread_t thread;
static bool started;
static atomic_bool stop_flag;
static int	listen_fd = -1;

static size_t
Index(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i + 1 < n; i++)
		if (name && strcmp(names[i], name) == 0)
			return i;
	return n - 1;
}

void
MetricsRateLimited(void)
{
	atomic_fetch_add(&rate_limited, 1);
}

void
MetricsMessage(const char *action)
{
	atomic_fetch_add(&messages[Index(actions, NACTIONS, action)], 1);
}

void
MetricsYkcFrame(int type)
{
	atomic_fetch_add(&ykc_frames[type & 0xFF], 1);
}

void
MetricsYkcRefused(const char *why)
{
	atomic_fetch_add(&ykc_refused[Index(ykc_refusals, NYKCREF, why)], 1);
}

void
MetricsCallError(const char *code)
{
	atomic_fetch_add(&callerrors[Index(error_codes, NCODES, code)], 1);
}

void
MetricsRefused(int status)
{
	size_t		i = 0;

	while (i + 1 < NREFUSE && refuse_statuses[i] != status)
		i++;
	atomic_fetch_add(&refused[i], 1);
}

void
MetricsConnected(int now_connected, bool opened)
{
	atomic_store(&connected, now_connected);
	if (opened)
		atomic_fetch_add(&connections_total, 1);
}

void
MetricsCommandSent(void)
{
	atomic_fetch_add(&commands_sent, 1);
}

void
MetricsFlush(int rows, int64_t elapsed_us)
{
	atomic_fetch_add(&flushes, 1);
	atomic_fetch_add(&flush_rows_sum, rows);
	atomic_fetch_add(&flush_us_sum, elapsed_us);
	for (size_t i = 0; i < NROWSB; i++)
		if (rows <= rows_buckets[i])
			atomic_fetch_add(&rows_hist[i], 1);
	for (size_t i = 0; i < NSECSB; i++)
		if (elapsed_us <= secs_buckets[i] * 1e6)
			atomic_fetch_add(&secs_hist[i], 1);
}

/* The whole text of /metrics (malloc'd). */
static char *
Render(void)
{
	size_t		cap = 16384,
				len = 0;
	char	   *out = XRealloc(NULL, cap);
	long long	n = atomic_load(&flushes);

#define P(...) do { \
		int w_ = snprintf(out + len, cap - len, __VA_ARGS__); \
		if (w_ > 0 && (size_t) w_ < cap - len) len += (size_t) w_; \
	} while (0)

	P("# HELP evcharge_bridge_connected_piles Charge points connected now.\n"
	  "# TYPE evcharge_bridge_connected_piles gauge\n"
	  "evcharge_bridge_connected_piles %d\n", atomic_load(&connected));
	P("# HELP evcharge_bridge_connections_total WebSocket connections admitted.\n"
	  "# TYPE evcharge_bridge_connections_total counter\n"
	  "evcharge_bridge_connections_total %lld\n", atomic_load(&connections_total));
	P("# HELP evcharge_bridge_refused_connections_total Handshakes refused, by HTTP status.\n"
	  "# TYPE evcharge_bridge_refused_connections_total counter\n");
	for (size_t i = 0; i < NREFUSE; i++)
	{
		if (refuse_statuses[i])
			P("evcharge_bridge_refused_connections_total{status=\"%d\"} %lld\n", refuse_statuses[i],
			  atomic_load(&refused[i]));
		else
			P("evcharge_bridge_refused_connections_total{status=\"other\"} %lld\n", atomic_load(&refused[i]));
	}
	P("# HELP evcharge_bridge_messages_total CALLs received from charge points, by action.\n"
	  "# TYPE evcharge_bridge_messages_total counter\n");
	for (size_t i = 0; i < NACTIONS; i++)
		P("evcharge_bridge_messages_total{action=\"%s\"} %lld\n", actions[i], atomic_load(&messages[i]));
	P("# HELP evcharge_bridge_ykc_frames_total YKC frames received from piles, by frame type (those seen).\n"
	  "# TYPE evcharge_bridge_ykc_frames_total counter\n");
	for (int i = 0; i < 256; i++)
		if (atomic_load(&ykc_frames[i]) > 0)
			P("evcharge_bridge_ykc_frames_total{type=\"0x%02X\"} %lld\n", i, atomic_load(&ykc_frames[i]));
	P("# HELP evcharge_bridge_ykc_refused_total YKC frames refused or dropped, by reason.\n"
	  "# TYPE evcharge_bridge_ykc_refused_total counter\n");
	for (size_t i = 0; i < NYKCREF; i++)
		P("evcharge_bridge_ykc_refused_total{reason=\"%s\"} %lld\n", ykc_refusals[i], atomic_load(&ykc_refused[i]));
	P("# HELP evcharge_bridge_callerrors_total CALLERRORs sent, by error code.\n"
	  "# TYPE evcharge_bridge_callerrors_total counter\n");
	for (size_t i = 0; i < NCODES; i++)
		P("evcharge_bridge_callerrors_total{code=\"%s\"} %lld\n", error_codes[i], atomic_load(&callerrors[i]));
	P("# HELP evcharge_bridge_commands_sent_total Commands (RemoteStart/StopTransaction) sent to charge points.\n"
	  "# TYPE evcharge_bridge_commands_sent_total counter\n"
	  "evcharge_bridge_commands_sent_total %lld\n", atomic_load(&commands_sent));
	P("# HELP evcharge_bridge_rate_limited_total CALLs refused for the per-connection rate limit.\n"
	  "# TYPE evcharge_bridge_rate_limited_total counter\n"
	  "evcharge_bridge_rate_limited_total %lld\n", atomic_load(&rate_limited));
	P("# HELP evcharge_bridge_metrics_unauthorized_total Requests to this endpoint refused for a missing or wrong token.\n"
	  "# TYPE evcharge_bridge_metrics_unauthorized_total counter\n"
	  "evcharge_bridge_metrics_unauthorized_total %lld\n", atomic_load(&unauthorized));
	P("# HELP evcharge_bridge_queue_depth Messages held: queued, being written, or not yet answered.\n"
	  "# TYPE evcharge_bridge_queue_depth gauge\n"
	  "evcharge_bridge_queue_depth %d\n", WriterOutstanding());
	P("# HELP evcharge_bridge_database_up Whether the writer's database connection is up.\n"
	  "# TYPE evcharge_bridge_database_up gauge\n"
	  "evcharge_bridge_database_up %d\n", WriterConnected() ? 1 : 0);
	P("# HELP evcharge_bridge_flush_rows Messages stored per committed flush.\n"
	  "# TYPE evcharge_bridge_flush_rows histogram\n");
	for (size_t i = 0; i < NROWSB; i++)
		P("evcharge_bridge_flush_rows_bucket{le=\"%g\"} %lld\n", rows_buckets[i], atomic_load(&rows_hist[i]));
	P("evcharge_bridge_flush_rows_bucket{le=\"+Inf\"} %lld\n"
	  "evcharge_bridge_flush_rows_sum %lld\n"
	  "evcharge_bridge_flush_rows_count %lld\n", n, atomic_load(&flush_rows_sum), n);
	P("# HELP evcharge_bridge_flush_seconds Time from BEGIN to COMMIT of a flush.\n"
	  "# TYPE evcharge_bridge_flush_seconds histogram\n");
	for (size_t i = 0; i < NSECSB; i++)
		P("evcharge_bridge_flush_seconds_bucket{le=\"%g\"} %lld\n", secs_buckets[i], atomic_load(&secs_hist[i]));
	P("evcharge_bridge_flush_seconds_bucket{le=\"+Inf\"} %lld\n"
	  "evcharge_bridge_flush_seconds_sum %.6f\n"
	  "evcharge_bridge_flush_seconds_count %lld\n", n, (double) atomic_load(&flush_us_sum) / 1e6, n);
#undef P
	out[len] = '\0';
	return out;
}

static void
WriteAll(int fd, const char *s, size_t n)
{
	while (n > 0)
	{
		ssize_t		w = write(fd, s, n);

		if (w <= 0)
			return;
		s += w;
		n -= (size_t) w;
	}
}

/*
 * Whether a request carries "Authorization: Bearer <metrics token>" (any
 * case of the header's name); compared in constant time.
 */
static bool
Authorized(const char *req)
{
	const char *token = config.metrics_token;
	size_t		tlen;

	if (token == NULL)
		return true;
	tlen = strlen(token);
	for (const char *line = strstr(req, "\r\n"); line; line = strstr(line + 2, "\r\n"))
	{
		const char *v = line + 2;
		size_t		vlen;
		unsigned char diff = 0;

		if (strncasecmp(v, "Authorization:", 14) != 0)
			continue;
		v += 14;
		while (*v == ' ' || *v == '\t')
			v++;
		if (strncasecmp(v, "Bearer ", 7) != 0)
			return false;
		v += 7;
		vlen = strcspn(v, "\r\n");
		while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
			vlen--;
		if (vlen != tlen)
			return false;
		for (size_t i = 0; i < tlen; i++)
			diff |= (unsigned char) (v[i] ^ token[i]);
		return diff == 0;
	}
	return false;
}

/* One request: read its head (1 s at most), answer, close. */
static void
Serve(int fd)
{
	char		req[8192] = "";
	size_t		got = 0;
	struct pollfd pfd = {fd, POLLIN, 0};
	char		head[256];

	while (got < sizeof(req) - 1 && strstr(req, "\r\n\r\n") == NULL && strstr(req, "\n\n") == NULL)
	{
		ssize_t		r;

		if (poll(&pfd, 1, 1000) <= 0)
			break;
		r = read(fd, req + got, sizeof(req) - 1 - got);
		if (r <= 0)
			break;
		got += (size_t) r;
		req[got] = '\0';
	}
	req[got] = '\0';
	if (!Authorized(req))
	{
		static const char ua[] = "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"evcharge-bridge\"\r\n"
			"Content-Type: text/plain\r\nContent-Length: 41\r\nConnection: close\r\n\r\n"
			"a bearer token is required for /metrics\r\n";

		atomic_fetch_add(&unauthorized, 1);
		WriteAll(fd, ua, sizeof(ua) - 1);
	}
	else if (strncmp(req, "GET /metrics ", 13) == 0 || strncmp(req, "GET /metrics?", 13) == 0)
	{
		char	   *body = Render();
		size_t		blen = strlen(body);
		int			h = snprintf(head, sizeof(head),
								 "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
								 "Content-Length: %zu\r\nConnection: close\r\n\r\n", blen);

		WriteAll(fd, head, (size_t) h);
		WriteAll(fd, body, blen);
		free(body);
	}
	else
	{
		static const char nf[] = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 27\r\n"
			"Connection: close\r\n\r\nthe metrics are at /metrics";

		WriteAll(fd, nf, sizeof(nf) - 1);
	}
	close(fd);
}

static void *
MetricsThread(void *arg)
{
	while (!atomic_load(&stop_flag))
	{
		struct pollfd pfd = {listen_fd, POLLIN, 0};

		if (poll(&pfd, 1, 500) > 0)
		{
			int			fd = accept(listen_fd, NULL, NULL);

			if (fd >= 0)
				Serve(fd);
		}
	}
	return NULL;
}

int
MetricsStart(void)
{
	struct addrinfo hints,
			   *ai = NULL;
	char		port[16];
	int			one = 1;

	if (config.metrics_port == 0)
		return 0;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(port, sizeof(port), "%d", config.metrics_port);
	if (getaddrinfo(strcmp(config.metrics_host, "0.0.0.0") == 0 ? NULL : config.metrics_host, port, &hints, &ai) != 0 ||
		ai == NULL)
	{
		LogEvent(NULL, "metrics: cannot resolve %s", config.metrics_host);
		return -1;
	}
	listen_fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
	if (listen_fd < 0 ||
		setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
		bind(listen_fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(listen_fd, 16) != 0)
	{
		LogEvent(NULL, "metrics: cannot listen on %s:%d: %s", config.metrics_host, config.metrics_port,
				 strerror(errno));
		freeaddrinfo(ai);
		if (listen_fd >= 0)
			close(listen_fd);
		listen_fd = -1;
		return -1;
	}
	freeaddrinfo(ai);
	if (pthread_create(&thread, NULL, MetricsThread, NULL) != 0)
	{
		LogEvent(NULL, "metrics: cannot start its thread");
		return -1;
	}
	started = true;
	LogEvent(NULL, "metrics at http://%s:%d/metrics (%s)", config.metrics_host, config.metrics_port,
			 config.metrics_token ? "a bearer token required" : "no token: keep it on an internal address");
	return 0;
}

void
MetricsStop(void)
{
	if (!started)
		return;
	atomic_store(&stop_flag, true);
	pthread_join(thread, NULL);
	close(listen_fd);
	listen_fd = -1;
	started = false;
}
