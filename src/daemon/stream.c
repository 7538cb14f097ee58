/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "sluice/protocol.h"
#include "stream.h"

/* Smallest supplied buffer, so that small injections share one. */
#define OWNED_MIN_CAP 4096

enum seg_kind {
	SEG_RING,  /* source bytes passed unchanged, still in the ring */
	SEG_OWNED, /* bytes the filter supplied, or small runs copied beside them */
};

struct stream_seg {
	struct stream_seg *next;
	enum seg_kind kind;
	size_t len;
	size_t skip; /* SEG_RING: source bytes to release after this run */
	size_t done; /* SEG_OWNED: bytes already written */
	size_t cap;  /* SEG_OWNED: bytes allocated in data */
	uint8_t *data;
};

/*
 * Rings are lent to directions only while they hold bytes: an idle flow
 * costs no buffer. Returned rings wait in a small pool for the next burst,
 * so that busy flows do not allocate and free a window's worth each time.
 * Per thread, like everything a flow touches.
 */
#define POOL_MAX 16

static __thread struct {
	void *rings[POOL_MAX];
	size_t size; /* all rings in the pool have this size */
	unsigned count;
} pool;

static uint8_t *ring_get(size_t size)
{
	if (pool.count && pool.size == size)
		return pool.rings[--pool.count];
	return malloc(size);
}

static void ring_put(uint8_t *ring, size_t size)
{
	if (pool.count && pool.size != size) {
		while (pool.count)
			free(pool.rings[--pool.count]);
	}
	if (pool.count == POOL_MAX) {
		free(ring);
		return;
	}
	pool.size = size;
	pool.rings[pool.count++] = ring;
}

void stream_pool_drain(void)
{
	while (pool.count)
		free(pool.rings[--pool.count]);
}

static void ring_return(struct stream *s)
{
	if (s->ring_arena)
		arena_put(s->ring_arena, s->ring);
	else
		ring_put(s->ring, s->win.limit);
	s->ring = NULL;
	s->ring_arena = NULL;
}

/* Gives the ring back once it holds nothing. */
static void ring_trim(struct stream *s)
{
	if (s->ring && s->win.in == s->win.out)
		ring_return(s);
}

void stream_init(struct stream *s, uint32_t window)
{
	memset(s, 0, sizeof(*s));
	window_init(&s->win, window);
}

static void seg_free(struct stream_seg *g)
{
	free(g->data);
	free(g);
}

void stream_fini(struct stream *s)
{
	struct stream_seg *g, *next;

	for (g = s->head; g; g = next) {
		next = g->next;
		seg_free(g);
	}
	s->head = s->tail = s->last_ring = NULL;
	s->nsegs = 0;
	if (s->ring)
		ring_return(s);
}

static size_t ring_pos(const struct stream *s, uint64_t off)
{
	return (size_t)(off % s->win.limit);
}

/* Passed runs shorter than this are copied when they follow supplied bytes. */
static size_t copy_threshold(const struct stream *s)
{
	size_t t = (size_t)(s->win.limit / 256);

	return t < 16384 ? 16384 : t;
}

int stream_read_iov(struct stream *s, struct iovec iov[2], size_t max, struct arena *arena)
{
	uint64_t space = window_space(&s->win);
	size_t pos, first;

	if (space > max)
		space = max;
	if (!space)
		return 0;
	if (!s->ring && arena) {
		s->ring = arena_get(arena);
		if (s->ring)
			s->ring_arena = arena;
	}
	if (!s->ring) {
		s->ring = ring_get(s->win.limit);
		if (!s->ring)
			return -ENOMEM;
	}
	pos = ring_pos(s, s->win.in);
	first = s->win.limit - pos;
	if (first >= space) {
		iov[0] = (struct iovec){ s->ring + pos, space };
		return 1;
	}
	iov[0] = (struct iovec){ s->ring + pos, first };
	iov[1] = (struct iovec){ s->ring, space - first };
	return 2;
}

static void push_seg(struct stream *s, struct stream_seg *g)
{
	if (s->tail)
		s->tail->next = g;
	else
		s->head = g;
	s->tail = g;
	s->nsegs++;
	if (g->kind == SEG_RING)
		s->last_ring = g;
}

static void pop_seg(struct stream *s)
{
	struct stream_seg *g = s->head;

	s->head = g->next;
	if (!s->head)
		s->tail = NULL;
	if (s->last_ring == g)
		s->last_ring = NULL;
	s->nsegs--;
	seg_free(g);
}

/*
 * Releases n source bytes that will not be written from the ring. They come
 * after every queued passed run in source order, so they are released with
 * the last one, or now if none is queued.
 */
static void skip_source(struct stream *s, uint64_t n)
{
	if (s->last_ring)
		s->last_ring->skip += n;
	else
		window_give(&s->win, n);
}

