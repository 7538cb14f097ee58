/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for nft_ruleset() in src/daemon/nft.c: the text made for
 * intercept and gateway configurations, checked rule by rule and in order,
 * its behaviour with short buffers, and, when nft(8) is installed and we
 * are root, the real nftables parser's verdict on it in check mode
 * (`nft -c`, which evaluates a ruleset in the kernel and commits nothing).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "nft.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_ARGS      256
/* What nft_rules_install() gives nft_ruleset(). */
#define INSTALL_BUF (64 * 1024)

#include "args.h"

static void parse_args(struct args *a, struct config *cfg)
{
	char msg[512] = "";

	if (config_parse(a->argc, a->argv, cfg, msg, sizeof(msg)) != 0)
		fail_msg("config_parse: %s", msg);
}

static void make_config(struct args *a, struct config *cfg, const char *const *list)
{
	args_init(a, list);
	parse_args(a, cfg);
}

/* The ruleset in a static buffer; its length must be what was returned. */
static const char *ruleset(const struct config *cfg, uint16_t port, uint32_t tproxy_mark)
{
	static char buf[INSTALL_BUF];
	int n;

	n = nft_ruleset(cfg, port, tproxy_mark, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(buf));
	return buf;
}

/* Each needle must occur, each after the end of the one before. */
static void assert_in_order(const char *text, const char *const *needles)
{
	const char *at = text;

	for (; *needles; needles++) {
		const char *found = strstr(at, *needles);

		if (!found)
			fail_msg("'%s' missing or out of order in:\n%s", *needles, text);
		at = found + strlen(*needles);
	}
}

static void assert_absent(const char *text, const char *const *needles)
{
	for (; *needles; needles++)
		if (strstr(text, *needles))
			fail_msg("'%s' should not be in:\n%s", *needles, text);
}

static void assert_ends_with(const char *text, const char *end)
{
	size_t n = strlen(text), k = strlen(end);

	if (n < k || strcmp(text + n - k, end))
		fail_msg("does not end with '%s':\n%s", end, text);
}

/* The preamble every ruleset starts with, whatever the mode. */
static void assert_preamble(const char *text)
{
	static const char start[] =
		"add table inet sluice\n"
		"delete table inet sluice\n"
		"table inet sluice {\n"
		"\tflags owner\n"
		"\tset on {\n\t\ttype inet_proto\n\t\telements = { tcp }\n\t}\n";

	if (strncmp(text, start, strlen(start)))
		fail_msg("preamble wrong:\n%s", text);
}

static void test_intercept_ports(void **state)
{
	struct config cfg;
	struct args a;
	const char *text;

	make_config(&a, &cfg, ARGV("--intercept", "80,443,8000-8100"));
	text = ruleset(&cfg, 8080, 0);
	assert_preamble(text);
	assert_in_order(text,
			ARGV("\tset ports {\n\t\ttype inet_service\n\t\tflags interval\n",
			     "\t\telements = { 80, 443, 8000-8100 }\n\t}\n", "\tchain output {\n",
			     /* The loop guard comes before anything else. */
			     "type nat hook output priority -100; policy accept;\n"
			     "\t\tmeta mark 0x5c1ce return\n",
			     "\t\tmeta l4proto != tcp return\n", "\t\ttcp dport != @ports return\n",
			     "\t\tip daddr 127.0.0.0/8 return\n", "\t\tip6 daddr ::1 return\n"));
	assert_ends_with(text, "\t\tip6 daddr ::1 return\n"
			       "\t\tmeta l4proto @on meta l4proto tcp redirect to :8080\n\t}\n}\n");
	assert_absent(text, ARGV("skuid", "dest", "nfproto", "cgroupv2", "tproxy", "transparent",
				 "prerouting"));
}

static void test_intercept_all_loopback(void **state)
{
	struct config cfg;
	struct args a;
	const char *text;

	make_config(&a, &cfg, ARGV("--intercept", "all", "--intercept-loopback", "--mark", "0x10"));
	text = ruleset(&cfg, 1, 0);
	assert_preamble(text);
	assert_in_order(text,
			ARGV("policy accept;\n\t\tmeta mark 0x10 return\n"
			     "\t\tmeta l4proto != tcp return\n"
			     "\t\tmeta l4proto @on meta l4proto tcp redirect to :1\n\t}\n}\n"));
	assert_ends_with(text, "redirect to :1\n\t}\n}\n");
	assert_absent(text, ARGV("set ports", "@ports", "127.0.0.0/8", "::1", "0x5c1ce"));
}

