#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 900
#
# Intercept mode, HTTPS over IPv4 (curl -k, nginx with a self-signed
# certificate made on the spot): sluiced --intercept (HTTP, HTTPS, FTP
# control and passive data ports) in a client namespace with
# sluice-passthrough attached; curl in that namespace uploads (PUT) and
# downloads files of 1 KiB, 499 KiB, 501 KiB, 10 MiB and 200 MiB to and from
# nginx in a server namespace across a veth. Each transfer must arrive with
# the same sha256; the daemon must have opened exactly one flow for it, to
# the server's address and port 443 (the original destination); the filter
# must have seen that flow with the daemon's byte counts, the payload
# direction carrying the payload plus TLS records' overhead (at most 1/64
# of the payload) and 16 KiB of handshake and HTTP headers.
# 499 and 501 KiB sit on either side of the size where the classic
# socket-filter design starts to lose data.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netns.sh"
need curl sha256sum nft openssl

netns_pair
netns_start_nginx "$NS_SERVER"
netns_start_sluiced "$NS_CLIENT" intercepting --intercept "$INTERCEPT_PORTS"
netns_start_filter
netns_http_suite https "$SERVER4" 1K 499K 501K 10M 200M
stop_sluiced
! netns_has_sluice_table "$NS_CLIENT" || fail "table inet sluice is still there after sluiced exited"
