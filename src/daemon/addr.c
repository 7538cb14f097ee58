/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

static int parse_port(const char *s, int allow_zero, uint16_t *ret)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > 65535 || (!v && !allow_zero))
		return -EINVAL;
	*ret = (uint16_t)v;
	return 0;
}

int addr_parse(const char *s, int allow_zero, struct sockaddr_storage *ret, socklen_t *ret_len)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon;
	int v6 = s[0] == '[';
	uint16_t port;
	size_t n;

	if (v6) {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		n = (size_t)(close - s - 1);
		colon = close + 1;
		s++;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		n = (size_t)(colon - s);
	}
	if (n == 0 || n >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, n);
	host[n] = '\0';
	if (parse_port(colon + 1, allow_zero, &port) < 0)
		return -EINVAL;

	memset(ret, 0, sizeof(*ret));
	if (!v6) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ret;

		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return -EINVAL;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		*ret_len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ret;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return -EINVAL;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		*ret_len = sizeof(*sin6);
	}
	return 0;
}

const char *addr_format(const struct sockaddr_storage *a, char *buf)
{
	char host[INET6_ADDRSTRLEN];

	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)a;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(buf, ADDR_STRLEN, "%s:%u", host, ntohs(sin->sin_port));
	} else if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)a;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(buf, ADDR_STRLEN, "[%s]:%u", host, ntohs(sin6->sin6_port));
	} else {
		snprintf(buf, ADDR_STRLEN, "(family %d)", a->ss_family);
	}
	return buf;
}

socklen_t addr_len(const struct sockaddr_storage *a)
{
	return a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

void addr_to_wire(const struct sockaddr_storage *a, uint8_t *ret_family, uint16_t *ret_port,
		  uint8_t ret_addr[16])
{
	memset(ret_addr, 0, 16);
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)a;

		*ret_family = 6;
		*ret_port = ntohs(sin6->sin6_port);
		memcpy(ret_addr, &sin6->sin6_addr, 16);
	} else {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)a;

		*ret_family = 4;
		*ret_port = ntohs(sin->sin_port);
		memcpy(ret_addr, &sin->sin_addr, 4);
	}
}

void addr_from_wire(uint8_t family, uint16_t port, const uint8_t addr[16],
		    struct sockaddr_storage *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (family == 6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ret;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, addr, 16);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ret;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, addr, 4);
	}
}

uint16_t addr_port(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)a)->sin_port);
	if (a->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
	return 0;
}
