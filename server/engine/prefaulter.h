// Faults memory in on a helper thread, before the event loop touches it.
//
// The first touch of a fresh page makes the kernel zero it, on the thread
// that touches it: 32% of tqd's CPU when producing a million jobs a second,
// and (with huge pages, which tqd no longer uses) 2-4 ms at once, a latency
// spike for every request in flight. The job
// memory regions and the job table's next bucket array are handed here as
// soon as they are mapped, and faulted in (MADV_POPULATE_WRITE: not a byte
// is written, so the owner may already be using the memory) in the order
// they came.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

namespace tq::engine {

class Prefaulter {
 public:
  Prefaulter();
  // Waits for the range being populated, drops the others.
  ~Prefaulter();
  Prefaulter(const Prefaulter&) = delete;
  Prefaulter& operator=(const Prefaulter&) = delete;

  // Faults [start, start + bytes) in, then sets *done when given. Unmapping
  // the range meanwhile is harmless: nothing is written. On kernels without
  // MADV_POPULATE_WRITE (before 5.14) nothing is faulted in, and *done is
  // still set.
  void populate(void* start, size_t bytes, std::shared_ptr<std::atomic<bool>> done = nullptr);

 private:
  struct Range {
    void* start;
    size_t bytes;
    std::shared_ptr<std::atomic<bool>> done;
  };
  void run();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Range> ranges_;
  bool stop_ = false;
  std::thread thread_;  // last: starts after the fields it uses exist
};

}  // namespace tq::engine
