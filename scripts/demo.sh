#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# A 100 MiB upload through sluiced, checked end to end.
#
#   scripts/demo.sh BUILD
#
# Starts a small HTTP server on 127.0.0.1 that hashes each upload's body as
# it streams in, puts sluiced in front of it with sluice-passthrough attached
# (so every byte makes a round trip through the filter), uploads random data
# with curl through sluiced, and reports what the filter saw, whether the
# server received exactly what was sent, and how fast it went.
#
# Exit status: 0 when the sha256 the server computed equals the file's and
# the filter saw at least the file's bytes go out; 1 otherwise.
#
# Environment: SIZE_MIB (default 100), KEEP=1 (keep the temporary directory).
set -euo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 BUILD" >&2
	exit 2
fi
build=$1
sluiced=$build/sluiced
passthrough=$build/sluice-passthrough
size_mib=${SIZE_MIB:-100}

for tool in curl python3 sha256sum ss; do
	if ! command -v "$tool" >/dev/null; then
		echo "demo: $tool is missing (scripts/deps.sh installs it)" >&2
		exit 1
	fi
done
for bin in "$sluiced" "$passthrough"; do
	if [ ! -x "$bin" ]; then
		echo "demo: $bin not found; build first (meson setup $build && ninja -C $build)" >&2
		exit 1
	fi
done

tmp=$(mktemp -d /tmp/sluice-demo.XXXXXX)
pids=()

cleanup()
{
	local pid

	trap - EXIT INT TERM
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [ "${KEEP:-0}" = 1 ]; then
		echo "demo: files kept in $tmp" >&2
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME COMMAND...: runs a command in the background with its output in
# $tmp/NAME.log and remembers its pid in $last_pid.
start()
{
	local name=$1

	shift
	"$@" >"$tmp/$name.log" 2>&1 &
	last_pid=$!
	pids+=("$last_pid")
}

# wait_for NAME PID TEST...: waits up to 10 s until TEST succeeds, failing
# early with NAME's log when PID has exited.
wait_for()
{
	local name=$1 pid=$2

	shift 2
	for _ in $(seq 100); do
		"$@" && return 0
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "demo: $name exited; its log:" >&2
			sed 's/^/  /' "$tmp/$name.log" >&2 || true
			exit 1
		fi
		sleep 0.1
	done
	echo "demo: $name did not come up; its log:" >&2
	sed 's/^/  /' "$tmp/$name.log" >&2 || true
	exit 1
}

# The upload server. It binds a port the kernel chooses and writes it to a
# file, so there is no race for a port. The body is hashed as it arrives
# and never stored; both Content-Length and chunked bodies are read.
cat >"$tmp/sha256-server.py" <<'EOF'
import hashlib, http.server, os, sys

class Handler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.1, so that curl's "Expect: 100-continue" is answered at once.
    protocol_version = "HTTP/1.1"

    def read_body(self, h):
        n = 0
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return n
                n += self.copy(h, size)
                self.rfile.readline()
        return self.copy(h, int(self.headers.get("Content-Length", 0)))

    def copy(self, h, left):
        n = 0
        while left:
            b = self.rfile.read(min(left, 1 << 20))
            if not b:
                raise ConnectionError("body cut short")
            h.update(b)
            n += len(b)
            left -= len(b)
        return n

    def do_PUT(self):
        h = hashlib.sha256()
        n = self.read_body(h)
        reply = f"{h.hexdigest()} {n}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(reply)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(reply)
        self.close_connection = True

    do_POST = do_PUT

    def log_message(self, fmt, *args):
        sys.stderr.write("sha256-server: " + (fmt % args) + "\n")

srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
srv.serve_forever()
EOF

start server python3 "$tmp/sha256-server.py" "$tmp/server.port"
wait_for server "$last_pid" test -s "$tmp/server.port"
server_port=$(cat "$tmp/server.port")

# A free port for sluiced: held by python until printed, then released.
listen_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

start sluiced "$sluiced" --listen "127.0.0.1:$listen_port" --upstream "127.0.0.1:$server_port" \
	--filter-socket "$tmp/filter.sock"
sluiced_pid=$last_pid
listening()
{
	[ -n "$(ss -Hltn "sport = :$listen_port" 2>/dev/null)" ]
}
wait_for sluiced "$sluiced_pid" listening
wait_for sluiced "$sluiced_pid" test -S "$tmp/filter.sock"

start passthrough "$passthrough" --socket "$tmp/filter.sock"
wait_for passthrough "$last_pid" grep -q 'connected to' "$tmp/passthrough.log"

head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$tmp/upload.bin"
size=$(stat -c %s "$tmp/upload.bin")
sent_sha=$(sha256sum "$tmp/upload.bin" | cut -d' ' -f1)

curl_status=0
speed=$(curl -sS --max-time 300 -T "$tmp/upload.bin" -o "$tmp/reply.txt" \
	-w '%{speed_upload}' "http://127.0.0.1:$listen_port/upload") || curl_status=$?
got_sha=$(cut -d' ' -f1 "$tmp/reply.txt" 2>/dev/null || true)
got_size=$(cut -d' ' -f2 "$tmp/reply.txt" 2>/dev/null || true)

# The filter prints its per-flow line when sluiced tells it the flow closed,
# which is just after curl has its answer.
closed()
{
	grep -q 'closed: out' "$tmp/passthrough.log"
}
for _ in $(seq 50); do
	closed && break
	sleep 0.1
done
flows=$(grep -c 'closed: out' "$tmp/passthrough.log" || true)
# Sums over every flow the filter saw (curl makes one).
read -r bytes_out bytes_in < <(awk '/closed: out/ { o += $(NF-3); i += $(NF-1) } END { print o + 0, i + 0 }' \
	"$tmp/passthrough.log")

match=no
[ -n "$got_sha" ] && [ "$got_sha" = "$sent_sha" ] && match=yes
seen=no
[ "$flows" -ge 1 ] && [ "$bytes_out" -ge "$size" ] && seen=yes
mibs=$(awk -v s="${speed:-0}" 'BEGIN { printf "%.1f", s / 1048576 }')

echo "sluice demo: ${size_mib} MiB upload, curl -> sluiced -> HTTP server, through sluice-passthrough"
printf '  %-22s %s\n' \
	"flows seen by filter" "$flows" \
	"bytes out (to server)" "$bytes_out (file: $size)" \
	"bytes in (to client)" "$bytes_in" \
	"sha256 sent" "$sent_sha" \
	"sha256 received" "${got_sha:-(none)}${got_size:+ ($got_size bytes)}" \
	"match" "$match" \
	"upload throughput" "$mibs MiB/s"

status=0
if [ "$curl_status" -ne 0 ]; then
	echo "demo: FAIL: curl exited with status $curl_status" >&2
	status=1
fi
if [ "$match" != yes ]; then
	echo "demo: FAIL: the server did not receive what was sent" >&2
	status=1
fi
if [ "$seen" != yes ]; then
	echo "demo: FAIL: the filter did not see the upload's bytes" >&2
	status=1
fi
if [ "$status" -ne 0 ]; then
	for name in sluiced passthrough server; do
		echo "demo: last lines of $name's log:" >&2
		tail -n 5 "$tmp/$name.log" | sed 's/^/  /' >&2
	done
fi
exit "$status"
