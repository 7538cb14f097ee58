/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/daemon/config.c: the command line of each mode, the
 * PORTS and CIDR grammars, every option's bounds, and the shape of every
 * error (-EINVAL and one line of message that names the option at fault).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sched.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "config.h"
#include "log.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_ARGS      256

#include "args.h"

/* The command line as one string, for failure messages. */
static const char *args_join(const struct args *a)
{
	static char buf[4096];
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 1; i < a->argc && used < sizeof(buf); i++)
		used += (size_t)snprintf(buf + used, sizeof(buf) - used, "%s%s", i > 1 ? " " : "",
					 a->argv[i]);
	return buf;
}

/* Parses a->argv; the result must be 0, else the test fails with the message. */
static void assert_args_parse(struct args *a, struct config *cfg)
{
	char line[4096], msg[512] = "";
	int r;

	snprintf(line, sizeof(line), "%s", args_join(a));
	r = config_parse(a->argc, a->argv, cfg, msg, sizeof(msg));
	if (r != 0)
		fail_msg("'%s': returned %d: %s", line, r, msg);
}

/*
 * Parses a->argv, which config_parse must refuse with -EINVAL and a
 * one-line message that contains `names` (the option at fault) and, when
 * `wrong` is given, does not contain that. Returns 0, or 1 after printing
 * what is amiss, so that a test can report several cases before failing.
 */
static int check_refused(struct args *a, const char *names, const char *wrong)
{
	char line[4096], msg[512] = "";
	struct config cfg;
	int r;

	snprintf(line, sizeof(line), "%s", args_join(a));
	r = config_parse(a->argc, a->argv, &cfg, msg, sizeof(msg));
	if (r != -EINVAL)
		print_error("'%s': returned %d, not -EINVAL (message: '%s')\n", line, r, msg);
	else if (!*msg || strchr(msg, '\n'))
		print_error("'%s': message is not one line: '%s'\n", line, msg);
	else if (!strstr(msg, names))
		print_error("'%s': message does not name '%s': '%s'\n", line, names, msg);
	else if (wrong && strstr(msg, wrong))
		print_error("'%s': message should not say '%s': '%s'\n", line, wrong, msg);
	else
		return 0;
	return 1;
}

static void assert_args_refused(struct args *a, const char *names)
{
	if (check_refused(a, names, NULL))
		fail();
}

/*
 * The config points into its arguments (--cgroup, --filter-socket), so they
 * are kept until the next call.
 */
static void assert_parses(const char *const *list, struct config *cfg)
{
	static struct args a;

	args_init(&a, list);
	assert_args_parse(&a, cfg);
}

static void assert_refused(const char *const *list, const char *names)
{
	struct args a;

	args_init(&a, list);
	assert_args_refused(&a, names);
}

static void assert_sockaddr(const struct sockaddr_storage *ss, socklen_t len, int family,
			    const char *host, uint16_t port)
{
	char buf[INET6_ADDRSTRLEN];

	assert_int_equal(ss->ss_family, family);
	if (family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		assert_int_equal(len, sizeof(*sin));
		assert_int_equal(ntohs(sin->sin_port), port);
		assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)));
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		assert_int_equal(len, sizeof(*sin6));
		assert_int_equal(ntohs(sin6->sin6_port), port);
		assert_non_null(inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf)));
	}
	assert_string_equal(buf, host);
}

/* Listen mode takes both addresses, in either family, and the defaults. */
static void test_listen_mode(void **state)
{
	struct config cfg;

	assert_parses(ARGV("--listen", "127.0.0.1:9000", "--upstream", "10.0.0.1:80"), &cfg);
	assert_int_equal(cfg.mode, MODE_LISTEN);
	assert_sockaddr(&cfg.listen_addr, cfg.listen_len, AF_INET, "127.0.0.1", 9000);
	assert_sockaddr(&cfg.upstream_addr, cfg.upstream_len, AF_INET, "10.0.0.1", 80);
	assert_string_equal(cfg.filter_socket, DEFAULT_FILTER_SOCKET);
	assert_int_equal(cfg.window, DEFAULT_WINDOW);
	assert_int_equal(cfg.max_flows, DEFAULT_MAX_FLOWS);
	assert_int_equal(cfg.mark, DEFAULT_MARK);
	assert_false(cfg.mark_set);
	assert_int_equal(cfg.drain_seconds, DEFAULT_DRAIN_SECONDS);
	assert_int_equal(cfg.log_level, LOG_INFO);
	assert_int_equal(cfg.port, 0);
	assert_int_equal(cfg.sel.nports, 0);

	assert_parses(ARGV("--upstream=[2001:db8::1]:443", "--listen=[::1]:9000"), &cfg);
	assert_int_equal(cfg.mode, MODE_LISTEN);
	assert_sockaddr(&cfg.listen_addr, cfg.listen_len, AF_INET6, "::1", 9000);
	assert_sockaddr(&cfg.upstream_addr, cfg.upstream_len, AF_INET6, "2001:db8::1", 443);

	/* The ends of the port range, and a mixed pair of families. */
	assert_parses(ARGV("--listen", "0.0.0.0:1", "--upstream", "[::]:65535"), &cfg);
	assert_sockaddr(&cfg.listen_addr, cfg.listen_len, AF_INET, "0.0.0.0", 1);
	assert_sockaddr(&cfg.upstream_addr, cfg.upstream_len, AF_INET6, "::", 65535);

	assert_refused(ARGV("--listen", "127.0.0.1:9000"), "--upstream");
	assert_refused(ARGV("--upstream", "127.0.0.1:9000"), "--listen");
	assert_refused(NULL, "--listen");
	assert_refused(ARGV("--listen", "127.0.0.1:9000", "--upstream", "127.0.0.1:80", "extra"),
		       "'extra'");
	assert_refused(ARGV("--listen", "127.0.0.1:9000", "--", "--upstream", "127.0.0.1:80"),
		       "'--upstream'");
}

