#!/usr/bin/env python3
"""bench/fill_queue.py PORT N [--groups G] [--keys]: fills queue q (created
here) with N jobs, pipelined on one connection, for measuring PURGE and DROP
of big queues with tq-bench's stall phase:

  bench/fill_queue.py $port 500000 --groups 1000   # 100-byte jobs in 1,000 message groups
  bench/fill_queue.py $port 500000 --keys          # 10-byte jobs, each with a dedup key of its own
  build/tq-bench --port $port --phase stall --command "DROP q"
"""
import argparse
import socket

parser = argparse.ArgumentParser()
parser.add_argument("port", type=int)
parser.add_argument("n", type=int)
parser.add_argument("--groups", type=int, default=0, help="spread the jobs over this many groups")
parser.add_argument("--keys", action="store_true", help="give each job a dedup key")
args = parser.parse_args()

sock = socket.create_connection(("127.0.0.1", args.port))
pending = b""


def read_replies(count):
    """Reads `count` reply lines; stops at the first that is not OK."""
    global pending
    got = 0
    while got < count:
        data = sock.recv(1 << 20)
        if not data:
            raise SystemExit("fill_queue.py: tqd closed the connection")
        pending += data
        lines = pending.split(b"\n")
        pending = lines[-1]
        for line in lines[:-1]:
            if not line.startswith(b"OK"):
                raise SystemExit("fill_queue.py: " + line.decode(errors="replace"))
            got += 1


def put(i):
    if args.keys:
        return b"PUT q 10 KEY key-number-%d\r\n0123456789\r\n" % i
    group = b" GROUP g%d" % (i % args.groups) if args.groups else b""
    return b"PUT q 100%s\r\n%s\r\n" % (group, b"x" * 100)


sock.sendall(b"CREATE q\r\n")
read_replies(1)
batch = 5000
for start in range(0, args.n, batch):
    end = min(args.n, start + batch)
    sock.sendall(b"".join(put(i) for i in range(start, end)))
    read_replies(end - start)
print("filled q with", args.n, "jobs")
