/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "frame.h"

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v;
	p[1] = v >> 8;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v);
	put16(p + 2, v >> 16);
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, v);
	put32(p + 4, v >> 32);
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return get16(p) | (uint32_t)get16(p + 2) << 16;
}

static uint64_t get64(const uint8_t *p)
{
	return get32(p) | (uint64_t)get32(p + 4) << 32;
}

static int all_zero(const uint8_t *p, size_t n)
{
	while (n--)
		if (*p++)
			return 0;
	return 1;
}

static void put_header(uint8_t *buf, uint32_t len, uint8_t type, uint8_t flags)
{
	put32(buf, len);
	buf[4] = type;
	buf[5] = flags;
	put16(buf + 6, 0);
}

/* Per-type body decoders: b is the body, n its length (already bounded). */
typedef const char *(*decode_fn)(const uint8_t *b, size_t n, uint8_t flags, struct frame *f);

static const char *decode_hello(const uint8_t *b, size_t n, uint8_t flags, struct frame *f)
{
	if (n < FRAME_HELLO_BODY)
		return "HELLO too short";
	if (n - FRAME_HELLO_BODY > SLUICE_NAME_MAX)
		return "HELLO name too long";
	if (flags)
		return "HELLO reserved bits set";
	f->hello.version = get16(b);
	f->hello.worker = b[2];
	f->hello.workers = b[3];
	f->hello.max_frame = get32(b + 4);
	f->hello.window = get32(b + 8);
	f->hello.features = get32(b + 12);
	f->hello.name = b + FRAME_HELLO_BODY;
	f->hello.name_len = n - FRAME_HELLO_BODY;
	if (f->hello.version == 0)
		return "HELLO version 0";
	if (f->hello.max_frame < SLUICE_FRAME_MIN_MAX || f->hello.max_frame > SLUICE_FRAME_HARD_MAX)
		return "HELLO max_frame out of range";
	return NULL;
}

static const char *decode_open(const uint8_t *b, size_t n, uint8_t flags, struct frame *f)
{
	size_t fixed = FRAME_OPEN_BODY + (flags & SLUICE_OPEN_F_RESUME ? FRAME_OPEN_RESUME : 0);

	if (n < fixed)
		return "OPEN too short";
	if (n - fixed > SLUICE_COMM_MAX)
		return "OPEN comm too long";
	if (flags & ~(SLUICE_OPEN_F_UID | SLUICE_OPEN_F_PID | SLUICE_OPEN_F_VERDICT |
		      SLUICE_OPEN_F_IN_ONLY | SLUICE_OPEN_F_OUT_ONLY | SLUICE_OPEN_F_RESUME))
		return "OPEN unknown flags";
	if ((flags & SLUICE_OPEN_F_IN_ONLY) && (flags & SLUICE_OPEN_F_OUT_ONLY))
		return "OPEN offers neither direction";
	if (b[9] || get16(b + 14) || get32(b + 60))
		return "OPEN reserved bits set";
	f->open.flow = get64(b);
	f->open.family = b[8];
	if (f->open.family != 4 && f->open.family != 6)
		return "OPEN bad address family";
	f->open.src_port = get16(b + 10);
	f->open.dst_port = get16(b + 12);
	memcpy(f->open.src, b + 16, 16);
	memcpy(f->open.dst, b + 32, 16);
	f->open.uid = get32(b + 48);
	f->open.pid = get32(b + 52);
	f->open.window = get32(b + 56);
	if (flags & SLUICE_OPEN_F_RESUME) {
		for (int d = 0; d < 2; d++) {
			f->open.decided[d] = get64(b + FRAME_OPEN_BODY + 16 * d);
			f->open.offered[d] = get64(b + FRAME_OPEN_BODY + 16 * d + 8);
			if (f->open.decided[d] > f->open.offered[d])
				return "OPEN resume offsets reversed";
		}
	}
	f->open.comm = b + fixed;
	f->open.comm_len = n - fixed;
	return NULL;
}

static const char *decode_data_like(const uint8_t *b, size_t n, uint8_t flags, struct frame *f)
{
	if (n < FRAME_DATA_BODY)
		return "DATA/EOF too short";
	if ((flags &
	     ~(f->type == SLUICE_FRAME_DATA ? SLUICE_DATA_F_REOFFER | SLUICE_DATA_F_SHM : 0)) ||
	    !all_zero(b + 9, 7))
		return "DATA/EOF reserved bits set";
	if (b[8] > SLUICE_DIR_IN)
		return "DATA/EOF bad direction";
	f->data.flow = get64(b);
	f->data.dir = b[8];
	f->data.offset = get64(b + 16);
	f->data.bytes = b + FRAME_DATA_BODY;
	f->data.len = n - FRAME_DATA_BODY;
	if ((flags & SLUICE_DATA_F_SHM) && f->data.len != FRAME_SHM_REF)
		return "DATA in shared memory without exactly a position and a length";
	return NULL;
}

