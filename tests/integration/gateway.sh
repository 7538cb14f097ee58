#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 600
#
# Gateway mode, IPv4: client namespace -> gateway namespace (forwarding,
# sluiced --gateway 80 with sluice-passthrough) -> server namespace (nginx).
# sluiced installs TPROXY rules and policy routing in the gateway, accepts
# the forwarded connection on a transparent listener and connects upstream
# from the client's own address, so nginx must log the client's address
# (10.77.1.1), not the gateway's (10.77.2.254). A 200 MiB upload and a
# 10 MiB download must arrive intact, each as exactly one flow the filter
# saw, from the client's address to the server's. Port 8080, outside the
# set, is forwarded plainly without a flow. After SIGTERM, sluiced must
# exit 0 and leave the gateway's rules and routes as it found them, and
# forwarding must still work.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netns.sh"
need curl sha256sum nft

netns_gateway
netns_start_nginx "$NS_SERVER"
# gateway-ipv6.sh sources this file with GW_FAMILY=6.
if [ "${GW_FAMILY:-4}" = 6 ]; then
	CLIENT=$CLIENT6 SERVER=$SERVER6 DST="[$SERVER6]:80" APP_RE="\\[$CLIENT6\\]:[0-9]+"
else
	CLIENT=$CLIENT4 SERVER=$SERVER4 DST="$SERVER4:80" APP_RE="$CLIENT4:[0-9]+"
fi

# routing NS: the policy rules and routes of NS, less those the kernel
# makes by itself (IPv6 link-local addresses arrive while the test runs).
routing() {
	local ns=$1
	ip -n "$ns" -4 rule list
	ip -n "$ns" -6 rule list
	ip -n "$ns" -4 route show table all | grep -v 'proto kernel' || true
	ip -n "$ns" -6 route show table all | grep -v 'proto kernel' || true
}
routing "$NS_GW" >"$T/routing.before"

netns_start_sluiced "$NS_GW" 'gateway: filtering|intercepting' --gateway 80
netns_start_filter
routing "$NS_GW" >"$T/routing.during"
cmp -s "$T/routing.before" "$T/routing.during" &&
	fail "sluiced --gateway installed no policy routing in the gateway namespace"
log "policy routing sluiced added: $(diff "$T/routing.before" "$T/routing.during" | grep '^>' | tr '\n' ';')"

# last_remote URI: the address nginx logged for the last request of URI.
last_remote() {
	awk -v u="$1" '$3 == u { a = $1 } END { print a }' "$NGINX_ACCESS"
}

for spec in up:200M down:10M; do
	dir=${spec%%:*} size=${spec#*:}
	netns_payload "p$size" "$size"
	flows_mark
	netns_xfer "$NS_CLIENT" http "$dir" "p$size" "$SERVER" || fail "${dir}load of $size through the gateway: $XFER_MSG"
	flows_check_transfer "$dir" "$PAYLOAD_SIZE" "$DST" || fail "${dir}load of $size through the gateway: $FLOWS_MSG"
	app=$(daemon_flows | awk '{ print $5 }')
	[[ $app =~ ^$APP_RE$ ]] || fail "${dir}load of $size: the daemon's flow comes from $app, expected the client $CLIENT"
	uri=/dl/p$size
	[ "$dir" = down ] || uri=$(awk '$2 == "PUT" { u = $3 } END { print u }' "$NGINX_ACCESS")
	remote=$(last_remote "$uri")
	[ "$remote" = "$CLIENT" ] || fail "${dir}load of $size: nginx saw the request from $remote, expected the client $CLIENT"
	log "${dir}load $size through the gateway: sha256 equal; flow $app -> $DST, filter saw out $FLOWS_OUT in $FLOWS_IN; nginx saw $remote; $XFER_MIBS MiB/s"
	netns_payload_rm "p$size"
done

netns_payload p64K 64K
flows_mark
XFER_TIMEOUT=30 XFER_PORT=8080 netns_xfer "$NS_CLIENT" http down p64K "$SERVER" || fail "port 8080 through the gateway: $XFER_MSG"
sleep 0.3
[ -z "$(daemon_flows)" ] || fail "port 8080 is outside --gateway 80 but was a flow: $(daemon_flows | tr '\n' ';')"
[ "$(last_remote /dl/p64K)" = "$CLIENT" ] || fail "port 8080: nginx saw $(last_remote /dl/p64K)"
log "port 8080 (outside the set): forwarded without a flow"

stop_sluiced
! netns_has_sluice_table "$NS_GW" || fail "table inet sluice is still there after sluiced exited"
routing "$NS_GW" >"$T/routing.after"
cmp -s "$T/routing.before" "$T/routing.after" ||
	fail "the gateway's rules or routes differ after sluiced exited: $(diff "$T/routing.before" "$T/routing.after" | tr '\n' ';')"
netns_xfer "$NS_CLIENT" http down p64K "$SERVER" || fail "forwarding after sluiced exited: $XFER_MSG"
[ "$(last_remote /dl/p64K)" = "$CLIENT" ] || fail "after sluiced exited, nginx saw $(last_remote /dl/p64K)"
log "after SIGTERM: no table, routing as before, forwarding works"
