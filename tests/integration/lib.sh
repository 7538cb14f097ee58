# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# Shared helpers of the integration tests. Each test sources this first:
#
#	. "$(dirname "$0")/lib.sh"
#
# and runs alone (BUILD=build tests/integration/x.sh) or under tests/run-all.
# Environment: BUILD, the meson build directory (default: build), or SLUICED
# and PASSTHROUGH naming the binaries directly. KEEP_TMP=1 keeps the test's
# temporary directory. All traffic stays on 127.0.0.1 and ::1.
#
# Every background process is started with spawn(), in its own session and
# process group, and the EXIT trap kills each group (TERM, then KILL), so a
# test leaves nothing behind however it ends. Exit status: 0 pass, 1 fail,
# 77 skip (the reason is the last line printed).

set -eu

TEST_NAME=$(basename "$0" .sh)
TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEER=$TESTS_DIR/tools/peer.py
# shellcheck disable=SC2034 # used by the tests that source this file
FRAMES=$TESTS_DIR/tools/frames.py

BUILD=${BUILD:-build}
SLUICED=${SLUICED:-$BUILD/sluiced}
PASSTHROUGH=${PASSTHROUGH:-$BUILD/sluice-passthrough}

# Under run-all the directory is short: Unix socket paths in it must stay
# well below the 108 bytes of sun_path.
if [ -n "${SLUICE_TEST_TMP:-}" ]; then
	T=$(mktemp -d "$SLUICE_TEST_TMP/XXXXXX")
else
	T=$(mktemp -d "${TMPDIR:-/tmp}/sluice-$TEST_NAME.XXXXXX")
fi

_PGIDS=()
_SLUICED_N=0
SLUICED_PID=
SLUICED_LOG=
FILTER_PID=
FILTER_LOG=
FILTER_SOCK=

log() {
	echo "$TEST_NAME: $*"
}

