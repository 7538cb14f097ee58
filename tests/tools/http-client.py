#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A raw HTTP/1.1 client for sluice's HTTP tests (python3 stdlib only).

  http-client.py raw --connect 127.0.0.1:9000 --send FILE [--send FILE ...]
                 [--responses N] [--pause SECONDS] [--shut] [--no-body N] [--timeout S]

sends each FILE's bytes as they are (several requests in one file are
pipelined: written in one send), pausing between files if asked, half-closes with --shut, then reads
responses until N have arrived (then closes) or the server closes. Prints
one JSON line per response: {"status": 200, "len": N, "sha256": "...",
"body": "first 200 bytes", "headers": {...}} and a last line
{"eof": true/false, "extra": bytes after the last response, "error": ...}.

  http-client.py upgrade --connect ADDR --host H --path P --send SIZE

sends a WebSocket-style Upgrade request, expects 101, then sends SIZE random
bytes (some of them look like HTTP requests) and reads the echo until all
of it is back (or EOF), then closes. Prints {"status": 101, "sent": N, "sent_sha256": ...,
"recv": M, "recv_sha256": ...}.
"""

import argparse
import hashlib
import json
import os
import socket
import sys
import threading
import time


def connect(text, timeout):
    host, _, port = text.rpartition(":")
    s = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.eof = False

    def fill(self):
        if self.eof:
            return False
        b = self.sock.recv(1 << 16)
        if not b:
            self.eof = True
            return False
        self.buf += b
        return True

    def until(self, delim):
        while delim not in self.buf:
            if not self.fill():
                return None
        i = self.buf.index(delim) + len(delim)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def exactly(self, n):
        while len(self.buf) < n:
            if not self.fill():
                return None
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def rest(self):
        while self.fill():
            pass
        out, self.buf = self.buf, b""
        return out


def read_response(r, no_body=False):
    """One response, or None at a clean EOF before it starts. no_body: it
    answers a HEAD request."""
    head = r.until(b"\r\n\r\n")
    if head is None:
        if r.buf:
            raise EOFError("response head cut short: %r" % r.buf[:200])
        return None
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    body = b""
    if no_body or status in (101, 204, 304) or 100 <= status < 200:
        pass
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size = int(r.until(b"\r\n").split(b";")[0], 16)
            if size == 0:
                while r.until(b"\r\n") not in (b"\r\n", None):
                    pass
                break
            body += r.exactly(size)
            r.exactly(2)
    elif "content-length" in headers:
        body = r.exactly(int(headers["content-length"]))
        if body is None:
            raise EOFError("response body cut short")
    else:
        body = r.rest()
    return {
        "status": status,
        "len": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "body": body[:200].decode("latin-1"),
        "headers": headers,
    }


def cmd_raw(a):
    s = connect(a.connect, a.timeout)
    for i, path in enumerate(a.send):
        if i and a.pause:
            time.sleep(a.pause)
        with open(path, "rb") as f:
            s.sendall(f.read())
    if a.shut:
        s.shutdown(socket.SHUT_WR)
    r = Reader(s)
    n = 0
    last = {"eof": False, "extra": 0, "error": None}
    try:
        while a.responses is None or n < a.responses:
            resp = read_response(r, n + 1 in a.no_body)
            if resp is None:
                break
            if 100 <= resp["status"] < 200 and resp["status"] != 101:
                continue
            print(json.dumps(resp), flush=True)
            n += 1
        if a.responses is None:
            last["extra"] = len(r.rest())
        last["eof"] = r.eof
    except (OSError, EOFError, ValueError, IndexError) as e:
        last["error"] = "%s: %s" % (type(e).__name__, e)
    print(json.dumps(last), flush=True)
    s.close()


def cmd_upgrade(a):
    s = connect(a.connect, a.timeout)
    s.sendall(
        (
            "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            % (a.path, a.host)
        ).encode()
    )
    r = Reader(s)
    resp = read_response(r)
    out = {"status": resp["status"] if resp else None}
    if not resp or resp["status"] != 101:
        print(json.dumps(out))
        return 1
    # Random bytes with request heads for a blocked host and path among
    # them: after the switch nothing may be parsed as HTTP any more.
    trap = b"\r\n\r\nGET /private/x HTTP/1.1\r\nHost: www.blocked.test\r\n\r\n"
    data = bytearray()
    while len(data) < a.send:
        data += os.urandom(4096) + trap
    data = bytes(data[: a.send])
    recv = hashlib.sha256(r.buf)
    nrecv = len(r.buf)
    pos = 0
    s.settimeout(a.timeout)

    # Read until the whole echo is back before closing: nginx ends an
    # upgraded connection as soon as either side sends FIN.
    def reader():
        nonlocal nrecv
        while nrecv < len(data):
            b = s.recv(1 << 16)
            if not b:
                break
            recv.update(b)
            nrecv += len(b)

    t = threading.Thread(target=reader)
    t.start()
    while pos < len(data):
        pos += s.send(data[pos : pos + (1 << 16)])
    t.join()
    s.close()
    out.update(
        sent=len(data),
        sent_sha256=hashlib.sha256(data).hexdigest(),
        recv=nrecv,
        recv_sha256=recv.hexdigest(),
    )
    print(json.dumps(out))
    return 0 if out["sent_sha256"] == out["recv_sha256"] else 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("raw")
    p.add_argument("--connect", required=True)
    p.add_argument("--send", action="append", required=True)
    p.add_argument("--responses", type=int)
    p.add_argument("--pause", type=float, default=0)
    p.add_argument("--shut", action="store_true", help="half-close after sending")
    p.add_argument("--no-body", type=int, action="append", default=[],
                   help="response N (from 1) answers a HEAD request")
    p.add_argument("--timeout", type=float, default=30)
    p = sub.add_parser("upgrade")
    p.add_argument("--connect", required=True)
    p.add_argument("--host", required=True)
    p.add_argument("--path", default="/ws/")
    p.add_argument("--send", type=int, default=1 << 20)
    p.add_argument("--timeout", type=float, default=30)
    a = ap.parse_args()
    return cmd_raw(a) if a.cmd == "raw" else cmd_upgrade(a)


if __name__ == "__main__":
    sys.exit(main() or 0)
