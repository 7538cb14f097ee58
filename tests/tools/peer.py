#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""TCP test peer for sluice's integration tests (python3 stdlib only).

Both ends send a payload while they receive, hash what they send and what
they receive with sha256, and print one JSON line per connection:

  {"role": "client", "sent": N, "sent_sha256": "...", "recv": M,
   "recv_sha256": "...", "send_error": null, "recv_error": null, ...}

By default each side shuts down writing (FIN) after its payload and reads
until EOF, so a run checks both directions and the half-close of each.

  peer.py server --listen 127.0.0.1:0 --port-file P [--send 10M] [--count 1]
  peer.py client --connect 127.0.0.1:9000 --send 10M [--conns 200]
  peer.py compare --client C.json --server S.json [--count 200]

Sizes take K, M, G suffixes (powers of 1024) and ranges "64K-1M" (a random
size in the range for each connection). Payloads are random; above 1 MiB a
random 1 MiB block is sent in 256 KiB slices whose start advances by an odd
stride, so no two slices of a long stream repeat for 256 GiB and a dropped,
doubled or reordered slice changes the hash.
"""

import argparse
import errno
import hashlib
import json
import os
import random
import socket
import struct
import sys
import threading
import time

CHUNK = 256 * 1024
BLOCK = 1024 * 1024
STRIDE = CHUNK + 4093  # odd, so the slice start cycles through all of BLOCK

_out_lock = threading.Lock()


def parse_size(text):
    text = text.strip()
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.upper()
    for suffix in ("KIB", "MIB", "GIB"):
        if t.endswith(suffix):
            t = t[:-2]
    if t.endswith("B") and t[:-1] and t[-2:-1].isdigit():
        t = t[:-1]
    unit = ""
    if t and t[-1] in "KMG":
        unit, t = t[-1], t[:-1]
    try:
        n = float(t) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError("bad size: %r" % text)
    if n < 0:
        raise argparse.ArgumentTypeError("negative size: %r" % text)
    return int(n)


def parse_range(text):
    """'N' -> (N, N); 'A-B' -> (A, B)."""
    if "-" in text.strip()[1:]:
        a, b = text.split("-", 1)
        lo, hi = parse_size(a), parse_size(b)
        if lo > hi:
            raise argparse.ArgumentTypeError("empty range: %r" % text)
        return (lo, hi)
    n = parse_size(text)
    return (n, n)


def parse_hostport(text):
    """'127.0.0.1:9000' or '[::1]:9000' -> (family, host, port)."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        return socket.AF_INET6, host, int(port)
    host, _, port = text.rpartition(":")
    if not host:
        raise argparse.ArgumentTypeError("need HOST:PORT: %r" % text)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    return fam, host, int(port)


def err_name(e):
    if isinstance(e, socket.timeout):
        return "timeout"
    if isinstance(e, OSError) and e.errno:
        return errno.errorcode.get(e.errno, str(e.errno))
    return type(e).__name__ + ": " + str(e)


class Payload:
    """size bytes of random data, produced as memoryview slices of <= CHUNK."""

    def __init__(self, size):
        self.size = size
        self.rotate = size > BLOCK
        if self.rotate:
            b = os.urandom(BLOCK)
            self.view = memoryview(b + b[:CHUNK])
        else:
            self.view = memoryview(os.urandom(size))

    def chunks(self):
        left = self.size
        pos = 0
        while left > 0:
            n = min(CHUNK, left)
            yield self.view[pos:pos + n]
            left -= n
            pos = (pos + STRIDE) % BLOCK if self.rotate else pos + n


class Progress:
    """Byte counters of all connections of this process, optionally written
    to a file every 50 ms as "SENT RECV\\n" (replaced atomically)."""

    def __init__(self, path):
        self.sent = 0
        self.recv = 0
        self.path = path
        self.lock = threading.Lock()
        # The 50 ms writer and a final write must not share the .tmp file.
        self.write_lock = threading.Lock()
        if path:
            self.write()
            t = threading.Thread(target=self._loop, daemon=True)
            t.start()

    def add(self, sent=0, recv=0):
        with self.lock:
            self.sent += sent
            self.recv += recv

    def write(self):
        with self.write_lock:
            tmp = self.path + ".tmp"
            with open(tmp, "w") as f:
                f.write("%d %d\n" % (self.sent, self.recv))
            os.replace(tmp, self.path)

    def _loop(self):
        while True:
            time.sleep(0.05)
            self.write()


