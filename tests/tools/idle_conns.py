#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Many idle TCP connections at once, one process per side (python3 stdlib).

Both sides are single-threaded selector loops, so 10,000 connections cost
10,000 sockets, not 10,000 threads.

  idle_conns.py server --listen 127.0.0.1:9000 [--status FILE]
      An echo server: every byte received is sent back; a connection whose
      peer sent FIN is closed once everything is echoed. Reads pause while
      a connection has more than 1 MiB waiting to be echoed (backpressure).
      With --status it rewrites FILE every 0.2 s with
      "open N accepted M", the connections open now and ever accepted.

  idle_conns.py client --connect 127.0.0.1:9000 --conns 10000 [--batch 500]
                       --ready-file R --close-file C
      Opens --conns connections in batches of --batch (a batch is sent only
      when the previous one is done, so the listen backlog never fills). On
      each it sends a token of a few bytes unique to the connection and
      waits for exactly that token to come back: the connection is a live,
      relayed flow. When all are echoed it writes "N" to R and holds them
      idle, watching for any that closes or sends something meanwhile,
      until the file C exists. Then, batch by batch, it sends a second token
      on each and waits for its echo (the flow survived the idle time),
      shuts down writing, reads to EOF and closes. Prints one JSON line
      with the counts and times; exits 0 only if every connection was
      opened, echoed twice and closed cleanly.

  idle_conns.py transfer --connect 127.0.0.1:9000 --size 8M
      One ordinary transfer through the echo server: sends SIZE random
      bytes while reading the echo, half-closes, reads to EOF, and compares
      the sha256 of what went and what came back. Prints one JSON line;
      exits 0 if they match.
"""

import argparse
import errno
import hashlib
import json
import os
import resource
import selectors
import socket
import sys
import threading
import time

READ = 64 * 1024
ECHO_PAUSE = 1024 * 1024


def parse_size(text):
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper()
    unit = t[-1] if t and t[-1] in "KMG" else ""
    if unit:
        t = t[:-1]
    return int(float(t) * units[unit])


def parse_hostport(text):
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        return socket.AF_INET6, host, int(port)
    host, _, port = text.rpartition(":")
    return socket.AF_INET6 if ":" in host else socket.AF_INET, host, int(port)


def err_name(e):
    if isinstance(e, OSError) and e.errno:
        return errno.errorcode.get(e.errno, str(e.errno))
    return type(e).__name__


def raise_nofile():
    """Soft limit up to the hard one: the shell that started us decides."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# --- server ---------------------------------------------------------------

class EchoConn:
    def __init__(self, sock):
        self.sock = sock
        self.out = bytearray()
        self.eof = False
        self.events = 0


def cmd_server(a):
    raise_nofile()
    fam, host, port = parse_hostport(a.listen)
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(4096)
    ls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ, None)
    conns = 0
    accepted = 0
    last_status = 0.0
    status = None

    def set_events(c):
        ev = 0
        if not c.eof and len(c.out) < ECHO_PAUSE:
            ev |= selectors.EVENT_READ
        if c.out:
            ev |= selectors.EVENT_WRITE
        if ev == c.events:
            return
        if c.events and ev:
            sel.modify(c.sock, ev, c)
        elif ev:
            sel.register(c.sock, ev, c)
        else:
            sel.unregister(c.sock)
        c.events = ev

    def close(c):
        nonlocal conns
        if c.events:
            sel.unregister(c.sock)
            c.events = 0
        c.sock.close()
        conns -= 1

    while True:
        for key, mask in sel.select(timeout=0.2):
            c = key.data
            if c is None:
                for _ in range(256):
                    try:
                        s, _ = ls.accept()
                    except BlockingIOError:
                        break
                    except OSError as e:
                        # EMFILE and the like: try again on the next round.
                        print("idle_conns server: accept: %s" % err_name(e), file=sys.stderr)
                        break
                    s.setblocking(False)
                    c = EchoConn(s)
                    conns += 1
                    accepted += 1
                    set_events(c)
                continue
            try:
                if mask & selectors.EVENT_READ:
                    data = c.sock.recv(READ)
                    if data:
                        c.out += data
                    else:
                        c.eof = True
                if c.out and mask & (selectors.EVENT_WRITE | selectors.EVENT_READ):
                    n = c.sock.send(c.out)
                    del c.out[:n]
            except BlockingIOError:
                pass
            except OSError:
                close(c)
                continue
            if c.eof and not c.out:
                close(c)
            else:
                set_events(c)
        now = time.monotonic()
        if a.status and now - last_status >= 0.2:
            text = "open %d accepted %d\n" % (conns, accepted)
            if text != status:
                write_atomic(a.status, text)
                status = text
            last_status = now


