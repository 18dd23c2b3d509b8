// ProcessUsage: a process's CPU time and memory as Linux reports them, read
// before and after a run to charge the server (and tq-bench itself) with the
// CPU it spent. CPU time is user + system, in seconds; memory is VmRSS (now)
// and VmHWM (the peak resident set since the process started).
#pragma once

#include <cstdint>
#include <optional>

#include <sys/types.h>

namespace tq::bench {

struct ProcessUsage {
  double cpu_seconds = 0;
  uint64_t rss_bytes = 0;
  uint64_t peak_rss_bytes = 0;
};

// From /proc/PID/stat and /proc/PID/status; nullopt when the process is gone
// or the files cannot be read.
std::optional<ProcessUsage> read_process_usage(pid_t pid);

// This process's CPU time (all threads), from getrusage.
double own_cpu_seconds();

}  // namespace tq::bench
