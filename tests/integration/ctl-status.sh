#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
#
# sluicectl status, flows, filters and kill against a daemon in listen mode
# (--control in a directory of the test's own), during a slow upload: the
# client sends 64 MiB to a server that reads 2 MiB/s, so the flow is open
# while we look.
#   --json answers, parsed: status (mode, listener, upstream, no rules,
#   policy, filter socket, the filter with its name and pid, totals), the
#   flow (ids in both forms, addresses, the filter's name, directions'
#   states, bytes held within the window) with byte counts that grow
#   between two calls a second apart, and filters.
#   Tables: the columns people read, the flow's row, --port/--pid/--comm
#   filtering, --sort; --json with --sort is a usage error (exit 2).
#   kill of an unknown flow and of a malformed id: exit 1, one line on
#   stderr. kill of the flow (by its hex id): the client's upload is reset,
#   the flow is gone and the reset is counted.
#   Bad input on the control socket: a malformed request and an oversized
#   line get {"error": ...} and the connection closed; an unknown command
#   gets an error and the connection stays; the daemon goes on.
#   Access: a throwaway system user cannot connect (file permissions), and
#   with the socket opened up (chmod 0666) is refused by the daemon's
#   SO_PEERCRED check with an error line; both exit 1 with a message.
. "$(dirname "$0")/lib.sh"

SLUICECTL=${SLUICECTL:-$BUILD/sluicectl}
[ -x "$SLUICECTL" ] || fail "no sluicectl binary at $SLUICECTL (set BUILD or SLUICECTL)"

U=
PUBDIR=
ctl_cleanup() {
	[ -z "$U" ] || userdel "$U" 2>/dev/null || userdel -f "$U" 2>/dev/null || true
	[ -z "$PUBDIR" ] || rm -rf "$PUBDIR"
}
# lib.sh's own cleanup must see the test's exit status in $?.
# shellcheck disable=SC2154 # _rc is set in the trap itself
trap '_rc=$?; set +e; ctl_cleanup; (exit $_rc); _cleanup' EXIT

CTL=$T/control.sock
ctl() { "$SLUICECTL" --control "$CTL" "$@"; }

# raw REQUEST...: sends each request as given (a Python bytes expression
# each) on one connection, then reads until the daemon closes or 2 s pass;
# prints the answer lines and "CLOSED" or "OPEN".
raw() {
	python3 - "$CTL" "$@" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
for r in sys.argv[2:]:
    s.sendall(eval(r))
s.settimeout(2)
data, state = b"", "OPEN"
try:
    while True:
        b = s.recv(65536)
        if not b:
            state = "CLOSED"
            break
        data += b
except socket.timeout:
    pass
except ConnectionResetError:
    state = "CLOSED"
sys.stdout.write(data.decode() + state + "\n")
EOF
}

UP=$(addr 127.0.0.1 "$(free_port)")
LISTEN=$(addr 127.0.0.1 "$(free_port)")
start_server srv "$UP" --count 1 --read-rate 2M --rcvbuf 64K
# Two workers: libsluice connects to each, and the flow is one worker's.
start_sluiced "$LISTEN" "$UP" --control "$CTL" --workers 2
start_filter --name ctl-test
wait_for_log "$SLUICED_LOG" "control socket $CTL" 5 || fail "the daemon did not announce its control socket"

spawn cli python3 "$PEER" client --connect "$LISTEN" --send 64M
CLIENT_PID=$SPAWNED_PID

# Until the flow has moved some bytes out.
for i in $(seq 100); do
	ctl flows --json >"$T/f1.json" || fail "sluicectl flows --json failed"
	[ "$(json "$T/f1.json" 'len(r["flows"]) == 1 and r["flows"][0]["out"]["bytes"] > 0')" = 1 ] && break
	sleep 0.1
done
[ "$(json "$T/f1.json" 'len(r["flows"])')" = 1 ] || fail "flows: expected one flow: $(cat "$T/f1.json")"
# The sink's socket buffer takes bytes in bursts (the kernel wakes a writer
# once a third of it is free), so allow a few seconds for growth.
b1=$(json "$T/f1.json" 'r["flows"][0]["out"]["bytes"]')
for i in $(seq 10); do
	sleep 1
	ctl flows --json >"$T/f2.json" || fail "sluicectl flows --json failed"
	b2=$(json "$T/f2.json" 'r["flows"][0]["out"]["bytes"]')
	[ "$b2" -gt "$b1" ] && break
