/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "backend.h"
#include "channel.h"
#include "config.h"
#include "control.h"
#include "daemon.h"
#include "door.h"
#include "flow.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "procinfo.h"
#include "relay.h"
#include "stream.h"

static const struct backend *const backends[] = {
	[MODE_LISTEN] = &backend_listen,
	[MODE_INTERCEPT] = &backend_intercept,
	[MODE_GATEWAY] = &backend_gateway,
};

/* Workers. */

static void on_drain_timeout(struct timer *t)
{
	struct daemon *d = (struct daemon *)((char *)t - offsetof(struct daemon, drain_timer));

	log_info("drain: %u flows still open after %u s; closing them", flow_table_count(d->flows),
		 d->cfg.drain_seconds);
	loop_quit(d->loop, 0);
}

/* After each batch: a draining worker ends once its last flow is gone. */
static void check_drained(void *arg)
{
	struct daemon *d = arg;

	if (d->draining && flow_table_count(d->flows) == 0)
		loop_quit(d->loop, 0);
}

static void on_tick(struct timer *t)
{
	struct daemon *d = (struct daemon *)((char *)t - offsetof(struct daemon, tick));

	channel_tick(d->channel);
	relay_tick(d);
	timer_arm(d->loop, &d->tick, 1000, on_tick);
}

static void on_identified(uint64_t cookie, const struct proc_ident *id, void *arg)
{
	struct flow_ident ident = {
		.has_uid = id->has_uid,
		.uid = id->uid,
		.has_pid = id->has_pid,
		.pid = id->pid,
	};

	snprintf(ident.comm, sizeof(ident.comm), "%s", id->comm);
	relay_identified(arg, cookie, &ident);
}

static int worker_new(struct sluiced *top, unsigned index, struct daemon **ret)
{
	struct daemon *d = calloc(1, sizeof(*d));
	int r;

	if (!d)
		return -ENOMEM;
	*ret = d;
	d->cfg = top->cfg;
	d->top = top;
	d->index = index;
	d->inbox.io.fd = -1;
	r = loop_new(&d->loop);
	if (r >= 0) {
		loop_set_busy_poll(d->loop, d->cfg.busy_poll_us);
		r = inbox_init(&d->inbox, d->loop);
	}
	if (r >= 0)
		r = flow_table_new(d, d->cfg.max_flows, &d->flows);
	if (r >= 0)
		r = loop_defer(d->loop, check_drained, d);
	if (r >= 0)
		r = channel_new(d, &d->channel);
	if (r < 0) {
		log_err("worker %u: setup: %s", index + 1, strerror(-r));
		return r;
	}
	if (d->cfg.mode == MODE_INTERCEPT) {
		r = procinfo_new(d->loop, getpid(), on_identified, d, &d->procinfo);
		if (r < 0 && index == 0)
			log_warn("process lookup unavailable (%s): flows will have no owner",
				 strerror(-r));
	}
	timer_arm(d->loop, &d->tick, 1000, on_tick);
	return 0;
}

/* Worker 0 opens the listeners (and installs the rules); the others poll
 * the same sockets. */
static int open_listeners(struct sluiced *top)
{
	struct daemon *first = top->workers[0];
	struct listener *ls;
	unsigned n;
	int r;

	first->backend = backends[top->cfg.mode];
	r = first->backend->start(first);
	if (r < 0)
		return r;
	ls = first->backend->listeners(first, &n);
	for (unsigned i = 1; i < top->nworkers; i++) {
		struct daemon *d = top->workers[i];

		for (unsigned j = 0; j < n && r >= 0; j++)
			r = listener_share(d, &d->borrowed[j], &ls[j]);
		d->nborrowed = n;
		if (r < 0) {
			log_err("worker %u: listening: %s", i + 1, strerror(-r));
			return r;
		}
	}
	return 0;
}

static void worker_ended(void *arg)
{
	struct sluiced *top = arg;

	if (--top->running == 0)
		loop_quit(top->loop, 0);
}

