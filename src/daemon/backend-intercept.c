/* SPDX-License-Identifier: MIT */
/*
 * Intercept mode: `--intercept PORTS`. Connections this host makes to the
 * selected ports are redirected by nftables (nat output hook) to our
 * listener on loopback; the kernel keeps the original destination for us
 * to read back with SO_ORIGINAL_DST, and we connect there with a marked
 * socket that the rules let through.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "backend.h"
#include "daemon.h"
#include "log.h"
#include "redirect.h"
#include "relay.h"

/* From linux/netfilter_ipv4.h and linux/netfilter_ipv6/ip6_tables.h, which
 * clash with the libc headers when included beside them. */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

static int original_dst(int fd, int family, struct sockaddr_storage *ret)
{
	socklen_t len = sizeof(*ret);
	int r;

	memset(ret, 0, sizeof(*ret));
	if (family == AF_INET6)
		r = getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, ret, &len);
	else
		r = getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, ret, &len);
	return r < 0 ? -errno : 0;
}

static bool same_endpoint(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	return a->ss_family == b->ss_family && !memcmp(a, b, addr_len(a));
}

static void reject(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static void on_conn(struct listener *l, int fd, const struct sockaddr_storage *peer)
{
	struct flow_origin o = { .app = *peer, .identify = true };
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);
	char buf[ADDR_STRLEN];
	int r;

	r = original_dst(fd, peer->ss_family, &o.dst);
	if (r == 0 && getsockname(fd, (struct sockaddr *)&local, &len) == 0 &&
	    same_endpoint(&o.dst, &local))
		r = -ELOOP;
	if (r < 0) {
		/* Not redirected: someone connected to our port directly, and
		 * relaying it would connect to ourselves. */
		log_warn("intercept: connection from %s was not redirected (%s); refusing it",
			 addr_format(peer, buf), strerror(-r));
		reject(fd);
		return;
	}
	relay_start(l->d, fd, &o);
}

static int intercept_start(struct daemon *d)
{
	struct redirect *r = calloc(1, sizeof(*r));
	int e;

	if (!r)
		return -ENOMEM;
	d->backend_state = r;
	e = redirect_start(d, r, false, 0, on_conn);
	if (e < 0)
		return e;
	redirect_describe(&d->cfg, r->port);
	return 0;
}

static void intercept_stop(struct daemon *d)
{
	struct redirect *r = d->backend_state;

	if (!r)
		return;
	redirect_stop(r);
	free(r);
	d->backend_state = NULL;
}

static void intercept_quiesce(struct daemon *d)
{
	if (d->backend_state)
		redirect_quiesce(d->backend_state);
}

const struct backend backend_intercept = {
	.name = "intercept",
	.start = intercept_start,
	.quiesce = intercept_quiesce,
	.stop = intercept_stop,
	.listeners = redirect_listeners,
};
