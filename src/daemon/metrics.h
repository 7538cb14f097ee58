/* SPDX-License-Identifier: MIT */
/*
 * The daemon's counters, and an HTTP endpoint that serves them in the
 * Prometheus text exposition format (version 0.0.4).
 *
 * The counters are one process-wide structure: the daemon is one event
 * loop, and every count is taken on the loop's thread, so a plain global
 * needs no locks, and the hooks in the relay and the channel stay one line
 * each. Counters only grow (they are read as rates); gauges are read from
 * the flow table and the channel when asked.
 *
 * The endpoint (`--metrics ADDR:PORT`) is a TCP listener in the same loop,
 * speaking just enough HTTP/1.0: GET /metrics answers the text, a request
 * that is not HTTP gets 400, anything else 404. Requests are bounded in size
 * and time, and connections in number, so a scraper (or anyone who can
 * reach the port) cannot make the daemon hold more than a few pages.
 */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sluice/protocol.h"

enum metric {
	M_FLOWS_OPENED, /* connections taken in */
	M_FLOWS_CLOSED, /* flows ended, by FIN or reset */
	M_FLOWS_RESET,	/* flows ended with RST to both sides */
	M_BYTES_OUT,	/* written to the server side */
	M_BYTES_IN,	/* written to the application side */
	M_READ_OUT,	/* read from the application side */
	M_READ_IN,	/* read from the server side */
	M_FILTER_DROPS, /* filter connections dropped, for any reason */
	M_STALLS,	/* a flow waited for room on its filter's channel */
	M_WINDOW_FULL,	/* reading a source stopped at a full window */
	M_SHM_INLINE,	/* DATA bytes in frames to a filter with shared memory */
	M_COUNT,
};

struct metrics {
	uint64_t c[M_COUNT];
	uint64_t verdicts[SLUICE_VERDICT_OP_MAX + 1];	/* by SLUICE_VERDICT_* */
	uint64_t open_verdicts[SLUICE_OPEN_IGNORE + 1]; /* by SLUICE_OPEN_* */
	uint64_t started_ms;				/* CLOCK_MONOTONIC, for uptime */
	uint64_t started_unix;				/* wall clock seconds */
};

/*
 * Each thread counts in its own struct (a worker's is in its struct daemon)
 * with relaxed atomic stores, which cost what plain ones do; a scrape sums
 * them all (metrics_sum).
 */
extern __thread struct metrics *metrics_here;

#define METRIC_ADD(field, n)                                                                       \
	__atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (n),              \
			 __ATOMIC_RELAXED)

struct sluiced;

/* Records the start time, and makes the calling thread count into m. Call
 * once, first thing, with the main thread's. */
void metrics_init(struct metrics *m);

static inline void metrics_inc(enum metric m)
{
	METRIC_ADD(metrics_here->c[m], 1);
}

static inline void metrics_add(enum metric m, uint64_t n)
{
	METRIC_ADD(metrics_here->c[m], n);
}

/* A flow ended; reset: with RST to both sides. */
static inline void metrics_flow_closed(bool reset)
{
	METRIC_ADD(metrics_here->c[M_FLOWS_CLOSED], 1);
	METRIC_ADD(metrics_here->c[M_FLOWS_RESET], reset);
}

/* Bytes written to the sink of direction dir (SLUICE_DIR_*). */
static inline void metrics_written(int dir, uint64_t n)
{
	metrics_add(dir == SLUICE_DIR_OUT ? M_BYTES_OUT : M_BYTES_IN, n);
}

/* Bytes read from the source of direction dir. */
static inline void metrics_read(int dir, uint64_t n)
{
	metrics_add(dir == SLUICE_DIR_OUT ? M_READ_OUT : M_READ_IN, n);
}

static inline void metrics_verdict(unsigned op)
{
	if (op <= SLUICE_VERDICT_OP_MAX)
		METRIC_ADD(metrics_here->verdicts[op], 1);
}

static inline void metrics_open_verdict(unsigned action)
{
	if (action <= SLUICE_OPEN_IGNORE)
		METRIC_ADD(metrics_here->open_verdicts[action], 1);
}

/* Every thread's counts added up, with the start times. */
void metrics_sum(const struct sluiced *top, struct metrics *ret);

struct metrics_server;

/*
 * Writes the exposition text for d into buf. Returns its length, or
 * -ENOSPC when it does not fit.
 */
int metrics_format(struct sluiced *top, char *buf, size_t len);

/*
 * Listens on addr and serves GET /metrics in d's loop. Returns 0 or -errno,
 * having logged nothing: the caller says what failed.
 */
int metrics_server_new(struct sluiced *top, const struct sockaddr_storage *addr,
		       struct metrics_server **ret_server);

/* Opens d->metrics when --metrics was given, and logs what it did.
 * Returns 0 or -errno. */
int metrics_open(struct sluiced *top);

/* Closes the listener and every connection. Accepts NULL. */
void metrics_server_free(struct metrics_server *s);

#endif
