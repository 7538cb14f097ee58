#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 60
#
# Who may use the filter socket. Only the filter socket is tested here:
# the control socket did not exist when this test was written (it was
# another issue); ctl-status.sh checks a throwaway user against it.
#
# A throwaway system user U (with its own primary group) and group G are
# made for the test and deleted when it ends. Raw clients
# (tests/tools/wirefilter.py probe) run as U under setpriv.
#   Without --group: the socket is mode 0660, group root, and U cannot
#   even connect (file permissions). With the socket opened up (chmod
#   0666, so only the daemon's own check is left) U connects but is
#   refused: the channel is closed without a HELLO in answer and the daemon
#   logs "refusing pid". Root is let in.
#   With --group G: the socket is mode 0660, group G. U with G among its
#   supplementary groups (setpriv --groups G) is let in (its HELLO is
#   answered), so is U with G as its primary group, and a sluice-passthrough
#   running as U with G filters a flow intact. U without G cannot connect
#   (file permissions) and, with the socket opened up, is refused by the
#   daemon ("refusing pid ... nor in the --group").
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || skip "needs root (makes a user and a group)"
need useradd userdel groupadd groupdel setpriv stat

WIRE=$TESTS_DIR/tools/wirefilter.py
U=sluicetest$$
G=sluicetg$$
USER_PIDS=()
SOCKDIR=

acc_cleanup() {
	local p
	for p in "${USER_PIDS[@]}"; do
		stop_group "$p"
	done
	userdel "$U" 2>/dev/null || userdel -f "$U" 2>/dev/null || true
	groupdel "$G" 2>/dev/null || true
	[ -z "$SOCKDIR" ] || rm -rf "$SOCKDIR"
}
# Then lib.sh's own cleanup, which must see the test's exit status in $?
# (set -e is off first, so that restoring a failing status does not end
# the trap early).
trap '_rc=$?; set +e; acc_cleanup; (exit $_rc); _cleanup' EXIT

groupadd --system "$G" || fail "groupadd $G failed"
useradd --system --no-create-home --shell /usr/sbin/nologin "$U" || fail "useradd $U failed"
UID_U=$(id -u "$U")
GID_U=$(id -g "$U")
GID_G=$(getent group "$G" | cut -d: -f3)
log "user $U (uid $UID_U, gid $GID_U), group $G (gid $GID_G)"

# The test's own directory may not be reachable by U (run-all makes it
# 0700); the socket goes in a directory U can reach.
SOCKDIR=$(mktemp -d "${TMPDIR:-/tmp}/sluice-acc.XXXXXX")
chmod 0755 "$SOCKDIR"
SOCK=$SOCKDIR/filter.sock

UP=$(addr 127.0.0.1 "$(free_port)")
start_server srv "$UP" --count 1

# run_sluiced NAME [ARGS...]: sluiced with its filter socket at $SOCK.
run_sluiced() {
	local name=$1 i
	shift
	LISTEN=$(addr 127.0.0.1 "$(free_port)")
	spawn "$name" "$SLUICED" --listen "$LISTEN" --upstream "$UP" --filter-socket "$SOCK" --control "$T/control-$name.sock" "$@"
	SLUICED_PID=$SPAWNED_PID
	SLUICED_LOG=$T/$name.err
	wait_listening "$LISTEN" "$SLUICED_PID" sluiced
	for i in $(seq 100); do
		[ -S "$SOCK" ] && break
		sleep 0.05
	done
	[ -S "$SOCK" ] || fail "sluiced did not create $SOCK"
}

# probe NAME WHO...: a raw client as WHO ("root", or setpriv options);
# its JSON report in $T/NAME.json.
probe() {
	local name=$1
	shift
	if [ "$1" = root ]; then
		python3 "$WIRE" probe --socket "$SOCK" --name "$name" --wait 1 >"$T/$name.json"
	else
		setpriv "$@" "$USER_PY" "$WIRE" probe --socket "$SOCK" --name "$name" --wait 1 >"$T/$name.json"
	fi || fail "probe $name could not run: $(cat "$T/$name.json")"
	log "$name: $(cat "$T/$name.json")"
}

let_in() { # NAME: its HELLO was answered and the channel stays open
	[ "$(json "$T/$1.json" 'r["connect_error"] or ""')" = "" ] ||
		fail "$1: could not connect: $(json "$T/$1.json" 'r["connect_error"]')"
	[ "$(json "$T/$1.json" 'r["hello"] is not None')" -eq 1 ] || fail "$1: the daemon did not answer the HELLO"
	[ "$(json "$T/$1.json" 'r["closed"]')" -eq 0 ] || fail "$1: the daemon closed the channel"
	wait_for_log "$SLUICED_LOG" "($1) ready:" 2 || fail "$1: the daemon did not log it as ready"
}

