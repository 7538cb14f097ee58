/* SPDX-License-Identifier: MIT */
/*
 * A listening TCP socket in the loop, shared by the backends: accepts in
 * bounded batches, and when the process runs out of descriptors it stops
 * accepting for a moment instead of spinning on a listener that stays
 * readable.
 */
#ifndef SLUICE_LISTENER_H
#define SLUICE_LISTENER_H

#include <stdbool.h>
#include <sys/socket.h>

#include "loop.h"

struct daemon;
struct listener;

/* Called for each accepted connection; fd is non-blocking and close-on-exec
 * and belongs to the callee from then on. */
typedef void (*listener_fn)(struct listener *l, int fd, const struct sockaddr_storage *peer);

struct listener {
	struct io io;
	struct timer backoff;
	struct loop *loop;
	struct daemon *d; /* the worker it brings flows to; NULL in the main thread */
	bool borrowed;	  /* another listener's socket (listener_share): not ours to close */
	listener_fn fn;
	struct sockaddr_storage addr; /* as bound, with the real port */
	int last_fd;		      /* the last accepted descriptor: how near the limit we are */
	void *data;
};

/*
 * Binds and listens on addr (port 0: any free port, read it back from
 * l->addr). transparent sets IP_TRANSPARENT, for TPROXY. Returns 0 or
 * -errno, having logged nothing: the caller says what failed.
 */
int listener_open(struct loop *loop, struct daemon *d, struct listener *l,
		  const struct sockaddr_storage *addr, bool transparent, listener_fn fn);

/*
 * Makes l a listener of worker d on the socket of `from` (another worker's),
 * so that connections to it are accepted by whichever worker is free. l
 * never closes the socket: close every sharer before the owner. Returns 0
 * or -errno.
 */
int listener_share(struct daemon *d, struct listener *l, const struct listener *from);

/*
 * Handles accept() failing with errno on io (any listening socket, TCP or
 * Unix): when the process is out of descriptors or memory, io leaves the
 * loop and t calls fn after a short pause (fn puts io back), since the
 * pending connection would keep it readable and the loop spinning; other
 * errors are logged, naming `what`. EAGAIN and the like are not errors.
 */
void accept_failed(struct loop *l, struct io *io, struct timer *t, timer_fn fn, const char *what);

/* Stops accepting and closes the socket. Accepts a listener never opened
 * (io.fd < 0) and one opened and already closed. */
void listener_close(struct listener *l);

#endif
