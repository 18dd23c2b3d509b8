// KICK, REDRIVE and PURGE ... DEAD in steps (server/bulk_work.h): what a
// step does, when a task ends, and how the runner shares its time.
#include "server/bulk_work.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tests/unit/engine_fixture.h"

namespace bulk_work_test {

using tq::engine::JobState;
using tq::engine::QueueSettings;
using tq::server::bulk_reply;
using tq::server::BulkRunner;
using tq::server::BulkTask;
using tq::server::kBulkStepJobs;
using tq::server::run_bulk_step;

struct Fixture : tq::testing::EngineFixture {
  // n jobs put in `queue`, then n leased there (the lowest ids ready) and
  // failed: dead, or moved to its dead_letter_queue. The ids failed.
  std::vector<uint64_t> kill(size_t n, const std::string& queue = "q") {
    for (size_t i = 0; i < n; ++i) put("job", {}, queue);
    std::vector<uint64_t> ids = take_many(n, {queue});
    for (uint64_t id : ids) REQUIRE(engine.fail(id, "broken").ok());
    return ids;
  }
};

TEST_SUITE("bulk work") {
  TEST_CASE("KICK in steps kicks the jobs dead when it began, the longest dead first") {
    Fixture f;
    f.kill(600);
    BulkTask task{.kind = BulkTask::Kind::kKick, .queue = "q"};
    REQUIRE(run_bulk_step(f.engine, task, kBulkStepJobs).ok());
    CHECK(task.done == 256);
    CHECK_FALSE(task.finished);
    CHECK(f.queue().ready.size() == 256);
    CHECK(f.queue().dead.size() == 344);
    // Jobs that die meanwhile are not part of it: a worker failing every
    // kicked job at once would otherwise keep it going for ever. Here 10 of
    // the kicked ones die again.
    f.clock.advance_ms(1);
    const std::vector<uint64_t> later = f.kill(10);
    REQUIRE(later.front() == 1);
    REQUIRE(run_bulk_step(f.engine, task, kBulkStepJobs).ok());
    REQUIRE(run_bulk_step(f.engine, task, kBulkStepJobs).ok());
    CHECK(task.finished);
    CHECK(task.done == 600);
    CHECK(task.steps == 3);
    CHECK(bulk_reply(task) == "OK kicked 600\n");
    REQUIRE(f.queue().dead.size() == 10);
    for (uint64_t id : later) CHECK(f.engine.find_job(id)->state == JobState::kDead);
  }

  TEST_CASE("KICK's count bounds every step, and a task with nothing to do ends at once") {
    Fixture f;
    f.kill(300);
    BulkTask some{.kind = BulkTask::Kind::kKick, .queue = "q", .left = 260};
    REQUIRE(run_bulk_step(f.engine, some, kBulkStepJobs).ok());
    REQUIRE(run_bulk_step(f.engine, some, kBulkStepJobs).ok());
    CHECK(some.finished);
    CHECK(some.done == 260);
    CHECK(f.queue().dead.size() == 40);

    REQUIRE(f.engine.create_queue("empty").ok());
    BulkTask none{.kind = BulkTask::Kind::kKick, .queue = "empty"};
    REQUIRE(run_bulk_step(f.engine, none, kBulkStepJobs).ok());
    CHECK(none.finished);
    CHECK(bulk_reply(none) == "OK kicked 0\n");
  }

  TEST_CASE("PURGE DEAD in steps removes every dead job and counts them") {
    Fixture f;
    f.kill(513);
    f.put("ready, not dead");
    BulkTask task{.kind = BulkTask::Kind::kPurgeDead, .queue = "q"};
    while (!task.finished) REQUIRE(run_bulk_step(f.engine, task, kBulkStepJobs).ok());
    CHECK(task.steps == 3);
    CHECK(bulk_reply(task) == "OK purged 513\n");
    CHECK(f.queue().dead.empty());
    CHECK(f.queue().ready.size() == 1);
    CHECK(f.queue().counters.deleted == 513);
  }

  TEST_CASE("REDRIVE in steps moves the jobs chosen at its start that still qualify") {
    Fixture f;
    REQUIRE(f.engine.create_queue("dlq").ok());
    f.configure([](QueueSettings& s) { s.dead_letter_queue = "dlq"; });
    const std::vector<uint64_t> moved = f.kill(600);
    REQUIRE(f.queue("dlq").ready.size() == 600);
    BulkTask task{.kind = BulkTask::Kind::kRedrive, .queue = "dlq"};
    REQUIRE(run_bulk_step(f.engine, task, kBulkStepJobs).ok());
    CHECK(task.done == 256);
    CHECK(task.chosen_ids.ids.size() == 600);
    // Oldest first: the first 256 ids are back.
    CHECK(f.engine.find_job(moved[255])->queue->name == "q");
    CHECK(f.engine.find_job(moved[256])->queue->name == "dlq");
    // Meanwhile a worker takes 10 of those still there (they are its now),
    // another is deleted, and one sent back dies again: tried already, it
    // stays this time.
    const std::vector<uint64_t> leased = f.take_many(10, {"dlq"});
    REQUIRE(leased.size() == 10);
    REQUIRE(f.engine.remove(moved[599]).ok());
    const uint64_t newcomer = f.kill(1)[0];
    REQUIRE(newcomer == moved[0]);
    while (!task.finished) REQUIRE(run_bulk_step(f.engine, task, kBulkStepJobs).ok());
    CHECK(task.done == 589);  // 600, less 10 leased and 1 deleted
    CHECK(bulk_reply(task) == "OK redriven 589\n");
    for (uint64_t id : leased) CHECK(f.engine.find_job(id)->state == JobState::kLeased);
    CHECK(f.engine.find_job(newcomer)->queue->name == "dlq");
    CHECK(f.queue("dlq").ready.size() == 1);
    CHECK(f.queue().ready.size() == 589);  // less the one that died again, and kill()'s new one
  }

  TEST_CASE("REDRIVE in steps tries a job once though its id is in the queue twice") {
    Fixture f;
    REQUIRE(f.engine.create_queue("dlq").ok());
    f.configure([](QueueSettings& s) { s.dead_letter_queue = "dlq"; });
    f.kill(100);
    // Two jobs arrive in dlq with its TTL, which sends them to its dead
    // letters there: each leaves its id behind in dlq's ready FIFO, stale,
    // and is in dlq's dead jobs too.
    f.configure(
        [](QueueSettings& s) {
          s.ttl_ms = 50;
          s.ttl_dead_letter = true;
        },
        "dlq");
    const std::vector<uint64_t> twice = f.kill(2);
    f.configure([](QueueSettings& s) { s.ttl_ms = 0; }, "dlq");
    f.kill(500);
    f.advance(100);
    for (uint64_t id : twice) REQUIRE(f.engine.find_job(id)->state == JobState::kDead);
    REQUIRE(f.queue("dlq").ready.size() == 600);
    REQUIRE(f.queue("dlq").dead.size() == 2);

    BulkTask task{.kind = BulkTask::Kind::kRedrive, .queue = "dlq"};
    REQUIRE(run_bulk_step(f.engine, task, kBulkStepJobs).ok());
    for (uint64_t id : twice) REQUIRE(f.engine.find_job(id)->queue->name == "q");
    // Sent back, they die again at once and are in dlq once more: tried
    // already, they stay there this time.
    const std::vector<uint64_t> again = f.take_many(1000);
    for (uint64_t id : again) {
      if (id == twice[0] || id == twice[1]) REQUIRE(f.engine.fail(id, "broken").ok());
    }
    for (uint64_t id : twice) REQUIRE(f.engine.find_job(id)->queue->name == "dlq");
    while (!task.finished) REQUIRE(run_bulk_step(f.engine, task, kBulkStepJobs).ok());
    CHECK(task.done == 602);  // every job once
    CHECK(bulk_reply(task) == "OK redriven 602\n");
    for (uint64_t id : twice) CHECK(f.engine.find_job(id)->queue->name == "dlq");
  }

  TEST_CASE("REDRIVE in steps moves a job a worker gave back before its step came") {
    // PROTOCOL.md: the jobs in the queue when it begins, less those acked,
    // leased or deleted before their step comes. Taken and NACKed, a job
    // leaves dlq's FIFO for its heap of returns, where the list made at the
    // start does not have it; it is ready there all the same, and goes.
    // Found by review: it stayed in dlq, and the reply said redriven 2.
    Fixture f;
    REQUIRE(f.engine.create_queue("dlq").ok());
    f.configure([](QueueSettings& s) { s.dead_letter_queue = "dlq"; });
    const std::vector<uint64_t> ids = f.kill(3);
    REQUIRE(f.queue("dlq").ready.size() == 3);
    BulkTask task{.kind = BulkTask::Kind::kRedrive, .queue = "dlq"};
    REQUIRE(run_bulk_step(f.engine, task, 1).ok());
    CHECK(f.engine.find_job(ids[0])->queue->name == "q");
    REQUIRE(f.take("dlq") == ids[1]);  // a dead-letter worker takes it and gives it back
    REQUIRE(f.engine.nack(ids[1], std::nullopt).ok());
    while (!task.finished) REQUIRE(run_bulk_step(f.engine, task, 1).ok());
    for (uint64_t id : ids) CHECK(f.engine.find_job(id)->queue->name == "q");
    CHECK(task.done == 3);
    CHECK(f.queue("dlq").job_count() == 0);
  }

  TEST_CASE("a small REDRIVE of jobs in heaps and FIFOs alike takes one step") {
    // It took two (one a kind), and tqd logs every task of more than one.
    Fixture f;
    REQUIRE(f.engine.create_queue("dlq").ok());
    f.configure([](QueueSettings& s) { s.dead_letter_queue = "dlq"; });
    f.kill(5);  // ready in dlq's FIFO
    const std::vector<uint64_t> returned = f.take_many(2, {"dlq"});
    for (uint64_t id : returned) REQUIRE(f.engine.nack(id, std::nullopt).ok());  // its heap
    BulkTask task{.kind = BulkTask::Kind::kRedrive, .queue = "dlq"};
    REQUIRE(run_bulk_step(f.engine, task, kBulkStepJobs).ok());
    CHECK(task.finished);
    CHECK(task.steps == 1);
    CHECK(task.done == 5);
    CHECK(f.queue().ready.size() == 5);
  }

  TEST_CASE("REDRIVE n chooses the n oldest jobs, however many steps it takes") {
    Fixture f;
    REQUIRE(f.engine.create_queue("dlq").ok());
    f.configure([](QueueSettings& s) { s.dead_letter_queue = "dlq"; });
    const std::vector<uint64_t> moved = f.kill(400);
    BulkTask task{.kind = BulkTask::Kind::kRedrive, .queue = "dlq", .left = 300};
    while (!task.finished) REQUIRE(run_bulk_step(f.engine, task, 100).ok());
    CHECK(task.steps == 3);
    CHECK(task.done == 300);
    CHECK(f.engine.find_job(moved[299])->queue->name == "q");
    CHECK(f.engine.find_job(moved[300])->queue->name == "dlq");
  }

  TEST_CASE(
      "a queue dropped part way ends the task with what it did - a missing one is its error") {
    Fixture f;
    f.kill(300);
    BulkTask task{.kind = BulkTask::Kind::kKick, .queue = "q"};
    REQUIRE(run_bulk_step(f.engine, task, kBulkStepJobs).ok());
    REQUIRE(f.engine.drop("q").ok());
    CHECK_FALSE(run_bulk_step(f.engine, task, kBulkStepJobs).ok());
    CHECK(task.finished);
    CHECK(bulk_reply(task) == "OK kicked 256\n");

    // Dropped and created again between two steps (DROP and CREATE in one
    // read): the queue of that name is another, and its dead jobs are not
    // the task's.
    for (BulkTask::Kind kind : {BulkTask::Kind::kKick, BulkTask::Kind::kPurgeDead}) {
      REQUIRE(f.engine.create_queue("q").ok());
      f.kill(300);
      BulkTask again{.kind = kind, .queue = "q"};
      REQUIRE(run_bulk_step(f.engine, again, kBulkStepJobs).ok());
      REQUIRE(f.engine.drop("q").ok());
      REQUIRE(f.engine.create_queue("q").ok());
      const uint64_t newcomer = f.kill(1)[0];
      CHECK_FALSE(run_bulk_step(f.engine, again, kBulkStepJobs).ok());
      CHECK(again.finished);
      CHECK(again.done == 256);
      CHECK(f.engine.find_job(newcomer)->state == JobState::kDead);
      REQUIRE(f.engine.drop("q").ok());
    }

    for (BulkTask::Kind kind :
         {BulkTask::Kind::kKick, BulkTask::Kind::kRedrive, BulkTask::Kind::kPurgeDead}) {
      BulkTask missing{.kind = kind, .queue = "nope"};
      auto first = run_bulk_step(f.engine, missing, kBulkStepJobs);
      REQUIRE_FALSE(first.ok());
      CHECK(first.error().code == tq::engine::Errc::kNoQueue);
      CHECK(missing.finished);
    }
  }

  TEST_CASE("the runner takes the tasks in turn, a step each, until its time is up") {
    Fixture f;
    REQUIRE(f.engine.create_queue("other").ok());
    f.kill(600);
    f.kill(300, "other");
    // Each reading of the clock is a millisecond later: with a budget of
    // 2 ms, a run is two steps.
    uint64_t now_ns = 0;
    std::vector<std::string> answered;
    BulkRunner runner([&] { return now_ns += 1'000'000; },
                      [&](uint64_t connection, const BulkTask& task, uint64_t elapsed_ns) {
                        answered.push_back(std::to_string(connection) + " " + bulk_reply(task));
                        CHECK(elapsed_ns > 0);
                      });
    BulkTask kick{.kind = BulkTask::Kind::kKick, .queue = "q"};
    BulkTask purge{.kind = BulkTask::Kind::kPurgeDead, .queue = "other"};
    CHECK_FALSE(runner.busy());
    runner.start(1, kick);
    runner.start(2, purge);
    CHECK(runner.run(f.engine, 2'000'000));  // a step of each
    CHECK(f.queue().dead.size() == 344);
    CHECK(f.queue("other").dead.size() == 44);
    CHECK(runner.run(f.engine, 2'000'000));  // the kick's second, the purge's last
    CHECK(answered == std::vector<std::string>{"2 OK purged 300\n"});
    CHECK(f.queue().dead.size() == 88);
    CHECK(runner.busy());
    CHECK_FALSE(runner.run(f.engine, 2'000'000));  // the kick's last step: none left
    CHECK_FALSE(runner.busy());
    CHECK(answered == std::vector<std::string>{"2 OK purged 300\n", "1 OK kicked 600\n"});
  }

  TEST_CASE("at a shutdown every task ends at once and says what it did") {
    Fixture f;
    f.kill(600);
    std::vector<std::string> answered;
    uint64_t now_ns = 0;
    BulkRunner runner(
        [&] { return now_ns += 1'000'000; },
        [&](uint64_t, const BulkTask& task, uint64_t) { answered.push_back(bulk_reply(task)); });
    runner.start(7, BulkTask{.kind = BulkTask::Kind::kKick, .queue = "q"});
    CHECK(runner.run(f.engine, 1));  // one step
    runner.finish_all();
    CHECK_FALSE(runner.busy());
    CHECK(answered == std::vector<std::string>{"OK kicked 256\n"});
    CHECK(f.queue().dead.size() == 344);
  }
}

}  // namespace bulk_work_test
