#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
#
# The owner of an intercepted flow: sluice-passthrough's open line for a
# curl download must name curl's uid, and a pid that is curl's own (the
# pid of the process we started, whose /proc/PID/comm is "curl" while it
# runs). Once as root, once as uid 65534 (setpriv --reuid=65534 ...), and
# once over IPv6. The daemon's own open line must agree.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netns.sh"
need curl nft setpriv

netns_pair
netns_start_nginx "$NS_SERVER"
netns_payload p4M 4M
netns_start_sluiced "$NS_CLIENT" intercepting --intercept 80
netns_start_filter

# owner AS HOST: a download nginx paces to 2 MiB/s (2 s) as AS (root or
# nobody); while it runs, the filter's open line must name it.
n=0
owner() {
	local as=$1 host=$2 uid=0 run=() pid f fuid fpid fcomm comm i rc=0
	[ "$as" = root ] || { uid=65534 run=(setpriv --reuid=65534 --regid=65534 --clear-groups); }
	n=$((n + 1))
	flows_mark
	netns_spawn "curl$n" "$NS_CLIENT" "${run[@]}" curl -sS -g --max-time 30 -o /dev/null \
		"$(netns_url http "$host")/slow/p4M"
	pid=$NETNS_PID
	for i in $(seq 100); do
		f=$(filter_flows)
		[ -n "$f" ] && [ "$(printf '%s\n' "$f" | awk '{ print $6 }')" != "?" ] && break
		alive "$pid" || break
		sleep 0.05
	done
	alive "$pid" || fail "curl as $as ended before the check: $(cat "$T/curl$n.err")"
	comm=$(cat "/proc/$pid/comm")
	[ "$comm" = curl ] || fail "the process started as curl has comm '$comm'"
	[ "$(printf '%s\n' "$f" | grep -c .)" -eq 1 ] || fail "curl as $as: the filter saw $(printf '%s\n' "$f" | grep -c .) flows: $(printf '%s' "$f" | tr '\n' ';')"
	read -r _ _ _ _ fuid fpid fcomm <<<"$f"
	[ "$fuid" = "$uid" ] || fail "curl as $as (uid $uid): the filter's open line says uid $fuid: $(grep ' open: ' "$FILTER_LOG" | tail -n 1)"
	[ "$fpid" = "$pid" ] || fail "curl as $as (pid $pid): the filter's open line says pid $fpid: $(grep ' open: ' "$FILTER_LOG" | tail -n 1)"
	[ "$fcomm" = curl ] || fail "curl as $as: the filter's open line says comm $fcomm"
	grep -q ": open: .*(uid $uid, pid $pid curl)" "$SLUICED_LOG" ||
		fail "curl as $as: the daemon's open line does not name uid $uid pid $pid curl: $(grep ': open: ' "$SLUICED_LOG" | tail -n 1)"
	log "curl as $as to $host (pid $pid): $(grep ' open: ' "$FILTER_LOG" | tail -n 1)"
	wait_pid "$pid" 30 || rc=$?
	[ "$rc" -eq 0 ] || fail "curl as $as exited $rc: $(cat "$T/curl$n.err")"
}

owner root "$SERVER4"
owner nobody "$SERVER4"
owner root "$SERVER6"
stop_sluiced
