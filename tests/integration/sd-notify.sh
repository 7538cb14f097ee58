#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
#
# Readiness for systemd's Type=notify, without systemd: sluiced started with
# $NOTIFY_SOCKET naming a datagram socket bound by notify_listener.py must
# send READY=1 only once it serves (the listener accepts, the filter socket
# is there; in intercept mode, the nftables table is in place), from its own
# pid, and STOPPING=1 on SIGTERM, then exit 0.
#  1. listen mode, a socket path;
#  2. listen mode, a name in the abstract namespace ('@...');
#  3. intercept mode in a network namespace (root only; a path socket, since
#     abstract names belong to a network namespace);
#  4. a $NOTIFY_SOCKET that names nothing usable: a warning, and sluiced
#     serves all the same;
#  5. no $NOTIFY_SOCKET: not a word about it.
. "$(dirname "$0")/lib.sh"

LISTENER=$TESTS_DIR/tools/notify_listener.py

# start_listener NAME SOCKET CHECK: notify_listener.py in the background,
# running CHECK (sh) at each datagram. Sets LISTENER_PID, LISTENER_OUT.
start_listener() {
	spawn "$1" python3 "$LISTENER" --socket "$2" --check "$3" --timeout 60
	LISTENER_PID=$SPAWNED_PID
	LISTENER_OUT=$T/$1.out
	for _ in $(seq 200); do
		grep -qx bound "$LISTENER_OUT" 2>/dev/null && return 0
		alive "$LISTENER_PID" || fail "notify_listener.py exited: $(cat "$T/$1.err")"
		sleep 0.05
	done
	fail "notify_listener.py did not bind $2"
}

# record STATE: the JSON line of the first datagram that set STATE=1, once
# it came (10 s).
record() {
	local line
	for _ in $(seq 200); do
		line=$(grep -F "\"$1\": \"1\"" "$LISTENER_OUT" | head -n 1)
		[ -n "$line" ] && {
			echo "$line"
			return 0
		}
		sleep 0.05
	done
	return 1
}

# check_cycle WHAT PID: READY=1 from PID with the check passing, then
# STOPPING=1 after SIGTERM, and exit status 0.
check_cycle() {
	local what=$1 pid=$2 ready stopping rc=0
	ready=$(record READY) || fail "$what: no READY=1 within 10 s"
	log "$what: $ready"
	[ "$(echo "$ready" | python3 -c 'import json,sys; print(json.load(sys.stdin)["check"])')" = 0 ] ||
		fail "$what: READY=1 came before sluiced was serving"
	[ "$(echo "$ready" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sender_pid"])')" = "$pid" ] ||
		fail "$what: READY=1 did not come from sluiced's pid $pid"
	grep -qF STOPPING "$LISTENER_OUT" && fail "$what: STOPPING=1 before any signal"
	kill -TERM "$pid"
	stopping=$(record STOPPING) || fail "$what: no STOPPING=1 within 10 s of SIGTERM"
	log "$what: $stopping"
	wait_pid "$pid" 10 || rc=$?
	[ "$rc" -eq 0 ] || fail "$what: sluiced exited with status $rc on SIGTERM (expected 0)"
	wait_pid "$LISTENER_PID" 5 || fail "notify_listener.py did not finish"
	[ "$(grep -c '^{' "$LISTENER_OUT")" -eq 2 ] || fail "$what: other datagrams than READY and STOPPING: $(cat "$LISTENER_OUT")"
}

UP=$(addr 127.0.0.1 "$(free_port)")

# 1 and 2. The check: the listener is listening and the filter socket exists.
n=0
for sock in "$T/notify.sock" "@sluice-test-notify-$$-$RANDOM"; do
	n=$((n + 1))
	LISTEN=$(addr 127.0.0.1 "$(free_port)")
	FSOCK=$T/filter-n$n.sock
	start_listener "listener$n" "$sock" \
		"ss -Hltn 'sport = :${LISTEN##*:}' | grep -qF '$LISTEN' && [ -S '$FSOCK' ]"
	spawn "sluiced-n$n" env NOTIFY_SOCKET="$sock" "$SLUICED" --listen "$LISTEN" --upstream "$UP" \
		--filter-socket "$FSOCK"
	check_cycle "listen, NOTIFY_SOCKET=$sock" "$SPAWNED_PID"
	! grep -qF NOTIFY_SOCKET "$T/sluiced-n$n.err" || fail "sluiced complained: $(grep -F NOTIFY_SOCKET "$T/sluiced-n$n.err")"
done

# 3. Intercept mode: READY=1 once the table is there.
if [ "$(id -u)" -eq 0 ] && command -v nft >/dev/null && command -v ip >/dev/null; then
	. "$(dirname "$0")/netns.sh"
	netns_pair
	start_listener listener3 "$T/notify3.sock" \
		"ip netns exec '$NS_CLIENT' nft list table inet sluice >/dev/null"
	netns_spawn sluiced-n3 "$NS_CLIENT" env NOTIFY_SOCKET="$T/notify3.sock" "$SLUICED" \
		--intercept 80 --filter-socket "$T/filter-n3.sock"
	check_cycle "intercept in $NS_CLIENT" "$NETNS_PID"
else
	log "intercept mode not checked: needs root, nft and ip"
fi

# 4. Nothing usable there: warned about, not fatal.
for bad in relative.sock "$T/nobody-listens.sock" "@"; do
	LISTEN=$(addr 127.0.0.1 "$(free_port)")
	rm -f "$T/sluiced-bad.err"
	spawn sluiced-bad env NOTIFY_SOCKET="$bad" "$SLUICED" --listen "$LISTEN" --upstream "$UP" \
		--filter-socket "$T/filter-bad.sock"
	pid=$SPAWNED_PID
	wait_listening "$LISTEN" "$pid" "sluiced with NOTIFY_SOCKET=$bad"
	wait_for_log "$T/sluiced-bad.err" "notify READY=1: NOTIFY_SOCKET=" 5 ||
		fail "NOTIFY_SOCKET=$bad: no warning logged"
	log "NOTIFY_SOCKET=$bad: $(grep -F 'notify READY=1: NOTIFY_SOCKET=' "$T/sluiced-bad.err")"
	check_alive "$pid" "sluiced with NOTIFY_SOCKET=$bad"
	kill -TERM "$pid"
	rc=0
	wait_pid "$pid" 10 || rc=$?
	[ "$rc" -eq 0 ] || fail "NOTIFY_SOCKET=$bad: exit status $rc on SIGTERM"
done

# 5. Without the variable, nothing is said about it.
LISTEN=$(addr 127.0.0.1 "$(free_port)")
spawn sluiced-none env -u NOTIFY_SOCKET "$SLUICED" --listen "$LISTEN" --upstream "$UP" \
	--filter-socket "$T/filter-none.sock"
pid=$SPAWNED_PID
wait_listening "$LISTEN" "$pid" sluiced
kill -TERM "$pid"
wait_pid "$pid" 10 || fail "sluiced without NOTIFY_SOCKET did not exit 0 on SIGTERM"
! grep -qF NOTIFY_SOCKET "$T/sluiced-none.err" || fail "sluiced without NOTIFY_SOCKET: $(cat "$T/sluiced-none.err")"
log "ok"
