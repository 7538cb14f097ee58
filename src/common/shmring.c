/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shmring.h"
#include "window.h"

int shm_create(uint32_t fwd, uint32_t rev)
{
	int fd = memfd_create("sluice-channel", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return -errno;
	/* Sealed at its size: a filter that shrank it would make the
	 * daemon's next access to the lost pages a SIGBUS. */
	if (ftruncate(fd, (off_t)fwd + rev) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

int shm_map(int fd, off_t offset, uint32_t size, struct shm_ring *ret)
{
	uint8_t *base;
	int r;

	/* Reserve room for both views, then put the file in it twice. */
	base = mmap(NULL, 2 * (size_t)size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return -errno;
	if (mmap(base, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, offset) ==
		    MAP_FAILED ||
	    mmap(base + size, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, offset) ==
		    MAP_FAILED) {
		r = -errno;
		munmap(base, 2 * (size_t)size);
		return r;
	}
	*ret = (struct shm_ring){ .base = base, .size = size };
	return 0;
}

void shm_unmap(struct shm_ring *r)
{
	if (r->base)
		munmap(r->base, 2 * (size_t)r->size);
	r->base = NULL;
}

int shm_map_area(int fd, uint32_t size, struct shm_area *ret)
{
	void *base = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);

	if (base == MAP_FAILED)
		return -errno;
	*ret = (struct shm_area){ .base = base, .size = size };
	return 0;
}

void shm_unmap_area(struct shm_area *a)
{
	if (a->base)
		munmap((void *)a->base, a->size);
	a->base = NULL;
}

int shm_release(struct shm_ring *r, uint64_t pos)
{
	if (!off_within(pos, r->tail, r->head))
		return -ERANGE;
	r->tail = pos;
	return 0;
}
