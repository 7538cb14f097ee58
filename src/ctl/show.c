/* SPDX-License-Identifier: MIT */
/* sluicectl status, flows, filters and kill. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/*
 * Parses a command's options when it has none of its own. Returns the
 * index of the first operand after checking their number, or -1 (usage
 * error, exit 2) or -2 (--help printed, exit 0).
 */
static int plain_opts(int argc, char **argv, struct ctl_opts *o, const char *usage, int min,
		      int max)
{
	static const struct option opts[] = { CTL_COMMON_OPTIONS, { 0 } };
	int c, n;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (ctl_common_opt(c, argv, o, usage)) {
		case 0:
			break;
		case 1:
			return -2;
		default:
			return -1;
		}
	}
	n = argc - optind;
	if (n < min || n > max) {
		if (n > max)
			ctl_err("%s: unexpected argument '%s' (see --help)", argv[0],
				argv[optind + max]);
		else
			ctl_err("%s: missing argument (see --help)", argv[0]);
		return -1;
	}
	return optind;
}

/*
 * Connects, asks, and checks the answer for an error. Returns 0 with the
 * tree (and the line, for --json), or the exit status (1) after printing
 * why.
 */
static int ask(const struct ctl_opts *o, const char *what, const char *request, struct jv **ret,
	       char **ret_line)
{
	struct ctl_conn conn;
	const char *err;
	int r;

	if (ctl_connect(o->control, &conn) < 0)
		return 1;
	r = ctl_query(&conn, request, ret, ret_line);
	ctl_close(&conn);
	if (r < 0)
		return 1;
	err = ctl_error(*ret);
	if (err) {
		/* --json shows the answer as it came, an error too. */
		if (ret_line)
			puts(*ret_line);
		ctl_err("%s: %s", what, err);
		jv_free(*ret);
		if (ret_line)
			free(*ret_line);
		return 1;
	}
	return 0;
}

/* --json: the daemon's line, as it came. */
static int print_line(char *line)
{
	puts(line);
	free(line);
	return fflush(stdout) ? 1 : 0;
}

unsigned flow_dst_port(const struct jv *flow)
{
	const char *dst = jv_str(flow, "dst", "");
	const char *colon = strrchr(dst, ':');

	return colon ? (unsigned)strtoul(colon + 1, NULL, 10) : 0;
}

static const char *subscription(const struct jv *filter, char *buf, size_t len)
{
	const struct jv *sub = jv_get(filter, "subscribed");
	const struct jv *dirs = jv_array(sub, "dirs"), *ports = jv_array(sub, "ports");
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; dirs && i < dirs->n && n < len; i++)
		if (dirs->items[i].type == JV_STRING)
			n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? "," : "",
					      dirs->items[i].str);
	if (n < len)
		n += (size_t)snprintf(buf + n, len - n, "%s", n ? " " : "");
	if (!ports || !ports->n) {
		if (n < len)
			snprintf(buf + n, len - n, "all ports");
		return buf;
	}
	if (n < len)
		n += (size_t)snprintf(buf + n, len - n, "port%s ", ports->n > 1 ? "s" : "");
	for (size_t i = 0; i < ports->n && n < len; i++)
		if (ports->items[i].type == JV_STRING)
			n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? "," : "",
					      ports->items[i].str);
	return buf;
}

static void print_filters(const struct jv *filters, const char *indent)
{
	static const char *const head[] = { "ID",  "WORKER", "NAME",   "PID",
					    "UID", "FLOWS",  "QUEUED", "WANTS" };
	struct table t;

	if (table_init(&t, 8, head, "rr_rrrr_") < 0)
		return;
	for (size_t i = 0; filters && i < filters->n; i++) {
		const struct jv *f = &filters->items[i];
		char id[24], worker[24], pid[24], uid[24], flows[24], queued[24], wants[256];
		const char *row[8] = { id,     worker, jv_str(f, "name", "?"), pid, uid, flows,
				       queued, wants };

		snprintf(id, sizeof(id), "%llu", (unsigned long long)jv_u64(f, "id", 0));
		snprintf(worker, sizeof(worker), "%llu",
			 (unsigned long long)jv_u64(f, "worker", 0));
		snprintf(pid, sizeof(pid), "%llu", (unsigned long long)jv_u64(f, "pid", 0));
		snprintf(uid, sizeof(uid), "%llu", (unsigned long long)jv_u64(f, "uid", 0));
		snprintf(flows, sizeof(flows), "%llu", (unsigned long long)jv_u64(f, "flows", 0));
		fmt_bytes(jv_u64(f, "queued", 0), queued, sizeof(queued));
		subscription(f, wants, sizeof(wants));
		if (!*row[2])
			row[2] = jv_bool(f, "ready", false) ? "(unnamed)" : "(no HELLO yet)";
		table_add(&t, row);
	}
	if (indent && *indent) {
		/* The status view indents its table under the summary. */
		for (size_t i = 0; i < t.nrows; i++) {
			char *cell = t.cells[i * t.ncols],
			     *p = malloc(strlen(cell) + strlen(indent) + 1);

			if (!p)
				break;
			strcpy(p, indent);
			strcat(p, cell);
			free(cell);
			t.cells[i * t.ncols] = p;
		}
	}
	table_print(&t, stdout, 0, 0);
	table_free(&t);
}

