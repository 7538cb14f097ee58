#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 180
#
# examples/firewall.c, connect-time verdicts from a rules file.
#
# Listen mode (the destination is the upstream; uid and comm are unknown, so
# rules on them never match): for each rules file, one connection through
# sluiced --listen. A denied one is reset or closed with no data and the
# server never sees it; an allowed or ignored one arrives intact both ways;
# a redirected one reaches the other server, intact, and not the first; the
# first matching rule decides; a default deny line applies.
#
# Intercept mode in a namespace pair: curl as root and as uid 65534
# (setpriv), and a python3 client, decided by uid and comm rules; a
# redirect by comm to another HTTP server.
#
# Also: bad rules files exit 2 with one line naming the line number, bad
# options exit 2 with the usage, SIGTERM and SIGINT exit 0.
. "$(dirname "$0")/lib.sh"

FIREWALL=${FIREWALL:-$BUILD/sluice-firewall}
[ -x "$FIREWALL" ] || fail "no sluice-firewall binary at $FIREWALL (set BUILD or FIREWALL)"

# ------------------------------------------------------ rules files, options

# bad_rules LINE TEXT...: a file of the lines TEXT must be refused with
# status 2 and one stderr line naming line LINE.
bad_rules() {
	local line=$1 rc=0
	shift
	printf '%s\n' "$@" >"$T/bad.rules"
	"$FIREWALL" --socket "$T/nothing.sock" "$T/bad.rules" >"$T/bad.out" 2>"$T/bad.err" || rc=$?
	[ "$rc" -eq 2 ] || fail "rules $(printf '%s; ' "$@"): exit $rc, expected 2: $(cat "$T/bad.err")"
	[ "$(wc -l <"$T/bad.err")" -eq 1 ] && grep -q "^sluice-firewall: $T/bad.rules: line $line: " "$T/bad.err" ||
		fail "rules $(printf '%s; ' "$@"): expected one line naming line $line, got: $(cat "$T/bad.err")"
}
bad_rules 1 "deny port 0"
bad_rules 2 "# fine" "deny port 90-80"
bad_rules 3 "" "allow port 80" "deny port 70000"
bad_rules 1 "deny dest 10.0.0.0/33"
bad_rules 1 "deny dest example.org"
bad_rules 1 "deny uid no-such-user-here"
bad_rules 1 "allow comm a-name-of-sixteen"
bad_rules 1 "allow port 80 to 127.0.0.1:81"
bad_rules 1 "redirect port 80"
bad_rules 1 "redirect port 80 to ::1:81"
bad_rules 1 "reject port 80"
bad_rules 1 "deny port"
bad_rules 1 "deny port 80 port 81"
bad_rules 1 "deny colour red"
bad_rules 2 "default deny" "default allow"
bad_rules 1 "default maybe"

bad_usage() {
	local rc=0
	"$FIREWALL" "$@" >"$T/bad.out" 2>"$T/bad.err" || rc=$?
	[ "$rc" -eq 2 ] || fail "sluice-firewall $*: exit $rc, expected 2: $(cat "$T/bad.err")"
	[ "$(wc -l <"$T/bad.err")" -eq 2 ] && grep -q '^usage: sluice-firewall ' "$T/bad.err" ||
		fail "sluice-firewall $*: expected one error line and the usage, got: $(cat "$T/bad.err")"
}
bad_usage
bad_usage --bogus "$T/bad.rules"
bad_usage "$T/bad.rules" extra
rc=0
"$FIREWALL" --socket "$T/nothing.sock" "$T/no-such.rules" 2>"$T/bad.err" || rc=$?
[ "$rc" -eq 2 ] && [ "$(wc -l <"$T/bad.err")" -eq 1 ] ||
	fail "a missing rules file: exit $rc, expected 2 and one line: $(cat "$T/bad.err")"
"$FIREWALL" --help | grep -q 'default allow|deny' || fail "--help does not describe the rules"
log "bad rules files and options: exit 2, one line each"

# -------------------------------------------------------------- listen mode

UP_PORT=$(free_port)
ALT_PORT=$(free_port)
UP=127.0.0.1:$UP_PORT
ALT=127.0.0.1:$ALT_PORT
LISTEN=$(addr 127.0.0.1 "$(free_port)")
# The two servers send different amounts, so a client can tell which it reached.
UP_SEND=65536
ALT_SEND=32768
start_server up "$UP" --send "$UP_SEND"
start_server alt "$ALT" --send "$ALT_SEND"
start_sluiced "$LISTEN" "$UP"

