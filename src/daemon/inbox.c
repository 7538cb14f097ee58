/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "inbox.h"

struct job {
	job_fn fn;
	void *arg;
	bool *finished; /* a visit: set when fn has run */
	struct job *next;
};

/* Takes every queued job off and runs it, waking visitors. */
static void run_jobs(struct inbox *in)
{
	struct job *j;

	pthread_mutex_lock(&in->mu);
	while ((j = in->head)) {
		in->head = j->next;
		if (!in->head)
			in->tail = NULL;
		pthread_mutex_unlock(&in->mu);
		j->fn(j->arg);
		pthread_mutex_lock(&in->mu);
		if (j->finished) {
			*j->finished = true;
			pthread_cond_broadcast(&in->done);
		} else {
			free(j);
		}
	}
	pthread_mutex_unlock(&in->mu);
}

static void on_wake(struct io *io, uint32_t revents)
{
	struct inbox *in = (struct inbox *)((char *)io - offsetof(struct inbox, io));
	uint64_t n;

	(void)!read(io->fd, &n, sizeof(n));
	run_jobs(in);
}

int inbox_init(struct inbox *in, struct loop *l)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), r;

	if (fd < 0)
		return -errno;
	*in = (struct inbox){ .loop = l };
	pthread_mutex_init(&in->mu, NULL);
	pthread_cond_init(&in->done, NULL);
	io_init(&in->io, fd, on_wake);
	r = io_set(l, &in->io, EPOLLIN);
	if (r < 0) {
		close(fd);
		in->io.fd = -1;
	}
	return r;
}

void inbox_open(struct inbox *in)
{
	pthread_mutex_lock(&in->mu);
	in->live = true;
	pthread_mutex_unlock(&in->mu);
}

void inbox_close(struct inbox *in)
{
	pthread_mutex_lock(&in->mu);
	in->live = false;
	pthread_mutex_unlock(&in->mu);
	run_jobs(in);
}

void inbox_fini(struct inbox *in)
{
	if (in->io.fd < 0)
		return;
	inbox_close(in);
	io_remove(in->loop, &in->io);
	close(in->io.fd);
	in->io.fd = -1;
	pthread_cond_destroy(&in->done);
	pthread_mutex_destroy(&in->mu);
}

static void enqueue(struct inbox *in, struct job *j)
{
	static const uint64_t one = 1;

	if (in->tail)
		in->tail->next = j;
	else
		in->head = j;
	in->tail = j;
	(void)!write(in->io.fd, &one, sizeof(one));
}

int inbox_post(struct inbox *in, job_fn fn, void *arg)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j)
		return -ENOMEM;
	j->fn = fn;
	j->arg = arg;
	pthread_mutex_lock(&in->mu);
	if (!in->live) {
		pthread_mutex_unlock(&in->mu);
		free(j);
		return -ESHUTDOWN;
	}
	enqueue(in, j);
	pthread_mutex_unlock(&in->mu);
	return 0;
}

void inbox_visit(struct inbox *in, job_fn fn, void *arg)
{
	bool finished = false;
	struct job j = { .fn = fn, .arg = arg, .finished = &finished };

	pthread_mutex_lock(&in->mu);
	if (!in->live) {
		pthread_mutex_unlock(&in->mu);
		fn(arg);
		return;
	}
	enqueue(in, &j);
	while (!finished)
		pthread_cond_wait(&in->done, &in->mu);
	pthread_mutex_unlock(&in->mu);
}
