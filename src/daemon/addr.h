/* SPDX-License-Identifier: MIT */
/* Socket addresses as users write them: 127.0.0.1:80, [::1]:9000. */
#ifndef SLUICE_ADDR_H
#define SLUICE_ADDR_H

#include <stdint.h>
#include <sys/socket.h>

#define ADDR_STRLEN 64 /* "[" + INET6_ADDRSTRLEN + "]:65535" fits */

/*
 * Parses "A.B.C.D:PORT" or "[V6]:PORT" (port 1..65535, or 0 when allow_zero).
 * Returns 0 and fills *ret and *ret_len, or -EINVAL.
 */
int addr_parse(const char *s, int allow_zero, struct sockaddr_storage *ret, socklen_t *ret_len);

/* Formats an AF_INET or AF_INET6 address into buf (ADDR_STRLEN bytes). */
const char *addr_format(const struct sockaddr_storage *a, char *buf);

socklen_t addr_len(const struct sockaddr_storage *a);

/* The port of an IPv4 or IPv6 address, in host order; 0 for others. */
uint16_t addr_port(const struct sockaddr_storage *a);

/* Family 4 or 6, port, and the address bytes as a frame carries them. */
void addr_to_wire(const struct sockaddr_storage *a, uint8_t *ret_family, uint16_t *ret_port,
		  uint8_t ret_addr[16]);

/* The reverse: a frame's family (4 or 6), port and address bytes. */
void addr_from_wire(uint8_t family, uint16_t port, const uint8_t addr[16],
		    struct sockaddr_storage *ret);

#endif
