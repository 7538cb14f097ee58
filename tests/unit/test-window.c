/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/common/window.c: offset comparison across wrap-around,
 * and the window's take/give/extra accounting with its error codes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "window.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Asserts that a failed call left the window exactly as it was. */
static void assert_window_equal(const struct window *a, const struct window *b)
{
	assert_int_equal(a->limit, b->limit);
	assert_int_equal(a->in, b->in);
	assert_int_equal(a->out, b->out);
	assert_int_equal(a->extra, b->extra);
}

/*
 * off_before() and off_before_eq() order offsets by their signed distance,
 * so offsets just below UINT64_MAX come before small ones that wrapped.
 */
static void test_off_before(void **state)
{
	static const struct {
		uint64_t a, b;
		bool before, before_eq;
	} cases[] = {
		{ 0, 0, false, true },
		{ 0, 1, true, true },
		{ 1, 0, false, false },
		{ 41, 42, true, true },
		{ UINT64_MAX, UINT64_MAX, false, true },
		{ UINT64_MAX, 0, true, true },
		{ 0, UINT64_MAX, false, false },
		{ UINT64_MAX - 10, 5, true, true },
		{ 5, UINT64_MAX - 10, false, false },
		{ UINT64_MAX - 1, UINT64_MAX, true, true },
		{ UINT64_MAX, UINT64_MAX - 1, false, false },
		{ (uint64_t)INT64_MAX, (uint64_t)INT64_MAX + 1, true, true },
		{ (uint64_t)INT64_MAX + 1, (uint64_t)INT64_MAX, false, false },
		/* The largest distance that still orders correctly. */
		{ 0, (uint64_t)INT64_MAX, true, true },
		{ (uint64_t)INT64_MAX, 0, false, false },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		assert_int_equal(off_before(cases[i].a, cases[i].b), cases[i].before);
		assert_int_equal(off_before_eq(cases[i].a, cases[i].b), cases[i].before_eq);
	}
}

