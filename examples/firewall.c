/* SPDX-License-Identifier: MIT */
/*
 * sluice-firewall: allows, denies or redirects each new flow by its
 * destination, its destination port, and the uid and command name of the
 * program that opened it, from a small rules file. It decides when a flow
 * opens and never looks at its data.
 *
 * The rules file has one rule per line; '#' starts a comment, blank lines
 * are ignored:
 *
 *	# comment
 *	deny  port 25
 *	deny  dest 10.0.0.0/8 port 80-90
 *	allow comm curl
 *	deny  uid 1001
 *	redirect dest 127.0.0.1 port 8080 to 127.0.0.1:9090
 *	ignore port 443          # never look at its data
 *	default allow
 *
 * A rule is an action followed by conditions, each a keyword and a value:
 *
 *	dest ADDR[/LEN]   the destination address, or a network (IPv4 or IPv6)
 *	port N[-M]        the destination port, or a range of ports
 *	uid UID           the program's uid, a number or a user name
 *	comm NAME         the program's command name (/proc/PID/comm, at most
 *	                  15 characters), matched exactly
 *
 * A rule matches a flow when all its conditions do (a rule without
 * conditions matches every flow), and the first rule that matches decides.
 * The actions:
 *
 *	allow                 the flow goes on
 *	deny                  the application's connection is reset; the
 *	                      server never sees a connection
 *	redirect ... to ADDR:PORT
 *	                      the daemon connects to ADDR:PORT ([ADDR]:PORT for
 *	                      IPv6) instead of the destination
 *	ignore                the flow goes on, unfiltered
 *
 * A flow no rule matches is allowed, unless a line `default deny` says
 * otherwise (`default allow` says it explicitly; one default line at most).
 *
 * The uid and command name are known in intercept mode only (the daemon
 * finds the connection's owner), and not always there: a rule with a uid or
 * comm condition never matches a flow whose owner is unknown, so in listen
 * mode only dest and port rules can match. In listen mode the destination
 * is the daemon's upstream.
 *
 * Since this filter only decides at connect time, allow and ignore do the
 * same: both answer with sluice_ignore(), so that the daemon relays the flow
 * without offering its data to anyone and it costs this process nothing.
 * (ignore exists for rule files that share a vocabulary with filters that do
 * look at data.) A redirected flow stays with this filter, which gives up
 * both of its directions with pass_rest at once, so that its data does not
 * come here either.
 *
 * Each decision is printed on stderr:
 *
 *	sluice-firewall: flow ID SRC -> DST uid U comm C: deny (line N)
 *
 * with "-" for an unknown uid or comm; "(default, line N)" when no rule
 * matched and a default line decided, "(default)" when nothing did.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

#define PROG "sluice-firewall"
#include "example.h"

/* Linux keeps a command name in 16 bytes, the NUL included. */
#define COMM_LEN_MAX 15
/* A limit, so that a runaway file is an error rather than an allocation. */
#define RULES_MAX 100000

enum action {
	ACTION_ALLOW,
	ACTION_DENY,
	ACTION_REDIRECT,
	ACTION_IGNORE,
};

static const char *const action_names[] = {
	[ACTION_ALLOW] = "allow",
	[ACTION_DENY] = "deny",
	[ACTION_REDIRECT] = "redirect",
	[ACTION_IGNORE] = "ignore",
};

/* Conditions a rule has, as bits of rule.conds. */
#define COND_DEST (1u << 0)
#define COND_PORT (1u << 1)
#define COND_UID  (1u << 2)
#define COND_COMM (1u << 3)

struct rule {
	unsigned line;
	enum action action;
	unsigned conds;
	int family;	  /* dest: AF_INET or AF_INET6 */
	uint8_t net[16];  /* dest: the network, host bits zero */
	unsigned prefix;  /* dest: its length in bits */
	uint16_t port_lo; /* port: the range, inclusive */
	uint16_t port_hi;
	uint32_t uid;
	char comm[COMM_LEN_MAX + 1];
	struct sockaddr_storage to; /* redirect: the new destination */
};

struct firewall {
	struct rule *rules;
	size_t nrules;
	enum action default_action;
	unsigned default_line; /* 0: no default line, the built-in allow */
};

