/* SPDX-License-Identifier: MIT */
/*
 * The daemon's Unix sockets (filters, control): made with mode 0660, group
 * the --group if given, and every peer checked with SO_PEERCRED. Who may
 * connect matters: a filter sees and can change every byte of every
 * connection the host makes, and the control socket can reset any of them.
 * So only root, the daemon's own user, and members of the given group are
 * let in, whatever the file's permissions say.
 */
#ifndef SLUICE_UNIXSOCK_H
#define SLUICE_UNIXSOCK_H

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "loop.h"

struct unixsock_access {
	bool has_group;
	gid_t gid;
};

/* Resolves a group name (or number). Returns 0 or -ENOENT. */
int unixsock_group(const char *name, struct unixsock_access *ret);

/*
 * Listens on path (non-blocking, close-on-exec): makes its directory if
 * missing, removes a stale socket left by a dead daemon (but not one a live
 * daemon answers on: -EADDRINUSE), sets mode 0660 and the group. Returns
 * the fd or -errno.
 */
int unixsock_listen(const char *path, const struct unixsock_access *acc);

/*
 * The above for a socket the loop accepts on: resolves group (NULL: none)
 * into *acc, listens on path and registers io (calling fn) in l for
 * EPOLLIN. Returns 0, -ENOENT for a group that does not exist, or the
 * -errno of unixsock_listen() or epoll; on failure nothing is left open.
 */
int unixsock_serve(struct loop *l, const char *group, const char *path, struct unixsock_access *acc,
		   struct io *io, io_fn fn);

/*
 * Whether the peer on fd may use the socket. Fills *ret_cred (pid, uid,
 * gid) in any case, as far as the kernel told them.
 */
bool unixsock_peer_allowed(int fd, const struct unixsock_access *acc, struct ucred *ret_cred);

#endif