# The last lines of every stderr log of the test, so that a failure shows
# what the daemon and the filter said.
_dump_logs() {
	local f n
	for f in "$T"/*.err; do
		[ -s "$f" ] || continue
		n=5
		[ "$f" = "$SLUICED_LOG" ] && n=15
		echo "--- $(basename "$f") (last $n lines)"
		tail -n "$n" "$f"
	done
}

fail() {
	_dump_logs >&2 || true
	echo "FAIL: $TEST_NAME: $*" >&2
	exit 1
}

# fail_memory MESSAGE: a memory bound was exceeded. Fatal, except on a
# sanitizer build (make check-asan sets SLUICE_SANITIZED): ASan's shadow
# memory and quarantine make RSS say nothing about the daemon's own
# buffers, so there the bound is reported and the test goes on.
fail_memory() {
	if [ -n "${SLUICE_SANITIZED:-}" ]; then
		log "memory bound not checked on a sanitizer build: $*"
		return 0
	fi
	fail "$@"
}

skip() {
	echo "$TEST_NAME: skipped: $*"
	exit 77
}

# True while pid exists and is not a zombie.
alive() {
	local st
	st=$(sed 's/.*) //' /proc/"$1"/stat 2>/dev/null) || return 1
	[ -n "$st" ] && [ "${st%% *}" != Z ]
}

_group_alive() {
	ps -o stat= --pgroup "$1" 2>/dev/null | grep -qv '^Z'
}

# spawn NAME CMD...: runs CMD in the background in a new session (so a new
# process group), stdout to $T/NAME.out, stderr to $T/NAME.err, and sets
# SPAWNED_PID. The process is stopped by the EXIT trap.
spawn() {
	local name=$1
	shift
	setsid "$@" >"$T/$name.out" 2>"$T/$name.err" </dev/null &
	SPAWNED_PID=$!
	_PGIDS+=("$SPAWNED_PID")
}

# stop_group PID: SIGTERM to the process group of PID (a stopped group is
# continued so that it sees the signal), SIGKILL after 5 s, then reap.
stop_group() {
	local pid=$1 i
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
	kill -CONT -- "-$pid" 2>/dev/null || true
	for i in $(seq 50); do
		_group_alive "$pid" || break
		sleep 0.1
	done
	kill -KILL -- "-$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

_cleanup() {
	local rc=$? i
	trap - EXIT
	set +e
	for ((i = ${#_PGIDS[@]} - 1; i >= 0; i--)); do
		stop_group "${_PGIDS[i]}"
	done
	if [ -n "${KEEP_TMP:-}" ]; then
		echo "$TEST_NAME: kept $T" >&2
	else
		rm -rf "$T"
	fi
	exit "$rc"
}
trap _cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP

# wait_pid PID SECONDS: returns PID's exit status, or 124 when it is still
# running after SECONDS (it is left running).
wait_pid() {
	local pid=$1 end=$((SECONDS + $2)) rc=0
	while alive "$pid"; do
		[ "$SECONDS" -lt "$end" ] || return 124
		sleep 0.05
	done
	wait "$pid" || rc=$?
	return "$rc"
}

need() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || skip "$c is not installed"
	done
}

need python3 setsid ss timeout

[ -x "$SLUICED" ] || fail "no sluiced binary at $SLUICED (set BUILD or SLUICED)"
[ -x "$PASSTHROUGH" ] || fail "no sluice-passthrough binary at $PASSTHROUGH (set BUILD or PASSTHROUGH)"

# free_port [HOST]: a TCP port nobody listens on right now.
free_port() {
	python3 -c '
import socket, sys
h = sys.argv[1]
s = socket.socket(socket.AF_INET6 if ":" in h else socket.AF_INET)
s.bind((h, 0))
print(s.getsockname()[1])' "${1:-127.0.0.1}"
}

# addr HOST PORT: HOST:PORT, with brackets for IPv6.
addr() {
	case $1 in
	*:*) echo "[$1]:$2" ;;
	*) echo "$1:$2" ;;
	esac
}

# wait_listening ADDR:PORT PID WHAT: waits (10 s) until something listens on
# ADDR:PORT, failing early if PID dies. Asks the kernel (ss) rather than
# connecting, because a probe connection through sluiced would be a flow.
wait_listening() {
	local a=$1 pid=$2 what=$3 port=${1##*:} i
	for i in $(seq 200); do
		if ss -Hltn "sport = :$port" 2>/dev/null | awk '{print $4}' | grep -qxF "$a"; then
			return 0
		fi
		alive "$pid" || fail "$what exited before listening on $a"
		sleep 0.05
	done
	fail "$what is not listening on $a after 10 s"
}

# wait_for_log FILE TEXT SECONDS: true once FILE contains TEXT.
wait_for_log() {
	local file=$1 text=$2 end=$((SECONDS + $3))
	while ! grep -qF -- "$text" "$file" 2>/dev/null; do
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.05
	done
}

count_log() {
	grep -cF -- "$2" "$1" 2>/dev/null || true
}

# start_sluiced LISTEN UPSTREAM [ARGS...]: starts the daemon with a private
# filter socket and waits until it listens. Sets SLUICED_PID, SLUICED_LOG,
# FILTER_SOCK.
start_sluiced() {
	local listen=$1 upstream=$2
	shift 2
	_SLUICED_N=$((_SLUICED_N + 1))
	FILTER_SOCK=$T/filter-$_SLUICED_N.sock
	spawn "sluiced-$_SLUICED_N" "$SLUICED" --listen "$listen" --upstream "$upstream" \
		--filter-socket "$FILTER_SOCK" --control "$T/control-$_SLUICED_N.sock" "$@"
	SLUICED_PID=$SPAWNED_PID
	SLUICED_LOG=$T/sluiced-$_SLUICED_N.err
	wait_listening "$listen" "$SLUICED_PID" sluiced
}

# start_filter [ARGS...]: starts sluice-passthrough on FILTER_SOCK and waits
# until it says it is connected. Sets FILTER_PID, FILTER_LOG.
start_filter() {
	local i name=filter-$_SLUICED_N
	for i in $(seq 200); do
		[ -S "$FILTER_SOCK" ] && break
		alive "$SLUICED_PID" || fail "sluiced exited before creating $FILTER_SOCK"
		sleep 0.05
	done
	[ -S "$FILTER_SOCK" ] || fail "sluiced did not create its filter socket $FILTER_SOCK"
	spawn "$name" "$PASSTHROUGH" --socket "$FILTER_SOCK" "$@"
	FILTER_PID=$SPAWNED_PID
	FILTER_LOG=$T/$name.err
	wait_for_log "$FILTER_LOG" "sluice-passthrough: connected to" 10 ||
		fail "sluice-passthrough did not connect to $FILTER_SOCK within 10 s"
}

check_alive() { # PID WHAT
	alive "$1" || fail "$2 (pid $1) is gone"
}

# stop_sluiced: SIGTERM to the daemon; its contract is to exit 0. Also stops
# the filter attached to it.
stop_sluiced() {
	local rc=0
	[ -n "$SLUICED_PID" ] || return 0
	check_alive "$SLUICED_PID" sluiced
	kill -TERM "$SLUICED_PID"
	wait_pid "$SLUICED_PID" 10 || rc=$?
	[ "$rc" -ne 124 ] || fail "sluiced still running 10 s after SIGTERM"
	[ "$rc" -eq 0 ] || fail "sluiced exited with status $rc on SIGTERM (expected 0)"
	SLUICED_PID=
	if [ -n "$FILTER_PID" ]; then
		stop_group "$FILTER_PID"
		FILTER_PID=
	fi
}

# start_server NAME ADDR:PORT [peer.py server options]: a peer.py server,
# results (one JSON line per connection) in $T/NAME.out. Sets SERVER_PID.
start_server() {
	local name=$1 a=$2
	shift 2
	spawn "$name" python3 "$PEER" server --listen "$a" "$@"
	SERVER_PID=$SPAWNED_PID
	wait_listening "$a" "$SERVER_PID" "peer server $name"
}

# wait_server SECONDS: waits for the server started last (use --count).
wait_server() {
	local rc=0
	wait_pid "$SERVER_PID" "$1" || rc=$?
	[ "$rc" -ne 124 ] || fail "peer server did not finish within $1 s"
	[ "$rc" -eq 0 ] || fail "peer server exited with status $rc"
}

# run_client NAME SECONDS ADDR:PORT [peer.py client options]: runs a client
# in the foreground; results in $T/NAME.out.
run_client() {
	local name=$1 secs=$2 a=$3 rc=0
	shift 3
	timeout -k 5 "$secs" python3 "$PEER" client --connect "$a" "$@" \
		>"$T/$name.out" 2>"$T/$name.err" || rc=$?
	[ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || fail "client $name did not finish within $secs s"
	[ "$rc" -eq 0 ] || fail "client $name exited with status $rc"
}

# compare CLIENT SERVER [peer.py compare options]: both directions intact.
compare() {
	local out rc=0
	out=$(python3 "$PEER" compare --client "$T/$1.out" --server "$T/$2.out" "${@:3}") || rc=$?
	echo "$out"
	[ "$rc" -eq 0 ] || fail "data differs between $1 and $2"
}

# json FILE EXPR: evaluates a python expression over the JSON lines of FILE
# (r is the first record, rs the list of all) and prints the result.
json() {
	python3 -c '
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
r = rs[0] if rs else {}
v = eval(sys.argv[2])
print(v if not isinstance(v, bool) else int(v))' "$1" "$2"
}

# Memory of a process, in KiB, from /proc/PID/status.
proc_kb() { # PID FIELD
	awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"
}
rss_kb() { proc_kb "$1" VmRSS; }

# max_of N...: the largest of the numbers given.
max_of() {
	local m=$1 x
	for x in "$@"; do
		[ "$x" -le "$m" ] || m=$x
	done
	echo "$m"
}
hwm_kb() { proc_kb "$1" VmHWM; }

# progress FILE: the SENT figure peer.py --progress writes.
progress_sent() {
	local s=0
	read -r s _ 2>/dev/null <"$1" || true
	echo "${s:-0}"
}