static const char *decode_data(const uint8_t *b, size_t n, uint8_t flags, struct frame *f)
{
	return decode_data_like(b, n, flags, f);
}

static const char *decode_eof(const uint8_t *b, size_t n, uint8_t flags, struct frame *f)
{
	if (n != FRAME_EOF_BODY)
		return "EOF has a bad length";
	return decode_data_like(b, n, flags, f);
}

static const char *decode_close(const uint8_t *b, size_t n, uint8_t flags, struct frame *f)
{
	if (n != FRAME_CLOSE_BODY)
		return "CLOSE has a bad length";
	if (flags || get32(b + 12))
		return "CLOSE reserved bits set";
	f->close.flow = get64(b);
	f->close.reason = get32(b + 8);
	return NULL;
}

static const char *decode_verdict(const uint8_t *b, size_t n, uint8_t flags, struct frame *f)
{
	struct frame_verdict *v = &f->verdict;

	if (n < FRAME_VERDICT_BODY)
		return "VERDICT too short";
	if ((flags & ~SLUICE_VERDICT_F_SHM) || get16(b + 10) || get32(b + 12))
		return "VERDICT reserved bits set";
	v->flow = get64(b);
	v->dir = b[8];
	v->op = b[9];
	v->from = get64(b + 16);
	v->to = get64(b + 24);
	v->bytes = b + FRAME_VERDICT_BODY;
	v->len = n - FRAME_VERDICT_BODY;
	if (v->dir > SLUICE_DIR_IN)
		return "VERDICT bad direction";
	if (v->op < 1 || v->op > SLUICE_VERDICT_OP_MAX)
		return "VERDICT unknown operation";
	if (v->len && v->op != SLUICE_VERDICT_REPLACE && v->op != SLUICE_VERDICT_INJECT)
		return "VERDICT carries bytes its operation does not take";
	if (v->op == SLUICE_VERDICT_REPLACE && v->from > v->to)
		return "VERDICT replace range reversed";
	if ((flags & SLUICE_VERDICT_F_SHM) &&
	    ((v->op != SLUICE_VERDICT_REPLACE && v->op != SLUICE_VERDICT_INJECT) ||
	     v->len != FRAME_SHM_REF))
		return "VERDICT in shared memory without a replace or inject position and length";
	return NULL;
}

static const char *decode_open_verdict(const uint8_t *b, size_t n, uint8_t flags, struct frame *f)
{
	struct frame_open_verdict *v = &f->open_verdict;

	if (n != FRAME_OPEN_VERDICT_BODY)
		return "OPEN_VERDICT has a bad length";
	if (flags || get32(b + 12))
		return "OPEN_VERDICT reserved bits set";
	v->flow = get64(b);
	v->action = b[8];
	v->family = b[9];
	v->port = get16(b + 10);
	memcpy(v->addr, b + 16, 16);
	if (v->action < SLUICE_OPEN_ALLOW || v->action > SLUICE_OPEN_IGNORE)
		return "OPEN_VERDICT unknown action";
	if (v->action == SLUICE_OPEN_REDIRECT && v->family != 4 && v->family != 6)
		return "OPEN_VERDICT redirect without an address family";
	return NULL;
}

static const char *decode_error(const uint8_t *b, size_t n, uint8_t flags, struct frame *f)
{
	if (n < FRAME_ERROR_BODY)
		return "ERROR too short";
	if (n - FRAME_ERROR_BODY > SLUICE_ERROR_TEXT_MAX)
		return "ERROR text too long";
	if (flags || !all_zero(b + 13, 3))
		return "ERROR reserved bits set";
	f->error.flow = get64(b);
	f->error.code = get32(b + 8);
	f->error.ref_type = b[12];
	f->error.text = b + FRAME_ERROR_BODY;
	f->error.text_len = n - FRAME_ERROR_BODY;
	return NULL;
}

