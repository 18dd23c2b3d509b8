#!/usr/bin/env bash
# bench/callgrind.sh: where tqd's own instructions go, per job, counted by
# callgrind rather than timed, so two builds compare within a fraction of a
# percent on a noisy machine (timings here vary by 20% between runs). Runs
# tqd under valgrind --tool=callgrind, pushes N jobs through it with
# tq-bench (produce, then consume: one ENQUEUE, one DEQUEUE and one ACK per
# job, 16 connections x pipeline 32 unless told otherwise), stops it, and
# prints user-space instructions per job and the functions that take the
# most. At pipeline 1 each loop iteration serves a few requests, so what an
# iteration costs whatever it serves shows up per job.
#
# Counts only what runs in tqd's process in user space: the kernel's share
# (loopback TCP, page faults) is not in it; perf shows that. Per-iteration
# costs depend on how requests batch, which depends on timing, so counts
# move by a percent or two between runs of one build.
#
# usage: bench/callgrind.sh [--build DIR] [--jobs N] [--wal none|never|always] [--top K]
#                           [--connections C] [--pipeline P] [--produce-only]
#                           [--keep FILE]   (copy the callgrind output there, for
#                                            callgrind_annotate --auto=yes on a -g build)
set -euo pipefail
# shellcheck source=bench/listen_port.sh
source "$(dirname "$0")/listen_port.sh"

build=build
jobs=200000
wal=none
top=25
connections=16
pipeline=32
phases="produce consume"
keep=""
while [ $# -gt 0 ]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --wal) wal=$2; shift 2 ;;
    --top) top=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --pipeline) pipeline=$2; shift 2 ;;
    --produce-only) phases=produce; shift ;;
    --keep) keep=$2; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "callgrind.sh: unknown argument $1 (--help)" >&2; exit 2 ;;
  esac
done
command -v valgrind >/dev/null || { echo "callgrind.sh: needs valgrind (apt-get install valgrind)" >&2; exit 2; }
for binary in tqd tq-bench; do
  [ -x "$build/$binary" ] || { echo "callgrind.sh: no $build/$binary; run make build" >&2; exit 2; }
done

dir=$(mktemp -d /tmp/tq-callgrind.XXXXXX)
tqd_pid=""
cleanup() {
  [ -z "$tqd_pid" ] || kill -TERM "$tqd_pid" 2>/dev/null || true
  [ -z "$keep" ] || cp "$dir/callgrind.out" "$keep" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

case $wal in
  none) printf 'wal:\n  enabled: false\n' > "$dir/tqd.yaml" ;;
  never|always) printf 'wal:\n  fsync: %s\n' "$wal" > "$dir/tqd.yaml" ;;
  *) echo "callgrind.sh: --wal takes none, never or always" >&2; exit 2 ;;
esac

valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" \
  "$build/tqd" --config "$dir/tqd.yaml" --port 0 --data-dir "$dir/data" 2> "$dir/tqd.log" &
tqd_pid=$!
port=$(listen_port "$dir/tqd.log" "$tqd_pid") || true
[ -n "$port" ] || { echo "callgrind.sh: tqd did not start" >&2; cat "$dir/tqd.log" >&2; exit 1; }

for phase in $phases; do
  "$build/tq-bench" --port "$port" -c "$connections" -p "$pipeline" -n "$jobs" --phase "$phase" | sed -n 2p
done
kill -TERM "$tqd_pid"
wait "$tqd_pid" || true
tqd_pid=""

total=$(callgrind_annotate "$dir/callgrind.out" | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
done_what="produced and consumed"
[ "$phases" = produce ] && done_what=produced
echo "tqd (wal: $wal, $connections x $pipeline), $jobs jobs $done_what: $total instructions, $((total / jobs)) per job"
echo "top $top functions by their own instructions (per job):"
callgrind_annotate "$dir/callgrind.out" 2>/dev/null |
  awk -v jobs="$jobs" -v top="$top" '
    /^-+$/ { dashes++; next }
    dashes >= 4 && NF >= 3 && $1 ~ /^[0-9,]+$/ && !/PROGRAM TOTALS/ {
      n = $1; gsub(",", "", n)
      name = $0; sub(/^ *[0-9,]+ *\([ 0-9.]+%\) */, "", name)
      sub(/^[^:]*:/, "", name); sub(/ \[.*\]$/, "", name); sub(/\(.*$/, "", name)
      printf "  %8.1f  %s\n", n / jobs, name
      if (++shown == top) exit
    }'
