/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the frame codec (src/common/frame.c): every frame type
 * round-trips, partial input asks for more without writing anything, and
 * every malformed header, length, reserved bit and field value is refused.
 *
 * Frames are decoded from heap copies of exactly the bytes under test, so
 * that an ASan build catches any read past the end.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frame.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Big enough for any sample frame plus slack. */
#define BUF_SIZE 1024

static uint8_t name_max[SLUICE_NAME_MAX + 1];
static uint8_t comm_max[SLUICE_COMM_MAX + 1];
static uint8_t text_max[SLUICE_ERROR_TEXT_MAX + 1];
static const uint8_t payload[] = "GET / HTTP/1.1\r\nHost: example.org\r\n\r\n";

static const uint8_t v4_a[16] = { 192, 0, 2, 1 };
static const uint8_t v4_b[16] = { 198, 51, 100, 7 };
static const uint8_t v6_a[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
static const uint8_t v6_b[16] = { 0x20, 0x01, 0x0d, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };

/* Valid frames of every type, with every field set to something distinct. */
static struct frame samples[64];
static size_t nsamples;

static void add_sample(struct frame f)
{
	assert_true(nsamples < ARRAY_SIZE(samples));
	samples[nsamples++] = f;
}

static struct frame verdict(uint8_t op, uint64_t from, uint64_t to, const uint8_t *bytes,
			    size_t len)
{
	return (struct frame){ .type = SLUICE_FRAME_VERDICT,
			       .verdict = { .flow = 0x0102030405060708ull,
					    .dir = SLUICE_DIR_IN,
					    .op = op,
					    .from = from,
					    .to = to,
					    .bytes = bytes,
					    .len = len } };
}

static struct frame open_frame(uint8_t family, uint8_t flags, const uint8_t *comm, size_t len)
{
	struct frame f = {
		.type = SLUICE_FRAME_OPEN,
		.flags = flags,
		.open = { .flow = 0xfedcba9876543210ull,
			  .family = family,
			  .src_port = 40000,
			  .dst_port = 443,
			  .uid = 1000,
			  .pid = 4242,
			  .window = 524288,
			  .comm = comm,
			  .comm_len = len },
	};

	memcpy(f.open.src, family == 4 ? v4_a : v6_a, 16);
	memcpy(f.open.dst, family == 4 ? v4_b : v6_b, 16);
	return f;
}

static struct frame open_verdict(uint8_t action, uint8_t family, uint16_t port, const uint8_t *addr)
{
	struct frame f = { .type = SLUICE_FRAME_OPEN_VERDICT,
			   .open_verdict = {
				   .flow = 77, .action = action, .family = family, .port = port } };

	if (addr)
		memcpy(f.open_verdict.addr, addr, 16);
	return f;
}

static struct frame subscribe(uint8_t dirs, uint8_t nports, uint16_t first_lo)
{
	struct frame f = { .type = SLUICE_FRAME_SUBSCRIBE,
			   .subscribe = { .dirs = dirs, .nports = nports } };

	for (unsigned i = 0; i < nports && i < SLUICE_SUB_MAX_PORTS; i++) {
		f.subscribe.ports[i].lo = (uint16_t)(first_lo + 2 * i);
		f.subscribe.ports[i].hi = (uint16_t)(first_lo + 2 * i + i % 2);
	}
	return f;
}

static int setup_samples(void **state)
{
	memset(name_max, 'n', sizeof(name_max));
	memset(comm_max, 'c', sizeof(comm_max));
	for (size_t i = 0; i < sizeof(text_max); i++)
		text_max[i] = (uint8_t)('a' + i % 26);
	nsamples = 0;

	add_sample((struct frame){ .type = SLUICE_FRAME_HELLO,
				   .hello = { .version = SLUICE_PROTOCOL_VERSION,
					      .worker = 2,
					      .workers = 3,
					      .max_frame = SLUICE_FRAME_DEFAULT_MAX,
					      .window = 65536,
					      .features = SLUICE_FEATURE_OPEN_VERDICT,
					      .name = (const uint8_t *)"passthrough",
					      .name_len = 11 } });
	add_sample((struct frame){ .type = SLUICE_FRAME_HELLO,
				   .hello = { .version = 0xffff,
					      .worker = 255,
					      .workers = 255,
					      .max_frame = SLUICE_FRAME_MIN_MAX,
					      .window = UINT32_MAX,
					      .features = 0xfffffffe } });
	add_sample((struct frame){ .type = SLUICE_FRAME_HELLO,
				   .hello = { .version = 2,
					      .max_frame = SLUICE_FRAME_HARD_MAX,
					      .name = name_max,
					      .name_len = SLUICE_NAME_MAX } });

	add_sample(
		open_frame(4, SLUICE_OPEN_F_UID | SLUICE_OPEN_F_PID, (const uint8_t *)"curl", 4));
	add_sample(open_frame(6, 0, NULL, 0));
	add_sample(open_frame(6, SLUICE_OPEN_F_PID, comm_max, SLUICE_COMM_MAX));
	add_sample(open_frame(4, SLUICE_OPEN_F_UID, NULL, 0));
	add_sample(open_frame(4, SLUICE_OPEN_F_VERDICT | SLUICE_OPEN_F_IN_ONLY, NULL, 0));
	add_sample(open_frame(6,
			      SLUICE_OPEN_F_UID | SLUICE_OPEN_F_PID | SLUICE_OPEN_F_VERDICT |
				      SLUICE_OPEN_F_OUT_ONLY,
			      (const uint8_t *)"wget", 4));

	add_sample((struct frame){ .type = SLUICE_FRAME_DATA,
				   .data = { .flow = 1,
					     .dir = SLUICE_DIR_OUT,
					     .offset = 0,
					     .bytes = payload,
					     .len = sizeof(payload) - 1 } });
	add_sample((struct frame){
		.type = SLUICE_FRAME_DATA,
		.data = { .flow = UINT64_MAX, .dir = SLUICE_DIR_IN, .offset = UINT64_MAX - 3 } });
	add_sample((struct frame){ .type = SLUICE_FRAME_DATA,
				   .flags = SLUICE_DATA_F_REOFFER,
				   .data = { .flow = 2,
					     .dir = SLUICE_DIR_IN,
					     .offset = 4096,
					     .bytes = payload,
					     .len = 7 } });
	add_sample((struct frame){
		.type = SLUICE_FRAME_EOF,
		.data = { .flow = 99, .dir = SLUICE_DIR_IN, .offset = 123456789 } });
	add_sample((struct frame){ .type = SLUICE_FRAME_EOF,
				   .data = { .flow = 0, .dir = SLUICE_DIR_OUT, .offset = 0 } });
	add_sample((struct frame){ .type = SLUICE_FRAME_CLOSE,
				   .close = { .flow = 0x8000000000000001ull, .reason = 104 } });

	/* VERDICT for every operation; only replace and inject carry bytes. */
	add_sample(verdict(SLUICE_VERDICT_PASS, 0, 4096, NULL, 0));
	add_sample(verdict(SLUICE_VERDICT_PEEK, 0, 1ull << 40, NULL, 0));
	add_sample(verdict(SLUICE_VERDICT_REPLACE, 10, 20, payload, 5));
	add_sample(verdict(SLUICE_VERDICT_REPLACE, 7, 7, NULL, 0));
	add_sample(verdict(SLUICE_VERDICT_REPLACE, 0, UINT64_MAX, payload, sizeof(payload) - 1));
	add_sample(verdict(SLUICE_VERDICT_INJECT, 33, 33, (const uint8_t *)"X", 1));
	add_sample(verdict(SLUICE_VERDICT_INJECT, 0, 0, NULL, 0));
	add_sample(verdict(SLUICE_VERDICT_DROP, 5, 100, NULL, 0));
	add_sample(verdict(SLUICE_VERDICT_PASS_REST, 0, 0, NULL, 0));
	add_sample(verdict(SLUICE_VERDICT_SHUTDOWN, 1, 2, NULL, 0));
	add_sample(verdict(SLUICE_VERDICT_RESET, 0, 0, NULL, 0));

	add_sample(open_verdict(SLUICE_OPEN_ALLOW, 0, 0, NULL));
	add_sample(open_verdict(SLUICE_OPEN_DENY, 0, 0, NULL));
	add_sample(open_verdict(SLUICE_OPEN_REDIRECT, 4, 8080, v4_b));
	add_sample(open_verdict(SLUICE_OPEN_REDIRECT, 6, 65535, v6_b));
	add_sample(open_verdict(SLUICE_OPEN_IGNORE, 0, 0, NULL));

	add_sample((struct frame){ .type = SLUICE_FRAME_ERROR,
				   .error = { .flow = 5,
					      .code = SLUICE_ERR_BAD_OFFSET,
					      .ref_type = SLUICE_FRAME_VERDICT,
					      .text = (const uint8_t *)"offset backwards",
					      .text_len = 16 } });
	add_sample((struct frame){ .type = SLUICE_FRAME_ERROR,
				   .error = { .code = SLUICE_ERR_PROTOCOL } });
	add_sample(subscribe(SLUICE_SUB_OUT | SLUICE_SUB_IN, 3, 80));
	add_sample((struct frame){ .type = SLUICE_FRAME_ERROR,
				   .error = { .flow = 6,
					      .code = UINT32_MAX,
					      .ref_type = 255,
					      .text = text_max,
					      .text_len = SLUICE_ERROR_TEXT_MAX } });

	/* SUBSCRIBE: one direction or both, no ports or up to the limit. */
	add_sample(subscribe(SLUICE_SUB_OUT, 0, 0));
	add_sample(subscribe(SLUICE_SUB_IN, SLUICE_SUB_MAX_PORTS, 1));
	add_sample(subscribe(SLUICE_SUB_OUT, 1, 443));
	{
		struct frame f = subscribe(SLUICE_SUB_IN, 2, 1);

		f.subscribe.ports[0].hi = 65535; /* every port, as one range */
		f.subscribe.ports[1].lo = f.subscribe.ports[1].hi = 65535;
		add_sample(f);
	}

	/* SHM and RELEASE, the zero-copy channel's frames. */
	add_sample((struct frame){ .type = SLUICE_FRAME_SHM,
				   .shm = { .fwd_size = 4096, .rev_size = 1u << 20 } });
	add_sample((struct frame){ .type = SLUICE_FRAME_RELEASE, .release = { .pos = 0 } });
	add_sample((struct frame){ .type = SLUICE_FRAME_RELEASE,
				   .release = { .pos = UINT64_MAX - 1 } });
	return 0;
}

/* The first sample of a type. */
static const struct frame *sample_of(uint8_t type)
{
	for (size_t i = 0; i < nsamples; i++)
		if (samples[i].type == type)
			return &samples[i];
	fail_msg("no sample of type %u", type);
	return NULL;
}

/* The first sample of a type with its variable part (name, bytes...) emptied. */
static struct frame sample_empty(uint8_t type)
{
	struct frame f = *sample_of(type);

	switch (type) {
	case SLUICE_FRAME_HELLO:
		f.hello.name_len = 0;
		break;
	case SLUICE_FRAME_OPEN:
		f.open.comm_len = 0;
		break;
	case SLUICE_FRAME_DATA:
	case SLUICE_FRAME_EOF:
		f.data.len = 0;
		break;
	case SLUICE_FRAME_VERDICT:
		f.verdict.len = 0;
		break;
	case SLUICE_FRAME_ERROR:
		f.error.text_len = 0;
		break;
	case SLUICE_FRAME_SUBSCRIBE:
		f.subscribe.nports = 0;
		break;
	}
	return f;
}

static size_t encode(uint8_t *buf, size_t cap, const struct frame *f)
{
	ssize_t n = frame_encode(buf, cap, f);

	assert_true(n >= SLUICE_FRAME_HEADER_SIZE);
	assert_int_equal((size_t)n, frame_size(f));
	return (size_t)n;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

/*
 * Decodes a private heap copy of buf[0..len). Returns frame_decode()'s
 * result and checks the contract on its outputs: a reason on failure,
 * nothing written otherwise. On success the frame's pointers are rebased
 * onto buf, so the caller may use them.
 */
static int decode(const uint8_t *buf, size_t len, uint32_t max_frame, struct frame *ret,
		  size_t *ret_size, const char **ret_reason)
{
	static const char sentinel[] = "untouched";
	uint8_t *copy = malloc(len ? len : 1);
	struct frame f, fill;
	size_t size = 0xdead;
	const char *why = sentinel;
	int r;

	assert_non_null(copy);
	memcpy(copy, buf, len);
	memset(&f, 0xa5, sizeof(f));
	memset(&fill, 0xa5, sizeof(fill));
	r = frame_decode(copy, len, max_frame, &f, &size, &why);

	if (r < 0) {
		assert_true(r == -EBADMSG || r == -EMSGSIZE);
		assert_true(why != sentinel && why != NULL && why[0] != '\0');
	} else {
		assert_ptr_equal(why, sentinel);
	}
	if (r <= 0) {
		assert_memory_equal(&f, &fill, sizeof(f));
		assert_int_equal(size, 0xdead);
	} else {
		assert_int_equal(r, 1);
		assert_true(size >= SLUICE_FRAME_HEADER_SIZE && size <= len);
		/* Rebase the pointers into the heap copy onto the caller's buffer. */
		const uint8_t **p = NULL;

		switch (f.type) {
		case SLUICE_FRAME_HELLO:
			p = &f.hello.name;
			break;
		case SLUICE_FRAME_OPEN:
			p = &f.open.comm;
			break;
		case SLUICE_FRAME_DATA:
		case SLUICE_FRAME_EOF:
			p = &f.data.bytes;
			break;
		case SLUICE_FRAME_VERDICT:
			p = &f.verdict.bytes;
			break;
		case SLUICE_FRAME_ERROR:
			p = &f.error.text;
			break;
		}
		if (p) {
			assert_true(*p >= copy && *p <= copy + size);
			*p = buf + (*p - copy);
		}
	}
	free(copy);
	if (r == 1) {
		if (ret)
			*ret = f;
		if (ret_size)
			*ret_size = size;
	}
	if (ret_reason)
		*ret_reason = why == sentinel ? NULL : why;
	return r;
}

/* Asserts that decode() refuses buf[0..len) as malformed. */
static void assert_bad(const uint8_t *buf, size_t len, uint32_t max_frame)
{
	assert_int_equal(decode(buf, len, max_frame, NULL, NULL, NULL), -EBADMSG);
}

static void assert_bytes_equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	assert_int_equal(alen, blen);
	if (alen)
		assert_memory_equal(a, b, alen);
}

static void assert_frame_equal(const struct frame *a, const struct frame *b)
{
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->flags, b->flags);
	switch (a->type) {
	case SLUICE_FRAME_HELLO:
		assert_int_equal(a->hello.version, b->hello.version);
		assert_int_equal(a->hello.worker, b->hello.worker);
		assert_int_equal(a->hello.workers, b->hello.workers);
		assert_int_equal(a->hello.max_frame, b->hello.max_frame);
		assert_int_equal(a->hello.window, b->hello.window);
		assert_int_equal(a->hello.features, b->hello.features);
		assert_bytes_equal(a->hello.name, a->hello.name_len, b->hello.name,
				   b->hello.name_len);
		break;
	case SLUICE_FRAME_OPEN:
		assert_int_equal(a->open.flow, b->open.flow);
		assert_int_equal(a->open.family, b->open.family);
		assert_int_equal(a->open.src_port, b->open.src_port);
		assert_int_equal(a->open.dst_port, b->open.dst_port);
		assert_memory_equal(a->open.src, b->open.src, 16);
		assert_memory_equal(a->open.dst, b->open.dst, 16);
		assert_int_equal(a->open.uid, b->open.uid);
		assert_int_equal(a->open.pid, b->open.pid);
		assert_int_equal(a->open.window, b->open.window);
		assert_bytes_equal(a->open.comm, a->open.comm_len, b->open.comm, b->open.comm_len);
		break;
	case SLUICE_FRAME_DATA:
	case SLUICE_FRAME_EOF:
		assert_int_equal(a->data.flow, b->data.flow);
		assert_int_equal(a->data.dir, b->data.dir);
		assert_int_equal(a->data.offset, b->data.offset);
		assert_bytes_equal(a->data.bytes, a->data.len, b->data.bytes, b->data.len);
		break;
	case SLUICE_FRAME_CLOSE:
		assert_int_equal(a->close.flow, b->close.flow);
		assert_int_equal(a->close.reason, b->close.reason);
		break;
	case SLUICE_FRAME_VERDICT:
		assert_int_equal(a->verdict.flow, b->verdict.flow);
		assert_int_equal(a->verdict.dir, b->verdict.dir);
		assert_int_equal(a->verdict.op, b->verdict.op);
		assert_int_equal(a->verdict.from, b->verdict.from);
		assert_int_equal(a->verdict.to, b->verdict.to);
		assert_bytes_equal(a->verdict.bytes, a->verdict.len, b->verdict.bytes,
				   b->verdict.len);
		break;
	case SLUICE_FRAME_OPEN_VERDICT:
		assert_int_equal(a->open_verdict.flow, b->open_verdict.flow);
		assert_int_equal(a->open_verdict.action, b->open_verdict.action);
		assert_int_equal(a->open_verdict.family, b->open_verdict.family);
		assert_int_equal(a->open_verdict.port, b->open_verdict.port);
		assert_memory_equal(a->open_verdict.addr, b->open_verdict.addr, 16);
		break;
	case SLUICE_FRAME_ERROR:
		assert_int_equal(a->error.flow, b->error.flow);
		assert_int_equal(a->error.code, b->error.code);
		assert_int_equal(a->error.ref_type, b->error.ref_type);
		assert_bytes_equal(a->error.text, a->error.text_len, b->error.text,
				   b->error.text_len);
		break;
	case SLUICE_FRAME_SUBSCRIBE:
		assert_int_equal(a->subscribe.dirs, b->subscribe.dirs);
		assert_int_equal(a->subscribe.nports, b->subscribe.nports);
		for (unsigned i = 0; i < a->subscribe.nports; i++) {
			assert_int_equal(a->subscribe.ports[i].lo, b->subscribe.ports[i].lo);
			assert_int_equal(a->subscribe.ports[i].hi, b->subscribe.ports[i].hi);
		}
		break;
	case SLUICE_FRAME_SHM:
		assert_int_equal(a->shm.fwd_size, b->shm.fwd_size);
		assert_int_equal(a->shm.rev_size, b->shm.rev_size);
		break;
	case SLUICE_FRAME_RELEASE:
		assert_int_equal(a->release.pos, b->release.pos);
		break;
	default:
		fail_msg("unexpected frame type %u", a->type);
	}
}

