/* SPDX-License-Identifier: MIT */
/*
 * The frame codec of the filter channel, shared by the daemon and libsluice.
 * Decoding never trusts a byte it has not length-checked; the byte layout is
 * in docs/protocol.md. Nothing here allocates or prints.
 */
#ifndef SLUICE_FRAME_H
#define SLUICE_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sluice/protocol.h"

#define FRAME_HELLO_BODY	16
#define FRAME_OPEN_BODY		64
#define FRAME_OPEN_RESUME	32 /* offsets after the fixed body, with F_RESUME */
#define FRAME_DATA_BODY		24
#define FRAME_EOF_BODY		24
#define FRAME_CLOSE_BODY	16
#define FRAME_VERDICT_BODY	32
#define FRAME_OPEN_VERDICT_BODY 32
#define FRAME_ERROR_BODY	16
#define FRAME_SUBSCRIBE_BODY	4
#define FRAME_SHM_BODY		16
#define FRAME_RELEASE_BODY	16
#define FRAME_SHM_REF		16 /* pos and len of bytes in a ring, in DATA or VERDICT */

/* Header plus fixed body of the frames that carry bytes. */
#define FRAME_DATA_PREFIX    (SLUICE_FRAME_HEADER_SIZE + FRAME_DATA_BODY)
#define FRAME_VERDICT_PREFIX (SLUICE_FRAME_HEADER_SIZE + FRAME_VERDICT_BODY)

struct frame_hello {
	uint16_t version;
	/* Filter: the worker it asks for, 1-based, 0 for any; daemon: the
	 * worker serving this connection. */
	uint8_t worker;
	uint8_t workers; /* daemon: how many it runs; filter: 0 */
	uint32_t max_frame;
	uint32_t window;
	uint32_t features;
	const uint8_t *name; /* not NUL-terminated */
	size_t name_len;
};

struct frame_open {
	uint64_t flow;
	uint8_t family; /* 4 or 6 */
	uint16_t src_port, dst_port;
	uint8_t src[16], dst[16]; /* network order; IPv4 in the first 4 bytes */
	uint32_t uid, pid;
	uint32_t window;
	/* With SLUICE_OPEN_F_RESUME: per direction, the offset decided so far
	 * and the offset offered so far. */
	uint64_t decided[2], offered[2];
	const uint8_t *comm;
	size_t comm_len;
};

/* DATA and EOF share this shape; EOF has no bytes. */
struct frame_data {
	uint64_t flow;
	uint8_t dir;
	uint64_t offset;
	const uint8_t *bytes;
	size_t len;
};

struct frame_close {
	uint64_t flow;
	uint32_t reason;
};

struct frame_verdict {
	uint64_t flow;
	uint8_t dir;
	uint8_t op;
	uint64_t from, to;
	const uint8_t *bytes;
	size_t len;
};

struct frame_open_verdict {
	uint64_t flow;
	uint8_t action;
	uint8_t family;
	uint16_t port;
	uint8_t addr[16];
};

struct frame_error {
	uint64_t flow;
	uint32_t code;
	uint8_t ref_type;
	const uint8_t *text;
	size_t text_len;
};

struct frame_subscribe {
	uint8_t dirs;	/* SLUICE_SUB_* bits, at least one */
	uint8_t nports; /* 0: every port */
	struct {
		uint16_t lo, hi;
	} ports[SLUICE_SUB_MAX_PORTS];
};

/* SHM: the memfd holds the forward area (the daemon's slots) then the reverse ring. */
struct frame_shm {
	uint32_t fwd_size, rev_size;
};

/* RELEASE (daemon to filter): reverse-ring bytes before pos are free again. */
struct frame_release {
	uint64_t pos;
};

struct frame {
	uint8_t type;
	uint8_t flags;
	union {
		struct frame_hello hello;
		struct frame_open open;
		struct frame_data data; /* DATA and EOF */
		struct frame_close close;
		struct frame_verdict verdict;
		struct frame_open_verdict open_verdict;
		struct frame_error error;
		struct frame_subscribe subscribe;
		struct frame_shm shm;
		struct frame_release release;
	};
};

/*
 * Decodes the frame at the start of buf[0..len). Returns 1 and fills ret and
 * ret_size (bytes consumed) when a whole valid frame is there; 0 when more
 * bytes are needed (nothing is written); -EMSGSIZE when the announced length
 * exceeds max_frame; -EBADMSG when the frame is malformed. On failure, when
 * ret_reason is not NULL it points to a static description. Pointers in ret
 * point into buf.
 */
int frame_decode(const uint8_t *buf, size_t len, uint32_t max_frame, struct frame *ret,
		 size_t *ret_size, const char **ret_reason);

/*
 * Encodes f into buf[0..cap). Returns the frame's size, or -ENOBUFS when it
 * does not fit, or -EINVAL when a field is out of range (name, comm or text
 * too long, unknown type). Byte fields are copied.
 */
ssize_t frame_encode(uint8_t *buf, size_t cap, const struct frame *f);

/* Size frame_encode() would produce for f, or 0 for an invalid type. */
size_t frame_size(const struct frame *f);

/*
 * Writes the FRAME_DATA_PREFIX bytes that precede len data bytes, so that a
 * caller can read the bytes into place behind it without a second copy.
 */
void frame_put_data_prefix(uint8_t *buf, uint64_t flow, uint8_t dir, uint64_t offset, size_t len);

/*
 * The position and length a DATA or VERDICT with the SHM flag carries in
 * place of bytes. Returns 0, or -EBADMSG when the frame has the flag but not
 * exactly FRAME_SHM_REF bytes (the decoder already checks this).
 */
int frame_shm_ref(const uint8_t *bytes, size_t len, uint64_t *ret_pos, uint64_t *ret_len);
void frame_put_shm_ref(uint8_t *buf, uint64_t pos, uint64_t len);

/* Sets the flags byte of an encoded frame's header (DATA's REOFFER). */
static inline void frame_set_flags(uint8_t *buf, uint8_t flags)
{
	buf[5] = flags;
}

/* Same for a VERDICT frame carrying len bytes. */
void frame_put_verdict_prefix(uint8_t *buf, uint64_t flow, uint8_t dir, uint8_t op, uint64_t from,
			      uint64_t to, size_t len);

const char *frame_type_name(uint8_t type);
const char *frame_verdict_name(uint8_t op);

#endif
