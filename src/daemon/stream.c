/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/protocol.h"
#include "stream.h"

enum seg_kind {
	SEG_RING,  /* source bytes passed unchanged, still in the ring */
	SEG_SKIP,  /* source bytes replaced or dropped */
	SEG_OWNED, /* bytes the filter supplied */
};

struct stream_seg {
	struct stream_seg *next;
	enum seg_kind kind;
	size_t len;
	size_t done; /* SEG_OWNED: bytes already written */
	uint8_t data[];
};

void stream_init(struct stream *s, uint32_t window)
{
	memset(s, 0, sizeof(*s));
	window_init(&s->win, window);
}

void stream_fini(struct stream *s)
{
	struct stream_seg *g, *next;

	for (g = s->head; g; g = next) {
		next = g->next;
		free(g);
	}
	s->head = s->tail = NULL;
	s->nsegs = 0;
	free(s->ring);
	s->ring = NULL;
}

static size_t ring_pos(const struct stream *s, uint64_t off)
{
	return (size_t)(off % s->win.limit);
}

int stream_read_iov(struct stream *s, struct iovec iov[2], size_t max)
{
	uint64_t space = window_space(&s->win);
	size_t pos, first;

	if (space > max)
		space = max;
	if (!space)
		return 0;
	if (!s->ring) {
		s->ring = malloc(s->win.limit);
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

/* Appends a segment of source bytes, merging with a tail of the same kind. */
static int push_source(struct stream *s, enum seg_kind kind, size_t len)
{
	struct stream_seg *g;

	if (!len)
		return 0;
	if (s->tail && s->tail->kind == kind) {
		s->tail->len += len;
		return 0;
	}
	if (s->nsegs >= STREAM_MAX_SEGS)
		return -ENOSPC;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->kind = kind;
	g->len = len;
	if (s->tail)
		s->tail->next = g;
	else
		s->head = g;
	s->tail = g;
	s->nsegs++;
	return 0;
}

static struct stream_seg *owned_new(const uint8_t *bytes, size_t len)
{
	struct stream_seg *g = malloc(sizeof(*g) + len);

	if (!g)
		return NULL;
	*g = (struct stream_seg){ .kind = SEG_OWNED, .len = len };
	memcpy(g->data, bytes, len);
	return g;
}

static void push_seg(struct stream *s, struct stream_seg *g)
{
	if (s->tail)
		s->tail->next = g;
	else
		s->head = g;
	s->tail = g;
	s->nsegs++;
}

/* Releases leading skipped bytes from the ring: nothing is written for them. */
static void consume_skips(struct stream *s)
{
	struct stream_seg *g;

	while ((g = s->head) && g->kind == SEG_SKIP) {
		window_give(&s->win, g->len);
		s->head = g->next;
		if (!s->head)
			s->tail = NULL;
		s->nsegs--;
		free(g);
	}
}

void stream_commit_read(struct stream *s, size_t n)
{
	if (window_take(&s->win, n) < 0)
		abort(); /* the caller read more than stream_read_iov() allowed */
	if (!s->auto_pass && !s->shut)
		return;
	/* Merging into the tail needs no allocation unless the kind changes;
	 * if it fails the bytes stay undecided and are decided on the next read. */
	if (push_source(s, s->shut ? SEG_SKIP : SEG_RING, s->win.in - s->decided) == 0)
		s->decided = s->win.in;
	consume_skips(s);
}

/*
 * Checks that the segments a verdict adds fit: n_new segments at most and
 * `extra` supplied bytes.
 */
static int check_room(const struct stream *s, unsigned n_new, size_t extra)
{
	if (s->nsegs + n_new > STREAM_MAX_SEGS)
		return -ENOSPC;
	if (extra > 2 * s->win.limit || s->win.extra + extra > 2 * s->win.limit)
		return -ENOSPC;
	return 0;
}

static int decide_source(struct stream *s, enum seg_kind kind, uint64_t to)
{
	int r = push_source(s, kind, to - s->decided);

	if (r < 0)
		return r;
	s->decided = to;
	return 0;
}

static int verdict_replace(struct stream *s, uint64_t from, uint64_t to, const uint8_t *bytes,
			   size_t len)
{
	struct stream_seg *g = NULL;
	int r;

	if (!off_before_eq(s->decided, from) || !off_before_eq(from, to) ||
	    !off_before_eq(to, s->win.in))
		return -ERANGE;
	r = check_room(s, 3, len);
	if (r < 0)
		return r;
	if (len) {
		g = owned_new(bytes, len);
		if (!g)
			return -ENOMEM;
	}
	/* check_room() reserved the segments, so these cannot fail. */
	decide_source(s, SEG_RING, from);
	decide_source(s, SEG_SKIP, to);
	if (g) {
		window_add_extra(&s->win, len, 2 * s->win.limit);
		push_seg(s, g);
	}
	consume_skips(s);
	return 0;
}

int stream_verdict(struct stream *s, uint8_t op, uint64_t from, uint64_t to,
		   const uint8_t *bytes, size_t len)
{
	int r;

	if (s->shut || s->auto_pass)
		return -EPIPE;

	switch (op) {
	case SLUICE_VERDICT_PASS:
	case SLUICE_VERDICT_DROP:
		if (!off_within(to, s->decided, s->win.in))
			return -ERANGE;
		r = check_room(s, 1, 0);
		if (r < 0)
			return r;
		decide_source(s, op == SLUICE_VERDICT_PASS ? SEG_RING : SEG_SKIP, to);
		consume_skips(s);
		return 0;
	case SLUICE_VERDICT_PEEK:
		if (off_before(to, s->decided))
			return -ERANGE;
		if (to - s->decided > s->win.limit)
			return -ENOSPC;
		s->peek_to = to;
		return 0;
	case SLUICE_VERDICT_REPLACE:
		return verdict_replace(s, from, to, bytes, len);
	case SLUICE_VERDICT_INJECT:
		return verdict_replace(s, s->decided, s->decided, bytes, len);
	case SLUICE_VERDICT_PASS_REST:
		stream_pass_all(s);
		return 0;
	case SLUICE_VERDICT_SHUTDOWN:
		/* What is undecided now will never be sent: FIN follows the
		 * decided bytes, and later source bytes are discarded. */
		r = check_room(s, 1, 0);
		if (r < 0)
			return r;
		decide_source(s, SEG_SKIP, s->win.in);
		consume_skips(s);
		s->shut = true;
		return 0;
	}
	return -EINVAL;
}

void stream_pass_all(struct stream *s)
{
	s->auto_pass = true;
	if (s->shut)
		return;
	/* On allocation failure the bytes are decided on the next read. */
	if (push_source(s, SEG_RING, s->win.in - s->decided) == 0)
		s->decided = s->win.in;
}

int stream_out_iov(struct stream *s, struct iovec *iov, int max)
{
	uint64_t cursor = s->win.out;
	struct stream_seg *g;
	int n = 0;

	consume_skips(s);
	for (g = s->head; g && n < max && g->kind != SEG_SKIP; g = g->next) {
		if (g->kind == SEG_OWNED) {
			iov[n++] = (struct iovec){ g->data + g->done, g->len - g->done };
			continue;
		}
		/* Ring bytes may wrap: up to two iovecs. */
		size_t pos = ring_pos(s, cursor), left = g->len;

		while (left && n < max) {
			size_t chunk = s->win.limit - pos;

			if (chunk > left)
				chunk = left;
			iov[n++] = (struct iovec){ s->ring + pos, chunk };
			left -= chunk;
			pos = 0;
		}
		cursor += g->len;
	}
	return n;
}

void stream_commit_write(struct stream *s, size_t n)
{
	struct stream_seg *g;

	s->written += n;
	while (n && (g = s->head)) {
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
		s->head = g->next;
		if (!s->head)
			s->tail = NULL;
		s->nsegs--;
		free(g);
		consume_skips(s);
	}
	if (n)
		abort(); /* more written than stream_out_iov() offered */
}

bool stream_out_pending(const struct stream *s)
{
	return s->head != NULL;
}

bool stream_fin_due(const struct stream *s)
{
	if (s->fin_sent || s->head)
		return false;
	if (s->shut)
		return true;
	return s->auto_pass && s->src_eof && s->decided == s->win.in;
}

bool stream_may_read(const struct stream *s)
{
	return !s->src_eof && window_space(&s->win) > 0;
}
