/* SPDX-License-Identifier: MIT */
/*
 * libsluice: the filter's end of the filter channel.
 *
 * A client owns one connection per daemon worker (see "Workers" in
 * docs/protocol.md), each with its socket, an input buffer that frames are
 * decoded from in place, an output buffer of encoded verdicts and its own
 * shared rings, and one table of the flows the daemon has opened on any of
 * them, in which each flow records the connection it came on: every verdict
 * about a flow goes back on that connection. With more than one connection
 * an epoll fd over their sockets is what the caller polls. Everything
 * happens on the caller's thread, inside sluice_client_dispatch() or the
 * verdict functions; there is no global state.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "sluice/sluice.h"
#include "frame.h"
#include "shmring.h"
#include "window.h"

#define SLUICE_EXPORT __attribute__((visibility("default")))

/* The largest frame this client accepts, announced in its HELLO. */
#define CLIENT_MAX_FRAME SLUICE_FRAME_DEFAULT_MAX
/* How long sluice_client_connect() waits for the daemon, in milliseconds. */
#define CONNECT_TIMEOUT_MS 5000
/* Socket buffers big enough that a window of DATA rarely waits on them. */
#define SOCKET_BUFFER (4 * 1024 * 1024)
/*
 * Verdicts pending beyond this are flushed blocking. Waiting cannot deadlock:
 * the daemon reads verdicts even while it has stopped sending us data.
 */
#define OUT_HIGH  (4 * 1024 * 1024)
#define FLOWS_MIN 64
/*
 * Flows the filter ignored, remembered so that frames the daemon sent before
 * it read the ignore can be recognised and dropped. A flow's late frames
 * arrive within one channel round trip of its ignore, and the daemon waits
 * for the verdict before it connects, so only its CLOSE or an ERROR are
 * likely; for its record to be overwritten first, 4096 more flows would have
 * to be ignored in that time.
 */
#define IGNORED_MAX 4096
#define DIRS_BOTH   (SLUICE_SUB_OUT | SLUICE_SUB_IN)

/*
 * sluice_gather()'s state for one direction: buf holds the bytes
 * [start, start + len) while a gather is under way (active). The buffer is
 * kept for reuse until the flow goes, and never grows beyond the `max` of
 * the gather, which is at most the flow's window.
 */
struct gather {
	uint8_t *buf;
	size_t len, cap;
	uint64_t start;
	bool active;
};

struct flow_dir {
	uint64_t next;	  /* offset the next DATA must start at */
	uint64_t decided; /* the furthest `to` of a pass, drop or replace sent */
	bool eof;	  /* the daemon reported the source's FIN */
	bool shutdown;	  /* a shutdown verdict is queued or sent */
	bool pass_rest;	  /* the filter asked not to see this direction again */
	struct gather gather;
};

struct flow {
	uint64_t id;
	void *user;
	struct flow_dir dir[2];
	uint32_t window; /* bytes the daemon holds per direction */
	uint8_t dirs;	 /* SLUICE_SUB_* bits of the directions offered */
	uint8_t conn;	 /* index of the connection the flow came on, in conns[] */
	bool used;
	bool closing;	      /* on_close is running: the flow takes no more verdicts */
	bool reset;	      /* the filter reset it: nothing more is offered or defaulted */
	bool verdict_pending; /* the daemon waits for a connect-time verdict */
};

/* Open addressing with linear probing; at most half full. */
struct flow_table {
	struct flow *slots;
	size_t mask; /* slot count - 1, the count being a power of two */
	size_t count;
};

struct ignored {
	uint64_t id;
	uint8_t dirs; /* the directions the daemon offered */
	uint8_t conn; /* the connection it came on */
};

/* One connection to the daemon, served by one of its workers. */
struct conn {
	int fd;
	uint8_t index;	    /* its place in the client's conns[] */
	uint8_t worker;	    /* the worker serving it, from 1; 0 from an older daemon */
	uint32_t ep_events; /* what the client's epoll fd waits for on fd */
	uint32_t max_frame; /* the largest frame the daemon accepts */
	uint32_t window;    /* the daemon's per-direction window */

	uint8_t *in;
	size_t in_cap, in_pos, in_len; /* [in_pos, in_len) is not yet decoded */
	uint8_t *out;
	size_t out_cap, out_pos, out_len; /* [out_pos, out_len) is not yet sent */

	/*
	 * The shared-memory channel (SLUICE_FEATURE_SHM): DATA bytes lie in
	 * fwd, where the daemon read them from the source, and replacement
	 * bytes go out through rev; only small frames pass the socket.
	 */
	bool shm;
	struct shm_area fwd;
	struct shm_ring rev;
	int pending_fd; /* an fd that came with the daemon's bytes, for SHM */
};

struct sluice_client {
	int epfd; /* over every connection's socket; what sluice_client_fd() returns */
	int dead; /* the fatal error that ended the channel, 0 while it is usable */
	bool dispatching;
	struct sluice_callbacks cb;
	void *user;
	uint32_t max_frame; /* the smallest of the connections' */

	/* One per daemon worker; never reallocated once the epoll fd points into it. */
	struct conn *conns;
	size_t nconns;

	/* Every connection's flows: the daemon's flow ids are unique across workers. */
	struct flow_table flows;
	/* A ring of the last IGNORED_MAX ignored flows; nignored counts all ever. */
	struct ignored ignored[IGNORED_MAX];
	size_t nignored;
};

/*
 * The flow table. Pointers into it stay valid until the next insert or
 * remove; a callback may remove flows (sluice_ignore()), so handlers look
 * their flow up again after calling one.
 */

static size_t flow_hash(uint64_t id)
{
	/* splitmix64's finaliser: ids are a slot and a generation, far from random. */
	id ^= id >> 30;
	id *= 0xbf58476d1ce4e5b9ULL;
	id ^= id >> 27;
	id *= 0x94d049bb133111ebULL;
	id ^= id >> 31;
	return (size_t)id;
}

static int flow_table_init(struct flow_table *t, size_t slots)
{
	t->slots = calloc(slots, sizeof(*t->slots));
	if (!t->slots)
		return -ENOMEM;
	t->mask = slots - 1;
	t->count = 0;
	return 0;
}

static struct flow *flow_find(const struct flow_table *t, uint64_t id)
{
	size_t i;

	for (i = flow_hash(id) & t->mask; t->slots[i].used; i = (i + 1) & t->mask)
		if (t->slots[i].id == id)
			return &t->slots[i];
	return NULL;
}

static struct flow *flow_slot(struct flow_table *t, uint64_t id)
{
	size_t i;

	for (i = flow_hash(id) & t->mask; t->slots[i].used; i = (i + 1) & t->mask)
		;
	return &t->slots[i];
}

static int flow_grow(struct flow_table *t)
{
	struct flow_table bigger;
	size_t i;
	int r;

	r = flow_table_init(&bigger, (t->mask + 1) * 2);
	if (r < 0)
		return r;
	for (i = 0; i <= t->mask; i++)
		if (t->slots[i].used)
			*flow_slot(&bigger, t->slots[i].id) = t->slots[i];
	bigger.count = t->count;
	free(t->slots);
	*t = bigger;
	return 0;
}

