/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "addr.h"
#include "channel.h"
#include "daemon.h"
#include "flow.h"
#include "log.h"
#include "metrics.h"
#include "procinfo.h"
#include "relay.h"

/* Bytes read from a source in one call, and calls per wake-up: big reads
 * cost fewer syscalls; the cap keeps one busy flow from starving others. */
#define READ_CHUNK	(128 * 1024)
#define READS_PER_EVENT 4
#define WRITE_IOV	16
/* Bytes a direction moves by copying before it is worth a pipe. */
#define SPLICE_AFTER (64 * 1024)
/* How long a flow waits for its filter's connect-time verdict. */
#define OPEN_VERDICT_WAIT_MS 5000

/* The source of direction d is the socket on side d: OUT reads the
 * application, IN reads the server; the sink is the other one. */
static int src_side(int dir)
{
	return dir == SLUICE_DIR_OUT ? SIDE_APP : SIDE_SERVER;
}

static int sink_side(int dir)
{
	return dir == SLUICE_DIR_OUT ? SIDE_SERVER : SIDE_APP;
}

static const char *dir_name(int dir)
{
	return dir == SLUICE_DIR_OUT ? "out" : "in";
}

/* Bytes of this direction go through the filter. */
static bool filtered(const struct flow *f, int dir)
{
	const struct stream *st = &f->dir[dir].st;

	return f->filter && !st->auto_pass && !st->shut;
}

