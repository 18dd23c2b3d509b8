// RunControl: the little that the threads of one measured run share. Jobs
// are handed out as tickets from atomic counters, so fast connections take
// more work than slow ones and the run ends when the work does, not when the
// slowest connection finishes a fixed share. A stop flag ends the run early
// (the mixed phase's deadline, a time limit, or the first error); the first
// error's message is kept for the report.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

namespace tq::bench {

class RunControl {
 public:
  // `enqueues`: jobs to produce; `dequeues`: jobs to consume. Either may be
  // "unlimited" (UINT64_MAX) for a run that ends by stop().
  RunControl(uint64_t enqueues, uint64_t dequeues)
      : enqueue_limit_(enqueues),
        dequeue_tickets_(dequeues > static_cast<uint64_t>(INT64_MAX)
                             ? INT64_MAX
                             : static_cast<int64_t>(dequeues)) {}
  RunControl(const RunControl&) = delete;
  RunControl& operator=(const RunControl&) = delete;

  // The number of the next job to produce, or nullopt when all are taken.
  std::optional<uint64_t> claim_enqueue() {
    uint64_t n = next_enqueue_.fetch_add(1, std::memory_order_relaxed);
    if (n >= enqueue_limit_) return std::nullopt;
    return n;
  }
  bool enqueues_left() const {
    return next_enqueue_.load(std::memory_order_relaxed) < enqueue_limit_;
  }

  // A consumer takes a ticket before each dequeue and gives it back when the
  // dequeue finds nothing, so exactly `dequeues` jobs are consumed.
  bool claim_dequeue() {
    if (dequeue_tickets_.fetch_sub(1, std::memory_order_relaxed) > 0) return true;
    dequeue_tickets_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  void return_dequeue() { dequeue_tickets_.fetch_add(1, std::memory_order_relaxed); }
  bool dequeues_left() const { return dequeue_tickets_.load(std::memory_order_relaxed) > 0; }

  void stop() { stopping_.store(true, std::memory_order_relaxed); }
  bool stopping() const { return stopping_.load(std::memory_order_relaxed); }

  // Records the first failure and stops the run.
  void fail(std::string message) {
    {
      std::lock_guard lock(mutex_);
      if (!failure_) failure_ = std::move(message);
    }
    stop();
  }
  std::optional<std::string> failure() const {
    std::lock_guard lock(mutex_);
    return failure_;
  }

 private:
  const uint64_t enqueue_limit_;
  std::atomic<uint64_t> next_enqueue_{0};
  std::atomic<int64_t> dequeue_tickets_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;
  std::optional<std::string> failure_;
};

}  // namespace tq::bench
