/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "channel.h"
#include "daemon.h"
#include "flow.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"

/* Connections at once; a request's size, and how long it may take to come;
 * how long a closing connection waits for the client to close first. */
#define HTTP_MAX_CONNS	 16
#define HTTP_REQUEST_MAX 4096
#define HTTP_REQUEST_MS	 10000
#define HTTP_LINGER_MS	 2000
/* The exposition text; it has a fixed set of series, a few KiB. */
#define METRICS_TEXT_MAX (32 * 1024)

__thread struct metrics *metrics_here;

void metrics_init(struct metrics *m)
{
	m->started_ms = loop_now_ms();
	m->started_unix = (uint64_t)time(NULL);
	metrics_here = m;
}

static void add_counts(struct metrics *sum, const struct metrics *m)
{
	for (unsigned i = 0; i < M_COUNT; i++)
		sum->c[i] += __atomic_load_n(&m->c[i], __ATOMIC_RELAXED);
	for (unsigned i = 0; i <= SLUICE_VERDICT_OP_MAX; i++)
		sum->verdicts[i] += __atomic_load_n(&m->verdicts[i], __ATOMIC_RELAXED);
	for (unsigned i = 0; i <= SLUICE_OPEN_IGNORE; i++)
		sum->open_verdicts[i] += __atomic_load_n(&m->open_verdicts[i], __ATOMIC_RELAXED);
}

void metrics_sum(const struct sluiced *top, struct metrics *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->started_ms = top->metrics.started_ms;
	ret->started_unix = top->metrics.started_unix;
	add_counts(ret, &top->metrics);
	for (unsigned i = 0; i < top->nworkers; i++)
		add_counts(ret, &top->workers[i]->metrics);
}

/* Exposition text. */

struct text {
	char *buf;
	size_t len, cap;
	bool full;
};

static void add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= t->cap - t->len) {
		t->full = true;
		return;
	}
	t->len += (size_t)n;
}