static void close_sock(struct flow *f, int side, bool abort_conn)
{
	struct flow_sock *s = &f->sock[side];

	if (s->io.fd < 0)
		return;
	if (abort_conn) {
		/* A zero linger makes close() send RST instead of FIN. */
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		setsockopt(s->io.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	io_closing(&s->io);
	close(s->io.fd);
	s->io.fd = -1;
}

static void flow_end(struct flow *f, int err, bool abort_conn)
{
	if (f->state == FLOW_DEAD)
		return;
	metrics_flow_closed(abort_conn);
	timer_cancel(f->d->loop, &f->timer);
	close_sock(f, SIDE_APP, abort_conn);
	close_sock(f, SIDE_SERVER, abort_conn);
	for (int dir = 0; dir < 2; dir++) {
		if (f->dir[dir].pipe[0] >= 0) {
			close(f->dir[dir].pipe[0]);
			close(f->dir[dir].pipe[1]);
			f->dir[dir].pipe[0] = f->dir[dir].pipe[1] = -1;
		}
	}
	channel_detach(f, (uint32_t)err);
	flow_release(f->d->flows, f);
}

void relay_reset(struct flow *f, int err, const char *why)
{
	if (f->state == FLOW_DEAD)
		return;
	log_info("flow " FLOW_ID_FMT ": reset: %s%s%s", FLOW_ID_ARGS(f->id), why, err ? ": " : "",
		 err ? strerror(err) : "");
	flow_end(f, err ? err : ECONNRESET, true);
}

static void flow_finished(struct flow *f)
{
	log_info("flow " FLOW_ID_FMT ": closed: out %llu bytes, in %llu bytes, %llu ms",
		 FLOW_ID_ARGS(f->id), (unsigned long long)f->dir[SLUICE_DIR_OUT].st.written,
		 (unsigned long long)f->dir[SLUICE_DIR_IN].st.written,
		 (unsigned long long)(loop_now_ms() - f->started_ms));
	flow_end(f, 0, false);
}

/* Bytes of dir can move by splice: nobody looks at them and nothing of
 * theirs is in the ring or queued as output. */
static bool splicing(const struct flow_dir *fd)
{
	const struct stream *st = &fd->st;

	/* A pipe costs two descriptors and two system calls to make: worth
	 * it for a direction that moves volume, not for a short exchange. */
	return fd->in_pipe || (st->auto_pass && !st->shut && st->win.in >= SPLICE_AFTER &&
			       st->win.in == st->win.out && !stream_out_pending(st));
}

static int make_pipe(struct flow *f, struct flow_dir *fd)
{
	int size;

	if (pipe2(fd->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
		fd->pipe[0] = fd->pipe[1] = -1;
		return -errno;
	}
	/* As big as the window where allowed, so one splice moves as much as
	 * one read would. */
	fcntl(fd->pipe[1], F_SETPIPE_SZ, (int)f->d->cfg.window);
	size = fcntl(fd->pipe[1], F_GETPIPE_SZ);
	fd->pipe_cap = size > 0 ? (size_t)size : 65536;
	return 0;
}

/* splice() variant of relay_read(): source socket to pipe. */
static bool splice_read(struct flow *f, int dir)
{
	struct flow_dir *fd = &f->dir[dir];
	struct stream *st = &fd->st;
	int src = f->sock[src_side(dir)].io.fd;

	if (fd->pipe[0] < 0) {
		int r = make_pipe(f, fd);

		if (r < 0) {
			relay_reset(f, -r, "pipe");
			return false;
		}
	}
	for (int i = 0; i < READS_PER_EVENT && stream_may_read(st); i++) {
		size_t max = fd->pipe_cap - fd->in_pipe;
		ssize_t n;

		if (max > window_space(&st->win))
			max = (size_t)window_space(&st->win);
		if (!max)
			break;
		n = splice(src, NULL, fd->pipe[1], NULL, max, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			relay_reset(f, errno,
				    dir == SLUICE_DIR_OUT ? "application side read"
							  : "server side read");
			return false;
		}
		if (n == 0) {
			st->src_eof = true;
			break;
		}
		/* Decided as they arrive: keep the offsets as readv would. */
		window_take(&st->win, (uint64_t)n);
		metrics_read(dir, (uint64_t)n);
		st->decided = st->win.in;
		f->active_ms = loop_now_ms();
		fd->in_pipe += (size_t)n;
		if ((size_t)n < max)
			break;
	}
	if (!st->src_eof && !window_space(&st->win))
		metrics_inc(M_WINDOW_FULL);
	return true;
}

/*
 * After a write to dir's sink failed (errno): 1 to try again (a signal), 0
 * when the sink is full (wait for EPOLLOUT), -1 after resetting the flow.
 */
static int sink_write_failed(struct flow *f, int dir)
{
	if (errno == EINTR)
		return 1;
	if (errno == EAGAIN) {
		f->sock[sink_side(dir)].write_blocked = true;
		return 0;
	}
	relay_reset(f, errno,
		    dir == SLUICE_DIR_OUT ? "server side write" : "application side write");
	return -1;
}

/* Pipe to sink. Returns false when the flow was reset. */
static bool splice_write(struct flow *f, int dir)
{
	struct flow_dir *fd = &f->dir[dir];
	struct flow_sock *sink = &f->sock[sink_side(dir)];

	while (fd->in_pipe && !sink->write_blocked) {
		ssize_t n = splice(fd->pipe[0], NULL, sink->io.fd, NULL, fd->in_pipe,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

		if (n < 0) {
			int r = sink_write_failed(f, dir);

			if (r > 0)
				continue;
			if (r == 0)
				break;
			return false;
		}
		fd->in_pipe -= (size_t)n;
		f->active_ms = loop_now_ms();
		window_give(&fd->st.win, (uint64_t)n);
		fd->st.written += (uint64_t)n;
		metrics_written(dir, (uint64_t)n);
	}
	return true;
}

/* Reads what the window and the channel allow from the source of dir.
 * Returns false when the flow was reset. */
static bool relay_read(struct flow *f, int dir)
{
	struct flow_dir *fd = &f->dir[dir];
	struct stream *st = &fd->st;
	int src = f->sock[src_side(dir)].io.fd;

	if (splicing(fd))
		return splice_read(f, dir);
	for (int i = 0; i < READS_PER_EVENT && stream_may_read(st); i++) {
		size_t max = READ_CHUNK;
		bool to_filter = filtered(f, dir);
		struct iovec iov[2];
		uint64_t offset;
		ssize_t n;
		int cnt;

		if (to_filter) {
			size_t room = channel_data_room(f);

			if (!room)
				break;
			if (room < max)
				max = room;
		}
		/* Bytes for a filter with shared memory are read into it. */
		cnt = stream_read_iov(st, iov, max, to_filter ? channel_arena(f) : NULL);
		if (cnt < 0) {
			relay_reset(f, -cnt, "no memory for the window");
			return false;
		}
		if (cnt == 0)
			break;
		n = readv(src, iov, cnt);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			relay_reset(f, errno,
				    dir == SLUICE_DIR_OUT ? "application side read"
							  : "server side read");
			return false;
		}
		if (n == 0) {
			st->src_eof = true;
			log_debug("flow " FLOW_ID_FMT " %s: source sent FIN at %llu",
				  FLOW_ID_ARGS(f->id), dir_name(dir),
				  (unsigned long long)st->win.in);
			if (to_filter)
				channel_send_eof(f, dir, st->win.in);
			break;
		}
		offset = st->win.in;
		f->active_ms = loop_now_ms();
		stream_commit_read(st, (size_t)n);
		metrics_read(dir, (uint64_t)n);
		if (to_filter)
			channel_send_data(f, dir, offset, iov, cnt, (size_t)n, 0);
		if ((size_t)n < max)
			break; /* the socket is most likely drained */
	}
	if (!st->src_eof && !window_space(&st->win))
		metrics_inc(M_WINDOW_FULL);
	return true;
}

/* Writes decided output of dir to its sink. Returns false when the flow
 * was reset. */
static bool relay_write(struct flow *f, int dir)
{
	struct stream *st = &f->dir[dir].st;
	struct flow_sock *sink = &f->sock[sink_side(dir)];

	if (!splice_write(f, dir))
		return false;
	while (stream_out_pending(st) && !sink->write_blocked) {
		struct iovec iov[WRITE_IOV];
		struct msghdr msg = { .msg_iov = iov };
		size_t total = 0;
		ssize_t n;

		msg.msg_iovlen = (size_t)stream_out_iov(st, iov, WRITE_IOV);
		if (!msg.msg_iovlen)
			break;
		for (size_t i = 0; i < msg.msg_iovlen; i++)
			total += iov[i].iov_len;
		n = sendmsg(sink->io.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			int r = sink_write_failed(f, dir);

			if (r > 0)
				continue;
			if (r == 0)
				break;
			return false;
		}
		stream_commit_write(st, (size_t)n);
		metrics_written(dir, (uint64_t)n);
		f->active_ms = loop_now_ms();
		if ((size_t)n < total)
			sink->write_blocked = true;
	}
	if (stream_fin_due(st) && !f->dir[dir].in_pipe) {
		/* The sink may already be gone (reset); that shows on its next
		 * event, so a failure here needs no handling of its own. */
		shutdown(sink->io.fd, SHUT_WR);
		st->fin_sent = true;
		log_debug("flow " FLOW_ID_FMT " %s: FIN sent after %llu bytes", FLOW_ID_ARGS(f->id),
			  dir_name(dir), (unsigned long long)st->written);
	}
	return true;
}

static uint32_t interest(const struct flow *f, int side)
{
	const struct flow_sock *s = &f->sock[side];
	int dir = side == SIDE_APP ? SLUICE_DIR_OUT : SLUICE_DIR_IN;
	uint32_t ev = 0;

	if (f->state == FLOW_PENDING)
		return 0;
	if (f->state == FLOW_CONNECTING)
		return side == SIDE_SERVER ? EPOLLOUT : 0;
	if (f->admitted && stream_may_read(&f->dir[dir].st) && !(filtered(f, dir) && f->waiting))
		ev |= EPOLLIN | EPOLLRDHUP;
	if (s->write_blocked)
		ev |= EPOLLOUT;
	return ev;
}

/*
 * After a peek, once the bytes asked for are read (or no more will come),
 * offers everything undecided again, so that the filter needs no buffer of
 * its own; and goes on with a re-offer under way (relay_reoffer()). The
 * bytes go out in as many frames as the channel has room for.
 */
static void reoffer(struct flow *f, int dir)
{
	struct flow_dir *fd = &f->dir[dir];
	struct stream *st = &fd->st;

	if (!filtered(f, dir))
		return;
	if (st->peek_armed &&
	    (!off_before(st->win.in, st->peek_to) || st->src_eof || !window_space(&st->win))) {
		st->peek_armed = false;
		relay_reoffer(f, dir, false);
	}
	/* Bytes decided meanwhile are not offered again (and may be gone). */
	if (off_before(fd->reoffer_next, st->decided))
		fd->reoffer_next = st->decided;
	while (off_before(fd->reoffer_next, fd->reoffer_end)) {
		struct iovec iov[2];
		size_t len, room = channel_data_room(f);
		int cnt;

		if (!room)
			return; /* woken when the channel drains */
		if (room > fd->reoffer_end - fd->reoffer_next)
			room = (size_t)(fd->reoffer_end - fd->reoffer_next);
		cnt = stream_range_iov(st, fd->reoffer_next, iov, room, &len);
		if (!len)
			break;
		channel_send_data(f, dir, fd->reoffer_next, iov, cnt, len, SLUICE_DATA_F_REOFFER);
		fd->reoffer_next += len;
	}
	if (fd->eof_after_reoffer) {
		fd->eof_after_reoffer = false;
		channel_send_eof(f, dir, st->win.in);
	}
}

void relay_reoffer(struct flow *f, int dir, bool then_eof)
{
	struct flow_dir *fd = &f->dir[dir];

	fd->reoffer_next = fd->st.decided;
	fd->reoffer_end = fd->st.win.in;
	/* An EOF still owed (to a filter taking the flow back) stays owed. */
	fd->eof_after_reoffer |= then_eof;
}

void relay_pump(struct flow *f)
{
	if (f->state != FLOW_RELAYING)
		return;
	for (int dir = 0; dir < 2; dir++) {
		reoffer(f, dir);
		if (!relay_write(f, dir))
			return;
	}
	if (f->dir[0].st.fin_sent && f->dir[0].st.src_eof && f->dir[1].st.fin_sent &&
	    f->dir[1].st.src_eof) {
		flow_finished(f);
		return;
	}
	for (int side = 0; side < 2; side++) {
		int r = io_set(f->d->loop, &f->sock[side].io, interest(f, side));

		if (r < 0) {
			relay_reset(f, -r, "epoll");
			return;
		}
	}
}

static void on_connected(struct flow *f)
{
	int err = 0;
	socklen_t len = sizeof(err);
	char buf[ADDR_STRLEN];

	if (getsockopt(f->sock[SIDE_SERVER].io.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		log_info("flow " FLOW_ID_FMT ": upstream %s: %s; resetting the application",
			 FLOW_ID_ARGS(f->id), addr_format(&f->dst_addr, buf), strerror(err));
		flow_end(f, err, true);
		return;
	}
	f->state = FLOW_RELAYING;
	relay_pump(f);
}

static void on_sock(struct io *io, uint32_t revents)
{
	struct flow_sock *s = (struct flow_sock *)((char *)io - offsetof(struct flow_sock, io));
	struct flow *f = s->flow;
	int side = s == &f->sock[SIDE_APP] ? SIDE_APP : SIDE_SERVER;
	int dir = side == SIDE_APP ? SLUICE_DIR_OUT : SLUICE_DIR_IN;

	if (f->state == FLOW_CONNECTING) {
		if (side == SIDE_SERVER)
			on_connected(f);
		return;
	}
	if (revents & EPOLLERR) {
		int err = 0;
		socklen_t len = sizeof(err);

		getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		relay_reset(f, err ? err : ECONNRESET,
			    side == SIDE_APP ? "application side" : "server side");
		return;
	}
	if (revents & EPOLLOUT)
		s->write_blocked = false;
	if ((revents & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)) && !relay_read(f, dir))
		return;
	relay_pump(f);
}

void relay_wake(struct flow *f)
{
	relay_pump(f);
}

void relay_filter_gone_quietly(struct flow *f)
{
	f->filter = NULL;
	f->waiting = false;
	for (int dir = 0; dir < 2; dir++)
		stream_pass_all(&f->dir[dir].st);
	if (f->awaiting_verdict) {
		/* Nobody is left to decide: allowed, as when the wait runs out. */
		relay_open_verdict(f, SLUICE_OPEN_ALLOW, NULL);
		return;
	}
	relay_pump(f);
}

void relay_filter_gone(struct flow *f)
{
	f->filter = NULL;
	f->waiting = false;
	if (f->d->cfg.on_failure == FAIL_CLOSED) {
		relay_reset(f, 0, "its filter failed (--on-filter-failure closed)");
		return;
	}
	relay_filter_gone_quietly(f);
}

static int upstream_socket(struct daemon *d, const struct flow_origin *o, int *ret_fd)
{
	int fd = socket(o->dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1, r;

	if (fd < 0)
		return -errno;
	/* The mark keeps our own connections out of the interception rules.
	 * Listen mode needs no privileges, so there it is best effort. */
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &d->cfg.mark, sizeof(d->cfg.mark)) < 0 &&
	    d->cfg.mark_set)
		goto fail;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (o->transparent) {
		/* Gateway mode: the server must see the client, so connect from
		 * the client's address (any port), which IP_TRANSPARENT allows
		 * although it is not one of ours. */
		struct sockaddr_storage src = o->app;

		if (src.ss_family == AF_INET6) {
			((struct sockaddr_in6 *)&src)->sin6_port = 0;
			r = setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one));
		} else {
			((struct sockaddr_in *)&src)->sin_port = 0;
			r = setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one));
		}
		if (r < 0 || bind(fd, (struct sockaddr *)&src, addr_len(&src)) < 0)
			goto fail;
	}
	*ret_fd = fd;
	return 0;
