/* SPDX-License-Identifier: MIT */
/*
 * Listen mode: `--listen ADDR:PORT --upstream ADDR:PORT`. A plain filtered
 * relay (a port forward) that needs no privileges.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "backend.h"
#include "daemon.h"
#include "listener.h"
#include "log.h"
#include "relay.h"

static void on_conn(struct listener *l, int fd, const struct sockaddr_storage *peer)
{
	struct flow_origin o = { .app = *peer, .dst = l->d->cfg.upstream_addr };

	relay_start(l->d, fd, &o);
}

static int listen_start(struct daemon *d)
{
	struct listener *l = calloc(1, sizeof(*l));
	char buf[ADDR_STRLEN], up[ADDR_STRLEN];
	int r;

	if (!l)
		return -ENOMEM;
	d->backend_state = l;
	r = listener_open(d->loop, d, l, &d->cfg.listen_addr, false, on_conn);
	if (r < 0) {
		log_err("listen %s: %s", addr_format(&d->cfg.listen_addr, buf), strerror(-r));
		return r;
	}
	log_info("listening on %s, upstream %s", addr_format(&l->addr, buf),
		 addr_format(&d->cfg.upstream_addr, up));
	return 0;
}

static void listen_stop(struct daemon *d)
{
	struct listener *l = d->backend_state;

	if (!l)
		return;
	listener_close(l);
	free(l);
	d->backend_state = NULL;
}

static struct listener *listen_listeners(struct daemon *d, unsigned *ret_count)
{
	*ret_count = d->backend_state ? 1 : 0;
	return d->backend_state;
}

const struct backend backend_listen = {
	.name = "listen",
	.start = listen_start,
	.stop = listen_stop,
	.listeners = listen_listeners,
};