static void head(struct text *t, const char *name, const char *type, const char *help)
{
	add(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(struct text *t, const char *name, const char *help, uint64_t v)
{
	head(t, name, "counter", help);
	add(t, "%s %llu\n", name, (unsigned long long)v);
}

static void gauge(struct text *t, const char *name, const char *help, uint64_t v)
{
	head(t, name, "gauge", help);
	add(t, "%s %llu\n", name, (unsigned long long)v);
}

static const char *const mode_names[] = {
	[MODE_LISTEN] = "listen",
	[MODE_INTERCEPT] = "intercept",
	[MODE_GATEWAY] = "gateway",
};

static const char *const verdict_names[SLUICE_VERDICT_OP_MAX + 1] = {
	[SLUICE_VERDICT_PASS] = "pass",		[SLUICE_VERDICT_PEEK] = "peek",
	[SLUICE_VERDICT_REPLACE] = "replace",	[SLUICE_VERDICT_INJECT] = "inject",
	[SLUICE_VERDICT_DROP] = "drop",		[SLUICE_VERDICT_PASS_REST] = "pass_rest",
	[SLUICE_VERDICT_SHUTDOWN] = "shutdown", [SLUICE_VERDICT_RESET] = "reset",
};

static const char *const open_names[SLUICE_OPEN_IGNORE + 1] = {
	[SLUICE_OPEN_ALLOW] = "allow",
	[SLUICE_OPEN_DENY] = "deny",
	[SLUICE_OPEN_REDIRECT] = "redirect",
	[SLUICE_OPEN_IGNORE] = "ignore",
};

int metrics_format(struct sluiced *top, char *buf, size_t len)
{
	struct text t = { .buf = buf, .cap = len };
	struct metrics sum;
	const uint64_t *c = sum.c;
	unsigned flows = sluiced_flows_open(top);

	metrics_sum(top, &sum);

	head(&t, "sluice_build_info", "gauge", "Version and mode of this sluiced (always 1).");
	add(&t, "sluice_build_info{version=\"%s\",mode=\"%s\"} 1\n", SLUICE_VERSION,
	    mode_names[top->cfg.mode]);
	gauge(&t, "sluice_start_time_seconds", "When sluiced started, in seconds since the epoch.",
	      sum.started_unix);

	counter(&t, "sluice_flows_opened_total", "Connections taken in as flows.",
		c[M_FLOWS_OPENED]);
	counter(&t, "sluice_flows_closed_total", "Flows that ended, with FIN or reset.",
		c[M_FLOWS_CLOSED]);
	counter(&t, "sluice_flows_reset_total", "Flows that ended with a reset to both sides.",
		c[M_FLOWS_RESET]);
	gauge(&t, "sluice_flows_active", "Flows open now.", flows);
	gauge(&t, "sluice_workers", "Event-loop threads (--workers).", top->nworkers);

	head(&t, "sluice_bytes_total", "counter",
	     "Bytes written to the sink: out to servers, in to applications.");
	add(&t, "sluice_bytes_total{direction=\"out\"} %llu\n", (unsigned long long)c[M_BYTES_OUT]);
	add(&t, "sluice_bytes_total{direction=\"in\"} %llu\n", (unsigned long long)c[M_BYTES_IN]);
	head(&t, "sluice_bytes_read_total", "counter",
	     "Bytes read from the source: out from applications, in from servers.");
	add(&t, "sluice_bytes_read_total{direction=\"out\"} %llu\n",
	    (unsigned long long)c[M_READ_OUT]);
	add(&t, "sluice_bytes_read_total{direction=\"in\"} %llu\n",
	    (unsigned long long)c[M_READ_IN]);

	head(&t, "sluice_verdicts_total", "counter", "Stream verdicts from filters, by kind.");
	for (unsigned i = 1; i <= SLUICE_VERDICT_OP_MAX; i++)
		add(&t, "sluice_verdicts_total{kind=\"%s\"} %llu\n", verdict_names[i],
		    (unsigned long long)sum.verdicts[i]);
	head(&t, "sluice_open_verdicts_total", "counter",
	     "Connect-time verdicts from filters, by action.");
	for (unsigned i = 1; i <= SLUICE_OPEN_IGNORE; i++)
		add(&t, "sluice_open_verdicts_total{action=\"%s\"} %llu\n", open_names[i],
		    (unsigned long long)sum.open_verdicts[i]);

	gauge(&t, "sluice_filters_connected",
	      "Filter connections now (a libsluice filter has one per worker).",
	      SHARED_LOAD(top->clients));
	counter(&t, "sluice_filter_drops_total",
		"Filter connections dropped: closed, malformed, hung or over a limit.",
		c[M_FILTER_DROPS]);
	counter(&t, "sluice_backpressure_stalls_total",
		"Times a flow waited for room on its filter's channel.", c[M_STALLS]);
	counter(&t, "sluice_window_full_total",
		"Times reading a source stopped because its direction's window was full.",
		c[M_WINDOW_FULL]);
	counter(&t, "sluice_shm_inline_bytes_total",
		"Bytes offered to filters with shared memory inside frames, because the "
		"direction's ring was not in that filter's memory.",
		c[M_SHM_INLINE]);
	return t.full ? -ENOSPC : (int)t.len;
}

/* The HTTP endpoint. */

struct http_conn {
	struct io io;
	struct metrics_server *s;
	struct timer timer;
	char in[HTTP_REQUEST_MAX];
	size_t in_len;
	char *out;
	size_t out_off, out_len;
	bool answered;	/* the response is queued; what comes in is discarded */
	bool lingering; /* all sent, write side shut: waiting for the client's FIN */
	struct http_conn *next, *prev;
};

struct metrics_server {
	struct sluiced *top;
	struct listener l;
	struct http_conn *conns;
	unsigned nconns;
};

static void conn_close(struct http_conn *c)
{
	struct metrics_server *s = c->s;

	timer_cancel(s->top->loop, &c->timer);
	io_remove(s->top->loop, &c->io);
	close(c->io.fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nconns--;
	free(c->out);
	free(c);
}

static void on_timeout(struct timer *t)
{
	struct http_conn *c = (struct http_conn *)((char *)t - offsetof(struct http_conn, timer));

	if (!c->answered)
		log_debug("metrics: a client sent no complete request within %d s",
			  HTTP_REQUEST_MS / 1000);
	conn_close(c);
}

/* Sends what is queued; once all is out, shuts the write side and waits
 * (briefly) for the client to close, so that the response is not cut by
 * the reset that closing with unread input would send. Returns false when
 * c was closed. */
static bool conn_flush(struct http_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->io.fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN && io_set(c->s->top->loop, &c->io, EPOLLOUT) >= 0)
				return true;
			conn_close(c);
			return false;
		}
		c->out_off += (size_t)n;
	}
	shutdown(c->io.fd, SHUT_WR);
	c->lingering = true;
	timer_arm(c->s->top->loop, &c->timer, HTTP_LINGER_MS, on_timeout);
	if (io_set(c->s->top->loop, &c->io, EPOLLIN) < 0) {
		conn_close(c);
		return false;
	}
	return true;
}