/* A decimal number in [0, max], digits only. Returns 0 or -EINVAL. */
static int parse_number(const char *text, unsigned long max, unsigned long *ret)
{
	unsigned long n;
	char *end;

	if (*text < '0' || *text > '9')
		return -EINVAL;
	errno = 0;
	n = strtoul(text, &end, 10);
	if (errno || *end || n > max)
		return -EINVAL;
	*ret = n;
	return 0;
}

static int parse_port(const char *text, uint16_t *ret)
{
	unsigned long n;

	if (parse_number(text, 65535, &n) < 0 || n == 0)
		return -EINVAL;
	*ret = (uint16_t)n;
	return 0;
}

/* Writes a message about line `line` into err. Returns -EINVAL. */
static int __attribute__((format(printf, 4, 5)))
rule_error(char *err, size_t len, unsigned line, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(err, len, "line %u: ", line);
	va_start(ap, fmt);
	vsnprintf(err + n, len - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* "ADDR" or "ADDR/LEN", IPv4 or IPv6. */
static int parse_dest(const char *text, struct rule *r)
{
	char buf[INET6_ADDRSTRLEN + 8];
	unsigned long prefix;
	unsigned max;
	char *slash;

	if (strlen(text) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, text);
	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	memset(r->net, 0, sizeof(r->net));
	if (inet_pton(AF_INET, buf, r->net) == 1) {
		r->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, r->net) == 1) {
		r->family = AF_INET6;
		max = 128;
	} else {
		return -EINVAL;
	}
	prefix = max;
	if (slash && parse_number(slash + 1, max, &prefix) < 0)
		return -EINVAL;
	r->prefix = (unsigned)prefix;
	/* 10.1.2.3/8 means 10.0.0.0/8, as in ip(8). */
	for (unsigned bit = r->prefix; bit < max; bit++)
		r->net[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
	return 0;
}

/* "N" or "N-M", 1 to 65535. */
static int parse_ports(const char *text, struct rule *r)
{
	char buf[16], *dash;

	if (strlen(text) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, text);
	dash = strchr(buf, '-');
	if (dash)
		*dash = '\0';
	if (parse_port(buf, &r->port_lo) < 0)
		return -EINVAL;
	r->port_hi = r->port_lo;
	if (dash && parse_port(dash + 1, &r->port_hi) < 0)
		return -EINVAL;
	return r->port_lo <= r->port_hi ? 0 : -EINVAL;
}

static int parse_uid(const char *text, struct rule *r)
{
	unsigned long n;
	struct passwd *pw;

	/* (uid_t)-1 is no uid: it means "unchanged" to setresuid(). */
	if (parse_number(text, UINT32_MAX - 1, &n) == 0) {
		r->uid = (uint32_t)n;
		return 0;
	}
	pw = getpwnam(text);
	if (!pw)
		return -ENOENT;
	r->uid = pw->pw_uid;
	return 0;
}

/* "ADDR:PORT" or "[ADDR]:PORT". */
static int parse_to(const char *text, struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	char buf[INET6_ADDRSTRLEN + 16], *colon, *host = buf;
	uint16_t port;

	if (strlen(text) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, text);
	colon = strrchr(buf, ':');
	if (!colon || parse_port(colon + 1, &port) < 0)
		return -EINVAL;
	*colon = '\0';
	if (*host == '[') {
		if (colon[-1] != ']')
			return -EINVAL;
		colon[-1] = '\0';
		host++;
	}
	memset(ss, 0, sizeof(*ss));
	if (host == buf && inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
	} else if (host != buf && inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
	} else {
		return -EINVAL;
	}
	return 0;
}

static int parse_action(const char *word, enum action *ret)
{
	for (size_t i = 0; i < sizeof(action_names) / sizeof(action_names[0]); i++) {
		if (strcmp(word, action_names[i]) == 0) {
			*ret = (enum action)i;
			return 0;
		}
	}
	return -EINVAL;
}

/*
 * One line, its comment already cut off. Adds a rule to fw, sets its
 * default, or does nothing for a blank line. Returns 0, or -EINVAL with a
 * message in err, or -ENOMEM.
 */
static int parse_line(struct firewall *fw, char *text, unsigned line, char *err, size_t errlen)
{
	static const char *const sep = " \t\r\n\v\f";
	char *save, *word, *value;
	struct rule r = { .line = line };
	bool has_to = false;
	struct rule *rules;

	word = strtok_r(text, sep, &save);
	if (!word)
		return 0;
	if (strcmp(word, "default") == 0) {
		word = strtok_r(NULL, sep, &save);
		if (!word || (strcmp(word, "allow") != 0 && strcmp(word, "deny") != 0))
			return rule_error(err, errlen, line, "'default' takes 'allow' or 'deny'");
		if (strtok_r(NULL, sep, &save))
			return rule_error(err, errlen, line, "'default %s' takes nothing more",
					  word);
		if (fw->default_line)
			return rule_error(err, errlen, line,
					  "a second default (the first is on line %u)",
					  fw->default_line);
		fw->default_action = word[0] == 'a' ? ACTION_ALLOW : ACTION_DENY;
		fw->default_line = line;
		return 0;
	}
	if (parse_action(word, &r.action) < 0)
		return rule_error(err, errlen, line,
				  "unknown action '%s' (allow, deny, redirect, ignore or default)",
				  word);

	while ((word = strtok_r(NULL, sep, &save))) {
		const char *want = NULL;
		unsigned cond = 0;
		int bad = 0;

		value = strtok_r(NULL, sep, &save);
		if (!value)
			return rule_error(err, errlen, line, "'%s' without a value", word);
		if (strcmp(word, "to") == 0) {
			if (r.action != ACTION_REDIRECT)
				return rule_error(err, errlen, line,
						  "'to' belongs to redirect rules only");
			if (has_to)
				return rule_error(err, errlen, line, "'to' given twice");
			if (parse_to(value, &r.to) < 0)
				return rule_error(err, errlen, line,
						  "bad address '%s' after 'to' (want ADDR:PORT or "
						  "[ADDR]:PORT)",
						  value);
			has_to = true;
			continue;
		}
		if (strcmp(word, "dest") == 0) {
			cond = COND_DEST;
			want = "ADDR or ADDR/LEN";
			bad = parse_dest(value, &r);
		} else if (strcmp(word, "port") == 0) {
			cond = COND_PORT;
			want = "N or N-M, 1 to 65535";
			bad = parse_ports(value, &r);
		} else if (strcmp(word, "uid") == 0) {
			cond = COND_UID;
			want = "a number or a user name";
			bad = parse_uid(value, &r);
		} else if (strcmp(word, "comm") == 0) {
			cond = COND_COMM;
			if (strlen(value) > COMM_LEN_MAX)
				return rule_error(err, errlen, line,
						  "comm '%s' is longer than %d characters, so it "
						  "never matches",
						  value, COMM_LEN_MAX);
			strcpy(r.comm, value);
		} else {
			return rule_error(err, errlen, line,
					  "unknown condition '%s' (dest, port, uid or comm)", word);
		}
		if (r.conds & cond)
			return rule_error(err, errlen, line, "'%s' given twice", word);
		if (bad == -ENOENT)
			return rule_error(err, errlen, line, "no user named '%s'", value);
		if (bad)
			return rule_error(err, errlen, line, "bad %s '%s' (want %s)", word, value,
					  want);
		r.conds |= cond;
	}
	if (r.action == ACTION_REDIRECT && !has_to)
		return rule_error(err, errlen, line, "redirect without 'to ADDR:PORT'");

	if (fw->nrules == RULES_MAX)
		return rule_error(err, errlen, line, "more than %d rules", RULES_MAX);
	rules = realloc(fw->rules, (fw->nrules + 1) * sizeof(*rules));
	if (!rules)
		return -ENOMEM;
	fw->rules = rules;
	fw->rules[fw->nrules++] = r;
	return 0;
}

/* Reads the rules file. Returns 0, or a negative errno with a message in err. */
static int load_rules(struct firewall *fw, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	size_t cap = 0;
	char *text = NULL, *hash;
	unsigned line = 0;
	int r = 0;

	if (!f) {
		r = -errno;
		snprintf(err, errlen, "%s", strerror(-r));
		return r;
	}
	errno = 0;
	while (getline(&text, &cap, f) >= 0) {
		line++;
		hash = strchr(text, '#');
		if (hash)
			*hash = '\0';
		r = parse_line(fw, text, line, err, errlen);
		if (r < 0)
			break;
	}
	if (r == 0 && ferror(f)) {
		r = -(errno ? errno : EIO);
		snprintf(err, errlen, "%s", strerror(-r));
	} else if (r == -ENOMEM) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
	}
	free(text);
	fclose(f);
	return r;
}

static bool dest_matches(const struct rule *r, const struct sockaddr_storage *dst)
{
	const uint8_t *a;
	unsigned bits = r->prefix;

	if (dst->ss_family != r->family)
		return false;
	if (r->family == AF_INET)
		a = (const uint8_t *)&((const struct sockaddr_in *)dst)->sin_addr;
	else
		a = (const uint8_t *)&((const struct sockaddr_in6 *)dst)->sin6_addr;
	if (memcmp(a, r->net, bits / 8) != 0)
		return false;
	return bits % 8 == 0 || ((a[bits / 8] ^ r->net[bits / 8]) & (0xff00u >> (bits % 8))) == 0;
}

static uint16_t dest_port(const struct sockaddr_storage *dst)
{
	if (dst->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)dst)->sin6_port);
	return ntohs(((const struct sockaddr_in *)dst)->sin_port);
}