class Conn:
    """One connection's traffic: send a payload while receiving."""

    def __init__(self, sock, role, args, send_size, progress):
        self.sock = sock
        self.role = role
        self.args = args
        self.progress = progress
        self.payload = Payload(send_size)
        self.res = {
            "role": role, "sent": 0, "sent_sha256": None, "recv": 0,
            "recv_sha256": None, "send_error": None, "recv_error": None,
            "start": time.time(),
        }

    def send(self):
        a = self.args
        h = hashlib.sha256()
        sent = 0
        rst = a.rst_after
        try:
            for c in self.payload.chunks():
                if rst is not None and sent + len(c) >= rst:
                    c = c[:rst - sent]
                self.sock.sendall(c)
                h.update(c)
                sent += len(c)
                self.progress.add(sent=len(c))
                if rst is not None and sent >= rst:
                    break
            if rst is not None:
                self.reset()
            elif not a.no_half_close:
                self.sock.shutdown(socket.SHUT_WR)
                self.res["fin_at"] = time.time()
        except OSError as e:
            self.res["send_error"] = err_name(e)
            self.res["send_error_at"] = time.time()
        self.res["sent"] = sent
        self.res["sent_sha256"] = h.hexdigest()

    def reset(self):
        """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.res["rst_at"] = time.time()
        self.sock.close()

    def recv(self):
        a = self.args
        h = hashlib.sha256()
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        got = 0
        size = CHUNK
        rate = a.read_rate
        if rate:
            # Small reads at short intervals keep the rate smooth.
            size = max(1024, min(CHUNK, rate // 20))
        start = time.monotonic()
        try:
            while True:
                n = self.sock.recv_into(view[:size])
                if n == 0:
                    self.res["eof_at"] = time.time()
                    break
                h.update(view[:n])
                got += n
                self.progress.add(recv=n)
                if a.rst_after is not None and self.role == "server" and got >= a.rst_after:
                    self.reset()
                    break
                if rate:
                    ahead = start + got / rate - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
        except OSError as e:
            self.res["recv_error"] = err_name(e)
            self.res["recv_error_at"] = time.time()
        self.res["recv"] = got
        self.res["recv_sha256"] = h.hexdigest()

    def run(self):
        a = self.args
        if a.rst_after is not None and self.role == "server":
            # The server resets after reading rst_after bytes; it sends nothing.
            self.res["sent_sha256"] = hashlib.sha256().hexdigest()
            self.recv()
        elif a.rst_after is not None:
            # The client resets after sending rst_after bytes and reads nothing.
            self.send()
            self.res["recv_sha256"] = hashlib.sha256().hexdigest()
        elif a.reply_after_eof:
            self.recv()
            self.send()
        else:
            t = threading.Thread(target=self.recv)
            t.start()
            self.send()
            t.join()
        self.res["end"] = time.time()
        if "rst_at" not in self.res:
            try:
                self.sock.close()
            except OSError:
                pass
        emit(self.res)
        return self.res


def emit(obj):
    line = json.dumps(obj, sort_keys=True)
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def pick(rng):
    lo, hi = rng
    return lo if lo == hi else random.randint(lo, hi)


def cmd_server(a):
    fam, host, port = parse_hostport(a.listen)
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if a.rcvbuf:
        # Set before listen() so accepted sockets inherit it (and the
        # window scale is chosen for it).
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, a.rcvbuf)
    ls.bind((host, port))
    ls.listen(1024)
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % ls.getsockname()[1])
        os.replace(tmp, a.port_file)
    progress = Progress(a.progress)
    threads = []
    accepted = 0
    while a.count is None or accepted < a.count:
        s, _ = ls.accept()
        accepted += 1
        if a.io_timeout:
            s.settimeout(a.io_timeout)
        c = Conn(s, "server", a, pick(a.send), progress)
        t = threading.Thread(target=c.run)
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    if a.progress:
        progress.write()
    return 0


def cmd_client(a):
    fam, host, port = parse_hostport(a.connect)
    progress = Progress(a.progress)
    failed = []

    def one():
        t0 = time.time()
        try:
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.settimeout(a.connect_timeout)
            s.connect((host, port))
            s.settimeout(a.io_timeout or None)
        except OSError as e:
            emit({"role": "client", "connect_error": err_name(e), "start": t0,
                  "end": time.time(), "sent": 0, "recv": 0,
                  "sent_sha256": None, "recv_sha256": None,
                  "send_error": None, "recv_error": None})
            failed.append(1)
            return
        Conn(s, "client", a, pick(a.send), progress).run()

    if a.conns == 1:
        one()
    else:
        threads = [threading.Thread(target=one) for _ in range(a.conns)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if a.progress:
        progress.write()
    return 0


def load(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                out.append(json.loads(line))
    return out


def cmd_compare(a):
    """Checks that every connection ended cleanly and that what one side
    sent is, as a multiset of (length, sha256), what the other received."""
    cl, sv = load(a.client), load(a.server)
    problems = []
    for name, recs in (("client", cl), ("server", sv)):
        if a.count is not None and len(recs) != a.count:
            problems.append("%d %s connections reported, expected %d" % (len(recs), name, a.count))
        for r in recs:
            for k in ("connect_error", "send_error", "recv_error"):
                if r.get(k):
                    problems.append("%s %s: %s (sent %d, recv %d)" % (name, k, r[k], r["sent"], r["recv"]))
    for src, dst, what in ((cl, sv, "client->server"), (sv, cl, "server->client")):
        sent = sorted((r["sent"], r["sent_sha256"]) for r in src)
        got = sorted((r["recv"], r["recv_sha256"]) for r in dst)
        if sent != got:
            lost = [x for x in sent if x not in got]
            extra = [x for x in got if x not in sent]
            problems.append("%s: %d streams sent do not match what arrived; sent-not-received %s; received-not-sent %s"
                            % (what, len(lost), lost[:3], extra[:3]))
    if a.expect_out is not None:
        bad = [r["sent"] for r in cl if r["sent"] != a.expect_out]
        if bad:
            problems.append("client sent %s bytes, expected %d" % (bad[:3], a.expect_out))
    if a.expect_in is not None:
        bad = [r["recv"] for r in cl if r["recv"] != a.expect_in]
        if bad:
            problems.append("client received %s bytes, expected %d" % (bad[:3], a.expect_in))
    if problems:
        for p in problems[:20]:
            print("compare: " + p)
        return 1
    print("compare: %d connections intact, %d bytes out, %d bytes in"
          % (len(cl), sum(r["sent"] for r in cl), sum(r["recv"] for r in cl)))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp):
        sp.add_argument("--send", type=parse_range, default=(0, 0),
                        help="bytes to send per connection (N or MIN-MAX)")
        sp.add_argument("--read-rate", type=parse_size, default=0,
                        help="read at most this many bytes per second")
        sp.add_argument("--rst-after", type=parse_size, default=None,
                        help="client: reset after sending this many bytes; server: after receiving")
        sp.add_argument("--no-half-close", action="store_true",
                        help="do not shutdown(SHUT_WR) after sending")
        sp.add_argument("--reply-after-eof", action="store_true",
                        help="read until EOF before sending")
        sp.add_argument("--io-timeout", type=float, default=300,
                        help="seconds a single send or recv may block (0: forever)")
        sp.add_argument("--progress", help="write 'SENT RECV' totals to this file every 50 ms")

    s = sub.add_parser("server")
    s.add_argument("--listen", required=True)
    s.add_argument("--port-file", help="write the bound port here once listening")
    s.add_argument("--count", type=int, default=None, help="exit after this many connections")
    s.add_argument("--rcvbuf", type=parse_size, default=0, help="SO_RCVBUF of accepted sockets")
    common(s)

    c = sub.add_parser("client")
    c.add_argument("--connect", required=True)
    c.add_argument("--conns", type=int, default=1, help="concurrent connections")
    c.add_argument("--connect-timeout", type=float, default=10)
    common(c)

    m = sub.add_parser("compare")
    m.add_argument("--client", required=True)
    m.add_argument("--server", required=True)
    m.add_argument("--count", type=int, default=None)
    m.add_argument("--expect-out", type=parse_size, default=None, help="bytes each client must have sent")
    m.add_argument("--expect-in", type=parse_size, default=None, help="bytes each client must have received")

    a = p.parse_args()
    return {"server": cmd_server, "client": cmd_client, "compare": cmd_compare}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
