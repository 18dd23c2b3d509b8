// A server's engine and journal over a log on a MemoryFileSystem, for tests
// that restart it: open() replays the log into a fresh engine as the daemon
// does, then attaches the journal to record what happens next.
#pragma once

#include <cstdint>
#include <utility>

#include "server/engine/clock.h"
#include "server/engine/engine.h"
#include "server/journal.h"
#include "tests/unit/wal_test_support.h"
#include "wal/log.h"
#include "wal/memory_file_system.h"

namespace tq::testing {

// Segments of 8 KiB, so that a few hundred records rotate and compact.
inline wal::LogOptions small_segments() {
  wal::LogOptions o;
  o.dir = "/data/wal";
  o.segment_bytes = 8192;
  o.retry_interval_ms = 5;
  return o;
}

struct JournalNode {
  engine::ManualClock clock;
  engine::Engine engine{clock, engine::EngineLimits{.auto_create_queues = false, .max_queues = 100},
                        engine::QueueSettings{}};
  server::Journal journal{engine, 1.5};
  wal::testing::LogHarness harness;

  explicit JournalNode(wal::MemoryFileSystem& fs, int64_t now_ms = 1'700'000'000'000)
      : harness(fs) {
    clock.set_ms(now_ms);
  }

  wal::Status open(wal::LogOptions options) {
    wal::OpenSummary summary;
    auto opened = wal::Log::open(
        fs(), options, harness.reporter,
        [&](const wal::Record& r, uint32_t segment) { return journal.apply(r, segment); },
        &summary);
    if (!opened) return opened.error();
    engine.finish_restore();
    harness.adopt(std::move(opened).value());
    if (summary.dropped > 0) journal.skip_lost_ids(summary.seq_bound);  // damage skipped
    journal.attach(*harness.log);
    engine.end_unknown_leases();
    return {};
  }
  wal::MemoryFileSystem& fs() { return harness.fs(); }
};

}  // namespace tq::testing
