#!/usr/bin/env bash
# bench/smoke (CTest): tq-bench against a real tqd, tiny. Starts tqd on a free
# port with a temporary data dir, runs the produce, consume, mixed, stall and
# replay phases with a few thousand jobs, and checks each exit status and that the
# JSON each prints parses and holds sane numbers. When the openssl command
# is there, the same tqd also has a TLS port, and produce, consume and replay
# run over TLS with 200 jobs (without it they are skipped, and say so). Then
# the same against tq-ceiling, which compare.sh runs beside the peers. A few
# seconds in all.
#
# usage: smoke.sh TQD TQ_BENCH TQ_CEILING
set -euo pipefail
# shellcheck source=bench/listen_port.sh
source "$(dirname "$0")/listen_port.sh"

tqd=$1
bench=$2
ceiling=$3
dir=$(mktemp -d /tmp/tq-bench-smoke.XXXXXX)
tqd_pid=""
ceiling_pid=""

cleanup() {
  [ -z "$ceiling_pid" ] || kill -TERM "$ceiling_pid" 2>/dev/null || true
  if [ -n "$tqd_pid" ] && kill -0 "$tqd_pid" 2>/dev/null; then
    kill -TERM "$tqd_pid" 2>/dev/null || true
    wait "$tqd_pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

fail() {
  echo "bench/smoke: $*" >&2
  if [ -f "$dir/tqd.log" ]; then
    echo "--- tqd log" >&2
    cat "$dir/tqd.log" >&2
  fi
  exit 1
}

# check_json FILE PYTHON_CONDITION: the file holds one JSON object `r` for
# which the condition holds. python3 is in Debian's base image; jq is the
# fallback, and without either only the shape of the output is checked.
check_json() {
  local file=$1 condition=$2 jq_condition=$3
  if command -v python3 >/dev/null; then
    python3 - "$file" "$condition" <<'PY' || fail "$file: check failed: $condition ($(cat "$file"))"
import json, sys
r = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 1)
PY
  elif command -v jq >/dev/null; then
    jq -e "$jq_condition" "$file" >/dev/null || fail "$file: check failed: $jq_condition"
  else
    grep -q '"error":null' "$file" || fail "$file: no \"error\":null"
  fi
}

printf 'wal:\n  fsync: never\n' > "$dir/tqd.yaml"
# A throwaway self-signed certificate for the TLS runs. The openssl command is
# Debian's openssl package, which libssl-dev does not pull in.
tls=""
if command -v openssl >/dev/null; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null ||
    fail "openssl could not make a test certificate"
  printf 'tls:\n  port: 0\n  cert_file: %s\n  key_file: %s\n' "$dir/cert.pem" "$dir/key.pem" \
    >> "$dir/tqd.yaml"
  tls=yes
fi
"$tqd" --config "$dir/tqd.yaml" --port 0 --data-dir "$dir/data" 2> "$dir/tqd.log" &
tqd_pid=$!
port=$(listen_port "$dir/tqd.log" "$tqd_pid") || fail "tqd did not report its port"

common=(--port "$port" --connections 4 --pipeline 8 --server-pid "$tqd_pid" --queue-prefix smoke)

"$bench" "${common[@]}" --phase produce --jobs 2000 --json > "$dir/produce.json" \
  || fail "produce exited $?"
check_json "$dir/produce.json" \
  'r["error"] is None and r["jobs"] == 2000 and r["jobs_per_sec"] > 0 and r["latency_us"]["p99"] > 0 and r["server"]["cpu_seconds"] >= 0 and r["server"]["peak_rss_bytes"] > 0' \
  '.error == null and .jobs == 2000 and .jobs_per_sec > 0 and .latency_us.p99 > 0 and .server.peak_rss_bytes > 0'

"$bench" "${common[@]}" --phase consume --jobs 2000 --json > "$dir/consume.json" \
  || fail "consume exited $?"
check_json "$dir/consume.json" \
  'r["error"] is None and r["jobs"] == 2000 and r["consume"]["jobs"] == 2000 and r["jobs_per_sec"] > 0 and r["latency_us"]["p50"] <= r["latency_us"]["p99"] <= r["latency_us"]["max"]' \
  '.error == null and .jobs == 2000 and .consume.jobs == 2000 and .jobs_per_sec > 0'

"$bench" "${common[@]}" --phase mixed --duration 1 --queues 2 --json > "$dir/mixed.json" \
  || fail "mixed exited $?"
check_json "$dir/mixed.json" \
  'r["error"] is None and r["produce"]["jobs"] > 0 and r["consume"]["jobs"] > 0 and 0.9 < r["seconds"] < 5' \
  '.error == null and .produce.jobs > 0 and .consume.jobs > 0 and .seconds > 0.9'

# The human-readable report of the same kind of run.
"$bench" "${common[@]}" --phase produce --jobs 500 > "$dir/produce.txt" || fail "text produce exited $?"
grep -q 'produced  500 jobs' "$dir/produce.txt" || fail "text report: $(cat "$dir/produce.txt")"

