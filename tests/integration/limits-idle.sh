#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 60
#
# --idle-timeout 2, through sluice-passthrough. At the same time:
#   - an idle connection (connects, sends nothing, reads) must be reset
#     after about 2 s: not before 2 s, and within 2 + 1 (tick) + 1 s; the
#     daemon logs "idle for 2 s";
#   - an active one, a 12 MiB upload to a server that reads 2 MiB/s (about
#     6 s, so it outlives the idle timeout three times over), must not be
#     reset and completes intact.
. "$(dirname "$0")/lib.sh"

IDLE=2

UP=$(addr 127.0.0.1 "$(free_port)")
LISTEN=$(addr 127.0.0.1 "$(free_port)")
# Two connections reach the server: the idle one (reset) and the upload.
# The server sends nothing before it has read to EOF, so that the idle
# connection stays silent both ways. Its small receive buffer keeps the
# upload's bytes in the daemon's socket queues, where the daemon sees them,
# until the last fraction of a second: bytes already in the server's own
# receive queue (acknowledged) are invisible to the daemon, and megabytes
# of them (an autotuned buffer) would be seconds of reading that look idle.
start_server srv "$UP" --count 2 --read-rate 2M --reply-after-eof --rcvbuf 256K
start_sluiced "$LISTEN" "$UP" --idle-timeout "$IDLE"
start_filter

spawn active timeout 40 python3 "$PEER" client --connect "$LISTEN" --send 12M
ACTIVE_PID=$SPAWNED_PID

python3 - "$LISTEN" >"$T/idle.json" <<'PY' || fail "the idle client failed"
import errno, json, socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=5)
t0 = time.monotonic()
s.settimeout(15)
res = {}
try:
    b = s.recv(1)
    res["how"] = "eof" if not b else "data"
except OSError as e:
    res["how"] = "timeout" if isinstance(e, socket.timeout) else errno.errorcode.get(e.errno, str(e))
res["after"] = round(time.monotonic() - t0, 2)
print(json.dumps(res))
PY
log "idle connection: $(cat "$T/idle.json")"
how=$(json "$T/idle.json" 'r["how"]')
after=$(json "$T/idle.json" 'r["after"]')
[ "$how" = ECONNRESET ] || fail "the idle connection ended with '$how', expected a reset (ECONNRESET)"
awk -v x="$after" -v t="$IDLE" 'BEGIN { exit !(x >= t - 0.1 && x <= t + 2) }' ||
	fail "the idle connection was reset after $after s, expected $IDLE to $((IDLE + 2)) s"
wait_for_log "$SLUICED_LOG" "idle for $IDLE s" 2 || fail "sluiced did not log 'idle for $IDLE s'"
log "$(grep -F "idle for $IDLE s" "$SLUICED_LOG")"
alive "$ACTIVE_PID" || fail "the upload was over before the idle connection was reset; nothing ran concurrently"

wait_pid "$ACTIVE_PID" 30 || fail "the upload failed or did not finish"
wait_server 20
python3 -c '
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
big = [r for r in rs if r["recv"]]
if len(big) != 1:
    sys.exit("expected one server connection with data, got %d" % len(big))
open(sys.argv[2], "w").write(json.dumps(big[0]) + "\n")' "$T/srv.out" "$T/srv-active.out" || fail "see above"
compare active srv-active --count 1 --expect-out 12M
[ "$(count_log "$SLUICED_LOG" "idle for")" -eq 1 ] || fail "more than the idle flow was reset for idleness"
stop_sluiced
