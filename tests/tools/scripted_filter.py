#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A scriptable sluice filter that speaks the wire protocol itself (python3
stdlib only), for tests that drive each verdict of the daemon and check
exactly what the filter saw.

  scripted_filter.py --socket PATH --scenario NAME --log FILE [options]

It connects to the daemon's filter socket, sends HELLO (with --features) and
optionally a SUBSCRIBE (--subscribe), waits for the daemon's HELLO, prints
`scripted_filter: connected` on stdout, and then answers every frame as the
scenario says, until the daemon closes the channel or a signal stops it.

Every frame it receives and every frame it sends is logged to FILE as one
JSON line, flushed at once:

  {"t": 1700000000.1, "io": "recv", "type": "DATA", "flow": 4294967297,
   "n": 1, "dir": 0, "offset": 0, "len": 10, "flags": 0, "data": "0123456789"}

  io      "recv" (from the daemon) or "sent" (to the daemon)
  n       the flow's ordinal on this channel (1 = the first OPEN), if known
  data    the bytes as a latin-1 string, when at most --log-data bytes (4096);
          "sha256" is always there for DATA and for verdict bytes
  OPEN:   flags, family, src_port, dst_port, window, uid, pid, comm
  DATA:   dir, offset, len, flags (1 = REOFFER)
  EOF:    dir, offset
  CLOSE:  reason
  ERROR:  code, ref_type, text
  VERDICT: dir, op ("pass", "peek", ...), from, to, len
  OPEN_VERDICT: action ("allow", ...), family, port, addr
  HELLO, SUBSCRIBE: their fields; "channel-closed" when the daemon hangs up
  violation  on a received frame that breaks the protocol: a reserved byte
          or flag set, a bad length, DATA not contiguous, a re-offer beyond
          what was offered, anything after EOF or CLOSE, a direction the
          OPEN did not offer, a frame for an ignored flow (also on stderr)

Byte layouts are those of src/common/frame.c (all integers little-endian).

Scenarios (the out direction is client -> server, in is server -> client;
a direction a scenario does not mention is passed chunk by chunk, and every
EOF is answered, after deciding every byte up to it, with SHUTDOWN):

  pass            pass every byte as it comes
  replace-grow    pass [0,8); replace [8,12) by "<<8-9-A-B>>"      (then pass all)
  replace-shrink  pass [0,3); replace [3,15) by "~"
  replace-empty   pass [0,5); replace [5,12) by nothing
  replace-gap     replace [14,16) by "xy" as the first verdict (the gap
                  [0,14) passes implicitly)
  inject-start    inject --text (default "<start>") when the flow opens,
                  before any byte was offered
  inject-middle   pass [0,13); inject "<mid>"
  inject-end      on EOF: pass everything, inject "<end>", then SHUTDOWN
  drop-range      pass [0,4); drop [4,11)
                  (these rewrite the direction --dir, default out; each
                  waits, holding the bytes undecided, until the bytes its
                  next verdict names have been offered)
  replace-all     replace every --pattern by --text in the out direction,
                  holding back len(pattern) - 1 bytes so that a match split
                  across DATA frames is found too
  peek-header     out: until "\\r\\n\\r\\n" is seen, PEEK one byte beyond what
                  was offered, ignore plain DATA while a peek is pending and
                  decide on the re-offer (REOFFER flag): replace the header
                  [decided, end of header) by the header with "Host: example"
                  -> "Host: example.org" and "X-Sluice: peeked" added as its
                  last line; then pass all
  pass-rest       out: PASS the first chunk, then PASS_REST, then one more
                  PASS (which the daemon must refuse with ERROR STATE)
  shutdown-out-5  out: when 5 bytes are offered, PASS(5) and SHUTDOWN
  reset-marker    pass until a DATA frame contains --marker (default
                  "RST"), then RESET the flow (nothing of that frame passes)
  open-allow, open-deny, open-ignore, open-redirect
                  answer each OPEN with that OPEN_VERDICT (--redirect
                  HOST:PORT for redirect), then pass; use --features 1
  in-tag          inject --text at the start of the in direction on OPEN
                  (for a filter subscribed to the in direction only)
  errors          protocol errors, chosen per flow by the first bytes of its
                  out direction; flows starting otherwise are passed:
                    ERR-BEYOND  PASS(offered + 100) -> BAD_OFFSET expected;
                                on that ERROR, pass everything
                    ERR-BACK    PASS(10), then PASS(5), DROP(5), PEEK(5),
                                REPLACE(5, 12, "zz") -> 4 x BAD_OFFSET; after
                                the 4th ERROR, pass everything
                    ERR-WINDOW  PEEK(decided + 1 MiB) -> WINDOW, flow reset
                    ERR-CLOSED  pass; on CLOSE send a VERDICT (pass) and an
                                OPEN_VERDICT (allow) for the closed flow ->
                                2 x FLOW_CLOSED
