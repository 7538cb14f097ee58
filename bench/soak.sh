#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Soak: sluiced under mixed load for minutes, with its filter killed and
# restarted again and again.
#
#   bench/soak.sh BUILD [MINUTES]
#
# BUILD is the meson build directory holding sluiced and sluice-passthrough;
# MINUTES (default 10) is how long new transfers are started. Not part of
# `make check`.
#
# sluiced --listen relays to a tests/tools/peer.py server on loopback, with
# --filter-grace-seconds 5 and sluice-passthrough (--name soak) connected.
# WORKERS clients (default 4) run transfers back to back, one connection
# each: the client sends a random size from 1 KiB to 50 MiB (half of them
# uniform, half log-uniform, so small and large both occur) while the server
# sends its own random size from 1 KiB to 50 MiB (uniform), both at once; so
# some transfers are mostly uploads, some mostly downloads. RESET_PERCENT of
# them (default 10) are reset by the client part-way through its upload
# (peer.py --rst-after). Every RESTART_EVERY seconds (default 30) the filter
# is killed with SIGKILL and started again under the same name: the flows it
# had wait for it and are taken back (the daemon logs "takes back N flows").
#
# The run is bounded in time (MINUTES, then the transfers under way finish)
# and in count (MAX_TRANSFERS, default 50000). At the end:
# - every transfer that was not reset is checked: what each side sent
#   (length and sha256) is what the other received, as multisets over all
#   connections, and no such transfer may have failed;
# - resets are counted, and each must show on the server as an error;
# - every flow the daemon opened was logged closed or reset, and its
#   descriptors are back to where they were before the load;
# - the daemon's RSS is printed after a WARMUP-second warm-up (default 60),
#   at the end of the load, and once the last flow is gone, with its peak
#   (VmHWM); the run fails if the RSS at the end, once the last flow is
#   gone, is more than 10% above the warm-up RSS.
# A summary line gives transfers, bytes, resets, filter restarts and RSS.
#
# Environment: WORKERS, RESET_PERCENT, RESTART_EVERY, WARMUP, MAX_TRANSFERS,
# KEEP=1 (keep the temporary directory with every log and JSON record).
# Everything runs on 127.0.0.1 with ports the kernel hands out; every
# process started here is stopped on exit. Run it under `nice` on a shared
# machine: it keeps both ends and the daemon busy for the whole run.
set -euo pipefail

usage()
{
	echo "usage: $0 BUILD [MINUTES]" >&2
	exit 2
}

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	usage
fi
build=$1
minutes=${2:-10}
case $minutes in '' | *[!0-9]*) usage ;; esac
[ "$minutes" -ge 1 ] || usage
sluiced=$build/sluiced
passthrough=$build/sluice-passthrough
top=$(cd "$(dirname "$0")/.." && pwd)
peer=$top/tests/tools/peer.py
workers=${WORKERS:-4}
reset_percent=${RESET_PERCENT:-10}
restart_every=${RESTART_EVERY:-30}
warmup=${WARMUP:-60}
max_transfers=${MAX_TRANSFERS:-50000}
grace=5
duration=$((minutes * 60))

for tool in python3 ss setsid timeout awk; do
	if ! command -v "$tool" >/dev/null; then
		echo "soak: $tool is missing" >&2
		exit 1
	fi
done
for bin in "$sluiced" "$passthrough"; do
	if [ ! -x "$bin" ]; then
		echo "soak: $bin not found; build first (meson setup $build && ninja -C $build)" >&2
		exit 1
	fi
done

tmp=$(mktemp -d /tmp/sluice-soak.XXXXXX)
groups=() # process groups to stop on exit

