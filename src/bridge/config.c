/*-------------------------------------------------------------------------
 *
 * config.c
 *	  The bridge's settings: defaults, the config file (key = value lines,
 *	  # comments) and the command-line flags, which override the file.
 *
 * Every setting but bridge_id (a name), tls_cert and tls_key (files that
 * must be readable), metrics ([HOST:]PORT, loopback by default) and
 * metrics_token_file (a file whose first line is the token; the
 * environment's EVCHARGE_BRIDGE_METRICS_TOKEN otherwise, so the secret is
 * never on the command line) is an integer with a range; a value outside
 * it, an unknown key or flag stops the bridge at start with a message
 * naming it, never a silent default.  docs/bridge.md lists them.
 *
 *-------------------------------------------------------------------------
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge.h"

BridgeConfig config = {
	.db = NULL,
	.ocpp_host = "",
	.ocpp_port = 0,
	.flush_ms = 20,
	.flush_rows = 5000,
	.queue_max = 100000,
	.heartbeat_interval = 60,
	.max_message_bytes = 65536,
	.rate_per_second = 20,
	.rate_burst = 200,
	.db_retry_max_ms = 5000,
	.ykc_utc_offset_min = 480,
	.ykc_model_recheck_s = 300,
};

typedef struct IntSetting
{
	const char *name;			/* in the file; the flag is --name with - for _ */
	int		   *value;
	int			min;
	int			max;
} IntSetting;

static IntSetting settings[] = {
	{"flush_ms", &config.flush_ms, 1, 10000},
	{"flush_rows", &config.flush_rows, 1, 1000000},
	{"queue_max", &config.queue_max, 10, 10000000},
	{"heartbeat_interval", &config.heartbeat_interval, 10, 86400},
	{"max_message_bytes", &config.max_message_bytes, 1024, 16 * 1024 * 1024},
	{"rate_per_second", &config.rate_per_second, 1, 100000},
	{"rate_burst", &config.rate_burst, 1, 1000000},
	{"db_retry_max_ms", &config.db_retry_max_ms, 100, 600000},
	{"ykc_utc_offset_min", &config.ykc_utc_offset_min, -720, 840},
	{"ykc_model_recheck_s", &config.ykc_model_recheck_s, 5, 86400},
};

void
Usage(void)
{
	fprintf(stderr,
			"evcharge-bridge " BRIDGE_VERSION ": OCPP 1.6J and YKC charge points into evcharge\n"
			"\n"
			"usage: evcharge-bridge --db CONNINFO {--ocpp HOST:PORT | --ykc HOST:PORT | both} [--config FILE] [options]\n"
			"\n"
			"  --db CONNINFO          libpq connection string of the evcharge database\n"
			"  --ocpp HOST:PORT       where charge points connect: ws://HOST:PORT/ocpp/<pile id>\n"
			"  --ykc HOST:PORT        where YKC (云快充 1.5/1.6) piles connect over TCP\n"
			"  --ykc-utc-offset-min N the YKC piles' clock, minutes east of UTC (480: +08:00)\n"
			"  --ykc-model-recheck-s N  look at each YKC pile's billing model this often (300)\n"
			"  --config FILE          settings, one \"name = value\" a line (flags override)\n"
			"  --flush-ms N           flush buffered rows at least every N ms (20)\n"
			"  --flush-rows N         or as soon as N messages wait (5000)\n"
			"  --queue-max N          messages held at most; then sockets are not read (100000)\n"
			"  --heartbeat-interval N seconds, told to piles in BootNotification (60)\n"
			"  --max-message-bytes N  larger frames close the connection with 1009 (65536)\n"
			"  --rate-per-second N    messages a connection may send per second (20)\n"
			"  --rate-burst N         and in a burst (200)\n"
			"  --db-retry-max-ms N    longest wait between reconnect attempts (5000)\n"
			"  --bridge-id NAME       this bridge in evcharge.ocpp_connection (HOSTNAME:PORT,\n"
			"                         the OCPP port, or the YKC one without --ocpp)\n"
			"  --tls-cert FILE        PEM certificate (chain): serve wss:// (security profile 2)\n"
			"  --tls-key FILE         its PEM private key\n"
			"  --metrics [HOST:]PORT  serve Prometheus metrics at http://HOST:PORT/metrics (HOST 127.0.0.1)\n"
			"  --metrics-token-file FILE  /metrics requires \"Authorization: Bearer <first line of FILE>\"\n"
			"                         (or EVCHARGE_BRIDGE_METRICS_TOKEN in the environment)\n"
			"  --help                 this text\n"
			"\n"
			"Runs in the foreground and logs one line per event to stderr; SIGTERM\n"
			"flushes, closes every socket with 1001 and exits 0.  See docs/bridge.md.\n");
}

