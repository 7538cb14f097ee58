#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 60
#
# The upstream port has nothing listening: each client connection is reset
# or closed without any data within 2 s, and the daemon lives on (a
# transfer works once a server appears on that port).
. "$(dirname "$0")/lib.sh"

UP=$(addr 127.0.0.1 "$(free_port)")
LISTEN=$(addr 127.0.0.1 "$(free_port)")
start_sluiced "$LISTEN" "$UP"
start_filter

for i in 1 2 3; do
	run_client "cli$i" 20 "$LISTEN" --no-half-close --io-timeout 5
	res=$(json "$T/cli$i.out" '"%s %s %s %d %.3f" % (r.get("connect_error"), r["recv_error"], "eof" if r.get("eof_at") else "-", r["recv"], r["end"] - r["start"])')
	log "connection $i: connect_error recv_error eof bytes seconds: $res"
	read -r cerr rerr eof got secs <<<"$res"
	[ "$got" -eq 0 ] || fail "client received $got bytes from a refused upstream"
	case $cerr/$rerr/$eof in
	ECONNREFUSED/* | ECONNRESET/* | None/ECONNRESET/* | None/None/eof) ;;
	*) fail "connection was not refused, reset or closed (connect $cerr, recv $rerr, eof $eof)" ;;
	esac
	python3 -c "import sys; sys.exit(not $secs < 2.0)" ||
		fail "refusal took ${secs}s to reach the client"
	check_alive "$SLUICED_PID" sluiced
done

start_server srv "$UP" --count 1 --send 1M
run_client cli 30 "$LISTEN" --send 1M
wait_server 10
compare cli srv --count 1 --expect-out 1M --expect-in 1M
stop_sluiced
