// The replay phase: how long tqd takes to come back with N jobs pending, and
// what N pending jobs cost on disk and in memory.
//
// tq-bench starts tqd on a fresh data directory, produces N jobs with the
// usual load connections, stops it with SIGTERM (a clean shutdown), starts it
// again on the same directory and polls until STATS shows jobs_ready N: the
// restart time runs from exec to that answer. It then reads the WAL's size
// three ways (tq's own wal_bytes, the files' apparent size, the blocks they
// occupy; segments are preallocated, so the last two differ) and the
// restarted tqd's memory, and stops it.
//
// With --tls-ca the N jobs are produced over tqd's TLS port (tls.port: 0 and
// --tls-cert/--tls-key in the config tq-bench writes, or the user's own
// config); the restart is still timed on the plaintext port, so that a
// handshake is not part of what "restart" measures.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "bench/error.h"
#include "bench/options.h"
#include "bench/process_usage.h"
#include "bench/workload.h"

namespace tq::bench {

struct ReplayResult {
  uint64_t jobs = 0;
  WorkloadResult produce;                     // the first run's load
  std::optional<ProcessUsage> after_produce;  // the first tqd, N jobs pending
  double listening_seconds = 0;               // restart: exec to the first accepted connection
  double restart_seconds = 0;                 // restart: exec to STATS showing jobs_ready N
  std::optional<double> tqd_replay_ms;        // what tqd logged as its replay time
  uint64_t wal_bytes = 0;                     // STATS wal_bytes after the restart
  uint64_t wal_files = 0;
  uint64_t wal_apparent_bytes = 0;            // sum of st_size of DIR/wal/*.wal
  uint64_t wal_allocated_bytes = 0;           // sum of st_blocks * 512
  std::optional<ProcessUsage> after_restart;  // the restarted tqd, N jobs pending
};

Result<ReplayResult> run_replay(const Options& options);

}  // namespace tq::bench