/* The caller has checked that id is not in the table. */
static struct flow *flow_insert(struct flow_table *t, uint64_t id)
{
	struct flow *f;

	if ((t->count + 1) * 2 > t->mask + 1 && flow_grow(t) < 0)
		return NULL;
	f = flow_slot(t, id);
	memset(f, 0, sizeof(*f));
	f->used = true;
	f->id = id;
	t->count++;
	return f;
}

/*
 * Backward-shift deletion (Knuth's algorithm R): entries after the hole that
 * would no longer be reachable from their home slot move into it, so lookups
 * never need tombstones.
 */
static void flow_remove(struct flow_table *t, struct flow *f)
{
	size_t i = (size_t)(f - t->slots), j = i, home;

	for (;;) {
		j = (j + 1) & t->mask;
		if (!t->slots[j].used)
			break;
		home = flow_hash(t->slots[j].id) & t->mask;
		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		t->slots[i] = t->slots[j];
		i = j;
	}
	t->slots[i].used = false;
	t->count--;
}

static void flow_release(struct flow *f)
{
	free(f->dir[0].gather.buf);
	free(f->dir[1].gather.buf);
}

static void flow_forget(struct flow_table *t, struct flow *f)
{
	flow_release(f);
	flow_remove(t, f);
}

/* The record of an ignored flow, newest first, or NULL. */
static struct ignored *ignored_find(struct sluice_client *c, uint64_t id)
{
	size_t n = c->nignored < IGNORED_MAX ? c->nignored : IGNORED_MAX, i;

	for (i = 1; i <= n; i++) {
		struct ignored *ig = &c->ignored[(c->nignored - i) % IGNORED_MAX];

		if (ig->id == id)
			return ig;
	}
	return NULL;
}

/* The record of a flow ignored that came on k; another connection's is a protocol error. */
static struct ignored *ignored_on(struct sluice_client *c, const struct conn *k, uint64_t id)
{
	struct ignored *ig = ignored_find(c, id);

	return ig && ig->conn == k->index ? ig : NULL;
}

static unsigned dir_bit(uint8_t dir)
{
	return dir == SLUICE_DIR_OUT ? SLUICE_SUB_OUT : SLUICE_SUB_IN;
}

/*
 * Records that the filter decided the bytes of s up to `to`. Deciding bytes
 * a gather holds ends that gather: they are no longer the caller's to see.
 */
static void dir_decided(struct flow_dir *s, uint64_t to)
{
	if (!off_before(s->decided, to))
		return;
	s->decided = to;
	if (s->gather.active && off_before(s->gather.start, to))
		s->gather.active = false;
}

/* Channel I/O. */

/*
 * Marks the channel unusable: every later call returns err. The connections
 * are one channel to the caller, so the end of one ends them all: each
 * socket is shut down so that the daemon, too, sees the end at once, and
 * treats every connection's flows as those of a filter that went away
 * (held for its return, within --filter-grace-seconds).
 */
static int fail(struct sluice_client *c, int err)
{
	if (!c->dead) {
		c->dead = err;
		for (size_t i = 0; i < c->nconns; i++)
			if (c->conns[i].fd >= 0)
				shutdown(c->conns[i].fd, SHUT_RDWR);
	}
	return err;
}

