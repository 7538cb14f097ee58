/* SPDX-License-Identifier: MIT */
/*
 * The control socket: a Unix socket on which sluicectl (or anything that
 * writes a line of JSON) asks the daemon what it is doing, and may reset a
 * flow. docs/control.md is the reference for the requests and answers.
 *
 * One request per line, at most JSON_REQUEST_MAX bytes; one answer line
 * each, in order; the connection stays open for more. A request that is not
 * JSON of the accepted shape gets {"error": ...} and the connection is
 * closed (and logged): the peer is not speaking the protocol. A known
 * request that cannot be done (an unknown command, no such flow) gets
 * {"error": ...} and the connection stays.
 *
 * Bounds: at most CONTROL_MAX_CLIENTS connections; a client's next request
 * is not read while its answer is being sent; long answers (the flow list)
 * are made CONTROL_CHUNK bytes at a time, as the socket takes them, so a
 * client that does not read holds at most that much of the daemon's memory.
 *
 * Access is the filter socket's (unixsock.h): mode 0660, the --group, and
 * every peer checked with SO_PEERCRED, because `kill` resets connections.
 */
#ifndef SLUICE_CONTROL_H
#define SLUICE_CONTROL_H

#define CONTROL_MAX_CLIENTS 16
#define CONTROL_CHUNK	    (64 * 1024)

struct sluiced;
struct control;

/*
 * Listens on path. Returns 0, -ENOENT for an unknown --group, -EADDRINUSE
 * when a live daemon answers there, or another -errno; logs nothing.
 */
int control_new(struct sluiced *top, const char *path, struct control **ret_control);

/*
 * Opens d->cfg.control_socket as d->control, and logs what it did. A path
 * given with --control must work: its failure is returned (-errno). The
 * default one may be taken by another daemon or not be writable (a daemon
 * run without privileges): then the daemon goes on without a control
 * socket, with a warning, and 0 is returned.
 */
int control_open(struct sluiced *top);

/* Closes every client and the socket, and removes the socket file.
 * Accepts NULL. */
void control_free(struct control *ctl);

#endif
