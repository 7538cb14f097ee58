/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"

int notify_send(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t plen;
	socklen_t alen;
	ssize_t n;
	int fd, r = 1;

	if (!path || !*path)
		return 0;
	plen = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sun.sun_path) || plen < 2)
		return -EINVAL;
	memcpy(sun.sun_path, path, plen);
	/* An abstract address is its name after a NUL byte, exactly as long
	 * as the name: no terminating NUL is counted, unlike for a path. */
	if (path[0] == '@') {
		sun.sun_path[0] = '\0';
		alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
	} else {
		alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + 1);
	}

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun, alen);
	if (n < 0)
		r = -errno;
	else if ((size_t)n != strlen(state))
		r = -EMSGSIZE;
	close(fd);
	return r;
}
