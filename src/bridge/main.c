/*-------------------------------------------------------------------------
 *
 * main.c
 *	  evcharge-bridge: the entry point, logging and signals.
 *
 * It reads the settings (config.c), starts the metrics endpoint
 * (metrics.c), the registry thread (registry.c, waiting up to 10 s for its
 * first read), the database writer thread (writer.c) and the command
 * thread (command.c), and runs the WebSocket server (server.c) in the
 * foreground until SIGTERM or SIGINT; then the server stops reading, the
 * writer flushes and commits what it holds, the answers that commit allows
 * are sent, every socket is closed with 1001 (going away), the piles are
 * marked disconnected, and it exits 0.
 *
 *-------------------------------------------------------------------------
 */
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge.h"

volatile int stopping = 0;

/*
 * One line per event: UTC time, the pile (or "-") and what happened.  A
 * single fprintf, so lines of the two threads never interleave.
 */
void
LogEvent(const char *pile, const char *fmt,...)
{
	char		msg[1024];
	char		ts[40];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);	/* NOLINT(clang-analyzer-valist.Uninitialized): va_start above */
	va_end(ap);
	FormatIsoTime(NowUs(), ts, sizeof(ts));
	fprintf(stderr, "%s evcharge-bridge pile=%s %s\n", ts, pile ? pile : "-", msg);
}

/*
 * SIGTERM, SIGINT: stop.  The wake-up (lws_cancel_service, a write() to
 * the event loop's pipe) covers a signal that lands just before the loop
 * goes back to sleep.
 */
static void
OnSignal(int sig)
{
	stopping = 1;
	ServerWake();
}

int
main(int argc, char **argv)
{
	struct sigaction sa;
	sigset_t	stop_signals;
	int			rc;

	rc = ConfigParseArgs(argc, argv);
	if (rc == 1)
	{
		Usage();
		return 0;
	}
	if (rc != 0)
		return 2;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = OnSignal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (config.ocpp_port)
		LogEvent(NULL, "starting: ocpp ws://%s:%d/ocpp/<pile id>, flush every %d ms or %d messages, queue at most %d",
				 config.ocpp_host, config.ocpp_port, config.flush_ms, config.flush_rows, config.queue_max);
	else
		LogEvent(NULL, "starting: ykc tcp://%s:%d only, flush every %d ms or %d messages, queue at most %d",
				 config.ykc_host, config.ykc_port, config.flush_ms, config.flush_rows, config.queue_max);
	/*
	 * The threads start with SIGTERM and SIGINT blocked, so that a stop is
	 * delivered to the main thread, whose wait in lws_service() it
	 * interrupts; delivered to another thread it would leave the main loop
	 * asleep until the next event.
	 */
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGTERM);
	sigaddset(&stop_signals, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
	if (MetricsStart() != 0 || RegistryStart(10000) != 0 || WriterStart() != 0 || CommandsStart() != 0)
		return 1;
	pthread_sigmask(SIG_UNBLOCK, &stop_signals, NULL);
	rc = ServerRun();
	RegistryStop();
	MetricsStop();
	LogEvent(NULL, rc == 0 ? "stopped" : "stopped after an error");
	return rc == 0 ? 0 : 1;
}
