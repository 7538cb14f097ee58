/* SPDX-License-Identifier: MIT */
/*
 * What every example filter would otherwise write again: stopping on a
 * signal, reporting bad usage, the lines printed on connecting, on a refused
 * verdict and when the run ends, formatting an address or a flow. It calls
 * no libsluice function, so that each example still shows the calls that
 * matter: sluice_client_connect(), its callbacks and verdicts, and the loop
 * around sluice_client_run().
 *
 * Define PROG, the program's name that starts each line printed here, before
 * including this file. What is printed here goes to stderr.
 */
#ifndef SLUICE_EXAMPLE_H
#define SLUICE_EXAMPLE_H

#ifndef PROG
#error "define PROG (\"sluice-NAME\") before including example.h"
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <sluice/sluice.h>

/* Set by SIGINT and SIGTERM once example_catch_signals() has run. */
static volatile sig_atomic_t example_stop;

static inline void example_on_signal(int sig)
{
	/* The handler's running is what makes poll() in sluice_client_run() return -EINTR. */
	example_stop = 1;
}

/*
 * SIGINT and SIGTERM set example_stop. No SA_RESTART: the signal must end
 * the wait in sluice_client_run() (or the program's own poll()), which then
 * returns -EINTR and the program sees example_stop.
 */
static inline void example_catch_signals(void)
{
	struct sigaction sa = { .sa_handler = example_on_signal };

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/*
 * A command line that cannot be run: prints "PROG: MESSAGE" (nothing when
 * fmt is NULL, for errors getopt_long() has printed already), then the short
 * usage. Returns 2, the exit status for bad usage.
 */
static inline int __attribute__((format(printf, 2, 3)))
example_usage_error(void (*usage)(FILE *f, bool full), const char *fmt, ...)
{
	va_list ap;

	if (fmt) {
		fputs(PROG ": ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	usage(stderr, false);
	return 2;
}

/* After sluice_client_connect() failed with r. Returns 1, the exit status. */
static inline int example_cannot_connect(const struct sluice_client_opts *opts, int r)
{
	fprintf(stderr, PROG ": cannot connect to %s: %s\n", opts->path, strerror(-r));
	return 1;
}

/* "PROG: connected to PATH", the line scripts wait for before they start flows. */
static inline void example_connected(const struct sluice_client_opts *opts)
{
	fprintf(stderr, PROG ": connected to %s\n", opts->path);
	fflush(stderr);
}

/*
 * After the run loop returned r: a signal (-EINTR) is a clean stop and
 * returns 0; anything else is said on stderr and returned as it is, so that
 * the program exits with 1.
 */
static inline int example_run_ended(int r)
{
	if (r == -EINTR)
		return 0;
	if (r == -ECONNRESET)
		fprintf(stderr, PROG ": daemon closed the channel\n");
	else
		fprintf(stderr, PROG ": %s\n", strerror(-r));
	return r;
}

/*
 * The on_error callback for a filter with nothing to add: prints what the
 * daemon refused. A verdict that crossed its flow's close on the way is a
 * normal race (the filter may answer after the flow ended, or from a timer),
 * so that error is not printed.
 */
static inline void example_on_error(struct sluice_client *c, uint64_t flow, uint32_t code,
				    const char *text, void *user)
{
	if (code == SLUICE_ERR_FLOW_CLOSED)
		return;
	fprintf(stderr, PROG ": daemon refused a verdict for flow %016llx: error %u: %s\n",
		(unsigned long long)flow, code, text);
}

/* An address as "1.2.3.4:80" or "[::1]:80"; INET6_ADDRSTRLEN + 8 bytes hold any. */
static inline const char *example_format_addr(const struct sockaddr_storage *a, char *buf,
					      size_t len)
{
	char host[INET6_ADDRSTRLEN];

	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)a;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(sin6->sin6_port));
	} else {
		const struct sockaddr_in *sin = (const void *)a;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(sin->sin_port));
	}
	return buf;
}

/* Room for example_format_flow(): two addresses, two numbers and a comm. */
#define EXAMPLE_FLOW_LEN (2 * (INET6_ADDRSTRLEN + 8) + 2 * 10 + SLUICE_COMM_MAX + 32)

/*
 * A flow as "SRC -> DST uid U pid P comm C", with "-" for what the daemon
 * does not know (the program that opened the flow is known in intercept
 * mode only, and not always there).
 */
static inline const char *example_format_flow(const struct sluice_flow_info *info, char *buf,
					      size_t len)
{
	char src[INET6_ADDRSTRLEN + 8], dst[INET6_ADDRSTRLEN + 8], uid[16] = "-", pid[16] = "-";

	if (info->has_uid)
		snprintf(uid, sizeof(uid), "%u", info->uid);
	if (info->has_pid)
		snprintf(pid, sizeof(pid), "%u", info->pid);
	snprintf(buf, len, "%s -> %s uid %s pid %s comm %s",
		 example_format_addr(&info->src, src, sizeof(src)),
		 example_format_addr(&info->dst, dst, sizeof(dst)), uid, pid,
		 info->has_pid && info->comm[0] ? info->comm : "-");
	return buf;
}

#endif
