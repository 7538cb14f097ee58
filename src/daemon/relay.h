/* SPDX-License-Identifier: MIT */
/*
 * The relay: moves the bytes of a flow between its two sockets and its
 * filter, with the flow control of DESIGN.md. A direction's source is read
 * only while its stream has window space and, when filtered, while the
 * channel takes data; its sink is written whenever decided output waits.
 */
#ifndef SLUICE_RELAY_H
#define SLUICE_RELAY_H

#include <stdint.h>
#include <sys/socket.h>

struct daemon;
struct flow;

/*
 * Takes over app_fd (an accepted, connected TCP socket), opens a flow for
 * it and starts connecting to dst. On failure the application's connection
 * is reset and closed. Returns 0 or -errno.
 */
int relay_start(struct daemon *d, int app_fd, const struct sockaddr_storage *app,
		const struct sockaddr_storage *dst);

/* Writes what can be written, sends due FINs, closes a finished flow and
 * sets the sockets' interest. Call after anything changed a flow. */
void relay_pump(struct flow *f);

/* Resets both sides (RST) and closes the flow, logging why. */
void relay_reset(struct flow *f, int err, const char *why);

/* The channel has room again for f's data. */
void relay_wake(struct flow *f);

/* f's filter is gone: every undecided byte passes and f goes on unfiltered. */
void relay_filter_gone(struct flow *f);

/* Closes every socket of every flow without a word to filters (shutdown). */
void relay_close_all(struct daemon *d);

#endif