/* Makes room for n more bytes in the tail buffer, or a new one. The caller
 * has checked the extra limit. */
static struct stream_seg *owned_tail(struct stream *s, size_t n)
{
	struct stream_seg *g = s->tail;

	if (g && g->kind == SEG_OWNED) {
		if (g->len + n > g->cap) {
			size_t cap = g->cap * 2;
			uint8_t *p;

			if (cap < g->len + n)
				cap = g->len + n;
			p = realloc(g->data, cap);
			if (!p)
				return NULL;
			g->data = p;
			g->cap = cap;
		}
		return g;
	}
	g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->kind = SEG_OWNED;
	g->cap = n > OWNED_MIN_CAP ? n : OWNED_MIN_CAP;
	g->data = malloc(g->cap);
	if (!g->data) {
		free(g);
		return NULL;
	}
	push_seg(s, g);
	return g;
}

/* Copies source bytes [off, off + n) out of the ring. */
static void ring_copy(const struct stream *s, uint64_t off, uint8_t *dst, size_t n)
{
	size_t pos = ring_pos(s, off), first = s->win.limit - pos;

	if (first > n)
		first = n;
	memcpy(dst, s->ring + pos, first);
	memcpy(dst + first, s->ring, n - first);
}

/*
 * Decides the next n source bytes as passed; a short run may be copied if
 * `copy_room` bytes of output limit are spare. Returns 0 or -ENOMEM
 * (nothing decided then).
 */
static int pass_source_room(struct stream *s, uint64_t n, uint64_t copy_room)
{
	struct stream_seg *g = s->tail;

	if (!n)
		return 0;
	if (g && g->kind == SEG_RING && !g->skip) {
		g->len += n;
	} else if (g && n < copy_threshold(s) && n <= copy_room &&
		   window_add_extra(&s->win, n, 2 * s->win.limit) == 0) {
		/*
		 * A short run after supplied bytes, or after a run whose
		 * successors were dropped, cannot extend a run in the ring:
		 * copy it into a buffer instead, so that alternating small
		 * decisions make one buffer rather than a segment each.
		 */
		g = owned_tail(s, n);
		if (!g) {
			window_drop_extra(&s->win, n);
			return -ENOMEM;
		}
		ring_copy(s, s->decided, g->data + g->len, n);
		g->len += n;
		skip_source(s, n);
	} else {
		g = calloc(1, sizeof(*g));
		if (!g)
			return -ENOMEM;
		g->kind = SEG_RING;
		g->len = n;
		push_seg(s, g);
	}
	s->decided += n;
	return 0;
}

static int pass_source(struct stream *s, uint64_t n)
{
	return pass_source_room(s, n, UINT64_MAX);
}

static void drop_source(struct stream *s, uint64_t n)
{
	skip_source(s, n);
	s->decided += n;
	ring_trim(s);
}

/* Appends supplied bytes to the output. Returns 0, -ENOSPC or -ENOMEM. */
static int supply(struct stream *s, const uint8_t *bytes, size_t len)
{
	struct stream_seg *g;
	int r;

	if (!len)
		return 0;
	r = window_add_extra(&s->win, len, 2 * s->win.limit);
	if (r < 0)
		return -ENOSPC;
	g = owned_tail(s, len);
	if (!g) {
		window_drop_extra(&s->win, len);
		return -ENOMEM;
	}
	memcpy(g->data + g->len, bytes, len);
	g->len += len;
	return 0;
}

/* Releases what was written: leading runs with their skips, and buffers. */
static void consume_written(struct stream *s)
{
	struct stream_seg *g;

	while ((g = s->head)) {
		if (g->kind == SEG_RING && !g->len)
			window_give(&s->win, g->skip);
		else if (!(g->kind == SEG_OWNED && g->done == g->len))
			break;
		pop_seg(s);
	}
}

void stream_commit_read(struct stream *s, size_t n)
{
	if (window_take(&s->win, n) < 0)
		abort(); /* the caller read more than stream_read_iov() allowed */
	if (s->shut) {
		drop_source(s, s->win.in - s->decided);
		ring_trim(s);
		return;
	}
	/* If no memory is left to queue them, the bytes stay undecided and
	 * are decided with the next read or write. */
	if (s->auto_pass)
		pass_source(s, s->win.in - s->decided);
}

