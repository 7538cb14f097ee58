#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 180
#
# SIGTERM drains. sluiced --intercept 80 --drain-seconds 5 filters a
# download and an upload, each held to about 2 MiB/s (nginx's limit_rate for
# the download, curl's --limit-rate for the upload) so that they take a few
# seconds, when it gets SIGTERM. Both must still complete
# intact, and sluiced must then exit 0 by itself, within the drain time.
#
# New connections after SIGTERM: sluiced stops redirecting as soon as it
# stops accepting (src/daemon/main.c, on_signal), so a connection made after
# the "stopping" line is not redirected at all: it reaches the server
# directly (nginx logs it, the daemon opens no flow). That is what this
# test requires; a refused connection would fail it. Flows already
# redirected must keep going: their NAT binding lives in conntrack, but the
# kernel only applies it while the namespace still has a nat chain on the
# hook and a rule holding a conntrack reference, so deleting the whole
# table at SIGTERM resets them (measured here; the test does not care how
# the daemon avoids that). The table must be gone once sluiced has exited.
#
# Then the drain time running out: with --drain-seconds 1 and a transfer
# that needs far longer, sluiced must close the flow and exit 0 about a
# second after SIGTERM, and the cut transfer must end with an error rather
# than hang.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netns.sh"
need curl sha256sum nft

netns_pair
netns_start_nginx "$NS_SERVER"
netns_payload p1K 1K
netns_payload p6M 6M
P6_SHA=$PAYLOAD_SHA
netns_payload p40M 40M

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

netns_start_sluiced "$NS_CLIENT" intercepting --intercept 80 --drain-seconds 5
netns_start_filter
flows_mark
url=$(netns_url http "$SERVER4")
t_start=$(now)
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
log "SIGTERM $(since "$t_start") s into the transfers: $(grep 'stopping on' "$SLUICED_LOG")"

# A new connection while the daemon drains.
n0=$(grep -c ' /dl/p1K 200 ' "$NGINX_ACCESS" || true)
netns_xfer "$NS_CLIENT" http down p1K "$SERVER4" || fail "a connection made while sluiced drains: $XFER_MSG"
[ "$(grep -c ' /dl/p1K 200 ' "$NGINX_ACCESS" || true)" -eq $((n0 + 1)) ] || fail "nginx did not log the new connection"
[ "$(daemon_flows | grep -c .)" -eq 2 ] || fail "sluiced took a connection after SIGTERM: $(daemon_flows | tr '\n' ';')"
alive "$SLUICED_PID" || fail "sluiced exited while its flows were open"
log "a connection made during the drain went straight to nginx; sluiced is still draining"

rc=0
wait_pid "$DL_PID" 20 || rc=$?
[ "$rc" -ne 124 ] || fail "the download being drained stalled: still running $(since "$t_term") s after SIGTERM"
[ "$rc" -eq 0 ] || fail "the download being drained failed: curl status $rc: $(cat "$T/dl.err")"
rc=0
wait_pid "$UL_PID" 20 || rc=$?
[ "$rc" -ne 124 ] || fail "the upload being drained stalled: still running $(since "$t_term") s after SIGTERM"
[ "$rc" -eq 0 ] || fail "the upload being drained failed: curl status $rc: $(cat "$T/ul.err")"
[ "$(sha256sum <"$T/dl.bin" | cut -d' ' -f1)" = "$P6_SHA" ] || fail "the drained download differs ($(stat -c %s "$T/dl.bin") bytes)"
[ "$(sha256sum <"$NGINX_WWW/up/drained" | cut -d' ' -f1)" = "$P6_SHA" ] || fail "the drained upload differs ($(stat -c %s "$NGINX_WWW/up/drained") bytes)"
t_done=$(since "$t_term")
log "both transfers finished intact $t_done s after SIGTERM ($(since "$t_start") s in all)"

rc=0
wait_pid "$SLUICED_PID" 7 || rc=$?
[ "$rc" -ne 124 ] || fail "sluiced still running $(since "$t_term") s after SIGTERM (--drain-seconds 5)"
[ "$rc" -eq 0 ] || fail "sluiced exited with status $rc after draining"
log "sluiced exited 0 by itself $(since "$t_term") s after SIGTERM: $(grep 'drain:' "$SLUICED_LOG" | tail -n 1)"
grep -q 'drain: all flows finished' "$SLUICED_LOG" || fail "sluiced did not say that all flows finished"
! netns_has_sluice_table "$NS_CLIENT" || fail "table inet sluice outlived sluiced"
SLUICED_PID=
stop_group "$FILTER_PID"

# The drain time running out.
netns_start_sluiced "$NS_CLIENT" intercepting --intercept 80 --drain-seconds 1
netns_start_filter
flows_mark
netns_spawn slow "$NS_CLIENT" curl -sS --max-time 60 -o "$T/slow.bin" "$url/slow/p40M"
SLOW_PID=$NETNS_PID
for i in $(seq 100); do
	[ -s "$T/slow.bin" ] && break
	sleep 0.05
done
[ "$(daemon_flows | grep -c .)" -eq 1 ] || fail "expected the slow download as a flow: $(daemon_flows | tr '\n' ';')"
sleep 0.3
t_term=$(now)
kill -TERM "$SLUICED_PID"
rc=0
wait_pid "$SLUICED_PID" 4 || rc=$?
[ "$rc" -ne 124 ] || fail "sluiced still running $(since "$t_term") s after SIGTERM with --drain-seconds 1"
[ "$rc" -eq 0 ] || fail "sluiced exited with status $rc when the drain time ran out"
log "sluiced exited 0 $(since "$t_term") s after SIGTERM: $(grep 'drain:' "$SLUICED_LOG" | tail -n 1)"
SLUICED_PID=
rc=0
wait_pid "$SLOW_PID" 15 || rc=$?
[ "$rc" -ne 124 ] || fail "the download cut by the drain time still hangs 15 s later"
[ "$rc" -ne 0 ] || fail "the cut download claims success with $(stat -c %s "$T/slow.bin") of $((40 << 20)) bytes"
log "the cut download ended with curl status $rc after $(stat -c %s "$T/slow.bin") bytes"
