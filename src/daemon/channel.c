/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "addr.h"
#include "arena.h"
#include "channel.h"
#include "daemon.h"
#include "flow.h"
#include "frame.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "relay.h"
#include "shmring.h"
#include "stream.h"
#include "unixsock.h"

#define CLIENT_SOCKBUF (4 * 1024 * 1024)
/*
 * A filter with shared memory gets this many slots, each a window, for the
 * rings of its busy flow directions; past that, bytes travel in the frames.
 * The memfd's pages are only allocated when touched, and only a few free
 * slots stay resident (arena.c), so the count costs address space, not
 * memory. The area is at most SHM_AREA_MAX bytes (fewer slots with large
 * windows).
 */
#define SHM_SLOTS    64
#define SHM_AREA_MAX (256u * 1024 * 1024)

struct outbuf {
	uint8_t *data;
	size_t off, len, cap; /* unsent bytes are data[off, len) */
};

struct client {
	struct io io;
	struct channel *ch;
	unsigned id;
	pid_t pid;
	uid_t uid;
	char name[SLUICE_NAME_MAX + 1];
	char label[SLUICE_NAME_MAX + 32];
	bool ready;	   /* HELLO exchanged */
	uint32_t features; /* SLUICE_FEATURE_* from its HELLO */
	uint8_t sub_dirs;  /* SLUICE_SUB_* it wants */
	struct frame_subscribe sub;
	bool dead;
	uint32_t peer_max;  /* largest frame the filter accepts */
	uint64_t first_gen; /* flows it may know of start here */
	uint8_t *in;
	size_t in_len;
	struct outbuf out;
	struct flow *flows; /* its flows, through filter_next */
	struct flow *wait_head, *wait_tail;
	struct client *next, *prev;
	struct client *dead_next;
	uint64_t sent_total; /* bytes written to its socket, ever */
	/* For --verdict-timeout: what was sent and still unread at the last
	 * look, and since when it has not changed. */
	uint64_t seen_sent;
	int seen_outq;
	uint64_t progress_ms;
	/* SLUICE_FEATURE_SHM: its flows' rings are slots of fwd, so that DATA
	 * bytes are read into memory it has mapped (arena.h); replacements
	 * come through rev (shmring.h). */
	bool shm;
	bool rev_consumed; /* rev.tail moved: tell the filter */
	uint64_t rev_told; /* rev.tail as last told */
	struct arena *fwd;
	struct shm_ring rev;
	uint64_t last_closed_id;  /* the last flow it was told is closed, */
	uint8_t last_closed_type; /* about a frame of this type */
};

/*
 * The flows of a filter that went away, held for --filter-grace-seconds in
 * case it comes back (same name, same uid): nothing of theirs is decided
 * meanwhile, and their sources are read only up to the window.
 */
struct orphans {
	struct channel *ch;
	char name[SLUICE_NAME_MAX + 1];
	uid_t uid;
	struct flow *flows; /* through filter_next / filter_prev */
	unsigned count;
	struct timer timer;
	struct orphans *next;
};

struct channel {
	struct daemon *d;
	struct orphans *orphans;
	struct client *clients;
	struct client *rr; /* the next filter to get a flow */
	struct client *dead;
};