static int errno_to_channel(int e)
{
	return e == EPIPE || e == ECONNRESET ? -ECONNRESET : -e;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Waits for events on fd until deadline (now_ms() time, or -1 for none).
 * Returns 0 when fd is ready, -ETIMEDOUT at the deadline. Signals do not end
 * the wait: only sluice_client_run() reports -EINTR.
 */
static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int64_t left;
	int r;

	for (;;) {
		left = deadline < 0 ? -1 : deadline - now_ms();
		if (deadline >= 0 && left <= 0)
			return -ETIMEDOUT;
		r = poll(&p, 1, (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/*
 * Sends what k has pending; with block, waits until all of it is written.
 * Waiting on one connection cannot deadlock: each worker reads verdicts
 * even while it has stopped sending us data.
 */
static int out_flush(struct sluice_client *c, struct conn *k, bool block)
{
	ssize_t n;
	int r;

	while (!c->dead && k->out_pos < k->out_len) {
		n = send(k->fd, k->out + k->out_pos, k->out_len - k->out_pos,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n >= 0) {
			k->out_pos += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return fail(c, errno_to_channel(errno));
		if (!block)
			return 0;
		r = wait_fd(k->fd, POLLOUT, -1);
		if (r < 0)
			return fail(c, r);
	}
	if (c->dead)
		return c->dead;
	k->out_pos = k->out_len = 0;
	return 0;
}

/* Room for one frame of size bytes (at most max_frame) at the end of k's output. */
static int out_reserve(struct sluice_client *c, struct conn *k, size_t size, uint8_t **ret)
{
	int r;

	if (k->out_len - k->out_pos >= OUT_HIGH) {
		r = out_flush(c, k, true);
		if (r < 0)
			return r;
	}
	/* Under OUT_HIGH pending, one frame always fits once the buffer is compacted. */
	if (k->out_len + size > k->out_cap) {
		memmove(k->out, k->out + k->out_pos, k->out_len - k->out_pos);
		k->out_len -= k->out_pos;
		k->out_pos = 0;
	}
	*ret = k->out + k->out_len;
	k->out_len += size;
	return 0;
}

/* Queues one VERDICT frame on k; len is at most sluice_client_max_payload(). */
static int out_verdict(struct sluice_client *c, struct conn *k, uint64_t flow, uint8_t dir,
		       uint8_t op, uint64_t from, uint64_t to, const void *bytes, size_t len)
{
	uint8_t *p;
	int r;

	/* Replacement bytes go through the reverse ring when they fit; the
	 * frame then carries only where they are. */
	if (k->shm && len && len <= shm_space(&k->rev)) {
		r = out_reserve(c, k, FRAME_VERDICT_PREFIX + FRAME_SHM_REF, &p);
		if (r < 0)
			return r;
		memcpy(shm_at(&k->rev, k->rev.head), bytes, len);
		frame_put_verdict_prefix(p, flow, dir, op, from, to, FRAME_SHM_REF);
		frame_set_flags(p, SLUICE_VERDICT_F_SHM);
		frame_put_shm_ref(p + FRAME_VERDICT_PREFIX, k->rev.head, len);
		k->rev.head += len;
		return 0;
	}
	r = out_reserve(c, k, FRAME_VERDICT_PREFIX + len, &p);
	if (r < 0)
		return r;
	frame_put_verdict_prefix(p, flow, dir, op, from, to, len);
	if (len)
		memcpy(p + FRAME_VERDICT_PREFIX, bytes, len);
	return 0;
}

static int out_open_verdict(struct sluice_client *c, struct conn *k,
			    const struct frame_open_verdict *v)
{
	struct frame f = { .type = SLUICE_FRAME_OPEN_VERDICT, .open_verdict = *v };
	size_t size = frame_size(&f);
	uint8_t *p;
	int r;

	r = out_reserve(c, k, size, &p);
	if (r < 0)
		return r;
	frame_encode(p, size, &f);
	return 0;
}

/* Inject goes in at the decision point, so consecutive pieces stay in order. */
static int out_inject(struct sluice_client *c, struct conn *k, uint64_t flow, uint8_t dir,
		      const uint8_t *bytes, size_t len)
{
	size_t max = sluice_client_max_payload(c), n;
	int r;

	while (len) {
		n = len < max ? len : max;
		r = out_verdict(c, k, flow, dir, SLUICE_VERDICT_INJECT, 0, 0, bytes, n);
		if (r < 0)
			return r;
		bytes += n;
		len -= n;
	}
	return 0;
}

/* Frames from the daemon. Each handler returns 0, a callback's error, or fail(). */

static void put_sockaddr(struct sockaddr_storage *ss, uint8_t family, const uint8_t addr[16],
			 uint16_t port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (family == 4) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, addr, 4);
	} else {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, addr, 16);
	}
}

/*
 * When the daemon waits for a connect-time verdict, on_open may give it,
 * promise it for later (by returning 1), or neither, which allows the flow.
 */
static int handle_open(struct sluice_client *c, struct conn *k, const struct frame *f)
{
	const struct frame_open *o = &f->open;
	struct sluice_flow_info info;
	struct flow *fl;
	int r;

	/* Flow ids are unique across workers, so also across connections. */
	if (flow_find(&c->flows, o->flow))
		return fail(c, -EPROTO);
	fl = flow_insert(&c->flows, o->flow);
	if (!fl)
		return fail(c, -ENOMEM);
	fl->conn = k->index;
	fl->window = o->window ? o->window : k->window;
	fl->dirs = f->flags & SLUICE_OPEN_F_IN_ONLY    ? SLUICE_SUB_IN
		   : f->flags & SLUICE_OPEN_F_OUT_ONLY ? SLUICE_SUB_OUT
						       : DIRS_BOTH;
	fl->verdict_pending = !!(f->flags & SLUICE_OPEN_F_VERDICT);
	if (f->flags & SLUICE_OPEN_F_RESUME) {
		/* Taken back after a reconnect: the daemon re-offers each
		 * direction's undecided bytes from its decision point, then
		 * goes on from what it had offered. */
		for (int d = 0; d < 2; d++) {
			fl->dir[d].decided = o->decided[d];
			fl->dir[d].next = o->offered[d];
		}
	}
	if (!c->cb.on_open)
		return fl->verdict_pending ? sluice_allow(c, o->flow) : 0;

	memset(&info, 0, sizeof(info));
	info.id = o->flow;
	put_sockaddr(&info.src, o->family, o->src, o->src_port);
	put_sockaddr(&info.dst, o->family, o->dst, o->dst_port);
	info.has_uid = !!(f->flags & SLUICE_OPEN_F_UID);
	info.uid = info.has_uid ? o->uid : 0;
	info.has_pid = !!(f->flags & SLUICE_OPEN_F_PID);
	if (info.has_pid) {
		info.pid = o->pid;
		memcpy(info.comm, o->comm, o->comm_len);
	}
	info.window = fl->window;
	info.verdict_wanted = fl->verdict_pending;
	info.dirs = fl->dirs;
	info.resumed = !!(f->flags & SLUICE_OPEN_F_RESUME);
	for (int d = 0; d < 2; d++)
		info.decided[d] = fl->dir[d].decided;
	r = c->cb.on_open(c, &info, c->user);
	if (r != 0)
		return r < 0 ? r : 0;
	fl = flow_find(&c->flows, o->flow);
	if (fl && fl->verdict_pending)
		return sluice_allow(c, o->flow);
	return 0;
}

/*
 * The daemon offers each direction's bytes once and in order, so a DATA that
 * does not start at the next expected offset is a daemon bug that would make
 * the filter decide the wrong bytes. The one exception is a re-offer after a
 * peek: bytes offered before, from the daemon's decision point on. Verdicts
 * may be on their way to the daemon, so that point can lie before ours; the
 * part the filter has already decided is cut off, never shown again.
 */
static int handle_data(struct sluice_client *c, struct conn *k, const struct frame *f)
{
	const struct frame_data *d = &f->data;
	struct flow *fl = flow_find(&c->flows, d->flow);
	const uint8_t *bytes = d->bytes;
	uint64_t offset = d->offset;
	size_t len = d->len;
	struct flow_dir *s;

	if (f->flags & SLUICE_DATA_F_SHM) {
		uint64_t pos, n;

		/* The bytes stay where they are until our verdict on them
		 * reaches the daemon, which is after the callbacks have run. */
		if (!k->shm || frame_shm_ref(d->bytes, d->len, &pos, &n) < 0 ||
		    !(bytes = shm_area_at(&k->fwd, pos, n)))
			return fail(c, -EPROTO);
		len = (size_t)n;
	}
	if (!fl)
		return ignored_on(c, k, d->flow) ? 0 : fail(c, -EPROTO);
	if (fl->conn != k->index || !(fl->dirs & dir_bit(d->dir)))
		return fail(c, -EPROTO);
	s = &fl->dir[d->dir];
	if (f->flags & SLUICE_DATA_F_REOFFER) {
		if (off_before(s->next, offset + len))
			return fail(c, -EPROTO);
		if (off_before(offset, s->decided)) {
			if (!off_before(s->decided, offset + len))
				return 0;
			bytes += s->decided - offset;
			len -= s->decided - offset;
			offset = s->decided;
		}
	} else {
		if (s->eof || offset != s->next)
			return fail(c, -EPROTO);
		s->next += len;
	}

	/*
	 * Chunks that were in flight when the filter gave up the direction or
	 * reset the flow are the daemon's to handle now; nobody wants them.
	 */
	if (s->pass_rest || s->shutdown || fl->reset)
		return 0;
	if (c->cb.on_data)
		return c->cb.on_data(c, d->flow, d->dir, offset, bytes, len, c->user);
	dir_decided(s, offset + len);
	return out_verdict(c, k, d->flow, d->dir, SLUICE_VERDICT_PASS, 0, offset + len, NULL, 0);
}

static int handle_eof(struct sluice_client *c, struct conn *k, const struct frame *f)
{
	const struct frame_data *d = &f->data;
	struct flow *fl = flow_find(&c->flows, d->flow);
	struct flow_dir *s;
	int r = 0;

	if (!fl)
		return ignored_on(c, k, d->flow) ? 0 : fail(c, -EPROTO);
	if (fl->conn != k->index || !(fl->dirs & dir_bit(d->dir)))
		return fail(c, -EPROTO);
	s = &fl->dir[d->dir];
	/* After pass_rest the daemon moves bytes we never see, so the FIN may lie beyond them. */
	if (s->eof || off_before(d->offset, s->next) || (!s->pass_rest && d->offset != s->next))
		return fail(c, -EPROTO);
	s->eof = true;
	s->next = d->offset;

	if (c->cb.on_eof)
		r = c->cb.on_eof(c, d->flow, d->dir, d->offset, c->user);
	if (r)
		return r < 0 ? r : 0;
	fl = flow_find(&c->flows, d->flow);
	/* After pass_rest the daemon forwards the FIN itself. */
	if (!fl || fl->dir[d->dir].shutdown || fl->dir[d->dir].pass_rest || fl->reset)
		return 0;
	/* Bytes the filter left undecided pass: only a verdict drops data. */
	if (!fl->dir[d->dir].pass_rest && off_before(fl->dir[d->dir].decided, d->offset)) {
		dir_decided(&fl->dir[d->dir], d->offset);
		r = out_verdict(c, k, d->flow, d->dir, SLUICE_VERDICT_PASS, 0, d->offset, NULL, 0);
		if (r < 0)
			return r;
	}
	fl->dir[d->dir].shutdown = true;
	return out_verdict(c, k, d->flow, d->dir, SLUICE_VERDICT_SHUTDOWN, 0, 0, NULL, 0);
}

static int handle_close(struct sluice_client *c, struct conn *k, const struct frame *f)
{
	struct flow *fl = flow_find(&c->flows, f->close.flow);

	if (!fl)
		return ignored_on(c, k, f->close.flow) ? 0 : fail(c, -EPROTO);
	if (fl->conn != k->index)
		return fail(c, -EPROTO);
	fl->closing = true;
	if (c->cb.on_close) {
		c->cb.on_close(c, f->close.flow, f->close.reason, c->user);
		/* A closing flow cannot be ignored, so it is still there, perhaps moved. */
		fl = flow_find(&c->flows, f->close.flow);
	}
	if (fl)
		flow_forget(&c->flows, fl);
	return 0;
}

/*
 * An ignored flow gets no more callbacks, errors included. If the daemon
 * refused the ignore (its wait for a verdict had already ended in allow),
 * the flow is still ours: passing the rest of both directions gives it the
 * unfiltered life that ignore promises, instead of leaving it waiting for
 * verdicts nobody will give.
 */
static int handle_error(struct sluice_client *c, struct conn *k, const struct frame *f)
{
	char text[SLUICE_ERROR_TEXT_MAX + 1];
	struct ignored *ig = ignored_on(c, k, f->error.flow);
	int r;

	if (ig) {
		if (f->error.ref_type != SLUICE_FRAME_OPEN_VERDICT ||
		    f->error.code == SLUICE_ERR_FLOW_CLOSED)
			return 0;
		for (uint8_t dir = SLUICE_DIR_OUT; dir <= SLUICE_DIR_IN; dir++) {
			if (!(ig->dirs & dir_bit(dir)))
				continue;
			r = out_verdict(c, k, ig->id, dir, SLUICE_VERDICT_PASS_REST, 0, 0, NULL, 0);
			if (r < 0)
				return r;
		}
		return 0;
	}
	if (!c->cb.on_error)
		return 0;
	memcpy(text, f->error.text, f->error.text_len);
	text[f->error.text_len] = '\0';
	c->cb.on_error(c, f->error.flow, f->error.code, text, c->user);
	return 0;
}

/* The daemon's shared rings for this connection: its memfd came with these bytes. */
static int handle_shm(struct sluice_client *c, struct conn *k, const struct frame *f)
{
	int fd = k->pending_fd, r;

	if (k->shm || fd < 0)
		return fail(c, -EPROTO);
	k->pending_fd = -1;
	r = shm_map_area(fd, f->shm.fwd_size, &k->fwd);
	if (r == 0) {
		r = shm_map(fd, f->shm.fwd_size, f->shm.rev_size, &k->rev);
		if (r < 0)
			shm_unmap_area(&k->fwd);
	}
	close(fd); /* the mappings keep the memory */
	if (r < 0)
		return fail(c, r);
	k->shm = true;
	return 0;
}

/* The daemon has taken replacement bytes out of the reverse ring. */
static int handle_release(struct sluice_client *c, struct conn *k, const struct frame *f)
{
	if (!k->shm || shm_release(&k->rev, f->release.pos) < 0)
		return fail(c, -EPROTO);
	return 0;
}

typedef int (*handler_fn)(struct sluice_client *c, struct conn *k, const struct frame *f);

/* What the daemon may send once HELLO is done; anything else is a violation. */
static const handler_fn handlers[SLUICE_FRAME_TYPE_MAX + 1] = {
	[SLUICE_FRAME_OPEN] = handle_open,   [SLUICE_FRAME_DATA] = handle_data,
	[SLUICE_FRAME_SHM] = handle_shm,     [SLUICE_FRAME_RELEASE] = handle_release,
	[SLUICE_FRAME_EOF] = handle_eof,     [SLUICE_FRAME_CLOSE] = handle_close,
	[SLUICE_FRAME_ERROR] = handle_error,
};

/*
 * Runs the handlers of every complete frame in the input buffer. A frame is
 * consumed before its callback runs, so that after a callback's error the
 * next dispatch goes on with the frame after it.
 */
static int process_input(struct sluice_client *c, struct conn *k)
{
	struct frame f;
	size_t size;
	int r;

	while (k->in_pos < k->in_len) {
		r = frame_decode(k->in + k->in_pos, k->in_len - k->in_pos, CLIENT_MAX_FRAME, &f,
				 &size, NULL);
		if (r == 0)
			break;
		if (r < 0)
			return fail(c, -EPROTO);
		k->in_pos += size;
		if (!handlers[f.type])
			return fail(c, -EPROTO);
		r = handlers[f.type](c, k, &f);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * recv() that keeps a file descriptor sent along with the bytes (the
 * daemon's SHM frame carries its memfd that way). Any earlier one not yet
 * claimed is closed: only the latest can belong to a frame still to come.
 */
static ssize_t recv_fds(struct conn *k, void *buf, size_t len)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov,
			      .msg_iovlen = 1,
			      .msg_control = ctl.buf,
			      .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *cm;
	ssize_t n = recvmsg(k->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

	if (n < 0)
		return n;
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(int))) {
			if (k->pending_fd >= 0)
				close(k->pending_fd);
			memcpy(&k->pending_fd, CMSG_DATA(cm), sizeof(int));
		}
	}
	return n;
}

/*
 * One non-blocking read. Returns 1 when bytes arrived, 0 when none were
 * there. What is left in the buffer is less than one frame, and the buffer
 * holds two, so there is always room for the rest of it.
 */
static int read_input(struct sluice_client *c, struct conn *k)
{
	ssize_t n;

	if (k->in_pos == k->in_len) {
		k->in_pos = k->in_len = 0;
	} else if (k->in_cap - k->in_len < CLIENT_MAX_FRAME) {
		memmove(k->in, k->in + k->in_pos, k->in_len - k->in_pos);
		k->in_len -= k->in_pos;
		k->in_pos = 0;
	}
	n = recv_fds(k, k->in + k->in_len, k->in_cap - k->in_len);
	if (n > 0) {
		k->in_len += (size_t)n;
		return 1;
	}
	if (n == 0)
		return fail(c, -ECONNRESET);
	if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
		return 0;
	return fail(c, errno_to_channel(errno));
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/*
 * Sends our HELLO on k, asking for worker (0: the daemon chooses), and the
 * subscription if there is one. hello_recv() then waits for the answer;
 * in between the caller may start the handshakes of other connections, so
 * that the daemon's workers answer them all at once.
 *
 * The SUBSCRIBE goes out in the same write as the HELLO rather than after the
 * daemon's answer: the daemon decodes the frames of one read in order, so it
 * then knows the subscription before it can give this connection a flow.
 * Sent later, every flow that opened in between would come unsubscribed.
 */
static int hello_send(struct conn *k, const char *name, uint32_t features, uint8_t worker,
		      const struct frame *sub, int64_t deadline)
{
	uint8_t hello[SLUICE_FRAME_HEADER_SIZE + FRAME_HELLO_BODY + SLUICE_NAME_MAX +
		      SLUICE_FRAME_HEADER_SIZE + FRAME_SUBSCRIBE_BODY + 4 * SLUICE_SUB_MAX_PORTS];
	struct frame f = {
		.type = SLUICE_FRAME_HELLO,
		.hello.version = SLUICE_PROTOCOL_VERSION,
		.hello.worker = worker,
		.hello.max_frame = CLIENT_MAX_FRAME,
		.hello.features = features,
		.hello.name = (const uint8_t *)name,
		.hello.name_len = strlen(name),
	};
	size_t sent = 0;
	ssize_t len, n;
	int r;

	len = frame_encode(hello, sizeof(hello), &f);
	if (len < 0)
		return (int)len;
	if (sub) {
		n = frame_encode(hello + len, sizeof(hello) - (size_t)len, sub);
		if (n < 0)
			return (int)n;
		len += n;
	}
	while (sent < (size_t)len) {
		n = send(k->fd, hello + sent, (size_t)len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n >= 0) {
			sent += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return errno_to_channel(errno);
		r = wait_fd(k->fd, POLLOUT, deadline);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * Waits for the daemon's HELLO on k and stores it in ret (its name is not
 * kept). Reads exactly one frame, so whatever the daemon sends after its
 * HELLO stays in the socket and makes it readable for the caller's first
 * poll.
 */
static int hello_recv(struct conn *k, int64_t deadline, struct frame_hello *ret)
{
	struct frame f;
	size_t need, size;
	ssize_t n;
	int r;

	for (;;) {
		r = frame_decode(k->in, k->in_len, CLIENT_MAX_FRAME, &f, &size, NULL);
		if (r < 0)
			return -EPROTO;
		if (r > 0)
			break;
		/* frame_decode() has checked the length against CLIENT_MAX_FRAME. */
		need = k->in_len < SLUICE_FRAME_HEADER_SIZE ? SLUICE_FRAME_HEADER_SIZE
							    : le32(k->in);
		r = wait_fd(k->fd, POLLIN, deadline);
		if (r < 0)
			return r;
		n = recv_fds(k, k->in + k->in_len, need - k->in_len);
		if (n > 0)
			k->in_len += (size_t)n;
		else if (n == 0)
			return -ECONNRESET;
		else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
			return errno_to_channel(errno);
	}
	k->in_len = 0;

	if (f.type != SLUICE_FRAME_HELLO)
		return -EPROTO;
	if (f.hello.version != SLUICE_PROTOCOL_VERSION)
		return -EPROTONOSUPPORT;
	k->max_frame = f.hello.max_frame;
	k->window = f.hello.window;
	*ret = f.hello;
	ret->name = NULL;
	ret->name_len = 0;
	return 0;
}

/*
 * Copies a caller's struct that begins with its own size: a program built
 * against a shorter, older struct gets zeros for the new fields, and a
 * longer, newer one is accepted as long as it sets nothing we do not know.
 */
static int copy_sized(void *dst, size_t dst_size, const void *src)
{
	const uint8_t *s = src;
	size_t sz, i;

	memset(dst, 0, dst_size);
	if (!src)
		return 0;
	memcpy(&sz, src, sizeof(sz));
	if (sz < sizeof(sz))
		return -EINVAL;
	for (i = dst_size; i < sz; i++)
		if (s[i])
			return -EINVAL;
	memcpy(dst, src, sz < dst_size ? sz : dst_size);
	return 0;
}

/*
 * The SUBSCRIBE frame that opts ask for. Returns 1 and fills ret when one is
 * needed, 0 when the filter wants everything (the daemon's default), or
 * -EINVAL.
 */
static int subscription(const struct sluice_client_opts *o, struct frame *ret)
{
	unsigned dirs = o->dirs ? o->dirs : DIRS_BOTH;
	size_t i;

	if (dirs & ~DIRS_BOTH)
		return -EINVAL;
	if (o->nports > SLUICE_SUB_MAX_PORTS || (o->nports && !o->ports))
		return -EINVAL;
	for (i = 0; i < o->nports; i++)
		if (!o->ports[i].lo || o->ports[i].lo > o->ports[i].hi)
			return -EINVAL;
	if (dirs == DIRS_BOTH && !o->nports)
		return 0;
	memset(ret, 0, sizeof(*ret));
	ret->type = SLUICE_FRAME_SUBSCRIBE;
	ret->subscribe.dirs = (uint8_t)dirs;
	ret->subscribe.nports = (uint8_t)o->nports;
	for (i = 0; i < o->nports; i++) {
		ret->subscribe.ports[i].lo = o->ports[i].lo;
		ret->subscribe.ports[i].hi = o->ports[i].hi;
	}
	return 1;
}

static int connect_socket(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	/* Bounds connect() when the daemon's listen backlog is full. */
	struct timeval tv = { .tv_sec = CONNECT_TIMEOUT_MS / 1000 };
	int fd, size = SOCKET_BUFFER;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Larger buffers mean fewer wakeups; the defaults are only slower, so failure is fine. */
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int r = errno == EAGAIN ? -ETIMEDOUT : -errno;

		close(fd);
		return r;
	}
	return fd;
}

/* Makes zeroed k the connection at index of its client, not yet open. */
static int conn_init(struct conn *k, size_t index)
{
	k->fd = -1;
	k->pending_fd = -1;
	k->index = (uint8_t)index;
	k->in_cap = 2 * (size_t)CLIENT_MAX_FRAME;
	k->in = malloc(k->in_cap);
	return k->in ? 0 : -ENOMEM;
}

/* Accepts a connection conn_init() has not finished. */
static void conn_free(struct conn *k)
{
	if (k->fd >= 0)
		close(k->fd);
	if (k->pending_fd >= 0)
		close(k->pending_fd);
	shm_unmap_area(&k->fwd);
	shm_unmap(&k->rev);
	free(k->in);
	free(k->out);
}

/* After k's HELLO exchange: its output buffer, sized by the daemon's max_frame. */
static int conn_ready(struct sluice_client *c, struct conn *k)
{
	k->out_cap = OUT_HIGH + (size_t)k->max_frame;
	k->out = malloc(k->out_cap);
	if (!k->out)
		return -ENOMEM;
	if (!c->max_frame || k->max_frame < c->max_frame)
		c->max_frame = k->max_frame;
	return 0;
}

/*
 * The daemon runs h->workers workers and serves the first connection by
 * worker h->worker: opens one more connection for each other worker, whose
 * HELLO names it, with the same features and subscription, and the epoll fd
 * over them all. The HELLOs all go out before the first answer is awaited,
 * so the workers answer them at the same time.
 */
static int connect_workers(struct sluice_client *c, const char *path, const char *name,
			   uint32_t features, const struct frame *sub, const struct frame_hello *h,
			   int64_t deadline)
{
	size_t n = h->workers, i;
	struct frame_hello got;
	struct conn *conns;
	uint8_t w;
	int r;

	if (n > SLUICE_WORKERS_MAX || !h->worker || h->worker > n)
		return -EPROTO;
	/* Nothing points into conns[] yet, so it may move. */
	conns = realloc(c->conns, n * sizeof(*conns));
	if (!conns)
		return -ENOMEM;
	c->conns = conns;
	memset(conns + 1, 0, (n - 1) * sizeof(*conns));
	conns[0].worker = h->worker;
	for (i = 1, w = 1; i < n; i++, w++) {
		if (w == h->worker)
			w++;
		r = conn_init(&conns[i], i);
		c->nconns = i + 1;
		if (r < 0)
			return r;
		conns[i].worker = w;
		r = connect_socket(path);
		if (r < 0)
			return r;
		conns[i].fd = r;
		r = hello_send(&conns[i], name, features, w, sub, deadline);
		if (r < 0)
			return r;
	}
	for (i = 1; i < n; i++) {
		r = hello_recv(&conns[i], deadline, &got);
		if (r < 0)
			return r;
		if (got.worker != conns[i].worker || got.workers != n)
			return -EPROTO;
		r = conn_ready(c, &conns[i]);
		if (r < 0)
			return r;
	}

	return 0;
}

/*
 * The epoll fd over every connection, which sluice_client_fd() gives the
 * caller: it reports bytes to read and, once verdicts wait for room in a
 * socket (watch_output()), that room, both as POLLIN.
 */
static int watch_conns(struct sluice_client *c)
{
	c->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (c->epfd < 0)
		return -errno;
	for (size_t i = 0; i < c->nconns; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &c->conns[i] };

		if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->conns[i].fd, &ev) < 0)
			return -errno;
		c->conns[i].ep_events = EPOLLIN;
	}
	return 0;
}

/*
 * The first connection lets the daemon choose its worker. A daemon with one
 * worker, or one from before workers (whose HELLO has 0 there), gets that
 * connection alone.
 */
SLUICE_EXPORT int sluice_client_connect(const struct sluice_client_opts *opts,
					const struct sluice_callbacks *cb, void *user,
					struct sluice_client **ret_client)
{
	struct sluice_client_opts o;
	struct sluice_client *c;
	struct frame_hello h;
	struct frame sub;
	const char *name, *path;
	int64_t deadline;
	int r, want_sub;

	r = copy_sized(&o, sizeof(o), opts);
	if (r < 0)
		return r;
	name = o.name ? o.name : "filter";
	if (strlen(name) > SLUICE_NAME_MAX)
		return -EINVAL;
	path = o.path ? o.path : SLUICE_DEFAULT_SOCKET;
	want_sub = subscription(&o, &sub);
	if (want_sub < 0)
		return want_sub;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->epfd = -1;
	c->user = user;
	r = copy_sized(&c->cb, sizeof(c->cb), cb);
	if (r < 0)
		goto fail;

	r = -ENOMEM;
	c->conns = calloc(1, sizeof(*c->conns));
	if (!c->conns)
		goto fail;
	c->nconns = 1;
	if (conn_init(&c->conns[0], 0) < 0 || flow_table_init(&c->flows, FLOWS_MIN) < 0)
		goto fail;

	/* One deadline for every connection's exchange. */
	deadline = now_ms() + CONNECT_TIMEOUT_MS;
	r = connect_socket(path);
	if (r < 0)
		goto fail;
	c->conns[0].fd = r;
	r = hello_send(&c->conns[0], name, o.features, 0, want_sub ? &sub : NULL, deadline);
	if (r < 0)
		goto fail;
	r = hello_recv(&c->conns[0], deadline, &h);
	if (r < 0)
		goto fail;
	r = conn_ready(c, &c->conns[0]);
	if (r < 0)
		goto fail;
	if (h.workers > 1) {
		r = connect_workers(c, path, name, o.features, want_sub ? &sub : NULL, &h,
				    deadline);
		if (r < 0)
			goto fail;
	}
	r = watch_conns(c);
	if (r < 0)
		goto fail;

	*ret_client = c;
	return 0;
fail:
	sluice_client_free(c);
	return r;
}

SLUICE_EXPORT void sluice_client_free(struct sluice_client *c)
{
	if (!c)
		return;
	if (c->epfd >= 0)
		close(c->epfd);
	for (size_t i = 0; i < c->nconns; i++)
		conn_free(&c->conns[i]);
	free(c->conns);
	for (size_t i = 0; c->flows.slots && i <= c->flows.mask; i++)
		if (c->flows.slots[i].used)
			flow_release(&c->flows.slots[i]);
	free(c->flows.slots);
	free(c);
}

SLUICE_EXPORT int sluice_client_fd(const struct sluice_client *c)
{
	return c->epfd;
}

/*
 * With an epoll fd, a connection with verdicts waiting for room in its
 * socket must make the epoll fd readable once there is room: the caller
 * polls the epoll fd for POLLIN only, and the daemon may wait for those
 * verdicts before it sends anything more.
 */
static int watch_output(struct sluice_client *c)
{
	if (c->dead)
		return c->dead;
	for (size_t i = 0; i < c->nconns; i++) {
		struct conn *k = &c->conns[i];
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = k };

		if (k->out_pos < k->out_len)
			ev.events |= EPOLLOUT;
		if (ev.events == k->ep_events)
			continue;
		if (epoll_ctl(c->epfd, EPOLL_CTL_MOD, k->fd, &ev) < 0)
			return fail(c, -errno);
		k->ep_events = ev.events;
	}
	return 0;
}