int cmd_status(int argc, char **argv, struct ctl_opts *o)
{
	static const char usage[] =
		"Usage: " PROG " status [--json]\n\n"
		"The daemon's version, mode, what it listens on (and whether its nftables\n"
		"rules are installed), its filter socket, uptime, the connected filters and\n"
		"the totals of flows and bytes.\n";
	const struct jv *totals, *filters;
	char a[64], b[64], *line = NULL;
	const char *mode;
	struct jv *v;
	int r;

	r = plain_opts(argc, argv, o, usage, 0, 0);
	if (r < 0)
		return r == -2 ? 0 : 2;
	r = ask(o, "status", "{\"cmd\":\"status\"}", &v, o->json ? &line : NULL);
	if (r)
		return r;
	if (o->json) {
		jv_free(v);
		return print_line(line);
	}
	mode = jv_str(v, "mode", "?");
	printf("sluiced %s, pid %llu, %s mode, %llu worker%s, up %s%s\n", jv_str(v, "version", "?"),
	       (unsigned long long)jv_u64(v, "pid", 0), mode,
	       (unsigned long long)jv_u64(v, "workers", 1), jv_u64(v, "workers", 1) == 1 ? "" : "s",
	       fmt_secs(jv_num(v, "uptime", 0), a, sizeof(a)),
	       jv_bool(v, "draining", false) ? ", draining" : "");
	if (!strcmp(mode, "listen")) {
		printf("%-15s %s, upstream %s\n", "listening", jv_str(v, "listen", "(closed)"),
		       jv_str(v, "upstream", "?"));
	} else {
		const struct jv *port = jv_get(v, "port");

		if (port && port->type == JV_NUMBER)
			snprintf(a, sizeof(a), "port %llu", (unsigned long long)port->u);
		else
			snprintf(a, sizeof(a), "no listener");
		printf("%-15s %s, nftables rules %s\n",
		       !strcmp(mode, "intercept") ? "intercepting" : "gateway", a,
		       jv_bool(v, "rules", false) ? "installed" : "not installed");
	}
	printf("%-15s %s (window %s, %s)\n", "filter socket", jv_str(v, "filter_socket", "?"),
	       fmt_bytes(jv_u64(v, "window", 0), a, sizeof(a)), jv_str(v, "policy", "?"));
	totals = jv_get(v, "totals");
	printf("%-15s %llu open, %llu opened, %llu closed, %llu reset\n", "flows",
	       (unsigned long long)jv_u64(totals, "flows_open", 0),
	       (unsigned long long)jv_u64(totals, "flows_opened", 0),
	       (unsigned long long)jv_u64(totals, "flows_closed", 0),
	       (unsigned long long)jv_u64(totals, "resets", 0));
	printf("%-15s out %s, in %s\n", "bytes",
	       fmt_bytes(jv_u64(totals, "bytes_out", 0), a, sizeof(a)),
	       fmt_bytes(jv_u64(totals, "bytes_in", 0), b, sizeof(b)));
	filters = jv_array(v, "filters");
	printf("%-15s %zu connected\n", "filters", filters ? filters->n : 0);
	if (filters && filters->n) {
		putchar('\n');
		print_filters(filters, "  ");
	}
	jv_free(v);
	return fflush(stdout) ? 1 : 0;
}

int cmd_filters(int argc, char **argv, struct ctl_opts *o)
{
	static const char usage[] = "Usage: " PROG " filters [--json]\n\n"
				    "The connected filters: id, name, pid, uid, the flows each "
				    "holds, the bytes\nqueued to it, and what it subscribed to.\n";
	char *line = NULL;
	struct jv *v;
	int r;

	r = plain_opts(argc, argv, o, usage, 0, 0);
	if (r < 0)
		return r == -2 ? 0 : 2;
	r = ask(o, "filters", "{\"cmd\":\"filters\"}", &v, o->json ? &line : NULL);
	if (r)
		return r;
	if (o->json) {
		jv_free(v);
		return print_line(line);
	}
	print_filters(jv_array(v, "filters"), NULL);
	jv_free(v);
	return fflush(stdout) ? 1 : 0;
}

/* Flows. */

struct flows_opts {
	enum { SORT_ID, SORT_BYTES, SORT_AGE } sort;
	long port, pid;
	const char *comm;
	bool filtered;
};

