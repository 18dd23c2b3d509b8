// LatencyHistogram: a fixed-size, log-linear histogram of durations in
// nanoseconds, in the manner of HdrHistogram.
//
// Values below 2^kSubBucketBits are counted exactly; above that, every power
// of two is split into 2^(kSubBucketBits-1) equal buckets, so any recorded
// value is known to within 1/1024 of itself (about 0.1%). Memory is fixed at
// construction (about 256 KiB, up to 2^40 ns, ~18 minutes; larger values are
// clamped into the last bucket), recording is an index computation and one
// increment, and histograms of different threads merge by adding counts. The
// exact minimum, maximum and sum are kept on the side.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tq::bench {

class LatencyHistogram {
 public:
  LatencyHistogram();

  void record(uint64_t nanos);
  void merge(const LatencyHistogram& other);

  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  double mean() const { return count_ == 0 ? 0.0 : static_cast<double>(sum_) / count_; }

  // The smallest bucket bound at or below which `percent` of the recorded
  // values lie (the bucket's highest value, never above max()); 0 when empty.
  uint64_t percentile(double percent) const;

 private:
  static constexpr int kSubBucketBits = 11;
  static constexpr uint64_t kSubBucketCount = uint64_t{1} << kSubBucketBits;
  static constexpr uint64_t kSubBucketHalf = kSubBucketCount / 2;
  static constexpr int kMaxValueBits = 40;

  static size_t index_of(uint64_t value);
  static uint64_t highest_value_of(size_t index);

  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

}  // namespace tq::bench
