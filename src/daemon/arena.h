/* SPDX-License-Identifier: MIT */
/*
 * The forward area of a filter's shared memory, cut into slots of one
 * window each. A flow direction that is offered to that filter takes a slot
 * as its ring when its first bytes arrive (stream.c) and reads from its
 * source straight into it; the filter reads them in place, and what it
 * passes is written to the sink from the same memory. The slot goes back
 * when the ring is empty, as a private ring does.
 *
 * Each direction has its own slot, so bytes that one sink is slow to take
 * hold back no other flow of the filter. When every slot is lent, a
 * direction gets a private ring and its bytes travel in the frames.
 *
 * An arena lives as long as the filter's connection or any slot lent from
 * it: flows held after the filter went away keep their bytes where they
 * are. One thread only (the worker that owns the filter connection).
 */
#ifndef SLUICE_ARENA_H
#define SLUICE_ARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arena;

/*
 * Maps the first nslots x slot_size bytes of the memfd fd (slot_size a
 * multiple of the page size) as an arena. Returns 0 or -errno.
 */
int arena_new(int fd, uint32_t slot_size, uint32_t nslots, struct arena **ret);

/* The connection is done with it; it goes once no slot is lent. */
void arena_unref(struct arena *a);

/* Lends a free slot (slot_size bytes), or NULL when all are lent. */
uint8_t *arena_get(struct arena *a);

/* Takes back a slot arena_get() lent. */
void arena_put(struct arena *a, uint8_t *slot);

/*
 * Once a second: free slots beyond a few that no flow needed since the last
 * call give their pages back.
 */
void arena_tick(struct arena *a);

/*
 * Where [p, p + len) lies in the area, as a byte offset from its start:
 * true and *ret_pos set when all of it lies in a, false otherwise.
 */
bool arena_pos(const struct arena *a, const void *p, size_t len, uint64_t *ret_pos);

/* Slots lent now, and slots in all. */
unsigned arena_lent(const struct arena *a);
unsigned arena_slots(const struct arena *a);

#endif
