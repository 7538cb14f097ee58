/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for libsluice (src/lib/client.c) against a fake daemon: a real
 * Unix listening socket in a temporary directory, whose accepted end the test
 * drives by hand, encoding the daemon's frames with frame_encode() and
 * decoding the library's with frame_decode(). sluice_client_connect() blocks
 * until the daemon's HELLO arrives, so a thread accepts, reads the library's
 * HELLO and answers; every assertion stays on the main thread.
 *
 * The library is compiled into this test (tests/meson.build links the unit
 * tests with the daemon's libraries, not libsluice), which also lets the
 * tests compare against its internal constants.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Before cmocka.h, whose fail() macro would take the library's fail() for itself. */
#include "../../src/lib/client.c"

#include <cmocka.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The window the fake daemon announces in its HELLO. */
#define FAKE_WINDOW 65536
/* How long the test waits for a frame from the library. */
#define WAIT_MS 2000

enum event_type {
	EV_OPEN = 1,
	EV_DATA,
	EV_EOF,
	EV_CLOSE,
	EV_ERROR,
	EV_GATHER, /* a sluice_gather() call from on_data, and what it returned */
};

struct event {
	enum event_type type;
	uint64_t flow;
	uint8_t dir;
	uint64_t offset; /* DATA, EOF; GATHER: *ret_start */
	uint8_t data[256];
	size_t len;
	int ret;       /* GATHER */
	bool in_chunk; /* GATHER: the bytes point into the chunk being offered */
	uint32_t code; /* CLOSE reason, ERROR code */
	struct sluice_flow_info info;
};

enum open_action {
	OPEN_RETURN_0, /* return 0 without answering */
	OPEN_LATER,    /* return 1 */
	OPEN_DENY,
	OPEN_REDIRECT,
	OPEN_IGNORE,
};

struct fake {
	char dir[64];
	char path[128];
	int lfd; /* the listening socket */
	int fd;	 /* the daemon's end of the channel */
	struct sluice_client *c;

	/* The library's HELLO as the acceptor thread read it. */
	uint8_t hello[SLUICE_FRAME_HEADER_SIZE + FRAME_HELLO_BODY + SLUICE_NAME_MAX];
	size_t hello_len;
	int accept_err;

	/* Frames from the library: rbuf is what was read, fbuf the current frame. */
	uint8_t rbuf[65536];
	size_t rlen;
	uint8_t fbuf[65536];

	/* What the callbacks do. */
	enum open_action open_action;
	struct sockaddr_storage redirect_to;
	int eof_ret; /* what on_eof returns */
	bool gather; /* on_data gathers (and passes each whole piece) */
	const char *delim;
	size_t max;

	struct event events[512];
	size_t nevents;

	/*
	 * A daemon with workers (worker_acceptor()): it expects nw_expect
	 * connections, announces `workers`, and answers a HELLO that lets it
	 * choose with first_worker. wfd[] are the accepted ends and asked[]
	 * the worker each HELLO named; the connection at index refuse (if
	 * refuse > 0) is closed unanswered, and with wrong_worker the last
	 * one is told it is served by another worker than it asked for.
	 */
	size_t nw_expect, nw;
	int wfd[8];
	uint8_t asked[8];
	uint8_t workers, first_worker;
	int refuse;
	bool wrong_worker;
};

/* The fake daemon. */

static void read_exactly(int fd, uint8_t *buf, size_t len, int *err)
{
	while (len && !*err) {
		ssize_t n = read(fd, buf, len);

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
		} else if (n == 0) {
			*err = ECONNRESET;
		} else if (errno != EINTR) {
			*err = errno;
		}
	}
}

static void write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		assert_true(n > 0);
		buf += n;
		len -= (size_t)n;
	}
}

/*
 * Accepts the library's connection, reads its HELLO (one frame: the header
 * says how long) and answers with the daemon's. Reports failure in
 * accept_err only: cmocka's assertions belong to the main thread.
 */
