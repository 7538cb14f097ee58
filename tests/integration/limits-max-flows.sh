#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 90
#
# --max-flows 5: five concurrent uploads of 6 MiB are held open by a server
# that reads 1 MiB/s per connection. A sixth connection made while they
# run must be reset (the client sees ECONNRESET; nothing reaches the
# server) and the daemon must log "flow limit reached"; the five complete
# intact. Once they are over, a new connection is relayed again (the slots
# are free).
. "$(dirname "$0")/lib.sh"

UP=$(addr 127.0.0.1 "$(free_port)")
LISTEN=$(addr 127.0.0.1 "$(free_port)")
# Six connections reach the server: the five and the one after them.
start_server srv "$UP" --count 6 --read-rate 1M
start_sluiced "$LISTEN" "$UP" --max-flows 5
start_filter

spawn five timeout 60 python3 "$PEER" client --connect "$LISTEN" --conns 5 --send 6M
FIVE_PID=$SPAWNED_PID
end=$((SECONDS + 10))
while [ "$(count_log "$SLUICED_LOG" ": open: ")" -lt 5 ]; do
	[ "$SECONDS" -lt "$end" ] || fail "the five flows were not open within 10 s"
	sleep 0.05
done

run_client sixth 20 "$LISTEN" --send 1M --connect-timeout 5
# peer.py reads and writes in two threads and the kernel reports the reset
# to one of them: ECONNRESET must be among connect, write and read errors.
errs=$(json "$T/sixth.out" '"connect %s, write %s, read %s" % (r.get("connect_error"), r.get("send_error"), r.get("recv_error") or ("EOF" if "eof_at" in r else None))')
log "sixth connection: $errs"
[ "$(json "$T/sixth.out" '"ECONNRESET" in (r.get("connect_error"), r.get("send_error"), r.get("recv_error"))')" -eq 1 ] ||
	fail "the sixth connection was not reset: $errs"
wait_for_log "$SLUICED_LOG" "flow limit reached" 5 || fail "sluiced did not log 'flow limit reached'"
log "$(grep -F "flow limit reached" "$SLUICED_LOG" | head -n 1)"
[ "$(count_log "$SLUICED_LOG" ": open: ")" -eq 5 ] || fail "a sixth flow was opened"
alive "$FIVE_PID" || [ "$(count_log "$SLUICED_LOG" ": closed: ")" -eq 0 ] ||
	fail "the five flows were over before the sixth connection; the limit was not tested"

wait_pid "$FIVE_PID" 40 || fail "the five clients failed or did not finish"
end=$((SECONDS + 20))
while [ "$(count_log "$SLUICED_LOG" ": closed: ")" -lt 5 ]; do
	[ "$SECONDS" -lt "$end" ] || fail "the five flows did not close within 20 s"
	sleep 0.05
done
run_client after 30 "$LISTEN" --send 1M
wait_server 20
cat "$T/five.out" "$T/after.out" >"$T/six.out"
compare six srv --count 6
stop_sluiced
