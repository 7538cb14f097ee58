#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 180
#
# Bad input on the filter socket while a 50 MiB transfer runs through the
# daemon with a real sluice-passthrough attached. Raw clients connect to the
# filter socket one after the other and send:
#   garbage       random bytes with an invalid header, no HELLO
#   truncated     HELLO, then part of a frame, then close
#   oversized     HELLO, then a header announcing a 2 GiB frame
#   unknown-flow  HELLO, then a VERDICT for flow 0xdeadbeef00000001
# Each must be dropped (the daemon logs "dropping filter client" once more,
# and closes the channel where the client still listens), the daemon stays
# up, the passthrough stays attached, and the transfer completes intact,
# through the filter.
. "$(dirname "$0")/lib.sh"

SIZE=50M
SIZE_BYTES=$((50 << 20))
RATE=8M # the server reads slowly so the transfer outlasts the bad clients
DROPPED="dropping filter client"

UP=$(addr 127.0.0.1 "$(free_port)")
LISTEN=$(addr 127.0.0.1 "$(free_port)")
start_server srv "$UP" --count 1 --read-rate "$RATE"
start_sluiced "$LISTEN" "$UP"
start_filter

PROGRESS=$T/progress
spawn cli timeout 120 python3 "$PEER" client --connect "$LISTEN" --send "$SIZE" --progress "$PROGRESS"
CLIENT_PID=$SPAWNED_PID
end=$((SECONDS + 20))
while [ "$(progress_sent "$PROGRESS")" -lt $((1 << 20)) ]; do
	alive "$CLIENT_PID" || fail "client ended before the transfer got going"
	[ "$SECONDS" -lt "$end" ] || fail "transfer did not start within 20 s"
	sleep 0.05
done

for sc in garbage truncated oversized unknown-flow; do
	before=$(count_log "$SLUICED_LOG" "$DROPPED")
	python3 "$FRAMES" send --socket "$FILTER_SOCK" --wait 5 "$sc" >"$T/frames-$sc.json" 2>"$T/frames-$sc.err" ||
		fail "frames.py $sc could not talk to $FILTER_SOCK"
	end=$((SECONDS + 5))
	while [ "$(count_log "$SLUICED_LOG" "$DROPPED")" -le "$before" ]; do
		[ "$SECONDS" -lt "$end" ] || fail "$sc: sluiced did not log '$DROPPED' within 5 s"
		sleep 0.05
	done
	closed=$(json "$T/frames-$sc.json" 'r["closed"]')
	[ "$closed" != False ] || fail "$sc: the daemon did not close the channel within 5 s"
	check_alive "$SLUICED_PID" sluiced
	log "$sc: dropped ($(grep -F "$DROPPED" "$SLUICED_LOG" | tail -n 1))"
done

alive "$CLIENT_PID" ||
	fail "the transfer ended before the bad clients were through; nothing ran concurrently"
check_alive "$FILTER_PID" sluice-passthrough
wait_pid "$CLIENT_PID" 100 || fail "client failed or did not finish"
wait_server 30
compare cli srv --count 1 --expect-out "$SIZE"
# It went through the filter: the daemon did not lose its real filter to one
# of the bad clients and fall back to passing flows unfiltered.
wait_for_log "$FILTER_LOG" "closed: out $SIZE_BYTES in 0 bytes" 5 ||
	fail "sluice-passthrough did not see the whole transfer"
stop_sluiced
