#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Raw filter-channel frames for sluice's bad-input tests (python3 stdlib only).

The layout follows src/common/frame.c: every integer is little-endian; a
frame is an 8-byte header (u32 total length including the header, u8 type,
u8 flags, u16 zero) and a per-type body.

  frames.py send --socket PATH SCENARIO   connect, send, report what the daemon did
  frames.py dump SCENARIO                 write the scenario's bytes to stdout

Scenarios:
  garbage       random bytes whose header can never be valid (no HELLO)
  truncated     HELLO, then the first 20 bytes of a 40-byte VERDICT, then close
  oversized     HELLO, then a header announcing a 2 GiB frame
  unknown-flow  HELLO, then a well-formed VERDICT (pass) for flow
                0xdeadbeef00000001, which the daemon never gave out
  hello         HELLO only (a well-behaved client, for comparison)

`send` prints one JSON line: whether the daemon closed the channel within
--wait seconds ("closed": true/false), how ("how": "eof" / "ECONNRESET" /
"timeout"), and how many bytes the daemon had sent us. The scenarios that
end with our own close (truncated) report "closed": null.
"""

import argparse
import json
import os
import socket
import struct
import sys
import time

HEADER = 8
VERSION = 2
DEFAULT_MAX = 1024 * 1024 + 64

HELLO, OPEN, DATA, EOF, CLOSE, VERDICT, OPEN_VERDICT, ERROR = range(1, 9)
PASS, PEEK, REPLACE, INJECT, DROP, PASS_REST, SHUTDOWN, RESET = range(1, 9)

UNKNOWN_FLOW = 0xDEADBEEF00000001


def header(length, ftype, flags=0):
    return struct.pack("<IBBH", length, ftype, flags, 0)


def frame(ftype, body, flags=0):
    return header(HEADER + len(body), ftype, flags) + body


def hello(name=b"frames.py", version=VERSION, max_frame=DEFAULT_MAX, window=256 * 1024,
          features=0):
    # u16 version, u16 zero, u32 max_frame, u32 window, u32 features, name
    return frame(HELLO, struct.pack("<HHIII", version, 0, max_frame, window, features) + name)


def verdict(flow, direction=0, op=PASS, frm=0, to=0, data=b""):
    # u64 flow, u8 dir, u8 op, u16 zero, u32 zero, u64 from, u64 to, bytes
    return frame(VERDICT, struct.pack("<QBBHIQQ", flow, direction, op, 0, 0, frm, to) + data)


def garbage(n=4096):
    b = bytearray(os.urandom(n))
    # A plausible length (so this is not the oversized case) and type 0xee,
    # which does not exist: the first header is invalid, and the rest is noise.
    b[0:4] = struct.pack("<I", 8 + b[0] % 56)
    b[4] = 0xEE
    return bytes(b)


def scenario(name):
    """Returns (bytes to send, whether we close our side right after)."""
    if name == "garbage":
        return garbage(), False
    if name == "truncated":
        v = verdict(UNKNOWN_FLOW, op=PASS, frm=0, to=1)
        return hello() + v[:20], True
    if name == "oversized":
        return hello() + header(0x80000000, VERDICT) + b"\0" * 32, False
    if name == "unknown-flow":
        return hello() + verdict(UNKNOWN_FLOW, op=PASS, frm=0, to=4096), False
    if name == "hello":
        return hello(), False
    raise SystemExit("frames.py: unknown scenario %r" % name)


def cmd_send(a):
    data, close_after = scenario(a.scenario)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(a.wait)
    s.connect(a.socket)
    res = {"scenario": a.scenario, "sent": 0, "received": 0, "closed": None, "how": None}
    try:
        s.sendall(data)
        res["sent"] = len(data)
    except OSError as e:
        # The daemon may close while we are still sending garbage.
        res["send_error"] = os.strerror(e.errno) if e.errno else str(e)
    if close_after:
        s.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + a.wait
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout()
            s.settimeout(left)
            b = s.recv(65536)
            if not b:
                res["closed"], res["how"] = True, "eof"
                break
            res["received"] += len(b)
    except socket.timeout:
        res["closed"], res["how"] = (None if close_after else False), "timeout"
    except OSError as e:
        res["closed"], res["how"] = True, os.strerror(e.errno) if e.errno else str(e)
    s.close()
    print(json.dumps(res, sort_keys=True))
    return 0


def cmd_dump(a):
    data, _ = scenario(a.scenario)
    sys.stdout.buffer.write(data)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("--socket", required=True)
    s.add_argument("--wait", type=float, default=5.0,
                   help="seconds to wait for the daemon to close the channel")
    s.add_argument("scenario")
    d = sub.add_parser("dump")
    d.add_argument("scenario")
    a = p.parse_args()
    return {"send": cmd_send, "dump": cmd_dump}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