/* Bad ADDR:PORT values, each refused for --listen and for --upstream. */
static void test_listen_bad_addresses(void **state)
{
	static const char *const bad[] = {
		"127.0.0.1:0",	 "127.0.0.1:65536", "127.0.0.1:99999999999999999999",
		"127.0.0.1",	 "127.0.0.1:",	    ":80",
		"garbage",	 "localhost:80",    "1.2.3:80",
		"256.0.0.1:80",	 "127.0.0.1:80x",   "127.0.0.1:-1",
		"127.0.0.1: 80", "127.0.0.1:+80",   "",
		"[::1]",	 "[::1]:",	    "[::1]9000",
		"::1:9000",	 "[::1:9000",	    "[1.2.3.4]:80",
		"[]:80",	 "[::1]:0",	    "[::1]:65536",
		"[::g]:80",	 "[fe80::1%lo]:80",
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_refused(ARGV("--listen", bad[i], "--upstream", "127.0.0.1:80"), "--listen");
		assert_refused(ARGV("--listen", "127.0.0.1:80", "--upstream", bad[i]),
			       "--upstream");
	}
}

static void assert_range(const struct selection *sel, unsigned i, uint16_t lo, uint16_t hi)
{
	assert_true(i < sel->nports);
	assert_int_equal(sel->ports[i].lo, lo);
	assert_int_equal(sel->ports[i].hi, hi);
}

/* "1,2,3,...,n" */
static const char *port_list(unsigned n)
{
	static char buf[1024];
	size_t used = 0;

	buf[0] = '\0';
	for (unsigned i = 1; i <= n; i++)
		used += (size_t)snprintf(buf + used, sizeof(buf) - used, "%s%u", i > 1 ? "," : "",
					 i);
	return buf;
}

static void test_parse_ports(void **state)
{
	struct selection sel;

	memset(&sel, 0, sizeof(sel));
	assert_int_equal(parse_ports("80,443,8000-8100", &sel), 0);
	assert_false(sel.all_ports);
	assert_int_equal(sel.nports, 3);
	assert_range(&sel, 0, 80, 80);
	assert_range(&sel, 1, 443, 443);
	assert_range(&sel, 2, 8000, 8100);

	memset(&sel, 0, sizeof(sel));
	assert_int_equal(parse_ports("all", &sel), 0);
	assert_true(sel.all_ports);
	assert_int_equal(sel.nports, 0);

	memset(&sel, 0, sizeof(sel));
	assert_int_equal(parse_ports("1-65535", &sel), 0);
	assert_int_equal(sel.nports, 1);
	assert_range(&sel, 0, 1, 65535);

	memset(&sel, 0, sizeof(sel));
	assert_int_equal(parse_ports("65535,1,80-80", &sel), 0);
	assert_int_equal(sel.nports, 3);
	assert_range(&sel, 0, 65535, 65535);
	assert_range(&sel, 1, 1, 1);
	assert_range(&sel, 2, 80, 80);

	memset(&sel, 0, sizeof(sel));
	assert_int_equal(parse_ports(port_list(MAX_LIST), &sel), 0);
	assert_int_equal(sel.nports, MAX_LIST);
	assert_range(&sel, MAX_LIST - 1, MAX_LIST, MAX_LIST);
}

