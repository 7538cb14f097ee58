#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 400
#
# Every verdict of the daemon on real TCP traffic, with the exact bytes
# expected at the far end. sluiced --listen relays 127.0.0.1 traffic from a
# bytes_peer.py client to a bytes_peer.py server (which records exactly
# what it received per connection and answers scripted bytes); the filter is
# tests/tools/scripted_filter.py, which speaks the wire protocol itself and
# logs every frame it receives and sends, so that a case can also check what
# the filter was shown.
#
#	verdicts.sh            runs every case, each as its own process, and
#	                       prints PASS/FAIL per case; fails if any failed
#	verdicts.sh CASE...    runs these cases only (verdicts.sh --list)
#
# Unless a case says otherwise the client sends "0123456789", pauses 0.3 s
# (so that the daemon reads and offers two chunks), sends "ABCDEFGHIJ",
# shuts down writing and reads until EOF; the server answers "OK" once it
# has read EOF, which also checks that the FIN comes after the rewritten
# bytes.

CASES=(
	rewrite:replace-grow rewrite:replace-shrink rewrite:replace-empty rewrite:replace-gap
	rewrite:inject-start rewrite:inject-middle rewrite:inject-end rewrite:drop-range
	rewrite-in replace-all-grow replace-all-empty
	peek pass-rest shutdown reset
	open-allow open-deny open-redirect open-ignore
	subscribe-in subscribe-ports
	errors
)
CASE_TIMEOUT=90

if [ "${1:-}" = --list ]; then
	printf '%s\n' "${CASES[@]}"
	exit 0
fi

