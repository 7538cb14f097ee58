/* SPDX-License-Identifier: MIT */
/*
 * The filter socket's door, in the main thread: it accepts filter
 * connections, checks who is knocking (SO_PEERCRED, --group, --max-filters)
 * and hands each connection to a worker. Which worker: the one its HELLO
 * names (read with MSG_PEEK, so the worker still reads the HELLO itself),
 * or, for a HELLO naming none, the worker with the fewest filter
 * connections. A connection that sends no HELLO within a second goes to
 * the latter too, and its worker deals with it as with any silent client.
 */
#ifndef SLUICE_DOOR_H
#define SLUICE_DOOR_H

struct sluiced;
struct door;

/* Listens on path (made 0660, owned by --group). Returns 0 or -errno;
 * -ENOENT when the --group does not exist. */
int door_open(struct sluiced *top, const char *path, struct door **ret_door);

/* Stops accepting, closes the connections not yet handed over, removes the
 * socket. Accepts NULL. */
void door_close(struct door *door);

#endif
