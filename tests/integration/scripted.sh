#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# timeout: 60
#
# Helpers for tests that put tests/tools/scripted_filter.py (a filter in
# Python that speaks the wire protocol itself and logs every frame) in front
# of tests/tools/bytes_peer.py servers and clients (exact bytes, both ways).
# Sourced by a test after lib.sh:
#
#	. "$(dirname "$0")/lib.sh"
#	. "$(dirname "$0")/scripted.sh"
#
#	start_scripted NAME SCENARIO [scripted_filter.py options]
#		starts the filter on $FILTER_SOCK (the daemon started last) and
#		waits until it says it is connected; its frames are logged to
#		$T/NAME.jsonl. Sets SF_PID.
#	stop_scripted PID
#		stops a filter and waits until the daemon has dropped it.
#	start_bytes_server NAME ADDR:PORT [bytes_peer.py server options]
#		records each connection in $T/NAME.out. Sets BSERVER_PID.
#	run_bytes_client NAME SECONDS ADDR:PORT STEP...
#		a client in the foreground; its result is $T/NAME.out.
#	accepts NAME, wait_done NAME CONN SECONDS
#		connections a server accepted; waits until the CONNth has ended.
#	expect_server NAME CONN BYTES [END], expect_client NAME BYTES [END]
#		exact bytes received (Python string escapes) and how reading
#		ended (default eof).
#	expect_no_violations
#		no filter got a frame that breaks the protocol.
#	pyassert WHAT EXPR [SHOWN]
#		fails with WHAT, EXPR and the value of SHOWN unless the Python
#		expression EXPR is true. In EXPR: done(NAME) and accepted(NAME)
#		(server records), client(NAME), frames(NAME) (the filter log),
#		unesc(TEXT), sha(BYTES), count(LIST).
#
# Run as a script (tests/run-all does, as integration/scripted), it tests
# itself: one flow through the "pass" scenario, exact bytes both ways and
# the frames the filter saw.

SCRIPTED_FILTER=$TESTS_DIR/tools/scripted_filter.py
BYTES_PEER=$TESTS_DIR/tools/bytes_peer.py
SF_PID=
BSERVER_PID=

start_scripted() {
	local name=$1 scenario=$2 i
	shift 2
	for i in $(seq 200); do
		[ -S "$FILTER_SOCK" ] && break
		alive "$SLUICED_PID" || fail "sluiced exited before creating $FILTER_SOCK"
		sleep 0.05
	done
	[ -S "$FILTER_SOCK" ] || fail "sluiced did not create its filter socket $FILTER_SOCK"
	spawn "$name" python3 "$SCRIPTED_FILTER" --socket "$FILTER_SOCK" --scenario "$scenario" \
		--log "$T/$name.jsonl" --name "$name" "$@"
	SF_PID=$SPAWNED_PID
	wait_for_log "$T/$name.out" "scripted_filter: connected" 10 ||
		fail "scripted_filter $name ($scenario) did not connect to $FILTER_SOCK within 10 s"
}

stop_scripted() {
	local before
	before=$(count_log "$SLUICED_LOG" "dropping filter client")
	stop_group "$1"
	local end=$((SECONDS + 5))
	while [ "$(count_log "$SLUICED_LOG" "dropping filter client")" -le "$before" ]; do
		[ "$SECONDS" -lt "$end" ] || fail "sluiced did not notice filter $1 go within 5 s"
		sleep 0.05
	done
}

start_bytes_server() {
	local name=$1 a=$2
	shift 2
	spawn "$name" python3 "$BYTES_PEER" server --listen "$a" "$@"
	BSERVER_PID=$SPAWNED_PID
	wait_listening "$a" "$BSERVER_PID" "bytes server $name"
}

