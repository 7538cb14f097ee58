#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
#
# One transfer over IPv6 loopback: client -> [::1] sluiced -> [::1] server,
# 10 MiB each way through sluice-passthrough.
. "$(dirname "$0")/lib.sh"

python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null ||
	skip "no IPv6 loopback (::1)"

UP=$(addr ::1 "$(free_port ::1)")
LISTEN=$(addr ::1 "$(free_port ::1)")
start_server srv "$UP" --count 1 --send 10M
start_sluiced "$LISTEN" "$UP"
start_filter
run_client cli 60 "$LISTEN" --send 10M
wait_server 30
compare cli srv --count 1 --expect-out 10M --expect-in 10M
stop_sluiced
