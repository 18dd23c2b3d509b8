// Bucket arithmetic of LatencyHistogram. A value v at or above 2^k (k =
// kSubBucketBits) has its top bit at position e >= k; shifting it right by
// g = e - k + 1 leaves a sub-bucket number in [half, 2*half), and g*half + sub
// numbers the buckets contiguously after the exact ones below 2^k.
#include "bench/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace tq::bench {

LatencyHistogram::LatencyHistogram()
    : counts_(index_of((uint64_t{1} << kMaxValueBits) - 1) + 1, 0) {}

size_t LatencyHistogram::index_of(uint64_t value) {
  value = std::min(value, (uint64_t{1} << kMaxValueBits) - 1);
  if (value < kSubBucketCount) return static_cast<size_t>(value);
  const int top_bit = 63 - std::countl_zero(value);
  const int shift = top_bit - kSubBucketBits + 1;
  return static_cast<size_t>(static_cast<uint64_t>(shift) * kSubBucketHalf + (value >> shift));
}

uint64_t LatencyHistogram::highest_value_of(size_t index) {
  if (index < kSubBucketCount) return index;
  const uint64_t shift = index / kSubBucketHalf - 1;
  const uint64_t sub = index - shift * kSubBucketHalf;
  return ((sub + 1) << shift) - 1;
}

void LatencyHistogram::record(uint64_t nanos) {
  ++counts_[index_of(nanos)];
  ++count_;
  sum_ += nanos;
  min_ = std::min(min_, nanos);
  max_ = std::max(max_, nanos);
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

uint64_t LatencyHistogram::percentile(double percent) const {
  if (count_ == 0) return 0;
  percent = std::clamp(percent, 0.0, 100.0);
  // The rank of the wanted value, 1-based: p99 of 1000 values is the 990th.
  // The epsilon keeps 99.9% of 1000 at 999 despite 99.9 having no exact
  // binary form.
  const double exact_rank = percent * static_cast<double>(count_) / 100.0;
  uint64_t rank = static_cast<uint64_t>(std::ceil(exact_rank - 1e-9));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(highest_value_of(i), max_);
  }
  return max_;
}

}  // namespace tq::bench
