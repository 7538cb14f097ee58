#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 60
#
# --max-filters 2: with two sluice-passthrough filters connected, a third
# connection to the filter socket is closed at once, without a HELLO in
# answer (a raw client, tests/tools/wirefilter.py probe), and the daemon logs
# "already 2 filters". The two filters stay connected and flows still go
# through them intact. When one of them leaves, a new filter is let in.
. "$(dirname "$0")/lib.sh"

WIRE=$TESTS_DIR/tools/wirefilter.py

spawn_filter() { # NAME: a passthrough on FILTER_SOCK; sets FILTER_PID
	spawn "$1" "$PASSTHROUGH" --socket "$FILTER_SOCK" --name "$1"
	FILTER_PID=$SPAWNED_PID
	wait_for_log "$T/$1.err" "sluice-passthrough: connected to" 10 ||
		fail "$1 did not connect to $FILTER_SOCK"
}

UP=$(addr 127.0.0.1 "$(free_port)")
LISTEN=$(addr 127.0.0.1 "$(free_port)")
start_server srv "$UP" --count 4
# One worker: each passthrough is then one connection (with N workers,
# libsluice opens N, and the limit counts connections).
start_sluiced "$LISTEN" "$UP" --max-filters 2 --workers 1
spawn_filter f1
F1=$FILTER_PID
spawn_filter f2
F2=$FILTER_PID

python3 "$WIRE" probe --socket "$FILTER_SOCK" --wait 3 >"$T/third.json" ||
	fail "the probe could not run"
log "third filter connection: $(cat "$T/third.json")"
[ "$(json "$T/third.json" 'r["connect_error"] is None')" -eq 1 ] ||
	fail "the third connection could not even connect: $(json "$T/third.json" 'r["connect_error"]')"
[ "$(json "$T/third.json" 'r["hello"] is None')" -eq 1 ] || fail "the third filter's HELLO was answered"
[ "$(json "$T/third.json" 'r["closed"]')" -eq 1 ] || fail "the third connection was not closed within 3 s"
wait_for_log "$SLUICED_LOG" "already 2 filters" 5 || fail "sluiced did not log 'already 2 filters'"
log "$(grep -F "already 2 filters" "$SLUICED_LOG")"

check_alive "$F1" "filter f1"
check_alive "$F2" "filter f2"
run_client two 30 "$LISTEN" --conns 2 --send 10M
grep -qF "filter 1 (f1)" "$SLUICED_LOG" && grep -qF "filter 2 (f2)" "$SLUICED_LOG" ||
	fail "the flows did not go through both filters"

# One leaves: there is room again.
stop_group "$F1"
wait_for_log "$SLUICED_LOG" "dropping filter client 1 (f1)" 5 || fail "sluiced did not notice f1 leaving"
spawn_filter f3
run_client two-more 30 "$LISTEN" --conns 2 --send 10M
[ "$(grep -F ": open: " "$SLUICED_LOG" | grep -cF "(f3)")" -ge 1 ] || fail "no flow went through f3"
wait_server 20
cat "$T/two.out" "$T/two-more.out" >"$T/four.out"
compare four srv --count 4
[ "$(count_log "$SLUICED_LOG" "already 2 filters")" -eq 1 ] || fail "a filter was refused although there was room"
stop_sluiced
