// Blocked DEQUEUEs without sockets: first come first served per queue,
// several queues per waiter, deadlines, dropped queues, shutdown.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "server/waiters.h"
#include "tests/unit/engine_check.h"

namespace waiters_test {

using namespace tq;

namespace {

struct Delivery {
  uint64_t connection;
  std::vector<std::string> payloads;
  std::string error;
};

struct Fixture {
  engine::ManualClock clock;
  engine::Engine engine{clock, engine::EngineLimits{}, engine::QueueSettings{}};
  std::vector<Delivery> delivered;
  server::WaiterTable waiters{engine, [this](uint64_t id, const server::WaitRequest&,
                                             const std::vector<const engine::Job*>& jobs,
                                             const std::string& error) {
                                Delivery d{id, {}, error};
                                for (const auto* j : jobs) d.payloads.emplace_back(j->payload());
                                delivered.push_back(d);
                              }};

  Fixture() {
    REQUIRE(engine.create_queue("a").ok());
    REQUIRE(engine.create_queue("b").ok());
  }
  engine::Queue* q(const std::string& name) { return engine.find_queue(name); }
  void wait(uint64_t connection, std::vector<engine::Queue*> queues, int64_t for_ms, size_t count = 1) {
    waiters.add(connection, server::WaitRequest{std::move(queues), count, count > 1, clock.now_ms() + for_ms});
  }
  void put(const std::string& queue, const std::string& payload) {
    REQUIRE(engine.enqueue(queue, payload).ok());
    waiters.serve_ready();
  }
  // Queue `name` delivers one job a second at most.
  void limit_to_one_a_second(const std::string& name) {
    engine::QueueSettings s = q(name)->settings;
    s.rate_limit = 1;
    s.rate_window_ms = 1'000;
    REQUIRE(engine.configure(name, s).ok());
  }
};

}  // namespace

TEST_SUITE("waiters") {
  TEST_CASE("waiters are served first come, first served") {
    Fixture f;
    f.wait(1, {f.q("a")}, 10'000);
    f.wait(2, {f.q("a")}, 10'000);
    f.wait(3, {f.q("a")}, 10'000);
    f.put("a", "first");
    f.put("a", "second");
    REQUIRE(f.delivered.size() == 2);
    CHECK(f.delivered[0].connection == 1);
    CHECK(f.delivered[0].payloads == std::vector<std::string>{"first"});
    CHECK(f.delivered[1].connection == 2);
    CHECK(f.waiters.size() == 1);
    CHECK(f.q("a")->waiters == 1);
  }

  TEST_CASE("a waiter on several queues is served by whichever gets a job first, once") {
    Fixture f;
    f.wait(1, {f.q("a"), f.q("b")}, 10'000);
    f.wait(2, {f.q("b")}, 10'000);
    f.put("b", "for one");
    f.put("b", "for two");
    f.put("a", "nobody waits");
    REQUIRE(f.delivered.size() == 2);
    CHECK(f.delivered[0].connection == 1);
    CHECK(f.delivered[1].connection == 2);
    CHECK(f.q("a")->ready.size() == 1);
    CHECK(f.q("a")->waiters == 0);
    CHECK(f.q("b")->waiters == 0);
  }

  TEST_CASE("a waiter with COUNT takes what is ready, up to its count") {
    Fixture f;
    REQUIRE(f.engine.enqueue("a", "1").ok());
    REQUIRE(f.engine.enqueue("a", "2").ok());
    REQUIRE(f.engine.set_paused("a", true).ok());
    f.wait(1, {f.q("a")}, 10'000, 5);
    REQUIRE(f.engine.set_paused("a", false).ok());
    f.waiters.serve_ready();
    REQUIRE(f.delivered.size() == 1);
    CHECK(f.delivered[0].payloads == std::vector<std::string>{"1", "2"});
  }

  TEST_CASE("deadlines: a waiter gets nothing when its time is up, and is then forgotten") {
    Fixture f;
    f.wait(1, {f.q("a")}, 1'000);
    f.wait(2, {f.q("a")}, 5'000);
    CHECK(f.waiters.next_deadline_ms() == f.clock.now_ms() + 1'000);
    f.clock.advance_ms(1'000);
    f.waiters.expire(f.clock.now_ms());
    REQUIRE(f.delivered.size() == 1);
    CHECK(f.delivered[0].connection == 1);
    CHECK(f.delivered[0].payloads.empty());
    f.put("a", "x");
    REQUIRE(f.delivered.size() == 2);
    CHECK(f.delivered[1].connection == 2);
  }

  TEST_CASE("a cancelled waiter (closed connection) is skipped") {
    Fixture f;
    f.wait(1, {f.q("a")}, 10'000);
    f.wait(2, {f.q("a")}, 10'000);
    f.waiters.cancel(1);
    f.put("a", "x");
    REQUIRE(f.delivered.size() == 1);
    CHECK(f.delivered[0].connection == 2);
  }

  TEST_CASE("a connection's later wait does not jump the line with its old entry") {
    Fixture f;
    f.wait(1, {f.q("a"), f.q("b")}, 10'000);
    f.wait(2, {f.q("a")}, 10'000);
    f.put("b", "served via b");      // connection 1 is served; its entry in a's line goes stale
    f.wait(1, {f.q("a")}, 10'000);   // and it waits again, now behind 2
    f.put("a", "x");
    REQUIRE(f.delivered.size() == 2);
    CHECK(f.delivered[1].connection == 2);
  }

  TEST_CASE("dropping a queue releases its waiters") {
    Fixture f;
    f.wait(1, {f.q("a")}, 10'000);
    f.wait(2, {f.q("a"), f.q("b")}, 10'000);
    f.waiters.queue_dropping(f.q("a"), "ERROR NOQUEUE dropped\n");
    REQUIRE(f.engine.drop("a").ok());
    REQUIRE(f.delivered.size() == 1);
    CHECK(f.delivered[0].connection == 1);
    CHECK(f.delivered[0].error == "ERROR NOQUEUE dropped\n");
    f.put("b", "still waiting on b");
    REQUIRE(f.delivered.size() == 2);
    CHECK(f.delivered[1].connection == 2);
  }

  TEST_CASE(
      "ended waits leave no growing trail - on a queue no job comes to, nor in the deadlines") {
    // A worker looping on DEQUEUE a b WAIT ..., always served through a: each
    // wait used to leave its entry on b for good, and its deadline for the
    // wait's length.
    Fixture f;
    for (int i = 0; i < 1000; ++i) {
      f.wait(1, {f.q("a"), f.q("b")}, 3'600'000);
      f.put("a", "job " + std::to_string(i));
      REQUIRE(f.delivered.size() == static_cast<size_t>(i + 1));
    }
    CHECK(f.waiters.entries_kept() < 100);
    f.wait(1, {f.q("a"), f.q("b")}, 10'000);
    f.wait(2, {f.q("b")}, 10'000);
    f.put("b", "for the first in line");
    REQUIRE(f.delivered.size() == 1001);
    CHECK(f.delivered.back().connection == 1);
    f.put("b", "for the second");
    CHECK(f.delivered.back().connection == 2);
  }

  TEST_CASE("the liveness check names a waiter left on a queue that could serve it") {
    Fixture f;
    f.wait(1, {f.q("a"), f.q("b")}, 10'000);
    f.put("a", "served");
    CHECK(testing::check_waiters_served(f.engine, f.waiters).empty());
    // A job the table was not told about (no serve_ready): a lost wake-up.
    f.wait(1, {f.q("a"), f.q("b")}, 10'000);
    REQUIRE(f.engine.enqueue("b", "lost").ok());
    const std::string stuck = testing::check_waiters_served(f.engine, f.waiters);
    CHECK(stuck.find("connection 1 waits on queue b") != std::string::npos);
    CHECK(stuck.find("queue a") == std::string::npos);
    f.waiters.serve_ready();
    CHECK(testing::check_waiters_served(f.engine, f.waiters).empty());
    // A paused queue, or one at its max_leased, cannot: no complaint.
    f.wait(1, {f.q("a")}, 10'000);
    REQUIRE(f.engine.set_paused("a", true).ok());
    REQUIRE(f.engine.enqueue("a", "paused").ok());
    CHECK(testing::check_waiters_served(f.engine, f.waiters).empty());
  }

  TEST_CASE("fail_all answers everyone (shutdown)") {
    Fixture f;
    f.wait(1, {f.q("a")}, 10'000);
    f.wait(2, {f.q("b")}, 10'000);
    f.waiters.fail_all("ERROR SHUTDOWN\n");
    CHECK(f.delivered.size() == 2);
    CHECK(f.waiters.size() == 0);
    CHECK(f.q("a")->waiters == 0);
  }

  TEST_CASE("a rate-limited queue: waiters are served as the limit allows, and at their deadline") {
    Fixture f;
    f.limit_to_one_a_second("a");
    f.wait(1, {f.q("a")}, 10'000);
    f.wait(2, {f.q("a")}, 1'000);
    f.put("a", "one");
    f.put("a", "two");
    REQUIRE(f.delivered.size() == 1);  // the bucket held one
    CHECK(f.delivered[0].connection == 1);
    // Waiter 2's deadline and the next token come at the same time: whichever
    // fires first, it gets the job, not EMPTY.
    f.clock.advance_ms(1'000);
    f.waiters.expire(f.clock.now_ms());
    REQUIRE(f.delivered.size() == 2);
    CHECK(f.delivered[1].connection == 2);
    CHECK(f.delivered[1].payloads == std::vector<std::string>{"two"});
    CHECK(f.waiters.size() == 0);
  }

  TEST_CASE("a rate-limited queue: a wall clock set back does not hold its waiters for the step") {
    Fixture f;
    f.limit_to_one_a_second("a");
    f.put("a", "one");
    f.put("a", "two");
    REQUIRE(f.engine.dequeue("a").ok());  // the bucket held one
    f.wait(1, {f.q("a")}, 7'200'000);
    // An hour back: the bucket counts from the new time, and its timer too,
    // once the server notices (its housekeeping, every second).
    f.clock.advance_ms(-3'600'000);
    CHECK(f.engine.follow_clock_set_back());
    f.clock.advance_ms(1'000);
    CHECK(f.engine.next_deadline_ms() <= f.clock.now_ms());
    f.engine.expire_due();
    f.waiters.serve_ready();
    REQUIRE(f.delivered.size() == 1);
    CHECK(f.delivered[0].payloads == std::vector<std::string>{"two"});
    CHECK(f.waiters.size() == 0);
  }
}

}  // namespace waiters_test