static void test_parse_ports_bad(void **state)
{
	static const char *const bad[] = {
		"",
		"90-80",
		"70000",
		"0",
		"0-10",
		"80,,443",
		"80,",
		",80",
		",",
		",,",
		"a",
		"80-",
		"-80",
		"-",
		"80-90-100",
		"80 ",
		" 80",
		"+80",
		"-1",
		"80-70000",
		"65536",
		"all,80",
		"80,all",
		"ALL",
		"all ",
		"8O",
		"80;443",
		"80:90",
		"1e3",
		"80-0",
		"99999999999999999999",
	};
	struct selection sel;
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		memset(&sel, 0, sizeof(sel));
		r = parse_ports(bad[i], &sel);
		if (r != -EINVAL)
			fail_msg("parse_ports('%s') returned %d, not -EINVAL", bad[i], r);
	}
	/* config.h promises -EINVAL, but config_parse tells this case apart
	 * by -E2BIG; either is an error. */
	memset(&sel, 0, sizeof(sel));
	r = parse_ports(port_list(MAX_LIST + 1), &sel);
	assert_true(r == -EINVAL || r == -E2BIG);
}

/* --intercept and --gateway each take PORTS and set their mode. */
static void test_intercept_gateway(void **state)
{
	static const char *const bad[] = {
		"", "90-80", "70000", "0", "80,,443", "80,", ",80", "a", "80-", "-80", "65536",
	};
	static const char *const mode_opts[] = { "--intercept", "--gateway" };
	struct config cfg;
	struct args a;

	assert_parses(ARGV("--intercept", "80,443,8000-8100"), &cfg);
	assert_int_equal(cfg.mode, MODE_INTERCEPT);
	assert_int_equal(cfg.sel.nports, 3);
	assert_range(&cfg.sel, 2, 8000, 8100);
	assert_false(cfg.sel.all_ports);
	assert_false(cfg.sel.loopback);

	assert_parses(ARGV("--gateway", "all"), &cfg);
	assert_int_equal(cfg.mode, MODE_GATEWAY);
	assert_true(cfg.sel.all_ports);
	assert_int_equal(cfg.sel.nports, 0);

	assert_parses(ARGV("--intercept=all"), &cfg);
	assert_int_equal(cfg.mode, MODE_INTERCEPT);
	assert_true(cfg.sel.all_ports);

	for (size_t m = 0; m < ARRAY_SIZE(mode_opts); m++) {
		for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
			assert_refused(ARGV(mode_opts[m], bad[i]), mode_opts[m]);

		args_init(&a, ARGV(mode_opts[m], port_list(MAX_LIST)));
		assert_args_parse(&a, &cfg);
		assert_int_equal(cfg.sel.nports, MAX_LIST);
		args_init(&a, ARGV(mode_opts[m], port_list(MAX_LIST + 1)));
		assert_args_refused(&a, mode_opts[m]);
	}
}

/* Exactly one mode. */
static void test_one_mode(void **state)
{
	assert_refused(ARGV("--listen", "127.0.0.1:9000", "--upstream", "127.0.0.1:80",
			    "--intercept", "80"),
		       "--intercept");
	assert_refused(ARGV("--intercept", "80", "--listen", "127.0.0.1:9000"), "--listen");
	assert_refused(ARGV("--gateway", "80", "--upstream", "127.0.0.1:80"), "--gateway");
	assert_refused(ARGV("--intercept", "80", "--gateway", "443"), "--gateway");
	assert_refused(ARGV("--gateway", "80", "--intercept", "443"), "--intercept");
	assert_refused(ARGV("--intercept", "80", "--intercept", "443"), "--intercept");
	assert_refused(ARGV("--gateway", "all", "--gateway", "all"), "--gateway");
}

/*
 * The selection flags belong to intercept and gateway mode; listen mode
 * refuses each of them.
 */
