// Every job-lifecycle rule of the engine, with a hand-driven clock:
// priorities, delays, backoff, attempts and dead letters, TTLs, dedup
// windows, leases extended by TOUCH, pause, purge, multi-queue delivery.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "server/engine/engine.h"
#include "tests/unit/engine_check.h"
#include "tests/unit/engine_fixture.h"

namespace engine_lifecycle_test {

using namespace tq::engine;

using tq::testing::check_engine_invariants;
using Fixture = tq::testing::EngineFixture;

TEST_SUITE("engine_lifecycle") {
  TEST_CASE("higher priority first, FIFO among equals") {
    Fixture f;
    f.put("low", {.priority = -1});
    f.put("a0");
    f.put("high", {.priority = 10});
    f.put("b0");
    f.put("mid", {.priority = 5});
    std::vector<std::string> order;
    for (int i = 0; i < 5; ++i) order.push_back(f.take_payload());
    CHECK(order == std::vector<std::string>{"high", "mid", "a0", "b0", "low"});
  }

  TEST_CASE("a delayed job becomes ready when its time comes, then in id order") {
    Fixture f;
    uint64_t late = f.put("late", {.delay_ms = 5'000});
    uint64_t at = f.put("at", {.run_at_ms = f.clock.now_ms() + 2'000});
    CHECK(f.take() == 0);
    CHECK(f.queue().delayed.size() == 2);
    CHECK(f.engine.next_deadline_ms() == f.clock.now_ms() + 2'000);
    f.advance(1'999);
    CHECK(f.take() == 0);
    f.advance(1);
    CHECK(f.take() == at);
    f.advance(3'000);
    CHECK(f.take() == late);
  }

  TEST_CASE("backoff: each retry waits base x factor^(attempt-1), capped") {
    Fixture f;
    f.configure([](QueueSettings& s) {
      s.ack_timeout_ms = 1'000;
      s.backoff_base_ms = 100;
      s.backoff_factor = 3;
      s.backoff_max_ms = 500;
    });
    uint64_t id = f.put("job");
    std::vector<int64_t> waits;
    for (int attempt = 1; attempt <= 4; ++attempt) {
      REQUIRE(f.take() == id);
      f.advance(1'000);  // the lease runs out
      REQUIRE(f.queue().delayed.size() == 1);
      int64_t ready_at = f.queue().delayed.top()->deadline_ms;
      waits.push_back(ready_at - f.clock.now_ms());
      f.advance(ready_at - f.clock.now_ms());
      REQUIRE(f.queue().ready.size() == 1);
    }
    CHECK(waits == std::vector<int64_t>{100, 300, 500, 500});
    CHECK(f.engine.find_job(id)->attempts == 4);
  }

  TEST_CASE("backoff jitter stays within +- the fraction") {
    Fixture f;
    f.configure([](QueueSettings& s) {
      s.backoff_base_ms = 10'000;
      s.backoff_jitter = 0.2;
    });
    for (int i = 0; i < 50; ++i) {
      uint64_t id = f.put("j");
      REQUIRE(f.take() == id);
      REQUIRE(f.engine.nack(id, std::nullopt).value() == Requeue::kDelayed);
      int64_t wait = f.engine.find_job(id)->deadline_ms - f.clock.now_ms();
      CHECK(wait >= 8'000);
      CHECK(wait <= 12'000);
      REQUIRE(f.engine.remove(id).ok());
    }
  }

  TEST_CASE("out of attempts: a lease that runs out sends the job to dead letters with the reason") {
    Fixture f;
    f.configure([](QueueSettings& s) {
      s.ack_timeout_ms = 1'000;
      s.max_attempts = 2;
    });
    uint64_t id = f.put("poison");
    REQUIRE(f.take() == id);
    f.advance(1'000);
    REQUIRE(f.take() == id);
    f.advance(1'000);
    CHECK(f.take() == 0);
    const Job* job = f.engine.find_job(id);
    REQUIRE(job != nullptr);
    CHECK(job->state == JobState::kDead);
    CHECK(f.engine.extras_of(*job)->reason == "lease expired after 2 attempts");
    CHECK(f.queue().counters.dead == 1);
    CHECK(f.queue().counters.timed_out == 2);
  }

  TEST_CASE("a job's own ATTEMPTS overrides the queue's") {
    Fixture f;
    f.configure([](QueueSettings& s) { s.max_attempts = 10; });
    uint64_t id = f.put("once", {.max_attempts = 1});
    REQUIRE(f.take() == id);
    CHECK(f.engine.nack(id, std::nullopt).value() == Requeue::kDead);
    CHECK(f.engine.extras_of(*f.engine.find_job(id))->reason == "nacked after 1 attempt");
  }

  TEST_CASE("NACK gives a job back now, later, or to dead letters") {
    Fixture f;
    uint64_t id = f.put("x");
    REQUIRE(f.take() == id);
    CHECK(f.engine.nack(id, std::nullopt).value() == Requeue::kReady);
    REQUIRE(f.take() == id);
    CHECK(f.engine.nack(id, 5'000).value() == Requeue::kDelayed);
    CHECK(f.take() == 0);
    f.advance(5'000);
    CHECK(f.take() == id);
    CHECK(f.engine.find_job(id)->attempts == 3);
    CHECK(f.queue().counters.nacked == 2);
    CHECK(f.engine.nack(999, std::nullopt).error().code == Errc::kNotFound);
    uint64_t ready = f.put("y");
    CHECK(f.engine.nack(ready, std::nullopt).error().code == Errc::kNotLeased);
  }

  TEST_CASE("FAIL sends a leased job straight to dead letters - KICK gives it a fresh start") {
    Fixture f;
    uint64_t id = f.put("x");
    REQUIRE(f.take() == id);
    REQUIRE(f.engine.fail(id, "bad input").ok());
    CHECK(f.engine.find_job(id)->state == JobState::kDead);
    CHECK(f.engine.extras_of(*f.engine.find_job(id))->reason == "failed: bad input");
    CHECK(f.take() == 0);
    CHECK(f.engine.kick("q", 10).value() == 1);
    CHECK(f.engine.find_job(id)->attempts == 0);
    CHECK(f.take() == id);
    CHECK(f.queue().counters.kicked == 1);
  }

  TEST_CASE(
      "a queue's dead_letter_queue: a job that dies moves there, ready, with why and from where") {
    Fixture f;
    REQUIRE(f.engine.create_queue("dlq").ok());
    f.configure([](QueueSettings& s) {
      s.dead_letter_queue = "dlq";
      s.max_attempts = 1;
      s.ack_timeout_ms = 1'000;
      s.ttl_dead_letter = true;
    });
    f.configure([](QueueSettings& s) { s.ttl_ms = 60'000; }, "dlq");
    // FAIL, NACK out of attempts, a lease that ran out, a TTL: each moves it.
    const uint64_t failed = f.put("failed", {.max_attempts = 5});
    REQUIRE(f.take() == failed);
    const uint64_t delivery = f.engine.find_job(failed)->delivery();
    REQUIRE(f.engine.fail(failed, "bad input").ok());
    const uint64_t nacked = f.put("nacked");
    REQUIRE(f.take() == nacked);
    CHECK(f.engine.nack(nacked, std::nullopt).value() == Requeue::kDead);
    const uint64_t timed_out = f.put("timed out");
    REQUIRE(f.take() == timed_out);
    f.advance(1'000);
    const uint64_t expired = f.put("expired", {.ttl_ms = 500});
    f.advance(500);

    CHECK(f.queue().job_count() == 0);
    CHECK(f.queue().counters.dead == 4);
    CHECK(f.queue().counters.dead_forwarded == 4);
    CHECK(f.queue("dlq").ready.size() == 4);
    const Job* job = f.engine.find_job(failed);
    REQUIRE(job != nullptr);
    CHECK(job->queue == &f.queue("dlq"));
    CHECK(job->state == JobState::kReady);
    CHECK(job->attempts == 0);
    CHECK(job->delivery() != delivery);  // a stale ACK of the old lease cannot finish it
    const JobExtras* x = f.engine.extras_of(*job);
    CHECK(x->origin == "q");
    CHECK(x->reason == "failed: bad input");
    CHECK(x->max_attempts == 0);  // its own ATTEMPTS was the old queue's business
    CHECK(x->expires_at_ms == f.clock.now_ms() - 1'500 + 60'000);  // the dead-letter queue's ttl
    CHECK(f.engine.extras_of(*f.engine.find_job(nacked))->reason == "nacked after 1 attempt");
    CHECK(f.engine.extras_of(*f.engine.find_job(timed_out))->reason ==
          "lease expired after 1 attempt");
    CHECK(f.engine.extras_of(*f.engine.find_job(expired))->reason == "ttl expired before delivery");
    // Delivered from there, and finished, like any job of that queue.
    CHECK(f.take("dlq") == failed);
    CHECK(f.engine.ack(failed).ok());
    CHECK(f.engine.find_job(failed) == nullptr);
  }

  TEST_CASE(
      "a job moves to a dead_letter_queue at most once - one that is missing or its own keeps it") {
    Fixture f;
    REQUIRE(f.engine.create_queue("a").ok());
    REQUIRE(f.engine.create_queue("b").ok());
    auto settings = [](const std::string& dlq) {
      return [dlq](QueueSettings& s) {
        s.dead_letter_queue = dlq;
        s.max_attempts = 1;
      };
    };
    f.configure(settings("b"), "a");
    f.configure(settings("a"), "b");
    f.configure(settings("q"));  // its own, as queues.defaults could make it
    auto die = [&](uint64_t id) {
      REQUIRE(f.take(f.engine.find_job(id)->queue->name) == id);
      REQUIRE(f.engine.fail(id, "again").ok());
    };
    const uint64_t looped = f.put("x", {}, "a");
    die(looped);
    CHECK(f.engine.find_job(looped)->queue->name == "b");
    die(looped);  // b would send it back to a: it stays dead in b
    CHECK(f.engine.find_job(looped)->queue->name == "b");
    CHECK(f.engine.find_job(looped)->state == JobState::kDead);
    CHECK(f.queue("b").counters.dead_forwarded == 0);
    // A KICK gives it another run in b; it never moves again.
    REQUIRE(f.engine.kick_job(looped).ok());
    CHECK(f.engine.extras_of(*f.engine.find_job(looped))->origin == "a");

    const uint64_t own = f.put("y");
    die(own);
    CHECK(f.engine.find_job(own)->state == JobState::kDead);
    CHECK(f.queue().counters.dead_forwarded == 0);

    REQUIRE(f.engine.drop("b").ok());
    const uint64_t orphan = f.put("z", {}, "a");
    die(orphan);
    CHECK(f.engine.find_job(orphan)->queue->name == "a");
    CHECK(f.engine.find_job(orphan)->state == JobState::kDead);
    CHECK(f.engine.extras_of(*f.engine.find_job(orphan))->origin.empty());
  }

  TEST_CASE("a dead-letter queue counts the jobs that arrive in it - not the ones that die there") {
    Fixture f;
    REQUIRE(f.engine.create_queue("dlq").ok());
    f.configure([](QueueSettings& s) {
      s.dead_letter_queue = "dlq";
      s.max_attempts = 1;
    });
    f.configure([](QueueSettings& s) { s.max_attempts = 1; }, "dlq");
    const uint64_t id = f.put("x");
    REQUIRE(f.take() == id);
    REQUIRE(f.engine.fail(id, "bad input").ok());
    REQUIRE(f.engine.find_job(id)->queue->name == "dlq");
    CHECK(f.queue("dlq").counters.dead_received == 1);
    CHECK(f.queue("dlq").counters.enqueued == 0);  // ENQUEUE, PUT and schedules only
    CHECK(f.queue().counters.dead_received == 0);

    // Dying again in the dead-letter queue, it stays there: dead there, not
    // received again.
    REQUIRE(f.take("dlq") == id);
    REQUIRE(f.engine.fail(id, "still bad").ok());
    REQUIRE(f.engine.find_job(id)->state == JobState::kDead);
    CHECK(f.queue("dlq").counters.dead == 1);
    CHECK(f.queue("dlq").counters.dead_received == 1);
    // Sent back by REDRIVE, it is no dead letter in its old queue.
    CHECK(f.engine.redrive("dlq", 1).value() == 1);
    CHECK(f.queue().counters.dead_received == 0);
  }

  TEST_CASE(
      "REDRIVE sends a dead-letter queue's jobs back where they died, oldest first, not leased") {
    Fixture f;
    REQUIRE(f.engine.create_queue("dlq").ok());
    REQUIRE(f.engine.create_queue("other").ok());
    f.configure([](QueueSettings& s) { s.dead_letter_queue = "dlq"; });
    f.configure([](QueueSettings& s) { s.dead_letter_queue = "dlq"; }, "other");
    f.configure([](QueueSettings& s) { s.ttl_ms = 60'000; }, "dlq");
    auto die = [&](const std::string& queue) {
      const uint64_t id = f.put("from " + queue, {}, queue);
      REQUIRE(f.take(queue) == id);
      REQUIRE(f.engine.fail(id, "x").ok());
      REQUIRE(f.engine.find_job(id)->queue->name == "dlq");
      return id;
    };
    const uint64_t ready = die("q");
    const uint64_t delayed = die("q");
    const uint64_t dead = die("q");
    const uint64_t leased = die("other");
    const uint64_t orphan = die("other");
    const uint64_t direct = f.put("put here", {}, "dlq");
    // In the dead-letter queue: one given back for later, one dead there
    // too, one leased; the rest ready.
    REQUIRE(f.take_many(4, {"dlq"}) == std::vector<uint64_t>{ready, delayed, dead, leased});
    REQUIRE(f.engine.nack(ready, std::nullopt).ok());
    REQUIRE(f.engine.nack(delayed, 5'000).ok());
    REQUIRE(f.engine.fail(dead, "still broken").ok());  // stays in dlq, dead: it moved once
    REQUIRE(f.engine.find_job(dead)->state == JobState::kDead);

    CHECK(f.engine.redrive("dlq", 1).value() == 1);  // the oldest
    CHECK(f.engine.find_job(ready)->queue->name == "q");
    REQUIRE(f.engine.drop("other").ok());                   // orphan's queue: it stays
    CHECK(f.engine.redrive("dlq", SIZE_MAX).value() == 2);  // delayed and dead
    CHECK(f.engine.find_job(delayed)->queue->name == "q");
    CHECK(f.engine.find_job(dead)->queue->name == "q");
    CHECK(f.engine.find_job(orphan)->queue->name == "dlq");
    CHECK(f.engine.find_job(leased)->queue->name == "dlq");
    CHECK(f.engine.find_job(direct)->queue->name == "dlq");

    for (uint64_t id : {delayed, dead}) {
      const Job* back = f.engine.find_job(id);
      CHECK(back->state == JobState::kReady);
      CHECK(back->attempts == 0);
      const JobExtras* x = f.engine.extras_of(*back);
      CHECK(x->origin.empty());
      CHECK(x->reason.empty());
      CHECK(x->expires_at_ms == 0);  // the dead-letter queue's ttl stayed there
    }
    CHECK(f.queue().ready.size() == 3);
    CHECK(f.queue("dlq").dead.empty());
    // Counted where they left and where they arrived, not as enqueued; the
    // ones that stayed count nowhere.
    CHECK(f.queue("dlq").counters.redriven == 3);
    CHECK(f.queue().counters.redriven_in == 3);
    CHECK(f.queue().counters.redriven == 0);
    CHECK(f.queue("dlq").counters.redriven_in == 0);
    CHECK(f.engine.counters().redriven == 3);
    CHECK(f.queue().counters.enqueued == 3);  // the three put in q at first, only
    // A fresh start: it can die, and move, again.
    REQUIRE(f.take() == ready);
    REQUIRE(f.engine.fail(ready, "again").ok());
    CHECK(f.engine.find_job(ready)->queue->name == "dlq");
    CHECK(f.engine.redrive("nope", 1).error().code == Errc::kNoQueue);
  }

  TEST_CASE("a grouped job that moves to a dead_letter_queue lets its group go on, and leaves it") {
    Fixture f;
    REQUIRE(f.engine.create_queue("dlq").ok());
    f.configure([](QueueSettings& s) { s.dead_letter_queue = "dlq"; });
    const uint64_t first = f.put("first", {.group = "g"});
    const uint64_t second = f.put("second", {.group = "g"});
    REQUIRE(f.take() == first);
    CHECK(f.take() == 0);  // second waits for first
    REQUIRE(f.engine.fail(first, "x").ok());
    CHECK(f.take() == second);
    const Job* moved = f.engine.find_job(first);
    CHECK(moved->state == JobState::kReady);
    CHECK(f.engine.extras_of(*moved)->group.empty());
    CHECK(f.take("dlq") == first);
  }

  TEST_CASE("KICK <id> of a delayed job makes it ready now, its attempts and TTL kept") {
    Fixture f;
    f.configure([](QueueSettings& s) { s.backoff_base_ms = 60'000; });
    const uint64_t later = f.put("later", {.delay_ms = 3'600'000, .ttl_ms = 7'200'000});
    const uint64_t retry = f.put("retry");
    REQUIRE(f.take() == retry);
    REQUIRE(f.engine.nack(retry, std::nullopt).value() == Requeue::kDelayed);  // backoff
    CHECK(f.take() == 0);
    REQUIRE(f.engine.kick_job(retry).ok());
    REQUIRE(f.engine.kick_job(later).ok());
    CHECK(f.take() == later);  // both ready, in id order
    CHECK(f.take() == retry);
    CHECK(f.engine.find_job(retry)->attempts == 2);  // a retry stays a retry
    CHECK(f.engine.extras_of(*f.engine.find_job(later))->expires_at_ms ==
          f.clock.now_ms() + 7'200'000);
    CHECK(f.queue().counters.kicked == 2);
    CHECK(f.engine.kick_job(later).error().code == Errc::kNotFound);  // leased now
  }

  TEST_CASE("KICK moves the longest-dead first, at most n") {
    Fixture f;
    std::vector<uint64_t> ids;
    for (int i = 0; i < 3; ++i) {
      ids.push_back(f.put("j" + std::to_string(i)));
      REQUIRE(f.take() == ids.back());
      f.clock.advance_ms(10);
      REQUIRE(f.engine.fail(ids.back(), "x").ok());
    }
    CHECK(f.engine.kick("q", 2).value() == 2);
    CHECK(f.queue().dead.size() == 1);
    CHECK(f.queue().dead.top()->id == ids[2]);
  }

  TEST_CASE("TTL: a job not delivered in time expires, and is dead-lettered if the queue says so") {
    Fixture f;
    uint64_t gone = f.put("gone", {.ttl_ms = 1'000});
    f.put("stays");
    f.advance(1'000);
    CHECK(f.engine.find_job(gone) == nullptr);
    CHECK(f.queue().counters.expired == 1);
    f.configure([](QueueSettings& s) { s.ttl_dead_letter = true; });
    uint64_t kept = f.put("kept", {.ttl_ms = 1'000});
    f.advance(1'000);
    REQUIRE(f.engine.find_job(kept) != nullptr);
    CHECK(f.engine.find_job(kept)->state == JobState::kDead);
    CHECK(f.engine.extras_of(*f.engine.find_job(kept))->reason == "ttl expired before delivery");
  }

  TEST_CASE("KICK clears a TTL - a job kicked after its TTL passed is run, not expired") {
    Fixture f;
    f.configure([](QueueSettings& s) { s.ttl_dead_letter = true; });
    uint64_t failed = f.put("failed", {.ttl_ms = 1'000});
    REQUIRE(f.take() == failed);
    REQUIRE(f.engine.fail(failed, "bad").ok());
    uint64_t stale = f.put("stale", {.ttl_ms = 1'000});
    f.advance(2'000);  // both TTLs pass: one was dead already, one dies of it
    REQUIRE(f.engine.find_job(stale)->state == JobState::kDead);
    CHECK(f.engine.kick("q", 10).value() == 2);
    f.advance(60'000);
    CHECK(f.queue().counters.expired == 1);  // only the first expiry
    CHECK(f.take() == failed);
    CHECK(f.take() == stale);
    CHECK(f.engine.extras_of(*f.engine.find_job(stale))->expires_at_ms == 0);
    // A job kicked by id as well, and given back once it is leased.
    REQUIRE(f.engine.fail(stale, "again").ok());
    REQUIRE(f.engine.kick_job(stale).ok());
    REQUIRE(f.take() == stale);
    REQUIRE(f.engine.nack(stale, std::nullopt).ok());
    f.advance(0);
    CHECK(f.engine.find_job(stale)->state == JobState::kReady);
  }

  TEST_CASE("TTL does not cut a lease short, but a job given back late expires at once") {
    Fixture f;
    uint64_t id = f.put("slow", {.ttl_ms = 1'000});
    REQUIRE(f.take() == id);
    f.advance(2'000);  // TTL passed while leased; the lease (30s) holds
    CHECK(f.engine.find_job(id)->state == JobState::kLeased);
    auto nacked = f.engine.nack(id, std::nullopt);
    REQUIRE(nacked.ok());
    CHECK(nacked.value() == Requeue::kExpired);  // the NACK's answer says so
    CHECK(f.engine.find_job(id) == nullptr);
    CHECK(f.queue().counters.expired == 1);
    // Dead-lettered instead, the reason says it was delivered.
    f.configure([](QueueSettings& s) { s.ttl_dead_letter = true; });
    uint64_t kept = f.put("kept", {.ttl_ms = 1'000});
    REQUIRE(f.take() == kept);
    f.advance(2'000);
    CHECK(f.engine.nack(kept, 0).value() == Requeue::kDead);
    CHECK(f.engine.extras_of(*f.engine.find_job(kept))->reason == "ttl expired after 1 attempt");
    // A lease that runs out after the TTL: the same, at that sweep.
    uint64_t late = f.put("late", {.ttl_ms = 1'000});
    REQUIRE(f.take() == late);
    f.advance(30'000);
    CHECK(f.engine.find_job(late)->state == JobState::kDead);
    CHECK(f.queue().counters.timed_out == 1);
    CHECK(f.queue().counters.expired == 3);
  }

  TEST_CASE("a TTL that ends before the job is due is refused - it could never be delivered") {
    Fixture f;
    auto early = f.engine.enqueue("q", "x", {.delay_ms = 2'000, .ttl_ms = 1'000});
    REQUIRE_FALSE(early.ok());
    CHECK(early.error().code == Errc::kBadArgument);
    CHECK(early.error().message.find("could never be delivered") != std::string::npos);
    CHECK(f.engine.enqueue("q", "x", {.delay_ms = 1'000, .ttl_ms = 1'000}).error().code ==
          Errc::kBadArgument);
    const int64_t at = f.clock.now_ms() + 60'000;
    CHECK(f.engine.enqueue("q", "x", {.run_at_ms = at, .ttl_ms = 30'000}).error().code ==
          Errc::kBadArgument);
    CHECK(f.engine.job_count() == 0);
    // Due before it ends: delivered if a worker comes in time.
    uint64_t fine = f.put("x", {.delay_ms = 1'000, .ttl_ms = 1'001});
    f.advance(1'000);
    CHECK(f.take() == fine);
    // An AT in the past is due now.
    CHECK(f.engine.enqueue("q", "x", {.run_at_ms = 1, .ttl_ms = 1'000}).ok());
  }

  TEST_CASE("a queue's ttl: jobs put without a TTL get it, counted from when they are due") {
    Fixture f;
    uint64_t before = f.put("put before the setting");
    f.configure([](QueueSettings& s) { s.ttl_ms = 1'000; });
    uint64_t plain = f.put("plain");
    uint64_t own = f.put("its own TTL wins", {.ttl_ms = 5'000});
    uint64_t later = f.put("due in 3s", {.delay_ms = 3'000});  // not refused, as its own TTL is
    f.advance(999);
    CHECK(f.engine.find_job(plain) != nullptr);
    f.advance(1);
    CHECK(f.engine.find_job(plain) == nullptr);
    CHECK(f.queue().counters.expired == 1);
    f.advance(3'000);  // 1s after the delayed job was due
    CHECK(f.engine.find_job(later) == nullptr);
    CHECK(f.engine.find_job(own) != nullptr);
    CHECK(f.engine.find_job(before) != nullptr);  // put before: no TTL
    CHECK(f.engine.extras_of(*f.engine.find_job(before)) == nullptr);
    f.advance(1'000);
    CHECK(f.engine.find_job(own) == nullptr);
    CHECK(f.queue().counters.expired == 3);
  }

  TEST_CASE("a queue's delay: jobs put without DELAY or AT wait it, retries do not") {
    Fixture f;
    uint64_t before = f.put("put before the setting");
    f.configure([](QueueSettings& s) { s.delay_ms = 2'000; });
    uint64_t plain = f.put("plain");
    uint64_t own = f.put("its own DELAY wins", {.delay_ms = 500});
    uint64_t at = f.put("its own AT wins", {.run_at_ms = f.clock.now_ms() + 1'000});
    uint64_t past = f.put("an AT in the past is due now", {.run_at_ms = 1});
    uint64_t zero = f.put("DELAY 0 is a time of its own: now", {.own_time = true});
    CHECK(f.queue().delayed.size() == 3);
    CHECK(f.take() == before);
    CHECK(f.take() == past);
    CHECK(f.take() == zero);
    CHECK(f.empty_reason() == "queue 'q' has no ready job: 3 delayed, the next ready in 500ms");
    f.advance(500);
    CHECK(f.take() == own);
    f.advance(500);
    CHECK(f.take() == at);
    f.advance(999);
    CHECK(f.take() == 0);
    f.advance(1);
    CHECK(f.take() == plain);
    // Given back, the job waits its backoff (none here), not the queue's delay.
    REQUIRE(f.engine.nack(plain, std::nullopt).ok());
    CHECK(f.take() == plain);
    // A TTL of its own must still end after the job is due, and says why not.
    auto early = f.engine.enqueue("q", "x", {.ttl_ms = 2'000});
    REQUIRE_FALSE(early.ok());
    CHECK(early.error().message.find("the queue's delay") != std::string::npos);
    CHECK(f.engine.enqueue("q", "x", {.ttl_ms = 2'001}).ok());
    // The queue's ttl counts from when the job is due, after the delay.
    f.configure([](QueueSettings& s) { s.ttl_ms = 1'000; });
    uint64_t both = f.put("delayed, then kept a while");
    f.advance(2'999);
    CHECK(f.engine.find_job(both) != nullptr);
    f.advance(1);
    CHECK(f.engine.find_job(both) == nullptr);
  }

  TEST_CASE("dedup: the same key within the window returns the first id, even after ACK") {
    Fixture f;
    f.configure([](QueueSettings& s) { s.dedup_window_ms = 60'000; });
    auto first = f.engine.enqueue("q", "a", {.key = "order-7"});
    REQUIRE(first.ok());
    CHECK_FALSE(first.value().duplicate);
    auto again = f.engine.enqueue("q", "b", {.key = "order-7"});
    CHECK(again.value().duplicate);
    CHECK(again.value().id == first.value().id);
    CHECK(f.queue().ready.size() == 1);
    REQUIRE(f.take() == first.value().id);
    REQUIRE(f.engine.ack(first.value().id).ok());
    CHECK(f.engine.enqueue("q", "c", {.key = "order-7"}).value().duplicate);
    f.advance(60'000);
    CHECK(f.queue().dedup.empty());
    auto later = f.engine.enqueue("q", "d", {.key = "order-7"});
    CHECK_FALSE(later.value().duplicate);
    CHECK(later.value().id != first.value().id);
    CHECK(f.queue().counters.duplicates == 2);
    CHECK(f.engine.enqueue("q", "e", {.key = "has space"}).error().code == Errc::kBadArgument);
  }

  TEST_CASE("dedup: a key added after dedup_window is lowered is forgotten on time") {
    Fixture f;
    f.configure([](QueueSettings& s) { s.dedup_window_ms = 600'000; });
    REQUIRE_FALSE(f.engine.enqueue("q", "a", {.key = "long"}).value().duplicate);
    f.configure([](QueueSettings& s) { s.dedup_window_ms = 60'000; });
    f.advance(1'000);
    REQUIRE_FALSE(f.engine.enqueue("q", "b", {.key = "short"}).value().duplicate);
    f.advance(59'999);
    CHECK(f.queue().dedup.size() == 2);
    f.advance(1);  // "short" is 60 s old: past its window, behind an older key
    CHECK(f.queue().dedup.size() == 1);
    CHECK(f.queue().dedup.count("short") == 0);
    CHECK_FALSE(f.engine.enqueue("q", "c", {.key = "short"}).value().duplicate);
    // A key keeps the window it was added with (PROTOCOL.md, CONFIG).
    CHECK(f.engine.enqueue("q", "d", {.key = "long"}).value().duplicate);
    f.advance(60'000);  // the second "short", added at 61 s
    CHECK(f.queue().dedup.size() == 1);
    CHECK(f.queue().dedup.count("long") == 1);
    f.advance(600'000 - 121'000);
    CHECK(f.queue().dedup.empty());
  }

  TEST_CASE("TOUCH extends a lease from now") {
    Fixture f;
    uint64_t id = f.put("long work");
    REQUIRE(f.take() == id);
    f.clock.advance_ms(25'000);
    CHECK(f.engine.touch(id, std::nullopt).value() == 30'000);
    f.advance(25'000);  // past the first lease's end
    CHECK(f.engine.find_job(id)->state == JobState::kLeased);
    CHECK(f.engine.touch(id, 1'000).value() == 1'000);
    f.advance(999);
    CHECK(f.engine.find_job(id)->state == JobState::kLeased);
    f.advance(1);
    CHECK(f.engine.find_job(id)->state == JobState::kReady);
    CHECK(f.engine.touch(id, std::nullopt).error().code == Errc::kNotLeased);
  }

  TEST_CASE("a paused queue delivers nothing until resumed") {
    Fixture f;
    uint64_t id = f.put("x");
    REQUIRE(f.engine.set_paused("q", true).ok());
    auto empty = f.engine.dequeue("q");
    REQUIRE_FALSE(empty.ok());
    CHECK(empty.error().message == "queue 'q' is paused");
    CHECK(f.put("enqueue still works") > id);
    REQUIRE(f.engine.set_paused("q", false).ok());
    CHECK(f.take() == id);
  }

  TEST_CASE("PURGE drops ready and delayed jobs and keeps leased and dead ones") {
    Fixture f;
    uint64_t leased = f.put("leased");
    REQUIRE(f.take() == leased);
    uint64_t dead = f.put("dead");
    REQUIRE(f.take() == dead);
    REQUIRE(f.engine.fail(dead, "x").ok());
    f.put("ready");
    f.put("delayed", {.delay_ms = 1'000});
    CHECK(f.engine.purge("q").value() == 2);
    CHECK(f.queue().ready.empty());
    CHECK(f.queue().delayed.empty());
    CHECK(f.queue().leased.size() == 1);
    CHECK(f.queue().dead.size() == 1);
    f.engine.finish_disposals();
    CHECK(f.engine.payload_bytes() == std::string("leased").size() + std::string("dead").size());
  }

  TEST_CASE("PURGE of many jobs in every waiting shape leaves the engine whole") {
    // PURGE empties the sets whole (Engine::destroy_waiting): FIFO ids, stale
    // ones among them, returns, several priorities, delays and TTLs.
    Fixture f;
    f.configure([](QueueSettings& s) { s.max_attempts = 100; });
    std::vector<uint64_t> leased;
    for (int i = 0; i < 3; ++i) {
      leased.push_back(f.put("leased"));
      REQUIRE(f.take() == leased.back());
    }
    std::vector<uint64_t> waiting;
    for (int i = 0; i < 3'000; ++i) {
      EnqueueOptions o;
      o.priority = i % 3;
      if (i % 7 == 0) o.ttl_ms = 60'000;
      if (i % 11 == 0) o.delay_ms = 5'000;
      waiting.push_back(f.put("job " + std::to_string(i), o));
    }
    // A job taken from the middle of a FIFO leaves its id behind, stale.
    REQUIRE(f.engine.remove(waiting[1'500]).ok());
    // Jobs given back go to the returns beside a FIFO.
    for (int i = 0; i < 20; ++i) {
      const uint64_t id = f.take();
      REQUIRE(id != 0);
      REQUIRE(f.engine.nack(id, std::nullopt, static_cast<int32_t>(i % 2)).ok());
    }
    const size_t kept = f.engine.job_count() - 3;
    CHECK(kept == 2'999);
    CHECK(f.engine.purge("q").value() == kept);
    CHECK(check_engine_invariants(f.engine) == "");
    CHECK(f.engine.job_count() == 3);
    CHECK(f.engine.count_in(JobState::kReady) == 0);
    CHECK(f.engine.count_in(JobState::kDelayed) == 0);
    CHECK(f.queue().ttl.empty());
    for (uint64_t id : waiting) CHECK(f.engine.find_job(id) == nullptr);
    CHECK(f.engine.jobs_disposing() == kept);
    f.engine.finish_disposals();
    CHECK(f.engine.payload_bytes() == 3 * std::string("leased").size());
    for (uint64_t id : waiting) CHECK(f.engine.find_job(id) == nullptr);
    // The leases stay.
    for (uint64_t id : leased) CHECK(f.engine.ack(id).ok());
    // Nothing purged comes back: not at the delays' or TTLs' time, not to a DEQUEUE.
    f.advance(120'000);
    CHECK(f.engine.job_count() == 0);
    CHECK(f.take() == 0);
    const uint64_t next = f.put("after", {.priority = 1});
    CHECK(f.take() == next);
    CHECK(check_engine_invariants(f.engine) == "");
  }

  TEST_CASE("PURGE DEAD deletes the dead letters and nothing else") {
    Fixture f;
    uint64_t leased = f.put("leased");
    REQUIRE(f.take() == leased);
    for (const char* payload : {"d1", "d2", "d3"}) {
      uint64_t id = f.put(payload);
      REQUIRE(f.take() == id);
      REQUIRE(f.engine.fail(id, "x").ok());
    }
    uint64_t ready = f.put("ready");
    f.put("delayed", {.delay_ms = 1'000});
    CHECK(f.engine.purge_dead("q").value() == 3);
    CHECK(f.queue().dead.empty());
    CHECK(f.queue().leased.size() == 1);
    CHECK(f.queue().delayed.size() == 1);
    CHECK(f.queue().counters.deleted == 3);
    CHECK(f.engine.job_count() == 3);
    CHECK(f.engine.payload_bytes() == std::string("leased").size() + std::string("ready").size() +
                                          std::string("delayed").size());
    CHECK(f.engine.purge_dead("q").value() == 0);
    CHECK(f.take() == ready);
    CHECK(f.engine.purge_dead("nope").error().code == Errc::kNoQueue);
  }

  TEST_CASE("DROP removes the queue and every job in it, and counts them deleted") {
    Fixture f;
    uint64_t id = f.put("x");
    f.put("y", {.delay_ms = 1'000});
    f.put("z");
    REQUIRE(f.engine.dequeue("q").ok());  // leased: deleted with the queue too
    const uint64_t deleted_before = f.engine.counters().deleted;
    REQUIRE(f.engine.drop("q").ok());
    CHECK(f.engine.counters().deleted == deleted_before + 3);
    CHECK(f.engine.find_queue("q") == nullptr);
    CHECK(f.engine.find_job(id) == nullptr);
    CHECK(f.engine.job_count() == 0);
    CHECK(f.engine.next_deadline_ms() == INT64_MAX);
  }

  TEST_CASE("max_size pushes back with FULL - server-wide limits too") {
    Fixture f;
    f.configure([](QueueSettings& s) { s.max_size = 2; });
    f.put("1");
    f.put("2");
    CHECK(f.engine.enqueue("q", "3").error().code == Errc::kFull);
    REQUIRE(f.engine.remove(1).ok());
    CHECK(f.engine.enqueue("q", "3").ok());

    ManualClock clock;
    Engine small(clock, EngineLimits{.auto_create_queues = true, .max_queues = 10, .max_jobs = 1,
                                     .max_payload_total = 100},
                 {});
    CHECK(small.enqueue("a", "x").ok());
    CHECK(small.enqueue("a", "y").error().code == Errc::kFull);
  }

  TEST_CASE("a job refused FULL is counted for the queue and the server, whatever the limit") {
    // errors_total counts every ERROR, the EMPTY of each polling DEQUEUE
    // among them: producers pushed back need a count of their own.
    Fixture f;
    f.configure([](QueueSettings& s) { s.max_size = 1; });
    f.put("1");
    CHECK(f.engine.enqueue("q", "2").error().code == Errc::kFull);
    CHECK(f.queue().counters.refused == 1);
    CHECK(f.engine.counters().refused == 1);
    f.configure([](QueueSettings& s) { s.max_size = 0; });
    f.engine.close_intake("the disk is nearly full");
    CHECK(f.engine.enqueue("q", "3").error().code == Errc::kFull);
    CHECK(f.queue().counters.refused == 2);
    f.engine.open_intake();
    // A refusal for its own arguments is not back-pressure.
    CHECK(f.engine.enqueue("q", "4", {.key = "has space"}).error().code == Errc::kBadArgument);
    CHECK(f.engine.counters().refused == 2);

    // A queue auto_create was to make does not exist: the server counts it.
    ManualClock clock;
    Engine small(clock, EngineLimits{.auto_create_queues = true, .max_queues = 10, .max_jobs = 1},
                 {});
    CHECK(small.enqueue("a", "x").ok());
    CHECK(small.enqueue("b", "y").error().code == Errc::kFull);
    CHECK(small.find_queue("b") == nullptr);
    CHECK(small.counters().refused == 1);
    CHECK(small.find_queue("a")->counters.refused == 0);
  }

  TEST_CASE("dedup keys count in limits.max_payload_total for their window, after their jobs") {
    ManualClock clock;
    QueueSettings settings;
    settings.dedup_window_ms = 60'000;
    Engine engine(clock, EngineLimits{.max_payload_total = 1000}, settings);
    REQUIRE(engine.create_queue("q").ok());
    // A key of 100 bytes costs 100 + 112 = 212 (dedup_key_cost): with a
    // 1-byte payload, four fit in 1000, the fifth does not, though every job
    // is gone; a key once remembered keeps being answered.
    const std::string key(100, '0');
    for (char c = '1'; c <= '4'; ++c) {
      std::string k = key;
      k.back() = c;
      auto put = engine.enqueue("q", "x", {.key = k});
      REQUIRE(put.ok());
      REQUIRE(engine.remove(put->id).ok());
    }
    CHECK(engine.job_count() == 0);
    CHECK(engine.dedup_key_bytes() == 848);
    std::string fifth = key;
    fifth.back() = '5';
    auto refused = engine.enqueue("q", "x", {.key = fifth});
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code == Errc::kFull);
    CHECK(refused.error().message ==
          "the server holds 0 payload bytes in jobs and schedules and 848 in dedup keys, near its "
          "limit (limits.max_payload_total); try again later");
    std::string first = key;
    first.back() = '1';
    CHECK(engine.enqueue("q", "x", {.key = first})->duplicate);
    CHECK(engine.enqueue("q", "plain").ok());  // room for a job without a key
    // Once the window is over the keys are forgotten, and their room is back.
    clock.advance_ms(60'000);
    engine.expire_due();
    CHECK(engine.dedup_key_bytes() == 0);
    CHECK(engine.enqueue("q", "x", {.key = fifth}).ok());
    CHECK(engine.dedup_key_bytes() == 212);
    REQUIRE(engine.drop("q").ok());
    engine.finish_disposals();  // a DROP's keys are freed in steps
    CHECK(engine.dedup_key_bytes() == 0);

    // Replay meets a key twice when a compaction saved it again and the old
    // record's file is still there: it is one key, counted once.
    REQUIRE(engine.create_queue("r").ok());
    const uint32_t number = engine.find_queue("r")->number;
    engine.restore_dedup(number, fifth, 9, clock.now_ms() + 60'000);
    engine.restore_dedup(number, fifth, 9, clock.now_ms() + 60'000);
    CHECK(engine.dedup_key_bytes() == 212);
    clock.advance_ms(60'000);
    engine.expire_due();
    CHECK(engine.dedup_key_bytes() == 0);
  }

  TEST_CASE("closed intake refuses new jobs with its reason - what drains queues goes on") {
    Fixture f;
    const uint64_t held = f.put("held", {.key = "k"});
    const uint64_t leased = f.put("leased");
    REQUIRE(f.take() == held);
    f.engine.close_intake("the disk is low");
    CHECK_FALSE(f.engine.intake_open());
    auto refused = f.engine.enqueue("q", "new");
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code == Errc::kFull);
    CHECK(refused.error().message == "the disk is low");
    // A retried PUT of a job it holds stores nothing: still answered.
    auto again = f.engine.enqueue("q", "held", {.key = "k"});
    REQUIRE(again.ok());
    CHECK(again->id == held);
    CHECK(again->duplicate);
    CHECK(f.engine.ack(held).ok());
    REQUIRE(f.take() == leased);
    CHECK(f.engine.remove(leased).ok());
    CHECK(f.engine.job_count() == 0);
    f.engine.open_intake();
    CHECK(f.engine.enqueue("q", "new").ok());
  }

  TEST_CASE("several queues: higher queue priority first, then the order given - COUNT spills over") {
    Fixture f;
    REQUIRE(f.engine.create_queue("urgent").ok());
    REQUIRE(f.engine.create_queue("bulk").ok());
    f.configure([](QueueSettings& s) { s.priority = 5; }, "urgent");
    f.put("b1", {}, "bulk");
    f.put("b2", {}, "bulk");
    f.put("u1", {}, "urgent");
    f.put("q1", {}, "q");
    std::vector<Queue*> queues = {&f.queue("bulk"), &f.queue("q"), &f.queue("urgent")};
    std::vector<const Job*> got;
    f.engine.dequeue(queues, 1, &got);
    REQUIRE(got.size() == 1);
    CHECK(got[0]->payload() == "u1");
    got.clear();
    f.engine.dequeue(queues, 10, &got);
    std::vector<std::string> payloads;
    for (const Job* j : got) payloads.emplace_back(j->payload());
    CHECK(payloads == std::vector<std::string>{"b1", "b2", "q1"});
  }

  TEST_CASE("PEEK shows each state in the order jobs would leave it") {
    Fixture f;
    f.put("later", {.delay_ms = 2'000});
    f.put("sooner", {.delay_ms = 1'000});
    f.put("low");
    f.put("high", {.priority = 1});
    std::vector<std::string> seen;
    auto collect = [&](const Job& j) { seen.emplace_back(j.payload()); };
    REQUIRE(f.engine.peek("q", PeekState::kReady, 10, collect).ok());
    CHECK(seen == std::vector<std::string>{"high", "low"});
    seen.clear();
    REQUIRE(f.engine.peek("q", PeekState::kDelayed, 1, collect).ok());
    CHECK(seen == std::vector<std::string>{"sooner"});
    CHECK(f.queue().ready.size() == 2);  // peeking changes nothing
  }

  TEST_CASE("DELETE removes a job in any state") {
    Fixture f;
    uint64_t a = f.put("a");
    uint64_t b = f.put("b", {.delay_ms = 1'000});
    uint64_t c = f.put("c");
    REQUIRE(f.take() == a);
    for (uint64_t id : {a, b, c}) CHECK(f.engine.remove(id).ok());
    CHECK(f.engine.job_count() == 0);
    CHECK(f.engine.remove(a).error().code == Errc::kNotFound);
  }

  TEST_CASE("a queue with waiters is signalled when a job becomes ready") {
    Fixture f;
    f.engine.add_waiter(&f.queue());
    CHECK(f.engine.take_ready_signals().empty());
    f.put("x", {.delay_ms = 100});
    CHECK(f.engine.take_ready_signals().empty());
    f.advance(100);
    auto signals = f.engine.take_ready_signals();
    REQUIRE(signals.size() == 1);
    CHECK(signals[0] == &f.queue());
  }

  TEST_CASE("WAIT and COUNT cannot be queue names") {
    CHECK_FALSE(Engine::valid_queue_name("wait"));
    CHECK_FALSE(Engine::valid_queue_name("COUNT"));
    CHECK(Engine::valid_queue_name("waiting"));
  }
}

}  // namespace engine_lifecycle_test
