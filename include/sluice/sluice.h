/* SPDX-License-Identifier: MIT */
/*
 * libsluice: write a sluice filter in a few lines.
 *
 * A filter connects to sluiced's filter socket, is told about each new flow,
 * is offered the bytes of both directions, and answers with verdicts named by
 * absolute byte offsets. The library frames, buffers and dispatches; it never
 * prints and never calls exit().
 *
 * Errors: every function that can fail returns a negative errno value
 * (-EPROTO for a protocol violation by the daemon, -ECONNRESET when the
 * daemon went away) and 0 or a positive value on success.
 *
 * Threads: a struct sluice_client is not thread-safe; use it from one thread,
 * or serialise calls yourself. Distinct clients are independent.
 *
 * Verdicts may be given from inside a callback or later (for example after a
 * timer), in any order across flows; several chunks of one flow may be
 * offered before the first one is answered. Verdicts are buffered and sent
 * when the loop runs or sluice_client_flush() is called.
 */
#ifndef SLUICE_SLUICE_H
#define SLUICE_SLUICE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "sluice/protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SLUICE_DEFAULT_SOCKET "/run/sluice/filter.sock"

struct sluice_client;

/* What the daemon knows of a flow when it opens. Valid during on_open only. */
struct sluice_flow_info {
	uint64_t id;
	struct sockaddr_storage src; /* the application's address */
	struct sockaddr_storage dst; /* where it was connecting to */
	int has_uid;
	uint32_t uid;
	int has_pid;
	uint32_t pid;
	char comm[SLUICE_COMM_MAX + 1]; /* NUL-terminated, empty if unknown */
	uint32_t window;		/* bytes the daemon holds per direction */
	/* The daemon waits for sluice_allow/deny/redirect/ignore (the filter
	 * asked for connect-time verdicts). */
	int verdict_wanted;
	/* Directions that will be offered: SLUICE_SUB_OUT | SLUICE_SUB_IN. */
	unsigned dirs;
	/*
	 * The flow was this filter's before it reconnected (within the
	 * daemon's --filter-grace-seconds): decided[dir] bytes of each
	 * direction were decided then; everything after that is offered
	 * again, from decided[dir] on.
	 */
	int resumed;
	uint64_t decided[2];
};

/*
 * Callbacks. Each returns 0 to go on or a negative errno to make
 * sluice_client_run() stop and return that value. Data pointers are valid
 * only during the call: copy what you need to keep. With SLUICE_FEATURE_SHM
 * the data lies in memory the daemon writes over once it has the verdict on
 * those bytes; verdicts go out after the callbacks of a dispatch return, so
 * this only matters to a callback that calls sluice_client_flush() and then
 * looks at bytes it has decided. Any callback may be NULL:
 * without on_data every chunk is passed, without on_eof the direction is
 * shut down once all of it is decided.
 */
struct sluice_callbacks {
	size_t sz; /* sizeof(struct sluice_callbacks), for growth */
	/*
	 * A new flow. When info->verdict_wanted, answer with sluice_allow(),
	 * sluice_deny(), sluice_redirect() or sluice_ignore(), now or later;
	 * returning 0 without an answer allows the flow, returning 1 means
	 * the answer will come later; a negative return stops the loop and
	 * leaves the flow to the daemon's verdict timeout (it is allowed).
	 */
	int (*on_open)(struct sluice_client *c, const struct sluice_flow_info *info, void *user);
	/*
	 * bytes [offset, offset + len) of direction dir were read. Answer by
	 * deciding them (pass, replace, ...) now or later. After a
	 * sluice_peek(), once the daemon holds the bytes asked for, it offers
	 * everything from the decision point again (offset then lies before
	 * the end of earlier chunks; a large range may come in several calls):
	 * a filter that peeks needs no buffer of its own.
	 */
	int (*on_data)(struct sluice_client *c, uint64_t flow, enum sluice_dir dir, uint64_t offset,
		       const uint8_t *data, size_t len, void *user);
	/*
	 * The source of dir sent FIN after `offset` bytes. When this callback
	 * is NULL or returns 0 without having answered, the library passes
	 * whatever is still undecided (only a verdict drops data) and sends
	 * sluice_shutdown() for the direction, so the FIN travels on after
	 * it. Return 1 to take that over (and call sluice_shutdown() yourself
	 * later, for example after delayed verdicts or an inject).
	 */
	int (*on_eof)(struct sluice_client *c, uint64_t flow, enum sluice_dir dir, uint64_t offset,
		      void *user);
	/* The flow is gone; its id will not be offered again. */
	void (*on_close)(struct sluice_client *c, uint64_t flow, uint32_t reason, void *user);
	/* The daemon refused something this client sent (e.g. a late verdict). */
	void (*on_error)(struct sluice_client *c, uint64_t flow, uint32_t code, const char *text,
			 void *user);
};

struct sluice_port_range {
	uint16_t lo, hi;
};

struct sluice_client_opts {
	size_t sz;	   /* sizeof(struct sluice_client_opts) */
	const char *path;  /* socket path; NULL means SLUICE_DEFAULT_SOCKET */
	const char *name;  /* shown in the daemon's logs; NULL means "filter" */
	uint32_t features; /* SLUICE_FEATURE_* bits */
	/*
	 * Which flows to see: directions (SLUICE_SUB_OUT | SLUICE_SUB_IN;
	 * 0 means both) and destination ports (nports 0: all, at most
	 * SLUICE_SUB_MAX_PORTS ranges). Other flows and directions are never
	 * offered to this filter and cost it nothing.
	 */
	unsigned dirs;
	const struct sluice_port_range *ports;
	size_t nports;
};