done
log "out bytes: $b1, $i s later $b2"
[ "$b2" -gt "$b1" ] || fail "the flow's out bytes did not grow in 10 s: $b1 then $b2"

FLOW=$(json "$T/f2.json" 'r["flows"][0]["id"]')
HEX=$(json "$T/f2.json" 'r["flows"][0]["hex"]')
check_flow=$(json "$T/f2.json" '
(lambda f: [k for k, ok in [
  ("id", __import__("re").fullmatch(r"\d+:\d+", f["id"]) is not None),
  ("hex", int(f["hex"], 16) == (int(f["id"].split(":")[1]) << 24 | int(f["id"].split(":")[0])) and len(f["hex"]) == 16),
  ("state", f["state"] == "relaying"),
  ("app", f["app"].startswith("127.0.0.1:")),
  ("dst", f["dst"] == "'"$UP"'"),
  ("filter", f["filter"] == "ctl-test" and isinstance(f["filter_id"], int)),
  ("worker", f["worker"] in (1, 2)),
  ("owner", f["uid"] is None and f["pid"] is None and f["comm"] is None),
  ("out", f["out"]["state"] == "filtered" and 0 <= f["out"]["held"] <= 524288 and f["out"]["read"] >= f["out"]["bytes"]),
  ("in", f["in"]["state"] in ("filtered", "eof") and f["in"]["bytes"] == 0),
  ("age", f["age"] >= 1 and f["idle"] >= 0),
] if not ok])(r["flows"][0])')
[ "$check_flow" = "[]" ] || fail "flows --json: wrong $check_flow in $(cat "$T/f2.json")"
log "flow $FLOW ($HEX): $(head -c 300 "$T/f2.json")"

FLOW_WORKER=$(json "$T/f2.json" 'r["flows"][0]["worker"]')
FLOW_FILTER=$(json "$T/f2.json" 'r["flows"][0]["filter_id"]')
ctl status --json >"$T/status.json" || fail "sluicectl status --json failed"
check_status=$(json "$T/status.json" '[k for k, ok in [
  ("version", isinstance(r["version"], str) and r["version"]),
  ("mode", r["mode"] == "listen"),
  ("listen", r["listen"] == "'"$LISTEN"'" and r["port"] == '"${LISTEN##*:}"'),
  ("upstream", r["upstream"] == "'"$UP"'"),
  ("rules", r["rules"] is False),
  ("policy", r["policy"] == "fail-open"),
  ("filter_socket", r["filter_socket"] == "'"$FILTER_SOCK"'"),
  ("uptime", r["uptime"] > 0),
  ("workers", r["workers"] == 2),
  ("filters", sorted(c["worker"] for c in r["filters"]) == [1, 2] and all(c["name"] == "ctl-test" and c["pid"] == '"$FILTER_PID"' for c in r["filters"]) and sum(c["flows"] for c in r["filters"]) == 1),
  ("flow'"'"'s filter", [(c["worker"], c["id"]) for c in r["filters"] if c["flows"] == 1] == [('"$FLOW_WORKER, $FLOW_FILTER"')]),
  ("totals", r["totals"]["flows_open"] == 1 and r["totals"]["flows_opened"] == 1 and r["totals"]["flows_closed"] == 0 and r["totals"]["bytes_out"] >= '"$b2"'),
] if not ok]')
[ "$check_status" = "[]" ] || fail "status --json: wrong $check_status in $(cat "$T/status.json")"
ctl filters --json >"$T/filters.json" || fail "sluicectl filters --json failed"
[ "$(json "$T/filters.json" 'len(r["filters"]) == 2 and all(c["name"] == "ctl-test" and c["pid"] == '"$FILTER_PID"' and c["subscribed"]["dirs"] == ["out", "in"] for c in r["filters"])')" = 1 ] ||
	fail "filters --json: $(cat "$T/filters.json")"

# Tables.
ctl status >"$T/status.txt" || fail "sluicectl status failed"
grep -q "^sluiced .*, listen mode, 2 workers, up " "$T/status.txt" &&
	grep -qF "listening       $LISTEN, upstream $UP" "$T/status.txt" &&
	grep -q "^flows  *1 open, 1 opened, 0 closed, 0 reset" "$T/status.txt" &&
	grep -qE "^ +[0-9]+ +[12] +ctl-test +$FILTER_PID +0 +1 " "$T/status.txt" ||
	fail "status: unexpected output: $(cat "$T/status.txt")"
ctl flows >"$T/flows.txt" || fail "sluicectl flows failed"
head -n 1 "$T/flows.txt" | grep -qE '^ID +APP +DESTINATION +UID +PID +COMM +FILTER +OUT +IN +HELD +STATE +AGE$' ||
	fail "flows: unexpected header: $(head -n 1 "$T/flows.txt")"
grep -qE "^$FLOW +127\.0\.0\.1:[0-9]+ +$UP +- +- +- +ctl-test +[0-9.]+ [KMG]iB " "$T/flows.txt" ||
	fail "flows: no row for $FLOW: $(cat "$T/flows.txt")"
[ "$(ctl flows --port "${UP##*:}" | grep -c "^$FLOW ")" = 1 ] || fail "flows --port ${UP##*:} does not list $FLOW"
[ "$(ctl flows --port 1 | wc -l)" = 1 ] || fail "flows --port 1 lists flows"
[ "$(ctl flows --pid 1 | wc -l)" = 1 ] || fail "flows --pid 1 lists flows"
[ "$(ctl flows --comm nosuchcomm | wc -l)" = 1 ] || fail "flows --comm lists flows"
[ "$(ctl flows --sort bytes | grep -c "^$FLOW ")" = 1 ] || fail "flows --sort bytes does not list $FLOW"
rc=0
ctl flows --json --sort age >/dev/null 2>"$T/usage.err" || rc=$?
[ "$rc" = 2 ] || fail "flows --json --sort age exited $rc (expected 2)"
ctl filters >"$T/filters.txt" || fail "sluicectl filters failed"
# One row per connection, one per worker; the flow's filter has it.
row="^ *[0-9]+ +[12] +ctl-test +$FILTER_PID +0 +"
head -n 1 "$T/filters.txt" | grep -qE '^ID +WORKER +NAME +PID +UID +FLOWS +QUEUED +WANTS$' &&
	grep -qE "${row}1 .*out,in all ports\$" "$T/filters.txt" &&
	[ "$(grep -cE "${row}[01] .*out,in all ports\$" "$T/filters.txt")" = 2 ] ||
	fail "filters: unexpected output: $(cat "$T/filters.txt")"

# kill: an unknown flow, a malformed id, then the flow.
for bad in 4242:4242 ffffffffffffffff nonsense; do
	rc=0
	ctl kill "$bad" >"$T/kill.out" 2>"$T/kill.err" || rc=$?
	[ "$rc" = 1 ] || fail "kill $bad exited $rc (expected 1)"
	[ "$(wc -l <"$T/kill.err")" = 1 ] && [ ! -s "$T/kill.out" ] ||
		fail "kill $bad: expected one line on stderr only: $(cat "$T/kill.out" "$T/kill.err")"
	log "kill $bad: $(cat "$T/kill.err")"
done
grep -q "^sluicectl: kill 4242:4242: no such flow$" <(ctl kill 4242:4242 2>&1) || fail "kill of an unknown flow does not say 'no such flow'"
check_alive "$CLIENT_PID" "the uploading client"
ctl kill "$HEX" >"$T/kill.out" || fail "kill $HEX failed: $(cat "$T/kill.out")"
[ "$(cat "$T/kill.out")" = "flow $FLOW reset" ] || fail "kill $HEX printed: $(cat "$T/kill.out")"
wait_pid "$CLIENT_PID" 10 || true
alive "$CLIENT_PID" && fail "the client still runs after its flow was killed"
send_error=$(json "$T/cli.out" 'r["send_error"] or r["recv_error"] or ""')
sent=$(json "$T/cli.out" 'r["sent"]')
log "client after kill: sent $sent of 67108864, error: $send_error"
[ -n "$send_error" ] && [ "$sent" -lt 67108864 ] || fail "the client did not see a reset: $(cat "$T/cli.out")"
grep -q "flow $FLOW: reset: killed on the control socket by pid [0-9]*, uid 0" "$SLUICED_LOG" ||
	fail "the daemon did not log the kill"
ctl flows --json >"$T/f3.json"
ctl status --json >"$T/status2.json"
[ "$(json "$T/f3.json" 'len(r["flows"])')" = 0 ] || fail "the killed flow is still listed: $(cat "$T/f3.json")"
[ "$(json "$T/status2.json" 'r["totals"]["resets"] == 1 and r["totals"]["flows_closed"] == 1 and r["totals"]["flows_open"] == 0')" = 1 ] ||
	fail "status totals after the kill: $(cat "$T/status2.json")"

# Bad input. Malformed: an error and the connection closed.
out=$(raw 'b"{\"cmd\":\n"')
printf '%s\n' "$out" | head -n 1 | grep -q '^{"error":"malformed request: ' &&
	[ "$(printf '%s\n' "$out" | tail -n 1)" = CLOSED ] || fail "malformed request: $out"
out=$(raw 'b"{\"cmd\":\"status\"}" + b" " * 5000 + b"\n"')
[ "$out" = $'{"error":"malformed request: longer than 4096 bytes"}\nCLOSED' ] || fail "oversized request: $out"
out=$(raw 'b"{\"cmd\":\"status\",\"cmd\":\"flows\"}\n"')
printf '%s\n' "$out" | grep -q 'duplicate member' || fail "duplicate member: $out"
# Well-formed but unknown: an error, and the connection serves on.
out=$(raw 'b"{\"cmd\":\"reboot\"}\n{\"cmd\":\"filters\",\"extra\":1}\n"')
[ "$(printf '%s\n' "$out" | sed -n 1p | cut -c1-9)" = '{"error":' ] &&
	printf '%s\n' "$out" | sed -n 2p | grep -q '^{"filters":\[' &&
	[ "$(printf '%s\n' "$out" | tail -n 1)" = OPEN ] || fail "unknown command, then filters: $out"
[ "$(count_log "$SLUICED_LOG" "control: pid")" -ge 3 ] || fail "malformed requests were not logged"
check_alive "$SLUICED_PID" sluiced

# Access.
if [ "$(id -u)" -eq 0 ] && command -v useradd >/dev/null && command -v setpriv >/dev/null; then
	U=sluicectl$$
	useradd --system --no-create-home --shell /usr/sbin/nologin "$U" || fail "useradd $U failed"
	# A directory U can reach, with a copy of sluicectl U can run.
	PUBDIR=$(mktemp -d /tmp/sluice-ctl.XXXXXX)
	chmod 0755 "$PUBDIR"
	cp "$SLUICECTL" "$PUBDIR/sluicectl"
	start_sluiced "$(addr 127.0.0.1 "$(free_port)")" "$UP" --control "$PUBDIR/control.sock"
	as_u() { setpriv --reuid="$U" --regid="$(id -g "$U")" --clear-groups "$PUBDIR/sluicectl" --control "$PUBDIR/control.sock" status; }
	rc=0
	as_u >/dev/null 2>"$T/u1.err" || rc=$?
	[ "$rc" = 1 ] && grep -q "permission denied" "$T/u1.err" || fail "user $U on a 0660 socket: exit $rc: $(cat "$T/u1.err")"
	log "$U, socket 0660: $(cat "$T/u1.err")"
	chmod 0666 "$PUBDIR/control.sock"
	rc=0
	as_u >/dev/null 2>"$T/u2.err" || rc=$?
	[ "$rc" = 1 ] && [ "$(cat "$T/u2.err")" = "sluicectl: status: permission denied: not root nor in sluiced's --group" ] ||
		fail "user $U on a 0666 socket: exit $rc: $(cat "$T/u2.err")"
	grep -q "control socket: refusing pid [0-9]*, uid $(id -u "$U")" "$SLUICED_LOG" || fail "the daemon did not log the refusal"
	log "$U, socket 0666: $(cat "$T/u2.err")"
	"$PUBDIR/sluicectl" --control "$PUBDIR/control.sock" status >/dev/null || fail "root was refused"
	stop_sluiced
else
	log "not checking access (needs root, useradd and setpriv)"
fi