/* One read of k, if it has bytes, and the callbacks of the frames they complete. */
static int dispatch_conn(struct sluice_client *c, struct conn *k)
{
	int r = read_input(c, k);

	return r > 0 ? process_input(c, k) : r;
}

/*
 * One read per connection and call keeps a busy channel from starving the
 * caller's other work, the other connections and our own verdict writes.
 * With several connections, epoll says which have anything to read.
 */
SLUICE_EXPORT int sluice_client_dispatch(struct sluice_client *c)
{
	struct epoll_event ev[SLUICE_WORKERS_MAX];
	size_t i;
	int r = 0, w, n;

	if (c->dead)
		return c->dead;
	/* The input buffer is being decoded; a nested dispatch would decode it twice. */
	if (c->dispatching)
		return -EBUSY;
	c->dispatching = true;
	/* First the frames a callback's error left undecoded. */
	for (i = 0; i < c->nconns && r >= 0; i++)
		r = process_input(c, &c->conns[i]);
	if (r >= 0 && c->nconns == 1) {
		/* A read that finds nothing costs what asking epoll would. */
		r = dispatch_conn(c, &c->conns[0]);
	} else if (r >= 0) {
		n = epoll_wait(c->epfd, ev, (int)c->nconns, 0);
		if (n < 0 && errno != EINTR)
			r = -errno;
		for (i = 0; n > 0 && i < (size_t)n && r >= 0; i++)
			if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				r = dispatch_conn(c, ev[i].data.ptr);
	}
	c->dispatching = false;

	/* Even after a callback's error, send what the callbacks decided. */
	w = 0;
	for (i = 0; i < c->nconns; i++) {
		struct conn *k = &c->conns[i];
		int wk;

		wk = out_flush(c, k, false);
		if (wk < 0 && !w)
			w = wk;
	}
	if (!w)
		w = watch_output(c);
	return r < 0 ? r : w;
}

