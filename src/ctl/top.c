/* SPDX-License-Identifier: MIT */
/*
 * sluicectl top: the daemon's totals and its busiest flows, redrawn every
 * second on the alternate screen with plain ANSI escapes. Throughput is
 * computed here, from the byte counts of two answers and the time between
 * them. The terminal is put in non-canonical mode without echo so that a
 * single q quits, and is always given back as it was: on q, on the
 * signals that end us (SIGINT, SIGTERM, SIGHUP), and on an error.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

#define REFRESH_MS   1000
#define HEADER_LINES 5

static volatile sig_atomic_t quit_signal, resized;
static struct termios saved_tty;
static bool tty_raw, screen_on;

static void on_signal(int sig)
{
	if (sig == SIGWINCH)
		resized = 1;
	else
		quit_signal = sig;
}

static void restore_terminal(void)
{
	if (screen_on) {
		/* Cursor back, alternate screen left. */
		fputs("\x1b[?25h\x1b[?1049l", stdout);
		fflush(stdout);
		screen_on = false;
	}
	if (tty_raw) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
		tty_raw = false;
	}
}

static void setup_terminal(bool json)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct termios raw;

	/* No SA_RESTART: a signal must wake the wait in poll(). */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGWINCH, &sa, NULL);
	atexit(restore_terminal);
	ctl_before_error = restore_terminal;
	ctl_stop = &quit_signal;
	if (json)
		return;
	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_tty) == 0) {
		raw = saved_tty;
		/* Keys one at a time, not echoed; ISIG stays, so ^C still
		 * reaches us as SIGINT. */
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		raw.c_cc[VMIN] = 0;
		raw.c_cc[VTIME] = 0;
		if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) == 0)
			tty_raw = true;
	}
	if (isatty(STDOUT_FILENO)) {
		fputs("\x1b[?1049h\x1b[?25l", stdout);
		screen_on = true;
	}
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void screen_size(size_t *rows, size_t *cols)
{
	struct winsize ws;

	*rows = 24;
	*cols = 80;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
		*rows = ws.ws_row;
		*cols = ws.ws_col;
	}
}

/* Byte counts of the last refresh, by flow id, sorted for bsearch. */
struct seen {
	uint64_t key, out, in;
};

static int seen_cmp(const void *a, const void *b)
{
	const struct seen *x = a, *y = b;

	return x->key < y->key ? -1 : x->key > y->key;
}

static int by_rate(const void *a, const void *b)
{
	const struct flow_row *x = a, *y = b;
	uint64_t bx = x->out + x->in, by = y->out + y->in;

	if (x->rate != y->rate)
		return x->rate > y->rate ? -1 : 1;
	if (bx != by)
		return bx > by ? -1 : 1;
	return x->key < y->key ? -1 : x->key > y->key;
}

static const char *fmt_rate(double r, bool known, char *buf, size_t len)
{
	char b[32];

	if (!known)
		return "-";
	snprintf(buf, len, "%s/s", fmt_bytes((uint64_t)(r + 0.5), b, sizeof(b)));
	return buf;
}

/* Each line ends by clearing the rest of the screen's line, so a shorter
 * frame leaves nothing of the last one. */
static void put_line(const char *s, size_t cols, bool inverse)
{
	size_t n = 0, w = 0;

	while (s[n] && s[n] != '\n' && w < cols) {
		n++;
		while (((unsigned char)s[n] & 0xc0) == 0x80)
			n++;
		w++;
	}
	printf("%s%.*s\x1b[K%s\n", inverse ? "\x1b[7m" : "", (int)n, s, inverse ? "\x1b[0m" : "");
}

struct top {
	struct seen *seen;
	size_t nseen;
	uint64_t last_ms;
	uint64_t last_out, last_in;
	bool have_last;
};

