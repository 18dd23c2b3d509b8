#!/usr/bin/env bash
# bench/compare.sh: tq against beanstalkd and redis, same workloads, matching
# durability, one table. The same workloads also run against tq-ceiling
# (bench/ceiling_server.cc), a server that keeps nothing and only answers, to
# show the most any single-threaded server can do on this machine. Installs beanstalkd, redis-server and jq from Debian
# if they are missing, starts each server on a free loopback port in a
# temporary directory (never touching a system-wide instance), runs tq-bench
# against it, stops it, and writes the table, the machine and the date to
# bench/RESULTS.md. Ends with tq's replay figures (restart time, WAL bytes and
# memory with 1,000,000 pending jobs). Hand-written notes below the marker
# line in the output file are kept.
#
# Durability modes (what each server promises before it answers):
#   none   beanstalkd without -b; redis --save '' --appendonly no;
#          tq wal.enabled: false
#   log    beanstalkd -b DIR; redis --appendonly yes --appendfsync no;
#          tq wal.fsync: never
#   fsync  beanstalkd -b DIR -f 0; redis --appendonly yes --appendfsync always;
#          tq wal.fsync: always
#   (tq-ceiling: --durability none, log (one write a turn) or fsync (one
#   write and one fdatasync a turn, on its only thread))
#
# usage: bench/compare.sh [--build-dir DIR] [--tqd PATH] [--bench PATH]
#                         [--threads T] [--replay-jobs N] [--no-replay]
#                         [--rounds N] [--quick] [--no-ceiling] [--note TEXT]
#                         [--tq-huge-pages] [--out FILE]
#   --tq-huge-pages: tqd with server.huge_pages: true (README, Memory); name
#   another --out, or the table replaces the default one
#
# Noise on a shared machine only ever slows a run down, so the matrix runs
# --rounds times (2 by default), every system in every round (in the
# opposite order in every other round), and each cell of the table is the
# round with the most jobs/s (its p99 and CPU with it).
# Between servers the previous one's files are deleted and the page cache
# synced, so no system pays for another's dirty pages being written back.
set -euo pipefail
# shellcheck source=bench/listen_port.sh
source "$(dirname "$0")/listen_port.sh"

repo=$(cd "$(dirname "$0")/.." && pwd)
build_dir="$repo/build"
tqd=""
bench=""
threads=1
replay_jobs=1000000
do_replay=1
quick=0
no_ceiling=0
rounds=""
note=""
tq_huge_pages=0
out="$repo/bench/RESULTS.md"

while [ $# -gt 0 ]; do
  case $1 in
    --build-dir) build_dir=$2; shift 2 ;;
    --tqd) tqd=$2; shift 2 ;;
    --bench) bench=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --replay-jobs) replay_jobs=$2; shift 2 ;;
    --no-replay) do_replay=0; shift ;;
    --quick) quick=1; shift ;;
    --rounds) rounds=$2; shift 2 ;;
    --no-ceiling) no_ceiling=1; shift ;;
    --note) note=$2; shift 2 ;;
    --tq-huge-pages) tq_huge_pages=1; shift ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,34p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

# The matrix. Each produce run stops at max_jobs or after produce_limit
# seconds, whichever comes first; consume then takes back what was produced
# (or stops after consume_limit), so every run lasts about 1-3 s whatever the
# speed of the system and its disk.
connections=(1 16 64)
pipelines=(1 32)
size=100
max_jobs=500000
produce_limit=1
consume_limit=2
mixed_seconds=1
modes=(none log fsync)
systems=(tq beanstalkd redis ceiling)
if [ "$quick" = 1 ]; then
  connections=(16)
  pipelines=(32)
  max_jobs=50000
  produce_limit=0.5
  consume_limit=1
  mixed_seconds=0.5
  replay_jobs=100000
  rounds=${rounds:-1}
fi
rounds=${rounds:-2}
[ "$no_ceiling" = 1 ] && systems=(tq beanstalkd redis)

log() { echo "compare: $*" >&2; }

# --- packages ---------------------------------------------------------------

install_missing() {
  local missing=()
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  if ! $sudo apt-get install -y --no-install-recommends "${missing[@]}"; then
    $sudo apt-get update
    $sudo apt-get install -y --no-install-recommends "${missing[@]}"
  fi
}

install_missing beanstalkd redis-server jq

# --- binaries ---------------------------------------------------------------

