#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 300
#
# What intercept mode selects. With --intercept 80 --exclude-uid 65534:
# root's curl to port 80 is a flow; the same curl run as uid 65534
# (setpriv --reuid=65534 --regid=65534 --clear-groups) is not, and nor is
# root's curl to port 8080, outside the set; both still reach nginx. Then
# --uid 65534 (only that user), --exclude-dest (not that server) and --dest
# (only that network), each checked the same way with one connection that
# must be a flow and one that must not.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netns.sh"
need curl sha256sum nft setpriv

netns_pair
netns_start_nginx "$NS_SERVER"
netns_payload p64K 64K

# get AS URL: one download from NS_CLIENT, as root or as uid 65534 (AS is
# root or nobody), checked against the payload. The output goes to a pipe,
# since uid 65534 cannot write in the test's directory.
get() {
	local as=$1 url=$2 sha rc=0 run=()
	[ "$as" = root ] || run=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	sha=$(ip netns exec "$NS_CLIENT" "${run[@]}" curl -sS -g --max-time 30 "$url" 2>"$T/get.err" | sha256sum | cut -d' ' -f1) || rc=$?
	[ "$rc" -eq 0 ] && [ -z "$(cat "$T/get.err")" ] || fail "curl as $as from $url failed: $(cat "$T/get.err")"
	[ "$sha" = "$PAYLOAD_SHA" ] || fail "curl as $as from $url: sha256 differs"
}

# expect_flow AS HOST PORT: the download is a flow, owned by AS's uid.
expect_flow() {
	local as=$1 host=$2 port=$3 d uid=0 dst
	[ "$as" = root ] || uid=65534
	dst=$(netns_url x "$host" "$port")
	dst=${dst#x://}
	flows_mark
	get "$as" "$(netns_url http "$host" "$port")/dl/p64K"
	flows_wait_closed 1 10 || fail "$cfg: curl as $as to $dst: not intercepted (daemon: $(daemon_flows | tr '\n' ';'))"
	d=$(daemon_flows)
	[ "$(printf '%s\n' "$d" | grep -c .)" -eq 1 ] && [ "$(printf '%s\n' "$d" | awk '{ print $2 }')" = "$dst" ] ||
		fail "$cfg: curl as $as to $dst: expected one flow to $dst, got: $(printf '%s' "$d" | tr '\n' ';')"
	[ "$(filter_flows | awk '{ print $5 }')" = "$uid" ] ||
		fail "$cfg: curl as $as: the filter saw uid $(filter_flows | awk '{ print $5 }'), expected $uid"
	log "$cfg: curl as $as to $dst: a flow, as it should be"
}

# expect_none AS HOST PORT: the download reaches nginx without a flow.
expect_none() {
	local as=$1 host=$2 port=$3 n0 n1 dst
	dst=$(netns_url x "$host" "$port")
	dst=${dst#x://}
	flows_mark
	n0=$(grep -c ' /dl/p64K 200 ' "$NGINX_ACCESS" || true)
	get "$as" "$(netns_url http "$host" "$port")/dl/p64K"
	n1=$(grep -c ' /dl/p64K 200 ' "$NGINX_ACCESS" || true)
	[ "$n1" -eq $((n0 + 1)) ] || fail "$cfg: curl as $as to $dst: nginx did not log it"
	# Had the connection gone through sluiced, its open line would be
	# written before the first byte moved, so before curl finished.
	sleep 0.3
	[ -z "$(daemon_flows)" ] || fail "$cfg: curl as $as to $dst was intercepted: $(daemon_flows | tr '\n' ';')"
	[ -z "$(filter_flows)" ] || fail "$cfg: curl as $as to $dst reached the filter: $(filter_flows | tr '\n' ';')"
	log "$cfg: curl as $as to $dst: no flow, as it should be"
}

run_case() {
	cfg="$*"
	netns_start_sluiced "$NS_CLIENT" intercepting "$@"
	netns_start_filter
}

run_case --intercept 80 --exclude-uid 65534
expect_flow root "$SERVER4" 80
expect_none nobody "$SERVER4" 80
expect_none root "$SERVER4" 8080
expect_flow root "$SERVER6" 80
expect_none nobody "$SERVER6" 80
expect_none root "$SERVER6" 8080
stop_sluiced

run_case --intercept 80 --uid 65534
expect_none root "$SERVER4" 80
expect_flow nobody "$SERVER4" 80
expect_none nobody "$SERVER4" 8080
stop_sluiced

run_case --intercept 80,8080 --exclude-dest "$SERVER4/32"
expect_none root "$SERVER4" 80
expect_none root "$SERVER4" 8080
expect_flow root "$SERVER6" 8080
stop_sluiced

run_case --intercept 8000-8100 --dest 10.77.1.0/24
expect_flow root "$SERVER4" 8080
expect_none root "$SERVER4" 80
expect_none root "$SERVER6" 8080
stop_sluiced
! netns_has_sluice_table "$NS_CLIENT" || fail "table inet sluice is still there after sluiced exited"