static void test_intercept_uids(void **state)
{
	struct config cfg;
	struct args a;
	const char *text;

	make_config(
		&a, &cfg,
		ARGV("--intercept", "80", "--uid", "1000", "--exclude-uid", "65534", "--uid", "0"));
	text = ruleset(&cfg, 8080, 0);
	assert_in_order(text,
			ARGV("ip6 daddr ::1 return\n", "\t\tmeta skuid != { 1000, 0 } return\n",
			     "\t\tmeta skuid { 65534 } return\n", "redirect to :8080\n"));

	make_config(&a, &cfg, ARGV("--intercept", "80", "--uid", "1000"));
	text = ruleset(&cfg, 8080, 0);
	assert_in_order(text, ARGV("\t\tmeta skuid != { 1000 } return\n"));
	assert_absent(text, ARGV("meta skuid {"));

	make_config(&a, &cfg, ARGV("--intercept", "80", "--exclude-uid", "0"));
	text = ruleset(&cfg, 8080, 0);
	assert_in_order(text, ARGV("\t\tmeta skuid { 0 } return\n"));
	assert_absent(text, ARGV("skuid !="));
}

/*
 * Destinations go into one set per family; with destinations of one family
 * only, connections of the other are not selected at all.
 */
static void test_intercept_dests(void **state)
{
	struct config cfg;
	struct args a;
	const char *text;

	make_config(&a, &cfg,
		    ARGV("--intercept", "80", "--dest", "10.1.2.3/8", "--dest", "192.168.1.1"));
	text = ruleset(&cfg, 8080, 0);
	assert_in_order(text, ARGV("\tset dest4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n",
				   "\t\telements = { 10.0.0.0/8, 192.168.1.1/32 }\n\t}\n",
				   "chain output", "\t\tip daddr != @dest4 return\n",
				   "\t\tmeta nfproto ipv6 return\n", "redirect to :8080\n"));
	assert_absent(text, ARGV("dest6", "nfproto ipv4", "xdest"));

	make_config(&a, &cfg, ARGV("--intercept", "80", "--dest", "fd00::1/8"));
	text = ruleset(&cfg, 8080, 0);
	assert_in_order(text, ARGV("\tset dest6 {\n\t\ttype ipv6_addr\n\t\tflags interval\n",
				   "\t\telements = { fd00::/8 }\n\t}\n", "chain output",
				   "\t\tmeta nfproto ipv4 return\n",
				   "\t\tip6 daddr != @dest6 return\n", "redirect to :8080\n"));
	assert_absent(text, ARGV("dest4", "nfproto ipv6", "xdest"));

	make_config(&a, &cfg,
		    ARGV("--intercept", "80", "--dest", "fd00::/8", "--dest", "10.0.0.0/8",
			 "--exclude-dest", "10.9.0.0/16", "--exclude-dest", "::1", "--exclude-dest",
			 "10.8.0.0/16"));
	text = ruleset(&cfg, 8080, 0);
	assert_in_order(text,
			ARGV("\tset ports {", "\tset dest4 {", "elements = { 10.0.0.0/8 }",
			     "\tset dest6 {", "elements = { fd00::/8 }", "\tset xdest4 {",
			     "elements = { 10.9.0.0/16, 10.8.0.0/16 }", "\tset xdest6 {",
			     "elements = { ::1/128 }", "chain output",
			     "\t\tip daddr @xdest4 return\n", "\t\tip6 daddr @xdest6 return\n",
			     "\t\tip daddr != @dest4 return\n", "\t\tip6 daddr != @dest6 return\n",
			     "redirect to :8080\n"));
	assert_absent(text, ARGV("nfproto"));

	/* Exclusions alone restrict neither family. */
	make_config(&a, &cfg, ARGV("--intercept", "80", "--exclude-dest", "10.0.0.0/8"));
	text = ruleset(&cfg, 8080, 0);
	assert_in_order(text, ARGV("\tset xdest4 {", "\t\tip daddr @xdest4 return\n"));
	assert_absent(text, ARGV("nfproto", "xdest6", "@dest4", "set dest"));
}

/*
 * The cgroup is resolved at start-up, so the test fills in what that would
 * find. It is matched positively, on the redirect rule.
 */
