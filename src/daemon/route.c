/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "route.h"

/* Sends one request and waits for its acknowledgement. Returns 0 or -errno
 * from the kernel's answer. */
static int talk(struct mnl_socket *nl, struct nlmsghdr *nlh)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	unsigned portid = mnl_socket_get_portid(nl);
	uint32_t seq = nlh->nlmsg_seq;
	ssize_t n;

	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
	if (n < 0)
		return -errno;
	/* mnl_cb_run checks sequence and sender, and turns NLMSG_ERROR into
	 * errno. */
	if (mnl_cb_run(buf, (size_t)n, seq, portid, NULL, NULL) < 0)
		return -errno;
	return 0;
}

static struct nlmsghdr *rule_msg(char *buf, uint16_t type, uint16_t flags, int family,
				 uint32_t mark, uint32_t table, uint32_t seq)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct fib_rule_hdr *frh;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	nlh->nlmsg_seq = seq;
	frh = mnl_nlmsg_put_extra_header(nlh, sizeof(*frh));
	frh->family = (uint8_t)family;
	frh->action = FR_ACT_TO_TBL;
	frh->table = table < 256 ? (uint8_t)table : RT_TABLE_UNSPEC;
	/* A fixed priority makes the rule findable: without one the kernel
	 * picks a new priority each time and EEXIST never comes. */
	mnl_attr_put_u32(nlh, FRA_PRIORITY, ROUTE_RULE_PRIORITY);
	mnl_attr_put_u32(nlh, FRA_FWMARK, mark);
	mnl_attr_put_u32(nlh, FRA_FWMASK, 0xffffffff);
	mnl_attr_put_u32(nlh, FRA_TABLE, table);
	return nlh;
}

static struct nlmsghdr *route_msg(char *buf, uint16_t type, uint16_t flags, int family,
				  uint32_t table, unsigned lo, uint32_t seq)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rtmsg *rtm;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	nlh->nlmsg_seq = seq;
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = (uint8_t)family;
	rtm->rtm_dst_len = 0; /* the default route: every destination */
	rtm->rtm_table = table < 256 ? (uint8_t)table : RT_TABLE_UNSPEC;
	rtm->rtm_protocol = RTPROT_BOOT;
	rtm->rtm_scope = RT_SCOPE_HOST;
	rtm->rtm_type = RTN_LOCAL;
	mnl_attr_put_u32(nlh, RTA_TABLE, table);
	mnl_attr_put_u32(nlh, RTA_OIF, lo);
	return nlh;
}

static struct mnl_socket *open_rtnl(void)
{
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);

	if (nl && mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		mnl_socket_close(nl);
		return NULL;
	}
	return nl;
}

int route_tproxy_install(uint32_t mark, uint32_t table, char *err, size_t errlen)
{
	static const int families[] = { AF_INET, AF_INET6 };
	char buf[MNL_SOCKET_BUFFER_SIZE];
	unsigned lo = if_nametoindex("lo");
	uint32_t seq = (uint32_t)time(NULL);
	struct mnl_socket *nl;
	int r = 0;

	if (!lo) {
		snprintf(err, errlen, "no loopback interface");
		return -ENODEV;
	}
	nl = open_rtnl();
	if (!nl) {
		r = -errno;
		snprintf(err, errlen, "rtnetlink: %s", strerror(-r));
		return r;
	}
	for (int i = 0; i < 2 && r == 0; i++) {
		const char *fam = families[i] == AF_INET ? "IPv4" : "IPv6";

		r = talk(nl, rule_msg(buf, RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, families[i],
				      mark, table, ++seq));
		if (r == -EEXIST)
			r = 0;
		if (r < 0) {
			snprintf(err, errlen, "%s rule fwmark 0x%x lookup %u: %s", fam, mark, table,
				 strerror(-r));
			break;
		}
		r = talk(nl, route_msg(buf, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, families[i],
				       table, lo, ++seq));
		if (r == -EEXIST)
			r = 0;
		/* A host without IPv6 has no IPv6 routes to add. */
		if (r == -EAFNOSUPPORT && families[i] == AF_INET6)
			r = 0;
		if (r < 0)
			snprintf(err, errlen, "%s route local default dev lo table %u: %s", fam,
				 table, strerror(-r));
	}
	mnl_socket_close(nl);
	return r;
}

void route_tproxy_remove(uint32_t mark, uint32_t table)
{
	static const int families[] = { AF_INET, AF_INET6 };
	char buf[MNL_SOCKET_BUFFER_SIZE];
	unsigned lo = if_nametoindex("lo");
	uint32_t seq = (uint32_t)time(NULL) + 100;
	struct mnl_socket *nl = open_rtnl();

	if (!nl)
		return;
	for (int i = 0; i < 2; i++) {
		talk(nl, rule_msg(buf, RTM_DELRULE, 0, families[i], mark, table, ++seq));
		talk(nl, route_msg(buf, RTM_DELROUTE, 0, families[i], table, lo, ++seq));
	}
	mnl_socket_close(nl);
}
