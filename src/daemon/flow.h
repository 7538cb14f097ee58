/* SPDX-License-Identifier: MIT */
/*
 * Flows and the flow table. A flow is one relayed TCP connection: the
 * application's socket (accepted), the server's socket (connected by us),
 * and two directions. Its id is 64 bits, opaque to filters: the low 24 bits
 * are a table slot, the high 40 a generation drawn from a counter that only
 * grows, so an id is never reused and a stale id never names a new flow.
 */
#ifndef SLUICE_FLOW_H
#define SLUICE_FLOW_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "loop.h"
#include "sluice/protocol.h"
#include "stream.h"

#define FLOW_SLOT_BITS 24
#define FLOW_SLOT_MAX  (1u << FLOW_SLOT_BITS)

struct daemon;
struct client;

enum flow_side {
	SIDE_APP = 0,	 /* the accepted socket; source of OUT, sink of IN */
	SIDE_SERVER = 1, /* the connected socket; source of IN, sink of OUT */
};

struct flow_sock {
	struct io io;
	struct flow *flow;
	bool write_blocked; /* last write hit EAGAIN: wait for EPOLLOUT */
};

struct flow_dir {
	struct stream st;
	/*
	 * A direction that no filter sees moves through a pipe with
	 * splice(2), never copied to user space. Bytes in the pipe are held
	 * against the window like bytes in the ring; the two never hold
	 * bytes at the same time, so order is kept.
	 */
	int pipe[2];	 /* -1 until first needed */
	size_t pipe_cap; /* the pipe's size */
	size_t in_pipe;	 /* bytes read into it, not yet written out */
	/* Bytes to offer again (after a peek, or to a filter taking the flow
	 * back), sent in frames as the channel has room; an EOF to tell
	 * after them. */
	uint64_t reoffer_next, reoffer_end;
	bool eof_after_reoffer;
};

/* The process that owns the application's socket, where known. */
struct flow_ident {
	bool has_uid, has_pid;
	uint32_t uid, pid;
	char comm[17];
};

enum flow_state {
	FLOW_PENDING, /* waiting for its owner's identity or the filter's verdict */
	FLOW_CONNECTING,
	FLOW_RELAYING,
	FLOW_DEAD, /* closed; freed after the current batch */
};

struct flow {
	uint64_t id;
	struct daemon *d;
	enum flow_state state;
	struct flow_sock sock[2];		/* by enum flow_side */
	struct flow_dir dir[2];			/* by enum sluice_dir */
	struct client *filter;			/* NULL: unfiltered */
	struct flow *filter_prev, *filter_next; /* the filter's flows */
	struct flow *wait_next;			/* waiting for channel space */
	struct orphans *orphans;		/* held for its filter to come back */
	bool waiting;
	struct sockaddr_storage app_addr, dst_addr;
	struct flow_ident ident;
	bool admitted;	       /* a filter (or none) was chosen; data may move */
	bool awaiting_verdict; /* the filter decides at connect time */
	bool transparent;      /* connect from the application's address */
	struct timer timer;    /* how long a pending flow waits */
	uint64_t started_ms;
	uint64_t active_ms; /* last byte read or written, for --idle-timeout */
	struct flow *dead_next;
};

/* "slot:generation", as logs print ids. */
#define FLOW_ID_FMT "%u:%llu"
#define FLOW_ID_ARGS(id)                                                                           \
	(unsigned)((id) & (FLOW_SLOT_MAX - 1)), (unsigned long long)((id) >> FLOW_SLOT_BITS)

struct flow_table;

int flow_table_new(struct daemon *d, uint32_t max_flows, struct flow_table **ret_table);
/* Closes every flow (sockets closed, no frames sent) and frees the table. */
void flow_table_free(struct flow_table *t);

/* A new flow with an id and zeroed state, or NULL (-errno in *ret_err:
 * -EMFILE for the flow limit, -ENOMEM). */
struct flow *flow_new(struct flow_table *t, int *ret_err);

/* Marks f dead and queues it to be freed after the current batch. */
void flow_release(struct flow_table *t, struct flow *f);

/* The live flow with this id, or NULL. */
struct flow *flow_lookup(const struct flow_table *t, uint64_t id);

/*
 * Whether an id could have been handed out at or after generation `since`:
 * its slot is in range and its generation lies in [since, next). Used to
 * tell a late verdict for a closed flow from an id never given.
 */
bool flow_id_plausible(const struct flow_table *t, uint64_t id, uint64_t since);

/* The generation the next flow will get. */
uint64_t flow_table_next_gen(const struct flow_table *t);

uint32_t flow_table_count(const struct flow_table *t);

/*
 * The live flow in the lowest slot at or after *cursor (start at 0), or
 * NULL; *cursor moves past it. For walks that span event batches (the
 * control socket's flow list): flows opened or closed in between may or may
 * not be seen, but none is seen twice.
 */
struct flow *flow_table_next(const struct flow_table *t, uint32_t *cursor);

/* Calls fn for every live flow; fn may release the flow it is given. */
void flow_table_foreach(struct flow_table *t, void (*fn)(struct flow *f, void *arg), void *arg);

#endif
