#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Exact-bytes TCP peers for sluice's verdict tests (python3 stdlib only).

  bytes_peer.py server --listen 127.0.0.1:9000 [--reply TEXT] [--reply-when eof]
  bytes_peer.py client --connect 127.0.0.1:9001 STEP...

The server accepts connections until it is stopped (or --count of them have
ended), one thread each, and writes JSON lines to stdout: one
{"event": "accept", "conn": N} as soon as it accepts, and one
{"event": "done", "conn": N, ...} when the connection is over, with what it
received ("recv", "recv_sha256", and "recv_data", the bytes as a latin-1
string, up to --data-max bytes) and how reading ended ("recv_end": "eof",
"ECONNRESET", ...), and what it sent ("sent", "sent_sha256", "send_error").
It sends --reply (Python string escapes, e.g. 'OK\\r\\n') followed by
--reply-random random bytes: on accept, or after it read EOF (the default),
or never; then it shuts down writing and, if it has not yet, reads until EOF.

The client connects, starts a reader thread at once (so a reset is seen
whenever it comes), runs its steps in order, then waits for the reader
(--io-timeout) and prints one JSON line: "sent", "sent_sha256",
"sent_data", "send_error", "recv", "recv_sha256", "recv_data", "recv_end",
"connect_error". Steps:

  send:TEXT       send bytes (Python string escapes)
  random:SIZE     send SIZE random bytes (K, M suffixes)
  file:PATH       send the bytes of a file
  sleep:SECONDS   pause (so that the relay reads the chunks apart)
  wait-file:PATH  pause until PATH exists (60 s at most)
  shut            shutdown(SHUT_WR)
  recv            wait until the reader has seen EOF or an error

