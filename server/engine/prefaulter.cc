#include "server/engine/prefaulter.h"

#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14; older kernels answer EINVAL
#endif

namespace tq::engine {

Prefaulter::Prefaulter() : thread_([this] { run(); }) {}

Prefaulter::~Prefaulter() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void Prefaulter::populate(void* start, size_t bytes, std::shared_ptr<std::atomic<bool>> done) {
  {
    std::lock_guard lock(mutex_);
    ranges_.push_back(Range{start, bytes, std::move(done)});
  }
  wake_.notify_one();
}

void Prefaulter::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stop_ || !ranges_.empty(); });
    if (stop_) return;
    Range range = std::move(ranges_.front());
    ranges_.pop_front();
    lock.unlock();
    // A little at a time: the kernel holds the address-space lock while it
    // faults a range in, and the loop's own brk or mmap waits for it (and its
    // page faults queue behind that). 2 MiB steps of 4 KiB pages held it for
    // 5-6 ms on a VM, a loop stall seen in perf; 128 KiB is 32 pages.
    constexpr size_t kStep = size_t{128} << 10;
    char* start = static_cast<char*>(range.start);
    for (size_t done = 0; done < range.bytes; done += kStep) {
      const size_t n = range.bytes - done < kStep ? range.bytes - done : kStep;
      if (madvise(start + done, n, MADV_POPULATE_WRITE) != 0) break;  // unmapped, or no such advice
    }
    if (range.done != nullptr) range.done->store(true, std::memory_order_release);
    lock.lock();
  }
}

}  // namespace tq::engine
