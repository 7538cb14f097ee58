/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "addr.h"
#include "channel.h"
#include "control.h"
#include "daemon.h"
#include "flow.h"
#include "frame.h"
#include "json.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "redirect.h"
#include "relay.h"
#include "unixsock.h"

struct ctl_client {
	struct io io;
	struct control *ctl;
	struct ucred cred;
	char in[JSON_REQUEST_MAX + 1]; /* one request and its newline */
	size_t in_len;
	struct json_writer out;
	bool streaming;	 /* a flow list is being made, CONTROL_CHUNK at a time */
	unsigned worker; /* ... and this is the worker whose flows come next, */
	uint32_t cursor; /* ... from this flow table slot */
	bool eof;	 /* the client will send no more */
	bool closing;	 /* close once the output is sent */
	struct ctl_client *next, *prev;
};

struct control {
	struct sluiced *top;
	struct io io;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct unixsock_access access;
	struct ctl_client *clients;
	unsigned nclients;
	struct timer backoff; /* accepting paused: out of descriptors */
};

static const char *const mode_names[] = {
	[MODE_LISTEN] = "listen",
	[MODE_INTERCEPT] = "intercept",
	[MODE_GATEWAY] = "gateway",
};

static void client_close(struct ctl_client *c)
{
	struct control *ctl = c->ctl;

	io_remove(ctl->top->loop, &c->io);
	close(c->io.fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		ctl->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	ctl->nclients--;
	json_writer_fini(&c->out);
	free(c);
}

static void answer_error(struct ctl_client *c, const char *text)
{
	json_object_begin(&c->out, NULL);
	json_string(&c->out, "error", text);
	json_object_end(&c->out);
	json_end_line(&c->out);
}

/* Listings. */

static void write_filter(struct json_writer *w, const struct client *cl, unsigned worker)
{
	struct channel_client_info ci;

	channel_client_info(cl, &ci);
	json_object_begin(w, NULL);
	json_uint(w, "id", ci.id);
	json_uint(w, "worker", worker);
	json_string(w, "name", ci.name);
	json_uint(w, "pid", (uint64_t)ci.pid);
	json_uint(w, "uid", ci.uid);
	json_bool(w, "ready", ci.ready);
	json_uint(w, "flows", ci.flows);
	json_uint(w, "queued", ci.queued);
	json_object_begin(w, "subscribed");
	json_array_begin(w, "dirs");
	if (ci.dirs & SLUICE_SUB_OUT)
		json_string(w, NULL, "out");
	if (ci.dirs & SLUICE_SUB_IN)
		json_string(w, NULL, "in");
	json_array_end(w);
	/* Port ranges as the command line writes them; none: every port. */
	json_array_begin(w, "ports");
	for (unsigned i = 0; i < ci.sub->nports; i++) {
		char buf[16];

		if (ci.sub->ports[i].lo == ci.sub->ports[i].hi)
			snprintf(buf, sizeof(buf), "%u", ci.sub->ports[i].lo);
		else
			snprintf(buf, sizeof(buf), "%u-%u", ci.sub->ports[i].lo,
				 ci.sub->ports[i].hi);
		json_string(w, NULL, buf);
	}
	json_array_end(w);
	json_object_end(w);
	json_object_end(w);
}

/*
 * A worker's flows and filters are its own: the main thread reads them by
 * running a function in the worker's thread (inbox_visit) while it waits,
 * writing straight into the answer.
 */
struct visit {
	struct daemon *d;
	struct ctl_client *c;
	void *arg;
	bool done;
};

static void visit_each(struct sluiced *top, struct ctl_client *c, job_fn fn, void *arg)
{
	for (unsigned i = 0; i < top->nworkers; i++) {
		struct visit v = { .d = top->workers[i], .c = c, .arg = arg };

		inbox_visit(&v.d->inbox, fn, &v);
		if (v.done)
			return;
	}
}

static void write_worker_filters(void *arg)
{
	struct visit *v = arg;
	const struct channel *ch = v->d->channel;

	for (const struct client *cl = channel_next_client(ch, NULL); cl;
	     cl = channel_next_client(ch, cl))
		write_filter(&v->c->out, cl, v->d->index + 1);
}

static void write_filters(struct ctl_client *c)
{
	json_array_begin(&c->out, "filters");
	visit_each(c->ctl->top, c, write_worker_filters, NULL);
	json_array_end(&c->out);
}

/*
 * Where the backend takes connections in: the listening port, and whether
 * the nftables table is in place. The intercept backend's state is a struct
 * redirect, and the gateway's begins with one (C lets a pointer to a
 * structure stand for its first member).
 */
static void write_backend(struct json_writer *w, const struct daemon *d)
{
	char buf[ADDR_STRLEN];

	if (d->cfg.mode == MODE_LISTEN) {
		const struct listener *l = d->backend_state;

		if (l && l->io.fd >= 0) {
			const struct sockaddr_storage *a = &l->addr;

			json_string(w, "listen", addr_format(a, buf));
			json_uint(w, "port",
				  ntohs(a->ss_family == AF_INET6
						? ((const struct sockaddr_in6 *)a)->sin6_port
						: ((const struct sockaddr_in *)a)->sin_port));
		} else {
			json_null(w, "listen");
			json_null(w, "port");
		}
		json_string(w, "upstream", addr_format(&d->cfg.upstream_addr, buf));
		json_bool(w, "rules", false);
		return;
	}
	if (d->backend_state) {
		const struct redirect *r = d->backend_state;

		json_uint(w, "port", r->port);
		json_bool(w, "rules", r->rules != NULL);
	} else {
		json_null(w, "port");
		json_bool(w, "rules", false);
	}
}

static void write_worker_backend(void *arg)
{
	struct visit *v = arg;

	write_backend(&v->c->out, v->d);
}

static void cmd_status(struct ctl_client *c, const struct json_request *req)
{
	struct sluiced *top = c->ctl->top;
	struct json_writer *w = &c->out;
	struct visit first = { .d = top->workers[0], .c = c };
	struct metrics sum;
	const uint64_t *m = sum.c;
	unsigned nflows = sluiced_flows_open(top);

	metrics_sum(top, &sum);
	json_object_begin(w, NULL);
	json_string(w, "version", SLUICE_VERSION);
	json_string(w, "mode", mode_names[top->cfg.mode]);
	json_uint(w, "pid", (uint64_t)getpid());
	json_millis(w, "uptime", loop_now_ms() - sum.started_ms);
	/* Worker 0 opened the listeners and owns the rules. */
	inbox_visit(&first.d->inbox, write_worker_backend, &first);
	json_string(w, "policy", top->cfg.on_failure == FAIL_CLOSED ? "fail-closed" : "fail-open");
	json_string(w, "filter_socket", top->cfg.filter_socket);
	json_uint(w, "window", top->cfg.window);
	json_uint(w, "workers", top->nworkers);
	json_bool(w, "draining", top->draining);
	write_filters(c);
	json_object_begin(w, "totals");
	json_uint(w, "flows_open", nflows);
	json_uint(w, "flows_opened", m[M_FLOWS_OPENED]);
	json_uint(w, "flows_closed", m[M_FLOWS_CLOSED]);
	json_uint(w, "resets", m[M_FLOWS_RESET]);
	json_uint(w, "bytes_out", m[M_BYTES_OUT]);
	json_uint(w, "bytes_in", m[M_BYTES_IN]);
	json_object_end(w);
	json_object_end(w);
	json_end_line(w);
}

static void cmd_filters(struct ctl_client *c, const struct json_request *req)
{
	json_object_begin(&c->out, NULL);
	write_filters(c);
	json_object_end(&c->out);
	json_end_line(&c->out);
}

static const char *flow_state_name(const struct flow *f)
{
	switch (f->state) {
	case FLOW_PENDING:
		return "pending";
	case FLOW_CONNECTING:
		return "connecting";
	case FLOW_RELAYING:
		return "relaying";
	default:
		return "closed";
	}
}

/*
 * A direction as a person would say it: "eof" once its FIN is passed on,
 * "shut" when the filter shut it and what it decided drains; otherwise how
 * its bytes move: through the filter, passed without it ("pass", and
 * "spliced" once they go by splice(2)), or held while its filter is away
 * ("orphaned"); "pending" before the flow is admitted.
 */
static const char *dir_state_name(const struct flow *f, int dir)
{
	const struct flow_dir *fd = &f->dir[dir];
	const struct stream *st = &fd->st;

	if (st->fin_sent)
		return "eof";
	if (st->shut)
		return "shut";
	if (!f->admitted)
		return "pending";
	if (st->auto_pass)
		return fd->pipe[0] >= 0 ? "spliced" : "pass";
	if (f->filter)
		return "filtered";
	return "orphaned";
}

static void write_dir(struct json_writer *w, const struct flow *f, int dir)
{
	const struct stream *st = &f->dir[dir].st;

	json_object_begin(w, dir == SLUICE_DIR_OUT ? "out" : "in");
	json_string(w, "state", dir_state_name(f, dir));
	json_bool(w, "src_eof", st->src_eof);
	json_uint(w, "read", st->win.in);
	json_uint(w, "bytes", st->written);
	json_uint(w, "held", window_used(&st->win));
	json_uint(w, "undecided", stream_undecided(st));
	json_object_end(w);
}

static void write_flow(struct json_writer *w, const struct flow *f, uint64_t now)
{
	char buf[ADDR_STRLEN], id[48];
	const char *orphan;

	json_object_begin(w, NULL);
	snprintf(id, sizeof(id), FLOW_ID_FMT, FLOW_ID_ARGS(f->id));
	json_string(w, "id", id);
	snprintf(id, sizeof(id), "%016llx", (unsigned long long)f->id);
	json_string(w, "hex", id);
	json_uint(w, "worker", f->d->index + 1);
	json_string(w, "state", flow_state_name(f));
	json_string(w, "app", addr_format(&f->app_addr, buf));
	json_string(w, "dst", addr_format(&f->dst_addr, buf));
	if (f->ident.has_uid)
		json_uint(w, "uid", f->ident.uid);
	else
		json_null(w, "uid");
	if (f->ident.has_pid) {
		json_uint(w, "pid", f->ident.pid);
		json_string_n(w, "comm", f->ident.comm,
			      strnlen(f->ident.comm, sizeof(f->ident.comm)));
	} else {
		json_null(w, "pid");
		json_null(w, "comm");
	}
	if (f->filter) {
		struct channel_client_info ci;

		channel_client_info(f->filter, &ci);
		json_string(w, "filter", ci.name);
		json_uint(w, "filter_id", ci.id);
	} else if ((orphan = channel_orphan_name(f))) {
		json_string(w, "filter", orphan);
		json_null(w, "filter_id");
	} else {
		json_null(w, "filter");
		json_null(w, "filter_id");
	}
	json_millis(w, "age", now - f->started_ms);
	json_millis(w, "idle", now - f->active_ms);
	write_dir(w, f, SLUICE_DIR_OUT);
	write_dir(w, f, SLUICE_DIR_IN);
	json_object_end(w);
}

/* In a worker: its flows from the cursor on, until a chunk is made or its
 * table ends (then done). */
static void write_worker_flows(void *arg)
{
	struct visit *v = arg;
	struct ctl_client *c = v->c;
	uint64_t now = loop_now_ms();
	struct flow *f;

	while (json_pending(&c->out) < CONTROL_CHUNK && !c->out.failed) {
		f = flow_table_next(v->d->flows, &c->cursor);
		if (!f) {
			v->done = true;
			return;
		}
		write_flow(&c->out, f, now);
	}
}

/* Adds flows from the cursor on until a chunk is made or the last worker's
 * table ends; then closes the answer. */
static void produce_flows(struct ctl_client *c)
{
	struct sluiced *top = c->ctl->top;

	while (json_pending(&c->out) < CONTROL_CHUNK && !c->out.failed) {
		struct visit v = { .c = c };

		if (c->worker == top->nworkers) {
			json_array_end(&c->out);
			json_object_end(&c->out);
			json_end_line(&c->out);
			c->streaming = false;
			return;
		}
		v.d = top->workers[c->worker];
		inbox_visit(&v.d->inbox, write_worker_flows, &v);
		if (v.done) {
			c->worker++;
			c->cursor = 0;
		}
	}
}

static void cmd_flows(struct ctl_client *c, const struct json_request *req)
{
	json_object_begin(&c->out, NULL);
	json_array_begin(&c->out, "flows");
	c->streaming = true;
	c->worker = 0;
	c->cursor = 0;
	produce_flows(c);
}

/* "S:G" as logs print ids, or the 64-bit id in hex as filters see it
 * (with or without 0x). Returns 0 or -EINVAL. */
static int parse_flow_id(const char *s, uint64_t *ret)
{
	const char *colon = strchr(s, ':');
	unsigned long long slot, gen, v;
	char *end;

	if (colon) {
		if (s[0] < '0' || s[0] > '9' || colon[1] < '0' || colon[1] > '9')
			return -EINVAL;
		errno = 0;
		slot = strtoull(s, &end, 10);
		if (errno || end != colon || slot >= FLOW_SLOT_MAX)
			return -EINVAL;
		gen = strtoull(colon + 1, &end, 10);
		if (errno || *end || gen == 0 || gen >= (1ull << (64 - FLOW_SLOT_BITS)))
			return -EINVAL;
		*ret = (uint64_t)gen << FLOW_SLOT_BITS | slot;
		return 0;
	}
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	if (!*s || strlen(s) > 16 || strspn(s, "0123456789abcdefABCDEF") != strlen(s))
		return -EINVAL;
	v = strtoull(s, &end, 16);
	*ret = v;
	return 0;
}

/* In a worker: resets the flow if it is one of its own. */
static void kill_worker_flow(void *arg)
{
	struct visit *v = arg;
	struct flow *f = flow_lookup(v->d->flows, *(const uint64_t *)v->arg);
	char why[96];

	if (!f)
		return;
	snprintf(why, sizeof(why), "killed on the control socket by pid %d, uid %u",
		 (int)v->c->cred.pid, (unsigned)v->c->cred.uid);
	relay_reset(f, 0, why);
	v->done = true;
}

static void cmd_kill(struct ctl_client *c, const struct json_request *req)
{
	const struct json_field *fl = json_request_get(req, "flow");
	struct visit probe = { .c = c };
	char id[48];
	uint64_t v;

	if (!fl || fl->type != JSON_STRING) {
		answer_error(c, "kill needs \"flow\": \"SLOT:GEN\" or the hex id");
		return;
	}
	if (parse_flow_id(fl->str, &v) < 0) {
		answer_error(c, "bad flow id: use SLOT:GEN or the hex id");
		return;
	}
	probe.arg = &v;
	for (unsigned i = 0; i < c->ctl->top->nworkers && !probe.done; i++) {
		probe.d = c->ctl->top->workers[i];
		inbox_visit(&probe.d->inbox, kill_worker_flow, &probe);
	}
	if (!probe.done) {
		answer_error(c, "no such flow");
		return;
	}
	snprintf(id, sizeof(id), FLOW_ID_FMT, FLOW_ID_ARGS(v));
	json_object_begin(&c->out, NULL);
	json_bool(&c->out, "ok", true);
	json_string(&c->out, "flow", id);
	json_object_end(&c->out);
	json_end_line(&c->out);
}

typedef void (*command_fn)(struct ctl_client *c, const struct json_request *req);

static const struct {
	const char *name;
	command_fn fn;
} commands[] = {
	{ "status", cmd_status },
	{ "flows", cmd_flows },
	{ "filters", cmd_filters },
	{ "kill", cmd_kill },
};

static void handle_request(struct ctl_client *c, const char *line, size_t len)
{
	struct json_request *req = malloc(sizeof(*req));
	const struct json_field *cmd;
	const char *why = NULL;
	char text[128];

	if (!req) {
		answer_error(c, "out of memory");
		c->closing = true;
		return;
	}
	if (json_parse_request(line, len, req, &why) < 0) {
		log_warn("control: pid %d, uid %u: malformed request (%s); closing",
			 (int)c->cred.pid, (unsigned)c->cred.uid, why);
		snprintf(text, sizeof(text), "malformed request: %s", why);
		answer_error(c, text);
		c->closing = true;
		goto out;
	}
	cmd = json_request_get(req, "cmd");
	if (!cmd || cmd->type != JSON_STRING) {
		answer_error(c, "a request needs \"cmd\": status, flows, filters or kill");
		goto out;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (!strcmp(cmd->str, commands[i].name)) {
			commands[i].fn(c, req);
			goto out;
		}
	}
	answer_error(c, "unknown command: use status, flows, filters or kill");
out:
	free(req);
}

/* Takes one request line off the input, if a whole one is there (or the
 * last one, unterminated, at EOF). Returns whether one was handled. */
static bool next_request(struct ctl_client *c)
{
	char *nl = memchr(c->in, '\n', c->in_len);
	size_t len, used;

	if (nl) {
		len = (size_t)(nl - c->in);
		used = len + 1;
	} else if (c->in_len == sizeof(c->in)) {
		log_warn("control: pid %d, uid %u: request longer than %d bytes; closing",
			 (int)c->cred.pid, (unsigned)c->cred.uid, JSON_REQUEST_MAX);
		answer_error(c, "malformed request: longer than 4096 bytes");
		c->closing = true;
		c->in_len = 0;
		return true;
	} else if (c->eof && c->in_len) {
		len = used = c->in_len;
	} else {
		return false;
	}
	if (len && c->in[len - 1] == '\r')
		len--;
	/* An empty line asks for nothing and gets nothing. */
	if (len)
		handle_request(c, c->in, len);
	memmove(c->in, c->in + used, c->in_len - used);
	c->in_len -= used;
	return true;
}

/* Sends what is pending, making more of a streamed answer as it goes.
 * Returns false when c was closed. */
static bool client_flush(struct ctl_client *c)
{
	for (;;) {
		ssize_t n;

		if (!json_pending(&c->out) && c->streaming)
			produce_flows(c);
		if (c->out.failed) {
			log_err("control: no memory for an answer to pid %d", (int)c->cred.pid);
			client_close(c);
			return false;
		}
		if (!json_pending(&c->out))
			return true;
		n = send(c->io.fd, c->out.data + c->out.off, json_pending(&c->out),
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return true;
			log_debug("control: pid %d: write: %s", (int)c->cred.pid, strerror(errno));
			client_close(c);
			return false;
		}
		json_consume(&c->out, (size_t)n);
	}
}

/*
 * Moves c on as far as it can go: sends, answers the requests already read,
 * and waits for what comes next: room to send (an answer in progress) or
 * the next request. The next request is not read before the answer to the
 * last one is out, so a client that does not read its answers stops being
 * heard.
 */
static void client_step(struct ctl_client *c)
{
	for (;;) {
		bool busy;

		if (!client_flush(c))
			return;
		busy = json_pending(&c->out) || c->streaming;
		if (!busy && c->closing) {
			client_close(c);
			return;
		}
		if (busy || c->closing || !next_request(c))
			break;
	}
	if (json_pending(&c->out) || c->streaming) {
		if (io_set(c->ctl->top->loop, &c->io, EPOLLOUT) < 0)
			client_close(c);
	} else if (c->eof) {
		client_close(c);
	} else if (io_set(c->ctl->top->loop, &c->io, EPOLLIN) < 0) {
		client_close(c);
	}
}

static void on_client(struct io *io, uint32_t revents)
{
	struct ctl_client *c = (struct ctl_client *)((char *)io - offsetof(struct ctl_client, io));

	if ((revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !(io->events & EPOLLOUT) &&
	    c->in_len < sizeof(c->in)) {
		ssize_t n =
			recv(io->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);

		if (n == 0) {
			c->eof = true;
		} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
			log_debug("control: pid %d: read: %s", (int)c->cred.pid, strerror(errno));
			client_close(c);
			return;
		} else if (n > 0) {
			c->in_len += (size_t)n;
		}
	}
	client_step(c);
}

/* A refusal the peer can read: it is one short line on a new socket, which
 * always fits in its buffer. */
static void refuse(int fd, const char *text)
{
	char line[160];
	int n = snprintf(line, sizeof(line), "{\"error\":\"%s\"}\n", text);

	(void)!send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
}

static void on_backoff(struct timer *t)
{
	struct control *ctl = (struct control *)((char *)t - offsetof(struct control, backoff));

	io_set(ctl->top->loop, &ctl->io, EPOLLIN);
}

static void on_accept(struct io *io, uint32_t revents)
{
	struct control *ctl = (struct control *)((char *)io - offsetof(struct control, io));

	for (;;) {
		struct ucred cred;
		struct ctl_client *c;
		int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			accept_failed(ctl->top->loop, io, &ctl->backoff, on_backoff,
				      "control socket");
			return;
		}
		if (!unixsock_peer_allowed(fd, &ctl->access, &cred)) {
			log_warn("control socket: refusing pid %d, uid %u, gid %u: not root%s",
				 (int)cred.pid, (unsigned)cred.uid, (unsigned)cred.gid,
				 ctl->access.has_group ? " nor in the --group" : " (see --group)");
			refuse(fd, "permission denied: not root nor in sluiced's --group");
			continue;
		}
		if (ctl->nclients >= CONTROL_MAX_CLIENTS) {
			log_warn("control socket: refusing pid %d: already %d clients",
				 (int)cred.pid, CONTROL_MAX_CLIENTS);
			refuse(fd, "too many control clients");
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			log_err("control socket: no memory for a client");
			close(fd);
			continue;
		}
		c->ctl = ctl;
		c->cred = cred;
		json_writer_init(&c->out);
		io_init(&c->io, fd, on_client);
		c->next = ctl->clients;
		if (ctl->clients)
			ctl->clients->prev = c;
		ctl->clients = c;
		ctl->nclients++;
		log_debug("control: pid %d, uid %u connected", (int)cred.pid, (unsigned)cred.uid);
		if (io_set(ctl->top->loop, &c->io, EPOLLIN) < 0)
			client_close(c);
	}
}