fail:
	r = -errno;
	close(fd);
	return r;
}

static const char *ident_text(const struct flow_ident *id, char *buf, size_t len)
{
	if (id->has_pid)
		snprintf(buf, len, " (uid %u, pid %u %s)", id->uid, id->pid, id->comm);
	else if (id->has_uid)
		snprintf(buf, len, " (uid %u)", id->uid);
	else
		buf[0] = '\0';
	return buf;
}

/* Creates the upstream socket and starts connecting. Returns false when
 * that failed and the flow is gone. */
static bool start_connect(struct flow *f)
{
	struct flow_origin o = { .app = f->app_addr,
				 .dst = f->dst_addr,
				 .transparent = f->transparent };
	char dbuf[ADDR_STRLEN];
	int r, fd = -1;

	r = upstream_socket(f->d, &o, &fd);
	if (r < 0) {
		log_err("flow " FLOW_ID_FMT ": upstream socket for %s: %s", FLOW_ID_ARGS(f->id),
			addr_format(&o.dst, dbuf), strerror(-r));
		flow_end(f, -r, true);
		return false;
	}
	io_init(&f->sock[SIDE_SERVER].io, fd, on_sock);
	f->state = FLOW_CONNECTING;
	if (connect(fd, (const struct sockaddr *)&o.dst, addr_len(&o.dst)) < 0 &&
	    errno != EINPROGRESS) {
		r = -errno;
		log_info("flow " FLOW_ID_FMT ": upstream %s: %s; resetting the application",
			 FLOW_ID_ARGS(f->id), addr_format(&o.dst, dbuf), strerror(-r));
		flow_end(f, -r, true);
		return false;
	}
	r = io_set(f->d->loop, &f->sock[SIDE_SERVER].io, EPOLLOUT);
	if (r < 0) {
		relay_reset(f, -r, "epoll");
		return false;
	}
	return true;
}