static int draw(struct top *tp, const struct jv *status, const struct jv *answer, uint64_t now)
{
	static const char *const head[] = { "ID",   "APP", "DESTINATION", "PID", "COMM", "OUT/s",
					    "IN/s", "OUT", "IN",	  "AGE", "STATE" };
	const struct jv *flows = jv_array(answer, "flows"), *totals = jv_get(status, "totals");
	double secs = tp->have_last ? (double)(now - tp->last_ms) / 1000 : 0;
	uint64_t out = jv_u64(totals, "bytes_out", 0), in = jv_u64(totals, "bytes_in", 0);
	size_t n = flows ? flows->n : 0, rows, cols, shown;
	struct flow_row *fr = calloc(n ? n : 1, sizeof(*fr));
	struct seen *seen = calloc(n ? n : 1, sizeof(*seen));
	char a[64], b[64], c[64], d[64], line[512];
	char *text = NULL;
	size_t text_len = 0;
	struct table t;
	FILE *mem;

	if (!fr || !seen) {
		free(fr);
		free(seen);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		const struct jv *f = &flows->items[i];
		struct seen key, *prev;

		fr[i] = (struct flow_row){
			.v = f,
			.id = jv_str(f, "id", "?"),
			.key = strtoull(jv_str(f, "hex", "0"), NULL, 16),
			.out = jv_u64(jv_get(f, "out"), "bytes", 0),
			.in = jv_u64(jv_get(f, "in"), "bytes", 0),
			.age = jv_num(f, "age", 0),
		};
		seen[i] = (struct seen){ fr[i].key, fr[i].out, fr[i].in };
		if (!tp->have_last || secs <= 0)
			continue;
		/* A flow not seen last time moved all its bytes since. */
		key.key = fr[i].key;
		prev = bsearch(&key, tp->seen, tp->nseen, sizeof(*tp->seen), seen_cmp);
		fr[i].rate_out = (double)(fr[i].out - (prev ? prev->out : 0)) / secs;
		fr[i].rate_in = (double)(fr[i].in - (prev ? prev->in : 0)) / secs;
		fr[i].rate = fr[i].rate_out + fr[i].rate_in;
	}
	qsort(fr, n, sizeof(*fr), by_rate);
	qsort(seen, n, sizeof(*seen), seen_cmp);

	screen_size(&rows, &cols);
	fputs("\x1b[H", stdout);
	snprintf(line, sizeof(line), "sluiced %s  %s mode  up %s  %s  filters %zu  (q quits)",
		 jv_str(status, "version", "?"), jv_str(status, "mode", "?"),
		 fmt_secs(jv_num(status, "uptime", 0), a, sizeof(a)), jv_str(status, "policy", "?"),
		 jv_array(status, "filters") ? jv_array(status, "filters")->n : 0);
	put_line(line, cols, false);
	snprintf(line, sizeof(line), "flows %llu open, %llu opened, %llu closed, %llu reset",
		 (unsigned long long)jv_u64(totals, "flows_open", 0),
		 (unsigned long long)jv_u64(totals, "flows_opened", 0),
		 (unsigned long long)jv_u64(totals, "flows_closed", 0),
		 (unsigned long long)jv_u64(totals, "resets", 0));
	put_line(line, cols, false);
	snprintf(line, sizeof(line), "throughput out %s, in %s   total out %s, in %s",
		 fmt_rate(secs > 0 ? (double)(out - tp->last_out) / secs : 0, secs > 0, a,
			  sizeof(a)),
		 fmt_rate(secs > 0 ? (double)(in - tp->last_in) / secs : 0, secs > 0, b, sizeof(b)),
		 fmt_bytes(out, c, sizeof(c)), fmt_bytes(in, d, sizeof(d)));
	put_line(line, cols, false);
	put_line("", cols, false);

	shown = rows > HEADER_LINES + 1 ? rows - HEADER_LINES - 1 : 0;
	if (shown > n)
		shown = n;
	if (table_init(&t, 11, head, "___r_rrrrr_") == 0) {
		for (size_t i = 0; i < shown; i++) {
			const struct jv *f = fr[i].v;
			const struct jv *pid = jv_get(f, "pid");
			char p[24], ro[32], ri[32], o[32], in_[32], age[32], st[64];
			const char *os = jv_str(jv_get(f, "out"), "state", "?");
			const char *is = jv_str(jv_get(f, "in"), "state", "?");
			const char *row[11] = {
				fr[i].id,
				jv_str(f, "app", "?"),
				jv_str(f, "dst", "?"),
				pid && pid->type == JV_NUMBER ? p : "-",
				jv_str(f, "comm", "-"),
				fmt_rate(fr[i].rate_out, secs > 0, ro, sizeof(ro)),
				fmt_rate(fr[i].rate_in, secs > 0, ri, sizeof(ri)),
				fmt_bytes(fr[i].out, o, sizeof(o)),
				fmt_bytes(fr[i].in, in_, sizeof(in_)),
				fmt_secs(fr[i].age, age, sizeof(age)),
				st,
			};

			if (pid && pid->type == JV_NUMBER)
				snprintf(p, sizeof(p), "%llu", (unsigned long long)pid->u);
			if (!strcmp(os, is))
				snprintf(st, sizeof(st), "%s", os);
			else
				snprintf(st, sizeof(st), "%s/%s", os, is);
			table_add(&t, row);
		}
		mem = open_memstream(&text, &text_len);
		if (mem) {
			table_print(&t, mem, 0, 0);
			fclose(mem);
		}
		table_free(&t);
	}
	for (char *l = text, *nl; l && *l; l = nl + 1) {
		nl = strchr(l, '\n');
		if (!nl)
			break;
		*nl = '\0';
		put_line(l, cols, l == text);
	}
	free(text);
	if (n > shown) {
		snprintf(line, sizeof(line), "... and %zu more", n - shown);
		put_line(line, cols, false);
	}
	/* Clear below: the last frame may have had more lines. */
	fputs("\x1b[J", stdout);
	fflush(stdout);

	free(tp->seen);
	tp->seen = seen;
	tp->nseen = n;
	tp->last_ms = now;
	tp->last_out = out;
	tp->last_in = in;
	tp->have_last = true;
	free(fr);
	return 0;
}

