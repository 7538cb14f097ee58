#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 90
#
# sluiced --metrics: the Prometheus endpoint, scraped with curl.
#   Before any flow, and after one transfer of known size through
#   sluice-passthrough --pass (3 MiB up, 1 MiB down): HTTP/1.0 200 with
#   Content-Type text/plain; version=0.0.4; every family has # HELP and
#   # TYPE lines before its samples, counters end in _total, each sample
#   line is NAME{LABELS} VALUE; the byte counters equal the transfer's sizes
#   in each direction (written and read), one flow opened and closed, none
#   reset or active, pass verdicts counted, one filter connected.
#   Then a transfer into a slow server: the window filled (window-full
#   events counted) and the bytes add up.
#   Other requests: GET of another path and POST /metrics get 404, HEAD
#   /metrics 200 without a body; a request line that is not HTTP/1.x, and a
#   head longer than 4 KiB, get 400. Seventeen connections at once: the
#   seventeenth is closed at once, and scraping works again after.
. "$(dirname "$0")/lib.sh"
need curl

MPORT=$(free_port)
METRICS=http://127.0.0.1:$MPORT/metrics
UP=$(addr 127.0.0.1 "$(free_port)")
LISTEN=$(addr 127.0.0.1 "$(free_port)")

start_sluiced "$LISTEN" "$UP" --control "$T/control.sock" --metrics "127.0.0.1:$MPORT" --workers 2
wait_listening "127.0.0.1:$MPORT" "$SLUICED_PID" "sluiced's metrics endpoint"
start_filter --pass

# scrape NAME: GET /metrics into $T/NAME.txt, headers in $T/NAME.hdr.
scrape() {
	curl -sS --max-time 5 -D "$T/$1.hdr" -o "$T/$1.txt" "$METRICS" || fail "curl $METRICS failed"
}

# value NAME SERIES: the value of one series ("sluice_flows_active",
# 'sluice_bytes_total{direction="out"}') in scrape NAME.
value() {
	awk -v s="$2" '$1 == s { print $2; found = 1 } END { if (!found) print "missing" }' "$T/$1.txt"
}

# Checks the exposition format of scrape NAME; prints what is wrong.
check_format() {
	python3 - "$T/$1.txt" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
errors, help_, type_ = [], {}, {}
sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*")*\})? ([0-9]+(\.[0-9]+)?)$')
if not text.endswith("\n"):
    errors.append("no final newline")
for n, line in enumerate(text.splitlines(), 1):
    if line.startswith("# HELP "):
        name = line.split(" ")[2]
        if name in help_:
            errors.append(f"line {n}: second HELP for {name}")
        help_[name] = n
    elif line.startswith("# TYPE "):
        _, _, name, kind = line.split(" ")
        if kind not in ("counter", "gauge"):
            errors.append(f"line {n}: type {kind}")
        if kind == "counter" and not name.endswith("_total"):
            errors.append(f"line {n}: counter {name} does not end in _total")
        if name not in help_:
            errors.append(f"line {n}: TYPE before HELP for {name}")
        type_[name] = n
    else:
        m = sample.match(line)
        if not m:
            errors.append(f"line {n}: not a sample: {line!r}")
        elif m.group(1) not in type_:
            errors.append(f"line {n}: sample of {m.group(1)} before its TYPE")
if len(type_) < 10:
    errors.append(f"only {len(type_)} families")
print("; ".join(errors))
EOF
}

scrape before
grep -qi '^Content-Type: text/plain; version=0.0.4' "$T/before.hdr" || fail "content type: $(cat "$T/before.hdr")"
head -n 1 "$T/before.hdr" | grep -q '^HTTP/1.0 200 OK' || fail "status line: $(head -n 1 "$T/before.hdr")"
bad=$(check_format before)
[ -z "$bad" ] || fail "exposition format: $bad"
[ "$(value before sluice_flows_opened_total)" = 0 ] || fail "flows opened before any flow: $(value before sluice_flows_opened_total)"
# libsluice connects once to each worker.
[ "$(value before sluice_filters_connected)" = 2 ] || fail "filters connected: $(value before sluice_filters_connected)"
[ "$(value before sluice_workers)" = 2 ] || fail "workers: $(value before sluice_workers)"

# One transfer of known size each way.
start_server srv "$UP" --count 1 --send 1M
run_client cli 30 "$LISTEN" --send 3M
wait_server 10
compare cli srv --count 1 --expect-out 3M >/dev/null
for i in $(seq 100); do
	scrape after
	[ "$(value after sluice_flows_closed_total)" = 1 ] && break
	sleep 0.1
done
bad=$(check_format after)
[ -z "$bad" ] || fail "exposition format: $bad"
for want in \
	'sluice_flows_opened_total 1' \
	'sluice_flows_closed_total 1' \
	'sluice_flows_reset_total 0' \
	'sluice_flows_active 0' \
	'sluice_bytes_total{direction="out"} 3145728' \
	'sluice_bytes_total{direction="in"} 1048576' \
	'sluice_bytes_read_total{direction="out"} 3145728' \
	'sluice_bytes_read_total{direction="in"} 1048576' \
	'sluice_filters_connected 2' \
	'sluice_filter_drops_total 0' \
	"sluice_build_info{version=\"$("$SLUICED" --version | cut -d' ' -f2)\",mode=\"listen\"} 1"; do
	[ "$(value after "${want% *}")" = "${want##* }" ] ||
		fail "after 3 MiB up and 1 MiB down: ${want% *} is $(value after "${want% *}"), expected ${want##* }"