static void respond(struct http_conn *c, int status, const char *type, const char *body,
		    size_t body_len, bool head_only)
{
	static const char fmt[] = "HTTP/1.0 %d %s\r\n"
				  "Content-Type: %s\r\n"
				  "Content-Length: %zu\r\n"
				  "Connection: close\r\n"
				  "\r\n";
	const char *reason = status == 200 ? "OK" : status == 404 ? "Not Found" : "Bad Request";
	int n = snprintf(NULL, 0, fmt, status, reason, type, body_len);

	c->answered = true;
	c->out = malloc((size_t)n + 1 + body_len);
	if (!c->out) {
		conn_close(c);
		return;
	}
	snprintf(c->out, (size_t)n + 1, fmt, status, reason, type, body_len);
	if (!head_only)
		memcpy(c->out + n, body, body_len);
	c->out_len = (size_t)n + (head_only ? 0 : body_len);
	conn_flush(c);
}

static void error_page(struct http_conn *c, int status, bool head_only)
{
	const char *body = status == 404 ? "not found; try /metrics\n" : "bad request\n";

	respond(c, status, "text/plain; charset=utf-8", body, strlen(body), head_only);
}

/*
 * Answers the request whose head is in c->in[0, len). Only the request
 * line matters: METHOD SP TARGET SP HTTP/1.x. Headers are not read.
 */
static void handle(struct http_conn *c, size_t len)
{
	const char *line = c->in, *sp1, *sp2, *target, *version;
	size_t n = 0, mlen, tlen, vlen;
	bool head_only;
	char *text;
	int r;

	while (n < len && line[n] != '\r' && line[n] != '\n')
		n++;
	sp1 = memchr(line, ' ', n);
	sp2 = sp1 ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - line)) : NULL;
	if (!sp2) {
		error_page(c, 400, false);
		return;
	}
	mlen = (size_t)(sp1 - line);
	target = sp1 + 1;
	tlen = (size_t)(sp2 - target);
	version = sp2 + 1;
	vlen = n - (size_t)(version - line);
	for (size_t i = 0; i < mlen; i++) {
		if (line[i] < 'A' || line[i] > 'Z') {
			mlen = 0;
			break;
		}
	}
	for (size_t i = 0; i < tlen; i++) {
		/* A control character (NUL included) makes it not HTTP. */
		if ((unsigned char)target[i] <= 0x20 || target[i] == 0x7f) {
			tlen = 0;
			break;
		}
	}
	if (!mlen || !tlen || target[0] != '/' || vlen != 8 ||
	    (memcmp(version, "HTTP/1.0", 8) && memcmp(version, "HTTP/1.1", 8))) {
		log_debug("metrics: not an HTTP/1.x request line");
		error_page(c, 400, false);
		return;
	}
	head_only = mlen == 4 && !memcmp(line, "HEAD", 4);
	if (!(head_only || (mlen == 3 && !memcmp(line, "GET", 3))) ||
	    !((tlen == 8 && !memcmp(target, "/metrics", 8)) ||
	      (tlen > 8 && !memcmp(target, "/metrics?", 9)))) {
		error_page(c, 404, head_only);
		return;
	}
	text = malloc(METRICS_TEXT_MAX);
	if (!text) {
		conn_close(c);
		return;
	}
	r = metrics_format(c->s->top, text, METRICS_TEXT_MAX);
	if (r < 0) {
		/* A fixed set of series always fits; this is a bug. */
		log_err("metrics: the text does not fit in %d bytes", METRICS_TEXT_MAX);
		free(text);
		conn_close(c);
		return;
	}
	respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", text, (size_t)r, head_only);
	free(text);
}

