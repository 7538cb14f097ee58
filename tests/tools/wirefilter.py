#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A minimal sluice filter and a raw channel probe that speak the wire
protocol themselves (python3 stdlib only), for the reliability, limits and
access tests. Layouts: docs/protocol.md (all integers little-endian).

  wirefilter.py filter --socket PATH [--name NAME] [--decided FILE]
                       [--hold-after BYTES] [--max-frame N] [--worker N]

    Sends HELLO (asking for daemon worker N, 0 for any), waits for the
    daemon's, prints `wirefilter: connected max_frame=M window=W worker=K
    workers=N` on stdout and then answers every DATA frame with
    PASS up to its end (never backwards: a re-offered frame is passed only
    beyond what was decided), and every EOF with PASS up to it and SHUTDOWN.
    --decided FILE: before each PASS of the out direction is sent, its
    offset is appended to FILE as a line (written at once, so the last line
    is, even after SIGKILL, at least the offset the daemon may have been
    told). --hold-after BYTES: the out direction is passed up to BYTES only;
    later out bytes are left undecided (no verdict, no peek), and
    `wirefilter: holding flow ID at BYTES` is printed once per flow.
    OPEN (`resume` when it carries resume offsets), CLOSE and ERROR frames
    are printed too; when the daemon closes the channel it prints
    `wirefilter: channel closed` and exits 1.

  wirefilter.py probe --socket PATH [--name NAME] [--oversize N] [--wait S]
                      [--worker N]

    Connects, sends HELLO and reports what happened as one JSON line:
    connect_error (e.g. "EACCES"), hello (the daemon's HELLO fields, or
    null), and closed/how: whether the daemon closed the channel within
    --wait seconds after the last thing we sent ("eof", "ECONNRESET", ...,
    or "timeout" with closed false). --oversize N: after the daemon's HELLO
    (or after --wait without it), send a VERDICT frame N bytes long.
"""

import argparse
import errno
import json
import os
import socket
import struct
import sys
import time

HEADER = 8
VERSION = 2
DEFAULT_MAX = 1024 * 1024 + 64
HELLO, OPEN, DATA, EOF, CLOSE, VERDICT, OPEN_VERDICT, ERROR, SUBSCRIBE = range(1, 10)
PASS, SHUTDOWN = 1, 7
OPEN_F_RESUME = 1 << 5
OUT = 0


def hello_frame(name, max_frame, worker=0):
    body = struct.pack("<HBBIII", VERSION, worker, 0, max_frame, 0, 0) + name.encode()
    return struct.pack("<IBBH", HEADER + len(body), HELLO, 0, 0) + body


def verdict_frame(flow, d, op, to=0, frm=0, data=b""):
    body = struct.pack("<QBBHIQQ", flow, d, op, 0, 0, frm, to) + data
    return struct.pack("<IBBH", HEADER + len(body), VERDICT, 0, 0) + body


def parse_hello(b):
    version, worker, workers, max_frame, window, features = struct.unpack_from("<HBBIII", b, HEADER)
    return {"version": version, "worker": worker, "workers": workers,
            "max_frame": max_frame, "window": window,
            "features": features, "name": bytes(b[HEADER + 16:]).decode("latin-1")}


def say(text):
    sys.stdout.write("wirefilter: " + text + "\n")
    sys.stdout.flush()


def errname(e):
    if isinstance(e, socket.timeout):
        return "timeout"
    if getattr(e, "errno", None):
        return errno.errorcode.get(e.errno, str(e.errno))
    return type(e).__name__


class Reader:
    """Frames from a blocking socket, without copying DATA payloads."""

    def __init__(self, sock, size):
        self.sock = sock
        self.buf = bytearray(size)
        self.view = memoryview(self.buf)
        self.start = 0
        self.end = 0

    def frame(self):
        """Returns a memoryview of the next whole frame, or None at EOF."""
        while True:
            avail = self.end - self.start
            if avail >= HEADER:
                (flen,) = struct.unpack_from("<I", self.buf, self.start)
                if flen < HEADER or flen > len(self.buf):
                    raise SystemExit("wirefilter: bad frame length %d from the daemon" % flen)
                if avail >= flen:
                    f = self.view[self.start:self.start + flen]
                    self.start += flen
                    return f
                need = flen
            else:
                need = HEADER
            if self.start + need > len(self.buf):
                self.buf[:avail] = self.buf[self.start:self.end]
                self.start, self.end = 0, avail
            n = self.sock.recv_into(self.view[self.end:])
            if n == 0:
                return None
            self.end += n


def cmd_filter(a):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(a.socket)
    s.sendall(hello_frame(a.name, a.max_frame, a.worker))
    rd = Reader(s, 2 * a.max_frame + 65536)
    dfd = os.open(a.decided, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if a.decided else None
    f = rd.frame()
    if f is None or f[4] != HELLO:
        say("no HELLO from the daemon")
        return 1
    h = parse_hello(f)
    say("connected max_frame=%d window=%d worker=%d workers=%d"
        % (h["max_frame"], h["window"], h["worker"], h["workers"]))
    decided = {}  # (flow, dir) -> offset
    holding = set()

    def pass_to(flow, d, to):
        if to <= decided.get((flow, d), 0):
            return
        if d == OUT and a.hold_after is not None and to > a.hold_after:
            to = a.hold_after
            if flow not in holding:
                holding.add(flow)
                say("holding flow %d at %d" % (flow, to))
            if to <= decided.get((flow, d), 0):
                return
        decided[(flow, d)] = to
        if d == OUT and dfd is not None:
            os.write(dfd, b"%d\n" % to)
        s.sendall(verdict_frame(flow, d, PASS, to=to))

    while True:
        try:
            f = rd.frame()
        except OSError as e:
            say("channel closed (%s)" % errname(e))
            return 1
        if f is None:
            say("channel closed")
            return 1
        t = f[4]
        if t == DATA:
            flow, d, off = struct.unpack_from("<QB7xQ", f, HEADER)
            pass_to(flow, d, off + len(f) - HEADER - 24)
        elif t == EOF:
            flow, d, off = struct.unpack_from("<QB7xQ", f, HEADER)
            if not (d == OUT and a.hold_after is not None and off > a.hold_after):
                pass_to(flow, d, off)
                s.sendall(verdict_frame(flow, d, SHUTDOWN))
        elif t == OPEN:
            (flow,) = struct.unpack_from("<Q", f, HEADER)
            if f[5] & OPEN_F_RESUME:
                do, oo, di, oi = struct.unpack_from("<QQQQ", f, HEADER + 64)
                decided[(flow, 0)], decided[(flow, 1)] = do, di
                say("resume flow %d out decided %d offered %d in decided %d offered %d"
                    % (flow, do, oo, di, oi))
            else:
                say("open flow %d" % flow)
        elif t == CLOSE:
            flow, reason = struct.unpack_from("<QI", f, HEADER)
            decided.pop((flow, 0), None)
            decided.pop((flow, 1), None)
            say("close flow %d reason %d" % (flow, reason))
        elif t == ERROR:
            flow, code = struct.unpack_from("<QI", f, HEADER)
            say("error flow %d code %d: %s" % (flow, code, bytes(f[HEADER + 16:]).decode("latin-1")))


def cmd_probe(a):
    res = {"connect_error": None, "hello": None, "closed": None, "how": None}
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(a.socket)
    except OSError as e:
        res["connect_error"] = errname(e)
        print(json.dumps(res, sort_keys=True))
        return 0
    buf = bytearray()

    def read_some(deadline):
        """Reads what arrives until deadline; returns False once closed."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout()
            s.settimeout(left)
            b = s.recv(65536)
            if not b:
                return False
            buf.extend(b)
            return True

    def wait_close():
        deadline = time.monotonic() + a.wait
        try:
            while read_some(deadline):
                pass
            res["closed"], res["how"] = True, "eof"
        except OSError as e:
            res["closed"], res["how"] = (False, "timeout") if isinstance(e, socket.timeout) \
                else (True, errname(e))

    try:
        s.sendall(hello_frame(a.name, DEFAULT_MAX, a.worker))
    except OSError as e:
        res["send_error"] = errname(e)
    deadline = time.monotonic() + a.wait
    try:
        while len(buf) < HEADER or len(buf) < struct.unpack_from("<I", buf)[0]:
            if not read_some(deadline):
                res["closed"], res["how"] = True, "eof"
                break
    except OSError as e:
        if isinstance(e, socket.timeout):
            res["how"] = "timeout"
        else:
            res["closed"], res["how"] = True, errname(e)
    if len(buf) >= HEADER + 16 and buf[4] == HELLO:
        res["hello"] = parse_hello(memoryview(buf)[:struct.unpack_from("<I", buf)[0]])
    if res["closed"] is None:
        if a.oversize:
            body = struct.pack("<QBBHIQQ", 1, 0, PASS, 0, 0, 0, 0)
            body += b"\0" * (a.oversize - HEADER - len(body))
            try:
                s.sendall(struct.pack("<IBBH", a.oversize, VERDICT, 0, 0) + body)
                res["oversize_sent"] = a.oversize
            except OSError as e:
                res["send_error"] = errname(e)
        wait_close()
    s.close()
    print(json.dumps(res, sort_keys=True))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("filter")
    f.add_argument("--socket", required=True)
    f.add_argument("--name", default="wirefilter")
    f.add_argument("--decided")
    f.add_argument("--hold-after", type=int)
    f.add_argument("--max-frame", type=int, default=DEFAULT_MAX)
    f.add_argument("--worker", type=int, default=0, help="the worker the HELLO asks for (0: any)")
    q = sub.add_parser("probe")
    q.add_argument("--socket", required=True)
    q.add_argument("--name", default="probe")
    q.add_argument("--oversize", type=int, default=0)
    q.add_argument("--worker", type=int, default=0, help="the worker the HELLO asks for (0: any)")
    q.add_argument("--wait", type=float, default=3.0)
    a = p.parse_args()
    return {"filter": cmd_filter, "probe": cmd_probe}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