/* Every sample encodes to frame_size() bytes and decodes to the same fields. */
static void test_round_trip(void **state)
{
	uint8_t seen[SLUICE_FRAME_TYPE_MAX + 1] = { 0 };
	uint8_t ops[SLUICE_VERDICT_OP_MAX + 1] = { 0 };

	for (size_t i = 0; i < nsamples; i++) {
		uint8_t buf[BUF_SIZE];
		struct frame f;
		size_t size, n = encode(buf, sizeof(buf), &samples[i]);

		assert_int_equal(decode(buf, n, SLUICE_FRAME_DEFAULT_MAX, &f, &size, NULL), 1);
		assert_int_equal(size, n);
		assert_frame_equal(&f, &samples[i]);
		/* The decoded frame encodes to the very same bytes. */
		uint8_t again[BUF_SIZE];

		assert_int_equal(encode(again, sizeof(again), &f), n);
		assert_memory_equal(again, buf, n);

		seen[samples[i].type] = 1;
		if (samples[i].type == SLUICE_FRAME_VERDICT)
			ops[samples[i].verdict.op] = 1;
	}
	for (unsigned t = 1; t <= SLUICE_FRAME_TYPE_MAX; t++)
		assert_true(seen[t]);
	for (unsigned op = 1; op <= SLUICE_VERDICT_OP_MAX; op++)
		assert_true(ops[op]);
}