static void test_selection_modes(void **state)
{
	static const char *const flags[][2] = {
		{ "--uid", "1000" },
		{ "--exclude-uid", "0" },
		{ "--dest", "10.0.0.0/8" },
		{ "--exclude-dest", "fd00::/8" },
		{ "--cgroup", "/sys/fs/cgroup/x" },
		{ "--intercept-loopback", NULL },
	};
	struct config cfg;
	struct args a;

	for (size_t i = 0; i < ARRAY_SIZE(flags); i++) {
		args_init(&a, ARGV("--listen", "127.0.0.1:9000", "--upstream", "127.0.0.1:80"));
		args_add(&a, "%s", flags[i][0]);
		if (flags[i][1])
			args_add(&a, "%s", flags[i][1]);
		assert_args_refused(&a, "--intercept");

		args_init(&a, ARGV("--intercept", "80"));
		args_add(&a, "%s", flags[i][0]);
		if (flags[i][1])
			args_add(&a, "%s", flags[i][1]);
		assert_args_parse(&a, &cfg);

		args_init(&a, ARGV("--gateway", "80"));
		args_add(&a, "%s", flags[i][0]);
		if (flags[i][1])
			args_add(&a, "%s", flags[i][1]);
		assert_args_parse(&a, &cfg);
	}

	assert_parses(ARGV("--uid", "1000", "--exclude-uid", "0", "--intercept", "80", "--uid",
			   "4294967294", "--exclude-uid", "0x10", "--dest", "10.1.2.3/8", "--dest",
			   "2001:db8::1", "--exclude-dest", "192.168.0.0/16", "--cgroup",
			   "/sys/fs/cgroup/app", "--intercept-loopback"),
		      &cfg);
	assert_int_equal(cfg.mode, MODE_INTERCEPT);
	assert_int_equal(cfg.sel.nuids, 2);
	assert_int_equal(cfg.sel.uids[0], 1000);
	assert_int_equal(cfg.sel.uids[1], 4294967294u);
	assert_int_equal(cfg.sel.nxuids, 2);
	assert_int_equal(cfg.sel.xuids[0], 0);
	assert_int_equal(cfg.sel.xuids[1], 16);
	assert_int_equal(cfg.sel.ndests, 2);
	assert_int_equal(cfg.sel.dests[0].family, AF_INET);
	assert_int_equal(cfg.sel.dests[0].prefix, 8);
	assert_int_equal(cfg.sel.dests[1].family, AF_INET6);
	assert_int_equal(cfg.sel.dests[1].prefix, 128);
	assert_int_equal(cfg.sel.nxdests, 1);
	assert_int_equal(cfg.sel.xdests[0].prefix, 16);
	assert_string_equal(cfg.sel.cgroup, "/sys/fs/cgroup/app");
	assert_true(cfg.sel.loopback);

	/* Each parse starts from a clean configuration. */
	assert_parses(ARGV("--intercept", "443"), &cfg);
	assert_int_equal(cfg.sel.nports, 1);
	assert_int_equal(cfg.sel.nuids + cfg.sel.nxuids + cfg.sel.ndests + cfg.sel.nxdests, 0);
	assert_null(cfg.sel.cgroup);
	assert_false(cfg.sel.loopback);
}

/* MAX_LIST of each repeatable selection flag, and not one more. */
static void test_selection_limits(void **state)
{
	static const char *const flags[] = { "--uid", "--exclude-uid", "--dest", "--exclude-dest" };
	struct config cfg;
	struct args a;

	for (size_t f = 0; f < ARRAY_SIZE(flags); f++) {
		args_init(&a, ARGV("--intercept", "80"));
		for (unsigned i = 0; i < MAX_LIST; i++) {
			args_add(&a, "%s", flags[f]);
			if (f < 2)
				args_add(&a, "%u", 1000 + i);
			else
				args_add(&a, "10.%u.0.0/16", i);
		}
		assert_args_parse(&a, &cfg);
		assert_int_equal(f == 0	  ? cfg.sel.nuids
				 : f == 1 ? cfg.sel.nxuids
				 : f == 2 ? cfg.sel.ndests
					  : cfg.sel.nxdests,
				 MAX_LIST);
		args_add(&a, "%s", flags[f]);
		args_add(&a, "%s", f < 2 ? "5" : "10.200.0.0/16");
		assert_args_refused(&a, flags[f]);
	}
}

static void test_selection_bad_values(void **state)
{
	static const char *const bad_uids[] = {
		"-1", "4294967295", "4294967296", "99999999999999999999", "abc", "", "1.5", " 1",
		"1 ", "+1",	    "1e3",
	};
	static const char *const bad_dests[] = { "nonsense", "10.0.0.0/33", "",
						 "::/129",   "10.0.0.0/08", "example.com" };

	for (size_t i = 0; i < ARRAY_SIZE(bad_uids); i++) {
		assert_refused(ARGV("--intercept", "80", "--uid", bad_uids[i]), "--uid");
		assert_refused(ARGV("--intercept", "80", "--exclude-uid", bad_uids[i]),
			       "--exclude-uid");
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad_dests); i++) {
		assert_refused(ARGV("--intercept", "80", "--dest", bad_dests[i]), "--dest");
		assert_refused(ARGV("--gateway", "80", "--exclude-dest", bad_dests[i]),
			       "--exclude-dest");
	}
	assert_refused(ARGV("--intercept", "80", "--cgroup", ""), "--cgroup");
	assert_refused(ARGV("--intercept", "80", "--cgroup", "/sys/fs/cgroup/a\"b"), "--cgroup");
}