/*
 * Returns a callback's error, -ECONNRESET when the daemon closed the channel,
 * or -EINTR when a signal handler ran while waiting, so that a program can
 * stop on SIGINT or SIGTERM.
 */
SLUICE_EXPORT int sluice_client_run(struct sluice_client *c)
{
	/* The epoll fd waits for output room itself (watch_output()). */
	struct pollfd p = { .fd = c->epfd, .events = POLLIN };
	int r;

	for (;;) {
		r = sluice_client_dispatch(c);
		if (r < 0)
			return r;
		if (poll(&p, 1, -1) < 0)
			return -errno;
	}
}

SLUICE_EXPORT int sluice_client_flush(struct sluice_client *c)
{
	int r;

	for (size_t i = 0; i < c->nconns; i++) {
		r = out_flush(c, &c->conns[i], true);
		if (r < 0)
			return r;
	}
	return watch_output(c);
}

/* The connection a flow came on, which its verdicts go back on. */
static struct conn *flow_conn(struct sluice_client *c, const struct flow *fl)
{
	return &c->conns[fl->conn];
}

/* The flow a verdict names, or NULL with *ret_err set. */
static struct flow *verdict_flow(struct sluice_client *c, uint64_t flow, enum sluice_dir dir,
				 int *ret_err)
{
	struct flow *fl;

	if (c->dead) {
		*ret_err = c->dead;
		return NULL;
	}
	if (dir != SLUICE_DIR_OUT && dir != SLUICE_DIR_IN) {
		*ret_err = -EINVAL;
		return NULL;
	}
	fl = flow_find(&c->flows, flow);
	if (!fl || fl->closing) {
		*ret_err = -ENOENT;
		return NULL;
	}
	return fl;
}