/* Every proper prefix of a valid frame asks for more and writes nothing. */
static void test_prefixes_need_more(void **state)
{
	for (size_t i = 0; i < nsamples; i++) {
		uint8_t buf[BUF_SIZE];
		size_t n = encode(buf, sizeof(buf), &samples[i]);

		for (size_t len = 0; len < n; len++)
			assert_int_equal(
				decode(buf, len, SLUICE_FRAME_DEFAULT_MAX, NULL, NULL, NULL), 0);
	}
}

/*
 * For each type, the header's length field is set to every value from 0 to
 * past the largest valid one, with enough bytes present. Lengths below the
 * header are -EBADMSG, lengths above max_frame are -EMSGSIZE, fixed-size
 * types accept only their size, and variable ones accept their fixed part
 * plus up to their limit of bytes.
 */
static void test_lengths(void **state)
{
	static const struct {
		uint8_t type;
		size_t body;
		size_t var_max; /* SIZE_MAX: bounded by max_frame only */
	} types[] = {
		{ SLUICE_FRAME_HELLO, FRAME_HELLO_BODY, SLUICE_NAME_MAX },
		{ SLUICE_FRAME_OPEN, FRAME_OPEN_BODY, SLUICE_COMM_MAX },
		{ SLUICE_FRAME_DATA, FRAME_DATA_BODY, SIZE_MAX },
		{ SLUICE_FRAME_EOF, FRAME_EOF_BODY, 0 },
		{ SLUICE_FRAME_CLOSE, FRAME_CLOSE_BODY, 0 },
		{ SLUICE_FRAME_OPEN_VERDICT, FRAME_OPEN_VERDICT_BODY, 0 },
		{ SLUICE_FRAME_ERROR, FRAME_ERROR_BODY, SLUICE_ERROR_TEXT_MAX },
		/* Without ports; test_subscribe() covers lengths that go with ports. */
		{ SLUICE_FRAME_SUBSCRIBE, FRAME_SUBSCRIBE_BODY, 0 },
	};
	struct {
		struct frame f;
		size_t fixed, var_max;
	} cases[ARRAY_SIZE(types) + 2];
	size_t ncases = 0;

	for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
		cases[ncases].f = sample_empty(types[i].type);
		cases[ncases].fixed = SLUICE_FRAME_HEADER_SIZE + types[i].body;
		assert_int_equal(frame_size(&cases[ncases].f), cases[ncases].fixed);
		cases[ncases++].var_max = types[i].var_max;
	}
	/* A replace takes any number of bytes; a pass takes none. */
	cases[ncases].f = verdict(SLUICE_VERDICT_REPLACE, 1, 2, NULL, 0);
	cases[ncases].fixed = FRAME_VERDICT_PREFIX;
	cases[ncases++].var_max = SIZE_MAX;
	cases[ncases].f = verdict(SLUICE_VERDICT_PASS, 0, 2, NULL, 0);
	cases[ncases].fixed = FRAME_VERDICT_PREFIX;
	cases[ncases++].var_max = 0;

	for (size_t i = 0; i < ncases; i++) {
		size_t var = cases[i].var_max == SIZE_MAX ? 100 : cases[i].var_max;
		uint32_t max_frame = cases[i].fixed + var + 16;
		size_t top = max_frame + 16;
		uint8_t buf[BUF_SIZE] = { 0 };

		assert_true(top <= sizeof(buf));
		encode(buf, sizeof(buf), &cases[i].f);
		for (uint32_t len = 0; len <= top; len++) {
			size_t size;
			int want, r;

			if (len < SLUICE_FRAME_HEADER_SIZE)
				want = -EBADMSG;
			else if (len > max_frame)
				want = -EMSGSIZE;
			else if (len < cases[i].fixed || len - cases[i].fixed > cases[i].var_max)
				want = -EBADMSG;
			else
				want = 1;
			put32(buf, len);
			r = decode(buf, top, max_frame, NULL, &size, NULL);
			if (r != want)
				fail_msg("type %u, length %u: got %d, want %d", cases[i].f.type,
					 len, r, want);
			if (r == 1)
				assert_int_equal(size, len);
		}
	}
}