static int flows_opt(int c, struct flows_opts *fo, char **argv)
{
	char *end;
	long v;

	switch (c) {
	case 's':
		if (!strcmp(optarg, "bytes"))
			fo->sort = SORT_BYTES;
		else if (!strcmp(optarg, "age"))
			fo->sort = SORT_AGE;
		else if (!strcmp(optarg, "id"))
			fo->sort = SORT_ID;
		else {
			ctl_err("flows: --sort: '%s' is not bytes, age or id", optarg);
			return -1;
		}
		return 0;
	case 'p':
	case 'P':
		v = strtol(optarg, &end, 10);
		if (*end || !*optarg || v < 0 || v > (c == 'p' ? 65535 : 0x7fffffffL)) {
			ctl_err("flows: %s: '%s' is not a %s", c == 'p' ? "--port" : "--pid",
				optarg, c == 'p' ? "port" : "pid");
			return -1;
		}
		*(c == 'p' ? &fo->port : &fo->pid) = v;
		fo->filtered = true;
		return 0;
	case 'C':
		fo->comm = optarg;
		fo->filtered = true;
		return 0;
	}
	return -1;
}

static int by_id(const void *a, const void *b)
{
	const struct flow_row *x = a, *y = b;

	return x->key < y->key ? -1 : x->key > y->key;
}

static int by_bytes(const void *a, const void *b)
{
	const struct flow_row *x = a, *y = b;
	uint64_t bx = x->out + x->in, by = y->out + y->in;

	return bx > by ? -1 : bx < by ? 1 : by_id(a, b);
}

static int by_age(const void *a, const void *b)
{
	const struct flow_row *x = a, *y = b;

	return x->age > y->age ? -1 : x->age < y->age ? 1 : by_id(a, b);
}

static bool wanted(const struct jv *f, const struct flows_opts *fo)
{
	const struct jv *pid = jv_get(f, "pid");

	if (fo->port >= 0 && flow_dst_port(f) != (unsigned)fo->port)
		return false;
	if (fo->pid >= 0 && !(pid && pid->type == JV_NUMBER && pid->u == (uint64_t)fo->pid))
		return false;
	if (fo->comm && strcmp(jv_str(f, "comm", ""), fo->comm))
		return false;
	return true;
}

static const char *dir_states(const struct jv *f, char *buf, size_t len)
{
	const char *out = jv_str(jv_get(f, "out"), "state", "?");
	const char *in = jv_str(jv_get(f, "in"), "state", "?");

	if (!strcmp(out, in))
		snprintf(buf, len, "%s", out);
	else
		snprintf(buf, len, "%s/%s", out, in);
	return buf;
}

static const char *num_or_dash(const struct jv *f, const char *key, char *buf, size_t len)
{
	const struct jv *v = jv_get(f, key);

	if (!v || v->type != JV_NUMBER)
		return "-";
	snprintf(buf, len, "%llu", (unsigned long long)v->u);
	return buf;
}

