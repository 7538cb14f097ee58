/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "channel.h"
#include "daemon.h"
#include "door.h"
#include "frame.h"
#include "listener.h"
#include "log.h"
#include "unixsock.h"

/* How long a new connection may take to send its HELLO before it is handed
 * to a worker anyway. */
#define HELLO_WAIT_MS 1000

struct knock {
	struct io io;
	struct door *door;
	struct ucred cred;
	struct timer timer;
	struct knock *next, *prev;
};

struct door {
	struct sluiced *top;
	struct io io;
	struct timer backoff; /* accepting paused: out of descriptors */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct unixsock_access access;
	struct knock *knocks; /* accepted, HELLO not seen yet */
};

/* What a worker is handed. */
struct handover {
	struct daemon *d;
	int fd;
	struct ucred cred;
};

static void take(void *arg)
{
	struct handover *h = arg;

	channel_take(h->d->channel, h->fd, &h->cred);
	free(h);
}

/* The worker with the fewest filter connections. */
static struct daemon *least_busy(struct sluiced *top)
{
	struct daemon *best = top->workers[0];

	for (unsigned i = 1; i < top->nworkers; i++)
		if (SHARED_LOAD(top->workers[i]->nclients) < SHARED_LOAD(best->nclients))
			best = top->workers[i];
	return best;
}

static void knock_free(struct knock *k)
{
	struct door *door = k->door;

	timer_cancel(door->top->loop, &k->timer);
	io_remove(door->top->loop, &k->io);
	if (k->prev)
		k->prev->next = k->next;
	else
		door->knocks = k->next;
	if (k->next)
		k->next->prev = k->prev;
	free(k);
}

/* Hands k's connection to worker `worker` (1-based; 0 or out of range: the
 * least busy), and forgets k. */
static void hand_over(struct knock *k, unsigned worker)
{
	struct sluiced *top = k->door->top;
	struct handover *h = malloc(sizeof(*h));
	struct ucred cred = k->cred;
	int fd = k->io.fd;

	/* Out of our loop before the worker may have it (and close it). */
	knock_free(k);
	if (h) {
		*h = (struct handover){
			.d = worker >= 1 && worker <= top->nworkers ? top->workers[worker - 1]
								    : least_busy(top),
			.fd = fd,
			.cred = cred,
		};
		/* Counted now, so that the next choice sees it; the worker
		 * uncounts it when the client goes. */
		SHARED_ADD(h->d->nclients, 1);
		if (inbox_post(&h->d->inbox, take, h) == 0)
			return;
		SHARED_SUB(h->d->nclients, 1);
		free(h);
	}
	log_warn("filter socket: cannot hand pid %d over to a worker; closing it", (int)cred.pid);
	close(fd);
	SHARED_SUB(top->clients, 1);
}

/* The HELLO, or enough of it, has come: it names the worker, or not. */
static void on_knock(struct io *io, uint32_t revents)
{
	struct knock *k = (struct knock *)((char *)io - offsetof(struct knock, io));
	uint8_t b[SLUICE_FRAME_HEADER_SIZE + 4];
	ssize_t n = recv(io->fd, b, sizeof(b), MSG_PEEK | MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* Gone before saying anything. */
		close(io->fd);
		SHARED_SUB(k->door->top->clients, 1);
		knock_free(k);
		return;
	}
	/* Byte 4 is the frame type; the HELLO body's byte 2 the worker. The
	 * worker checks the whole frame. A HELLO comes in one piece from any
	 * sane client; one that dribbles it gets no choice of worker (peeking
	 * again would spin on a socket that stays readable). */
	hand_over(k, (size_t)n == sizeof(b) && b[4] == SLUICE_FRAME_HELLO
			     ? b[SLUICE_FRAME_HEADER_SIZE + 2]
			     : 0);
}

static void on_knock_timeout(struct timer *t)
{
	hand_over((struct knock *)((char *)t - offsetof(struct knock, timer)), 0);
}

static void on_backoff(struct timer *t)
{
	struct door *door = (struct door *)((char *)t - offsetof(struct door, backoff));

	io_set(door->top->loop, &door->io, EPOLLIN);
}

static void on_accept(struct io *io, uint32_t revents)
{
	struct door *door = (struct door *)((char *)io - offsetof(struct door, io));
	struct sluiced *top = door->top;

	for (;;) {
		struct ucred cred;
		struct knock *k;
		int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			accept_failed(top->loop, io, &door->backoff, on_backoff, "filter socket");
			return;
		}
		if (!unixsock_peer_allowed(fd, &door->access, &cred)) {
			log_warn("filter socket: refusing pid %d, uid %u, gid %u: not root%s",
				 (int)cred.pid, (unsigned)cred.uid, (unsigned)cred.gid,
				 door->access.has_group ? " nor in the --group" : " (see --group)");
			close(fd);
			continue;
		}
		if (SHARED_LOAD(top->clients) >= top->cfg.max_filters) {
			log_warn("filter socket: refusing pid %d: already %u filters "
				 "(--max-filters)",
				 (int)cred.pid, SHARED_LOAD(top->clients));
			close(fd);
			continue;
		}
		SHARED_ADD(top->clients, 1);
		k = calloc(1, sizeof(*k));
		if (!k) {
			log_err("filter socket: no memory for a client");
			close(fd);
			SHARED_SUB(top->clients, 1);
			continue;
		}
		k->door = door;
		k->cred = cred;
		io_init(&k->io, fd, on_knock);
		k->next = door->knocks;
		if (door->knocks)
			door->knocks->prev = k;
		door->knocks = k;
		if (top->nworkers == 1) {
			hand_over(k, 1);
			continue;
		}
		timer_arm(top->loop, &k->timer, HELLO_WAIT_MS, on_knock_timeout);
		if (io_set(top->loop, &k->io, EPOLLIN | EPOLLRDHUP) < 0)
			hand_over(k, 0);
	}
}

int door_open(struct sluiced *top, const char *path, struct door **ret_door)
{
	struct door *door = calloc(1, sizeof(*door));
	int r;

	if (!door)
		return -ENOMEM;
	door->top = top;
	snprintf(door->path, sizeof(door->path), "%s", path);
	r = unixsock_serve(top->loop, top->cfg.group, path, &door->access, &door->io, on_accept);
	if (r < 0) {
		free(door);
		return r;
	}
	*ret_door = door;
	return 0;
}

void door_close(struct door *door)
{
	if (!door)
		return;
	while (door->knocks) {
		close(door->knocks->io.fd);
		SHARED_SUB(door->top->clients, 1);
		knock_free(door->knocks);
	}
	timer_cancel(door->top->loop, &door->backoff);
	io_remove(door->top->loop, &door->io);
	close(door->io.fd);
	unlink(door->path);
	free(door);
}