/*
 * A secret of 16 to 200 printable characters, without spaces: the first
 * line of a file (metrics_token_file), or an environment variable.
 */
static int
SetToken(const char *token, const char *where, const char *what)
{
	size_t		n = strlen(token);

	if (n < 16 || n > 200)
	{
		fprintf(stderr, "evcharge-bridge: %s: the %s holds %zu characters: a token has 16 to 200\n", where, what, n);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if (token[i] <= ' ' || token[i] > '~')
		{
			fprintf(stderr, "evcharge-bridge: %s: the %s holds a character that is not printable ASCII or is a space\n",
					where, what);
			return -1;
		}
	free((void *) config.metrics_token);
	config.metrics_token = strdup(token);
	return config.metrics_token ? 0 : -1;
}

static int
ReadToken(const char *path, const char *where, const char *what)
{
	FILE	   *f = fopen(path, "r");
	char		line[256] = "";

	if (f == NULL)
	{
		fprintf(stderr, "evcharge-bridge: %s: %s \"%s\" cannot be read: %s\n", where, what, path, strerror(errno));
		return -1;
	}
	if (fgets(line, sizeof(line), f) == NULL)
		line[0] = '\0';
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	return SetToken(line, where, what);
}

static int	ParseHostPortInto(const char *flag, const char *arg, char *host, size_t hostlen, int *port_out);

/* Set one setting by name; 0 on success. */
static int
SetSetting(const char *name, const char *value, const char *where)
{
	if (name == NULL || value == NULL)
		return -1;
	if (strcmp(name, "bridge_id") == 0)
	{
		size_t		n = strlen(value);

		if (n == 0 || n >= sizeof(config.bridge_id))
		{
			fprintf(stderr, "evcharge-bridge: %s: invalid value for bridge_id: \"%s\" (1 to %zu characters)\n",
					where, value, sizeof(config.bridge_id) - 1);
			return -1;
		}
		memcpy(config.bridge_id, value, n + 1);
		return 0;
	}
	if (strcmp(name, "metrics") == 0)
	{
		char		hp[160];

		/* A port alone (or :PORT) listens on loopback. */
		if (strchr(value, ':') == NULL || value[0] == ':')
		{
			snprintf(hp, sizeof(hp), "127.0.0.1:%s", value[0] == ':' ? value + 1 : value);
			value = hp;
		}
		return ParseHostPortInto(where, value, config.metrics_host, sizeof(config.metrics_host),
								 &config.metrics_port);
	}
	if (strcmp(name, "ykc") == 0)
		return ParseHostPortInto(where, value, config.ykc_host, sizeof(config.ykc_host), &config.ykc_port);
	if (strcmp(name, "metrics_token_file") == 0)
		return ReadToken(value, where, "metrics_token_file");
	if (strcmp(name, "tls_cert") == 0 || strcmp(name, "tls_key") == 0)
	{
		char	   *copy = strdup(value);

		if (copy == NULL || value[0] == '\0' || access(value, R_OK) != 0)
		{
			fprintf(stderr, "evcharge-bridge: %s: %s \"%s\" cannot be read (a PEM file is expected)\n",
					where, name, value);
			free(copy);
			return -1;
		}
		if (name[4] == 'c')
			config.tls_cert = copy;
		else
			config.tls_key = copy;
		return 0;
	}
	for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
	{
		if (strcmp(settings[i].name, name) == 0)
		{
			char	   *end;
			long		v;

			errno = 0;
			v = strtol(value, &end, 10);
			if (errno != 0 || end == value || *end != '\0' || v < settings[i].min || v > settings[i].max)
			{
				fprintf(stderr, "evcharge-bridge: %s: invalid value for %s: \"%s\" (an integer from %d to %d)\n",
						where, name, value, settings[i].min, settings[i].max);
				return -1;
			}
			*settings[i].value = (int) v;
			return 0;
		}
	}
	fprintf(stderr, "evcharge-bridge: %s: unknown setting \"%s\"\n", where, name);
	return -1;
}

static char *
Trim(char *s)
{
	char	   *e;

	while (isspace((unsigned char) *s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char) e[-1]))
		*--e = '\0';
	return s;
}