/*
 * Connects to the daemon and exchanges HELLO (blocking, at most a few
 * seconds). A daemon that runs several workers (event-loop threads, each
 * with its own flows) gets one connection per worker, each with the same
 * name, features and subscription; the client shows them as one, and each
 * flow's verdicts go back on the connection it came on. If any of them
 * cannot be made, the connect fails as a whole. On success *ret_client is
 * set and 0 returned; on failure nothing is allocated or left open and
 * *ret_client is untouched. cb is copied; user is passed to every callback.
 */
int sluice_client_connect(const struct sluice_client_opts *opts, const struct sluice_callbacks *cb,
			  void *user, struct sluice_client **ret_client);

/* Closes the connections and frees the client. Accepts NULL. */
void sluice_client_free(struct sluice_client *c);

/*
 * The fd to wait on, for callers that run their own poll loop: wait for
 * POLLIN, then call sluice_client_dispatch(); call sluice_client_flush()
 * before waiting if verdicts were given outside sluice_client_dispatch()
 * (they are only buffered until then). It is an epoll fd over the
 * connections (one per daemon worker), which reports as POLLIN both bytes
 * to read and room for verdicts that could not be written yet, so a loop
 * that waits for POLLIN only never leaves verdicts stuck. The fd stays the
 * same for the client's life; do not read, write or close it.
 */
int sluice_client_fd(const struct sluice_client *c);

/*
 * Reads what is available without blocking (one read per connection that
 * has bytes), runs the callbacks, and sends buffered verdicts. Returns 0
 * when it should be called again, a negative errno on failure (-ECONNRESET
 * when the daemon closed the channel). The connections are one channel:
 * when one of them fails, the library closes them all and the client is
 * dead.
 */
int sluice_client_dispatch(struct sluice_client *c);

/*
 * Runs dispatch until the channel closes (-ECONNRESET), a callback fails (its
 * value), or a signal interrupts the wait (-EINTR, so that a handler can make
 * the program stop).
 */
int sluice_client_run(struct sluice_client *c);

/* Sends buffered verdicts, blocking until they are written. */
int sluice_client_flush(struct sluice_client *c);

/*
 * Connect-time verdicts, for flows opened with info->verdict_wanted. deny
 * resets the application's connection (it was already accepted, so it sees
 * a reset, not a refusal); redirect connects to another address instead;
 * ignore lets the flow go on without this filter: no more callbacks for it,
 * not even on_close.
 */
int sluice_allow(struct sluice_client *c, uint64_t flow);
int sluice_deny(struct sluice_client *c, uint64_t flow);
int sluice_redirect(struct sluice_client *c, uint64_t flow, const struct sockaddr *addr,
		    socklen_t len);
int sluice_ignore(struct sluice_client *c, uint64_t flow);

/* Stream verdicts. Each refers to absolute offsets of one direction. */
int sluice_pass(struct sluice_client *c, uint64_t flow, enum sluice_dir dir, uint64_t to);
int sluice_peek(struct sluice_client *c, uint64_t flow, enum sluice_dir dir, uint64_t to);
int sluice_replace(struct sluice_client *c, uint64_t flow, enum sluice_dir dir, uint64_t from,
		   uint64_t to, const void *bytes, size_t len);
int sluice_inject(struct sluice_client *c, uint64_t flow, enum sluice_dir dir, const void *bytes,
		  size_t len);
int sluice_drop(struct sluice_client *c, uint64_t flow, enum sluice_dir dir, uint64_t to);
int sluice_pass_rest(struct sluice_client *c, uint64_t flow, enum sluice_dir dir);
int sluice_shutdown(struct sluice_client *c, uint64_t flow, enum sluice_dir dir);
int sluice_reset(struct sluice_client *c, uint64_t flow);

/*
 * A pointer of the caller's, kept with an open flow (NULL until set). The
 * library forgets it after on_close returns. Returns -ENOENT for a flow that
 * is not open.
 */
int sluice_flow_set_user(struct sluice_client *c, uint64_t flow, void *ptr);
void *sluice_flow_user(const struct sluice_client *c, uint64_t flow);

/*
 * Gathering a whole line or header before deciding. Call from on_data with
 * the chunk. Returns 1 when `delim` has been seen: *ret_start is the offset
 * where gathering began and [*ret_data, *ret_data + *ret_len) are the bytes
 * from there up to and including the delimiter (pointing into the chunk
 * when it holds them all, into a library buffer otherwise; valid until the
 * next call for this flow). Bytes after the delimiter stay undecided for
 * the caller. Returns 0 when more bytes are needed (the library keeps what
 * it has, and the daemon keeps the undecided bytes), -EMSGSIZE when max
 * bytes came without the delimiter or max exceeds the flow's window, or
 * -EINVAL for an empty delimiter, dlen > max, or a chunk that leaves a gap
 * after the bytes gathered. Decide the gathered bytes (pass, replace, ...)
 * before gathering again in that direction.
 */
int sluice_gather(struct sluice_client *c, uint64_t flow, enum sluice_dir dir, uint64_t offset,
		  const uint8_t *data, size_t len, const void *delim, size_t dlen, size_t max,
		  uint64_t *ret_start, const uint8_t **ret_data, size_t *ret_len);

/* The largest replacement a single verdict may carry, from the HELLO. */
size_t sluice_client_max_payload(const struct sluice_client *c);

#ifdef __cplusplus
}
#endif

#endif
