/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "arena.h"

/*
 * Free slots whose pages stay resident for the next burst. Free slots
 * beyond these that were not needed for a whole tick give their pages back
 * to the kernel (MADV_REMOVE frees them in the memfd, so for the filter's
 * mapping too): the memory a filter connection keeps does not stay at the
 * most flows it once had busy at the same time, and a steady stream of
 * short connections does not fault pages in and out for each.
 */
#define ARENA_WARM 8

struct arena {
	uint8_t *base;
	size_t size;
	uint32_t slot_size;
	unsigned nslots;
	unsigned refs;	   /* 1 for the connection, 1 per lent slot */
	unsigned nwarm;	   /* free slots with resident pages, on top of `free` */
	unsigned low_warm; /* the fewest warm slots since the last tick */
	unsigned nfree;
	unsigned *free; /* stack: cold (released) slots below, warm on top */
};

int arena_new(int fd, uint32_t slot_size, uint32_t nslots, struct arena **ret)
{
	struct arena *a = calloc(1, sizeof(*a));
	int r;

	if (!a)
		return -ENOMEM;
	a->free = calloc(nslots, sizeof(*a->free));
	if (!a->free) {
		free(a);
		return -ENOMEM;
	}
	a->size = (size_t)slot_size * nslots;
	a->base = mmap(NULL, a->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (a->base == MAP_FAILED) {
		r = -errno;
		free(a->free);
		free(a);
		return r;
	}
	a->slot_size = slot_size;
	a->nslots = nslots;
	a->refs = 1;
	/* Slot 0 on top: a filter with few busy flows touches few pages. */
	for (unsigned i = 0; i < nslots; i++)
		a->free[i] = nslots - 1 - i;
	a->nfree = nslots;
	*ret = a;
	return 0;
}

void arena_unref(struct arena *a)
{
	if (!a || --a->refs)
		return;
	munmap(a->base, a->size);
	free(a->free);
	free(a);
}

uint8_t *arena_get(struct arena *a)
{
	unsigned slot;

	if (!a->nfree)
		return NULL;
	slot = a->free[--a->nfree];
	if (a->nwarm)
		a->nwarm--;
	if (a->low_warm > a->nwarm)
		a->low_warm = a->nwarm;
	a->refs++;
	return a->base + (size_t)slot * a->slot_size;
}

void arena_put(struct arena *a, uint8_t *p)
{
	a->free[a->nfree++] = (unsigned)((size_t)(p - a->base) / a->slot_size);
	a->nwarm++;
	arena_unref(a);
}

void arena_tick(struct arena *a)
{
	/* The lowest warm slots were not lent since the last tick. */
	unsigned idle = a->low_warm > ARENA_WARM ? a->low_warm - ARENA_WARM : 0;
	unsigned first = a->nfree - a->nwarm;

	for (unsigned i = first; i < first + idle; i++) {
		/* A failure only leaves the pages resident. */
		(void)madvise(a->base + (size_t)a->free[i] * a->slot_size, a->slot_size,
			      MADV_REMOVE);
	}
	a->nwarm -= idle;
	a->low_warm = a->nwarm;
}

bool arena_pos(const struct arena *a, const void *p, size_t len, uint64_t *ret_pos)
{
	uintptr_t b = (uintptr_t)p, base;

	if (!a)
		return false;
	base = (uintptr_t)a->base;
	if (b < base || b - base >= a->size || len > a->size - (b - base))
		return false;
	*ret_pos = (uint64_t)(b - base);
	return true;
}

unsigned arena_lent(const struct arena *a)
{
	return a->nslots - a->nfree;
}

unsigned arena_slots(const struct arena *a)
{
	return a->nslots;
}
