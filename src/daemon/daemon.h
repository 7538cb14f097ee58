/* SPDX-License-Identifier: MIT */
/* The daemon's shared state: configuration and the parts that use it. */
#ifndef SLUICE_DAEMON_H
#define SLUICE_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "loop.h"

#define DEFAULT_FILTER_SOCKET "/run/sluice/filter.sock"
#define DEFAULT_WINDOW (256 * 1024)
#define MIN_WINDOW 4096
#define MAX_WINDOW (64 * 1024 * 1024)
#define DEFAULT_MAX_FLOWS 65536
#define DEFAULT_MARK 0x5c1ce

struct config {
	const char *backend; /* "listen" */
	struct sockaddr_storage listen_addr;
	socklen_t listen_len;
	struct sockaddr_storage upstream_addr;
	socklen_t upstream_len;
	const char *filter_socket;
	uint32_t window;
	uint32_t max_flows;
	uint32_t mark;
	bool mark_set; /* --mark given: failing to set it is an error */
	int log_level;
};

struct flow_table;
struct channel;
struct backend;

struct daemon {
	struct config cfg;
	struct loop *loop;
	struct flow_table *flows;
	struct channel *channel;
	const struct backend *backend;
	void *backend_state;
	struct io signal_io;
};

/*
 * Parses the command line into cfg. Returns 0, 1 when --help or --version
 * was handled (ret_msg is the text to print), or -EINVAL with ret_msg
 * naming the problem in one line.
 */
int config_parse(int argc, char **argv, struct config *cfg, char *ret_msg, size_t msg_len);

#endif
