#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The performance of sluiced, in one run, against what it is compared with.
#
#   bench/bench.sh BUILD
#
# BUILD is the meson build directory holding sluiced and sluice-passthrough;
# nothing is built here but bench/pingpong.c, compiled with cc into the
# temporary directory. Five measurements (bench/README.md says what each
# one is and how to read it):
#
#   throughput    one iperf3 stream through raw loopback, socat, HAProxy
#                 without and with splice, sluiced without a filter, and
#                 sluiced with sluice-passthrough in each of its modes
#   latency       1-byte ping-pong, direct, through HAProxy and through
#                 sluiced in each mode: p50, p99
#   connrate      new connections per second in a pair of network
#                 namespaces, direct and through sluiced --intercept (and,
#                 for reference, sluiced --listen and HAProxy)
#   memory        daemon RSS per idle flow, over IDLE_FLOWS flows
#   instructions  sluiced's user-space instructions per byte (callgrind)
#
# Each is measured RUNS times, the paths of a measurement interleaved (all
# paths once, then all again; latency in finer blocks), so that a slow
# moment of the machine does not fall on one path only; the table gives the
# median of the runs, its ratio to (or difference from) the direct figure,
# and every run.
#
# Environment: DURATION (seconds per iperf3 run, default 5), RUNS (default
# 3), WINDOW (sluiced's --window), WORKERS (its --workers; default: one per
# core), RTT_COUNT (round trips per latency run,
# 20000) and RTT_BLOCKS (10), CONN_SECONDS (5) and CONN_THREADS (64) for
# the connection rate,
# IDLE_FLOWS (2000), CG_BYTES (bytes through callgrind's sluiced, 256 MiB),
# ONLY (a comma-separated subset of throughput,latency,connrate,memory,
# instructions), KEEP=1 (keep the temporary directory with every log).
#
# Everything runs on 127.0.0.1 on ports the kernel hands out, or in two
# network namespaces made here (connrate, as root); every process started
# here is stopped and every namespace removed when the script exits.
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
rtt_count=${RTT_COUNT:-20000}
conn_seconds=${CONN_SECONDS:-5}
conn_threads=${CONN_THREADS:-64}
idle_flows=${IDLE_FLOWS:-2000}
cg_bytes=${CG_BYTES:-268435456}
only=${ONLY:-throughput,latency,connrate,memory,instructions}
here=$(cd "$(dirname "$0")" && pwd)

want()
{
	[[ ",$only," == *",$1,"* ]]
}

for tool in iperf3 socat haproxy python3 ss cc; do
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
if ! "$passthrough" --help | grep -q -- --pass-rest; then
	echo "bench: $passthrough has no --pass-rest; rebuild $build" >&2
	exit 1
fi

tmp=$(mktemp -d /tmp/sluice-bench.XXXXXX)
pids=()
namespaces=()
skipped=()

# stop_pid PID: SIGTERM, a second to exit, then SIGKILL; forgets the pid.
stop_pid()
{
	local pid=$1 i keep=()

	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 20); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	for i in "${pids[@]}"; do
		[ "$i" = "$pid" ] || keep+=("$i")
	done
	pids=("${keep[@]}")
}