static void test_intercept_cgroup(void **state)
{
	struct config cfg;
	struct args a;
	const char *text;

	make_config(&a, &cfg,
		    ARGV("--intercept", "80", "--cgroup", "/sys/fs/cgroup/user.slice/app"));
	snprintf(cfg.sel.cgroup_rel, sizeof(cfg.sel.cgroup_rel), "user.slice/app");
	cfg.sel.cgroup_level = 2;
	text = ruleset(&cfg, 8080, 0);
	assert_ends_with(text, "\t\tip6 daddr ::1 return\n"
			       "\t\tsocket cgroupv2 level 2 \"user.slice/app\" "
			       "meta l4proto @on meta l4proto tcp redirect to :8080\n\t}\n}\n");
	assert_in_order(text, ARGV("cgroupv2"));
	assert_absent(text, ARGV("cgroupv2 level 2 \"user.slice/app\" return"));
}

static void test_gateway(void **state)
{
	struct config cfg;
	struct args a;
	const char *text;

	make_config(&a, &cfg, ARGV("--gateway", "80,443", "--dest", "10.0.0.0/8"));
	text = ruleset(&cfg, 9000, 0x1);
	assert_preamble(text);
	assert_in_order(text,
			ARGV("\tset ports {", "elements = { 80, 443 }", "\tset dest4 {",
			     "\tchain prerouting {\n"
			     "\t\ttype filter hook prerouting priority -150; policy accept;\n"
			     "\t\tmeta l4proto tcp socket transparent 1 meta mark set 0x1 accept\n"
			     "\t\tmeta l4proto != tcp return\n",
			     "\t\ttcp dport != @ports return\n", "\t\tip daddr != @dest4 return\n",
			     "\t\tmeta nfproto ipv6 return\n"));
	assert_ends_with(text, "\t\tmeta nfproto ipv6 return\n"
			       "\t\tmeta l4proto @on meta l4proto tcp tproxy ip to :9000 meta mark "
			       "set 0x1 accept\n"
			       "\t\tmeta l4proto @on meta l4proto tcp tproxy ip6 to :9000 meta "
			       "mark set 0x1 accept\n"
			       "\t}\n}\n");
	assert_absent(text, ARGV("127.0.0.0/8", "::1", "redirect", "chain output",
				 "meta mark 0x5c1ce return", "cgroupv2"));

	/* Loopback skipping is for locally made connections only. */
	make_config(&a, &cfg, ARGV("--gateway", "all", "--mark", "0x77"));
	text = ruleset(&cfg, 9000, 0x5c1cf);
	assert_in_order(text, ARGV("socket transparent 1 meta mark set 0x5c1cf accept\n"
				   "\t\tmeta l4proto != tcp return\n"
				   "\t\tmeta l4proto @on meta l4proto tcp tproxy ip to :9000 meta "
				   "mark set 0x5c1cf "
				   "accept\n"));
	assert_absent(text, ARGV("@ports", "set ports", "127.0.0.0/8", "0x77"));
}

/* Every selection list at MAX_LIST, with the longest elements. */
static void make_largest(struct args *a, struct config *cfg, enum mode mode)
{
	char ports[1024];
	size_t used = 0;

	for (unsigned i = 0; i < MAX_LIST; i++)
		used += (size_t)snprintf(ports + used, sizeof(ports) - used, "%s%u-%u",
					 i ? "," : "", 60000 + i * 100, 60000 + i * 100 + 99);
	args_init(a, NULL);
	args_add(a, "%s", mode == MODE_INTERCEPT ? "--intercept" : "--gateway");
	args_add(a, "%s", ports);
	args_add(a, "--mark=4294967295");
	for (unsigned i = 0; i < MAX_LIST; i++) {
		args_add(a, "--uid=%u", 4294967294u - i);
		args_add(a, "--exclude-uid=%u", 4000000000u + i);
		if (i % 2)
			args_add(a, "--dest=ffff:ffff:ffff:ffff:ffff:ffff:ffff:%x/128", 0xff00 + i);
		else
			args_add(a, "--dest=255.255.%u.255", 200 + i);
		args_add(a, "--exclude-dest=ffff:ffff:ffff:ffff:ffff:ffff:ffff:%x/128", 0xee00 + i);
	}
	parse_args(a, cfg);
	if (mode == MODE_INTERCEPT) {
		memset(cfg->sel.cgroup_rel, 'c', sizeof(cfg->sel.cgroup_rel) - 1);
		cfg->sel.cgroup_rel[sizeof(cfg->sel.cgroup_rel) - 1] = '\0';
		cfg->sel.cgroup = cfg->sel.cgroup_rel;
		cfg->sel.cgroup_level = 4294967295u;
	}
}

/*
 * A buffer one byte short gives -ENOSPC, and no length writes past the end
 * of the buffer. The largest configuration fits nft_rules_install()'s.
 */
