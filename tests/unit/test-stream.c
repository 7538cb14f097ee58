/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/daemon/stream.c, the verdict application logic of one
 * direction. Each test drives a stream as the daemon does: bytes are read
 * into the iovecs stream_read_iov() gives, verdicts are applied, and the
 * output is collected through stream_out_iov() / stream_commit_write(),
 * often one byte at a time, and compared with the exact bytes expected.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/protocol.h"
#include "stream.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The bound on pending output segments that stream.h and docs/protocol.md give. */
#define SEGS_BOUND (2 * 256 + 1)

/* What the sink received so far. */
struct sink {
	uint8_t buf[1 << 20];
	size_t len;
};

static struct sink sink;

/*
 * Reads src[0..n) into the stream, at most `chunk` bytes per read, filling
 * every iovec given. Returns the bytes taken: fewer than n when the window
 * fills up.
 */
static size_t feed_chunked(struct stream *s, const void *src, size_t n, size_t chunk)
{
	const uint8_t *p = src;
	size_t done = 0;

	while (done < n) {
		size_t want = n - done < chunk ? n - done : chunk, got = 0;
		struct iovec iov[2];
		int cnt = stream_read_iov(s, iov, want, NULL);

		assert_true(cnt >= 0 && cnt <= 2);
		if (cnt == 0)
			break;
		for (int i = 0; i < cnt; i++) {
			assert_true(iov[i].iov_len > 0);
			assert_true(got + iov[i].iov_len <= want);
			memcpy(iov[i].iov_base, p + done + got, iov[i].iov_len);
			got += iov[i].iov_len;
		}
		stream_commit_read(s, got);
		done += got;
	}
	return done;
}

static size_t feed(struct stream *s, const char *text)
{
	return feed_chunked(s, text, strlen(text), SIZE_MAX);
}

/* Feeds text and asserts the window took all of it. */
static void feed_all(struct stream *s, const char *text)
{
	assert_int_equal(feed(s, text), strlen(text));
}

/*
 * One write to the sink of at most `max` bytes of what is ready, as a
 * writev() to a socket with little room would take. Returns the bytes
 * written, 0 when nothing is ready.
 */
static size_t write_once(struct stream *s, size_t max)
{
	struct iovec iov[8];
	int cnt = stream_out_iov(s, iov, ARRAY_SIZE(iov));
	size_t k = 0;

	assert_true(cnt >= 0 && cnt <= (int)ARRAY_SIZE(iov));
	if (cnt == 0)
		return 0;
	assert_true(stream_out_pending(s));
	for (int i = 0; i < cnt && k < max; i++) {
		size_t n = iov[i].iov_len;

		assert_true(n > 0);
		if (n > max - k)
			n = max - k;
		assert_true(sink.len + n <= sizeof(sink.buf));
		memcpy(sink.buf + sink.len, iov[i].iov_base, n);
		sink.len += n;
		k += n;
	}
	stream_commit_write(s, k);
	return k;
}

/* Writes until nothing is ready, `step` bytes at most per write. Returns the bytes written. */
static size_t drain(struct stream *s, size_t step)
{
	size_t n, total = 0;

	while ((n = write_once(s, step)) > 0)
		total += n;
	return total;
}

/* Drains with the given step and asserts the sink got exactly `want` since the last check. */
static void expect_out_step(struct stream *s, const char *want, size_t step)
{
	size_t before = s->written - sink.len;

	drain(s, step);
	assert_int_equal(sink.len, strlen(want));
	assert_memory_equal(sink.buf, want, sink.len);
	assert_int_equal(s->written - before, sink.len);
	sink.len = 0;
}

/* The same, one byte per write: the hardest case for partial-write bookkeeping. */
static void expect_out(struct stream *s, const char *want)
{
	expect_out_step(s, want, 1);
}

static int pass(struct stream *s, uint64_t to)
{
	return stream_verdict(s, SLUICE_VERDICT_PASS, 0, to, NULL, 0);
}

static int drop(struct stream *s, uint64_t to)
{
	return stream_verdict(s, SLUICE_VERDICT_DROP, 0, to, NULL, 0);
}

static int peek(struct stream *s, uint64_t to)
{
	return stream_verdict(s, SLUICE_VERDICT_PEEK, 0, to, NULL, 0);
}

static int replace(struct stream *s, uint64_t from, uint64_t to, const char *text)
{
	return stream_verdict(s, SLUICE_VERDICT_REPLACE, from, to, (const uint8_t *)text,
			      strlen(text));
}

static int inject(struct stream *s, const char *text)
{
	return stream_verdict(s, SLUICE_VERDICT_INJECT, 0, 0, (const uint8_t *)text, strlen(text));
}

static int op(struct stream *s, uint8_t verdict_op)
{
	return stream_verdict(s, verdict_op, 0, 0, NULL, 0);
}

/* Asserts that the stream's visible state is byte for byte what it was. */
static void assert_unchanged(const struct stream *s, const struct stream *before)
{
	assert_memory_equal(s, before, sizeof(*s));
}

static int setup(void **state)
{
	struct stream *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	sink.len = 0;
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	struct stream *s = *state;

	stream_fini(s);
	assert_null(s->head);
	assert_null(s->ring);
	free(s);
	return 0;
}

