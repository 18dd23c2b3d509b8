// What limits a queue, with a hand-driven clock: max_leased (jobs leased at
// once), the rate limit (deliveries per window), a timed PAUSE, and how many
// dead letters it keeps (dead_max, dead_retention); what DEQUEUE says when
// one holds jobs back, and when waiting workers are told to come back.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "server/engine/engine.h"
#include "tests/unit/engine_fixture.h"

namespace engine_limits_test {

using namespace tq::engine;

using Fixture = tq::testing::EngineFixture;

TEST_SUITE("engine_limits") {
  TEST_CASE("max_leased: no more jobs leased at once than the setting") {
    Fixture f;
    f.configure([](QueueSettings& s) { s.max_leased = 2; });
    f.put_n(5);
    uint64_t first = f.take();
    CHECK(first != 0);
    CHECK(f.take_many(10).size() == 1);  // COUNT 10 gets the one slot left
    CHECK(f.queue().leased.size() == 2);
    CHECK(f.empty_reason() == "queue 'q' is at max_leased=2 (2 leased, 3 ready)");
    CHECK_FALSE(f.engine.can_deliver(f.queue()));
    // Each way a lease ends frees its slot.
    REQUIRE(f.engine.ack(first).ok());
    uint64_t second = f.take();
    CHECK(second != 0);
    REQUIRE(f.engine.nack(second, std::nullopt).ok());  // back to ready
    uint64_t third = f.take();
    CHECK(third == second);  // at its place: the oldest ready job
    CHECK(f.take() == 0);
    f.advance(f.queue().settings.ack_timeout_ms);  // both leases run out
    CHECK(f.queue().leased.empty());
    CHECK(f.take_many(10).size() == 2);
  }

  TEST_CASE("max_leased: a waiting worker is signalled when a lease ends, not before") {
    Fixture f;
    f.configure([](QueueSettings& s) { s.max_leased = 1; });
    f.put_n(2);
    uint64_t id = f.take();
    f.engine.add_waiter(&f.queue());
    f.put("another");  // ready, but the one slot is taken
    // make_ready reports the queue, and the server's attempt finds no room.
    CHECK(f.signalled());
    CHECK(f.take_many(1).empty());
    f.advance(1'000);  // time alone changes nothing
    CHECK_FALSE(f.signalled());
    REQUIRE(f.engine.ack(id).ok());
    CHECK(f.signalled());
    CHECK(f.take_many(1).size() == 1);
    f.engine.remove_waiter(&f.queue());
  }

  TEST_CASE("max_leased: raising it lets waiting workers in, and 0 means no limit") {
    Fixture f;
    f.configure([](QueueSettings& s) { s.max_leased = 1; });
    f.put_n(3);
    CHECK(f.take() != 0);
    f.engine.add_waiter(&f.queue());
    f.engine.take_ready_signals();
    f.configure([](QueueSettings& s) { s.max_leased = 2; });
    CHECK(f.signalled());
    CHECK(f.take() != 0);
    CHECK(f.take() == 0);
    f.configure([](QueueSettings& s) { s.max_leased = 0; });
    CHECK(f.take() != 0);
  }

  TEST_CASE("max_leased: a DEQUEUE of several queues goes on to one with room") {
    Fixture f;
    REQUIRE(f.engine.create_queue("other").ok());
    f.configure([](QueueSettings& s) {
      s.max_leased = 1;
      s.priority = 10;
    });
    f.put_n(3);
    f.put_n(3, "other");
    // The high-priority queue gives its one slot, the rest comes from other.
    auto ids = f.take_many(4, {"q", "other"});
    REQUIRE(ids.size() == 4);
    CHECK(f.queue().leased.size() == 1);
    CHECK(f.queue("other").leased.size() == 3);
  }

  TEST_CASE("rate_limit: a burst of rate_limit, then one delivery per rate_window / rate_limit") {
    Fixture f;
    f.configure([](QueueSettings& s) {
      s.rate_limit = 4;
      s.rate_window_ms = 1'000;
    });
    f.put_n(20);
    CHECK(f.take_many(10).size() == 4);  // a full bucket
    CHECK(f.empty_reason() ==
          "queue 'q' is at rate_limit=4 per 1000ms: the next delivery in 250ms");
    f.advance(249);
    CHECK(f.take() == 0);
    f.advance(1);
    CHECK(f.take() != 0);
    CHECK(f.take() == 0);
    f.advance(500);  // two more earned
    CHECK(f.take_many(10).size() == 2);
    f.advance(10'000);  // a quiet spell fills the bucket, no more
    CHECK(f.take_many(10).size() == 4);
  }

  TEST_CASE("rate_limit: deliveries in any window stay within the burst and the rate") {
    // Workers that ask as fast as they can, over a simulated minute: no
    // window of rate_window holds more than 2 x rate_limit deliveries (a full
    // bucket, then what the window earns), and the whole run delivers the
    // rate, not more.
    Fixture f;
    f.configure([](QueueSettings& s) {
      s.rate_limit = 50;
      s.rate_window_ms = 1'000;
    });
    f.put_n(5'000);
    std::vector<int64_t> times;
    const int64_t start = f.clock.now_ms();
    for (int step = 0; step < 60'000; step += 7) {
      for (uint64_t id : f.take_many(3)) {
        times.push_back(f.clock.now_ms());
        REQUIRE(f.engine.ack(id).ok());
      }
      f.advance(7);
    }
    const int64_t elapsed = f.clock.now_ms() - start;
    CHECK(times.size() <= static_cast<size_t>(50 + 50 * elapsed / 1'000));
    CHECK(times.size() >= static_cast<size_t>(50 * elapsed / 1'000 - 1));
    size_t most = 0;
    for (size_t i = 0, j = 0; i < times.size(); ++i) {
      while (times[i] - times[j] >= 1'000) ++j;
      most = std::max(most, i - j + 1);
    }
    CHECK(most <= 100);
  }

  TEST_CASE("rate_limit: a waiting worker gets a timer for the next delivery") {
    Fixture f;
    f.configure([](QueueSettings& s) {
      s.rate_limit = 2;
      s.rate_window_ms = 1'000;
    });
    f.put_n(3);
    CHECK(f.take_many(5).size() == 2);
    const int64_t now = f.clock.now_ms();
    CHECK(f.engine.next_deadline_ms() == now + f.queue().settings.ack_timeout_ms);
    f.engine.add_waiter(&f.queue());
    f.engine.take_ready_signals();
    CHECK(f.engine.next_deadline_ms() == now + 500);  // when the bucket has one again
    f.advance(499);
    CHECK_FALSE(f.signalled());
    f.advance(1);
    CHECK(f.signalled());
    CHECK(f.take_many(5).size() == 1);
    f.engine.remove_waiter(&f.queue());
  }

  TEST_CASE("rate_limit: a change refills the bucket, and an unlimited queue has no timer for it") {
    Fixture f;
    f.configure([](QueueSettings& s) { s.rate_limit = 1; });
    f.put_n(5);
    CHECK(f.take() != 0);
    CHECK(f.take() == 0);
    f.configure([](QueueSettings& s) { s.rate_limit = 3; });
    CHECK(f.take_many(5).size() == 3);
    f.configure([](QueueSettings& s) { s.rate_limit = 0; });
    f.engine.add_waiter(&f.queue());
    CHECK(f.take() != 0);
    CHECK(f.engine.next_deadline_ms() == f.clock.now_ms() + f.queue().settings.ack_timeout_ms);
    f.engine.remove_waiter(&f.queue());
  }

  TEST_CASE("rate_limit: a wall clock set back does not hold deliveries until it catches up") {
    Fixture f;
    f.configure([](QueueSettings& s) {
      s.rate_limit = 1;
      s.rate_window_ms = 1'000;
    });
    f.put_n(3);
    CHECK(f.take() != 0);
    f.clock.advance_ms(-3'600'000);  // an hour back
    CHECK(f.take() == 0);
    f.advance(1'000);
    CHECK(f.take() != 0);
  }

  TEST_CASE("a paused queue says so before any limit") {
    Fixture f;
    f.configure([](QueueSettings& s) { s.max_leased = 1; });
    f.put_n(2);
    CHECK(f.take() != 0);
    REQUIRE(f.engine.set_paused("q", true).ok());
    CHECK(f.empty_reason() == "queue 'q' is paused");
    REQUIRE(f.engine.set_paused("q", false).ok());
    CHECK(f.empty_reason().find("max_leased=1") != std::string::npos);
  }

  TEST_CASE("rate_limit: RESUME of a queue a worker began waiting on while paused sets its timer") {
    Fixture f;
    f.configure([](QueueSettings& s) {
      s.rate_limit = 1;
      s.rate_window_ms = 2'000;
    });
    f.put_n(3);
    CHECK(f.take() != 0);
    REQUIRE(f.engine.set_paused("q", true).ok());
    f.engine.add_waiter(&f.queue());
    REQUIRE(f.engine.set_paused("q", false).ok());
    CHECK_FALSE(f.signalled());  // no token yet
    CHECK(f.engine.next_deadline_ms() == f.clock.now_ms() + 2'000);
    f.advance(2'000);
    CHECK(f.signalled());
    f.engine.remove_waiter(&f.queue());
  }

  TEST_CASE("rate_limit: a wall clock set back during a sweep does not make it spin") {
    // Once armed, the first reading is the sweep's time and every later one
    // is an hour earlier, creeping forward a millisecond a reading. A
    // deadline worked out from those later readings would be due by the
    // sweep's time, and the sweep would visit the queue again at every
    // reading, an hour's worth of them.
    struct SteppingClock final : Clock {
      int64_t start = 1'700'000'000'000;
      bool armed = false;
      mutable int64_t reads = 0;
      int64_t now_ms() const override {
        if (!armed) return start;
        return ++reads == 1 ? start : start - 3'600'000 + reads;
      }
    } clock;
    Engine engine{clock, EngineLimits{}, QueueSettings{}};
    REQUIRE(engine.create_queue("q").ok());
    QueueSettings s;
    s.rate_limit = 1;
    s.rate_window_ms = 1'000;
    REQUIRE(engine.configure("q", s).ok());
    for (int i = 0; i < 3; ++i) REQUIRE(engine.enqueue("q", "x").ok());
    REQUIRE(engine.dequeue("q").ok());
    engine.add_waiter(engine.find_queue("q"));
    REQUIRE(engine.next_deadline_ms() == clock.start + 1'000);  // the next token
    clock.start += 1'000;
    clock.armed = true;
    engine.expire_due();
    CHECK(clock.reads < 100);
    CHECK(engine.next_deadline_ms() > clock.start);
  }

  TEST_CASE(
      "dead_max: one more dead job deletes the oldest, and a lower dead_max trims in budgets") {
    Fixture f;
    f.configure([](QueueSettings& s) { s.dead_max = 3; });
    std::vector<uint64_t> ids;
    for (int i = 0; i < 5; ++i) {
      ids.push_back(f.put("poison " + std::to_string(i)));
      REQUIRE(f.take() == ids.back());
      REQUIRE(f.engine.fail(ids.back(), "bad").ok());
      f.clock.advance_ms(10);  // so each died later than the one before
    }
    CHECK(f.queue().dead.size() == 3);
    CHECK(f.engine.find_job(ids[0]) == nullptr);  // the two oldest went
    CHECK(f.engine.find_job(ids[1]) == nullptr);
    CHECK(f.engine.find_job(ids[2]) != nullptr);
    CHECK(f.queue().counters.dead_discarded == 2);
    CHECK(f.engine.counters().dead_discarded == 2);
    CHECK(f.queue().counters.deleted == 0);  // not a DELETE
    f.configure([](QueueSettings& s) { s.dead_max = 1; });
    CHECK(f.engine.next_deadline_ms() <= f.clock.now_ms());  // due now
    CHECK(f.engine.expire_due(1) == 1);                      // one per budget unit
    CHECK(f.queue().dead.size() == 2);
    f.engine.expire_due();
    CHECK(f.queue().dead.size() == 1);
    CHECK(f.engine.find_job(ids[4]) != nullptr);  // the newest stays
    CHECK(f.engine.next_deadline_ms() == INT64_MAX);
  }

  TEST_CASE("dead_max: the job that just died is never the one deleted") {
    Fixture f;
    f.configure([](QueueSettings& s) { s.dead_max = 1; });
    const uint64_t a = f.put("a");
    const uint64_t b = f.put("b");
    REQUIRE(f.take_many(2).size() == 2);
    // In one millisecond, the higher id first: the heap's tie-break by id
    // puts the newer death on top.
    REQUIRE(f.engine.fail(b, "x").ok());
    REQUIRE(f.engine.fail(a, "x").ok());
    CHECK(f.engine.find_job(a) != nullptr);
    CHECK(f.engine.find_job(b) == nullptr);
    // A wall clock set back: the new death is the earliest by time.
    const uint64_t c = f.put("c");
    REQUIRE(f.take() == c);
    f.clock.advance_ms(-60'000);
    REQUIRE(f.engine.fail(c, "x").ok());
    CHECK(f.engine.find_job(c) != nullptr);
    CHECK(f.engine.find_job(a) == nullptr);
    CHECK(f.queue().dead.size() == 1);
  }

  TEST_CASE("dead_retention: a dead job is deleted that long after it died, not before") {
    Fixture f;
    f.configure([](QueueSettings& s) {
      s.dead_retention_ms = 60'000;
      s.max_attempts = 1;
    });
    const uint64_t nacked = f.put("a");
    REQUIRE(f.take() == nacked);
    REQUIRE(f.engine.nack(nacked, std::nullopt).ok());  // out of attempts: dead
    f.clock.advance_ms(30'000);
    const uint64_t failed = f.put("b");
    REQUIRE(f.take() == failed);
    REQUIRE(f.engine.fail(failed, "bad").ok());
    CHECK(f.engine.next_deadline_ms() == f.clock.now_ms() + 30'000);  // the first one's end
    f.advance(29'999);
    CHECK(f.engine.find_job(nacked) != nullptr);
    f.advance(1);
    CHECK(f.engine.find_job(nacked) == nullptr);
    CHECK(f.engine.find_job(failed) != nullptr);
    f.advance(30'000);
    CHECK(f.engine.find_job(failed) == nullptr);
    CHECK(f.queue().counters.dead_discarded == 2);
    // A kicked job starts over: it is ready, and no retention applies to it.
    const uint64_t kicked = f.put("c");
    REQUIRE(f.take() == kicked);
    REQUIRE(f.engine.fail(kicked, "bad").ok());
    REQUIRE(f.engine.kick("q", 1).ok());
    f.advance(120'000);
    CHECK(f.engine.find_job(kicked) != nullptr);
    CHECK(f.queue().ready.size() == 1);
  }

  TEST_CASE(
      "a timed PAUSE ends by itself, tells waiting workers, and RESUME or PAUSE replaces it") {
    Fixture f;
    f.put_n(2);
    REQUIRE(f.engine.set_paused("q", true, f.clock.now_ms() + 5'000).ok());
    CHECK(f.empty_reason() == "queue 'q' is paused for 5000ms more");
    CHECK(f.engine.next_deadline_ms() == f.clock.now_ms() + 5'000);
    f.engine.add_waiter(&f.queue());
    f.advance(4'999);
    CHECK_FALSE(f.signalled());
    CHECK(f.queue().paused);
    f.advance(1);
    CHECK_FALSE(f.queue().paused);
    CHECK(f.queue().resume_at_ms == 0);
    CHECK(f.signalled());
    f.engine.remove_waiter(&f.queue());
    // A PAUSE without a duration replaces a timed one: no end any more.
    REQUIRE(f.engine.set_paused("q", true, f.clock.now_ms() + 1'000).ok());
    REQUIRE(f.engine.set_paused("q", true).ok());
    f.advance(10'000);
    CHECK(f.queue().paused);
    CHECK(f.empty_reason() == "queue 'q' is paused");
    // RESUME clears a timed pause's end.
    REQUIRE(f.engine.set_paused("q", true, f.clock.now_ms() + 1'000).ok());
    REQUIRE(f.engine.set_paused("q", false).ok());
    CHECK(f.queue().resume_at_ms == 0);
    CHECK(f.engine.next_deadline_ms() == INT64_MAX);
    CHECK(f.take() != 0);
  }
}

}  // namespace engine_limits_test