/* Pass, peek and drop; the first and last decide the bytes up to `to`. */
static int simple_verdict(struct sluice_client *c, uint64_t flow, enum sluice_dir dir, uint8_t op,
			  uint64_t to)
{
	struct flow *fl;
	int r;

	fl = verdict_flow(c, flow, dir, &r);
	if (!fl)
		return r;
	r = out_verdict(c, flow_conn(c, fl), flow, dir, op, 0, to, NULL, 0);
	if (r == 0 && op != SLUICE_VERDICT_PEEK)
		dir_decided(&fl->dir[dir], to);
	return r;
}

SLUICE_EXPORT int sluice_pass(struct sluice_client *c, uint64_t flow, enum sluice_dir dir,
			      uint64_t to)
{
	return simple_verdict(c, flow, dir, SLUICE_VERDICT_PASS, to);
}

SLUICE_EXPORT int sluice_peek(struct sluice_client *c, uint64_t flow, enum sluice_dir dir,
			      uint64_t to)
{
	return simple_verdict(c, flow, dir, SLUICE_VERDICT_PEEK, to);
}

SLUICE_EXPORT int sluice_drop(struct sluice_client *c, uint64_t flow, enum sluice_dir dir,
			      uint64_t to)
{
	return simple_verdict(c, flow, dir, SLUICE_VERDICT_DROP, to);
}

