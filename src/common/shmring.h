/* SPDX-License-Identifier: MIT */
/*
 * A ring of bytes in shared memory, for the zero-copy filter channel's
 * reverse direction (replacement bytes from a filter to the daemon). The
 * daemon and a filter map the same memfd; one side writes at `head`, the
 * other reads and hands space back by telling the writer how far it got
 * (a RELEASE frame), which moves `tail`. The ring is mapped twice, back to
 * back, so that bytes that wrap around its end are still one contiguous
 * run in memory: nobody needs to copy to see a chunk whole.
 *
 * Positions are free-running 64-bit byte counts, like stream offsets.
 */
#ifndef SLUICE_SHMRING_H
#define SLUICE_SHMRING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct shm_ring {
	uint8_t *base; /* 2 x size bytes of address space, the ring twice */
	uint32_t size; /* a multiple of the page size */
	uint64_t head; /* next byte written */
	uint64_t tail; /* first byte not yet released */
};

/*
 * A memfd of fwd + rev bytes (close-on-exec), sealed against changes of its
 * size, so that no holder of the descriptor can make the other's mappings
 * fault. Returns the fd or -errno.
 */
int shm_create(uint32_t fwd, uint32_t rev);

/* Maps [offset, offset + size) of fd twice, back to back. Returns 0 or
 * -errno; on failure nothing stays mapped. */
int shm_map(int fd, off_t offset, uint32_t size, struct shm_ring *ret);

/* Unmaps. Accepts a ring never mapped (base NULL). */
void shm_unmap(struct shm_ring *r);

/*
 * The forward area as a filter sees it: the daemon's slots, read-only,
 * mapped once. A reference is a byte position from its start and never
 * wraps (the daemon cuts a run at a slot's end).
 */
struct shm_area {
	const uint8_t *base;
	uint32_t size;
};

/* Maps the first size bytes of fd read-only. Returns 0 or -errno. */
int shm_map_area(int fd, uint32_t size, struct shm_area *ret);

/* Unmaps. Accepts an area never mapped (base NULL). */
void shm_unmap_area(struct shm_area *a);

/* The bytes [pos, pos + len) of the area, or NULL when they are not all in it. */
static inline const uint8_t *shm_area_at(const struct shm_area *a, uint64_t pos, uint64_t len)
{
	if (pos > a->size || len > a->size - pos)
		return NULL;
	return a->base + pos;
}

/* Bytes that may be written now. */
static inline uint64_t shm_space(const struct shm_ring *r)
{
	return r->size - (r->head - r->tail);
}

/* Where byte `pos` is: valid for up to `size` bytes from there. */
static inline uint8_t *shm_at(const struct shm_ring *r, uint64_t pos)
{
	return r->base + pos % r->size;
}

/*
 * Frees what the reader has consumed, up to pos. Returns 0, or -ERANGE
 * when pos goes backwards or beyond what was written (nothing changes).
 */
int shm_release(struct shm_ring *r, uint64_t pos);

#endif
