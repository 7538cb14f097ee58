/* SPDX-License-Identifier: MIT */
/*
 * The daemon's state. The process (struct sluiced) runs one main thread
 * (signals, the filter socket's door, the control socket, metrics, the
 * nftables rules) and --workers event-loop threads (struct daemon, one
 * each). A worker owns its flows from accept to close and the filter
 * connections that serve them, so nothing on the data path is shared or
 * locked; what threads share is in struct sluiced, read-only after start
 * or atomic.
 */
#ifndef SLUICE_DAEMON_H
#define SLUICE_DAEMON_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "inbox.h"
#include "listener.h"
#include "loop.h"
#include "metrics.h"

struct flow_table;
struct channel;
struct control;
struct metrics_server;
struct backend;
struct door;

/* One event-loop thread and everything it owns. */
struct daemon {
	struct config cfg; /* the process's, copied */
	struct sluiced *top;
	unsigned index; /* 0 .. nworkers - 1; HELLO says index + 1 */
	struct loop *loop;
	struct inbox inbox;
	pthread_t thread;
	bool started;
	struct flow_table *flows;
	struct channel *channel;
	const struct backend *backend; /* worker 0's, which opened the listeners */
	void *backend_state;
	struct listener borrowed[2]; /* the other workers': worker 0's sockets */
	unsigned nborrowed;
	struct timer tick; /* housekeeping, once a second */
	struct procinfo *procinfo;
	bool draining;
	struct timer drain_timer;
	struct metrics metrics;
	/*
	 * Read by other threads (relaxed atomics): the destination ports some
	 * ready filter of this worker wants, one bit per port, rebuilt when
	 * its filters change; its open filter connections; its flows.
	 */
	uint64_t wanted[65536 / 64];
	unsigned nclients;
	unsigned nflows;
};

struct sluiced {
	struct config cfg;
	struct loop *loop; /* the main thread's */
	struct inbox inbox;
	struct daemon **workers;
	unsigned nworkers;
	unsigned running; /* workers whose loop has not ended */
	struct door *door;
	struct control *control;	       /* NULL: none (see control_open) */
	struct metrics_server *metrics_server; /* NULL: no --metrics */
	struct io signal_io;
	struct timer drain_timer;
	bool draining;
	struct metrics metrics; /* the main thread's own counts */
	/* Shared by the workers (atomics). */
	uint64_t next_gen;     /* flow generations, unique across workers */
	unsigned flows;	       /* for --max-flows */
	unsigned clients;      /* open filter connections, for --max-filters */
	unsigned next_client;  /* filter connection ids */
	unsigned ready;	       /* filters past HELLO, all workers */
	bool warned_no_filter; /* "no filter connected" was logged */
	unsigned next_worker;  /* where a moved flow goes next */
};

/* Relaxed atomic access to the shared counters above. */
#define SHARED_LOAD(x)	   __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define SHARED_STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define SHARED_ADD(x, v)   __atomic_add_fetch(&(x), (v), __ATOMIC_RELAXED)
#define SHARED_SUB(x, v)   __atomic_sub_fetch(&(x), (v), __ATOMIC_RELAXED)

/* Flows open now, all workers' (each publishes its count). */
static inline unsigned sluiced_flows_open(const struct sluiced *top)
{
	unsigned n = 0;

	for (unsigned i = 0; i < top->nworkers; i++)
		n += SHARED_LOAD(top->workers[i]->nflows);
	return n;
}

/* Whether some ready filter of worker d wants destination port p. */
static inline bool worker_wants(const struct daemon *d, uint16_t p)
{
	return SHARED_LOAD(d->wanted[p / 64]) >> (p % 64) & 1;
}

#endif
