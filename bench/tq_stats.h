// Reads tq's STATS ("OK <n>", then n lines of "<name> <value>") into a map,
// for the figures the benchmark reports next to its own: WAL bytes, fsyncs
// and write batches, jobs ready after a restart.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "bench/blocking_socket.h"

namespace tq::bench {

using TqStats = std::map<std::string, std::string>;

Result<TqStats> fetch_tq_stats(BlockingSocket& socket);

// The named figure as a number; 0 when absent or not a number.
uint64_t stat_number(const TqStats& stats, const std::string& name);

// True when tqd runs with wal.enabled: false (STATS wal_enabled 0). A tqd
// older than that field always has a log.
bool wal_disabled(const TqStats& stats);

}  // namespace tq::bench