if [ -z "${VERDICTS_CHILD:-}" ]; then
	# Driver: each case in a process of its own, so that one failure does
	# not hide the others.
	set -u
	[ $# -gt 0 ] && CASES=("$@")
	child=
	trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; exit 143' TERM
	trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; exit 130' INT
	logs=$(mktemp -d "${SLUICE_TEST_TMP:-${TMPDIR:-/tmp}}/verdicts-logs.XXXXXX")
	npass=0
	nfail=0
	failed=()
	for c in "${CASES[@]}"; do
		t0=$(date +%s.%N)
		VERDICTS_CHILD=1 timeout -k 5 "$CASE_TIMEOUT" bash "$0" "$c" >"$logs/case.log" 2>&1 </dev/null &
		child=$!
		rc=0
		wait "$child" || rc=$?
		child=
		t=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1fs", b - a }')
		if [ "$rc" -eq 0 ]; then
			echo "verdicts: PASS $c ($t)"
			npass=$((npass + 1))
		else
			echo "verdicts: FAIL $c (exit $rc, $t)"
			sed 's/^/    /' "$logs/case.log" | tail -n 30
			nfail=$((nfail + 1))
			failed+=("$c")
		fi
	done
	rm -rf "$logs"
	echo "verdicts: $npass passed, $nfail failed${failed[*]:+: ${failed[*]}}"
	[ "$nfail" -eq 0 ]
	exit
fi

# One case.
CASE=$1
if [ ! -x "${PASSTHROUGH:-${BUILD:-build}/sluice-passthrough}" ]; then
	PASSTHROUGH=$(type -P true) # lib.sh insists on one; these tests do not use it
fi
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/scripted.sh"
TEST_NAME="verdicts[$CASE]"

S1=0123456789
S2=ABCDEFGHIJ
DEFAULT_STEPS=("send:$S1" sleep:0.3 "send:$S2" shut recv)

# setup [bytes_peer server options] [-- sluiced options]: server srv on UP,
# sluiced on LISTEN.
setup() {
	local srv=() d=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		srv+=("$1")
		shift
	done
	[ $# -gt 0 ] && shift
	d=("$@")
	UP_PORT=$(free_port)
	UP=$(addr 127.0.0.1 "$UP_PORT")
	LISTEN=$(addr 127.0.0.1 "$(free_port)")
	start_bytes_server srv "$UP" "${srv[@]}"
	start_sluiced "$LISTEN" "$UP" "${d[@]}"
}

# The end of every case: the daemon sent nothing that breaks the protocol,
# and stops cleanly.
finish() {
	expect_no_violations
	stop_sluiced
}

# The out DATA frames of filter F as (offset, len, flags), for messages.
out_frames() {
	echo "[(r['offset'], r['len'], r.get('flags')) for r in frames('$1', type='DATA', dir=0)]"
}

# The out direction was offered in the two chunks the client sent.
expect_two_chunks() {
	pyassert "$1: the daemon offered the out bytes as the two chunks sent" \
		"[(r['offset'], r['data']) for r in frames('$1', type='DATA', dir=0)] == [(0, '$S1'), (10, '$S2')]" \
		"$(out_frames "$1")"
}

# Waits for the CLOSE of the filter's flow N and checks its reason.
expect_close() { # FILTER N REASON
	local end=$((SECONDS + 5))
	while [ "$(pyval "len(frames('$1', type='CLOSE', n=$2))")" -eq 0 ]; do
		[ "$SECONDS" -lt "$end" ] || fail "$1: no CLOSE for flow $2 within 5 s"
		sleep 0.05
	done
	pyassert "$1: CLOSE of flow $2" "[r['reason'] for r in frames('$1', type='CLOSE', n=$2)] == [$3]" \
		"frames('$1', type='CLOSE', n=$2)"
}

case_rewrite() {
	local sc=$1 want
	case $sc in
	replace-grow) want='01234567<<8-9-A-B>>CDEFGHIJ' ;;
	replace-shrink) want='012~FGHIJ' ;;
	replace-empty) want='01234CDEFGHIJ' ;;
	replace-gap) want='0123456789ABCDxyGHIJ' ;;
	inject-start) want='<start>0123456789ABCDEFGHIJ' ;;
	inject-middle) want='0123456789ABC<mid>DEFGHIJ' ;;
	inject-end) want='0123456789ABCDEFGHIJ<end>' ;;
	drop-range) want='0123BCDEFGHIJ' ;;
	*) fail "unknown rewrite $sc" ;;
	esac
	setup --reply OK
	start_scripted filt "$sc"
	run_bytes_client cli 20 "$LISTEN" "${DEFAULT_STEPS[@]}"
	wait_done srv 1 10
	expect_server srv 1 "$want"
	expect_client cli OK
	expect_two_chunks filt
	expect_close filt 1 0
	pyassert "no ERROR frames" "not frames('filt', type='ERROR')" "frames('filt', type='ERROR')"
	log "$sc: server got '$want', client got 'OK'"
	finish
}

case_rewrite_in() {
	# The in direction: the server answers S1S2 in one write; the filter
	# rewrites it as replace-grow does the out direction.
	setup --reply "$S1$S2" --reply-when accept
	start_scripted filt replace-grow --dir in
	run_bytes_client cli 20 "$LISTEN" send:ping shut recv
	wait_done srv 1 10
	expect_server srv 1 ping
	expect_client cli '01234567<<8-9-A-B>>CDEFGHIJ'
	pyassert "the filter saw the server's bytes" \
		"''.join(r['data'] for r in frames('filt', type='DATA', dir=1)) == '$S1$S2'" \
		"frames('filt', type='DATA', dir=1)"
	expect_close filt 1 0
	log "in direction rewritten: client got '01234567<<8-9-A-B>>CDEFGHIJ'"
	finish
}

