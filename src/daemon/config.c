/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <sched.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "config.h"
#include "sluice/protocol.h"
#include "log.h"

static const char usage[] =
	"Usage: sluiced --listen ADDR:PORT --upstream ADDR:PORT [options]\n"
	"       sluiced --intercept PORTS [selection] [options]\n"
	"       sluiced --gateway PORTS [selection] [options]\n"
	"\n"
	"Relays TCP connections through a filter process connected to the filter socket.\n"
	"\n"
	"Modes:\n"
	"  --listen ADDR:PORT      accept connections here (IPv6 as [::1]:9000) ...\n"
	"  --upstream ADDR:PORT    ... and connect each one to this address\n"
	"  --intercept PORTS       filter connections this host makes to PORTS\n"
	"                          (\"80,443,8000-8100\" or \"all\"), redirected by nftables\n"
	"  --gateway PORTS         filter connections forwarded through this host (TPROXY)\n"
	"\n"
	"Selection (intercept and gateway):\n"
	"  --intercept-loopback    also loopback destinations (skipped by default)\n"
	"  --uid UID               only connections of this uid (repeatable)\n"
	"  --exclude-uid UID       never connections of this uid (repeatable)\n"
	"  --cgroup PATH           only sockets of this cgroup v2 directory\n"
	"  --dest CIDR             only these destinations (repeatable)\n"
	"  --exclude-dest CIDR     never these destinations (repeatable)\n"
	"\n"
	"Options:\n"
	"  --port PORT             local port redirected connections arrive on (default: any)\n"
	"  --filter-socket PATH    Unix socket filters connect to\n"
	"                          (default " DEFAULT_FILTER_SOCKET ")\n"
	"  --control PATH          Unix socket sluicectl connects to\n"
	"                          (default " DEFAULT_CONTROL_SOCKET ")\n"
	"  --metrics ADDR:PORT     serve Prometheus metrics at http://ADDR:PORT/metrics\n"
	"  --window BYTES          bytes held per flow and direction (default 512K; 4K to 64M)\n"
	"  --max-flows N           most flows at once (default 65536)\n"
	"  --mark MARK             SO_MARK on sockets sluiced opens (default 0x5c1ce)\n"
	"  --drain-seconds N       on SIGTERM, let open flows finish this long (default 5)\n"
	"\n"
	"Filters and limits:\n"
	"  --on-filter-failure open|closed\n"
	"                          when a filter dies or hangs, or none is there: its flows\n"
	"                          go on unfiltered (open, default) or are reset and new\n"
	"                          flows refused (closed)\n"
	"  --filter-grace-seconds N  a filter that reconnects within N s takes its flows\n"
	"                          back (default 0: fail over at once)\n"
	"  --verdict-timeout N     a filter that reads nothing sent to it for N s has\n"
	"                          failed (default 30)\n"
	"  --idle-timeout N        reset flows idle for N s (default 0: never)\n"
	"  --owner-wait MS         intercept: how long a new flow waits for its owning\n"
	"                          process to be found before the filter hears of it\n"
	"                          (default 100; 0 to 10000)\n"
	"  --max-filters N         filter connections at once (default 16 per worker)\n"
	"  --workers N             event-loop threads (default: one per core; 1 to 64)\n"
	"  --busy-poll USEC        after handling events, a worker polls without sleeping\n"
	"                          for up to USEC before it sleeps: lower latency, more\n"
	"                          CPU (default 0: off; 0 to 10000)\n"
	"  --max-frame BYTES       largest frame a filter may send (default 1M+64; 64K to 16M)\n"
	"  --max-inflight BYTES    data bytes queued to one filter (default 1M; 64K to 64M)\n"
	"  --group GROUP           members may use the sockets too (default: root only)\n"
	"  --log-level LEVEL       error, warning, info (default) or debug\n"
	"  --log-format FORMAT     text (default) or json: one object per line\n"
	"  --help, --version\n";