/* Passed bytes come out unchanged and in order, however the passes are split. */
static void test_pass_in_pieces(void **state)
{
	struct stream *s = *state;

	stream_init(s, 64);
	feed_all(s, "hello, world");
	assert_int_equal(stream_undecided(s), 12);
	assert_false(stream_out_pending(s));
	expect_out(s, "");

	assert_int_equal(pass(s, 5), 0);
	assert_int_equal(stream_undecided(s), 7);
	expect_out(s, "hello");
	assert_int_equal(pass(s, 5), 0); /* to == decided: nothing new */
	expect_out(s, "");
	assert_int_equal(pass(s, 7), 0);
	assert_int_equal(pass(s, 12), 0);
	expect_out_step(s, ", world", SIZE_MAX);
	feed_all(s, "!!");
	assert_int_equal(pass(s, 14), 0);
	expect_out(s, "!!");

	assert_int_equal(s->written, 14);
	assert_int_equal(s->win.out, 14);
	assert_int_equal(window_used(&s->win), 0);
	assert_false(stream_out_pending(s));
	assert_false(stream_fin_due(s));
}

/* Replacement output may be longer, shorter or empty, and lands in order. */
static void test_replace(void **state)
{
	static const struct {
		uint64_t pass_first, from, to;
		const char *with, *want;
	} cases[] = {
		/* Growing, with the gap [0, 4) passed implicitly. */
		{ 0, 4, 6, "/index.html", "GET /index.html HTTP/1.0" },
		/* Shrinking, after an explicit pass up to `from`. */
		{ 4, 4, 6, "/", "GET / HTTP/1.0" },
		/* To empty: the same as a drop. */
		{ 4, 4, 6, "", "GET  HTTP/1.0" },
		/* An empty range: an insertion at `from`. */
		{ 0, 6, 6, "?q", "GET /a?q HTTP/1.0" },
		/* Everything, and from the very start. */
		{ 0, 0, 15, "x", "x" },
		/* Nothing passed but the gap; the tail after `to` by a later pass. */
		{ 2, 14, 15, "1", "GET /a HTTP/1.1" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct stream *s = *state;

		stream_init(s, 64);
		feed_all(s, "GET /a HTTP/1.0");
		assert_int_equal(pass(s, cases[i].pass_first), 0);
		assert_int_equal(replace(s, cases[i].from, cases[i].to, cases[i].with), 0);
		assert_int_equal(s->decided, cases[i].to);
		assert_int_equal(s->win.extra, strlen(cases[i].with));
		assert_int_equal(pass(s, 15), 0);
		expect_out(s, cases[i].want);
		assert_int_equal(s->win.extra, 0);
		assert_int_equal(window_used(&s->win), 0);
		stream_fini(s);
	}
}

/* Several replacements in a row, written in one go and byte by byte. */
static void test_replace_many(void **state)
{
	static const size_t steps[] = { 1, 2, 3, 7, SIZE_MAX };

	for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
		struct stream *s = *state;

		stream_init(s, 32);
		feed_all(s, "a=1&b=2&c=3");
		assert_int_equal(replace(s, 2, 3, "one"), 0);
		assert_int_equal(replace(s, 6, 7, "two"), 0);
		assert_int_equal(drop(s, 8), 0);
		assert_int_equal(replace(s, 10, 11, "three"), 0);
		expect_out_step(s, "a=one&b=twoc=three", steps[i]);
		assert_int_equal(window_used(&s->win), 0);
		stream_fini(s);
	}
}

/* Injected bytes go in at the decision point: at the start, the middle, the end. */
static void test_inject(void **state)
{
	struct stream *s = *state;

	stream_init(s, 64);
	assert_int_equal(inject(s, "[start]"), 0);
	expect_out(s, "[start]");

	feed_all(s, "hello world");
	assert_int_equal(inject(s, "<"), 0);
	assert_int_equal(pass(s, 5), 0);
	assert_int_equal(inject(s, "|mid|"), 0);
	assert_int_equal(inject(s, ""), 0);
	assert_int_equal(inject(s, "|"), 0);
	assert_int_equal(s->decided, 5);
	assert_int_equal(pass(s, 11), 0);
	assert_int_equal(inject(s, ">"), 0);
	expect_out(s, "<hello|mid|| world>");
	assert_int_equal(s->win.extra, 0);
	assert_int_equal(window_used(&s->win), 0);
}

/* Dropped bytes never reach the sink, and free their window at once. */
static void test_drop(void **state)
{
	struct stream *s = *state;

	stream_init(s, 32);
	feed_all(s, "secret:public:secret:tail");
	assert_int_equal(drop(s, 7), 0);
	/* Nothing is ahead of the dropped bytes: they leave the ring now. */
	assert_int_equal(s->win.out, 7);
	assert_false(stream_out_pending(s));
	assert_int_equal(pass(s, 14), 0);
	assert_int_equal(drop(s, 21), 0);
	assert_int_equal(pass(s, 25), 0);
	expect_out(s, "public:tail");
	assert_int_equal(window_used(&s->win), 0);
}