cleanup()
{
	local pid ns

	trap - EXIT INT TERM
	exec 9>&- 2>/dev/null || true
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		for _ in $(seq 20); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	# Whatever is still in our namespaces was started there by us.
	for ns in "${namespaces[@]}"; do
		pid=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
		# shellcheck disable=SC2086
		[ -z "$pid" ] || kill -KILL $pid 2>/dev/null || true
		ip netns del "$ns" 2>/dev/null || true
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

say()
{
	echo "bench: $*" >&2
}

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

# died WHAT PID: true (after printing its log) when the process has exited.
died()
{
	if kill -0 "$2" 2>/dev/null; then
		return 1
	fi
	say "$1 exited; its log:"
	sed 's/^/  /' "$tmp/$1.log" >&2 || true
}

# wait_listen PORT WHAT PID [NS]: until something listens on the port (in
# NS when given). A test connection would reach the server behind a relay
# and disturb it, so this asks ss. 30 s: valgrind starts slowly.
wait_listen()
{
	local port=$1 what=$2 pid=$3 ns=${4:-} in_ns=()

	[ -z "$ns" ] || in_ns=(ip netns exec "$ns")
	for _ in $(seq 300); do
		[ -n "$("${in_ns[@]}" ss -Hltn "sport = :$port" 2>/dev/null)" ] && return 0
		died "$what" "$pid" && exit 1
		sleep 0.1
	done
	say "$what does not listen on port $port"
	exit 1
}

# wait_log WHAT PID REGEX: until $tmp/WHAT.log matches (30 s).
wait_log()
{
	local what=$1 pid=$2 re=$3

	for _ in $(seq 300); do
		grep -qE -- "$re" "$tmp/$what.log" 2>/dev/null && return 0
		died "$what" "$pid" && exit 1
		sleep 0.1
	done
	say "$what did not log /$re/ in 30 s; its log:"
	tail -n 5 "$tmp/$what.log" | sed 's/^/  /' >&2
	exit 1
}

# start_server NAME echo|sink: bench/pingpong's server on a loopback port
# the kernel chooses, which it sets in $server_port.
start_server()
{
	start "$1" "$pp" serve 127.0.0.1 0 "$2"
	wait_log "$1" "$last_pid" '^listening [0-9]+$'
	server_port=$(awk '/^listening/ { print $2 }' "$tmp/$1.log")
}

# start NAME COMMAND...: runs a command in the background, logging to
# $tmp/NAME.log, and remembers its pid in $last_pid.
start()
{
	local name=$1

	shift
	"$@" >"$tmp/$name.log" 2>&1 </dev/null &
	last_pid=$!
	pids+=("$last_pid")
}

window_args=()
[ -n "${WINDOW:-}" ] && window_args=(--window "$WINDOW")
[ -n "${WORKERS:-}" ] && window_args+=(--workers "$WORKERS")

# start_filter NAME DAEMON_PID [PASSTHROUGH_ARGS...]: sluice-passthrough on
# $tmp/NAME.sock, as $tmp/NAME-filter.log; waits until the daemon says it is
# ready, and checks that the channel is the one asked for (shared memory
# unless --no-shm). Sets filter_pid. NS_EXEC (an array) runs it elsewhere.
start_filter()
{
	local name=$1 dpid=$2 shm=yes arg

	shift 2
	for arg in "$@"; do
		[ "$arg" != --no-shm ] || shm=no
	done
	for _ in $(seq 300); do
		[ -S "$tmp/$name.sock" ] && break
		died "$name" "$dpid" && exit 1
		sleep 0.1
	done
	start "$name-filter" "${NS_EXEC[@]}" "$passthrough" --socket "$tmp/$name.sock" "$@"
	filter_pid=$last_pid
	wait_log "$name-filter" "$filter_pid" 'connected to'
	wait_log "$name" "$dpid" 'filter 1 .* ready'
	if grep -q 'filter 1 .* ready.*shared memory' "$tmp/$name.log"; then
		[ "$shm" = yes ] || { say "$name: the filter uses shared memory despite --no-shm"; exit 1; }
	else
		[ "$shm" = no ] || { say "$name: the filter does not use shared memory"; exit 1; }
	fi
}
NS_EXEC=()

# start_sluiced NAME PORT UPSTREAM none|[PASSTHROUGH_ARGS...]: sluiced
# --listen 127.0.0.1:PORT, with sluice-passthrough unless "none". Sets
# daemon_pid and filter_pid. SLUICED_PREFIX (an array) runs sluiced under
# another program (valgrind).
start_sluiced()
{
	local name=$1 port=$2 upstream=$3

	shift 3
	start "$name" "${SLUICED_PREFIX[@]}" "$sluiced" --listen "127.0.0.1:$port" --upstream "$upstream" \
		--filter-socket "$tmp/$name.sock" --control "$tmp/$name.ctl" "${window_args[@]}" \
		"${SLUICED_EXTRA[@]}"
	daemon_pid=$last_pid
	filter_pid=
	wait_listen "$port" "$name" "$daemon_pid"
	[ "${1:-}" = none ] || start_filter "$name" "$daemon_pid" "$@"
}
SLUICED_PREFIX=()
SLUICED_EXTRA=() # more options for the sluiced started next

# start_haproxy NAME BIND SPLICE UPSTREAM: HAProxy in tcp mode from BIND
# (ADDR:PORT) to UPSTREAM, splicing both ways when SPLICE is yes, never
# otherwise (the global nosplice, and the options spelled out). Its
# configuration is $tmp/NAME.cfg. NS_EXEC runs it in a namespace.
start_haproxy()
{
	local name=$1 bind=$2 splice=$3 upstream=$4 opts ns=()

	if [ "$splice" = yes ]; then
		opts=$'\toption splice-request\n\toption splice-response'
	else
		opts=$'\tno option splice-auto\n\tno option splice-request\n\tno option splice-response'
	fi
	cat >"$tmp/$name.cfg" <<EOF
global
	maxconn 4000
$([ "$splice" = yes ] || printf '\tnosplice')

defaults
	mode tcp
	timeout connect 5s
	timeout client 60s
	timeout server 60s
$opts

frontend bench
	bind $bind
	default_backend upstream

backend upstream
	server s1 $upstream
EOF
	if ! haproxy -c -q -f "$tmp/$name.cfg" >"$tmp/$name.check" 2>&1; then
		say "$name.cfg is not valid:"
		sed 's/^/  /' "$tmp/$name.check" >&2
		exit 1
	fi
	start "$name" "${NS_EXEC[@]}" haproxy -db -f "$tmp/$name.cfg"
	[ "${#NS_EXEC[@]}" -eq 0 ] || ns=("${NS_EXEC[3]}")
	wait_listen "${bind##*:}" "$name" "$last_pid" "${ns[@]}"
}

# record KEY RUN VALUE...: one run's figures, or "fail".
mkdir "$tmp/results"
record()
{
	local key=$1 run=$2

	shift 2
	echo "$*" >"$tmp/results/$key.$run"
}

# The table is described in $tmp/spec, section by section, in the order
# measured: "section|NAME|TITLE" then "row|KEY|LABEL" lines.
spec()
{
	echo "$*" >>"$tmp/spec"
}

say "$(nproc) CPUs, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg); RUNS=$runs"

pp=$tmp/pingpong
cc -O2 -Wall -pthread -o "$pp" "$here/pingpong.c"

# ---------------------------------------------------------------- throughput

if want throughput; then
	read -r p_server p_socat p_ha p_ha_splice p_bare p_rest p_replace p_noshm p_pass <<<"$(free_ports 9)"

	start iperf3-server iperf3 -s -B 127.0.0.1 -p "$p_server"
	wait_listen "$p_server" iperf3-server "$last_pid"

	start socat socat "TCP-LISTEN:$p_socat,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$p_server"
	wait_listen "$p_socat" socat "$last_pid"

	# HAProxy: the same tcp proxy twice, once never splicing and once
	# splicing both ways.
	start_haproxy haproxy "127.0.0.1:$p_ha" no "127.0.0.1:$p_server"
	start_haproxy haproxy-splice "127.0.0.1:$p_ha_splice" yes "127.0.0.1:$p_server"

	up=127.0.0.1:$p_server
	start_sluiced tp-bare "$p_bare" "$up" none
	start_sluiced tp-rest "$p_rest" "$up" --pass-rest
	start_sluiced tp-replace "$p_replace" "$up"
	start_sluiced tp-noshm "$p_noshm" "$up" --no-shm
	start_sluiced tp-pass "$p_pass" "$up" --pass

	spec "section|throughput|throughput: Gbit/s, one iperf3 stream for ${duration} s, $runs runs; ratio of raw"
	paths=(
		"tp-raw|raw loopback (iperf3 direct)|$p_server"
		"tp-socat|socat|$p_socat"
		"tp-haproxy|haproxy tcp, no splice|$p_ha"
		"tp-haproxy-splice|haproxy tcp, splice|$p_ha_splice"
		"tp-bare|sluiced, no filter (splice)|$p_bare"
		"tp-rest|sluiced + passthrough --pass-rest|$p_rest"
		"tp-replace|sluiced + passthrough (replace, shm)|$p_replace"
		"tp-noshm|sluiced + passthrough --no-shm (replace, socket)|$p_noshm"
		"tp-pass|sluiced + passthrough --pass (shm)|$p_pass"
	)
	for entry in "${paths[@]}"; do
		IFS='|' read -r key label _ <<<"$entry"
		spec "row|$key|$label"
	done

	for run in $(seq "$runs"); do
		for entry in "${paths[@]}"; do
			IFS='|' read -r key label port <<<"$entry"
			say "throughput run $run/$runs: $label"
			out=$tmp/results/$key.$run.json
			if timeout $((duration + 30)) iperf3 -c 127.0.0.1 -p "$port" -t "$duration" -J \
				>"$out" 2>"$out.err" &&
				gbits=$(python3 -c 'import json, sys
print("%.2f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e9))' "$out" 2>/dev/null); then
				record "$key" "$run" "$gbits"
			else
				say "throughput run $run of '$label' failed: $(head -c 300 "$out" "$out.err" | tr '\n' ' ')"
				record "$key" "$run" fail
			fi
			# The server takes a moment to accept the next test.
			sleep 0.5
		done
	done
	for pid in "${pids[@]}"; do
		stop_pid "$pid"
	done
fi

# ------------------------------------------------------------------ latency

if want latency; then
	read -r p_ha p_bare p_rest p_replace p_noshm p_pass p_bp_replace p_bp_pass <<<"$(free_ports 8)"
	start_server echo echo
	p_echo=$server_port
	up=127.0.0.1:$p_echo
	start_haproxy lat-haproxy "127.0.0.1:$p_ha" no "$up"
	start_sluiced lat-bare "$p_bare" "$up" none
	start_sluiced lat-rest "$p_rest" "$up" --pass-rest
	start_sluiced lat-replace "$p_replace" "$up"
	start_sluiced lat-noshm "$p_noshm" "$up" --no-shm
	start_sluiced lat-pass "$p_pass" "$up" --pass
	# Workers that poll for 50 µs after each batch before they sleep. (Not
	# HAProxy's busy-polling, which never sleeps at all and would take the
	# CPUs from every other path of the run.)
	SLUICED_EXTRA=(--busy-poll 50)
	start_sluiced lat-bp-replace "$p_bp_replace" "$up"
	start_sluiced lat-bp-pass "$p_bp_pass" "$up" --pass
	SLUICED_EXTRA=()

	spec "section|latency|latency: 1-byte ping-pong, $rtt_count round trips per run in ${RTT_BLOCKS:-10} interleaved blocks, $runs runs; microseconds"
	paths=(
		"lat-direct|direct|$p_echo"
		"lat-haproxy|haproxy tcp, no splice (a relay, for reference)|$p_ha"
		"lat-bare|sluiced, no filter|$p_bare"
		"lat-rest|sluiced + passthrough --pass-rest|$p_rest"
		"lat-replace|sluiced + passthrough (replace, shm)|$p_replace"
		"lat-noshm|sluiced + passthrough --no-shm|$p_noshm"
		"lat-pass|sluiced + passthrough --pass (shm)|$p_pass"
		"lat-bp-replace|sluiced --busy-poll 50 + passthrough (replace, shm)|$p_bp_replace"
		"lat-bp-pass|sluiced --busy-poll 50 + passthrough --pass (shm)|$p_bp_pass"
	)
	for entry in "${paths[@]}"; do
		IFS='|' read -r key label _ <<<"$entry"
		spec "row|$key|$label"
	done
	# Each run is RTT_BLOCKS blocks in turn, every path's block a
	# connection of its own making rtt_count / RTT_BLOCKS round trips, so
	# that all paths share the same stretches of the machine's time;
	# a run's percentiles are those of all its blocks' round trips.
	blocks=${RTT_BLOCKS:-10}
	for run in $(seq "$runs"); do
		say "latency run $run/$runs: ${#paths[@]} paths, $blocks blocks of $((rtt_count / blocks)) round trips"
		for _ in $(seq "$blocks"); do
			for entry in "${paths[@]}"; do
				IFS='|' read -r key label port <<<"$entry"
				[ -e "$tmp/results/$key.$run.failed" ] && continue
				if ! timeout 300 "$pp" rtt 127.0.0.1 "$port" $((rtt_count / blocks)) \
					"$tmp/results/$key.$run.samples" >/dev/null 2>"$tmp/results/$key.$run.err"; then
					say "latency run $run of '$label' failed: $(head -c 300 "$tmp/results/$key.$run.err")"
					touch "$tmp/results/$key.$run.failed"
				fi
			done
		done
		for entry in "${paths[@]}"; do
			IFS='|' read -r key _ <<<"$entry"
			if [ -e "$tmp/results/$key.$run.failed" ]; then
				record "$key" "$run" fail
			else
				record "$key" "$run" "$(python3 -c 'import sys
t = sorted(float(x) for x in open(sys.argv[1]))
print("%.2f %.2f" % (t[(len(t) - 1) // 2], t[int((len(t) - 1) * 0.99)]))' "$tmp/results/$key.$run.samples")"
			fi
		done
	done
	for pid in "${pids[@]}"; do
		stop_pid "$pid"
	done
fi

# ------------------------------------------------- connections per second

if want connrate && [ "$(id -u)" -ne 0 ]; then
	skipped+=("connrate: network namespaces need root")
elif want connrate; then
	# Two namespaces joined by a veth pair, as tests/integration/netns.sh
	# makes them: client 10.79.1.1, server 10.79.1.2. Every interface is
	# made inside them; the host's network is not touched.
	ns_c=slbench-$$-c
	ns_s=slbench-$$-s
	for ns in "$ns_c" "$ns_s"; do
		ip netns add "$ns"
		namespaces+=("$ns")
		ip -n "$ns" link set lo up
	done
	ip -n "$ns_c" link add eth0 type veth peer name eth0 netns "$ns_s"
	ip -n "$ns_c" link set eth0 up
	ip -n "$ns_s" link set eth0 up
	ip -n "$ns_c" addr add 10.79.1.1/24 dev eth0
	ip -n "$ns_s" addr add 10.79.1.2/24 dev eth0
	# Tens of thousands of connections in a few seconds: the client (and
	# sluiced's upstream side) may take any port, and reuse one in
	# TIME-WAIT. These sysctls belong to the client's namespace.
	ip netns exec "$ns_c" sysctl -q -w net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1

	start conn-server ip netns exec "$ns_s" "$pp" serve 10.79.1.2 7000 echo
	wait_log conn-server "$last_pid" '^listening 7000$'

	# sluiced --listen in the client namespace, for the same connections
	# without intercept's nftables redirect and owner lookup.
	start conn-listen ip netns exec "$ns_c" "$sluiced" --listen 10.79.1.1:7001 --upstream 10.79.1.2:7000 \
		--filter-socket "$tmp/conn-listen.sock" --control "$tmp/conn-listen.ctl" "${window_args[@]}"
	wait_listen 7001 conn-listen "$last_pid" "$ns_c"
	NS_EXEC=(ip netns exec "$ns_c")
	start_filter conn-listen "$last_pid" --pass
	NS_EXEC=()

	# HAProxy in tcp mode in the client namespace: what a relay that
	# looks at nothing costs per connection on this machine.
	NS_EXEC=(ip netns exec "$ns_c")
	start_haproxy conn-haproxy 10.79.1.1:7002 no 10.79.1.2:7000

	# The same HAProxy behind an nftables redirect like intercept's: the
	# client's connections to 10.79.1.2:7000 go to 127.0.0.1:7003, with
	# NAT and connection tracking on the way, as through sluiced
	# --intercept. Its own connections go to a second server port (7009),
	# which the rule leaves alone. The table is there only while this row
	# is measured.
	start conn-server2 ip netns exec "$ns_s" "$pp" serve 10.79.1.2 7009 echo
	wait_log conn-server2 "$last_pid" '^listening 7009$'
	start_haproxy conn-haproxy-nat 127.0.0.1:7003 no 10.79.1.2:7009
	NS_EXEC=()
	cat >"$tmp/redirect.nft" <<'EOF'
table ip slbench {
	chain output {
		type nat hook output priority -100; policy accept;
		ip daddr 10.79.1.2 tcp dport 7000 redirect to :7003
	}
}
EOF

	spec "section|connrate|new connections per second: connect, 1 byte each way, close; $conn_threads threads for ${conn_seconds} s, $runs runs, namespaces; ratio of direct"
	spec "row|conn-direct|direct (sluiced not running)"
	spec "row|conn-intercept|sluiced --intercept + passthrough --pass"
	spec "row|conn-listen|sluiced --listen + passthrough --pass"
	spec "row|conn-haproxy|haproxy tcp (a relay, for reference)"
	spec "row|conn-haproxy-nat|haproxy tcp behind an nftables redirect (as intercept, for reference)"

	# connrate KEY RUN ADDR PORT
	connrate()
	{
		local key=$1 run=$2 out=$tmp/results/$1.$2.out n rate errors

		if ip netns exec "$ns_c" timeout $((conn_seconds + 60)) "$pp" connrate "$3" "$4" \
			"$conn_seconds" "$conn_threads" >"$out" 2>"$out.err" &&
			read -r n rate errors <"$out" && [ "$n" -gt 0 ]; then
			[ "$errors" = 0 ] || say "$key run $run: $errors connections failed"
			record "$key" "$run" "$rate"
		else
			say "$key run $run failed: $(cat "$out" "$out.err" | head -c 300)"
			record "$key" "$run" fail
		fi
	}

	for run in $(seq "$runs"); do
		say "connrate run $run/$runs: direct"
		connrate conn-direct "$run" 10.79.1.2 7000

		say "connrate run $run/$runs: sluiced --intercept"
		name=conn-intercept-$run
		start "$name" ip netns exec "$ns_c" "$sluiced" --intercept 7000 --drain-seconds 0 \
			--filter-socket "$tmp/$name.sock" --control "$tmp/$name.ctl" "${window_args[@]}"
		icpt_pid=$last_pid
		for _ in $(seq 300); do
			ip netns exec "$ns_c" nft list tables 2>/dev/null | grep -qx 'table inet sluice' && break
			died "$name" "$icpt_pid" && exit 1
			sleep 0.1
		done
		NS_EXEC=(ip netns exec "$ns_c")
		start_filter "$name" "$icpt_pid" --pass
		NS_EXEC=()
		connrate conn-intercept "$run" 10.79.1.2 7000
		stop_pid "$icpt_pid"
		stop_pid "$filter_pid"
		if ip netns exec "$ns_c" nft list tables 2>/dev/null | grep -qx 'table inet sluice'; then
			say "table inet sluice is still there after sluiced stopped"
			exit 1
		fi

		say "connrate run $run/$runs: sluiced --listen"
		connrate conn-listen "$run" 10.79.1.1 7001

		say "connrate run $run/$runs: haproxy"
		connrate conn-haproxy "$run" 10.79.1.1 7002

		say "connrate run $run/$runs: haproxy behind a redirect"
		ip netns exec "$ns_c" nft -f "$tmp/redirect.nft"
		connrate conn-haproxy-nat "$run" 10.79.1.2 7000
		ip netns exec "$ns_c" nft delete table ip slbench
	done
	for pid in "${pids[@]}"; do
		stop_pid "$pid"
	done
	for ns in "${namespaces[@]}"; do
		ip netns del "$ns"
	done
	namespaces=()
fi

# ---------------------------------------------------- memory per idle flow

rss_kb()
{
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

if want memory; then
	ulimit -n "$(ulimit -Hn)"
	if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((idle_flows * 2 + 100)) ]; then
		say "memory: $idle_flows flows need $((idle_flows * 2 + 100)) descriptors; the limit is $(ulimit -n)"
		exit 1
	fi
	read -r -a mem_ports <<<"$(free_ports $((runs + 1)))"
	start_server echo echo
	echo_pid=$last_pid
	mem_ports[0]=$server_port

	spec "section|memory|memory per idle flow: (RSS with $idle_flows idle flows - RSS before) / $idle_flows, bytes, $runs runs"
	spec "row|mem-daemon|sluiced (with passthrough, shm)"
	spec "row|mem-filter|sluice-passthrough (the filter, for reference)"
	mkfifo "$tmp/idle.fifo"
	for run in $(seq "$runs"); do
		say "memory run $run/$runs: $idle_flows idle flows"
		port=${mem_ports[$run]}
		start_sluiced "mem-$run" "$port" "127.0.0.1:${mem_ports[0]}"
		sleep 0.5
		d0=$(rss_kb "$daemon_pid")
		f0=$(rss_kb "$filter_pid")
		# The client holds its connections until the fifo's writer closes.
		"$pp" idle 127.0.0.1 "$port" "$idle_flows" <"$tmp/idle.fifo" >"$tmp/idle-$run.log" 2>&1 &
		idle_pid=$!
		pids+=("$idle_pid")
		exec 9>"$tmp/idle.fifo"
		for _ in $(seq 600); do
			grep -q '^ready' "$tmp/idle-$run.log" && break
			kill -0 "$idle_pid" 2>/dev/null || break
			sleep 0.1
		done
		if grep -q '^ready' "$tmp/idle-$run.log" &&
			[ "$(grep -c ': open: ' "$tmp/mem-$run.log")" -eq "$idle_flows" ]; then
			sleep 1
			d1=$(rss_kb "$daemon_pid")
			f1=$(rss_kb "$filter_pid")
			record mem-daemon "$run" $(((d1 - d0) * 1024 / idle_flows))
			record mem-filter "$run" $(((f1 - f0) * 1024 / idle_flows))
		else
			say "memory run $run: the flows did not all open: $(head -c 300 "$tmp/idle-$run.log")"
			record mem-daemon "$run" fail
			record mem-filter "$run" fail
		fi
		exec 9>&-
		stop_pid "$idle_pid"
		stop_pid "$daemon_pid"
		stop_pid "$filter_pid"
	done
	stop_pid "$echo_pid"
fi

# ---------------------------------------------------- instructions per byte

if want instructions && ! command -v valgrind >/dev/null; then
	skipped+=("instructions: valgrind is missing (scripts/deps.sh installs it)")
elif want instructions; then
	read -r -a cg_ports <<<"$(free_ports $((runs + 2)))"
	start_server sink sink
	sink_pid=$last_pid
	cg_ports[0]=$server_port

	# callgrind_total FILE: the total instruction count callgrind wrote.
	callgrind_total()
	{
		awk '/^(totals|summary):/ { print $2; exit }' "$1"
	}

	# callgrind_copies FILE: instructions spent in memcpy and memmove
	# (glibc's variants), from callgrind_annotate's per-function counts.
	callgrind_copies()
	{
		callgrind_annotate --threshold=100 "$1" | python3 -c 'import re, sys
n = 0
for line in sys.stdin:
    m = re.match(r"\s*([\d,]+) .*:\S*(memcpy|memmove|mempcpy)", line)
    if m:
        n += int(m.group(1).replace(",", ""))
print(n)'
	}

	spec "section|instructions|instructions per byte: sluiced's own (user space, callgrind), $cg_bytes bytes through passthrough (replace, shm), $runs runs"
	spec "row|cg|sluiced + passthrough (replace, shm): all"
	spec "row|cg-nocopy|the same without memcpy and memmove"
	SLUICED_PREFIX=(valgrind --tool=callgrind)
	for run in $(seq 0 "$runs"); do
		name=cg-$run
		SLUICED_PREFIX=(valgrind --tool=callgrind "--callgrind-out-file=$tmp/$name.out")
		start_sluiced "$name" "${cg_ports[$((run + 1))]}" "127.0.0.1:${cg_ports[0]}"
		if [ "$run" -gt 0 ]; then
			say "instructions run $run/$runs: $cg_bytes bytes under callgrind"
			if ! timeout 600 "$pp" send 127.0.0.1 "${cg_ports[$((run + 1))]}" "$cg_bytes" \
				>"$tmp/$name-send.log" 2>&1; then
				say "instructions run $run: the transfer failed: $(head -c 300 "$tmp/$name-send.log")"
			fi
			# The flow is over once sluiced says so; then it may stop.
			wait_log "$name" "$daemon_pid" ': closed: '
		fi
		stop_pid "$daemon_pid"
		stop_pid "$filter_pid"
		total=$(callgrind_total "$tmp/$name.out" 2>/dev/null || true)
		if [ "$run" -eq 0 ]; then
			# Run 0 moves no data: what starting and stopping cost.
			cg_base=${total:-?}
		elif [ -n "$total" ] && grep -q ": closed: out $cg_bytes bytes" "$tmp/$name.log" &&
			copies=$(callgrind_copies "$tmp/$name.out"); then
			record cg "$run" "$(python3 -c "print('%.4f' % ($total / $cg_bytes))") $total"
			record cg-nocopy "$run" "$(python3 -c "print('%.4f' % (($total - $copies) / $cg_bytes))") $((total - copies))"
		else
			say "instructions run $run: no count, or not every byte went through"
			record cg "$run" fail
			record cg-nocopy "$run" fail
		fi
	done
	SLUICED_PREFIX=()
	spec "note|instructions|startup and shutdown alone (no flow): ${cg_base} instructions, included in each run"
	stop_pid "$sink_pid"
fi

# -------------------------------------------------------------------- table

for s in "${skipped[@]}"; do
	spec "skipped|$s"
done
say "done; load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$tmp/spec" "$tmp/results" "$runs" <<'EOF'
import os, statistics, sys

spec, results, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])

def runs_of(key):
    """Each run's figures (a list of floats) or None for a failed run."""
    got = []
    for r in range(1, runs + 1):
        try:
            text = open(os.path.join(results, f"{key}.{r}")).read().split()
            got.append(None if not text or text[0] == "fail" else [float(x) for x in text])
        except (OSError, ValueError):
            got.append(None)
    return got

def median(got, i=0):
    ok = [g[i] for g in got if g is not None]
    return statistics.median(ok) if ok else None

def table(head, rows):
    width = [max(len(str(c)) for c in col) for col in zip(head, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, width)) + " |"
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in width) + "|")
    for r in rows:
        print(line(r))

sections, failed = [], False
for ln in open(spec).read().splitlines():
    kind, rest = ln.split("|", 1)
    if kind == "section":
        name, title = rest.split("|", 1)
        sections.append({"name": name, "title": title, "rows": [], "notes": []})
    elif kind == "row":
        key, label = rest.split("|", 1)
        sections[-1]["rows"].append((key, label))
    elif kind == "note":
        name, text = rest.split("|", 1)
        [s for s in sections if s["name"] == name][0]["notes"].append(text)
    elif kind == "skipped":
        sections.append({"name": "skipped", "title": "skipped: " + rest, "rows": [], "notes": []})

fmt = {"throughput": "%.2f", "connrate": "%.0f", "memory": "%.0f", "instructions": "%.4f",
       "latency": "%.1f"}
for s in sections:
    print(f"\n{s['title']}\n")
    if not s["rows"]:
        continue
    f, rows, base = fmt[s["name"]], [], None
    show = lambda v: "-" if v is None else f % v
    for key, label in s["rows"]:
        got = runs_of(key)
        failed |= any(g is None for g in got)
        each = " ".join("fail" if g is None else f % g[0] for g in got)
        if s["name"] == "latency":
            p50, p99 = median(got, 0), median(got, 1)
            if base is None:
                base = p50
            diff = "-" if p50 is None or base is None else "%+.1f" % (p50 - base)
            each = " ".join("fail" if g is None else "%.1f/%.1f" % (g[0], g[1]) for g in got)
            rows.append((label, show(p50), show(p99), diff, each))
            continue
        med = median(got)
        if s["name"] in ("throughput", "connrate"):
            if base is None:
                base = med
            ratio = "-" if med is None or not base else "%.3f" % (med / base)
            rows.append((label, show(med), ratio, each))
        else:
            rows.append((label, show(med), each))
    if s["name"] == "latency":
        table(("path", "p50", "p99", "p50 - direct", "runs (p50/p99)"), rows)
    elif s["name"] == "throughput":
        table(("path", "median", "ratio of raw", "runs"), rows)
    elif s["name"] == "connrate":
        table(("path", "median", "ratio of direct", "runs"), rows)
    else:
        table(("path", "median", "runs"), rows)
    for n in s["notes"]:
        print(f"\n{n}")
sys.exit(1 if failed else 0)
EOF
