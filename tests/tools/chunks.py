#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Both ends of one TCP connection through a rewriting filter, and the judge.

  chunks.py --listen UP --connect LISTEN --from F --to T --rewrite out|in|both|none
            split [--pause 0.1]
            random [--size 50M] [--plant 20000] [--seed N]

listens on UP (sluiced's upstream), connects to LISTEN (sluiced's listener),
and sends a payload in each direction at once: client to server (out) and
server to client (in). Each side shuts down writing after its payload and
reads until EOF. The bytes that arrive in a direction must be exactly the
payload with every F replaced by T (python's bytes.replace) if that direction
is rewritten, and exactly the payload otherwise.

split: each payload is written in parts, with TCP_NODELAY and a pause between
writes so that each part is a chunk of its own, and every part but the last
ends inside an occurrence of F: for each k in 1..len(F)-1, one part ends with
F[:k] and the next begins with F[k:]. The parts also hold whole occurrences,
false starts (F[:k] then another byte) and a start followed by a whole
occurrence, and the stream ends with F minus its last byte.

random: SIZE random bytes with F planted at PLANT random places (and as many
F[:-1] false starts), written in slices of random size without pauses;
checked by length and sha256.

F and T take the escapes \\\\ \\n \\r \\t \\xHH, as sluice-rewrite does.
Prints one line per direction; exits 1 if any direction is wrong.
"""

import argparse
import hashlib
import random
import re
import socket
import sys
import threading
import time


def unescape(text):
    simple = {"\\": b"\\", "n": b"\n", "r": b"\r", "t": b"\t"}
    out = bytearray()
    i = 0
    raw = text.encode()
    while i < len(raw):
        ch = raw[i:i + 1]
        if ch != b"\\":
            out += ch
            i += 1
            continue
        e = raw[i + 1:i + 2].decode()
        if e in simple:
            out += simple[e]
            i += 2
        elif e == "x" and re.fullmatch(rb"[0-9a-fA-F]{2}", raw[i + 2:i + 4]):
            out.append(int(raw[i + 2:i + 4], 16))
            i += 4
        else:
            raise argparse.ArgumentTypeError("bad escape in %r" % text)
    return bytes(out)


def parse_size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text and text[-1].upper() in units:
        return int(float(text[:-1]) * units[text[-1].upper()])
    return int(text)


def split_parts(f, label):
    """Parts such that F straddles the boundary between two consecutive parts
    at every position k in 1..len(F)-1."""
    parts = []
    head = f + b" " + label + b" starts with a match, "
    for k in range(1, len(f)):
        p = b"%s[%d] %s %sx %s%s mid %s" % (head, k, f, f[:k], f[:k], f, f[:k])
        parts.append(p)
        head = f[k:]
    parts.append(head + b" " + label + b" ends with a false start " + f[:-1])
    return parts


def random_parts(f, size, plant, rng):
    """SIZE random bytes with F and F[:-1] planted, in slices of 1 to 256 KiB."""
    filler = size - plant * (2 * len(f) - 1)
    if filler < 0:
        sys.exit("chunks.py: --size too small for --plant")
    data = rng.randbytes(filler)
    cuts = sorted(rng.randrange(filler + 1) for _ in range(2 * plant))
    pieces, last = [], 0
    for i, c in enumerate(cuts):
        pieces.append(data[last:c])
        pieces.append(f if i % 2 == 0 else f[:-1])
        last = c
    pieces.append(data[last:])
    payload = b"".join(pieces)
    parts, pos = [], 0
    while pos < len(payload):
        n = rng.randint(1, 256 * 1024)
        parts.append(payload[pos:pos + n])
        pos += n
    return parts


class End:
    """One end of the connection: sends its parts while it receives."""

    def __init__(self, sock, parts, pause, keep):
        self.sock = sock
        self.parts = parts
        self.pause = pause
        self.keep = keep
        self.got = bytearray()
        self.hash = hashlib.sha256()
        self.len = 0
        self.error = None

    def send(self):
        try:
            for i, p in enumerate(self.parts):
                self.sock.sendall(p)
                if self.pause and i + 1 < len(self.parts):
                    time.sleep(self.pause)
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            self.error = "send: %s" % e

    def recv(self):
        try:
            while True:
                b = self.sock.recv(256 * 1024)
                if not b:
                    break
                self.hash.update(b)
                self.len += len(b)
                if self.keep:
                    self.got += b
        except OSError as e:
            self.error = "recv: %s" % e

    def run(self):
        t = threading.Thread(target=self.recv)
        t.start()
        self.send()
        t.join()
        self.sock.close()


def judge(name, sent, end, f, t, rewritten):
    payload = b"".join(sent)
    want = payload.replace(f, t) if rewritten else payload
    what = "rewritten" if rewritten else "untouched"
    if end.error:
        print("%s: FAIL: %s" % (name, end.error))
        return False
    if end.keep:
        got = bytes(end.got)
        if got != want:
            i = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]),
                     min(len(got), len(want)))
            print("%s: FAIL: expected %d bytes (%s), received %d; first difference at %d:\n"
                  "  expected %r\n  received %r"
                  % (name, len(want), what, len(got), i, want[max(0, i - 20):i + 40],
                     got[max(0, i - 20):i + 40]))
            return False
    elif end.len != len(want) or end.hash.hexdigest() != hashlib.sha256(want).hexdigest():
        print("%s: FAIL: expected %d bytes (%s) sha256 %s, received %d sha256 %s"
              % (name, len(want), what, hashlib.sha256(want).hexdigest()[:16], end.len,
                 end.hash.hexdigest()[:16]))
        return False
    print("%s: ok: %d bytes sent, %d received (%s, %d matches)"
          % (name, len(payload), len(want), what, payload.count(f)))
    return True


def hostport(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", required=True, help="HOST:PORT the server end listens on")
    p.add_argument("--connect", required=True, help="HOST:PORT the client end connects to")
    p.add_argument("--from", dest="frm", required=True, type=unescape)
    p.add_argument("--to", required=True, type=unescape)
    p.add_argument("--rewrite", choices=("out", "in", "both", "none"), required=True,
                   help="the directions the filter rewrites")
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("split")
    s.add_argument("--pause", type=float, default=0.1)
    r = sub.add_parser("random")
    r.add_argument("--size", type=parse_size, default=50 << 20)
    r.add_argument("--plant", type=int, default=20000)
    r.add_argument("--seed", type=int, default=None)
    a = p.parse_args()
    if not a.frm:
        sys.exit("chunks.py: --from must not be empty")

    if a.mode == "split":
        out_parts = split_parts(a.frm, b"client")
        in_parts = split_parts(a.frm, b"server")
        pause, keep = a.pause, True
    else:
        seed = a.seed if a.seed is not None else random.randrange(1 << 32)
        print("random: seed %d" % seed)
        rng = random.Random(seed)
        out_parts = random_parts(a.frm, a.size, a.plant, rng)
        in_parts = random_parts(a.frm, a.size, a.plant, rng)
        pause, keep = 0, False

    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(hostport(a.listen))
    ls.listen(1)
    cs = socket.create_connection(hostport(a.connect), timeout=10)
    cs.settimeout(None)
    ls.settimeout(10)
    ss, _ = ls.accept()
    ss.settimeout(None)
    ls.close()
    for sock in (cs, ss):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    client = End(cs, out_parts, pause, keep)
    server = End(ss, in_parts, pause, keep)
    t = threading.Thread(target=server.run)
    t.start()
    client.run()
    t.join()

    ok = judge("out", out_parts, server, a.frm, a.to, a.rewrite in ("out", "both"))
    ok = judge("in", in_parts, client, a.frm, a.to, a.rewrite in ("in", "both")) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