/*
 * The header alone is enough to refuse a length below the header size or
 * above max_frame: the decoder must not wait for bytes it will refuse.
 */
static void test_lengths_header_only(void **state)
{
	static const uint32_t too_big[] = { SLUICE_FRAME_MIN_MAX + 1, SLUICE_FRAME_DEFAULT_MAX,
					    SLUICE_FRAME_HARD_MAX + 1, UINT32_MAX };

	for (size_t i = 0; i < nsamples; i++) {
		uint8_t buf[BUF_SIZE];

		encode(buf, sizeof(buf), &samples[i]);
		for (uint32_t len = 0; len < SLUICE_FRAME_HEADER_SIZE; len++) {
			put32(buf, len);
			assert_bad(buf, SLUICE_FRAME_HEADER_SIZE, SLUICE_FRAME_DEFAULT_MAX);
		}
		for (size_t j = 0; j < ARRAY_SIZE(too_big); j++) {
			put32(buf, too_big[j]);
			assert_int_equal(decode(buf, SLUICE_FRAME_HEADER_SIZE, SLUICE_FRAME_MIN_MAX,
						NULL, NULL, NULL),
					 -EMSGSIZE);
		}
		/* Exactly max_frame is allowed: wait for the rest. */
		put32(buf, SLUICE_FRAME_MIN_MAX);
		assert_int_equal(decode(buf, SLUICE_FRAME_HEADER_SIZE, SLUICE_FRAME_MIN_MAX, NULL,
					NULL, NULL),
				 0);
	}
}

/* Types 0 and above SLUICE_FRAME_TYPE_MAX are refused, with or without a body. */
static void test_unknown_types(void **state)
{
	uint8_t buf[BUF_SIZE];
	size_t n = encode(buf, sizeof(buf), sample_of(SLUICE_FRAME_CLOSE));

	for (unsigned t = 0; t <= 255; t++) {
		if (t >= 1 && t <= SLUICE_FRAME_TYPE_MAX)
			continue;
		buf[4] = (uint8_t)t;
		assert_bad(buf, n, SLUICE_FRAME_DEFAULT_MAX);
		assert_bad(buf, SLUICE_FRAME_HEADER_SIZE, SLUICE_FRAME_DEFAULT_MAX);
	}
}

