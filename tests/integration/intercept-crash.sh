#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 300
#
# Crash safety: sluiced is killed with SIGKILL in the middle of a download
# it is filtering. Its nftables table has the owner flag, so the kernel
# removes it with the process: afterwards `nft list tables` in the client
# namespace shows no sluice table, and a new curl reaches the server
# directly (nginx logs it, the daemon is gone) with the file intact. The
# interrupted download must end (with an error), not hang.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netns.sh"
need curl sha256sum nft

netns_pair
netns_start_nginx "$NS_SERVER"
netns_payload p40M 40M
netns_payload p1M 1M
netns_start_sluiced "$NS_CLIENT" intercepting --intercept 80
netns_start_filter
netns_has_sluice_table "$NS_CLIENT" || fail "no table inet sluice while sluiced runs"

flows_mark
# nginx sends /slow/ at 2 MiB/s: 20 s, long enough to be killed in the middle.
netns_spawn slowcurl "$NS_CLIENT" curl -sS --max-time 60 -o "$T/partial" \
	"$(netns_url http "$SERVER4")/slow/p40M"
CURL_PID=$NETNS_PID
for i in $(seq 100); do
	[ "$(daemon_flows | grep -c .)" -ge 1 ] && [ -s "$T/partial" ] && break
	alive "$CURL_PID" || fail "curl ended before the transfer was under way: $(cat "$T/slowcurl.err")"
	sleep 0.05
done
[ -s "$T/partial" ] || fail "the download did not start through sluiced within 5 s: $(daemon_flows)"
sleep 1
alive "$CURL_PID" || fail "the download finished before sluiced could be killed"
log "killing sluiced (pid $SLUICED_PID) with $(stat -c %s "$T/partial") bytes downloaded"
kill -KILL "$SLUICED_PID"
rc=0
wait_pid "$SLUICED_PID" 5 || rc=$?
[ "$rc" -ne 124 ] || fail "sluiced still exists 5 s after SIGKILL"
SLUICED_PID=

gone=
for i in $(seq 50); do
	if ! netns_has_sluice_table "$NS_CLIENT"; then
		gone=1
		break
	fi
	sleep 0.1
done
[ -n "$gone" ] || fail "table inet sluice outlived sluiced by 5 s: $(ip netns exec "$NS_CLIENT" nft list tables)"
log "nft list tables after SIGKILL: $(ip netns exec "$NS_CLIENT" nft list tables | tr '\n' ' ')(no sluice table)"

rc=0
wait_pid "$CURL_PID" 15 || rc=$?
[ "$rc" -ne 124 ] || fail "the interrupted download still hangs 15 s after sluiced died"
[ "$rc" -ne 0 ] || fail "the interrupted download claims success with $(stat -c %s "$T/partial") of $((40 << 20)) bytes"
log "the interrupted download ended with curl status $rc after $(stat -c %s "$T/partial") bytes"
rm -f "$T/partial"

before=$(grep -c "^$CLIENT4 GET /dl/p1M " "$NGINX_ACCESS" || true)
netns_xfer "$NS_CLIENT" http down p1M "$SERVER4" || fail "a new curl after the crash: $XFER_MSG"
after=$(grep -c "^$CLIENT4 GET /dl/p1M " "$NGINX_ACCESS" || true)
[ "$after" -eq $((before + 1)) ] || fail "nginx did not log the new download from $CLIENT4"
[ "$(daemon_flows | grep -c .)" -eq 1 ] || fail "the daemon's log grew after it died: $(daemon_flows)"
log "a new download after the crash reached nginx directly, intact"
