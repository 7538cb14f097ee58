#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Loopback throughput of sluiced against the relays it competes with.
#
#   bench/throughput.sh BUILD
#
# BUILD is the meson build directory holding sluiced and sluice-passthrough.
# One iperf3 stream (client to server) is measured through each path: iperf3
# alone, socat, HAProxy in tcp mode without and with splice, sluiced with no
# filter, and sluiced with sluice-passthrough in both of its modes. The paths
# are measured RUNS times, interleaved, so that a slow minute of the machine
# does not land on one path only; the median of the runs is reported, with
# its ratio to the direct iperf3 figure.
#
# Environment: DURATION (seconds per iperf3 run, default 5), RUNS (default 3),
# WINDOW (passed to sluiced as --window when set), KEEP=1 (keep the temporary
# directory with every log and JSON result).
#
# Everything listens on 127.0.0.1 on ports the kernel hands out; every process
# started here is stopped on exit.
set -euo pipefail

usage()
{
	echo "usage: $0 BUILD" >&2
	exit 2
}

[ $# -eq 1 ] || usage
build=$1
sluiced=$build/sluiced
passthrough=$build/sluice-passthrough
duration=${DURATION:-5}
runs=${RUNS:-3}

for tool in iperf3 socat haproxy python3 ss; do
	if ! command -v "$tool" >/dev/null; then
		echo "bench: $tool is missing (scripts/deps.sh installs it)" >&2
		exit 1
	fi
done
for bin in "$sluiced" "$passthrough"; do
	if [ ! -x "$bin" ]; then
		echo "bench: $bin not found; build first (meson setup $build && ninja -C $build)" >&2
		exit 1
	fi
done

tmp=$(mktemp -d /tmp/sluice-bench.XXXXXX)
pids=()

cleanup()
{
	local pid

	trap - EXIT INT TERM
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		# Give each process a moment to exit on SIGTERM before forcing it.
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [ "${KEEP:-0}" = 1 ]; then
		echo "bench: logs kept in $tmp" >&2
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Asks the kernel for n free loopback ports at once. All sockets are held
# until every port is known, so the ports are distinct; another program may
# still take one before we bind it, which the listener checks below catch.
free_ports()
{
	python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# Waits until something listens on 127.0.0.1:port. A test connection would
# reach the iperf3 server behind a relay and disturb it, so this asks ss.
wait_listen()
{
	local port=$1 what=$2 pid=$3

	for _ in $(seq 100); do
		if [ -n "$(ss -Hltn "sport = :$port" 2>/dev/null)" ]; then
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "bench: $what exited at start; its log:" >&2
			sed 's/^/  /' "$tmp/$what.log" >&2 || true
			exit 1
		fi
		sleep 0.1
	done
	echo "bench: $what does not listen on 127.0.0.1:$port" >&2
	exit 1
}

# Waits until a filter has printed that it is attached.
wait_attached()
{
	local what=$1 pid=$2

	for _ in $(seq 100); do
		if grep -q 'connected to' "$tmp/$what.log" 2>/dev/null; then
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "bench: $what exited at start; its log:" >&2
			sed 's/^/  /' "$tmp/$what.log" >&2 || true
			exit 1
		fi
		sleep 0.1
	done
	echo "bench: $what did not attach to its daemon" >&2
	exit 1
}

# Waits until a Unix socket exists at path.
wait_socket()
{
	local path=$1 what=$2 pid=$3

	for _ in $(seq 100); do
		[ -S "$path" ] && return 0
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "bench: $what exited at start; its log:" >&2
			sed 's/^/  /' "$tmp/$what.log" >&2 || true
			exit 1
		fi
		sleep 0.1
	done
	echo "bench: $what did not create $path" >&2
	exit 1
}

# start NAME COMMAND...: runs a command in the background, logging to
# $tmp/NAME.log, and remembers its pid in $last_pid.
start()
{
	local name=$1

	shift
	"$@" >"$tmp/$name.log" 2>&1 &
	last_pid=$!
	pids+=("$last_pid")
}

read -r p_server p_socat p_ha p_ha_splice p_bare p_replace p_pass <<<"$(free_ports 7)"

window_args=()
[ -n "${WINDOW:-}" ] && window_args=(--window "$WINDOW")

start iperf3-server iperf3 -s -B 127.0.0.1 -p "$p_server"
wait_listen "$p_server" iperf3-server "$last_pid"

start socat socat "TCP-LISTEN:$p_socat,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$p_server"
wait_listen "$p_socat" socat "$last_pid"

# HAProxy: the same tcp proxy twice, once never splicing (the global
# nosplice, plus the options spelled out) and once splicing both ways.
haproxy_cfg()
{
	local port=$1 splice=$2

	cat <<EOF
global
	maxconn 64
$([ "$splice" = no ] && printf '\tnosplice')

defaults
	mode tcp
	timeout connect 5s
	timeout client 60s
	timeout server 60s
$(if [ "$splice" = no ]; then
	printf '\tno option splice-auto\n\tno option splice-request\n\tno option splice-response'
else
	printf '\toption splice-request\n\toption splice-response'
fi)

frontend bench
	bind 127.0.0.1:$port
	default_backend iperf3

backend iperf3
	server s1 127.0.0.1:$p_server
EOF
}
haproxy_cfg "$p_ha" no >"$tmp/haproxy.cfg"
haproxy_cfg "$p_ha_splice" yes >"$tmp/haproxy-splice.cfg"
for cfg in haproxy haproxy-splice; do
	if ! haproxy -c -q -f "$tmp/$cfg.cfg" >"$tmp/$cfg.check" 2>&1; then
		echo "bench: $cfg.cfg is not valid:" >&2
		sed 's/^/  /' "$tmp/$cfg.check" >&2
		exit 1
	fi
done
start haproxy haproxy -db -f "$tmp/haproxy.cfg"
wait_listen "$p_ha" haproxy "$last_pid"
start haproxy-splice haproxy -db -f "$tmp/haproxy-splice.cfg"
wait_listen "$p_ha_splice" haproxy-splice "$last_pid"

# sluiced without a filter: every flow passes unchanged (fail-open).
start sluiced-bare "$sluiced" --listen "127.0.0.1:$p_bare" --upstream "127.0.0.1:$p_server" \
	--filter-socket "$tmp/bare.sock" "${window_args[@]}"
wait_listen "$p_bare" sluiced-bare "$last_pid"

# sluiced + sluice-passthrough: each chunk makes a round trip through the
# filter (replace by identical bytes), or is passed by a verdict (--pass).
for mode in replace pass; do
	if [ "$mode" = replace ]; then port=$p_replace; flag=(); else port=$p_pass; flag=(--pass); fi
	start "sluiced-$mode" "$sluiced" --listen "127.0.0.1:$port" --upstream "127.0.0.1:$p_server" \
		--filter-socket "$tmp/$mode.sock" "${window_args[@]}"
	daemon_pid=$last_pid
	wait_listen "$port" "sluiced-$mode" "$daemon_pid"
	wait_socket "$tmp/$mode.sock" "sluiced-$mode" "$daemon_pid"
	start "passthrough-$mode" "$passthrough" --socket "$tmp/$mode.sock" "${flag[@]}"
	wait_attached "passthrough-$mode" "$last_pid"
done

# The table, in this order. Each entry: key|label|port.
paths=(
	"raw|iperf3 direct|$p_server"
	"socat|socat relay|$p_socat"
	"haproxy|haproxy tcp, no splice|$p_ha"
	"haproxy-splice|haproxy tcp, splice|$p_ha_splice"
	"sluiced-bare|sluiced, no filter|$p_bare"
	"sluiced-replace|sluiced + passthrough (replace)|$p_replace"
	"sluiced-pass|sluiced + passthrough --pass|$p_pass"
)

# One iperf3 run through port; the JSON goes to file. Returns iperf3's status.
measure()
{
	local port=$1 file=$2

	timeout $((duration + 30)) iperf3 -c 127.0.0.1 -p "$port" -t "$duration" -J \
		>"$file" 2>"$file.err"
}

# Other work on the machine skews every figure; the load average says how much.
echo "bench: ${#paths[@]} paths x $runs runs x ${duration}s, one stream, 127.0.0.1" \
	"($(nproc) CPUs, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
mkdir "$tmp/results"
for run in $(seq "$runs"); do
	for entry in "${paths[@]}"; do
		IFS='|' read -r key label port <<<"$entry"
		echo "bench: run $run/$runs: $label" >&2
		if ! measure "$port" "$tmp/results/$key.$run.json"; then
			echo "bench: run $run of '$label' failed; iperf3 said:" >&2
			python3 -c 'import json,sys
try: print(json.load(open(sys.argv[1])).get("error", "(no error text)"))
except Exception: print(open(sys.argv[1]).read()[:400])' "$tmp/results/$key.$run.json" |
				sed 's/^/  /' >&2 || true
		fi
		# The server takes a moment to accept the next test.
		sleep 0.5
	done
done

# Medians and the table; a path with a failed run shows what it could.
keys=() labels=()
for entry in "${paths[@]}"; do
	IFS='|' read -r key label _ <<<"$entry"
	keys+=("$key")
	labels+=("$label")
done
python3 - "$tmp/results" "$runs" "${#keys[@]}" "${keys[@]}" "${labels[@]}" <<'EOF'
import json, os, statistics, sys

results, runs, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
keys, labels = sys.argv[4:4 + n], sys.argv[4 + n:4 + 2 * n]

def gbits(path):
    try:
        with open(path) as f:
            doc = json.load(f)
        if "error" in doc:
            return None
        return doc["end"]["sum_received"]["bits_per_second"] / 1e9
    except (OSError, ValueError, KeyError, TypeError):
        return None

rows, failed = [], False
for key, label in zip(keys, labels):
    got = [gbits(os.path.join(results, f"{key}.{r}.json")) for r in range(1, runs + 1)]
    ok = [g for g in got if g is not None]
    failed |= len(ok) < runs
    rows.append((label, statistics.median(ok) if ok else None, got))

raw = rows[0][1]
width = max(len(r[0]) for r in rows)
print(f"{'path':<{width}}  {'Gbit/s':>7}  {'ratio':>6}  runs (Gbit/s)")
for label, med, got in rows:
    runs_text = " ".join("fail" if g is None else f"{g:.2f}" for g in got)
    if med is None:
        print(f"{label:<{width}}  {'-':>7}  {'-':>6}  {runs_text}")
        continue
    ratio = f"{med / raw:.3f}" if raw else "-"
    print(f"{label:<{width}}  {med:7.2f}  {ratio:>6}  {runs_text}")
sys.exit(1 if failed else 0)
EOF