if [ -z "$tqd" ] || [ -z "$bench" ]; then
  if [ "$build_dir" = "$repo/build" ] && { [ ! -x "$build_dir/tqd" ] || [ ! -x "$build_dir/tq-bench" ] ||
      [ ! -x "$build_dir/tq-ceiling" ]; }; then
    log "building tqd, tq-bench and tq-ceiling (make build)"
    make -C "$repo" build >&2
  fi
  tqd=${tqd:-$build_dir/tqd}
  bench=${bench:-$build_dir/tq-bench}
fi
ceiling_server=$(dirname "$bench")/tq-ceiling
[ "$no_ceiling" = 1 ] && ceiling_server=$bench  # not run; keeps the check below simple
for b in "$tqd" "$bench" "$ceiling_server"; do
  [ -x "$b" ] || { echo "compare.sh: $b not found; run 'make build' first" >&2; exit 1; }
done

# --- servers ----------------------------------------------------------------

work=$(mktemp -d /tmp/tq-compare.XXXXXX)
server_pid=""
server_port=""

stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 200); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
cleanup() {
  stop_server
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A port below the kernel's ephemeral range: one inside it may be the local
# end of some connection (tq-bench opens hundreds), and bind then fails.
free_port() {
  local p low=32768
  read -r low _ < /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  [ "$low" -gt 11000 ] || low=32768
  for _ in $(seq 1 100); do
    p=$((10000 + RANDOM % (low - 10000)))
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  echo "compare.sh: no free port found" >&2
  return 1
}

wait_accepting() {
  for _ in $(seq 1 400); do
    port_in_use "$1" && return 0
    kill -0 "$server_pid" 2>/dev/null || return 1
    sleep 0.025
  done
  return 1
}

# port_from_log FILE: sets server_port from the "listening on ADDR:PORT" line
# that tqd and tq-ceiling log when started with --port 0 (empty if none).
port_from_log() {
  server_port=$(listen_port "$1" "$server_pid") || server_port=""
}

# start_server SYSTEM MODE: starts it in a fresh directory, sets server_pid
# and server_port.
start_server() {
  local system=$1 mode=$2
  local dir="$work/$system-$mode"
  mkdir -p "$dir"
  case $system in
    tq)
      case $mode in
        none) printf 'wal:\n  enabled: false\n' > "$dir/tqd.yaml" ;;
        log) printf 'wal:\n  fsync: never\n' > "$dir/tqd.yaml" ;;
        *) printf 'wal:\n  fsync: always\n' > "$dir/tqd.yaml" ;;
      esac
      [ "$tq_huge_pages" = 1 ] && printf 'server:\n  huge_pages: true\n' >> "$dir/tqd.yaml"
      "$tqd" --config "$dir/tqd.yaml" --port 0 --data-dir "$dir/data" 2> "$dir/server.log" &
      server_pid=$!
      port_from_log "$dir/server.log"
      ;;
    ceiling)
      "$ceiling_server" --port 0 --durability "$mode" --log-file "$dir/requests.log" \
        --size "$size" 2> "$dir/server.log" &
      server_pid=$!
      port_from_log "$dir/server.log"
      ;;
    beanstalkd)
      server_port=$(free_port)
      local flags=()
      case $mode in
        log) mkdir -p "$dir/binlog"; flags=(-b "$dir/binlog") ;;
        fsync) mkdir -p "$dir/binlog"; flags=(-b "$dir/binlog" -f 0) ;;
      esac
      beanstalkd -l 127.0.0.1 -p "$server_port" "${flags[@]}" 2> "$dir/server.log" &
      server_pid=$!
      ;;
    redis)
      server_port=$(free_port)
      local flags=(--save '' --appendonly no)
      case $mode in
        log) flags=(--save '' --appendonly yes --appendfsync no) ;;
        fsync) flags=(--save '' --appendonly yes --appendfsync always) ;;
      esac
      redis-server --bind 127.0.0.1 --port "$server_port" --dir "$dir" --daemonize no \
        --logfile "$dir/server.log" "${flags[@]}" &
      server_pid=$!
      ;;
  esac
  if [ -z "$server_port" ] || ! wait_accepting "$server_port"; then
    echo "compare.sh: $system ($mode) did not start; its log:" >&2
    cat "$dir/server.log" >&2 || true
    return 1
  fi
}

# --- runs -------------------------------------------------------------------

results="$work/results.jsonl"
: > "$results"

