#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A fake sluiced with several workers, for testing libsluice's one
connection per worker without the daemon (python3 stdlib only).

  fake_workers_daemon.py --socket PATH [--workers N] [--flows F] [options]

It listens on PATH, prints `fake_workers_daemon: listening` on stdout, and
waits for N connections from one filter: the first HELLO must let the
daemon choose (worker 0) and is answered as worker 1; each later HELLO must
name one of the other workers, 2 to N, each once. Every answer says
workers=N. A filter whose HELLO asks for shared memory
(SLUICE_FEATURE_SHM) gets an SHM frame and a memfd on each connection. Like
the daemon, the fake gives each flow direction a slot of the forward area
(--slot bytes, small enough that each direction wraps around its slot) and
puts the direction's bytes at their offset modulo the slot size, a run that
wraps making two DATA frames; it writes over a slot's bytes only once the
filter has decided them, and then at once, with garbage first, so that a
filter still reading decided bytes would send wrong ones back.

Once all N connections have said HELLO, it opens F flows on each connection
(flow ids distinct across connections), offers both directions of each in
--chunks DATA frames of --chunk bytes (through the forward area when the
filter has it), then EOF on both. It applies the filter's verdicts (PASS,
REPLACE, INJECT, DROP, SHUTDOWN, with bytes in the frame or in the reverse
ring, which it releases) and checks that:

  - every verdict names a flow of the connection it came on;
  - every byte of each direction comes out unchanged (the passthrough's
    replace-by-the-same-bytes, or pass) and the direction is shut down;
  - reverse ring references and the filter's RELEASEs (none: only the
    daemon releases) are what they must be.

A flow whose two directions are complete gets CLOSE (reason 0). When every
flow is closed it prints one JSON line with what it saw and exits 0; on
any violation it prints `fake_workers_daemon: FAIL: ...` on stderr and
exits 1; after --timeout seconds it exits 2.

Byte layouts are those of src/common/frame.c (little-endian).
"""

import argparse
import hashlib
import json
import mmap
import os
import selectors
import socket
import struct
import sys
import time

HEADER = 8
VERSION = 2
MAX_FRAME = 1024 * 1024 + 64
WINDOW = 256 * 1024
FEATURE_SHM = 2

HELLO, OPEN, DATA, EOF, CLOSE, VERDICT, OPEN_VERDICT, ERROR, SUBSCRIBE, SHM, RELEASE = range(1, 12)
PASS, PEEK, REPLACE, INJECT, DROP, PASS_REST, SHUTDOWN, RESET = range(1, 9)
DATA_F_SHM = 2
VERDICT_F_SHM = 1


class Fail(Exception):
    pass


def frame(ftype, body, flags=0):
    return struct.pack("<IBBH", HEADER + len(body), ftype, flags, 0) + body


def flow_bytes(flow, d, n):
    """The bytes a flow's direction sends: distinct per flow and direction."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(b"%d/%d/%d" % (flow, d, i)).digest()
        i += 1
    return bytes(out[:n])


class Ring:
    """One ring of the memfd, mapped once: the fake handles the wrap itself."""

    def __init__(self, m, base, size):
        self.m, self.base, self.size = m, base, size
        self.head = 0  # next byte written (forward) or expected (reverse)
        self.tail = 0  # released

    def write(self, pos, b):
        off = pos % self.size
        first = min(len(b), self.size - off)
        self.m[self.base + off:self.base + off + first] = b[:first]
        if first < len(b):
            self.m[self.base:self.base + len(b) - first] = b[first:]

    def read(self, pos, n):
        off = pos % self.size
        first = min(n, self.size - off)
        b = self.m[self.base + off:self.base + off + first]
        if first < n:
            b += self.m[self.base:self.base + n - first]
        return b


class Flow:
    def __init__(self, fid, conn, size):
        self.id, self.conn = fid, conn
        self.src = [flow_bytes(fid, 0, size), flow_bytes(fid, 1, size)]
        self.out = [bytearray(), bytearray()]  # what the verdicts let through
        self.decided = [0, 0]
        self.slot = [None, None]  # forward area offset of each direction's slot
        self.shut = [False, False]
        self.closed = False

    def complete(self):
        return all(self.shut[d] and bytes(self.out[d]) == self.src[d] for d in (0, 1))


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.inbuf = b""
        self.outq = []  # frames (bytes) or ("data", flow, dir, offset, bytes) to send
        self.worker = None
        self.shm = False
        self.fwd = self.rev = None
        self.slot_size = 0
        self.slots_used = 0
        self.wraps = 0
        self.mem = None
        self.flows = {}
        self.verdicts = 0
        self.shm_verdicts = 0
        