static void *worker_run(void *arg)
{
	struct daemon *d = arg;

	metrics_here = &d->metrics;
	loop_run(d->loop);
	/* What other threads post from now on is run by them, or refused. */
	inbox_close(&d->inbox);
	stream_pool_drain();
	if (inbox_post(&d->top->inbox, worker_ended, d->top) < 0)
		log_err("worker %u: cannot tell the main thread it ended", d->index + 1);
	return NULL;
}

static int start_workers(struct sluiced *top)
{
	for (unsigned i = 0; i < top->nworkers; i++) {
		struct daemon *d = top->workers[i];
		int r;

		inbox_open(&d->inbox);
		r = pthread_create(&d->thread, NULL, worker_run, d);
		if (r) {
			inbox_close(&d->inbox);
			log_err("worker %u: %s", i + 1, strerror(r));
			return -r;
		}
		d->started = true;
		top->running++;
	}
	return 0;
}

/* Stopping. */

/* In a worker: take no new connections; end once the flows have. */
static void worker_quiesce(void *arg)
{
	struct daemon *d = arg;

	d->draining = true;
	for (unsigned i = 0; i < d->nborrowed; i++)
		listener_close(&d->borrowed[i]);
	if (d->backend && d->backend->quiesce)
		d->backend->quiesce(d);
	else if (d->backend)
		d->backend->stop(d);
	timer_arm(d->loop, &d->drain_timer, (uint64_t)d->cfg.drain_seconds * 1000,
		  on_drain_timeout);
}

static void worker_quit(void *arg)
{
	struct daemon *d = arg;

	loop_quit(d->loop, 0);
}

/* Tells a service manager (systemd's Type=notify) how we are; best effort. */
static void notify(const char *state)
{
	int r = notify_send(state);

	if (r < 0)
		log_warn("notify %s: NOTIFY_SOCKET=%s: %s", state, getenv("NOTIFY_SOCKET"),
			 strerror(-r));
}

/*
 * The first SIGINT or SIGTERM stops accepting (and empties the rules, so
 * new connections go their normal way) and lets open flows finish for
 * --drain-seconds; a second one stops at once.
 */
