#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
#
# --on-filter-failure open: a 200 MiB upload through sluice-passthrough
# (replace mode: every byte makes the round trip through the filter). Once
# 50 MiB are sent the filter is killed with SIGKILL. The daemon must log
# that the flow continues unfiltered, and the upload must still complete
# intact: the bytes the filter had been offered but not decided pass
# unchanged, nothing is lost or doubled.
. "$(dirname "$0")/lib.sh"

SIZE=200M
SIZE_BYTES=$((200 << 20))
KILL_AT=$((50 << 20))

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
# Paced, so that the upload is still going when the filter is killed.
start_server srv "$UP" --count 1 --read-rate 50M
start_sluiced "$LISTEN" "$UP" --on-filter-failure open
start_filter

spawn cli timeout 100 python3 "$PEER" client --connect "$LISTEN" --send "$SIZE"
CLIENT_PID=$SPAWNED_PID

end=$((SECONDS + 30))
while [ "$(tcp_rx "${LISTEN##*:}")" -lt "$KILL_AT" ]; do
	alive "$CLIENT_PID" || fail "client ended before sending $KILL_AT bytes"
	[ "$SECONDS" -lt "$end" ] || fail "client sent only $(tcp_rx "${LISTEN##*:}") bytes in 30 s"
	sleep 0.02
done
{ kill -KILL "$FILTER_PID" && wait "$FILTER_PID"; } 2>/dev/null || true
sent_kill=$(tcp_rx "${LISTEN##*:}")
alive "$CLIENT_PID" && [ "$sent_kill" -lt "$SIZE_BYTES" ] ||
	fail "the upload was over before the filter was killed; nothing was tested"
log "filter killed after $sent_kill bytes sent"

wait_for_log "$SLUICED_LOG" "continue unfiltered" 5 ||
	fail "sluiced did not log that the flow continues unfiltered within 5 s of the kill"
grep -F "dropping filter client" "$SLUICED_LOG" | grep -qF "1 flows continue unfiltered (fail-open)" ||
	fail "the drop line does not say that 1 flow continues unfiltered (fail-open)"
log "$(grep -F "continue unfiltered" "$SLUICED_LOG" | head -n 1)"

wait_pid "$CLIENT_PID" 60 || fail "client failed or did not finish after the filter was killed"
wait_server 20
compare cli srv --count 1 --expect-out "$SIZE"
if grep -qF ": reset: " "$SLUICED_LOG"; then
	fail "a flow was reset: $(grep -F ": reset: " "$SLUICED_LOG" | head -n 1)"
fi
stop_sluiced
