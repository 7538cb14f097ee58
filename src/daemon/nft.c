/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <nftables/libnftables.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "nft.h"

struct nft_rules {
	struct nft_ctx *ctx;
};

struct text {
	char *buf;
	size_t len, used;
	bool overflow;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(t->buf + t->used, t->len - t->used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= t->len - t->used)
		t->overflow = true;
	else
		t->used += (size_t)n;
}

static unsigned count_family(const struct cidr *list, unsigned n, int family)
{
	unsigned k = 0;

	for (unsigned i = 0; i < n; i++)
		k += list[i].family == family;
	return k;
}

static void put_cidr_set(struct text *t, const char *name, const struct cidr *list, unsigned n,
			 int family)
{
	char buf[64];
	const char *sep = "";

	if (!count_family(list, n, family))
		return;
	/* auto-merge: overlapping ranges from the command line are one set. */
	put(t, "\tset %s {\n\t\ttype %s\n\t\tflags interval\n\t\tauto-merge\n\t\telements = { ",
	    name, family == AF_INET ? "ipv4_addr" : "ipv6_addr");
	for (unsigned i = 0; i < n; i++) {
		if (list[i].family != family)
			continue;
		put(t, "%s%s", sep, cidr_format(&list[i], buf, sizeof(buf)));
		sep = ", ";
	}
	put(t, " }\n\t}\n");
}

static void put_uids(struct text *t, const uint32_t *uids, unsigned n)
{
	put(t, "{ ");
	for (unsigned i = 0; i < n; i++)
		put(t, "%s%u", i ? ", " : "", uids[i]);
	put(t, " }");
}

/* The rules that leave a packet alone: shared by both hooks. */
static void put_selection(struct text *t, const struct selection *sel, bool local)
{
	unsigned d4 = count_family(sel->dests, sel->ndests, AF_INET);
	unsigned d6 = count_family(sel->dests, sel->ndests, AF_INET6);

	put(t, "\t\tmeta l4proto != tcp return\n");
	if (!sel->all_ports)
		put(t, "\t\ttcp dport != @ports return\n");
	if (local && !sel->loopback) {
		put(t, "\t\tip daddr 127.0.0.0/8 return\n");
		put(t, "\t\tip6 daddr ::1 return\n");
	}
	if (sel->nuids) {
		put(t, "\t\tmeta skuid != ");
		put_uids(t, sel->uids, sel->nuids);
		put(t, " return\n");
	}
	if (sel->nxuids) {
		put(t, "\t\tmeta skuid ");
		put_uids(t, sel->xuids, sel->nxuids);
		put(t, " return\n");
	}
	if (count_family(sel->xdests, sel->nxdests, AF_INET))
		put(t, "\t\tip daddr @xdest4 return\n");
	if (count_family(sel->xdests, sel->nxdests, AF_INET6))
		put(t, "\t\tip6 daddr @xdest6 return\n");
	/* With destinations of one family only, the other family is not
	 * selected at all. */
	if (d4)
		put(t, "\t\tip daddr != @dest4 return\n");
	else if (d6)
		put(t, "\t\tmeta nfproto ipv4 return\n");
	if (d6)
		put(t, "\t\tip6 daddr != @dest6 return\n");
	else if (d4)
		put(t, "\t\tmeta nfproto ipv6 return\n");
}