static const char *decode_subscribe(const uint8_t *b, size_t n, uint8_t flags, struct frame *f)
{
	struct frame_subscribe *sub = &f->subscribe;

	if (n < FRAME_SUBSCRIBE_BODY)
		return "SUBSCRIBE too short";
	if (flags || get16(b + 2))
		return "SUBSCRIBE reserved bits set";
	sub->dirs = b[0];
	sub->nports = b[1];
	if (!sub->dirs || (sub->dirs & ~(SLUICE_SUB_OUT | SLUICE_SUB_IN)))
		return "SUBSCRIBE bad directions";
	if (sub->nports > SLUICE_SUB_MAX_PORTS)
		return "SUBSCRIBE too many port ranges";
	if (n != FRAME_SUBSCRIBE_BODY + 4 * (size_t)sub->nports)
		return "SUBSCRIBE length does not match its port count";
	for (unsigned i = 0; i < sub->nports; i++) {
		sub->ports[i].lo = get16(b + 4 + 4 * i);
		sub->ports[i].hi = get16(b + 6 + 4 * i);
		if (!sub->ports[i].lo || sub->ports[i].lo > sub->ports[i].hi)
			return "SUBSCRIBE bad port range";
	}
	return NULL;
}

static const char *decode_shm(const uint8_t *b, size_t n, uint8_t flags, struct frame *f)
{
	if (n != FRAME_SHM_BODY)
		return "SHM has a bad length";
	if (flags || get64(b + 8))
		return "SHM reserved bits set";
	f->shm.fwd_size = get32(b);
	f->shm.rev_size = get32(b + 4);
	if (f->shm.fwd_size < 4096 || f->shm.rev_size < 4096 || (f->shm.fwd_size & 4095) ||
	    (f->shm.rev_size & 4095))
		return "SHM ring sizes must be whole pages";
	return NULL;
}

static const char *decode_release(const uint8_t *b, size_t n, uint8_t flags, struct frame *f)
{
	if (n != FRAME_RELEASE_BODY)
		return "RELEASE has a bad length";
	if (flags || get64(b + 8))
		return "RELEASE reserved bits set";
	f->release.pos = get64(b);
	return NULL;
}

int frame_shm_ref(const uint8_t *bytes, size_t len, uint64_t *ret_pos, uint64_t *ret_len)
{
	if (len != FRAME_SHM_REF)
		return -EBADMSG;
	*ret_pos = get64(bytes);
	*ret_len = get64(bytes + 8);
	return 0;
}

void frame_put_shm_ref(uint8_t *buf, uint64_t pos, uint64_t len)
{
	put64(buf, pos);
	put64(buf + 8, len);
}

static const decode_fn decoders[SLUICE_FRAME_TYPE_MAX + 1] = {
	[SLUICE_FRAME_HELLO] = decode_hello,
	[SLUICE_FRAME_OPEN] = decode_open,
	[SLUICE_FRAME_DATA] = decode_data,
	[SLUICE_FRAME_EOF] = decode_eof,
	[SLUICE_FRAME_CLOSE] = decode_close,
	[SLUICE_FRAME_VERDICT] = decode_verdict,
	[SLUICE_FRAME_OPEN_VERDICT] = decode_open_verdict,
	[SLUICE_FRAME_ERROR] = decode_error,
	[SLUICE_FRAME_SUBSCRIBE] = decode_subscribe,
	[SLUICE_FRAME_SHM] = decode_shm,
	[SLUICE_FRAME_RELEASE] = decode_release,
};

int frame_decode(const uint8_t *buf, size_t len, uint32_t max_frame, struct frame *ret,
		 size_t *ret_size, const char **ret_reason)
{
	const char *why;
	struct frame f;
	uint32_t flen;

	if (len < SLUICE_FRAME_HEADER_SIZE)
		return 0;
	flen = get32(buf);
	if (flen < SLUICE_FRAME_HEADER_SIZE) {
		why = "frame length below header size";
		goto bad;
	}
	if (flen > max_frame) {
		if (ret_reason)
			*ret_reason = "frame longer than the announced maximum";
		return -EMSGSIZE;
	}
	if (buf[4] == 0 || buf[4] > SLUICE_FRAME_TYPE_MAX) {
		why = "unknown frame type";
		goto bad;
	}
	if (get16(buf + 6)) {
		why = "header reserved bits set";
		goto bad;
	}
	/* The header is sound; only now wait for the rest of the frame. */
	if (len < flen)
		return 0;
	memset(&f, 0, sizeof(f));
	f.type = buf[4];
	f.flags = buf[5];
	why = decoders[f.type](buf + SLUICE_FRAME_HEADER_SIZE, flen - SLUICE_FRAME_HEADER_SIZE,
			       f.flags, &f);
	if (why)
		goto bad;
	*ret = f;
	*ret_size = flen;
	return 1;
bad:
	if (ret_reason)
		*ret_reason = why;
	return -EBADMSG;
}

