// How long delivered jobs had been ready before a worker took them: the
// queue's wait, as a Prometheus histogram (cumulative buckets are worked out
// when it is read; here each bucket counts its own range).
//
// The bounds run from 10 ms to an hour: Prometheus's default buckets, which
// stop at 10 s, and then the minutes and hours a job queue can fall behind
// by. Not its 5 ms: a plain job's ready time is read from the coarse clock,
// a kernel tick old (4 ms at HZ=250, 10 ms at HZ=100), so a job taken at once
// can show 5 ms already. Fixed, so that every queue's buckets can be summed
// across queues and servers.
#pragma once

#include <array>
#include <cstdint>

namespace tq::engine {

class WaitHistogram {
 public:
  static constexpr std::array<int64_t, 15> kBoundsMs = {
      10,    25,     50,     100,    250,     500,     1'000,    2'500,
      5'000, 10'000, 30'000, 60'000, 300'000, 900'000, 3'600'000};

  // A wait below 0 (a wall clock set back) counts as 0.
  void record(int64_t wait_ms) {
    if (wait_ms < 0) wait_ms = 0;
    size_t i = 0;
    while (i < kBoundsMs.size() && wait_ms > kBoundsMs[i]) ++i;
    ++counts_[i];
    sum_ms_ += static_cast<uint64_t>(wait_ms);
  }

  // Waits of at most kBoundsMs[i] (i < kBoundsMs.size()); count() for +Inf.
  uint64_t at_most(size_t i) const {
    uint64_t n = 0;
    for (size_t j = 0; j <= i; ++j) n += counts_[j];
    return n;
  }
  uint64_t count() const { return at_most(kBoundsMs.size()); }
  uint64_t sum_ms() const { return sum_ms_; }

 private:
  std::array<uint64_t, kBoundsMs.size() + 1> counts_{};  // the last: over the last bound
  uint64_t sum_ms_ = 0;
};

}  // namespace tq::engine
