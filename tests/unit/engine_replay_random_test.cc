// The engine and its journal under random work: replay after a restart (a
// clean close, or a crash with everything synced) must give back the state
// the server had, and the engine's indexes and counts must agree with each
// other after every step. Seeds are fixed, so a failure repeats; more with
// TQ_RANDOM_SEEDS=n and TQ_RANDOM_STEPS=n, and TQ_RANDOM_DOWNTIME=1 for
// restarts after time passed unobserved (schedules left out then: due
// together on several queues, they may fire in another order after a
// restart, and so take other ids).
#include <doctest/doctest.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>

#include "server/bulk_work.h"
#include "server/journal.h"
#include "tests/unit/engine_check.h"
#include "tests/unit/engine_fixture.h"
#include "tests/unit/journal_node.h"
#include "tests/unit/wal_test_support.h"

namespace engine_replay_random_test {

using namespace tq;
using wal::testing::LogHarness;

namespace {

using Node = tq::testing::JournalNode;
using tq::testing::small_segments;

}  // namespace

TEST_SUITE("engine replay, random") {
  TEST_CASE("random lifecycles replay to the same state at every restart and crash") {
    const char* env_seeds = std::getenv("TQ_RANDOM_SEEDS");
    const uint32_t seeds = env_seeds != nullptr ? static_cast<uint32_t>(std::atoi(env_seeds)) : 8;
    for (uint32_t seed = 1; seed <= seeds; ++seed) {
      CAPTURE(seed);
      auto fs = std::make_unique<wal::MemoryFileSystem>();
      auto node = std::make_unique<Node>(*fs);
      REQUIRE(node->open(small_segments()).ok());
      std::mt19937 rng(seed);
      const std::vector<std::string> names = {"alpha", "beta", "gamma"};
      for (const auto& n : names) REQUIRE(node->engine.create_queue(n).ok());
      std::vector<uint64_t> leased;
      std::vector<server::BulkTask> tasks;
      bool failed = false;
      const bool downtime = std::getenv("TQ_RANDOM_DOWNTIME") != nullptr;
      const char* env_steps = std::getenv("TQ_RANDOM_STEPS");
      const int steps = env_steps != nullptr ? std::atoi(env_steps) : 4000;
      for (int step = 0; step < steps && !failed; ++step) {
        engine::Engine& eng = node->engine;
        const std::string& q = names[rng() % names.size()];
        auto random_job = [&]() -> uint64_t { return 1 + rng() % eng.next_job_id(); };
        switch (rng() % 20) {
          case 0:
          case 1:
          case 2:
          case 3: {
            engine::EnqueueOptions o;
            o.priority = static_cast<int32_t>(rng() % 3);
            if (rng() % 4 == 0) o.delay_ms = 1'000 + rng() % 20'000;
            if (rng() % 5 == 0) o.ttl_ms = o.delay_ms + 5'000 + rng() % 20'000;
            if (rng() % 6 == 0) o.max_attempts = 1 + rng() % 3;
            std::string key = "k" + std::to_string(rng() % 50);
            if (rng() % 3 == 0) o.key = key;
            if (const engine::Queue* sq = eng.find_queue(q);
                rng() % 8 == 0 && !sq->schedules.empty()) {
              // A schedule's firing key, which takes that firing's place: a
              // restart must find the schedule as the server had it.
              auto s = sq->schedules.begin();
              std::advance(s, static_cast<std::ptrdiff_t>(rng() % sq->schedules.size()));
              key = engine::firing_key(s->first, s->second.next_ms);
              o.key = key;
            }
            std::string group = "g" + std::to_string(rng() % 4);
            if (rng() % 2 == 0) o.group = group;
            (void)eng.enqueue(q, "p" + std::to_string(step), o);
            break;
          }
          case 4:
          case 5:
          case 6: {
            std::vector<engine::Queue*> qs;
            for (const auto& n : names) {
              if (rng() % 2 == 0) qs.push_back(eng.find_queue(n));
            }
            if (qs.empty()) qs.push_back(eng.find_queue(q));
            std::vector<const engine::Job*> got;
            eng.dequeue(qs, 1 + rng() % 3, &got);
            for (const engine::Job* j : got) leased.push_back(j->id);
            break;
          }
          case 7:
            if (!leased.empty()) (void)eng.ack(leased.back()), leased.pop_back();
            break;
          case 8:
            if (!leased.empty()) {
              (void)eng.nack(
                  leased.back(), rng() % 2 ? std::optional<int64_t>(rng() % 4'000) : std::nullopt,
                  rng() % 2 == 0 ? std::optional<int32_t>(static_cast<int32_t>(rng() % 7) - 3)
                                 : std::nullopt);
              leased.pop_back();
            }
            break;
          case 9:
            if (!leased.empty()) {
              (void)eng.fail(leased.back(), "bad " + std::to_string(step));
              leased.pop_back();
            }
            break;
          case 10:
            if (!leased.empty()) {
              (void)eng.touch(
                  leased[rng() % leased.size()],
                  rng() % 2 ? std::optional<int64_t>(1 + rng() % 60'000) : std::nullopt);
            }
            break;
          case 11:
            if (rng() % 3 == 0) {
              (void)eng.redrive(q, rng() % 2 ? SIZE_MAX : 1 + rng() % 3);
            } else {
              (void)eng.kick(q, 1 + rng() % 3);
            }
            break;
          case 12:
            if (rng() % 2 == 0) {
              (void)eng.kick_job(random_job());
            } else if (rng() % 3 == 0) {
              (void)eng.remove(random_job());
            }
            break;
          case 13: {
            if (rng() % 3 != 0) break;
            engine::QueueSettings s = eng.find_queue(q)->settings;
            s.max_attempts = static_cast<uint32_t>(rng() % 4);
            s.backoff_base_ms = (rng() % 2) * 500;
            s.backoff_factor = 1.5;
            s.backoff_jitter = !downtime && rng() % 2 ? 0.25 : 0;
            s.dedup_window_ms = 10'000 + rng() % 50'000;
            s.ttl_dead_letter = rng() % 2 == 0;
            s.ttl_ms = rng() % 3 == 0 ? static_cast<int64_t>(5'000 + rng() % 30'000) : 0;
            s.delay_ms = rng() % 4 == 0 ? static_cast<int64_t>(rng() % 3'000) : 0;
            s.ack_timeout_ms = 1'000 + rng() % 20'000;
            s.dead_retention_ms = rng() % 2 == 0 ? 0 : static_cast<int64_t>(1'000 + rng() % 20'000);
            s.dead_max = rng() % 2 == 0 ? 0 : 1 + rng() % 20;
            const auto dlq = rng() % 4;
            s.dead_letter_queue = dlq == 0 ? "" : names[dlq - 1];
            if (s.dead_letter_queue == q) s.dead_letter_queue.clear();
            REQUIRE(eng.configure(q, s).ok());
            break;
          }
          case 14: {
            const auto r = rng() % 6;
            const int64_t resume_at =
                rng() % 2 == 0 ? 0
                               : node->clock.now_ms() + 1 + static_cast<int64_t>(rng() % 10'000);
            if (r == 0) REQUIRE(eng.set_paused(q, true, resume_at).ok());
            if (r == 1) REQUIRE(eng.set_paused(q, false).ok());
            break;
          }
          case 15: {
            // PURGE and DROP leave their jobs to be freed in steps, which
            // run at random below, among everything else.
            const auto r = rng() % 20;
            if (r == 0) REQUIRE(eng.purge(q).ok());
            if (r == 1) REQUIRE(eng.purge_dead(q).ok());
            if (r == 2) {
              REQUIRE(eng.drop(q).ok());
              REQUIRE(eng.create_queue(q).ok());
            }
            break;
          }
          case 16: {
            if (rng() % 8 != 0 || downtime) break;
            engine::ScheduleSpec spec;
            std::string sname = "s" + std::to_string(rng() % 3);
            std::string group = "g" + std::to_string(rng() % 4);
            spec.name = sname;
            spec.every_ms = 1'000 * (1 + rng() % 10);
            spec.payload = "sched";
            if (rng() % 2) spec.job.group = group;
            spec.job.priority = static_cast<int32_t>(rng() % 3);
            if (rng() % 4 == 0) {
              (void)eng.unschedule(q, sname);
            } else {
              (void)eng.schedule(q, spec);
            }
            break;
          }
          case 17:
          case 18:
          case 19:
            node->clock.advance_ms(rng() % 3'000);
            eng.expire_due();
            break;
        }
        if (rng() % 17 == 0) {
          using Kind = server::BulkTask::Kind;
          const Kind kinds[] = {Kind::kKick, Kind::kRedrive, Kind::kPurgeDead};
          tasks.push_back(server::BulkTask{.kind = kinds[rng() % 3],
                                           .queue = q,
                                           .left = rng() % 2 == 0 ? SIZE_MAX : 1 + rng() % 10});
        }
        if (!tasks.empty() && rng() % 2 == 0) {
          const size_t t = rng() % tasks.size();
          (void)server::run_bulk_step(eng, tasks[t], 1 + rng() % 3);
          if (tasks[t].finished) tasks.erase(tasks.begin() + static_cast<std::ptrdiff_t>(t));
        }
        if (rng() % 3 == 0) (void)eng.dispose_some(rng() % 4);
        node->journal.maintain();
        if (step % 40 == 0) REQUIRE(node->harness.wait_durable());
        std::string broken = tq::testing::check_engine_invariants(eng);
        if (!broken.empty()) {
          CAPTURE(step);
          CHECK_MESSAGE(broken.empty(), broken);
          failed = true;
          break;
        }
        if (step % 300 == 299) {
          eng.expire_due();
          // Replay frees what PURGE and DROP removed at once: the payload
          // bytes compared are those of the jobs left.
          eng.finish_disposals();
          node->harness.settle();
          std::string before = tq::testing::engine_fingerprint(eng);
          int64_t now = node->clock.now_ms();
          const bool crash = rng() % 2 == 0;
          std::unique_ptr<wal::MemoryFileSystem> copy;
          if (crash) {
            // Killed with everything synced: no clean close.
            REQUIRE(node->harness.wait_durable());
            node->harness.settle();
            copy = fs->power_cut_copy();
          } else {
            node->harness.close();
          }
          if (downtime) {
            // tqd down for a while: the live engine, unobserved, lives
            // through it as a server that stayed up would.
            eng.set_observer(nullptr);
            node->clock.advance_ms(static_cast<int64_t>(rng() % 40'000));
            eng.expire_due();
            before = tq::testing::engine_fingerprint(eng);
            now = node->clock.now_ms();
          }
          if (crash) {
            node.reset();
            fs = std::move(copy);
          }
          node = std::make_unique<Node>(*fs, now);
          REQUIRE(node->open(small_segments()).ok());
          node->engine.expire_due();
          const std::string after = tq::testing::engine_fingerprint(node->engine);
          if (before != after) {
            CAPTURE(step);
            const bool same = before == after;
            CHECK_MESSAGE(same, tq::testing::line_diff(before, after));
            failed = true;
          }
          std::string broken2 = tq::testing::check_engine_invariants(node->engine);
          CHECK_MESSAGE(broken2.empty(), broken2);
        }
      }
    }
  }
}

}  // namespace engine_replay_random_test