size_t frame_size(const struct frame *f)
{
	size_t h = SLUICE_FRAME_HEADER_SIZE;

	switch (f->type) {
	case SLUICE_FRAME_HELLO:
		return h + FRAME_HELLO_BODY + f->hello.name_len;
	case SLUICE_FRAME_OPEN:
		return h + FRAME_OPEN_BODY + f->open.comm_len +
		       (f->flags & SLUICE_OPEN_F_RESUME ? FRAME_OPEN_RESUME : 0);
	case SLUICE_FRAME_DATA:
		return h + FRAME_DATA_BODY + f->data.len;
	case SLUICE_FRAME_EOF:
		return h + FRAME_EOF_BODY;
	case SLUICE_FRAME_CLOSE:
		return h + FRAME_CLOSE_BODY;
	case SLUICE_FRAME_VERDICT:
		return h + FRAME_VERDICT_BODY + f->verdict.len;
	case SLUICE_FRAME_OPEN_VERDICT:
		return h + FRAME_OPEN_VERDICT_BODY;
	case SLUICE_FRAME_ERROR:
		return h + FRAME_ERROR_BODY + f->error.text_len;
	case SLUICE_FRAME_SUBSCRIBE:
		return h + FRAME_SUBSCRIBE_BODY + 4 * (size_t)f->subscribe.nports;
	case SLUICE_FRAME_SHM:
		return h + FRAME_SHM_BODY;
	case SLUICE_FRAME_RELEASE:
		return h + FRAME_RELEASE_BODY;
	}
	return 0;
}

void frame_put_data_prefix(uint8_t *buf, uint64_t flow, uint8_t dir, uint64_t offset, size_t len)
{
	put_header(buf, FRAME_DATA_PREFIX + len, SLUICE_FRAME_DATA, 0);
	put64(buf + 8, flow);
	memset(buf + 16, 0, 8);
	buf[16] = dir;
	put64(buf + 24, offset);
}

void frame_put_verdict_prefix(uint8_t *buf, uint64_t flow, uint8_t dir, uint8_t op, uint64_t from,
			      uint64_t to, size_t len)
{
	put_header(buf, FRAME_VERDICT_PREFIX + len, SLUICE_FRAME_VERDICT, 0);
	put64(buf + 8, flow);
	buf[16] = dir;
	buf[17] = op;
	put16(buf + 18, 0);
	put32(buf + 20, 0);
	put64(buf + 24, from);
	put64(buf + 32, to);
}