"""

import argparse
import hashlib
import json
import os
import signal
import socket
import struct
import sys
import time

HEADER = 8
VERSION = 2
MAX_FRAME = 1024 * 1024 + 64

HELLO, OPEN, DATA, EOF, CLOSE, VERDICT, OPEN_VERDICT, ERROR, SUBSCRIBE = range(1, 10)
TYPES = {HELLO: "HELLO", OPEN: "OPEN", DATA: "DATA", EOF: "EOF", CLOSE: "CLOSE",
         VERDICT: "VERDICT", OPEN_VERDICT: "OPEN_VERDICT", ERROR: "ERROR",
         SUBSCRIBE: "SUBSCRIBE"}
PASS, PEEK, REPLACE, INJECT, DROP, PASS_REST, SHUTDOWN, RESET = range(1, 9)
OPS = {PASS: "pass", PEEK: "peek", REPLACE: "replace", INJECT: "inject", DROP: "drop",
       PASS_REST: "pass_rest", SHUTDOWN: "shutdown", RESET: "reset"}
ALLOW, DENY, REDIRECT, IGNORE = range(1, 5)
ACTIONS = {ALLOW: "allow", DENY: "deny", REDIRECT: "redirect", IGNORE: "ignore"}
OUT, IN = 0, 1
DATA_F_REOFFER = 1
OPEN_F_VERDICT = 4
ERR_BAD_OFFSET, ERR_WINDOW = 2, 3


class ChannelClosed(Exception):
    pass


def unescape(text):
    """'a\\r\\nb' -> b'a\\r\\nb' (Python string escapes, latin-1)."""
    return text.encode("latin-1").decode("unicode_escape").encode("latin-1")


class Log:
    def __init__(self, path, data_max):
        self.f = open(path, "a", buffering=1)
        self.data_max = data_max

    def bytes_fields(self, rec, b):
        rec["len"] = len(b)
        rec["sha256"] = hashlib.sha256(b).hexdigest()
        if len(b) <= self.data_max:
            rec["data"] = bytes(b).decode("latin-1")

    def write(self, rec):
        rec.setdefault("t", round(time.time(), 6))
        self.f.write(json.dumps(rec, sort_keys=True) + "\n")


class Dir:
    def __init__(self):
        self.offered = 0   # end of the last plain DATA frame
        self.decided = 0   # what our verdicts decided (as we track it)
        self.pending = bytearray()  # offered bytes [decided, offered), where kept
        self.eof = None
        self.done = False  # PASS_REST or SHUTDOWN sent


class Flow:
    def __init__(self, fid, n, flags):
        self.id = fid
        self.n = n
        self.flags = flags
        self.dirs = [Dir(), Dir()]
        self.closed = False
        self.s = {}  # the scenario's state


class Filter:
    def __init__(self, a):
        self.a = a
        self.log = Log(a.log, a.log_data)
        self.flows = {}
        self.ignored = set()
        self.nflows = 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(a.socket)
        self.buf = bytearray()

    # Sending.

    def send(self, ftype, body, rec, flags=0):
        frame = struct.pack("<IBBH", HEADER + len(body), ftype, flags, 0) + body
        # The time a frame was sent is taken before it leaves: what the
        # daemon does in answer can be logged by another process before
        # sendall() returns here.
        rec["t"] = round(time.time(), 6)
        self.sock.sendall(frame)
        rec.update({"io": "sent", "type": TYPES[ftype]})
        self.log.write(rec)

    def n_of(self, fid):
        fl = self.flows.get(fid)
        return fl.n if fl else None

    def verdict(self, fl, d, op, frm=0, to=0, data=b"", track=True):
        """Sends a VERDICT. With track, updates our idea of decided (for
        verdicts the daemon must accept)."""
        fid = fl.id if isinstance(fl, Flow) else fl
        body = struct.pack("<QBBHIQQ", fid, d, op, 0, 0, frm, to) + data
        rec = {"flow": fid, "n": self.n_of(fid), "dir": d, "op": OPS[op], "from": frm, "to": to}
        if op in (REPLACE, INJECT):
            self.log.bytes_fields(rec, data)
        self.send(VERDICT, body, rec)
        if not track or not isinstance(fl, Flow):
            return
        s = fl.dirs[d]
        if op in (PASS, DROP, REPLACE) and to > s.decided:
            del s.pending[:to - s.decided]
            s.decided = to
        elif op in (PASS_REST, SHUTDOWN):
            s.done = True

    def pass_to(self, fl, d, to):
        s = fl.dirs[d]
        if not s.done and to > s.decided:
            self.verdict(fl, d, PASS, to=to)

    def shutdown(self, fl, d):
        if not fl.dirs[d].done:
            self.verdict(fl, d, SHUTDOWN)

    def open_verdict(self, fid, action, family=0, port=0, addr=b""):
        body = struct.pack("<QBBHI", fid, action, family, port, 0) + addr.ljust(16, b"\0")
        self.send(OPEN_VERDICT, body, {"flow": fid, "n": self.n_of(fid),
                                       "action": ACTIONS[action], "family": family,
                                       "port": port})
        if action == IGNORE and fid in self.flows:
            # The daemon must not mention the flow again.
            self.ignored.add(fid)
            del self.flows[fid]

    def hello(self):
        name = self.a.name.encode()
        body = struct.pack("<HHIII", VERSION, 0, self.a.max_frame, 0, self.a.features) + name
        frame = struct.pack("<IBBH", HEADER + len(body), HELLO, 0, 0) + body
        rec = {"io": "sent", "type": "HELLO", "version": VERSION, "max_frame": self.a.max_frame,
               "features": self.a.features, "name": self.a.name}
        recs = [rec]
        if self.a.subscribe:
            dirs, ranges = self.a.subscribe
            sbody = struct.pack("<BBH", dirs, len(ranges), 0)
            for lo, hi in ranges:
                sbody += struct.pack("<HH", lo, hi)
            frame += struct.pack("<IBBH", HEADER + len(sbody), SUBSCRIBE, 0, 0) + sbody
            recs.append({"io": "sent", "type": "SUBSCRIBE", "dirs": dirs,
                         "ports": [list(r) for r in ranges]})
        # One write, so that the SUBSCRIBE is in force before any flow is given.
        self.sock.sendall(frame)
        for r in recs:
            self.log.write(r)

    # Receiving.

    def recv_exact(self, n):
        while len(self.buf) < n:
            b = self.sock.recv(max(65536, n - len(self.buf)))
            if not b:
                raise ChannelClosed()
            self.buf += b
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def recv_frame(self):
        hdr = self.recv_exact(HEADER)
        length, ftype, flags, zero = struct.unpack("<IBBH", hdr)
        if length < HEADER or length > MAX_FRAME or zero:
            raise SystemExit("scripted_filter: bad frame header %r" % hdr)
        return ftype, flags, self.recv_exact(length - HEADER)

    def decode(self, ftype, flags, b):
        """The frame as a log record (with the raw data under "_bytes")."""
        rec = {"io": "recv", "type": TYPES.get(ftype, "type-%d" % ftype)}
        if flags:
            rec["flags"] = flags
        if ftype == HELLO:
            v, _, mf, win, feat = struct.unpack_from("<HHIII", b)
            rec.update(version=v, max_frame=mf, window=win, features=feat,
                       name=b[16:].decode("latin-1"))
        elif ftype == OPEN:
            fid, fam, sport, dport = struct.unpack_from("<QBxHH", b)
            uid, pid, win = struct.unpack_from("<III", b, 48)
            rec.update(flow=fid, family=fam, src_port=sport, dst_port=dport, uid=uid, pid=pid,
                       window=win, flags=flags, comm=b[64:].decode("latin-1"))
        elif ftype in (DATA, EOF):
            fid, d, off = struct.unpack_from("<QB7xQ", b)
            rec.update(flow=fid, dir=d, offset=off)
            if ftype == DATA:
                rec["flags"] = flags
                rec["_bytes"] = b[24:]
                self.log.bytes_fields(rec, b[24:])
        elif ftype == CLOSE:
            fid, reason = struct.unpack_from("<QI", b)
            rec.update(flow=fid, reason=reason)
        elif ftype == ERROR:
            fid, code, ref = struct.unpack_from("<QIB", b)
            rec.update(flow=fid, code=code, ref_type=ref, text=b[16:].decode("latin-1"))
        if "flow" in rec and ftype != OPEN:
            rec["n"] = self.n_of(rec["flow"])
        return rec

    def check(self, ftype, flags, b, rec):
        """What in a frame from the daemon breaks the protocol (frame.c's
        layouts, docs/protocol.md's order of frames), or None."""
        n = len(b)
        fixed = {HELLO: 16, OPEN: 64, DATA: 24, EOF: 24, CLOSE: 16, ERROR: 16}
        if ftype not in fixed:
            return "a frame of type %d, which the daemon does not send" % ftype
        if n < fixed[ftype] or (ftype in (EOF, CLOSE) and n != fixed[ftype]):
            return "bad length %d" % (n + HEADER)
        allowed = {OPEN: 0x1f, DATA: DATA_F_REOFFER}.get(ftype, 0)
        if flags & ~allowed or (ftype == OPEN and flags & 0x18 == 0x18):
            return "flags 0x%x" % flags
        if ftype == OPEN and (b[9] or b[14:16] != b"\0\0" or b[60:64] != b"\0" * 4
                              or b[8] not in (4, 6) or n > 64 + 16):
            return "OPEN reserved bytes, family or comm"
        if ftype in (DATA, EOF) and (any(b[9:16]) or b[8] > 1):
            return "reserved bytes or direction"
        if ftype == DATA and n == 24:
            return "empty DATA"
        if ftype == CLOSE and any(b[12:16]):
            return "CLOSE reserved bytes"
        if ftype == ERROR and (any(b[13:16]) or n > 16 + 256):
            return "ERROR reserved bytes or text"
        if ftype == HELLO:
            return None
        fid = rec["flow"]
        fl = self.flows.get(fid)
        if ftype == OPEN:
            return "OPEN of a known flow" if fl or not fid else None
        if ftype == ERROR:
            return None
        if fl is None:
            if fid in self.ignored:
                return "%s for a flow the filter ignored" % TYPES[ftype]
            return "%s for a flow never opened" % TYPES[ftype]
        if fl.closed:
            return "%s after CLOSE" % TYPES[ftype]
        if ftype == CLOSE:
            return None
        d = rec["dir"]
        s = fl.dirs[d]
        if fl.flags & (8 if d == OUT else 16):
            return "%s of a direction the OPEN did not offer" % TYPES[ftype]
        if s.eof is not None:
            return "%s after EOF" % TYPES[ftype]
        if ftype == EOF:
            return None if rec["offset"] == s.offered else "EOF at %d, offered %d" % (rec["offset"], s.offered)
        if flags & DATA_F_REOFFER:
            if rec["offset"] + rec["len"] > s.offered:
                return "re-offer beyond what was offered (%d)" % s.offered
            return None
        if rec["offset"] != s.offered:
            return "DATA at %d, expected %d" % (rec["offset"], s.offered)
        return None

    def run(self, sc):
        self.hello()
        ftype, flags, body = self.recv_frame()
        rec = self.decode(ftype, flags, body)
        self.log.write(rec)
        if ftype != HELLO:
            raise SystemExit("scripted_filter: the daemon answered HELLO with %s" % rec["type"])
        print("scripted_filter: connected", flush=True)
        while True:
            try:
                ftype, flags, body = self.recv_frame()
            except ChannelClosed:
                self.log.write({"io": "recv", "type": "channel-closed"})
                return 0
            rec = self.decode(ftype, flags, body)
            data = rec.pop("_bytes", None)
            why = self.check(ftype, flags, body, rec)
            if why:
                rec["violation"] = why
                print("scripted_filter: protocol violation: %s: %s" % (rec["type"], why),
                      file=sys.stderr, flush=True)
            if ftype == OPEN:
                self.nflows += 1
                rec["n"] = self.nflows
            self.log.write(rec)
            self.dispatch(sc, ftype, flags, rec, data)

    def dispatch(self, sc, ftype, flags, rec, data):
        if ftype == OPEN:
            fl = Flow(rec["flow"], rec["n"], flags)
            self.flows[fl.id] = fl
            sc.on_open(fl)
            return
        if ftype == ERROR:
            sc.on_error(self.flows.get(rec["flow"]), rec["code"], rec["ref_type"])
            return
        fl = self.flows.get(rec.get("flow"))
        if fl is None:
            return
        if ftype == DATA:
            s = fl.dirs[rec["dir"]]
            reoffer = bool(flags & DATA_F_REOFFER)
            if not reoffer:
                s.offered = rec["offset"] + len(data)
                if not s.done:
                    # Keep what is undecided (our verdicts may lag the daemon's offers).
                    keep_from = max(s.decided, rec["offset"])
                    s.pending += data[keep_from - rec["offset"]:]
            if not s.done:
                sc.on_data(fl, rec["dir"], rec["offset"], data, reoffer)
        elif ftype == EOF:
            fl.dirs[rec["dir"]].eof = rec["offset"]
            if not fl.dirs[rec["dir"]].done:
                sc.on_eof(fl, rec["dir"], rec["offset"])
        elif ftype == CLOSE:
            fl.closed = True
            sc.on_close(fl, rec["reason"])


# Scenarios.

class Scenario:
    def __init__(self, f, a):
        self.f = f
        self.a = a

    def on_open(self, fl):
        pass

    def on_data(self, fl, d, off, data, reoffer):
        if not reoffer:
            self.f.pass_to(fl, d, off + len(data))

    def on_eof(self, fl, d, off):
        self.f.pass_to(fl, d, off)
        self.f.shutdown(fl, d)

    def on_close(self, fl, reason):
        pass

    def on_error(self, fl, code, ref):
        pass


class Ops(Scenario):
    """A list of verdicts on direction --dir, each sent once the bytes it
    names have been offered; then everything passes."""

    TABLE = {
        "replace-grow": [("pass", 8), ("replace", 8, 12, b"<<8-9-A-B>>")],
        "replace-shrink": [("pass", 3), ("replace", 3, 15, b"~")],
        "replace-empty": [("pass", 5), ("replace", 5, 12, b"")],
        "replace-gap": [("replace", 14, 16, b"xy")],
        "inject-start": [("inject", None)],
        "inject-middle": [("pass", 13), ("inject", b"<mid>")],
        "drop-range": [("pass", 4), ("drop", 11)],
        "inject-end": [],
    }

    def __init__(self, f, a):
        super().__init__(f, a)
        self.ops = [tuple(a.text if x is None else x for x in op) for op in self.TABLE[a.scenario]]
        self.dir = IN if a.dir == "in" else OUT

    def step(self, fl, d):
        if d != self.dir:
            return False
        todo = fl.s.setdefault("ops", list(self.ops))
        s = fl.dirs[d]
        while todo:
            op = todo[0]
            kind = op[0]
            need = op[2] if kind == "replace" else op[1] if kind in ("pass", "drop") else 0
            if s.offered < need:
                return True
            if kind == "pass":
                self.f.verdict(fl, d, PASS, to=op[1])
            elif kind == "drop":
                self.f.verdict(fl, d, DROP, to=op[1])
            elif kind == "replace":
                self.f.verdict(fl, d, REPLACE, frm=op[1], to=op[2], data=op[3])
            elif kind == "inject":
                self.f.verdict(fl, d, INJECT, data=op[1])
            todo.pop(0)
        return False

    def on_open(self, fl):
        self.step(fl, self.dir)

    def on_data(self, fl, d, off, data, reoffer):
        if reoffer:
            return
        if not self.step(fl, d) and not (self.a.scenario == "inject-end" and d == self.dir):
            self.f.pass_to(fl, d, fl.dirs[d].offered)

    def on_eof(self, fl, d, off):
        if self.step(fl, d):
            fl.s["unfinished"] = True
        self.f.pass_to(fl, d, off)
        if self.a.scenario == "inject-end" and d == self.dir:
            self.f.verdict(fl, d, INJECT, data=b"<end>")
        self.f.shutdown(fl, d)


class ReplaceAll(Scenario):
    def on_data(self, fl, d, off, data, reoffer):
        if reoffer or d != OUT:
            return super().on_data(fl, d, off, data, reoffer)
        self.scan(fl, hold=True)

    def scan(self, fl, hold):
        pat, rep = self.a.pattern.encode("latin-1"), self.a.text
        s = fl.dirs[OUT]
        base = s.decided
        buf = bytes(s.pending)
        i = buf.find(pat)
        while i >= 0:
            self.f.verdict(fl, OUT, REPLACE, frm=base + i, to=base + i + len(pat), data=rep)
            i = buf.find(pat, i + len(pat))
        keep = len(pat) - 1 if hold else 0
        self.f.pass_to(fl, OUT, max(s.decided, s.offered - keep))

    def on_eof(self, fl, d, off):
        if d == OUT:
            self.scan(fl, hold=False)
        super().on_eof(fl, d, off)


class PeekHeader(Scenario):
    def on_data(self, fl, d, off, data, reoffer):
        if d != OUT or fl.s.get("header_done"):
            return super().on_data(fl, d, off, data, reoffer)
        s = fl.dirs[d]
        if fl.s.get("peeking") and not reoffer:
            return  # the re-offer will bring these bytes again
        # Only the bytes of this frame from the decision point on: a
        # filter that peeks keeps no buffer of its own.
        view = data[max(0, s.decided - off):]
        end = view.find(b"\r\n\r\n")
        if end < 0:
            fl.s["peeking"] = True
            self.f.verdict(fl, d, PEEK, to=off + len(data) + 1)
            return
        fl.s["peeking"] = False
        fl.s["header_done"] = True
        hdr = view[:end + 4]
        new = hdr.replace(b"Host: example\r\n", b"Host: example.org\r\n")
        new = new[:-2] + b"X-Sluice: peeked\r\n\r\n"
        start = s.decided
        self.f.verdict(fl, d, REPLACE, frm=start, to=start + len(hdr), data=new)
        self.f.pass_to(fl, d, max(s.offered, off + len(data)))


class PassRest(Scenario):
    def on_data(self, fl, d, off, data, reoffer):
        if d != OUT:
            return super().on_data(fl, d, off, data, reoffer)
        end = off + len(data)
        self.f.verdict(fl, d, PASS, to=end)
        self.f.verdict(fl, d, PASS_REST)
        # The direction takes no more verdicts: this one must be refused (STATE).
        self.f.verdict(fl, d, PASS, to=end, track=False)


class ShutdownOut5(Scenario):
    def on_data(self, fl, d, off, data, reoffer):
        if d != OUT:
            return super().on_data(fl, d, off, data, reoffer)
        if fl.dirs[d].offered >= 5:
            self.f.verdict(fl, d, PASS, to=5)
            self.f.verdict(fl, d, SHUTDOWN)


class ResetMarker(Scenario):
    def on_data(self, fl, d, off, data, reoffer):
        if fl.s.get("reset"):
            return
        if self.a.marker.encode() in data:
            fl.s["reset"] = True
            self.f.verdict(fl, d, RESET)
            return
        super().on_data(fl, d, off, data, reoffer)


class OpenVerdict(Scenario):
    def on_open(self, fl):
        action = {"open-allow": ALLOW, "open-deny": DENY, "open-ignore": IGNORE,
                  "open-redirect": REDIRECT}[self.a.scenario]
        if action == REDIRECT:
            host, _, port = self.a.redirect.rpartition(":")
            host = host.strip("[]")
            if ":" in host:
                self.f.open_verdict(fl.id, action, 6, int(port), socket.inet_pton(socket.AF_INET6, host))
            else:
                self.f.open_verdict(fl.id, action, 4, int(port), socket.inet_aton(host))
        else:
            self.f.open_verdict(fl.id, action)


class InTag(Scenario):
    def on_open(self, fl):
        self.f.verdict(fl, IN, INJECT, data=self.a.text)


class Errors(Scenario):
    def on_data(self, fl, d, off, data, reoffer):
        s = fl.dirs[d]
        if d == OUT and "kind" not in fl.s:
            fl.s["kind"] = next((k for k in ("ERR-BEYOND", "ERR-BACK", "ERR-WINDOW", "ERR-CLOSED")
                                 if data.startswith(k.encode())), "pass")
            kind = fl.s["kind"]
            if kind == "ERR-BEYOND":
                fl.s["wait_errors"] = 1
                self.f.verdict(fl, d, PASS, to=s.offered + 100, track=False)
                return
            if kind == "ERR-BACK":
                fl.s["wait_errors"] = 4
                self.f.verdict(fl, d, PASS, to=10)
                self.f.verdict(fl, d, PASS, to=5, track=False)
                self.f.verdict(fl, d, DROP, to=5, track=False)
                self.f.verdict(fl, d, PEEK, to=5, track=False)
                self.f.verdict(fl, d, REPLACE, frm=5, to=12, data=b"zz", track=False)
                return
            if kind == "ERR-WINDOW":
                fl.s["wait_errors"] = 1
                self.f.verdict(fl, d, PEEK, to=s.decided + (1 << 20), track=False)
                return
        if d == OUT and fl.s.get("wait_errors"):
            return  # hold everything until the errors have come back
        super().on_data(fl, d, off, data, reoffer)

    def on_eof(self, fl, d, off):
        if d == OUT and fl.s.get("wait_errors"):
            fl.s["eof_waiting"] = True
            return
        super().on_eof(fl, d, off)

    def on_error(self, fl, code, ref):
        if fl is None or not fl.s.get("wait_errors") or fl.closed:
            return
        fl.s["wait_errors"] -= 1
        if fl.s["wait_errors"] or fl.s["kind"] == "ERR-WINDOW":
            return
        s = fl.dirs[OUT]
        self.f.pass_to(fl, OUT, s.offered)
        if fl.s.get("eof_waiting"):
            super().on_eof(fl, OUT, s.eof)

    def on_close(self, fl, reason):
        if fl.s.get("kind") == "ERR-CLOSED":
            self.f.verdict(fl.id, OUT, PASS, to=fl.dirs[OUT].offered)
            self.f.open_verdict(fl.id, ALLOW)


SCENARIOS = {
    "pass": Scenario,
    "replace-all": ReplaceAll,
    "peek-header": PeekHeader,
    "pass-rest": PassRest,
    "shutdown-out-5": ShutdownOut5,
    "reset-marker": ResetMarker,
    "open-allow": OpenVerdict,
    "open-deny": OpenVerdict,
    "open-ignore": OpenVerdict,
    "open-redirect": OpenVerdict,
    "in-tag": InTag,
    "errors": Errors,
}
for _name in Ops.TABLE:
    SCENARIOS[_name] = Ops


def parse_subscribe(text):
    """'out', 'in', 'both', optionally ':LO-HI,PORT,...' -> (dirs, ranges)."""
    dirs_text, _, ports = text.partition(":")
    dirs = {"out": 1, "in": 2, "both": 3}.get(dirs_text)
    if dirs is None:
        raise argparse.ArgumentTypeError("--subscribe: directions must be out, in or both")
    ranges = []
    for part in filter(None, ports.split(",")):
        lo, _, hi = part.partition("-")
        ranges.append((int(lo), int(hi or lo)))
    return dirs, ranges


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--socket", required=True, help="the daemon's filter socket")
    p.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    p.add_argument("--log", required=True, help="JSON lines of every frame, appended")
    p.add_argument("--log-data", type=int, default=4096, help="log DATA bytes up to this length")
    p.add_argument("--name", default="scripted_filter")
    p.add_argument("--features", type=int, default=0, help="HELLO feature bits (1: open verdicts)")
    p.add_argument("--max-frame", type=int, default=MAX_FRAME)
    p.add_argument("--subscribe", type=parse_subscribe,
                   help="send SUBSCRIBE: out|in|both[:LO-HI,PORT,...]")
    p.add_argument("--dir", choices=("out", "in"), default="out", help="direction rewritten")
    p.add_argument("--text", type=unescape, default=b"<start>", help="bytes to inject or put in")
    p.add_argument("--pattern", default="sluice", help="replace-all: what to replace")
    p.add_argument("--marker", default="RST", help="reset-marker: what triggers the reset")
    p.add_argument("--redirect", help="open-redirect: HOST:PORT")
    a = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    f = Filter(a)
    return f.run(SCENARIOS[a.scenario](f, a))


if __name__ == "__main__":
    sys.exit(main())
