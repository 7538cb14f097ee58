#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
#
# --on-filter-failure closed: a 200 MiB upload through a filter that speaks
# the protocol itself (tests/tools/wirefilter.py) and writes down every
# offset it decides before it sends the verdict. It passes the out
# direction up to 64 MiB and then leaves the rest undecided; once it holds,
# it is killed with SIGKILL. Then:
#   - the flow is reset: the client's read sees a reset, not a clean EOF
#     (the server sends only after the client's EOF, so the in direction
#     has nothing to end early), and its writes fail;
#   - the server received no more than the filter had decided (the last
#     offset in its file): nothing undecided leaked out after the kill;
#   - the daemon logs that the flow was reset (fail-closed);
#   - a new connection while no filter is connected is refused: the client
#     is reset, and the daemon logs why. (With no filter that could give a
#     connect-time verdict the daemon starts connecting upstream at once,
#     so the server may see that connection too, reset and empty: that is
#     as docs/protocol.md says.)
#   - once a filter (sluice-passthrough) connects again, a new connection
#     goes through intact.
. "$(dirname "$0")/lib.sh"

WIRE=$TESTS_DIR/tools/wirefilter.py
SIZE=200M
HOLD=$((64 << 20))

UP=$(addr 127.0.0.1 "$(free_port)")
LISTEN=$(addr 127.0.0.1 "$(free_port)")
# Three connections reach the server: the killed upload, the refused one
# (reset, empty) and the one after the filter is back.
start_server srv "$UP" --count 3 --reply-after-eof
start_sluiced "$LISTEN" "$UP" --on-filter-failure closed

DECIDED=$T/decided
spawn wire python3 "$WIRE" filter --socket "$FILTER_SOCK" --decided "$DECIDED" --hold-after "$HOLD"
WIRE_PID=$SPAWNED_PID
wait_for_log "$T/wire.out" "wirefilter: connected" 10 || fail "wirefilter did not connect"

PROGRESS=$T/progress
spawn cli timeout 60 python3 "$PEER" client --connect "$LISTEN" --send "$SIZE" --progress "$PROGRESS"
CLIENT_PID=$SPAWNED_PID

wait_for_log "$T/wire.out" "wirefilter: holding flow" 30 ||
	fail "the filter did not reach its hold point ($HOLD bytes) within 30 s"
# Let the daemon read and offer what the window allows beyond the hold point.
sleep 0.5
{ kill -KILL "$WIRE_PID" && wait "$WIRE_PID"; } 2>/dev/null || true
sent_kill=$(progress_sent "$PROGRESS")
decided=$(tail -n 1 "$DECIDED")
log "filter killed: it had decided $decided bytes; the client had sent $sent_kill"
[ "$decided" -eq "$HOLD" ] || fail "the filter's last decided offset is $decided, expected $HOLD"
[ "$sent_kill" -gt "$decided" ] ||
	fail "the client had sent no more than was decided ($sent_kill); nothing undecided to hold back"

wait_for_log "$SLUICED_LOG" "flows reset (fail-closed)" 5 ||
	fail "sluiced did not log that the flow was reset (fail-closed) within 5 s of the kill"
log "$(grep -F "flows reset (fail-closed)" "$SLUICED_LOG" | head -n 1)"

wait_pid "$CLIENT_PID" 20 || true
alive "$CLIENT_PID" && fail "the client was still running 20 s after the kill"
rerr=$(json "$T/cli.out" 'r.get("recv_error") or ""')
serr=$(json "$T/cli.out" 'r.get("send_error") or ""')
log "client: read: ${rerr:-clean EOF}, write: ${serr:-none} after sending $(json "$T/cli.out" 'r["sent"]') bytes"
[ "$(json "$T/cli.out" '"eof_at" in r')" -eq 0 ] || fail "the client read a clean EOF, not a reset"
[ "$rerr" = ECONNRESET ] || fail "the client's read ended with '${rerr:-EOF}', expected ECONNRESET"
[ -n "$serr" ] || fail "the client's upload did not fail: $(cat "$T/cli.out")"

# The server's record of the first connection (it ends once the daemon
# resets it).
end=$((SECONDS + 10))
while [ "$(grep -c . "$T/srv.out" 2>/dev/null || true)" -lt 1 ]; do
	[ "$SECONDS" -lt "$end" ] || fail "the server did not see the first connection end within 10 s"
	sleep 0.05
done
srv_recv=$(json "$T/srv.out" 'r["recv"]')
log "server: received $srv_recv bytes, $(json "$T/srv.out" 'r["recv_error"] or "clean EOF"')"
[ "$srv_recv" -le "$decided" ] ||
	fail "the server received $srv_recv bytes, more than the $decided the filter decided before it was killed"
[ "$(json "$T/srv.out" 'r["recv_error"] or ""')" != "" ] ||
	fail "the server saw a clean EOF (a FIN), not a reset, after $srv_recv bytes"

# No filter now: a new connection is refused.
run_client refused 20 "$LISTEN" --send 1M --connect-timeout 5
rerr=$(json "$T/refused.out" 'r.get("connect_error") or r.get("recv_error") or ""')
[ "$rerr" = ECONNRESET ] ||
	fail "a connection with no filter connected was not reset (read: ${rerr:-clean EOF}): $(cat "$T/refused.out")"
wait_for_log "$SLUICED_LOG" "refused: no filter connected" 5 ||
	fail "sluiced did not log the refusal of the connection made with no filter connected"
log "with no filter: the client saw $rerr; $(grep -F "refused: no filter connected" "$SLUICED_LOG" | head -n 1)"

# A filter again: connections are accepted and relayed.
start_filter
run_client after 30 "$LISTEN" --send 10M
wait_server 20
python3 -c '
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rs.sort(key=lambda r: r["start"])
# The second connection is the refused one: nothing of it may arrive.
if rs[1]["recv"]:
    sys.exit("the refused connection delivered %d bytes to the server" % rs[1]["recv"])
with open(sys.argv[2], "w") as f:
    f.write(json.dumps(rs[2]) + "\n")' "$T/srv.out" "$T/srv-after.out" || fail "see above"
compare after srv-after --count 1 --expect-out 10M
grep -qF "filter 2 (passthrough)" "$SLUICED_LOG" || fail "the last flow was not given to the new filter"
stop_sluiced
