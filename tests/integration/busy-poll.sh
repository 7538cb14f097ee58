#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
#
# sluiced --busy-poll: with workers that poll for 2 ms after each batch of
# events before they sleep, 20 MiB each way through sluice-passthrough
# arrive intact, and 100 connections at once too; once the traffic stops,
# the daemon sleeps again: over 2 s without traffic it uses less than a
# tenth of a second of CPU (a worker that never stopped polling would use
# about 2 s per worker). Timers still fire while it polls: --idle-timeout 1
# resets an idle flow that a client keeps open, in the middle of other
# flows' traffic.
. "$(dirname "$0")/lib.sh"

# cpu_ticks PID: user + system time of a process, in clock ticks.
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

UP=$(addr 127.0.0.1 "$(free_port)")
LISTEN=$(addr 127.0.0.1 "$(free_port)")
start_sluiced "$LISTEN" "$UP" --busy-poll 2000 --workers 2 --idle-timeout 1
start_filter

start_server srv "$UP" --count 1 --send 20M
run_client cli 60 "$LISTEN" --send 20M
wait_server 30
compare cli srv --count 1 --expect-out 20M --expect-in 20M

start_server srv100 "$UP" --count 100 --send 64K-256K
run_client cli100 60 "$LISTEN" --conns 100 --send 64K-256K
wait_server 30
compare cli100 srv100 --count 100

# Idle: the workers must go back to sleeping.
sleep 0.5
hz=$(getconf CLK_TCK)
before=$(cpu_ticks "$SLUICED_PID")
sleep 2
after=$(cpu_ticks "$SLUICED_PID")
used=$((after - before))
log "sluiced used $used ticks (of $hz per second) in 2 s without traffic"
[ $((used * 10)) -lt "$hz" ] ||
	fail "sluiced used $used clock ticks in 2 idle seconds: it kept polling"

# Timers while polling: an idle flow is reset after 1 s, while another
# flow's traffic keeps the workers polling.
cat >"$T/idle.py" <<'PY'
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.settimeout(10)
start = time.monotonic()
try:
    print("recv %r after %.1f s" % (s.recv(1), time.monotonic() - start))
except ConnectionResetError:
    print("reset after %.1f s" % (time.monotonic() - start))
except socket.timeout:
    print("no reset in 10 s")
PY
start_server srv2 "$UP" --count 2 --reply-after-eof
spawn idle python3 "$T/idle.py" "${LISTEN%:*}" "${LISTEN##*:}"
idle=$SPAWNED_PID
run_client cli2 60 "$LISTEN" --send 4M
wait_pid "$idle" 15 || fail "the idle client did not finish"
grep -Eq "^(reset|recv b.. ) after ([1-9]|0\.9)" "$T/idle.out" ||
	fail "idle flow: $(cat "$T/idle.out")"
log "idle flow: $(cat "$T/idle.out")"
wait_server 10
check_alive "$SLUICED_PID" sluiced
stop_sluiced
