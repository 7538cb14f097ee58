/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"

#define MAX_EVENTS   128
#define MAX_DEFERRED 8

struct deferred {
	void (*fn)(void *arg);
	void *arg;
};

struct loop {
	int epfd;
	bool quit;
	int code;
	struct timer *timers; /* sorted by when_ms */
	struct deferred deferred[MAX_DEFERRED];
	int ndeferred;
	uint64_t busy_poll_ns;
};

int loop_new(struct loop **ret_loop)
{
	struct loop *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		int r = -errno;

		free(l);
		return r;
	}
	*ret_loop = l;
	return 0;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	close(l->epfd);
	free(l);
}

void io_init(struct io *io, int fd, io_fn fn)
{
	*io = (struct io){ .fd = fd, .fn = fn };
}

int io_set(struct loop *l, struct io *io, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = io };
	int op;

	if (io->registered && io->events == events)
		return 0;
	if (!events) {
		io_remove(l, io);
		return 0;
	}
	op = io->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(l->epfd, op, io->fd, &ev) < 0)
		return -errno;
	io->registered = true;
	io->events = events;
	return 0;
}

void io_remove(struct loop *l, struct io *io)
{
	if (io->registered)
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	io_closing(io);
}

void io_closing(struct io *io)
{
	io->registered = false;
	io->events = 0;
}

uint64_t loop_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void timer_cancel(struct loop *l, struct timer *t)
{
	struct timer **p;

	if (!t->armed)
		return;
	for (p = &l->timers; *p; p = &(*p)->next) {
		if (*p == t) {
			*p = t->next;
			break;
		}
	}
	t->armed = false;
}

void timer_arm(struct loop *l, struct timer *t, uint64_t ms, timer_fn fn)
{
	struct timer **p;

	timer_cancel(l, t);
	t->when_ms = loop_now_ms() + ms;
	t->fn = fn;
	for (p = &l->timers; *p && (*p)->when_ms <= t->when_ms; p = &(*p)->next)
		;
	t->next = *p;
	*p = t;
	t->armed = true;
}

int loop_defer(struct loop *l, void (*fn)(void *arg), void *arg)
{
	if (l->ndeferred == MAX_DEFERRED)
		return -ENOSPC;
	l->deferred[l->ndeferred++] = (struct deferred){ fn, arg };
	return 0;
}

static int next_timeout(struct loop *l)
{
	uint64_t now;

	if (!l->timers)
		return -1;
	now = loop_now_ms();
	if (l->timers->when_ms <= now)
		return 0;
	return (int)(l->timers->when_ms - now);
}

static void run_timers(struct loop *l)
{
	uint64_t now = loop_now_ms();
	struct timer *t;

	while ((t = l->timers) && t->when_ms <= now) {
		l->timers = t->next;
		t->armed = false;
		t->fn(t);
	}
}

void loop_set_busy_poll(struct loop *l, unsigned us)
{
	l->busy_poll_ns = (uint64_t)us * 1000;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

/*
 * Waits for events. With busy polling, after a batch that had events, asks
 * without sleeping until the budget is spent (timers still run on time:
 * the loop goes round for them).
 */
static int wait_events(struct loop *l, struct epoll_event *events, uint64_t *spin_until)
{
	int n;

	if (*spin_until) {
		n = epoll_wait(l->epfd, events, MAX_EVENTS, 0);
		if (n != 0 || now_ns() < *spin_until)
			return n;
		*spin_until = 0;
	}
	return epoll_wait(l->epfd, events, MAX_EVENTS, next_timeout(l));
}

int loop_run(struct loop *l)
{
	struct epoll_event events[MAX_EVENTS];
	uint64_t spin_until = 0;

	l->quit = false;
	while (!l->quit) {
		int n = wait_events(l, events, &spin_until);

		if (n > 0 && l->busy_poll_ns)
			spin_until = now_ns() + l->busy_poll_ns;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0 && spin_until) {
			/* A turn of the spin: nothing happened but time. */
			run_timers(l);
			continue;
		}
		for (int i = 0; i < n; i++) {
			struct io *io = events[i].data.ptr;

			/* An io removed earlier in this batch gets no more events. */
			if (io->registered)
				io->fn(io, events[i].events);
		}
		run_timers(l);
		for (int i = 0; i < l->ndeferred; i++)
			l->deferred[i].fn(l->deferred[i].arg);
	}
	return l->code;
}

void loop_quit(struct loop *l, int code)
{
	l->quit = true;
	l->code = code;
}
