/* SPDX-License-Identifier: MIT */
/*
 * The policy routing gateway mode needs, over rtnetlink: for IPv4 and IPv6,
 * a rule "fwmark MARK lookup TABLE" and a route "local default dev lo" in
 * TABLE, so that packets TPROXY marked are delivered to our sockets.
 *
 * Unlike the nftables table these are not removed by the kernel when we
 * die. Left behind they are harmless: they act only on packets that carry
 * MARK, and only our (owned, hence gone) table sets it. Starting again
 * finds them in place and goes on.
 */
#ifndef SLUICE_ROUTE_H
#define SLUICE_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#define ROUTE_TABLE	    0x5c1c /* 23580 */
#define ROUTE_RULE_PRIORITY 23580  /* before the main table's 32766 */

/* Installs the rules and routes; existing ones are fine. Returns 0 or
 * -errno, naming the step that failed in err. */
int route_tproxy_install(uint32_t mark, uint32_t table, char *err, size_t errlen);

/* Removes them; what is already gone is fine. */
void route_tproxy_remove(uint32_t mark, uint32_t table);

#endif