/*
 * A replacement larger than one frame becomes a replace with its first part
 * followed by injects of the rest: after the replace the decision point is
 * `to`, which is where the rest belongs.
 */
SLUICE_EXPORT int sluice_replace(struct sluice_client *c, uint64_t flow, enum sluice_dir dir,
				 uint64_t from, uint64_t to, const void *bytes, size_t len)
{
	struct flow *fl;
	size_t max, first;
	int r;

	fl = verdict_flow(c, flow, dir, &r);
	if (!fl)
		return r;
	if (off_before(to, from) || (len && !bytes))
		return -EINVAL;
	max = sluice_client_max_payload(c);
	first = len < max ? len : max;
	r = out_verdict(c, flow_conn(c, fl), flow, dir, SLUICE_VERDICT_REPLACE, from, to, bytes,
			first);
	if (r < 0)
		return r;
	dir_decided(&fl->dir[dir], to);
	return out_inject(c, flow_conn(c, fl), flow, dir, (const uint8_t *)bytes + first,
			  len - first);
}

SLUICE_EXPORT int sluice_inject(struct sluice_client *c, uint64_t flow, enum sluice_dir dir,
				const void *bytes, size_t len)
{
	struct flow *fl;
	int r;

	fl = verdict_flow(c, flow, dir, &r);
	if (!fl)
		return r;
	if (len && !bytes)
		return -EINVAL;
	return out_inject(c, flow_conn(c, fl), flow, dir, bytes, len);
}

SLUICE_EXPORT int sluice_pass_rest(struct sluice_client *c, uint64_t flow, enum sluice_dir dir)
{
	struct flow *fl;
	int r;

	fl = verdict_flow(c, flow, dir, &r);
	if (!fl)
		return r;
	fl->dir[dir].pass_rest = true;
	return out_verdict(c, flow_conn(c, fl), flow, dir, SLUICE_VERDICT_PASS_REST, 0, 0, NULL, 0);
}

SLUICE_EXPORT int sluice_shutdown(struct sluice_client *c, uint64_t flow, enum sluice_dir dir)
{
	struct flow *fl;
	int r;

	fl = verdict_flow(c, flow, dir, &r);
	if (!fl)
		return r;
	fl->dir[dir].shutdown = true;
	return out_verdict(c, flow_conn(c, fl), flow, dir, SLUICE_VERDICT_SHUTDOWN, 0, 0, NULL, 0);
}

SLUICE_EXPORT int sluice_reset(struct sluice_client *c, uint64_t flow)
{
	struct flow *fl;
	int r;

	fl = verdict_flow(c, flow, SLUICE_DIR_OUT, &r);
	if (!fl)
		return r;
	fl->reset = true;
	return out_verdict(c, flow_conn(c, fl), flow, SLUICE_DIR_OUT, SLUICE_VERDICT_RESET, 0, 0,
			   NULL, 0);
}

/*
 * Connect-time verdicts. Only the first answer to an OPEN that asked for one
 * is sent: a second, or one the daemon did not ask for, is -EINVAL.
 */
