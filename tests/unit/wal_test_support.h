// Drives a wal::Log from a test: opens it on a MemoryFileSystem, records what
// replay saw, and waits for the writer thread by blocking on its progress
// callback (no sleeps).
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "wal/log.h"
#include "wal/memory_file_system.h"

namespace tq::wal::testing {

struct ReplayedRecord {
  uint8_t type;
  uint64_t seq;
  std::string body;
  uint32_t segment;
  bool operator==(const ReplayedRecord&) const = default;
};

class RecordingReporter final : public Reporter {
 public:
  void dropped(const std::string& file, uint64_t offset, uint64_t bytes,
               const std::string& reason) override {
    drops.push_back(file + "@" + std::to_string(offset) + "+" + std::to_string(bytes) + ": " + reason);
  }
  std::vector<std::string> drops;
};

class LogHarness {
 public:
  explicit LogHarness(MemoryFileSystem& fs) : fs_(fs) {}
  ~LogHarness() { close(); }

  LogOptions options() const {
    LogOptions o;
    o.dir = "/data/wal";
    o.segment_bytes = 4096;
    o.retry_interval_ms = 5;
    return o;
  }

  Status open(LogOptions o) {
    replayed.clear();
    reporter.drops.clear();
    summary = OpenSummary{};
    auto opened = Log::open(fs_, o, reporter, [this](const Record& r, uint32_t segment) {
      replayed.push_back(ReplayedRecord{r.type, r.seq, std::string(r.body), segment});
      return Status();
    }, &summary);
    if (!opened) return opened.error();
    adopt(std::move(opened).value());
    return Status();
  }
  Status open() { return open(options()); }

  // Takes a log opened elsewhere (with its own replay visitor) and starts it.
  void adopt(std::unique_ptr<Log> opened) {
    log = std::move(opened);
    log->set_progress_callback([this] {
      std::lock_guard<std::mutex> lock(mu_);
      ++signals_;
      cv_.notify_all();
    });
    log->start();
  }
  MemoryFileSystem& fs() { return fs_; }

  // One turn of what the server's loop does before it waits: take the
  // writer's report (which frees it for the next batch), hand over what was
  // appended, and take the report again (fsync=never and interval write
  // right there, on this thread).
  Log::Progress turn() {
    Log::Progress first = log->poll();
    log->flush();
    Log::Progress second = log->poll();
    second.advanced |= first.advanced;
    second.failed |= first.failed;
    second.recovered |= first.recovered;
    return second;
  }

  // Waits until every record appended so far is durable; false if the log
  // failed instead (or, with through_failures, waits for it to recover).
  bool wait_durable(bool through_failures = false) {
    const uint64_t target = log->last_seq();
    for (;;) {
      uint64_t seen = signal_count();
      auto progress = turn();
      if (log->durable_seq() >= target) return true;
      if (!through_failures && (progress.failed || !log->healthy())) return false;
      wait_signal_after(seen);
    }
  }

  // Waits until the writer has done everything asked of it, deletions too.
  void settle() {
    for (;;) {
      uint64_t seen = signal_count();
      turn();
      if (log->idle()) return;
      wait_signal_after(seen);
    }
  }

  // Waits until `done()` holds, turning the log each time the writer
  // signals: for what its thread does in the background (fsync=never and
  // interval), which no durable_seq reports.
  template <typename Done>
  void wait_until(Done done) {
    for (;;) {
      uint64_t seen = signal_count();
      turn();
      if (done()) return;
      wait_signal_after(seen);
    }
  }

  // Waits until the writer reports a failure.
  void wait_failed() {
    while (log->healthy()) {
      uint64_t seen = signal_count();
      turn();
      if (!log->healthy()) return;
      wait_signal_after(seen);
    }
  }

  void close() {
    if (log) {
      (void)log->close();
      log.reset();
    }
  }

  std::unique_ptr<Log> log;
  std::vector<ReplayedRecord> replayed;
  RecordingReporter reporter;
  OpenSummary summary;

 private:
  uint64_t signal_count() {
    std::lock_guard<std::mutex> lock(mu_);
    return signals_;
  }
  void wait_signal_after(uint64_t seen) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return signals_ > seen; });
  }

  MemoryFileSystem& fs_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t signals_ = 0;
};

}  // namespace tq::wal::testing
