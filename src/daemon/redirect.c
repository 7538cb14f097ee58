/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "nft.h"
#include "redirect.h"

static bool have_net_admin(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &h, data) < 0)
		return false;
	return data[CAP_NET_ADMIN / 32].effective & (1u << (CAP_NET_ADMIN % 32));
}

static void make_addr(struct sockaddr_storage *a, int family, bool any, uint16_t port)
{
	memset(a, 0, sizeof(*a));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)a;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr.s_addr = htonl(any ? INADDR_ANY : INADDR_LOOPBACK);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)a;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		sin6->sin6_addr = any ? in6addr_any : in6addr_loopback;
	}
}

/* Both listeners on one port: the first picks it when none was asked for. */
static int open_listeners(struct daemon *d, struct redirect *r, bool transparent, listener_fn fn)
{
	struct sockaddr_storage a;
	int err;

	for (int tries = 0; tries < 16; tries++) {
		r->port = d->cfg.port;
		make_addr(&a, AF_INET, transparent, r->port);
		err = listener_open(d->loop, d, &r->ls[0], &a, transparent, fn);
		if (err < 0)
			return err;
		r->port = ntohs(((struct sockaddr_in *)&r->ls[0].addr)->sin_port);
		make_addr(&a, AF_INET6, transparent, r->port);
		err = listener_open(d->loop, d, &r->ls[1], &a, transparent, fn);
		if (err == 0)
			return 0;
		if (err == -EAFNOSUPPORT || err == -EADDRNOTAVAIL) {
			log_warn("no IPv6 listener (%s): IPv6 connections will not be filtered",
				 strerror(-err));
			return 0;
		}
		listener_close(&r->ls[0]);
		/* The free IPv4 port may be taken for IPv6: try another. */
		if (err != -EADDRINUSE || d->cfg.port)
			return err;
	}
	return -EADDRINUSE;
}

/*
 * nftables matches a cgroup v2 by its path relative to /sys/fs/cgroup and
 * its depth below the cgroup v2 root, which need not be /sys/fs/cgroup
 * itself (a hybrid system mounts it at /sys/fs/cgroup/unified).
 */
static int resolve_cgroup(struct selection *sel)
{
	static const char base[] = "/sys/fs/cgroup/";
	char real[PATH_MAX], root[PATH_MAX] = "", line[4096];
	FILE *f;

	if (!realpath(sel->cgroup, real) || strncmp(real, base, sizeof(base) - 1))
		return -ENOENT;
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	/* The longest cgroup2 mount point that contains the path. */
	while (fgets(line, sizeof(line), f)) {
		char mnt[PATH_MAX], *sep = strstr(line, " - ");
		size_t n;

		if (!sep || strncmp(sep + 3, "cgroup2 ", 8) ||
		    sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1)
			continue;
		n = strlen(mnt);
		if (!strncmp(real, mnt, n) && (real[n] == '/' || !real[n]) && n > strlen(root))
			snprintf(root, sizeof(root), "%s", mnt);
	}
	fclose(f);
	if (!*root)
		return -ENOENT;
	sel->cgroup_level = 0;
	for (const char *p = real + strlen(root); *p; p++)
		sel->cgroup_level += *p == '/';
	if (strlen(real + sizeof(base) - 1) >= sizeof(sel->cgroup_rel))
		return -ENAMETOOLONG;
	memcpy(sel->cgroup_rel, real + sizeof(base) - 1, strlen(real + sizeof(base) - 1) + 1);
	return 0;
}

int redirect_start(struct daemon *d, struct redirect *r, bool transparent, uint32_t tproxy_mark,
		   listener_fn fn)
{
	const char *mode = d->cfg.mode == MODE_INTERCEPT ? "intercept" : "gateway";
	char err[256];
	int e;

	r->ls[0].io.fd = r->ls[1].io.fd = -1;
	if (!have_net_admin()) {
		log_err("%s mode needs CAP_NET_ADMIN to install nftables rules (run as root)",
			mode);
		return -EPERM;
	}
	if (d->cfg.sel.cgroup && resolve_cgroup(&d->cfg.sel) < 0) {
		log_err("%s: --cgroup %s is not a cgroup v2 directory under /sys/fs/cgroup", mode,
			d->cfg.sel.cgroup);
		return -EINVAL;
	}
	e = open_listeners(d, r, transparent, fn);
	if (e < 0) {
		log_err("%s: listening on port %u: %s", mode, d->cfg.port, strerror(-e));
		return e;
	}
	e = nft_rules_install(&d->cfg, r->port, tproxy_mark, &r->rules, err, sizeof(err));
	if (e == -EPERM) {
		log_err("%s: table inet " NFT_TABLE
			" belongs to another running sluiced (it has the "
			"owner flag); stop that one first",
			mode);
		return e;
	}
	if (e < 0) {
		log_err("%s: installing nftables table inet " NFT_TABLE ": %s", mode, err);
		return e;
	}
	return 0;
}

void redirect_describe(const struct config *cfg, uint16_t port)
{
	char ports[512] = "all";
	size_t n = 0;

	if (!cfg->sel.all_ports) {
		for (unsigned i = 0; i < cfg->sel.nports && n < sizeof(ports) - 16; i++) {
			const struct port_range *p = &cfg->sel.ports[i];

			n += (size_t)snprintf(ports + n, sizeof(ports) - n, "%s%u", i ? "," : "",
					      p->lo);
			if (p->hi != p->lo)
				n += (size_t)snprintf(ports + n, sizeof(ports) - n, "-%u", p->hi);
		}
	}
	log_info("%s tcp ports %s through port %u (nftables table inet sluice, mark 0x%x)",
		 cfg->mode == MODE_INTERCEPT ? "intercepting" : "gateway: filtering forwarded",
		 ports, port, cfg->mark);
}

void redirect_quiesce(struct redirect *r)
{
	if (nft_rules_quiesce(r->rules) < 0)
		log_warn("could not stop diverting new connections; they are refused until exit");
	listener_close(&r->ls[0]);
	listener_close(&r->ls[1]);
}

void redirect_stop(struct redirect *r)
{
	nft_rules_remove(r->rules);
	r->rules = NULL;
	listener_close(&r->ls[0]);
	listener_close(&r->ls[1]);
}

struct listener *redirect_listeners(struct daemon *d, unsigned *ret_count)
{
	struct redirect *r = d->backend_state;

	*ret_count = r ? 2 : 0;
	return r ? r->ls : NULL;
}