# The stall phase: one command (here PURGE of the 500 jobs just put),
# PINGs on another connection meanwhile.
"$bench" --port "$port" --phase stall --command "PURGE smoke" --json > "$dir/stall.json" \
  || fail "stall exited $?"
check_json "$dir/stall.json" \
  'r["reply"] == "OK purged 500" and r["seconds"] > 0 and r["ping_max_us"] >= r["ping_p50_us"] >= 0' \
  '.reply == "OK purged 500" and .seconds > 0'

# The replay phase starts and stops tqd itself, twice.
"$bench" --phase replay --tqd "$tqd" --data-dir "$dir/replay" --jobs 2000 --connections 4 \
  --pipeline 8 --json > "$dir/replay.json" || fail "replay exited $?"
check_json "$dir/replay.json" \
  'r["error"] is None and r["jobs"] == 2000 and r["restart_seconds"] > 0 and r["wal_bytes_per_job"] > 100 and r["rss_bytes"] > 0' \
  '.error == null and .jobs == 2000 and .restart_seconds > 0 and .wal_bytes_per_job > 100'

if [ -n "$tls" ]; then
  tls_port=$(listen_port "$dir/tqd.log" "$tqd_pid" "listening for TLS on") ||
    fail "tqd did not report its TLS port"
  over_tls=(--port "$tls_port" --tls-ca "$dir/cert.pem" --connections 4 --pipeline 8
            --server-pid "$tqd_pid" --queue-prefix smoke-tls)
  "$bench" "${over_tls[@]}" --phase produce --jobs 200 --json > "$dir/tls-produce.json" \
    || fail "produce over TLS exited $?"
  check_json "$dir/tls-produce.json" 'r["error"] is None and r["tls"] and r["jobs"] == 200' \
    '.error == null and .tls and .jobs == 200'
  # By name this time: the certificate names localhost and 127.0.0.1.
  "$bench" "${over_tls[@]}" --host localhost --phase consume --jobs 200 --json \
    > "$dir/tls-consume.json" || fail "consume over TLS exited $?"
  check_json "$dir/tls-consume.json" 'r["error"] is None and r["tls"] and r["consume"]["jobs"] == 200' \
    '.error == null and .tls and .consume.jobs == 200'
  "$bench" --phase replay --tqd "$tqd" --data-dir "$dir/replay-tls" --jobs 200 --connections 4 \
    --pipeline 8 --tls-ca "$dir/cert.pem" --tls-cert "$dir/cert.pem" --tls-key "$dir/key.pem" \
    --json > "$dir/tls-replay.json" || fail "replay over TLS exited $?"
  check_json "$dir/tls-replay.json" 'r["error"] is None and r["tls"] and r["jobs"] == 200' \
    '.error == null and .tls and .jobs == 200'
else
  echo "bench/smoke: no openssl command to make a certificate: TLS runs skipped" >&2
fi

# tq-ceiling, as compare.sh runs it: every reply only after the turn's
# requests are in its log and synced.
"$ceiling" --port 0 --durability fsync --log-file "$dir/requests.log" 2> "$dir/ceiling.log" &
ceiling_pid=$!
ceiling_port=$(listen_port "$dir/ceiling.log" "$ceiling_pid") ||
  fail "tq-ceiling did not report its port: $(cat "$dir/ceiling.log")"
# tq-bench reads STATS before and after a run against tq: a listing, so it
# must be a well-framed one (an "OK <n>" it could not complete cost 5 s a read).
exec 3<>"/dev/tcp/127.0.0.1/$ceiling_port"
printf 'STATS\n' >&3
IFS= read -r -t 5 stats_reply <&3 || fail "tq-ceiling did not answer STATS"
exec 3>&-
[ "$stats_reply" = "OK 0" ] || fail "tq-ceiling answered STATS with '$stats_reply', expected 'OK 0'"
at_ceiling=(--port "$ceiling_port" --connections 4 --pipeline 8 --server-pid "$ceiling_pid")
"$bench" "${at_ceiling[@]}" --phase produce --jobs 2000 --json > "$dir/ceiling-produce.json" \
  || fail "produce against tq-ceiling exited $?"
check_json "$dir/ceiling-produce.json" 'r["error"] is None and r["jobs"] == 2000' \
  '.error == null and .jobs == 2000'
"$bench" "${at_ceiling[@]}" --phase consume --jobs 2000 --json > "$dir/ceiling-consume.json" \
  || fail "consume against tq-ceiling exited $?"
check_json "$dir/ceiling-consume.json" 'r["error"] is None and r["consume"]["jobs"] == 2000' \
  '.error == null and .consume.jobs == 2000'
logged=$(grep -a -c '^ENQUEUE ' "$dir/requests.log" || true)
[ "$logged" = 2000 ] || fail "tq-ceiling logged $logged ENQUEUE lines, expected 2000"

echo "bench/smoke: produce, consume, mixed, stall and replay passed${tls:+ (and over TLS)};" \
  "tq-ceiling answers and logs"
