#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 90
#
# sluicectl top in a terminal: tmux (on a server of the test's own) runs it
# in a detached 160x40 pane while a slow upload goes through sluiced.
#   It starts and draws: the header with the totals, the throughput once
#   two refreshes have been seen, and the flow's row with its id and
#   destination address.
#   q quits it: its exit status is 0, the shell after it finds the terminal
#   as it was (canonical mode and echo back on: stty says icanon and echo)
#   and the alternate screen left (top's frame is gone from the pane).
#   ^C quits it the same way.
. "$(dirname "$0")/lib.sh"
need tmux stty

SLUICECTL=${SLUICECTL:-$BUILD/sluicectl}
[ -x "$SLUICECTL" ] || fail "no sluicectl binary at $SLUICECTL (set BUILD or SLUICECTL)"

TMUX_SOCK=$T/tmux.sock
tm() { tmux -S "$TMUX_SOCK" "$@"; }
# The tmux server is not one of spawn()'s process groups: stop it here,
# before lib.sh's cleanup.
# shellcheck disable=SC2154 # _rc is set in the trap itself
trap '_rc=$?; set +e; tm kill-server 2>/dev/null; (exit $_rc); _cleanup' EXIT

CTL=$T/control.sock
UP=$(addr 127.0.0.1 "$(free_port)")
LISTEN=$(addr 127.0.0.1 "$(free_port)")
start_server srv "$UP" --count 1 --read-rate 2M --rcvbuf 64K
start_sluiced "$LISTEN" "$UP" --control "$CTL"
start_filter --name top-test
spawn cli python3 "$PEER" client --connect "$LISTEN" --send 256M
for i in $(seq 100); do
	"$SLUICECTL" --control "$CTL" flows --json >"$T/flows.json"
	[ "$(json "$T/flows.json" 'len(r["flows"])')" = 1 ] && break
	sleep 0.1
done
FLOW=$(json "$T/flows.json" 'r["flows"][0]["id"]')
[ -n "$FLOW" ] || fail "no flow to watch"

# run_top NAME: top in a new session NAME; after it, the shell prints its
# status and the terminal's modes, and stays (so the pane can be read).
run_top() {
	# The shell ignores SIGINT, so that ^C reaches top alone (which sets its
	# own handler).
	tm new-session -d -s "$1" -x 160 -y 40 \
		"trap '' INT; '$SLUICECTL' --control '$CTL' top; echo \"top exited \$?\"; stty -a | tr ';' '\\n' | grep -ow -e -icanon -e icanon -e -echo -e echo | tr '\\n' ' '; echo; sleep 120"
}

# pane_wait NAME TEXT SECONDS: until the pane shows TEXT (a fixed string).
pane_wait() {
	local end=$((SECONDS + $3))
	while :; do
		tm capture-pane -p -t "$1" >"$T/$1.pane" 2>/dev/null || true
		grep -qF -- "$2" "$T/$1.pane" && return 0
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.2
	done
}

run_top q
pane_wait q "$UP" 10 || fail "top does not show the flow to $UP: $(cat "$T/q.pane")"
pane_wait q "throughput out " 10 || fail "top has no throughput line: $(cat "$T/q.pane")"
# The second refresh computes rates.
pane_wait q "/s, in " 10 || fail "top shows no rates after a refresh: $(cat "$T/q.pane")"
grep -qE "^ID +APP +DESTINATION +PID +COMM +OUT/s +IN/s +OUT +IN +AGE +STATE" "$T/q.pane" ||
	fail "top: no column header: $(cat "$T/q.pane")"
grep -qE "^$FLOW +127\.0\.0\.1:[0-9]+ +$UP " "$T/q.pane" || fail "top: no row for $FLOW: $(cat "$T/q.pane")"
grep -q "^flows 1 open, 1 opened, 0 closed, 0 reset" "$T/q.pane" || fail "top: no totals: $(cat "$T/q.pane")"
log "top shows: $(grep -E "^$FLOW " "$T/q.pane" | tr -s ' ')"
log "           $(grep "^throughput" "$T/q.pane" | tr -s ' ')"

tm send-keys -t q q
pane_wait q "top exited" 5 || fail "top did not quit on q: $(cat "$T/q.pane")"
grep -q "^top exited 0$" "$T/q.pane" || fail "top's exit status: $(grep 'top exited' "$T/q.pane")"
sleep 0.2
tm capture-pane -p -t q >"$T/q.pane"
grep -qE "(^| )icanon echo( |$)" "$T/q.pane" || fail "the terminal was not restored: $(grep -E 'icanon' "$T/q.pane")"
! grep -qF "(q quits)" "$T/q.pane" || fail "top's frame is still on the screen: $(cat "$T/q.pane")"
log "after q: $(grep -E 'icanon' "$T/q.pane")"

run_top c
pane_wait c "$UP" 10 || fail "top (second run) does not show the flow: $(cat "$T/c.pane")"
tm send-keys -t c C-c
pane_wait c "top exited" 5 || fail "top did not quit on ^C: $(cat "$T/c.pane")"
sleep 0.2
tm capture-pane -p -t c >"$T/c.pane"
grep -qE "(^| )icanon echo( |$)" "$T/c.pane" || fail "the terminal was not restored after ^C: $(cat "$T/c.pane")"
log "after ^C: $(grep 'top exited' "$T/c.pane"), $(grep -E 'icanon' "$T/c.pane")"
check_alive "$SLUICED_PID" sluiced
