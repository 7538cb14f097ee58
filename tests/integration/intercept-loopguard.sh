#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 300
#
# The loop guard: with --intercept all, every TCP connection the client
# namespace makes is redirected to sluiced, including, were it not for its
# SO_MARK, the upstream connection sluiced itself opens to the original
# destination. One curl connection must therefore give exactly one "open"
# line in the daemon's log, to the server's real address, and the transfer
# must be intact. Then the same with --intercept-loopback, where sluiced's
# own listener and upstream are on loopback too: one curl to a server on
# 127.0.0.1 in the client namespace, exactly one flow.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netns.sh"
need curl sha256sum nft

netns_pair
netns_start_nginx "$NS_SERVER"
netns_payload p1M 1M

# one_flow WHAT DST CURL_URL_HOST: one download from NS_CLIENT, exactly one
# flow to DST in the daemon's log and the filter's.
one_flow() {
	local what=$1 dst=$2 host=$3 d
	flows_mark
	netns_xfer "$NS_CLIENT" http down p1M "$host" || fail "$what: $XFER_MSG"
	flows_wait_closed 1 15 || fail "$what: no closed flow after 15 s: $(daemon_flows | tr '\n' ';')"
	# A looping upstream would show up a moment later: give it the chance.
	sleep 0.5
	d=$(daemon_flows)
	[ "$(printf '%s\n' "$d" | grep -c .)" -eq 1 ] || fail "$what: expected exactly one flow, the daemon opened: $(printf '%s' "$d" | tr '\n' ';')"
	[ "$(printf '%s\n' "$d" | awk '{ print $2 }')" = "$dst" ] || fail "$what: the flow goes to $(printf '%s\n' "$d" | awk '{ print $2 }'), expected $dst"
	[ "$(filter_flows | grep -c .)" -eq 1 ] || fail "$what: the filter saw $(filter_flows | grep -c .) flows"
	[ "$(grep -c ': open: ' "$SLUICED_LOG")" -eq "$expect_total" ] ||
		fail "$what: $(grep -c ': open: ' "$SLUICED_LOG") open lines in the daemon's log, expected $expect_total"
	log "$what: exactly one flow, $d"
}

netns_start_sluiced "$NS_CLIENT" intercepting --intercept all
netns_start_filter
expect_total=1
one_flow "--intercept all, to $SERVER4:80" "$SERVER4:80" "$SERVER4"
expect_total=2
one_flow "--intercept all, IPv6 to [$SERVER6]:80" "[$SERVER6]:80" "$SERVER6"
stop_sluiced

# A plain HTTP server on the client namespace's loopback, serving the same
# payload directory as nginx.
netns_spawn loserver "$NS_CLIENT" python3 -m http.server --bind 127.0.0.1 --directory "$NGINX_WWW" 8081
netns_wait_listen "$NS_CLIENT" 8081 "$NETNS_PID" "loserver"
netns_start_sluiced "$NS_CLIENT" intercepting --intercept all --intercept-loopback
netns_start_filter
expect_total=1
one_flow "--intercept all --intercept-loopback, to 127.0.0.1:8081" 127.0.0.1:8081 127.0.0.1:8081
expect_total=2
one_flow "--intercept all --intercept-loopback, to $SERVER4:80" "$SERVER4:80" "$SERVER4"
stop_sluiced
! netns_has_sluice_table "$NS_CLIENT" || fail "table inet sluice is still there after sluiced exited"