refused_by_daemon() { # NAME TEXT: connected, closed without a HELLO, logged
	[ "$(json "$T/$1.json" 'r["connect_error"] or ""')" = "" ] ||
		fail "$1: could not connect: $(json "$T/$1.json" 'r["connect_error"]')"
	[ "$(json "$T/$1.json" 'r["hello"] is None')" -eq 1 ] || fail "$1: the daemon answered the HELLO of a refused peer"
	[ "$(json "$T/$1.json" 'r["closed"]')" -eq 1 ] || fail "$1: the daemon did not close the channel"
	wait_for_log "$SLUICED_LOG" "refusing pid" 2 || fail "$1: the daemon did not log 'refusing pid'"
	grep -F "refusing pid" "$SLUICED_LOG" | tail -n 1 | grep -qF "uid $UID_U" ||
		fail "$1: the refusal does not name uid $UID_U: $(grep -F "refusing pid" "$SLUICED_LOG" | tail -n 1)"
	grep -F "refusing pid" "$SLUICED_LOG" | tail -n 1 | grep -qF "$2" ||
		fail "$1: the refusal does not say '$2'"
	log "$1: $(grep -F "refusing pid" "$SLUICED_LOG" | tail -n 1)"
}

denied_by_file() { # NAME
	[ "$(json "$T/$1.json" 'r["connect_error"] or ""')" = EACCES ] ||
		fail "$1: expected EACCES from connect (socket mode 0660, not its group), got: $(cat "$T/$1.json")"
}

check_mode() { # GROUP
	local m
	m=$(stat -c '%a %G' "$SOCK")
	log "socket: mode and group: $m"
	[ "$m" = "660 $1" ] || fail "the filter socket is '$m', expected '660 $1'"
}

AS_U=(--reuid="$UID_U" --regid="$GID_U" --clear-groups)

# A python3 that U can run (a pyenv shim under /root is not one), and the
# filter binary must be reachable by U too.
USER_PY=
for py in /usr/bin/python3 /usr/local/bin/python3 "$(command -v python3)"; do
	if [ -x "$py" ] && setpriv "${AS_U[@]}" "$py" -c pass 2>/dev/null; then
		USER_PY=$py
		break
	fi
done
[ -n "$USER_PY" ] || skip "no python3 that user $U may run"
PASSTHROUGH_ABS=$(cd "$(dirname "$PASSTHROUGH")" && pwd)/$(basename "$PASSTHROUGH")
setpriv "${AS_U[@]}" test -x "$PASSTHROUGH_ABS" || skip "$PASSTHROUGH_ABS is not reachable by user $U"
setpriv "${AS_U[@]}" test -r "$WIRE" || skip "$WIRE is not readable by user $U"

# --- without --group ---------------------------------------------------------
run_sluiced sluiced-a
check_mode root
probe u-closed "${AS_U[@]}"
denied_by_file u-closed
chmod 0666 "$SOCK"
probe u-open "${AS_U[@]}"
refused_by_daemon u-open "not root (see --group)"
probe root-a root
let_in root-a
stop_sluiced

# --- with --group G ------------------------------------------------------------
run_sluiced sluiced-b --group "$G"
check_mode "$G"
probe u-in-g --reuid="$UID_U" --regid="$GID_U" --groups="$GID_G"
let_in u-in-g
probe u-primary-g --reuid="$UID_U" --regid="$GID_G" --clear-groups
let_in u-primary-g
probe u-not-g "${AS_U[@]}"
denied_by_file u-not-g
chmod 0666 "$SOCK"
probe u-not-g-open "${AS_U[@]}"
refused_by_daemon u-not-g-open "nor in the --group"
chmod 0660 "$SOCK"

# A real filter as U with G: it is let in and a flow goes through it.
spawn filter-u setpriv --reuid="$UID_U" --regid="$GID_U" --groups="$GID_G" \
	"$PASSTHROUGH_ABS" --socket "$SOCK" --name as-u
USER_PIDS+=("$SPAWNED_PID")
wait_for_log "$T/filter-u.err" "sluice-passthrough: connected to" 10 ||
	fail "sluice-passthrough as $U in $G could not connect: $(tail -n 2 "$T/filter-u.err")"
wait_for_log "$SLUICED_LOG" "(as-u) ready: pid $SPAWNED_PID, uid $UID_U" 2 ||
	fail "the daemon does not show the filter as uid $UID_U"
run_client cli 30 "$LISTEN" --send 5M
wait_server 20
compare cli srv --count 1 --expect-out 5M
grep -F ": open: " "$SLUICED_LOG" | grep -qF "(as-u)" || fail "the flow did not go through the filter run as $U"
stop_sluiced