/* Reserved bytes of each type's body, as offsets from the frame's start. */
static const struct {
	uint8_t type;
	uint8_t allowed_flags;
	uint8_t reserved[8];
	size_t nreserved;
} layouts[] = {
	{ SLUICE_FRAME_HELLO, 0, { 0 }, 0 },
	{ SLUICE_FRAME_OPEN,
	  SLUICE_OPEN_F_UID | SLUICE_OPEN_F_PID | SLUICE_OPEN_F_VERDICT | SLUICE_OPEN_F_IN_ONLY |
		  SLUICE_OPEN_F_OUT_ONLY,
	  { 17, 22, 23, 68, 69, 70, 71 },
	  7 },
	{ SLUICE_FRAME_DATA, SLUICE_DATA_F_REOFFER, { 17, 18, 19, 20, 21, 22, 23 }, 7 },
	{ SLUICE_FRAME_EOF, 0, { 17, 18, 19, 20, 21, 22, 23 }, 7 },
	{ SLUICE_FRAME_CLOSE, 0, { 20, 21, 22, 23 }, 4 },
	{ SLUICE_FRAME_VERDICT, 0, { 18, 19, 20, 21, 22, 23 }, 6 },
	{ SLUICE_FRAME_OPEN_VERDICT, 0, { 20, 21, 22, 23 }, 4 },
	{ SLUICE_FRAME_ERROR, 0, { 21, 22, 23 }, 3 },
	{ SLUICE_FRAME_SUBSCRIBE, 0, { 10, 11 }, 2 },
	{ SLUICE_FRAME_SHM, 0, { 16, 17, 18, 19, 20, 21, 22, 23 }, 8 },
	{ SLUICE_FRAME_RELEASE, 0, { 16, 17, 18, 19, 20, 21, 22, 23 }, 8 },
};

/*
 * Any single bit set in the header's reserved u16, in a flag a type does
 * not define, or in a reserved byte of the body is refused.
 */
static void test_reserved_bits(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(layouts); i++) {
		uint8_t good[BUF_SIZE], buf[BUF_SIZE];
		size_t n = encode(good, sizeof(good), sample_of(layouts[i].type));

		assert_int_equal(decode(good, n, SLUICE_FRAME_DEFAULT_MAX, NULL, NULL, NULL), 1);
		for (unsigned bit = 0; bit < 8; bit++) {
			uint8_t mask = (uint8_t)(1u << bit);

			for (unsigned hdr = 6; hdr <= 7; hdr++) {
				memcpy(buf, good, n);
				buf[hdr] |= mask;
				assert_bad(buf, n, SLUICE_FRAME_DEFAULT_MAX);
			}
			for (size_t j = 0; j < layouts[i].nreserved; j++) {
				memcpy(buf, good, n);
				buf[layouts[i].reserved[j]] |= mask;
				assert_bad(buf, n, SLUICE_FRAME_DEFAULT_MAX);
			}
			memcpy(buf, good, n);
			buf[5] = mask;
			if (layouts[i].allowed_flags & mask)
				assert_int_equal(
					decode(buf, n, SLUICE_FRAME_DEFAULT_MAX, NULL, NULL, NULL),
					1);
			else
				assert_bad(buf, n, SLUICE_FRAME_DEFAULT_MAX);
		}
	}
}

/*
 * No bit is ignored: flipping any one bit of any sample either makes the
 * frame refused (or incomplete), or gives a frame that encodes back to
 * exactly the flipped bytes.
 */
static void test_bit_flips_are_canonical(void **state)
{
	for (size_t i = 0; i < nsamples; i++) {
		uint8_t good[BUF_SIZE], buf[BUF_SIZE], again[BUF_SIZE];
		size_t n = encode(good, sizeof(good), &samples[i]);

		for (size_t pos = 0; pos < n; pos++) {
			for (unsigned bit = 0; bit < 8; bit++) {
				struct frame f;
				size_t size;

				memcpy(buf, good, n);
				buf[pos] ^= (uint8_t)(1u << bit);
				if (decode(buf, n, SLUICE_FRAME_DEFAULT_MAX, &f, &size, NULL) != 1)
					continue;
				assert_int_equal(encode(again, sizeof(again), &f), size);
				if (memcmp(again, buf, size) != 0)
					fail_msg("sample %zu: bit %u of byte %zu is ignored", i,
						 bit, pos);
			}
		}
	}
}

