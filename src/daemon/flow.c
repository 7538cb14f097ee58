/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "flow.h"

struct flow_table {
	struct daemon *d;
	struct flow **slots;
	uint32_t cap;	/* slots allocated */
	uint32_t max;	/* most live flows */
	uint32_t count; /* live flows */
	uint32_t *free; /* stack of free slot numbers below cap */
	uint32_t nfree;
	struct flow *dead; /* released, freed after the batch */
};

static void free_dead(void *arg)
{
	struct flow_table *t = arg;
	struct flow *f;

	while ((f = t->dead)) {
		t->dead = f->dead_next;
		stream_fini(&f->dir[0].st);
		stream_fini(&f->dir[1].st);
		free(f);
	}
}

int flow_table_new(struct daemon *d, uint32_t max_flows, struct flow_table **ret_table)
{
	struct flow_table *t;
	int r;

	if (max_flows == 0 || max_flows > FLOW_SLOT_MAX)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->d = d;
	t->max = max_flows;
	r = loop_defer(d->loop, free_dead, t);
	if (r < 0) {
		free(t);
		return r;
	}
	*ret_table = t;
	return 0;
}

void flow_table_free(struct flow_table *t)
{
	if (!t)
		return;
	for (uint32_t i = 0; i < t->cap; i++) {
		struct flow *f = t->slots[i];

		if (!f)
			continue;
		for (int s = 0; s < 2; s++)
			if (f->sock[s].io.fd >= 0)
				close(f->sock[s].io.fd);
		flow_release(t, f);
	}
	free_dead(t);
	free(t->slots);
	free(t->free);
	free(t);
}

/* Doubles the slot array (up to max) and pushes the new slots as free. */
static int grow(struct flow_table *t)
{
	uint32_t ncap = t->cap ? t->cap * 2 : 64;
	struct flow **slots;
	uint32_t *fr;

	if (ncap > t->max)
		ncap = t->max;
	if (ncap <= t->cap)
		return -EMFILE;
	slots = realloc(t->slots, ncap * sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	t->slots = slots;
	fr = realloc(t->free, ncap * sizeof(*fr));
	if (!fr)
		return -ENOMEM;
	t->free = fr;
	/* Push in reverse so that low slots are used first. */
	for (uint32_t i = ncap; i > t->cap; i--) {
		t->slots[i - 1] = NULL;
		t->free[t->nfree++] = i - 1;
	}
	t->cap = ncap;
	return 0;
}

struct flow *flow_new(struct flow_table *t, int *ret_err)
{
	struct sluiced *top = t->d->top;
	struct flow *f;
	uint32_t slot;
	int r = 0;

	/* --max-flows counts the flows of every worker. */
	if (SHARED_ADD(top->flows, 1) > t->max) {
		r = -EMFILE;
		goto fail;
	}
	if (!t->nfree)
		r = grow(t);
	f = r < 0 ? NULL : calloc(1, sizeof(*f));
	if (!f) {
		r = r < 0 ? r : -ENOMEM;
		goto fail;
	}
	slot = t->free[--t->nfree];
	/* Generations come from one counter for all workers, so that an id
	 * names one flow of the whole daemon; it starts at 1, so no id is 0. */
	f->id = (SHARED_ADD(top->next_gen, 1) << FLOW_SLOT_BITS) | slot;
	f->d = t->d;
	f->sock[0].io.fd = f->sock[1].io.fd = -1;
	f->sock[0].flow = f->sock[1].flow = f;
	t->slots[slot] = f;
	t->count++;
	SHARED_STORE(t->d->nflows, t->count);
	return f;
fail:
	SHARED_SUB(top->flows, 1);
	*ret_err = r;
	return NULL;
}

void flow_release(struct flow_table *t, struct flow *f)
{
	uint32_t slot = (uint32_t)(f->id & (FLOW_SLOT_MAX - 1));

	if (f->state == FLOW_DEAD)
		return;
	f->state = FLOW_DEAD;
	t->slots[slot] = NULL;
	t->free[t->nfree++] = slot;
	t->count--;
	SHARED_STORE(t->d->nflows, t->count);
	SHARED_SUB(t->d->top->flows, 1);
	f->dead_next = t->dead;
	t->dead = f;
}

struct flow *flow_lookup(const struct flow_table *t, uint64_t id)
{
	uint32_t slot = (uint32_t)(id & (FLOW_SLOT_MAX - 1));
	struct flow *f;

	if (slot >= t->cap)
		return NULL;
	f = t->slots[slot];
	return f && f->id == id ? f : NULL;
}

bool flow_id_plausible(const struct flow_table *t, uint64_t id, uint64_t since)
{
	uint32_t slot = (uint32_t)(id & (FLOW_SLOT_MAX - 1));
	uint64_t gen = id >> FLOW_SLOT_BITS;

	return slot < t->cap && gen >= since && gen <= SHARED_LOAD(t->d->top->next_gen);
}

uint64_t flow_table_next_gen(const struct flow_table *t)
{
	return SHARED_LOAD(t->d->top->next_gen) + 1;
}

uint32_t flow_table_count(const struct flow_table *t)
{
	return t->count;
}

struct flow *flow_table_next(const struct flow_table *t, uint32_t *cursor)
{
	for (uint32_t i = *cursor; i < t->cap; i++) {
		if (t->slots[i]) {
			*cursor = i + 1;
			return t->slots[i];
		}
	}
	*cursor = t->cap;
	return NULL;
}

void flow_table_foreach(struct flow_table *t, void (*fn)(struct flow *f, void *arg), void *arg)
{
	for (uint32_t i = 0; i < t->cap; i++)
		if (t->slots[i])
			fn(t->slots[i], arg);
}
