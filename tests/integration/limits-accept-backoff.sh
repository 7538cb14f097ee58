#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 90
#
# Accept back-off: sluiced runs with RLIMIT_NOFILE 32 (and no inherited
# descriptors besides stdin, stdout and stderr) with sluice-passthrough
# attached, and 40 clients connect to it and stay connected, idle. The
# daemon runs out of descriptors; what it must do (listener.c):
#   - log "pausing accepts" (accept() failed with EMFILE) and leave the
#     connections it cannot take in the kernel's backlog: none of the 40 is
#     reset;
#   - not spin: its CPU time (utime + stime) over 2 s stays under 0.5 s;
#   - once the clients have closed, take new connections again: a 1 MiB
#     upload goes through intact.
# This is done twice, once with one more descriptor held open in the
# daemon: each flow takes two descriptors, so one of the two rounds leaves
# the daemon an odd number of spare descriptors, and the back-off must work
# whatever that parity. (docs/operations.md: when accept fails with EMFILE
# the listener pauses and new connections wait in the backlog; a flow that
# gets no upstream socket is reset. With an odd number spare, accept never
# fails: each accept takes the last descriptor and that flow is reset for
# want of an upstream socket, so the whole backlog is reset, one connection
# after another, and the back-off never engages: one of the two rounds
# is in that case.)
. "$(dirname "$0")/lib.sh"

need prlimit
NOFILE=32
CONNS=40
REAL_SLUICED=$(cd "$(dirname "$SLUICED")" && pwd)/$(basename "$SLUICED")
CLK_TCK=$(getconf CLK_TCK)
MAX_TICKS=$((CLK_TCK / 2))

# sluiced with the limit, only descriptors 0-2 and EXTRA more (/dev/null):
# python closes the rest, sets the limit and execs, so the pid is sluiced's.
cat >"$T/limited.py" <<'PY'
import os, resource, sys
extra, nofile, real = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
os.closerange(3, 65536)
for _ in range(extra):
    os.set_inheritable(os.open("/dev/null", os.O_RDONLY), True)
resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
os.execv(real, [real] + sys.argv[4:])
PY

# Holds N connections until the file RELEASE appears, then reports how many
# of them had been reset (the rest are open, accepted or still in the
# backlog) and closes them all.
cat >"$T/hold.py" <<'PY'
import errno, json, os, socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
n, release = int(sys.argv[2]), sys.argv[3]
socks, res = [], {"connected": 0, "connect_errors": [], "reset": 0, "eof": 0, "open": 0}
for _ in range(n):
    try:
        socks.append(socket.create_connection((host, int(port)), timeout=5))
        res["connected"] += 1
    except OSError as e:
        res["connect_errors"].append(errno.errorcode.get(e.errno, str(e)))
print("held %d" % len(socks), flush=True)
while not os.path.exists(release):
    time.sleep(0.05)
for s in socks:
    s.setblocking(False)
    try:
        res["eof" if not s.recv(1) else "open"] += 1
    except BlockingIOError:
        res["open"] += 1
    except OSError:
        res["reset"] += 1
    s.close()
print(json.dumps(res), flush=True)
PY

cpu_ticks() {
	sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

UP=$(addr 127.0.0.1 "$(free_port)")
# No --count: every connection the daemon relays reaches it.
start_server srv "$UP" --reply-after-eof

SLUICED=$T/sluiced-limited
problems=()
for extra in 0 1; do
	cat >"$SLUICED" <<-SH
		#!/bin/sh
		exec python3 "$T/limited.py" $extra $NOFILE "$REAL_SLUICED" "\$@"
	SH
	chmod +x "$SLUICED"
	LISTEN=$(addr 127.0.0.1 "$(free_port)")
	start_sluiced "$LISTEN" "$UP"
	[ "$(cat "/proc/$SLUICED_PID/comm")" = sluiced ] || fail "pid $SLUICED_PID is not sluiced"
	start_filter
	sleep 0.2
	used=$(ls "/proc/$SLUICED_PID/fd" | wc -l)
	spare=$((NOFILE - used))
	round="round $((extra + 1)) ($spare spare descriptors)"
	log "$round: sluiced has $used descriptors open, limit $NOFILE"

	RELEASE=$T/release-$extra
	spawn "hold-$extra" python3 "$T/hold.py" "$LISTEN" "$CONNS" "$RELEASE"
	HOLD_PID=$SPAWNED_PID
	wait_for_log "$T/hold-$extra.out" "held" 15 || fail "$round: the clients did not connect within 15 s"
	grep -qxF "held $CONNS" "$T/hold-$extra.out" || log "$round: not all clients could connect: $(cat "$T/hold-$extra.out")"
	sleep 0.5
	t0=$(cpu_ticks "$SLUICED_PID")
	sleep 2
	t1=$(cpu_ticks "$SLUICED_PID")
	nflows=$(count_log "$SLUICED_LOG" ": open: ")
	paused=$(count_log "$SLUICED_LOG" "pausing accepts")
	touch "$RELEASE"
	wait_pid "$HOLD_PID" 10 || fail "$round: the holding clients did not finish"
	res=$(tail -n 1 "$T/hold-$extra.out")
	# Reset once connected, or already while connecting.
	nreset=$(echo "$res" | python3 -c '
import json, sys
r = json.load(sys.stdin)
print(r["reset"] + r["connect_errors"].count("ECONNRESET"))')
	log "$round: $nflows flows opened, 'pausing accepts' logged $paused times, $((t1 - t0)) CPU ticks (of $CLK_TCK/s) in 2 s; clients: $res"
	emfile=$(grep -F "Too many open files" "$SLUICED_LOG" | grep -cvF "pausing accepts" || true)
	[ "$emfile" -eq 0 ] ||
		log "$round: $(grep -F "Too many open files" "$SLUICED_LOG" | grep -vF "pausing accepts" | head -n 1) ($emfile such lines)"

	[ "$nflows" -lt "$CONNS" ] || fail "$round: all $CONNS connections were taken; the limit was not reached"
	[ "$paused" -ge 1 ] || problems+=("$round: no 'pausing accepts' in the log")
	[ "$nreset" -eq 0 ] || problems+=("$round: $nreset of the $CONNS connections were reset instead of left in the backlog (accepted with the last spare descriptor, then no descriptor for the upstream socket)")
	[ $((t1 - t0)) -le "$MAX_TICKS" ] ||
		problems+=("$round: sluiced used $((t1 - t0)) CPU ticks in 2 s (more than $MAX_TICKS): it spins")
	check_alive "$SLUICED_PID" sluiced

	# The clients are gone: a new connection must work.
	run_client "after-$extra" 30 "$LISTEN" --send 1M
	python3 -c '
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
big = [r for r in rs if r["recv"] == 1 << 20]  # the newest such record
open(sys.argv[2], "w").write("".join(json.dumps(r) + "\n" for r in big[-1:]))' "$T/srv.out" "$T/srv-after-$extra.out"
	compare "after-$extra" "srv-after-$extra" --count 1 --expect-out 1M
	stop_sluiced
done

if [ "${#problems[@]}" -gt 0 ]; then
	printf '%s\n' "${problems[@]}" >&2
	fail "${problems[0]}"
fi
