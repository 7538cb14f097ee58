/* SPDX-License-Identifier: MIT */
/*
 * The filter channel: a Unix socket that filter processes connect to, and
 * one client per connection. Frames to a client are queued in its output
 * buffer and written after each batch of events. DATA frames are admitted
 * only while that buffer is under --max-inflight bytes; a flow that finds it
 * full waits, with its sources unread, until the filter has taken the bytes.
 * Control frames (OPEN, EOF, CLOSE, ERROR) are always queued: there are a
 * bounded number of them per flow, so they cannot grow without bound.
 */
#ifndef SLUICE_CHANNEL_H
#define SLUICE_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct arena;
struct daemon;
struct channel;
struct client;
struct flow;
struct frame_subscribe;

/* A worker's filter clients. The filter socket itself is the door's
 * (door.h), in the main thread. */
int channel_new(struct daemon *d, struct channel **ret_channel);
/* Closes every client (their flows go on unfiltered). */
void channel_free(struct channel *ch);

/* Makes fd, a connection accepted on the filter socket from the peer cred
 * (counted in top->clients already), a filter client of this worker. */
struct ucred;
void channel_take(struct channel *ch, int fd, const struct ucred *cred);

/*
 * The filter a new flow goes to: the next, in turn, of those that want its
 * destination port; NULL when none does. *ret_none tells whether no filter
 * is connected at all (then, under fail-open, that is logged once until a
 * filter connects).
 */
struct client *channel_pick(struct channel *ch, const struct flow *f, bool *ret_none);

/*
 * Makes c the filter of f and tells it with an OPEN frame. Directions c did
 * not subscribe to pass unfiltered from the start. When can_decide and c
 * asked for connect-time verdicts, f->awaiting_verdict is set and the OPEN
 * says so.
 */
void channel_attach(struct client *c, struct flow *f, bool can_decide);

/* Some connected filter wants connect-time verdicts. */
bool channel_verdicts_possible(const struct channel *ch);

/* Forgets f without a word to its filter (the filter chose to ignore it). */
void channel_forget(struct flow *f);

/* Tells f's filter that f is gone (CLOSE with reason, an errno or 0) and
 * forgets f. Does nothing for an unfiltered flow. */
void channel_detach(struct flow *f, uint32_t reason);

/*
 * The most data bytes f may send its filter now. 0 when the output buffer
 * is full: f is then queued and woken (relay_wake) when there is room.
 */
size_t channel_data_room(struct flow *f);

/* Where f's rings should be taken from: the forward area of its filter's
 * shared memory, or NULL (no filter, or one without shared memory). */
struct arena *channel_arena(const struct flow *f);

/* Queues a DATA frame with len bytes gathered from iov. len must not exceed
 * what channel_data_room() allowed. flags: SLUICE_DATA_F_*. */
void channel_send_data(struct flow *f, uint8_t dir, uint64_t offset, const struct iovec *iov,
		       int iovcnt, size_t len, uint8_t flags);

void channel_send_eof(struct flow *f, uint8_t dir, uint64_t offset);

/* Once a second: drops filters that stopped answering (--verdict-timeout). */
void channel_tick(struct channel *ch);

/* A short name for logs: "filter 3 (passthrough)". */
const char *channel_client_name(const struct client *c);

/* What the control socket shows of a filter client. */
struct channel_client_info {
	unsigned id;
	pid_t pid;
	uid_t uid;
	const char *name;		   /* from its HELLO; "" before it */
	bool ready;			   /* HELLO exchanged */
	unsigned flows;			   /* flows it filters now */
	size_t queued;			   /* bytes queued to it and not yet sent */
	uint8_t dirs;			   /* SLUICE_SUB_* it wants */
	const struct frame_subscribe *sub; /* the ports it wants (none: every port) */
};

/* The clients of ch, newest first: NULL gives the first; NULL after the last. */
const struct client *channel_next_client(const struct channel *ch, const struct client *c);
void channel_client_info(const struct client *c, struct channel_client_info *ret);

/* The name of the filter an orphaned flow waits for (--filter-grace-seconds),
 * or NULL. */
const char *channel_orphan_name(const struct flow *f);

#endif