static void test_parse_cidr(void **state)
{
	static const struct {
		const char *in;
		int family;
		const char *out;
	} good[] = {
		{ "10.0.0.0/8", AF_INET, "10.0.0.0/8" },
		{ "10.1.2.3/8", AF_INET, "10.0.0.0/8" },
		{ "10.255.255.255/9", AF_INET, "10.128.0.0/9" },
		{ "192.168.1.77/24", AF_INET, "192.168.1.0/24" },
		{ "192.168.1.77/31", AF_INET, "192.168.1.76/31" },
		{ "1.2.3.4", AF_INET, "1.2.3.4/32" },
		{ "1.2.3.4/32", AF_INET, "1.2.3.4/32" },
		{ "255.255.255.255/0", AF_INET, "0.0.0.0/0" },
		{ "fd00::/8", AF_INET6, "fd00::/8" },
		{ "fd12:3456::1/16", AF_INET6, "fd12::/16" },
		{ "ffff:ffff::/17", AF_INET6, "ffff:8000::/17" },
		{ "2001:db8::ff/120", AF_INET6, "2001:db8::/120" },
		{ "2001:db8::1/127", AF_INET6, "2001:db8::/127" },
		{ "::1", AF_INET6, "::1/128" },
		{ "2001:db8::1/128", AF_INET6, "2001:db8::1/128" },
		{ "::/0", AF_INET6, "::/0" },
		{ "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/64", AF_INET6,
		  "ffff:ffff:ffff:ffff::/64" },
	};
	struct cidr c;
	char buf[64];

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		memset(&c, 0xa5, sizeof(c));
		if (parse_cidr(good[i].in, &c) != 0)
			fail_msg("parse_cidr('%s') failed", good[i].in);
		assert_int_equal(c.family, good[i].family);
		assert_string_equal(cidr_format(&c, buf, sizeof(buf)), good[i].out);
	}

	/* The bytes themselves, beyond what cidr_format shows. */
	assert_int_equal(parse_cidr("10.1.2.3/8", &c), 0);
	assert_int_equal(c.prefix, 8);
	assert_memory_equal(c.addr, ((const uint8_t[16]){ 10 }), 16);
	assert_int_equal(parse_cidr("::1", &c), 0);
	assert_int_equal(c.prefix, 128);
	assert_memory_equal(c.addr, ((const uint8_t[16]){ [15] = 1 }), 16);
}

static void test_parse_cidr_bad(void **state)
{
	static const char *const bad[] = {
		"10.0.0.0/33",
		"::/129",
		"10.0.0.0/-1",
		"10.0.0.0/08",
		"::/00",
		"10.0.0.0/0x8",
		"10.0.0.0/+8",
		"10.0.0.0/",
		"::1/",
		"",
		"/8",
		"nonsense",
		"nonsense/8",
		"10.0.0/8",
		"10.0.0.0/8/8",
		"10.0.0.0/ 8",
		"10.0.0.0/8 ",
		"10.0.0.0 /8",
		" 10.0.0.0/8",
		"10.0.0.0/99999999999999999999",
		"fe80::1%lo",
		"[::1]/128",
		"0000:0000:0000:0000:0000:0000:0000:0000:0001/128",
	};
	struct cidr c;
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		r = parse_cidr(bad[i], &c);
		if (r != -EINVAL)
			fail_msg("parse_cidr('%s') returned %d, not -EINVAL", bad[i], r);
	}
}

static void test_window(void **state)
{
	static const struct {
		const char *in;
		uint32_t bytes;
	} good[] = {
		{ "4K", 4096 },		  { "4k", 4096 },
		{ "4096", 4096 },	  { "256K", 256 * 1024 },
		{ "1m", 1024 * 1024 },	  { "64M", MAX_WINDOW },
		{ "65536K", MAX_WINDOW }, { "67108864", MAX_WINDOW },
	};
	static const char *const bad[] = {
		"4095",	    "3K",  "0",	  "65M",  "65537K",
		"67108865", "1G",  "K",	  "",	  "4KB",
		"-4K",	    "4 K", "4K ", "0.5M", "99999999999999999999K",
	};
	struct config cfg;

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		assert_parses(ARGV("--intercept", "80", "--window", good[i].in), &cfg);
		assert_int_equal(cfg.window, good[i].bytes);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_refused(ARGV("--intercept", "80", "--window", bad[i]), "--window");
}

