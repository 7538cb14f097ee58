/* SPDX-License-Identifier: MIT */
/*
 * Who owns the application side of a flow: the uid of the client socket,
 * and the pid and command name of a process that holds it, where they can be
 * found.
 *
 * The uid comes from sock_diag (an exact lookup of the client socket by its
 * pre-NAT tuple, as `ss -tnp` does), which only sees sockets in our own
 * network namespace. The pid comes from a scan of /proc/PID/fd for the
 * socket's inode, which can take milliseconds on a busy host; so both run on
 * one worker thread, and results come back to the loop thread through an
 * eventfd. All functions here are for the loop thread only.
 */
#ifndef SLUICE_PROCINFO_H
#define SLUICE_PROCINFO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "loop.h"

/* Most lookups accepted and not yet called back; more fail with -EAGAIN. */
#define PROCINFO_QUEUE_MAX 1024

/* Longest command name the kernel keeps (TASK_COMM_LEN without the NUL). */
#define PROC_COMM_MAX 16

struct procinfo;

struct proc_ident {
	bool has_uid;
	uint32_t uid;
	bool has_pid;
	uint32_t pid;
	char comm[PROC_COMM_MAX + 1]; /* "" unless has_pid */
};

/*
 * Called on the loop thread, exactly once for every lookup that
 * procinfo_lookup() accepted, unless procinfo_free() comes first. id is valid
 * only during the call. The callback may queue new lookups; it must not call
 * procinfo_free() (free from a loop_defer() callback instead).
 */
typedef void (*procinfo_fn)(uint64_t cookie, const struct proc_ident *id, void *arg);

/*
 * Starts the worker thread and registers its eventfd in l. A process whose
 * pid is skip_pid is never reported as an owner; the daemon passes its own
 * pid, since every intercepted socket it relays is also open in sluiced
 * (0 skips nothing). Returns 0 and sets *ret, or -errno.
 */
int procinfo_new(struct loop *l, pid_t skip_pid, procinfo_fn done, void *arg,
		 struct procinfo **ret);

/*
 * Stops and joins the worker (which may first finish a /proc scan in
 * progress), and frees p. Lookups not yet called back are dropped without a
 * callback. Accepts NULL.
 */
void procinfo_free(struct procinfo *p);

/*
 * Queues a lookup of the TCP socket whose local address is src and whose
 * peer is dst: for an intercepted flow, src is the peer address of the
 * accepted socket and dst the original destination. Both must be AF_INET,
 * or both AF_INET6. When the socket is not found (closed, in TIME-WAIT, or in
 * another network namespace), the callback gets has_uid = has_pid = false.
 *
 * Returns 0, -EAFNOSUPPORT for other families, or -EAGAIN when
 * PROCINFO_QUEUE_MAX lookups are outstanding; after an error no callback
 * comes for this lookup.
 */
int procinfo_lookup(struct procinfo *p, uint64_t cookie, const struct sockaddr_storage *src,
		    const struct sockaddr_storage *dst);

/* Counters since procinfo_new(), for diagnostics and tests. */
struct procinfo_stats {
	uint64_t lookups;    /* answered */
	uint64_t found_uid;  /* of those, the socket was found */
	uint64_t found_pid;  /* of those, an owning process was found */
	uint64_t cache_hits; /* owner taken from the last scan, no new scan */
	uint64_t scans;	     /* full scans of /proc */
	uint64_t last_scan_us;
};

void procinfo_get_stats(struct procinfo *p, struct procinfo_stats *ret);

#endif
