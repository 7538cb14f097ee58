#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
#
# sluice-log --output FILE through sluiced --listen. An HTTP-like request and
# response: the log names the flow's two endpoints, its dump lines of each
# direction hold exactly the bytes sent (hex column) and show them in the
# ASCII column, and its eof and close lines give the sizes. A 10 KiB
# transfer each way with --max-bytes 64 dumps 64 bytes per direction and
# totals 10240; with --max-bytes 0 nothing is dumped. The data arrives intact.
. "$(dirname "$0")/lib.sh"

LOGGER=${LOGGER:-$BUILD/sluice-log}
[ -x "$LOGGER" ] || fail "no sluice-log binary at $LOGGER (set BUILD or LOGGER)"

UP_PORT=$(free_port)
UP=$(addr 127.0.0.1 "$UP_PORT")

# start_log ARGS...: sluice-log on the filter socket of the daemon started
# last, like lib.sh's start_filter. Sets FILTER_PID, FILTER_LOG.
start_log() {
	local name=log-$_SLUICED_N
	for _ in $(seq 200); do
		[ -S "$FILTER_SOCK" ] && break
		sleep 0.05
	done
	spawn "$name" "$LOGGER" --socket "$FILTER_SOCK" "$@"
	FILTER_PID=$SPAWNED_PID
	FILTER_LOG=$T/$name.err
	wait_for_log "$FILTER_LOG" "sluice-log: connected to $FILTER_SOCK" 10 ||
		fail "sluice-log $* did not connect within 10 s"
}

# check_log FILE [python assertions]: parses the log of one flow into
# `opens`, `dumps` (dir -> bytes rebuilt from the hex column, checked to be
# contiguous and to match the ASCII column), `notes`, `eofs` and `closes`,
# then runs the assertions; each failing assert prints its message.
check_log() {
	python3 - "$@" <<'EOF'
import re, sys

path, checks = sys.argv[1], sys.argv[2]
env = sys.argv[3:]
lines = open(path).read().splitlines()
opens, notes, eofs, closes = [], [], {}, []
dumps = {"out": b"", "in": b""}
ascii = {"out": "", "in": ""}
dump_re = re.compile(r"flow ([0-9a-f]{16}) (out|in) +\+([0-9a-f]{4,}): (.{49}) \|(.{1,16})\|$")


def parse(l):
    m = dump_re.match(l)
    if m:
        d, off = m.group(2), int(m.group(3), 16)
        b = bytes.fromhex(m.group(4))
        assert off == len(dumps[d]), "dump of %s jumps to %#x after %d bytes: %s" % (d, off, len(dumps[d]), l)
        shown = "".join(chr(c) if 0x20 <= c < 0x7f else "." for c in b)
        assert m.group(5) == shown, "ASCII column %r is not %r" % (m.group(5), shown)
        dumps[d] += b
        ascii[d] += shown
    elif re.match(r"flow [0-9a-f]{16} open: ", l):
        opens.append(l)
    elif re.match(r"flow [0-9a-f]{16} (out|in): ", l):
        notes.append(l)
    elif (m := re.match(r"flow [0-9a-f]{16} (out|in) eof: (\d+) bytes$", l)):
        eofs[m.group(1)] = int(m.group(2))
    elif re.match(r"flow [0-9a-f]{16} close: ", l):
        closes.append(l)
    else:
        raise AssertionError("unexpected line: %r" % l)


try:
    for l in lines:
        parse(l)
    ids = {l.split()[1] for l in lines}
    assert len(ids) == 1, "expected one flow in the log, found %s" % sorted(ids)
    exec(checks)
except AssertionError as e:
    print("check_log: %s" % e)
    print("check_log: the log was:\n" + "\n".join(lines[:40]))
    sys.exit(1)
EOF
}

# The command line.
rc=0
"$LOGGER" --help >"$T/help.out" || rc=$?
[ "$rc" -eq 0 ] && grep -q "^usage: sluice-log" "$T/help.out" || fail "--help: exit $rc"
for bad in "--max-bytes -1" "--max-bytes 12x" "--max-bytes ''" "--bogus" "extra"; do
	rc=0
	eval "\"\$LOGGER\" $bad" >"$T/bad.out" 2>"$T/bad.err" || rc=$?
	[ "$rc" -eq 2 ] || fail "sluice-log $bad: exit status $rc, expected 2"
	[ "$(grep -vc '^usage:' "$T/bad.err")" -eq 1 ] && grep -q '^usage:' "$T/bad.err" ||
		fail "sluice-log $bad: expected one error line and the usage, got: $(cat "$T/bad.err")"
done