static int open_verdict(struct sluice_client *c, uint64_t flow, const struct frame_open_verdict *v)
{
	struct ignored *ig;
	struct flow *fl;
	int r;

	fl = verdict_flow(c, flow, SLUICE_DIR_OUT, &r);
	if (!fl)
		return r;
	if (!fl->verdict_pending)
		return -EINVAL;
	r = out_open_verdict(c, flow_conn(c, fl), v);
	if (r < 0)
		return r;
	fl->verdict_pending = false;
	if (v->action == SLUICE_OPEN_IGNORE) {
		ig = &c->ignored[c->nignored++ % IGNORED_MAX];
		ig->id = flow;
		ig->dirs = fl->dirs;
		ig->conn = fl->conn;
		flow_forget(&c->flows, fl);
	}
	return 0;
}

SLUICE_EXPORT int sluice_allow(struct sluice_client *c, uint64_t flow)
{
	struct frame_open_verdict v = { .flow = flow, .action = SLUICE_OPEN_ALLOW };

	return open_verdict(c, flow, &v);
}

SLUICE_EXPORT int sluice_deny(struct sluice_client *c, uint64_t flow)
{
	struct frame_open_verdict v = { .flow = flow, .action = SLUICE_OPEN_DENY };

	return open_verdict(c, flow, &v);
}

/* The daemon refuses port 0, so it is refused here, where the caller sees why. */
SLUICE_EXPORT int sluice_redirect(struct sluice_client *c, uint64_t flow,
				  const struct sockaddr *addr, socklen_t len)
{
	struct frame_open_verdict v = { .flow = flow, .action = SLUICE_OPEN_REDIRECT };
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)addr;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;

	if (addr && addr->sa_family == AF_INET && len >= sizeof(*sin)) {
		v.family = 4;
		v.port = ntohs(sin->sin_port);
		memcpy(v.addr, &sin->sin_addr, 4);
	} else if (addr && addr->sa_family == AF_INET6 && len >= sizeof(*sin6)) {
		v.family = 6;
		v.port = ntohs(sin6->sin6_port);
		memcpy(v.addr, &sin6->sin6_addr, 16);
	} else {
		return -EINVAL;
	}
	if (!v.port)
		return -EINVAL;
	return open_verdict(c, flow, &v);
}

/*
 * The flow is forgotten at once. The daemon sends nothing more about it once
 * it has read the ignore, not even CLOSE; what it sent before is dropped on
 * arrival (see handle_data()).
 */
SLUICE_EXPORT int sluice_ignore(struct sluice_client *c, uint64_t flow)
{
	struct frame_open_verdict v = { .flow = flow, .action = SLUICE_OPEN_IGNORE };

	return open_verdict(c, flow, &v);
}

/* Room for need bytes, need being at most max; the buffer grows by doubling up to max. */
static int gather_reserve(struct gather *g, size_t need, size_t max)
{
	size_t cap = g->cap ? g->cap : 256;
	uint8_t *buf;

	if (need <= g->cap)
		return 0;
	while (cap < need)
		cap *= 2;
	if (cap > max)
		cap = max;
	buf = realloc(g->buf, cap);
	if (!buf)
		return -ENOMEM;
	g->buf = buf;
	g->cap = cap;
	return 0;
}

/* Searches data[0..len) from scratch; see sluice_gather(). */
static int gather_chunk(struct gather *g, uint64_t offset, const uint8_t *data, size_t len,
			const void *delim, size_t dlen, size_t max, uint64_t *ret_start,
			const uint8_t **ret_data, size_t *ret_len)
{
	size_t n = len < max ? len : max;
	const uint8_t *p = memmem(data, n, delim, dlen);
	int r;

	if (p) {
		*ret_start = offset;
		*ret_data = data;
		*ret_len = (size_t)(p - data) + dlen;
		return 1;
	}
	if (n == max)
		return -EMSGSIZE;
	if (!len)
		return 0;
	r = gather_reserve(g, len, max);
	if (r < 0)
		return r;
	memcpy(g->buf, data, len);
	g->len = len;
	g->start = offset;
	g->active = true;
	return 0;
}

/*
 * A gather either searches the chunk in place (nothing is buffered, or the
 * chunk, a re-offer, holds everything that is) or appends to the buffer the
 * bytes beyond what it holds and searches from dlen - 1 bytes before the
 * join, where a delimiter split across chunks would begin. The buffer never
 * holds a delimiter's end, so it never holds more than max bytes.
 */
SLUICE_EXPORT int sluice_gather(struct sluice_client *c, uint64_t flow, enum sluice_dir dir,
				uint64_t offset, const uint8_t *data, size_t len, const void *delim,
				size_t dlen, size_t max, uint64_t *ret_start,
				const uint8_t **ret_data, size_t *ret_len)
{
	struct gather *g;
	struct flow *fl;
	const uint8_t *p;
	size_t skip, take, from;
	uint64_t end;
	int r;

	fl = verdict_flow(c, flow, dir, &r);
	if (!fl)
		return r;
	if (!delim || !dlen || dlen > max || (len && !data))
		return -EINVAL;
	if (max > fl->window)
		return -EMSGSIZE;
	g = &fl->dir[dir].gather;
	if (!g->active)
		return gather_chunk(g, offset, data, len, delim, dlen, max, ret_start, ret_data,
				    ret_len);

	end = g->start + g->len;
	if (off_before(end, offset))
		return -EINVAL; /* the bytes between were never given to us */
	if (off_before_eq(offset, g->start) && off_before_eq(end, offset + len)) {
		g->active = false;
		skip = (size_t)(g->start - offset);
		return gather_chunk(g, g->start, data + skip, len - skip, delim, dlen, max,
				    ret_start, ret_data, ret_len);
	}
	skip = (size_t)(end - offset);
	if (skip >= len)
		return 0;
	if (g->len >= max) {
		/* A smaller max than the gather began with. */
		g->active = false;
		return -EMSGSIZE;
	}

	take = len - skip < max - g->len ? len - skip : max - g->len;
	r = gather_reserve(g, g->len + take, max);
	if (r < 0)
		return r;
	memcpy(g->buf + g->len, data + skip, take);
	from = g->len > dlen - 1 ? g->len - (dlen - 1) : 0;
	g->len += take;
	p = memmem(g->buf + from, g->len - from, delim, dlen);
	if (p) {
		g->active = false;
		*ret_start = g->start;
		*ret_data = g->buf;
		*ret_len = (size_t)(p - g->buf) + dlen;
		return 1;
	}
	if (g->len == max) {
		g->active = false;
		return -EMSGSIZE;
	}
	return 0;
}

SLUICE_EXPORT int sluice_flow_set_user(struct sluice_client *c, uint64_t flow, void *ptr)
{
	struct flow *fl = flow_find(&c->flows, flow);

	if (!fl)
		return -ENOENT;
	fl->user = ptr;
	return 0;
}

SLUICE_EXPORT void *sluice_flow_user(const struct sluice_client *c, uint64_t flow)
{
	struct flow *fl = flow_find(&c->flows, flow);

	return fl ? fl->user : NULL;
}

SLUICE_EXPORT size_t sluice_client_max_payload(const struct sluice_client *c)
{
	return c->max_frame - FRAME_VERDICT_PREFIX;
}
