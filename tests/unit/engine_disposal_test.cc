// What PURGE and DROP remove is gone for every purpose at once and freed
// later, in steps (server/engine/disposal.h): no lookup by id finds such a
// job meanwhile, no count includes it, and the freeing takes only those.
#include <doctest/doctest.h>

#include <functional>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "server/engine/engine.h"
#include "tests/unit/engine_check.h"
#include "tests/unit/engine_fixture.h"
#include "tests/unit/journal_node.h"
#include "wal/memory_file_system.h"

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

// A reply as text, to compare two engines' answers.
std::string said(const Error& error) {
  return std::to_string(static_cast<int>(error.code)) + " " + error.message;
}
std::string said(const Status& status) {
  return status.ok() ? "ok" : said(status.error());
}
template <typename T>
std::string said(const Result<T>& result, const std::function<std::string(const T&)>& ok) {
  return result.ok() ? ok(result.value()) : said(result.error());
}
// A fingerprint without the payload and dedup key bytes, which differ
// while jobs and keys wait to be freed.
std::string without_freed_bytes(std::string fingerprint) {
  for (const char* figure : {" payload=", " keys="}) {
    const size_t at = fingerprint.find(figure);
    if (at == std::string::npos) continue;
    const size_t end = fingerprint.find_first_of(" \n", at + 1);
    fingerprint.erase(at, end == std::string::npos ? std::string::npos : end - at);
  }
  return fingerprint;
}
std::string count_said(const Result<size_t>& r) {
  return said<size_t>(r, [](const size_t& n) { return std::to_string(n); });
}

// Runs `scenario` on a server with a journal, then restarts it from its
// log, after a clean stop or after a crash with what PURGE and DROP
// removed not yet freed: "" when the replay is the live engine, else how
// they differ. Replay frees at once, so the live engine's jobs are freed
// first (which writes nothing), for the payload bytes to compare.
std::string replay_differs(const std::function<void(tq::testing::JournalNode&)>& scenario,
                           bool crash_before_freeing) {
  auto fs = std::make_unique<tq::wal::MemoryFileSystem>();
  auto node = std::make_unique<tq::testing::JournalNode>(*fs);
  REQUIRE(node->open(tq::testing::small_segments()).ok());
  REQUIRE(node->engine.create_queue("q").ok());
  scenario(*node);
  std::unique_ptr<tq::wal::MemoryFileSystem> copy;
  if (crash_before_freeing) {
    REQUIRE(node->harness.wait_durable());
    node->harness.settle();
    copy = fs->power_cut_copy();
  }
  node->engine.finish_disposals();
  node->harness.settle();
  const std::string live = tq::testing::engine_fingerprint(node->engine);
  const std::string broken = check_engine_invariants(node->engine);
  const int64_t now = node->clock.now_ms();
  if (crash_before_freeing) {
    node.reset();
    fs = std::move(copy);
  } else {
    node->harness.close();
    node.reset();
  }
  tq::testing::JournalNode again(*fs, now);
  REQUIRE(again.open(tq::testing::small_segments()).ok());
  again.engine.expire_due();  // what came due while it was down, as tqd's first sweep
  const std::string replayed = tq::testing::engine_fingerprint(again.engine);
  return broken + check_engine_invariants(again.engine) + tq::testing::line_diff(live, replayed);
}

}  // namespace

