// The event loop's busy time from made-up clocks: per-iteration busy time,
// the totals STATS shows, the one-second utilisation window, and the
// rate-limited warning for an iteration clients would have noticed.
#include <doctest/doctest.h>

#include "server/loop_meter.h"

namespace loop_meter_test {

using tq::server::LoopMeter;

namespace {

constexpr uint64_t kMs = 1'000'000;

// Drives a meter the way the loop does: each iteration waits `idle_ms` for
// events, then works for `busy_ms`.
struct FakeLoop {
  LoopMeter meter;
  uint64_t now = 5 * kMs;  // any start: only differences count
  uint64_t idle = 0;

  FakeLoop() { meter.tick(now, idle); }
  LoopMeter::Tick iterate(uint64_t idle_ms, uint64_t busy_ms) {
    now += (idle_ms + busy_ms) * kMs;
    idle += idle_ms * kMs;
    return meter.tick(now, idle);
  }
  uint64_t elapsed_ms() const { return (now - 5 * kMs) / kMs; }
  // An idle loop's ticks, one a second (the housekeeping timer), each 1 ms
  // busy, until `ms` have passed since the start.
  void idle_until(uint64_t ms) {
    while (elapsed_ms() + 1000 <= ms) iterate(999, 1);
    if (elapsed_ms() < ms) iterate(ms - elapsed_ms(), 0);
  }
  uint64_t recent_ms() const { return meter.stats().recent_max_busy_ns / kMs; }
};

}  // namespace

TEST_SUITE("loop_meter") {
  TEST_CASE("the first tick only sets the starting point") {
    LoopMeter meter;
    LoopMeter::Tick tick = meter.tick(123 * kMs, 7 * kMs);
    CHECK(tick.busy_ns == 0);
    CHECK(meter.stats().iterations == 0);
    CHECK(meter.stats().busy_ns_total == 0);
  }

  TEST_CASE("an iteration's busy time is its wall time less the time spent waiting") {
    FakeLoop loop;
    CHECK(loop.iterate(3, 2).busy_ns == 2 * kMs);
    CHECK(loop.iterate(0, 4).busy_ns == 4 * kMs);
    CHECK(loop.iterate(9, 0).busy_ns == 0);
    const LoopMeter::Stats& s = loop.meter.stats();
    CHECK(s.iterations == 3);
    CHECK(s.busy_ns_total == 6 * kMs);
    CHECK(s.max_busy_ns == 4 * kMs);
    CHECK(s.slow_iterations == 0);
  }

  TEST_CASE("a discounted iteration reads as idle, and only that one") {
    // What a signal's iteration looks like: libuv lost the wait before
    // EINTR, so 800 ms of waiting arrive as 800 ms of wall time, no idle.
    FakeLoop loop;
    loop.meter.discount_iteration();
    CHECK(loop.iterate(0, 800).busy_ns == 0);
    CHECK(loop.meter.stats().slow_iterations == 0);
    CHECK(loop.meter.stats().max_busy_ns == 0);
    CHECK(loop.iterate(0, 800).busy_ns == 800 * kMs);  // the next one counts again
    CHECK(loop.meter.stats().iterations == 2);
  }

  TEST_CASE("iterations busier than 10 ms count as slow") {
    FakeLoop loop;
    loop.iterate(1, 10);  // not more than the threshold
    loop.iterate(1, 11);
    loop.iterate(1, 250);
    CHECK(loop.meter.stats().slow_iterations == 2);
    CHECK(loop.meter.stats().max_busy_ns == 250 * kMs);
  }

  TEST_CASE("clocks read a moment apart never make busy time negative") {
    LoopMeter meter;
    meter.tick(100 * kMs, 0);
    // The idle clock moved a little more than the wall clock between reads.
    CHECK(meter.tick(101 * kMs, 1 * kMs + 5).busy_ns == 0);
    // And a wall clock that did not move at all.
    CHECK(meter.tick(101 * kMs, 1 * kMs + 5).busy_ns == 0);
    CHECK(meter.stats().busy_ns_total == 0);
  }

  TEST_CASE("busy_pct is the share of the last full second spent working") {
    FakeLoop loop;
    CHECK(loop.meter.stats().busy_pct == 0);
    // 0.9 s of 25% busy: the window is not full yet.
    for (int i = 0; i < 9; ++i) loop.iterate(75, 25);
    CHECK(loop.meter.stats().busy_pct == 0);
    loop.iterate(75, 25);  // one second: 250 ms of it busy
    CHECK(loop.meter.stats().busy_pct == doctest::Approx(25.0));
    // The next second is 80% busy; the figure follows it, not the average.
    for (int i = 0; i < 10; ++i) loop.iterate(20, 80);
    CHECK(loop.meter.stats().busy_pct == doctest::Approx(80.0));
    // A loop that was idle the whole window shows 0.
    loop.iterate(1000, 0);
    CHECK(loop.meter.stats().busy_pct == doctest::Approx(0.0));
  }

  TEST_CASE("one iteration longer than the window reads as fully busy") {
    FakeLoop loop;
    loop.iterate(0, 1500);  // a PURGE of a very large queue, say
    CHECK(loop.meter.stats().busy_pct == doctest::Approx(100.0));
  }

  TEST_CASE("a slow start-up stays in the all-time longest, and leaves the last minute's") {
    FakeLoop loop;
    loop.iterate(0, 800);  // replaying the log, say
    CHECK(loop.recent_ms() == 800);
    loop.idle_until(69'999);
    CHECK(loop.recent_ms() == 800);  // its slot, 0-10 s, is still one of the last seven
    loop.idle_until(70'000);
    CHECK(loop.recent_ms() == 1);  // only the idle ticks' 1 ms
    CHECK(loop.meter.stats().max_busy_ns == 800 * kMs);
  }

  TEST_CASE("a stall shows for at least a minute, wherever in its slot it fell") {
    for (uint64_t at_ms : {10'000, 14'321, 19'990}) {
      CAPTURE(at_ms);
      FakeLoop loop;
      loop.idle_until(at_ms - 300);
      loop.iterate(0, 300);  // ends at at_ms
      REQUIRE(loop.elapsed_ms() == at_ms);
      // Every scrape within the next minute sees it...
      while (loop.elapsed_ms() + 1000 <= at_ms + 60'000) {
        loop.iterate(999, 1);
        REQUIRE(loop.recent_ms() == 300);
      }
      // ... and none once its slot (10-20 s) has left the seven, at 80 s.
      loop.idle_until(80'000);
      CHECK(loop.recent_ms() == 1);
    }
  }

  TEST_CASE("the last minute's longest is the longest of its slots, not the latest") {
    FakeLoop loop;
    loop.idle_until(5'000);
    loop.iterate(0, 300);
    loop.idle_until(25'000);
    loop.iterate(0, 200);
    loop.idle_until(40'000);
    CHECK(loop.recent_ms() == 300);
    loop.idle_until(70'000);  // the 300 ms slot (0-10 s) has gone
    CHECK(loop.recent_ms() == 200);
    loop.idle_until(90'000);  // and the 200 ms one (20-30 s)
    CHECK(loop.recent_ms() == 1);
  }

  TEST_CASE("after a long gap without ticks (a stopped process) the last minute is empty") {
    FakeLoop loop;
    loop.iterate(0, 300);
    loop.iterate(0, 250);
    CHECK(loop.recent_ms() == 300);
    loop.iterate(300'000, 2);  // five minutes stopped: one tick at the end
    CHECK(loop.recent_ms() == 2);
    // A gap shorter than the window empties only the slots it passed.
    loop.iterate(0, 40);
    loop.iterate(30'000, 3);
    CHECK(loop.recent_ms() == 40);
  }

  TEST_CASE("an iteration busier than 100 ms asks for a warning, at most one per 10 s") {
    FakeLoop loop;
    CHECK_FALSE(loop.iterate(1, 100).warn);  // not more than the threshold
    CHECK(loop.iterate(1, 101).warn);
    CHECK_FALSE(loop.iterate(1, 500).warn);  // too soon after the last
    loop.iterate(9000, 1);
    CHECK_FALSE(loop.iterate(1, 200).warn);  // 9.7 s since the warning
    loop.iterate(300, 1);
    CHECK(loop.iterate(1, 200).warn);  // over 10 s since
    CHECK(loop.meter.stats().slow_iterations == 5);
  }
}

}  // namespace loop_meter_test
