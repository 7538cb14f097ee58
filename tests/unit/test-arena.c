/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/daemon/arena.c, the forward area of a filter's shared
 * memory cut into per-direction slots, and for a stream whose ring is one
 * of those slots: reads land in the filter's memory, a slot goes back when
 * its ring is empty, a full arena leaves a direction on the heap, and an
 * arena outlives its connection while a slot is lent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "arena.h"
#include "shmring.h"
#include "sluice/protocol.h"
#include "stream.h"

#define SLOT 4096u

struct fixture {
	int fd;
	struct arena *a;
	const uint8_t *view; /* the area as a filter maps it */
	size_t size;
};

static struct fixture fx;

static void make(unsigned nslots)
{
	fx.size = (size_t)nslots * SLOT;
	fx.fd = shm_create((uint32_t)fx.size, 0);
	assert_true(fx.fd >= 0);
	assert_int_equal(arena_new(fx.fd, SLOT, nslots, &fx.a), 0);
	fx.view = mmap(NULL, fx.size, PROT_READ, MAP_SHARED, fx.fd, 0);
	assert_true(fx.view != MAP_FAILED);
}

static int teardown(void **state)
{
	(void)state;
	if (fx.a)
		arena_unref(fx.a);
	munmap((void *)fx.view, fx.size);
	close(fx.fd);
	memset(&fx, 0, sizeof(fx));
	return 0;
}

static void test_slots(void **state)
{
	uint8_t *got[4];
	uint64_t pos;

	(void)state;
	make(4);
	assert_int_equal(arena_slots(fx.a), 4);
	for (int i = 0; i < 4; i++) {
		got[i] = arena_get(fx.a);
		assert_non_null(got[i]);
		assert_true(arena_pos(fx.a, got[i], SLOT, &pos));
		assert_int_equal(pos % SLOT, 0);
		for (int j = 0; j < i; j++)
			assert_ptr_not_equal(got[i], got[j]);
		/* What the daemon writes there is what the filter sees. */
		memset(got[i], 'a' + i, SLOT);
		assert_int_equal(fx.view[pos + SLOT - 1], 'a' + i);
	}
	assert_int_equal(arena_lent(fx.a), 4);
	assert_null(arena_get(fx.a));

	/* Runs that leave the area are not in it. */
	assert_true(arena_pos(fx.a, got[0] + 10, 20, &pos));
	assert_false(arena_pos(fx.a, &pos, 1, &pos));
	assert_false(arena_pos(NULL, got[0], 1, &pos));

	/* The slot returned last is lent next: its pages are resident. */
	arena_put(fx.a, got[2]);
	assert_int_equal(arena_lent(fx.a), 3);
	assert_ptr_equal(arena_get(fx.a), got[2]);
	for (int i = 0; i < 4; i++)
		arena_put(fx.a, got[i]);
	assert_int_equal(arena_lent(fx.a), 0);
}

/* Slots resident and free, as the filter's mapping shows them. */
static unsigned resident(uint8_t *const *slots, unsigned n)
{
	unsigned count = 0;
	uint64_t pos;

	for (unsigned i = 0; i < n; i++) {
		assert_true(arena_pos(fx.a, slots[i], SLOT, &pos));
		if (fx.view[pos] == 'x' && fx.view[pos + SLOT - 1] == 'x')
			count++;
		else
			assert_true(fx.view[pos] == 0 && fx.view[pos + SLOT - 1] == 0);
	}
	return count;
}

/*
 * Beyond a few, free slots that no flow needed for a whole tick give their
 * pages back, and are lent last; slots that keep being lent stay.
 */
static void test_cold_slots(void **state)
{
	enum { N = 12 };
	uint8_t *got[N];

	(void)state;
	make(N);
	for (int i = 0; i < N; i++) {
		got[i] = arena_get(fx.a);
		memset(got[i], 'x', SLOT);
	}
	for (int i = 0; i < N; i++)
		arena_put(fx.a, got[i]);
	/* They were lent during this tick: all stay. */
	arena_tick(fx.a);
	assert_int_equal(resident(got, N), N);

	/* Two at a time lent through the next tick: of the ten that stayed
	 * free all the time, all but the eight kept warm give their pages back
	 * (the two lent were on top, and stay). */
	for (int k = 0; k < 5; k++) {
		uint8_t *p = arena_get(fx.a), *q = arena_get(fx.a);

		arena_put(fx.a, q);
		arena_put(fx.a, p);
	}
	arena_tick(fx.a);
	assert_int_equal(resident(got, N), 10);

	/* Idle for a tick: down to the few kept warm. */
	arena_tick(fx.a);
	assert_int_equal(resident(got, N), 8);
	arena_tick(fx.a);
	assert_int_equal(resident(got, N), 8);

	/* The warm ones are lent first, still holding their bytes. */
	for (int i = 0; i < 8; i++) {
		got[i] = arena_get(fx.a);
		assert_int_equal(got[i][0], 'x');
	}
	for (int i = 8; i < N; i++) {
		got[i] = arena_get(fx.a);
		assert_int_equal(got[i][0], 0);
	}
	assert_null(arena_get(fx.a));
	for (int i = 0; i < N; i++)
		arena_put(fx.a, got[i]);
}

