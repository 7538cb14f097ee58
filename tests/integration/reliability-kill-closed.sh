#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
#
# --on-filter-failure closed: a 200 MiB upload through a filter that speaks
# the protocol itself (tests/tools/wirefilter.py) and writes down every
# offset it decides before it sends the verdict. It passes the out
# direction up to 64 MiB and then leaves the rest undecided; once it holds,
# it is killed with SIGKILL. Then:
#   - the flow is reset, on both sides: the server's read ends with
#     ECONNRESET, not a clean EOF, and the client's upload fails with
#     ECONNRESET (peer.py reads and writes in two threads; the kernel
#     reports a socket's error once, so one of the two gets ECONNRESET and
#     the other may see EOF or EPIPE);
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

# reset_seen FILE: true if the first peer.py record of FILE has an
# ECONNRESET (connecting, writing or reading).
reset_seen() {
	[ "$(json "$1" '"ECONNRESET" in (r.get("connect_error"), r.get("send_error"), r.get("recv_error"))')" -eq 1 ]
}
errors() { # FILE: the error fields of its first record, for messages
	json "$1" '"connect %s, write %s, read %s" % (r.get("connect_error"), r.get("send_error"), r.get("recv_error") or ("EOF" if "eof_at" in r else None))'
}
SIZE=200M
HOLD=$((64 << 20))

# tcp_rx PORT: bytes that have arrived at the connected sockets whose local
# port is PORT, the kernel's count (ss): at sluiced's side of the client's
# connection (PORT = the listening port) that is what the client has sent
# so far. (Not peer.py --progress: its last write can race its own writer
# thread and end the client with FileNotFoundError and status 1.)
tcp_rx() {
	ss -tniH state connected "( sport = :$1 )" 2>/dev/null |
		sed -n 's/.*bytes_received:\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }'
}

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

spawn cli timeout 60 python3 "$PEER" client --connect "$LISTEN" --send "$SIZE"
CLIENT_PID=$SPAWNED_PID

wait_for_log "$T/wire.out" "wirefilter: holding flow" 30 ||
	fail "the filter did not reach its hold point ($HOLD bytes) within 30 s"
# Let the daemon read and offer what the window allows beyond the hold point.
sleep 0.5
sent_kill=$(tcp_rx "${LISTEN##*:}")
{ kill -KILL "$WIRE_PID" && wait "$WIRE_PID"; } 2>/dev/null || true
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
log "client: $(errors "$T/cli.out") after sending $(json "$T/cli.out" 'r["sent"]') bytes"
[ "$(json "$T/cli.out" 'r["sent"]')" -lt $((200 << 20)) ] || fail "the client's upload completed"
reset_seen "$T/cli.out" || fail "the client saw no reset: $(errors "$T/cli.out")"

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
reset_seen "$T/refused.out" ||
	fail "a connection made with no filter connected was not reset: $(errors "$T/refused.out")"
[ "$(json "$T/refused.out" 'r["recv"]')" -eq 0 ] || fail "the refused connection received bytes"
wait_for_log "$SLUICED_LOG" "refused: no filter connected" 5 ||
	fail "sluiced did not log the refusal of the connection made with no filter connected"
log "with no filter: the client saw $(errors "$T/refused.out"); $(grep -F "refused: no filter connected" "$SLUICED_LOG" | head -n 1)"

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