# --- client ---------------------------------------------------------------

class IdleConn:
    def __init__(self, i, sock):
        self.i = i
        self.sock = sock
        self.token = b""
        self.got = bytearray()
        self.state = "connecting"
        self.error = None


def token(kind, i):
    return b"%s%07d\n" % (kind, i)


def run_batch(sel, batch, deadline, step):
    """Drives every connection of the batch through step() until each is
    done or failed. Returns the connections still pending at the deadline."""
    pending = set(c for c in batch if c.state not in ("done", "failed"))
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            return pending
        for key, mask in sel.select(timeout=min(left, 1.0)):
            c = key.data
            if c not in pending:
                continue
            try:
                step(sel, c, mask)
            except OSError as e:
                c.error = "%s while %s" % (err_name(e), c.state)
                c.state = "failed"
            if c.state in ("done", "failed"):
                pending.discard(c)
                try:
                    sel.unregister(c.sock)
                except (KeyError, ValueError):
                    pass
    return pending


def open_step(sel, c, mask):
    if c.state == "connecting":
        err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))
        c.token = token(b"idle", c.i)
        c.sock.send(c.token)  # a few bytes always fit an empty buffer
        c.state = "echo"
        sel.modify(c.sock, selectors.EVENT_READ, c)
        return
    data = c.sock.recv(READ)
    if not data:
        raise OSError(errno.EPIPE, "EOF before the echo")
    c.got += data
    if len(c.got) >= len(c.token):
        if bytes(c.got) != c.token:
            c.error = "echo %r, sent %r" % (bytes(c.got[:32]), c.token)
            c.state = "failed"
            return
        c.got.clear()
        c.state = "done"


def close_step(sel, c, mask):
    data = c.sock.recv(READ)
    if c.state == "echo":
        if not data:
            raise OSError(errno.EPIPE, "EOF before the second echo")
        c.got += data
        if len(c.got) >= len(c.token):
            if bytes(c.got) != c.token:
                c.error = "second echo %r, sent %r" % (bytes(c.got[:32]), c.token)
                c.state = "failed"
                return
            c.sock.shutdown(socket.SHUT_WR)
            c.state = "closing"
        return
    if data:
        c.error = "%d bytes after the second echo" % len(data)
        c.state = "failed"
        return
    c.state = "done"