run_bytes_client() {
	local name=$1 secs=$2 a=$3 rc=0
	shift 3
	timeout -k 5 "$secs" python3 "$BYTES_PEER" client --connect "$a" --io-timeout "$secs" "$@" \
		>"$T/$name.out" 2>"$T/$name.err" || rc=$?
	[ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || fail "client $name did not finish within $secs s"
	[ "$rc" -eq 0 ] || fail "client $name exited with status $rc"
}

accepts() {
	grep -c '"event": "accept"' "$T/$1.out" 2>/dev/null || true
}

wait_done() {
	local name=$1 conn=$2 end=$((SECONDS + $3))
	while [ "$(pyval "done('$name', $conn) is not None")" != 1 ]; do
		[ "$SECONDS" -lt "$end" ] || fail "server $name: connection $conn did not end within $3 s"
		sleep 0.05
	done
}

_SF_PY='
import json, os, sys
T = sys.argv[1]
def _load(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]
def done(name, conn=None):
    rs = [r for r in _load(os.path.join(T, name + ".out")) if r.get("event") == "done"]
    return rs if conn is None else next((r for r in rs if r["conn"] == conn), None)
def accepted(name):
    return [r for r in _load(os.path.join(T, name + ".out")) if r.get("event") == "accept"]
def client(name):
    rs = _load(os.path.join(T, name + ".out"))
    return rs[-1] if rs else None
def frames(name, **kw):
    return [r for r in _load(os.path.join(T, name + ".jsonl"))
            if all(r.get(k) == v for k, v in kw.items())]
def unesc(s):
    return s.encode("latin-1").decode("unicode_escape")
def sha(b):
    import hashlib
    return hashlib.sha256(b.encode("latin-1") if isinstance(b, str) else b).hexdigest()
count = len
'

# pyval EXPR: prints the value of a Python expression (same names as pyassert).
pyval() {
	python3 -S -c "$_SF_PY"'
v = eval(sys.argv[2])
print(int(v) if isinstance(v, bool) else v)' "$T" "$1"
}

# expect_server NAME CONN BYTES [END]
expect_server() {
	pyassert "server $1 connection $2: bytes received, then ${4:-eof}" \
		"done('$1', $2) is not None and (done('$1', $2).get('recv_data'), done('$1', $2)['recv_end']) == (unesc(sys.argv[4]), '${4:-eof}')" \
		"done('$1', $2) and (done('$1', $2).get('recv_data'), done('$1', $2)['recv'], done('$1', $2)['recv_end'])" "$3"
}

# expect_client NAME BYTES [END]
expect_client() {
	pyassert "client $1: bytes received, then ${3:-eof}" \
		"client('$1') is not None and (client('$1').get('recv_data'), client('$1')['recv_end']) == (unesc(sys.argv[4]), '${3:-eof}')" \
		"client('$1')" "$2"
}

# expect_no_violations: no filter of the test got a frame that breaks the
# protocol (scripted_filter.py marks them "violation").
expect_no_violations() {
	pyassert "frames from the daemon that break the protocol" \
		"not [r for x in sorted(os.listdir(T)) if x.endswith('.jsonl') for r in frames(x[:-6]) if 'violation' in r]" \
		"[r for x in sorted(os.listdir(T)) if x.endswith('.jsonl') for r in frames(x[:-6]) if 'violation' in r][:5]"
}

# pyassert WHAT EXPR [SHOWN [ARG]]: ARG is sys.argv[4] in EXPR and SHOWN.
pyassert() {
	local out
	out=$(python3 -S -c "$_SF_PY"'
expr, shown = sys.argv[2], sys.argv[3]
if not eval(expr):
    print("expected " + expr + ((" with sys.argv[4] = " + repr(sys.argv[4])) if len(sys.argv) > 4 else ""))
    if shown:
        print("got " + repr(eval(shown)))
    sys.exit(1)' "$T" "$2" "${3:-}" "${@:4}" 2>&1) || fail "$1:
$out"
}

# Run as a script: a self-test.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	if [ ! -x "${PASSTHROUGH:-${BUILD:-build}/sluice-passthrough}" ]; then
		PASSTHROUGH=$(type -P true) # lib.sh checks for it; not used here
	fi
	. "$(dirname "$0")/lib.sh"
	SCRIPTED_FILTER=$TESTS_DIR/tools/scripted_filter.py
	BYTES_PEER=$TESTS_DIR/tools/bytes_peer.py

	UP=$(addr 127.0.0.1 "$(free_port)")
	LISTEN=$(addr 127.0.0.1 "$(free_port)")
	start_bytes_server srv "$UP" --reply 'pong\r\n' --reply-random 300K
	start_sluiced "$LISTEN" "$UP"
	start_scripted filt pass
	pyassert "daemon HELLO" "frames('filt', io='recv', type='HELLO')[0]['name'] == 'sluiced'" \
		"frames('filt', io='recv', type='HELLO')"
	run_bytes_client cli 30 "$LISTEN" 'send:ping\r\n' random:300K shut recv
	wait_done srv 1 10
	pyassert "server got what the client sent" \
		"done('srv', 1)['recv_sha256'] == client('cli')['sent_sha256'] and done('srv', 1)['recv'] == 6 + 300 * 1024" \
		"(done('srv', 1), client('cli'))"
	pyassert "client got what the server sent" \
		"client('cli')['recv_sha256'] == done('srv', 1)['sent_sha256'] and client('cli')['recv_end'] == 'eof'" \
		"(done('srv', 1), client('cli'))"
	pyassert "the filter saw the out bytes in order, from offset 0" \
		"[r['offset'] for r in frames('filt', type='DATA', dir=0)] == [sum(r['len'] for r in frames('filt', type='DATA', dir=0)[:i]) for i in range(len(frames('filt', type='DATA', dir=0)))] and sum(r['len'] for r in frames('filt', type='DATA', dir=0)) == 6 + 300 * 1024" \
		"[(r['offset'], r['len']) for r in frames('filt', type='DATA', dir=0)]"
	pyassert "the filter got EOF of both directions and CLOSE 0" \
		"[r['offset'] for r in frames('filt', type='EOF', dir=0)] == [6 + 300 * 1024] and [r['offset'] for r in frames('filt', type='EOF', dir=1)] == [6 + 300 * 1024]" \
		"frames('filt', type='EOF')"
	wait_for_log "$T/filt.jsonl" '"type": "CLOSE"' 5 || fail "no CLOSE frame"
	pyassert "CLOSE reason 0" "[r['reason'] for r in frames('filt', type='CLOSE')] == [0]" \
		"frames('filt', type='CLOSE')"
	expect_no_violations
	log "one flow through scripted_filter.py (pass): exact both ways, frames as expected"
	stop_sluiced
	stop_group "$SF_PID"
fi
