/* SPDX-License-Identifier: MIT */
/*
 * One direction of a flow, without its sockets: the bytes read from the
 * source and not yet written to the sink, the filter's decisions on them,
 * and the output those decisions make. Pure bookkeeping, so that verdict
 * application can be tested without a network.
 *
 * Offsets: `window.in` is the source offset read so far (everything read is
 * offered to the filter), `decided` the source offset up to which the
 * filter has answered, `window.out` the source offset released from the
 * ring. Output is a queue of segments in sink order: runs of source bytes
 * passed unchanged (still in the ring, written from there without a copy)
 * and buffers of bytes the filter supplied. Source bytes that were replaced
 * or dropped are released from the ring in source order, right after the
 * passed run before them is written.
 *
 * Small passed runs that cannot extend the run before them (it is followed
 * by supplied or dropped bytes) are copied into a buffer instead of getting
 * a segment of their own, so a filter that rewrites or removes many small
 * matches makes a few large buffers, not thousands of segments: the queue
 * holds about 2 x 256 + 1 segments at most while copies fit in the limit.
 *
 * Memory: the ring holds at most `window` source bytes, and reading stops
 * while ring bytes plus supplied (or copied) bytes reach `window`. Filter
 * output beyond 2 x window is refused with -ENOSPC: the daemon fails the
 * flow rather than grow.
 */
#ifndef SLUICE_STREAM_H
#define SLUICE_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "window.h"

struct stream_seg;
struct arena;

struct stream {
	struct window win;
	uint8_t *ring; /* taken on first read, `win.limit` bytes */
	struct arena *ring_arena; /* where ring came from, or NULL (the heap) */
	uint64_t decided;
	uint64_t peek_to;
	bool peek_armed;  /* re-offer [decided, peek_to) once it is all read */
	uint64_t written; /* bytes written to the sink (output offsets) */
	struct stream_seg *head, *tail;
	struct stream_seg *last_ring; /* the last passed run in the queue */
	unsigned nsegs;
	bool auto_pass; /* no filter, or pass_rest: decide on read */
	bool src_eof;	/* the source sent FIN */
	bool shut;	/* FIN requested after what is decided */
	bool fin_sent;
};

void stream_init(struct stream *s, uint32_t window);

/* Frees the ring and every pending segment. Accepts a zeroed stream. */
void stream_fini(struct stream *s);

/* Frees the calling thread's pool of spare rings (a thread that ends). */
void stream_pool_drain(void);

/*
 * Where the next read from the source may go: fills up to two iovecs and
 * returns how many (0 when the window is full), or -ENOMEM when the ring
 * cannot be allocated. At most `max` bytes are offered. A direction
 * without a ring takes a slot of `arena` when it is given one and has a
 * slot free, and a ring of its own otherwise; it keeps either until it is
 * empty.
 */
int stream_read_iov(struct stream *s, struct iovec iov[2], size_t max, struct arena *arena);

/* Records n bytes read into the iovecs stream_read_iov() gave. */
void stream_commit_read(struct stream *s, size_t n);

/*
 * Undecided bytes [from, from + n) in the ring, n at most max and what was
 * read; from must not be before `decided` (those may be gone). Fills up to
 * two iovecs, returns how many, n in *ret_len.
 */
int stream_range_iov(const struct stream *s, uint64_t from, struct iovec iov[2], size_t max,
		     size_t *ret_len);

/* Undecided bytes: [decided, win.in). */
static inline uint64_t stream_undecided(const struct stream *s)
{
	return s->win.in - s->decided;
}

/*
 * Applies one verdict. Returns 0, or:
 *   -ERANGE  an offset goes backwards or beyond what was offered;
 *   -ENOSPC  a peek beyond the window, or output beyond the limits above;
 *   -EPIPE   the direction was already shut down or passed on;
 *   -EINVAL  an operation that is not a stream verdict;
 *   -ENOMEM  (the flow cannot go on; part of a replace may have been applied).
 * Except for -ENOMEM, nothing changes on failure. RESET is not handled here (it is per flow).
 */
int stream_verdict(struct stream *s, uint8_t op, uint64_t from, uint64_t to, const uint8_t *bytes,
		   size_t len);

/*
 * Decides every byte read so far as passed, and every byte read from now on
 * too (pass_rest, and fail-open when the filter is gone).
 */
void stream_pass_all(struct stream *s);

/*
 * The next bytes to write to the sink: fills up to max iovecs and returns
 * how many (0 when nothing is ready).
 */
int stream_out_iov(struct stream *s, struct iovec *iov, int max);

/* Records n bytes of those iovecs written to the sink. */
void stream_commit_write(struct stream *s, size_t n);

/* Decided output is waiting for the sink. */
bool stream_out_pending(const struct stream *s);

/* Everything is decided and written and a FIN is due on the sink. */
bool stream_fin_due(const struct stream *s);

/* The source may be read now (not at EOF, window not full). */
bool stream_may_read(const struct stream *s);

#endif
