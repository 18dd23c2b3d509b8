// The journal and the log together: whatever happens to the engine, a replay
// of the log rebuilds the same state, through rotations, segment deletions
// and compaction sweeps.
#include <doctest/doctest.h>

#include <random>
#include <sstream>

#include "server/journal.h"
#include "tests/unit/wal_test_support.h"

using namespace tq;
using wal::testing::LogHarness;

namespace {

// Everything replay must preserve, as text: queues with settings, and jobs
// with queue, priority, attempts and payload in delivery order. A leased job
// is written as ready: that is what it becomes after a restart.
std::string fingerprint(const engine::Engine& e) {
  std::ostringstream out;
  out << "next_id>=" << (e.next_job_id() > 0) << "\n";
  for (const auto& [name, q] : e.queues()) {
    out << "queue " << name << " ack_timeout=" << q->settings.ack_timeout_ms << "\n";
    std::vector<const engine::Job*> jobs(q->ready.items().begin(), q->ready.items().end());
    jobs.insert(jobs.end(), q->leased.items().begin(), q->leased.items().end());
    std::sort(jobs.begin(), jobs.end(), engine::ReadyOrder{});
    for (const engine::Job* j : jobs) {
      out << "  job " << j->id << " p=" << j->priority << " a=" << j->attempts << " "
          << j->payload() << "\n";
    }
  }
  return out.str();
}

struct Node {
  engine::ManualClock clock;
  engine::Engine engine{clock, engine::EngineLimits{.auto_create_queues = false, .max_queues = 100},
                        engine::QueueSettings{}};
  server::Journal journal{engine, 1.5};
  LogHarness harness;

  explicit Node(wal::MemoryFileSystem& fs) : harness(fs) {}

  wal::Status open(wal::LogOptions options) {
    wal::OpenSummary summary;
    auto opened = wal::Log::open(
        fs(), options, harness.reporter,
        [&](const wal::Record& r, uint32_t segment) { return journal.apply(r, segment); }, &summary);
    if (!opened) return opened.error();
    engine.finish_restore();
    harness.adopt(std::move(opened).value());
    journal.attach(*harness.log);
    return {};
  }
  wal::MemoryFileSystem& fs() { return harness.fs(); }
};

wal::LogOptions small_segments() {
  wal::LogOptions o;
  o.dir = "/data/wal";
  o.segment_bytes = 8192;
  o.retry_interval_ms = 5;
  return o;
}

}  // namespace