static void on_verdict_timeout(struct timer *t)
{
	struct flow *f = (struct flow *)((char *)t - offsetof(struct flow, timer));

	log_warn("flow " FLOW_ID_FMT ": no connect-time verdict from %s within %d s; allowing it",
		 FLOW_ID_ARGS(f->id), f->filter ? channel_client_name(f->filter) : "the filter",
		 OPEN_VERDICT_WAIT_MS / 1000);
	relay_open_verdict(f, SLUICE_OPEN_ALLOW, NULL);
}

/* Chooses the flow's filter, tells it, and starts connecting unless the
 * filter decides that first. */
static void admit(struct flow *f)
{
	char abuf[ADDR_STRLEN], dbuf[ADDR_STRLEN], who[64];
	struct client *filter;
	bool none;

	timer_cancel(f->d->loop, &f->timer);
	f->admitted = true;
	filter = channel_pick(f->d->channel, f, &none);
	if (!filter && none && f->d->cfg.on_failure == FAIL_CLOSED) {
		log_info("flow " FLOW_ID_FMT ": %s -> %s refused: no filter connected "
			 "(--on-filter-failure closed)",
			 FLOW_ID_ARGS(f->id), addr_format(&f->app_addr, abuf),
			 addr_format(&f->dst_addr, dbuf));
		flow_end(f, ECONNREFUSED, true);
		return;
	}
	if (filter) {
		channel_attach(filter, f, f->state == FLOW_PENDING);
	} else {
		stream_pass_all(&f->dir[0].st);
		stream_pass_all(&f->dir[1].st);
	}
	log_info("flow " FLOW_ID_FMT ": open: %s -> %s%s, %s", FLOW_ID_ARGS(f->id),
		 addr_format(&f->app_addr, abuf), addr_format(&f->dst_addr, dbuf),
		 ident_text(&f->ident, who, sizeof(who)),
		 filter ? channel_client_name(filter) : "unfiltered");
	if (f->awaiting_verdict) {
		timer_arm(f->d->loop, &f->timer, OPEN_VERDICT_WAIT_MS, on_verdict_timeout);
		return;
	}
	if (f->state == FLOW_PENDING && !start_connect(f))
		return;
	relay_pump(f);
}