/* A peek may ask for up to a window beyond the decided offset, not more. */
static void test_peek(void **state)
{
	struct stream *s = *state;
	struct stream before;

	stream_init(s, 16);
	feed_all(s, "0123456789");
	assert_int_equal(peek(s, 12), 0);
	assert_int_equal(s->peek_to, 12);
	assert_int_equal(peek(s, 16), 0); /* beyond what was read, within the window */
	assert_int_equal(s->peek_to, 16);
	assert_int_equal(peek(s, 0), 0);

	memcpy(&before, s, sizeof(before));
	assert_int_equal(peek(s, 17), -ENOSPC);
	assert_unchanged(s, &before);
	assert_int_equal(peek(s, UINT64_MAX / 2), -ENOSPC);
	assert_unchanged(s, &before);

	assert_int_equal(pass(s, 4), 0);
	assert_int_equal(peek(s, 20), 0);
	memcpy(&before, s, sizeof(before));
	assert_int_equal(peek(s, 21), -ENOSPC);
	assert_unchanged(s, &before);
	assert_int_equal(peek(s, 3), -ERANGE);
	assert_unchanged(s, &before);
	assert_int_equal(peek(s, UINT64_MAX), -ERANGE);
	assert_unchanged(s, &before);

	/* A peek decides nothing. */
	assert_int_equal(stream_undecided(s), 6);
	expect_out(s, "0123");
}

/*
 * Offsets before the decision point or beyond what was read are -ERANGE,
 * for every operation that takes them, and leave the stream unchanged.
 */
