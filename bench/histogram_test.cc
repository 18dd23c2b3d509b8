// Unit tests of LatencyHistogram (doctest): exact below 2048 ns, within
// 0.1% above, percentiles by rank, merging, and clamping of huge values.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "bench/histogram.h"

using tq::bench::LatencyHistogram;

TEST_SUITE("bench/histogram") {
  TEST_CASE("empty") {
    LatencyHistogram h;
    CHECK(h.count() == 0);
    CHECK(h.percentile(99) == 0);
    CHECK(h.max() == 0);
  }

  TEST_CASE("small values are exact") {
    LatencyHistogram h;
    for (uint64_t v = 1; v <= 1000; ++v) h.record(v);
    CHECK(h.percentile(50) == 500);
    CHECK(h.percentile(99) == 990);
    CHECK(h.percentile(99.9) == 999);
    CHECK(h.percentile(100) == 1000);
    CHECK(h.min() == 1);
    CHECK(h.mean() == doctest::Approx(500.5));
  }

  TEST_CASE("large values within a thousandth") {
    for (uint64_t v :
         {2048ull, 4095ull, 123'456ull, 7'654'321ull, 999'999'999ull, 60'000'000'000ull}) {
      LatencyHistogram h;
      h.record(v);
      h.record(v * 2);  // so that the p1 bucket bound is not capped by max()
      uint64_t got = h.percentile(1);
      CHECK(got >= v);
      CHECK(static_cast<double>(got - v) <= static_cast<double>(v) / 1000.0);
    }
  }

  TEST_CASE("percentiles by rank over a spread") {
    LatencyHistogram h;
    // 990 fast values, 9 slow, 1 very slow.
    for (int i = 0; i < 990; ++i) h.record(100'000);
    for (int i = 0; i < 9; ++i) h.record(5'000'000);
    h.record(80'000'000);
    auto near = [](uint64_t got, uint64_t want) {
      return got >= want && got - want <= want / 1000;
    };
    CHECK(near(h.percentile(50), 100'000));
    CHECK(near(h.percentile(99), 100'000));
    CHECK(near(h.percentile(99.9), 5'000'000));
    CHECK(h.percentile(100) == 80'000'000);
    CHECK(h.max() == 80'000'000);
  }

  TEST_CASE("merge adds counts") {
    LatencyHistogram a, b;
    for (int i = 0; i < 100; ++i) a.record(1000);
    for (int i = 0; i < 100; ++i) b.record(3000);
    a.merge(b);
    CHECK(a.count() == 200);
    CHECK(a.percentile(50) == 1000);
    CHECK(a.percentile(51) >= 3000);
    CHECK(a.min() == 1000);
    CHECK(a.max() == 3000);
  }

  TEST_CASE("values past the range are clamped, max stays exact") {
    LatencyHistogram h;
    h.record(uint64_t{1} << 50);
    CHECK(h.count() == 1);
    CHECK(h.max() == uint64_t{1} << 50);
    CHECK(h.percentile(50) > 0);
  }
}