int cmd_flows(int argc, char **argv, struct ctl_opts *o)
{
	static const char usage[] =
		"Usage: " PROG " flows [--json] [--sort bytes|age|id] [--port N] [--pid N]\n"
		"                      [--comm NAME]\n\n"
		"The open flows: id, the application's address, the destination, the owner\n"
		"(uid, pid, command) where known, the filter, bytes written each way, bytes\n"
		"held in the daemon, the state of each direction and the age.\n\n"
		"  --sort bytes|age|id  most bytes first, oldest first, or by id (default)\n"
		"  --port N             only flows to destination port N\n"
		"  --pid N              only flows of process N\n"
		"  --comm NAME          only flows of processes called NAME\n"
		"Given together, a flow must match all of them. --json prints the daemon's\n"
		"answer unchanged, so it takes none of them.\n";
	static const struct option opts[] = {
		CTL_COMMON_OPTIONS,
		{ "sort", required_argument, NULL, 's' },
		{ "port", required_argument, NULL, 'p' },
		{ "pid", required_argument, NULL, 'P' },
		{ "comm", required_argument, NULL, 'C' },
		{ 0 },
	};
	static const char *const head[] = {
		"ID",	  "APP", "DESTINATION", "UID",	"PID",	 "COMM",
		"FILTER", "OUT", "IN",		"HELD", "STATE", "AGE"
	};
	struct flows_opts fo = { .sort = SORT_ID, .port = -1, .pid = -1 };
	struct flow_row *rows = NULL;
	const struct jv *flows;
	size_t nrows = 0;
	char *line = NULL;
	struct table t;
	struct jv *v;
	int c, r;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		r = ctl_common_opt(c, argv, o, usage);
		if (r == 1)
			return 0;
		if (r < 0)
			return 2;
		if (r == 2 && flows_opt(c, &fo, argv) < 0)
			return 2;
	}
	if (optind < argc) {
		ctl_err("flows: unexpected argument '%s' (see --help)", argv[optind]);
		return 2;
	}
	if (o->json && (fo.filtered || fo.sort != SORT_ID)) {
		ctl_err("flows: --json prints the daemon's answer unchanged; --sort, --port, --pid "
			"and --comm apply to the table");
		return 2;
	}
	r = ask(o, "flows", "{\"cmd\":\"flows\"}", &v, o->json ? &line : NULL);
	if (r)
		return r;
	if (o->json) {
		jv_free(v);
		return print_line(line);
	}
	flows = jv_array(v, "flows");
	rows = calloc(flows && flows->n ? flows->n : 1, sizeof(*rows));
	if (!rows) {
		ctl_err("out of memory");
		jv_free(v);
		return 1;
	}
	for (size_t i = 0; flows && i < flows->n; i++) {
		const struct jv *f = &flows->items[i];

		if (!wanted(f, &fo))
			continue;
		rows[nrows++] = (struct flow_row){
			.v = f,
			.id = jv_str(f, "id", "?"),
			.key = strtoull(jv_str(f, "hex", "0"), NULL, 16),
			.out = jv_u64(jv_get(f, "out"), "bytes", 0),
			.in = jv_u64(jv_get(f, "in"), "bytes", 0),
			.age = jv_num(f, "age", 0),
		};
	}
	qsort(rows, nrows, sizeof(*rows),
	      fo.sort == SORT_BYTES ? by_bytes
	      : fo.sort == SORT_AGE ? by_age
				    : by_id);
	if (table_init(&t, 12, head, "___rr__rrr_r") < 0) {
		free(rows);
		jv_free(v);
		return 1;
	}
	for (size_t i = 0; i < nrows; i++) {
		const struct jv *f = rows[i].v;
		char uid[24], pid[24], out[32], in[32], held[32], state[64], age[32];
		const char *row[12] = {
			rows[i].id,
			jv_str(f, "app", "?"),
			jv_str(f, "dst", "?"),
			num_or_dash(f, "uid", uid, sizeof(uid)),
			num_or_dash(f, "pid", pid, sizeof(pid)),
			jv_str(f, "comm", "-"),
			jv_str(f, "filter", "-"),
			fmt_bytes(rows[i].out, out, sizeof(out)),
			fmt_bytes(rows[i].in, in, sizeof(in)),
			fmt_bytes(jv_u64(jv_get(f, "out"), "held", 0) +
					  jv_u64(jv_get(f, "in"), "held", 0),
				  held, sizeof(held)),
			dir_states(f, state, sizeof(state)),
			fmt_secs(rows[i].age, age, sizeof(age)),
		};

		table_add(&t, row);
	}
	table_print(&t, stdout, 0, 0);
	table_free(&t);
	free(rows);
	jv_free(v);
	return fflush(stdout) ? 1 : 0;
}

/* Kill. */

/* s as a JSON string (quotes included); false if it does not fit. */
static bool json_quote(const char *s, char *buf, size_t len)
{
	size_t n = 0;

	if (len < 3)
		return false;
	buf[n++] = '"';
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (n + 7 >= len)
			return false;
		if (c == '"' || c == '\\') {
			buf[n++] = '\\';
			buf[n++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			n += (size_t)snprintf(buf + n, len - n, "\\u%04x", c);
		} else {
			buf[n++] = (char)c;
		}
	}
	buf[n++] = '"';
	buf[n] = '\0';
	return true;
}

int cmd_kill(int argc, char **argv, struct ctl_opts *o)
{
	static const char usage[] =
		"Usage: " PROG " kill [--json] FLOW\n\n"
		"Resets flow FLOW: both of its connections are closed with an RST and its\n"
		"filter is told the flow is gone. FLOW is the id as 'flows' prints it\n"
		"(SLOT:GEN), or the 64-bit id in hex as filters see it.\n";
	char quoted[256], request[320], *line = NULL;
	struct jv *v;
	int r, i;

	i = plain_opts(argc, argv, o, usage, 1, 1);
	if (i < 0)
		return i == -2 ? 0 : 2;
	if (!json_quote(argv[i], quoted, sizeof(quoted))) {
		ctl_err("kill: '%.32s...' is not a flow id", argv[i]);
		return 2;
	}
	snprintf(request, sizeof(request), "{\"cmd\":\"kill\",\"flow\":%s}", quoted);
	snprintf(quoted, sizeof(quoted), "kill %s", argv[i]);
	r = ask(o, quoted, request, &v, o->json ? &line : NULL);
	if (r)
		return r;
	if (o->json) {
		jv_free(v);
		return print_line(line);
	}
	printf("flow %s reset\n", jv_str(v, "flow", argv[i]));
	jv_free(v);
	return fflush(stdout) ? 1 : 0;
}