static void test_bad_offsets(void **state)
{
	static const struct {
		uint8_t op;
		uint64_t from, to;
	} cases[] = {
		{ SLUICE_VERDICT_PASS, 0, 3 },
		{ SLUICE_VERDICT_PASS, 0, 0 },
		{ SLUICE_VERDICT_PASS, 0, 11 },
		{ SLUICE_VERDICT_PASS, 0, UINT64_MAX },
		{ SLUICE_VERDICT_PASS, 0, 4 + (1ull << 63) },
		{ SLUICE_VERDICT_DROP, 0, 3 },
		{ SLUICE_VERDICT_DROP, 0, 11 },
		{ SLUICE_VERDICT_DROP, 0, UINT64_MAX },
		{ SLUICE_VERDICT_REPLACE, 3, 5 }, /* from backwards */
		{ SLUICE_VERDICT_REPLACE, 3, 3 },
		{ SLUICE_VERDICT_REPLACE, 5, 11 },  /* to beyond */
		{ SLUICE_VERDICT_REPLACE, 11, 11 }, /* both beyond */
		{ SLUICE_VERDICT_REPLACE, 6, 5 },   /* reversed */
		{ SLUICE_VERDICT_REPLACE, 10, 4 },
		{ SLUICE_VERDICT_REPLACE, UINT64_MAX, 5 },
		{ SLUICE_VERDICT_PEEK, 0, 3 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct stream *s = *state;
		struct stream before;

		stream_init(s, 32);
		feed_all(s, "0123456789");
		assert_int_equal(replace(s, 2, 3, "two"), 0);
		assert_int_equal(pass(s, 4), 0);
		memcpy(&before, s, sizeof(before));
		if (stream_verdict(s, cases[i].op, cases[i].from, cases[i].to,
				   (const uint8_t *)"new", 3) != -ERANGE)
			fail_msg("case %zu: op %u [%llu, %llu) not -ERANGE", i, cases[i].op,
				 (unsigned long long)cases[i].from,
				 (unsigned long long)cases[i].to);
		assert_unchanged(s, &before);
		assert_int_equal(pass(s, 10), 0);
		expect_out(s, "01two3456789");
		stream_fini(s);
	}
}

/* Operations that are not stream verdicts are -EINVAL and change nothing. */
static void test_bad_ops(void **state)
{
	static const uint8_t ops[] = { 0, SLUICE_VERDICT_RESET, SLUICE_VERDICT_OP_MAX + 1, 255 };
	struct stream *s = *state;

	stream_init(s, 32);
	feed_all(s, "abc");
	assert_int_equal(pass(s, 1), 0);
	for (size_t i = 0; i < ARRAY_SIZE(ops); i++) {
		struct stream before;

		memcpy(&before, s, sizeof(before));
		assert_int_equal(stream_verdict(s, ops[i], 1, 2, (const uint8_t *)"x", 1), -EINVAL);
		assert_unchanged(s, &before);
	}
	assert_int_equal(pass(s, 3), 0);
	expect_out(s, "abc");
}

/* Every verdict operation, for checking that none is taken any more. */
static void assert_verdicts_refused(struct stream *s, int err)
{
	static const uint8_t ops[] = { SLUICE_VERDICT_PASS,    SLUICE_VERDICT_PEEK,
				       SLUICE_VERDICT_REPLACE, SLUICE_VERDICT_INJECT,
				       SLUICE_VERDICT_DROP,    SLUICE_VERDICT_PASS_REST,
				       SLUICE_VERDICT_SHUTDOWN };

	for (size_t i = 0; i < ARRAY_SIZE(ops); i++) {
		struct stream before;

		memcpy(&before, s, sizeof(before));
		assert_int_equal(
			stream_verdict(s, ops[i], s->decided, s->decided, (const uint8_t *)"x", 1),
			err);
		assert_unchanged(s, &before);
	}
}

/*
 * pass_rest decides what was read as passed, after the decided output, and
 * every later read passes by itself; verdicts are then -EPIPE.
 */
static void test_pass_rest(void **state)
{
	struct stream *s = *state;

	stream_init(s, 16);
	feed_all(s, "abcdef");
	assert_int_equal(replace(s, 1, 2, "B"), 0);
	assert_int_equal(op(s, SLUICE_VERDICT_PASS_REST), 0);
	assert_true(s->auto_pass);
	assert_int_equal(stream_undecided(s), 0);
	assert_verdicts_refused(s, -EPIPE);
	feed_all(s, "ghij");
	assert_int_equal(stream_undecided(s), 0);
	expect_out(s, "aBcdefghij");

	/* Many rounds through a small window pass with no verdict at all. */
	for (int round = 0; round < 10; round++) {
		assert_int_equal(feed(s, "0123456789abcdefXYZ"), 16);
		assert_int_equal(feed(s, "more"), 0);
		expect_out_step(s, "0123456789abcdef", 5);
	}
	assert_false(stream_fin_due(s));
}

/* stream_pass_all() (fail-open) does the same as a pass_rest verdict. */
static void test_pass_all(void **state)
{
	struct stream *s = *state;

	stream_init(s, 16);
	feed_all(s, "abcdef");
	assert_int_equal(inject(s, ">"), 0);
	assert_int_equal(drop(s, 2), 0);
	stream_pass_all(s);
	assert_int_equal(stream_undecided(s), 0);
	assert_verdicts_refused(s, -EPIPE);
	feed_all(s, "gh");
	expect_out(s, ">cdefgh");
	stream_pass_all(s); /* again: harmless */
	feed_all(s, "i");
	expect_out(s, "i");
}

/*
 * shutdown discards what is undecided and everything read later; the FIN
 * is due once the decided output is written, and verdicts are -EPIPE.
 */
static void test_shutdown(void **state)
{
	struct stream *s = *state;

	stream_init(s, 16);
	feed_all(s, "keep|discard");
	assert_int_equal(pass(s, 4), 0);
	assert_int_equal(inject(s, "!"), 0);
	assert_int_equal(op(s, SLUICE_VERDICT_SHUTDOWN), 0);
	assert_true(s->shut);
	assert_int_equal(stream_undecided(s), 0);
	assert_verdicts_refused(s, -EPIPE);

	assert_false(stream_fin_due(s));
	expect_out(s, "keep!");
	assert_true(stream_fin_due(s));

	/* Later reads are discarded and release their window at once. */
	for (int round = 0; round < 5; round++) {
		assert_int_equal(feed(s, "0123456789abcdefghij"), 20);
		assert_int_equal(window_used(&s->win), 0);
		expect_out(s, "");
		assert_true(stream_fin_due(s));
	}
	assert_verdicts_refused(s, -EPIPE);
	stream_pass_all(s);
	feed_all(s, "x");
	expect_out(s, "");
	assert_true(stream_fin_due(s));

	s->fin_sent = true;
	assert_false(stream_fin_due(s));
}

/* The FIN becomes due at the exact byte that empties the output. */
static void test_shutdown_fin_after_last_byte(void **state)
{
	struct stream *s = *state;

	stream_init(s, 16);
	feed_all(s, "abcdefgh");
	assert_int_equal(pass(s, 3), 0);
	assert_int_equal(op(s, SLUICE_VERDICT_SHUTDOWN), 0);
	/* Reads while output is pending are discarded too, behind it. */
	feed_all(s, "ijkl");
	for (int i = 0; i < 3; i++) {
		assert_false(stream_fin_due(s));
		assert_true(stream_out_pending(s));
		assert_int_equal(write_once(s, 1), 1);
	}
	assert_false(stream_out_pending(s));
	assert_true(stream_fin_due(s));
	assert_int_equal(window_used(&s->win), 0);
	expect_out(s, "abc");
}

/* A shutdown with nothing pending makes the FIN due at once. */
static void test_shutdown_idle(void **state)
{
	struct stream *s = *state;

	stream_init(s, 16);
	assert_false(stream_fin_due(s));
	assert_int_equal(op(s, SLUICE_VERDICT_SHUTDOWN), 0);
	assert_true(stream_fin_due(s));
	assert_int_equal(op(s, SLUICE_VERDICT_SHUTDOWN), -EPIPE);
}

/*
 * With auto_pass, the FIN is due when the source has ended and every byte
 * read has been written, not before.
 */
static void test_fin_auto_pass_eof(void **state)
{
	struct stream *s = *state;

	stream_init(s, 16);
	stream_pass_all(s);
	feed_all(s, "last words");
	assert_false(stream_fin_due(s));
	s->src_eof = true;
	assert_false(stream_may_read(s));
	assert_false(stream_fin_due(s));
	assert_int_equal(write_once(s, 9), 9);
	assert_false(stream_fin_due(s));
	assert_int_equal(write_once(s, 9), 1);
	assert_true(stream_fin_due(s));
	expect_out(s, "last words");

	/* Without the source's FIN there is nothing to forward. */
	stream_fini(s);
	stream_init(s, 16);
	stream_pass_all(s);
	feed_all(s, "abc");
	expect_out(s, "abc");
	assert_false(stream_fin_due(s));
	s->src_eof = true;
	assert_true(stream_fin_due(s));
	s->fin_sent = true;
	assert_false(stream_fin_due(s));
}

/*
 * Reading stops when the ring holds a window of bytes, decided or not, and
 * resumes only as bytes reach the sink; filter-made bytes count too.
 */
static void test_window_backpressure(void **state)
{
	struct stream *s = *state;
	struct iovec iov[2];

	stream_init(s, 16);
	assert_true(stream_may_read(s));
	assert_int_equal(feed(s, "0123456789abcdefOVER"), 16);
	assert_false(stream_may_read(s));
	assert_int_equal(stream_read_iov(s, iov, 100, NULL), 0);

	/* Deciding does not free the window; writing does. */
	assert_int_equal(pass(s, 8), 0);
	assert_int_equal(stream_read_iov(s, iov, 100, NULL), 0);
	expect_out_step(s, "01234567", 3);
	assert_true(stream_may_read(s));
	assert_int_equal(feed(s, "ghijklmnopq"), 8);
	assert_int_equal(stream_read_iov(s, iov, 100, NULL), 0);

	/* A drop frees the window without a write. */
	assert_int_equal(drop(s, 12), 0);
	assert_int_equal(window_space(&s->win), 4);
	assert_int_equal(pass(s, 24), 0);
	expect_out(s, "cdefghijklmn");

	/* Filter-made bytes held for the sink count against the window. */
	feed_all(s, "012345");
	assert_int_equal(inject(s, "0123456789"), 0);
	assert_int_equal(window_space(&s->win), 0);
	assert_false(stream_may_read(s));
	assert_int_equal(stream_read_iov(s, iov, 100, NULL), 0);
	assert_int_equal(pass(s, 30), 0);
	expect_out(s, "0123456789012345");
	assert_int_equal(window_space(&s->win), 16);

	/* `max` bounds a read; 0 offers nothing. At offset 30 the ring wraps. */
	assert_int_equal(stream_read_iov(s, iov, 0, NULL), 0);
	assert_int_equal(stream_read_iov(s, iov, 3, NULL), 2);
	assert_int_equal(iov[0].iov_len, 2);
	assert_int_equal(iov[1].iov_len, 1);
	assert_ptr_equal(iov[1].iov_base, s->ring);
	/* A short read commits less than was offered. */
	memcpy(iov[0].iov_base, "XY", 2);
	stream_commit_read(s, 2);
	assert_int_equal(s->win.in, 32);
	assert_int_equal(pass(s, 32), 0);
	expect_out(s, "XY");
}

/* Source byte at an offset: a pattern that does not repeat within a window. */
static uint8_t src_byte(uint64_t off)
{
	return (uint8_t)(off * 7 + off / 251);
}

/* A small deterministic generator, so that a failure can be replayed. */
static uint32_t rnd(uint64_t *seed)
{
	*seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(*seed >> 33);
}

static uint64_t rnd_between(uint64_t *seed, uint64_t lo, uint64_t hi)
{
	return lo + rnd(seed) % (hi - lo + 1);
}

/*
 * A model of the output: every verdict appends what it decides, and the
 * sink must receive exactly that, in order.
 */
struct model {
	uint8_t *want;
	size_t len, cap, checked;
};

static void model_add(struct model *m, const uint8_t *p, size_t n)
{
	if (m->len + n > m->cap) {
		m->cap = (m->len + n) * 2;
		m->want = realloc(m->want, m->cap);
		assert_non_null(m->want);
	}
	memcpy(m->want + m->len, p, n);
	m->len += n;
}

static void model_add_source(struct model *m, uint64_t from, uint64_t to)
{
	for (uint64_t off = from; off < to; off++) {
		uint8_t b = src_byte(off);

		model_add(m, &b, 1);
	}
}

/* Compares what the sink got since the last call with the model. */
static void model_check(struct model *m)
{
	assert_true(m->checked + sink.len <= m->len);
	assert_memory_equal(sink.buf, m->want + m->checked, sink.len);
	m->checked += sink.len;
	sink.len = 0;
}

/* Counts of what a random run exercised. */
struct run_stats {
	unsigned split_reads, split_writes, refused, short_reads;
	unsigned max_segs;
};

/*
 * Random reads (some committed short), verdicts of every kind and partial
 * writes through a ring of `window` bytes, with the sink checked against
 * the model after every round. Supplied bytes are at most max_bytes long.
 */
static void random_run(struct stream *s, uint32_t window, size_t max_read, size_t max_write,
		       size_t max_bytes, int rounds, uint64_t seed, struct run_stats *st)
{
	struct model m = { 0 };
	uint8_t *bytes = malloc(max_bytes);
	uint64_t src = 0;

	assert_non_null(bytes);
	memset(st, 0, sizeof(*st));
	stream_init(s, window);
	for (int round = 0; round < rounds; round++) {
		/* Read some bytes, sometimes committing fewer than offered. */
		struct iovec iov[8];
		int cnt = stream_read_iov(s, iov, rnd_between(&seed, 1, max_read), NULL);
		size_t got = 0;

		assert_true(cnt >= 0 && cnt <= 2);
		st->split_reads += cnt == 2;
		for (int i = 0; i < cnt; i++)
			for (size_t j = 0; j < iov[i].iov_len; j++)
				((uint8_t *)iov[i].iov_base)[j] = src_byte(src + got++);
		if (got && rnd(&seed) % 4 == 0) {
			got = rnd_between(&seed, 0, got);
			st->short_reads++;
		}
		stream_commit_read(s, got);
		src += got;
		assert_int_equal(s->win.in, src);

		/* Decide something. */
		uint64_t d = s->decided, extra = s->win.extra;
		uint64_t to = rnd_between(&seed, d, src);
		uint64_t from = rnd_between(&seed, d, to);
		size_t len = rnd_between(&seed, 0, max_bytes);
		uint8_t op = (uint8_t)(rnd(&seed) % 5);
		struct stream before;
		int r;

		for (size_t i = 0; i < len; i++)
			bytes[i] = (uint8_t)(0x80 | rnd(&seed));
		memcpy(&before, s, sizeof(before));
		switch (op) {
		case 0:
			/* A pass never fails on the output limit. */
			assert_int_equal(pass(s, to), 0);
			model_add_source(&m, d, to);
			break;
		case 1:
			assert_int_equal(drop(s, to), 0);
			break;
		case 2:
		case 3:
			if (op == 3)
				from = to = d;
			r = stream_verdict(s,
					   op == 2 ? SLUICE_VERDICT_REPLACE : SLUICE_VERDICT_INJECT,
					   from, to, bytes, len);
			/* The documented rule: pending + bytes over 2 x W. */
			if (extra + len > 2 * (uint64_t)window) {
				assert_int_equal(r, -ENOSPC);
				assert_unchanged(s, &before);
				st->refused++;
				break;
			}
			assert_int_equal(r, 0);
			model_add_source(&m, d, from);
			model_add(&m, bytes, len);
			break;
		case 4:
			assert_int_equal(peek(s, d + rnd_between(&seed, 0, window)), 0);
			break;
		}
		if (s->nsegs > st->max_segs)
			st->max_segs = s->nsegs;

		/* Write some of what is ready, in pieces; note runs that wrap. */
		cnt = stream_out_iov(s, iov, ARRAY_SIZE(iov));
		for (int i = 0; i + 1 < cnt; i++)
			st->split_writes += (uint8_t *)iov[i].iov_base + iov[i].iov_len ==
						    s->ring + s->win.limit &&
					    iov[i + 1].iov_base == s->ring;
		for (unsigned k = rnd(&seed) % 4; k > 0; k--)
			write_once(s, rnd_between(&seed, 1, max_write));
		model_check(&m);

		assert_true(s->win.in - s->win.out <= window);
		assert_true(s->win.extra <= 2 * (uint64_t)window);
		assert_true(off_within(s->decided, s->win.out, s->win.in));
		assert_int_equal(s->written, m.checked);
	}
	/* Fail open: everything left passes and is written. */
	uint64_t d = s->decided;

	stream_pass_all(s);
	model_add_source(&m, d, src);
	drain(s, SIZE_MAX);
	model_check(&m);
	assert_int_equal(m.checked, m.len);
	assert_int_equal(window_used(&s->win), 0);
	assert_false(stream_out_pending(s));
	s->src_eof = true;
	assert_true(stream_fin_due(s));
	free(m.want);
	free(bytes);
}

/*
 * Many rounds through a 16-byte ring, so that reads, writes and copies out
 * of the ring wrap around it at every position: the output is always
 * exactly what the verdicts decided.
 */
static void test_ring_wrap(void **state)
{
	struct run_stats st;

	random_run(*state, 16, 16, 6, 8, 20000, 0x5eed, &st);
	assert_true(st.split_reads > 100);
	assert_true(st.split_writes > 100);
	assert_true(st.refused > 0);
	assert_true(st.short_reads > 100);
}

/*
 * The same with a 64 KiB window, where passed runs of 16 KiB and more
 * after supplied bytes stay in the ring instead of being copied.
 */
static void test_random_large(void **state)
{
	struct run_stats st;

	random_run(*state, 65536, 40000, 30000, 3000, 400, 0xb16, &st);
	assert_true(st.split_reads > 10);
	assert_true(st.split_writes > 10);
	assert_true(st.max_segs <= SEGS_BOUND);
}

/*
 * Supplied and copied bytes pending for the sink are limited to 2 x window
 * (docs/protocol.md, "Limits on filter output"): a REPLACE or INJECT that
 * would pass it is -ENOSPC and changes nothing; the gap it passes
 * implicitly is not counted, and a PASS never fails on it.
 */
static void test_output_limit(void **state)
{
	static char big[34];
	struct stream *s = *state;
	struct stream before;

	memset(big, 'B', 33);
	stream_init(s, 16);
	feed_all(s, "abcd");

	memcpy(&before, s, sizeof(before));
	assert_int_equal(replace(s, 0, 4, big), -ENOSPC); /* 33 bytes */
	assert_unchanged(s, &before);
	assert_int_equal(inject(s, big), -ENOSPC);
	assert_unchanged(s, &before);
	big[32] = '\0';

	/* The gap before `from` is not counted: it stays in the ring when
	 * copying it would pass the limit. */
	assert_int_equal(replace(s, 1, 2, big), 0); /* exactly 32, after a gap of 1 */
	assert_int_equal(s->win.extra, 32);
	memcpy(&before, s, sizeof(before));
	assert_int_equal(inject(s, "x"), -ENOSPC);
	assert_unchanged(s, &before);
	assert_int_equal(replace(s, 2, 3, "y"), -ENOSPC);
	assert_unchanged(s, &before);
	/* Output that makes no bytes is still fine. */
	assert_int_equal(replace(s, 2, 3, ""), 0);
	/* So is a pass: the run stays in the ring rather than be copied. */
	assert_int_equal(pass(s, 4), 0);
	assert_int_equal(s->win.extra, 32);

	/* Writing some of the pending output makes room again, exactly. */
	assert_int_equal(write_once(s, 11), 11);
	assert_int_equal(s->win.extra, 22);
	assert_int_equal(inject(s, "0123456789"), 0);
	memcpy(&before, s, sizeof(before));
	assert_int_equal(inject(s, "!"), -ENOSPC);
	assert_unchanged(s, &before);
	drain(s, SIZE_MAX);
	assert_int_equal(sink.len, 44);
	assert_memory_equal(sink.buf, "a", 1);
	assert_memory_equal(sink.buf + 1, big, 32);
	assert_memory_equal(sink.buf + 33, "d0123456789", 11);
	sink.len = 0;
	assert_int_equal(window_used(&s->win), 0);
}

static void feed_source(struct stream *s, size_t n)
{
	uint8_t *buf = malloc(n);

	assert_non_null(buf);
	for (size_t i = 0; i < n; i++)
		buf[i] = src_byte(s->win.in + i);
	assert_int_equal(feed_chunked(s, buf, n, SIZE_MAX), n);
	free(buf);
}

/*
 * A passed run shorter than 16 KiB that follows supplied bytes is copied
 * beside them and counts towards the window like them; a longer run, or
 * one that would pass the output limit, stays in the ring.
 */
static void test_copy_beside_supplied(void **state)
{
	struct stream *s = *state;
	struct model m = { 0 };

	stream_init(s, 65536);
	feed_source(s, 65536);
	assert_int_equal(inject(s, "<"), 0);
	assert_int_equal(pass(s, 16383), 0);
	assert_int_equal(s->win.extra, 1 + 16383);
	assert_int_equal(s->nsegs, 1);
	/* The copied bytes left the ring: nothing was ahead of them. */
	assert_int_equal(s->win.out, 16383);
	assert_int_equal(inject(s, ">"), 0);
	assert_int_equal(pass(s, 16383 + 16384), 0);
	assert_int_equal(s->win.extra, 16385);
	assert_int_equal(s->nsegs, 2);
	model_add(&m, (const uint8_t *)"<", 1);
	model_add_source(&m, 0, 16383);
	model_add(&m, (const uint8_t *)">", 1);
	model_add_source(&m, 16383, 16383 + 16384);
	drain(s, 1000);
	model_check(&m);
	assert_int_equal(m.checked, m.len);
	free(m.want);

	/* In a small window the copy is what stops reading. */
	stream_fini(s);
	stream_init(s, 16);
	feed_all(s, "abcdefgh");
	assert_int_equal(inject(s, "XY"), 0);
	assert_int_equal(pass(s, 8), 0);
	assert_int_equal(s->win.extra, 10);
	assert_int_equal(window_space(&s->win), 6);
	assert_int_equal(feed(s, "ijklmnopq"), 6);
	assert_int_equal(pass(s, 14), 0);
	expect_out(s, "XYabcdefghijklmn");
	assert_int_equal(window_space(&s->win), 16);
}

enum match_op { M_PASS, M_REPLACE, M_INJECT, M_DROP };

/* A filter that rewrites a match of `match` bytes every `every` bytes. */
struct matches {
	const char *what;
	enum match_op op;
	size_t every, match, len;
};

/*
 * Applies the matches across a whole 64 KiB window and writes the output.
 * Returns the most segments that were pending at once; the output is
 * checked against the model.
 */
static unsigned rewrite_window(struct stream *s, const struct matches *c)
{
	static const uint8_t with[] = "0123456789";
	const size_t w = 65536;
	struct model m = { 0 };
	unsigned max_segs = 0;

	stream_init(s, w);
	feed_source(s, w);
	while (s->decided + c->every <= w) {
		uint64_t d = s->decided, from = d + c->every - c->match, to = from + c->match;

		switch (c->op) {
		case M_PASS:
			assert_int_equal(pass(s, to), 0);
			model_add_source(&m, d, to);
			break;
		case M_REPLACE:
			assert_int_equal(
				stream_verdict(s, SLUICE_VERDICT_REPLACE, from, to, with, c->len),
				0);
			model_add_source(&m, d, from);
			model_add(&m, with, c->len);
			break;
		case M_INJECT:
			assert_int_equal(pass(s, to), 0);
			assert_int_equal(
				stream_verdict(s, SLUICE_VERDICT_INJECT, 0, 0, with, c->len), 0);
			model_add_source(&m, d, to);
			model_add(&m, with, c->len);
			break;
		case M_DROP:
			assert_int_equal(pass(s, from), 0);
			assert_int_equal(drop(s, to), 0);
			model_add_source(&m, d, from);
			break;
		}
		if (s->nsegs > max_segs)
			max_segs = s->nsegs;
	}
	model_add_source(&m, s->decided, w);
	assert_int_equal(pass(s, w), 0);
	drain(s, 4096);
	model_check(&m);
	assert_int_equal(m.checked, m.len);
	assert_int_equal(window_used(&s->win), 0);
	assert_int_equal(s->nsegs, 0);
	free(m.want);
	stream_fini(s);
	return max_segs;
}

/*
 * However many small matches a filter rewrites, the output queue stays a
 * few large buffers (docs/protocol.md, "Limits on filter output").
 */
static void test_segments_bounded_rewrites(void **state)
{
	static const struct matches cases[] = {
		{ "pass 1 byte at a time", M_PASS, 1, 0, 0 },
		{ "replace 1 byte of 8 by 2", M_REPLACE, 8, 1, 2 },
		{ "replace 3 bytes of 5 by 1", M_REPLACE, 5, 3, 1 },
		{ "replace every byte by 1", M_REPLACE, 1, 1, 1 },
		{ "inject 1 byte every 4", M_INJECT, 4, 0, 1 },
		{ "insert 2 bytes every 3 by replace", M_REPLACE, 3, 0, 2 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		unsigned segs = rewrite_window(*state, &cases[i]);

		if (segs > SEGS_BOUND)
			fail_msg("%s: %u segments pending, bound %u", cases[i].what, segs,
				 SEGS_BOUND);
	}
}

/*
 * The same bound for filters that remove small matches, by DROP or by a
 * REPLACE with no bytes ("including 0", docs/protocol.md).
 *
 * When written, this failed: a pass after a drop cannot extend the passed
 * run that carries the drop's skip, and is not copied either, so every
 * removed match costs a segment (W / 2 of them for every other byte).
 */
static void test_segments_bounded_removals(void **state)
{
	static const struct matches cases[] = {
		{ "drop 1 byte of 8", M_DROP, 8, 1, 0 },
		{ "drop every other byte", M_DROP, 2, 1, 0 },
		{ "replace 1 byte of 8 by nothing", M_REPLACE, 8, 1, 0 },
		{ "replace 2 bytes of 16 by nothing", M_REPLACE, 16, 2, 0 },
	};
	char msg[1024] = "";
	size_t off = 0;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		unsigned segs = rewrite_window(*state, &cases[i]);

		if (segs > SEGS_BOUND)
			off += snprintf(msg + off, sizeof(msg) - off,
					"%s%s across a 64 KiB window: %u segments pending",
					off ? "; " : "", cases[i].what, segs);
	}
	if (off)
		fail_msg("bound %u exceeded: %s", SEGS_BOUND, msg);
}

/* stream_fini() frees the ring and every kind of segment, and is idempotent. */
static void test_fini(void **state)
{
	struct stream *s = *state;
	struct stream zero;

	memset(&zero, 0, sizeof(zero));
	stream_fini(&zero);
	stream_fini(&zero);

	stream_init(s, 16);
	stream_fini(s); /* never read: no ring */

	stream_init(s, 16);
	feed_all(s, "0123456789");
	assert_int_equal(pass(s, 2), 0);
	assert_int_equal(replace(s, 4, 6, "made"), 0);
	assert_int_equal(inject(s, "more"), 0);
	assert_true(s->nsegs >= 2);
	assert_non_null(s->ring);
	stream_fini(s);
	assert_null(s->ring);
	assert_null(s->head);
	assert_null(s->tail);
	assert_null(s->last_ring);
	assert_int_equal(s->nsegs, 0);
	stream_fini(s);

	/* Half written, and shut down. */
	stream_init(s, 16);
	feed_all(s, "0123456789");
	assert_int_equal(replace(s, 2, 3, "two"), 0);
	assert_int_equal(op(s, SLUICE_VERDICT_SHUTDOWN), 0);
	assert_int_equal(write_once(s, 3), 3);
	sink.len = 0;
	stream_fini(s);
	assert_null(s->head);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_pass_in_pieces),
		T(test_replace),
		T(test_replace_many),
		T(test_inject),
		T(test_drop),
		T(test_peek),
		T(test_bad_offsets),
		T(test_bad_ops),
		T(test_pass_rest),
		T(test_pass_all),
		T(test_shutdown),
		T(test_shutdown_fin_after_last_byte),
		T(test_shutdown_idle),
		T(test_fin_auto_pass_eof),
		T(test_window_backpressure),
		T(test_ring_wrap),
		T(test_random_large),
		T(test_output_limit),
		T(test_copy_beside_supplied),
		T(test_segments_bounded_rewrites),
		T(test_segments_bounded_removals),
		T(test_fini),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
