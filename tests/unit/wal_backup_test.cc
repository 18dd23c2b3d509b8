// Online backup of the log (wal/backup.h): the copy replays to the log as it
// stood at the pin, whatever is appended, rotated or deleted meanwhile.
#include <doctest/doctest.h>

#include <atomic>
#include <string>
#include <vector>

#include "tests/unit/wal_test_support.h"
#include "wal/backup.h"
#include "wal/run_marker.h"

namespace wal_backup_test {

using namespace tq::wal;
using tq::wal::testing::LogHarness;
using tq::wal::testing::ReplayedRecord;

namespace {

const std::string kBackupDir = "/backup/wal";

// Appends n records of a few dozen bytes (4 KiB segments: many rotations)
// and waits until they are durable.
std::vector<ReplayedRecord> write_records(LogHarness& h, int n, int from = 0) {
  std::vector<ReplayedRecord> written;
  for (int i = from; i < from + n; ++i) {
    const std::string body = "job " + std::to_string(i) + std::string(i % 40, '.');
    auto a = h.log->append(static_cast<uint8_t>(1 + i % 7), body);
    written.push_back({static_cast<uint8_t>(1 + i % 7), a.seq, body, a.segment});
  }
  REQUIRE(h.wait_durable());
  return written;
}

size_t segments_in(MemoryFileSystem& fs, const std::string& dir) {
  auto listed = fs.list(dir);
  std::vector<std::string> names = *listed;
  size_t n = 0;
  for (const std::string& name : names) n += parse_segment_file_name(name) != 0;
  return n;
}

// Opens the copy as tqd would open a data directory restored from it.
std::vector<ReplayedRecord> replay_backup(MemoryFileSystem& fs) {
  LogHarness restored(fs);
  LogOptions options = restored.options();
  options.dir = kBackupDir;
  REQUIRE(restored.open(options).ok());
  CHECK(restored.summary.torn.empty());
  CHECK(restored.reporter.drops.empty());
  return restored.replayed;
}

Status copy(MemoryFileSystem& fs, const BackupPlan& plan, BackupSummary* summary = nullptr) {
  std::atomic<bool> cancel{false};
  BackupSummary ignored;
  return copy_backup(fs, plan, kBackupDir, cancel, summary != nullptr ? summary : &ignored);
}

// A backup of the log as it stands, copied at once (its records written).
void back_up_now(LogHarness& h, MemoryFileSystem& fs) {
  const BackupPlan plan = h.log->pin_for_backup();
  REQUIRE(copy(fs, plan).ok());
  h.log->unpin_for_backup();
}

}  // namespace

TEST_SUITE("wal_backup") {
  TEST_CASE("a backup replays to the log as it stood at the pin, not what came after") {
    FsyncPolicy policy = FsyncPolicy::kAlways;
    SUBCASE("always") { policy = FsyncPolicy::kAlways; }
    SUBCASE("never") { policy = FsyncPolicy::kNever; }
    MemoryFileSystem fs;
    LogHarness h(fs);
    LogOptions options = h.options();
    options.fsync = policy;
    REQUIRE(h.open(options).ok());
    const std::vector<ReplayedRecord> before = write_records(h, 300);
    REQUIRE(h.log->current_segment() > 2);

    const BackupPlan plan = h.log->pin_for_backup();
    CHECK(plan.last_seq == before.back().seq);
    // The log goes on while the copy is made: more records, more segments.
    const uint32_t pinned_segment = h.log->current_segment();
    write_records(h, 300, 300);
    REQUIRE(h.log->current_segment() > pinned_segment);

    BackupSummary summary;
    REQUIRE(copy(fs, plan, &summary).ok());
    h.log->unpin_for_backup();
    CHECK(summary.segments == plan.segments.size());
    CHECK(segments_in(fs, kBackupDir) == plan.segments.size());
    // The newest file ends with an end marker after its records (replay
    // takes one without it for a file cut short): no preallocated space.
    CHECK(fs.contents(kBackupDir + "/" + plan.segments.back().name).size() ==
          plan.segments.back().length + kEndMarkerRoom);
    CHECK(fs.exists(kBackupDir + "/" + kBackupMarkerName));
    CHECK(replay_backup(fs) == before);
  }

  TEST_CASE("no segment is deleted while pinned - deletions asked meanwhile happen at unpin") {
    MemoryFileSystem fs;
    LogHarness h(fs);
    REQUIRE(h.open().ok());
    const std::vector<ReplayedRecord> before = write_records(h, 400);
    const size_t segments = segments_in(fs, h.options().dir);
    REQUIRE(segments > 3);

    const BackupPlan plan = h.log->pin_for_backup();
    // Compaction moves the live objects forward and asks for the old files
    // to go, while the copy has yet to read them.
    h.log->append(1, "moved forward");
    h.log->delete_segments_before(h.log->current_segment() + 1);
    REQUIRE(h.wait_durable());
    h.settle();
    CHECK(segments_in(fs, h.options().dir) == segments);

    REQUIRE(copy(fs, plan).ok());
    h.log->unpin_for_backup();
    h.settle();
    CHECK(segments_in(fs, h.options().dir) == 1);
    CHECK(replay_backup(fs) == before);
  }

  TEST_CASE("segments already asked to go are left out, and the copy still opens") {
    MemoryFileSystem fs;
    LogHarness h(fs);
    REQUIRE(h.open().ok());
    write_records(h, 200);
    // What compaction does: the live state re-written at the head, then
    // every older segment asked to go, the pin coming before the writer
    // has deleted them.
    h.log->rotate();
    auto kept = h.log->append(3, "the live state");
    h.log->delete_segments_before(h.log->current_segment());
    const BackupPlan plan = h.log->pin_for_backup();
    REQUIRE(plan.segments.size() == 1);
    REQUIRE(h.wait_durable());
    h.settle();
    REQUIRE(copy(fs, plan).ok());
    h.log->unpin_for_backup();
    CHECK(replay_backup(fs) ==
          std::vector<ReplayedRecord>{{3, kept.seq, "the live state", kept.segment}});
  }

  TEST_CASE("a segment whose last record ends in zero bytes is copied whole") {
    // The file system reads a file up to its last non-zero byte; the copy
    // must still hold the record's zeros, or replay finds it cut short.
    MemoryFileSystem fs;
    LogHarness h(fs);
    REQUIRE(h.open().ok());
    std::vector<ReplayedRecord> before = write_records(h, 3);
    const std::string zeros_at_end = std::string("payload") + std::string(100, '\0');
    auto a = h.log->append(9, zeros_at_end);
    before.push_back({9, a.seq, zeros_at_end, a.segment});
    // Last in a segment the log has left (copied without its preallocation).
    h.log->rotate();
    auto b = h.log->append(1, "next");
    before.push_back({1, b.seq, "next", b.segment});
    REQUIRE(h.wait_durable());
    back_up_now(h, fs);
    CHECK(replay_backup(fs) == before);
  }

  TEST_CASE("a restored copy takes new records where the original stopped") {
    MemoryFileSystem fs;
    LogHarness h(fs);
    REQUIRE(h.open().ok());
    const std::vector<ReplayedRecord> before = write_records(h, 10);
    back_up_now(h, fs);
    h.close();

    LogHarness restored(fs);
    LogOptions options = restored.options();
    options.dir = kBackupDir;
    REQUIRE(restored.open(options).ok());
    auto a = restored.log->append(1, "after the restore");
    CHECK(a.seq == before.back().seq + 1);
    REQUIRE(restored.wait_durable());
    restored.close();
    CHECK(replay_backup(fs).back().body == "after the restore");
  }

  TEST_CASE("a restored copy's marker goes with its first synced batch, not at a clean stop") {
    // The first batch holds the caller's id jump: a crash after it must not
    // make the next start jump again (and say the copy was not written to).
    for (const FsyncPolicy policy :
         {FsyncPolicy::kAlways, FsyncPolicy::kInterval, FsyncPolicy::kNever}) {
      CAPTURE(fsync_policy_name(policy));
      MemoryFileSystem fs;
      {
        LogHarness h(fs);
        REQUIRE(h.open().ok());
        write_records(h, 10);
        back_up_now(h, fs);
      }
      LogHarness restored(fs);
      LogOptions options = restored.options();
      options.dir = kBackupDir;
      options.fsync = policy;
      REQUIRE(restored.open(options).ok());
      REQUIRE(restored.summary.restored_backup_at_ms != 0);
      CHECK(fs.exists(kBackupDir + "/" + kBackupMarkerName));  // until the batch is synced
      restored.log->append(1, "the id jump");
      REQUIRE(restored.wait_durable());  // the writer takes the marker off before it says so
      CHECK_FALSE(fs.exists(kBackupDir + "/" + kBackupMarkerName));
      const std::unique_ptr<MemoryFileSystem> cut = fs.power_cut_copy();
      LogHarness after(*cut);
      REQUIRE(after.open(options).ok());
      CHECK(after.summary.restored_backup_at_ms == 0);
      CHECK(after.replayed.back().body == "the id jump");
    }
  }

  TEST_CASE("a copy restored over a crashed log's directory opens, its markers left behind") {
    // The crashed log's NEWEST names a file newer than any in the copy: a
    // copy is not held to it, as it is not held to CLOSED.
    MemoryFileSystem fs;
    LogHarness h(fs);
    const std::string dir = h.options().dir;
    REQUIRE(h.open().ok());
    const std::vector<ReplayedRecord> before = write_records(h, 50);
    const BackupPlan plan = h.log->pin_for_backup();
    REQUIRE(copy(fs, plan).ok());
    h.log->unpin_for_backup();
    write_records(h, 300, 50);
    // A kill, then the copy put in place of the log's files; RUNNING and
    // NEWEST stay, as a copy over the directory leaves them.
    MemoryFileSystem crashed;
    const std::vector<std::string> names = *fs.list(dir);
    for (const std::string& name : names) {
      if (parse_segment_file_name(name) == 0) {
        crashed.set_contents(dir + "/" + name, fs.contents(dir + "/" + name));
      }
    }
    const std::vector<std::string> copied = *fs.list(kBackupDir);
    for (const std::string& name : copied) {
      crashed.set_contents(dir + "/" + name, fs.contents(kBackupDir + "/" + name));
    }
    h.close();
    REQUIRE(read_newest_marker(crashed, dir, *crashed.list(dir)) >
            parse_segment_file_name(plan.segments.back().name));
    LogHarness restored(crashed);
    REQUIRE(restored.open().ok());
    CHECK(restored.summary.restored_backup_at_ms != 0);
    CHECK(restored.summary.previous_unclean);
    CHECK(restored.replayed == before);
    // NEWEST names the copy's newest file now.
    CHECK(read_newest_marker(crashed, dir, *crashed.list(dir)) ==
          parse_segment_file_name(plan.segments.back().name));
  }

  TEST_CASE("a cancelled copy stops with an error") {
    MemoryFileSystem fs;
    LogHarness h(fs);
    REQUIRE(h.open().ok());
    write_records(h, 50);
    const BackupPlan plan = h.log->pin_for_backup();
    std::atomic<bool> cancel{true};
    BackupSummary summary;
    const Status s = copy_backup(fs, plan, kBackupDir, cancel, &summary);
    h.log->unpin_for_backup();
    CHECK_FALSE(s.ok());
    CHECK(s.message() == "backup cancelled");
    CHECK(summary.segments == 0);
  }

  TEST_CASE("a copy that cannot be written says why") {
    MemoryFileSystem fs;
    LogHarness h(fs);
    REQUIRE(h.open().ok());
    write_records(h, 50);
    const BackupPlan plan = h.log->pin_for_backup();
    fs.set_capacity(fs.used_bytes());  // the disk is full
    const Status s = copy(fs, plan);
    fs.set_capacity(UINT64_MAX);
    h.log->unpin_for_backup();
    CHECK(s.code() == Status::Code::kNoSpace);
  }

  TEST_CASE("retention keeps the newest backups by their marker and touches nothing else") {
    MemoryFileSystem fs;
    const std::string dir = "/backups";
    auto backup = [&](const std::string& name, const std::string& marker) {
      fs.set_contents(dir + "/" + name + "/wal/00000000000000000001.wal", "records");
      if (!marker.empty()) fs.set_contents(dir + "/" + name + "/wal/BACKUP", marker);
    };
    backup("monday", "1000\n");
    backup("tq-20261202", "2000\n");
    backup("b-tie", "3000\n");
    backup("a-tie", "3000\n");         // the same time: the greater name is the newer
    backup("made-now", "500\n");       // just made, by a clock that had run ahead before
    backup(".making.partial", "1\n");  // under way
    backup("undated", "");             // no marker: not known to be a backup
    backup("unreadable", "soon\n");    // cannot be dated
    backup("live", "10\n");            // the running tqd's data directory, restored from a backup
    backup("running", "20\n");         // another tqd runs on it
    fs.set_contents(dir + "/notes.txt", "keep me");
    auto other_tqd = fs.lock(dir + "/running/wal/LOCK");
    REQUIRE(other_tqd);
    std::vector<std::string> removed;
    const PruneOptions keep3{3, "made-now", dir + "/live"};
    const Status s = prune_backups(fs, dir, keep3, &removed);
    CHECK(s.code() == Status::Code::kLocked);  // the first that could not go, said
    CHECK(removed == std::vector<std::string>{"monday", "tq-20261202"});  // the others went
    const auto left = fs.list(dir);
    REQUIRE(left.ok());
    CHECK(*left == std::vector<std::string>{".making.partial", "a-tie", "b-tie", "live", "made-now",
                                            "notes.txt", "running", "undated", "unreadable"});
    CHECK_FALSE(fs.exists(dir + "/monday/wal/00000000000000000001.wal"));
    other_tqd.value().reset();  // that tqd stopped: its directory is an old backup again
    removed.clear();
    REQUIRE(prune_backups(fs, dir, {1, "made-now", dir + "/live/data"}, &removed).ok());
    CHECK(removed == std::vector<std::string>{"running", "a-tie", "b-tie"});
    CHECK(fs.exists(dir + "/made-now/wal/BACKUP"));
    CHECK(fs.exists(dir + "/live/wal/BACKUP"));  // holds the data directory
    removed.clear();
    REQUIRE(prune_backups(fs, dir, {1, "made-now", dir + "/live"}, &removed).ok());
    CHECK(removed.empty());  // as many as kept: nothing goes
  }
}

}  // namespace wal_backup_test