static void test_mark(void **state)
{
	struct config cfg;

	assert_parses(ARGV("--listen", "127.0.0.1:9000", "--upstream", "127.0.0.1:80"), &cfg);
	assert_int_equal(cfg.mark, DEFAULT_MARK);
	assert_false(cfg.mark_set);

	assert_parses(
		ARGV("--listen", "127.0.0.1:9000", "--upstream", "127.0.0.1:80", "--mark", "0x10"),
		&cfg);
	assert_int_equal(cfg.mark, 16);
	assert_true(cfg.mark_set);

	assert_parses(ARGV("--mark", "4294967295", "--listen", "127.0.0.1:9000", "--upstream",
			   "127.0.0.1:80"),
		      &cfg);
	assert_int_equal(cfg.mark, UINT32_MAX);

	/* Interception must not catch its own connections: always set. */
	assert_parses(ARGV("--intercept", "80"), &cfg);
	assert_int_equal(cfg.mark, DEFAULT_MARK);
	assert_true(cfg.mark_set);
	assert_parses(ARGV("--gateway", "80"), &cfg);
	assert_int_equal(cfg.mark, DEFAULT_MARK);
	assert_true(cfg.mark_set);
	assert_parses(ARGV("--gateway", "80", "--mark", "7"), &cfg);
	assert_int_equal(cfg.mark, 7);
	assert_true(cfg.mark_set);

	assert_refused(ARGV("--intercept", "80", "--mark", "0"), "--mark");
	assert_refused(ARGV("--intercept", "80", "--mark", "0x0"), "--mark");
	assert_refused(ARGV("--intercept", "80", "--mark", "0x"), "--mark");
	assert_refused(ARGV("--intercept", "80", "--mark", "4294967296"), "--mark");
	assert_refused(ARGV("--intercept", "80", "--mark", "-1"), "--mark");
	assert_refused(ARGV("--intercept", "80", "--mark", "slice"), "--mark");
	assert_refused(ARGV("--intercept", "80", "--mark", ""), "--mark");
}

static void test_drain_seconds(void **state)
{
	static const char *const bad[] = { "3601", "-1", "", "1s", "99999999999999999999" };
	struct config cfg;

	assert_parses(ARGV("--intercept", "80", "--drain-seconds", "0"), &cfg);
	assert_int_equal(cfg.drain_seconds, 0);
	assert_parses(ARGV("--intercept", "80", "--drain-seconds", "3600"), &cfg);
	assert_int_equal(cfg.drain_seconds, 3600);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_refused(ARGV("--intercept", "80", "--drain-seconds", bad[i]),
			       "--drain-seconds");
}

static void test_log_level(void **state)
{
	static const struct {
		const char *name;
		int level;
	} good[] = {
		{ "error", LOG_ERR },
		{ "warning", LOG_WARN },
		{ "info", LOG_INFO },
		{ "debug", LOG_DEBUG },
	};
	static const char *const bad[] = { "warn", "DEBUG", "", "3", "info " };
	struct config cfg;

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		assert_parses(ARGV("--intercept", "80", "--log-level", good[i].name), &cfg);
		assert_int_equal(cfg.log_level, good[i].level);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_refused(ARGV("--intercept", "80", "--log-level", bad[i]), "--log-level");
}

static void test_log_format(void **state)
{
	static const char *const bad[] = { "JSON", "", "xml", "json " };
	struct config cfg;

	assert_parses(ARGV("--intercept", "80"), &cfg);
	assert_int_equal(cfg.log_format, LOG_FORMAT_TEXT);
	assert_parses(ARGV("--intercept", "80", "--log-format", "json"), &cfg);
	assert_int_equal(cfg.log_format, LOG_FORMAT_JSON);
	assert_parses(ARGV("--intercept", "80", "--log-format", "text"), &cfg);
	assert_int_equal(cfg.log_format, LOG_FORMAT_TEXT);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_refused(ARGV("--intercept", "80", "--log-format", bad[i]), "--log-format");
}

/* --workers (default: the cores we may run on), --max-filters (default 16
 * per worker), --owner-wait and --busy-poll. */
static void test_workers_and_waits(void **state)
{
	static const char *const bad_workers[] = { "0", "65", "-1", "", "two", "2x" };
	static const char *const bad_wait[] = { "10001", "-1", "", "1s" };
	cpu_set_t set;
	unsigned cores;
	struct config cfg;

	assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
	cores = (unsigned)CPU_COUNT(&set) > 64 ? 64 : (unsigned)CPU_COUNT(&set);
	assert_parses(ARGV("--intercept", "80"), &cfg);
	assert_int_equal(cfg.workers, cores);
	assert_int_equal(cfg.max_filters, 16 * cores > 1024 ? 1024 : 16 * cores);
	assert_int_equal(cfg.owner_wait_ms, 100);
	assert_parses(ARGV("--intercept", "80", "--workers", "1"), &cfg);
	assert_int_equal(cfg.workers, 1);
	assert_int_equal(cfg.max_filters, 16);
	assert_parses(ARGV("--intercept", "80", "--workers", "64"), &cfg);
	assert_int_equal(cfg.workers, 64);
	assert_int_equal(cfg.max_filters, 1024);
	assert_parses(ARGV("--intercept", "80", "--workers", "4", "--max-filters", "3"), &cfg);
	assert_int_equal(cfg.max_filters, 3);
	for (size_t i = 0; i < ARRAY_SIZE(bad_workers); i++)
		assert_refused(ARGV("--intercept", "80", "--workers", bad_workers[i]), "--workers");

	assert_parses(ARGV("--intercept", "80", "--owner-wait", "0"), &cfg);
	assert_int_equal(cfg.owner_wait_ms, 0);
	assert_parses(ARGV("--intercept", "80", "--owner-wait", "10000"), &cfg);
	assert_int_equal(cfg.owner_wait_ms, 10000);
	for (size_t i = 0; i < ARRAY_SIZE(bad_wait); i++)
		assert_refused(ARGV("--intercept", "80", "--owner-wait", bad_wait[i]),
			       "--owner-wait");

	assert_int_equal(cfg.busy_poll_us, 0);
	assert_parses(ARGV("--intercept", "80", "--busy-poll", "50"), &cfg);
	assert_int_equal(cfg.busy_poll_us, 50);
	assert_parses(ARGV("--intercept", "80", "--busy-poll", "10000"), &cfg);
	assert_int_equal(cfg.busy_poll_us, 10000);
	for (size_t i = 0; i < ARRAY_SIZE(bad_wait); i++)
		assert_refused(ARGV("--intercept", "80", "--busy-poll", bad_wait[i]),
			       "--busy-poll");
}