FW_N=0
# start_firewall NS RULES...: sluice-firewall on FILTER_SOCK with the rules
# given, one per argument, in NS (empty: here). Sets FW_PID, FW_LOG.
start_firewall() {
	local ns=$1
	shift
	FW_N=$((FW_N + 1))
	printf '%s\n' "$@" >"$T/fw$FW_N.rules"
	if [ -n "$ns" ]; then
		netns_spawn "fw$FW_N" "$ns" "$FIREWALL" --socket "$FILTER_SOCK" "$T/fw$FW_N.rules"
		FW_PID=$NETNS_PID
	else
		spawn "fw$FW_N" "$FIREWALL" --socket "$FILTER_SOCK" "$T/fw$FW_N.rules"
		FW_PID=$SPAWNED_PID
	fi
	FW_LOG=$T/fw$FW_N.err
	wait_for_log "$FW_LOG" "sluice-firewall: connected to $FILTER_SOCK" 10 ||
		fail "sluice-firewall did not connect within 10 s: $(tail -n 3 "$FW_LOG")"
}

# stop_firewall SIGNAL: the firewall must exit 0.
stop_firewall() {
	local rc=0
	kill "-$1" "$FW_PID"
	wait_pid "$FW_PID" 5 || rc=$?
	[ "$rc" -eq 0 ] || fail "sluice-firewall exited $rc on SIG$1 (expected 0)"
}

lines() {
	grep -c . "$1" 2>/dev/null || true
}

# wait_lines FILE N: until FILE has N lines (5 s).
wait_lines() {
	for _ in $(seq 100); do
		[ "$(lines "$1")" -ge "$2" ] && return 0
		sleep 0.05
	done
	return 1
}

