#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 300
#
# 200 flows at once, each with its own random payload of 64 KiB to 1 MiB in
# each direction: every stream arrives intact (compared as a multiset of
# length and sha256, so no stream may be lost, doubled or mixed with another).
. "$(dirname "$0")/lib.sh"

N=200
UP=$(addr 127.0.0.1 "$(free_port)")
LISTEN=$(addr 127.0.0.1 "$(free_port)")
start_server srv "$UP" --count "$N" --send 64K-1M
start_sluiced "$LISTEN" "$UP"
start_filter
run_client cli 240 "$LISTEN" --conns "$N" --send 64K-1M
wait_server 60
compare cli srv --count "$N"
check_alive "$SLUICED_PID" sluiced
stop_sluiced
