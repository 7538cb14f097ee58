#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 300
#
# A 256 MiB upload through sluice-passthrough (replace mode, so every byte
# needs the filter's answer). After ~50 MiB the filter is stopped (SIGSTOP)
# for 5 s. While it is stopped the daemon must stop reading from the client:
# its RSS stays flat and the sender is blocked once the kernel buffers and
# the window are full. After SIGCONT the upload completes intact.
. "$(dirname "$0")/lib.sh"

SIZE=256M
SIZE_BYTES=$((256 << 20))
STOP_AT=$((50 << 20))
SETTLE=1                      # s for the kernel buffers and the window to fill
SAMPLES=8                     # then one sample every 0.5 s: 1 + 4 s stopped
RSS_SLACK_KB=1024             # allowed RSS growth while stopped
SENT_SLACK=$((1 << 20))       # allowed sender progress after settling

UP=$(addr 127.0.0.1 "$(free_port)")
LISTEN=$(addr 127.0.0.1 "$(free_port)")
start_server srv "$UP" --count 1
start_sluiced "$LISTEN" "$UP"
start_filter

PROGRESS=$T/progress
spawn cli timeout 240 python3 "$PEER" client --connect "$LISTEN" --send "$SIZE" --progress "$PROGRESS"
CLIENT_PID=$SPAWNED_PID

end=$((SECONDS + 60))
while [ "$(progress_sent "$PROGRESS")" -lt "$STOP_AT" ]; do
	alive "$CLIENT_PID" || fail "client ended before sending $STOP_AT bytes"
	[ "$SECONDS" -lt "$end" ] || fail "client sent only $(progress_sent "$PROGRESS") bytes in 60 s"
	sleep 0.05
done

kill -STOP "$FILTER_PID"
sent_stop=$(progress_sent "$PROGRESS")
sleep "$SETTLE"
rss=()
sent=()
for i in $(seq "$SAMPLES"); do
	rss+=("$(rss_kb "$SLUICED_PID")")
	sent+=("$(progress_sent "$PROGRESS")")
	[ "$i" -eq "$SAMPLES" ] || sleep 0.5
done
still_running=0
alive "$CLIENT_PID" && still_running=1
kill -CONT "$FILTER_PID"

log "filter stopped at $sent_stop bytes sent; after ${SETTLE}s: ${sent[0]}; samples: sent ${sent[*]}"
log "sluiced VmRSS while stopped (KiB): ${rss[*]}"

[ "$still_running" -eq 1 ] && [ "${sent[-1]}" -lt "$SIZE_BYTES" ] ||
	fail "the upload went on to the end while the filter was stopped"
max=$(max_of "${rss[@]}")
[ $((max - rss[0])) -le "$RSS_SLACK_KB" ] ||
	fail_memory "sluiced RSS grew by $((max - rss[0])) KiB (more than $RSS_SLACK_KB) while the filter was stopped: ${rss[*]}"
[ $((sent[-1] - sent[0])) -le "$SENT_SLACK" ] ||
	fail "the sender was not blocked: it sent $((sent[-1] - sent[0])) more bytes during the stop (${sent[*]})"

wait_pid "$CLIENT_PID" 200 || fail "client failed or did not finish after SIGCONT"
wait_server 30
compare cli srv --count 1 --expect-out "$SIZE"
stop_sluiced
