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

#include "flow.h"

struct daemon;

/* Where an accepted connection comes from and goes to. */
struct flow_origin {
	struct sockaddr_storage app; /* the application's address */
	struct sockaddr_storage dst; /* where to connect */
	bool transparent;	     /* connect from the application's own address */
	bool identify;		     /* look up the owning process (local flows) */
	bool moved;		     /* came from another worker: stays here */
};

/*
 * Takes over app_fd (an accepted, connected TCP socket), opens a flow for
 * it and starts connecting to o->dst. On failure the application's
 * connection is reset and closed. Returns 0 or -errno.
 */
int relay_start(struct daemon *d, int app_fd, const struct flow_origin *o);

/* The owner of flow `id` was looked up (or not: fields unset). Late
 * answers, for flows gone or already admitted, are ignored. */
void relay_identified(struct daemon *d, uint64_t id, const struct flow_ident *ident);

/* The filter's connect-time verdict (SLUICE_OPEN_*) for a pending flow;
 * dst is the new destination for a redirect. */
void relay_open_verdict(struct flow *f, uint8_t action, const struct sockaddr_storage *dst);

/* Offers dir's undecided bytes to the filter again (then tells EOF if
 * asked), as the channel has room. */
void relay_reoffer(struct flow *f, int dir, bool then_eof);

/* Writes what can be written, sends due FINs, closes a finished flow and
 * sets the sockets' interest. Call after anything changed a flow. */
void relay_pump(struct flow *f);

/* Resets both sides (RST) and closes the flow, logging why. */
void relay_reset(struct flow *f, int err, const char *why);

/* The channel has room again for f's data. */
void relay_wake(struct flow *f);

/* f's filter failed: as --on-filter-failure says, every undecided byte
 * passes and f goes on unfiltered, or f is reset. */
void relay_filter_gone(struct flow *f);

/* f's filter wants nothing more of it: it goes on unfiltered. */
void relay_filter_gone_quietly(struct flow *f);

/* Once a second: resets flows idle past --idle-timeout. */
void relay_tick(struct daemon *d);

/* Resets every flow (shutdown); filters are sent CLOSE (ESHUTDOWN), which
 * they get if the channel takes it before it closes. */
void relay_close_all(struct daemon *d);

#endif
