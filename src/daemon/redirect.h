/* SPDX-License-Identifier: MIT */
/*
 * What the intercept and gateway backends share: a listener for each
 * address family on one port, and the nftables table that sends the
 * selected connections there.
 */
#ifndef SLUICE_REDIRECT_H
#define SLUICE_REDIRECT_H

#include <stdbool.h>
#include <stdint.h>

#include "listener.h"

struct daemon;
struct nft_rules;

struct redirect {
	struct listener ls[2]; /* IPv4, IPv6 (absent if the host has no IPv6) */
	uint16_t port;
	struct nft_rules *rules;
};

/*
 * Opens the listeners (on loopback, or on the wildcard address with
 * IP_TRANSPARENT when transparent) on cfg.port or a free port, then
 * installs the rules. Returns 0 or -errno, having logged the problem in one
 * line. Needs CAP_NET_ADMIN; says so plainly without it.
 */
int redirect_start(struct daemon *d, struct redirect *r, bool transparent, uint32_t tproxy_mark,
		   listener_fn fn);

/* Logs what is being filtered, once the rules are in. */
struct config;
void redirect_describe(const struct config *cfg, uint16_t port);

/* Stops taking new connections (they go their normal way), keeping what
 * flows already diverted need. */
void redirect_quiesce(struct redirect *r);

/* Removes the rules and closes the listeners. Safe after a failed start. */
void redirect_stop(struct redirect *r);

/* The listeners of the redirect at the start of d->backend_state (the
 * intercept and gateway backends both begin theirs with one). */
struct listener *redirect_listeners(struct daemon *d, unsigned *ret_count);

#endif