int control_new(struct sluiced *top, const char *path, struct control **ret_control)
{
	struct control *ctl = calloc(1, sizeof(*ctl));
	int r;

	if (!ctl)
		return -ENOMEM;
	ctl->top = top;
	snprintf(ctl->path, sizeof(ctl->path), "%s", path);
	r = unixsock_serve(top->loop, top->cfg.group, path, &ctl->access, &ctl->io, on_accept);
	if (r < 0) {
		free(ctl);
		return r;
	}
	*ret_control = ctl;
	return 0;
}

int control_open(struct sluiced *top)
{
	const char *path = top->cfg.control_socket;
	int r = control_new(top, path, &top->control);
	const char *why = r == -EADDRINUSE		   ? "another sluiced is listening there"
			  : r == -ENOENT && top->cfg.group ? "no such --group"
							   : strerror(-r);

	if (r == 0) {
		log_info("control socket %s", path);
		return 0;
	}
	if (top->cfg.control_set) {
		log_err("control socket %s: %s", path, why);
		return r;
	}
	log_warn("control socket %s: %s; running without one (see --control)", path, why);
	return 0;
}

void control_free(struct control *ctl)
{
	if (!ctl)
		return;
	while (ctl->clients)
		client_close(ctl->clients);
	timer_cancel(ctl->top->loop, &ctl->backoff);
	io_remove(ctl->top->loop, &ctl->io);
	close(ctl->io.fd);
	unlink(ctl->path);
	free(ctl);
}