static void *acceptor(void *arg)
{
	struct fake *t = arg;
	struct frame hello = { .type = SLUICE_FRAME_HELLO,
			       .hello = { .version = SLUICE_PROTOCOL_VERSION,
					  .max_frame = SLUICE_FRAME_DEFAULT_MAX,
					  .window = FAKE_WINDOW,
					  .name = (const uint8_t *)"sluiced",
					  .name_len = 7 } };
	uint8_t out[64];
	uint32_t len;
	ssize_t n;

	t->fd = accept4(t->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (t->fd < 0) {
		t->accept_err = errno;
		return NULL;
	}
	read_exactly(t->fd, t->hello, SLUICE_FRAME_HEADER_SIZE, &t->accept_err);
	if (t->accept_err)
		return NULL;
	len = (uint32_t)t->hello[0] | (uint32_t)t->hello[1] << 8 | (uint32_t)t->hello[2] << 16 |
	      (uint32_t)t->hello[3] << 24;
	if (len < SLUICE_FRAME_HEADER_SIZE || len > sizeof(t->hello)) {
		t->accept_err = EBADMSG;
		return NULL;
	}
	read_exactly(t->fd, t->hello + SLUICE_FRAME_HEADER_SIZE, len - SLUICE_FRAME_HEADER_SIZE,
		     &t->accept_err);
	t->hello_len = len;
	n = frame_encode(out, sizeof(out), &hello);
	if (n < 0 || write(t->fd, out, (size_t)n) != n)
		t->accept_err = EIO;
	return NULL;
}

/*
 * The acceptor of a daemon with t->workers workers: accepts t->nw_expect
 * connections one after the other and answers each HELLO with the worker it
 * named, or first_worker when it named none. The library sends the HELLOs of
 * the later connections before it waits for any answer, so answering in
 * order cannot stall.
 */
static void *worker_acceptor(void *arg)
{
	struct fake *t = arg;
	struct frame hello = { .type = SLUICE_FRAME_HELLO,
			       .hello = { .version = SLUICE_PROTOCOL_VERSION,
					  .workers = t->workers,
					  .max_frame = SLUICE_FRAME_DEFAULT_MAX,
					  .window = FAKE_WINDOW,
					  .name = (const uint8_t *)"sluiced",
					  .name_len = 7 } };
	uint8_t in[SLUICE_FRAME_HEADER_SIZE + FRAME_HELLO_BODY + SLUICE_NAME_MAX], out[64];
	uint32_t len;
	ssize_t n;
	int fd;

	for (t->nw = 0; t->nw < t->nw_expect && !t->accept_err;) {
		fd = accept4(t->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			t->accept_err = errno;
			break;
		}
		t->wfd[t->nw++] = fd;
		read_exactly(fd, in, SLUICE_FRAME_HEADER_SIZE, &t->accept_err);
		len = (uint32_t)in[0] | (uint32_t)in[1] << 8;
		if (t->accept_err || len < SLUICE_FRAME_HEADER_SIZE + FRAME_HELLO_BODY ||
		    len > sizeof(in) || in[4] != SLUICE_FRAME_HELLO) {
			t->accept_err = t->accept_err ? t->accept_err : EBADMSG;
			break;
		}
		read_exactly(fd, in + SLUICE_FRAME_HEADER_SIZE, len - SLUICE_FRAME_HEADER_SIZE,
			     &t->accept_err);
		t->asked[t->nw - 1] = in[10];
		if (t->refuse > 0 && (size_t)t->refuse == t->nw - 1) {
			close(fd);
			t->wfd[t->nw - 1] = -1;
			continue;
		}
		hello.hello.worker = in[10] ? in[10] : t->first_worker;
		if (t->wrong_worker && t->nw == t->nw_expect)
			hello.hello.worker = t->first_worker;
		n = frame_encode(out, sizeof(out), &hello);
		if (n < 0 || write(fd, out, (size_t)n) != n)
			t->accept_err = EIO;
	}
	return NULL;
}

static int fake_setup(void **state)
{
	struct timeval tv = { .tv_sec = WAIT_MS / 1000 };
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct fake *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	t->fd = -1;
	strcpy(t->dir, "/tmp/test-client.XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->path, sizeof(t->path), "%s/filter.sock", t->dir);
	strcpy(sun.sun_path, t->path);
	t->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(t->lfd >= 0);
	/* Bounds accept() in the acceptor thread should the library never connect. */
	assert_int_equal(setsockopt(t->lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	assert_int_equal(bind(t->lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(t->lfd, 4), 0);
	t->delim = "\n";
	t->max = 1024;
	*state = t;
	return 0;
}

static int fake_teardown(void **state)
{
	struct fake *t = *state;

	sluice_client_free(t->c);
	for (size_t i = 0; i < t->nw; i++)
		if (t->wfd[i] >= 0 && t->wfd[i] != t->fd)
			close(t->wfd[i]);
	if (t->fd >= 0)
		close(t->fd);
	close(t->lfd);
	unlink(t->path);
	rmdir(t->dir);
	free(t);
	return 0;
}

/* Callbacks: each records what it saw, and some act as the test asks. */

static struct event *record(struct fake *t, enum event_type type, uint64_t flow)
{
	struct event *e;

	assert_true(t->nevents < ARRAY_SIZE(t->events));
	e = &t->events[t->nevents++];
	memset(e, 0, sizeof(*e));
	e->type = type;
	e->flow = flow;
	return e;
}

static void copy_bytes(struct event *e, const uint8_t *data, size_t len)
{
	assert_true(len <= sizeof(e->data));
	memcpy(e->data, data, len);
	e->len = len;
}

static int on_open(struct sluice_client *c, const struct sluice_flow_info *info, void *user)
{
	struct fake *t = user;
	struct event *e = record(t, EV_OPEN, info->id);

	e->info = *info;
	switch (t->open_action) {
	case OPEN_RETURN_0:
		return 0;
	case OPEN_LATER:
		return 1;
	case OPEN_DENY:
		assert_int_equal(sluice_deny(c, info->id), 0);
		return 0;
	case OPEN_REDIRECT:
		assert_int_equal(sluice_redirect(c, info->id, (struct sockaddr *)&t->redirect_to,
						 sizeof(t->redirect_to)),
				 0);
		return 0;
	case OPEN_IGNORE:
		assert_int_equal(sluice_ignore(c, info->id), 0);
		return 0;
	}
	return -EINVAL;
}

/*
 * Gathering: every whole piece is passed and gathering goes on after it in
 * the same chunk, the loop the header describes.
 */
static int gather_chunk_cb(struct fake *t, uint64_t flow, enum sluice_dir dir, uint64_t offset,
			   const uint8_t *data, size_t len)
{
	while (len) {
		const uint8_t *got = (const uint8_t *)"untouched";
		uint64_t start = 12345;
		size_t glen = 0, adv;
		struct event *e = record(t, EV_GATHER, flow);
		int r = sluice_gather(t->c, flow, dir, offset, data, len, t->delim,
				      strlen(t->delim), t->max, &start, &got, &glen);

		e->dir = dir;
		e->ret = r;
		if (r != 1) {
			/* Output parameters are written only on success. */
			assert_int_equal(start, 12345);
			assert_int_equal(glen, 0);
			return 0;
		}
		e->offset = start;
		e->in_chunk = got >= data && got + glen <= data + len;
		copy_bytes(e, got, glen);
		assert_int_equal(sluice_pass(t->c, flow, dir, start + glen), 0);
		adv = (size_t)(start + glen - offset);
		offset += adv;
		data += adv;
		len -= adv;
	}
	return 0;
}

static int on_data(struct sluice_client *c, uint64_t flow, enum sluice_dir dir, uint64_t offset,
		   const uint8_t *data, size_t len, void *user)
{
	struct fake *t = user;
	struct event *e = record(t, EV_DATA, flow);

	e->dir = dir;
	e->offset = offset;
	copy_bytes(e, data, len);
	if (t->gather)
		return gather_chunk_cb(t, flow, dir, offset, data, len);
	return 0;
}

static int on_eof(struct sluice_client *c, uint64_t flow, enum sluice_dir dir, uint64_t offset,
		  void *user)
{
	struct fake *t = user;
	struct event *e = record(t, EV_EOF, flow);

	e->dir = dir;
	e->offset = offset;
	return t->eof_ret;
}

static void on_close(struct sluice_client *c, uint64_t flow, uint32_t reason, void *user)
{
	record(user, EV_CLOSE, flow)->code = reason;
}

static void on_error(struct sluice_client *c, uint64_t flow, uint32_t code, const char *text,
		     void *user)
{
	struct event *e = record(user, EV_ERROR, flow);

	e->code = code;
	copy_bytes(e, (const uint8_t *)text, strlen(text));
}

static const struct sluice_callbacks all_callbacks = {
	.sz = sizeof(struct sluice_callbacks),
	.on_open = on_open,
	.on_data = on_data,
	.on_eof = on_eof,
	.on_close = on_close,
	.on_error = on_error,
};

/* Helpers. */

/* Connects the library to the fake daemon and checks its HELLO. */
static void connect_with(struct fake *t, struct sluice_client_opts *opts,
			 const struct sluice_callbacks *cb)
{
	pthread_t th;
	struct frame f;
	size_t size;

	opts->path = t->path;
	assert_int_equal(pthread_create(&th, NULL, acceptor, t), 0);
	assert_int_equal(sluice_client_connect(opts, cb, t, &t->c), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(t->accept_err, 0);
	assert_non_null(t->c);

	assert_int_equal(
		frame_decode(t->hello, t->hello_len, SLUICE_FRAME_DEFAULT_MAX, &f, &size, NULL), 1);
	assert_int_equal(f.type, SLUICE_FRAME_HELLO);
	assert_int_equal(f.hello.version, SLUICE_PROTOCOL_VERSION);
	assert_int_equal(f.hello.max_frame, CLIENT_MAX_FRAME);
	assert_int_equal(f.hello.features, opts->features);
}

static void connect_default(struct fake *t, uint32_t features)
{
	struct sluice_client_opts opts = { .sz = sizeof(opts), .features = features };

	connect_with(t, &opts, &all_callbacks);
}

static void send_frame(struct fake *t, const struct frame *f)
{
	uint8_t buf[4096];
	ssize_t n = frame_encode(buf, sizeof(buf), f);

	assert_true(n > 0);
	write_all(t->fd, buf, (size_t)n);
}

static void send_open(struct fake *t, uint64_t flow, uint8_t flags, uint32_t window)
{
	struct frame f = { .type = SLUICE_FRAME_OPEN,
			   .flags = flags,
			   .open = { .flow = flow,
				     .family = 4,
				     .src_port = 40000,
				     .dst_port = 80,
				     .src = { 10, 0, 0, 1 },
				     .dst = { 10, 0, 0, 2 },
				     .window = window } };

	send_frame(t, &f);
}

static void send_data_flags(struct fake *t, uint64_t flow, uint8_t dir, uint64_t offset,
			    const char *bytes, size_t len, uint8_t flags)
{
	struct frame f = { .type = SLUICE_FRAME_DATA,
			   .flags = flags,
			   .data = { .flow = flow,
				     .dir = dir,
				     .offset = offset,
				     .bytes = (const uint8_t *)bytes,
				     .len = len } };

	send_frame(t, &f);
}

static void send_data(struct fake *t, uint64_t flow, uint8_t dir, uint64_t offset, const char *s)
{
	send_data_flags(t, flow, dir, offset, s, strlen(s), 0);
}

static void send_reoffer(struct fake *t, uint64_t flow, uint8_t dir, uint64_t offset, const char *s)
{
	send_data_flags(t, flow, dir, offset, s, strlen(s), SLUICE_DATA_F_REOFFER);
}

static void send_eof(struct fake *t, uint64_t flow, uint8_t dir, uint64_t offset)
{
	struct frame f = { .type = SLUICE_FRAME_EOF,
			   .data = { .flow = flow, .dir = dir, .offset = offset } };

	send_frame(t, &f);
}

static void send_close(struct fake *t, uint64_t flow, uint32_t reason)
{
	struct frame f = { .type = SLUICE_FRAME_CLOSE,
			   .close = { .flow = flow, .reason = reason } };

	send_frame(t, &f);
}

static void send_error(struct fake *t, uint64_t flow, uint32_t code, uint8_t ref_type)
{
	struct frame f = { .type = SLUICE_FRAME_ERROR,
			   .error = { .flow = flow,
				      .code = code,
				      .ref_type = ref_type,
				      .text = (const uint8_t *)"refused",
				      .text_len = 7 } };

	send_frame(t, &f);
}

/*
 * Runs the library on everything the fake daemon has sent. On a Unix stream
 * socket a write is in the peer's queue when write() returns, so one dispatch
 * sees it all; the loop covers more than one read's worth. Returns the first
 * non-zero result.
 */
static int dispatch(struct fake *t)
{
	struct pollfd p = { .fd = sluice_client_fd(t->c), .events = POLLIN };
	int r;

	do {
		r = sluice_client_dispatch(t->c);
		if (r != 0)
			return r;
	} while (poll(&p, 1, 0) > 0);
	return 0;
}

/* The next frame the library sent, valid until the next call. */
static void next_frame(struct fake *t, struct frame *ret)
{
	struct pollfd p = { .fd = t->fd, .events = POLLIN };
	size_t size;
	int r;

	for (;;) {
		r = frame_decode(t->rbuf, t->rlen, SLUICE_FRAME_HARD_MAX, ret, &size, NULL);
		assert_true(r >= 0);
		if (r == 1)
			break;
		assert_int_equal(poll(&p, 1, WAIT_MS), 1);
		ssize_t n = read(t->fd, t->rbuf + t->rlen, sizeof(t->rbuf) - t->rlen);

		assert_true(n > 0);
		t->rlen += (size_t)n;
	}
	assert_true(size <= sizeof(t->fbuf));
	memcpy(t->fbuf, t->rbuf, size);
	memmove(t->rbuf, t->rbuf + size, t->rlen - size);
	t->rlen -= size;
	assert_int_equal(frame_decode(t->fbuf, size, SLUICE_FRAME_HARD_MAX, ret, &size, NULL), 1);
}

/* The library has sent nothing (more). */
static void assert_no_frame(struct fake *t)
{
	struct pollfd p = { .fd = t->fd, .events = POLLIN };

	assert_int_equal(t->rlen, 0);
	assert_int_equal(poll(&p, 1, 50), 0);
}

static void assert_verdict(struct fake *t, uint64_t flow, uint8_t dir, uint8_t op, uint64_t to)
{
	struct frame f;

	next_frame(t, &f);
	assert_int_equal(f.type, SLUICE_FRAME_VERDICT);
	assert_int_equal(f.verdict.flow, flow);
	assert_int_equal(f.verdict.dir, dir);
	assert_int_equal(f.verdict.op, op);
	assert_int_equal(f.verdict.to, to);
}

static void assert_open_verdict(struct fake *t, uint64_t flow, uint8_t action,
				struct frame_open_verdict *ret)
{
	struct frame f;

	next_frame(t, &f);
	assert_int_equal(f.type, SLUICE_FRAME_OPEN_VERDICT);
	assert_int_equal(f.open_verdict.flow, flow);
	assert_int_equal(f.open_verdict.action, action);
	if (ret)
		*ret = f.open_verdict;
}

static void assert_data_event(const struct event *e, uint64_t flow, uint8_t dir, uint64_t offset,
			      const char *s)
{
	assert_int_equal(e->type, EV_DATA);
	assert_int_equal(e->flow, flow);
	assert_int_equal(e->dir, dir);
	assert_int_equal(e->offset, offset);
	assert_int_equal(e->len, strlen(s));
	assert_memory_equal(e->data, s, e->len);
}

static void assert_gather_event(const struct event *e, int ret, uint64_t start, const char *s,
				bool in_chunk)
{
	assert_int_equal(e->type, EV_GATHER);
	assert_int_equal(e->ret, ret);
	if (ret != 1)
		return;
	assert_int_equal(e->offset, start);
	assert_int_equal(e->len, strlen(s));
	assert_memory_equal(e->data, s, e->len);
	assert_int_equal(e->in_chunk, in_chunk);
}

/* Tests. */

/* The HELLO names the filter; no SUBSCRIBE follows when it wants everything. */
static void test_hello(void **state)
{
	struct fake *t = *state;
	struct sluice_client_opts opts = { .sz = sizeof(opts),
					   .name = "tester",
					   .features = SLUICE_FEATURE_OPEN_VERDICT,
					   .dirs = SLUICE_SUB_OUT | SLUICE_SUB_IN };
	struct frame f;
	size_t size;

	connect_with(t, &opts, &all_callbacks);
	assert_int_equal(
		frame_decode(t->hello, t->hello_len, SLUICE_FRAME_DEFAULT_MAX, &f, &size, NULL), 1);
	assert_int_equal(f.hello.name_len, 6);
	assert_memory_equal(f.hello.name, "tester", 6);
	assert_int_equal(sluice_client_max_payload(t->c),
			 SLUICE_FRAME_DEFAULT_MAX - FRAME_VERDICT_PREFIX);
	assert_int_equal(dispatch(t), 0);
	assert_no_frame(t);
}

/* A subscription is sent right behind the HELLO, with the directions and ports given. */
static void test_subscribe(void **state)
{
	struct fake *t = *state;
	static const struct sluice_port_range ports[] = { { 80, 80 },
							  { 8000, 8999 },
							  { 1, 65535 } };
	struct sluice_client_opts opts = { .sz = sizeof(opts),
					   .dirs = SLUICE_SUB_OUT,
					   .ports = ports,
					   .nports = ARRAY_SIZE(ports) };
	struct frame f;

	connect_with(t, &opts, &all_callbacks);
	next_frame(t, &f);
	assert_int_equal(f.type, SLUICE_FRAME_SUBSCRIBE);
	assert_int_equal(f.subscribe.dirs, SLUICE_SUB_OUT);
	assert_int_equal(f.subscribe.nports, ARRAY_SIZE(ports));
	for (size_t i = 0; i < ARRAY_SIZE(ports); i++) {
		assert_int_equal(f.subscribe.ports[i].lo, ports[i].lo);
		assert_int_equal(f.subscribe.ports[i].hi, ports[i].hi);
	}
	assert_no_frame(t);
}

/* Ports alone: dirs 0 means both directions. */
static void test_subscribe_ports_only(void **state)
{
	struct fake *t = *state;
	static const struct sluice_port_range port = { 443, 443 };
	struct sluice_client_opts opts = { .sz = sizeof(opts), .ports = &port, .nports = 1 };
	struct frame f;

	connect_with(t, &opts, &all_callbacks);
	next_frame(t, &f);
	assert_int_equal(f.type, SLUICE_FRAME_SUBSCRIBE);
	assert_int_equal(f.subscribe.dirs, SLUICE_SUB_OUT | SLUICE_SUB_IN);
	assert_int_equal(f.subscribe.nports, 1);
	assert_int_equal(f.subscribe.ports[0].lo, 443);
	assert_int_equal(f.subscribe.ports[0].hi, 443);
	assert_no_frame(t);
}

/* A direction alone: no ports, every port. */
static void test_subscribe_dir_only(void **state)
{
	struct fake *t = *state;
	struct sluice_client_opts opts = { .sz = sizeof(opts), .dirs = SLUICE_SUB_IN };
	struct frame f;

	connect_with(t, &opts, &all_callbacks);
	next_frame(t, &f);
	assert_int_equal(f.type, SLUICE_FRAME_SUBSCRIBE);
	assert_int_equal(f.subscribe.dirs, SLUICE_SUB_IN);
	assert_int_equal(f.subscribe.nports, 0);
	assert_no_frame(t);
}

/*
 * Bad subscriptions fail with -EINVAL before anything is connected (the
 * path does not exist, so getting that far would give -ENOENT), and leave
 * *ret_client alone.
 */
static void test_subscribe_invalid(void **state)
{
	struct sluice_port_range many[SLUICE_SUB_MAX_PORTS + 1];
	static const struct sluice_port_range zero = { 0, 10 }, reversed = { 81, 80 };
	struct sluice_client *c = (struct sluice_client *)state;
	struct sluice_client_opts opts;

	for (size_t i = 0; i < ARRAY_SIZE(many); i++)
		many[i] = (struct sluice_port_range){ (uint16_t)(i + 1), (uint16_t)(i + 1) };
	struct {
		unsigned dirs;
		const struct sluice_port_range *ports;
		size_t nports;
	} cases[] = {
		{ 4, NULL, 0 },
		{ SLUICE_SUB_OUT | 0x100, NULL, 0 },
		{ 0, many, SLUICE_SUB_MAX_PORTS + 1 },
		{ 0, &zero, 1 },
		{ SLUICE_SUB_IN, &reversed, 1 },
		{ 0, NULL, 1 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		opts = (struct sluice_client_opts){ .sz = sizeof(opts),
						    .path = "/nonexistent/filter.sock",
						    .dirs = cases[i].dirs,
						    .ports = cases[i].ports,
						    .nports = cases[i].nports };
		assert_int_equal(sluice_client_connect(&opts, &all_callbacks, NULL, &c), -EINVAL);
		assert_ptr_equal(c, (struct sluice_client *)state);
	}
	/* The limit itself is fine; it fails only at connecting. */
	opts.dirs = 0;
	opts.ports = many;
	opts.nports = SLUICE_SUB_MAX_PORTS;
	assert_int_equal(sluice_client_connect(&opts, &all_callbacks, NULL, &c), -ENOENT);
}

/*
 * A caller built against the older, shorter options struct never has its
 * bytes beyond sz read: garbage there sends no subscription.
 */
static void test_subscribe_old_opts(void **state)
{
	struct fake *t = *state;
	struct sluice_client_opts opts;

	memset(&opts, 0xa5, sizeof(opts));
	opts.sz = offsetof(struct sluice_client_opts, dirs);
	opts.name = NULL;
	opts.features = 0;
	connect_with(t, &opts, &all_callbacks);
	assert_no_frame(t);
}

/* Without SLUICE_OPEN_F_VERDICT nothing is sent and connect-time verdicts are refused. */
static void test_open_no_verdict(void **state)
{
	struct fake *t = *state;
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(80) };

	connect_default(t, 0);
	send_open(t, 7, 0, 0);
	assert_int_equal(dispatch(t), 0);
	assert_int_equal(t->nevents, 1);
	assert_int_equal(t->events[0].type, EV_OPEN);
	assert_int_equal(t->events[0].info.verdict_wanted, 0);
	assert_int_equal(t->events[0].info.dirs, SLUICE_SUB_OUT | SLUICE_SUB_IN);
	assert_int_equal(t->events[0].info.window, FAKE_WINDOW);
	assert_no_frame(t);

	assert_int_equal(sluice_allow(t->c, 7), -EINVAL);
	assert_int_equal(sluice_deny(t->c, 7), -EINVAL);
	assert_int_equal(sluice_redirect(t->c, 7, (struct sockaddr *)&sin, sizeof(sin)), -EINVAL);
	assert_int_equal(sluice_ignore(t->c, 7), -EINVAL);
	assert_int_equal(sluice_allow(t->c, 8), -ENOENT);
	assert_int_equal(sluice_client_flush(t->c), 0);
	assert_no_frame(t);
}

/* on_open returning 0 without an answer allows; the directions come from the flags. */
static void test_open_default_allow(void **state)
{
	struct fake *t = *state;
	struct frame_open_verdict v;

	connect_default(t, SLUICE_FEATURE_OPEN_VERDICT);
	send_open(t, 11, SLUICE_OPEN_F_VERDICT | SLUICE_OPEN_F_IN_ONLY, 4096);
	send_open(t, 12, SLUICE_OPEN_F_VERDICT | SLUICE_OPEN_F_OUT_ONLY, 0);
	assert_int_equal(dispatch(t), 0);
	assert_int_equal(t->nevents, 2);
	assert_int_equal(t->events[0].info.verdict_wanted, 1);
	assert_int_equal(t->events[0].info.dirs, SLUICE_SUB_IN);
	assert_int_equal(t->events[0].info.window, 4096);
	assert_int_equal(t->events[1].info.dirs, SLUICE_SUB_OUT);

	assert_open_verdict(t, 11, SLUICE_OPEN_ALLOW, &v);
	assert_int_equal(v.family, 0);
	assert_int_equal(v.port, 0);
	assert_open_verdict(t, 12, SLUICE_OPEN_ALLOW, NULL);
	assert_no_frame(t);

	/* Once answered, no second answer. */
	assert_int_equal(sluice_allow(t->c, 11), -EINVAL);
	assert_int_equal(sluice_deny(t->c, 12), -EINVAL);

	/* Only the offered direction may carry DATA. */
	send_data(t, 11, SLUICE_DIR_IN, 0, "in");
	assert_int_equal(dispatch(t), 0);
	send_data(t, 11, SLUICE_DIR_OUT, 0, "out");
	assert_int_equal(dispatch(t), -EPROTO);
}

/* Without on_open, a flow that waits for a verdict is allowed. */
static void test_open_null_callback(void **state)
{
	struct fake *t = *state;
	struct sluice_client_opts opts = { .sz = sizeof(opts),
					   .features = SLUICE_FEATURE_OPEN_VERDICT };
	struct sluice_callbacks cb = { .sz = sizeof(cb) };

	connect_with(t, &opts, &cb);
	send_open(t, 21, SLUICE_OPEN_F_VERDICT, 0);
	send_open(t, 22, 0, 0);
	assert_int_equal(dispatch(t), 0);
	assert_open_verdict(t, 21, SLUICE_OPEN_ALLOW, NULL);
	assert_no_frame(t);
}

/* Deny from on_open; and a deny given later, after on_open returned 1. */
static void test_open_deny(void **state)
{
	struct fake *t = *state;

	connect_default(t, SLUICE_FEATURE_OPEN_VERDICT);
	t->open_action = OPEN_DENY;
	send_open(t, 31, SLUICE_OPEN_F_VERDICT, 0);
	assert_int_equal(dispatch(t), 0);
	assert_open_verdict(t, 31, SLUICE_OPEN_DENY, NULL);
	assert_no_frame(t);

	t->open_action = OPEN_LATER;
	send_open(t, 32, SLUICE_OPEN_F_VERDICT, 0);
	assert_int_equal(dispatch(t), 0);
	assert_no_frame(t);
	assert_int_equal(sluice_deny(t->c, 32), 0);
	assert_int_equal(sluice_deny(t->c, 32), -EINVAL);
	assert_int_equal(sluice_allow(t->c, 32), -EINVAL);
	assert_int_equal(sluice_client_flush(t->c), 0);
	assert_open_verdict(t, 32, SLUICE_OPEN_DENY, NULL);
	assert_no_frame(t);

	/* The daemon closes a denied flow; on_close follows as for any flow. */
	send_close(t, 32, ECONNREFUSED);
	assert_int_equal(dispatch(t), 0);
	assert_int_equal(t->events[t->nevents - 1].type, EV_CLOSE);
	assert_int_equal(sluice_deny(t->c, 32), -ENOENT);
}

/* Redirect carries the address family, port and address; bad addresses are -EINVAL. */
static void test_open_redirect(void **state)
{
	struct fake *t = *state;
	struct sockaddr_in *sin = (struct sockaddr_in *)&t->redirect_to;
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(8443) };
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	static const uint8_t v4[4] = { 192, 0, 2, 7 };
	struct frame_open_verdict v;

	connect_default(t, SLUICE_FEATURE_OPEN_VERDICT);
	sin->sin_family = AF_INET;
	sin->sin_port = htons(8080);
	memcpy(&sin->sin_addr, v4, 4);
	t->open_action = OPEN_REDIRECT;
	send_open(t, 41, SLUICE_OPEN_F_VERDICT, 0);
	assert_int_equal(dispatch(t), 0);
	assert_open_verdict(t, 41, SLUICE_OPEN_REDIRECT, &v);
	assert_int_equal(v.family, 4);
	assert_int_equal(v.port, 8080);
	assert_memory_equal(v.addr, v4, 4);
	for (size_t i = 4; i < 16; i++)
		assert_int_equal(v.addr[i], 0);

	t->open_action = OPEN_LATER;
	send_open(t, 42, SLUICE_OPEN_F_VERDICT, 0);
	assert_int_equal(dispatch(t), 0);
	assert_int_equal(sluice_redirect(t->c, 42, NULL, 0), -EINVAL);
	assert_int_equal(sluice_redirect(t->c, 42, (struct sockaddr *)&sun, sizeof(sun)), -EINVAL);
	assert_int_equal(sluice_redirect(t->c, 42, (struct sockaddr *)&sin6, sizeof(sin6) - 1),
			 -EINVAL);
	sin6.sin6_port = 0;
	assert_int_equal(sluice_redirect(t->c, 42, (struct sockaddr *)&sin6, sizeof(sin6)),
			 -EINVAL);
	sin6.sin6_port = htons(8443);
	for (int i = 0; i < 16; i++)
		sin6.sin6_addr.s6_addr[i] = (uint8_t)(0x20 + i);
	/* The refusals left the flow waiting for its answer. */
	assert_int_equal(sluice_redirect(t->c, 42, (struct sockaddr *)&sin6, sizeof(sin6)), 0);
	assert_int_equal(sluice_client_flush(t->c), 0);
	assert_open_verdict(t, 42, SLUICE_OPEN_REDIRECT, &v);
	assert_int_equal(v.family, 6);
	assert_int_equal(v.port, 8443);
	assert_memory_equal(v.addr, sin6.sin6_addr.s6_addr, 16);
	assert_no_frame(t);
}

/*
 * An ignored flow is forgotten at once: frames the daemon had sent for it
 * before reading the ignore are dropped without callbacks, and the channel
 * goes on.
 */
static void test_open_ignore(void **state)
{
	struct fake *t = *state;

	connect_default(t, SLUICE_FEATURE_OPEN_VERDICT);
	t->open_action = OPEN_IGNORE;
	send_open(t, 51, SLUICE_OPEN_F_VERDICT, 0);
	assert_int_equal(dispatch(t), 0);
	assert_open_verdict(t, 51, SLUICE_OPEN_IGNORE, NULL);
	assert_int_equal(t->nevents, 1);
	assert_int_equal(sluice_pass(t->c, 51, SLUICE_DIR_OUT, 0), -ENOENT);
	assert_int_equal(sluice_ignore(t->c, 51), -ENOENT);
	assert_null(sluice_flow_user(t->c, 51));

	send_data(t, 51, SLUICE_DIR_OUT, 0, "late");
	send_data(t, 51, SLUICE_DIR_OUT, 4, "r");
	send_reoffer(t, 51, SLUICE_DIR_OUT, 0, "later");
	send_eof(t, 51, SLUICE_DIR_IN, 0);
	send_error(t, 51, SLUICE_ERR_FLOW_CLOSED, SLUICE_FRAME_OPEN_VERDICT);
	send_close(t, 51, 0);
	assert_int_equal(dispatch(t), 0);
	assert_int_equal(t->nevents, 1);
	assert_no_frame(t);

	/* The channel still works. */
	t->open_action = OPEN_RETURN_0;
	send_open(t, 52, 0, 0);
	send_data(t, 52, SLUICE_DIR_OUT, 0, "x");
	assert_int_equal(dispatch(t), 0);
	assert_int_equal(t->nevents, 3);
	assert_data_event(&t->events[2], 52, SLUICE_DIR_OUT, 0, "x");
}

/*
 * When the daemon refuses an ignore (its wait had ended in allow), the
 * library hands the flow back unfiltered: pass_rest for each offered
 * direction, still without callbacks.
 */
static void test_open_ignore_refused(void **state)
{
	struct fake *t = *state;

	connect_default(t, SLUICE_FEATURE_OPEN_VERDICT);
	t->open_action = OPEN_LATER;
	send_open(t, 61, SLUICE_OPEN_F_VERDICT | SLUICE_OPEN_F_IN_ONLY, 0);
	assert_int_equal(dispatch(t), 0);
	send_data(t, 61, SLUICE_DIR_IN, 0, "early");
	assert_int_equal(dispatch(t), 0);
	assert_int_equal(t->nevents, 2);
	assert_int_equal(sluice_ignore(t->c, 61), 0);
	assert_int_equal(sluice_client_flush(t->c), 0);
	assert_open_verdict(t, 61, SLUICE_OPEN_IGNORE, NULL);

	send_error(t, 61, SLUICE_ERR_STATE, SLUICE_FRAME_OPEN_VERDICT);
	send_data(t, 61, SLUICE_DIR_IN, 5, "more");
	assert_int_equal(dispatch(t), 0);
	assert_verdict(t, 61, SLUICE_DIR_IN, SLUICE_VERDICT_PASS_REST, 0);
	assert_no_frame(t);
	assert_int_equal(t->nevents, 2);
}

/*
 * A re-offer after a peek is delivered like any chunk, from an offset before
 * the end of earlier chunks; what the filter decided meanwhile is cut off.
 */
static void test_reoffer(void **state)
{
	struct fake *t = *state;

	connect_default(t, 0);
	send_open(t, 71, 0, 0);
	send_data(t, 71, SLUICE_DIR_OUT, 0, "hello");
	send_data(t, 71, SLUICE_DIR_OUT, 5, " world");
	assert_int_equal(dispatch(t), 0);
	assert_int_equal(sluice_peek(t->c, 71, SLUICE_DIR_OUT, 20), 0);
	assert_int_equal(sluice_client_flush(t->c), 0);
	assert_verdict(t, 71, SLUICE_DIR_OUT, SLUICE_VERDICT_PEEK, 20);

	send_reoffer(t, 71, SLUICE_DIR_OUT, 0, "hello world");
	assert_int_equal(dispatch(t), 0);
	assert_int_equal(t->nevents, 4);
	assert_data_event(&t->events[3], 71, SLUICE_DIR_OUT, 0, "hello world");

	/* A pass on its way when the daemon re-offered from 0. */
	assert_int_equal(sluice_pass(t->c, 71, SLUICE_DIR_OUT, 6), 0);
	send_reoffer(t, 71, SLUICE_DIR_OUT, 0, "hello world");
	/* Wholly decided: dropped. */
	send_reoffer(t, 71, SLUICE_DIR_OUT, 0, "hello ");
	assert_int_equal(dispatch(t), 0);
	assert_int_equal(t->nevents, 5);
	assert_data_event(&t->events[4], 71, SLUICE_DIR_OUT, 6, "world");

	/* New bytes still follow the end of the last non-re-offered chunk. */
	t->eof_ret = 1; /* no shutdown yet, which would discard what is undecided */
	send_data(t, 71, SLUICE_DIR_OUT, 11, "!");
	send_eof(t, 71, SLUICE_DIR_OUT, 12);
	/* A re-offer may come after EOF. */
	send_reoffer(t, 71, SLUICE_DIR_OUT, 6, "world!");
	assert_int_equal(dispatch(t), 0);
	assert_data_event(&t->events[5], 71, SLUICE_DIR_OUT, 11, "!");
	assert_int_equal(t->events[6].type, EV_EOF);
	assert_data_event(&t->events[7], 71, SLUICE_DIR_OUT, 6, "world!");
}

/* A re-offer of bytes never offered is a protocol violation. */
static void test_reoffer_beyond(void **state)
{
	struct fake *t = *state;

	connect_default(t, 0);
	send_open(t, 72, 0, 0);
	send_data(t, 72, SLUICE_DIR_IN, 0, "abc");
	send_reoffer(t, 72, SLUICE_DIR_IN, 0, "abcd");
	assert_int_equal(dispatch(t), -EPROTO);
	assert_int_equal(t->nevents, 2);
}

/* Ordinary DATA must start exactly where the last chunk ended. */
static void test_contiguity(void **state)
{
	static const struct {
		uint64_t flow;
		uint8_t dir;
		uint64_t offset;
		bool after_eof;
	} bad[] = {
		{ 81, SLUICE_DIR_OUT, 4, false }, /* a gap */
		{ 81, SLUICE_DIR_OUT, 2, false }, /* an overlap */
		{ 81, SLUICE_DIR_OUT, 0, false }, /* a repeat */
		{ 81, SLUICE_DIR_IN, 1, false },  /* the other direction starts at 0 */
		{ 99, SLUICE_DIR_OUT, 0, false }, /* a flow never opened */
		{ 81, SLUICE_DIR_OUT, 3, true },  /* after EOF */
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct fake *t;

		fake_setup((void **)&t);
		connect_default(t, 0);
		send_open(t, 81, 0, 0);
		send_data(t, 81, SLUICE_DIR_OUT, 0, "abc");
		if (bad[i].after_eof)
			send_eof(t, 81, SLUICE_DIR_OUT, 3);
		assert_int_equal(dispatch(t), 0);
		send_data(t, bad[i].flow, bad[i].dir, bad[i].offset, "d");
		if (dispatch(t) != -EPROTO)
			fail_msg("case %zu was accepted", i);
		/* The channel is dead for good, and the daemon sees it closed. */
		assert_int_equal(sluice_client_dispatch(t->c), -EPROTO);
		assert_int_equal(sluice_pass(t->c, 81, SLUICE_DIR_OUT, 3), -EPROTO);
		fake_teardown((void **)&t);
	}
}

/* A delimiter straddling 1-byte chunks is found; the bytes come from the library's buffer. */
static void test_gather_bytewise(void **state)
{
	static const char msg[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\nBODY";
	static const char head[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	struct fake *t = *state;
	size_t ngathers = 0;

	connect_default(t, 0);
	t->gather = true;
	t->delim = "\r\n\r\n";
	send_open(t, 91, 0, 0);
	for (size_t i = 0; i < strlen(msg); i++)
		send_data_flags(t, 91, SLUICE_DIR_OUT, i, msg + i, 1, 0);
	assert_int_equal(dispatch(t), 0);

	for (size_t i = 0; i < t->nevents; i++) {
		const struct event *e = &t->events[i];

		if (e->type != EV_GATHER)
			continue;
		ngathers++;
		if (ngathers == strlen(head))
			assert_gather_event(e, 1, 0, head, false);
		else
			assert_gather_event(e, 0, 0, NULL, false);
	}
	assert_int_equal(ngathers, strlen(msg));
	assert_verdict(t, 91, SLUICE_DIR_OUT, SLUICE_VERDICT_PASS, strlen(head));
	assert_no_frame(t);
}

/*
 * Pieces wholly inside a chunk point into it; the unfinished rest is kept
 * and completed from the next chunk.
 */
static void test_gather_zero_copy(void **state)
{
	struct fake *t = *state;

	connect_default(t, 0);
	t->gather = true;
	send_open(t, 92, 0, 0);
	send_data(t, 92, SLUICE_DIR_IN, 0, "line1\nline2\npart");
	assert_int_equal(dispatch(t), 0);
	assert_int_equal(t->nevents, 5);
	assert_gather_event(&t->events[2], 1, 0, "line1\n", true);
	assert_gather_event(&t->events[3], 1, 6, "line2\n", true);
	assert_gather_event(&t->events[4], 0, 0, NULL, false);

	send_data(t, 92, SLUICE_DIR_IN, 16, "ial\nrest");
	assert_int_equal(dispatch(t), 0);
	assert_int_equal(t->nevents, 8);
	assert_gather_event(&t->events[6], 1, 12, "partial\n", false);
	assert_gather_event(&t->events[7], 0, 0, NULL, false);

	assert_verdict(t, 92, SLUICE_DIR_IN, SLUICE_VERDICT_PASS, 6);
	assert_verdict(t, 92, SLUICE_DIR_IN, SLUICE_VERDICT_PASS, 12);
	assert_verdict(t, 92, SLUICE_DIR_IN, SLUICE_VERDICT_PASS, 20);
	assert_no_frame(t);
}

/* max bytes without the delimiter are -EMSGSIZE, in one chunk or several; max itself fits. */
static void test_gather_emsgsize(void **state)
{
	struct fake *t = *state;

	connect_default(t, 0);
	t->gather = true;
	t->max = 8;
	send_open(t, 93, 0, 0);
	send_open(t, 94, 0, 0);
	send_open(t, 95, 0, 0);
	send_data(t, 93, SLUICE_DIR_OUT, 0, "0123456789");
	send_data(t, 94, SLUICE_DIR_OUT, 0, "0123");
	send_data(t, 94, SLUICE_DIR_OUT, 4, "4567");
	send_data(t, 95, SLUICE_DIR_OUT, 0, "0123");
	send_data(t, 95, SLUICE_DIR_OUT, 4, "456\n89");
	assert_int_equal(dispatch(t), 0);
	assert_gather_event(&t->events[4], -EMSGSIZE, 0, NULL, false);
	assert_gather_event(&t->events[6], 0, 0, NULL, false);
	assert_gather_event(&t->events[8], -EMSGSIZE, 0, NULL, false);
	assert_gather_event(&t->events[10], 0, 0, NULL, false);
	assert_gather_event(&t->events[12], 1, 0, "0123456\n", false);
	assert_gather_event(&t->events[13], 0, 0, NULL, false);
	assert_int_equal(t->nevents, 14);
}

/* Arguments: max beyond the flow's window, empty or missing delimiters, unknown flows. */
static void test_gather_args(void **state)
{
	struct fake *t = *state;
	const uint8_t *data;
	uint64_t start;
	size_t len;

	connect_default(t, 0);
	send_open(t, 96, 0, 0);	   /* the window of the daemon's HELLO */
	send_open(t, 97, 0, 1000); /* a window of its own */
	assert_int_equal(dispatch(t), 0);

#define GATHER(flow, delim, dlen, max)                                                             \
	sluice_gather(t->c, flow, SLUICE_DIR_OUT, 0, (const uint8_t *)"a\n", 2, delim, dlen, max,  \
		      &start, &data, &len)
	assert_int_equal(GATHER(96, "\n", 1, FAKE_WINDOW + 1), -EMSGSIZE);
	assert_int_equal(GATHER(96, "\n", 1, FAKE_WINDOW), 1);
	assert_int_equal(GATHER(97, "\n", 1, 1001), -EMSGSIZE);
	assert_int_equal(GATHER(97, "\n", 1, 1000), 1);
	assert_int_equal(GATHER(97, "\n", 0, 1000), -EINVAL);
	assert_int_equal(GATHER(97, NULL, 1, 1000), -EINVAL);
	assert_int_equal(GATHER(97, "abc", 3, 2), -EINVAL);
	assert_int_equal(GATHER(98, "\n", 1, 1000), -ENOENT);
	assert_int_equal(sluice_gather(t->c, 97, 2, 0, (const uint8_t *)"a", 1, "\n", 1, 10, &start,
				       &data, &len),
			 -EINVAL);
#undef GATHER
}

/*
 * A re-offer that holds everything buffered is searched in place; a chunk
 * overlapping the buffer adds only the bytes beyond it; a gap is refused;
 * and deciding bytes of a gather ends it.
 */
static void test_gather_overlap(void **state)
{
	struct fake *t = *state;
	const uint8_t *data;
	uint64_t start;
	size_t len;

	connect_default(t, 0);
	t->gather = true;
	send_open(t, 101, 0, 0);
	send_data(t, 101, SLUICE_DIR_OUT, 0, "k:v\nab");
	send_data(t, 101, SLUICE_DIR_OUT, 6, "c");
	assert_int_equal(dispatch(t), 0);
	assert_gather_event(&t->events[2], 1, 0, "k:v\n", true);
	assert_gather_event(&t->events[3], 0, 0, NULL, false);
	assert_gather_event(&t->events[5], 0, 0, NULL, false);
	assert_verdict(t, 101, SLUICE_DIR_OUT, SLUICE_VERDICT_PASS, 4);

	/* The filter peeks; the daemon re-offers from its decision point. */
	assert_int_equal(sluice_peek(t->c, 101, SLUICE_DIR_OUT, 10), 0);
	assert_int_equal(sluice_client_flush(t->c), 0);
	assert_verdict(t, 101, SLUICE_DIR_OUT, SLUICE_VERDICT_PEEK, 10);
	send_data(t, 101, SLUICE_DIR_OUT, 7, "d\nz");
	t->gather = false; /* this chunk reaches the filter, which waits for the re-offer */
	assert_int_equal(dispatch(t), 0);
	t->gather = true;
	send_reoffer(t, 101, SLUICE_DIR_OUT, 0, "k:v\nabcd\nz");
	assert_int_equal(dispatch(t), 0);
	/* Trimmed to the decided 4, and searched in place from the gather's start. */
	assert_data_event(&t->events[7], 101, SLUICE_DIR_OUT, 4, "abcd\nz");
	assert_gather_event(&t->events[8], 1, 4, "abcd\n", true);
	assert_gather_event(&t->events[9], 0, 0, NULL, false);
	assert_verdict(t, 101, SLUICE_DIR_OUT, SLUICE_VERDICT_PASS, 9);

	/*
	 * Direct calls: z is buffered at [9, 10). Chunks that overlap the
	 * buffer add only the bytes beyond it.
	 */
#define GATHER(off, s)                                                                             \
	sluice_gather(t->c, 101, SLUICE_DIR_OUT, off, (const uint8_t *)(s), strlen(s), "\n", 1,    \
		      100, &start, &data, &len)
	assert_int_equal(GATHER(9, "zy"), 0);
	assert_int_equal(GATHER(11, "x"), 0);
	assert_int_equal(GATHER(13, "w"), -EINVAL); /* 12 was skipped */
	assert_int_equal(GATHER(10, "yxw\n"), 1);
	assert_int_equal(start, 9);
	assert_int_equal(len, 5);
	assert_memory_equal(data, "zyxw\n", 5);

	/* Bytes of a gather under way that the filter decides end it. */
	assert_int_equal(GATHER(20, "abc"), 0);
	assert_int_equal(sluice_drop(t->c, 101, SLUICE_DIR_OUT, 22), 0);
	assert_int_equal(GATHER(23, "d\n"), 1);
	assert_int_equal(start, 23);
	assert_int_equal(len, 2);
#undef GATHER
}

/* Workers: one connection per daemon worker, one client to the caller. */

static int connect_to_workers(struct fake *t, struct sluice_client_opts *opts)
{
	pthread_t th;
	int r;

	opts->path = t->path;
	assert_int_equal(pthread_create(&th, NULL, worker_acceptor, t), 0);
	r = sluice_client_connect(opts, &all_callbacks, t, &t->c);
	assert_int_equal(pthread_join(th, NULL), 0);
	return r;
}

/* Makes the fake daemon's connection i the one send_*() and next_frame() use. */
static void use_conn(struct fake *t, size_t i)
{
	assert_int_equal(t->rlen, 0);
	t->fd = t->wfd[i];
}

static size_t count_fds(void)
{
	char path[64];
	size_t n = 0;

	for (int fd = 0; fd < 1024; fd++) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n += access(path, F_OK) == 0;
	}
	return n;
}

/*
 * A daemon with three workers serves the first connection by worker 2: the
 * library opens connections for workers 1 and 3, sends the subscription on
 * each, polls them through one epoll fd, and answers each flow on the
 * connection it came on.
 */
static void test_workers(void **state)
{
	struct fake *t = *state;
	struct sluice_client_opts opts = { .sz = sizeof(opts), .dirs = SLUICE_SUB_OUT };
	size_t opens = 0, datas = 0;
	int ptr;
	struct frame f;

	t->workers = 3;
	t->first_worker = 2;
	t->nw_expect = 3;
	assert_int_equal(connect_to_workers(t, &opts), 0);
	assert_int_equal(t->accept_err, 0);
	assert_int_equal(t->asked[0], 0);
	assert_int_equal(t->asked[1], 1);
	assert_int_equal(t->asked[2], 3);
	assert_int_equal(t->c->nconns, 3);
	assert_true(t->c->epfd >= 0);
	assert_int_equal(sluice_client_fd(t->c), t->c->epfd);

	for (size_t i = 0; i < 3; i++) {
		use_conn(t, i);
		next_frame(t, &f);
		assert_int_equal(f.type, SLUICE_FRAME_SUBSCRIBE);
		assert_int_equal(f.subscribe.dirs, SLUICE_SUB_OUT);
		send_open(t, 100 + i, SLUICE_OPEN_F_OUT_ONLY, 0);
		send_data(t, 100 + i, SLUICE_DIR_OUT, 0, "abc");
	}
	assert_int_equal(dispatch(t), 0);
	for (size_t i = 0; i < t->nevents; i++) {
		opens += t->events[i].type == EV_OPEN;
		datas += t->events[i].type == EV_DATA;
	}
	assert_int_equal(opens, 3);
	assert_int_equal(datas, 3);

	/* Verdicts given outside the callbacks go back on each flow's connection. */
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(sluice_pass(t->c, 100 + i, SLUICE_DIR_OUT, 3), 0);
	assert_int_equal(sluice_client_flush(t->c), 0);
	for (size_t i = 0; i < 3; i++) {
		use_conn(t, i);
		assert_verdict(t, 100 + i, SLUICE_DIR_OUT, SLUICE_VERDICT_PASS, 3);
		assert_no_frame(t);
	}

	/* And so do those the library gives itself. */
	use_conn(t, 1);
	send_eof(t, 101, SLUICE_DIR_OUT, 3);
	assert_int_equal(dispatch(t), 0);
	assert_verdict(t, 101, SLUICE_DIR_OUT, SLUICE_VERDICT_SHUTDOWN, 0);
	assert_no_frame(t);
	use_conn(t, 0);
	assert_no_frame(t);
	use_conn(t, 2);
	assert_no_frame(t);

	assert_int_equal(sluice_flow_set_user(t->c, 102, &ptr), 0);
	assert_ptr_equal(sluice_flow_user(t->c, 102), &ptr);
	send_close(t, 102, 0);
	assert_int_equal(dispatch(t), 0);
	assert_int_equal(t->events[t->nevents - 1].type, EV_CLOSE);
	assert_int_equal(sluice_flow_set_user(t->c, 102, &ptr), -ENOENT);

	/* A frame about a flow on another connection than its own ends the client. */
	use_conn(t, 1);
	send_close(t, 100, 0);
	assert_int_equal(dispatch(t), -EPROTO);
	assert_int_equal(sluice_pass(t->c, 101, SLUICE_DIR_OUT, 3), -EPROTO);
	/* Every connection is shut down, not only the one at fault. */
	for (size_t i = 0; i < 3; i++) {
		uint8_t b;

		assert_int_equal(read(t->wfd[i], &b, 1), 0);
	}
}

/* A single-worker daemon gets one connection, polled directly, as before workers. */
static void test_workers_one(void **state)
{
	struct fake *t = *state;
	struct sluice_client_opts opts = { .sz = sizeof(opts) };

	t->workers = 1;
	t->first_worker = 1;
	t->nw_expect = 1;
	assert_int_equal(connect_to_workers(t, &opts), 0);
	assert_int_equal(t->accept_err, 0);
	assert_int_equal(t->asked[0], 0);
	assert_int_equal(t->c->nconns, 1);
	/* Polled through an epoll fd too, so that output room shows as POLLIN. */
	assert_true(t->c->epfd >= 0);
	assert_int_equal(sluice_client_fd(t->c), t->c->epfd);
	assert_int_equal(t->c->conns[0].ep_events, EPOLLIN);
}

/*
 * A later connection that fails fails the connect, leaving nothing open:
 * one the daemon closes unanswered, and one served by a worker it did not
 * ask for.
 */
static void test_workers_failed(void **state)
{
	for (int wrong = 0; wrong <= 1; wrong++) {
		struct sluice_client_opts opts = { .sz = sizeof(opts) };
		struct fake *t;
		size_t before;

		fake_setup((void **)&t);
		before = count_fds();
		t->workers = 3;
		t->first_worker = 1;
		t->nw_expect = 3;
		if (wrong)
			t->wrong_worker = true;
		else
			t->refuse = 1;
		assert_int_equal(connect_to_workers(t, &opts), wrong ? -EPROTO : -ECONNRESET);
		assert_null(t->c);
		for (size_t i = 0; i < t->nw; i++)
			if (t->wfd[i] >= 0)
				close(t->wfd[i]);
		t->nw = 0;
		assert_int_equal(count_fds(), before);
		fake_teardown((void **)&t);
	}
}

/*
 * Verdicts that wait for room in one connection's socket make the epoll fd
 * readable once there is room, and only then: a caller that polls it for
 * POLLIN neither stalls nor spins.
 */
/* Verdicts wait for room in connection k of a daemon with `workers`
 * workers: the client's fd turns readable when there is room. */
static void output_wait(struct fake *t, unsigned workers, unsigned k)
{
	static uint8_t big[1 << 20], buf[65536];
	const size_t expect = sizeof(big) + FRAME_VERDICT_PREFIX;
	struct sluice_client_opts opts = { .sz = sizeof(opts) };
	struct pollfd ep;
	int small = 4096;
	size_t got = 0;

	t->workers = workers;
	t->first_worker = 1;
	t->nw_expect = workers;
	assert_int_equal(connect_to_workers(t, &opts), 0);
	ep = (struct pollfd){ .fd = sluice_client_fd(t->c), .events = POLLIN };
	use_conn(t, k);
	send_open(t, 201, 0, 0);
	assert_int_equal(dispatch(t), 0);

	assert_int_equal(
		setsockopt(t->c->conns[k].fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	memset(big, 'x', sizeof(big));
	assert_int_equal(sluice_inject(t->c, 201, SLUICE_DIR_IN, big, sizeof(big)), 0);
	assert_int_equal(sluice_client_dispatch(t->c), 0);
	assert_true(t->c->conns[k].out_pos < t->c->conns[k].out_len);
	assert_int_equal(t->c->conns[k].ep_events, EPOLLIN | EPOLLOUT);
	for (unsigned i = 0; i < workers; i++)
		if (i != k)
			assert_int_equal(t->c->conns[i].ep_events, EPOLLIN);
	assert_int_equal(poll(&ep, 1, 0), 0);

	while (got < expect) {
		struct pollfd fp = { .fd = t->wfd[k], .events = POLLIN };
		ssize_t n;

		if (poll(&fp, 1, 0) == 1) {
			n = read(t->wfd[k], buf, sizeof(buf));
			assert_true(n > 0);
			got += (size_t)n;
			continue;
		}
		assert_int_equal(poll(&ep, 1, WAIT_MS), 1);
		assert_int_equal(sluice_client_dispatch(t->c), 0);
	}
	assert_int_equal(got, expect);
	assert_int_equal(t->c->conns[k].ep_events, EPOLLIN);
	assert_int_equal(poll(&ep, 1, 0), 0);
}

static void test_workers_output_wait(void **state)
{
	output_wait(*state, 2, 1);
}

/* The same with a single connection: a caller that polls for POLLIN only
 * (as examples/throttle.c does) is woken when its verdicts can go. */
static void test_output_wait_one(void **state)
{
	output_wait(*state, 1, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, fake_setup, fake_teardown)
		T(test_hello),
		T(test_subscribe),
		T(test_subscribe_ports_only),
		T(test_subscribe_dir_only),
		cmocka_unit_test(test_subscribe_invalid),
		T(test_subscribe_old_opts),
		T(test_open_no_verdict),
		T(test_open_default_allow),
		T(test_open_null_callback),
		T(test_open_deny),
		T(test_open_redirect),
		T(test_open_ignore),
		T(test_open_ignore_refused),
		T(test_reoffer),
		T(test_reoffer_beyond),
		cmocka_unit_test(test_contiguity),
		T(test_gather_bytewise),
		T(test_gather_zero_copy),
		T(test_gather_emsgsize),
		T(test_gather_args),
		T(test_gather_overlap),
		T(test_workers),
		T(test_workers_one),
		cmocka_unit_test(test_workers_failed),
		T(test_workers_output_wait),
		T(test_output_wait_one),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