# bench_run SYSTEM MODE C P PHASE [tq-bench flags...]: one run, its JSON
# (or an error record) appended to the results.
bench_run() {
  local system=$1 mode=$2 c=$3 p=$4 phase=$5
  shift 5
  local json status=0
  local target=$system
  [ "$system" = ceiling ] && target=tq  # it speaks tq's lines
  json=$("$bench" --target "$target" --port "$server_port" --server-pid "$server_pid" \
    --connections "$c" --pipeline "$p" --threads "$threads" --size "$size" --phase "$phase" \
    --json "$@" 2> "$work/bench.err") || status=$?
  if [ -z "$json" ] || ! echo "$json" | jq -e . >/dev/null 2>&1; then
    json=$(jq -cn --arg e "exit $status: $(head -c 300 "$work/bench.err")" '{error: $e, jobs: 0, jobs_per_sec: 0}')
  fi
  echo "$json" | jq -c --arg system "$system" --arg mode "$mode" --argjson c "$c" \
    --argjson p "$p" --arg phase "$phase" --argjson round "$round" \
    '. + {system: $system, mode: $mode, c: $c, p: $p, phase: $phase, round: $round}' >> "$results"
  echo "$json"
}

started=$(date +%s)
for round in $(seq 1 "$rounds"); do
# Every other round runs the systems in the opposite order: a machine that
# drifts over a run (a neighbour's load coming or going) favours no system.
order=("${systems[@]}")
if (( round % 2 == 0 )); then
  order=()
  for (( i = ${#systems[@]} - 1; i >= 0; i-- )); do order+=("${systems[i]}"); done
fi
for mode in "${modes[@]}"; do
  for system in "${order[@]}"; do
    log "round $round of $rounds: $system, durability '$mode'"
    rm -rf "${work:?}/$system-$mode"
    sync
    started_ok=0
    for attempt in 1 2 3; do  # a port taken between the check and the bind: try another
      if start_server "$system" "$mode"; then started_ok=1; break; fi
      stop_server
      rm -rf "${work:?}/$system-$mode"
    done
    [ "$started_ok" = 1 ] || continue
    for c in "${connections[@]}"; do
      for p in "${pipelines[@]}"; do
        prefix="b${c}x${p}"
        produced=$(bench_run "$system" "$mode" "$c" "$p" produce --queue-prefix "$prefix" \
          --jobs "$max_jobs" --time-limit "$produce_limit" | jq -r '.produce.jobs // 0')
        if [ "$produced" -gt 0 ]; then
          bench_run "$system" "$mode" "$c" "$p" consume --queue-prefix "$prefix" \
            --jobs "$produced" --time-limit "$consume_limit" > /dev/null
        fi
        if [ "$c" -ge 2 ]; then
          bench_run "$system" "$mode" "$c" "$p" mixed --queue-prefix "m${c}x${p}" \
            --duration "$mixed_seconds" > /dev/null
        fi
      done
    done
    stop_server
    rm -rf "${work:?}/$system-$mode"  # its dirty pages go with it, unwritten
  done
done
done
matrix_seconds=$(( $(date +%s) - started ))

replay_json=""
if [ "$do_replay" = 1 ]; then
  log "tq replay with $replay_jobs pending jobs"
  replay_json=$("$bench" --phase replay --tqd "$tqd" --data-dir "$work/replay" --jobs "$replay_jobs" \
    --connections 16 --pipeline 32 --threads "$threads" --size "$size" --json 2> "$work/bench.err") \
    || { log "replay failed: $(cat "$work/bench.err")"; replay_json=""; }
  rm -rf "$work/replay"
fi

# --- the table --------------------------------------------------------------

# Markdown rows: jobs/s and p99 per system, and tq's throughput over the best
# peer's. For mixed, a job is one that went all the way through (consumed).
# best_by_system: a cell's records -> {system: the round with the most jobs/s}
# (a failed round only when every round failed).
best='def best_by_system: group_by(.system)
  | map({key: .[0].system,
         value: ((map(select(.error == null)) | max_by(.jobs_per_sec)) // .[0])})
  | from_entries;'

table=$(jq -rs "$best"'
  def rate: if . == null then "-" elif . >= 100000 then "\(. / 1000 | round)k"
            elif . >= 1000 then "\((. / 100 | round) / 10)k" else "\(. | round)" end;
  def lat: if . == null then "-" elif . >= 1000 then "\((. / 10 | round) / 100) ms"
           else "\(. | round) µs" end;
  def cell($r): if $r == null then "- | -" elif $r.error != null then "fail | -"
                else "\($r.jobs_per_sec | rate) | \($r.latency_us.p99 | lat)" end;
  def order: {"none": 0, "log": 1, "fsync": 2};
  def phases: {"produce": 0, "consume": 1, "mixed": 2};
  "| durability | C | P | phase | tq jobs/s | tq p99 | beanstalkd jobs/s | beanstalkd p99 | redis jobs/s | redis p99 | tq / best peer |",
  "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
  ( group_by([order[.mode], .c, .p, phases[.phase]])[]
    | best_by_system as $by
    | .[0] as $any
    | ([$by.beanstalkd, $by.redis] | map(select(. != null and .error == null) | .jobs_per_sec) | max) as $best
    | "| \($any.mode) | \($any.c) | \($any.p) | \($any.phase) | \(cell($by.tq)) | \(cell($by.beanstalkd)) | \(cell($by.redis)) | "
      + (if $by.tq != null and $by.tq.error == null and $best != null and $best > 0
         then "\(($by.tq.jobs_per_sec / $best * 100 | round) / 100)×" else "-" end) + " |" )
' "$results")

# Server CPU per job and the client's own CPU, to tell who was the bottleneck.
cpu_table=$(jq -rs "$best"'
  def us: if . == null then "-" else "\((. * 10 | round) / 10)" end;
  def order: {"none": 0, "log": 1, "fsync": 2};
  def phases: {"produce": 0, "consume": 1, "mixed": 2};
  def cell($r): if $r == null or $r.error != null or ($r.jobs // 0) == 0 or ($r.seconds // 0) <= 0
                   or $r.server == null or $r.server.cpu_seconds == null then "- | -"
                else "\($r.server.cpu_seconds / $r.jobs * 1e6 | us) | \(($r.client_cpu_seconds / $r.seconds * 100 | round) / 100)" end;
  "| durability | C | P | phase | tq server µs/job | tq client cores | beanstalkd server µs/job | beanstalkd client cores | redis server µs/job | redis client cores |",
  "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
  ( group_by([order[.mode], .c, .p, phases[.phase]])[]
    | best_by_system as $by
    | .[0] as $any
    | "| \($any.mode) | \($any.c) | \($any.p) | \($any.phase) | \(cell($by.tq)) | \(cell($by.beanstalkd)) | \(cell($by.redis)) |" )
' "$results")

# The ceiling: tq-ceiling's rate in each row against the best peer's and tq's.
# Where it is under twice the best peer, no single-threaded server can be
# twice as fast as that peer on this machine with this client.
ceiling_section=""
if [ "$no_ceiling" = 0 ]; then
  ceiling_rows="$best"'
    def order: {"none": 0, "log": 1, "fsync": 2};
    def phases: {"produce": 0, "consume": 1, "mixed": 2};
    def rate_of: if . == null or .error != null then null else .jobs_per_sec end;
    def rows: group_by([order[.mode], .c, .p, phases[.phase]])[]
      | best_by_system as $by
      | {mode: .[0].mode, c: .[0].c, p: .[0].p, phase: .[0].phase,
         tq: ($by.tq | rate_of), ceiling: ($by.ceiling | rate_of),
         ceiling_p99: (if ($by.ceiling | rate_of) == null then null else $by.ceiling.latency_us.p99 end),
         best: ([$by.beanstalkd, $by.redis] | map(rate_of | select(. != null)) | max)};'
  ceiling_table=$(jq -rs "$ceiling_rows"'
    def rate: if . == null then "-" elif . >= 100000 then "\(. / 1000 | round)k"
              elif . >= 1000 then "\((. / 100 | round) / 10)k" else "\(. | round)" end;
    def lat: if . == null then "-" elif . >= 1000 then "\((. / 10 | round) / 100) ms"
             else "\(. | round) µs" end;
    def ratio($a; $b): if $a == null or $b == null or $b <= 0 then "-"
                       else "\(($a / $b * 100 | round) / 100)×" end;
    "| durability | C | P | phase | ceiling jobs/s | ceiling p99 | best peer jobs/s | ceiling / best peer | tq / ceiling |",
    "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ( rows
      | "| \(.mode) | \(.c) | \(.p) | \(.phase) | \(.ceiling | rate) | \(.ceiling_p99 | lat) | \(.best | rate) | "
        + "\(ratio(.ceiling; .best)) | \(ratio(.tq; .ceiling)) |" )
  ' "$results")
  ceiling_counts=$(jq -rs "$ceiling_rows"'
    [rows | select(.ceiling != null and .best != null and .best > 0)]
    | "\(map(select(.ceiling < 2 * .best)) | length) of \(length) rows have a ceiling under 2× the best peer; "
      + "tq is at or above the ceiling in \(map(select(.tq != null and .tq >= .ceiling)) | length)."
  ' "$results")
  ceiling_section="## The ceiling: what a server that does nothing gets

\`tq-ceiling\` (bench/ceiling_server.cc) keeps no jobs: it answers every line
at once, with one read and one write per socket a turn, and at \`log\` one
write of the turn's requests to a file (at \`fsync\` also one fdatasync, on
its only thread, before the replies). Its rate is the most a single-threaded
server can get from this client on this machine. ${ceiling_counts}

${ceiling_table}
"
fi

failures=$(jq -rs 'map(select(.error != null) | "- round \(.round): \(.system) \(.mode) C=\(.c) P=\(.p) \(.phase): \(.error)") | .[]' "$results")

replay_section="(not run)"
if [ -n "$replay_json" ]; then
  replay_section=$(echo "$replay_json" | jq -r '
    def mib: "\((. / 1048576 * 10 | round) / 10) MiB";
    "| figure | value |",
    "|---|---:|",
    "| pending jobs (100-byte payloads) | \(.jobs) |",
    "| produce rate while filling (16 × 32, fsync never) | \(.produce.jobs_per_sec | round) jobs/s |",
    "| restart: exec to STATS showing them all | \((.restart_seconds * 1000 | round) / 1000) s |",
    "| restart: exec to first accepted connection | \((.listening_seconds * 1000 | round) / 1000) s |",
    "| replay time logged by tqd | \(if .tqd_replay_ms == null then "-" else "\(.tqd_replay_ms) ms" end) |",
    "| WAL bytes per job (STATS wal_bytes / N) | \((.wal_bytes_per_job * 10 | round) / 10) |",
    "| WAL files on disk, allocated (du) | \(.wal_allocated_bytes | mib) in \(.wal_files) segment(s), \((.wal_allocated_bytes_per_job * 10 | round) / 10) bytes/job |",
    "| RSS after the restart, N pending | \(.rss_bytes | mib) (\(.rss_bytes_per_job | round) bytes/job) |",
    "| peak RSS during the restart (VmHWM) | \(.peak_rss_bytes | mib) |",
    "| RSS of the first tqd after producing N | \(.first_run_rss_bytes | mib) |"')
fi

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
mem_total=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo "?")
dirty=$(git -C "$repo" status --porcelain 2>/dev/null | grep -qv '^??' && echo " (with uncommitted changes)" || true)
beanstalkd_version=$(beanstalkd -v 2>&1 | head -n 1)
redis_version=$(redis-server --version | sed 's/ sha=.*//')

report=$(cat <<EOF
# tq-bench results

${note:+> $note
}
Made by \`bench/compare.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'). The matrix took ${matrix_seconds} s:
${rounds} round(s), every system in each (every other round in the opposite order); a cell shows the round with the most jobs/s.

- machine: $(nproc) cores, ${cpu_model:-unknown CPU}, ${mem_total}, Linux $(uname -r)
- versions: tq repository at ${commit}${dirty} when the run started; ${beanstalkd_version}; ${redis_version}
- client: tq-bench, ${threads} thread(s), ${size}-byte payloads, 1 queue; every server on loopback
- produce: up to ${max_jobs} jobs or ${produce_limit} s; consume: the jobs just produced (at most ${consume_limit} s);
  mixed: half the connections produce, half consume, for ${mixed_seconds} s (not run with C=1)
- latency is per job: enqueue sent to its reply; dequeue sent to its ack's reply
  (mixed: the consume side, jobs that went all the way through)

Durability modes:

| mode | beanstalkd | redis | tq |
|---|---|---|---|
| none | no binlog | \`--save '' --appendonly no\` | \`wal.enabled: false\` (jobs in memory only) |
| log | \`-b DIR\` (no fsync) | \`--appendonly yes --appendfsync no\` | \`wal.fsync: never\` |
| fsync | \`-b DIR -f 0\` (fsync every write) | \`--appendonly yes --appendfsync always\` | \`wal.fsync: always\` (group commit: one fdatasync per batch) |

## Throughput and p99 latency

${table}

${ceiling_section}
## Who was busy: server CPU per job, client CPU

Server CPU is utime + stime of the server process over the run, divided by
the jobs done; client cores is tq-bench's own CPU time over the run's wall
time (on $(nproc) cores, client and server share the machine).

${cpu_table}

## tq: restart with ${replay_jobs} pending jobs

${replay_section}
${failures:+
## Runs that failed

${failures}
}
EOF
)

# Notes written by hand below the marker line survive a new run; the
# generated part above it is replaced.
marker='<!-- Written by hand: compare.sh keeps everything from this line on. -->'
kept=""
if [ -f "$out" ] && grep -qF -- "$marker" "$out"; then
  kept=$(awk -v m="$marker" 'index($0, m) == 1 {found = 1} found' "$out")
fi

echo "$report"
{ echo "$report"; [ -z "$kept" ] || printf '\n%s\n' "$kept"; } > "$out"
log "wrote $out"
