/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "unixsock.h"

int unixsock_group(const char *name, struct unixsock_access *ret)
{
	struct group *g = getgrnam(name);
	char *end;
	unsigned long v;

	if (g) {
		ret->gid = g->gr_gid;
	} else {
		errno = 0;
		v = strtoul(name, &end, 10);
		if (errno || *end || !*name)
			return -ENOENT;
		ret->gid = (gid_t)v;
	}
	ret->has_group = true;
	return 0;
}

/* Creates the directory of the socket if missing (mode 0755). */
static int make_parent(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* A socket file left by a daemon that died is removed; one that a live
 * daemon answers on is not ours to take. */
static int clear_stale(const struct sockaddr_un *sun)
{
	struct stat st;
	int fd, r;

	if (lstat(sun->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	close(fd);
	if (r == 0)
		return -EADDRINUSE;
	if (unlink(sun->sun_path) < 0)
		return -errno;
	return 0;
}

int unixsock_listen(const char *path, const struct unixsock_access *acc)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, r;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	r = make_parent(path);
	if (r < 0)
		return r;
	r = clear_stale(&sun);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (const struct sockaddr *)&sun, sizeof(sun)) < 0)
		goto fail;
	if (chmod(path, 0660) < 0 || (acc->has_group && chown(path, (uid_t)-1, acc->gid) < 0) ||
	    listen(fd, 64) < 0) {
		r = -errno;
		unlink(path);
		close(fd);
		return r;
	}
	return fd;
fail:
	r = -errno;
	close(fd);
	return r;
}

/* Whether pid has gid among its supplementary groups (from /proc). */
static bool in_groups(pid_t pid, gid_t gid)
{
	char path[64], line[4096];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		char *p = line + strlen("Groups:"), *end;

		if (strncmp(line, "Groups:", 7))
			continue;
		for (;;) {
			unsigned long g = strtoul(p, &end, 10);

			if (end == p)
				break;
			if ((gid_t)g == gid)
				found = true;
			p = end;
		}
		break;
	}
	fclose(f);
	return found;
}

bool unixsock_peer_allowed(int fd, const struct unixsock_access *acc, struct ucred *ret_cred)
{
	socklen_t len = sizeof(*ret_cred);

	*ret_cred = (struct ucred){ .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, ret_cred, &len) < 0)
		return false;
	if (ret_cred->uid == 0 || ret_cred->uid == geteuid())
		return true;
	if (!acc->has_group)
		return false;
	return ret_cred->gid == acc->gid || in_groups(ret_cred->pid, acc->gid);
}

int unixsock_serve(struct loop *l, const char *group, const char *path, struct unixsock_access *acc,
		   struct io *io, io_fn fn)
{
	int fd, r;

	if (group && unixsock_group(group, acc) < 0)
		return -ENOENT;
	fd = unixsock_listen(path, acc);
	if (fd < 0)
		return fd;
	io_init(io, fd, fn);
	r = io_set(l, io, EPOLLIN);
	if (r < 0) {
		close(fd);
		unlink(path);
	}
	return r;
}
