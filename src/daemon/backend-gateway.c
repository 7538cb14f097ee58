/* SPDX-License-Identifier: MIT */
/*
 * Gateway mode: `--gateway PORTS`. TCP forwarded through this host (a
 * router, a VM host) is diverted by TPROXY on the prerouting hook to our
 * transparent listener without being rewritten: the accepted socket's own
 * address is the server the client wanted. We connect there from the
 * client's address, so the server sees the real client; the return packets,
 * addressed to the client, belong to our transparent socket and are marked
 * for local delivery by the rules and the policy routing in route.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend.h"
#include "daemon.h"
#include "log.h"
#include "redirect.h"
#include "relay.h"
#include "route.h"

struct gateway {
	struct redirect r;
	uint32_t tproxy_mark;
	bool routes;
};

static void on_conn(struct listener *l, int fd, const struct sockaddr_storage *peer)
{
	struct flow_origin o = { .app = *peer, .transparent = true };
	socklen_t len = sizeof(o.dst);

	if (getsockname(fd, (struct sockaddr *)&o.dst, &len) < 0) {
		log_warn("gateway: getsockname: %s", strerror(errno));
		close(fd);
		return;
	}
	relay_start(l->d, fd, &o);
}

static int gateway_start(struct daemon *d)
{
	struct gateway *g = calloc(1, sizeof(*g));
	char err[256];
	int e;

	if (!g)
		return -ENOMEM;
	d->backend_state = g;
	g->r.ls[0].io.fd = g->r.ls[1].io.fd = -1;
	/* Not the loop-guard mark: that one is on our upstream sockets, whose
	 * packets must route normally, not to lo. */
	g->tproxy_mark = d->cfg.mark + 1;
	if (d->cfg.sel.nuids || d->cfg.sel.nxuids || d->cfg.sel.cgroup) {
		log_err("gateway: --uid, --exclude-uid and --cgroup select local sockets; "
			"forwarded connections have none");
		return -EINVAL;
	}
	e = redirect_start(d, &g->r, true, g->tproxy_mark, on_conn);
	if (e < 0)
		return e;
	e = route_tproxy_install(g->tproxy_mark, ROUTE_TABLE, err, sizeof(err));
	if (e < 0) {
		log_err("gateway: policy routing: %s", err);
		return e;
	}
	g->routes = true;
	redirect_describe(&d->cfg, g->r.port);
	return 0;
}

static void gateway_stop(struct daemon *d)
{
	struct gateway *g = d->backend_state;

	if (!g)
		return;
	redirect_stop(&g->r);
	if (g->routes)
		route_tproxy_remove(g->tproxy_mark, ROUTE_TABLE);
	free(g);
	d->backend_state = NULL;
}

static void gateway_quiesce(struct daemon *d)
{
	struct gateway *g = d->backend_state;

	/* The policy routing stays: the return packets of flows still open
	 * need it until they end. */
	if (g)
		redirect_quiesce(&g->r);
}

const struct backend backend_gateway = {
	.name = "gateway",
	.start = gateway_start,
	.quiesce = gateway_quiesce,
	.stop = gateway_stop,
	.listeners = redirect_listeners,
};
