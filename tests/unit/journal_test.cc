// The journal and the log together: whatever happens to the engine, a replay
// of the log rebuilds the same state, through rotations, segment deletions
// and compaction sweeps.
#include <doctest/doctest.h>

#include <random>
#include <map>
#include <sstream>

#include "server/bulk_work.h"
#include "server/journal.h"
#include "tests/unit/journal_node.h"
#include "tests/unit/wal_test_support.h"
#include "wal/coding.h"
#include "wal/run_marker.h"

namespace journal_test {

using namespace tq;
using wal::testing::LogHarness;

namespace {

// Everything replay must preserve, as text: queues with settings and pause,
// jobs with queue, priority, attempts, payload and their state-specific
// fields (a ready job's ready-since time too, but for a message group's,
// which a replay starts again), in delivery order; leased jobs with when
// their leases end, which a restart keeps; dedup keys.
std::string fingerprint(const engine::Engine& e) {
  std::ostringstream out;
  for (const auto& [name, q] : e.queues()) {
    const engine::QueueSettings& s = q->settings;
    out << "queue " << name << " ack=" << s.ack_timeout_ms << " max=" << s.max_attempts
        << " backoff=" << s.backoff_base_ms << "/" << s.backoff_factor << "/" << s.backoff_max_ms
        << "/" << s.backoff_jitter << " dedup=" << s.dedup_window_ms << " size=" << s.max_size
        << " prio=" << s.priority << " delay=" << s.delay_ms << " ttl=" << s.ttl_ms
        << " ttl_dl=" << s.ttl_dead_letter << " leased_max=" << s.max_leased
        << " rate=" << s.rate_limit << "/" << s.rate_window_ms
        << " dead_keep=" << s.dead_retention_ms << "/" << s.dead_max
        << " dlq=" << s.dead_letter_queue << " paused=" << q->paused << "/" << q->resume_at_ms
        << "\n";
    std::vector<const engine::Job*> held;
    std::vector<engine::Job*> ready_jobs = q->ready.jobs();
    std::vector<const engine::Job*> ready(ready_jobs.begin(), ready_jobs.end());
    std::sort(ready.begin(), ready.end(), engine::ReadyOrder{});
    auto extras = [&](const engine::Job* j) {
      std::string x;
      if (const engine::JobExtras* ex = e.extras_of(*j)) {
        if (ex->expires_at_ms) x += " exp=" + std::to_string(ex->expires_at_ms);
        if (ex->max_attempts) x += " max=" + std::to_string(ex->max_attempts);
        if (!ex->dedup_key.empty()) x += " key=" + ex->dedup_key.str();
        if (!ex->group.empty()) x += " group=" + ex->group;
        if (!ex->origin.empty()) x += " from=" + ex->origin.str();
        if (j->state != engine::JobState::kDead && !ex->reason.empty())
          x += " why=" + ex->reason.str();
      }
      return x;
    };
    for (const engine::Job* j : ready) {
      out << "  ready " << j->id << " p=" << j->priority << " a=" << j->attempts << extras(j);
      const engine::JobExtras* ex = e.extras_of(*j);
      if (ex == nullptr || ex->group.empty()) out << " since=" << j->deadline_ms;
      out << " " << j->payload() << "\n";
    }
    // Kept to their ends across a restart.
    std::vector<const engine::Job*> leased(q->leased.items().begin(), q->leased.items().end());
    std::sort(leased.begin(), leased.end(), engine::IdOrder{});
    for (const engine::Job* j : leased) {
      out << "  leased " << j->id << " until=" << j->deadline_ms << " p=" << j->priority
          << " a=" << j->attempts << " k=" << int{j->kicks} << extras(j) << " " << j->payload()
          << "\n";
    }
    for (const engine::Job* j : q->held.items()) held.push_back(j);
    std::sort(held.begin(), held.end(), engine::IdOrder{});
    for (const engine::Job* j : held) {
      out << "  held " << j->id << " p=" << j->priority << " a=" << j->attempts << extras(j) << " "
          << j->payload() << "\n";
    }
    std::vector<const engine::Job*> delayed(q->delayed.items().begin(), q->delayed.items().end());
    std::sort(delayed.begin(), delayed.end(), engine::DeadlineOrder{});
    for (const engine::Job* j : delayed) {
      out << "  delayed " << j->id << " at=" << j->deadline_ms << " p=" << j->priority
          << " a=" << j->attempts << extras(j) << " " << j->payload() << "\n";
    }
    std::vector<const engine::Job*> dead(q->dead.items().begin(), q->dead.items().end());
    std::sort(dead.begin(), dead.end(), engine::DeadlineOrder{});
    for (const engine::Job* j : dead) {
      out << "  dead " << j->id << " at=" << j->deadline_ms << " p=" << j->priority
          << " a=" << j->attempts << " why=" << e.extras_of(*j)->reason.view() << extras(j) << " "
          << j->payload() << "\n";
    }
    std::map<std::string, std::pair<uint64_t, int64_t>> keys;
    for (const auto& [key, entry] : q->dedup) {
      // An expired key is gone in meaning, whether or not it was cleaned up yet.
      if (entry.expires_ms > e.now_ms()) keys[key] = {entry.job_id, entry.expires_ms};
    }
    for (const auto& [key, entry] : keys) {
      out << "  key " << key << " -> " << entry.first << " @" << entry.second << "\n";
    }
  }
  return out.str();
}

using Node = tq::testing::JournalNode;
using tq::testing::small_segments;

// A LEASE record as tqds before the morning of December 6 2026 wrote it: id and attempts, no
// end. Written to the log alone; the engine of `node` does not see it.
void append_old_lease(Node& node, uint64_t id, uint32_t attempts) {
  std::string body;
  wal::put_varint(body, id);
  wal::put_varint(body, attempts);
  node.harness.log->append(static_cast<uint8_t>(server::RecordType::kLease), body);
}

// Queue "q", whose jobs get one delivery: one a restart counted goes to dead letters.
void create_single_attempt_queue(Node& node) {
  REQUIRE(node.engine.create_queue("q").ok());
  engine::QueueSettings s = node.engine.find_queue("q")->settings;
  s.max_attempts = 1;
  REQUIRE(node.engine.configure("q", s).ok());
}

// Where each record of a segment file starts, with its type.
std::vector<std::pair<size_t, uint8_t>> records_in(const std::string& data) {
  std::vector<std::pair<size_t, uint8_t>> found;
  size_t at = wal::kSegmentHeaderSize;
  for (;;) {
    wal::Record r;
    size_t size = 0;
    if (wal::decode_record(std::string_view(data).substr(at), &r, &size) != wal::Decoded::kRecord) {
      return found;
    }
    found.emplace_back(at, r.type);
    at += size;
  }
}

// Flips a bit in the body of the first record of `type` in the only segment.
void damage_first(wal::MemoryFileSystem& fs, server::RecordType type) {
  auto listed = fs.list("/data/wal");
  std::string segment;
  for (const auto& n : *listed) {
    if (wal::parse_segment_file_name(n)) segment = "/data/wal/" + n;
  }
  std::string data = fs.contents(segment);
  for (const auto& [at, t] : records_in(data)) {
    if (t == static_cast<uint8_t>(type)) {
      data[at + wal::kRecordHeaderSize] ^= 0x01;
      fs.set_contents(segment, data);
      return;
    }
  }
  FAIL("no record of type " << static_cast<int>(type));
}

// The body of a QUEUE record for queue 3, "q", with default settings and one
// cron schedule, "nightly", logged with its next time and `fired` count.
std::string queue_with_cron(std::string_view cron, uint64_t fired) {
  std::string body;
  wal::put_varint(body, 3);  // queue number
  wal::put_bytes(body, "q");
  for (uint64_t v : {30'000, 0, 0, 2'000, 3'600'000, 0, 300'000, 0}) wal::put_varint(body, v);
  wal::put_signed_varint(body, 0);                                     // priority
  body += static_cast<char>(0);                                        // flags
  for (uint64_t v : {0, 0, 1'000, 0, 0, 0}) wal::put_varint(body, v);  // limits, resume_at
  wal::put_varint(body, 1);                                            // one schedule
  wal::put_bytes(body, "nightly");
  wal::put_varint(body, 0);  // every_ms: a cron
  wal::put_bytes(body, cron);
  wal::put_bytes(body, "report");
  wal::put_signed_varint(body, 0);
  wal::put_varint(body, 0);
  wal::put_varint(body, 0);
  wal::put_bytes(body, "");
  wal::put_varint(body, 1'700'000'000'000);  // next_ms, as logged
  wal::put_varint(body, fired);
  return body;
}

// `n` jobs of 40 bytes in queue q, over many small segments; their ids.
std::vector<uint64_t> backlog(Node& node, int n) {
  std::vector<uint64_t> ids;
  for (int i = 0; i < n; ++i) {
    ids.push_back(node.engine.enqueue("q", std::string(40, 'x')).value().id);
  }
  return ids;
}

// The log as a crash would leave it right after the last JOB record: the
// rest of its segment zeros (a write cut off), no CLOSED marker.
void cut_after_last_job(wal::MemoryFileSystem& fs) {
  if (fs.exists("/data/wal/" + std::string(wal::kClosedMarkerName))) {
    REQUIRE(fs.remove("/data/wal/" + std::string(wal::kClosedMarkerName)).ok());
  }
  std::string segment;
  std::string data;
  size_t job_end = 0;
  const auto listed = fs.list("/data/wal");  // kept: a range-for over *fs.list() dangles
  for (const auto& n : *listed) {
    if (!wal::parse_segment_file_name(n)) continue;
    const std::string contents = fs.contents("/data/wal/" + n);
    for (const auto& [at, type] : records_in(contents)) {
      wal::Record r;
      size_t size = 0;
      REQUIRE(wal::decode_record(std::string_view(contents).substr(at), &r, &size) ==
              wal::Decoded::kRecord);
      if (type == static_cast<uint8_t>(server::RecordType::kJob)) {
        segment = "/data/wal/" + n;
        data = contents;
        job_end = at + size;
      }
    }
  }
  REQUIRE(job_end > 0);
  std::fill(data.begin() + static_cast<long>(job_end), data.end(), '\0');
  fs.set_contents(segment, data);
}

// A schedule "tick" putting `payload` every `every_ms`.
engine::ScheduleSpec tick_every(int64_t every_ms, std::string_view payload) {
  engine::ScheduleSpec tick;
  tick.name = "tick";
  tick.every_ms = every_ms;
  tick.payload = payload;
  return tick;
}

// A firing of "tick" (every minute), then a crash that kept the job's
// record and lost the record of the schedule's next time. The time the
// firing was due.
// A schedule of every minute fires `late_ms` after its time (0: on time);
// then a crash keeps the firing's job and loses the schedule's next time.
// Returns the time it fired for.
int64_t fire_then_lose_next_time(wal::MemoryFileSystem& fs, int64_t late_ms = 0) {
  Node node(fs);
  REQUIRE(node.open(small_segments()).ok());
  REQUIRE(node.engine.create_queue("q").ok());
  REQUIRE(node.engine.schedule("q", tick_every(60'000, "tick!")).ok());
  const int64_t fired_at = node.engine.find_queue("q")->schedules.at("tick").next_ms;
  node.clock.set_ms(fired_at + late_ms);
  REQUIRE(node.engine.expire_due() > 0);
  REQUIRE(node.engine.find_queue("q")->ready.size() == 1);
  REQUIRE(node.engine.find_queue("q")->schedules.at("tick").fired == 1);
  node.harness.settle();
  node.harness.close();
  cut_after_last_job(fs);
  return fired_at;
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

  TEST_CASE("two power cuts under never: ids the run between them gave out are not given again") {
    // After the first cut the next run skips ids past any the lost records
    // may have held, and writes the skip (its counters) first. Under never
    // nothing syncs it: a second cut took it with the jobs that run put, the
    // third run derived the same skip from the same files, and gave the
    // second run's ids out again.
    auto fs = std::make_unique<wal::MemoryFileSystem>();
    wal::LogOptions o = small_segments();
    o.fsync = wal::FsyncPolicy::kNever;
    o.segment_bytes = 1 << 20;
    // Opens as the daemon does.
    auto open = [&](Node& node) {
      wal::OpenSummary summary;
      auto opened = wal::Log::open(
          node.fs(), o, node.harness.reporter,
          [&](const wal::Record& r, uint32_t segment) { return node.journal.apply(r, segment); },
          &summary);
      REQUIRE(opened.ok());
      node.engine.finish_restore();
      node.harness.adopt(std::move(opened).value());
      const bool lost = summary.acknowledged_may_be_lost || !summary.torn.empty();
      if (lost) node.journal.skip_lost_ids(summary.seq_bound);
      node.journal.attach(*node.harness.log);
      if (lost) node.journal.record_counters();
    };
    // A run that puts `n` jobs (acknowledged: written, not synced) and ends
    // in a power cut; their ids.
    auto run_cut = [&](int n) {
      std::unique_ptr<wal::MemoryFileSystem> after;
      std::vector<uint64_t> ids;
      {
        Node node(*fs);
        open(node);
        ids = backlog(node, n);
        REQUIRE(node.harness.wait_durable());
        after = fs->power_cut_copy();
      }
      fs = std::move(after);
      return ids;
    };
    {
      Node node(*fs);
      open(node);
      REQUIRE(node.engine.create_queue("q").ok());
      backlog(node, 5);
    }  // a clean stop: all synced
    run_cut(5);
    const std::vector<uint64_t> given = run_cut(3);
    Node node(*fs);
    open(node);
    CHECK(backlog(node, 1).front() > given.back());
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
  TEST_CASE("recover: no id a dropped JOB record held is issued again") {
    // The next id came from the highest id replayed: with the record of the
    // newest job dropped, the next ENQUEUE was given its id a second time.
    wal::MemoryFileSystem fs;
    {
      Node node(fs);
      REQUIRE(node.open(small_segments()).ok());
      REQUIRE(node.engine.create_queue("q").ok());
      for (uint64_t i = 1; i <= 3; ++i) {
        REQUIRE(node.engine.enqueue("q", "job " + std::to_string(i))->id == i);
      }
      REQUIRE(node.harness.wait_durable());
      node.harness.close();
    }
    auto listed = fs.list("/data/wal");
    std::string segment;
    for (const auto& n : *listed) {
      if (wal::parse_segment_file_name(n)) segment = "/data/wal/" + n;
    }
    std::string data = fs.contents(segment);
    const size_t last = data.find("job 3");
    REQUIRE(last != std::string::npos);
    SUBCASE("its last byte flipped") {
      data[last + 4] = '4';
      fs.set_contents(segment, data);
    }
    SUBCASE("the file cut short inside it") {
      fs.set_contents(segment, data.substr(0, last));
    }
    SUBCASE("the file cut to nothing") {
      fs.set_contents(segment, "");
    }
    {
      Node refused(fs);
      CHECK(refused.open(small_segments()).code() == wal::Status::Code::kCorruption);
    }
    uint64_t next = 0;
    {
      Node node(fs);
      auto o = small_segments();
      o.recover = true;
      REQUIRE(node.open(o).ok());
      CHECK(node.harness.reporter.drops.size() >= 1);
      node.journal.compact_all();
      if (node.engine.find_queue("q") == nullptr) REQUIRE(node.engine.create_queue("q").ok());
      next = node.engine.enqueue("q", "after")->id;
      CHECK(next > 3);
      REQUIRE(node.harness.wait_durable());
      node.harness.settle();
      node.harness.close();
    }
    Node clean(fs);
    REQUIRE(clean.open(small_segments()).ok());
    CHECK(clean.engine.enqueue("q", "later")->id > next);
  }

  TEST_CASE("recover: a queue created again after a DROP whose record is lost") {
    // Replay met QUEUE(2, "a") while queue 1 still held "a": it used to
    // crash tqd --wal-recover (a dangling queue pointer).
    wal::MemoryFileSystem fs;
    {
      Node node(fs);
      REQUIRE(node.open(small_segments()).ok());
      REQUIRE(node.engine.create_queue("a").ok());
      REQUIRE(node.engine.enqueue("a", "old").ok());
      REQUIRE(node.engine.drop("a").ok());
      REQUIRE(node.engine.create_queue("a").ok());
      REQUIRE(node.engine.enqueue("a", "new").ok());
      REQUIRE(node.harness.wait_durable());
      node.harness.close();
    }
    damage_first(fs, server::RecordType::kQueueDrop);
    std::string expected;
    {
      Node node(fs);
      auto o = small_segments();
      o.recover = true;
      REQUIRE(node.open(o).ok());
      CHECK(node.harness.reporter.drops.size() == 1);
      const engine::Queue* a = node.engine.find_queue("a");
      REQUIRE(a != nullptr);
      CHECK(a->number == 2);
      CHECK(node.engine.queues().size() == 1);
      REQUIRE(node.engine.job_count() == 1);
      auto job = node.engine.dequeue("a");
      REQUIRE(job.ok());
      CHECK((*job)->payload() == "new");
      node.journal.compact_all();
      node.harness.settle();
      expected = fingerprint(node.engine);
      node.harness.close();
    }
    Node clean(fs);
    REQUIRE(clean.open(small_segments()).ok());
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
          node.harness.turn();
        }
        // Every live job's full record is in a segment the log still has.
        if (step % 100 == 0) {
          node.harness.settle();
          for (const auto& [name, q] : node.engine.queues()) {
            std::vector<engine::Job*> live = q->ready.jobs();
            live.insert(live.end(), q->leased.items().begin(), q->leased.items().end());
            for (const engine::Job* j : live) {
              REQUIRE(j->log_segment >= node.harness.log->oldest_segment());
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

TEST_SUITE("journal") {
  TEST_CASE(
      "a compaction sweep moves every live dedup key while keys are forgotten between its steps") {
    wal::MemoryFileSystem fs;
    Node node(fs);
    REQUIRE(node.open(small_segments()).ok());
    REQUIRE(node.engine.create_queue("q").ok());
    std::mt19937 rng(11);
    engine::QueueSettings s = node.engine.find_queue("q")->settings;
    // Keys whose windows differ, each job finished at once: only the keys
    // stay live, more of them than a sweep step visits.
    for (int i = 0; i < 12000; ++i) {
      if (i % 50 == 0) {
        s.dedup_window_ms = 60'000 + static_cast<int64_t>(rng() % 3'600'000);
        REQUIRE(node.engine.configure("q", s).ok());
      }
      const std::string key = "k" + std::to_string(i);
      REQUIRE(node.engine.enqueue("q", "x", engine::EnqueueOptions{.key = key}).ok());
      auto job = node.engine.dequeue("q");
      REQUIRE(job.ok());
      REQUIRE(node.engine.ack((*job)->id).ok());
      if (i % 100 == 0) node.harness.turn();
    }
    node.harness.settle();

    // Keys run out between the sweep's steps: forgetting one reorders the
    // expiry heap under a sweep that walks it.
    uint32_t cut = 0;
    while (node.journal.stats().compactions == 0) {
      const uint32_t current = node.harness.log->current_segment();
      const bool was_sweeping = node.journal.stats().compacting;
      node.journal.maintain();
      if (!was_sweeping && node.journal.stats().compacting) cut = current;
      node.clock.advance_ms(40'000);
      node.engine.expire_due();
      node.harness.turn();
    }
    REQUIRE(cut != 0);
    REQUIRE(!node.engine.find_queue("q")->dedup.empty());  // keys were left to move

    // The sweep missed none: every segment below its cut can go.
    node.harness.settle();
    node.journal.maintain();
    CHECK(node.harness.log->oldest_segment() >= cut);
    for (const auto& [key, entry] : node.engine.find_queue("q")->dedup) {
      REQUIRE(entry.log_segment >= cut);
    }
  }

  TEST_CASE("no compaction sweep starts without disk room for the live records it re-writes") {
    wal::MemoryFileSystem fs;
    Node node(fs);
    REQUIRE(node.open(small_segments()).ok());
    REQUIRE(node.engine.create_queue("q").ok());
    // Half of every segment finished: the log is past ratio x live, and no
    // one segment is dead enough to move on its own.
    const std::vector<uint64_t> ids = backlog(node, 3000);
    for (size_t i = 0; i < ids.size(); i += 2) REQUIRE(node.engine.remove(ids[i]).ok());
    node.harness.settle();
    const uint64_t live = node.journal.stats().live_bytes;
    const uint64_t segment = node.harness.log->segment_bytes();
    const uint64_t head = node.harness.log->head_room();
    REQUIRE(live > head);
    // Past the current segment's room, whole segments.
    const uint64_t needed = (live - head + segment - 1) / segment * segment;
    node.journal.set_disk_free(needed - 1);
    for (int i = 0; i < 100; ++i) {
      node.journal.maintain();
      node.harness.turn();
    }
    CHECK_FALSE(node.journal.stats().compacting);
    CHECK(node.journal.stats().moved_records == 0);
    node.journal.set_disk_free(needed);
    node.journal.maintain();
    CHECK(node.journal.stats().compacting);
  }

  TEST_CASE("a nearly dead oldest segment is moved on alone - a drained backlog frees its files") {
    // The queue's record in the first segment held every later one while a
    // backlog was drained in order, until a sweep of the whole log, which
    // the disk had no room for: the ACKs' records filled the reserve.
    wal::MemoryFileSystem fs;
    std::string expected;
    {
      Node node(fs);
      REQUIRE(node.open(small_segments()).ok());
      REQUIRE(node.engine.create_queue("q").ok());
      const std::vector<uint64_t> ids = backlog(node, 3000);
      for (int i = 0; i < 2000; ++i) REQUIRE(node.engine.remove(ids[i]).ok());
      node.harness.settle();
      const uint32_t first = node.harness.log->oldest_segment();
      const uint32_t segments = node.harness.log->current_segment() - first + 1;
      node.journal.set_disk_free(0);  // no room for the whole log's live third
      for (int i = 0; i < 200; ++i) {
        node.journal.maintain();
        node.harness.turn();
      }
      node.harness.settle();
      node.journal.maintain();
      node.harness.settle();
      // About two thirds of the files went, for a record or two moved.
      const uint32_t left =
          node.harness.log->current_segment() - node.harness.log->oldest_segment() + 1;
      CHECK(left < segments / 2);
      CHECK(node.journal.stats().moved_records <= 3);
      expected = fingerprint(node.engine);
      node.harness.close();
    }
    Node replayed(fs);
    REQUIRE(replayed.open(small_segments()).ok());
    CHECK(fingerprint(replayed.engine) == expected);
  }

  TEST_CASE("with the disk reserve refusing jobs, a drained log of two files frees the older") {
    // Two files: the first holds only the queue's record once the backlog is
    // drained. Not too big for a sweep, and no dead file behind it: nothing
    // moved it, and the disk stayed under its reserve with every queue empty.
    wal::MemoryFileSystem fs;
    Node node(fs);
    REQUIRE(node.open(small_segments()).ok());
    REQUIRE(node.engine.create_queue("q").ok());
    std::vector<uint64_t> ids;
    while (node.harness.log->current_segment() == node.harness.log->oldest_segment()) {
      ids.push_back(node.engine.enqueue("q", std::string(40, 'x')).value().id);
    }
    for (uint64_t id : ids) REQUIRE(node.engine.remove(id).ok());
    node.harness.settle();
    const uint32_t current = node.harness.log->current_segment();
    REQUIRE(node.harness.log->oldest_segment() + 1 == current);
    auto run = [&] {
      for (int i = 0; i < 50; ++i) {
        node.journal.maintain();
        node.harness.turn();
      }
      node.harness.settle();
      node.journal.maintain();
    };
    node.journal.set_disk_free(0);
    run();  // intake open: two files are no reason to write anything again
    CHECK(node.harness.log->oldest_segment() + 1 == current);
    CHECK(node.journal.stats().moved_records == 0);

    node.engine.close_intake("the disk is low");
    run();
    CHECK(node.harness.log->oldest_segment() == current);
    CHECK(node.journal.stats().moved_records == 1);  // the queue's record
    const std::string expected = fingerprint(node.engine);
    node.harness.close();
    Node replayed(fs);
    REQUIRE(replayed.open(small_segments()).ok());
    CHECK(fingerprint(replayed.engine) == expected);
  }

  TEST_CASE("dead letters deleted by dead_max stay deleted - replay alone, no sweep after it") {
    wal::MemoryFileSystem fs;
    {
      Node node(fs);
      REQUIRE(node.open(small_segments()).ok());
      REQUIRE(node.engine.create_queue("q").ok());
      engine::QueueSettings s = node.engine.find_queue("q")->settings;
      s.dead_max = 2;
      REQUIRE(node.engine.configure("q", s).ok());
      for (int i = 0; i < 5; ++i) {
        auto id = node.engine.enqueue("q", "poison").value().id;
        REQUIRE(node.engine.dequeue("q").ok());
        REQUIRE(node.engine.fail(id, "bad").ok());
      }
      CHECK(node.engine.counters().dead_discarded == 3);
      node.harness.settle();
      node.harness.close();
    }
    Node node(fs);
    REQUIRE(node.open(small_segments()).ok());
    CHECK(node.engine.count_in(engine::JobState::kDead) == 2);
    for (uint64_t id : {1, 2, 3}) CHECK(node.engine.find_job(id) == nullptr);
    CHECK(node.engine.find_job(4) != nullptr);
    CHECK(node.engine.find_job(5) != nullptr);
  }

  TEST_CASE("a job moved to a dead_letter_queue replays there once, with why and from where") {
    wal::MemoryFileSystem fs;
    std::string expected;
    {
      Node node(fs);
      REQUIRE(node.open(small_segments()).ok());
      REQUIRE(node.engine.create_queue("work").ok());
      REQUIRE(node.engine.create_queue("failed").ok());
      engine::QueueSettings s = node.engine.find_queue("work")->settings;
      s.dead_letter_queue = "failed";
      REQUIRE(node.engine.configure("work", s).ok());
      REQUIRE(node.engine.enqueue("work", "a", {.group = "g"}).ok());  // 1
      REQUIRE(node.engine.enqueue("work", "b").ok());                  // 2
      REQUIRE(node.engine.enqueue("work", "c").ok());                  // 3
      REQUIRE(node.engine.dequeue("work").ok());
      REQUIRE(node.engine.dequeue("work").ok());
      REQUIRE(node.engine.dequeue("work").ok());
      REQUIRE(node.engine.fail(1, "no such user").ok());
      REQUIRE(node.engine.fail(2, "timeout").ok());
      // Job 2 is taken from the dead-letter queue and given back: a RELEASE
      // record, which must not clear why it died.
      REQUIRE(node.engine.dequeue("failed").value()->id == 1);
      REQUIRE(node.engine.dequeue("failed").value()->id == 2);
      REQUIRE(node.engine.fail(3, "later").ok());
      REQUIRE(node.engine.redrive("failed", SIZE_MAX).value() == 1);  // 3: 1 and 2 are leased
      REQUIRE(node.engine.nack(2, std::nullopt).ok());
      node.harness.settle();
      expected = fingerprint(node.engine);
      node.harness.close();
    }
    Node node(fs);
    REQUIRE(node.open(small_segments()).ok());
    CHECK(fingerprint(node.engine) == expected);
    CHECK(node.engine.find_queue("work")->job_count() == 1);
    CHECK(node.engine.find_queue("failed")->ready.size() == 1);   // 3
    CHECK(node.engine.find_queue("failed")->leased.size() == 1);  // 1: its lease is kept
    const engine::Job* moved = node.engine.find_job(2);
    REQUIRE(moved != nullptr);
    CHECK(moved->queue->name == "failed");
    CHECK(node.engine.extras_of(*moved)->origin == "work");
    CHECK(node.engine.extras_of(*moved)->reason == "failed: timeout");
    CHECK(node.engine.extras_of(*node.engine.find_job(1))->group.empty());
    const engine::Job* back = node.engine.find_job(3);
    CHECK(back->queue->name == "work");
    CHECK(node.engine.extras_of(*back) == nullptr);  // nothing left to say about it
  }

  TEST_CASE("a put's dedup key is in its job's record - a crash right after it keeps both") {
    wal::MemoryFileSystem fs;
    uint64_t first = 0;
    {
      Node node(fs);
      REQUIRE(node.open(small_segments()).ok());
      REQUIRE(node.engine.create_queue("q").ok());
      first = node.engine.enqueue("q", "charge #7", engine::EnqueueOptions{.key = "order-7"})
                  .value()
                  .id;
      node.harness.settle();
      node.harness.close();
    }
    // A crash that kept the JOB record and nothing after it (the next
    // segment not yet made, or the rest of the write lost).
    cut_after_last_job(fs);

    Node node(fs);
    REQUIRE(node.open(small_segments()).ok());
    // The producer's retry of the PUT it got no answer to: the first job.
    auto retry = node.engine.enqueue("q", "charge #7", engine::EnqueueOptions{.key = "order-7"});
    REQUIRE(retry.ok());
    CHECK(retry->duplicate);
    CHECK(retry->id == first);
    CHECK(node.engine.find_queue("q")->ready.size() == 1);
  }

  TEST_CASE("a crash between a firing's job and the schedule's next time fires it once") {
    wal::MemoryFileSystem fs;
    const int64_t fired_at = fire_then_lose_next_time(fs);
    Node node(fs, fired_at + 30'000);  // back within the minute
    REQUIRE(node.open(small_segments()).ok());
    const engine::Queue* q = node.engine.find_queue("q");
    REQUIRE(q->ready.size() == 1);
    // The job's record stands for its firing: the schedule moved on.
    CHECK(q->schedules.at("tick").next_ms == fired_at + 60'000);
    CHECK(q->schedules.at("tick").fired == 1);
    node.engine.expire_due();
    CHECK(q->ready.size() == 1);
    CHECK(q->counters.duplicates == 0);
    node.clock.advance_ms(30'000);
    node.engine.expire_due();  // the next time is a firing of its own
    CHECK(q->ready.size() == 2);
    CHECK(node.engine.find_job(2)->payload() == "tick!");
  }

  TEST_CASE("after that crash and a downtime, the times missed fire once, the lost one not again") {
    // Down five minutes, with the firing's key (ten periods) still kept;
    // down twenty, with it gone, so that only the job's record can tell
    // that its time fired.
    for (const int64_t minutes_down : {5, 20}) {
      CAPTURE(minutes_down);
      wal::MemoryFileSystem fs;
      const int64_t fired_at = fire_then_lose_next_time(fs);
      Node node(fs, fired_at + minutes_down * 60'000 + 30'000);
      REQUIRE(node.open(small_segments()).ok());
      const engine::Queue* q = node.engine.find_queue("q");
      REQUIRE(q->schedules.at("tick").next_ms == fired_at + 60'000);
      node.engine.expire_due();
      // The times missed since are one job, as any downtime's are, keyed
      // by the first of them: not the lost time again.
      REQUIRE(q->ready.size() == 2);
      CHECK(q->counters.duplicates == 0);
      const engine::JobExtras* extras = node.engine.extras_of(*node.engine.find_job(2));
      REQUIRE(extras != nullptr);
      CHECK(extras->dedup_key == "schedule:tick@" + std::to_string(fired_at + 60'000));
      CHECK(q->schedules.at("tick").next_ms == fired_at + (minutes_down + 1) * 60'000);
      CHECK(q->schedules.at("tick").fired == 2);
    }
  }

  TEST_CASE("that crash after a late firing: the times it stood for do not fire again") {
    // Found in review: the job's record moved the schedule on by one time
    // only, to a time the late firing had covered already, so the restart
    // put a second job for the same missed times.
    wal::MemoryFileSystem fs;
    const int64_t fired_at = fire_then_lose_next_time(fs, 10 * 60'000 + 30'000);  // ten missed
    Node node(fs, fired_at + 10 * 60'000 + 40'000);  // back within the minute
    REQUIRE(node.open(small_segments()).ok());
    const engine::Queue* q = node.engine.find_queue("q");
    CHECK(q->schedules.at("tick").next_ms == fired_at + 11 * 60'000);
    CHECK(q->schedules.at("tick").fired == 1);
    node.engine.expire_due();
    CHECK(q->ready.size() == 1);
    CHECK(q->counters.scheduled == 0);
  }

  TEST_CASE("a PUT with a firing's key forgotten before its time: the restart still fires it") {
    wal::MemoryFileSystem fs;
    int64_t due = 0;
    {
      Node node(fs);
      REQUIRE(node.open(small_segments()).ok());
      REQUIRE(node.engine.create_queue("q").ok());
      REQUIRE(node.engine.schedule("q", tick_every(3'600'000, "tick!")).ok());
      due = node.engine.find_queue("q")->schedules.at("tick").next_ms;
      REQUIRE(due - node.clock.now_ms() > 5 * 60'000);  // past the PUT's dedup_window
      engine::EnqueueOptions put;
      const std::string key = "schedule:tick@" + std::to_string(due);
      put.key = key;
      REQUIRE(node.engine.enqueue("q", "mine", put).ok());
      node.harness.settle();
      node.harness.close();
    }
    Node node(fs, due + 1'000);
    REQUIRE(node.open(small_segments()).ok());
    const engine::Queue* q = node.engine.find_queue("q");
    CHECK(q->schedules.at("tick").next_ms == due);  // as it would be without the restart
    node.engine.expire_due();
    REQUIRE(q->ready.size() == 2);
    CHECK(node.engine.find_job(2)->payload() == "tick!");
  }

  TEST_CASE("a PUT with a firing's key kept past its time: a clean restart keeps the schedule") {
    // Found by the random replay test once its puts used firing keys: the
    // JOB record moved the schedule on at replay (next time, fired count),
    // while the server that wrote it still waited for that time.
    wal::MemoryFileSystem fs;
    int64_t due = 0;
    int64_t next = 0;
    uint64_t fired = 0;
    {
      Node node(fs);
      REQUIRE(node.open(small_segments()).ok());
      REQUIRE(node.engine.create_queue("q").ok());
      REQUIRE(node.engine.schedule("q", tick_every(60'000, "tick!")).ok());
      const engine::Queue* q = node.engine.find_queue("q");
      due = q->schedules.at("tick").next_ms;
      // Kept past that time: the queue's dedup_window (5 minutes) is longer.
      const std::string key = "schedule:tick@" + std::to_string(due);
      REQUIRE(node.engine.enqueue("q", "mine", engine::EnqueueOptions{.key = key}).ok());
      next = q->schedules.at("tick").next_ms;
      fired = q->schedules.at("tick").fired;
      node.harness.settle();
      node.harness.close();
    }
    Node node(fs);
    REQUIRE(node.open(small_segments()).ok());
    const engine::Queue* q = node.engine.find_queue("q");
    CHECK(q->schedules.at("tick").next_ms == next);
    CHECK(q->schedules.at("tick").fired == fired);
    // The PUT took that time's place, with or without the restart.
    node.clock.advance_ms(due - node.clock.now_ms());
    node.engine.expire_due();
    CHECK(q->ready.size() == 1);
    node.clock.advance_ms(60'000);
    node.engine.expire_due();
    REQUIRE(q->ready.size() == 2);
    CHECK(node.engine.find_job(2)->payload() == "tick!");
  }

  TEST_CASE("a kicked job not delivered since is still known as kicked after a restart") {
    wal::MemoryFileSystem fs;
    {
      Node node(fs);
      REQUIRE(node.open(small_segments()).ok());
      REQUIRE(node.engine.create_queue("k").ok());
      REQUIRE(node.engine.enqueue("k", "x").ok());  // 1
      REQUIRE(node.engine.enqueue("k", "y").ok());  // 2
      REQUIRE(node.engine.dequeue("k").ok());
      REQUIRE(node.engine.fail(1, "bad").ok());
      REQUIRE(node.engine.kick_job(1).ok());
      node.harness.settle();
      node.harness.close();
    }
    Node node(fs);
    REQUIRE(node.open(small_segments()).ok());
    // Its late ACK (from the worker that failed it) is told what happened,
    // not that the job was never delivered; job 2 never was.
    CHECK(node.engine.ack(1).error().message ==
          "cannot ack job 1: it is ready, not leased (a KICK or REDRIVE put it back, and it was "
          "not delivered since)");
    CHECK(node.engine.ack(2).error().message ==
          "cannot ack job 2: it is ready, not leased (it was never delivered)");
  }

  TEST_CASE(
      "a job recorded whole keeps that it was kicked - a KICK of a job with a TTL, "
      "a REDRIVE, a compaction") {
    wal::MemoryFileSystem fs;
    {
      Node node(fs);
      REQUIRE(node.open(small_segments()).ok());
      REQUIRE(node.engine.create_queue("work").ok());
      REQUIRE(node.engine.create_queue("failed").ok());
      engine::QueueSettings s = node.engine.find_queue("work")->settings;
      s.dead_letter_queue = "failed";
      REQUIRE(node.engine.configure("work", s).ok());
      REQUIRE(node.engine.create_queue("k").ok());
      REQUIRE(node.engine.enqueue("k", "ttl", {.ttl_ms = 3'600'000}).ok());  // 1
      REQUIRE(node.engine.enqueue("work", "moved").ok());                    // 2
      REQUIRE(node.engine.enqueue("k", "kept").ok());                        // 3
      REQUIRE(node.engine.enqueue("k", "fresh").ok());                       // 4
      REQUIRE(node.engine.dequeue("k").value()->id == 1);
      REQUIRE(node.engine.dequeue("k").value()->id == 3);
      REQUIRE(node.engine.fail(1, "bad").ok());
      REQUIRE(node.engine.fail(3, "bad").ok());
      REQUIRE(node.engine.kick_job(1).ok());  // its TTL cleared: recorded whole
      REQUIRE(node.engine.dequeue("work").value()->id == 2);
      REQUIRE(node.engine.fail(2, "bad").ok());  // to "failed", started over there
      REQUIRE(node.engine.redrive("failed", SIZE_MAX).value() == 1);  // back to "work"
      REQUIRE(node.engine.kick_job(3).ok());                          // a release record ...
      node.journal.compact_all();  // ... then every job recorded whole
      node.harness.settle();
      node.harness.close();
    }
    Node node(fs);
    REQUIRE(node.open(small_segments()).ok());
    const std::string kicked = " (a KICK or REDRIVE put it back, and it was not delivered since)";
    CHECK(node.engine.nack(1, std::nullopt).error().message ==
          "cannot nack job 1: it is ready, not leased" + kicked);
    CHECK(node.engine.nack(2, std::nullopt).error().message ==
          "cannot nack job 2: it is ready, not leased" + kicked);
    CHECK(node.engine.ack(3).error().message ==
          "cannot ack job 3: it is ready, not leased" + kicked);
    CHECK(node.engine.ack(4).error().message ==
          "cannot ack job 4: it is ready, not leased (it was never delivered)");
  }

  TEST_CASE("a NACK PRIORITY survives a restart - the job is ready once, at its new place") {
    wal::MemoryFileSystem fs;
    {
      Node node(fs);
      REQUIRE(node.open(small_segments()).ok());
      REQUIRE(node.engine.create_queue("p").ok());
      REQUIRE(node.engine.enqueue("p", "w").ok());  // 1
      REQUIRE(node.engine.enqueue("p", "x").ok());  // 2
      REQUIRE(node.engine.dequeue("p").ok());
      REQUIRE(node.engine.dequeue("p").ok());
      REQUIRE(node.engine.nack(1, std::nullopt).ok());
      REQUIRE(node.engine.nack(2, std::nullopt, -5).ok());
      REQUIRE(node.engine.enqueue("p", "y").ok());  // 3
      node.harness.settle();
      node.harness.close();
    }
    Node node(fs);
    REQUIRE(node.open(small_segments()).ok());
    const engine::Queue* q = node.engine.find_queue("p");
    CHECK(q->ready.size() == 3);
    CHECK(q->ready.jobs().size() == 3);
    std::vector<uint64_t> order;
    for (int i = 0; i < 3; ++i) order.push_back(node.engine.dequeue("p").value()->id);
    CHECK(order == std::vector<uint64_t>{1, 3, 2});
    CHECK_FALSE(node.engine.dequeue("p").ok());
  }

  TEST_CASE("message groups survive a restart - held jobs stay held behind a lease") {
    wal::MemoryFileSystem fs;
    {
      Node node(fs);
      REQUIRE(node.open(small_segments()).ok());
      REQUIRE(node.engine.create_queue("q").ok());
      for (const char* payload : {"a1", "a2", "b1", "a3"}) {
        engine::EnqueueOptions o;
        o.group = payload[0] == 'a' ? "A" : "B";
        REQUIRE(node.engine.enqueue("q", payload, o).ok());  // ids 1-4
      }
      REQUIRE(node.engine.dequeue("q").value()->id == 1);  // leased when the server stops
      node.harness.settle();
      node.harness.close();
    }
    const int64_t stopped = 1'700'000'000'000;
    SUBCASE("back before the lease ends: it is kept, and its worker's ACK lets the group on") {
      Node node(fs, stopped + 1000);
      REQUIRE(node.open(small_segments()).ok());
      node.engine.expire_due();
      const engine::Queue* q = node.engine.find_queue("q");
      CHECK(q->leased.size() == 1);  // 1
      CHECK(q->ready.size() == 1);   // 3
      CHECK(q->held.size() == 2);    // 2 and 4, behind 1
      CHECK(node.engine.extras_of(*node.engine.find_job(4))->group == "A");
      CHECK(node.engine.dequeue("q").value()->id == 3);
      CHECK_FALSE(node.engine.dequeue("q").ok());
      REQUIRE(node.engine.ack(1).ok());
      CHECK(node.engine.dequeue("q").value()->id == 2);
    }
    SUBCASE("back after the lease's end: the first sweep gives the job back, first in its group") {
      Node node(fs, stopped + 30'001);  // ack_timeout is 30 s
      REQUIRE(node.open(small_segments()).ok());
      node.engine.expire_due();
      const engine::Queue* q = node.engine.find_queue("q");
      CHECK(q->ready.size() == 2);  // 1 (its lease ended while tqd was down) and 3
      CHECK(q->held.size() == 2);   // 2 and 4, behind 1
      CHECK(node.engine.dequeue("q").value()->id == 1);
      CHECK(node.engine.find_job(1)->attempts == 2);
      CHECK(node.engine.dequeue("q").value()->id == 3);
      CHECK_FALSE(node.engine.dequeue("q").ok());
      REQUIRE(node.engine.ack(1).ok());
      CHECK(node.engine.dequeue("q").value()->id == 2);
    }
  }

  TEST_CASE("with the intake closed a schedule's refused firings write nothing to the log") {
    wal::MemoryFileSystem fs;
    Node node(fs);
    REQUIRE(node.open(small_segments()).ok());
    REQUIRE(node.engine.create_queue("q").ok());
    // In the queue's record, each time it is saved; the spec views it.
    const std::string payload(2'000, 'p');
    const engine::ScheduleSpec tick = tick_every(1'000, payload);
    REQUIRE(node.engine.schedule("q", tick).ok());
    node.harness.settle();
    node.engine.close_intake("the disk is low");
    const uint64_t seq = node.harness.log->last_seq();
    for (int i = 0; i < 5; ++i) {
      node.clock.advance_ms(1'000);
      node.engine.expire_due();
    }
    const engine::Queue* q = node.engine.find_queue("q");
    CHECK(q->counters.schedule_refused == 5);
    CHECK(q->schedules.at("tick").next_ms > node.clock.now_ms());  // it went on, in memory
    CHECK(node.harness.log->last_seq() == seq);
    node.engine.open_intake();
    node.clock.advance_ms(1'000);
    node.engine.expire_due();
    CHECK(q->schedules.at("tick").fired == 1);
    CHECK(node.harness.log->last_seq() > seq);
  }

  TEST_CASE("a firing refused while the intake was closed is not put again at a later restart") {
    // With the intake closed a schedule's refused firing moves its next time
    // on in memory only. The next logged firing of another schedule of the
    // queue used to write the queue's whole record, and with it that time:
    // a restart after it does not put the skipped firing late.
    wal::MemoryFileSystem fs;
    int64_t now = 0;
    int64_t daily_next = 0;
    {
      Node node(fs);
      REQUIRE(node.open(small_segments()).ok());
      REQUIRE(node.engine.create_queue("q").ok());
      engine::ScheduleSpec daily = tick_every(86'400'000, "daily");
      daily.name = "daily";
      REQUIRE(node.engine.schedule("q", daily).ok());
      REQUIRE(node.engine.schedule("q", tick_every(60'000, "t")).ok());
      node.harness.settle();
      node.engine.close_intake("the disk is low");
      node.clock.advance_ms(86'400'000);  // both due: both refused
      node.engine.expire_due();
      const engine::Queue* q = node.engine.find_queue("q");
      REQUIRE(q->counters.schedule_refused == 2);
      node.engine.open_intake();
      node.clock.advance_ms(60'000);  // the tick fires and is logged; daily is not due
      node.engine.expire_due();
      REQUIRE(q->schedules.at("tick").fired == 1);
      REQUIRE(node.engine.job_count() == 1);
      daily_next = q->schedules.at("daily").next_ms;
      REQUIRE(daily_next > node.clock.now_ms());
      now = node.clock.now_ms();
      node.harness.settle();
      node.harness.close();  // a clean stop
    }
    Node node(fs, now);
    REQUIRE(node.open(small_segments()).ok());
    const engine::Queue* q = node.engine.find_queue("q");
    CHECK(q->schedules.at("daily").next_ms == daily_next);
    node.engine.expire_due();
    CHECK(node.engine.job_count() == 1);  // no "daily" job a day early
  }

  TEST_CASE("a firing appends its schedule's new time, not the queue's record of every payload") {
    // The queue's record holds every schedule, payloads and all (here
    // 490,000 bytes); written again at each firing, a queue of big
    // schedules wrote that much a second for each one that fires.
    wal::MemoryFileSystem fs;
    wal::LogOptions o = small_segments();
    o.segment_bytes = 4 << 20;
    const std::string big(10'000, 'b');
    std::vector<std::string> names;
    for (int i = 0; i < 49; ++i) names.push_back("big" + std::to_string(i));
    int64_t now = 0;
    int64_t next = 0;
    {
      Node node(fs);
      REQUIRE(node.open(o).ok());
      REQUIRE(node.engine.create_queue("q").ok());
      for (const std::string& name : names) {
        engine::ScheduleSpec spec = tick_every(30LL * 86'400'000, big);
        spec.name = name;
        REQUIRE(node.engine.schedule("q", spec).ok());
      }
      REQUIRE(node.engine.schedule("q", tick_every(1'000, "t")).ok());
      node.harness.settle();
      const uint64_t before = node.harness.log->appended_bytes();
      for (int i = 0; i < 10; ++i) {
        node.clock.advance_ms(1'000);
        node.engine.expire_due();
      }
      const engine::Queue* q = node.engine.find_queue("q");
      REQUIRE(q->schedules.at("tick").fired == 10);
      REQUIRE(q->schedules.at("big0").fired == 0);
      // Ten JOB records of a byte's payload and ten of the new times: under
      // 100 bytes each (a copy of the queue's record: 490,000).
      CHECK(node.harness.log->appended_bytes() - before < 10 * 200);
      next = q->schedules.at("tick").next_ms;
      now = node.clock.now_ms();
      node.harness.settle();
      node.harness.close();
    }
    Node node(fs, now);
    REQUIRE(node.open(o).ok());
    const engine::Queue* q = node.engine.find_queue("q");
    CHECK(q->schedules.at("tick").fired == 10);
    CHECK(q->schedules.at("tick").next_ms == next);
    CHECK(q->schedules.at("big48").fired == 0);
    CHECK(q->schedules.at("big48").payload == big);
    CHECK(q->schedule_at == next);
    CHECK(node.engine.job_count() == 10);
  }

  TEST_CASE("a SCHEDULE_FIRED record: a schedule gone since is passed over, one asleep stays so") {
    engine::ManualClock clock;
    engine::Engine engine{clock, engine::EngineLimits{}, engine::QueueSettings{}};
    server::Journal journal{engine, 1.5};
    auto fired_record = [](uint32_t queue, std::string_view name, int64_t next, uint64_t count) {
      std::string body;
      wal::put_varint(body, queue);
      wal::put_varint(body, 1);
      wal::put_bytes(body, name);
      wal::put_varint(body, static_cast<uint64_t>(next));
      wal::put_varint(body, count);
      return body;
    };
    REQUIRE(journal.apply(wal::Record{2, 1, queue_with_cron("0 3 * * *", 4)}, 1).ok());
    REQUIRE(journal.apply(wal::Record{11, 2, fired_record(3, "nightly", 1'234'000, 5)}, 1).ok());
    const engine::Queue* q = engine.find_queue("q");
    CHECK(q->schedules.at("nightly").fired == 5);
    CHECK(q->schedules.at("nightly").next_ms == 1'234'000);
    CHECK(q->schedule_at == 1'234'000);
    // Cancelled, or its queue dropped, after the firing (compaction can
    // also move the queue's record past it): nothing to change.
    CHECK(journal.apply(wal::Record{11, 3, fired_record(3, "gone", 9, 1)}, 1).ok());
    CHECK(journal.apply(wal::Record{11, 4, fired_record(8, "nightly", 9, 1)}, 1).ok());
    CHECK(q->schedules.size() == 1);
    CHECK(q->schedules.at("nightly").fired == 5);
    // Asleep, its zone unknown here: the time another host worked out is not taken.
    REQUIRE(
        journal.apply(wal::Record{2, 5, queue_with_cron("CRON_TZ=Mars/Olympus 0 3 * * *", 4)}, 1)
            .ok());
    REQUIRE(journal.apply(wal::Record{11, 6, fired_record(3, "nightly", 1'234'000, 6)}, 1).ok());
    CHECK(q->schedules.at("nightly").fired == 6);
    CHECK(q->schedules.at("nightly").next_ms == INT64_MAX);
    // Damage: no entries, an entry cut short, a count past the body.
    std::string none;
    wal::put_varint(none, 3);
    wal::put_varint(none, 0);
    CHECK_FALSE(journal.apply(wal::Record{11, 7, none}, 1).ok());
    std::string cut = fired_record(3, "nightly", 1'234'000, 6);
    cut.pop_back();
    CHECK_FALSE(journal.apply(wal::Record{11, 7, cut}, 1).ok());
    // Two entries, the second cut short: the first is not applied either.
    std::string half;
    wal::put_varint(half, 3);
    wal::put_varint(half, 2);
    wal::put_bytes(half, "nightly");
    wal::put_varint(half, 1'234'000);
    wal::put_varint(half, 99);
    wal::put_bytes(half, "nightly");
    CHECK_FALSE(journal.apply(wal::Record{11, 7, half}, 1).ok());
    CHECK(q->schedules.at("nightly").fired == 6);
    std::string many;
    wal::put_varint(many, 3);
    wal::put_varint(many, 1'000'000);
    CHECK_FALSE(journal.apply(wal::Record{11, 7, many}, 1).ok());
  }

  TEST_CASE("schedules survive a restart - one that came due while tqd was down fires once") {
    wal::MemoryFileSystem fs;
    int64_t now = 0;
    {
      Node node(fs);
      REQUIRE(node.open(small_segments()).ok());
      REQUIRE(node.engine.create_queue("q").ok());
      engine::ScheduleSpec tick = tick_every(60'000, "tick!");
      tick.job.priority = 2;
      tick.job.group = "g";
      REQUIRE(node.engine.schedule("q", tick).ok());
      engine::ScheduleSpec nightly;
      nightly.name = "nightly";
      nightly.cron = "0 3 * * *";
      nightly.payload = "report";
      REQUIRE(node.engine.schedule("q", nightly).ok());
      now = node.clock.now_ms();
      node.clock.advance_ms(60'000);
      node.engine.expire_due();  // tick fires once
      node.harness.settle();
      node.harness.close();
    }
    Node node(fs, now + 10 * 60'000);  // down for nine minutes
    REQUIRE(node.open(small_segments()).ok());
    const engine::Queue* q = node.engine.find_queue("q");
    REQUIRE(q->schedules.size() == 2);
    const engine::Schedule& tick = q->schedules.at("tick");
    CHECK(tick.fired == 1);
    CHECK(tick.payload == "tick!");
    CHECK(tick.priority == 2);
    CHECK(tick.group == "g");
    CHECK(tick.every_ms == 60'000);
    CHECK(q->schedules.at("nightly").cron->text() == "0 3 * * *");
    // Replay met the queue's record twice (two SCHEDULEs), then the firing's.
    CHECK(node.engine.schedule_payload_bytes() == std::string("tick!report").size());
    CHECK(node.engine.job_count() == 1);
    node.engine.expire_due();  // the first tick: the missed minutes fire once
    CHECK(node.engine.job_count() == 2);
    CHECK(tick.fired == 2);
    CHECK(tick.next_ms > node.clock.now_ms());
  }

  TEST_CASE(
      "a QUEUE record's schedules are checked as SCHEDULE checks them - a 2^63 TTL is damage") {
    engine::ManualClock clock;
    engine::Engine engine{clock, engine::EngineLimits{}, engine::QueueSettings{}};
    server::Journal journal{engine, 1.5};
    auto record_with = [](uint64_t ttl_ms, std::string_view group) {
      std::string body;  // queue 1 "q" with the default settings, then one schedule
      wal::put_varint(body, 1);
      wal::put_bytes(body, "q");
      for (uint64_t v : {30'000, 0, 0, 2'000, 3'600'000, 0, 300'000, 0}) wal::put_varint(body, v);
      wal::put_signed_varint(body, 0);
      body += '\0';
      for (uint64_t v : {0, 0, 1'000, 0, 0, 0, 1}) wal::put_varint(body, v);
      wal::put_bytes(body, "tick");
      wal::put_varint(body, 60'000);
      wal::put_bytes(body, "");
      wal::put_bytes(body, "x");
      wal::put_signed_varint(body, 0);
      wal::put_varint(body, ttl_ms);
      wal::put_varint(body, 0);
      wal::put_bytes(body, group);
      wal::put_varint(body, 0);  // due at once
      wal::put_varint(body, 0);
      return body;
    };
    const auto queue = static_cast<uint8_t>(server::RecordType::kQueue);
    CHECK_FALSE(journal.apply(wal::Record{queue, 1, record_with(uint64_t{1} << 63, "")}, 1).ok());
    CHECK_FALSE(journal.apply(wal::Record{queue, 1, record_with(1'000, "a b")}, 1).ok());
    REQUIRE(journal.apply(wal::Record{queue, 1, record_with(1'000, "g")}, 1).ok());
    engine.expire_due();
    CHECK(engine.job_count() == 1);
  }

  TEST_CASE("large schedules are counted live at their size - no compaction with nothing to do") {
    wal::MemoryFileSystem fs;
    Node node(fs);
    REQUIRE(node.open(small_segments()).ok());
    REQUIRE(node.engine.create_queue("q").ok());
    for (int i = 0; i < 5; ++i) {  // 30 KB of schedules in 8 KiB segments
      engine::ScheduleSpec spec;
      const std::string name = "s" + std::to_string(i);
      const std::string payload(6'000, 'p');
      spec.name = name;
      spec.every_ms = 3'600'000;
      spec.payload = payload;
      REQUIRE(node.engine.schedule("q", spec).ok());
    }
    node.harness.settle();
    CHECK(node.journal.stats().live_bytes > 30'000);
    const uint64_t before = node.journal.stats().compactions;
    for (int i = 0; i < 200; ++i) {  // nothing happens: no client, no firing
      node.journal.maintain();
      node.harness.settle();
    }
    // Counted at 40-odd bytes, the queue looked like a 30 KB log's only live
    // object, and compaction ran again and again (100 times here).
    CHECK(node.journal.stats().compactions - before <= 1);
    REQUIRE(node.engine.drop("q").ok());
    CHECK(node.journal.stats().live_bytes == 0);
  }

  TEST_CASE("schedules firing through rotations and compactions replay to where they were") {
    wal::MemoryFileSystem fs;
    uint64_t fired = 0;
    int64_t next = 0;
    size_t jobs = 0;
    int64_t now = 0;
    {
      Node node(fs);
      REQUIRE(node.open(small_segments()).ok());
      REQUIRE(node.engine.create_queue("q").ok());
      REQUIRE(node.engine.create_queue("other").ok());
      const std::string payload(300, 't');
      const engine::ScheduleSpec tick = tick_every(60'000, payload);
      REQUIRE(node.engine.schedule("q", tick).ok());
      // Most jobs are finished, so the log is mostly dead records and
      // compaction moves the queue's record past its firings' records.
      for (int i = 0; i < 400; ++i) {
        node.clock.advance_ms(60'000);
        node.engine.expire_due();
        if (i % 3 != 0) {
          auto job = node.engine.dequeue("q");
          if (job.ok()) REQUIRE(node.engine.ack(job.value()->id).ok());
        }
        REQUIRE(node.engine.enqueue("other", std::string(200, 'o')).ok());
        if (i % 10 != 0) {
          auto job = node.engine.dequeue("other");
          if (job.ok()) REQUIRE(node.engine.ack(job.value()->id).ok());
        }
        node.journal.maintain();
        node.harness.settle();
      }
      const engine::Schedule& s = node.engine.find_queue("q")->schedules.at("tick");
      fired = s.fired;
      next = s.next_ms;
      jobs = node.engine.job_count();
      now = node.clock.now_ms();
      CHECK(fired == 400);
      CHECK(node.journal.stats().compactions > 0);
      node.harness.close();
    }
    Node node(fs, now);
    REQUIRE(node.open(small_segments()).ok());
    const engine::Schedule& s = node.engine.find_queue("q")->schedules.at("tick");
    CHECK(s.fired == fired);
    CHECK(s.next_ms == next);
    CHECK(node.engine.job_count() == jobs);
    CHECK(node.engine.next_deadline_ms() == next);
  }

  TEST_CASE("a timed PAUSE keeps its end across a restart, and one that ended meanwhile resumes") {
    wal::MemoryFileSystem fs;
    int64_t now = 0;
    {
      Node node(fs);
      REQUIRE(node.open(small_segments()).ok());
      REQUIRE(node.engine.create_queue("soon").ok());
      REQUIRE(node.engine.create_queue("later").ok());
      now = node.clock.now_ms();
      REQUIRE(node.engine.set_paused("soon", true, now + 1'000).ok());
      REQUIRE(node.engine.set_paused("later", true, now + 60'000).ok());
      node.harness.settle();
      node.harness.close();
    }
    Node node(fs, now + 5'000);  // down for 5 s
    REQUIRE(node.open(small_segments()).ok());
    CHECK(node.engine.find_queue("later")->resume_at_ms == now + 60'000);
    CHECK(node.engine.find_queue("soon")->resume_at_ms == now + 1'000);
    node.engine.expire_due();  // the first tick
    CHECK_FALSE(node.engine.find_queue("soon")->paused);
    CHECK(node.engine.find_queue("later")->paused);
    CHECK(node.engine.next_deadline_ms() == now + 60'000);
  }

  TEST_CASE("PURGE and DROP of jobs in every waiting shape: the log keeps what stays, replayed") {
    // Both take a queue's jobs aside at once, to be freed in steps
    // (disposal.h), each job's record let go in bulk as it is freed: what
    // is left live in the log then is what was live before those jobs
    // came, and a replay of the PURGE and QUEUE_DROP records gives the
    // server's state again.
    wal::MemoryFileSystem fs;
    std::string expected;
    uint64_t kept_live = 0;
    int64_t now = 0;
    {
      Node node(fs);
      REQUIRE(node.open(small_segments()).ok());
      REQUIRE(node.engine.create_queue("p").ok());
      REQUIRE(node.engine.create_queue("keep").ok());
      engine::QueueSettings s = node.engine.find_queue("p")->settings;
      s.max_attempts = 100;
      REQUIRE(node.engine.configure("p", s).ok());
      REQUIRE(node.engine.enqueue("keep", "stays").ok());
      const uint64_t leased = node.engine.enqueue("p", "leased", {.priority = 9}).value().id;
      node.harness.settle();
      kept_live = node.journal.stats().live_bytes;
      REQUIRE(node.engine.create_queue("g").ok());
      std::vector<uint64_t> ids;
      for (int i = 0; i < 600; ++i) {
        engine::EnqueueOptions o;
        o.priority = i % 3;
        if (i % 7 == 0) o.ttl_ms = 60'000;
        if (i % 11 == 0) o.delay_ms = 5'000;
        const std::string payload = "job " + std::to_string(i);
        ids.push_back(node.engine.enqueue("p", payload, o).value().id);
        o.group = i % 2 == 0 ? "a" : "b";
        REQUIRE(node.engine.enqueue("g", payload, o).ok());
      }
      REQUIRE(node.engine.dequeue("p").value()->id == leased);
      REQUIRE(node.engine.remove(ids[300]).ok());  // its id stays in a FIFO, stale
      for (int i = 0; i < 10; ++i) {  // given back: to the returns, some at another priority
        const uint64_t id = node.engine.dequeue("p").value()->id;
        REQUIRE(node.engine.nack(id, std::nullopt, static_cast<int32_t>(i % 2)).ok());
      }
      REQUIRE(node.engine.dequeue("g").ok());  // a leased group job goes with its queue
      node.harness.settle();
      REQUIRE(node.engine.count_in(engine::JobState::kHeld) > 0);
      REQUIRE(node.engine.purge("p").value() == 599);
      REQUIRE(node.engine.drop("g").ok());
      node.harness.settle();
      CHECK(node.journal.stats().live_bytes > kept_live);  // their records are live until freed
      while (node.engine.dispose_some(64)) node.journal.maintain();
      CHECK(node.journal.stats().live_bytes == kept_live);
      CHECK(node.engine.job_count() == 2);
      expected = fingerprint(node.engine);
      now = node.clock.now_ms();
      node.harness.close();
    }
    Node node(fs, now);
    REQUIRE(node.open(small_segments()).ok());
    CHECK(fingerprint(node.engine) == expected);
    CHECK(node.engine.find_queue("g") == nullptr);
    CHECK(node.journal.stats().live_bytes == kept_live);
  }

  TEST_CASE("a lease from an older log ends at the restart, in the log too - a PURGE stays done") {
    wal::MemoryFileSystem fs;
    {
      Node node(fs);
      REQUIRE(node.open(small_segments()).ok());
      REQUIRE(node.engine.create_queue("q").ok());
      REQUIRE(node.engine.enqueue("q", "a").ok());
      REQUIRE(node.engine.enqueue("q", "b").ok());
      append_old_lease(node, 1, 1);  // job 1 is leased when the server stops
      node.harness.settle();
      node.harness.close();
    }
    {
      Node node(fs);
      REQUIRE(node.open(small_segments()).ok());
      CHECK(node.engine.count_in(engine::JobState::kReady) == 2);
      CHECK(node.engine.find_job(1)->attempts == 1);
      auto purged = node.engine.purge("q");
      REQUIRE(purged.ok());
      CHECK(*purged == 2);
      node.harness.settle();
      node.harness.close();
    }
    Node node(fs);
    REQUIRE(node.open(small_segments()).ok());
    CHECK(node.engine.job_count() == 0);
  }

  TEST_CASE("a KICK that cleared a TTL survives a restart - replay does not expire the job") {
    wal::MemoryFileSystem fs;
    int64_t now = 0;
    {
      Node node(fs);
      REQUIRE(node.open(small_segments()).ok());
      REQUIRE(node.engine.create_queue("q").ok());
      REQUIRE(node.engine.enqueue("q", "late", {.ttl_ms = 1'000}).ok());
      REQUIRE(node.engine.dequeue("q").ok());
      REQUIRE(node.engine.fail(1, "bad").ok());
      node.clock.advance_ms(5'000);
      REQUIRE(node.engine.kick("q", 1).value() == 1);
      node.harness.settle();
      now = node.clock.now_ms();
      node.harness.close();
    }
    Node node(fs, now + 1'000);
    REQUIRE(node.open(small_segments()).ok());
    node.engine.expire_due();
    const engine::Job* job = node.engine.find_job(1);
    REQUIRE(job != nullptr);
    CHECK(job->state == engine::JobState::kReady);
    CHECK(job->attempts == 0);
    CHECK(node.engine.extras_of(*job)->expires_at_ms == 0);
    CHECK(node.engine.extras_of(*job)->reason.empty());
  }

  TEST_CASE("a NACK PRIORITY of a job whose TTL passed during its lease leaves it expired") {
    wal::MemoryFileSystem fs;
    int64_t now = 0;
    {
      Node node(fs);
      REQUIRE(node.open(small_segments()).ok());
      REQUIRE(node.engine.create_queue("q").ok());
      REQUIRE(node.engine.enqueue("q", "brief", {.ttl_ms = 1'000}).ok());
      REQUIRE(node.engine.enqueue("q", "stays").ok());
      REQUIRE(node.engine.dequeue("q").ok());
      node.clock.advance_ms(2'000);
      auto nacked = node.engine.nack(1, std::nullopt, 5);
      REQUIRE(nacked.ok());
      CHECK(nacked.value() == engine::Requeue::kExpired);
      CHECK(node.engine.find_job(1) == nullptr);
      node.harness.settle();
      now = node.clock.now_ms();
      node.harness.close();
    }
    Node node(fs, now);
    REQUIRE(node.open(small_segments()).ok());
    CHECK(node.engine.find_job(1) == nullptr);
    CHECK(node.engine.job_count() == 1);
  }

  TEST_CASE("a lease from an older log that a restart ends counts its attempt - then dead") {
    wal::MemoryFileSystem fs;
    {
      Node node(fs);
      REQUIRE(node.open(small_segments()).ok());
      create_single_attempt_queue(node);
      REQUIRE(node.engine.enqueue("q", "once").ok());
      append_old_lease(node, 1, 1);
      node.harness.settle();
      node.harness.close();
    }
    for (int restart = 0; restart < 2; ++restart) {  // the second sees it dead in the log
      Node node(fs);
      REQUIRE(node.open(small_segments()).ok());
      const engine::Job* job = node.engine.find_job(1);
      REQUIRE(job != nullptr);
      REQUIRE(job->state == engine::JobState::kDead);
      CHECK(job->attempts == 1);
      CHECK(node.engine.extras_of(*job)->reason == "lease ended by a restart after 1 attempt");
      node.harness.settle();
      node.harness.close();
    }
  }

  TEST_CASE("a lease is kept to its end across restarts - TOUCH's end too - then runs out") {
    // A restart (a deploy) used to end every lease: the delivery counted, a
    // job on max_attempts=1 went to dead letters, and the worker that had
    // done the work was refused its ACK.
    wal::MemoryFileSystem fs;
    const int64_t start = 1'700'000'000'000;
    {
      Node node(fs, start);
      REQUIRE(node.open(small_segments()).ok());
      create_single_attempt_queue(node);
      REQUIRE(node.engine.enqueue("q", "once").ok());
      REQUIRE(node.engine.enqueue("q", "twice").ok());
      REQUIRE(node.engine.dequeue("q").ok());  // 1, until start + 30 s
      REQUIRE(node.engine.dequeue("q").ok());  // 2, ...
      node.clock.advance_ms(10'000);
      REQUIRE(node.engine.touch(2, 60'000).ok());  // ... until start + 70 s
      node.harness.settle();
      node.harness.close();
    }
    {
      Node node(fs, start + 20'000);
      REQUIRE(node.open(small_segments()).ok());
      node.engine.expire_due();
      REQUIRE(node.engine.find_job(1)->state == engine::JobState::kLeased);
      CHECK(node.engine.find_job(1)->deadline_ms == start + 30'000);
      CHECK(node.engine.find_job(2)->deadline_ms == start + 70'000);
      CHECK(node.engine.find_job(1)->attempts == 1);
      CHECK(node.engine.purge("q").value() == 0);  // leased jobs are not purged
      node.harness.settle();
      node.harness.close();
    }
    {
      Node node(fs, start + 40'000);  // 1's lease ended while tqd was down; 2's did not
      REQUIRE(node.open(small_segments()).ok());
      node.engine.expire_due();
      const engine::Job* one = node.engine.find_job(1);
      REQUIRE(one->state == engine::JobState::kDead);
      CHECK(node.engine.extras_of(*one)->reason == "lease expired after 1 attempt");
      CHECK(node.engine.find_job(2)->state == engine::JobState::kLeased);
      REQUIRE(node.engine.ack(2).ok());  // its worker, back on a new connection
      node.harness.settle();
      node.harness.close();
    }
    Node node(fs, start + 50'000);
    REQUIRE(node.open(small_segments()).ok());
    CHECK(node.engine.find_job(2) == nullptr);
    REQUIRE(node.engine.find_job(1) != nullptr);
    CHECK(node.engine.find_job(1)->state == engine::JobState::kDead);
  }

  TEST_CASE("every lifecycle change survives a restart") {
    wal::MemoryFileSystem fs;
    std::string expected;
    int64_t now = 0;
    {
      Node node(fs);
      REQUIRE(node.open(small_segments()).ok());
      std::mt19937 rng(2024);
      const std::vector<std::string> names = {"alpha", "beta"};
      for (const auto& n : names) REQUIRE(node.engine.create_queue(n).ok());
      std::vector<uint64_t> leased;
      size_t most_held = 0;
      auto random_job = [&]() -> uint64_t { return 1 + rng() % node.engine.next_job_id(); };
      // KICK, REDRIVE and PURGE ... DEAD of many jobs, in steps between the
      // other changes as the server runs them (server/bulk_work.h); their
      // own generator, so that the rest of the sequence is as it was.
      std::mt19937 bulk_rng(77);
      std::vector<server::BulkTask> tasks;
      int bulk_steps = 0;
      size_t bulk_done = 0;  // jobs the tasks moved or removed
      for (int step = 0; step < 6000; ++step) {
        const std::string& q = names[rng() % names.size()];
        switch (rng() % 16) {
          case 0: case 1: case 2: case 3: {
            engine::EnqueueOptions o;
            o.priority = static_cast<int32_t>(rng() % 3);
            if (rng() % 4 == 0) o.delay_ms = 1'000 + rng() % 20'000;
            if (rng() % 5 == 0)
              o.ttl_ms = o.delay_ms + 5'000 + rng() % 20'000;  // due before it ends
            if (rng() % 6 == 0) o.max_attempts = 1 + rng() % 3;
            std::string key = "k" + std::to_string(rng() % 50);
            if (rng() % 3 == 0) o.key = key;
            std::string group = "g" + std::to_string(rng() % 6);
            if (rng() % 3 == 0) o.group = group;
            REQUIRE(node.engine.enqueue(q, "p" + std::to_string(step), o).ok());
            break;
          }
          case 4: case 5: case 6: {
            auto job = node.engine.dequeue(q);
            if (job.ok()) leased.push_back((*job)->id);
            break;
          }
          case 7: case 8:
            if (!leased.empty()) (void)node.engine.ack(leased.back()), leased.pop_back();
            break;
          case 9:
            if (!leased.empty()) {
              (void)node.engine.nack(
                  leased.back(), rng() % 2 ? std::optional<int64_t>(3'000) : std::nullopt,
                  rng() % 3 == 0 ? std::optional<int32_t>(static_cast<int32_t>(rng() % 7) - 3)
                                 : std::nullopt);
              leased.pop_back();
            }
            break;
          case 10:
            if (!leased.empty()) (void)node.engine.fail(leased.back(), "bad " + std::to_string(step)), leased.pop_back();
            break;
          case 11:
            if (rng() % 4 == 0) {
              (void)node.engine.redrive(q, 1 + rng() % 3);
            } else {
              (void)node.engine.kick(q, 1 + rng() % 3);
            }
            break;
          case 12:
            if (rng() % 3 == 0) {
              (void)node.engine.kick_job(random_job());  // a dead or a delayed one, if it is
            } else {
              (void)node.engine.remove(random_job());
            }
            break;
          case 13: {
            engine::QueueSettings s = node.engine.find_queue(q)->settings;
            s.max_attempts = static_cast<uint32_t>(rng() % 4);
            s.backoff_base_ms = (rng() % 2) * 500;
            s.backoff_factor = 1.5;
            s.dedup_window_ms = 10'000 + rng() % 50'000;
            s.ttl_dead_letter = rng() % 2 == 0;
            s.ttl_ms = rng() % 3 == 0 ? static_cast<int64_t>(5'000 + rng() % 30'000) : 0;
            s.delay_ms = rng() % 4 == 0 ? static_cast<int64_t>(rng() % 3'000) : 0;
            s.priority = static_cast<int32_t>(rng() % 5);
            s.max_leased = rng() % 3 == 0 ? 0 : 1 + rng() % 300;
            s.rate_limit = rng() % 3 == 0 ? 0 : 1 + rng() % 100'000;
            s.rate_window_ms = 1 + static_cast<int64_t>(rng() % 120'000);
            s.dead_retention_ms = rng() % 2 == 0 ? 0 : static_cast<int64_t>(1'000 + rng() % 20'000);
            s.dead_max = rng() % 2 == 0 ? 0 : 1 + rng() % 20;
            // Each to the other, or to itself (as queues.defaults may name
            // one): a job moves at most once, and not to its own queue.
            const auto dlq = rng() % 3;
            s.dead_letter_queue = dlq == 0 ? "" : dlq == 1 ? names[0] : names[1];
            REQUIRE(node.engine.configure(q, s).ok());
            const int64_t resume_at =
                rng() % 2 == 0 ? 0 : node.clock.now_ms() + 1 + static_cast<int64_t>(rng() % 10'000);
            REQUIRE(node.engine.set_paused(q, rng() % 4 == 0, resume_at).ok());
            break;
          }
          case 14: {
            const auto r = rng() % 20;
            if (r == 0) REQUIRE(node.engine.purge(q).ok());
            if (r == 1) REQUIRE(node.engine.purge_dead(q).ok());
            break;
          }
          case 15:
            node.clock.advance_ms(rng() % 3'000);
            node.engine.expire_due();
            break;
        }
        if (bulk_rng() % 40 == 0) {
          using Kind = server::BulkTask::Kind;
          const Kind kinds[] = {Kind::kKick, Kind::kRedrive, Kind::kPurgeDead};
          tasks.push_back(
              server::BulkTask{.kind = kinds[bulk_rng() % 3],
                               .queue = q,
                               .left = bulk_rng() % 2 == 0 ? SIZE_MAX : 1 + bulk_rng() % 10});
        }
        if (!tasks.empty()) {
          const size_t t = bulk_rng() % tasks.size();
          (void)server::run_bulk_step(node.engine, tasks[t], 1 + bulk_rng() % 3);
          ++bulk_steps;
          if (tasks[t].finished) {
            bulk_done += tasks[t].done;
            tasks.erase(tasks.begin() + static_cast<std::ptrdiff_t>(t));
          }
        }
        node.journal.maintain();
        if (step % 40 == 0) REQUIRE(node.harness.wait_durable());
        most_held = std::max(most_held, node.engine.count_in(engine::JobState::kHeld));
      }
      for (server::BulkTask& task : tasks) {
        while (!task.finished) (void)server::run_bulk_step(node.engine, task, 2);
        bulk_done += task.done;
      }
      CHECK(bulk_steps > 500);  // 745 with these seeds
      CHECK(bulk_done > 50);    // 108
      CHECK(most_held > 0);  // groups held jobs back at some point
      // A queue that is dropped, and one created after it.
      REQUIRE(node.engine.create_queue("gone").ok());
      REQUIRE(node.engine.enqueue("gone", "x").ok());
      REQUIRE(node.engine.drop("gone").ok());
      REQUIRE(node.engine.create_queue("after").ok());
      node.harness.settle();
      // Settle what is due now, as the server's first tick after a restart
      // does, and end the leases as the restart will.
      node.engine.expire_due();
      node.engine.end_unknown_leases();
      node.harness.settle();
      expected = fingerprint(node.engine);
      now = node.clock.now_ms();
      CHECK(node.journal.stats().compactions > 0);
      node.harness.close();
    }
    Node replayed(fs, now);
    REQUIRE(replayed.open(small_segments()).ok());
    replayed.engine.expire_due();
    CHECK(fingerprint(replayed.engine) == expected);
    CHECK(replayed.engine.find_queue("gone") == nullptr);
  }

  TEST_CASE("records from before ready times were kept count a ready job's wait from the replay") {
    engine::ManualClock clock;
    engine::Engine engine{clock, engine::EngineLimits{}, engine::QueueSettings{}};
    server::Journal journal{engine, 1.5};
    REQUIRE(engine.create_queue("q").ok());
    const uint32_t number = engine.find_queue("q")->number;
    // JOB as an older tqd wrote a ready job: deadline_ms 0.
    std::string job;
    wal::put_varint(job, 7);       // id
    wal::put_varint(job, number);  // queue
    job += static_cast<char>(0);   // ready
    wal::put_varint(job, 0);       // attempts
    wal::put_varint(job, 0);       // priority, zigzag
    wal::put_varint(job, 0);       // deadline_ms
    job += static_cast<char>(0);   // flags
    job += "payload";
    const int64_t replayed_at = clock.now_ms();
    REQUIRE(journal.apply(wal::Record{4, 1, job}, 1).ok());
    REQUIRE(engine.find_job(7) != nullptr);
    CHECK(engine.find_job(7)->deadline_ms == replayed_at);
    // A LEASE, then a RELEASE without the ready time that now follows.
    std::string lease;
    wal::put_varint(lease, 7);
    wal::put_varint(lease, 1);
    REQUIRE(journal.apply(wal::Record{5, 2, lease}, 1).ok());
    clock.advance_ms(1'000);
    std::string release = lease;
    wal::put_varint(release, 0);  // ready now
    REQUIRE(journal.apply(wal::Record{6, 3, release}, 1).ok());
    CHECK(engine.find_job(7)->state == engine::JobState::kReady);
    CHECK(engine.find_job(7)->deadline_ms == replayed_at + 1'000);
    // With it, the wait goes on from then.
    REQUIRE(journal.apply(wal::Record{5, 4, lease}, 1).ok());
    wal::put_varint(release, static_cast<uint64_t>(replayed_at - 60'000));
    REQUIRE(journal.apply(wal::Record{6, 5, release}, 1).ok());
    CHECK(engine.find_job(7)->deadline_ms == replayed_at - 60'000);
    CHECK(engine.find_queue("q")->head_wait_ms(clock.now_ms()) == 61'000);
  }

  TEST_CASE("a schedule whose zone this host lacks is kept asleep, and wakes where the zone is") {
    engine::ManualClock clock;
    {
      engine::Engine engine{clock, engine::EngineLimits{}, engine::QueueSettings{}};
      server::Journal journal{engine, 1.5};
      REQUIRE(
          journal.apply(wal::Record{2, 1, queue_with_cron("CRON_TZ=Mars/Olympus 0 3 * * *", 4)}, 1)
              .ok());
      const engine::Schedule& s = engine.find_queue("q")->schedules.at("nightly");
      CHECK(s.cron->zone_missing());
      CHECK(s.cron->text() == "CRON_TZ=Mars/Olympus 0 3 * * *");  // logged again as it was
      CHECK(s.next_ms == INT64_MAX);
      CHECK(s.fired == 4);
      CHECK(engine.find_queue("q")->schedule_at == INT64_MAX);  // no timer due for it
    }
    // Logged asleep, and read where the zone is known: it wakes at its next time.
    engine::Engine engine{clock, engine::EngineLimits{}, engine::QueueSettings{}};
    server::Journal journal{engine, 1.5};
    std::string body = queue_with_cron("CRON_TZ=Europe/Berlin 0 3 * * *", 4);
    std::string never;
    wal::put_varint(never, static_cast<uint64_t>(INT64_MAX));
    std::string logged_next;
    wal::put_varint(logged_next, 1'700'000'000'000);
    body.replace(body.size() - 1 - logged_next.size(), logged_next.size(), never);
    REQUIRE(journal.apply(wal::Record{2, 1, body}, 1).ok());
    const engine::Schedule& s = engine.find_queue("q")->schedules.at("nightly");
    CHECK_FALSE(s.cron->zone_missing());
    CHECK(s.next_ms == s.cron->next_after(clock.now_ms()));
    CHECK(s.next_ms < INT64_MAX);
  }

  TEST_CASE("a queue named wait or count, which the first tqds took, is kept at replay") {
    // 8874fd2 took CREATE wait; DEQUEUE reads WAIT and COUNT as keywords
    // since, and CREATE refuses them, but a log may still hold one.
    engine::ManualClock clock;
    engine::Engine engine{clock, engine::EngineLimits{}, engine::QueueSettings{}};
    server::Journal journal{engine, 1.5};
    std::string old_queue;
    wal::put_varint(old_queue, 1);
    wal::put_bytes(old_queue, "wait");
    wal::put_varint(old_queue, 30'000);  // ack_timeout_ms, the whole record then
    REQUIRE(journal.apply(wal::Record{2, 1, old_queue}, 1).ok());
    std::string job;
    wal::put_varint(job, 1);      // id
    wal::put_varint(job, 1);      // queue number
    job += static_cast<char>(0);  // ready
    wal::put_varint(job, 0);
    wal::put_varint(job, 0);
    wal::put_varint(job, 0);
    job += static_cast<char>(0);
    job += "kept";
    REQUIRE(journal.apply(wal::Record{4, 2, job}, 1).ok());
    REQUIRE(engine.find_queue("wait") != nullptr);
    CHECK(engine.find_queue("wait")->job_count() == 1);
    // As the current tqd writes it again (compaction), in any case.
    std::string body;
    wal::put_varint(body, 2);
    wal::put_bytes(body, "Count");
    for (uint64_t v : {30'000, 0, 0, 2'000, 3'600'000, 0, 300'000, 0}) wal::put_varint(body, v);
    wal::put_signed_varint(body, 0);
    body += static_cast<char>(1);  // paused
    REQUIRE(journal.apply(wal::Record{2, 3, body}, 1).ok());
    REQUIRE(engine.find_queue("Count") != nullptr);
    CHECK(engine.find_queue("Count")->paused);
    // CREATE still refuses them, and other names no queue can have stay damage.
    CHECK(engine.create_queue("waits").ok());
    CHECK_FALSE(engine.create_queue("WAIT").ok());
    std::string digits;
    wal::put_varint(digits, 3);
    wal::put_bytes(digits, "123");
    wal::put_varint(digits, 30'000);
    CHECK_FALSE(journal.apply(wal::Record{2, 4, digits}, 1).ok());
    std::string waits;
    wal::put_varint(waits, 3);
    wal::put_bytes(waits, "wai t");
    wal::put_varint(waits, 30'000);
    CHECK_FALSE(journal.apply(wal::Record{2, 4, waits}, 1).ok());
  }

  TEST_CASE("a schedule in the host's zone, as tqds before the refusal of localtime logged it") {
    // 40b10b5 took SCHEDULE ... CRON 0 3 * * * TZ localtime and logged it;
    // SCHEDULE refuses it since, and replay refused the whole log.
    const std::string body = queue_with_cron("CRON_TZ=localtime 0 3 * * *", 2);
    engine::ManualClock clock;
    engine::Engine engine{clock, engine::EngineLimits{}, engine::QueueSettings{}};
    server::Journal journal{engine, 1.5};
    REQUIRE(journal.apply(wal::Record{2, 1, body}, 1).ok());
    const engine::Schedule& s = engine.find_queue("q")->schedules.at("nightly");
    CHECK(s.cron->text() == "CRON_TZ=localtime 0 3 * * *");
    CHECK(s.fired == 2);
    // SCHEDULE still refuses it.
    std::string why;
    CHECK_FALSE(engine::CronSpec::parse("CRON_TZ=localtime 0 3 * * *", &why).has_value());
  }

  TEST_CASE("a QUEUE record from before max_leased and the rate limit gives them their defaults") {
    engine::ManualClock clock;
    engine::Engine engine{clock, engine::EngineLimits{}, engine::QueueSettings{}};
    server::Journal journal{engine, 1.5};
    // The body as the log wrote it before those settings: ends at the flags.
    auto old_body = [](uint64_t number, std::string_view name) {
      std::string body;
      wal::put_varint(body, number);
      wal::put_bytes(body, name);
      wal::put_varint(body, 45'000);     // ack_timeout_ms
      wal::put_varint(body, 3);          // max_attempts
      wal::put_varint(body, 0);          // backoff_base_ms
      wal::put_varint(body, 2'000);      // backoff_factor, thousandths
      wal::put_varint(body, 3'600'000);  // backoff_max_ms
      wal::put_varint(body, 0);          // backoff_jitter
      wal::put_varint(body, 300'000);    // dedup_window_ms
      wal::put_varint(body, 0);          // max_size
      wal::put_signed_varint(body, 2);   // priority
      body += static_cast<char>(1);      // flags: paused
      return body;
    };
    const std::string body = old_body(7, "old");
    REQUIRE(journal.apply(wal::Record{2, 1, body}, 1).ok());
    const engine::Queue* q = engine.find_queue("old");
    REQUIRE(q != nullptr);
    CHECK(q->settings.ack_timeout_ms == 45'000);
    CHECK(q->settings.priority == 2);
    CHECK(q->paused);
    CHECK(q->settings.max_leased == 0);
    CHECK(q->settings.rate_limit == 0);
    CHECK(q->settings.rate_window_ms == 1'000);
    CHECK(q->settings.dead_retention_ms == 0);
    // One group later: the delivery limits, not yet the dead-letter ones.
    std::string limits_only = old_body(8, "new");
    wal::put_varint(limits_only, 4);
    wal::put_varint(limits_only, 10);
    wal::put_varint(limits_only, 2'000);
    REQUIRE(journal.apply(wal::Record{2, 2, limits_only}, 1).ok());
    const engine::Queue* n = engine.find_queue("new");
    REQUIRE(n != nullptr);
    CHECK(n->settings.max_leased == 4);
    CHECK(n->settings.rate_window_ms == 2'000);
    CHECK(n->settings.dead_retention_ms == 0);
    CHECK(n->settings.dead_max == 0);
    // The dead-letter group: cut short, or out of range, is damage.
    std::string cut_dead = limits_only;
    wal::put_varint(cut_dead, 60'000);
    CHECK_FALSE(journal.apply(wal::Record{2, 3, cut_dead}, 1).ok());
    std::string negative_retention = limits_only;
    wal::put_varint(negative_retention, 1ull << 63);
    wal::put_varint(negative_retention, 0);
    CHECK_FALSE(journal.apply(wal::Record{2, 3, negative_retention}, 1).ok());
    std::string both = limits_only;
    wal::put_varint(both, 60'000);
    wal::put_varint(both, 7);
    REQUIRE(journal.apply(wal::Record{2, 3, both}, 1).ok());
    CHECK(engine.find_queue("new")->settings.dead_retention_ms == 60'000);
    CHECK(engine.find_queue("new")->settings.dead_max == 7);
    // Values CONFIG would refuse are damage too: a window of 2^62 ms would
    // overflow the time of the next delivery.
    std::string huge_window = body;
    wal::put_varint(huge_window, 0);
    wal::put_varint(huge_window, 10);
    wal::put_varint(huge_window, 1ull << 62);
    CHECK_FALSE(journal.apply(wal::Record{2, 2, huge_window}, 1).ok());
    std::string huge_limit = body;
    wal::put_varint(huge_limit, 2'000'000'000);
    wal::put_varint(huge_limit, 0);
    wal::put_varint(huge_limit, 1'000);
    CHECK_FALSE(journal.apply(wal::Record{2, 2, huge_limit}, 1).ok());
    // A record cut inside the new fields is damage, not defaults.
    std::string cut = body + "\x05";
    CHECK_FALSE(journal.apply(wal::Record{2, 2, cut}, 1).ok());
    // Settings added since the schedules follow them, each after the one
    // before: a record that ends before one (from before it) gives 0, and
    // one out of range is damage.
    auto then = [](std::string record, uint64_t value) {
      wal::put_varint(record, value);
      return record;
    };
    const std::string schedules = then(then(both, 0), 0);  // resume_at_ms, no schedules
    REQUIRE(journal.apply(wal::Record{2, 4, schedules}, 1).ok());
    CHECK(engine.find_queue("new")->settings.ttl_ms == 0);
    const std::string ttl = then(schedules, 90'000);
    REQUIRE(journal.apply(wal::Record{2, 5, ttl}, 1).ok());
    CHECK(engine.find_queue("new")->settings.ttl_ms == 90'000);
    CHECK(engine.find_queue("new")->settings.delay_ms == 0);
    CHECK(engine.find_queue("new")->settings.dead_max == 7);
    REQUIRE(journal.apply(wal::Record{2, 6, then(ttl, 45'000)}, 1).ok());
    CHECK(engine.find_queue("new")->settings.delay_ms == 45'000);
    CHECK(engine.find_queue("new")->settings.ttl_ms == 90'000);
    constexpr uint64_t k31Days = 31ull * 86'400'000;
    CHECK_FALSE(journal.apply(wal::Record{2, 7, then(schedules, k31Days)}, 1).ok());
    CHECK_FALSE(journal.apply(wal::Record{2, 8, then(ttl, k31Days)}, 1).ok());
    // The dead_letter_queue follows the delay: a queue name, or empty.
    auto with_name = [](std::string record, std::string_view name) {
      wal::put_bytes(record, name);
      return record;
    };
    const std::string delay = then(ttl, 45'000);
    REQUIRE(journal.apply(wal::Record{2, 9, with_name(delay, "new-dead")}, 1).ok());
    CHECK(engine.find_queue("new")->settings.dead_letter_queue == "new-dead");
    CHECK(engine.find_queue("new")->settings.delay_ms == 45'000);
    REQUIRE(journal.apply(wal::Record{2, 10, with_name(delay, "")}, 1).ok());
    CHECK(engine.find_queue("new")->settings.dead_letter_queue.empty());
    CHECK_FALSE(journal.apply(wal::Record{2, 11, with_name(delay, "no spaces")}, 1).ok());
  }

  TEST_CASE("a log from the first tqd that kept one - QUEUE records hold only the ack timeout") {
    // The records as that tqd (8874fd2) wrote them for CREATE emails, three
    // ENQUEUEs, a DEQUEUE and its ACK, and a DEQUEUE left leased: its QUEUE
    // body ends at ack_timeout_ms ("then later settings", its FORMAT.md said).
    engine::ManualClock clock;
    engine::QueueSettings defaults;
    defaults.max_attempts = 5;
    defaults.dedup_window_ms = 60'000;
    defaults.ttl_dead_letter = true;
    engine::Engine engine{clock, engine::EngineLimits{}, defaults};
    server::Journal journal{engine, 1.5};
    uint64_t seq = 0;
    auto apply = [&](uint8_t type, const std::string& body) {
      return journal.apply(wal::Record{type, ++seq, body}, 1);
    };
    std::string meta;
    wal::put_varint(meta, 1);  // next job id
    wal::put_varint(meta, 1);  // next queue number
    REQUIRE(apply(1, meta).ok());
    std::string queue;
    wal::put_varint(queue, 1);
    wal::put_bytes(queue, "emails");
    wal::put_varint(queue, 45'000);  // ack_timeout_ms, and nothing after it
    REQUIRE(apply(2, queue).ok());
    for (uint64_t id = 1; id <= 3; ++id) {
      std::string job;
      wal::put_varint(job, id);
      wal::put_varint(job, 1);      // queue number
      job += static_cast<char>(0);  // ready
      wal::put_varint(job, 0);      // attempts
      wal::put_varint(job, 0);      // priority
      wal::put_varint(job, 0);      // deadline_ms
      job += static_cast<char>(0);  // flags
      job += "send mail " + std::to_string(id);
      REQUIRE(apply(4, job).ok());
    }
    for (uint64_t id = 1; id <= 2; ++id) {
      std::string lease;
      wal::put_varint(lease, id);
      wal::put_varint(lease, 1);
      REQUIRE(apply(5, lease).ok());
    }
    std::string remove;
    wal::put_varint(remove, 1);
    REQUIRE(apply(7, remove).ok());
    const engine::Queue* q = engine.find_queue("emails");
    REQUIRE(q != nullptr);
    CHECK(q->settings.ack_timeout_ms == 45'000);
    // The settings that tqd did not have are this server's defaults.
    CHECK(q->settings.max_attempts == 5);
    CHECK(q->settings.dedup_window_ms == 60'000);
    CHECK(q->settings.ttl_dead_letter);
    CHECK_FALSE(q->paused);
    CHECK(engine.find_job(1) == nullptr);
    REQUIRE(engine.find_job(2) != nullptr);
    CHECK(engine.find_job(2)->state == engine::JobState::kLeased);
    CHECK(engine.find_job(2)->attempts == 1);
    REQUIRE(engine.find_job(3) != nullptr);
    CHECK(engine.find_job(3)->payload() == "send mail 3");
    CHECK(engine.next_job_id() == 4);
    // Cut before the ack timeout, or with a name no queue can have, it is
    // damage still.
    std::string cut;
    wal::put_varint(cut, 2);
    wal::put_bytes(cut, "other");
    CHECK_FALSE(apply(2, cut).ok());
    std::string bad_name;
    wal::put_varint(bad_name, 2);
    wal::put_bytes(bad_name, "no space");
    wal::put_varint(bad_name, 45'000);
    CHECK_FALSE(apply(2, bad_name).ok());
    CHECK(engine.find_queue("other") == nullptr);
  }
}

}  // namespace journal_test
