/* SPDX-License-Identifier: MIT */
/*
 * Ways in. A backend brings accepted connections and their destinations to
 * the relay; everything after accept() is the same for all of them. One
 * file each: backend-listen.c (an explicit relay), later intercept and
 * gateway (nftables) and ebpf.
 */
#ifndef SLUICE_BACKEND_H
#define SLUICE_BACKEND_H

struct daemon;
struct listener;

struct backend {
	const char *name;
	/* Opens listeners (and installs rules). Returns 0 or -errno, having
	 * logged what failed. */
	int (*start)(struct daemon *d);
	/* Stops taking new connections; flows already taken go on (drain).
	 * Optional: without it, stop() is called at the start of the drain. */
	void (*quiesce)(struct daemon *d);
	/* Stops accepting and removes what start() made. Safe to call after a
	 * failed start() and after quiesce(). */
	void (*stop)(struct daemon *d);
	/* The listeners start() opened (some may be closed, fd -1), for the
	 * other workers to share (listener_share). */
	struct listener *(*listeners)(struct daemon *d, unsigned *ret_count);
};

extern const struct backend backend_listen;
extern const struct backend backend_intercept;
extern const struct backend backend_gateway;

#endif
