#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
#
# --verdict-timeout 2, policy open: a 200 MiB upload through
# sluice-passthrough; at ~50 MiB the filter is stopped with SIGSTOP and left
# stopped. It now sits on offered bytes without a verdict, so after 2 s (not
# before; the daemon checks once a second) the daemon must drop it as
# failed (log "read nothing sent to it for 2 s") and, the policy being open, let the flow
# continue unfiltered: the upload completes intact while the filter is
# still stopped. On SIGCONT the filter finds its channel closed (it says
# "daemon closed the channel") and exits.
. "$(dirname "$0")/lib.sh"

TIMEOUT=2
STOP_AT=$((50 << 20))

# tcp_rx PORT: bytes that have arrived at the connected sockets whose local
# port is PORT, the kernel's count (ss): at sluiced's side of the client's
# connection (PORT = the listening port) that is what the client has sent
# so far. (Not peer.py --progress: its last write can race its own writer
# thread and end the client with FileNotFoundError and status 1.)
tcp_rx() {
	ss -tniH state connected "( sport = :$1 )" 2>/dev/null |
		sed -n 's/.*bytes_received:\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }'
}

UP=$(addr 127.0.0.1 "$(free_port)")
LISTEN=$(addr 127.0.0.1 "$(free_port)")
start_server srv "$UP" --count 1
start_sluiced "$LISTEN" "$UP" --verdict-timeout "$TIMEOUT" --on-filter-failure open
start_filter

spawn cli timeout 100 python3 "$PEER" client --connect "$LISTEN" --send 200M
CLIENT_PID=$SPAWNED_PID
end=$((SECONDS + 30))
while [ "$(tcp_rx "${LISTEN##*:}")" -lt "$STOP_AT" ]; do
	alive "$CLIENT_PID" || fail "client ended before sending $STOP_AT bytes"
	[ "$SECONDS" -lt "$end" ] || fail "client sent only $(tcp_rx "${LISTEN##*:}") bytes in 30 s"
	sleep 0.02
done
kill -STOP "$FILTER_PID"
t_stop=$(date +%s.%N)
sent_stop=$(tcp_rx "${LISTEN##*:}")

wait_for_log "$SLUICED_LOG" "read nothing sent to it for $TIMEOUT s" $((TIMEOUT + 5)) ||
	fail "sluiced did not drop the stopped filter within $((TIMEOUT + 5)) s (no 'read nothing sent to it for $TIMEOUT s')"
t_drop=$(date +%s.%N)
after=$(awk -v a="$t_stop" -v b="$t_drop" 'BEGIN { printf "%.1f", b - a }')
log "filter stopped at $sent_stop bytes sent; dropped ${after} s later"
log "$(grep -F "read nothing sent to it for" "$SLUICED_LOG")"
awk -v x="$after" -v t="$TIMEOUT" 'BEGIN { exit !(x >= t - 0.3) }' ||
	fail "the filter was dropped $after s after it stopped, before the verdict timeout of $TIMEOUT s"
grep -F "read nothing sent to it for" "$SLUICED_LOG" | grep -qF "1 flows continue unfiltered (fail-open)" ||
	fail "the drop line does not say that 1 flow continues unfiltered (fail-open)"
alive "$CLIENT_PID" || fail "the upload ended while the filter was stopped, before it was dropped"

wait_pid "$CLIENT_PID" 60 || fail "client failed or did not finish after the filter was dropped"
wait_server 20
compare cli srv --count 1 --expect-out 200M
alive "$FILTER_PID" || fail "the stopped filter is gone"

kill -CONT "$FILTER_PID"
wait_for_log "$FILTER_LOG" "daemon closed the channel" 10 ||
	fail "after SIGCONT the filter did not see its channel closed within 10 s"
rc=0
wait_pid "$FILTER_PID" 5 || rc=$?
[ "$rc" -ne 124 ] || fail "the filter is still running 5 s after it saw its channel closed"
log "after SIGCONT: $(grep -F "daemon closed the channel" "$FILTER_LOG") (exit $rc)"
FILTER_PID=
stop_sluiced