static void on_signal(struct io *io, uint32_t revents)
{
	struct sluiced *top = (struct sluiced *)((char *)io - offsetof(struct sluiced, signal_io));
	struct signalfd_siginfo si;

	if (read(io->fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (top->draining) {
		log_info("stopping now on %s", strsignal((int)si.ssi_signo));
		for (unsigned i = 0; i < top->nworkers; i++)
			inbox_visit(&top->workers[i]->inbox, worker_quit, top->workers[i]);
		return;
	}
	top->draining = true;
	notify("STOPPING=1");
	log_info("stopping on %s: no new connections; draining %u flows for up to %u s",
		 strsignal((int)si.ssi_signo), sluiced_flows_open(top), top->cfg.drain_seconds);
	/* Worker 0 owns the listening sockets: the others let go of them
	 * first. */
	for (unsigned i = top->nworkers; i-- > 0;)
		inbox_visit(&top->workers[i]->inbox, worker_quiesce, top->workers[i]);
}

static int setup(struct sluiced *top, int sfd)
{
	int r;

	metrics_init(&top->metrics);
	r = loop_new(&top->loop);
	if (r >= 0)
		r = inbox_init(&top->inbox, top->loop);
	if (r < 0) {
		log_err("event loop: %s", strerror(-r));
		return r;
	}
	inbox_open(&top->inbox);
	io_init(&top->signal_io, sfd, on_signal);
	r = io_set(top->loop, &top->signal_io, EPOLLIN);
	if (r < 0) {
		log_err("setup: %s", strerror(-r));
		return r;
	}
	top->nworkers = top->cfg.workers;
	top->workers = calloc(top->nworkers, sizeof(*top->workers));
	if (!top->workers)
		return -ENOMEM;
	for (unsigned i = 0; i < top->nworkers; i++) {
		r = worker_new(top, i, &top->workers[i]);
		if (r < 0)
			return r;
	}
	r = door_open(top, top->cfg.filter_socket, &top->door);
	if (r == -ENOENT && top->cfg.group) {
		log_err("--group %s: no such group", top->cfg.group);
		return r;
	}
	if (r < 0) {
		log_err("filter socket %s: %s", top->cfg.filter_socket,
			r == -EADDRINUSE ? "another sluiced is listening there" : strerror(-r));
		return r;
	}
	r = open_listeners(top);
	if (r >= 0)
		r = control_open(top);
	if (r >= 0)
		r = metrics_open(top);
	if (r >= 0)
		r = start_workers(top);
	if (r < 0)
		return r;
	log_info("filter socket %s, window %u bytes, %u worker%s", top->cfg.filter_socket,
		 top->cfg.window, top->nworkers, top->nworkers == 1 ? "" : "s");
	/* The listeners and the filter socket are up (and in intercept and
	 * gateway modes the rules are in place): units ordered after ours may
	 * start now. */
	notify("READY=1");
	return 0;
}

/*
 * New connections stop being diverted first; then the flows still open are
 * reset, while the rules are there to carry the resets back to the
 * applications (a diverted connection's packets need its NAT mapping); then
 * the rules go. The workers' threads have ended: their state is ours.
 */
static void teardown(struct sluiced *top)
{
	struct daemon *first = top->nworkers ? top->workers[0] : NULL;

	for (unsigned i = 0; i < top->nworkers; i++) {
		struct daemon *d = top->workers[i];

		if (d && d->started) {
			inbox_visit(&d->inbox, worker_quit, d);
			pthread_join(d->thread, NULL);
		}
	}
	for (unsigned i = top->nworkers; i-- > 0;) {
		struct daemon *d = top->workers[i];

		if (!d)
			continue;
		for (unsigned j = 0; j < d->nborrowed; j++)
			listener_close(&d->borrowed[j]);
		if (d->backend && d->backend->quiesce)
			d->backend->quiesce(d);
	}
	for (unsigned i = 0; i < top->nworkers; i++)
		if (top->workers[i] && top->workers[i]->flows)
			relay_close_all(top->workers[i]);
	if (first && first->backend)
		first->backend->stop(first);
	control_free(top->control);
	metrics_server_free(top->metrics_server);
	door_close(top->door);
	for (unsigned i = 0; i < top->nworkers; i++) {
		struct daemon *d = top->workers[i];

		if (!d)
			continue;
		channel_free(d->channel);
		procinfo_free(d->procinfo);
		flow_table_free(d->flows);
		if (d->loop) {
			timer_cancel(d->loop, &d->tick);
			timer_cancel(d->loop, &d->drain_timer);
			inbox_fini(&d->inbox);
		}
		loop_free(d->loop);
		free(d);
	}
	free(top->workers);
	if (top->loop)
		inbox_fini(&top->inbox);
	loop_free(top->loop);
}

int main(int argc, char **argv)
{
	static struct sluiced top;
	char msg[4096];
	sigset_t mask;
	int r, sfd;

	r = config_parse(argc, argv, &top.cfg, msg, sizeof(msg));
	if (r > 0) {
		fputs(msg, stdout);
		return 0;
	}
	if (r < 0) {
		fprintf(stderr, "sluiced: %s\n", msg);
		return 2;
	}
	log_set_level((enum log_level)top.cfg.log_level);
	log_set_format((enum log_format)top.cfg.log_format);
	signal(SIGPIPE, SIG_IGN);

	/* Blocked before any thread starts, so that every thread inherits
	 * the mask and only the signalfd sees them. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0) {
		log_err("signalfd: %s", strerror(errno));
		return 1;
	}

	top.inbox.io.fd = -1;
	r = setup(&top, sfd);
	if (r >= 0) {
		r = loop_run(top.loop);
		if (top.draining && !sluiced_flows_open(&top))
			log_info("drain: all flows finished");
	}
	teardown(&top);
	close(sfd);
	return r < 0 ? 1 : 0;
}
