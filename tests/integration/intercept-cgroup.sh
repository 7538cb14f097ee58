#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
#
# Selection by cgroup: sluiced --intercept PORT --cgroup DIR filters only the
# connections of processes in that cgroup v2 directory. Two clients connect
# to the same server: one outside the cgroup (must go direct: no flow in the
# daemon's log), one moved into it first (must be a flow, with its pid).
# Everything runs under nsenter --net rather than ip netns exec, because the
# latter remounts /sys and hides the cgroup v2 tree.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netns.sh"
need nsenter nft

CG_ROOT=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
[ -n "$CG_ROOT" ] || skip "no cgroup v2 hierarchy mounted"
case $CG_ROOT in
/sys/fs/cgroup | /sys/fs/cgroup/*) ;;
*) skip "cgroup v2 is mounted at $CG_ROOT, outside /sys/fs/cgroup where nftables looks" ;;
esac
CG=$CG_ROOT/sluice-test-$$
mkdir "$CG" || skip "cannot make a cgroup under $CG_ROOT"
# The cgroup goes once its processes are gone, then the usual cleanup runs.
_cgroup_exit() {
	local rc=$?
	trap - EXIT
	set +e
	netns_cleanup
	rmdir "$CG" 2>/dev/null
	(exit "$rc")
	_netns_exit
}
trap _cgroup_exit EXIT

netns_add NS c
PORT=8080
in_ns() { nsenter --net="/run/netns/$NS" "$@"; }

# A server that answers each connection with the byte count it received.
setsid nsenter --net="/run/netns/$NS" python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 8080)); s.listen()
while True:
    c, _ = s.accept(); n = 0
    while True:
        d = c.recv(65536)
        if not d: break
        n += len(d)
    c.sendall(b"%d\n" % n); c.close()' >"$T/server.out" 2>"$T/server.err" </dev/null &
_PGIDS+=("$!")

setsid nsenter --net="/run/netns/$NS" "$SLUICED" --intercept $PORT --intercept-loopback --owner-wait 3000 \
	--cgroup "$CG" --filter-socket "$T/f.sock" --control "$T/control.sock" >"$T/sluiced.out" 2>"$T/sluiced.err" </dev/null &
SLUICED_PID=$!
_PGIDS+=("$SLUICED_PID")
wait_for_log "$T/sluiced.err" "intercepting" 10 || fail "sluiced did not start: $(tail -n 3 "$T/sluiced.err")"

client='
import socket, sys
s = socket.create_connection(("127.0.0.1", 8080))
s.sendall(b"x" * 4096); s.shutdown(socket.SHUT_WR)
print(s.makefile().readline().strip())'

got=$(in_ns python3 -c "$client")
[ "$got" = 4096 ] || fail "client outside the cgroup: server answered '$got', wanted 4096"
sleep 0.3
n=$(count_log "$T/sluiced.err" ": open:")
[ "$n" = 0 ] || fail "a connection from outside the cgroup was intercepted ($n flows)"

got=$(sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$CG" \
	nsenter --net="/run/netns/$NS" python3 -c "$client")
[ "$got" = 4096 ] || fail "client inside the cgroup: server answered '$got', wanted 4096"
wait_for_log "$T/sluiced.err" ": open:" 5 || fail "the connection from inside the cgroup was not intercepted"
grep -q ": open: .*pid [0-9]* python3" "$T/sluiced.err" ||
	fail "the flow does not name its python3 owner: $(grep ': open:' "$T/sluiced.err")"
n=$(count_log "$T/sluiced.err" ": open:")
[ "$n" = 1 ] || fail "expected exactly one flow, saw $n"
echo "only the connection inside $CG was intercepted"
