/* SPDX-License-Identifier: MIT */
/*
 * Flow-control arithmetic. Offsets are free-running 64-bit byte counts that
 * start at 0 and only grow; they are compared by subtraction so that the
 * code would stay right even if they wrapped. A window bounds the bytes a
 * stage holds: the bytes taken in and not yet given out, plus any bytes the
 * stage created itself (replacements), never more than `limit`.
 */
#ifndef SLUICE_WINDOW_H
#define SLUICE_WINDOW_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

/* a comes before b. */
static inline bool off_before(uint64_t a, uint64_t b)
{
	return (int64_t)(a - b) < 0;
}

/* a is at or before b. */
static inline bool off_before_eq(uint64_t a, uint64_t b)
{
	return (int64_t)(a - b) <= 0;
}

/* lo <= x <= hi, in offset order. */
static inline bool off_within(uint64_t x, uint64_t lo, uint64_t hi)
{
	return off_before_eq(lo, x) && off_before_eq(x, hi);
}

struct window {
	uint64_t limit; /* most bytes held at once */
	uint64_t in;	/* bytes taken in (offset of the next byte) */
	uint64_t out;	/* bytes given out or discarded */
	uint64_t extra; /* bytes held that were not taken in (replacements) */
};

void window_init(struct window *w, uint64_t limit);

/* Bytes held now. */
uint64_t window_used(const struct window *w);

/* Bytes that may be taken in now: 0 when the window is full or over. */
uint64_t window_space(const struct window *w);

/* Records n bytes taken in. Returns -ENOSPC (and records nothing) if that
 * would pass the limit. */
int window_take(struct window *w, uint64_t n);

/* Records n bytes given out or discarded. Returns -ERANGE (and records
 * nothing) if fewer than n are held. */
int window_give(struct window *w, uint64_t n);

/* Records n held bytes that were made, not taken in, up to `cap` in all.
 * Returns -ENOSPC (and records nothing) past it, -EOVERFLOW on overflow. */
int window_add_extra(struct window *w, uint64_t n, uint64_t cap);

/* Releases n made bytes. Returns -ERANGE if fewer than n are held. */
int window_drop_extra(struct window *w, uint64_t n);

#endif