/* --port, --max-flows and --filter-socket at their bounds. */
static void test_other_options(void **state)
{
	char path[128];
	struct config cfg;

	assert_parses(ARGV("--intercept", "80", "--port", "0"), &cfg);
	assert_int_equal(cfg.port, 0);
	assert_parses(ARGV("--intercept", "80", "--port", "65535"), &cfg);
	assert_int_equal(cfg.port, 65535);
	assert_refused(ARGV("--intercept", "80", "--port", "65536"), "--port");
	assert_refused(ARGV("--intercept", "80", "--port", "http"), "--port");

	assert_parses(ARGV("--intercept", "80", "--max-flows", "1"), &cfg);
	assert_int_equal(cfg.max_flows, 1);
	assert_parses(ARGV("--intercept", "80", "--max-flows", "16777216"), &cfg);
	assert_int_equal(cfg.max_flows, 1u << 24);
	assert_refused(ARGV("--intercept", "80", "--max-flows", "0"), "--max-flows");
	assert_refused(ARGV("--intercept", "80", "--max-flows", "16777217"), "--max-flows");

	/* sun_path holds 108 bytes, the NUL included. */
	memset(path, 'p', sizeof(path));
	path[0] = '/';
	path[107] = '\0';
	assert_parses(ARGV("--intercept", "80", "--filter-socket", path), &cfg);
	assert_int_equal(strlen(cfg.filter_socket), 107);
	path[107] = 'p';
	path[108] = '\0';
	assert_refused(ARGV("--intercept", "80", "--filter-socket", path), "--filter-socket");
	assert_refused(ARGV("--intercept", "80", "--filter-socket", ""), "--filter-socket");
}

/* getopt's own errors, reported with the option as given. */
static void test_unknown_and_missing(void **state)
{
	static const char *const needs_arg[] = {
		"--listen", "--upstream",  "--intercept",     "--gateway",
		"--uid",    "--window",	   "--mark",	      "--port",
		"--cgroup", "--log-level", "--drain-seconds",
	};
	struct args a;

	assert_refused(ARGV("--intercept", "80", "--bogus"), "--bogus");
	assert_refused(ARGV("--bogus", "--intercept", "80"), "unknown option '--bogus'");
	assert_refused(ARGV("--intercept", "80", "--bogus=1"), "--bogus");
	for (size_t i = 0; i < ARRAY_SIZE(needs_arg); i++) {
		args_init(&a, ARGV("--intercept", "80", needs_arg[i]));
		assert_args_refused(&a, needs_arg[i]);
		args_init(&a, ARGV("--intercept", "80", needs_arg[i]));
		assert_args_refused(&a, "needs an argument");
	}
}

/*
 * Cases that getopt reports with optopt set although nothing is missing:
 * an unknown short option, and an argument given to an option that takes
 * none. The message must still name what is wrong.
 */
static void test_other_getopt_errors(void **state)
{
	unsigned bad = 0;
	struct args a;

	args_init(&a, ARGV("--intercept", "80", "-x"));
	bad += check_refused(&a, "'-x'", "needs an argument");
	/* Two short options in one word: getopt has not moved optind past
	 * the word when it reports the first. */
	args_init(&a, ARGV("--intercept", "80", "-xy"));
	bad += check_refused(&a, "-x", "needs an argument");
	args_init(&a, ARGV("--intercept", "80", "--intercept-loopback=yes"));
	bad += check_refused(&a, "--intercept-loopback", "needs an argument");
	args_init(&a, ARGV("--help=1"));
	bad += check_refused(&a, "--help", "needs an argument");
	assert_int_equal(bad, 0);
}

/*
 * The --option=VALUE spelling names the option too. The too-many-ranges
 * message looks back two arguments for the option's name, which is only
 * right for the two-word spelling.
 */
