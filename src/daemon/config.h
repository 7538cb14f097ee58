/* SPDX-License-Identifier: MIT */
/*
 * The daemon's configuration, parsed from the command line. Parsing is pure
 * (no I/O, no globals but getopt's), so that it can be fuzzed.
 */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define DEFAULT_FILTER_SOCKET  "/run/sluice/filter.sock"
#define DEFAULT_CONTROL_SOCKET "/run/sluice/control.sock"
#define DEFAULT_WINDOW	       (512 * 1024)
#define MIN_WINDOW	       4096
#define MAX_WINDOW	       (64 * 1024 * 1024)
#define DEFAULT_MAX_FLOWS      65536
/* The loop guard: every socket sluiced opens carries this SO_MARK, and the
 * rules skip packets that carry it. "5c1ce" reads as "slice". */
#define DEFAULT_MARK		0x5c1ce
#define DEFAULT_DRAIN_SECONDS	5
#define DEFAULT_VERDICT_TIMEOUT 30
#define DEFAULT_OWNER_WAIT_MS	100
#define DEFAULT_MAX_FILTERS	16 /* per worker */
#define DEFAULT_MAX_FRAME	(1024 * 1024 + 64)
#define DEFAULT_MAX_INFLIGHT	(1024 * 1024)
#define MAX_LIST		32

/* What happens to flows when their filter fails (disconnects, crashes,
 * hangs) or when no filter is there. */
enum failure_policy {
	FAIL_OPEN,   /* they go on unfiltered from the last decided byte */
	FAIL_CLOSED, /* they are reset; new flows are refused */
};

enum mode {
	MODE_LISTEN,
	MODE_INTERCEPT,
	MODE_GATEWAY,
};

struct port_range {
	uint16_t lo, hi;
};

struct cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	uint8_t prefix;
};

/* Which connections the interception rules take. */
struct selection {
	bool all_ports;
	struct port_range ports[MAX_LIST];
	unsigned nports;
	bool loopback; /* also loopback destinations */
	uint32_t uids[MAX_LIST], xuids[MAX_LIST];
	unsigned nuids, nxuids;
	const char *cgroup; /* a cgroup v2 directory, as given */
	/* Resolved at start-up: the path nftables wants (relative to
	 * /sys/fs/cgroup) and the depth below the cgroup v2 root. */
	char cgroup_rel[256];
	unsigned cgroup_level;
	struct cidr dests[MAX_LIST], xdests[MAX_LIST];
	unsigned ndests, nxdests;
};

struct config {
	enum mode mode;
	struct sockaddr_storage listen_addr;
	socklen_t listen_len;
	struct sockaddr_storage upstream_addr;
	socklen_t upstream_len;
	struct selection sel;
	uint16_t port; /* intercept/gateway listener; 0: any free port */
	const char *filter_socket;
	uint32_t window;
	uint32_t max_flows;
	uint32_t mark;
	bool mark_set; /* failing to set the mark is an error */
	unsigned drain_seconds;
	enum failure_policy on_failure;
	unsigned grace_seconds;	  /* a returning filter takes its flows back */
	unsigned verdict_timeout; /* seconds a filter may sit on offered bytes */
	unsigned idle_timeout;	  /* seconds without a byte either way; 0: never */
	unsigned owner_wait_ms;	  /* a new local flow waits this long for its owner */
	unsigned busy_poll_us;	  /* a worker polls this long before it sleeps; 0: off */
	uint32_t max_filters;
	unsigned workers;      /* event-loop threads, 1 to SLUICE_WORKERS_MAX */
	uint32_t max_frame;    /* largest frame accepted from a filter */
	uint32_t max_inflight; /* DATA bytes queued to one filter */
	const char *group;     /* may use the sockets, besides root */
	const char *control_socket;
	bool control_set; /* given: failing to listen there is an error */
	struct sockaddr_storage metrics_addr;
	socklen_t metrics_len; /* 0: no metrics endpoint */
	int log_level;
	int log_format; /* enum log_format */
};

/*
 * Parses the command line into cfg. Returns 0, 1 when --help or --version
 * was handled (msg holds the text to print), or -EINVAL with msg naming
 * the problem in one line.
 */
int config_parse(int argc, char **argv, struct config *cfg, char *msg, size_t len);

/* Parses "80,443,8000-8100" or "all" into sel. Returns 0, -EINVAL, or
 * -E2BIG for more than MAX_LIST ranges. */
int parse_ports(const char *s, struct selection *sel);

/* Parses "10.0.0.0/8", "fd00::/8" or a plain address. Returns 0 or -EINVAL. */
int parse_cidr(const char *s, struct cidr *ret);

/* Formats a cidr as nftables and people write it. */
const char *cidr_format(const struct cidr *c, char *buf, size_t len);

#endif
