#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 300
#
# --workers: the daemon's event-loop threads.
#  1. Four workers and sluice-passthrough (libsluice: one connection per
#     worker, shared memory): 120 flows at once arrive intact, the filter
#     has four connections, one per worker, and more than one worker
#     carried flows (each flow is logged with the filter connection, hence
#     the worker, that served it).
#  2. Two workers and a filter with a single connection (it asks for worker
#     2): every flow is given to it, those accepted by worker 1 (moved to
#     worker 2 before their first byte) included, and they arrive intact.
#  3. A HELLO that asks for worker 3 of 2 is refused: no HELLO back, the
#     channel closed, the reason logged.
. "$(dirname "$0")/lib.sh"

WIRE=$TESTS_DIR/tools/wirefilter.py

# --- 1. four workers, libsluice
N=120
UP=$(addr 127.0.0.1 "$(free_port)")
LISTEN=$(addr 127.0.0.1 "$(free_port)")
start_server srv "$UP" --count "$N" --send 16K-512K
start_sluiced "$LISTEN" "$UP" --workers 4
grep -q "4 workers" "$SLUICED_LOG" || fail "sluiced did not say it runs 4 workers"
start_filter --name quad
for w in 1 2 3 4; do
	grep -qE "filter [0-9]+ connected: pid $FILTER_PID, uid 0, worker $w\$" "$SLUICED_LOG" ||
		fail "the filter has no connection on worker $w: $(grep connected "$SLUICED_LOG")"
done
run_client cli 240 "$LISTEN" --conns "$N" --send 16K-512K
wait_server 60
compare cli srv --count "$N"
# "flow S:G: open: A -> B, filter K (quad)": K names the connection, and
# each connection is one worker's.
used=$(grep -oE ': open: .*, filter [0-9]+ \(quad\)$' "$SLUICED_LOG" | grep -oE 'filter [0-9]+' | sort -u | wc -l)
opened=$(grep -cE ': open: .*, filter [0-9]+ \(quad\)$' "$SLUICED_LOG")
log "$opened flows through $used of the filter's 4 connections"
[ "$opened" = "$N" ] || fail "$opened of $N flows went through the filter"
[ "$used" -ge 2 ] || fail "all $N flows were served by one worker"
check_alive "$SLUICED_PID" sluiced
stop_sluiced

# --- 2. two workers, a filter with one connection. Which worker accepts a
# connection is the kernel's choice: batches of flows run until worker 1
# has accepted (and moved) some.
UP=$(addr 127.0.0.1 "$(free_port)")
LISTEN=$(addr 127.0.0.1 "$(free_port)")
start_server srv2 "$UP" --count 200 --send 4K-64K
start_sluiced "$LISTEN" "$UP" --workers 2 --log-level debug
spawn single python3 "$WIRE" filter --socket "$FILTER_SOCK" --name single --worker 2
wait_for_log "$T/single.out" "worker=2 workers=2" 10 ||
	fail "the single-connection filter did not get worker 2: $(cat "$T/single.out" "$T/single.err")"
N=0
for batch in 1 2 3 4 5; do
	run_client "cli2-$batch" 120 "$LISTEN" --conns 40 --send 4K-64K
	N=$((N + 40))
	[ "$(count_log "$SLUICED_LOG" "moving it to worker 2")" -gt 0 ] && break
done
moved=$(count_log "$SLUICED_LOG" "moving it to worker 2")
log "$moved of $N connections were accepted by worker 1 and moved to worker 2"
[ "$moved" -gt 0 ] || fail "worker 1 accepted none of $N connections"
cat "$T"/cli2-*.out >"$T/cli2.out"
# The server stays up for more batches: wait for its record of each one.
for _ in $(seq 200); do
	[ "$(wc -l <"$T/srv2.out")" -ge "$N" ] && break
	sleep 0.05
done
compare cli2 srv2 --count "$N"
given=$(grep -cE ': open: .*, filter [0-9]+ \(single\)$' "$SLUICED_LOG")
[ "$given" = "$N" ] || fail "$given of $N flows were given to the single-connection filter: $(grep ': open: ' "$SLUICED_LOG" | head -5)"
opens=$(grep -c "^wirefilter: open flow " "$T/single.out")
log "the single-connection filter saw $opens OPEN frames for $N flows"
[ "$opens" = "$N" ] || fail "the filter saw $opens OPEN frames for $N flows"

# --- 3. a worker out of range
python3 "$WIRE" probe --socket "$FILTER_SOCK" --worker 3 --wait 3 >"$T/probe.json" || fail "the probe could not run"
log "HELLO for worker 3 of 2: $(cat "$T/probe.json")"
[ "$(json "$T/probe.json" 'r["hello"] is None and r["closed"] is True')" = 1 ] ||
	fail "a HELLO for worker 3 of 2 was answered or left open: $(cat "$T/probe.json")"
wait_for_log "$SLUICED_LOG" "HELLO asks for worker 3; this daemon runs 2" 5 ||
	fail "the refusal was not logged"
check_alive "$SLUICED_PID" sluiced
stop_sluiced