int nft_ruleset(const struct config *cfg, uint16_t port, uint32_t tproxy_mark, char *buf,
		size_t len)
{
	const struct selection *sel = &cfg->sel;
	struct text t = { buf, len, 0, false };

	/* Adding, then deleting, then creating in one transaction replaces a
	 * leftover table and creates a new one alike. */
	put(&t, "add table inet " NFT_TABLE "\n");
	put(&t, "delete table inet " NFT_TABLE "\n");
	put(&t, "table inet " NFT_TABLE " {\n\tflags owner\n");
	/* The switch: while `on` holds tcp, new connections are diverted.
	 * Draining empties it, which stops diverting new connections but
	 * keeps the rules, whose presence the connections already diverted
	 * need until they end. */
	put(&t, "\tset on {\n\t\ttype inet_proto\n\t\telements = { tcp }\n\t}\n");
	if (!sel->all_ports) {
		put(&t, "\tset ports {\n\t\ttype inet_service\n\t\tflags interval\n\t\tauto-merge\n"
			"\t\telements = { ");
		for (unsigned i = 0; i < sel->nports; i++) {
			put(&t, "%s%u", i ? ", " : "", sel->ports[i].lo);
			if (sel->ports[i].hi != sel->ports[i].lo)
				put(&t, "-%u", sel->ports[i].hi);
		}
		put(&t, " }\n\t}\n");
	}
	put_cidr_set(&t, "dest4", sel->dests, sel->ndests, AF_INET);
	put_cidr_set(&t, "dest6", sel->dests, sel->ndests, AF_INET6);
	put_cidr_set(&t, "xdest4", sel->xdests, sel->nxdests, AF_INET);
	put_cidr_set(&t, "xdest6", sel->xdests, sel->nxdests, AF_INET6);

	if (cfg->mode == MODE_INTERCEPT) {
		/* nat output: locally made connections, before routing. */
		put(&t,
		    "\tchain output {\n\t\ttype nat hook output priority -100; policy accept;\n");
		put(&t, "\t\tmeta mark 0x%x return\n", cfg->mark);
		put_selection(&t, sel, true);
		/* The cgroup test is positive, on the last rule: "!= return"
		 * would let through sockets above the asked level, whose
		 * ancestor at that level does not exist and never compares. */
		put(&t, "\t\t");
		if (sel->cgroup)
			put(&t, "socket cgroupv2 level %u \"%s\" ", sel->cgroup_level,
			    sel->cgroup_rel);
		put(&t, "meta l4proto @on meta l4proto tcp redirect to :%u\n\t}\n", port);
	} else {
		/*
		 * Packets of connections that already have a transparent
		 * socket (ours, both ways) are marked for local delivery.
		 * The tproxy rule marks as it assigns, so with no listener
		 * there the packet falls through to its real destination:
		 * fail-open rather than a black hole.
		 */
		put(&t, "\tchain prerouting {\n\t\ttype filter hook prerouting priority -150; "
			"policy accept;\n");
		put(&t, "\t\tmeta l4proto tcp socket transparent 1 meta mark set 0x%x accept\n",
		    tproxy_mark);
		put_selection(&t, sel, false);
		put(&t,
		    "\t\tmeta l4proto @on meta l4proto tcp tproxy ip to :%u meta mark set 0x%x "
		    "accept\n",
		    port, tproxy_mark);
		put(&t,
		    "\t\tmeta l4proto @on meta l4proto tcp tproxy ip6 to :%u meta mark set 0x%x "
		    "accept\n",
		    port, tproxy_mark);
		put(&t, "\t}\n");
	}
	put(&t, "}\n");
	return t.overflow ? -ENOSPC : (int)t.used;
}

/*
 * libnftables opens its netlink socket without close-on-exec. A child that
 * inherited it would keep the owned table alive after we die, so mark every
 * netlink socket we hold close-on-exec.
 */
static void cloexec_netlink(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;

	if (!dir)
		return;
	while ((e = readdir(dir))) {
		int fd = atoi(e->d_name), domain;
		socklen_t len = sizeof(domain);

		if (fd <= 2 || fd == dirfd(dir))
			continue;
		if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 &&
		    domain == AF_NETLINK)
			fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
	}
	closedir(dir);
}

static void first_line(const char *msg, char *err, size_t errlen)
{
	size_t n = strcspn(msg, "\n");

	if (n >= errlen)
		n = errlen - 1;
	memcpy(err, msg, n);
	err[n] = '\0';
}

int nft_rules_install(const struct config *cfg, uint16_t port, uint32_t tproxy_mark,
		      struct nft_rules **ret_rules, char *err, size_t errlen)
{
	struct nft_rules *r;
	char *text;
	int n;

	text = malloc(64 * 1024);
	r = calloc(1, sizeof(*r));
	if (!text || !r)
		goto nomem;
	n = nft_ruleset(cfg, port, tproxy_mark, text, 64 * 1024);
	if (n < 0) {
		snprintf(err, errlen, "ruleset too large");
		free(text);
		free(r);
		return n;
	}
	r->ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	if (!r->ctx)
		goto nomem;
	cloexec_netlink();
	nft_ctx_buffer_output(r->ctx);
	nft_ctx_buffer_error(r->ctx);
	if (nft_run_cmd_from_buffer(r->ctx, text) != 0) {
		const char *msg = nft_ctx_get_error_buffer(r->ctx);

		/* With CAP_NET_ADMIN (checked before), "not permitted" can only
		 * mean the table is owned by another live process. */
		int e = msg && strstr(msg, "Operation not permitted") ? -EPERM : -EINVAL;

		first_line(msg && *msg ? msg : "nftables refused the ruleset", err, errlen);
		nft_ctx_free(r->ctx);
		free(r);
		free(text);
		return e;
	}
	free(text);
	*ret_rules = r;
	return 0;
nomem:
	free(text);
	free(r);
	snprintf(err, errlen, "out of memory");
	return -ENOMEM;
}

int nft_rules_quiesce(struct nft_rules *r)
{
	if (!r)
		return 0;
	return nft_run_cmd_from_buffer(r->ctx, "flush set inet " NFT_TABLE " on\n") ? -EIO : 0;
}

void nft_rules_remove(struct nft_rules *r)
{
	if (!r)
		return;
	/* Closing the context would remove the owned table too; deleting it
	 * first makes the removal explicit and immediate. */
	nft_run_cmd_from_buffer(r->ctx, "delete table inet " NFT_TABLE "\n");
	nft_ctx_free(r->ctx);
	free(r);
}