TEST_SUITE("engine_disposal") {
  TEST_CASE(
      "random operations answer the same whether removed jobs are freed in steps or at once") {
    // Two engines take the same operations; `stepped` frees what PURGE and
    // DROP removed a few jobs at a time, at random, `at_once` right after
    // each operation. Every reply and, but for the payload bytes not yet
    // freed, everything a restart keeps must agree after every operation.
    for (uint64_t seed = 1; seed <= 4; ++seed) {
      CAPTURE(seed);
      std::mt19937_64 rng(seed);
      ManualClock stepped_clock;
      ManualClock at_once_clock;
      Engine stepped(stepped_clock, EngineLimits{}, QueueSettings{});
      Engine at_once(at_once_clock, EngineLimits{}, QueueSettings{});
      const std::vector<std::string> names = {"q", "r", "d"};
      for (const auto& n : names) {
        REQUIRE(stepped.create_queue(n).ok());
        REQUIRE(at_once.create_queue(n).ok());
      }
      uint64_t max_id = 1;
      for (int step = 0; step < 2'000; ++step) {
        CAPTURE(step);
        const std::string q = names[rng() % names.size()];
        const uint64_t id = 1 + rng() % (max_id + 1);
        std::function<std::string(Engine&, ManualClock&)> op;
        switch (rng() % 22) {
          case 0:
          case 1:
          case 2:
          case 3: {
            EnqueueOptions o;
            o.priority = static_cast<int32_t>(rng() % 3);
            if (rng() % 4 == 0) o.delay_ms = 1 + static_cast<int64_t>(rng() % 3'000);
            if (rng() % 4 == 0) o.ttl_ms = o.delay_ms + 1 + static_cast<int64_t>(rng() % 5'000);
            const std::string key = "k" + std::to_string(rng() % 20);
            const std::string group = "g" + std::to_string(rng() % 3);
            const bool keyed = rng() % 4 == 0;
            const bool grouped = rng() % 10 == 0;
            op = [=, &max_id](Engine& e, ManualClock&) {
              EnqueueOptions with = o;
              if (keyed) with.key = key;
              if (grouped) with.group = group;
              auto put = e.enqueue(q, "p", with);
              if (put.ok()) max_id = std::max(max_id, put.value().id);
              return said<Enqueued>(put, [](const Enqueued& x) {
                return std::to_string(x.id) + (x.duplicate ? " duplicate" : "");
              });
            };
            break;
          }
          case 4:
          case 5:
            op = [=](Engine& e, ManualClock&) {
              return said<const Job*>(e.dequeue(q),
                                      [](const Job* const& j) { return std::to_string(j->id); });
            };
            break;
          case 6:
            op = [=](Engine& e, ManualClock&) { return said(e.ack(id)); };
            break;
          case 7: {
            std::optional<int64_t> delay;
            if (rng() % 2 == 0) delay = static_cast<int64_t>(rng() % 2'000);
            std::optional<int32_t> priority;
            if (rng() % 2 == 0) priority = static_cast<int32_t>(rng() % 3);
            op = [=](Engine& e, ManualClock&) {
              return said<Requeue>(e.nack(id, delay, priority), [](const Requeue& r) {
                return std::to_string(static_cast<int>(r));
              });
            };
            break;
          }
          case 8:
            op = [=](Engine& e, ManualClock&) { return said(e.fail(id, "f")); };
            break;
          case 9:
            op = [=](Engine& e, ManualClock&) { return said(e.remove(id)); };
            break;
          case 10:
            op = [=](Engine& e, ManualClock&) { return said(e.kick_job(id)); };
            break;
          case 11: {
            const size_t n = rng() % 5;
            op = [=](Engine& e, ManualClock&) { return count_said(e.kick(q, n)); };
            break;
          }
          case 12:
          case 13:
            op = [=](Engine& e, ManualClock&) { return count_said(e.purge(q)); };
            break;
          case 14:
            op = [=](Engine& e, ManualClock&) {
              return said(e.drop(q)) + (e.create_queue(q).ok() ? " created" : " not created");
            };
            break;
          case 15: {
            QueueSettings s;
            s.max_attempts = static_cast<uint32_t>(rng() % 3);
            s.ttl_dead_letter = rng() % 2 == 0;
            s.dead_letter_queue = rng() % 2 == 0 ? names[rng() % names.size()] : "";
            if (s.dead_letter_queue == q) s.dead_letter_queue.clear();
            s.ack_timeout_ms = 1'000;
            op = [=](Engine& e, ManualClock&) { return said(e.configure(q, s)); };
            break;
          }
          case 16:
          case 17: {
            const auto ms = static_cast<int64_t>(rng() % 1'500);
            op = [=](Engine& e, ManualClock& clock) {
              clock.advance_ms(ms);
              return std::to_string(e.expire_due());
            };
            break;
          }
          case 18:
            op = [=](Engine& e, ManualClock&) { return count_said(e.redrive(q, SIZE_MAX)); };
            break;
          case 19:
            op = [=](Engine& e, ManualClock&) { return count_said(e.purge_dead(q)); };
            break;
          case 20:
            op = [=](Engine& e, ManualClock&) {
              return said<int64_t>(e.touch(id, 500),
                                   [](const int64_t& ms) { return std::to_string(ms); });
            };
            break;
          default:
            op = [=](Engine& e, ManualClock&) {
              const Job* j = e.find_job(id);
              return j == nullptr ? std::string("none")
                                  : std::string(job_state_name(j->state)) + " in " + j->queue->name;
            };
        }
        const std::string reply = op(stepped, stepped_clock);
        REQUIRE(reply == op(at_once, at_once_clock));
        at_once.finish_disposals();
        if (rng() % 3 == 0) stepped.dispose_some(rng() % 5);
        // Each a walk of every job: every few operations (the replies are
        // compared at each), which keeps the sanitized run to seconds.
        if (step % 8 == 0) {
          REQUIRE(without_freed_bytes(tq::testing::engine_fingerprint(stepped)) ==
                  without_freed_bytes(tq::testing::engine_fingerprint(at_once)));
          REQUIRE(check_engine_invariants(stepped) == "");
        }
      }
      stepped.finish_disposals();
      CHECK(tq::testing::engine_fingerprint(stepped) == tq::testing::engine_fingerprint(at_once));
      CHECK(check_engine_invariants(stepped) == "");
    }
  }

  TEST_CASE("an engine destroyed with jobs still to free frees them") {
    // Run under ASan (make test runs it so), this shows any job or queue
    // left behind, or freed twice.
    Fixture f;
    REQUIRE(f.engine.create_queue("r").ok());
    for (int i = 0; i < 100; ++i) f.put("x", {.ttl_ms = 100'000, .key = "k" + std::to_string(i)});
    f.put_n(50, "r");
    REQUIRE(f.take("r") != 0);
    REQUIRE(f.engine.purge("q").value() == 100);
    f.put_n(5);
    REQUIRE(f.engine.drop("q").ok());
    REQUIRE(f.engine.drop("r").ok());
    CHECK(f.engine.jobs_disposing() == 155);
  }

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

  TEST_CASE("PURGE of a queue with message groups: a group goes on from its leased job") {
    // The groups as they were are freed with the jobs; the leased job of a
    // group starts it again, and the group's next jobs queue behind it.
    Fixture f;
    const uint64_t leased = f.put("a", {.group = "g"});
    REQUIRE(f.take() == leased);
    f.put("b", {.group = "g"});
    f.put("c", {.group = "g"});
    f.put("d", {.group = "h"});
    f.put("e", {.group = "h"});
    f.put("plain");
    REQUIRE(f.engine.count_in(JobState::kHeld) == 3);
    REQUIRE(f.engine.purge("q").value() == 5);
    CHECK(f.engine.count_in(JobState::kHeld) == 0);
    CHECK(f.queue().groups.size() == 1);
    CHECK(f.queue().groups.at("g").members == std::set<uint64_t>{leased});
    CHECK(check_engine_invariants(f.engine) == "");

    const uint64_t next = f.put("f", {.group = "g"});
    CHECK(f.take() == 0);  // held behind the leased job
    REQUIRE(f.engine.nack(leased, std::nullopt, std::nullopt).ok());
    f.engine.finish_disposals();
    CHECK(f.take() == leased);  // a retry keeps its place
    REQUIRE(f.engine.ack(leased).ok());
    CHECK(f.take() == next);
    CHECK(f.engine.payload_bytes() == std::string("f").size());
    CHECK(check_engine_invariants(f.engine) == "");
  }

  TEST_CASE(
      "DROP forgets the queue's dedup keys at once and frees them in steps, before the jobs") {
    Fixture f;
    // Keys of one length: each costs the same.
    for (int i = 0; i < 5'000; ++i) f.put("x", {.key = "k" + std::to_string(10'000 + i)});
    const uint64_t key_bytes = f.engine.dedup_key_bytes();
    REQUIRE(key_bytes == 5'000 * dedup_key_cost("k12345"));
    REQUIRE(f.engine.drop("q").ok());
    REQUIRE(f.engine.create_queue("q").ok());
    auto again = f.engine.enqueue("q", "y", {.key = "k0"});
    REQUIRE(again.ok());
    CHECK_FALSE(again.value().duplicate);  // the new queue knows none of them

    REQUIRE(f.engine.dispose_some(1'000));
    CHECK(f.engine.dedup_key_bytes() ==
          key_bytes - 1'000 * dedup_key_cost("k12345") + dedup_key_cost("k0"));
    CHECK(f.engine.jobs_disposing() == 5'000);
    f.engine.finish_disposals();
    CHECK(f.engine.dedup_key_bytes() == dedup_key_cost("k0"));
    CHECK(f.engine.job_count() == 1);
    CHECK(check_engine_invariants(f.engine) == "");
  }

  TEST_CASE("DROP of a big message group frees its set of members in steps, before the jobs") {
    // Before the jobs, so that jobs_freeing (the jobs left) is not 0 while
    // any of the freeing is.
    Fixture f;
    for (int i = 0; i < 10'000; ++i) f.put("x", {.group = "g"});
    REQUIRE(f.engine.drop("q").ok());
    for (int i = 0; i < 10; ++i) {
      REQUIRE(f.engine.dispose_some(1'000));
      CHECK(f.engine.jobs_disposing() == 10'000);  // the group's 10,000 members first
    }
    int steps = 0;
    while (f.engine.dispose_some(1'000)) ++steps;
    CHECK(steps == 9);  // the tenth frees the last jobs
    CHECK(f.engine.jobs_disposing() == 0);
    CHECK(f.engine.payload_bytes() == 0);
  }
  TEST_CASE("PURGE of message groups replays to the live state, whatever their jobs do after") {
    using Node = tq::testing::JournalNode;
    auto put = [](Node& n, const std::string& payload, EnqueueOptions o) {
      auto r = n.engine.enqueue("q", payload, o);
      REQUIRE(r.ok());
      return r.value().id;
    };
    auto take = [](Node& n) {
      auto r = n.engine.dequeue("q");
      return r.ok() ? r.value()->id : uint64_t{0};
    };
    const std::vector<std::pair<std::string, std::function<void(Node&)>>> scenarios = {
        {"the retrying job leased, NACKed after",
         [&](Node& n) {
           const uint64_t a = put(n, "a", {.group = "g"});
           put(n, "b", {.group = "g"});
           REQUIRE(take(n) == a);
           REQUIRE(n.engine.nack(a, std::nullopt, std::nullopt).ok());
           REQUIRE(take(n) == a);
           put(n, "c", {.delay_ms = 5'000, .group = "g"});
           REQUIRE(n.engine.purge("q").value() == 2);
           put(n, "d", {.group = "g"});
           REQUIRE(n.engine.nack(a, 1'000, std::nullopt).ok());
           n.clock.advance_ms(2'000);
           n.engine.expire_due();
         }},
        {"the retrying job waiting, another put after",
         [&](Node& n) {
           const uint64_t a = put(n, "a", {.group = "g"});
           put(n, "b", {.group = "g"});
           REQUIRE(take(n) == a);
           REQUIRE(n.engine.nack(a, 5'000, std::nullopt).ok());
           REQUIRE(n.engine.purge("q").value() == 2);
           put(n, "c", {.group = "g"});
           CHECK(take(n) != 0);
         }},
        {"a lease that runs out, a FAIL, an ACK",
         [&](Node& n) {
           for (const char* g : {"g", "h", "i"}) {
             put(n, "x", {.group = g});
             put(n, "y", {.group = g});
           }
           std::vector<uint64_t> leased;
           for (uint64_t id; (id = take(n)) != 0;) leased.push_back(id);
           REQUIRE(leased.size() == 3);
           REQUIRE(n.engine.purge("q").value() == 3);
           put(n, "z", {.group = "g"});
           put(n, "z", {.group = "h"});
           REQUIRE(n.engine.fail(leased[1], "no").ok());
           REQUIRE(n.engine.ack(leased[2]).ok());
           n.clock.advance_ms(60'000);  // leased[0]'s lease runs out
           n.engine.expire_due();
         }},
        {"a KICK of a dead job of the group",
         [&](Node& n) {
           const uint64_t a = put(n, "a", {.group = "g"});
           REQUIRE(take(n) == a);
           REQUIRE(n.engine.fail(a, "no").ok());
           const uint64_t b = put(n, "b", {.group = "g"});
           put(n, "c", {.group = "g"});
           REQUIRE(take(n) == b);
           REQUIRE(n.engine.purge("q").value() == 1);
           REQUIRE(n.engine.kick_job(a).ok());
           REQUIRE(n.engine.nack(b, std::nullopt, std::nullopt).ok());
         }},
        {"a PURGE with an earlier one still to free",
         [&](Node& n) {
           const uint64_t a = put(n, "a", {.group = "g"});
           put(n, "b", {.group = "g"});
           REQUIRE(take(n) == a);
           REQUIRE(n.engine.purge("q").value() == 1);
           put(n, "c", {.group = "g"});
           REQUIRE(n.engine.nack(a, std::nullopt, std::nullopt).ok());
           REQUIRE(take(n) == a);
           put(n, "d", {.group = "g"});
           REQUIRE(n.engine.purge("q").value() == 2);
           REQUIRE(n.engine.nack(a, std::nullopt, std::nullopt).ok());
         }},
        {"DROP, CREATE again, new jobs in the group",
         [&](Node& n) {
           put(n, "a", {.group = "g"});
           put(n, "b", {.group = "g"});
           REQUIRE(take(n) != 0);
           REQUIRE(n.engine.drop("q").ok());
           REQUIRE(n.engine.create_queue("q").ok());
           const uint64_t c = put(n, "c", {.group = "g"});
           put(n, "d", {.group = "g"});
           REQUIRE(take(n) == c);
         }},
        {"a death moves the leased job to its dead_letter_queue",
         [&](Node& n) {
           REQUIRE(n.engine.create_queue("dlq").ok());
           QueueSettings s = n.engine.find_queue("q")->settings;
           s.dead_letter_queue = "dlq";
           REQUIRE(n.engine.configure("q", s).ok());
           const uint64_t a = put(n, "a", {.group = "g"});
           put(n, "b", {.group = "g"});
           REQUIRE(take(n) == a);
           REQUIRE(n.engine.purge("q").value() == 1);
           put(n, "c", {.group = "g"});
           REQUIRE(n.engine.fail(a, "no").ok());
         }},
    };
    for (const auto& named : scenarios) {
      for (bool crash : {false, true}) {
        CAPTURE(named.first);
        CAPTURE(crash);
        CHECK(replay_differs(named.second, crash) == "");
      }
    }
  }
}

}  // namespace engine_disposal_test