/* Read a config file: "name = value" lines, # comments. */
static int
ReadConfigFile(const char *path)
{
	FILE	   *f = fopen(path, "r");
	char		line[1024];
	int			lineno = 0;

	if (f == NULL)
	{
		fprintf(stderr, "evcharge-bridge: cannot open config file \"%s\": %s\n", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f))
	{
		char	   *hash = strchr(line, '#');
		char	   *eq;
		char	   *s;
		char		where[1100];

		lineno++;
		if (hash)
			*hash = '\0';
		s = Trim(line);
		if (*s == '\0')
			continue;
		snprintf(where, sizeof(where), "%s:%d", path, lineno);
		eq = strchr(s, '=');
		if (eq == NULL)
		{
			fprintf(stderr, "evcharge-bridge: %s: expected \"name = value\", found \"%s\"\n", where, s);
			fclose(f);
			return -1;
		}
		*eq = '\0';
		if (SetSetting(Trim(s), Trim(eq + 1), where) != 0)
		{
			fclose(f);
			return -1;
		}
	}
	fclose(f);
	return 0;
}

/* HOST:PORT into host and *port_out (--ocpp, --metrics). */
static int
ParseHostPortInto(const char *flag, const char *arg, char *host, size_t hostlen, int *port_out)
{
	const char *colon;
	char	   *end;
	long		port;

	if (arg == NULL)
		return -1;
	colon = strrchr(arg, ':');

	if (colon == NULL || colon == arg || (size_t) (colon - arg) >= hostlen)
		goto bad;
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port < 1 || port > 65535)
		goto bad;
	memcpy(host, arg, (size_t) (colon - arg));
	host[colon - arg] = '\0';
	*port_out = (int) port;
	return 0;
bad:
	fprintf(stderr, "evcharge-bridge: invalid %s \"%s\": expected HOST:PORT, e.g. 0.0.0.0:8180\n", flag, arg);
	return -1;
}

static int
ParseHostPort(const char *arg)
{
	return ParseHostPortInto("--ocpp", arg, config.ocpp_host, sizeof(config.ocpp_host), &config.ocpp_port);
}

/*
 * Read the flags (and the config file they name).  Returns 0 to run, 1
 * when --help was asked for, -1 on an error (already reported).
 */
int
ConfigParseArgs(int argc, char **argv)
{
	const char *config_file = NULL;

	/* The config file first, so that flags override it. */
	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return 1;
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			config_file = argv[++i];
	}
	if (config_file && ReadConfigFile(config_file) != 0)
		return -1;
	for (int i = 1; i < argc; i++)
	{
		const char *a = argv[i];

		if (a == NULL)
			break;
		if (strncmp(a, "--", 2) != 0 || i + 1 >= argc)
		{
			fprintf(stderr, "evcharge-bridge: unexpected argument \"%s\" (try --help)\n", a);
			return -1;
		}
		if (strcmp(a, "--db") == 0)
			config.db = argv[++i];
		else if (strcmp(a, "--ocpp") == 0)
		{
			if (ParseHostPort(argv[++i]) != 0)
				return -1;
		}
		else if (strcmp(a, "--config") == 0)
			i++;
		else
		{
			char		name[64];
			size_t		n = strlen(a + 2);

			if (n >= sizeof(name))
				n = sizeof(name) - 1;
			memcpy(name, a + 2, n);
			name[n] = '\0';
			for (char *p = name; *p; p++)
				if (*p == '-')
					*p = '_';
			if (SetSetting(name, argv[++i], a) != 0)
				return -1;
		}
	}
	if (config.db == NULL || (config.ocpp_port == 0 && config.ykc_port == 0))
	{
		fprintf(stderr, "evcharge-bridge: --db and at least one of --ocpp and --ykc are required (try --help)\n");
		return -1;
	}
	{
		const char *env = getenv("EVCHARGE_BRIDGE_METRICS_TOKEN");

		if (config.metrics_token == NULL && env != NULL &&
			SetToken(env, "environment", "EVCHARGE_BRIDGE_METRICS_TOKEN") != 0)
			return -1;
	}
	if ((config.tls_cert == NULL) != (config.tls_key == NULL))
	{
		fprintf(stderr, "evcharge-bridge: --tls-cert and --tls-key go together (wss:// needs both)\n");
		return -1;
	}
	if (config.tls_cert != NULL && config.ocpp_port == 0)
	{
		fprintf(stderr, "evcharge-bridge: --tls-cert serves wss:// to OCPP charge points: it needs --ocpp (YKC is plain TCP)\n");
		return -1;
	}
	if (config.bridge_id[0] == '\0')
	{
		char		host[40] = "localhost";

		(void) gethostname(host, sizeof(host) - 1);
		host[sizeof(host) - 1] = '\0';
		snprintf(config.bridge_id, sizeof(config.bridge_id), "%s:%d", host,
				 config.ocpp_port ? config.ocpp_port : config.ykc_port);
	}
	return 0;
}
