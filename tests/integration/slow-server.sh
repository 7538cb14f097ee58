#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
#
# A server that reads at 1 MiB/s behind sluiced --window 262144: the client
# sends 12 MiB at full speed, so nearly all of it has to wait somewhere. It
# must wait in the kernel (the daemon stops reading the client once its
# window is full), not in the daemon's memory.
#
# Bound: the daemon's RSS may grow by at most 4 MiB over its pre-transfer
# RSS. One direction holds at most one window (256 KiB) between source and
# sink, plus the same again in frames to and from the filter; 4 MiB is 16
# windows, room for allocator and stack slack. A daemon that reads without
# bound would hold what the kernel does not: 12 MiB minus its upstream
# socket's send buffer (at most 4 MiB, net.ipv4.tcp_wmem) minus the server's
# 64 KiB receive buffer, minus what the server has read (1 MiB/s), i.e. about
# 7 MiB at first.
. "$(dirname "$0")/lib.sh"

SIZE=12M
RATE=1M
WINDOW=262144
GROWTH_LIMIT_KB=$((4 * 1024))

UP=$(addr 127.0.0.1 "$(free_port)")
LISTEN=$(addr 127.0.0.1 "$(free_port)")
start_server srv "$UP" --count 1 --read-rate "$RATE" --rcvbuf 64K
start_sluiced "$LISTEN" "$UP" --window "$WINDOW"
start_filter

pre=$(rss_kb "$SLUICED_PID")
spawn cli timeout 60 python3 "$PEER" client --connect "$LISTEN" --send "$SIZE"
CLIENT_PID=$SPAWNED_PID
max=$pre
# The server is the last to finish: it reads the last byte after the client
# has sent it.
end=$((SECONDS + 60))
while alive "$SERVER_PID" && [ "$SECONDS" -lt "$end" ]; do
	r=$(rss_kb "$SLUICED_PID") || break
	[ "$r" -le "$max" ] || max=$r
	sleep 0.2
done
wait_server 1
wait_pid "$CLIENT_PID" 5 || fail "client failed or did not finish"
compare cli srv --count 1 --expect-out "$SIZE"

check_alive "$SLUICED_PID" sluiced
hwm=$(hwm_kb "$SLUICED_PID")
[ "$hwm" -le "$max" ] || max=$hwm
log "sluiced RSS before ${pre} KiB, peak during transfer ${max} KiB (growth $((max - pre)) KiB, limit $GROWTH_LIMIT_KB KiB)"
[ $((max - pre)) -le "$GROWTH_LIMIT_KB" ] ||
	fail_memory "sluiced RSS grew by $((max - pre)) KiB behind a slow server (limit $GROWTH_LIMIT_KB KiB)"
stop_sluiced
