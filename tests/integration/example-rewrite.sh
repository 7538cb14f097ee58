#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 300
#
# sluice-rewrite through sluiced --listen: every FROM replaced by TO, exactly
# as python's bytes.replace predicts, also where FROM is split between two
# chunks at each possible position; for longer, shorter and empty TO; only in
# the chosen direction, the other one untouched. Then 50 MiB of random bytes
# each way with FROM planted 20000 times, checked by sha256. Also the
# command line: bad options exit 2, SIGTERM exits 0.
. "$(dirname "$0")/lib.sh"

REWRITE=${REWRITE:-$BUILD/sluice-rewrite}
CHUNKS=$TESTS_DIR/tools/chunks.py
[ -x "$REWRITE" ] || fail "no sluice-rewrite binary at $REWRITE (set BUILD or REWRITE)"

UP=$(addr 127.0.0.1 "$(free_port)")

# start_rewrite ARGS...: sluice-rewrite on the filter socket of the daemon
# started last, like lib.sh's start_filter. Sets FILTER_PID, FILTER_LOG.
start_rewrite() {
	local name=rewrite-$_SLUICED_N
	for _ in $(seq 200); do
		[ -S "$FILTER_SOCK" ] && break
		sleep 0.05
	done
	spawn "$name" "$REWRITE" --socket "$FILTER_SOCK" "$@"
	FILTER_PID=$SPAWNED_PID
	FILTER_LOG=$T/$name.err
	wait_for_log "$FILTER_LOG" "sluice-rewrite: connected to $FILTER_SOCK" 10 ||
		fail "sluice-rewrite $* did not connect within 10 s"
}

# run_case NAME SECONDS DIRECTION FROM TO MODE [MODE ARGS]: a fresh daemon
# and filter, one connection driven by chunks.py, which checks both directions.
run_case() {
	local name=$1 secs=$2 dir=$3 from=$4 to=$5 rc=0 listen
	shift 5
	listen=$(addr 127.0.0.1 "$(free_port)")
	start_sluiced "$listen" "$UP"
	start_rewrite --direction "$dir" -- "$from" "$to"
	if [ "$dir" != both ]; then
		wait_for_log "$SLUICED_LOG" "subscribes to $dir," 5 ||
			fail "$name: the daemon did not log a subscription to $dir only"
	fi
	timeout -k 5 "$secs" python3 "$CHUNKS" --listen "$UP" --connect "$listen" \
		--from "$from" --to "$to" --rewrite "$dir" "$@" >"$T/$name.out" 2>&1 || rc=$?
	sed "s/^/$TEST_NAME: $name: /" "$T/$name.out"
	[ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || fail "$name: no result within $secs s"
	[ "$rc" -eq 0 ] || fail "$name: the bytes that arrived are not the expected ones"
	check_alive "$FILTER_PID" sluice-rewrite
	stop_sluiced
}

# The command line.
rc=0
"$REWRITE" --help >"$T/help.out" || rc=$?
[ "$rc" -eq 0 ] && grep -q "^usage: sluice-rewrite" "$T/help.out" || fail "--help: exit $rc"
for bad in "--direction sideways a b" "--bogus a b" "a" "a b c" "'' b" "'\\xZZ' b" "a '\\q'"; do
	rc=0
	eval "\"\$REWRITE\" $bad" >"$T/bad.out" 2>"$T/bad.err" || rc=$?
	[ "$rc" -eq 2 ] || fail "sluice-rewrite $bad: exit status $rc, expected 2"
	[ "$(grep -vc '^usage:' "$T/bad.err")" -eq 1 ] && grep -q '^usage:' "$T/bad.err" ||
		fail "sluice-rewrite $bad: expected one error line and the usage, got: $(cat "$T/bad.err")"
done

# FROM split at every position, a growing replacement, out only: what the
# server sends comes back untouched.
run_case grow-out 60 out "sluice:secret" "SLUICE-SECRET-IS-NOW-MUCH-LONGER" split
# A shrinking replacement in both directions.
run_case shrink-both 60 both "sluice:secret" "s:" split
# An empty replacement of a self-overlapping FROM with a NUL byte, given as
# escapes: "ab\0ab" in "ab\0ab\0ab" matches once, at 0.
run_case empty-in 60 in 'ab\x00ab' "" split
# One byte becomes two, in both directions: no tail is ever kept.
run_case onebyte-both 60 both "e" '\r\n' split --pause 0.02

# 50 MiB each way at full speed.
start=$SECONDS
run_case random-both 180 both "sluice:secret" "SLUICE-SECRET-IS-NOW-MUCH-LONGER" random
log "50 MiB each way rewritten in $((SECONDS - start)) s"

# SIGTERM ends the filter with status 0.
listen=$(addr 127.0.0.1 "$(free_port)")
start_sluiced "$listen" "$UP"
start_rewrite a b
kill -TERM "$FILTER_PID"
rc=0
wait_pid "$FILTER_PID" 5 || rc=$?
[ "$rc" -eq 0 ] || fail "sluice-rewrite exited with status $rc on SIGTERM (expected 0)"
FILTER_PID=
stop_sluiced
