/* SPDX-License-Identifier: MIT */
/*
 * The shared ring: mapped twice back to back, so that bytes written across
 * its end read back as one run, in both mappings of the same memfd (the
 * daemon's and the filter's); space comes back only through release, never
 * past what was written.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "shmring.h"

static void test_wrap_is_contiguous(void **state)
{
	struct shm_ring writer, reader;
	uint8_t chunk[3000];
	int fd = shm_create(4096, 4096);

	assert_true(fd >= 0);
	assert_int_equal(shm_map(fd, 0, 4096, &writer), 0);
	assert_int_equal(shm_map(fd, 0, 4096, &reader), 0);
	close(fd);

	for (unsigned round = 0; round < 40; round++) {
		for (size_t i = 0; i < sizeof(chunk); i++)
			chunk[i] = (uint8_t)(round * 7 + i);
		assert_true(shm_space(&writer) >= sizeof(chunk));
		/* One memcpy, even when the run crosses the ring's end. */
		memcpy(shm_at(&writer, writer.head), chunk, sizeof(chunk));
		assert_memory_equal(shm_at(&reader, writer.head), chunk, sizeof(chunk));
		writer.head += sizeof(chunk);
		assert_int_equal(shm_release(&writer, writer.head), 0);
	}
	shm_unmap(&writer);
	shm_unmap(&reader);
}

static void test_release_bounds(void **state)
{
	struct shm_ring r;
	int fd = shm_create(8192, 4096);

	assert_true(fd >= 0);
	assert_int_equal(shm_map(fd, 8192, 4096, &r), 0);
	close(fd);
	assert_int_equal(shm_space(&r), 4096);
	r.head = 1000;
	assert_int_equal(shm_space(&r), 3096);
	assert_int_equal(shm_release(&r, 1001), -ERANGE); /* beyond what was written */
	assert_int_equal(shm_release(&r, 600), 0);
	assert_int_equal(shm_release(&r, 500), -ERANGE); /* backwards */
	assert_int_equal(r.tail, 600);
	assert_int_equal(shm_space(&r), 3696);
	shm_unmap(&r);
	shm_unmap(&r); /* twice is harmless */
}

/* A filter cannot shrink or grow the memory under the daemon's mappings. */
static void test_sealed(void **state)
{
	int fd = shm_create(8192, 4096);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(fcntl(fd, F_GET_SEALS) & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
			 F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	assert_int_equal(ftruncate(fd, 4096), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(ftruncate(fd, 65536), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(fcntl(fd, F_ADD_SEALS, 0), -1);
	close(fd);
}

static void test_bad_map(void **state)
{
	struct shm_ring r = { 0 };

	assert_true(shm_map(-1, 0, 4096, &r) < 0);
	assert_null(r.base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wrap_is_contiguous),
		cmocka_unit_test(test_release_bounds),
		cmocka_unit_test(test_bad_map),
		cmocka_unit_test(test_sealed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
