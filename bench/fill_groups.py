#!/usr/bin/env python3
# bench/fill_groups.py PORT N GROUPS: fills queue q (created here) with N
# 100-byte jobs spread over GROUPS message groups, pipelined on one
# connection, for measuring PURGE and DROP of grouped queues:
#   bench/fill_groups.py $port 500000 1000 && build/tq-bench --port $port --phase stall --command "PURGE q"
import socket, sys
port, n, groups = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"CREATE q\r\n")
payload = b"x" * 100
batch = 5000
got = 0
buf = b""
def drain(k):
    global buf
    n = 0
    while n < k:
        data = s.recv(1 << 20)
        if not data: raise SystemExit("closed")
        buf += data
        lines = buf.split(b"\n")
        buf = lines[-1]
        for l in lines[:-1]:
            if not l.startswith(b"OK"): raise SystemExit(l)
            n += 1
drain(1)
for start in range(0, n, batch):
    out = b"".join(b"PUT q 100 GROUP g%d\r\n%s\r\n" % (i % groups, payload) for i in range(start, min(n, start + batch)))
    s.sendall(out)
    drain(min(n, start + batch) - start)
print("filled", n)