void relay_open_verdict(struct flow *f, uint8_t action, const struct sockaddr_storage *dst)
{
	char buf[ADDR_STRLEN];

	timer_cancel(f->d->loop, &f->timer);
	f->awaiting_verdict = false;
	switch (action) {
	case SLUICE_OPEN_DENY:
		log_info("flow " FLOW_ID_FMT ": denied by %s; resetting the application",
			 FLOW_ID_ARGS(f->id), channel_client_name(f->filter));
		flow_end(f, ECONNREFUSED, true);
		return;
	case SLUICE_OPEN_REDIRECT:
		f->dst_addr = *dst;
		log_info("flow " FLOW_ID_FMT ": redirected to %s", FLOW_ID_ARGS(f->id),
			 addr_format(dst, buf));
		break;
	case SLUICE_OPEN_IGNORE:
		/* The filter never hears of this flow again; it moves unfiltered. */
		channel_forget(f);
		stream_pass_all(&f->dir[0].st);
		stream_pass_all(&f->dir[1].st);
		break;
	}
	start_connect(f);
}

static void on_ident_timeout(struct timer *t)
{
	struct flow *f = (struct flow *)((char *)t - offsetof(struct flow, timer));

	log_debug("flow " FLOW_ID_FMT ": owner lookup timed out", FLOW_ID_ARGS(f->id));
	admit(f);
}

