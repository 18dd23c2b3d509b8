// How long ready jobs wait for a worker: the time each became ready, the
// queue's head_wait_ms, and the histogram of waits at delivery.
#include <doctest/doctest.h>

#include "tests/unit/engine_fixture.h"

namespace engine_wait_test {

using namespace tq;
using tq::testing::EngineFixture;

namespace {

const engine::WaitHistogram& waits(EngineFixture& f) { return f.queue().waits; }

// The index of the first bound at or above `ms`.
size_t bucket_of(int64_t ms) {
  size_t i = 0;
  while (engine::WaitHistogram::kBoundsMs[i] < ms) ++i;
  return i;
}

}  // namespace

TEST_SUITE("engine wait") {
  TEST_CASE("a queue's head wait is how long its next job has been ready") {
    EngineFixture f;
    const int64_t now = f.clock.now_ms();
    CHECK(f.queue().head_wait_ms(now) == 0);  // nothing ready
    f.put("a");
    f.clock.advance_ms(3'000);
    f.put("b");
    CHECK(f.queue().head_wait_ms(f.clock.now_ms()) == 3'000);
    f.clock.advance_ms(2'000);
    CHECK(f.take() == 1);
    CHECK(f.queue().head_wait_ms(f.clock.now_ms()) == 2'000);  // b's
    CHECK(f.take() == 2);
    CHECK(f.queue().head_wait_ms(f.clock.now_ms()) == 0);
  }

  TEST_CASE("each delivery records how long the job had been ready") {
    EngineFixture f;
    f.put("a");
    f.clock.advance_ms(40);
    f.put("b");
    f.clock.advance_ms(7'000);
    REQUIRE(f.take_many(2).size() == 2);  // waits 7040 and 7000
    const engine::WaitHistogram& w = waits(f);
    CHECK(w.count() == 2);
    CHECK(w.sum_ms() == 14'040);
    CHECK(w.at_most(bucket_of(5'000)) == 0);
    CHECK(w.at_most(bucket_of(10'000)) == 2);
    // A second delivery of a job counts from when it came back.
    f.clock.advance_ms(100);
    REQUIRE(f.engine.nack(1, 0).ok());
    f.clock.advance_ms(20);
    CHECK(f.take() == 1);
    CHECK(w.count() == 3);
    CHECK(w.sum_ms() == 14'060);
    CHECK(w.at_most(bucket_of(25)) == 1);
  }

  TEST_CASE("a wait past the last bound and one below zero are counted") {
    engine::WaitHistogram w;
    w.record(-5);  // a wall clock set back
    w.record(engine::WaitHistogram::kBoundsMs.back() + 1);
    CHECK(w.at_most(0) == 1);
    CHECK(w.at_most(engine::WaitHistogram::kBoundsMs.size() - 1) == 1);
    CHECK(w.count() == 2);
    CHECK(w.sum_ms() == 3'600'001);
  }

  TEST_CASE("a delayed job is ready from its due time, not from when it was put") {
    EngineFixture f;
    f.put("later", {.delay_ms = 10'000});
    f.advance(4'000);
    CHECK(f.queue().head_wait_ms(f.clock.now_ms()) == 0);  // not ready yet
    // The sweep that finds it due may run late: the wait still counts from
    // the due time.
    f.clock.advance_ms(9'000);
    f.engine.expire_due();
    CHECK(f.queue().ready.size() == 1);
    CHECK(f.queue().head_wait_ms(f.clock.now_ms()) == 3'000);
  }

  TEST_CASE("the longest wait of any priority's next job - a starved low priority shows") {
    EngineFixture f;
    f.put("low", {.priority = -5});
    f.clock.advance_ms(60'000);
    // High-priority work keeps flowing and is always taken at once...
    for (int i = 0; i < 3; ++i) {
      const uint64_t id = f.put("high", {.priority = 10});
      CHECK(f.take() == id);
      REQUIRE(f.engine.ack(id).ok());
      f.clock.advance_ms(1'000);
    }
    f.put("high", {.priority = 10});
    // ... while the low one has waited since the start.
    CHECK(f.queue().head_wait_ms(f.clock.now_ms()) == 63'000);
  }

  TEST_CASE("a job that comes back waits from then - lease expiry, NACK and KICK") {
    EngineFixture f;
    f.configure([](engine::QueueSettings& s) {
      s.ack_timeout_ms = 5'000;
      s.max_attempts = 1;
    });
    f.put("a");
    f.clock.advance_ms(1'000);
    CHECK(f.take() == 1);
    f.advance(5'000);  // the lease runs out: out of attempts, dead
    REQUIRE(f.queue().dead.size() == 1);
    f.clock.advance_ms(2'000);
    REQUIRE(f.engine.kick("q", 1).ok());
    f.clock.advance_ms(300);
    CHECK(f.queue().head_wait_ms(f.clock.now_ms()) == 300);
    f.configure([](engine::QueueSettings& s) { s.max_attempts = 0; });
    CHECK(f.take() == 1);
    f.advance(5'000);  // the lease runs out: back to ready, at once (no backoff)
    REQUIRE(f.queue().ready.size() == 1);
    f.clock.advance_ms(700);
    CHECK(f.queue().head_wait_ms(f.clock.now_ms()) == 700);
    // A sweep that comes late still counts from the lease's end.
    CHECK(f.take() == 1);
    f.clock.advance_ms(5'000 + 1'200);
    f.engine.expire_due();
    CHECK(f.queue().head_wait_ms(f.clock.now_ms()) == 1'200);
  }

  TEST_CASE("jobs held behind their group do not count as waiting for a worker") {
    EngineFixture f;
    f.put("first", {.group = "g"});
    f.put("second", {.group = "g"});
    CHECK(f.take() == 1);
    f.clock.advance_ms(10'000);
    CHECK(f.queue().held.size() == 1);
    CHECK(f.queue().head_wait_ms(f.clock.now_ms()) == 0);
    // Released when the first is done, its wait for a worker starts then.
    REQUIRE(f.engine.ack(1).ok());
    CHECK(f.queue().head_wait_ms(f.clock.now_ms()) == 0);
    f.clock.advance_ms(250);
    CHECK(f.queue().head_wait_ms(f.clock.now_ms()) == 250);
    CHECK(f.take() == 2);
    CHECK(f.queue().waits.sum_ms() == 250);  // the first's 0, the second's 250
  }

  TEST_CASE("enqueue reads the coarse clock for a plain job") {
    // A clock whose coarse reading lags: a plain job's ready time is the
    // coarse one, a timed job's (a delay, a TTL, a key) the exact one.
    struct LaggingClock final : engine::Clock {
      int64_t now = 1'700'000'000'000;
      int64_t now_ms() const override { return now; }
      int64_t coarse_now_ms() const override { return now - 3; }
    } clock;
    engine::Engine engine{clock, engine::EngineLimits{}, engine::QueueSettings{}};
    REQUIRE(engine.create_queue("q").ok());
    REQUIRE(engine.enqueue("q", "plain", {}).ok());
    REQUIRE(engine.enqueue("q", "timed", {.ttl_ms = 60'000}).ok());
    CHECK(engine.find_job(1)->deadline_ms == clock.now - 3);
    CHECK(engine.find_job(2)->deadline_ms == clock.now);
  }
}

}  // namespace engine_wait_test