cleanup()
{
	local rc=$? g

	trap - EXIT INT TERM
	for g in "${groups[@]}"; do
		kill -TERM -- "-$g" 2>/dev/null || true
	done
	for g in "${groups[@]}"; do
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 -- "-$g" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL -- "-$g" 2>/dev/null || true
		wait "$g" 2>/dev/null || true
	done
	if [ "${KEEP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
		echo "soak: logs kept in $tmp" >&2
	else
		rm -rf "$tmp"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

die()
{
	echo "soak: FAIL: $*" >&2
	exit 1
}

# start NAME CMD...: CMD in its own session (so its own process group),
# output in $tmp/NAME.log. Sets started.
start()
{
	local name=$1
	shift
	setsid "$@" >"$tmp/$name.log" 2>&1 </dev/null &
	started=$!
	groups+=("$started")
}

free_port()
{
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_listen()
{
	local port=$1 what=$2 pid=$3

	for _ in $(seq 100); do
		if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || die "$what exited at start: $(tail -n 5 "$tmp/$what.log")"
		sleep 0.1
	done
	die "$what does not listen on 127.0.0.1:$port"
}

rss_kb()
{
	awk -v k="${2:-VmRSS}:" '$1 == k { print $2 }' "/proc/$1/status"
}

fd_count()
{
	find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l
}

mib()
{
	awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'
}

up_port=$(free_port)
listen_port=$(free_port)
sock=$tmp/filter.sock

start server python3 "$peer" server --listen "127.0.0.1:$up_port" --send 1K-50M --io-timeout 60
server_pid=$started
wait_listen "$up_port" server "$server_pid"
start sluiced "$sluiced" --listen "127.0.0.1:$listen_port" --upstream "127.0.0.1:$up_port" \
	--filter-socket "$sock" --filter-grace-seconds "$grace" --on-filter-failure open
sluiced_pid=$started
wait_listen "$listen_port" sluiced "$sluiced_pid"

filter_n=0
filter_pid=
# Starts sluice-passthrough (always named "soak") and waits until it is
# connected.
start_filter()
{
	filter_n=$((filter_n + 1))
	start "filter-$filter_n" "$passthrough" --socket "$sock" --name soak
	filter_pid=$started
	for _ in $(seq 100); do
		grep -q 'connected to' "$tmp/filter-$filter_n.log" 2>/dev/null && return 0
		kill -0 "$filter_pid" 2>/dev/null || die "filter $filter_n exited at start"
		sleep 0.1
	done
	die "filter $filter_n did not connect"
}

for _ in $(seq 100); do
	[ -S "$sock" ] && break
	sleep 0.1
done
start_filter
sleep 0.5
fd0=$(fd_count "$sluiced_pid")

# One worker: transfers back to back until the stop file exists or its
# share of MAX_TRANSFERS is done. Each client's JSON record goes to
# worker-N.jsonl; a client that fails to run at all leaves a line in
# worker-N.failed.
worker()
{
	local n=$1 count=0 size rst args rc
	local out=$tmp/worker-$n.jsonl share=$(((max_transfers + workers - 1) / workers))

	while [ ! -e "$tmp/stop" ] && [ "$count" -lt "$share" ]; do
		count=$((count + 1))
		size=$(awk -v s="$RANDOM$RANDOM" 'BEGIN {
			srand(s); lo = 1024; hi = 50 * 1048576
			if (rand() < 0.5) printf "%d", lo + rand() * (hi - lo)
			else printf "%d", exp(log(lo) + rand() * (log(hi) - log(lo))) }')
		args=(--send "$size")
		if [ $((RANDOM % 100)) -lt "$reset_percent" ]; then
			rst=$(awk -v s="$RANDOM$RANDOM" -v n="$size" 'BEGIN { srand(s); printf "%d", rand() * n }')
			args+=(--rst-after "$rst")
		fi
		rc=0
		timeout -k 5 300 python3 "$peer" client --connect "127.0.0.1:$listen_port" \
			--io-timeout 60 "${args[@]}" >>"$out" 2>>"$tmp/worker-$n.err" || rc=$?
		[ "$rc" -eq 0 ] || echo "transfer $count (${args[*]}): exit $rc" >>"$tmp/worker-$n.failed"
	done
}

echo "soak: $minutes min, $workers workers, reset ${reset_percent}%, filter restart every ${restart_every} s" \
	"(grace ${grace} s), sluiced pid $sluiced_pid, logs in $tmp"
rss_start=$(rss_kb "$sluiced_pid")
t0=$SECONDS
worker_pids=()
for w in $(seq "$workers"); do
	start "worker-$w" bash -c "$(declare -f worker); tmp='$tmp' workers=$workers \
max_transfers=$max_transfers reset_percent=$reset_percent peer='$peer' \
listen_port=$listen_port worker $w"
	worker_pids+=("$started")
done

restarts=0
rss_warm=
next_restart=$((t0 + restart_every))
transfers_done()
{
	cat "$tmp"/worker-*.jsonl 2>/dev/null | wc -l || true
}
while [ $((SECONDS - t0)) -lt "$duration" ]; do
	kill -0 "$sluiced_pid" 2>/dev/null || die "sluiced exited: $(tail -n 5 "$tmp/sluiced.log")"
	rss=$(rss_kb "$sluiced_pid")
	echo "$((SECONDS - t0)) $rss" >>"$tmp/rss.log"
	if [ -z "$rss_warm" ] && [ $((SECONDS - t0)) -ge "$warmup" ]; then
		rss_warm=$rss
		echo "soak: RSS after the ${warmup} s warm-up: $rss KiB ($(transfers_done) transfers so far)"
	fi
	if [ "$SECONDS" -ge "$next_restart" ]; then
		kill -KILL "$filter_pid" 2>/dev/null || true
		wait "$filter_pid" 2>/dev/null || true
		start_filter
		restarts=$((restarts + 1))
		next_restart=$((SECONDS + restart_every))
	fi
	[ "$(transfers_done)" -lt "$max_transfers" ] || break
	sleep 1
done
elapsed=$((SECONDS - t0))
[ -n "$rss_warm" ] || rss_warm=$(rss_kb "$sluiced_pid")
rss_load_end=$(rss_kb "$sluiced_pid")
touch "$tmp/stop"
echo "soak: load stopped after $elapsed s ($(transfers_done) transfers); the transfers under way finish"
end=$((SECONDS + 330))
for pid in "${worker_pids[@]}"; do
	while kill -0 "$pid" 2>/dev/null; do
		[ "$SECONDS" -lt "$end" ] || die "workers still running 330 s after the load stopped"
		kill -0 "$sluiced_pid" 2>/dev/null || die "sluiced exited: $(tail -n 5 "$tmp/sluiced.log")"
		sleep 1
	done
	wait "$pid" 2>/dev/null || true
done

# Every flow opened must end (closed, or reset), and with it its sockets.
log=$tmp/sluiced.log
end=$((SECONDS + 30))
while :; do
	opened=$(grep -cF ': open: ' "$log" || true)
	closed=$(grep -cF ': closed: ' "$log" || true)
	reset=$(grep -cF ': reset: ' "$log" || true)
	[ $((opened - closed - reset)) -gt 0 ] || break
	[ "$SECONDS" -lt "$end" ] ||
		die "$((opened - closed - reset)) flows still open 30 s after the last transfer ($opened opened, $closed closed, $reset reset)"
	sleep 1
done
end=$((SECONDS + 10))
while [ "$(fd_count "$sluiced_pid")" -ne "$fd0" ]; do
	[ "$SECONDS" -lt "$end" ] ||
		die "sluiced has $(fd_count "$sluiced_pid") descriptors open with no flow, $fd0 before the load"
	sleep 0.5
done
sleep 2
rss_end=$(rss_kb "$sluiced_pid")
rss_peak=$(rss_kb "$sluiced_pid" VmHWM)
kill -0 "$sluiced_pid" 2>/dev/null || die "sluiced exited"
# The server's records are complete once its connections are over, which
# they are: every flow has ended.
kill -TERM -- "-$server_pid" 2>/dev/null || true
wait "$server_pid" 2>/dev/null || true

taken=$(grep -cF 'takes back' "$log" || true)
taken_flows=$(sed -n 's/.*takes back \([0-9]*\) flows.*/\1/p' "$log" | awk '{ n += $1 } END { print n + 0 }')
gone=$(grep -cF 'did not come back' "$log" || true)
failed_runs=$(cat "$tmp"/worker-*.failed 2>/dev/null | wc -l || true)

# Integrity, per direction, as multisets of (length, sha256).
verdict=$(python3 - "$tmp" <<'EOF'
import collections, glob, json, sys
tmp = sys.argv[1]
cl = []
for p in sorted(glob.glob(tmp + "/worker-*.jsonl")):
    cl += [json.loads(l) for l in open(p) if l.strip()]
sv = [json.loads(l) for l in open(tmp + "/server.log") if l.startswith("{")]
resets = [r for r in cl if "rst_at" in r]
done = [r for r in cl if "rst_at" not in r]
err_keys = ("connect_error", "send_error", "recv_error")
bad = [r for r in done if any(r.get(k) for k in err_keys)]
sv_err = [r for r in sv if any(r.get(k) for k in err_keys)]
sv_ok = [r for r in sv if not any(r.get(k) for k in err_keys)]
problems = []
for r in bad[:5]:
    problems.append("client failed: sent %d recv %d %s" % (
        r["sent"], r["recv"], {k: r[k] for k in err_keys if r.get(k)}))
if bad:
    problems.append("%d transfers that were not reset failed" % len(bad))
for what, src, dst in (("client->server", done, sv_ok), ("server->client", sv_ok, done)):
    a = collections.Counter((r["sent"], r["sent_sha256"]) for r in src)
    b = collections.Counter((r["recv"], r["recv_sha256"]) for r in dst)
    if a != b:
        problems.append("%s: %d streams sent were not received intact, %d received were not sent"
                        % (what, sum((a - b).values()), sum((b - a).values())))
if len(sv_err) != len(resets):
    problems.append("%d server connections ended in an error, %d transfers were reset"
                    % (len(sv_err), len(resets)))
print("%d %d %d %d %d %d" % (
    len(cl), len(done), len(resets), sum(r["sent"] for r in done),
    sum(r["recv"] for r in done), sum(r["sent"] for r in resets)))
for p in problems:
    print("problem: " + p)
EOF
)
echo "$verdict" | sed -n 's/^problem: /soak: /p' >&2
read -r transfers completed resets out_bytes in_bytes reset_bytes <<<"$(echo "$verdict" | head -n 1)"

gib()
{
	awk -v b="$1" 'BEGIN { printf "%.1f", b / 1073741824 }'
}
growth=$(awk -v a="$rss_warm" -v b="$rss_end" 'BEGIN { printf "%+.1f", (b - a) * 100 / a }')
echo "soak: RSS (samples once a second in rss.log): start $rss_start KiB, after the ${warmup} s warm-up" \
	"$rss_warm KiB, at the end of the load $rss_load_end KiB, at the end (no flow open) $rss_end KiB," \
	"peak $rss_peak KiB"
echo "soak: filter restarts: $restarts; returns that took flows back: $taken ($taken_flows flows);" \
	"grace ran out: $gone; client runs that did not finish: $failed_runs"
echo "soak: summary: $elapsed s of load, $transfers transfers ($completed completed, each checked by" \
	"sha256; $resets reset by the client), $(gib $((out_bytes + in_bytes + reset_bytes))) GiB (out $(gib "$out_bytes")," \
	"in $(gib "$in_bytes"), sent before resets $(gib "$reset_bytes")), $restarts filter restarts, flows" \
	"$opened opened / $closed closed / $reset reset, RSS warm-up $(mib "$rss_warm") MiB," \
	"end $(mib "$rss_end") MiB ($growth%)"

status=0
if echo "$verdict" | grep -q '^problem: '; then
	status=1
fi
if [ "$failed_runs" -gt 0 ]; then
	echo "soak: client runs that did not finish:" >&2
	cat "$tmp"/worker-*.failed | head -n 5 >&2
	status=1
fi
if [ "$rss_end" -gt $((rss_warm + rss_warm / 10)) ]; then
	echo "soak: RSS at the end, $rss_end KiB, is more than 10% above the warm-up RSS, $rss_warm KiB" >&2
	status=1
fi
if [ "$status" -ne 0 ]; then
	echo "soak: FAIL"
	exit 1
fi
echo "soak: PASS"