void relay_identified(struct daemon *d, uint64_t id, const struct flow_ident *ident)
{
	struct flow *f = flow_lookup(d->flows, id);

	if (!f)
		return;
	/* Found after the wait ran out: too late for the filter's OPEN, still
	 * worth showing on the control socket. */
	if (f->admitted) {
		if (!f->ident.has_uid && !f->ident.has_pid)
			f->ident = *ident;
		return;
	}
	f->ident = *ident;
	admit(f);
}

/* A connection on its way to another worker. */
struct move {
	struct daemon *to;
	int fd;
	struct flow_origin o;
};

static void moved_in(void *arg)
{
	struct move *m = arg;

	relay_start(m->to, m->fd, &m->o);
	free(m);
}

/*
 * A connection that no filter of this worker wants, while a filter of
 * another worker does, goes there before anything of it is read: a filter
 * with a single connection (one worker's) still sees every flow it asked
 * for. Returns whether the connection left.
 */
static bool move_elsewhere(struct daemon *d, int app_fd, const struct flow_origin *o)
{
	struct sluiced *top = d->top;
	uint16_t port = addr_port(&o->dst);
	struct move *m;

	if (top->nworkers == 1 || o->moved || worker_wants(d, port) || !SHARED_LOAD(top->ready))
		return false;
	for (unsigned i = 0; i < top->nworkers; i++) {
		struct daemon *w = top->workers[SHARED_ADD(top->next_worker, 1) % top->nworkers];

		if (w == d || !worker_wants(w, port))
			continue;
		m = malloc(sizeof(*m));
		if (!m)
			return false;
		*m = (struct move){ .to = w, .fd = app_fd, .o = *o };
		m->o.moved = true;
		if (inbox_post(&w->inbox, moved_in, m) == 0) {
			char buf[ADDR_STRLEN];

			log_debug("connection from %s: no filter of worker %u wants port %u; "
				  "moving it to worker %u",
				  addr_format(&o->app, buf), d->index + 1, port, w->index + 1);
			return true;
		}
		free(m);
	}
	return false;
}