TEST_SUITE("journal") {
  TEST_CASE("replay rebuilds the state through rotation, deletion and compaction") {
    wal::MemoryFileSystem fs;
    std::string expected;
    uint64_t max_id = 0;
    {
      Node node(fs);
      REQUIRE(node.open(small_segments()).ok());
      std::mt19937 rng(99);
      const std::vector<std::string> names = {"alpha", "beta", "gamma"};
      for (const auto& n : names) REQUIRE(node.engine.create_queue(n).ok());
      std::vector<uint64_t> leased;
      for (int step = 0; step < 20000; ++step) {
        const std::string& q = names[rng() % names.size()];
        switch (rng() % 10) {
          case 0: case 1: case 2: {
            auto id = node.engine.enqueue(q, "payload-" + std::to_string(step) + std::string(rng() % 80, 'z'));
            REQUIRE(id.ok());
            max_id = std::max(max_id, id->id);
            break;
          }
          case 3: case 4: case 5: {
            auto job = node.engine.dequeue(q);
            if (job.ok()) leased.push_back((*job)->id);
            break;
          }
          case 6: case 7: case 8:
            if (!leased.empty()) {
              size_t i = rng() % leased.size();
              (void)node.engine.ack(leased[i]);
              leased.erase(leased.begin() + static_cast<long>(i));
            }
            break;
          case 9:
            node.clock.advance_ms(10'000);
            node.engine.expire_due();
            break;
        }
        node.journal.maintain();
        if (step % 50 == 0) REQUIRE(node.harness.wait_durable());
      }
      // Let a sweep under way finish.
      for (int i = 0; i < 100 && node.journal.stats().compacting; ++i) node.journal.maintain();
      node.harness.settle();
      node.journal.maintain();
      node.harness.settle();

      auto stats = node.journal.stats();
      auto log_stats = node.harness.log->stats();
      MESSAGE("compactions " << stats.compactions << ", moved " << stats.moved_records
                             << ", segments deleted " << log_stats.segments_deleted << ", log "
                             << log_stats.bytes << " bytes for " << stats.live_bytes << " live");
      CHECK(stats.compactions > 0);
      CHECK(log_stats.segments_deleted > 10);
      // Each sweep frees at least (ratio - 1) x live: moves stay in
      // proportion to what was written (a sweep chasing its own tail would
      // move millions here).
      CHECK(stats.moved_records < 20000);
      // The disk bound: a multiple of the live data, plus a few segments.
      CHECK(log_stats.bytes <= 1.5 * static_cast<double>(stats.live_bytes) + 3 * 8192);
      expected = fingerprint(node.engine);
      node.harness.close();
    }
    Node replayed(fs);
    REQUIRE(replayed.open(small_segments()).ok());
    CHECK(fingerprint(replayed.engine) == expected);
    CHECK(replayed.engine.next_job_id() > max_id);
  }

  TEST_CASE("ids continue above every id ever issued, even when its segments are gone") {
    wal::MemoryFileSystem fs;
    uint64_t last = 0;
    {
      Node node(fs);
      REQUIRE(node.open(small_segments()).ok());
      REQUIRE(node.engine.create_queue("q").ok());
      for (int i = 0; i < 500; ++i) {
        last = node.engine.enqueue("q", std::string(100, 'x'))->id;
        REQUIRE(node.engine.dequeue("q").ok());
        REQUIRE(node.engine.ack(last).ok());
        node.journal.maintain();
        if (i % 20 == 0) REQUIRE(node.harness.wait_durable());
      }
      node.harness.settle();
      node.journal.maintain();
      node.harness.settle();
      CHECK(node.harness.log->stats().segments <= 2);
      node.harness.close();
    }
    Node replayed(fs);
    REQUIRE(replayed.open(small_segments()).ok());
    CHECK(replayed.engine.job_count() == 0);
    CHECK(replayed.engine.enqueue("q", "next")->id == last + 1);
  }

  TEST_CASE("a recovery rewrites live state so the damaged segment can go") {
    wal::MemoryFileSystem fs;
    std::string expected;
    {
      Node node(fs);
      REQUIRE(node.open(small_segments()).ok());
      REQUIRE(node.engine.create_queue("q").ok());
      for (int i = 0; i < 20; ++i) REQUIRE(node.engine.enqueue("q", "job " + std::to_string(i)).ok());
      REQUIRE(node.harness.wait_durable());
      node.harness.close();
    }
    // Damage the fifth job's record.
    auto listed = fs.list("/data/wal");
    std::string segment;
    for (const auto& n : *listed) if (wal::parse_segment_file_name(n)) segment = "/data/wal/" + n;
    std::string data = fs.contents(segment);
    size_t at = data.find("job 4");
    REQUIRE(at != std::string::npos);
    data[at] = 'J';
    fs.set_contents(segment, data);

    {
      Node refused(fs);
      CHECK(refused.open(small_segments()).code() == wal::Status::Code::kCorruption);
    }
    {
      Node node(fs);
      auto o = small_segments();
      o.recover = true;
      REQUIRE(node.open(o).ok());
      CHECK(node.harness.reporter.drops.size() == 1);
      CHECK(node.engine.job_count() == 19);
      node.journal.compact_all();
      node.harness.settle();
      CHECK_FALSE(fs.exists(segment));
      expected = fingerprint(node.engine);
      node.harness.close();
    }
    Node clean(fs);
    REQUIRE(clean.open(small_segments()).ok());  // no --wal-recover needed any more
    CHECK(fingerprint(clean.engine) == expected);
  }
}

TEST_SUITE("journal") {
  TEST_CASE("a live job's segment is never deleted while compaction churns") {
    wal::MemoryFileSystem fs;
    std::string expected;
    {
      Node node(fs);
      auto o = small_segments();
      REQUIRE(node.open(o).ok());
      REQUIRE(node.engine.create_queue("q").ok());
      std::mt19937 rng(5);
      std::vector<uint64_t> leased;
      for (int step = 0; step < 30000; ++step) {
        int op = static_cast<int>(rng() % 10);
        if (op < 5) {
          REQUIRE(node.engine.enqueue("q", std::string(rng() % 200, 'x')).ok());
        } else if (op < 8) {
          auto job = node.engine.dequeue("q");
          if (job.ok()) leased.push_back((*job)->id);
        } else if (!leased.empty()) {
          (void)node.engine.ack(leased.back());
          leased.pop_back();
        }
        node.journal.maintain();
        if (step % 7 == 0) {
          node.harness.log->flush();
          node.harness.log->poll();
        }
        // Every live job's full record is in a segment the log still has.
        if (step % 100 == 0) {
          node.harness.settle();
          for (const auto& [name, q] : node.engine.queues()) {
            for (auto* heap : {&q->ready.items(), &q->leased.items()}) {
              for (const engine::Job* j : *heap) {
                REQUIRE(j->log_segment >= node.harness.log->oldest_segment());
              }
            }
          }
        }
      }
      node.harness.settle();
      expected = fingerprint(node.engine);
      node.harness.close();
    }
    Node replayed(fs);
    REQUIRE(replayed.open(small_segments()).ok());
    CHECK(fingerprint(replayed.engine) == expected);
  }
}