/* Field values the protocol does not define are refused, each with a reason. */
static void test_bad_fields(void **state)
{
	struct frame cases[64];
	size_t n = 0;

	/* Directions other than OUT and IN. */
	for (unsigned t = SLUICE_FRAME_DATA; t <= SLUICE_FRAME_EOF; t++) {
		cases[n] = *sample_of(t);
		cases[n++].data.dir = 2;
		cases[n] = *sample_of(t);
		cases[n++].data.dir = 255;
	}
	cases[n] = verdict(SLUICE_VERDICT_PASS, 0, 1, NULL, 0);
	cases[n++].verdict.dir = 2;

	/* Unknown verdict operations. */
	cases[n++] = verdict(0, 0, 1, NULL, 0);
	cases[n++] = verdict(SLUICE_VERDICT_OP_MAX + 1, 0, 1, NULL, 0);
	cases[n++] = verdict(255, 0, 1, NULL, 0);

	/* Bytes on every operation that takes none. */
	for (unsigned op = 1; op <= SLUICE_VERDICT_OP_MAX; op++)
		if (op != SLUICE_VERDICT_REPLACE && op != SLUICE_VERDICT_INJECT)
			cases[n++] = verdict(op, 0, 1, payload, 1);

	/* A replace range that runs backwards. */
	cases[n++] = verdict(SLUICE_VERDICT_REPLACE, 10, 9, payload, 3);
	cases[n++] = verdict(SLUICE_VERDICT_REPLACE, UINT64_MAX, 0, NULL, 0);

	/* HELLO: version 0, max_frame outside [MIN_MAX, HARD_MAX]. */
	cases[n] = *sample_of(SLUICE_FRAME_HELLO);
	cases[n++].hello.version = 0;
	static const uint32_t bad_max[] = { 0, SLUICE_FRAME_MIN_MAX - 1, SLUICE_FRAME_HARD_MAX + 1,
					    UINT32_MAX };
	for (size_t i = 0; i < ARRAY_SIZE(bad_max); i++) {
		cases[n] = *sample_of(SLUICE_FRAME_HELLO);
		cases[n++].hello.max_frame = bad_max[i];
	}

	/* OPEN: address families other than 4 and 6. */
	static const uint8_t bad_family[] = { 0, 2, 5, 10, 255 };
	for (size_t i = 0; i < ARRAY_SIZE(bad_family); i++) {
		cases[n] = *sample_of(SLUICE_FRAME_OPEN);
		cases[n++].open.family = bad_family[i];
	}

	/* OPEN_VERDICT: unknown actions, a redirect without an address family. */
	cases[n++] = open_verdict(0, 0, 0, NULL);
	cases[n++] = open_verdict(SLUICE_OPEN_IGNORE + 1, 0, 0, NULL);
	cases[n++] = open_verdict(SLUICE_OPEN_REDIRECT, 0, 80, v4_a);
	cases[n++] = open_verdict(SLUICE_OPEN_REDIRECT, 5, 80, v4_a);

	/* OPEN offering neither direction; EOF marked as a re-offer. */
	cases[n] = *sample_of(SLUICE_FRAME_OPEN);
	cases[n++].flags |= SLUICE_OPEN_F_IN_ONLY | SLUICE_OPEN_F_OUT_ONLY;
	cases[n] = *sample_of(SLUICE_FRAME_EOF);
	cases[n++].flags = SLUICE_DATA_F_REOFFER;

	/* SUBSCRIBE: no direction, unknown direction bits, empty or reversed ranges. */
	static const uint8_t bad_dirs[] = { 0, 4, SLUICE_SUB_OUT | 8, 0x80, 0xff };
	for (size_t i = 0; i < ARRAY_SIZE(bad_dirs); i++)
		cases[n++] = subscribe(bad_dirs[i], 2, 80);
	cases[n] = subscribe(SLUICE_SUB_OUT, 3, 80);
	cases[n++].subscribe.ports[2].lo = 0;
	cases[n] = subscribe(SLUICE_SUB_OUT, 3, 80);
	cases[n].subscribe.ports[0].lo = 0;
	cases[n++].subscribe.ports[0].hi = 0;
	cases[n] = subscribe(SLUICE_SUB_IN, 2, 80);
	cases[n].subscribe.ports[1].lo = 443;
	cases[n++].subscribe.ports[1].hi = 442;
	cases[n] = subscribe(SLUICE_SUB_IN, 1, 80);
	cases[n].subscribe.ports[0].lo = 65535;
	cases[n++].subscribe.ports[0].hi = 1;

	assert_true(n <= ARRAY_SIZE(cases));
	for (size_t i = 0; i < n; i++) {
		uint8_t buf[BUF_SIZE];
		size_t len = encode(buf, sizeof(buf), &cases[i]);
		const char *why = NULL;

		if (decode(buf, len, SLUICE_FRAME_DEFAULT_MAX, NULL, NULL, &why) != -EBADMSG)
			fail_msg("case %zu (type %u) was not refused", i, cases[i].type);
		assert_non_null(why);
	}

	/* The boundaries themselves are fine. */
	struct frame ok = *sample_of(SLUICE_FRAME_HELLO);
	uint8_t buf[BUF_SIZE];
	size_t len;

	ok.hello.max_frame = SLUICE_FRAME_MIN_MAX;
	len = encode(buf, sizeof(buf), &ok);
	assert_int_equal(decode(buf, len, SLUICE_FRAME_DEFAULT_MAX, NULL, NULL, NULL), 1);
	ok.hello.max_frame = SLUICE_FRAME_HARD_MAX;
	len = encode(buf, sizeof(buf), &ok);
	assert_int_equal(decode(buf, len, SLUICE_FRAME_DEFAULT_MAX, NULL, NULL, NULL), 1);
}

/*
 * A name, comm or text one byte over its limit is refused. frame_encode()
 * will not write one, so the frame is made from the longest valid one.
 */
static void test_overlong_strings(void **state)
{
	struct frame longest[3];

	longest[0] = *sample_of(SLUICE_FRAME_HELLO);
	longest[0].hello.name = name_max;
	longest[0].hello.name_len = SLUICE_NAME_MAX;
	longest[1] = *sample_of(SLUICE_FRAME_OPEN);
	longest[1].open.comm = comm_max;
	longest[1].open.comm_len = SLUICE_COMM_MAX;
	longest[2] = *sample_of(SLUICE_FRAME_ERROR);
	longest[2].error.text = text_max;
	longest[2].error.text_len = SLUICE_ERROR_TEXT_MAX;

	for (size_t i = 0; i < ARRAY_SIZE(longest); i++) {
		uint8_t buf[BUF_SIZE];
		size_t n = encode(buf, sizeof(buf), &longest[i]);
		const char *why = NULL;

		assert_int_equal(decode(buf, n, SLUICE_FRAME_DEFAULT_MAX, NULL, NULL, NULL), 1);
		buf[n] = 'x';
		put32(buf, n + 1);
		assert_int_equal(decode(buf, n + 1, SLUICE_FRAME_DEFAULT_MAX, NULL, NULL, &why),
				 -EBADMSG);
		assert_non_null(why);
	}
}

/* Frames back to back decode one after the other; a partial tail waits. */
static void test_back_to_back(void **state)
{
	static uint8_t buf[BUF_SIZE * 16];
	size_t ends[ARRAY_SIZE(samples)], len = 0, pos = 0;

	for (size_t i = 0; i < nsamples; i++) {
		len += encode(buf + len, sizeof(buf) - len, &samples[i]);
		ends[i] = len;
	}
	/* And the first few bytes of one more frame. */
	encode(buf + len, sizeof(buf) - len, &samples[0]);
	len += 5;

	for (size_t i = 0; i < nsamples; i++) {
		struct frame f;
		size_t size;

		assert_int_equal(
			decode(buf + pos, len - pos, SLUICE_FRAME_DEFAULT_MAX, &f, &size, NULL), 1);
		assert_frame_equal(&f, &samples[i]);
		pos += size;
		assert_int_equal(pos, ends[i]);
	}
	assert_int_equal(decode(buf + pos, len - pos, SLUICE_FRAME_DEFAULT_MAX, NULL, NULL, NULL),
			 0);
}

/*
 * frame_put_data_prefix() and frame_put_verdict_prefix() followed by the
 * bytes make the same frame frame_encode() makes.
 */