static int fail(char *msg, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* One event-loop thread per core this process may run on. */
static unsigned default_workers(void)
{
	cpu_set_t set;
	int n = 0;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = CPU_COUNT(&set);
	if (n <= 0)
		n = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (n <= 0)
		n = 1;
	return n > SLUICE_WORKERS_MAX ? SLUICE_WORKERS_MAX : (unsigned)n;
}

static int fail(char *msg, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, len, fmt, ap);
	va_end(ap);
	/* Arguments are quoted as given: keep what they carry from breaking
	 * the one-line message (a newline, an escape sequence). */
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return -EINVAL;
}

/* An unsigned decimal (or 0x hex) number up to max, nothing else: "010"
 * is ten, not eight. */
static int parse_uint(const char *s, uint64_t max, uint64_t *ret)
{
	int hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9' || (hex && !s[2]))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, hex ? 16 : 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* A number with an optional K, M or G suffix (powers of 1024). */
static int parse_size(const char *s, uint64_t max, uint64_t *ret)
{
	char buf[32];
	size_t n = strlen(s);
	uint64_t mult = 1, v;

	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, n + 1);
	switch (buf[n - 1]) {
	case 'K':
	case 'k':
		mult = 1ull << 10;
		break;
	case 'M':
	case 'm':
		mult = 1ull << 20;
		break;
	case 'G':
	case 'g':
		mult = 1ull << 30;
		break;
	}
	if (mult > 1)
		buf[n - 1] = '\0';
	if (parse_uint(buf, UINT64_MAX, &v) < 0 || v > max / mult)
		return -EINVAL;
	*ret = v * mult;
	return 0;
}

int parse_ports(const char *s, struct selection *sel)
{
	char buf[1024], *save = NULL, *tok;

	if (!strcmp(s, "all")) {
		sel->all_ports = true;
		return 0;
	}
	if (strlen(s) >= sizeof(buf) || !*s)
		return -EINVAL;
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *dash = strchr(tok, '-');
		uint64_t lo, hi;

		if (dash)
			*dash = '\0';
		if (parse_uint(tok, 65535, &lo) < 0 || lo == 0)
			return -EINVAL;
		hi = lo;
		if (dash && (parse_uint(dash + 1, 65535, &hi) < 0 || hi < lo))
			return -EINVAL;
		if (sel->nports == MAX_LIST)
			return -E2BIG;
		sel->ports[sel->nports++] = (struct port_range){ (uint16_t)lo, (uint16_t)hi };
	}
	/* "80,,443" and a trailing comma leave no token empty-handed above,
	 * but they are still not what anyone meant. */
	if (strstr(s, ",,") || s[strlen(s) - 1] == ',' || s[0] == ',')
		return -EINVAL;
	return sel->nports ? 0 : -EINVAL;
}

int parse_cidr(const char *s, struct cidr *ret)
{
	char buf[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	uint64_t prefix;
	int max;

	if (n == 0 || n >= INET6_ADDRSTRLEN)
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = '\0';
	memset(ret, 0, sizeof(*ret));
	if (inet_pton(AF_INET, buf, ret->addr) == 1) {
		ret->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, ret->addr) == 1) {
		ret->family = AF_INET6;
		max = 128;
	} else {
		return -EINVAL;
	}
	prefix = (uint64_t)max;
	if (slash) {
		/* Decimal only: "/010" and "/0x8" are typos, not prefixes. */
		if (strspn(slash + 1, "0123456789") != strlen(slash + 1) ||
		    (slash[1] == '0' && slash[2]) ||
		    parse_uint(slash + 1, (uint64_t)max, &prefix) < 0)
			return -EINVAL;
	}
	ret->prefix = (uint8_t)prefix;
	/* Clear host bits, as nftables wants a network address. */
	for (int bit = ret->prefix; bit < max; bit++)
		ret->addr[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
	return 0;
}

const char *cidr_format(const struct cidr *c, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	inet_ntop(c->family, c->addr, host, sizeof(host));
	snprintf(buf, len, "%s/%u", host, c->prefix);
	return buf;
}

static int parse_level(const char *s)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };

	for (int i = 0; i < 4; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -EINVAL;
}

