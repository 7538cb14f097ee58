#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 600
#
# 1 GiB each way at once through sluice-passthrough (replace mode): both
# sha256 sums match, and the daemon's peak RSS (VmHWM) stays below 32 MiB,
# i.e. memory does not grow with the size of the transfer.
. "$(dirname "$0")/lib.sh"

SIZE=1G
HWM_LIMIT_KB=$((32 * 1024))

UP=$(addr 127.0.0.1 "$(free_port)")
LISTEN=$(addr 127.0.0.1 "$(free_port)")
start_server srv "$UP" --count 1 --send "$SIZE"
start_sluiced "$LISTEN" "$UP"
start_filter
run_client cli 500 "$LISTEN" --send "$SIZE"
wait_server 30
compare cli srv --count 1 --expect-out "$SIZE" --expect-in "$SIZE"

check_alive "$SLUICED_PID" sluiced
hwm=$(hwm_kb "$SLUICED_PID")
log "sluiced VmHWM ${hwm} KiB (limit ${HWM_LIMIT_KB} KiB), VmRSS $(rss_kb "$SLUICED_PID") KiB"
[ "$hwm" -lt "$HWM_LIMIT_KB" ] || fail_memory "sluiced peak RSS ${hwm} KiB is not below ${HWM_LIMIT_KB} KiB"
stop_sluiced
