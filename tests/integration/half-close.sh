#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
#
# Half-close travels in order after the data, and the other direction keeps
# flowing after it:
#  1. the client sends 2 MiB and shuts down writing; the server replies 4 MiB
#     only once it has read EOF; the client reads the whole reply.
#  2. the other way round: the server sends 4 MiB and shuts down writing; the
#     client replies 2 MiB only after EOF.
. "$(dirname "$0")/lib.sh"

UP=$(addr 127.0.0.1 "$(free_port)")
LISTEN=$(addr 127.0.0.1 "$(free_port)")
start_sluiced "$LISTEN" "$UP"
start_filter

start_server srv1 "$UP" --count 1 --send 4M --reply-after-eof
run_client cli1 60 "$LISTEN" --send 2M
wait_server 30
compare cli1 srv1 --count 1 --expect-out 2M --expect-in 4M
[ "$(json "$T/srv1.out" 'r.get("eof_at") is not None')" = 1 ] || fail "the server never read EOF"

start_server srv2 "$UP" --count 1 --send 4M
run_client cli2 60 "$LISTEN" --send 2M --reply-after-eof
wait_server 30
compare cli2 srv2 --count 1 --expect-out 2M --expect-in 4M
[ "$(json "$T/cli2.out" 'r.get("eof_at") is not None')" = 1 ] || fail "the client never read EOF"
stop_sluiced
