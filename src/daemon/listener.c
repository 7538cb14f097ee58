/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "daemon.h"
#include "listener.h"
#include "log.h"

/* Connections taken per wake-up, so a flood cannot starve open flows. */
#define ACCEPTS_PER_EVENT 64
#define ACCEPT_BACKOFF_MS 100
/* Descriptors a flow may need besides its accepted socket: the upstream
 * socket and a pipe (two ends) per spliced direction. */
#define FLOW_FDS 5

/* The interest of a listener: with several workers polling one listening
 * socket, each new connection wakes one of them, not all. */
static uint32_t listen_events(const struct listener *l)
{
	return l->d && l->d->top->nworkers > 1 ? EPOLLIN | EPOLLEXCLUSIVE : EPOLLIN;
}

static void on_backoff(struct timer *t)
{
	struct listener *l = (struct listener *)((char *)t - offsetof(struct listener, backoff));

	if (l->io.fd >= 0)
		io_set(l->loop, &l->io, listen_events(l));
}

/* The process's descriptor limit, read once: it does not change under us. */
static int fd_limit(void)
{
	static int limit; /* shared by the workers: any of them may fill it in */
	int n = __atomic_load_n(&limit, __ATOMIC_RELAXED);
	struct rlimit rl;

	if (!n) {
		n = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < INT_MAX ? (int)rl.rlim_cur
										: INT_MAX;
		__atomic_store_n(&limit, n, __ATOMIC_RELAXED);
	}
	return n;
}

/* Whether n more descriptors can be had now (tried, by duplicating fd,
 * then given back). */
static bool fds_available(int fd, int n)
{
	int fds[FLOW_FDS], got = 0;

	while (got < n && (fds[got] = fcntl(fd, F_DUPFD_CLOEXEC, 0)) >= 0)
		got++;
	for (int i = 0; i < got; i++)
		close(fds[i]);
	return got == n;
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
		int fd;

		/*
		 * A flow needs more descriptors than the one accept() takes
		 * (its upstream socket, and pipes when it splices). Near the
		 * limit, make sure they are there before taking a connection,
		 * which otherwise could only be reset: left in the backlog it
		 * waits until descriptors are freed.
		 */
		if (l->last_fd + FLOW_FDS + 8 >= fd_limit() && !fds_available(io->fd, FLOW_FDS)) {
			errno = EMFILE;
			fd = -1;
		} else {
			fd = accept4(io->fd, (struct sockaddr *)&peer, &len,
				     SOCK_NONBLOCK | SOCK_CLOEXEC);
		}
		if (fd >= 0) {
			l->last_fd = fd;
			l->fn(l, fd, &peer);
			continue;
		}
		snprintf(what, sizeof(what), "listener %s", addr_format(&l->addr, buf));
		accept_failed(l->loop, io, &l->backoff, on_backoff, what);
		return;
	}
}

int listener_open(struct loop *loop, struct daemon *d, struct listener *l,
		  const struct sockaddr_storage *addr, bool transparent, listener_fn fn)
{
	socklen_t len = sizeof(l->addr);
	int fd, one = 1, r;

	l->loop = loop;
	l->d = d;
	l->fn = fn;
	l->borrowed = false;
	l->addr = *addr;
	io_init(&l->io, -1, on_accept);
	fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* Accepted sockets inherit it: the relay sends what it has at once. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
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
	r = io_set(loop, &l->io, listen_events(l));
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

int listener_share(struct daemon *d, struct listener *l, const struct listener *from)
{
	*l = (struct listener){
		.loop = d->loop,
		.d = d,
		.fn = from->fn,
		.addr = from->addr,
		.data = from->data,
		.borrowed = true,
	};
	io_init(&l->io, from->io.fd, from->io.fn);
	if (from->io.fd < 0)
		return 0;
	return io_set(d->loop, &l->io, listen_events(l));
}

void listener_close(struct listener *l)
{
	if (l->io.fd < 0)
		return;
	timer_cancel(l->loop, &l->backoff);
	io_remove(l->loop, &l->io);
	if (!l->borrowed)
		close(l->io.fd);
	l->io.fd = -1;
}