static void test_equals_spelling(void **state)
{
	unsigned bad = 0;
	struct args a;

	args_init(&a, NULL);
	args_add(&a, "--intercept=%s", port_list(MAX_LIST + 1));
	bad += check_refused(&a, "--intercept", NULL);
	args_init(&a, ARGV("--log-level", "debug"));
	args_add(&a, "--gateway=%s", port_list(MAX_LIST + 1));
	bad += check_refused(&a, "--gateway", NULL);
	/* The other messages name the option themselves. */
	args_init(&a, ARGV("--intercept=80,,443"));
	bad += check_refused(&a, "--intercept", NULL);
	args_init(&a, ARGV("--intercept=80", "--uid=x"));
	bad += check_refused(&a, "--uid", NULL);
	assert_int_equal(bad, 0);
}

/*
 * parse_uint() promises decimal or 0x hex. strtoull's base 0 also reads a
 * leading 0 as octal, so "010" would become 8, which nobody writing "010"
 * means; parse_cidr() refuses "/010" for this reason. Either refusing or
 * reading ten is acceptable; eight is not.
 */
static void test_leading_zero_not_octal(void **state)
{
	char msg[512];
	struct config cfg;
	unsigned bad = 0;
	struct args a;

#define CHECK_TEN(field, ...)                                                                      \
	do {                                                                                       \
		args_init(&a, ARGV(__VA_ARGS__));                                                  \
		if (config_parse(a.argc, a.argv, &cfg, msg, sizeof(msg)) == 0 && (field) != 10) {  \
			print_error("%s read as %lu\n", #__VA_ARGS__, (unsigned long)(field));     \
			bad++;                                                                     \
		}                                                                                  \
	} while (0)

	CHECK_TEN(cfg.sel.ports[0].lo, "--intercept", "010");
	CHECK_TEN(cfg.port, "--intercept", "80", "--port", "010");
	CHECK_TEN(cfg.sel.uids[0], "--intercept", "80", "--uid", "010");
	CHECK_TEN(cfg.mark, "--intercept", "80", "--mark", "010");
	CHECK_TEN(cfg.drain_seconds, "--intercept", "80", "--drain-seconds", "010");
	CHECK_TEN(cfg.max_flows, "--intercept", "80", "--max-flows", "010");
	CHECK_TEN(cfg.window / 1024, "--intercept", "80", "--window", "010K");
#undef CHECK_TEN
	assert_int_equal(bad, 0);
}

static void test_help_version(void **state)
{
	char msg[4096], small[17];
	struct config cfg;
	struct args a;

	args_init(&a, ARGV("--help"));
	assert_int_equal(config_parse(a.argc, a.argv, &cfg, msg, sizeof(msg)), 1);
	assert_non_null(strstr(msg, "Usage: sluiced"));
	assert_non_null(strstr(msg, "--intercept PORTS"));
	assert_non_null(strstr(msg, "--log-level"));

	args_init(&a, ARGV("--intercept", "80", "--version"));
	assert_int_equal(config_parse(a.argc, a.argv, &cfg, msg, sizeof(msg)), 1);
	assert_string_equal(msg, "sluiced " SLUICE_VERSION "\n");

	/* A short buffer gets a truncated text and nothing past its end. */
	memset(small, 'Z', sizeof(small));
	args_init(&a, ARGV("--help"));
	assert_int_equal(config_parse(a.argc, a.argv, &cfg, small, sizeof(small) - 1), 1);
	assert_int_equal(small[sizeof(small) - 1], 'Z');
	assert_int_equal(strlen(small), sizeof(small) - 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_listen_mode),
		cmocka_unit_test(test_listen_bad_addresses),
		cmocka_unit_test(test_parse_ports),
		cmocka_unit_test(test_parse_ports_bad),
		cmocka_unit_test(test_intercept_gateway),
		cmocka_unit_test(test_one_mode),
		cmocka_unit_test(test_selection_modes),
		cmocka_unit_test(test_selection_limits),
		cmocka_unit_test(test_selection_bad_values),
		cmocka_unit_test(test_parse_cidr),
		cmocka_unit_test(test_parse_cidr_bad),
		cmocka_unit_test(test_window),
		cmocka_unit_test(test_mark),
		cmocka_unit_test(test_drain_seconds),
		cmocka_unit_test(test_log_level),
		cmocka_unit_test(test_log_format),
		cmocka_unit_test(test_other_options),
		cmocka_unit_test(test_workers_and_waits),
		cmocka_unit_test(test_unknown_and_missing),
		cmocka_unit_test(test_other_getopt_errors),
		cmocka_unit_test(test_equals_spelling),
		cmocka_unit_test(test_leading_zero_not_octal),
		cmocka_unit_test(test_help_version),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