done
passes=$(value after 'sluice_verdicts_total{kind="pass"}')
[ "$passes" -gt 0 ] || fail "no pass verdicts counted ($passes) from sluice-passthrough --pass"
log "after the transfer: $(grep -v '^#' "$T/after.txt" | grep -E 'bytes_total|flows_|verdicts_total\{kind="pass"' | tr '\n' ' ')"

# A slow server: the daemon stops reading the client when the window is
# full, and says so in the counters.
start_server srv3 "$UP" --count 1 --read-rate 8M --rcvbuf 64K
run_client cli3 60 "$LISTEN" --send 12M
wait_server 30
for i in $(seq 100); do
	scrape slow
	[ "$(value slow sluice_flows_closed_total)" = 2 ] && break
	sleep 0.1
done
[ "$(value slow sluice_flows_closed_total)" = 2 ] || fail "flows closed after two transfers: $(value slow sluice_flows_closed_total)"
[ "$(value slow 'sluice_bytes_total{direction="out"}')" = $((3145728 + 12582912)) ] ||
	fail "out bytes after two transfers: $(value slow 'sluice_bytes_total{direction="out"}')"
full=$(value slow sluice_window_full_total)
log "window-full events during 12 MiB into a server reading 8 MiB/s: $full"
[ "$full" -gt 0 ] || fail "no window-full events behind a slow server"

# Other requests.
code() { curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$@"; }
[ "$(code "http://127.0.0.1:$MPORT/")" = 404 ] || fail "GET / is not 404"
[ "$(code "http://127.0.0.1:$MPORT/metricsx")" = 404 ] || fail "GET /metricsx is not 404"
[ "$(code -X POST "$METRICS")" = 404 ] || fail "POST /metrics is not 404"
[ "$(code "$METRICS?x=1")" = 200 ] || fail "GET /metrics?x=1 is not 200"
[ "$(curl -sS --max-time 5 -I "$METRICS" | head -n 1 | tr -d '\r')" = "HTTP/1.0 200 OK" ] || fail "HEAD /metrics"

# A second daemon cannot take the same endpoint: it says so and exits.
rc=0
timeout 10 "$SLUICED" --listen "$(addr 127.0.0.1 "$(free_port)")" --upstream "$UP" \
	--filter-socket "$T/filter-x.sock" --control "$T/control-x.sock" \
	--metrics "127.0.0.1:$MPORT" 2>"$T/second.err" || rc=$?
[ "$rc" = 1 ] && grep -q "metrics: listening on 127.0.0.1:$MPORT: Address already in use" "$T/second.err" ||
	fail "a second daemon on the same --metrics: exit $rc: $(tail -n 2 "$T/second.err")"

# raw_http BYTES-EXPR: sends the bytes, prints the status line or CLOSED.
raw_http() {
	python3 - "$MPORT" "$1" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(5)
try:
    s.sendall(eval(sys.argv[2]))
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
except ConnectionResetError:
    pass
print(data.split(b"\r\n")[0].decode() if data else "CLOSED")
EOF
}
for req in 'b"garbage\r\n\r\n"' 'b"GET /metrics HTTP/2.0\r\n\r\n"' 'b"GET /metrics\r\n\r\n"' \
	'b"GET  /metrics HTTP/1.0\r\n\r\n"' 'b"get /metrics HTTP/1.0\r\n\r\n"' \
	'b"GET /metrics HTTP/1.0\r\nX: " + b"a" * 5000 + b"\r\n\r\n"' 'b"GET /\x00 HTTP/1.0\r\n\r\n"'; do
	got=$(raw_http "$req")
	[ "$got" = "HTTP/1.0 400 Bad Request" ] || fail "request $req: got '$got', expected 400"
done
[ "$(raw_http 'b"GET /metrics HTTP/1.1\nHost: x\n\n"')" = "HTTP/1.0 200 OK" ] || fail "bare LF request head not answered"

# The connection limit.
got=$(python3 - "$MPORT" <<'EOF'
import socket, sys, time
port = int(sys.argv[1])
held = [socket.create_connection(("127.0.0.1", port)) for _ in range(16)]
time.sleep(0.3)
extra = socket.create_connection(("127.0.0.1", port))
extra.settimeout(3)
try:
    extra.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
    print("CLOSED" if extra.recv(100) == b"" else "ANSWERED")
except (ConnectionResetError, BrokenPipeError):
    print("CLOSED")
except socket.timeout:
    print("HUNG")
EOF
)
[ "$got" = CLOSED ] || fail "a seventeenth connection was $got, expected closed"
sleep 0.3
scrape last
[ "$(value last sluice_flows_closed_total)" = 2 ] || fail "scrape after the connection limit"
check_alive "$SLUICED_PID" sluiced
stop_sluiced