static void fill(struct stream *s, struct arena *a, size_t n, char c, bool in_arena)
{
	struct iovec iov[2];
	size_t got = 0;
	uint64_t pos;
	int cnt = stream_read_iov(s, iov, n, a);

	assert_true(cnt > 0);
	for (int i = 0; i < cnt; i++) {
		assert_int_equal(arena_pos(fx.a, iov[i].iov_base, iov[i].iov_len, &pos), in_arena);
		memset(iov[i].iov_base, c, iov[i].iov_len);
		got += iov[i].iov_len;
	}
	assert_int_equal(got, n);
	stream_commit_read(s, n);
}

static size_t drain(struct stream *s, size_t max)
{
	struct iovec iov[8];
	size_t n = 0;
	int cnt = stream_out_iov(s, iov, 8);

	for (int i = 0; i < cnt && n < max; i++)
		n += iov[i].iov_len < max - n ? iov[i].iov_len : max - n;
	stream_commit_write(s, n);
	return n;
}

static void test_stream_in_slot(void **state)
{
	struct stream s, t;
	struct iovec iov[2];
	uint64_t pos0, pos1;
	size_t len;

	(void)state;
	make(1);
	stream_init(&s, SLOT);
	fill(&s, fx.a, 3000, 'p', true);
	assert_int_equal(arena_lent(fx.a), 1);
	/* The filter reads the bytes where they were read. */
	assert_int_equal(stream_range_iov(&s, 0, iov, SIZE_MAX, &len), 1);
	assert_int_equal(len, 3000);
	assert_true(arena_pos(fx.a, iov[0].iov_base, 3000, &pos0));
	assert_int_equal(fx.view[pos0 + 2999], 'p');

	/* Another direction finds no slot free: it reads into the heap. */
	stream_init(&t, SLOT);
	fill(&t, fx.a, 100, 'h', false);
	assert_int_equal(stream_verdict(&t, SLUICE_VERDICT_PASS, 0, 100, NULL, 0), 0);
	assert_int_equal(drain(&t, SIZE_MAX), 100);

	/* Passed bytes are written from the slot, and wrap around it. */
	assert_int_equal(stream_verdict(&s, SLUICE_VERDICT_PASS, 0, 3000, NULL, 0), 0);
	assert_int_equal(drain(&s, 2000), 2000);
	fill(&s, fx.a, 2000, 'q', true);
	assert_int_equal(stream_range_iov(&s, 3000, iov, SIZE_MAX, &len), 2);
	assert_true(arena_pos(fx.a, iov[0].iov_base, iov[0].iov_len, &pos0));
	assert_true(arena_pos(fx.a, iov[1].iov_base, iov[1].iov_len, &pos1));
	assert_int_equal(pos0, 3000);
	assert_int_equal(pos1, 0);
	assert_int_equal(iov[0].iov_len + iov[1].iov_len, 2000);

	/* Emptied, the ring goes back, and the slot is free for t. */
	assert_int_equal(stream_verdict(&s, SLUICE_VERDICT_DROP, 3000, 5000, NULL, 0), 0);
	assert_int_equal(drain(&s, SIZE_MAX), 1000);
	assert_null(s.ring);
	assert_int_equal(arena_lent(fx.a), 0);
	fill(&t, fx.a, 10, 's', true);
	stream_fini(&t);
	assert_int_equal(arena_lent(fx.a), 0);
	stream_fini(&s);
}

/* A slot still lent keeps the arena after its connection let go. */
static void test_outlives_connection(void **state)
{
	struct stream s;

	(void)state;
	make(2);
	stream_init(&s, SLOT);
	fill(&s, fx.a, 500, 'o', true);
	arena_unref(fx.a);
	fx.a = NULL;
	/* Still mapped: the bytes can be written out. */
	stream_pass_all(&s);
	assert_int_equal(drain(&s, 100), 100);
	assert_int_equal(s.ring[100], 'o');
	assert_int_equal(drain(&s, SIZE_MAX), 400);
	assert_null(s.ring); /* the last slot back: the arena is gone (LeakSanitizer checks) */
	stream_fini(&s);
}

int main(void)
{
#define T(name) cmocka_unit_test_teardown(name, teardown)
	const struct CMUnitTest tests[] = {
		T(test_slots),
		T(test_cold_slots),
		T(test_stream_in_slot),
		T(test_outlives_connection),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
