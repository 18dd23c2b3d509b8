#!/usr/bin/env python3
# bench/fill_keys.py PORT N: fills queue q (created here) with N 10-byte jobs,
# each PUT with a dedup key of its own, pipelined on one connection, for
# measuring DROP of a queue with many keys:
#   bench/fill_keys.py $port 500000 && build/tq-bench --port $port --phase stall --command "DROP q"
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"CREATE q\r\n")
buf = b""
def drain(k):
    global buf
    got = 0
    while got < k:
        data = s.recv(1 << 20)
        if not data: raise SystemExit("closed")
        buf += data
        lines = buf.split(b"\n")
        buf = lines[-1]
        for l in lines[:-1]:
            if not l.startswith(b"OK"): raise SystemExit(l)
            got += 1
drain(1)
batch = 5000
for start in range(0, n, batch):
    out = b"".join(b"PUT q 10 KEY key-number-%d\r\n0123456789\r\n" % i for i in range(start, min(n, start + batch)))
    s.sendall(out)
    drain(min(n, start + batch) - start)
# ACK them all? leave them ready: DROP frees jobs and keys.
print("filled", n)