static int add_uid(uint32_t *list, unsigned *n, const char *arg)
{
	uint64_t v;

	if (parse_uint(arg, UINT32_MAX - 1, &v) < 0)
		return -EINVAL;
	if (*n == MAX_LIST)
		return -E2BIG;
	list[(*n)++] = (uint32_t)v;
	return 0;
}

static int add_cidr(struct cidr *list, unsigned *n, const char *arg)
{
	if (*n == MAX_LIST)
		return -E2BIG;
	if (parse_cidr(arg, &list[*n]) < 0)
		return -EINVAL;
	(*n)++;
	return 0;
}

int config_parse(int argc, char **argv, struct config *cfg, char *msg, size_t len)
{
	enum {
		OPT_LISTEN = 256,
		OPT_UPSTREAM,
		OPT_INTERCEPT,
		OPT_GATEWAY,
		OPT_LOOPBACK,
		OPT_UID,
		OPT_XUID,
		OPT_CGROUP,
		OPT_DEST,
		OPT_XDEST,
		OPT_PORT,
		OPT_SOCKET,
		OPT_WINDOW,
		OPT_MAX_FLOWS,
		OPT_MARK,
		OPT_DRAIN,
		OPT_LOG_LEVEL,
		OPT_HELP,
		OPT_VERSION,
		OPT_ON_FAILURE,
		OPT_GRACE,
		OPT_VERDICT_TIMEOUT,
		OPT_IDLE,
		OPT_OWNER_WAIT,
		OPT_BUSY_POLL,
		OPT_MAX_FILTERS,
		OPT_WORKERS,
		OPT_MAX_FRAME,
		OPT_MAX_INFLIGHT,
		OPT_GROUP,
		OPT_LOG_FORMAT,
		OPT_CONTROL,
		OPT_METRICS
	};
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "upstream", required_argument, NULL, OPT_UPSTREAM },
		{ "intercept", required_argument, NULL, OPT_INTERCEPT },
		{ "gateway", required_argument, NULL, OPT_GATEWAY },
		{ "intercept-loopback", no_argument, NULL, OPT_LOOPBACK },
		{ "uid", required_argument, NULL, OPT_UID },
		{ "exclude-uid", required_argument, NULL, OPT_XUID },
		{ "cgroup", required_argument, NULL, OPT_CGROUP },
		{ "dest", required_argument, NULL, OPT_DEST },
		{ "exclude-dest", required_argument, NULL, OPT_XDEST },
		{ "port", required_argument, NULL, OPT_PORT },
		{ "filter-socket", required_argument, NULL, OPT_SOCKET },
		{ "window", required_argument, NULL, OPT_WINDOW },
		{ "max-flows", required_argument, NULL, OPT_MAX_FLOWS },
		{ "mark", required_argument, NULL, OPT_MARK },
		{ "drain-seconds", required_argument, NULL, OPT_DRAIN },
		{ "on-filter-failure", required_argument, NULL, OPT_ON_FAILURE },
		{ "filter-grace-seconds", required_argument, NULL, OPT_GRACE },
		{ "verdict-timeout", required_argument, NULL, OPT_VERDICT_TIMEOUT },
		{ "idle-timeout", required_argument, NULL, OPT_IDLE },
		{ "owner-wait", required_argument, NULL, OPT_OWNER_WAIT },
		{ "busy-poll", required_argument, NULL, OPT_BUSY_POLL },
		{ "max-filters", required_argument, NULL, OPT_MAX_FILTERS },
		{ "workers", required_argument, NULL, OPT_WORKERS },
		{ "max-frame", required_argument, NULL, OPT_MAX_FRAME },
		{ "max-inflight", required_argument, NULL, OPT_MAX_INFLIGHT },
		{ "group", required_argument, NULL, OPT_GROUP },
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
		{ "log-format", required_argument, NULL, OPT_LOG_FORMAT },
		{ "control", required_argument, NULL, OPT_CONTROL },
		{ "metrics", required_argument, NULL, OPT_METRICS },
		{ "help", no_argument, NULL, OPT_HELP },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ 0 },
	};
	bool have_listen = false, have_upstream = false, selecting = false;
	int modes = 0, c, r;
	uint64_t v;

	*cfg = (struct config){
		.mode = MODE_LISTEN,
		.filter_socket = DEFAULT_FILTER_SOCKET,
		.control_socket = DEFAULT_CONTROL_SOCKET,
		.window = DEFAULT_WINDOW,
		.max_flows = DEFAULT_MAX_FLOWS,
		.mark = DEFAULT_MARK,
		.drain_seconds = DEFAULT_DRAIN_SECONDS,
		.on_failure = FAIL_OPEN,
		.verdict_timeout = DEFAULT_VERDICT_TIMEOUT,
		.owner_wait_ms = DEFAULT_OWNER_WAIT_MS,
		.max_frame = DEFAULT_MAX_FRAME,
		.max_inflight = DEFAULT_MAX_INFLIGHT,
		.log_level = LOG_INFO,
		.log_format = LOG_FORMAT_TEXT,
	};
	optind = 0;
	opterr = 0;
	/* The leading ':' makes getopt tell a missing argument (':') from an
	 * unknown option ('?'). */
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (c) {
		case OPT_LISTEN:
			if (addr_parse(optarg, 0, &cfg->listen_addr, &cfg->listen_len) < 0)
				return fail(msg, len, "--listen: '%s' is not ADDR:PORT", optarg);
			have_listen = true;
			break;
		case OPT_UPSTREAM:
			if (addr_parse(optarg, 0, &cfg->upstream_addr, &cfg->upstream_len) < 0)
				return fail(msg, len, "--upstream: '%s' is not ADDR:PORT", optarg);
			have_upstream = true;
			break;
		case OPT_INTERCEPT:
		case OPT_GATEWAY:
			cfg->mode = c == OPT_INTERCEPT ? MODE_INTERCEPT : MODE_GATEWAY;
			modes++;
			r = parse_ports(optarg, &cfg->sel);
			if (r == -E2BIG)
				return fail(msg, len, "%s: more than %d port ranges",
					    c == OPT_INTERCEPT ? "--intercept" : "--gateway",
					    MAX_LIST);
			if (r < 0)
				return fail(msg, len,
					    "%s: '%s' is not a list of ports and ranges from 1 to "
					    "65535 "
					    "(like 80,443,8000-8100) or 'all'",
					    c == OPT_INTERCEPT ? "--intercept" : "--gateway",
					    optarg);
			break;
		case OPT_LOOPBACK:
			cfg->sel.loopback = true;
			selecting = true;
			break;
		case OPT_UID:
		case OPT_XUID:
			r = c == OPT_UID ? add_uid(cfg->sel.uids, &cfg->sel.nuids, optarg)
					 : add_uid(cfg->sel.xuids, &cfg->sel.nxuids, optarg);
			if (r < 0)
				return fail(msg, len, "%s: '%s' is not a uid%s",
					    c == OPT_UID ? "--uid" : "--exclude-uid", optarg,
					    r == -E2BIG ? " or there are too many" : "");
			selecting = true;
			break;
		case OPT_CGROUP:
			if (!*optarg || strchr(optarg, '"'))
				return fail(msg, len, "--cgroup: bad path '%s'", optarg);
			cfg->sel.cgroup = optarg;
			selecting = true;
			break;
		case OPT_DEST:
		case OPT_XDEST:
			r = c == OPT_DEST ? add_cidr(cfg->sel.dests, &cfg->sel.ndests, optarg)
					  : add_cidr(cfg->sel.xdests, &cfg->sel.nxdests, optarg);
			if (r < 0)
				return fail(msg, len, "%s: '%s' is not an address or CIDR%s",
					    c == OPT_DEST ? "--dest" : "--exclude-dest", optarg,
					    r == -E2BIG ? " or there are too many" : "");
			selecting = true;
			break;
		case OPT_PORT:
			if (parse_uint(optarg, 65535, &v) < 0)
				return fail(msg, len, "--port: '%s' is not a port", optarg);
			cfg->port = (uint16_t)v;
			break;
		case OPT_SOCKET:
			if (!*optarg || strlen(optarg) >= 108)
				return fail(msg, len, "--filter-socket: bad path '%s'", optarg);
			cfg->filter_socket = optarg;
			break;
		case OPT_WINDOW:
			if (parse_size(optarg, MAX_WINDOW, &v) < 0 || v < MIN_WINDOW)
				return fail(msg, len, "--window: '%s' is not a size from 4K to 64M",
					    optarg);
			cfg->window = (uint32_t)v;
			break;
		case OPT_MAX_FLOWS:
			if (parse_uint(optarg, 1u << 24, &v) < 0 || v == 0)
				return fail(msg, len,
					    "--max-flows: '%s' is not a number from 1 to %u",
					    optarg, 1u << 24);
			cfg->max_flows = (uint32_t)v;
			break;
		case OPT_MARK:
			if (parse_uint(optarg, UINT32_MAX, &v) < 0 || v == 0)
				return fail(msg, len,
					    "--mark: '%s' is not a non-zero 32-bit number", optarg);
			cfg->mark = (uint32_t)v;
			cfg->mark_set = true;
			break;
		case OPT_DRAIN:
			if (parse_uint(optarg, 3600, &v) < 0)
				return fail(msg, len, "--drain-seconds: '%s' is not 0 to 3600",
					    optarg);
			cfg->drain_seconds = (unsigned)v;
			break;
		case OPT_ON_FAILURE:
			if (!strcmp(optarg, "open"))
				cfg->on_failure = FAIL_OPEN;
			else if (!strcmp(optarg, "closed"))
				cfg->on_failure = FAIL_CLOSED;
			else
				return fail(msg, len,
					    "--on-filter-failure: '%s' is not open or closed",
					    optarg);
			break;
		case OPT_OWNER_WAIT:
			if (parse_uint(optarg, 10000, &v) < 0)
				return fail(msg, len, "--owner-wait: '%s' is not 0 to 10000 ms",
					    optarg);
			cfg->owner_wait_ms = (unsigned)v;
			break;
		case OPT_BUSY_POLL:
			if (parse_uint(optarg, 10000, &v) < 0)
				return fail(msg, len, "--busy-poll: '%s' is not 0 to 10000 microseconds",
					    optarg);
			cfg->busy_poll_us = (unsigned)v;
			break;
		case OPT_GRACE:
		case OPT_VERDICT_TIMEOUT:
		case OPT_IDLE:
			if (parse_uint(optarg, 86400, &v) < 0 || (c == OPT_VERDICT_TIMEOUT && !v))
				return fail(msg, len, "%s: '%s' is not %s to 86400 seconds",
					    c == OPT_GRACE  ? "--filter-grace-seconds"
					    : c == OPT_IDLE ? "--idle-timeout"
							    : "--verdict-timeout",
					    optarg, c == OPT_VERDICT_TIMEOUT ? "1" : "0");
			if (c == OPT_GRACE)
				cfg->grace_seconds = (unsigned)v;
			else if (c == OPT_IDLE)
				cfg->idle_timeout = (unsigned)v;
			else
				cfg->verdict_timeout = (unsigned)v;
			break;
		case OPT_MAX_FILTERS:
			if (parse_uint(optarg, 1024, &v) < 0 || !v)
				return fail(msg, len, "--max-filters: '%s' is not 1 to 1024",
					    optarg);
			cfg->max_filters = (uint32_t)v;
			break;
		case OPT_WORKERS:
			if (parse_uint(optarg, SLUICE_WORKERS_MAX, &v) < 0 || !v)
				return fail(msg, len, "--workers: '%s' is not 1 to %d", optarg,
					    SLUICE_WORKERS_MAX);
			cfg->workers = (unsigned)v;
			break;
		case OPT_MAX_FRAME:
			if (parse_size(optarg, SLUICE_FRAME_HARD_MAX, &v) < 0 || v < 65536)
				return fail(msg, len,
					    "--max-frame: '%s' is not a size from 64K to 16M",
					    optarg);
			cfg->max_frame = (uint32_t)v;
			break;
		case OPT_MAX_INFLIGHT:
			if (parse_size(optarg, 64u << 20, &v) < 0 || v < 65536)
				return fail(msg, len,
					    "--max-inflight: '%s' is not a size from 64K to 64M",
					    optarg);
			cfg->max_inflight = (uint32_t)v;
			break;
		case OPT_GROUP:
			if (!*optarg)
				return fail(msg, len, "--group: empty group name");
			cfg->group = optarg;
			break;
		case OPT_LOG_LEVEL:
			cfg->log_level = parse_level(optarg);
			if (cfg->log_level < 0)
				return fail(
					msg, len,
					"--log-level: '%s' is not error, warning, info or debug",
					optarg);
			break;
		case OPT_LOG_FORMAT:
			if (!strcmp(optarg, "text"))
				cfg->log_format = LOG_FORMAT_TEXT;
			else if (!strcmp(optarg, "json"))
				cfg->log_format = LOG_FORMAT_JSON;
			else
				return fail(msg, len, "--log-format: '%s' is not text or json",
					    optarg);
			break;
		case OPT_CONTROL:
			if (!*optarg || strlen(optarg) >= 108)
				return fail(msg, len, "--control: bad path '%s'", optarg);
			cfg->control_socket = optarg;
			cfg->control_set = true;
			break;
		case OPT_METRICS:
			if (addr_parse(optarg, 0, &cfg->metrics_addr, &cfg->metrics_len) < 0)
				return fail(msg, len, "--metrics: '%s' is not ADDR:PORT", optarg);
			break;
		case OPT_HELP:
			snprintf(msg, len, "%s", usage);
			return 1;
		case OPT_VERSION:
			snprintf(msg, len, "sluiced %s\n", SLUICE_VERSION);
			return 1;
		case ':':
			return fail(msg, len, "option '%s' needs an argument", argv[optind - 1]);
		default:
			/* optopt names a long option given an argument it does
			 * not take; 0 an unknown long option; else a letter. */
			if (optopt >= OPT_LISTEN)
				return fail(msg, len, "option '%s' takes no argument",
					    argv[optind - 1]);
			if (optopt)
				return fail(msg, len, "unknown option '-%c' (see --help)", optopt);
			return fail(msg, len, "unknown option '%s' (see --help)", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return fail(msg, len, "unexpected argument '%s' (see --help)", argv[optind]);
	if (!cfg->workers)
		cfg->workers = default_workers();
	/* A libsluice filter connects once to each worker. */
	if (!cfg->max_filters)
		cfg->max_filters = DEFAULT_MAX_FILTERS * cfg->workers > 1024
					   ? 1024
					   : DEFAULT_MAX_FILTERS * cfg->workers;
	if (modes + (have_listen || have_upstream) > 1)
		return fail(msg, len,
			    "choose one mode: --listen/--upstream, --intercept or --gateway");
	if (cfg->mode == MODE_LISTEN) {
		if (!have_listen || !have_upstream)
			return fail(msg, len,
				    "--listen and --upstream are both required, or use "
				    "--intercept or --gateway (see --help)");
		if (selecting)
			return fail(msg, len, "selection options need --intercept or --gateway");
		return 0;
	}
	/* Interception must not catch its own connections: the mark is what
	 * the rules skip, so failing to set it is an error there. */
	cfg->mark_set = true;
	return 0;
}
