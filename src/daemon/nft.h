/* SPDX-License-Identifier: MIT */
/*
 * sluice's nftables rules, through libnftables (never by running nft).
 *
 * All rules live in one table, `inet sluice`, created with the `owner`
 * flag: the kernel deletes an owned table when the netlink socket that
 * created it closes, which happens when sluiced exits for any reason,
 * SIGKILL included. So the host's traffic is never left redirected to a
 * dead port. The table is made in one transaction that first adds and
 * deletes any table of that name (a stale one from a kernel without owner
 * support, say), so starting over a leftover replaces it; a table owned by
 * another live sluiced makes the transaction fail instead.
 */
#ifndef SLUICE_NFT_H
#define SLUICE_NFT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define NFT_TABLE "sluice"

struct nft_rules;

/*
 * Writes the ruleset for cfg (intercept or gateway mode) with connections
 * going to local port `port` into buf. tproxy_mark is the mark gateway mode
 * gives packets for policy routing. Returns the length, or -ENOSPC.
 */
int nft_ruleset(const struct config *cfg, uint16_t port, uint32_t tproxy_mark, char *buf,
		size_t len);

/*
 * Installs the ruleset. On failure returns -EPERM when the table is owned by
 * another live process (another sluiced), -EINVAL when nftables refused the
 * rules, or -ENOMEM, and puts nftables' own message, first line only, in
 * err.
 */
int nft_rules_install(const struct config *cfg, uint16_t port, uint32_t tproxy_mark,
		      struct nft_rules **ret_rules, char *err, size_t errlen);

/*
 * Stops diverting new connections, leaving those already diverted alone
 * (they need the table until they end). Returns 0 or -EIO. Accepts NULL.
 */
int nft_rules_quiesce(struct nft_rules *r);

/* Deletes the table and frees r. Accepts NULL. */
void nft_rules_remove(struct nft_rules *r);

#endif
