#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 300
#
# Integrity at the sizes around the edges: empty, one byte, just under and
# just over 500 KiB (where an unaccounted socket filter starts to lose data)
# and 10 MiB, in both directions at once, through sluice-passthrough
# rewriting every chunk (replace mode), its bytes going both ways through
# the shared-memory channel; then one size with --pass, and one with the
# bytes through the socket instead (--no-shm).
. "$(dirname "$0")/lib.sh"

UP=$(addr 127.0.0.1 "$(free_port)")

# one_size SIZE: a fresh server for one connection; client and server each
# send SIZE bytes while receiving; sha256 compared at both ends.
one_size() {
	local size=$1
	start_server "srv-$size" "$UP" --count 1 --send "$size"
	run_client "cli-$size" 120 "$LISTEN" --send "$size"
	wait_server 30
	compare "cli-$size" "srv-$size" --count 1 --expect-out "$size" --expect-in "$size"
}

LISTEN=$(addr 127.0.0.1 "$(free_port)")
start_sluiced "$LISTEN" "$UP"
start_filter
for size in 0 1 499K 501K 10M; do
	one_size "$size"
done

# The bytes went through the filter, not around it: it accounts for the
# 10 MiB flow in both directions.
wait_for_log "$FILTER_LOG" "closed: out 10485760 in 10485760 bytes" 5 ||
	fail "sluice-passthrough did not report a flow of 10485760 bytes each way"
grep -q "(passthrough) ready: .*shared memory" "$SLUICED_LOG" ||
	fail "sluice-passthrough did not get the shared-memory channel"
stop_sluiced

LISTEN=$(addr 127.0.0.1 "$(free_port)")
start_sluiced "$LISTEN" "$UP"
start_filter --no-shm
one_size 10M
grep -q "shared memory" "$SLUICED_LOG" && fail "--no-shm still got shared memory"
stop_sluiced

LISTEN=$(addr 127.0.0.1 "$(free_port)")
start_sluiced "$LISTEN" "$UP"
start_filter --pass
one_size 10M
stop_sluiced
