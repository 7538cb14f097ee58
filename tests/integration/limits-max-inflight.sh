#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 90
#
# --max-inflight 65536 (the smallest allowed): a 200 MiB upload through
# sluice-passthrough in replace mode completes intact. At ~50 MiB the filter
# is stopped (SIGSTOP) for 4 s: the daemon must stop reading from the
# client, so its RSS stays flat (within 1 MiB after 1 s of settling) and
# the sender is blocked; after SIGCONT the upload completes intact.
. "$(dirname "$0")/lib.sh"

SIZE=200M
SIZE_BYTES=$((200 << 20))
STOP_AT=$((50 << 20))
SETTLE=1
SAMPLES=7          # one every 0.5 s after settling
RSS_SLACK_KB=1024
SENT_SLACK=$((1 << 20))

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
start_sluiced "$LISTEN" "$UP" --max-inflight 65536
start_filter

spawn cli timeout 80 python3 "$PEER" client --connect "$LISTEN" --send "$SIZE"
CLIENT_PID=$SPAWNED_PID
end=$((SECONDS + 30))
while [ "$(tcp_rx "${LISTEN##*:}")" -lt "$STOP_AT" ]; do
	alive "$CLIENT_PID" || fail "client ended before sending $STOP_AT bytes"
	[ "$SECONDS" -lt "$end" ] || fail "client sent only $(tcp_rx "${LISTEN##*:}") bytes in 30 s"
	sleep 0.02
done

kill -STOP "$FILTER_PID"
sent_stop=$(tcp_rx "${LISTEN##*:}")
sleep "$SETTLE"
rss=()
sent=()
for i in $(seq "$SAMPLES"); do
	rss+=("$(rss_kb "$SLUICED_PID")")
	sent+=("$(tcp_rx "${LISTEN##*:}")")
	[ "$i" -eq "$SAMPLES" ] || sleep 0.5
done
still_running=0
alive "$CLIENT_PID" && still_running=1
kill -CONT "$FILTER_PID"

log "filter stopped at $sent_stop bytes sent; sent while stopped: ${sent[*]}"
log "sluiced VmRSS while stopped (KiB): ${rss[*]}"
[ "$still_running" -eq 1 ] && [ "${sent[-1]}" -lt "$SIZE_BYTES" ] ||
	fail "the upload went on to the end while the filter was stopped"
max=$(max_of "${rss[@]}")
[ $((max - rss[0])) -le "$RSS_SLACK_KB" ] ||
	fail_memory "sluiced RSS grew by $((max - rss[0])) KiB while the filter was stopped: ${rss[*]}"
[ $((sent[-1] - sent[0])) -le "$SENT_SLACK" ] ||
	fail "the sender was not blocked: it sent $((sent[-1] - sent[0])) more bytes while the filter was stopped"

wait_pid "$CLIENT_PID" 60 || fail "client failed or did not finish after SIGCONT"
wait_server 20
compare cli srv --count 1 --expect-out "$SIZE"
if grep -F "dropping filter client" "$SLUICED_LOG"; then
	fail "the filter was dropped"
fi
log "sluiced peak RSS: $(hwm_kb "$SLUICED_PID") KiB"
stop_sluiced