static bool rule_matches(const struct rule *r, const struct sluice_flow_info *info)
{
	uint16_t port = dest_port(&info->dst);

	if ((r->conds & COND_DEST) && !dest_matches(r, &info->dst))
		return false;
	if ((r->conds & COND_PORT) && (port < r->port_lo || port > r->port_hi))
		return false;
	if ((r->conds & COND_UID) && (!info->has_uid || info->uid != r->uid))
		return false;
	if ((r->conds & COND_COMM) &&
	    (!info->has_pid || strncmp(info->comm, r->comm, sizeof(info->comm)) != 0))
		return false;
	return true;
}

/* The first rule that matches, or NULL for the default. */
static const struct rule *decide(const struct firewall *fw, const struct sluice_flow_info *info)
{
	for (size_t i = 0; i < fw->nrules; i++)
		if (rule_matches(&fw->rules[i], info))
			return &fw->rules[i];
	return NULL;
}

static socklen_t addr_len(const struct sockaddr_storage *a)
{
	return a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* Gives up the directions the daemon offers us, so that their data never comes here. */
static int pass_rest(struct sluice_client *c, const struct sluice_flow_info *info)
{
	int r = 0;

	if (info->dirs & SLUICE_SUB_OUT)
		r = sluice_pass_rest(c, info->id, SLUICE_DIR_OUT);
	if (r == 0 && (info->dirs & SLUICE_SUB_IN))
		r = sluice_pass_rest(c, info->id, SLUICE_DIR_IN);
	return r;
}

/*
 * Answers the flow's OPEN. When the daemon did not wait for a verdict (it
 * had started connecting before this filter was there to ask), a deny
 * becomes a reset and a redirect cannot be done: the flow is reset too,
 * rather than let through to where the rules say it must not go.
 */
static int on_open(struct sluice_client *c, const struct sluice_flow_info *info, void *user)
{
	const struct firewall *fw = user;
	const struct rule *rule = decide(fw, info);
	enum action action = rule ? rule->action : fw->default_action;
	unsigned line = rule ? rule->line : fw->default_line;
	char src[INET6_ADDRSTRLEN + 8], dst[INET6_ADDRSTRLEN + 8], to[INET6_ADDRSTRLEN + 12] = "";
	char uid[16] = "-", why[32] = "default";
	const char *late = "";
	int r = 0;

	if (info->has_uid)
		snprintf(uid, sizeof(uid), "%u", info->uid);
	if (rule)
		snprintf(why, sizeof(why), "line %u", line);
	else if (line)
		snprintf(why, sizeof(why), "default, line %u", line);
	if (action == ACTION_REDIRECT) {
		strcpy(to, " to ");
		example_format_addr(&rule->to, to + 4, sizeof(to) - 4);
	}

	if (info->verdict_wanted) {
		switch (action) {
		case ACTION_ALLOW:
		case ACTION_IGNORE:
			r = sluice_ignore(c, info->id);
			break;
		case ACTION_DENY:
			r = sluice_deny(c, info->id);
			break;
		case ACTION_REDIRECT:
			r = sluice_redirect(c, info->id, (const struct sockaddr *)&rule->to,
					    addr_len(&rule->to));
			if (r == 0)
				r = pass_rest(c, info);
			break;
		}
	} else if (action == ACTION_ALLOW || action == ACTION_IGNORE) {
		r = pass_rest(c, info);
	} else {
		late = ": too late, the daemon is connecting already; reset";
		r = sluice_reset(c, info->id);
	}

	fprintf(stderr, PROG ": flow %016llx %s -> %s uid %s comm %s: %s%s (%s)%s\n",
		(unsigned long long)info->id, example_format_addr(&info->src, src, sizeof(src)),
		example_format_addr(&info->dst, dst, sizeof(dst)), uid,
		info->has_pid && info->comm[0] ? info->comm : "-", action_names[action], to, why,
		late);
	/* A verdict fails only when the channel does; then the filter stops. */
	return r < 0 ? r : 0;
}

static void on_error(struct sluice_client *c, uint64_t flow, uint32_t code, const char *text,
		     void *user)
{
	fprintf(stderr, PROG ": daemon refused a verdict for flow %016llx: error %u: %s\n",
		(unsigned long long)flow, code, text);
}

static void usage(FILE *f, bool full)
{
	fprintf(f, "usage: " PROG " [--socket PATH] [--check] RULES_FILE\n");
	if (!full)
		return;
	fprintf(f, "\n"
		   "A sluice filter that allows, denies or redirects each new flow by the\n"
		   "rules in RULES_FILE, one a line, the first that matches deciding:\n"
		   "\n"
		   "  ACTION [dest ADDR[/LEN]] [port N[-M]] [uid UID] [comm NAME]\n"
		   "  redirect [CONDITIONS] to ADDR:PORT\n"
		   "  default allow|deny\n"
		   "\n"
		   "ACTION is allow, deny or ignore; '#' starts a comment. Flows no rule\n"
		   "matches are allowed unless the file says 'default deny'.\n"
		   "\n"
		   "  -s, --socket PATH  the daemon's filter socket (default " SLUICE_DEFAULT_SOCKET
		   ")\n"
		   "  -c, --check        check the rules file and exit\n"
		   "  -h, --help         show this help\n");
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "check", no_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct sluice_client_opts opts = {
		.sz = sizeof(opts),
		.path = SLUICE_DEFAULT_SOCKET,
		.name = "firewall",
		.features = SLUICE_FEATURE_OPEN_VERDICT,
	};
	struct sluice_callbacks cb = {
		.sz = sizeof(cb),
		.on_open = on_open,
		.on_error = on_error,
	};
	struct firewall fw = { .default_action = ACTION_ALLOW };
	struct sluice_client *c;
	const char *path;
	bool check = false;
	char err[256];
	int opt, r;

	while ((opt = getopt_long(argc, argv, "s:ch", options, NULL)) != -1) {
		switch (opt) {
		case 's':
			opts.path = optarg;
			break;
		case 'c':
			check = true;
			break;
		case 'h':
			usage(stdout, true);
			return 0;
		default:
			/* getopt_long() has printed what was wrong. */
			return example_usage_error(usage, NULL);
		}
	}
	if (optind == argc)
		return example_usage_error(usage, "no rules file given");
	if (optind + 1 < argc)
		return example_usage_error(usage, "unexpected argument '%s'", argv[optind + 1]);
	path = argv[optind];

	r = load_rules(&fw, path, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, PROG ": %s: %s\n", path, err);
		free(fw.rules);
		return 2;
	}
	if (check) {
		printf("%s: %zu rule%s, default %s\n", path, fw.nrules, fw.nrules == 1 ? "" : "s",
		       action_names[fw.default_action]);
		free(fw.rules);
		return 0;
	}

	example_catch_signals();

	r = sluice_client_connect(&opts, &cb, &fw, &c);
	if (r < 0) {
		free(fw.rules);
		return example_cannot_connect(&opts, r);
	}
	fprintf(stderr, PROG ": %s: %zu rule%s, default %s\n", path, fw.nrules,
		fw.nrules == 1 ? "" : "s", action_names[fw.default_action]);
	example_connected(&opts);

	do
		r = sluice_client_run(c);
	while (r == -EINTR && !example_stop);

	r = example_run_ended(r);

	sluice_client_free(c);
	free(fw.rules);
	return r < 0 ? 1 : 0;
}
