#!/usr/bin/env bash
# bench/tls_cost.sh: what TLS (tls.port) costs tqd, against its plaintext
# port on the same server, in three figures:
#   - throughput of one connection pipelining N ENQUEUEs of 100 bytes
#     (wal.fsync: never), and tqd's CPU time per job;
#   - full handshakes: openssl s_time for 5 s (new session each time), and
#     tqd's CPU time per handshake;
#   - memory: tqd's RSS growth for 1,000 idle connections, each after one PING
#     (first, on a fresh tqd; the TLS ones may reuse some of what the
#     plaintext ones freed, so their figure is if anything low).
# The certificate is a fresh self-signed P-256 one. The clients are Python's
# ssl module and openssl s_time, not tq-bench, so the absolute rates are the
# client's as much as tqd's; the comparison between the two ports is the point.
#
# usage: bench/tls_cost.sh [--build DIR] [--jobs N]
set -euo pipefail
# shellcheck source=bench/listen_port.sh
source "$(dirname "$0")/listen_port.sh"

build=build
jobs=300000
while [ $# -gt 0 ]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    *) echo "usage: $0 [--build DIR] [--jobs N]" >&2; exit 2 ;;
  esac
done

work=$(mktemp -d)
tqd_pid=""
cleanup() {
  if [ -n "$tqd_pid" ]; then kill "$tqd_pid" 2>/dev/null || true; wait "$tqd_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -keyout "$work/key.pem" -out "$work/cert.pem" -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
cat > "$work/config.yaml" <<EOF
tls:
  port: 0
  cert_file: $work/cert.pem
  key_file: $work/key.pem
wal:
  fsync: never
EOF
"$build/tqd" --config "$work/config.yaml" --port 0 --data-dir "$work/data" 2> "$work/log" &
tqd_pid=$!
plain_port=$(listen_port "$work/log" "$tqd_pid")
for _ in $(seq 1 100); do
  tls_port=$(sed -n 's/.*listening for TLS on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$work/log" | head -n 1)
  [ -n "$tls_port" ] && break
  sleep 0.05
done

cpu_seconds() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$tqd_pid/stat"; }

python3 - "$tqd_pid" "$plain_port" "$tls_port" "$work/cert.pem" "$jobs" <<'EOF'
import socket, ssl, sys, threading, time
pid, plain_port, tls_port, cafile, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
ctx = ssl.create_default_context(cafile=cafile)

def cpu():
    f = open("/proc/%d/stat" % pid).read().split()
    return (int(f[13]) + int(f[14])) / 100.0

def rss_kib():
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS"):
            return int(line.split()[1])

def connect(port, tls):
    s = socket.create_connection(("127.0.0.1", port))
    return ctx.wrap_socket(s, server_hostname="localhost") if tls else s

def pipelined(port, tls, queue):
    s = connect(port, tls)
    s.sendall(("CREATE %s\n" % queue).encode())
    s.recv(100)
    data = ("ENQUEUE %s %s\n" % (queue, "x" * 100)).encode() * n
    c0, t0 = cpu(), time.time()
    sender = threading.Thread(target=lambda: s.sendall(data))
    sender.start()
    got = 0
    while got < n:
        got += s.recv(1 << 20).count(b"\n")
    sender.join()
    t1, c1 = time.time(), cpu()
    s.close()
    return n / (t1 - t0), (c1 - c0) * 1e6 / n

def idle(port, tls, count=1000):
    r0, socks = rss_kib(), []
    for _ in range(count):
        s = connect(port, tls)
        s.sendall(b"PING\n")
        s.recv(100)
        socks.append(s)
    time.sleep(0.5)
    grown = rss_kib() - r0
    for s in socks:
        s.close()
    return grown / count

for name, port, tls in (("plaintext", plain_port, False), ("TLS", tls_port, True)):
    print("%-9s idle connection: %.1f KiB of tqd RSS each (1,000 connections)" % (name, idle(port, tls)))
for name, port, tls in (("plaintext", plain_port, False), ("TLS", tls_port, True)):
    best = max(pipelined(port, tls, "q%s%d" % (name, i)) for i in range(3))
    print("%-9s pipelined: %9.0f jobs/s, tqd CPU %.2f us/job (best of 3, %d jobs)" % (name, best[0], best[1], n))
EOF

c0=$(cpu_seconds)
handshakes=$(openssl s_time -connect "127.0.0.1:$tls_port" -new -time 5 2>/dev/null |
  sed -n 's/^\([0-9][0-9]*\) connections in .* real seconds.*/\1/p')
c1=$(cpu_seconds)
awk -v n="$handshakes" -v c0="$c0" -v c1="$c1" 'BEGIN {
  printf "TLS       handshakes: %d in 5 s, tqd CPU %.2f ms each\n", n, (c1 - c0) * 1000 / n }'
