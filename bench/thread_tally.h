// ThreadTally: what one client thread counted during a run. Each thread owns
// its own (no sharing on the hot path); the workload merges them after the
// threads have joined. `progress` alone is read while the run goes on, by the
// watchdog that notices a server which stopped answering.
#pragma once

#include <atomic>
#include <cstdint>

#include "bench/histogram.h"

namespace tq::bench {

struct ThreadTally {
  uint64_t produced = 0;              // enqueues answered with success
  uint64_t consumed = 0;              // dequeue + ack pairs completed
  uint64_t empty_replies = 0;         // dequeues that found nothing
  uint64_t last_completion_ns = 0;    // monotonic time of the last job finished
  LatencyHistogram produce_latency;   // enqueue sent -> its reply
  LatencyHistogram consume_latency;   // dequeue sent -> the ack's reply
  std::atomic<uint64_t> progress{0};  // produced + consumed, published for the watchdog
};

}  // namespace tq::bench
