#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
#
# Bad configuration in intercept (and gateway) mode: an unknown flag, port
# ranges that are reversed or out of range, CIDRs with a bad prefix length
# or no address at all, a bad uid, and intercept mode without
# CAP_NET_ADMIN (as root with it dropped from the bounding set, and as uid
# 65534). Each must give exactly one line on stderr, starting "sluiced: "
# (configuration faults; the capability case may be any one line), exit
# non-zero (2 for configuration faults), and leave no table inet sluice in
# the namespace it ran in. A running daemon would be a failure: each run is
# bounded by a timeout.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netns.sh"
need nft setpriv timeout

netns_add NS_CLIENT c
# uid 65534 must be able to reach its filter socket's directory, so that
# what fails for it is the missing capability; the test's own directory
# may sit in directories only root can enter.
netns_public_dir ANYONE

n=0
faults=()
# bad WANT_STATUS PREFIX_RE RUNNER... -- ARGS...: sluiced ARGS in NS_CLIENT,
# through RUNNER (a command prefix, may be empty), must exit WANT_STATUS
# (or non-zero when WANT_STATUS is "nonzero") with exactly one stderr line
# matching PREFIX_RE. Faults are collected, so that one run reports them all.
bad() {
	local want=$1 re=$2 runner=() rc=0 lines what err
	shift 2
	while [ "$1" != -- ]; do
		runner+=("$1")
		shift
	done
	shift
	n=$((n + 1))
	what="${runner[*]:+${runner[*]} }sluiced $*"
	timeout -k 2 10 ip netns exec "$NS_CLIENT" "${runner[@]}" "$SLUICED" \
		--filter-socket "$ANYONE/f$n.sock" "$@" >"$T/bad$n.out" 2>"$T/bad$n.stderr" || rc=$?
	lines=$(grep -c '' "$T/bad$n.stderr" || true)
	err=
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		err="kept running (accepted the configuration)"
	elif [ "$rc" -eq 0 ]; then
		err="exited 0"
	elif [ "$want" != nonzero ] && [ "$rc" -ne "$want" ]; then
		err="exited $rc, expected $want"
	elif [ "$lines" -ne 1 ]; then
		err="wrote $lines lines on stderr, expected one"
	elif ! grep -qE -- "$re" "$T/bad$n.stderr"; then
		err="stderr does not match /$re/"
	elif [ -s "$T/bad$n.out" ]; then
		err="wrote on stdout: $(head -c 400 "$T/bad$n.out")"
	fi
	if netns_has_sluice_table "$NS_CLIENT"; then
		err="${err:+$err; }left table inet sluice behind"
		# The next case must start clean; the table belongs to no one now.
		ip netns exec "$NS_CLIENT" nft delete table inet sluice 2>/dev/null || true
	fi
	if [ -n "$err" ]; then
		faults+=("$what: $err; stderr: $(head -c 600 "$T/bad$n.stderr" | sed 's/$/ |/' | tr '\n' ' ')")
		log "FAULT: $what: exit $rc: $err"
		sed 's/^/    /' "$T/bad$n.stderr"
	else
		log "$what: exit $rc: $(cat "$T/bad$n.stderr")"
	fi
}

bad 2 '^sluiced: ' -- --intercept 80 --bogus
bad 2 '^sluiced: ' -- --intercept 90-80
bad 2 '^sluiced: ' -- --intercept 70000
bad 2 '^sluiced: ' -- --intercept 80,0
bad 2 '^sluiced: ' -- --intercept 80,abc
bad 2 '^sluiced: ' -- --intercept ''
bad 2 '^sluiced: ' -- --intercept 80 --dest 10.0.0.0/33
bad 2 '^sluiced: ' -- --intercept 80 --dest nonsense
bad 2 '^sluiced: ' -- --intercept 80 --dest fd77::/129
bad 2 '^sluiced: ' -- --intercept 80 --exclude-dest 10.0.0.0/33
bad 2 '^sluiced: ' -- --intercept 80 --uid abc
bad 2 '^sluiced: ' -- --intercept 80 --exclude-uid -1
bad 2 '^sluiced: ' -- --intercept 80 --port 70000
bad 2 '^sluiced: ' -- --intercept 80 --drain-seconds x
bad 2 '^sluiced: ' -- --gateway 90-80
bad 2 '^sluiced: ' -- --gateway 80 --dest 10.0.0.0/33
bad 2 '^sluiced: ' -- --intercept 80 --gateway 80
bad nonzero '' setpriv --bounding-set=-net_admin -- --intercept 80
bad nonzero '' setpriv --reuid=65534 --regid=65534 --clear-groups -- --intercept 80
bad nonzero '' setpriv --bounding-set=-net_admin -- --gateway 80
if [ "${#faults[@]}" -gt 0 ]; then
	printf '%s\n' "${faults[@]}" | sed 's/^/  /' >&2
	fail "${#faults[@]} of $n bad configurations were not refused with one line"
fi
log "$n bad configurations refused, each with one line"
