#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
#
# A reset on one side resets the other, promptly:
#  1. the client resets (close with SO_LINGER 0) after sending 4 MiB of a
#     64 MiB upload: the server's read ends with ECONNRESET or EOF within
#     2 s, having received no more than the client sent.
#  2. the server resets after reading 4 MiB while the client is still
#     sending and reading: the client sees ECONNRESET within 2 s. (EPIPE
#     alone is not enough: Linux reports a reset that follows a FIN as
#     EPIPE, which is what a relay that turns the reset into a close causes.)
. "$(dirname "$0")/lib.sh"

PROMPT=2.0

UP=$(addr 127.0.0.1 "$(free_port)")
LISTEN=$(addr 127.0.0.1 "$(free_port)")
start_sluiced "$LISTEN" "$UP"
start_filter

start_server srv1 "$UP" --count 1 --no-half-close --io-timeout 20
run_client cli1 60 "$LISTEN" --send 64M --rst-after 4M
wait_server 30
rst_at=$(json "$T/cli1.out" 'r["rst_at"]')
sent=$(json "$T/cli1.out" 'r["sent"]')
how=$(json "$T/srv1.out" 'r["recv_error"] or ("EOF" if r.get("eof_at") else "nothing")')
ended=$(json "$T/srv1.out" 'r.get("recv_error_at") or r.get("eof_at") or 0')
got=$(json "$T/srv1.out" 'r["recv"]')
delay=$(python3 -c "print('%.3f' % ($ended - $rst_at))")
log "client reset after $sent bytes; server got $got bytes, then $how ${delay}s later"
case $how in
ECONNRESET | EOF) ;;
*) fail "server's read ended with $how after the client's reset" ;;
esac
[ "$got" -le "$sent" ] || fail "server received $got bytes, more than the $sent sent"
python3 -c "import sys; sys.exit(not $delay < $PROMPT)" ||
	fail "server saw the client's reset only after ${delay}s"

start_server srv2 "$UP" --count 1 --rst-after 4M
run_client cli2 60 "$LISTEN" --send 64M --io-timeout 20
wait_server 30
rst_at=$(json "$T/srv2.out" 'r["rst_at"]')
errs=$(json "$T/cli2.out" '"%s/%s" % (r["send_error"], r["recv_error"])')
first=$(json "$T/cli2.out" 'min(t for t in (r.get("send_error_at"), r.get("recv_error_at"), r.get("eof_at")) if t) if (r.get("send_error_at") or r.get("recv_error_at") or r.get("eof_at")) else 0')
delay=$(python3 -c "print('%.3f' % ($first - $rst_at))")
log "server reset after $(json "$T/srv2.out" 'r["recv"]') bytes; client send/recv errors: $errs, ${delay}s later"
case $errs in
*ECONNRESET*) ;;
*) fail "client saw $errs (send/recv) after the server's reset, not ECONNRESET" ;;
esac
python3 -c "import sys; sys.exit(not $delay < $PROMPT)" ||
	fail "client saw the server's reset only after ${delay}s"
check_alive "$SLUICED_PID" sluiced
stop_sluiced