static void test_prefix_writers(void **state)
{
	static const size_t lens[] = { 0, 1, 5, sizeof(payload) - 1 };

	for (size_t i = 0; i < ARRAY_SIZE(lens); i++) {
		uint8_t buf[BUF_SIZE], want[BUF_SIZE];
		struct frame f, d = { .type = SLUICE_FRAME_DATA,
				      .data = { .flow = 0x1122334455667788ull,
						.dir = SLUICE_DIR_IN,
						.offset = UINT64_MAX - 1,
						.bytes = payload,
						.len = lens[i] } };
		size_t size;

		memset(buf, 0xee, sizeof(buf));
		frame_put_data_prefix(buf, d.data.flow, d.data.dir, d.data.offset, lens[i]);
		memcpy(buf + FRAME_DATA_PREFIX, payload, lens[i]);
		assert_int_equal(decode(buf, FRAME_DATA_PREFIX + lens[i], SLUICE_FRAME_DEFAULT_MAX,
					&f, &size, NULL),
				 1);
		assert_int_equal(size, FRAME_DATA_PREFIX + lens[i]);
		assert_frame_equal(&f, &d);
		assert_int_equal(encode(want, sizeof(want), &d), size);
		assert_memory_equal(buf, want, size);
	}

	static const uint8_t ops[] = { SLUICE_VERDICT_REPLACE, SLUICE_VERDICT_INJECT,
				       SLUICE_VERDICT_PASS, SLUICE_VERDICT_DROP };
	for (size_t i = 0; i < ARRAY_SIZE(ops); i++) {
		for (size_t j = 0; j < ARRAY_SIZE(lens); j++) {
			uint8_t buf[BUF_SIZE], want[BUF_SIZE];
			size_t len = ops[i] == SLUICE_VERDICT_PASS || ops[i] == SLUICE_VERDICT_DROP
					     ? 0
					     : lens[j];
			struct frame f, v = verdict(ops[i], 1000, 2000, payload, len);
			size_t size;

			v.verdict.dir = SLUICE_DIR_OUT;
			memset(buf, 0xee, sizeof(buf));
			frame_put_verdict_prefix(buf, v.verdict.flow, v.verdict.dir, v.verdict.op,
						 v.verdict.from, v.verdict.to, len);
			memcpy(buf + FRAME_VERDICT_PREFIX, payload, len);
			assert_int_equal(decode(buf, FRAME_VERDICT_PREFIX + len,
						SLUICE_FRAME_DEFAULT_MAX, &f, &size, NULL),
					 1);
			assert_int_equal(size, FRAME_VERDICT_PREFIX + len);
			assert_frame_equal(&f, &v);
			assert_int_equal(encode(want, sizeof(want), &v), size);
			assert_memory_equal(buf, want, size);
		}
	}
}

/* frame_encode() refuses a buffer one byte too small, at every size. */
static void test_encode_nobufs(void **state)
{
	for (size_t i = 0; i < nsamples; i++) {
		size_t n = frame_size(&samples[i]);

		for (size_t cap = 0; cap < n; cap++) {
			/* Exactly cap bytes, so ASan sees any write past them. */
			uint8_t *buf = malloc(cap ? cap : 1);

			assert_non_null(buf);
			assert_int_equal(frame_encode(buf, cap, &samples[i]), -ENOBUFS);
			free(buf);
		}
		uint8_t *buf = malloc(n);

		assert_non_null(buf);
		assert_int_equal(frame_encode(buf, n, &samples[i]), (ssize_t)n);
		free(buf);
	}
}

/*
 * SUBSCRIBE's length must be exactly its fixed part and nports ranges: a
 * range more or less, or a count above SLUICE_SUB_MAX_PORTS even with the
 * matching length, is refused.
 */
static void test_subscribe(void **state)
{
	static uint8_t buf[BUF_SIZE];
	struct frame f = subscribe(SLUICE_SUB_OUT, 2, 8000), got;
	size_t n = encode(buf, sizeof(buf), &f), size;

	assert_int_equal(n, SLUICE_FRAME_HEADER_SIZE + FRAME_SUBSCRIBE_BODY + 2 * 4);
	assert_int_equal(decode(buf, n, SLUICE_FRAME_DEFAULT_MAX, &got, &size, NULL), 1);
	assert_frame_equal(&got, &f);

	/* nports says 2; the length says 0, 1, 3 or a byte off. */
	static const size_t bad_lengths[] = { SLUICE_FRAME_HEADER_SIZE + FRAME_SUBSCRIBE_BODY,
					      SLUICE_FRAME_HEADER_SIZE + FRAME_SUBSCRIBE_BODY + 4,
					      SLUICE_FRAME_HEADER_SIZE + FRAME_SUBSCRIBE_BODY + 12,
					      SLUICE_FRAME_HEADER_SIZE + FRAME_SUBSCRIBE_BODY + 7,
					      SLUICE_FRAME_HEADER_SIZE + FRAME_SUBSCRIBE_BODY + 9 };
	for (size_t i = 0; i < ARRAY_SIZE(bad_lengths); i++) {
		uint8_t copy[BUF_SIZE] = { 0 };

		memcpy(copy, buf, n);
		/* Ranges that would be valid, so that only the count is wrong. */
		copy[n] = 1;
		copy[n + 2] = 1;
		put32(copy, (uint32_t)bad_lengths[i]);
		assert_bad(copy, bad_lengths[i], SLUICE_FRAME_DEFAULT_MAX);
	}

	/* nports from 0 to the limit with the matching length all decode... */
	for (unsigned np = 0; np <= SLUICE_SUB_MAX_PORTS; np++) {
		f = subscribe(SLUICE_SUB_IN, (uint8_t)np, 1000);
		n = encode(buf, sizeof(buf), &f);
		assert_int_equal(decode(buf, n, SLUICE_FRAME_DEFAULT_MAX, &got, &size, NULL), 1);
		assert_frame_equal(&got, &f);
	}
	/* ...and one more, with its length and valid ranges, does not. */
	n += 4;
	buf[n - 4] = 0x10;
	buf[n - 3] = 0;
	buf[n - 2] = 0x20;
	buf[n - 1] = 0;
	buf[SLUICE_FRAME_HEADER_SIZE + 1] = SLUICE_SUB_MAX_PORTS + 1;
	put32(buf, (uint32_t)n);
	assert_bad(buf, n, SLUICE_FRAME_DEFAULT_MAX);
	buf[SLUICE_FRAME_HEADER_SIZE + 1] = 255;
	assert_bad(buf, n, SLUICE_FRAME_DEFAULT_MAX);

	/* frame_encode() will not write more ranges than the limit. */
	f = subscribe(SLUICE_SUB_IN, SLUICE_SUB_MAX_PORTS, 1000);
	f.subscribe.nports = SLUICE_SUB_MAX_PORTS + 1;
	assert_int_equal(frame_encode(buf, sizeof(buf), &f), -EINVAL);
}