static void test_enospc(void **state)
{
	static const enum mode modes[] = { MODE_INTERCEPT, MODE_GATEWAY };
	struct config cfg;
	struct args a;

	for (size_t m = 0; m < ARRAY_SIZE(modes); m++) {
		const char *full;
		size_t n;
		char *buf;

		make_largest(&a, &cfg, modes[m]);
		full = ruleset(&cfg, 65535, UINT32_MAX);
		n = strlen(full);
		assert_true(n < INSTALL_BUF);
		for (size_t len = 0; len <= n + 1; len++) {
			int r;

			buf = malloc(len + 1);
			assert_non_null(buf);
			memset(buf, 0xee, len + 1);
			r = nft_ruleset(&cfg, 65535, UINT32_MAX, buf, len);
			if (len <= n) {
				assert_int_equal(r, -ENOSPC);
			} else {
				assert_int_equal(r, (int)n);
				assert_string_equal(buf, full);
			}
			if ((unsigned char)buf[len] != 0xee)
				fail_msg("nft_ruleset wrote past a buffer of %zu bytes", len);
			free(buf);
		}
	}
	/* And with no buffer at all. */
	assert_int_equal(nft_ruleset(&cfg, 1, 1, NULL, 0), -ENOSPC);
}

/* nft(8), looked for where root's PATH has it even if ours does not. */
static bool find_nft(char *path, size_t len)
{
	const char *env = getenv("PATH");
	char dirs[4096];
	char *save = NULL;

	snprintf(dirs, sizeof(dirs), "%s:/usr/sbin:/sbin", env ? env : "");
	for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(path, len, "%s/nft", d);
		if (access(path, X_OK) == 0)
			return true;
	}
	return false;
}

/*
 * Runs `nft -c -f FILE` on the ruleset. Returns nft's exit status, with
 * what it printed in out.
 */
static int nft_check(const char *nft, const char *text, char *out, size_t outlen)
{
	char file[] = "/tmp/sluice-test-nft-XXXXXX";
	size_t got = 0, n = strlen(text);
	int fd, pipefd[2], status;
	pid_t pid;
	ssize_t r;

	fd = mkstemp(file);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, n), (ssize_t)n);
	assert_int_equal(close(fd), 0);
	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pipefd[1], 1);
		dup2(pipefd[1], 2);
		close(pipefd[0]);
		close(pipefd[1]);
		execl(nft, "nft", "-c", "-f", file, (char *)NULL);
		_exit(127);
	}
	close(pipefd[1]);
	while (got + 1 < outlen && (r = read(pipefd[0], out + got, outlen - got - 1)) > 0)
		got += (size_t)r;
	out[got] = '\0';
	close(pipefd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	unlink(file);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/*
 * What start-up would resolve for our own cgroup: its path below
 * /sys/fs/cgroup and its depth below the cgroup v2 mount. Returns false
 * when that is not a directory nftables can find.
 */
static bool own_cgroup(struct selection *sel)
{
	static const char base[] = "/sys/fs/cgroup/";
	char line[4096], mnt[4096] = "", cg[4096] = "", full[8192];
	struct stat st;
	FILE *f;

	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		char *sep = strstr(line, " - ");

		if (sep && !strncmp(sep + 3, "cgroup2 ", 8) &&
		    sscanf(line, "%*s %*s %*s %*s %4095s", mnt) == 1)
			break;
		mnt[0] = '\0';
	}
	fclose(f);
	f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "0::", 3) && sscanf(line + 3, "%4095s", cg) == 1)
			break;
	fclose(f);
	if (!*mnt || *cg != '/')
		return false;
	snprintf(full, sizeof(full), "%s%s", mnt, strcmp(cg, "/") ? cg : "");
	if (strncmp(full, base, sizeof(base) - 1) || !full[sizeof(base) - 1] ||
	    strlen(full + sizeof(base) - 1) >= sizeof(sel->cgroup_rel) || stat(full, &st) ||
	    !S_ISDIR(st.st_mode))
		return false;
	snprintf(sel->cgroup_rel, sizeof(sel->cgroup_rel), "%s", full + sizeof(base) - 1);
	sel->cgroup = sel->cgroup_rel;
	sel->cgroup_level = 0;
	for (const char *p = cg; strcmp(cg, "/") && *p; p++)
		sel->cgroup_level += *p == '/';
	return true;
}

/*
 * Returns false, after a note, when nft cannot be run here. Check mode
 * still talks to the kernel, so it needs nft and CAP_NET_ADMIN.
 */
