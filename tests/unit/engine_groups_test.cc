// Message groups (PUT ... GROUP g), with a hand-driven clock: a queue
// delivers a group's jobs one at a time, in the order they were enqueued,
// whatever ends each one (ACK, DELETE, FAIL, a TTL, dead letters), through
// retries, KICKs, delays, PURGE and DROP.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "server/engine/engine.h"
#include "tests/unit/engine_check.h"
#include "tests/unit/engine_fixture.h"

namespace engine_groups_test {

using namespace tq::engine;

namespace {

struct Fixture : tq::testing::EngineFixture {
  uint64_t put_in(const std::string& group, const std::string& payload = "x",
                  EnqueueOptions options = {}) {
    options.group = group;
    return put(payload, options);
  }
  std::vector<uint64_t> peek(PeekState state) {
    std::vector<uint64_t> ids;
    REQUIRE(engine.peek("q", state, 100, [&](const Job& j) { ids.push_back(j.id); }).ok());
    return ids;
  }
  // Every group has at most one job in the ready set, and none while one of
  // its jobs is leased; the counts of held jobs agree.
  void check_groups() {
    size_t held = 0;
    for (const auto& [name, q] : engine.queues()) {
      held += q->held.size();
      for (const auto& [group, g] : q->groups) {
        size_t ready = 0, leased = 0;
        for (uint64_t id : g.members) {
          const Job* job = engine.find_job(id);
          REQUIRE(job != nullptr);
          CHECK(engine.extras_of(*job)->group == group);
          ready += job->state == JobState::kReady;
          leased += job->state == JobState::kLeased;
        }
        CHECK(ready <= 1);
        CHECK(leased == g.leased);
        if (leased > 0) CHECK(ready == 0);
      }
    }
    CHECK(engine.count_in(JobState::kHeld) == held);
  }
};

}  // namespace

TEST_SUITE("engine_groups") {
  TEST_CASE("a group's jobs go one at a time, in order, beside other groups and ungrouped jobs") {
    Fixture f;
    uint64_t a1 = f.put_in("A"), a2 = f.put_in("A"), b1 = f.put_in("B");
    uint64_t plain = f.put("no group");
    uint64_t a3 = f.put_in("A");
    CHECK(f.queue().ready.size() == 3);
    CHECK(f.queue().held.size() == 2);
    CHECK(f.engine.find_job(a2)->state == JobState::kHeld);
    CHECK(f.take_many(10) == std::vector<uint64_t>{a1, b1, plain});
    f.check_groups();
    CHECK(f.empty_reason() ==
          "queue 'q' has no ready job: 2 held, each behind another job of its group");
    const uint64_t later = f.put("later", {.delay_ms = 1'500});
    CHECK(f.empty_reason() ==
          "queue 'q' has no ready job: 2 held, each behind another job of its group; 1 delayed, "
          "the next ready in 1500ms");
    REQUIRE(f.engine.remove(later).ok());
    REQUIRE(f.engine.ack(a1).ok());
    CHECK(f.take_many(10) == std::vector<uint64_t>{a2});
    REQUIRE(f.engine.ack(a2).ok());
    REQUIRE(f.engine.ack(b1).ok());
    CHECK(f.take_many(10) == std::vector<uint64_t>{a3});
    REQUIRE(f.engine.ack(a3).ok());
    CHECK(f.queue().groups.empty());  // a group without jobs is forgotten
    f.check_groups();
  }

  TEST_CASE("every way a job ends lets its group's next one go") {
    Fixture f;
    f.configure([](QueueSettings& s) { s.max_attempts = 1; });
    uint64_t j1 = f.put_in("g"), j2 = f.put_in("g"), j3 = f.put_in("g"), j4 = f.put_in("g");
    uint64_t j5 = f.put_in("g", "x", EnqueueOptions{.ttl_ms = 50});
    uint64_t j6 = f.put_in("g");
    CHECK(f.take() == j1);
    REQUIRE(f.engine.fail(j1, "broken").ok());  // dead letters
    CHECK(f.take() == j2);
    REQUIRE(f.engine.remove(j2).ok());  // DELETE while leased
    CHECK(f.take() == j3);
    f.advance(f.queue().settings.ack_timeout_ms);  // out of attempts: dead
    CHECK(f.engine.find_job(j3)->state == JobState::kDead);
    REQUIRE(f.engine.remove(j4).ok());  // DELETE of the ready one
    // j5's TTL ran out while it waited behind j3: gone, and j6 is next.
    CHECK(f.engine.find_job(j5) == nullptr);
    CHECK(f.take() == j6);
    f.check_groups();
  }

  TEST_CASE("a retry keeps its group waiting: NACK, a lease that runs out, backoff") {
    Fixture f;
    f.configure([](QueueSettings& s) { s.backoff_base_ms = 100; });
    uint64_t j1 = f.put_in("g"), j2 = f.put_in("g");
    CHECK(f.take() == j1);
    REQUIRE(f.engine.nack(j1, int64_t{0}).ok());
    CHECK(f.take() == j1);  // straight back, still first
    REQUIRE(f.engine.nack(j1, std::nullopt).ok());  // the queue's backoff: delayed
    CHECK(f.engine.find_job(j1)->state == JobState::kDelayed);
    CHECK(f.engine.find_job(j2)->state == JobState::kHeld);
    CHECK(f.take() == 0);
    f.advance(200);  // 100 ms, doubled for the second attempt
    CHECK(f.take() == j1);
    f.advance(f.queue().settings.ack_timeout_ms);  // the lease runs out, then backoff
    CHECK(f.take() == 0);
    f.advance(400);
    CHECK(f.take() == j1);
    REQUIRE(f.engine.ack(j1).ok());
    CHECK(f.take() == j2);
    f.check_groups();
  }

  TEST_CASE("within a group, order beats priority - a group's first job competes by its own priority") {
    Fixture f;
    uint64_t low = f.put_in("g", "x", EnqueueOptions{.priority = 0});
    uint64_t high = f.put_in("g", "x", EnqueueOptions{.priority = 10});
    uint64_t mid = f.put("x", EnqueueOptions{.priority = 5});
    CHECK(f.peek(PeekState::kReady) == std::vector<uint64_t>{mid, low});
    CHECK(f.peek(PeekState::kHeld) == std::vector<uint64_t>{high});
    CHECK(f.take() == mid);
    CHECK(f.take() == low);
    REQUIRE(f.engine.ack(low).ok());
    CHECK(f.take() == high);
  }

  TEST_CASE("a KICKed job goes back to its old place in its group, after the one leased now") {
    Fixture f;
    uint64_t j1 = f.put_in("g"), j2 = f.put_in("g"), j3 = f.put_in("g");
    CHECK(f.take() == j1);
    REQUIRE(f.engine.fail(j1, "flaky").ok());
    CHECK(f.take() == j2);
    REQUIRE(f.engine.kick_job(j1).ok());
    CHECK(f.engine.find_job(j1)->state == JobState::kHeld);  // j2 is still leased
    CHECK(f.peek(PeekState::kHeld) == std::vector<uint64_t>{j1, j3});
    f.check_groups();
    REQUIRE(f.engine.ack(j2).ok());
    CHECK(f.take() == j1);  // before j3: it was enqueued first
    REQUIRE(f.engine.ack(j1).ok());
    CHECK(f.take() == j3);
  }

  TEST_CASE("a KICKed job waits while the job leased then is retried") {
    Fixture f;
    f.configure([](QueueSettings& s) { s.backoff_base_ms = 100; });
    uint64_t j1 = f.put_in("g"), j2 = f.put_in("g"), j3 = f.put_in("g");
    CHECK(f.take() == j1);
    REQUIRE(f.engine.fail(j1, "flaky").ok());
    CHECK(f.take() == j2);
    REQUIRE(f.engine.kick_job(j1).ok());
    REQUIRE(f.engine.nack(j2, int64_t{0}).ok());
    CHECK(f.peek(PeekState::kReady) == std::vector<uint64_t>{j2});  // still its group's next
    CHECK(f.peek(PeekState::kHeld) == std::vector<uint64_t>{j1, j3});
    CHECK(f.take() == j2);
    f.advance(f.queue().settings.ack_timeout_ms);  // runs out: backoff, the group waits
    CHECK(f.engine.find_job(j2)->state == JobState::kDelayed);
    CHECK(f.take() == 0);
    f.advance(200);
    CHECK(f.take() == j2);
    f.check_groups();
    REQUIRE(f.engine.ack(j2).ok());  // finished: the KICKed job goes, at its old place
    CHECK(f.take() == j1);
    REQUIRE(f.engine.ack(j1).ok());
    CHECK(f.take() == j3);
  }

  TEST_CASE("a KICK of an earlier job takes the ready place of a later one") {
    Fixture f;
    uint64_t j1 = f.put_in("g"), j2 = f.put_in("g");
    CHECK(f.take() == j1);
    REQUIRE(f.engine.fail(j1, "flaky").ok());
    CHECK(f.engine.find_job(j2)->state == JobState::kReady);
    REQUIRE(f.engine.kick(std::string_view("q"), 10).ok());
    CHECK(f.engine.find_job(j1)->state == JobState::kReady);
    CHECK(f.engine.find_job(j2)->state == JobState::kHeld);
    f.check_groups();
    CHECK(f.take_many(10) == std::vector<uint64_t>{j1});
  }

  TEST_CASE("a delayed job holds the jobs after it in its group") {
    Fixture f;
    uint64_t later = f.put_in("g", "x", EnqueueOptions{.delay_ms = 1'000});
    uint64_t now = f.put_in("g");
    uint64_t other = f.put_in("h");
    CHECK(f.take_many(10) == std::vector<uint64_t>{other});
    CHECK(f.engine.find_job(now)->state == JobState::kHeld);
    f.advance(1'000);
    CHECK(f.take_many(10) == std::vector<uint64_t>{later});
    REQUIRE(f.engine.ack(later).ok());
    CHECK(f.take() == now);
  }

  TEST_CASE("a waiting worker is signalled when a group's next job is let go") {
    Fixture f;
    uint64_t j1 = f.put_in("g");
    f.put_in("g");
    CHECK(f.take() == j1);
    f.engine.add_waiter(&f.queue());
    f.engine.take_ready_signals();
    f.put_in("g");  // held: nothing for the waiter
    CHECK_FALSE(f.signalled());
    REQUIRE(f.engine.ack(j1).ok());
    CHECK(f.signalled());
    f.engine.remove_waiter(&f.queue());
  }

  TEST_CASE("PURGE takes held jobs too, and DROP takes a queue with groups") {
    Fixture f;
    uint64_t j1 = f.put_in("g");
    f.put_in("g");
    f.put_in("g");
    f.put_in("h");
    CHECK(f.take() == j1);
    auto purged = f.engine.purge("q");
    REQUIRE(purged.ok());
    CHECK(purged.value() == 3);
    CHECK(f.queue().held.empty());
    CHECK(f.queue().ready.empty());
    CHECK(f.queue().groups.size() == 1);  // g: its leased job
    f.check_groups();
    f.put_in("g");
    CHECK(f.engine.count_in(JobState::kHeld) == 1);
    REQUIRE(f.engine.drop("q").ok());
    CHECK(f.engine.job_count() == 0);
    CHECK(f.engine.count_in(JobState::kHeld) == 0);
    CHECK(f.engine.count_in(JobState::kLeased) == 0);
  }

  TEST_CASE("held jobs count against max_size, and a group name is checked like a key") {
    Fixture f;
    f.configure([](QueueSettings& s) { s.max_size = 2; });
    f.put_in("g");
    f.put_in("g");
    auto full = f.engine.enqueue("q", "x", EnqueueOptions{.group = "h"});
    REQUIRE_FALSE(full.ok());
    CHECK(full.error().code == Errc::kFull);
    auto bad = f.engine.enqueue("q", "x", EnqueueOptions{.group = "a b"});
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().code == Errc::kBadArgument);
    CHECK(bad.error().message == "a group name is 1-200 printable characters without spaces");
  }

  TEST_CASE("a NACK with a new priority keeps the job first in its group") {
    Fixture f;
    uint64_t j1 = f.put_in("g"), j2 = f.put_in("g");
    uint64_t plain = f.put("x", EnqueueOptions{.priority = 3});
    CHECK(f.take() == plain);
    CHECK(f.take() == j1);
    REQUIRE(f.engine.nack(j1, int64_t{0}, int32_t{7}).ok());
    CHECK(f.peek(PeekState::kReady) == std::vector<uint64_t>{j1});
    CHECK(f.peek(PeekState::kHeld) == std::vector<uint64_t>{j2});
    f.check_groups();
  }

  TEST_CASE("DROP of a queue with grouped jobs in every state leaves nothing behind") {
    // DROP forgets the groups first, and the jobs are freed later, in steps
    // (disposal.h): a held job's group, named in its extras, has no entry
    // left to settle, and nothing of the queue may stay.
    Fixture f;
    f.configure([](QueueSettings& s) { s.max_attempts = 10; });
    const uint64_t leased = f.put_in("g", "leased");
    f.put_in("g", "held", {.ttl_ms = 60'000});
    f.put_in("g", "held too", {.priority = 2});
    f.put_in("h", "ready", {.ttl_ms = 60'000});
    f.put_in("h", "held behind it");
    f.put_in("d", "delayed", {.delay_ms = 5'000, .ttl_ms = 60'000});
    f.put_in("d", "held behind the delay");
    f.put("no group");
    CHECK(f.take() == leased);
    REQUIRE(f.engine.count_in(JobState::kHeld) == 4);
    REQUIRE(f.engine.count_in(JobState::kDelayed) == 1);
    f.check_groups();
    REQUIRE(f.engine.drop("q").ok());
    CHECK(tq::testing::check_engine_invariants(f.engine) == "");
    CHECK(f.engine.job_count() == 0);
    for (JobState st : {JobState::kReady, JobState::kHeld, JobState::kDelayed, JobState::kLeased,
                        JobState::kDead}) {
      CHECK(f.engine.count_in(st) == 0);
    }
    CHECK(f.engine.jobs_disposing() == 8);
    CHECK(f.engine.find_job(leased) == nullptr);
    f.engine.finish_disposals();
    CHECK(f.engine.jobs_disposing() == 0);
    CHECK(f.engine.payload_bytes() == 0);
    // The lease's late ACK finds nothing; nothing comes due.
    CHECK_FALSE(f.engine.ack(leased).ok());
    f.advance(120'000);
    CHECK(f.engine.job_count() == 0);
    // A queue of that name again starts its groups afresh.
    REQUIRE(f.engine.create_queue("q").ok());
    const uint64_t first = f.put_in("g");
    f.put_in("g");
    CHECK(f.take() == first);
    CHECK(f.take() == 0);
    f.check_groups();
    CHECK(tq::testing::check_engine_invariants(f.engine) == "");
  }
}

}  // namespace engine_groups_test
