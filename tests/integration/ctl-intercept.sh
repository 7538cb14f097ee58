#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
#
# sluicectl with sluiced in intercept mode, in a client namespace: status
# says intercept mode, with its redirect port and the nftables rules
# installed; a curl download that nginx paces (as uid 65534, so that the
# owner is not simply root) shows in flows with its owner: uid 65534, the
# pid of the curl we started and comm "curl", its original destination
# (the server's address, port 80), and in the table's UID, PID and COMM
# columns; --comm curl and --pid keep it, --comm other does not. Killing it
# makes curl fail with a reset, and the flow is gone.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netns.sh"
need curl nft setpriv

SLUICECTL=${SLUICECTL:-$BUILD/sluicectl}
[ -x "$SLUICECTL" ] || fail "no sluicectl binary at $SLUICECTL (set BUILD or SLUICECTL)"
CTL=$T/control.sock
ctl() { "$SLUICECTL" --control "$CTL" "$@"; }

netns_pair
netns_start_nginx "$NS_SERVER"
netns_payload p8M 8M
netns_start_sluiced "$NS_CLIENT" intercepting --intercept 80 --control "$CTL"
netns_start_filter

ctl status --json >"$T/status.json" || fail "sluicectl status failed"
[ "$(json "$T/status.json" 'r["mode"] == "intercept" and r["rules"] is True and isinstance(r["port"], int) and r["port"] > 0')" = 1 ] ||
	fail "status in intercept mode: $(cat "$T/status.json")"
port=$(json "$T/status.json" 'r["port"]')
grep -q "through port $port " "$SLUICED_LOG" || fail "status port $port is not the one the daemon logged"
ctl status | grep -qE "^intercepting +port $port, nftables rules installed$" ||
	fail "status table: $(ctl status)"

netns_spawn curl "$NS_CLIENT" setpriv --reuid=65534 --regid=65534 --clear-groups \
	curl -sS -g --max-time 60 -o /dev/null "$(netns_url http "$SERVER4")/slow/p8M"
CURL_PID=$NETNS_PID
for i in $(seq 100); do
	ctl flows --json >"$T/flows.json"
	[ "$(json "$T/flows.json" 'len(r["flows"]) == 1 and r["flows"][0]["pid"] is not None')" = 1 ] && break
	alive "$CURL_PID" || fail "curl ended before the check: $(cat "$T/curl.err")"
	sleep 0.1
done
check=$(json "$T/flows.json" '[k for k, ok in (lambda f: [
  ("uid", f["uid"] == 65534),
  ("pid", f["pid"] == '"$CURL_PID"'),
  ("comm", f["comm"] == "curl"),
  ("dst", f["dst"] == "'"$SERVER4"':80"),
  ("app", f["app"].startswith("'"$CLIENT4"':")),
  ("filter", f["filter"] == "passthrough"),
])(r["flows"][0]) if not ok]')
[ "$check" = "[]" ] || fail "flows: wrong $check: $(cat "$T/flows.json")"
FLOW=$(json "$T/flows.json" 'r["flows"][0]["id"]')
log "curl (pid $CURL_PID) as flow $FLOW: $(head -c 400 "$T/flows.json")"

ctl flows >"$T/flows.txt"
grep -qE "^$FLOW +$CLIENT4:[0-9]+ +$SERVER4:80 +65534 +$CURL_PID +curl +passthrough " "$T/flows.txt" ||
	fail "flows table: $(cat "$T/flows.txt")"
[ "$(ctl flows --comm curl --pid "$CURL_PID" --port 80 | grep -c "^$FLOW ")" = 1 ] ||
	fail "flows --comm curl --pid $CURL_PID --port 80 does not keep $FLOW"
[ "$(ctl flows --comm wget | wc -l)" = 1 ] || fail "flows --comm wget keeps flows"

ctl kill "$FLOW" >/dev/null || fail "kill $FLOW failed"
rc=0
wait_pid "$CURL_PID" 10 || rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "curl exited $rc after its flow was killed (expected a failure)"
log "curl after kill: exit $rc: $(cat "$T/curl.err")"
[ "$(ctl flows --json | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["flows"]))')" = 0 ] ||
	fail "the killed flow is still listed"
stop_sluiced