/* frame_encode() refuses over-long strings and unknown types with -EINVAL. */
static void test_encode_invalid(void **state)
{
	uint8_t buf[BUF_SIZE];
	struct frame f;

	f = *sample_of(SLUICE_FRAME_HELLO);
	f.hello.name = name_max;
	f.hello.name_len = SLUICE_NAME_MAX + 1;
	assert_int_equal(frame_encode(buf, sizeof(buf), &f), -EINVAL);

	f = *sample_of(SLUICE_FRAME_OPEN);
	f.open.comm = comm_max;
	f.open.comm_len = SLUICE_COMM_MAX + 1;
	assert_int_equal(frame_encode(buf, sizeof(buf), &f), -EINVAL);

	f = *sample_of(SLUICE_FRAME_ERROR);
	f.error.text = text_max;
	f.error.text_len = SLUICE_ERROR_TEXT_MAX + 1;
	assert_int_equal(frame_encode(buf, sizeof(buf), &f), -EINVAL);

	/* An over-long name is -EINVAL even when the buffer is also too small. */
	f = *sample_of(SLUICE_FRAME_HELLO);
	f.hello.name = name_max;
	f.hello.name_len = SLUICE_NAME_MAX + 1;
	assert_int_equal(frame_encode(buf, 4, &f), -EINVAL);

	static const uint8_t bad_types[] = { 0, SLUICE_FRAME_TYPE_MAX + 1, 255 };
	for (size_t i = 0; i < ARRAY_SIZE(bad_types); i++) {
		f = *sample_of(SLUICE_FRAME_CLOSE);
		f.type = bad_types[i];
		assert_int_equal(frame_size(&f), 0);
		assert_int_equal(frame_encode(buf, sizeof(buf), &f), -EINVAL);
	}
}

/*
 * Shared-memory references: a DATA or VERDICT with the SHM flag carries
 * exactly a position and a length, only replace and inject may use it, and
 * SHM ring sizes are whole pages.
 */
static void test_shm_rules(void **state)
{
	uint8_t buf[BUF_SIZE], ref[FRAME_SHM_REF];
	struct frame f;
	size_t size;
	uint64_t pos, len;

	frame_put_shm_ref(ref, 123, 456);
	assert_int_equal(frame_shm_ref(ref, sizeof(ref), &pos, &len), 0);
	assert_int_equal(pos, 123);
	assert_int_equal(len, 456);
	assert_int_equal(frame_shm_ref(ref, sizeof(ref) - 1, &pos, &len), -EBADMSG);

	/* DATA: 16 bytes with the flag are a reference; other lengths are not. */
	for (size_t n = 0; n <= 20; n++) {
		frame_put_data_prefix(buf, 9, SLUICE_DIR_IN, 0, n);
		memset(buf + FRAME_DATA_PREFIX, 0, n);
		frame_set_flags(buf, SLUICE_DATA_F_SHM);
		assert_int_equal(frame_decode(buf, FRAME_DATA_PREFIX + n, SLUICE_FRAME_DEFAULT_MAX,
					      &f, &size, NULL),
				 n == FRAME_SHM_REF ? 1 : -EBADMSG);
	}
	/* EOF takes no flag. */
	frame_put_data_prefix(buf, 9, SLUICE_DIR_IN, 0, 0);
	buf[4] = SLUICE_FRAME_EOF;
	frame_set_flags(buf, SLUICE_DATA_F_SHM);
	assert_int_equal(
		frame_decode(buf, FRAME_DATA_PREFIX, SLUICE_FRAME_DEFAULT_MAX, &f, &size, NULL),
		-EBADMSG);

	/* VERDICT: only replace and inject, only with a 16-byte reference. */
	for (uint8_t op = 1; op <= SLUICE_VERDICT_OP_MAX; op++) {
		int bytes_op = op == SLUICE_VERDICT_REPLACE || op == SLUICE_VERDICT_INJECT;

		frame_put_verdict_prefix(buf, 9, 0, op, 0, 0, FRAME_SHM_REF);
		frame_put_shm_ref(buf + FRAME_VERDICT_PREFIX, 0, 4);
		frame_set_flags(buf, SLUICE_VERDICT_F_SHM);
		assert_int_equal(frame_decode(buf, FRAME_VERDICT_PREFIX + FRAME_SHM_REF,
					      SLUICE_FRAME_DEFAULT_MAX, &f, &size, NULL),
				 bytes_op ? 1 : -EBADMSG);
		frame_put_verdict_prefix(buf, 9, 0, op, 0, 0, 3);
		frame_set_flags(buf, SLUICE_VERDICT_F_SHM);
		assert_int_equal(frame_decode(buf, FRAME_VERDICT_PREFIX + 3,
					      SLUICE_FRAME_DEFAULT_MAX, &f, &size, NULL),
				 -EBADMSG);
	}

	/* SHM: ring sizes are pages, at least one. */
	{
		static const uint32_t sizes[][2] = {
			{
				4096,
				4096,
			},
			{ 0, 4096 },
			{ 4096, 0 },
			{ 4097, 4096 },
			{ 4096, 6000 },
		};

		for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
			struct frame shm = { .type = SLUICE_FRAME_SHM,
					     .shm = { sizes[i][0], sizes[i][1] } };
			ssize_t n = frame_encode(buf, sizeof(buf), &shm);

			assert_int_equal(n, SLUICE_FRAME_HEADER_SIZE + FRAME_SHM_BODY);
			assert_int_equal(frame_decode(buf, (size_t)n, SLUICE_FRAME_DEFAULT_MAX, &f,
						      &size, NULL),
					 i == 0 ? 1 : -EBADMSG);
		}
	}
}

/* Names for every known type and operation, "unknown" for the rest. */
static void test_names(void **state)
{
	static const char *const types[] = { NULL,    "HELLO",	   "OPEN",    "DATA",
					     "EOF",   "CLOSE",	   "VERDICT", "OPEN_VERDICT",
					     "ERROR", "SUBSCRIBE", "SHM",     "RELEASE" };
	static const char *const ops[] = { NULL,   "pass",	"peek",	    "replace", "inject",
					   "drop", "pass_rest", "shutdown", "reset" };

	for (unsigned t = 0; t <= 255; t++)
		assert_string_equal(frame_type_name((uint8_t)t),
				    t < ARRAY_SIZE(types) && types[t] ? types[t] : "unknown");
	for (unsigned op = 0; op <= 255; op++)
		assert_string_equal(frame_verdict_name((uint8_t)op),
				    op < ARRAY_SIZE(ops) && ops[op] ? ops[op] : "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_prefixes_need_more),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_lengths_header_only),
		cmocka_unit_test(test_unknown_types),
		cmocka_unit_test(test_reserved_bits),
		cmocka_unit_test(test_bit_flips_are_canonical),
		cmocka_unit_test(test_bad_fields),
		cmocka_unit_test(test_overlong_strings),
		cmocka_unit_test(test_back_to_back),
		cmocka_unit_test(test_prefix_writers),
		cmocka_unit_test(test_encode_nobufs),
		cmocka_unit_test(test_subscribe),
		cmocka_unit_test(test_encode_invalid),
		cmocka_unit_test(test_shm_rules),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, setup_samples, NULL);
}