int relay_start(struct daemon *d, int app_fd, const struct flow_origin *o)
{
	char abuf[ADDR_STRLEN];
	struct flow *f;
	int r;

	if (move_elsewhere(d, app_fd, o))
		return 0;
	f = flow_new(d->flows, &r);
	if (!f) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		log_warn("refusing connection from %s: %s", addr_format(&o->app, abuf),
			 r == -EMFILE ? "flow limit reached" : strerror(-r));
		setsockopt(app_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(app_fd);
		return r;
	}
	metrics_inc(M_FLOWS_OPENED);
	f->app_addr = o->app;
	f->dst_addr = o->dst;
	f->transparent = o->transparent;
	f->started_ms = f->active_ms = loop_now_ms();
	f->state = FLOW_PENDING;
	for (int dir = 0; dir < 2; dir++) {
		stream_init(&f->dir[dir].st, d->cfg.window);
		f->dir[dir].pipe[0] = f->dir[dir].pipe[1] = -1;
	}
	/* TCP_NODELAY came from the listening socket. */
	io_init(&f->sock[SIDE_APP].io, app_fd, on_sock);

	/* Connect at once unless a filter may want to decide first: the
	 * owner lookup below then overlaps with the handshake. */
	if (!channel_verdicts_possible(d->channel) && !start_connect(f))
		return -ECONNABORTED;

	/* The filter hears of the flow once its owner is known, or after a
	 * short wait: a slow lookup leaves the identity empty rather than
	 * stall the connection. */
	if (o->identify && d->procinfo &&
	    procinfo_lookup(d->procinfo, f->id, &o->app, &o->dst) == 0)
		timer_arm(d->loop, &f->timer, d->cfg.owner_wait_ms, on_ident_timeout);
	else
		admit(f);
	return 0;
}

/* A flow cut short must look cut short: a FIN would pass for a clean end
 * of the stream, so every side gets a reset. */
/* Bytes of f still queued in the kernel, waiting to be sent or read. */
static bool kernel_busy(const struct flow *f)
{
	for (int side = 0; side < 2; side++) {
		int n = 0;

		if (f->sock[side].io.fd < 0)
			continue;
		if ((ioctl(f->sock[side].io.fd, SIOCOUTQ, &n) == 0 && n > 0) ||
		    (ioctl(f->sock[side].io.fd, SIOCINQ, &n) == 0 && n > 0))
			return true;
	}
	return false;
}

static void check_idle(struct flow *f, void *arg)
{
	uint64_t now = *(uint64_t *)arg, idle = (uint64_t)f->d->cfg.idle_timeout * 1000;
	char why[64];

	if (f->state != FLOW_RELAYING)
		return;
	/* Our side may have nothing to do while the kernel still moves what
	 * we wrote (a slow reader behind megabytes of socket buffers): that
	 * flow is not idle. Looked at on every tick once our side is quiet,
	 * so that the idle time counts from when the queues emptied, not from
	 * the last time a tick happened to look. */
	if (now - f->active_ms >= 1000 && kernel_busy(f))
		f->active_ms = now;
	if (now - f->active_ms < idle)
		return;
	snprintf(why, sizeof(why), "idle for %u s (--idle-timeout)", f->d->cfg.idle_timeout);
	relay_reset(f, ETIMEDOUT, why);
}

void relay_tick(struct daemon *d)
{
	uint64_t now = loop_now_ms();

	if (d->cfg.idle_timeout)
		flow_table_foreach(d->flows, check_idle, &now);
}

static void close_one(struct flow *f, void *arg)
{
	flow_end(f, ESHUTDOWN, true);
}

void relay_close_all(struct daemon *d)
{
	flow_table_foreach(d->flows, close_one, NULL);
}
