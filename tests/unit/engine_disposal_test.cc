// What PURGE and DROP remove is gone for every purpose at once and freed
// later, in steps (server/engine/disposal.h): no lookup by id finds such a
// job meanwhile, no count includes it, and the freeing takes only those.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "server/engine/engine.h"
#include "tests/unit/engine_check.h"
#include "tests/unit/engine_fixture.h"

namespace engine_disposal_test {

using namespace tq::engine;

using tq::testing::check_engine_invariants;
using Fixture = tq::testing::EngineFixture;

namespace {

// Every way a client names a job by id finds nothing.
void check_gone(Engine& engine, uint64_t id) {
  CAPTURE(id);
  CHECK(engine.find_job(id) == nullptr);
  CHECK(engine.remove(id).error().code == Errc::kNotFound);
  CHECK(engine.kick_job(id).error().code == Errc::kNotFound);
  CHECK(engine.ack(id).error().code == Errc::kNotFound);
  CHECK(engine.nack(id, std::nullopt, std::nullopt).error().code == Errc::kNotFound);
}

}  // namespace

TEST_SUITE("engine_disposal") {
  TEST_CASE("PURGE: the jobs are gone for every lookup at once, and freed a step at a time") {
    Fixture f;
    const uint64_t leased = f.put("leased");
    REQUIRE(f.take() == leased);
    std::vector<uint64_t> purged;
    for (int i = 0; i < 1'000; ++i) {
      EnqueueOptions o;
      o.priority = i % 2;
      if (i % 5 == 0) o.delay_ms = 10'000;
      if (i % 7 == 0) o.ttl_ms = 60'000;
      purged.push_back(f.put("job " + std::to_string(i), o));
    }
    const uint64_t payload_before = f.engine.payload_bytes();
    REQUIRE(f.engine.purge("q").value() == 1'000);

    CHECK(f.engine.jobs_disposing() == 1'000);
    CHECK(f.engine.job_count() == 1);
    CHECK(f.engine.count_in(JobState::kReady) == 0);
    CHECK(f.engine.count_in(JobState::kDelayed) == 0);
    CHECK(check_engine_invariants(f.engine) == "");
    for (uint64_t id : {purged.front(), purged[5], purged[7], purged[500], purged.back()}) {
      check_gone(f.engine, id);
    }
    // Nothing purged is delivered, neither now nor when the delays and TTLs end.
    CHECK(f.take() == 0);

    CHECK(f.engine.dispose_some(300));
    CHECK(f.engine.jobs_disposing() == 700);
    CHECK(f.engine.payload_bytes() < payload_before);
    CHECK(f.engine.dispose_some(699));
    CHECK_FALSE(f.engine.dispose_some(1));
    CHECK_FALSE(f.engine.disposing());
    CHECK(f.engine.jobs_disposing() == 0);
    CHECK(f.engine.payload_bytes() == std::string("leased").size());
    f.advance(120'000);  // the lease runs out: the job is ready again
    CHECK(f.take() == leased);
    CHECK(check_engine_invariants(f.engine) == "");
  }

  TEST_CASE(
      "a job that begins to wait again after a PURGE stays, though its id is in the purged set") {
    // A ready job whose TTL ends goes to dead letters and leaves its id in
    // the ready FIFO, stale. The PURGE takes that FIFO aside; KICKed, the
    // job is ready again, in the queue's new set: freeing the old one must
    // pass it by.
    Fixture f;
    f.configure([](QueueSettings& s) { s.ttl_dead_letter = true; });
    const uint64_t first = f.put("first");
    const uint64_t revived = f.put("revived", {.ttl_ms = 1'000});
    const uint64_t last = f.put("last");
    f.advance(1'000);
    REQUIRE(f.engine.count_in(JobState::kDead) == 1);
    REQUIRE(f.engine.purge("q").value() == 2);
    REQUIRE(f.engine.kick_job(revived).ok());
    CHECK(f.engine.find_job(revived) != nullptr);
    f.engine.finish_disposals();
    CHECK(f.engine.find_job(first) == nullptr);
    CHECK(f.engine.find_job(last) == nullptr);
    REQUIRE(f.engine.find_job(revived) != nullptr);
    CHECK(f.engine.job_count() == 1);
    CHECK(check_engine_invariants(f.engine) == "");
    CHECK(f.take() == revived);
  }

  TEST_CASE("a lease that ends after a PURGE puts its job back in the new generation") {
    Fixture f;
    const uint64_t leased = f.put("leased");
    REQUIRE(f.take() == leased);
    f.put_n(10);
    REQUIRE(f.engine.purge("q").value() == 10);
    REQUIRE(f.engine.nack(leased, std::nullopt, std::nullopt).ok());
    CHECK(f.engine.find_job(leased) != nullptr);
    CHECK(f.engine.count_in(JobState::kReady) == 1);
    f.engine.finish_disposals();
    CHECK(f.take() == leased);
    CHECK(check_engine_invariants(f.engine) == "");
  }

  TEST_CASE("300 PURGEs before anything is freed: a generation comes round only once freed") {
    // Generations are a byte: the 256th PURGE would start the generation of
    // the first one's jobs again, so the engine frees those first.
    Fixture f;
    const uint64_t leased = f.put("leased");
    REQUIRE(f.take() == leased);
    std::vector<uint64_t> purged;
    for (int round = 0; round < 300; ++round) {
      purged.push_back(f.put("a"));
      purged.push_back(f.put("b", {.delay_ms = 5'000}));
      REQUIRE(f.engine.purge("q").value() == 2);
      CHECK(f.engine.jobs_disposing() <= 2 * 256);
      CHECK(f.engine.job_count() == 1);
    }
    for (uint64_t id : purged) CHECK(f.engine.find_job(id) == nullptr);
    CHECK(check_engine_invariants(f.engine) == "");
    REQUIRE(f.engine.nack(leased, std::nullopt, std::nullopt).ok());
    const uint64_t fresh = f.put("fresh");
    f.engine.finish_disposals();
    CHECK(f.engine.job_count() == 2);
    CHECK(f.engine.payload_bytes() == std::string("leased").size() + std::string("fresh").size());
    CHECK(f.take() == leased);
    CHECK(f.take() == fresh);
  }

  TEST_CASE(
      "DROP: the queue's jobs go at once, leased and dead ones too, and a new queue of its name "
      "starts empty") {
    Fixture f;
    f.configure([](QueueSettings& s) { s.max_attempts = 1; });
    const uint64_t leased = f.put("leased");
    REQUIRE(f.take() == leased);
    const uint64_t dead = f.put("dead");
    REQUIRE(f.take() == dead);
    REQUIRE(f.engine.fail(dead, "x").ok());
    f.put_n(50);
    const uint64_t delayed = f.put("delayed", {.delay_ms = 1'000});
    REQUIRE(f.engine.drop("q").ok());
    CHECK(f.engine.jobs_disposing() == 53);
    CHECK(f.engine.job_count() == 0);
    for (uint64_t id : {leased, dead, delayed}) check_gone(f.engine, id);
    CHECK(f.engine.touch(leased, std::nullopt).error().code == Errc::kNotFound);
    CHECK(f.engine.fail(leased, "late").error().code == Errc::kNotFound);

    REQUIRE(f.engine.create_queue("q").ok());
    const uint64_t fresh = f.put("fresh");
    CHECK(f.engine.ack(leased, std::string_view("q")).error().code == Errc::kNotFound);
    CHECK(check_engine_invariants(f.engine) == "");
    while (f.engine.dispose_some(1)) CHECK(f.engine.job_count() == 1);
    CHECK(f.engine.jobs_disposing() == 0);
    CHECK(f.engine.payload_bytes() == std::string("fresh").size());
    f.advance(5'000);  // the dropped delay ends: nothing of it comes
    CHECK(f.take() == fresh);
    CHECK(f.take() == 0);
    CHECK(check_engine_invariants(f.engine) == "");
  }

  TEST_CASE("PURGE, then DROP of the same queue, both freed after: the queue outlives every job") {
    // Run under ASan (make asan), a queue freed before the PURGE's jobs
    // that point at it would show here.
    Fixture f;
    f.put_n(20);
    REQUIRE(f.engine.purge("q").value() == 20);
    f.put_n(5);
    REQUIRE(f.engine.drop("q").ok());
    CHECK(f.engine.jobs_disposing() == 25);
    CHECK(f.engine.job_count() == 0);
    while (f.engine.dispose_some(3)) {
    }
    CHECK(f.engine.payload_bytes() == 0);
    CHECK(check_engine_invariants(f.engine) == "");
  }

  TEST_CASE(
      "limits.max_jobs counts the jobs in queues: a full server takes jobs again right after a "
      "PURGE") {
    ManualClock clock;
    EngineLimits limits;
    limits.max_jobs = 10;
    Engine engine(clock, limits, QueueSettings{});
    REQUIRE(engine.create_queue("q").ok());
    for (int i = 0; i < 10; ++i) REQUIRE(engine.enqueue("q", "x").ok());
    CHECK(engine.enqueue("q", "x").error().code == Errc::kFull);
    REQUIRE(engine.purge("q").value() == 10);
    REQUIRE(engine.disposing());
    CHECK(engine.enqueue("q", "x").ok());
  }

  TEST_CASE("a queue with message groups is purged at once") {
    // Removing a grouped job may release the next of its group: those
    // removals are made one at a time, then and there.
    Fixture f;
    f.put("a", {.group = "g"});
    f.put("b", {.group = "g"});
    f.put("plain");
    REQUIRE(f.engine.purge("q").value() == 3);
    CHECK_FALSE(f.engine.disposing());
    CHECK(f.engine.payload_bytes() == 0);
    CHECK(check_engine_invariants(f.engine) == "");
  }
}

}  // namespace engine_disposal_test