/* The end of the request head ("\r\n\r\n" or a bare "\n\n"), or 0. */
static size_t head_end(const char *p, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (p[i] == '\n' && p[i + 1] == '\n')
			return i + 2;
		if (i + 3 < len && !memcmp(p + i, "\r\n\r\n", 4))
			return i + 4;
	}
	return 0;
}

static void on_conn_io(struct io *io, uint32_t revents)
{
	struct http_conn *c = (struct http_conn *)((char *)io - offsetof(struct http_conn, io));
	size_t end;
	ssize_t n;

	if (c->answered && !c->lingering) {
		if (revents & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			conn_flush(c);
		return;
	}
	if (c->lingering) {
		char sink[4096];

		n = recv(io->fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			conn_close(c);
		return;
	}
	n = recv(io->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			conn_close(c);
		return;
	}
	if (n == 0) {
		conn_close(c); /* gone before asking */
		return;
	}
	c->in_len += (size_t)n;
	end = head_end(c->in, c->in_len);
	if (end) {
		handle(c, end);
		return;
	}
	if (c->in_len == sizeof(c->in)) {
		log_debug("metrics: request head longer than %d bytes", HTTP_REQUEST_MAX);
		error_page(c, 400, false);
	}
}

static void on_accept(struct listener *l, int fd, const struct sockaddr_storage *peer)
{
	struct metrics_server *s =
		(struct metrics_server *)((char *)l - offsetof(struct metrics_server, l));
	struct http_conn *c;

	if (s->nconns >= HTTP_MAX_CONNS) {
		log_debug("metrics: refusing a connection: %d open already", HTTP_MAX_CONNS);
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->s = s;
	io_init(&c->io, fd, on_conn_io);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	timer_arm(s->top->loop, &c->timer, HTTP_REQUEST_MS, on_timeout);
	if (io_set(s->top->loop, &c->io, EPOLLIN) < 0)
		conn_close(c);
}

int metrics_server_new(struct sluiced *top, const struct sockaddr_storage *addr,
		       struct metrics_server **ret_server)
{
	struct metrics_server *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	s->top = top;
	r = listener_open(top->loop, NULL, &s->l, addr, false, on_accept);
	if (r < 0) {
		free(s);
		return r;
	}
	*ret_server = s;
	return 0;
}

int metrics_open(struct sluiced *top)
{
	char buf[ADDR_STRLEN];
	int r;

	if (!top->cfg.metrics_len)
		return 0;
	r = metrics_server_new(top, &top->cfg.metrics_addr, &top->metrics_server);
	if (r < 0) {
		log_err("metrics: listening on %s: %s", addr_format(&top->cfg.metrics_addr, buf),
			strerror(-r));
		return r;
	}
	log_info("metrics at http://%s/metrics", addr_format(&top->metrics_server->l.addr, buf));
	return 0;
}

void metrics_server_free(struct metrics_server *s)
{
	if (!s)
		return;
	while (s->conns)
		conn_close(s->conns);
	listener_close(&s->l);
	free(s);
}
