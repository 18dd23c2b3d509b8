#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "server/engine/engine.h"

namespace engine_test {

using namespace tq::engine;

namespace {

struct Fixture {
  ManualClock clock;
  QueueSettings defaults{.ack_timeout_ms = 30'000};
  Engine engine{clock, EngineLimits{}, defaults};

  Fixture() { REQUIRE(engine.create_queue("emails").ok()); }

  uint64_t put(const std::string& payload, const std::string& queue = "emails") {
    auto id = engine.enqueue(queue, payload);
    REQUIRE(id.ok());
    return id.value().id;
  }

  // Dequeues and returns the payload, or "" when empty.
  std::string take(const std::string& queue = "emails") {
    auto job = engine.dequeue(queue);
    if (!job.ok()) return "";
    return std::string(job.value()->payload());
  }
};

}  // namespace

TEST_SUITE("engine") {
  TEST_CASE("jobs come out in FIFO order with unique, growing ids") {
    Fixture f;
    uint64_t a = f.put("a"), b = f.put("b"), c = f.put("c");
    CHECK(a < b);
    CHECK(b < c);
    CHECK(f.take() == "a");
    CHECK(f.take() == "b");
    CHECK(f.take() == "c");
    auto empty = f.engine.dequeue("emails");
    REQUIRE_FALSE(empty.ok());
    CHECK(empty.error().code == Errc::kEmpty);
  }

  TEST_CASE("dequeue leases - ack deletes - a second ack is NOTFOUND") {
    Fixture f;
    uint64_t id = f.put("hello");
    auto job = f.engine.dequeue("emails");
    REQUIRE(job.ok());
    CHECK(job.value()->id == id);
    CHECK(job.value()->state == JobState::kLeased);
    CHECK(job.value()->attempts == 1);
    CHECK(f.engine.count_in(JobState::kLeased) == 1);
    CHECK(f.engine.ack(id).ok());
    CHECK(f.engine.job_count() == 0);
    auto again = f.engine.ack(id);
    REQUIRE_FALSE(again.ok());
    CHECK(again.error().code == Errc::kNotFound);
    CHECK(f.engine.counters().acked == 1);
    CHECK(f.engine.find_queue("emails")->counters.acked == 1);
  }

  TEST_CASE("ack of an unknown id, or in the wrong queue, is NOTFOUND") {
    Fixture f;
    REQUIRE(f.engine.create_queue("other").ok());
    CHECK(f.engine.ack(999).error().code == Errc::kNotFound);
    uint64_t id = f.put("x");
    REQUIRE(f.engine.dequeue("emails").ok());
    CHECK(f.engine.ack(id, "other").error().code == Errc::kNotFound);
    CHECK(f.engine.ack(id, "emails").ok());
  }

  TEST_CASE("a ready job cannot be acked") {
    Fixture f;
    uint64_t id = f.put("x");
    CHECK(f.engine.ack(id).error().code == Errc::kNotLeased);
  }

  TEST_CASE("an expired lease puts the job back at its original place") {
    Fixture f;
    uint64_t first = f.put("first");
    f.put("second");
    REQUIRE(f.engine.dequeue("emails").ok());  // leases "first"
    f.put("third");
    CHECK(f.engine.next_deadline_ms() == f.clock.now_ms() + 30'000);

    f.clock.advance_ms(29'999);
    CHECK(f.engine.expire_due() == 0);
    f.clock.advance_ms(1);
    CHECK(f.engine.expire_due() == 1);
    CHECK(f.engine.next_deadline_ms() == INT64_MAX);
    CHECK(f.engine.counters().timed_out == 1);
    CHECK(f.engine.find_queue("emails")->counters.timed_out == 1);

    // Ahead of jobs enqueued after it: FIFO by id.
    auto again = f.engine.dequeue("emails");
    REQUIRE(again.ok());
    CHECK(again.value()->id == first);
    CHECK(again.value()->attempts == 2);
    CHECK(f.take() == "second");
    CHECK(f.take() == "third");
  }

  TEST_CASE("an ack after the lease expired is NOTLEASED and the job stays") {
    Fixture f;
    uint64_t id = f.put("x");
    REQUIRE(f.engine.dequeue("emails").ok());
    f.clock.advance_ms(30'000);
    f.engine.expire_due();
    auto late = f.engine.ack(id);
    REQUIRE_FALSE(late.ok());
    CHECK(late.error().code == Errc::kNotLeased);
    CHECK(f.engine.job_count() == 1);
  }

  TEST_CASE("leases expire in deadline order across queues") {
    Fixture f;
    REQUIRE(f.engine.create_queue("other").ok());
    f.put("a");
    f.put("b", "other");
    REQUIRE(f.engine.dequeue("emails").ok());
    f.clock.advance_ms(10'000);
    REQUIRE(f.engine.dequeue("other").ok());
    CHECK(f.engine.next_deadline_ms() == f.clock.now_ms() + 20'000);
    f.clock.advance_ms(20'000);
    CHECK(f.engine.expire_due() == 1);
    CHECK(f.engine.find_queue("emails")->ready.size() == 1);
    CHECK(f.engine.find_queue("other")->leased.size() == 1);
    CHECK(f.engine.next_deadline_ms() == f.clock.now_ms() + 10'000);
    f.clock.advance_ms(10'000);
    CHECK(f.engine.expire_due() == 1);
    CHECK(f.engine.count_in(JobState::kLeased) == 0);
  }

  TEST_CASE("acking the earliest lease moves the next deadline") {
    Fixture f;
    uint64_t a = f.put("a");
    f.put("b");
    REQUIRE(f.engine.dequeue("emails").ok());
    f.clock.advance_ms(5'000);
    REQUIRE(f.engine.dequeue("emails").ok());
    CHECK(f.engine.ack(a).ok());
    CHECK(f.engine.next_deadline_ms() == f.clock.now_ms() + 30'000);
  }

  TEST_CASE("queue creation: names, duplicates, limits") {
    ManualClock clock;
    Engine engine(clock, EngineLimits{.auto_create_queues = false, .max_queues = 2}, {});
    CHECK(engine.create_queue("a.b_c:d-1").ok());
    CHECK(engine.create_queue("a.b_c:d-1").error().code == Errc::kExists);
    CHECK(engine.create_queue("").error().code == Errc::kBadArgument);
    CHECK(engine.create_queue("12345").error().code == Errc::kBadArgument);
    CHECK(engine.create_queue("has space").error().code == Errc::kBadArgument);
    CHECK(engine.create_queue(std::string(201, 'q')).error().code == Errc::kBadArgument);
    CHECK(engine.create_queue(std::string(200, 'q')).ok());
    CHECK(engine.create_queue("third").error().code == Errc::kLimit);
    CHECK(engine.create_queue("third").error().message ==
          "cannot create 'third': the server is at its limit of 2 queues (limits.max_queues)");
    Engine one(clock, EngineLimits{.auto_create_queues = false, .max_queues = 1}, {});
    CHECK(one.create_queue("a").ok());
    CHECK(one.create_queue("b").error().message ==
          "cannot create 'b': the server is at its limit of 1 queue (limits.max_queues)");
  }

  TEST_CASE("a name found just before its queue was dropped finds the new queue of that name") {
    // find_queue checks the queue it found last first: a drop must not
    // leave that pointing at the freed queue.
    Fixture f;
    f.put("old");
    REQUIRE(f.engine.find_queue("emails") != nullptr);
    REQUIRE(f.engine.drop("emails").ok());
    CHECK(f.engine.find_queue("emails") == nullptr);
    CHECK(f.engine.enqueue("emails", "new").error().code == Errc::kNoQueue);
    REQUIRE(f.engine.create_queue("emails").ok());
    const Queue* again = f.engine.find_queue("emails");
    REQUIRE(again != nullptr);
    CHECK(again->counters.enqueued == 0);
    f.put("new");
    CHECK(f.take() == "new");
    // Two queues asked for in turn: each finds its own.
    REQUIRE(f.engine.create_queue("other").ok());
    f.put("x", "other");
    CHECK(f.engine.find_queue("emails")->name == "emails");
    CHECK(f.engine.find_queue("other")->name == "other");
    CHECK(f.take("other") == "x");
    CHECK(f.take("emails").empty());
  }

  TEST_CASE("without auto-create, an unknown queue is NOQUEUE with a hint") {
    Fixture f;
    auto r = f.engine.enqueue("emials", "x");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == Errc::kNoQueue);
    CHECK(r.error().message == "queue 'emials' does not exist; CREATE it first");
    CHECK(f.engine.dequeue("emials").error().code == Errc::kNoQueue);
  }

  TEST_CASE("with auto-create, ENQUEUE creates the queue") {
    ManualClock clock;
    Engine engine(clock, EngineLimits{.auto_create_queues = true, .max_queues = 10}, {});
    CHECK(engine.enqueue("fresh", "x").ok());
    CHECK(engine.find_queue("fresh") != nullptr);
    CHECK(engine.enqueue("bad name", "x").error().code == Errc::kBadArgument);
  }

  TEST_CASE("a PUT refused for its options or a limit leaves no queue auto_create made") {
    // Found in review: the queue was made first, and stayed (in the log,
    // and counted in max_queues) though the job was refused.
    ManualClock clock;
    clock.set_ms(1'000'000);
    QueueSettings defaults;
    defaults.delay_ms = 5'000;
    Engine engine(
        clock,
        EngineLimits{
            .auto_create_queues = true, .max_queues = 10, .max_jobs = 1, .max_payload_total = 1000},
        defaults);
    auto refused = [&](std::string_view payload, EnqueueOptions options) {
      auto r = engine.enqueue("new", payload, options);
      return r.ok() ? Errc{} : r.error().code;
    };
    CHECK(refused("x", {.delay_ms = 2'000, .own_time = true, .ttl_ms = 1'000}) ==
          Errc::kBadArgument);
    CHECK(refused("x", {.ttl_ms = 1'000}) == Errc::kBadArgument);  // the default delay
    CHECK(refused("x", {.run_at_ms = 9'000'000, .own_time = true, .ttl_ms = 60'000}) ==
          Errc::kBadArgument);
    CHECK(refused(std::string(2000, 'x'), {}) == Errc::kFull);  // over max_payload_total
    CHECK(engine.find_queue("new") == nullptr);
    CHECK(engine.queues().empty());
    REQUIRE(engine.enqueue("new", "x", {.ttl_ms = 6'000}).ok());  // a good one makes it
    CHECK(engine.find_queue("new") != nullptr);
    // Refused for the server's limit of jobs, no other queue is made either.
    CHECK(engine.enqueue("other", "x").error().code == Errc::kFull);
    CHECK(engine.find_queue("other") == nullptr);
  }

  TEST_CASE("expire_due does at most its budget per call and leaves the rest due") {
    Fixture f;
    for (int i = 0; i < 25; ++i) f.put("job " + std::to_string(i));
    for (int i = 0; i < 25; ++i) REQUIRE(f.engine.dequeue("emails").ok());
    f.clock.advance_ms(60'000);  // every lease has run out
    CHECK(f.engine.expire_due(10) == 10);
    CHECK(f.engine.next_deadline_ms() <= f.clock.now_ms());  // more is due
    CHECK(f.engine.expire_due(10) == 10);
    CHECK(f.engine.expire_due(10) == 5);
    CHECK(f.engine.next_deadline_ms() > f.clock.now_ms());
    CHECK(f.engine.expire_due(10) == 0);
    const Queue* q = f.engine.find_queue("emails");
    CHECK(q->leased.size() == 0);
    CHECK(q->ready.size() + q->delayed.size() == 25);
    CHECK(f.engine.counters().timed_out == 25);
  }

  TEST_CASE("forgetting old dedup keys counts against the same budget") {
    Fixture f;
    for (int i = 0; i < 25; ++i) {
      const std::string key = "k" + std::to_string(i);
      EnqueueOptions options;
      options.key = key;
      REQUIRE(f.engine.enqueue("emails", "x", options).ok());
    }
    const Queue* q = f.engine.find_queue("emails");
    REQUIRE(q->dedup.size() == 25);
    f.clock.advance_ms(q->settings.dedup_window_ms + 1);
    CHECK(f.engine.expire_due(10) == 0);  // no job changed state
    CHECK(q->dedup.size() == 15);
    f.engine.expire_due(10);
    f.engine.expire_due(10);
    CHECK(q->dedup.empty());
    CHECK(f.engine.next_deadline_ms() == INT64_MAX);
  }

  TEST_CASE("many jobs, random acks and expiries keep the counts consistent") {
    Fixture f;
    std::vector<uint64_t> leased;
    for (int i = 0; i < 1000; ++i) f.put("job " + std::to_string(i));
    for (int i = 0; i < 600; ++i) {
      auto job = f.engine.dequeue("emails");
      REQUIRE(job.ok());
      leased.push_back(job.value()->id);
      if (i % 100 == 0) f.clock.advance_ms(1'000);
    }
    for (size_t i = 0; i < leased.size(); i += 2) REQUIRE(f.engine.ack(leased[i]).ok());
    f.clock.advance_ms(60'000);
    CHECK(f.engine.expire_due() == 300);
    const Queue* q = f.engine.find_queue("emails");
    CHECK(q->ready.size() == 700);
    CHECK(q->leased.size() == 0);
    CHECK(f.engine.job_count() == 700);
    // The 300 that expired come back first, in id order, then the 400 never taken.
    uint64_t previous = 0;
    for (int i = 0; i < 700; ++i) {
      auto job = f.engine.dequeue("emails");
      REQUIRE(job.ok());
      CHECK(job.value()->id > previous);
      previous = job.value()->id;
    }
  }

  TEST_CASE("replay: a queue named again under a new number replaces the one whose DROP was lost") {
    // CREATE a, ENQUEUE, DROP a, CREATE a, ENQUEUE - with the DROP record
    // skipped by --wal-recover. Adding the second "a" used to fail silently
    // and leave queue 2 pointing at freed memory.
    ManualClock clock;
    Engine engine(clock, EngineLimits{}, {});
    auto job = [](uint64_t id, uint32_t queue, std::string_view payload) {
      JobSnapshot snap;
      snap.id = id;
      snap.queue_number = queue;
      snap.payload = payload;
      return snap;
    };
    Queue* first = engine.restore_queue(1, "a", {}, false);
    REQUIRE(first != nullptr);
    engine.restore_job(job(1, 1, "old"));

    Queue* again = engine.restore_queue(2, "a", {}, false);
    REQUIRE(again != nullptr);
    CHECK(again->number == 2);
    CHECK(engine.find_queue("a") == again);
    CHECK(engine.find_queue_by_number(2) == again);
    CHECK(engine.find_queue_by_number(1) == nullptr);
    CHECK(engine.job_count() == 0);  // dropped with its queue, as DROP does
    CHECK(engine.find_job(1) == nullptr);

    engine.restore_job(job(2, 2, "new"));
    CHECK(again->ready.size() == 1);
    CHECK(engine.queues().size() == 1);
  }

  TEST_CASE("replay: jobs whose QUEUE record is lost are kept in a queue with a real name") {
    ManualClock clock;
    Engine engine(clock, EngineLimits{}, {});
    REQUIRE(engine.restore_queue(1, "recovered-7", {}, false) != nullptr);  // taken already
    JobSnapshot snap;
    snap.id = 1;
    snap.queue_number = 7;  // no QUEUE record for it
    snap.payload = "orphan";
    engine.restore_job(snap);
    auto orphans = engine.placeholder_queues();
    REQUIRE(orphans.size() == 1);
    CHECK_FALSE(Engine::valid_queue_name(orphans[0]->name));  // no record may name it
    CHECK(engine.recovered_name(*orphans[0]) == "recovered-7-2");

    auto named = engine.name_placeholders();
    REQUIRE(named.size() == 1);
    CHECK(named[0]->name == "recovered-7-2");
    CHECK(Engine::valid_queue_name(named[0]->name));
    CHECK(named[0]->number == 7);
    CHECK_FALSE(named[0]->placeholder);
    CHECK(engine.placeholder_queues().empty());
    CHECK(engine.find_queue("recovered-7-2") == named[0]);
    CHECK(engine.find_queue_by_number(7) == named[0]);
    auto job = engine.dequeue("recovered-7-2");
    REQUIRE(job.ok());
    CHECK((*job)->payload() == "orphan");
  }
}

}  // namespace engine_test
