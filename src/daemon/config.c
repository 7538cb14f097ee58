/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "daemon.h"
#include "log.h"

static const char usage[] =
	"Usage: sluiced --listen ADDR:PORT --upstream ADDR:PORT [options]\n"
	"\n"
	"Relays TCP connections through a filter process connected to the filter socket.\n"
	"\n"
	"  --listen ADDR:PORT      accept connections here (IPv6 as [::1]:9000)\n"
	"  --upstream ADDR:PORT    connect each one to this address\n"
	"  --filter-socket PATH    Unix socket filters connect to\n"
	"                          (default " DEFAULT_FILTER_SOCKET ")\n"
	"  --window BYTES          bytes held per flow and direction (default 262144;\n"
	"                          K and M suffixes; 4K to 64M)\n"
	"  --max-flows N           most flows at once (default 65536)\n"
	"  --mark MARK             SO_MARK on sockets sluiced opens (default 0x5c1ce)\n"
	"  --log-level LEVEL       error, warning, info (default) or debug\n"
	"  --help, --version\n";

static int fail(char *msg, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *msg, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Parses an unsigned number with an optional K, M or G suffix (powers of 1024). */
static int parse_size(const char *s, uint64_t max, uint64_t *ret)
{
	char *end;
	unsigned long long v;
	uint64_t mult = 1;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno)
		return -EINVAL;
	if (*end == 'K' || *end == 'k')
		mult = 1024, end++;
	else if (*end == 'M' || *end == 'm')
		mult = 1024 * 1024, end++;
	else if (*end == 'G' || *end == 'g')
		mult = 1024 * 1024 * 1024, end++;
	if (*end || v > max / mult)
		return -EINVAL;
	*ret = v * mult;
	return 0;
}

static int parse_level(const char *s)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };

	for (int i = 0; i < 4; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -EINVAL;
}

int config_parse(int argc, char **argv, struct config *cfg, char *msg, size_t len)
{
	enum { OPT_LISTEN = 256, OPT_UPSTREAM, OPT_SOCKET, OPT_WINDOW, OPT_MAX_FLOWS, OPT_MARK,
	       OPT_LOG_LEVEL, OPT_HELP, OPT_VERSION };
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "upstream", required_argument, NULL, OPT_UPSTREAM },
		{ "filter-socket", required_argument, NULL, OPT_SOCKET },
		{ "window", required_argument, NULL, OPT_WINDOW },
		{ "max-flows", required_argument, NULL, OPT_MAX_FLOWS },
		{ "mark", required_argument, NULL, OPT_MARK },
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
		{ "help", no_argument, NULL, OPT_HELP },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ 0 },
	};
	bool have_listen = false, have_upstream = false;
	uint64_t v;
	int c;

	*cfg = (struct config){
		.backend = "listen",
		.filter_socket = DEFAULT_FILTER_SOCKET,
		.window = DEFAULT_WINDOW,
		.max_flows = DEFAULT_MAX_FLOWS,
		.mark = DEFAULT_MARK,
		.log_level = LOG_INFO,
	};
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
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
			if (parse_size(optarg, 1u << 24, &v) < 0 || v == 0)
				return fail(msg, len, "--max-flows: '%s' is not a number from 1 to %u",
					    optarg, 1u << 24);
			cfg->max_flows = (uint32_t)v;
			break;
		case OPT_MARK:
			if (parse_size(optarg, UINT32_MAX, &v) < 0 || v == 0)
				return fail(msg, len, "--mark: '%s' is not a non-zero 32-bit number",
					    optarg);
			cfg->mark = (uint32_t)v;
			cfg->mark_set = true;
			break;
		case OPT_LOG_LEVEL:
			cfg->log_level = parse_level(optarg);
			if (cfg->log_level < 0)
				return fail(msg, len, "--log-level: '%s' is not error, warning, info or debug",
					    optarg);
			break;
		case OPT_HELP:
			snprintf(msg, len, "%s", usage);
			return 1;
		case OPT_VERSION:
			snprintf(msg, len, "sluiced %s\n", SLUICE_VERSION);
			return 1;
		case '?':
		default:
			if (optopt)
				return fail(msg, len, "option '%s' needs an argument or is unknown",
					    argv[optind - 1]);
			return fail(msg, len, "unknown option '%s' (see --help)", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return fail(msg, len, "unexpected argument '%s' (see --help)", argv[optind]);
	if (!have_listen || !have_upstream)
		return fail(msg, len, "--listen and --upstream are both required (see --help)");
	return 0;
}
