#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Held and free connections through a relay (python3 stdlib only).

  hold_peer.py --listen UP --connect RELAY [--hold N] [--free M] [--size BYTES]
               [--timeout SECONDS] [--rcvbuf BYTES]

Both ends at once: a server on UP (the relay's upstream) and clients to
RELAY. First N "held" connections each send --size bytes to a server that
accepts them and reads nothing, so their bytes pile up in the relay (the
server's sockets have a small receive buffer, --rcvbuf). Once
all are accepted and a second has passed for the relay to fill its windows,
M "free" connections each send --size bytes, which the server reads and
sends back; each client reads the echo. The free connections must all be
done, every byte intact both ways, while the held ones are still held
(within --timeout seconds). Then the server reads the held connections,
which must arrive intact too.

Prints one JSON line: {"held_intact": K, "free_intact": K, "free_seconds": S}
and exits 0 when everything arrived intact in time, 1 otherwise (with the
reason on stderr).
"""

import argparse
import hashlib
import json
import socket
import sys
import threading
import time


def addr(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def recv_exact(s, n):
    h, got = hashlib.sha256(), 0
    while got < n:
        b = s.recv(min(1 << 20, n - got))
        if not b:
            break
        h.update(b)
        got += len(b)
    return got, h.hexdigest()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--connect", required=True)
    p.add_argument("--hold", type=int, default=1)
    p.add_argument("--free", type=int, default=4)
    p.add_argument("--size", type=int, default=8 << 20)
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--rcvbuf", type=int, default=32768,
                   help="SO_RCVBUF of the server's sockets, so that the held bytes stay in the relay")
    a = p.parse_args()

    payload = bytes(range(256)) * (a.size // 256) + bytes(a.size % 256)
    want = hashlib.sha256(payload).hexdigest()
    srv = socket.socket(socket.AF_INET6 if ":" in addr(a.listen)[0] else socket.AF_INET)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, a.rcvbuf)
    srv.bind(addr(a.listen))
    srv.listen(a.hold + a.free + 8)
    srv.settimeout(a.timeout)
    errors = []

    def sender(s):
        try:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            errors.append("send: %s" % e)

    # Held: accepted and left unread.
    held_clients, held = [], []
    for _ in range(a.hold):
        c = socket.create_connection(addr(a.connect), timeout=a.timeout)
        threading.Thread(target=sender, args=(c,), daemon=True).start()
        held_clients.append(c)
        held.append(srv.accept()[0])
    time.sleep(1)

    # Free: the server echoes each.
    free_ok = []

    def echo(s):
        s.settimeout(a.timeout)
        n, h = recv_exact(s, a.size)
        if (n, h) != (a.size, want):
            errors.append("free: server got %d bytes, sha256 %s" % (n, h))
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)

    def free_client():
        c = socket.create_connection(addr(a.connect), timeout=a.timeout)
        threading.Thread(target=sender, args=(c,), daemon=True).start()
        n, h = recv_exact(c, a.size)
        if (n, h) != (a.size, want):
            errors.append("free: client got %d bytes back, sha256 %s" % (n, h))
        else:
            free_ok.append(1)
        c.close()

    start = time.monotonic()
    threads = [threading.Thread(target=free_client, daemon=True) for _ in range(a.free)]
    for t in threads:
        t.start()
    for _ in range(a.free):
        s = srv.accept()[0]
        threading.Thread(target=echo, args=(s,), daemon=True).start()
    for t in threads:
        t.join(max(0.0, a.timeout - (time.monotonic() - start)))
    free_seconds = time.monotonic() - start
    if len(free_ok) != a.free:
        errors.append("%d of %d free connections were done while %d were held (%.1f s)"
                      % (len(free_ok), a.free, a.hold, free_seconds))

    # Now the held ones are read.
    held_ok = 0
    for s in held:
        s.settimeout(a.timeout)
        n, h = recv_exact(s, a.size)
        if (n, h) == (a.size, want):
            held_ok += 1
        else:
            errors.append("held: server got %d bytes, sha256 %s" % (n, h))
        s.close()
    for c in held_clients:
        c.close()

    print(json.dumps({"held_intact": held_ok, "free_intact": len(free_ok),
                      "free_seconds": round(free_seconds, 2)}), flush=True)
    for e in errors[:10]:
        print("hold_peer: %s" % e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
