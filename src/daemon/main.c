/* SPDX-License-Identifier: MIT */
#include <errno.h>
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
#include "flow.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "procinfo.h"
#include "relay.h"

static const struct backend *const backends[] = {
	[MODE_LISTEN] = &backend_listen,
	[MODE_INTERCEPT] = &backend_intercept,
	[MODE_GATEWAY] = &backend_gateway,
};

static void on_drain_timeout(struct timer *t)
{
	struct daemon *d = (struct daemon *)((char *)t - offsetof(struct daemon, drain_timer));

	log_info("drain: %u flows still open after %u s; closing them", flow_table_count(d->flows),
		 d->cfg.drain_seconds);
	loop_quit(d->loop, 0);
}

/* After each batch: a draining daemon exits once its last flow is gone. */
static void check_drained(void *arg)
{
	struct daemon *d = arg;

	if (d->draining && flow_table_count(d->flows) == 0) {
		log_info("drain: all flows finished");
		loop_quit(d->loop, 0);
	}
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
 * The first SIGINT or SIGTERM stops accepting (and removes the rules, so
 * new connections go their normal way) and lets open flows finish for
 * --drain-seconds; a second one stops at once.
 */
static void on_signal(struct io *io, uint32_t revents)
{
	struct daemon *d = (struct daemon *)((char *)io - offsetof(struct daemon, signal_io));
	struct signalfd_siginfo si;

	if (read(io->fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (d->draining) {
		log_info("stopping now on %s", strsignal((int)si.ssi_signo));
		loop_quit(d->loop, 0);
		return;
	}
	d->draining = true;
	notify("STOPPING=1");
	if (d->backend->quiesce)
		d->backend->quiesce(d);
	else
		d->backend->stop(d);
	log_info("stopping on %s: no new connections; draining %u flows for up to %u s",
		 strsignal((int)si.ssi_signo), flow_table_count(d->flows), d->cfg.drain_seconds);
	timer_arm(d->loop, &d->drain_timer, (uint64_t)d->cfg.drain_seconds * 1000,
		  on_drain_timeout);
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

static int setup(struct daemon *d, int sfd)
{
	int r;

	metrics_init();
	r = loop_new(&d->loop);
	if (r < 0) {
		log_err("event loop: %s", strerror(-r));
		return r;
	}
	io_init(&d->signal_io, sfd, on_signal);
	r = io_set(d->loop, &d->signal_io, EPOLLIN);
	if (r >= 0)
		r = flow_table_new(d, d->cfg.max_flows, &d->flows);
	if (r >= 0)
		r = loop_defer(d->loop, check_drained, d);
	if (r < 0) {
		log_err("setup: %s", strerror(-r));
		return r;
	}
	if (d->cfg.mode == MODE_INTERCEPT) {
		r = procinfo_new(d->loop, getpid(), on_identified, d, &d->procinfo);
		if (r < 0)
			log_warn("process lookup unavailable (%s): flows will have no owner",
				 strerror(-r));
	}
	r = channel_new(d, d->cfg.filter_socket, &d->channel);
	if (r == -ENOENT && d->cfg.group) {
		log_err("--group %s: no such group", d->cfg.group);
		return r;
	}
	if (r < 0) {
		log_err("filter socket %s: %s", d->cfg.filter_socket,
			r == -EADDRINUSE ? "another sluiced is listening there" : strerror(-r));
		return r;
	}
	timer_arm(d->loop, &d->tick, 1000, on_tick);
	d->backend = backends[d->cfg.mode];
	r = d->backend->start(d);
	if (r >= 0)
		r = control_open(d);
	if (r >= 0)
		r = metrics_open(d);
	if (r < 0)
		return r;
	log_info("filter socket %s, window %u bytes", d->cfg.filter_socket, d->cfg.window);
	/* The listener and the filter socket are up (and in intercept and
	 * gateway modes the rules are in place): units ordered after ours
	 * may start now. */
	notify("READY=1");
	return 0;
}

int main(int argc, char **argv)
{
	static struct daemon d;
	char msg[4096];
	sigset_t mask;
	int r, sfd;

	r = config_parse(argc, argv, &d.cfg, msg, sizeof(msg));
	if (r > 0) {
		fputs(msg, stdout);
		return 0;
	}
	if (r < 0) {
		fprintf(stderr, "sluiced: %s\n", msg);
		return 2;
	}
	log_set_level((enum log_level)d.cfg.log_level);
	log_set_format((enum log_format)d.cfg.log_format);
	signal(SIGPIPE, SIG_IGN);

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0) {
		log_err("signalfd: %s", strerror(errno));
		return 1;
	}

	r = setup(&d, sfd);
	if (r >= 0)
		r = loop_run(d.loop);

	/*
	 * New connections stop being diverted first; then the flows still open
	 * are reset, while the rules are there to carry the resets back to
	 * the applications (a diverted connection's packets need its NAT
	 * mapping); then the rules go.
	 */
	if (d.backend && d.backend->quiesce)
		d.backend->quiesce(&d);
	if (d.flows)
		relay_close_all(&d);
	if (d.backend)
		d.backend->stop(&d);
	control_free(d.control);
	metrics_server_free(d.metrics);
	channel_free(d.channel);
	procinfo_free(d.procinfo);
	flow_table_free(d.flows);
	loop_free(d.loop);
	close(sfd);
	return r < 0 ? 1 : 0;
}
