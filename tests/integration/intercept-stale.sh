#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
#
# A leftover table: an `inet sluice` table without the owner flag (as an
# older kernel, or a hand, would leave it) redirecting port 80 to a dead
# port is replaced when sluiced starts, in one transaction, and its rules are
# gone: the table is then owned, diverts to sluiced, and vanishes when
# sluiced is killed. A table owned by another live sluiced makes a second
# one refuse to start, with one line, and leaves the first one's rules alone.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netns.sh"
need curl nft

netns_pair
netns_start_nginx "$NS_SERVER"
netns_payload p1M 1M

ip netns exec "$NS_CLIENT" nft -f - <<'NFT' || fail "could not make the stale table"
table inet sluice {
	chain output {
		type nat hook output priority -100; policy accept;
		meta l4proto tcp tcp dport 80 redirect to :9
	}
}
NFT
ip netns exec "$NS_CLIENT" curl -sS --max-time 3 -o /dev/null "$(netns_url http "$SERVER4")/dl/p1M" 2>/dev/null &&
	fail "the stale table did not redirect to its dead port; the test proves nothing"

netns_start_sluiced "$NS_CLIENT" intercepting --intercept 80
netns_start_filter
rules=$(ip netns exec "$NS_CLIENT" nft list table inet sluice)
grep -q "flags owner" <<<"$rules" || fail "the table was not replaced by an owned one: $rules"
grep -q "redirect to :9$" <<<"$rules" && fail "the stale rule survived: $rules"

ip netns exec "$NS_CLIENT" curl -sS --fail --max-time 10 -o "$T/got" "$(netns_url http "$SERVER4")/dl/p1M" ||
	fail "curl through the new rules failed"
cmp -s "$T/got" "$NETNS_DIR/data/p1M" || fail "the download through sluiced differs"
grep -q ": open: " "$SLUICED_LOG" || fail "the download did not go through sluiced"

# A second daemon cannot take an owned table from a live one.
second=$T/second.err
rc=0
timeout 10 ip netns exec "$NS_CLIENT" "$SLUICED" --intercept 80 --filter-socket "$T/f2.sock" \
	--control "$T/c2.sock" >"$T/second.out" 2>"$second" || rc=$?
[ "$rc" -ne 0 ] || fail "a second sluiced started over a live one's table"
grep -q "belongs to another running sluiced" "$second" ||
	fail "the second sluiced does not say why: $(cat "$second")"
[ "$(grep -c . "$second")" -eq 1 ] || fail "the second sluiced's error is not one line: $(cat "$second")"
log "second sluiced refused: $(cat "$second")"
ip netns exec "$NS_CLIENT" nft list table inet sluice | grep -q "flags owner" ||
	fail "the first daemon's table was disturbed"

kill -KILL "$SLUICED_PID"
wait_pid "$SLUICED_PID" 5 || true
! netns_has_sluice_table "$NS_CLIENT" || fail "the table outlived its sluiced"
echo "intercept-stale: a stale table was replaced, an owned one defended"