/* off_within() is inclusive at both ends, also when the range wraps. */
static void test_off_within(void **state)
{
	static const struct {
		uint64_t x, lo, hi;
		bool within;
	} cases[] = {
		{ 5, 5, 5, true },
		{ 4, 5, 5, false },
		{ 6, 5, 5, false },
		{ 0, 0, 10, true },
		{ 10, 0, 10, true },
		{ 11, 0, 10, false },
		{ UINT64_MAX, 0, 10, false },
		/* A range that wraps: [UINT64_MAX - 1, 1]. */
		{ UINT64_MAX - 1, UINT64_MAX - 1, 1, true },
		{ UINT64_MAX, UINT64_MAX - 1, 1, true },
		{ 0, UINT64_MAX - 1, 1, true },
		{ 1, UINT64_MAX - 1, 1, true },
		{ 2, UINT64_MAX - 1, 1, false },
		{ UINT64_MAX - 2, UINT64_MAX - 1, 1, false },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		assert_int_equal(off_within(cases[i].x, cases[i].lo, cases[i].hi), cases[i].within);
}

/* A new window holds nothing and has all its space free. */
static void test_init(void **state)
{
	struct window w;

	memset(&w, 0xa5, sizeof(w));
	window_init(&w, 100);
	assert_int_equal(w.limit, 100);
	assert_int_equal(w.in, 0);
	assert_int_equal(w.out, 0);
	assert_int_equal(w.extra, 0);
	assert_int_equal(window_used(&w), 0);
	assert_int_equal(window_space(&w), 100);

	window_init(&w, 0);
	assert_int_equal(window_space(&w), 0);
	assert_int_equal(window_take(&w, 0), 0);
	assert_int_equal(window_take(&w, 1), -ENOSPC);
}

/* take() fills up to the limit exactly; past it -ENOSPC records nothing. */
static void test_take(void **state)
{
	struct window w, before;

	window_init(&w, 10);
	assert_int_equal(window_take(&w, 4), 0);
	assert_int_equal(window_used(&w), 4);
	assert_int_equal(window_space(&w), 6);

	before = w;
	assert_int_equal(window_take(&w, 7), -ENOSPC);
	assert_window_equal(&w, &before);
	assert_int_equal(window_take(&w, UINT64_MAX), -ENOSPC);
	assert_window_equal(&w, &before);

	assert_int_equal(window_take(&w, 6), 0);
	assert_int_equal(w.in, 10);
	assert_int_equal(window_used(&w), 10);
	assert_int_equal(window_space(&w), 0);

	before = w;
	assert_int_equal(window_take(&w, 1), -ENOSPC);
	assert_window_equal(&w, &before);
	assert_int_equal(window_take(&w, 0), 0);
	assert_window_equal(&w, &before);
}

/* give() releases only bytes that were taken; more is -ERANGE, recording nothing. */
static void test_give(void **state)
{
	struct window w, before;

	window_init(&w, 10);
	before = w;
	assert_int_equal(window_give(&w, 1), -ERANGE);
	assert_window_equal(&w, &before);
	assert_int_equal(window_give(&w, 0), 0);

	assert_int_equal(window_take(&w, 8), 0);
	assert_int_equal(window_give(&w, 3), 0);
	assert_int_equal(w.out, 3);
	assert_int_equal(window_used(&w), 5);
	assert_int_equal(window_space(&w), 5);

	before = w;
	assert_int_equal(window_give(&w, 6), -ERANGE);
	assert_window_equal(&w, &before);
	assert_int_equal(window_give(&w, UINT64_MAX), -ERANGE);
	assert_window_equal(&w, &before);

	/* Made bytes are not source bytes: they cannot be given. */
	assert_int_equal(window_add_extra(&w, 4, 100), 0);
	before = w;
	assert_int_equal(window_give(&w, 6), -ERANGE);
	assert_window_equal(&w, &before);

	assert_int_equal(window_give(&w, 5), 0);
	assert_int_equal(w.in, w.out);
	assert_int_equal(window_used(&w), 4);
}

/*
 * Made bytes count against the window like taken ones; add_extra() is
 * bounded by its own cap (-ENOSPC) and by overflow (-EOVERFLOW), and
 * drop_extra() by what is held (-ERANGE). Failures record nothing.
 */
static void test_extra(void **state)
{
	struct window w, before;

	window_init(&w, 10);
	assert_int_equal(window_take(&w, 4), 0);
	assert_int_equal(window_add_extra(&w, 3, 20), 0);
	assert_int_equal(window_used(&w), 7);
	assert_int_equal(window_space(&w), 3);

	/* The cap may exceed the limit: the window is then over, space 0. */
	assert_int_equal(window_add_extra(&w, 17, 20), 0);
	assert_int_equal(w.extra, 20);
	assert_int_equal(window_used(&w), 24);
	assert_int_equal(window_space(&w), 0);
	before = w;
	assert_int_equal(window_take(&w, 1), -ENOSPC);
	assert_window_equal(&w, &before);
	assert_int_equal(window_add_extra(&w, 1, 20), -ENOSPC);
	assert_window_equal(&w, &before);
	assert_int_equal(window_add_extra(&w, 0, 20), 0);
	assert_window_equal(&w, &before);

	assert_int_equal(window_drop_extra(&w, 21), -ERANGE);
	assert_window_equal(&w, &before);
	assert_int_equal(window_drop_extra(&w, 14), 0);
	assert_int_equal(w.extra, 6);
	assert_int_equal(window_space(&w), 0);
	assert_int_equal(window_drop_extra(&w, 1), 0);
	assert_int_equal(window_space(&w), 1);
	assert_int_equal(window_drop_extra(&w, 5), 0);
	assert_int_equal(w.extra, 0);
	assert_int_equal(window_space(&w), 6);

	/* Overflow of the extra count is its own error. */
	window_init(&w, 10);
	assert_int_equal(window_add_extra(&w, UINT64_MAX, UINT64_MAX), 0);
	before = w;
	assert_int_equal(window_add_extra(&w, 1, UINT64_MAX), -EOVERFLOW);
	assert_window_equal(&w, &before);
	assert_int_equal(window_space(&w), 0);

	window_init(&w, 10);
	assert_int_equal(window_add_extra(&w, 5, 4), -ENOSPC);
	assert_int_equal(w.extra, 0);
	assert_int_equal(window_add_extra(&w, 4, 4), 0);
	assert_int_equal(window_add_extra(&w, UINT64_MAX - 2, UINT64_MAX), -EOVERFLOW);
	assert_int_equal(w.extra, 4);
}

/*
 * The accounting only uses differences of offsets, so a window whose
 * offsets run past UINT64_MAX behaves exactly like one near zero.
 */
static void test_wrap(void **state)
{
	static const uint64_t starts[] = { 0, UINT64_MAX - 3, UINT64_MAX, (uint64_t)INT64_MAX - 1 };

	for (size_t i = 0; i < ARRAY_SIZE(starts); i++) {
		struct window w, before;

		window_init(&w, 16);
		w.in = w.out = starts[i];
		assert_int_equal(window_used(&w), 0);
		assert_int_equal(window_space(&w), 16);

		assert_int_equal(window_take(&w, 10), 0);
		assert_int_equal(w.in, starts[i] + 10);
		assert_true(off_before(w.out, w.in));
		assert_int_equal(window_used(&w), 10);
		assert_int_equal(window_space(&w), 6);
		before = w;
		assert_int_equal(window_take(&w, 7), -ENOSPC);
		assert_window_equal(&w, &before);
		assert_int_equal(window_take(&w, 6), 0);
		assert_int_equal(window_space(&w), 0);

		assert_int_equal(window_give(&w, 9), 0);
		assert_int_equal(window_used(&w), 7);
		before = w;
		assert_int_equal(window_give(&w, 8), -ERANGE);
		assert_window_equal(&w, &before);
		assert_int_equal(window_give(&w, 7), 0);
		assert_int_equal(w.out, starts[i] + 16);
		assert_int_equal(window_used(&w), 0);
		assert_int_equal(window_space(&w), 16);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_off_before), cmocka_unit_test(test_off_within),
		cmocka_unit_test(test_init),	   cmocka_unit_test(test_take),
		cmocka_unit_test(test_give),	   cmocka_unit_test(test_extra),
		cmocka_unit_test(test_wrap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
