#!/usr/bin/env bash
# bench/stall.sh: how long commands over many jobs hold the other clients
# up. For each, N jobs are set up in the state the command works on, then
# `tq-bench --phase stall` sends it and PINGs on another connection until
# its reply comes (bench/stall.h):
#   - KICK, REDRIVE and PURGE ... DEAD, which tqd runs in steps;
#   - PURGE and DROP, which reply at once and leave their jobs to be
#     freed in steps (PINGs go on until STATS jobs_freeing is 0);
#   - the sweeper: N TTLs running out at once, sending the jobs to a
#     dead-letter queue, measured over a DEQUEUE ... WAIT on an empty queue.
# Dead jobs are made with a queue ttl of 1 s and ttl_dead_letter, so the
# sweeper's work comes before each measurement, not in it.
#
# usage: bench/stall.sh [--build DIR] [--tqd PATH] [--jobs N]   (default N: 1000000)
#   --tqd: another tqd to measure (an older build, say) with this build's
#   tq and tq-bench
set -euo pipefail
# shellcheck source=bench/listen_port.sh
source "$(dirname "$0")/listen_port.sh"

build=build
tqd=""
jobs=1000000
while [ $# -gt 0 ]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --tqd) tqd=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    *) echo "usage: $0 [--build DIR] [--tqd PATH] [--jobs N]" >&2; exit 2 ;;
  esac
done

work=$(mktemp -d)
tqd_pid=""
cleanup() {
  if [ -n "$tqd_pid" ]; then kill "$tqd_pid" 2>/dev/null || true; wait "$tqd_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

printf 'wal:\n  fsync: never\n' > "$work/config.yaml"
"${tqd:-$build/tqd}" --config "$work/config.yaml" --port 0 --data-dir "$work/data" 2> "$work/log" &
tqd_pid=$!
port=$(listen_port "$work/log" "$tqd_pid") || { cat "$work/log" >&2; exit 1; }

tq() { "$build/tq" --port "$port" --raw "$@"; }
produce() { "$build/tq-bench" --port "$port" --phase produce -c 16 -p 32 -n "$jobs" --queue-prefix "$1" > /dev/null; }
# Waits until STATS <queue> shows <figure> <value>.
wait_for() {
  for _ in $(seq 1 600); do
    if tq STATS "$1" | grep -qx "$2 $3"; then return 0; fi
    sleep 0.1
  done
  echo "stall.sh: $1 never showed $2 $3" >&2
  exit 1
}
stall() {
  printf '%-26s' "$1"
  "$build/tq-bench" --port "$port" --phase stall --command "$1" --json |
    sed -E 's/.*"reply":"([^"]*)","seconds":([0-9.e+-]+),"pings":([0-9]+),"ping_p50_us":([0-9.e+-]+),"ping_p99_us":([0-9.e+-]+),"ping_max_us":([0-9.e+-]+).*/\2 \3 \4 \5 \6 \1/' |
    awk '{ printf "%8.3f s %7d PINGs  p50 %7.0f us  p99 %7.0f us  max %8.0f us   %s %s %s\n", $1, $2, $3, $4, $5, $6, $7, $8 }'
}
dead_jobs() {  # <queue> [settings]: N jobs dead there (or moved, with a dead_letter_queue)
  tq CONFIG "$1" ttl=1s ttl_dead_letter=true "${@:2}" > /dev/null
  produce "$1"
  tq CONFIG "$1" ttl=0ms > /dev/null
}

echo "tq-bench stall: $jobs jobs each, fsync: never, tqd: ${tqd:-$build/tqd} ($("${tqd:-$build/tqd}" --version 2>&1 | head -n 1))"
tq CREATE bench > /dev/null
tq CREATE dlq > /dev/null
tq CREATE idle > /dev/null

dead_jobs bench
wait_for bench dead "$jobs"
stall "KICK bench"
stall "PURGE bench"

dead_jobs bench
wait_for bench dead "$jobs"
stall "PURGE bench DEAD"

dead_jobs bench dead_letter_queue=dlq
wait_for dlq ready "$jobs"
stall "REDRIVE dlq"
stall "DROP bench"

tq CREATE bench > /dev/null
tq CONFIG bench ttl=3s ttl_dead_letter=true dead_letter_queue=dlq > /dev/null
produce bench
stall "DEQUEUE idle WAIT 4s"
echo "(the last: the sweeper moving $jobs jobs whose TTL ran out to dlq meanwhile; dlq ready $(tq STATS dlq | sed -n 's/^ready //p'))"