class Fake:
    def __init__(self, a):
        self.a = a
        self.sel = selectors.DefaultSelector()
        self.conns = []
        self.asked = set()
        self.hello = None  # the first HELLO's (name, features)
        self.started = False
        self.flows = {}

    def fail(self, msg):
        raise Fail(msg)

    # Connection set-up.

    def on_hello(self, c, flags, b):
        if len(b) < 16 or flags:
            self.fail("malformed HELLO")
        version, worker, workers, max_frame, window, features = struct.unpack_from("<HBBIII", b)
        name = b[16:]
        if version != VERSION or workers != 0:
            self.fail("HELLO version %d workers %d" % (version, workers))
        if self.hello is None:
            if worker != 0:
                self.fail("the first HELLO names worker %d, not 0" % worker)
            self.hello = (name, features)
            c.worker = 1
        else:
            if (name, features) != self.hello:
                self.fail("HELLO of worker %d differs from the first: %r" % (worker, (name, features)))
            if worker < 2 or worker > self.a.workers or worker in self.asked:
                self.fail("a later HELLO names worker %d (asked before: %s)" % (worker, sorted(self.asked)))
            c.worker = worker
        self.asked.add(c.worker)
        reply = frame(HELLO, struct.pack("<HBBIII", VERSION, c.worker, self.a.workers, MAX_FRAME,
                                         WINDOW, 0) + b"sluiced")
        if features & FEATURE_SHM:
            ring, slot = self.a.ring, self.a.slot
            area = 2 * self.a.flows * slot
            fd = os.memfd_create("sluice-channel", os.MFD_CLOEXEC)
            os.ftruncate(fd, area + ring)
            c.mem = mmap.mmap(fd, area + ring)
            c.fwd, c.rev = Ring(c.mem, 0, area), Ring(c.mem, area, ring)
            c.slot_size = slot
            c.shm = True
            reply += frame(SHM, struct.pack("<IIQ", area, ring, 0))
            # Like the daemon: HELLO and SHM in one write, the memfd attached.
            c.sock.setblocking(True)
            socket.send_fds(c.sock, [reply], [fd])
            c.sock.setblocking(False)
            os.close(fd)
        else:
            c.sock.sendall(reply)
        if len(self.asked) == self.a.workers:
            self.start_flows()

    def start_flows(self):
        self.started = True
        for c in self.conns:
            for j in range(self.a.flows):
                # Slot in the low 24 bits, a generation above, as the daemon does;
                # distinct across connections.
                fid = ((c.worker * 1000 + j + 1) << 24) | (c.worker * 64 + j)
                f = Flow(fid, c, self.a.chunks * self.a.chunk)
                c.flows[fid] = self.flows[fid] = f
                body = struct.pack("<QBBHHH16s16sIIII", fid, 4, 0, 40000 + j, 80, 0,
                                   bytes([10, 0, 0, c.worker]), bytes([10, 0, 1, 1]), 0, 0, 0, 0)
                c.outq.append(frame(OPEN, body))
                for k in range(self.a.chunks):
                    for d in (0, 1):
                        off = k * self.a.chunk
                        c.outq.append(("data", f, d, off, f.src[d][off:off + self.a.chunk]))
                for d in (0, 1):
                    c.outq.append(frame(EOF, struct.pack("<QB7xQ", fid, d, len(f.src[d]))))
            self.sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)

    # Sending: DATA through a direction's slot waits until the filter has
    # decided enough of what the slot holds.

    def shm_data(self, c, f, d, off, b):
        size = c.slot_size
        if off + len(b) - f.decided[d] > size:
            return None
        if f.slot[d] is None:
            f.slot[d] = c.slots_used * size
            c.slots_used += 1
        frames = b""
        while b:
            at = off % size
            n = min(len(b), size - at)
            c.fwd.write(f.slot[d] + at, b[:n])
            frames += frame(DATA, struct.pack("<QB7xQQQ", f.id, d, off, f.slot[d] + at, n), DATA_F_SHM)
            if n < len(b):
                c.wraps += 1
            off, b = off + n, b[n:]
        return frames

    def pump(self, c):
        out = b""
        while c.outq:
            item = c.outq[0]
            if isinstance(item, tuple):
                _, f, d, off, b = item
                if c.shm:
                    item = self.shm_data(c, f, d, off, b)
                    if item is None:
                        break  # woken by the verdicts that free the slot
                else:
                    item = frame(DATA, struct.pack("<QB7xQ", f.id, d, off) + b)
            out += item
            c.outq.pop(0)
        if out:
            c.sock.setblocking(True)
            c.sock.sendall(out)
            c.sock.setblocking(False)
        if not c.outq:
            self.sel.modify(c.sock, selectors.EVENT_READ, c)

    # Frames from the filter.

    def on_verdict(self, c, flags, b):
        if len(b) < 32:
            self.fail("short VERDICT")
        fid, d, op, r1, r2, frm, to = struct.unpack_from("<QBBHIQQ", b)
        data = b[32:]
        if r1 or r2 or d > 1:
            self.fail("VERDICT reserved bits or dir %d" % d)
        f = self.flows.get(fid)
        if f is None:
            self.fail("VERDICT for unknown flow %#x on worker %d's connection" % (fid, c.worker))
        if f.conn is not c:
            self.fail("VERDICT for flow %#x of worker %d came on worker %d's connection"
                      % (fid, f.conn.worker, c.worker))
        if f.closed:
            self.fail("VERDICT for closed flow %#x" % fid)
        c.verdicts += 1
        if flags & VERDICT_F_SHM:
            if not c.shm or len(data) != 16 or op not in (REPLACE, INJECT):
                self.fail("bad SHM VERDICT")
            pos, n = struct.unpack("<QQ", data)
            if pos != c.rev.head or n > c.rev.size:
                self.fail("reverse ring reference at %d (expected %d), %d bytes" % (pos, c.rev.head, n))
            data = c.rev.read(pos, n)
            c.rev.head += n
            c.shm_verdicts += 1
        elif flags:
            self.fail("VERDICT flags %#x" % flags)
        src, out = f.src[d], f.out[d]
        if f.shut[d] and op != SHUTDOWN:
            self.fail("VERDICT op %d after SHUTDOWN" % op)
        if op in (PASS, DROP, REPLACE):
            start = frm if op == REPLACE else to
            if to > len(src) or start < f.decided[d] or to < start:
                self.fail("flow %#x dir %d: op %d from %d to %d, decided %d"
                          % (fid, d, op, frm, to, f.decided[d]))
            if op == PASS:
                out += src[f.decided[d]:to]
            elif op == REPLACE:
                out += src[f.decided[d]:frm] + data
            if c.shm and f.slot[d] is not None:
                # Decided bytes are the daemon's to write over, now.
                for o in range(f.decided[d], to):
                    c.fwd.write(f.slot[d] + o % c.slot_size, b"\xee")
            f.decided[d] = max(f.decided[d], to)
            if c.outq:
                self.sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
        elif op == INJECT:
            out += data
        elif op == SHUTDOWN:
            f.shut[d] = True
        else:
            self.fail("unexpected VERDICT op %d" % op)
        if f.complete():
            f.closed = True
            c.outq.append(frame(CLOSE, struct.pack("<QII", fid, 0, 0)))
            self.sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)

    def on_read(self, c):
        try:
            b = c.sock.recv(1 << 20)
        except BlockingIOError:
            return
        if not b:
            self.fail("worker %s's connection closed by the filter" % c.worker)
        c.inbuf += b
        consumed_rev = c.rev.head if c.shm else 0
        while len(c.inbuf) >= HEADER:
            length, ftype, flags, res = struct.unpack_from("<IBBH", c.inbuf)
            if length < HEADER or length > MAX_FRAME or res:
                self.fail("bad frame header %r" % c.inbuf[:8])
            if len(c.inbuf) < length:
                break
            body = c.inbuf[HEADER:length]
            c.inbuf = c.inbuf[length:]
            if c.worker is None:
                if ftype != HELLO:
                    self.fail("frame type %d before HELLO" % ftype)
                self.on_hello(c, flags, body)
            elif ftype == VERDICT:
                self.on_verdict(c, flags, body)
            elif ftype == RELEASE:
                self.fail("RELEASE from the filter: its verdicts free the forward area")
            elif ftype == SUBSCRIBE:
                pass
            else:
                self.fail("unexpected frame type %d from the filter" % ftype)
        # Like the daemon: one RELEASE of the reverse ring after a read that consumed from it.
        if c.shm and c.rev.head != consumed_rev:
            c.rev.tail = c.rev.head
            c.outq.append(frame(RELEASE, struct.pack("<QQ", c.rev.head, 0)))
            self.sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)

    def run(self):
        try:
            os.unlink(self.a.socket)
        except FileNotFoundError:
            pass
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ls.bind(self.a.socket)
        ls.listen(64)
        ls.setblocking(False)
        self.sel.register(ls, selectors.EVENT_READ, None)
        print("fake_workers_daemon: listening", flush=True)
        deadline = time.monotonic() + self.a.timeout
        while not (self.flows and all(f.closed for f in self.flows.values())
                   and not any(c.outq for c in self.conns)):
            left = deadline - time.monotonic()
            if left <= 0:
                print("fake_workers_daemon: timed out; connections %s, flows closed %d of %d"
                      % (sorted(c.worker or 0 for c in self.conns),
                         sum(f.closed for f in self.flows.values()), len(self.flows)),
                      file=sys.stderr)
                return 2
            for key, ev in self.sel.select(left):
                if key.data is None:
                    s, _ = ls.accept()
                    if len(self.conns) >= self.a.workers:
                        self.fail("more than %d connections" % self.a.workers)
                    s.setblocking(False)
                    c = Conn(s)
                    self.conns.append(c)
                    self.sel.register(s, selectors.EVENT_READ, c)
                    continue
                c = key.data
                if ev & selectors.EVENT_READ:
                    self.on_read(c)
                if ev & selectors.EVENT_WRITE:
                    self.pump(c)
        # Hang up as a stopping daemon does, once the filter has read
        # everything: it then closes every connection (the end of one ends
        # them all), which the fake waits for.
        for c in self.conns:
            c.sock.shutdown(socket.SHUT_WR)
        open_conns = set(self.conns)
        while open_conns and time.monotonic() < deadline:
            for key, _ in self.sel.select(deadline - time.monotonic()):
                c = key.data
                if c is None:
                    continue
                try:
                    if c.sock.recv(1 << 20):
                        continue
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    pass
                open_conns.discard(c)
                self.sel.unregister(c.sock)
        if open_conns:
            self.fail("the filter kept %d connections open after the others closed"
                      % len(open_conns))
        if self.a.expect_shm is not None and any(c.shm != self.a.expect_shm for c in self.conns):
            self.fail("shared rings: expected %s" % self.a.expect_shm)
        print(json.dumps({
            "workers": sorted(c.worker for c in self.conns),
            "flows": len(self.flows),
            "shm": [c.shm for c in self.conns],
            "verdicts": [c.verdicts for c in self.conns],
            "shm_verdicts": [c.shm_verdicts for c in self.conns],
            "slots": [c.slots_used for c in self.conns],
            "slot_wraps": [c.wraps for c in self.conns],
            "flow_ids": {"%d" % c.worker: ["%016x" % i for i in sorted(c.flows)] for c in self.conns},
        }, sort_keys=True), flush=True)
        return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--socket", required=True)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--flows", type=int, default=3, help="flows per connection")
    p.add_argument("--chunks", type=int, default=4, help="DATA frames per direction")
    p.add_argument("--chunk", type=int, default=3000, help="bytes per DATA frame")
    p.add_argument("--ring", type=int, default=16384, help="bytes of the reverse ring (a multiple of 4096)")
    p.add_argument("--slot", type=int, default=4096, help="bytes per forward slot (a multiple of 4096)")
    p.add_argument("--expect-shm", type=lambda v: v == "yes", default=None,
                   help="yes or no: whether the filter must ask for the shared rings")
    p.add_argument("--timeout", type=float, default=20.0)
    a = p.parse_args()
    if a.workers < 1 or a.workers > 64 or a.ring % 4096 or a.ring <= 0:
        p.error("--workers 1 to 64, --ring a positive multiple of 4096")
    try:
        return Fake(a).run()
    except Fail as e:
        print("fake_workers_daemon: FAIL: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
