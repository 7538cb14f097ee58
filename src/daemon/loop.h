/* SPDX-License-Identifier: MIT */
/*
 * A small event loop over epoll, level-triggered, with exact control of
 * interest: backpressure is expressed by not asking for EPOLLIN. An fd whose
 * interest is empty is taken out of the epoll set altogether, so that a
 * hung-up socket nobody is waiting on cannot make the loop spin (epoll
 * always reports EPOLLHUP and EPOLLERR for registered fds).
 *
 * Objects that own an io may be freed while the current batch of events
 * still names them; free them from an after-batch callback (loop_defer), as
 * the flow table and the channel do.
 */
#ifndef SLUICE_LOOP_H
#define SLUICE_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

struct loop;
struct io;

typedef void (*io_fn)(struct io *io, uint32_t revents);

struct io {
	int fd;
	uint32_t events; /* interest wanted */
	bool registered; /* in the epoll set */
	io_fn fn;
};

struct timer;
typedef void (*timer_fn)(struct timer *t);

struct timer {
	uint64_t when_ms;
	timer_fn fn;
	struct timer *next;
	bool armed;
};

int loop_new(struct loop **ret_loop);
void loop_free(struct loop *l);

/* Prepares io for fd (not yet registered: call io_set). */
void io_init(struct io *io, int fd, io_fn fn);

/* Sets the interest of io; registers, modifies or removes it as needed.
 * Returns 0 or -errno from epoll_ctl. */
int io_set(struct loop *l, struct io *io, uint32_t events);

/* Removes io from the loop (does not close the fd). Accepts an unregistered io. */
void io_remove(struct loop *l, struct io *io);

/*
 * For an io whose fd is closed right after: closing the last descriptor of
 * a socket takes it out of the epoll set, so this forgets it without the
 * system call io_remove() makes. Only for an fd never duplicated.
 */
void io_closing(struct io *io);

/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t loop_now_ms(void);

/* Arms t to fire once, after ms milliseconds. Re-arming moves it. */
void timer_arm(struct loop *l, struct timer *t, uint64_t ms, timer_fn fn);
void timer_cancel(struct loop *l, struct timer *t);

/* fn(arg) runs after every batch of events, in registration order. */
int loop_defer(struct loop *l, void (*fn)(void *arg), void *arg);

/*
 * After a batch with events, poll without sleeping for up to us
 * microseconds before waiting in the kernel again (0, the default: never).
 * The next event then finds the thread awake: no wake-up on its path, which
 * on a virtual machine costs several microseconds per hop. The price is a
 * core kept busy for that long after each batch.
 */
void loop_set_busy_poll(struct loop *l, unsigned us);

/* Runs until loop_quit(). Returns the code given to loop_quit(). */
int loop_run(struct loop *l);
void loop_quit(struct loop *l, int code);

#endif