int stream_verdict(struct stream *s, uint8_t op, uint64_t from, uint64_t to, const uint8_t *bytes,
		   size_t len)
{
	int r;

	if (s->shut || s->auto_pass)
		return -EPIPE;

	switch (op) {
	case SLUICE_VERDICT_PASS:
	case SLUICE_VERDICT_DROP:
		if (!off_within(to, s->decided, s->win.in))
			return -ERANGE;
		if (op == SLUICE_VERDICT_DROP) {
			drop_source(s, to - s->decided);
			return 0;
		}
		return pass_source(s, to - s->decided);
	case SLUICE_VERDICT_PEEK:
		if (off_before(to, s->decided))
			return -ERANGE;
		if (to - s->decided > s->win.limit)
			return -ENOSPC;
		s->peek_to = to;
		s->peek_armed = true;
		return 0;
	case SLUICE_VERDICT_INJECT:
		from = to = s->decided;
		/* fall through */
	case SLUICE_VERDICT_REPLACE:
		if (!off_before_eq(s->decided, from) || !off_before_eq(from, to) ||
		    !off_before_eq(to, s->win.in))
			return -ERANGE;
		/* Check the supplied bytes first, so that a refusal changes
		 * nothing. (The gap before `from` is only copied if there is
		 * room; otherwise it stays in the ring.) */
		if (s->win.extra + len > 2 * s->win.limit)
			return -ENOSPC;
		r = pass_source_room(s, from - s->decided, 2 * s->win.limit - s->win.extra - len);
		if (r < 0)
			return r;
		r = supply(s, bytes, len);
		if (r < 0)
			return r; /* only -ENOMEM here; the gap stays passed */
		drop_source(s, to - from);
		return 0;
	case SLUICE_VERDICT_PASS_REST:
		stream_pass_all(s);
		return 0;
	case SLUICE_VERDICT_SHUTDOWN:
		/* What is undecided now will never be sent: FIN follows the
		 * decided bytes, and later source bytes are discarded. */
		drop_source(s, s->win.in - s->decided);
		s->shut = true;
		return 0;
	}
	return -EINVAL;
}

int stream_range_iov(const struct stream *s, uint64_t from, struct iovec iov[2], size_t max,
		     size_t *ret_len)
{
	uint64_t n = off_before(from, s->decided) ? 0 : s->win.in - from;
	size_t pos, first;

	if (n > max)
		n = max;
	*ret_len = (size_t)n;
	if (!n)
		return 0;
	pos = ring_pos(s, from);
	first = s->win.limit - pos;
	if (first >= n) {
		iov[0] = (struct iovec){ s->ring + pos, (size_t)n };
		return 1;
	}
	iov[0] = (struct iovec){ s->ring + pos, first };
	iov[1] = (struct iovec){ s->ring, (size_t)n - first };
	return 2;
}

void stream_pass_all(struct stream *s)
{
	s->auto_pass = true;
	if (!s->shut)
		pass_source(s, s->win.in - s->decided);
}

int stream_out_iov(struct stream *s, struct iovec *iov, int max)
{
	uint64_t cursor = s->win.out;
	struct stream_seg *g;
	int n = 0;

	/* Bytes undecided for want of memory earlier get another chance. */
	if (s->auto_pass && !s->shut && s->decided != s->win.in)
		pass_source(s, s->win.in - s->decided);
	for (g = s->head; g && n < max; g = g->next) {
		if (g->kind == SEG_OWNED) {
			if (g->len > g->done)
				iov[n++] = (struct iovec){ g->data + g->done, g->len - g->done };
			continue;
		}
		/* A run in the ring may wrap: up to two iovecs. */
		size_t pos = ring_pos(s, cursor), left = g->len;

		while (left && n < max) {
			size_t chunk = s->win.limit - pos;

			if (chunk > left)
				chunk = left;
			iov[n++] = (struct iovec){ s->ring + pos, chunk };
			left -= chunk;
			pos = 0;
		}
		cursor += g->len + g->skip;
	}
	return n;
}

void stream_commit_write(struct stream *s, size_t n)
{
	struct stream_seg *g;

	s->written += n;
	for (g = s->head; n && g; g = g->next) {
		size_t left = g->kind == SEG_OWNED ? g->len - g->done : g->len;
		size_t k = n < left ? n : left;

		if (g->kind == SEG_RING) {
			window_give(&s->win, k);
			g->len -= k;
		} else {
			window_drop_extra(&s->win, k);
			g->done += k;
		}
		n -= k;
		if (k < left)
			break;
	}
	if (n)
		abort(); /* more written than stream_out_iov() offered */
	consume_written(s);
	ring_trim(s);
}

bool stream_out_pending(const struct stream *s)
{
	for (const struct stream_seg *g = s->head; g; g = g->next)
		if (g->kind == SEG_RING ? g->len != 0 : g->len != g->done)
			return true;
	return false;
}

bool stream_fin_due(const struct stream *s)
{
	if (s->fin_sent || stream_out_pending(s))
		return false;
	if (s->shut)
		return true;
	return s->auto_pass && s->src_eof && s->decided == s->win.in;
}

bool stream_may_read(const struct stream *s)
{
	return !s->src_eof && window_space(&s->win) > 0;
}
