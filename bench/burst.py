#!/usr/bin/env python3
"""How long a burst of connections, or of closes, holds tqd's other clients.

    bench/burst.py --port PORT --pid PID [--connections 4000] [--phase connect|close]

connect: with tqd stopped (SIGSTOP), opens the connections and sends a PING
on each, so that tqd finds all of them waiting at once when it goes on
(SIGCONT); a PING on a connection made before is sent behind them.
close: opens the connections (each answered a PING, so admitted), stops
tqd, closes them all, and sends a PING behind their FINs.

Prints how long that PING took from SIGCONT, then the worst of the 200 PINGs
after it. Run it against a tqd of its own: stopping one that others use
stalls them too. Needs a file limit above --connections (ulimit -n).
"""
import argparse
import os
import signal
import socket
import time


def ping(sock):
    sock.sendall(b"PING\n")
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = sock.recv(64)
        if not chunk:
            raise SystemExit("burst.py: tqd closed the probe connection")
        reply += chunk


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, required=True, help="tqd's pid (it is stopped and continued)")
    parser.add_argument("--connections", type=int, default=4000)
    parser.add_argument("--phase", choices=["connect", "close"], default="close")
    args = parser.parse_args()

    probe = socket.create_connection(("127.0.0.1", args.port))
    probe.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ping(probe)
    burst = []
    if args.phase == "close":
        for _ in range(args.connections):
            s = socket.create_connection(("127.0.0.1", args.port))
            ping(s)
            burst.append(s)
    time.sleep(0.3)  # tqd back in epoll_wait: the stop lands there
    os.kill(args.pid, signal.SIGSTOP)
    time.sleep(0.3)
    if args.phase == "close":
        for s in burst:
            s.close()
    else:
        for _ in range(args.connections):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", args.port))
            except BlockingIOError:
                pass
            burst.append(s)
        time.sleep(0.3)  # the kernel completes the handshakes meanwhile
        for s in burst:
            try:
                s.send(b"PING\n")
            except OSError:
                pass  # not connected yet: it is still a connect in the burst
    probe.sendall(b"PING\n")
    started = time.perf_counter()
    os.kill(args.pid, signal.SIGCONT)
    reply = b""
    while not reply.endswith(b"\n"):
        reply += probe.recv(64)
    first = time.perf_counter() - started
    worst = 0.0
    for _ in range(200):
        t = time.perf_counter()
        ping(probe)
        worst = max(worst, time.perf_counter() - t)
    print(f"{args.phase} burst of {args.connections}: a PING behind it answered in "
          f"{first * 1000:.1f} ms; the worst of the 200 PINGs after, {worst * 1000:.1f} ms")
    for s in burst:
        s.close()


if __name__ == "__main__":
    main()