/* Waits until deadline for a key. Returns 1 to quit, 0 to refresh. */
static int wait_key(uint64_t deadline)
{
	for (;;) {
		struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };
		uint64_t now = now_ms();
		char buf[64];
		ssize_t n;
		int r;

		if (quit_signal)
			return 1;
		if (resized) {
			resized = 0;
			return 0;
		}
		if (now >= deadline)
			return 0;
		r = poll(&pfd, tty_raw ? 1 : 0, (int)(deadline - now));
		if (r <= 0)
			continue;
		n = read(STDIN_FILENO, buf, sizeof(buf));
		if (n <= 0) {
			/* No keyboard any more (a closed pipe): refresh on time. */
			if (n == 0)
				tty_raw = false;
			continue;
		}
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] == 'q' || buf[i] == 'Q')
				return 1;
	}
}

int cmd_top(int argc, char **argv, struct ctl_opts *o)
{
	static const char usage[] =
		"Usage: " PROG " top [--json]\n\n"
		"The daemon's totals and throughput, and its flows, busiest first, redrawn\n"
		"every second until q is pressed (or ^C). Throughput is computed from the\n"
		"byte counts between two refreshes. With --json, the daemon's flow list is\n"
		"printed once a second, one JSON line each time, until interrupted.\n";
	static const struct option opts[] = { CTL_COMMON_OPTIONS, { 0 } };
	struct top tp = { 0 };
	struct ctl_conn conn;
	int c, r, status = 0;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		r = ctl_common_opt(c, argv, o, usage);
		if (r == 1)
			return 0;
		if (r != 0)
			return 2;
	}
	if (optind < argc) {
		ctl_err("top: unexpected argument '%s' (see --help)", argv[optind]);
		return 2;
	}
	if (ctl_connect(o->control, &conn) < 0)
		return 1;
	setup_terminal(o->json);
	while (!quit_signal) {
		uint64_t start = now_ms();
		struct jv *st = NULL, *fl = NULL;
		char *line = NULL;

		r = ctl_query(&conn, "{\"cmd\":\"status\"}", &st, NULL);
		if (r == 0)
			r = ctl_query(&conn, "{\"cmd\":\"flows\"}", &fl, o->json ? &line : NULL);
		if (r == -EINTR) {
			jv_free(st);
			break;
		}
		if (r < 0) {
			jv_free(st);
			status = 1;
			break;
		}
		if (o->json) {
			puts(line);
			fflush(stdout);
			free(line);
		} else {
			draw(&tp, st, fl, now_ms());
		}
		jv_free(st);
		jv_free(fl);
		if (wait_key(start + REFRESH_MS))
			break;
	}
	restore_terminal();
	ctl_close(&conn);
	free(tp.seen);
	return status;
}
