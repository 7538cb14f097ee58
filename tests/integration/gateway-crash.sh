#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 180
#
# Gateway mode and SIGKILL. sluiced --gateway 80 is killed in the middle of
# a download it filters. Its nftables table (owner flag) goes with it, so
# nothing marks or diverts packets any more: a new download from the client
# is forwarded plainly and nginx sees the client's address. The policy
# routing sluiced added (fwmark rule, local route table) cannot be removed
# by a killed process; it is harmless without the marks, and the test
# reports it. A new sluiced --gateway must then start over whatever was
# left, filter a download, and on SIGTERM leave the gateway's rules and
# routes exactly as they were before the first one started.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netns.sh"
need curl sha256sum nft

netns_gateway
netns_start_nginx "$NS_SERVER"
netns_payload p40M 40M
netns_payload p1M 1M

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
flows_mark
netns_spawn slowcurl "$NS_CLIENT" curl -sS --max-time 60 -o "$T/partial" "$(netns_url http "$SERVER4")/slow/p40M"
CURL_PID=$NETNS_PID
for i in $(seq 100); do
	[ "$(daemon_flows | grep -c .)" -ge 1 ] && [ -s "$T/partial" ] && break
	sleep 0.05
done
[ -s "$T/partial" ] && [ "$(daemon_flows | grep -c .)" -eq 1 ] || fail "the download did not start through sluiced: $(daemon_flows)"
sleep 1
kill -KILL "$SLUICED_PID"
rc=0
wait_pid "$SLUICED_PID" 5 || rc=$?
[ "$rc" -ne 124 ] || fail "sluiced still exists 5 s after SIGKILL"
SLUICED_PID=
gone=
for i in $(seq 50); do
	netns_has_sluice_table "$NS_GW" || { gone=1; break; }
	sleep 0.1
done
[ -n "$gone" ] || fail "table inet sluice outlived sluiced by 5 s"
rc=0
wait_pid "$CURL_PID" 20 || rc=$?
[ "$rc" -ne 124 ] || fail "the interrupted download still hangs 20 s after sluiced died"
[ "$rc" -ne 0 ] || fail "the interrupted download claims success"
log "after SIGKILL: no table; the interrupted download ended with curl status $rc"
routing "$NS_GW" >"$T/routing.killed"
if cmp -s "$T/routing.before" "$T/routing.killed"; then
	log "after SIGKILL: no policy routing left"
else
	log "after SIGKILL, policy routing left in the gateway: $(diff "$T/routing.before" "$T/routing.killed" | grep '^>' | tr '\n' ';')"
fi

netns_xfer "$NS_CLIENT" http down p1M "$SERVER4" || fail "a download after the crash: $XFER_MSG"
[ "$(awk '$3 == "/dl/p1M" { a = $1 } END { print a }' "$NGINX_ACCESS")" = "$CLIENT4" ] || fail "after the crash nginx did not see the client's address"
log "a download after the crash was forwarded plainly, intact"

netns_start_sluiced "$NS_GW" 'gateway: filtering|intercepting' --gateway 80
netns_start_filter
for fam in 4 6; do
	n=$(ip -n "$NS_GW" -"$fam" rule list | grep -c fwmark || true)
	[ "$n" -eq 1 ] || fail "with the restarted sluiced running, the gateway has $n IPv$fam fwmark rules, expected 1 (the leftover must be reused, not doubled): $(ip -n "$NS_GW" -"$fam" rule list | grep fwmark | tr '\n' ';')"
done
flows_mark
netns_xfer "$NS_CLIENT" http down p1M "$SERVER4" || fail "a download through the restarted sluiced: $XFER_MSG"
flows_check_transfer down "$PAYLOAD_SIZE" "$SERVER4:80" || fail "a download through the restarted sluiced: $FLOWS_MSG"
stop_sluiced
routing "$NS_GW" >"$T/routing.after"
cmp -s "$T/routing.before" "$T/routing.after" ||
	fail "after a restart and SIGTERM the gateway's rules or routes differ from before: $(diff "$T/routing.before" "$T/routing.after" | tr '\n' ';')"
log "a restarted sluiced filtered a download and left routing as it was at the start"
