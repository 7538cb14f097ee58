/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "daemon.h"
#include "listener.h"
#include "log.h"

/* Connections taken per wake-up, so a flood cannot starve open flows. */
#define ACCEPTS_PER_EVENT 64
#define ACCEPT_BACKOFF_MS 100

static void on_backoff(struct timer *t)
{
	struct listener *l = (struct listener *)((char *)t - offsetof(struct listener, backoff));

	if (l->io.fd >= 0)
		io_set(l->d->loop, &l->io, EPOLLIN);
}

void accept_failed(struct loop *l, struct io *io, struct timer *t, timer_fn fn, const char *what)
{
	if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
		log_warn("%s: accept: %s; pausing accepts for %d ms", what, strerror(errno),
			 ACCEPT_BACKOFF_MS);
		io_set(l, io, 0);
		timer_arm(l, t, ACCEPT_BACKOFF_MS, fn);
	} else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
		log_warn("%s: accept: %s", what, strerror(errno));
	}
}

static void on_accept(struct io *io, uint32_t revents)
{
	struct listener *l = (struct listener *)((char *)io - offsetof(struct listener, io));
	char buf[ADDR_STRLEN], what[ADDR_STRLEN + 16];

	for (int i = 0; i < ACCEPTS_PER_EVENT && l->io.fd >= 0; i++) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		int fd = accept4(io->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			l->fn(l, fd, &peer);
			continue;
		}
		snprintf(what, sizeof(what), "listener %s", addr_format(&l->addr, buf));
		accept_failed(l->d->loop, io, &l->backoff, on_backoff, what);
		return;
	}
}

int listener_open(struct daemon *d, struct listener *l, const struct sockaddr_storage *addr,
		  bool transparent, listener_fn fn)
{
	socklen_t len = sizeof(l->addr);
	int fd, one = 1, r;

	l->d = d;
	l->fn = fn;
	l->addr = *addr;
	io_init(&l->io, -1, on_accept);
	fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (addr->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (transparent &&
	    (addr->ss_family == AF_INET6
		     ? setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one))
		     : setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one))) < 0)
		goto fail;
	if (bind(fd, (const struct sockaddr *)addr, addr_len(addr)) < 0 || listen(fd, 1024) < 0 ||
	    getsockname(fd, (struct sockaddr *)&l->addr, &len) < 0)
		goto fail;
	l->io.fd = fd;
	r = io_set(d->loop, &l->io, EPOLLIN);
	if (r < 0) {
		close(fd);
		l->io.fd = -1;
		return r;
	}
	return 0;
fail:
	r = -errno;
	close(fd);
	return r;
}

void listener_close(struct listener *l)
{
	if (l->io.fd < 0)
		return;
	timer_cancel(l->d->loop, &l->backoff);
	io_remove(l->d->loop, &l->io);
	close(l->io.fd);
	l->io.fd = -1;
}
