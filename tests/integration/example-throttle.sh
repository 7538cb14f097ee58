#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
#
# examples/throttle.c: a 50 MiB upload through sluiced --listen and
# sluice-throttle --rate 5M takes about 10 s (8 to 14 s: a check that the
# limiter limits at the rate asked for, not a performance test), arrives
# intact, and neither the daemon's nor the filter's RSS, sampled every 0.5 s
# during the transfer, moves by 2 MiB or more: the bytes that wait are
# held back by the daemon's window and the sender's TCP window, not
# buffered. Also: bad options exit 2 with one line and the usage, and
# SIGTERM exits 0.
. "$(dirname "$0")/lib.sh"

THROTTLE=${THROTTLE:-$BUILD/sluice-throttle}
[ -x "$THROTTLE" ] || fail "no sluice-throttle binary at $THROTTLE (set BUILD or THROTTLE)"

SIZE=$((50 * 1024 * 1024))
RATE=5M
MIN_SECS=8
MAX_SECS=14
FLAT_KB=2048

# Bad options: status 2, the complaint and the usage line, nothing else.
bad() {
	local rc=0
	"$THROTTLE" "$@" >"$T/bad.out" 2>"$T/bad.err" || rc=$?
	[ "$rc" -eq 2 ] || fail "sluice-throttle $* exited $rc, expected 2: $(cat "$T/bad.err")"
	[ "$(wc -l <"$T/bad.err")" -eq 2 ] && grep -q '^usage: sluice-throttle ' "$T/bad.err" ||
		fail "sluice-throttle $*: expected one error line and the usage, got: $(cat "$T/bad.err")"
}
bad
bad --rate 0
bad --rate 5X
bad --rate -1
bad --rate 99999999999999999999
bad --rate 5M --bogus
bad --rate 5M extra
"$THROTTLE" --help | grep -q -- '--rate RATE' || fail "--help does not describe --rate"

UP=$(addr 127.0.0.1 "$(free_port)")
LISTEN=$(addr 127.0.0.1 "$(free_port)")
start_sluiced "$LISTEN" "$UP"
spawn throttle "$THROTTLE" --socket "$FILTER_SOCK" --rate "$RATE"
FILTER_PID=$SPAWNED_PID
FILTER_LOG=$T/throttle.err
wait_for_log "$FILTER_LOG" "sluice-throttle: connected to $FILTER_SOCK" 10 ||
	fail "sluice-throttle did not say it connected within 10 s"

start_server srv "$UP" --count 1
spawn cli python3 "$PEER" client --connect "$LISTEN" --send "$SIZE" --progress "$T/cli.progress"
CLI_PID=$SPAWNED_PID

# Sample once the bytes flow, so that the buffers every flow allocates
# once are in the first sample already.
for _ in $(seq 200); do
	[ "$(progress_sent "$T/cli.progress")" -gt 0 ] && break
	alive "$CLI_PID" || break
	sleep 0.05
done
sleep 0.5
sd_kb=() fl_kb=()
while alive "$SERVER_PID"; do
	[ "$SECONDS" -lt 100 ] || fail "the upload did not finish within 100 s"
	check_alive "$SLUICED_PID" sluiced
	check_alive "$FILTER_PID" sluice-throttle
	sd_kb+=("$(rss_kb "$SLUICED_PID")")
	fl_kb+=("$(rss_kb "$FILTER_PID")")
	sleep 0.5
done
wait_server 10
wait_pid "$CLI_PID" 5 || fail "client exited with status $?: $(tail -n 3 "$T/cli.err")"
compare cli srv --count 1 --expect-out "$SIZE"

# From the client's connect to the server's end of file: the client itself
# is done earlier, when its last bytes fit in the socket buffers.
t0=$(json "$T/cli.out" 'r["start"]')
t1=$(json "$T/srv.out" 'r["eof_at"]')
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
log "$SIZE bytes at --rate $RATE took $secs s ($(awk -v s="$secs" -v n="$SIZE" 'BEGIN { printf "%.2f", n / s / 1048576 }') MiB/s)"
awk -v s="$secs" -v lo="$MIN_SECS" -v hi="$MAX_SECS" 'BEGIN { exit !(s >= lo && s <= hi) }' ||
	fail "the upload took $secs s, expected $MIN_SECS to $MAX_SECS s at $RATE"

# spread NAME KB...: max - min of the samples, logged; fails at FLAT_KB or more.
spread() {
	local name=$1 min max
	shift
	[ "$#" -ge 10 ] || fail "only $# RSS samples of $name"
	min=$(printf '%s\n' "$@" | sort -n | head -n 1)
	max=$(printf '%s\n' "$@" | sort -n | tail -n 1)
	log "$name RSS over $# samples: min $min KiB, max $max KiB, spread $((max - min)) KiB"
	[ $((max - min)) -lt "$FLAT_KB" ] ||
		fail_memory "$name RSS grew during the transfer: $min to $max KiB (samples: $*)"
}
spread sluiced "${sd_kb[@]}"
spread sluice-throttle "${fl_kb[@]}"

awk '{ print $14, $15 }' "/proc/$SLUICED_PID/stat" "/proc/$FILTER_PID/stat" >"$T/cpu"
wait_for_log "$FILTER_LOG" "closed: out $SIZE in 0 bytes" 5 ||
	fail "sluice-throttle did not log the flow closed with $SIZE bytes out: $(tail -n 3 "$FILTER_LOG")"

# SIGTERM: status 0.
kill -TERM "$FILTER_PID"
rc=0
wait_pid "$FILTER_PID" 5 || rc=$?
[ "$rc" -eq 0 ] || fail "sluice-throttle exited $rc on SIGTERM (expected 0)"
FILTER_PID=
stop_sluiced