# listen_case NAME OUTCOME DECISION RULES...: one connection through the
# daemon, decided by a firewall with RULES. OUTCOME: up, alt (reached that
# server intact) or denied. DECISION: the end of the firewall's line.
listen_case() {
	local name=$1 outcome=$2 decision=$3 nup nalt res cerr recv rerr eof srv sent_sha
	shift 3
	start_firewall "" "$@"
	nup=$(lines "$T/up.out")
	nalt=$(lines "$T/alt.out")
	run_client "$name" 20 "$LISTEN" --send 100K --io-timeout 5
	wait_for_log "$FW_LOG" ": $decision" 5 ||
		fail "$name: the firewall did not print '$decision': $(grep ': flow ' "$FW_LOG")"
	grep -q "sluice-firewall: flow [0-9a-f]\{16\} 127\.0\.0\.1:[0-9]* -> $UP uid - comm -: $decision\$" "$FW_LOG" ||
		fail "$name: unexpected decision line: $(grep ': flow ' "$FW_LOG")"
	res=$(json "$T/$name.out" '"%s %d %s %s %s" % (r.get("connect_error"), r["recv"], r["recv_error"], "eof" if r.get("eof_at") else "-", r["sent_sha256"])')
	read -r cerr recv rerr eof sent_sha <<<"$res"
	case $outcome in
	denied)
		[ "$recv" -eq 0 ] || fail "$name: a denied client received $recv bytes"
		# The reset may come before the client's connect() has returned.
		case $cerr/$rerr/$eof in
		ECONNRESET/* | None/ECONNRESET/* | None/None/eof) ;;
		*) fail "$name: a denied connection was neither reset nor closed (connect $cerr, recv $rerr, eof $eof)" ;;
		esac
		sleep 0.5
		[ "$(lines "$T/up.out")" -eq "$nup" ] && [ "$(lines "$T/alt.out")" -eq "$nalt" ] ||
			fail "$name: a server saw the denied connection"
		grep -q ": denied by " "$SLUICED_LOG" || fail "$name: the daemon did not log the denial"
		;;
	up | alt)
		srv=$T/$outcome.out
		if [ "$outcome" = up ]; then
			wait_lines "$srv" $((nup + 1)) || fail "$name: the upstream server did not see the connection"
			[ "$(lines "$T/alt.out")" -eq "$nalt" ] || fail "$name: the other server saw a connection"
			[ "$recv" -eq "$UP_SEND" ] || fail "$name: client received $recv bytes, the upstream sends $UP_SEND"
		else
			wait_lines "$srv" $((nalt + 1)) || fail "$name: the redirect target did not see the connection"
			[ "$(lines "$T/up.out")" -eq "$nup" ] || fail "$name: the original upstream saw the redirected connection"
			[ "$recv" -eq "$ALT_SEND" ] || fail "$name: client received $recv bytes, the redirect target sends $ALT_SEND"
		fi
		[ "$(tail -n 1 "$srv" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["recv"], r["recv_sha256"], r["sent_sha256"])')" = \
			"102400 $sent_sha $(json "$T/$name.out" 'r["recv_sha256"]')" ] ||
			fail "$name: data differs: client $(cat "$T/$name.out"); server $(tail -n 1 "$srv")"
		;;
	esac
	if [ "$outcome" = denied ]; then
		log "listen: $name: $decision: client saw connect $cerr, recv $rerr, eof $eof, no data; no server saw it"
	else
		log "listen: $name: $decision: reached $outcome, 100 KiB out and $recv bytes back intact"
	fi
	stop_firewall TERM
}

listen_case default-allow up "allow (default)" \
	"# nothing here matches" \
	"deny port $((UP_PORT == 65535 ? 1 : UP_PORT + 1))" \
	"deny dest 10.0.0.0/8" \
	"deny dest ::1"
listen_case deny-port denied "deny (line 3)" \
	"# comment" \
	"allow port $((UP_PORT == 1 ? 2 : UP_PORT - 1))   # another port" \
	"deny  port $UP_PORT"
listen_case deny-cidr-range denied "deny (line 1)" \
	"deny dest 127.0.0.0/8 port $((UP_PORT - 1))-$((UP_PORT + 1))"
listen_case order-allow-first up "allow (line 1)" \
	"allow dest 127.0.0.1 port $UP_PORT" \
	"deny port $UP_PORT"
listen_case order-deny-first denied "deny (line 1)" \
	"deny dest 127.0.0.1/32" \
	"allow port $UP_PORT"
listen_case redirect alt "redirect to $ALT (line 2)" \
	"deny port 1-1023" \
	"redirect dest 127.0.0.1 port $UP_PORT to $ALT" \
	"deny port $UP_PORT"
listen_case ignore up "ignore (line 1)" \
	"ignore port $UP_PORT" \
	"default deny"
listen_case unknown-owner-default-deny denied "deny (default, line 4)" \
	"allow uid 0" \
	"allow comm python3" \
	"allow dest 127.0.0.2" \
	"default deny"
listen_case unknown-owner-default-allow up "allow (default)" \
	"deny uid 0" \
	"deny comm python3"

start_firewall "" "allow port $UP_PORT"
stop_firewall INT
log "SIGTERM and SIGINT: exit 0"
stop_sluiced

# ----------------------------------------------------------- intercept mode

need curl nft setpriv nginx
. "$(dirname "$0")/netns.sh"

netns_pair
netns_start_nginx "$NS_SERVER"
netns_payload p1M 1M
echo nginx >"$NGINX_WWW/which"
mkdir -p "$T/alt-www"
echo alt >"$T/alt-www/which"
netns_spawn alt-http "$NS_SERVER" python3 -m http.server 9090 --bind "$SERVER4" --directory "$T/alt-www"
netns_wait_listen "$NS_SERVER" 9090 "$NETNS_PID" alt-http
netns_spawn peer7000 "$NS_SERVER" python3 "$PEER" server --listen "$SERVER4:7000" --send 64K
netns_wait_listen "$NS_SERVER" 7000 "$NETNS_PID" peer7000

netns_start_sluiced "$NS_CLIENT" intercepting --intercept 80,8080,7000
start_firewall "$SLUICED_NS" \
	"# example-firewall.sh, intercept mode" \
	"deny uid 65534 port 80" \
	"redirect comm curl port 8080 to $SERVER4:9090" \
	"allow comm python3 port 7000" \
	"deny port 7000" \
	"default allow"

NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
N=0
# fetch AS URL: curl in the client namespace as root or nobody; its body in
# $T/fetchN.body, its status in FETCH_RC.
fetch() {
	local run=()
	[ "$1" = root ] || run=("${NOBODY[@]}")
	N=$((N + 1))
	FETCH_RC=0
	ip netns exec "$NS_CLIENT" "${run[@]}" curl -sS -g --max-time 10 "$2" \
		>"$T/fetch$N.body" 2>"$T/fetch$N.err" || FETCH_RC=$?
}

# expect_decision UID COMM DST DECISION: the firewall's last decision.
expect_decision() {
	local want="-> $3 uid $1 comm $2: $4"
	for _ in $(seq 100); do
		grep ': flow ' "$FW_LOG" | tail -n 1 | grep -qF -- "$want" && return 0
		sleep 0.05
	done
	fail "expected the firewall to print '$want', its last line is: $(grep ': flow ' "$FW_LOG" | tail -n 1)"
}

# Root may fetch from port 80 (no rule matches).
netns_xfer "$NS_CLIENT" http down p1M "$SERVER4" || fail "root curl, port 80: $XFER_MSG"
expect_decision 0 curl "$SERVER4:80" "allow (default, line 6)"
log "intercept: root curl to port 80: allow (default, line 6), 1 MiB intact"

# uid 65534 may not: reset, no data, and nginx logs no request.
nreq=$(lines "$NGINX_ACCESS")
fetch nobody "http://$SERVER4/dl/p1M"
expect_decision 65534 curl "$SERVER4:80" "deny (line 2)"
[ "$FETCH_RC" -ne 0 ] || fail "curl as uid 65534 succeeded through a deny rule"
[ ! -s "$T/fetch$N.body" ] || fail "curl as uid 65534 received $(stat -c %s "$T/fetch$N.body") bytes through a deny rule"
sleep 0.5
[ "$(lines "$NGINX_ACCESS")" -eq "$nreq" ] || fail "nginx saw the denied request: $(tail -n 1 "$NGINX_ACCESS")"
log "intercept: uid 65534 curl to port 80: deny (line 2): curl exit $FETCH_RC ($(head -c 200 "$T/fetch$N.err")), no data, nginx saw nothing"

# curl to port 8080 goes to the other server instead, whoever runs it.
for who in root nobody; do
	uid=0
	[ "$who" = root ] || uid=65534
	fetch "$who" "http://$SERVER4:8080/which"
	[ "$FETCH_RC" -eq 0 ] || fail "curl as $who to port 8080: exit $FETCH_RC: $(cat "$T/fetch$N.err")"
	expect_decision "$uid" curl "$SERVER4:8080" "redirect to $SERVER4:9090 (line 3)"
	[ "$(cat "$T/fetch$N.body")" = alt ] || fail "curl as $who to port 8080 got '$(cat "$T/fetch$N.body")', not the redirect target's 'alt'"
done
[ "$(lines "$NGINX_ACCESS")" -eq "$nreq" ] || fail "nginx saw a redirected request: $(tail -n 1 "$NGINX_ACCESS")"
log "intercept: curl (root and uid 65534) to port 8080: redirect (line 3) to the other server"

# Port 7000: python3 is allowed by line 4, before line 5 denies the rest.
netns_exec "$NS_CLIENT" python3 "$PEER" client --connect "$SERVER4:7000" --send 1M \
	>"$T/py.out" 2>"$T/py.err" || fail "python3 client to port 7000 failed: $(cat "$T/py.err")"
expect_decision 0 python3 "$SERVER4:7000" "allow (line 4)"
wait_lines "$T/peer7000.out" 1 || fail "the port 7000 server did not see the python3 client"
[ "$(json "$T/py.out" '"%d %s" % (r["recv"], r["sent_sha256"])')" = \
	"65536 $(json "$T/peer7000.out" 'r["recv_sha256"]')" ] &&
	[ "$(json "$T/peer7000.out" 'r["recv"]')" -eq 1048576 ] ||
	fail "python3 to port 7000: data differs: client $(cat "$T/py.out"); server $(cat "$T/peer7000.out")"
log "intercept: python3 to port 7000: allow (line 4), 1 MiB out and 64 KiB back intact"

fetch root "http://$SERVER4:7000/"
expect_decision 0 curl "$SERVER4:7000" "deny (line 5)"
[ "$FETCH_RC" -ne 0 ] && [ ! -s "$T/fetch$N.body" ] || fail "curl to port 7000 was not denied: exit $FETCH_RC"
sleep 0.5
[ "$(lines "$T/peer7000.out")" -eq 1 ] || fail "the port 7000 server saw curl's denied connection"
log "intercept: root curl to port 7000: deny (line 5): curl exit $FETCH_RC, the server saw nothing"

stop_firewall TERM
stop_sluiced
