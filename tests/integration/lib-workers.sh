#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# timeout: 120
#
# libsluice against a daemon with several workers, without sluiced:
# tests/tools/fake_workers_daemon.py speaks the daemon's side, answers the
# first HELLO as worker 1 of N, expects one more connection per other
# worker, opens three flows on each connection and checks that every
# verdict comes back on the connection that owns its flow, that every byte
# comes out unchanged, and that the filter goes away on all connections
# when the daemon hangs up. sluice-passthrough is the filter, in socket and
# in shared-memory mode (the fake gives each flow direction a small slot,
# which its bytes wrap around, written over as soon as they are decided),
# with replace (the default) and with --pass; and against a single-worker
# daemon, which gets one connection as before workers.

# lib.sh insists on a sluiced binary; this test does not run one.
if [ ! -x "${SLUICED:-${BUILD:-build}/sluiced}" ]; then
	SLUICED=$(type -P true)
fi
. "$(dirname "$0")/lib.sh"

FAKE=$TESTS_DIR/tools/fake_workers_daemon.py
FLOWS=3
CHUNKS=4
CHUNK=3000

# run_case NAME WORKERS SHM [sluice-passthrough options]: SHM is yes or no,
# whether the filter asks for the shared rings.
run_case() {
	local name=$1 workers=$2 shm=$3 sock fake filter rc=0 n bytes
	shift 3
	sock=$T/$name.sock
	spawn "fake-$name" python3 "$FAKE" --socket "$sock" --workers "$workers" --flows "$FLOWS" \
		--chunks "$CHUNKS" --chunk "$CHUNK" --expect-shm "$shm" --timeout 30
	fake=$SPAWNED_PID
	wait_for_log "$T/fake-$name.out" "fake_workers_daemon: listening" 10 ||
		fail "$name: the fake daemon did not listen within 10 s"
	spawn "filter-$name" "$PASSTHROUGH" --socket "$sock" "$@"
	filter=$SPAWNED_PID

	wait_pid "$fake" 40 || rc=$?
	[ "$rc" -ne 124 ] || fail "$name: the fake daemon did not finish within 40 s"
	[ "$rc" -eq 0 ] || fail "$name: the fake daemon exited with status $rc"
	rc=0
	wait_pid "$filter" 10 || rc=$?
	[ "$rc" -ne 124 ] || fail "$name: sluice-passthrough still runs after the daemon hung up"
	# 1 is its status when the daemon closed the channel; anything else
	# (a sanitizer's report, a crash) is a failure.
	[ "$rc" -eq 1 ] || fail "$name: sluice-passthrough exited with status $rc, expected 1"
	grep -qF "sluice-passthrough: daemon closed the channel" "$T/filter-$name.err" ||
		fail "$name: sluice-passthrough did not report the daemon's close"

	bytes=$((CHUNKS * CHUNK))
	n=$(count_log "$T/filter-$name.err" "closed: out $bytes in $bytes bytes")
	[ "$n" -eq $((workers * FLOWS)) ] ||
		fail "$name: sluice-passthrough saw $n flows close with $bytes bytes each way, expected $((workers * FLOWS))"

	grep '^{' "$T/fake-$name.out" >"$T/fake-$name.json" || fail "$name: no summary from the fake daemon"
	[ "$(json "$T/fake-$name.json" "r['workers'] == list(range(1, $workers + 1))")" = 1 ] ||
		fail "$name: connections for workers $(json "$T/fake-$name.json" "r['workers']"), expected 1 to $workers"
	if [ "$shm" = yes ]; then
		[ "$(json "$T/fake-$name.json" "all(r['shm']) and r['slots'] == [2 * $FLOWS] * $workers and all(r['slot_wraps'])")" = 1 ] ||
			fail "$name: every connection should have used a slot per flow direction, wrapping: $(cat "$T/fake-$name.json")"
	fi
	log "$name: $workers connection(s), $((workers * FLOWS)) flows, every verdict on its flow's connection"
}

run_case socket-2 2 no --no-shm
run_case shm-2 2 yes
run_case socket-3-pass 3 no --no-shm --pass
run_case shm-4-pass 4 yes --pass
run_case single-worker 1 yes
