#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A small HTTP/1.1 upstream for sluice's HTTP tests (python3 stdlib only).

  http-upstream.py --listen 127.0.0.1:9000

- POST or PUT (any path): reads the body (Content-Length or chunked) and
  answers 200 with one JSON line: {"path": ..., "len": N, "sha256": "..."}.
- GET with an Upgrade header: answers 101 Switching Protocols and then
  echoes every byte it reads until the client's FIN, then closes.
- GET /stream/N: N bytes (stream_bytes(N)) without Content-Length, the end
  of the body being the end of the connection; nginx passes such a body on
  to an HTTP/1.1 client chunked.
- GET /stall/N: a response announcing 2N bytes that sends N and then
  nothing for 60 s (a server that stops in the middle of a response).
- Anything else: 404.

It runs behind nginx (proxy_pass), so that the request framing the filter
follows is also the one a real server parsed.
"""

import argparse
import hashlib
import http.server
import json
import socket
import sys
import time


def stream_bytes(n):
    """The body of /stream/N: bytes 0..255 repeated."""
    block = bytes(range(256))
    return (block * (n // 256 + 1))[:n]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("http-upstream: %s %s\n" % (self.address_string(), fmt % args))

    def _body(self):
        h = hashlib.sha256()
        n = 0
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                left = size
                while left:
                    b = self.rfile.read(min(left, 1 << 20))
                    if not b:
                        raise EOFError("body cut short")
                    h.update(b)
                    n += len(b)
                    left -= len(b)
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length", "0"))
            while left:
                b = self.rfile.read(min(left, 1 << 20))
                if not b:
                    raise EOFError("body cut short")
                h.update(b)
                n += len(b)
                left -= len(b)
        return n, h.hexdigest()

    def _reply(self, code, text):
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n, sha = self._body()
        self._reply(200, json.dumps({"path": self.path, "len": n, "sha256": sha}) + "\n")

    do_PUT = do_POST

    def do_GET(self):
        if self.path.startswith("/stream/"):
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            self.wfile.write(stream_bytes(int(self.path[len("/stream/"):])))
            self.close_connection = True
            return
        if self.path.startswith("/stall/"):
            n = int(self.path[len("/stall/"):])
            self.send_response(200)
            self.send_header("Content-Length", str(2 * n))
            self.end_headers()
            self.wfile.write(stream_bytes(n))
            self.wfile.flush()
            time.sleep(60)
            self.close_connection = True
            return
        if not self.headers.get("Upgrade"):
            self._reply(404, "{}\n")
            return
        self.send_response(101)
        self.send_header("Upgrade", self.headers["Upgrade"])
        self.send_header("Connection", "Upgrade")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        sock = self.connection
        # What rfile has buffered beyond the head comes first.
        pending = self.rfile.peek(1 << 20) if hasattr(self.rfile, "peek") else b""
        if pending:
            self.rfile.read(len(pending))
            sock.sendall(pending)
        while True:
            b = sock.recv(1 << 16)
            if not b:
                break
            sock.sendall(b)
        sock.shutdown(socket.SHUT_WR)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True, help="HOST:PORT")
    a = ap.parse_args()
    host, _, port = a.listen.rpartition(":")
    srv = http.server.ThreadingHTTPServer((host, int(port)), Handler)
    srv.daemon_threads = True
    srv.serve_forever()


if __name__ == "__main__":
    main()
