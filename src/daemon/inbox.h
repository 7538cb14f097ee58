/* SPDX-License-Identifier: MIT */
/*
 * How the daemon's threads talk: each event loop has an inbox of jobs that
 * other threads post, run in the loop's own thread after an eventfd wakes
 * it. Nothing on the data path goes through an inbox: flows stay in the
 * thread that accepted them, and inboxes carry only what is rare (a filter
 * connection to adopt, a connection moved before its first byte, a control
 * request, a stop).
 */
#ifndef SLUICE_INBOX_H
#define SLUICE_INBOX_H

#include <pthread.h>
#include <stdbool.h>

#include "loop.h"

typedef void (*job_fn)(void *arg);

struct job;

struct inbox {
	struct loop *loop;
	struct io io; /* the eventfd */
	pthread_mutex_t mu;
	pthread_cond_t done; /* a visit finished */
	struct job *head, *tail;
	bool live; /* the loop's thread runs and will take jobs */
};

/* Registers the inbox's eventfd in l. Jobs posted before inbox_open() are
 * run directly by the posting thread (no loop thread runs yet). */
int inbox_init(struct inbox *in, struct loop *l);

/* The loop's thread starts (true) or stops (false) taking jobs. Closing runs
 * what is still queued, so that no poster waits for ever. */
void inbox_open(struct inbox *in);
void inbox_close(struct inbox *in);

void inbox_fini(struct inbox *in);

/*
 * Queues fn(arg) to run in the inbox's thread. Returns 0, or -ESHUTDOWN if
 * the thread no longer takes jobs (then fn is not run: the caller still
 * owns arg), or -ENOMEM.
 */
int inbox_post(struct inbox *in, job_fn fn, void *arg);

/*
 * Runs fn(arg) in the inbox's thread and waits for it to finish: the
 * caller's view of what fn touched is then consistent. Without a running
 * thread (before inbox_open, after inbox_close), fn runs in the caller.
 * Must not be called from the inbox's own thread.
 */
void inbox_visit(struct inbox *in, job_fn fn, void *arg);

#endif
