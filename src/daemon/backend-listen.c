/* SPDX-License-Identifier: MIT */
/*
 * Listen mode: `--listen ADDR:PORT --upstream ADDR:PORT`. A plain filtered
 * relay (a port forward) that needs no privileges.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "backend.h"
#include "daemon.h"
#include "log.h"
#include "relay.h"

/* Connections taken per wake-up, so a flood cannot starve open flows. */
#define ACCEPTS_PER_EVENT 64
/* Out of descriptors: stop accepting for this long instead of spinning on
 * a listener that stays readable. */
#define ACCEPT_BACKOFF_MS 100

struct listen_state {
	struct daemon *d;
	struct io io;
	struct timer backoff;
};

static void on_backoff(struct timer *t)
{
	struct listen_state *ls = (struct listen_state *)((char *)t - offsetof(struct listen_state, backoff));

	io_set(ls->d->loop, &ls->io, EPOLLIN);
}

static void on_accept(struct io *io, uint32_t revents)
{
	struct listen_state *ls = (struct listen_state *)((char *)io - offsetof(struct listen_state, io));
	struct daemon *d = ls->d;

	for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		int fd = accept4(io->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				log_warn("listen: accept: %s; pausing accepts for %d ms",
					 strerror(errno), ACCEPT_BACKOFF_MS);
				io_set(d->loop, io, 0);
				timer_arm(d->loop, &ls->backoff, ACCEPT_BACKOFF_MS, on_backoff);
			} else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
				log_warn("listen: accept: %s", strerror(errno));
			}
			return;
		}
		relay_start(d, fd, &peer, &d->cfg.upstream_addr);
	}
}

static int listen_start(struct daemon *d)
{
	struct listen_state *ls;
	char buf[ADDR_STRLEN];
	int fd, one = 1, r;

	ls = calloc(1, sizeof(*ls));
	if (!ls)
		return -ENOMEM;
	ls->d = d;
	ls->io.fd = -1;
	d->backend_state = ls;
	fd = socket(d->cfg.listen_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		log_err("listen: socket: %s", strerror(-r));
		return r;
	}
	io_init(&ls->io, fd, on_accept);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (d->cfg.listen_addr.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&d->cfg.listen_addr, d->cfg.listen_len) < 0 ||
	    listen(fd, 1024) < 0) {
		r = -errno;
		log_err("listen: %s: %s", addr_format(&d->cfg.listen_addr, buf), strerror(-r));
		return r;
	}
	r = io_set(d->loop, &ls->io, EPOLLIN);
	if (r < 0)
		return r;
	log_info("listening on %s, upstream %s", addr_format(&d->cfg.listen_addr, buf),
		 addr_format(&d->cfg.upstream_addr, (char[ADDR_STRLEN]){ 0 }));
	return 0;
}

static void listen_stop(struct daemon *d)
{
	struct listen_state *ls = d->backend_state;

	if (!ls)
		return;
	timer_cancel(d->loop, &ls->backoff);
	if (ls->io.fd >= 0) {
		io_remove(d->loop, &ls->io);
		close(ls->io.fd);
	}
	free(ls);
	d->backend_state = NULL;
}

const struct backend backend_listen = {
	.name = "listen",
	.start = listen_start,
	.stop = listen_stop,
};
