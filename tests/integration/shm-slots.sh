#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 180
#
# The shared-memory channel's forward slots (docs/protocol.md, "Shared-memory
# channel"), with sluice-passthrough in shared-memory mode and one worker:
#   head-of-line  the server reads nothing of four connections while four others
#                 send 8 MiB each way through the same filter: the four are
#                 done, intact, while the first four are still held, and no DATA
#                 byte travelled inside a frame (every one was read into the
#                 filter's memory: sluice_shm_inline_bytes_total stays 0);
#                 then the held ones arrive intact (four held windows are
#                 more than a 1 MiB ring shared by the filter's flows
#                 would hold, as protocol 1 had);
#   over-slots    80 held connections with 4 MiB each, the filter stopped
#                 (SIGSTOP) so that all of them hold bytes at once: more busy
#                 directions than the 64 slots, so the rest go through frames
#                 (the inline counter grows); after SIGCONT every byte of
#                 all of them arrives intact;
#   release       a filter that sends RELEASE (only the daemon releases, in
#                 protocol 2) is dropped with a message saying so.
. "$(dirname "$0")/lib.sh"
need curl

HOLD=$TESTS_DIR/tools/hold_peer.py
MPORT=$(free_port)

# inline: the inline-bytes counter now.
inline() {
	curl -sS --max-time 5 "http://127.0.0.1:$MPORT/metrics" |
		awk '$1 == "sluice_shm_inline_bytes_total" { print $2; found = 1 } END { if (!found) print "missing" }'
}

# hold CASE [hold_peer.py options]
hold() {
	local name=$1 rc=0
	shift
	timeout -k 5 150 python3 "$HOLD" --listen "$UP" --connect "$LISTEN" --timeout 60 "$@" \
		>"$T/$name.out" 2>"$T/$name.err" || rc=$?
	[ "$rc" -eq 0 ] || fail "$name: $(cat "$T/$name.err") $(cat "$T/$name.out")"
	log "$name: $(cat "$T/$name.out")"
}

UP=$(addr 127.0.0.1 "$(free_port)")
LISTEN=$(addr 127.0.0.1 "$(free_port)")
start_sluiced "$LISTEN" "$UP" --workers 1 --metrics "127.0.0.1:$MPORT"
wait_listening "127.0.0.1:$MPORT" "$SLUICED_PID" "sluiced's metrics endpoint"
start_filter
grep -q "shared memory" "$SLUICED_LOG" || fail "sluice-passthrough did not get shared memory"

hold head-of-line --hold 4 --free 4 --size $((8 << 20))
n=$(inline)
[ "$n" = 0 ] || fail "head-of-line: $n DATA bytes went inside frames, expected all in the slots"

# The filter stopped, so that every held direction keeps its window of
# undecided bytes in the daemon at the same time.
kill -STOP "$FILTER_PID"
spawn over-slots python3 "$HOLD" --listen "$UP" --connect "$LISTEN" --timeout 90 \
	--hold 80 --free 0 --size $((4 << 20))
held=$SPAWNED_PID
n=0
for _ in $(seq 300); do
	n=$(inline)
	[ "$n" != missing ] && [ "$n" -gt 0 ] && break
	sleep 0.1
done
kill -CONT "$FILTER_PID"
[ "$n" != missing ] && [ "$n" -gt 0 ] ||
	fail "over-slots: 80 busy directions and no byte inside a frame ($n): were the slots not all lent?"
rc=0
wait_pid "$held" 120 || rc=$?
[ "$rc" -eq 0 ] || fail "over-slots: hold_peer exited with $rc: $(cat "$T/over-slots.err" "$T/over-slots.out")"
log "over-slots: $(cat "$T/over-slots.out"); $n bytes went inside frames once the 64 slots were lent"
check_alive "$FILTER_PID" sluice-passthrough

# A RELEASE from a filter, after a proper HELLO asking for shared memory.
python3 - "$FILTER_SOCK" "$TESTS_DIR/tools" >"$T/release.out" 2>&1 <<'PY' || fail "release: $(cat "$T/release.out")"
import socket, struct, sys
sys.path.insert(0, sys.argv[2])
import frames
RELEASE = 11
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(frames.hello(b"releaser", features=2))
s.settimeout(10)
got = s.recv(65536)  # the daemon's HELLO and SHM
s.sendall(frames.frame(RELEASE, struct.pack("<QQ", 0, 0)))
while b := s.recv(65536):
    got += b
print("closed after", len(got), "bytes")
PY
wait_for_log "$SLUICED_LOG" "sent a RELEASE frame, which only the daemon sends" 5 ||
	fail "release: sluiced did not say why it dropped the filter"
log "release: $(grep -F "sent a RELEASE frame" "$SLUICED_LOG" | head -1)"
check_alive "$FILTER_PID" sluice-passthrough
stop_sluiced