static void client_drop(struct client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void adopt(struct client *c, struct orphans *o);

/* Room for two of the largest frames a filter may send. */
static size_t client_inbuf(const struct channel *ch)
{
	return 2 * (size_t)ch->d->cfg.max_frame;
}

const char *channel_client_name(const struct client *c)
{
	return c->label;
}

const struct client *channel_next_client(const struct channel *ch, const struct client *c)
{
	return c ? c->next : ch->clients;
}

void channel_client_info(const struct client *c, struct channel_client_info *ret)
{
	unsigned n = 0;

	for (const struct flow *f = c->flows; f; f = f->filter_next)
		n++;
	*ret = (struct channel_client_info){
		.id = c->id,
		.pid = c->pid,
		.uid = c->uid,
		.name = c->name,
		.ready = c->ready,
		.flows = n,
		.queued = c->out.len - c->out.off,
		.dirs = c->sub_dirs,
		.sub = &c->sub,
	};
}

/*
 * Publishes the ports this worker's ready filters want, for the other
 * workers to see (a flow that no filter here wants moves to a worker where
 * one does). Called when a filter becomes ready, subscribes or goes.
 */
static void publish_wanted(struct channel *ch)
{
	uint64_t map[65536 / 64] = { 0 };

	for (const struct client *c = ch->clients; c; c = c->next) {
		if (!c->ready || c->dead)
			continue;
		if (!c->sub.nports) {
			memset(map, 0xff, sizeof(map));
			break;
		}
		for (unsigned i = 0; i < c->sub.nports; i++)
			for (unsigned p = c->sub.ports[i].lo; p <= c->sub.ports[i].hi; p++)
				map[p / 64] |= 1ull << (p % 64);
	}
	for (unsigned i = 0; i < 65536 / 64; i++)
		SHARED_STORE(ch->d->wanted[i], map[i]);
}

const char *channel_orphan_name(const struct flow *f)
{
	return f->orphans ? f->orphans->name : NULL;
}

/* Output buffer. */

static int out_reserve(struct outbuf *o, size_t n)
{
	if (o->off && o->len + n > o->cap) {
		memmove(o->data, o->data + o->off, o->len - o->off);
		o->len -= o->off;
		o->off = 0;
	}
	if (o->len + n > o->cap) {
		size_t cap = o->cap ? o->cap : 64 * 1024;
		uint8_t *p;

		while (cap < o->len + n)
			cap *= 2;
		p = realloc(o->data, cap);
		if (!p)
			return -ENOMEM;
		o->data = p;
		o->cap = cap;
	}
	return 0;
}

static size_t out_pending(const struct outbuf *o)
{
	return o->len - o->off;
}

static void send_frame(struct client *c, const struct frame *f)
{
	size_t size = frame_size(f);

	if (c->dead)
		return;
	if (out_reserve(&c->out, size) < 0) {
		client_drop(c, "no memory for its output");
		return;
	}
	frame_encode(c->out.data + c->out.len, size, f);
	c->out.len += size;
}

static void send_error(struct client *c, uint64_t flow, uint32_t code, uint8_t ref,
		       const char *text)
{
	struct frame f = { .type = SLUICE_FRAME_ERROR };

	f.error.flow = flow;
	f.error.code = code;
	f.error.ref_type = ref;
	f.error.text = (const uint8_t *)text;
	f.error.text_len = strlen(text);
	if (f.error.text_len > SLUICE_ERROR_TEXT_MAX)
		f.error.text_len = SLUICE_ERROR_TEXT_MAX;
	send_frame(c, &f);
}

/* Flow lists. */

static void wait_remove(struct client *c, struct flow *f)
{
	struct flow **p;

	if (!f->waiting)
		return;
	for (p = &c->wait_head; *p; p = &(*p)->wait_next) {
		if (*p == f) {
			*p = f->wait_next;
			break;
		}
	}
	if (c->wait_tail == f) {
		c->wait_tail = NULL;
		for (struct flow *w = c->wait_head; w; w = w->wait_next)
			c->wait_tail = w;
	}
	f->waiting = false;
	f->wait_next = NULL;
}

static void flow_unlink(struct client *c, struct flow *f)
{
	wait_remove(c, f);
	if (f->filter_prev)
		f->filter_prev->filter_next = f->filter_next;
	else
		c->flows = f->filter_next;
	if (f->filter_next)
		f->filter_next->filter_prev = f->filter_prev;
	f->filter_prev = f->filter_next = NULL;
	f->filter = NULL;
}

static void flow_link(struct client *c, struct flow *f)
{
	f->filter = c;
	f->filter_prev = NULL;
	f->filter_next = c->flows;
	if (c->flows)
		c->flows->filter_prev = f;
	c->flows = f;
}

void channel_attach(struct client *c, struct flow *f, bool can_decide)
{
	struct frame fr = { .type = SLUICE_FRAME_OPEN };

	flow_link(c, f);

	fr.open.flow = f->id;
	addr_to_wire(&f->app_addr, &fr.open.family, &fr.open.src_port, fr.open.src);
	addr_to_wire(&f->dst_addr, &fr.open.family, &fr.open.dst_port, fr.open.dst);
	fr.open.window = c->ch->d->cfg.window;
	if (f->ident.has_uid) {
		fr.flags |= SLUICE_OPEN_F_UID;
		fr.open.uid = f->ident.uid;
	}
	if (f->ident.has_pid) {
		fr.flags |= SLUICE_OPEN_F_PID;
		fr.open.pid = f->ident.pid;
		fr.open.comm = (const uint8_t *)f->ident.comm;
		fr.open.comm_len = strnlen(f->ident.comm, SLUICE_COMM_MAX);
	}
	if (!(c->sub_dirs & SLUICE_SUB_OUT)) {
		stream_pass_all(&f->dir[SLUICE_DIR_OUT].st);
		fr.flags |= SLUICE_OPEN_F_IN_ONLY;
	}
	if (!(c->sub_dirs & SLUICE_SUB_IN)) {
		stream_pass_all(&f->dir[SLUICE_DIR_IN].st);
		fr.flags |= SLUICE_OPEN_F_OUT_ONLY;
	}
	if (can_decide && (c->features & SLUICE_FEATURE_OPEN_VERDICT)) {
		fr.flags |= SLUICE_OPEN_F_VERDICT;
		f->awaiting_verdict = true;
	}
	send_frame(c, &fr);
}

bool channel_verdicts_possible(const struct channel *ch)
{
	for (const struct client *c = ch->clients; c; c = c->next)
		if (c->ready && (c->features & SLUICE_FEATURE_OPEN_VERDICT))
			return true;
	return false;
}

void channel_forget(struct flow *f)
{
	if (f->filter)
		flow_unlink(f->filter, f);
}

static void orphan_unlink(struct flow *f)
{
	struct orphans *o = f->orphans;

	if (f->filter_prev)
		f->filter_prev->filter_next = f->filter_next;
	else
		o->flows = f->filter_next;
	if (f->filter_next)
		f->filter_next->filter_prev = f->filter_prev;
	f->filter_prev = f->filter_next = NULL;
	f->orphans = NULL;
	o->count--;
}

void channel_detach(struct flow *f, uint32_t reason)
{
	struct client *c = f->filter;
	struct frame fr = { .type = SLUICE_FRAME_CLOSE };

	if (f->orphans)
		orphan_unlink(f);
	if (!c)
		return;
	flow_unlink(c, f);
	fr.close.flow = f->id;
	fr.close.reason = reason;
	send_frame(c, &fr);
}

/* Data may be queued to c: its buffer is under the limit. */
static bool has_room(const struct client *c)
{
	return out_pending(&c->out) < c->ch->d->cfg.max_inflight;
}

struct arena *channel_arena(const struct flow *f)
{
	return f->filter ? f->filter->fwd : NULL;
}

size_t channel_data_room(struct flow *f)
{
	struct client *c = f->filter;

	if (has_room(c))
		return c->peer_max - FRAME_DATA_PREFIX;
	if (!f->waiting) {
		metrics_inc(M_STALLS);
		f->waiting = true;
		f->wait_next = NULL;
		if (c->wait_tail)
			c->wait_tail->wait_next = f;
		else
			c->wait_head = f;
		c->wait_tail = f;
	}
	return 0;
}

void channel_send_data(struct flow *f, uint8_t dir, uint64_t offset, const struct iovec *iov,
		       int iovcnt, size_t len, uint8_t flags)
{
	struct client *c = f->filter;
	uint64_t pos;
	uint8_t *p;

	if (arena_pos(c->fwd, iov[0].iov_base, iov[0].iov_len, &pos)) {
		/* The bytes were read into the filter's memory: the frames
		 * only say where, one per contiguous run (a ring that wraps
		 * makes two). */
		for (int i = 0; i < iovcnt && len; i++) {
			size_t k = iov[i].iov_len < len ? iov[i].iov_len : len;

			/* (pos of the first is known; a ring lies in one place) */
			if (i && !arena_pos(c->fwd, iov[i].iov_base, k, &pos))
				abort();
			if (out_reserve(&c->out, FRAME_DATA_PREFIX + FRAME_SHM_REF) < 0) {
				client_drop(c, "no memory for its output");
				return;
			}
			p = c->out.data + c->out.len;
			frame_put_data_prefix(p, f->id, dir, offset, FRAME_SHM_REF);
			frame_set_flags(p, flags | SLUICE_DATA_F_SHM);
			frame_put_shm_ref(p + FRAME_DATA_PREFIX, pos, k);
			c->out.len += FRAME_DATA_PREFIX + FRAME_SHM_REF;
			offset += k;
			len -= k;
		}
		return;
	}
	/* A ring taken when every slot was lent, or before this filter came. */
	if (c->shm)
		metrics_add(M_SHM_INLINE, len);
	if (out_reserve(&c->out, FRAME_DATA_PREFIX + len) < 0) {
		client_drop(c, "no memory for its output");
		return;
	}
	p = c->out.data + c->out.len;
	frame_put_data_prefix(p, f->id, dir, offset, len);
	frame_set_flags(p, flags);
	p += FRAME_DATA_PREFIX;
	for (int i = 0; i < iovcnt && len; i++) {
		size_t k = iov[i].iov_len < len ? iov[i].iov_len : len;

		memcpy(p, iov[i].iov_base, k);
		p += k;
		len -= k;
	}
	c->out.len = (size_t)(p - c->out.data);
}

void channel_send_eof(struct flow *f, uint8_t dir, uint64_t offset)
{
	struct frame fr = { .type = SLUICE_FRAME_EOF };

	fr.data.flow = f->id;
	fr.data.dir = dir;
	fr.data.offset = offset;
	send_frame(f->filter, &fr);
}

static bool wants(const struct client *c, const struct flow *f)
{
	uint8_t family;
	uint16_t port;
	uint8_t addr[16];

	if (!c->ready || c->dead)
		return false;
	if (!c->sub.nports)
		return true;
	addr_to_wire(&f->dst_addr, &family, &port, addr);
	for (unsigned i = 0; i < c->sub.nports; i++)
		if (port >= c->sub.ports[i].lo && port <= c->sub.ports[i].hi)
			return true;
	return false;
}

struct client *channel_pick(struct channel *ch, const struct flow *f, bool *ret_none)
{
	struct client *c = ch->rr;
	bool any = false;

	/* Round robin over the filters that want this flow. */
	for (int pass = 0; pass < 2; pass++) {
		for (; c; c = c->next) {
			any |= c->ready && !c->dead;
			if (wants(c, f)) {
				ch->rr = c->next;
				return c;
			}
		}
		c = ch->clients;
	}
	/* No filter here; none anywhere when no other worker has one. */
	any = any || SHARED_LOAD(ch->d->top->ready) > 0;
	*ret_none = !any;
	if (!any && !__atomic_exchange_n(&ch->d->top->warned_no_filter, true, __ATOMIC_RELAXED)) {
		if (ch->d->cfg.on_failure == FAIL_CLOSED)
			log_warn("no filter connected: new flows are refused (fail-closed)");
		else
			log_warn("no filter connected: flows pass unchanged (fail-open)");
	}
	return NULL;
}

/* Writing to a client. */

static void wake_waiters(struct client *c)
{
	/* Wake at most the flows waiting now: a woken flow that fills the
	 * buffer again queues itself at the tail. */
	struct flow *f = c->wait_head, *last = c->wait_tail;

	while (f && has_room(c) && !c->dead) {
		struct flow *next = f->wait_next;

		c->wait_head = next;
		if (!next)
			c->wait_tail = NULL;
		f->waiting = false;
		f->wait_next = NULL;
		relay_wake(f);
		if (f == last)
			break;
		f = c->wait_head;
	}
}

static void client_flush(struct client *c)
{
	while (out_pending(&c->out)) {
		ssize_t n = send(c->io.fd, c->out.data + c->out.off, out_pending(&c->out),
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			client_drop(c, "write: %s", strerror(errno));
			return;
		}
		c->out.off += (size_t)n;
		c->sent_total += (uint64_t)n;
	}
	if (!out_pending(&c->out))
		c->out.off = c->out.len = 0;
	if (io_set(c->ch->d->loop, &c->io, EPOLLIN | (out_pending(&c->out) ? EPOLLOUT : 0)) < 0) {
		client_drop(c, "epoll: %s", strerror(errno));
		return;
	}
	if (c->wait_head && has_room(c))
		wake_waiters(c);
}

/* Frames from a client. Each handler returns 0, or -1 after dropping it. */

typedef int (*frame_handler)(struct client *c, const struct frame *f);

/*
 * Makes the shared rings for c and sends them with an SHM frame right
 * behind the HELLO. The memfd travels as SCM_RIGHTS on the same write as
 * those bytes, which the filter reads before anything else: it cannot be
 * confused with another. Returns 0, or -1 after dropping c.
 */
static int setup_shm(struct client *c)
{
	uint32_t page = (uint32_t)sysconf(_SC_PAGESIZE);
	uint32_t size = (c->ch->d->cfg.max_inflight + page - 1) / page * page;
	uint32_t slot = (c->ch->d->cfg.window + page - 1) / page * page;
	uint32_t nslots = SHM_AREA_MAX / slot < SHM_SLOTS ? SHM_AREA_MAX / slot : SHM_SLOTS;
	struct frame fr = { .type = SLUICE_FRAME_SHM,
			    .shm.fwd_size = nslots * slot,
			    .shm.rev_size = size };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov;
	struct msghdr msg = { .msg_iov = &iov,
			      .msg_iovlen = 1,
			      .msg_control = ctl.buf,
			      .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *cm;
	ssize_t n;
	int fd = shm_create(fr.shm.fwd_size, size), r = fd;

	if (fd >= 0) {
		r = arena_new(fd, slot, nslots, &c->fwd);
		if (r == 0)
			r = shm_map(fd, fr.shm.fwd_size, size, &c->rev);
	}
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		client_drop(c, "shared memory: %s", strerror(-r));
		return -1;
	}
	send_frame(c, &fr);
	memset(&ctl, 0, sizeof(ctl));
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	iov = (struct iovec){ c->out.data + c->out.off, out_pending(&c->out) };
	n = sendmsg(c->io.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd); /* the filter has its own now; our mappings keep the memory */
	if (n <= 0) {
		client_drop(c, "sending the shared memory: %s",
			    n < 0 ? strerror(errno) : "no room");
		return -1;
	}
	c->out.off += (size_t)n;
	c->sent_total += (uint64_t)n;
	c->shm = true;
	return 0;
}

static int on_hello(struct client *c, const struct frame *f)
{
	struct frame reply = { .type = SLUICE_FRAME_HELLO };
	size_t n = f->hello.name_len;

	if (c->ready) {
		client_drop(c, "second HELLO");
		return -1;
	}
	if (f->hello.version != SLUICE_PROTOCOL_VERSION) {
		char text[96];

		snprintf(text, sizeof(text),
			 "protocol version %u not supported; this daemon speaks %u",
			 f->hello.version, SLUICE_PROTOCOL_VERSION);
		send_error(c, 0, SLUICE_ERR_PROTOCOL, SLUICE_FRAME_HELLO, text);
		client_drop(c, "%s", text);
		return -1;
	}
	if (f->hello.worker > c->ch->d->top->nworkers) {
		char text[96];

		snprintf(text, sizeof(text), "HELLO asks for worker %u; this daemon runs %u",
			 f->hello.worker, c->ch->d->top->nworkers);
		send_error(c, 0, SLUICE_ERR_PROTOCOL, SLUICE_FRAME_HELLO, text);
		client_drop(c, "%s", text);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		c->name[i] = isprint(f->hello.name[i]) ? (char)f->hello.name[i] : '?';
	c->name[n] = '\0';
	snprintf(c->label, sizeof(c->label), "filter %u (%s)", c->id, n ? c->name : "unnamed");
	c->peer_max = f->hello.max_frame;
	c->features = f->hello.features;
	c->sub_dirs = SLUICE_SUB_OUT | SLUICE_SUB_IN;
	c->first_gen = flow_table_next_gen(c->ch->d->flows);
	c->ready = true;
	SHARED_ADD(c->ch->d->top->ready, 1);
	SHARED_STORE(c->ch->d->top->warned_no_filter, false);
	publish_wanted(c->ch);

	reply.hello.version = SLUICE_PROTOCOL_VERSION;
	reply.hello.worker = (uint8_t)(c->ch->d->index + 1);
	reply.hello.workers = (uint8_t)c->ch->d->top->nworkers;
	reply.hello.max_frame = c->ch->d->cfg.max_frame;
	reply.hello.window = c->ch->d->cfg.window;
	reply.hello.name = (const uint8_t *)"sluiced";
	reply.hello.name_len = strlen("sluiced");
	send_frame(c, &reply);
	if ((c->features & SLUICE_FEATURE_SHM) && setup_shm(c) < 0)
		return -1;
	log_info("%s ready: pid %d, uid %u%s", c->label, (int)c->pid, (unsigned)c->uid,
		 c->shm ? ", shared memory" : "");
	for (struct orphans *o = c->ch->orphans; o; o = o->next) {
		if (!strcmp(o->name, c->name) && o->uid == c->uid) {
			adopt(c, o);
			break;
		}
	}
	return 0;
}

/*
 * Finds the flow a frame from c names. Returns the flow, or NULL after
 * answering FLOW_CLOSED (a late frame for a flow that has closed: normal) or
 * after dropping c (an id c was never given: the channel is not to be
 * trusted any more). *ret_dropped tells which.
 */
static struct flow *client_flow(struct client *c, uint64_t id, uint8_t type, bool *ret_dropped)
{
	struct flow_table *t = c->ch->d->flows;
	struct flow *f = flow_lookup(t, id);

	*ret_dropped = false;
	if (f && f->filter == c)
		return f;
	if (!f && flow_id_plausible(t, id, c->first_gen)) {
		/* Once per flow and frame type: a filter streaming verdicts
		 * when its flow was reset would otherwise get one for each. */
		if (c->last_closed_id != id || c->last_closed_type != type)
			send_error(c, id, SLUICE_ERR_FLOW_CLOSED, type, "flow closed");
		c->last_closed_id = id;
		c->last_closed_type = type;
		return NULL;
	}
	client_drop(c, "%s names flow " FLOW_ID_FMT ", which it was never given",
		    frame_type_name(type), FLOW_ID_ARGS(id));
	*ret_dropped = true;
	return NULL;
}

static int on_verdict(struct client *c, const struct frame *fr)
{
	const struct frame_verdict *v = &fr->verdict;
	const uint8_t *bytes = v->bytes;
	size_t len = v->len;
	struct flow *f;
	bool dropped;
	char text[128];
	int r;

	if (fr->flags & SLUICE_VERDICT_F_SHM) {
		uint64_t pos, n;

		/* The filter fills the reverse ring in order, and we take
		 * from it in the same order, whatever becomes of the flow. */
		if (!c->shm || frame_shm_ref(v->bytes, v->len, &pos, &n) < 0 ||
		    pos != c->rev.tail || n > c->rev.size) {
			client_drop(c, "VERDICT bytes out of order in the shared ring");
			return -1;
		}
		bytes = shm_at(&c->rev, pos);
		len = (size_t)n;
		c->rev.tail += n;
		c->rev_consumed = true;
	}
	f = client_flow(c, v->flow, SLUICE_FRAME_VERDICT, &dropped);
	if (!f)
		return dropped ? -1 : 0;
	metrics_verdict(v->op);
	if (v->op == SLUICE_VERDICT_RESET) {
		relay_reset(f, 0, "the filter asked for it");
		return 0;
	}
	r = stream_verdict(&f->dir[v->dir].st, v->op, v->from, v->to, bytes, len);
	switch (r) {
	case 0:
		relay_pump(f);
		return 0;
	case -ERANGE:
		snprintf(text, sizeof(text), "%s [%llu, %llu) outside decided %llu .. offered %llu",
			 frame_verdict_name(v->op), (unsigned long long)v->from,
			 (unsigned long long)v->to, (unsigned long long)f->dir[v->dir].st.decided,
			 (unsigned long long)f->dir[v->dir].st.win.in);
		log_warn("flow " FLOW_ID_FMT " %s: %s: %s", FLOW_ID_ARGS(f->id),
			 v->dir ? "in" : "out", c->label, text);
		send_error(c, f->id, SLUICE_ERR_BAD_OFFSET, SLUICE_FRAME_VERDICT, text);
		return 0;
	case -EPIPE:
		send_error(c, f->id, SLUICE_ERR_STATE, SLUICE_FRAME_VERDICT,
			   "direction already shut down or passed on");
		return 0;
	case -ENOSPC:
		if (v->op == SLUICE_VERDICT_PEEK)
			snprintf(text, sizeof(text), "peek goes beyond the window of %u bytes",
				 c->ch->d->cfg.window);
		else
			snprintf(text, sizeof(text),
				 "%s: filter output waiting for the sink would pass 2 x window (%u "
				 "bytes)",
				 frame_verdict_name(v->op), 2 * c->ch->d->cfg.window);
		send_error(c, f->id, SLUICE_ERR_WINDOW, SLUICE_FRAME_VERDICT, text);
		relay_reset(f, ENOBUFS, text);
		return 0;
	default:
		relay_reset(f, -r, "applying a verdict");
		return 0;
	}
}

static int on_open_verdict(struct client *c, const struct frame *fr)
{
	const struct frame_open_verdict *v = &fr->open_verdict;
	struct sockaddr_storage dst;
	struct flow *f;
	bool dropped;

	f = client_flow(c, v->flow, SLUICE_FRAME_OPEN_VERDICT, &dropped);
	if (!f)
		return dropped ? -1 : 0;
	metrics_open_verdict(v->action);
	if (!f->awaiting_verdict && v->action == SLUICE_OPEN_IGNORE) {
		/* Late (the wait ran out and allowed the flow), but it still
		 * means what it says: the filter wants nothing more of it. */
		channel_forget(f);
		relay_filter_gone_quietly(f);
		return 0;
	}
	if (!f->awaiting_verdict) {
		send_error(c, f->id, SLUICE_ERR_STATE, SLUICE_FRAME_OPEN_VERDICT,
			   "no connect-time verdict is awaited for this flow");
		return 0;
	}
	if (v->action == SLUICE_OPEN_REDIRECT) {
		addr_from_wire(v->family, v->port, v->addr, &dst);
		if (!v->port) {
			send_error(c, f->id, SLUICE_ERR_INVALID, SLUICE_FRAME_OPEN_VERDICT,
				   "redirect to port 0");
			return 0;
		}
	}
	relay_open_verdict(f, v->action, &dst);
	return 0;
}

static int on_subscribe(struct client *c, const struct frame *fr)
{
	c->sub = fr->subscribe;
	c->sub_dirs = fr->subscribe.dirs;
	publish_wanted(c->ch);
	log_info("%s subscribes to %s%s%s, %s", c->label, c->sub_dirs & SLUICE_SUB_OUT ? "out" : "",
		 c->sub_dirs == (SLUICE_SUB_OUT | SLUICE_SUB_IN) ? " and " : "",
		 c->sub_dirs & SLUICE_SUB_IN ? "in" : "",
		 c->sub.nports ? "some ports" : "every port");
	return 0;
}

static int on_unexpected(struct client *c, const struct frame *f)
{
	client_drop(c, "sent a %s frame, which only the daemon sends", frame_type_name(f->type));
	return -1;
}

static const frame_handler handlers[SLUICE_FRAME_TYPE_MAX + 1] = {
	[SLUICE_FRAME_HELLO] = on_hello,
	[SLUICE_FRAME_OPEN] = on_unexpected,
	[SLUICE_FRAME_DATA] = on_unexpected,
	[SLUICE_FRAME_EOF] = on_unexpected,
	[SLUICE_FRAME_CLOSE] = on_unexpected,
	[SLUICE_FRAME_VERDICT] = on_verdict,
	[SLUICE_FRAME_OPEN_VERDICT] = on_open_verdict,
	[SLUICE_FRAME_ERROR] = on_unexpected,
	[SLUICE_FRAME_SUBSCRIBE] = on_subscribe,
	[SLUICE_FRAME_SHM] = on_unexpected,
	/* A filter's forward bytes are freed by its verdicts. */
	[SLUICE_FRAME_RELEASE] = on_unexpected,
};

static void client_read(struct client *c)
{
	size_t pos = 0;
	ssize_t n;

	n = recv(c->io.fd, c->in + c->in_len, client_inbuf(c->ch) - c->in_len, MSG_DONTWAIT);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			client_drop(c, "read: %s", strerror(errno));
		return;
	}
	if (n == 0) {
		if (c->in_len)
			client_drop(c, "it closed the channel in the middle of a frame (%zu bytes)",
				    c->in_len);
		else
			client_drop(c, "it closed the channel");
		return;
	}
	c->in_len += (size_t)n;

	while (!c->dead) {
		const char *why = NULL;
		struct frame f;
		size_t size;
		int r = frame_decode(c->in + pos, c->in_len - pos, c->ch->d->cfg.max_frame, &f,
				     &size, &why);

		if (r == 0)
			break;
		if (r < 0) {
			client_drop(c, "malformed frame: %s", why);
			return;
		}
		if (!c->ready && f.type != SLUICE_FRAME_HELLO) {
			client_drop(c, "sent %s before HELLO", frame_type_name(f.type));
			return;
		}
		pos += size;
		if (handlers[f.type](c, &f) < 0)
			return;
	}
	if (c->dead)
		return;
	memmove(c->in, c->in + pos, c->in_len - pos);
	c->in_len -= pos;
}

/*
 * Tells the filter how far we took replacement bytes from its ring. Not on
 * its own for every verdict, which would wake the filter once more per
 * chunk: with other frames going out anyway, or once a quarter of the ring
 * waits to be freed. A filter short of ring space meanwhile sends its bytes
 * inline, so nothing waits on this.
 */
static void release_rev(struct client *c)
{
	struct frame rel = { .type = SLUICE_FRAME_RELEASE, .release.pos = c->rev.tail };

	if (!c->rev_consumed ||
	    (!out_pending(&c->out) && c->rev.tail - c->rev_told < c->rev.size / 4))
		return;
	send_frame(c, &rel);
	c->rev_consumed = false;
	c->rev_told = c->rev.tail;
}

static void on_client(struct io *io, uint32_t revents)
{
	struct client *c = (struct client *)((char *)io - offsetof(struct client, io));

	if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
		client_read(c);
	if (!c->dead && (revents & EPOLLOUT))
		client_flush(c);
}

static void orphans_free(struct orphans *o)
{
	struct orphans **p;

	for (p = &o->ch->orphans; *p; p = &(*p)->next) {
		if (*p == o) {
			*p = o->next;
			break;
		}
	}
	timer_cancel(o->ch->d->loop, &o->timer);
	free(o);
}

static void on_grace_over(struct timer *t)
{
	struct orphans *o = (struct orphans *)((char *)t - offsetof(struct orphans, timer));
	unsigned n = o->count;
	struct flow *f;

	log_warn("filter %s did not come back within %u s; %u flows %s", o->name,
		 o->ch->d->cfg.grace_seconds, n,
		 o->ch->d->cfg.on_failure == FAIL_CLOSED ? "reset (fail-closed)"
							 : "continue unfiltered (fail-open)");
	while ((f = o->flows)) {
		orphan_unlink(f);
		relay_filter_gone(f);
	}
	orphans_free(o);
}

/* Moves c's flows to a new orphans record. Returns false if out of memory. */
static bool orphan_all(struct client *c)
{
	struct orphans *o = calloc(1, sizeof(*o));
	struct flow *f;

	if (!o)
		return false;
	o->ch = c->ch;
	snprintf(o->name, sizeof(o->name), "%s", c->name);
	o->uid = c->uid;
	while ((f = c->flows)) {
		flow_unlink(c, f);
		/* A connect-time verdict is not held over: the flow is allowed,
		 * as when the wait runs out. */
		if (f->awaiting_verdict)
			relay_open_verdict(f, SLUICE_OPEN_ALLOW, NULL);
		if (f->state == FLOW_DEAD)
			continue;
		f->orphans = o;
		f->filter_next = o->flows;
		if (o->flows)
			o->flows->filter_prev = f;
		o->flows = f;
		o->count++;
	}
	o->next = c->ch->orphans;
	c->ch->orphans = o;
	timer_arm(c->ch->d->loop, &o->timer, (uint64_t)c->ch->d->cfg.grace_seconds * 1000,
		  on_grace_over);
	return true;
}

/*
 * Gives a returning filter its flows back: each is opened again with the
 * offsets decided and offered so far, what is undecided is offered again
 * (in frames the filter accepts), and an EOF already seen is told.
 */
static void adopt(struct client *c, struct orphans *o)
{
	unsigned n = o->count;
	struct flow *f;

	while ((f = o->flows)) {
		struct frame fr = { .type = SLUICE_FRAME_OPEN, .flags = SLUICE_OPEN_F_RESUME };

		orphan_unlink(f);
		flow_link(c, f);
		/* Its id is older than this connection: late frames naming it
		 * must count as this filter's, not as ids never given. */
		if ((f->id >> FLOW_SLOT_BITS) < c->first_gen)
			c->first_gen = f->id >> FLOW_SLOT_BITS;
		fr.open.flow = f->id;
		addr_to_wire(&f->app_addr, &fr.open.family, &fr.open.src_port, fr.open.src);
		addr_to_wire(&f->dst_addr, &fr.open.family, &fr.open.dst_port, fr.open.dst);
		fr.open.window = c->ch->d->cfg.window;
		for (int d = 0; d < 2; d++) {
			fr.open.decided[d] = f->dir[d].st.decided;
			fr.open.offered[d] = f->dir[d].st.win.in;
		}
		if (f->dir[SLUICE_DIR_OUT].st.auto_pass || f->dir[SLUICE_DIR_OUT].st.shut)
			fr.flags |= SLUICE_OPEN_F_IN_ONLY;
		else if (f->dir[SLUICE_DIR_IN].st.auto_pass || f->dir[SLUICE_DIR_IN].st.shut)
			fr.flags |= SLUICE_OPEN_F_OUT_ONLY;
		send_frame(c, &fr);
		/* What it had not decided is offered again as the channel
		 * takes it (within --max-inflight, like any data). */
		for (int d = 0; d < 2; d++) {
			struct stream *st = &f->dir[d].st;

			if (st->auto_pass || st->shut)
				continue;
			relay_reoffer(f, d, st->src_eof);
		}
		relay_pump(f);
	}
	log_info("%s takes back %u flows", c->label, n);
	orphans_free(o);
}

static void client_drop(struct client *c, const char *fmt, ...)
{
	struct channel *ch = c->ch;
	char why[256];
	unsigned nflows = 0;
	struct flow *f;
	va_list ap;

	if (c->dead)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	c->dead = true;
	metrics_inc(M_FILTER_DROPS);
	/* Best effort, so that an ERROR frame explaining the drop gets there. */
	if (out_pending(&c->out))
		(void)!send(c->io.fd, c->out.data + c->out.off, out_pending(&c->out),
			    MSG_NOSIGNAL | MSG_DONTWAIT);
	io_remove(ch->d->loop, &c->io);
	close(c->io.fd);

	if (c->prev)
		c->prev->next = c->next;
	else
		ch->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (ch->rr == c)
		ch->rr = c->next;
	if (c->ready) {
		SHARED_SUB(ch->d->top->ready, 1);
		publish_wanted(ch);
	}

	/* Its flows go on without a filter (what it left undecided passes), or
	 * are reset, as --on-filter-failure says. */
	if (c->flows && c->ready && ch->d->cfg.grace_seconds && !ch->d->draining && orphan_all(c)) {
		log_warn("dropping filter client %u (%s): %s; its flows wait %u s for it to return",
			 c->id, c->name, why, ch->d->cfg.grace_seconds);
		c->dead_next = ch->dead;
		ch->dead = c;
		return;
	}
	while ((f = c->flows)) {
		flow_unlink(c, f);
		relay_filter_gone(f);
		nflows++;
	}
	if (nflows && ch->d->cfg.on_failure == FAIL_CLOSED)
		log_warn("dropping filter client %u (%s): %s; %u flows reset (fail-closed)", c->id,
			 c->ready ? c->name : "no HELLO", why, nflows);
	else if (nflows)
		log_warn("dropping filter client %u (%s): %s; %u flows continue unfiltered "
			 "(fail-open)",
			 c->id, c->ready ? c->name : "no HELLO", why, nflows);
	else
		log_warn("dropping filter client %u (%s): %s", c->id,
			 c->ready ? c->name : "no HELLO", why);
	c->dead_next = ch->dead;
	ch->dead = c;
}

static void client_free(struct client *c)
{
	SHARED_SUB(c->ch->d->nclients, 1);
	SHARED_SUB(c->ch->d->top->clients, 1);
	arena_unref(c->fwd);
	shm_unmap(&c->rev);
	free(c->in);
	free(c->out.data);
	free(c);
}

void channel_take(struct channel *ch, int fd, const struct ucred *cred)
{
	int size = CLIENT_SOCKBUF;
	struct client *c;

	c = calloc(1, sizeof(*c));
	if (c)
		c->in = malloc(client_inbuf(ch));
	if (!c || !c->in) {
		log_err("filter socket: no memory for a client");
		free(c);
		close(fd);
		SHARED_SUB(ch->d->nclients, 1);
		SHARED_SUB(ch->d->top->clients, 1);
		return;
	}
	/* Bigger buffers mean fewer wake-ups per byte on the data path; the
	 * FORCE variants pass the sysctl limits when we are root. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	c->ch = ch;
	c->id = SHARED_ADD(ch->d->top->next_client, 1);
	c->pid = cred->pid;
	c->uid = cred->uid;
	snprintf(c->label, sizeof(c->label), "filter %u", c->id);
	io_init(&c->io, fd, on_client);
	c->next = ch->clients;
	if (ch->clients)
		ch->clients->prev = c;
	ch->clients = c;
	if (ch->d->top->nworkers > 1)
		log_info("%s connected: pid %d, uid %u, worker %u", c->label, (int)c->pid,
			 (unsigned)c->uid, ch->d->index + 1);
	else
		log_info("%s connected: pid %d, uid %u", c->label, (int)c->pid, (unsigned)c->uid);
	if (io_set(ch->d->loop, &c->io, EPOLLIN) < 0)
		client_drop(c, "epoll: %s", strerror(errno));
}

/*
 * A filter has failed when it stops taking what is sent to it: frames or
 * shared-ring bytes wait for it and none of them has been consumed for the
 * verdict timeout. A filter that reads its frames but holds bytes on
 * purpose (a header still incomplete, a response to wait for) is alive and
 * keeps its flows; a stopped or stuck one is found as soon as anything is
 * sent to it.
 */
static bool hung(struct client *c, uint64_t now)
{
	uint64_t limit = (uint64_t)c->ch->d->cfg.verdict_timeout * 1000;
	int outq = 0;
	bool waiting;

	/* SIOCOUTQ: what the filter has not read of what we wrote. */
	if (ioctl(c->io.fd, SIOCOUTQ, &outq) < 0)
		outq = 0;
	waiting = outq > 0 || out_pending(&c->out);
	if (!waiting || outq != c->seen_outq || c->sent_total != c->seen_sent) {
		c->seen_outq = outq;
		c->seen_sent = c->sent_total;
		c->progress_ms = now;
		return false;
	}
	return now - c->progress_ms >= limit;
}

void channel_tick(struct channel *ch)
{
	uint64_t now = loop_now_ms();
	struct client *c, *next;

	for (c = ch->clients; c; c = next) {
		next = c->next;
		if (c->fwd)
			arena_tick(c->fwd);
		if (c->ready && hung(c, now))
			client_drop(c, "it read nothing sent to it for %u s (--verdict-timeout)",
				    ch->d->cfg.verdict_timeout);
	}
}

/* After each batch: send what the batch queued, free dropped clients. */
static void after_batch(void *arg)
{
	struct channel *ch = arg;
	struct client *c, *next;

	for (c = ch->clients; c; c = next) {
		next = c->next;
		if (!c->dead)
			release_rev(c);
		if (out_pending(&c->out) && !(c->io.events & EPOLLOUT))
			client_flush(c);
	}
	while ((c = ch->dead)) {
		ch->dead = c->dead_next;
		client_free(c);
	}
}

int channel_new(struct daemon *d, struct channel **ret_channel)
{
	struct channel *ch;
	int r;

	ch = calloc(1, sizeof(*ch));
	if (!ch)
		return -ENOMEM;
	ch->d = d;
	r = loop_defer(d->loop, after_batch, ch);
	if (r < 0) {
		free(ch);
		return r;
	}
	*ret_channel = ch;
	return 0;
}

void channel_free(struct channel *ch)
{
	if (!ch)
		return;
	while (ch->clients)
		client_drop(ch->clients, "the daemon is stopping");
	while (ch->orphans)
		on_grace_over(&ch->orphans->timer);
	after_batch(ch);
	free(ch);
}
