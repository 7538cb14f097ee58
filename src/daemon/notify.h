/* SPDX-License-Identifier: MIT */
/*
 * Readiness and status for a service manager, without libsystemd: the
 * sd_notify(3) datagram protocol, which is small and stable. systemd (with
 * Type=notify) sets $NOTIFY_SOCKET to a Unix datagram socket, a path or,
 * when it starts with '@', a name in the abstract namespace, and reads
 * newline-separated VAR=VALUE assignments from each datagram it receives.
 */
#ifndef SLUICE_NOTIFY_H
#define SLUICE_NOTIFY_H

/*
 * Sends state ("READY=1", "STOPPING=1", several lines at once) to the
 * socket named by $NOTIFY_SOCKET. Returns 1 when it was sent, 0 when the
 * variable is unset or empty (not run by a service manager), -EINVAL when
 * it names no usable socket address (neither an absolute path nor '@name',
 * or too long for sun_path), or another -errno from socket() or sendto().
 * Never blocks for long: a full socket buffer is -EAGAIN.
 */
int notify_send(const char *state);

#endif