def cmd_client(a):
    limit = raise_nofile()
    if limit < a.conns + 64:
        print("idle_conns client: open file limit %d is too low for %d connections"
              % (limit, a.conns), file=sys.stderr)
        return 2
    fam, host, port = parse_hostport(a.connect)
    sel = selectors.DefaultSelector()
    conns = []
    res = {"conns": a.conns, "opened": 0, "echoed": 0, "dropped_idle": 0,
           "echoed_again": 0, "closed": 0, "errors": []}
    t0 = time.monotonic()

    # Open, batch by batch.
    for start in range(0, a.conns, a.batch):
        batch = []
        for i in range(start, min(start + a.batch, a.conns)):
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.setblocking(False)
            c = IdleConn(i, s)
            r = s.connect_ex((host, port))
            if r not in (0, errno.EINPROGRESS):
                c.error = "connect: %s" % errno.errorcode.get(r, str(r))
                c.state = "failed"
                s.close()
            else:
                sel.register(s, selectors.EVENT_WRITE, c)
            batch.append(c)
            conns.append(c)
        stuck = run_batch(sel, batch, time.monotonic() + a.timeout, open_step)
        for c in stuck:
            c.error = "no echo within %g s (%s)" % (a.timeout, c.state)
            c.state = "failed"
        failed = [c for c in batch if c.state == "failed"]
        if failed:
            res["errors"] += ["conn %d: %s" % (c.i, c.error) for c in failed[:10]]
            break
    good = [c for c in conns if c.state == "done"]
    res["opened"] = res["echoed"] = len(good)
    res["open_s"] = round(time.monotonic() - t0, 2)

    # Hold. Nothing may arrive on an idle connection.
    if len(good) == a.conns:
        for c in good:
            sel.register(c.sock, selectors.EVENT_READ, c)
        if a.ready_file:
            write_atomic(a.ready_file, "%d\n" % len(good))
        t1 = time.monotonic()
        while not (a.close_file and os.path.exists(a.close_file)):
            for key, mask in sel.select(timeout=0.2):
                c = key.data
                try:
                    data = c.sock.recv(READ)
                    why = "%d unexpected bytes" % len(data) if data else "EOF"
                except OSError as e:
                    why = err_name(e)
                res["dropped_idle"] += 1
                res["errors"].append("conn %d while idle: %s" % (c.i, why))
                sel.unregister(c.sock)
                c.state = "failed"
            if time.monotonic() - t1 > a.hold_max:
                res["errors"].append("no close file after %g s" % a.hold_max)
                break
        res["held_s"] = round(time.monotonic() - t1, 2)
        good = [c for c in good if c.state == "done"]
        for c in good:
            sel.unregister(c.sock)

        # Second echo and a clean close, batch by batch.
        t2 = time.monotonic()
        for start in range(0, len(good), a.batch):
            batch = good[start:start + a.batch]
            for c in batch:
                c.token = token(b"back", c.i)
                c.state = "echo"
                try:
                    c.sock.send(c.token)
                    sel.register(c.sock, selectors.EVENT_READ, c)
                except OSError as e:
                    c.error = "second send: %s" % err_name(e)
                    c.state = "failed"
            stuck = run_batch(sel, batch, time.monotonic() + a.timeout, close_step)
            for c in stuck:
                c.error = "not closed within %g s (%s)" % (a.timeout, c.state)
                c.state = "failed"
                sel.unregister(c.sock)
            for c in batch:
                if c.state == "done":
                    res["closed"] += 1
                    res["echoed_again"] += 1
                elif c.state == "closing":
                    res["echoed_again"] += 1
            failed = [c for c in batch if c.state == "failed"]
            res["errors"] += ["conn %d: %s" % (c.i, c.error) for c in failed[:10]]
        res["close_s"] = round(time.monotonic() - t2, 2)
    for c in conns:
        c.sock.close()
    res["errors"] = res["errors"][:20]
    print(json.dumps(res, sort_keys=True))
    sys.stdout.flush()
    ok = res["closed"] == a.conns and not res["errors"]
    return 0 if ok else 1


# --- transfer -------------------------------------------------------------

def cmd_transfer(a):
    fam, host, port = parse_hostport(a.connect)
    s = socket.create_connection((host, port), timeout=a.timeout)
    res = {"sent": 0, "recv": 0, "error": None}
    hs, hr = hashlib.sha256(), hashlib.sha256()

    def sender():
        left = a.size
        try:
            while left:
                b = os.urandom(min(left, 256 * 1024))
                s.sendall(b)
                hs.update(b)
                res["sent"] += len(b)
                left -= len(b)
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            res["error"] = "send: " + err_name(e)

    t = threading.Thread(target=sender)
    t0 = time.monotonic()
    t.start()
    try:
        while True:
            b = s.recv(256 * 1024)
            if not b:
                break
            hr.update(b)
            res["recv"] += len(b)
    except OSError as e:
        res["error"] = res["error"] or "recv: " + err_name(e)
    t.join()
    s.close()
    res["seconds"] = round(time.monotonic() - t0, 2)
    res["sent_sha256"], res["recv_sha256"] = hs.hexdigest(), hr.hexdigest()
    res["intact"] = (res["error"] is None and res["sent"] == a.size
                     and res["recv"] == a.size and hs.digest() == hr.digest())
    print(json.dumps(res, sort_keys=True))
    return 0 if res["intact"] else 1


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("server")
    s.add_argument("--listen", required=True)
    s.add_argument("--status", help="rewrite 'open N accepted M' here every 0.2 s")
    c = sub.add_parser("client")
    c.add_argument("--connect", required=True)
    c.add_argument("--conns", type=int, required=True)
    c.add_argument("--batch", type=int, default=500)
    c.add_argument("--timeout", type=float, default=60,
                   help="seconds a batch may take to open or to close")
    c.add_argument("--ready-file")
    c.add_argument("--close-file")
    c.add_argument("--hold-max", type=float, default=600,
                   help="give up holding after this many seconds")
    t = sub.add_parser("transfer")
    t.add_argument("--connect", required=True)
    t.add_argument("--size", type=parse_size, default=8 << 20)
    t.add_argument("--timeout", type=float, default=60)
    a = p.parse_args()
    return {"server": cmd_server, "client": cmd_client, "transfer": cmd_transfer}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