ssize_t frame_encode(uint8_t *buf, size_t cap, const struct frame *f)
{
	size_t size = frame_size(f);
	uint8_t *b = buf + SLUICE_FRAME_HEADER_SIZE;

	if (!size)
		return -EINVAL;
	if ((f->type == SLUICE_FRAME_HELLO && f->hello.name_len > SLUICE_NAME_MAX) ||
	    (f->type == SLUICE_FRAME_OPEN && f->open.comm_len > SLUICE_COMM_MAX) ||
	    (f->type == SLUICE_FRAME_ERROR && f->error.text_len > SLUICE_ERROR_TEXT_MAX) ||
	    (f->type == SLUICE_FRAME_SUBSCRIBE && f->subscribe.nports > SLUICE_SUB_MAX_PORTS))
		return -EINVAL;
	if (size > cap || size > SLUICE_FRAME_HARD_MAX)
		return -ENOBUFS;
	memset(buf, 0, size);
	put_header(buf, size, f->type, f->flags);

	switch (f->type) {
	case SLUICE_FRAME_HELLO:
		put16(b, f->hello.version);
		b[2] = f->hello.worker;
		b[3] = f->hello.workers;
		put32(b + 4, f->hello.max_frame);
		put32(b + 8, f->hello.window);
		put32(b + 12, f->hello.features);
		if (f->hello.name_len)
			memcpy(b + FRAME_HELLO_BODY, f->hello.name, f->hello.name_len);
		break;
	case SLUICE_FRAME_OPEN:
		put64(b, f->open.flow);
		b[8] = f->open.family;
		put16(b + 10, f->open.src_port);
		put16(b + 12, f->open.dst_port);
		memcpy(b + 16, f->open.src, 16);
		memcpy(b + 32, f->open.dst, 16);
		put32(b + 48, f->open.uid);
		put32(b + 52, f->open.pid);
		put32(b + 56, f->open.window);
		if (f->flags & SLUICE_OPEN_F_RESUME) {
			for (int d = 0; d < 2; d++) {
				put64(b + FRAME_OPEN_BODY + 16 * d, f->open.decided[d]);
				put64(b + FRAME_OPEN_BODY + 16 * d + 8, f->open.offered[d]);
			}
			b += FRAME_OPEN_RESUME;
		}
		if (f->open.comm_len)
			memcpy(b + FRAME_OPEN_BODY, f->open.comm, f->open.comm_len);
		break;
	case SLUICE_FRAME_DATA:
	case SLUICE_FRAME_EOF:
		put64(b, f->data.flow);
		b[8] = f->data.dir;
		put64(b + 16, f->data.offset);
		if (f->type == SLUICE_FRAME_DATA && f->data.len)
			memcpy(b + FRAME_DATA_BODY, f->data.bytes, f->data.len);
		break;
	case SLUICE_FRAME_CLOSE:
		put64(b, f->close.flow);
		put32(b + 8, f->close.reason);
		break;
	case SLUICE_FRAME_VERDICT:
		put64(b, f->verdict.flow);
		b[8] = f->verdict.dir;
		b[9] = f->verdict.op;
		put64(b + 16, f->verdict.from);
		put64(b + 24, f->verdict.to);
		if (f->verdict.len)
			memcpy(b + FRAME_VERDICT_BODY, f->verdict.bytes, f->verdict.len);
		break;
	case SLUICE_FRAME_OPEN_VERDICT:
		put64(b, f->open_verdict.flow);
		b[8] = f->open_verdict.action;
		b[9] = f->open_verdict.family;
		put16(b + 10, f->open_verdict.port);
		memcpy(b + 16, f->open_verdict.addr, 16);
		break;
	case SLUICE_FRAME_ERROR:
		put64(b, f->error.flow);
		put32(b + 8, f->error.code);
		b[12] = f->error.ref_type;
		if (f->error.text_len)
			memcpy(b + FRAME_ERROR_BODY, f->error.text, f->error.text_len);
		break;
	case SLUICE_FRAME_SHM:
		put32(b, f->shm.fwd_size);
		put32(b + 4, f->shm.rev_size);
		break;
	case SLUICE_FRAME_RELEASE:
		put64(b, f->release.pos);
		break;
	case SLUICE_FRAME_SUBSCRIBE:
		b[0] = f->subscribe.dirs;
		b[1] = f->subscribe.nports;
		for (unsigned i = 0; i < f->subscribe.nports; i++) {
			put16(b + 4 + 4 * i, f->subscribe.ports[i].lo);
			put16(b + 6 + 4 * i, f->subscribe.ports[i].hi);
		}
		break;
	}
	return (ssize_t)size;
}

const char *frame_type_name(uint8_t type)
{
	static const char *const names[SLUICE_FRAME_TYPE_MAX + 1] = {
		[SLUICE_FRAME_HELLO] = "HELLO",
		[SLUICE_FRAME_OPEN] = "OPEN",
		[SLUICE_FRAME_DATA] = "DATA",
		[SLUICE_FRAME_EOF] = "EOF",
		[SLUICE_FRAME_CLOSE] = "CLOSE",
		[SLUICE_FRAME_VERDICT] = "VERDICT",
		[SLUICE_FRAME_OPEN_VERDICT] = "OPEN_VERDICT",
		[SLUICE_FRAME_ERROR] = "ERROR",
		[SLUICE_FRAME_SUBSCRIBE] = "SUBSCRIBE",
		[SLUICE_FRAME_SHM] = "SHM",
		[SLUICE_FRAME_RELEASE] = "RELEASE",
	};

	return type <= SLUICE_FRAME_TYPE_MAX && names[type] ? names[type] : "unknown";
}

const char *frame_verdict_name(uint8_t op)
{
	static const char *const names[SLUICE_VERDICT_OP_MAX + 1] = {
		[SLUICE_VERDICT_PASS] = "pass",		[SLUICE_VERDICT_PEEK] = "peek",
		[SLUICE_VERDICT_REPLACE] = "replace",	[SLUICE_VERDICT_INJECT] = "inject",
		[SLUICE_VERDICT_DROP] = "drop",		[SLUICE_VERDICT_PASS_REST] = "pass_rest",
		[SLUICE_VERDICT_SHUTDOWN] = "shutdown", [SLUICE_VERDICT_RESET] = "reset",
	};

	return op <= SLUICE_VERDICT_OP_MAX && names[op] ? names[op] : "unknown";
}
