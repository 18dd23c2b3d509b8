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

// Every job, whatever its state, with every field a restart must keep; the
// groups' bookkeeping; each queue's delivery order; the engine's counts.
std::string full_fingerprint(engine::Engine& e) {
  std::ostringstream out;
  for (const auto& named : e.queues()) {
    // Not a structured binding: clang before 16 lets no lambda capture one.
    const auto& name = named.first;
    const auto& q = named.second;
    const engine::QueueSettings& s = q->settings;
    out << "queue " << name << " n=" << q->number << " ack=" << s.ack_timeout_ms
        << " max=" << s.max_attempts << " backoff=" << s.backoff_base_ms << "/" << s.backoff_factor
        << "/" << s.backoff_max_ms << "/" << s.backoff_jitter << " dedup=" << s.dedup_window_ms
        << " size=" << s.max_size << " prio=" << s.priority << " delay=" << s.delay_ms
        << " ttl=" << s.ttl_ms << " ttl_dl=" << s.ttl_dead_letter << " leased_max=" << s.max_leased
        << " rate=" << s.rate_limit << "/" << s.rate_window_ms
        << " dead_keep=" << s.dead_retention_ms << "/" << s.dead_max
        << " dlq=" << s.dead_letter_queue << " paused=" << q->paused << "/" << q->resume_at_ms
        << " sizes=" << q->ready.size() << "/" << q->held.size() << "/" << q->delayed.size() << "/"
        << q->leased.size() << "/" << q->dead.size() << "\n";
    // Delivery order of the ready set.
    out << "  order";
    q->ready.first(SIZE_MAX, [&](engine::Job* j) { out << " " << j->id; });
    out << "\n";
    std::map<std::string, const engine::Group*> groups;
    for (const auto& [gname, g] : q->groups) groups[gname] = &g;
    for (const auto& [gname, gp] : groups) {
      const engine::Group& g = *gp;
      out << "  group " << gname << " members=";
      for (uint64_t id : g.members) out << id << ",";
      out << " leased=" << g.leased << " released=" << (g.released ? g.released->id : 0)
          << " retrying=" << g.retrying << "\n";
    }
    std::map<std::string, std::pair<uint64_t, int64_t>> keys;
    for (const auto& [key, entry] : q->dedup) {
      if (entry.expires_ms > e.now_ms()) keys[key] = {entry.job_id, entry.expires_ms};
    }
    for (const auto& [key, entry] : keys) {
      out << "  key " << key << " -> " << entry.first << " @" << entry.second << "\n";
    }
    for (const auto& [sname, sc] : q->schedules) {
      out << "  schedule " << sname << " next=" << sc.next_ms << " fired=" << sc.fired << "\n";
    }
  }
  std::map<uint64_t, std::string> jobs;
  for (const auto& named : e.queues()) {
    const auto& q = named.second;
    auto add = [&](const engine::Job* j) {
      std::ostringstream o;
      const engine::JobExtras* ex = e.extras_of(*j);
      const bool grouped = ex != nullptr && !ex->group.empty();
      o << "job " << j->id << " q=" << j->queue->name << " s=" << engine::job_state_name(j->state)
        << " a=" << j->attempts << " k=" << int{j->kicks} << " p=" << j->priority;
      // A grouped ready job's wait starts again at a restart (by design).
      const bool ready_like =
          j->state == engine::JobState::kReady || j->state == engine::JobState::kHeld;
      if (!(ready_like && grouped)) o << " d=" << j->deadline_ms;
      if (ex != nullptr &&
          (ex->expires_at_ms != 0 || ex->max_attempts != 0 || !ex->dedup_key.empty() ||
           !ex->group.empty() || !ex->origin.empty() || !ex->reason.empty())) {
        o << " exp=" << ex->expires_at_ms << " max=" << ex->max_attempts << " key=" << ex->dedup_key
          << " group=" << ex->group << " from=" << ex->origin << " why=" << ex->reason;
      }
      o << " " << j->payload();
      jobs[j->id] = o.str();
    };
    for (engine::Job* j : q->ready.jobs()) add(j);
    for (const engine::Job* j : q->held.items()) add(j);
    for (const engine::Job* j : q->delayed.items()) add(j);
    for (const engine::Job* j : q->leased.items()) add(j);
    for (const engine::Job* j : q->dead.items()) add(j);
  }
  for (const auto& [id, line] : jobs) out << line << "\n";
  out << "counts";
  for (auto st : {engine::JobState::kReady, engine::JobState::kHeld, engine::JobState::kDelayed,
                  engine::JobState::kLeased, engine::JobState::kDead}) {
    out << " " << e.count_in(st);
  }
  out << " jobs=" << e.job_count() << " payload=" << e.payload_bytes()
      << " sched=" << e.schedule_payload_bytes() << " keys=" << e.dedup_key_bytes() << "\n";
  return out.str();
}

// The lines of `a` not in `b`, and of `b` not in `a`.
std::string line_diff(const std::string& a, const std::string& b) {
  auto lines = [](const std::string& s) {
    std::multiset<std::string> out;
    std::istringstream in(s);
    for (std::string line; std::getline(in, line);) out.insert(line);
    return out;
  };
  const auto la = lines(a);
  const auto lb = lines(b);
  std::string out;
  for (const auto& l : la)
    if (lb.count(l) == 0) out += "- " + l + "\n";
  for (const auto& l : lb)
    if (la.count(l) == 0) out += "+ " + l + "\n";
  return out;
}

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
            const auto r = rng() % 40;
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
          node->harness.settle();
          std::string before = full_fingerprint(eng);
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
            before = full_fingerprint(eng);
            now = node->clock.now_ms();
          }
          if (crash) {
            node.reset();
            fs = std::move(copy);
          }
          node = std::make_unique<Node>(*fs, now);
          REQUIRE(node->open(small_segments()).ok());
          node->engine.expire_due();
          const std::string after = full_fingerprint(node->engine);
          if (before != after) {
            CAPTURE(step);
            const bool same = before == after;
            CHECK_MESSAGE(same, line_diff(before, after));
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
