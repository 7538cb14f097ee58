/* SPDX-License-Identifier: MIT */
/* The daemon's shared state: configuration and the parts that use it. */
#ifndef SLUICE_DAEMON_H
#define SLUICE_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "loop.h"

struct flow_table;
struct channel;
struct control;
struct metrics_server;
struct backend;

struct daemon {
	struct config cfg;
	struct loop *loop;
	struct flow_table *flows;
	struct channel *channel;
	struct control *control;	/* NULL: none (see control_open) */
	struct metrics_server *metrics; /* NULL: no --metrics */
	const struct backend *backend;
	void *backend_state;
	struct io signal_io;
	struct timer drain_timer;
	struct timer tick; /* housekeeping, once a second */
	struct procinfo *procinfo;
	bool draining;
};

#endif