# replace-all: 1.5 MiB of text with many "sluice" (also back to back, and
# so many that some straddle the daemon's reads), sent with pauses; the
# filter replaces each, holding back 5 bytes between frames.
case_replace_all() {
	local text=$1 input=$T/input expect
	python3 - "$input" <<-'EOF'
		import random, sys
		r = random.Random(7)
		words = [b"sluice", b"sluicesluice", b"slu", b"ice", b"gate", b"s", b"water ", b"\r\n"]
		out = bytearray()
		while len(out) < 1536 * 1024:
		    out += r.choice(words) + b" " * r.randint(0, 3)
		open(sys.argv[1], "wb").write(out)
	EOF
	setup --reply OK
	start_scripted filt replace-all --pattern sluice --text "$text" --log-data 0
	run_bytes_client cli 60 "$LISTEN" "file:$input" sleep:0.2 send:sluice sleep:0.2 send:slu sleep:0.2 send:ice shut recv
	wait_done srv 1 30
	# The tail "sluice" + "slu"|"ice" (apart) are two more matches.
	expect=$(python3 -c '
import hashlib, sys
d = (open(sys.argv[1], "rb").read() + b"sluicesluice").replace(b"sluice", sys.argv[2].encode())
print(len(d), hashlib.sha256(d).hexdigest())' "$input" "$text")
	pyassert "server got the input with every 'sluice' replaced by '$text'" \
		"'%d %s' % (done('srv', 1)['recv'], done('srv', 1)['recv_sha256']) == '$expect'" \
		"(done('srv', 1)['recv'], done('srv', 1)['recv_sha256'], done('srv', 1)['recv_end'])"
	pyassert "server read EOF" "done('srv', 1)['recv_end'] == 'eof'" "done('srv', 1)"
	expect_client cli OK
	log "$(pyval "len(frames('filt', type='VERDICT', op='replace'))") replaces over $(pyval "len(frames('filt', type='DATA', dir=0))") DATA frames; server got ${expect% *} bytes, as expected"
	finish
}

case_peek() {
	local c1='GET /index.html HTTP/1.1\r\nHost: example' c2='\r\nUser-Agent: test\r\n\r\nBODY-1234'
	setup --reply OK
	start_scripted filt peek-header
	run_bytes_client cli 20 "$LISTEN" "send:$c1" sleep:0.3 "send:$c2" shut recv
	wait_done srv 1 10
	expect_server srv 1 'GET /index.html HTTP/1.1\r\nHost: example.org\r\nUser-Agent: test\r\nX-Sluice: peeked\r\n\r\nBODY-1234'
	expect_client cli OK
	# What the filter saw: the two chunks, its peek, one re-offer of all of
	# it from offset 0, and its replace of the header.
	pyassert "plain DATA frames: the two chunks" \
		"[(r['offset'], r['data']) for r in frames('filt', type='DATA', dir=0, flags=0)] == [(0, unesc(sys.argv[4])), (39, unesc(sys.argv[5]))]" \
		"$(out_frames filt)" "$c1" "$c2"
	pyassert "one PEEK to one byte past the first chunk" \
		"[r['to'] for r in frames('filt', type='VERDICT', op='peek')] == [40]" \
		"frames('filt', type='VERDICT', op='peek')"
	pyassert "one re-offer (flag 1) of everything undecided, from offset 0" \
		"[(r['offset'], r['data']) for r in frames('filt', type='DATA', dir=0, flags=1)] == [(0, unesc(sys.argv[4]) + unesc(sys.argv[5]))]" \
		"$(out_frames filt)" "$c1" "$c2"
	pyassert "the re-offer came after the second chunk" \
		"[r.get('flags') for r in frames('filt', type='DATA', dir=0)] == [0, 0, 1]" "$(out_frames filt)"
	pyassert "the header [0, 61) was replaced" \
		"[(r['from'], r['to']) for r in frames('filt', type='VERDICT', op='replace')] == [(0, 61)]" \
		"frames('filt', type='VERDICT', op='replace')"
	pyassert "no ERROR frames" "not frames('filt', type='ERROR')" "frames('filt', type='ERROR')"
	expect_close filt 1 0
	log "header split over two chunks: peeked, re-offered in one DATA, replaced; server got the new header"
	finish
}

case_pass_rest() {
	setup --reply OK
	start_scripted filt pass-rest
	run_bytes_client cli 60 "$LISTEN" 'send:FIRST-CHUNK\n' sleep:0.5 random:8M shut recv
	wait_done srv 1 30
	pyassert "server got all the client sent (sha256)" \
		"done('srv', 1)['recv'] == 12 + 8 * 1024 * 1024 == client('cli')['sent'] and done('srv', 1)['recv_sha256'] == client('cli')['sent_sha256'] and done('srv', 1)['recv_end'] == 'eof'" \
		"(done('srv', 1)['recv'], done('srv', 1)['recv_end'], client('cli')['sent'])"
	expect_client cli OK
	expect_close filt 1 0
	pyassert "after pass_rest the filter got no more out DATA (8 MiB followed)" \
		"[(r['offset'], r['len']) for r in frames('filt', type='DATA', dir=0)] == [(0, 12)]" \
		"$(out_frames filt)"
	pyassert "and no out EOF" "not frames('filt', type='EOF', dir=0)" "frames('filt', type='EOF')"
	pyassert "a verdict after pass_rest is refused: ERROR STATE (6) for VERDICT" \
		"[(r['code'], r['ref_type']) for r in frames('filt', type='ERROR')] == [(6, 6)]" \
		"frames('filt', type='ERROR')"
	pyassert "the in direction was still offered" \
		"[r['data'] for r in frames('filt', type='DATA', dir=1)] == ['OK'] and [r['offset'] for r in frames('filt', type='EOF', dir=1)] == [2]" \
		"(frames('filt', type='DATA', dir=1), frames('filt', type='EOF', dir=1))"
	log "pass_rest after 12 bytes: 8 MiB more passed unseen and intact"
	finish
}

case_shutdown() {
	setup --reply REPLY
	start_scripted filt shutdown-out-5
	# The client sends its FIN only after the server's reply has come, and
	# the server replies only after EOF: so that EOF is the filter's.
	run_bytes_client cli 20 "$LISTEN" send:12345abcdef recv sleep:0.2 send:late shut
	wait_done srv 1 10
	expect_server srv 1 12345
	expect_client cli REPLY
	pyassert "client's late bytes went out without error" "client('cli')['send_error'] is None" "client('cli')"
	expect_close filt 1 0
	pyassert "after SHUTDOWN no out DATA or EOF was offered" \
		"[(r['offset'], r['len']) for r in frames('filt', type='DATA', dir=0)] == [(0, 11)] and not frames('filt', type='EOF', dir=0)" \
		"(frames('filt', type='DATA', dir=0), frames('filt', type='EOF', dir=0))"
	log "shutdown of out after 5 bytes: server got '12345' then EOF; its reply reached the client"
	finish
}

case_reset() {
	setup --reply-when never
	start_scripted filt reset-marker --marker RST
	run_bytes_client cli 20 "$LISTEN" 'send:before|' sleep:0.3 'send:RST|after' sleep:0.3 recv
	wait_done srv 1 10
	expect_server srv 1 'before|' ECONNRESET
	expect_client cli '' ECONNRESET
	expect_close filt 1 104
	log "reset: server got 'before|' then ECONNRESET; client got ECONNRESET; CLOSE 104"
	finish
}

# The OPEN asked for a connect-time verdict.
expect_open_verdict_flag() {
	pyassert "OPEN carries the VERDICT flag (4)" \
		"[r['flags'] & 4 for r in frames('$1', type='OPEN')] == [4]" "frames('$1', type='OPEN')"
}

case_open_allow() {
	setup --reply OK
	start_scripted filt open-allow --features 1
	run_bytes_client cli 20 "$LISTEN" 'send:allowed\r\n' shut recv
	wait_done srv 1 10
	expect_server srv 1 'allowed\r\n'
	expect_client cli OK
	expect_open_verdict_flag filt
	pyassert "the server's connection came after the OPEN_VERDICT" \
		"accepted('srv')[0]['t'] >= frames('filt', type='OPEN_VERDICT')[0]['t']" \
		"(accepted('srv'), frames('filt', type='OPEN_VERDICT'))"
	expect_close filt 1 0
	log "allow: flow relayed once allowed"
	finish
}

case_open_deny() {
	setup --reply OK
	start_scripted filt open-deny --features 1
	run_bytes_client cli 20 "$LISTEN" sleep:0.3 send:denied recv
	# The kernel completes the handshake before the daemon accepts, asks
	# the filter and resets, but on a busy machine the client's connect()
	# may return only after that reset, and then fails with it: a reset
	# either way, and nothing received.
	pyassert "client cli: nothing received, then ECONNRESET (on reading, or already on connecting)" \
		"client('cli') is not None and client('cli')['recv'] == 0 and (client('cli')['connect_error'], client('cli')['recv_end']) in [(None, 'ECONNRESET'), ('ECONNRESET', None)]" \
		"client('cli')"
	expect_open_verdict_flag filt
	expect_close filt 1 111
	sleep 0.5
	[ "$(accepts srv)" -eq 0 ] || fail "deny: the server saw $(accepts srv) connections"
	log "deny: client reset, server saw no connection, CLOSE 111"
	finish
}

case_open_redirect() {
	local up2
	setup --reply OK
	up2=$(addr 127.0.0.1 "$(free_port)")
	start_bytes_server srv2 "$up2" --reply SERVER2
	start_scripted filt open-redirect --features 1 --redirect "$up2"
	run_bytes_client cli 20 "$LISTEN" send:to-be-redirected shut recv
	wait_done srv2 1 10
	expect_server srv2 1 to-be-redirected
	expect_client cli SERVER2
	[ "$(accepts srv)" -eq 0 ] || fail "redirect: the first server saw $(accepts srv) connections"
	expect_close filt 1 0
	log "redirect: the second server got the bytes and answered"
	finish
}

case_open_ignore() {
	setup --reply OK --reply-random 1M
	start_scripted filt open-ignore --features 1
	run_bytes_client cli 30 "$LISTEN" 'send:ignored|' random:2M shut recv
	wait_done srv 1 20
	pyassert "server got all the client sent" \
		"done('srv', 1)['recv_sha256'] == client('cli')['sent_sha256'] and done('srv', 1)['recv'] == 8 + 2 * 1024 * 1024 and done('srv', 1)['recv_end'] == 'eof'" \
		"(done('srv', 1)['recv'], client('cli')['sent'])"
	pyassert "client got all the server sent" \
		"client('cli')['recv_sha256'] == done('srv', 1)['sent_sha256'] and client('cli')['recv'] == 2 + 1024 * 1024 and client('cli')['recv_end'] == 'eof'" \
		"(client('cli')['recv'], done('srv', 1)['sent'])"
	sleep 0.5
	pyassert "after ignore the filter heard nothing more of the flow, not even CLOSE" \
		"[(r['io'], r['type']) for r in frames('filt') if r.get('flow') == frames('filt', type='OPEN')[0]['flow']] == [('recv', 'OPEN'), ('sent', 'OPEN_VERDICT')]" \
		"[(r['io'], r['type']) for r in frames('filt') if r.get('flow') == frames('filt', type='OPEN')[0]['flow']]"
	log "ignore: 2 MiB out and 1 MiB in intact, the filter saw nothing after OPEN"
	finish
}

case_subscribe_in() {
	setup --reply REPLY
	start_scripted filt in-tag --subscribe in --text '[in]'
	run_bytes_client cli 30 "$LISTEN" random:1M shut recv
	wait_done srv 1 20
	pyassert "server got all the client sent" \
		"done('srv', 1)['recv_sha256'] == client('cli')['sent_sha256'] and done('srv', 1)['recv'] == 1024 * 1024 and done('srv', 1)['recv_end'] == 'eof'" \
		"(done('srv', 1)['recv'], client('cli')['sent'])"
	expect_client cli '[in]REPLY'
	pyassert "OPEN has IN_ONLY (8), not OUT_ONLY (16)" \
		"[r['flags'] & 24 for r in frames('filt', type='OPEN')] == [8]" "frames('filt', type='OPEN')"
	pyassert "no out DATA or EOF was offered" \
		"not frames('filt', type='DATA', dir=0) and not frames('filt', type='EOF', dir=0)" \
		"$(out_frames filt)"
	pyassert "the in bytes were offered" \
		"[r['data'] for r in frames('filt', type='DATA', dir=1)] == ['REPLY'] and [r['offset'] for r in frames('filt', type='EOF', dir=1)] == [5]" \
		"frames('filt', type='DATA', dir=1)"
	expect_close filt 1 0
	log "subscribed to in only: IN_ONLY on OPEN, 1 MiB out unseen and intact, in rewritten"
	finish
}

case_subscribe_ports() {
	local other i
	setup --reply OK
	other=$((UP_PORT < 65535 ? UP_PORT + 1 : UP_PORT - 1))
	start_scripted filtA inject-start --subscribe "both:$other" --text A:
	local pidA=$SF_PID
	start_scripted filtB inject-start --subscribe "both:$UP_PORT" --text B:
	local pidB=$SF_PID
	for i in 1 2 3; do
		run_bytes_client "cli$i" 20 "$LISTEN" "send:flow-$i" shut recv
		wait_done srv "$i" 10
		expect_server srv "$i" "B:flow-$i"
		expect_client "cli$i" OK
	done
	pyassert "filter B (port $UP_PORT) got the 3 flows" \
		"[r['dst_port'] for r in frames('filtB', type='OPEN')] == [$UP_PORT] * 3" "frames('filtB', type='OPEN')"
	stop_scripted "$pidB"
	run_bytes_client cli4 20 "$LISTEN" send:flow-4 shut recv
	wait_done srv 4 10
	expect_server srv 4 flow-4
	expect_client cli4 OK
	pyassert "filter A (port $other) got no flow" "not frames('filtA', type='OPEN')" "frames('filtA', type='OPEN')"
	wait_for_log "$SLUICED_LOG" "-> $UP, unfiltered" 5 || fail "sluiced did not log the fourth flow as unfiltered"
	check_alive "$pidA" "filter A"
	log "port subscription: the flows to $UP_PORT went to B only; without B they passed unfiltered, A saw none"
	finish
}

# A filter error on one flow while another flow (the bystander) is in
# the middle of a transfer through the same filter; every victim but the
# WINDOW one continues after the error, and the bystander is intact.
case_errors() {
	local gate=$T/gate bys
	setup --reply OK --read-rate 1M -- --window 64K
	start_scripted filt errors
	spawn bys python3 "$BYTES_PEER" client --connect "$LISTEN" --io-timeout 60 \
		random:2M "wait-file:$gate" random:2M shut recv
	bys=$SPAWNED_PID
	local end=$((SECONDS + 10))
	until [ "$(pyval "len(frames('filt', type='DATA', n=1, dir=0))")" -gt 0 ]; do
		[ "$SECONDS" -lt "$end" ] || fail "the bystander's data did not reach the filter"
		sleep 0.05
	done

	# 2: PASS beyond what was offered -> BAD_OFFSET; then a good PASS.
	run_bytes_client v2 20 "$LISTEN" 'send:ERR-BEYOND|first' sleep:0.3 'send:|second' shut recv
	wait_done srv 2 10
	expect_server srv 2 'ERR-BEYOND|first|second'
	expect_client v2 OK
	pyassert "ERR-BEYOND: one ERROR BAD_OFFSET (2) for the VERDICT" \
		"[(r['code'], r['ref_type']) for r in frames('filt', type='ERROR', n=2)] == [(2, 6)]" \
		"frames('filt', type='ERROR', n=2)"
	grep -q "outside decided" "$SLUICED_LOG" || fail "the daemon did not log the bad offsets"

	# 3: offsets going backwards -> 4 x BAD_OFFSET; nothing of them applied.
	run_bytes_client v3 20 "$LISTEN" 'send:ERR-BACK|0123456789' sleep:0.3 'send:|tail' shut recv
	wait_done srv 3 10
	expect_server srv 3 'ERR-BACK|0123456789|tail'
	expect_client v3 OK
	pyassert "ERR-BACK: pass, drop, peek and replace behind decided: 4 x BAD_OFFSET" \
		"[(r['code'], r['ref_type']) for r in frames('filt', type='ERROR', n=3)] == [(2, 6)] * 4" \
		"frames('filt', type='ERROR', n=3)"

	# 4: PEEK 1 MiB ahead with a 64 KiB window -> WINDOW, the flow is reset.
	run_bytes_client v4 20 "$LISTEN" 'send:ERR-WINDOW|x' sleep:0.3 send:more recv
	wait_done srv 4 10
	expect_server srv 4 '' ECONNRESET
	expect_client v4 '' ECONNRESET
	pyassert "ERR-WINDOW: one ERROR WINDOW (3)" \
		"[(r['code'], r['ref_type']) for r in frames('filt', type='ERROR', n=4)] == [(3, 6)]" \
		"frames('filt', type='ERROR', n=4)"
	expect_close filt 4 105

	# 5: verdicts for a flow that has just closed -> FLOW_CLOSED, channel open.
	run_bytes_client v5 20 "$LISTEN" 'send:ERR-CLOSED|bye' shut recv
	wait_done srv 5 10
	expect_server srv 5 'ERR-CLOSED|bye'
	expect_client v5 OK
	expect_close filt 5 0
	end=$((SECONDS + 5))
	until [ "$(pyval "len(frames('filt', type='ERROR', n=5))")" -ge 2 ]; do
		[ "$SECONDS" -lt "$end" ] || break
		sleep 0.05
	done
	pyassert "ERR-CLOSED: FLOW_CLOSED (1) for the VERDICT (6) and the OPEN_VERDICT (7)" \
		"[(r['code'], r['ref_type']) for r in frames('filt', type='ERROR', n=5)] == [(1, 6), (1, 7)]" \
		"frames('filt', type='ERROR', n=5)"

	# The bystander was mid-transfer all along; it finishes through the filter.
	alive "$bys" || fail "the bystander ended before the error cases were through"
	touch "$gate"
	wait_pid "$bys" 60 || fail "the bystander client failed or did not finish"
	wait_done srv 1 30
	pyassert "bystander: the server got all it sent" \
		"done('srv', 1)['recv'] == 4 * 1024 * 1024 and done('srv', 1)['recv_sha256'] == client('bys')['sent_sha256'] and done('srv', 1)['recv_end'] == 'eof'" \
		"(done('srv', 1)['recv'], done('srv', 1)['recv_end'], client('bys'))"
	pyassert "bystander: the client got OK" \
		"client('bys')['recv_data'] == 'OK' and client('bys')['recv_end'] == 'eof'" "client('bys')"
	pyassert "bystander: all its bytes went through the filter, some after the last error" \
		"sum(r['len'] for r in frames('filt', type='DATA', n=1, dir=0)) == 4 * 1024 * 1024 and frames('filt', type='DATA', n=1)[-1]['t'] > frames('filt', type='ERROR')[-1]['t']" \
		"sum(r['len'] for r in frames('filt', type='DATA', n=1, dir=0))"

	# The channel is still open: a new flow goes to the same filter.
	run_bytes_client v6 20 "$LISTEN" send:after shut recv
	wait_done srv 6 10
	expect_server srv 6 after
	pyassert "a flow after the errors is given to the same filter" \
		"len(frames('filt', type='OPEN')) == 6 and frames('filt', type='DATA', n=6, dir=0)" \
		"frames('filt', type='OPEN')"
	! grep -q "dropping filter client" "$SLUICED_LOG" || fail "the daemon dropped the filter"
	check_alive "$SF_PID" scripted_filter
	log "BAD_OFFSET x5, WINDOW, FLOW_CLOSED x2 answered; the bystander's 4 MiB intact; channel open"
	finish
}

case $CASE in
rewrite:*) case_rewrite "${CASE#rewrite:}" ;;
rewrite-in) case_rewrite_in ;;
replace-all-grow) case_replace_all SLUICE-FILTER ;;
replace-all-empty) case_replace_all '' ;;
peek) case_peek ;;
pass-rest) case_pass_rest ;;
shutdown) case_shutdown ;;
reset) case_reset ;;
open-allow) case_open_allow ;;
open-deny) case_open_deny ;;
open-redirect) case_open_redirect ;;
open-ignore) case_open_ignore ;;
subscribe-in) case_subscribe_in ;;
subscribe-ports) case_subscribe_ports ;;
errors) case_errors ;;
*) fail "unknown case $CASE (verdicts.sh --list)" ;;
esac