static bool can_check(char *nft, size_t len)
{
	if (!find_nft(nft, len)) {
		print_message("note: nft not found; not validating rulesets with nft -c\n");
		return false;
	}
	if (geteuid() != 0) {
		print_message("note: not root; not validating rulesets with nft -c\n");
		return false;
	}
	return true;
}

static void assert_nft_accepts(const char *nft, const struct config *cfg, const char *what)
{
	char out[4096];
	const char *text = ruleset(cfg, 8080, 0x5c1cf);

	/* The whole text, "delete table" included: in one transaction the
	 * "add table" before it gives it a table to delete, so check mode
	 * accepts it with no sluice table on the host. */
	if (nft_check(nft, text, out, sizeof(out)) != 0)
		fail_msg("nft -c refused the ruleset for %s:\n%s\n%s", what, out, text);
}

/* Configurations of each kind, through the real nftables parser. */
static void test_nft_check(void **state)
{
	const struct {
		const char *what;
		const char *const *argv;
	} cases[] = {
		{ "a ports list", ARGV("--intercept", "80,443,8000-8100") },
		{ "all ports",
		  ARGV("--intercept", "all", "--intercept-loopback", "--mark", "0x10") },
		{ "dests of both families",
		  ARGV("--intercept", "80", "--dest", "10.0.0.0/8", "--dest", "fd00::/8",
		       "--exclude-dest", "10.9.0.0/16", "--exclude-dest", "::1") },
		{ "IPv4 dests", ARGV("--intercept", "80", "--dest", "10.0.0.0/8") },
		{ "IPv6 dests", ARGV("--intercept", "80", "--dest", "2001:db8::/32") },
		{ "uid lists", ARGV("--intercept", "80", "--uid", "1000", "--uid", "0",
				    "--exclude-uid", "65534") },
		{ "a gateway", ARGV("--gateway", "80,443", "--dest", "10.0.0.0/8", "--exclude-dest",
				    "2001:db8::/32") },
		{ "a gateway on all ports", ARGV("--gateway", "all") },
	};
	char nft[4096];
	struct config cfg;
	struct args a;

	if (!can_check(nft, sizeof(nft))) {
		skip();
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		make_config(&a, &cfg, cases[i].argv);
		assert_nft_accepts(nft, &cfg, cases[i].what);
	}
	make_largest(&a, &cfg, MODE_GATEWAY);
	assert_nft_accepts(nft, &cfg, "the largest gateway");
	make_largest(&a, &cfg, MODE_INTERCEPT);
	if (own_cgroup(&cfg.sel)) {
		assert_nft_accepts(nft, &cfg, "the largest intercept, with our cgroup");
	} else {
		print_message("note: no cgroup v2 directory below /sys/fs/cgroup; "
			      "not validating the cgroup rule with nft -c\n");
		cfg.sel.cgroup = NULL;
		assert_nft_accepts(nft, &cfg, "the largest intercept");
	}
}

/*
 * config_parse accepts overlapping port ranges and destinations, but the
 * interval sets nft_ruleset makes refuse them ("conflicting intervals
 * specified"), so such a command line fails only at start-up, with
 * nftables' message instead of one naming the option.
 */
static void test_nft_check_overlaps(void **state)
{
	const struct {
		const char *what;
		const char *const *argv;
	} cases[] = {
		{ "overlapping ports", ARGV("--intercept", "80-90,85") },
		{ "overlapping dests",
		  ARGV("--intercept", "80", "--dest", "10.0.0.0/8", "--dest", "10.1.0.0/16") },
		{ "overlapping excluded dests", ARGV("--gateway", "80", "--exclude-dest",
						     "fd00::/8", "--exclude-dest", "fd00::1") },
	};
	char nft[4096], out[4096];
	unsigned refused = 0;
	struct config cfg;
	struct args a;

	if (!can_check(nft, sizeof(nft))) {
		skip();
		return;
	}
	/* Every case is tried, so that the report names all that fail. */
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		make_config(&a, &cfg, cases[i].argv);
		if (nft_check(nft, ruleset(&cfg, 8080, 0x5c1cf), out, sizeof(out)) != 0) {
			print_error("nft -c refused the ruleset for %s: %s", cases[i].what, out);
			refused++;
		}
	}
	assert_int_equal(refused, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_intercept_ports),
		cmocka_unit_test(test_intercept_all_loopback),
		cmocka_unit_test(test_intercept_uids),
		cmocka_unit_test(test_intercept_dests),
		cmocka_unit_test(test_intercept_cgroup),
		cmocka_unit_test(test_gateway),
		cmocka_unit_test(test_enospc),
		cmocka_unit_test(test_nft_check),
		cmocka_unit_test(test_nft_check_overlaps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