# An HTTP-like exchange: the client sends a request and half-closes, the
# server answers after reading it and closes. Prints the client's port.
LISTEN=$(addr 127.0.0.1 "$(free_port)")
start_sluiced "$LISTEN" "$UP"
start_log --output "$T/http.log"
REQ='GET /sluice-log/test HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: example-log\r\nAccept: */*\r\n\r\n'
RESP='HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 24\r\n\r\nhello from the upstream\n'
CPORT=$(timeout 20 python3 - "$UP" "$LISTEN" "$REQ" "$RESP" <<'EOF'
import socket, sys
up, listen = [(a.rpartition(":")[0], int(a.rpartition(":")[2])) for a in sys.argv[1:3]]
req, resp = [a.encode().decode("unicode_escape").encode("latin-1") for a in sys.argv[3:5]]
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(up)
ls.listen(1)
c = socket.create_connection(listen, timeout=10)
s, _ = ls.accept()
s.settimeout(10)
c.sendall(req)
c.shutdown(socket.SHUT_WR)
got = b""
while not got.endswith(b"\r\n\r\n"):
    b = s.recv(4096)
    assert b, "server: EOF before the end of the request"
    got += b
assert got == req, "server received %r" % got
s.sendall(resp)
s.close()
got = b""
while True:
    b = c.recv(4096)
    if not b:
        break
    got += b
assert got == resp, "client received %r" % got
print(c.getsockname()[1])
EOF
) || fail "the HTTP-like exchange through sluice-log failed"
log "request and response intact through sluice-log"
wait_for_log "$T/http.log" " close: " 5 || fail "no close line in the log within 5 s"
check_log "$T/http.log" '
req, resp = [a.encode().decode("unicode_escape").encode("latin-1") for a in env[:2]]
cport, up = env[2], env[3]
assert len(opens) == 1, "expected one open line, got %r" % opens
assert opens[0].endswith(": 127.0.0.1:%s -> %s uid - pid - comm -" % (cport, up)), \
    "open line %r does not name 127.0.0.1:%s -> %s" % (opens[0], cport, up)
assert dumps["out"] == req, "out dump %r is not the request" % dumps["out"]
assert dumps["in"] == resp, "in dump %r is not the response" % dumps["in"]
assert "GET /sluice-log/" in ascii["out"] and "User-Agent: exam" in ascii["out"], "request text not in the ASCII column"
assert "HTTP/1.1 200 OK" in ascii["in"] and "hello from the u" in ascii["in"], "response text not in the ASCII column"
assert notes == [], "unexpected truncation notes %r" % notes
assert eofs == {"out": len(req), "in": len(resp)}, "eof lines give %r" % eofs
assert len(closes) == 1 and closes[0].endswith(" close: out %d in %d bytes" % (len(req), len(resp))), \
    "close line %r, expected out %d in %d bytes" % (closes, len(req), len(resp))
' "$REQ" "$RESP" "$CPORT" "$UP" || fail "the log of the HTTP-like exchange is wrong"
log "open, dump, eof and close lines match the exchange"
stop_sluiced

# 10 KiB each way, at most 64 bytes dumped per direction.
LISTEN=$(addr 127.0.0.1 "$(free_port)")
start_sluiced "$LISTEN" "$UP"
start_log --output "$T/trunc.log" --max-bytes 64
start_server srv-trunc "$UP" --count 1 --send 10K
run_client cli-trunc 30 "$LISTEN" --send 10K
wait_server 10
compare cli-trunc srv-trunc --count 1 --expect-out 10K --expect-in 10K
wait_for_log "$T/trunc.log" " close: " 5 || fail "no close line in the log within 5 s"
check_log "$T/trunc.log" '
assert len(dumps["out"]) == 64 and len(dumps["in"]) == 64, \
    "dumped %d bytes out and %d in, expected 64 each" % (len(dumps["out"]), len(dumps["in"]))
assert sorted(n.split()[2] for n in notes) == ["in:", "out:"] and all("after 64 bytes" in n for n in notes), \
    "expected one note per direction that the dump stops after 64 bytes, got %r" % notes
assert eofs == {"out": 10240, "in": 10240}, "eof lines give %r" % eofs
assert len(closes) == 1 and closes[0].endswith(" close: out 10240 in 10240 bytes"), "close line %r" % closes
' || fail "the log of the 10 KiB transfer with --max-bytes 64 is wrong"
log "--max-bytes 64: 64 bytes dumped per direction, totals 10240"
stop_sluiced

# --max-bytes 0: the flow's lines, no dump.
LISTEN=$(addr 127.0.0.1 "$(free_port)")
start_sluiced "$LISTEN" "$UP"
start_log --output "$T/meta.log" --max-bytes 0
start_server srv-meta "$UP" --count 1 --send 3000
run_client cli-meta 30 "$LISTEN" --send 5000
wait_server 10
compare cli-meta srv-meta --count 1 --expect-out 5000 --expect-in 3000
wait_for_log "$T/meta.log" " close: " 5 || fail "no close line in the log within 5 s"
check_log "$T/meta.log" '
assert dumps == {"out": b"", "in": b""} and notes == [], "something was dumped with --max-bytes 0"
assert len(opens) == 1 and eofs == {"out": 5000, "in": 3000}, "open %r, eof %r" % (opens, eofs)
assert len(closes) == 1 and closes[0].endswith(" close: out 5000 in 3000 bytes"), "close line %r" % closes
' || fail "the log with --max-bytes 0 is wrong"
log "--max-bytes 0: open, eof and close lines only"

# SIGTERM ends the filter with status 0.
kill -TERM "$FILTER_PID"
rc=0
wait_pid "$FILTER_PID" 5 || rc=$?
[ "$rc" -eq 0 ] || fail "sluice-log exited with status $rc on SIGTERM (expected 0)"
FILTER_PID=
stop_sluiced
