// run_workload: one measured run of the produce, consume or mixed phase.
//
// Everything that is not the load itself happens before the clock starts:
// queues are created, every connection is opened and set up, the threads are
// started and wait at a latch. The run then goes from the latch's release to
// the last reply (produce, consume) or to the stop at the deadline and the
// drain of what was in flight (mixed). The server's CPU time and memory are
// read from /proc just before and just after, when its pid is known.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bench/error.h"
#include "bench/histogram.h"
#include "bench/options.h"
#include "bench/process_usage.h"
#include "bench/tq_stats.h"

namespace tq::bench {

struct WorkloadResult {
  double seconds = 0;  // latch release to the last job completed
  uint64_t produced = 0;
  uint64_t consumed = 0;
  uint64_t empty_replies = 0;
  LatencyHistogram produce_latency;
  LatencyHistogram consume_latency;
  double client_cpu_seconds = 0;
  std::optional<ProcessUsage> server_before;
  std::optional<ProcessUsage> server_after;
  std::optional<TqStats> tq_before;  // tq only: STATS around the run
  std::optional<TqStats> tq_after;
  std::optional<std::string> failure;  // the run started but did not complete cleanly
};

// The queue names of a run: the prefix alone, or <prefix>.<i> for several.
std::vector<std::string> queue_names(const Options& options);

// Errors before the run (cannot connect, setup refused) are returned as
// errors; a failure during the run is in the result, with what was counted.
Result<WorkloadResult> run_workload(const Options& options);

}  // namespace tq::bench
