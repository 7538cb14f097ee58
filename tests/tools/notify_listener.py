#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A stand-in for systemd's notification socket (python3 stdlib only).

  notify_listener.py --socket PATH|@NAME [--check CMD] [--until STATE]
                     [--timeout SECONDS]

Binds a Unix datagram socket (a name in the abstract namespace when it
starts with '@', as $NOTIFY_SOCKET does), prints "bound" once it can
receive, then prints one JSON line per datagram:

  {"t": 12.345, "state": {"READY": "1"}, "raw": "READY=1", "check": 0,
   "sender_pid": 1234}

check is the exit status of CMD (run through sh) at the moment the
datagram arrived, or null without --check: a test uses it to see what was
true when the daemon said it was ready. sender_pid comes from SCM_CREDENTIALS
(SO_PASSCRED), as systemd reads it. Exits 0 after a datagram that sets
STATE=1 (--until, default STOPPING), 1 at the timeout.
"""

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--check")
    ap.add_argument("--until", default="STOPPING")
    ap.add_argument("--timeout", type=float, default=30)
    a = ap.parse_args()

    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    addr = "\0" + a.socket[1:] if a.socket.startswith("@") else a.socket
    s.bind(addr)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    print("bound", flush=True)

    t0 = time.monotonic()
    deadline = t0 + a.timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            print("timeout", flush=True)
            return 1
        s.settimeout(left)
        try:
            data, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            continue
        check = None
        if a.check:
            check = subprocess.run(a.check, shell=True, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL).returncode
        pid = None
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", cdata[:12])[0]
        raw = data.decode("utf-8", "replace")
        state = {}
        for line in raw.split("\n"):
            if "=" in line:
                k, v = line.split("=", 1)
                state[k] = v
        print(json.dumps({"t": round(time.monotonic() - t0, 3), "state": state, "raw": raw,
                          "check": check, "sender_pid": pid}), flush=True)
        if state.get(a.until) == "1":
            return 0


if __name__ == "__main__":
    sys.exit(main())
