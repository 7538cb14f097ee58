/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "backend.h"
#include "channel.h"
#include "daemon.h"
#include "flow.h"
#include "log.h"
#include "relay.h"

static void on_signal(struct io *io, uint32_t revents)
{
	struct daemon *d = (struct daemon *)((char *)io - offsetof(struct daemon, signal_io));
	struct signalfd_siginfo si;

	if (read(io->fd, &si, sizeof(si)) != sizeof(si))
		return;
	log_info("stopping on %s", strsignal((int)si.ssi_signo));
	loop_quit(d->loop, 0);
}

int main(int argc, char **argv)
{
	static struct daemon d;
	char msg[2048];
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

	r = loop_new(&d.loop);
	if (r < 0) {
		log_err("event loop: %s", strerror(-r));
		return 1;
	}
	io_init(&d.signal_io, sfd, on_signal);
	r = io_set(d.loop, &d.signal_io, EPOLLIN);
	if (r >= 0)
		r = flow_table_new(&d, d.cfg.max_flows, &d.flows);
	if (r < 0) {
		log_err("setup: %s", strerror(-r));
		return 1;
	}
	r = channel_new(&d, d.cfg.filter_socket, &d.channel);
	if (r < 0) {
		log_err("filter socket %s: %s", d.cfg.filter_socket, strerror(-r));
		return 1;
	}
	log_info("filter socket %s, window %u bytes", d.cfg.filter_socket, d.cfg.window);
	d.backend = &backend_listen;
	r = d.backend->start(&d);
	if (r < 0) {
		d.backend->stop(&d);
		channel_free(d.channel);
		return 1;
	}

	r = loop_run(d.loop);

	d.backend->stop(&d);
	relay_close_all(&d);
	channel_free(d.channel);
	flow_table_free(d.flows);
	loop_free(d.loop);
	close(sfd);
	return r < 0 ? 1 : 0;
}
