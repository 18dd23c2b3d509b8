// Turns results into what a person reads (the default) or one JSON object on
// one line (--json) for scripts such as compare.sh. The JSON fields are
// documented in bench/README.md; latencies there are in microseconds.
#pragma once

#include <string>

#include "bench/json_writer.h"
#include "bench/options.h"
#include "bench/workload.h"

namespace tq::bench {

struct ReplayResult;
struct StallResult;

std::string workload_text(const Options& options, const WorkloadResult& result);
JsonObject workload_json(const Options& options, const WorkloadResult& result);

std::string replay_text(const Options& options, const ReplayResult& result);
JsonObject replay_json(const Options& options, const ReplayResult& result);

std::string stall_text(const Options& options, const StallResult& result);
JsonObject stall_json(const Options& options, const StallResult& result);

}  // namespace tq::bench
