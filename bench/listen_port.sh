# shellcheck shell=bash
# bench/listen_port.sh: sourced by the bench scripts, not run.
#
# listen_port LOG PID [WHAT]: prints the port from the "listening on
# ADDR:PORT" line that tqd and tq-ceiling log when started with --port 0,
# once it appears (WHAT: another line's words before the address, such as
# tqd's "listening for TLS on"). Gives up (status 1, nothing printed) when
# process PID exits first, or after 20 s (valgrind starts tqd slowly).
listen_port() {
  local log=$1 pid=$2 what=${3:-listening on} port
  for _ in $(seq 1 400); do
    port=$(sed -n "s/.*$what [^ ]*:\([0-9][0-9]*\).*/\1/p" "$log" 2>/dev/null | head -n 1)
    if [ -n "$port" ]; then
      echo "$port"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
