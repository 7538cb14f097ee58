#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 300
#
# The paths without a filter: with none connected every flow moves by
# splice(2) and must arrive intact both ways, half-close included; and when
# the filter is killed mid-transfer (fail-open), each direction first drains
# what its ring buffer holds, then switches to splice, without losing,
# repeating or reordering a byte.
. "$(dirname "$0")/lib.sh"

UP=$(addr 127.0.0.1 "$(free_port)")
LISTEN=$(addr 127.0.0.1 "$(free_port)")
start_sluiced "$LISTEN" "$UP"

for size in 0 1 501K 64M; do
	start_server "srv-$size" "$UP" --count 1 --send "$size"
	run_client "cli-$size" 120 "$LISTEN" --send "$size"
	wait_server 60
	compare "cli-$size" "srv-$size" --count 1 --expect-out "$size" --expect-in "$size"
done
grep -q "no filter connected" "$SLUICED_LOG" || fail "sluiced did not say it runs without a filter"

# 8 connections of 256 MiB each way; the filter dies after 1 s.
start_filter
start_server srv-kill "$UP" --count 8 --send 256M
spawn cli-kill python3 "$PEER" client --connect "$LISTEN" --conns 8 --send 256M
CLIENT_PID=$SPAWNED_PID
sleep 1
alive "$CLIENT_PID" || fail "the transfer ended before the filter could be killed; make it longer"
kill -KILL "$FILTER_PID"
wait_for_log "$SLUICED_LOG" "flows continue unfiltered" 10 || fail "sluiced did not fail open"
wait_pid "$CLIENT_PID" 240 || fail "client did not finish"
wait_server 60
cp "$T/cli-kill.out" "$T/cli-kill.json"
compare cli-kill srv-kill --count 8 --expect-out 268435456 --expect-in 268435456
check_alive "$SLUICED_PID" sluiced
stop_sluiced
