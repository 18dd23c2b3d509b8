// The stall phase: how long one command holds the other clients up. Meant
// for admin commands over many jobs (KICK, REDRIVE, PURGE, DROP): tqd runs
// them in steps between other clients' requests.
//
// One connection sends --command and waits for its reply, however long,
// then for tqd to have freed what it removed (STATS jobs_freeing 0: PURGE
// and DROP reply at once and free their jobs after); another sends PING,
// one at a time, from just before the command goes until then, and
// records each round trip. The longest round trip is the longest any
// client waited on the server meanwhile (to within one PING's own time).
// Setting up the jobs the command works on is the caller's part
// (bench/stall.sh).
#pragma once

#include <string>

#include "bench/error.h"
#include "bench/histogram.h"
#include "bench/options.h"

namespace tq::bench {

struct StallResult {
  std::string reply;              // the command's reply line
  double seconds = 0;             // from sending the command to its reply
  double freed_seconds = 0;       // ... to STATS jobs_freeing 0 (read after the reply)
  LatencyHistogram pings;         // PING round trips meanwhile, in nanoseconds
  uint64_t loop_max_busy_us = 0;  // STATS after it (the longest iteration since tqd started)
};

Result<StallResult> run_stall(const Options& options);

}  // namespace tq::bench
