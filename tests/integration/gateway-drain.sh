#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 180
#
# SIGTERM drains in gateway mode too. sluiced --gateway 80 --drain-seconds 5
# in the gateway namespace filters a download (nginx paces it to 2 MiB/s)
# and an upload (curl --limit-rate 2M) from the client namespace when it
# gets SIGTERM. Both must complete intact, and sluiced must exit 0 by
# itself within the drain time. A connection made after the "stopping"
# line must be forwarded plainly (nginx logs it from the client's address,
# no new flow). For the drained flows the gateway must keep delivering
# their packets to sluiced's transparent sockets until they end; the
# server never saw the client's connection, so a packet forwarded to it
# instead would be answered with a reset.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netns.sh"
need curl sha256sum nft

netns_gateway
netns_start_nginx "$NS_SERVER"
netns_payload p1K 1K
netns_payload p6M 6M
P6_SHA=$PAYLOAD_SHA

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

netns_start_sluiced "$NS_GW" 'gateway: filtering|intercepting' --gateway 80 --drain-seconds 5
netns_start_filter
flows_mark
url=$(netns_url http "$SERVER4")
netns_spawn dl "$NS_CLIENT" curl -sS --max-time 60 -o "$T/dl.bin" "$url/slow/p6M"
DL_PID=$NETNS_PID
netns_spawn ul "$NS_CLIENT" curl -sS --limit-rate 2M --max-time 60 -T "$NETNS_DIR/data/p6M" -o /dev/null "$url/up/drained"
UL_PID=$NETNS_PID
for i in $(seq 100); do
	[ "$(daemon_flows | grep -c .)" -ge 2 ] && [ -s "$T/dl.bin" ] && break
	sleep 0.05
done
[ "$(daemon_flows | grep -c .)" -eq 2 ] || fail "expected the two transfers as flows: $(daemon_flows | tr '\n' ';')"
sleep 0.3
alive "$DL_PID" && alive "$UL_PID" || fail "a transfer finished before SIGTERM; nothing to drain"

t_term=$(now)
kill -TERM "$SLUICED_PID"
wait_for_log "$SLUICED_LOG" "stopping on" 3 || fail "sluiced did not log that it is stopping within 3 s"

n0=$(grep -c ' /dl/p1K 200 ' "$NGINX_ACCESS" || true)
netns_xfer "$NS_CLIENT" http down p1K "$SERVER4" || fail "a connection made while sluiced drains: $XFER_MSG"
[ "$(grep -c "^$CLIENT4 GET /dl/p1K 200 " "$NGINX_ACCESS" || true)" -eq $((n0 + 1)) ] || fail "nginx did not log the new connection from $CLIENT4"
[ "$(daemon_flows | grep -c .)" -eq 2 ] || fail "sluiced took a connection after SIGTERM: $(daemon_flows | tr '\n' ';')"
log "a connection made during the drain was forwarded plainly"

rc=0
wait_pid "$DL_PID" 20 || rc=$?
[ "$rc" -ne 124 ] || fail "the download being drained stalled: still running $(since "$t_term") s after SIGTERM"
[ "$rc" -eq 0 ] || fail "the download being drained failed: curl status $rc: $(cat "$T/dl.err")"
rc=0
wait_pid "$UL_PID" 20 || rc=$?
[ "$rc" -ne 124 ] || fail "the upload being drained stalled: still running $(since "$t_term") s after SIGTERM"
[ "$rc" -eq 0 ] || fail "the upload being drained failed: curl status $rc: $(cat "$T/ul.err")"
[ "$(sha256sum <"$T/dl.bin" | cut -d' ' -f1)" = "$P6_SHA" ] || fail "the drained download differs ($(stat -c %s "$T/dl.bin") bytes)"
[ "$(sha256sum <"$NGINX_WWW/up/drained" | cut -d' ' -f1)" = "$P6_SHA" ] || fail "the drained upload differs"
log "both transfers finished intact $(since "$t_term") s after SIGTERM"

rc=0
wait_pid "$SLUICED_PID" 7 || rc=$?
[ "$rc" -ne 124 ] || fail "sluiced still running $(since "$t_term") s after SIGTERM (--drain-seconds 5)"
[ "$rc" -eq 0 ] || fail "sluiced exited with status $rc after draining"
grep -q 'drain: all flows finished' "$SLUICED_LOG" || fail "sluiced did not say that all flows finished"
SLUICED_PID=
! netns_has_sluice_table "$NS_GW" || fail "table inet sluice outlived sluiced"
log "sluiced exited 0 by itself $(since "$t_term") s after SIGTERM"