A failed send ends the steps (and is recorded); the exit status is 0
unless the arguments are wrong: the test judges the JSON.
"""

import argparse
import errno
import hashlib
import json
import os
import socket
import sys
import threading
import time

CHUNK = 64 * 1024
_lock = threading.Lock()


def emit(rec):
    with _lock:
        sys.stdout.write(json.dumps(rec, sort_keys=True) + "\n")
        sys.stdout.flush()


def unescape(text):
    return text.encode("latin-1").decode("unicode_escape").encode("latin-1")


def parse_size(text):
    t = text.strip().upper()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(t[-1:], 1)
    return int(float(t[:-1] if mult > 1 else t) * mult)


def hostport(text):
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    return (socket.AF_INET6 if ":" in host else socket.AF_INET), host, int(port)


def err_name(e):
    if isinstance(e, socket.timeout):
        return "timeout"
    if isinstance(e, OSError) and e.errno:
        return errno.errorcode.get(e.errno, str(e.errno))
    return type(e).__name__


class Side:
    """Hashes and keeps (up to data_max) the bytes of one direction."""

    def __init__(self, data_max):
        self.n = 0
        self.h = hashlib.sha256()
        self.data = bytearray()
        self.data_max = data_max

    def add(self, b):
        self.n += len(b)
        self.h.update(b)
        if len(self.data) <= self.data_max:
            self.data += b

    def fields(self, prefix, rec):
        rec[prefix] = self.n
        rec[prefix + "_sha256"] = self.h.hexdigest()
        if self.n <= self.data_max:
            rec[prefix + "_data"] = bytes(self.data).decode("latin-1")


def reader(sock, side, rec, rate=0):
    start = time.monotonic()
    try:
        while True:
            b = sock.recv(CHUNK if not rate else max(1024, min(CHUNK, rate // 20)))
            if not b:
                rec["recv_end"] = "eof"
                break
            side.add(b)
            if rate:
                ahead = start + side.n / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
    except OSError as e:
        rec["recv_end"] = err_name(e)
    rec["recv_end_at"] = time.time()


def serve(conn, n, a):
    rec = {"event": "done", "conn": n, "send_error": None, "recv_end": None}
    rside, sside = Side(a.data_max), Side(a.data_max)
    conn.settimeout(a.io_timeout or None)
    reply = a.reply + os.urandom(a.reply_random)

    def send_reply():
        try:
            if reply:
                conn.sendall(reply)
                sside.add(reply)
            conn.shutdown(socket.SHUT_WR)
        except OSError as e:
            rec["send_error"] = err_name(e)

    if a.reply_when == "accept":
        t = threading.Thread(target=reader, args=(conn, rside, rec, a.read_rate))
        t.start()
        send_reply()
        t.join()
    else:
        reader(conn, rside, rec, a.read_rate)
        if a.reply_when == "eof" and rec["recv_end"] == "eof":
            send_reply()
    rside.fields("recv", rec)
    sside.fields("sent", rec)
    try:
        conn.close()
    except OSError:
        pass
    emit(rec)


def cmd_server(a):
    fam, host, port = hostport(a.listen)
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(128)
    threads = []
    n = 0
    while a.count is None or n < a.count:
        conn, peer = ls.accept()
        n += 1
        emit({"event": "accept", "conn": n, "peer_port": peer[1], "t": time.time()})
        t = threading.Thread(target=serve, args=(conn, n, a))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    return 0


def cmd_client(a):
    fam, host, port = hostport(a.connect)
    rec = {"connect_error": None, "send_error": None, "recv_end": None}
    sside, rside = Side(a.data_max), Side(a.data_max)
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(10)
    try:
        s.connect((host, port))
    except OSError as e:
        rec["connect_error"] = err_name(e)
        sside.fields("sent", rec)
        rside.fields("recv", rec)
        emit(rec)
        return 0
    s.settimeout(a.io_timeout or None)
    t = threading.Thread(target=reader, args=(s, rside, rec), daemon=True)
    t.start()
    try:
        for step in a.steps:
            kind, _, arg = step.partition(":")
            if kind == "send":
                b = unescape(arg)
                s.sendall(b)
                sside.add(b)
            elif kind == "random":
                left = parse_size(arg)
                while left:
                    b = os.urandom(min(CHUNK, left))
                    s.sendall(b)
                    sside.add(b)
                    left -= len(b)
            elif kind == "file":
                with open(arg, "rb") as f:
                    while True:
                        b = f.read(CHUNK)
                        if not b:
                            break
                        s.sendall(b)
                        sside.add(b)
            elif kind == "sleep":
                time.sleep(float(arg))
            elif kind == "wait-file":
                end = time.monotonic() + 60
                while not os.path.exists(arg) and time.monotonic() < end:
                    time.sleep(0.02)
            elif kind == "shut":
                s.shutdown(socket.SHUT_WR)
            elif kind == "recv":
                t.join(a.io_timeout or None)
            else:
                raise SystemExit("bytes_peer: unknown step %r" % step)
    except OSError as e:
        rec["send_error"] = err_name(e)
    t.join(a.io_timeout or None)
    if t.is_alive():
        rec["recv_end"] = "timeout"
    sside.fields("sent", rec)
    rside.fields("recv", rec)
    emit(rec)
    try:
        s.close()
    except OSError:
        pass
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sv = sub.add_parser("server")
    sv.add_argument("--listen", required=True)
    sv.add_argument("--count", type=int)
    sv.add_argument("--reply", type=unescape, default=b"")
    sv.add_argument("--reply-random", type=parse_size, default=0)
    sv.add_argument("--reply-when", choices=("accept", "eof", "never"), default="eof")
    sv.add_argument("--read-rate", type=parse_size, default=0, help="bytes per second")
    cl = sub.add_parser("client")
    cl.add_argument("--connect", required=True)
    cl.add_argument("steps", nargs="*")
    for x in (sv, cl):
        x.add_argument("--data-max", type=parse_size, default=64 * 1024)
        x.add_argument("--io-timeout", type=float, default=30)
    a = p.parse_args()
    return cmd_server(a) if a.cmd == "server" else cmd_client(a)


if __name__ == "__main__":
    sys.exit(main())
