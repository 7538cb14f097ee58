#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 60
#
# --max-frame 65536: the daemon's HELLO announces max_frame 65536, and a raw
# filter client (tests/tools/wirefilter.py probe) that sends a 70000-byte
# VERDICT frame after the HELLO exchange is dropped: the channel is closed
# and the daemon logs "frame longer than the announced maximum". The daemon
# stays up, and a 20 MiB upload through sluice-passthrough in replace mode
# (every chunk sent back as replacement bytes, which must fit the daemon's
# smaller frames) completes intact.
. "$(dirname "$0")/lib.sh"

WIRE=$TESTS_DIR/tools/wirefilter.py
MAX=65536

UP=$(addr 127.0.0.1 "$(free_port)")
LISTEN=$(addr 127.0.0.1 "$(free_port)")
start_server srv "$UP" --count 1
start_sluiced "$LISTEN" "$UP" --max-frame "$MAX"

python3 "$WIRE" probe --socket "$FILTER_SOCK" --oversize 70000 --wait 5 >"$T/probe.json" ||
	fail "the probe could not run"
log "probe: $(cat "$T/probe.json")"
[ "$(json "$T/probe.json" 'r["hello"] is not None')" -eq 1 ] || fail "the daemon did not answer the HELLO"
announced=$(json "$T/probe.json" 'r["hello"]["max_frame"]')
[ "$announced" -eq "$MAX" ] || fail "the daemon's HELLO announces max_frame $announced, expected $MAX"
[ "$(json "$T/probe.json" 'r.get("oversize_sent", 0)')" -eq 70000 ] ||
	fail "the 70000-byte frame could not be sent: $(json "$T/probe.json" 'r.get("send_error")')"
[ "$(json "$T/probe.json" 'r["closed"]')" -eq 1 ] || fail "the channel was not closed within 5 s of the 70000-byte frame"
wait_for_log "$SLUICED_LOG" "frame longer than the announced maximum" 5 ||
	fail "sluiced did not log 'frame longer than the announced maximum'"
log "$(grep -F "frame longer than the announced maximum" "$SLUICED_LOG")"
check_alive "$SLUICED_PID" sluiced

start_filter
run_client cli 30 "$LISTEN" --send 20M
wait_server 20
compare cli srv --count 1 --expect-out 20M
grep -qF "filter 2 (passthrough)" "$SLUICED_LOG" || fail "the upload did not go through the filter"
if grep -F "dropping filter client 2" "$SLUICED_LOG"; then
	fail "the daemon dropped sluice-passthrough with --max-frame $MAX"
fi
stop_sluiced
