// The spare segment (zero-filled, or only preallocated): made on request off
// the writer's path, renamed into place at rotation, never replacing a file,
// and harmless when the disk is full. Then the log itself: rotation takes the spare and replay
// sees exactly what was written.
#include <doctest/doctest.h>

#include <string>

#include "tests/unit/wal_test_support.h"
#include "wal/spare_segment.h"

namespace spare_segment_test {

using namespace tq::wal;
using tq::wal::testing::LogHarness;
using tq::wal::testing::ReplayedRecord;

namespace {

const std::string kDir = "/data/wal";
const std::string kSpare = kDir + "/spare";

}  // namespace

TEST_SUITE("spare_segment") {
  TEST_CASE("a requested spare is zeros, synced, and becomes the named segment once") {
    MemoryFileSystem fs;
    REQUIRE(fs.create_dir(kDir).ok());
    SpareSegment spare(fs, kDir, 8192, true);
    CHECK_FALSE(spare.take(kDir + "/a.wal"));  // nothing asked for yet
    spare.request();
    spare.request();  // asking twice makes one
    spare.wait_idle();
    CHECK(spare.made() == 1);
    CHECK(fs.contents(kSpare) == std::string(8192, '\0'));
    fs.lose_unsynced();  // it was synced: a power cut keeps it
    CHECK(fs.contents(kSpare) == std::string(8192, '\0'));

    CHECK(spare.take(kDir + "/a.wal"));
    CHECK(fs.exists(kDir + "/a.wal"));
    CHECK_FALSE(fs.exists(kSpare));
    CHECK(spare.taken() == 1);
    CHECK_FALSE(spare.take(kDir + "/b.wal"));  // used up until asked again
  }

  TEST_CASE("without zero-fill a spare is preallocated only: no bytes written, its size synced") {
    MemoryFileSystem fs;
    REQUIRE(fs.create_dir(kDir).ok());
    SpareSegment spare(fs, kDir, 8192, false);
    CHECK_FALSE(spare.ready());
    spare.request();
    spare.wait_idle();
    CHECK(spare.ready());
    // Its size, before it can get a segment's name (log_writer.h).
    CHECK(fs.sync_count() == 1);
    CHECK(fs.contents(kSpare).size() == 8192);  // the preallocated size
    fs.lose_unsynced();
    CHECK(fs.contents(kSpare).size() == 8192);
    CHECK(spare.take(kDir + "/a.wal"));
    CHECK_FALSE(spare.ready());
    CHECK(fs.exists(kDir + "/a.wal"));
  }

  TEST_CASE("a spare never replaces an existing file") {
    MemoryFileSystem fs;
    REQUIRE(fs.create_dir(kDir).ok());
    fs.set_contents(kDir + "/a.wal", "precious");
    SpareSegment spare(fs, kDir, 4096, true);
    spare.request();
    spare.wait_idle();
    CHECK_FALSE(spare.take(kDir + "/a.wal"));
    CHECK(fs.contents(kDir + "/a.wal") == "precious");
    CHECK(spare.taken() == 0);
  }

  TEST_CASE("a leftover spare from an earlier run is removed at start") {
    MemoryFileSystem fs;
    REQUIRE(fs.create_dir(kDir).ok());
    fs.set_contents(kSpare, "half made");
    SpareSegment spare(fs, kDir, 4096, true);
    CHECK_FALSE(fs.exists(kSpare));
    CHECK_FALSE(spare.take(kDir + "/a.wal"));
  }

  TEST_CASE("a leftover spare is removed even when this run makes none (always, no zero-fill)") {
    // wal.zero_fill: false with fsync: always makes no SpareSegment, whose
    // constructor was what removed an earlier run's spare: it stayed for good.
    MemoryFileSystem fs;
    REQUIRE(fs.create_dir(kDir).ok());
    fs.set_contents(kSpare, std::string(4096, '\0'));
    LogHarness h(fs);
    LogOptions o = h.options();
    o.fsync = FsyncPolicy::kAlways;
    o.spare_segment = false;
    REQUIRE(h.open(o).ok());
    CHECK_FALSE(fs.exists(kSpare));
  }

  TEST_CASE("on a full disk no spare is made, nothing half-made stays, and it waits to retry") {
    MemoryFileSystem fs;
    REQUIRE(fs.create_dir(kDir).ok());
    fs.set_capacity(1000);
    SpareSegment spare(fs, kDir, 4096, true);
    spare.request();
    spare.wait_idle();
    CHECK(spare.made() == 0);
    CHECK_FALSE(fs.exists(kSpare));
    CHECK_FALSE(spare.take(kDir + "/a.wal"));
    // Counted and said (tqd warns with it): a full disk shows here first.
    CHECK(spare.failures() == 1);
    CHECK(spare.last_failure().find("No space left on device") != std::string::npos);
    fs.set_capacity(UINT64_MAX);
    spare.request();  // too soon after the failure: not tried yet
    spare.wait_idle();
    CHECK(spare.made() == 0);
  }

  TEST_CASE("fsync=always: rotation takes the spare, and replay is exactly what was written") {
    MemoryFileSystem fs;
    std::vector<ReplayedRecord> written;
    auto append = [&](LogHarness& h, int i) {
      std::string body = "record " + std::to_string(i) + std::string(100, '.');
      auto a = h.log->append(1, body);
      written.push_back({1, a.seq, body, a.segment});
    };
    {
      LogHarness h(fs);
      REQUIRE(h.open().ok());  // 4 KiB segments, fsync=always
      int i = 0;
      // Past half of the first segment: the writer asks for a spare.
      while (h.log->total_bytes() < 2600) append(h, i++);
      REQUIRE(h.wait_durable());
      h.log->wait_spare_idle_for_tests();
      CHECK(fs.contents(kSpare) == std::string(4096, '\0'));
      // Into the second segment: it is the spare, renamed.
      const uint32_t first = h.log->current_segment();
      while (h.log->current_segment() == first) append(h, i++);
      REQUIRE(h.wait_durable());
      CHECK(h.log->stats().writer.spare_segments_used == 1);
      fs.lose_unsynced();
    }
    LogHarness h(fs);
    REQUIRE(h.open().ok());
    CHECK(h.replayed == written);
    CHECK(h.summary.torn.empty());
  }

  // A segment that was not a spare (a new log's first, or the one a restart
  // resumes) was fallocated: each sync that is the first after a write into
  // a new 4 KiB block would also commit the file system's journal. The writer
  // keeps zeros written ahead of the records instead (log_writer.h).
  TEST_CASE("fsync=always: a new log's first segment gets zeros ahead: few syncs commit extents") {
    MemoryFileSystem fs;
    LogHarness h(fs);
    LogOptions o = h.options();
    o.fsync = FsyncPolicy::kAlways;
    o.segment_bytes = 4 << 20;
    REQUIRE(h.open(o).ok());
    std::vector<ReplayedRecord> written;
    const size_t syncs_before = fs.sync_count();
    // The open's marker files (their first writes) are not the segment's.
    const size_t extents_before = fs.extent_syncs();
    // About 300 KB, in one batch (and one sync) per record.
    for (int i = 0; i < 2000; ++i) {
      std::string body = "job " + std::to_string(i) + std::string(130, 'x');
      auto a = h.log->append(1, body);
      written.push_back({1, a.seq, body, a.segment});
      REQUIRE(h.wait_durable());
    }
    CHECK(fs.sync_count() - syncs_before >= 2000);
    // The first sync converts the header's block and the zeros after it.
    CHECK(fs.extent_syncs() - extents_before <= 1);
    const std::string file = kDir + "/" + segment_file_name(1);
    CHECK(fs.contents(file).size() == o.segment_bytes);  // zeros never grow the file
    h.close();
    fs.lose_unsynced();
    LogHarness again(fs);
    REQUIRE(again.open(o).ok());
    CHECK(again.replayed == written);
    CHECK(again.summary.torn.empty());
  }

  TEST_CASE("fsync=always: a resumed segment gets zeros ahead too, and none without zero-fill") {
    MemoryFileSystem fs;
    const std::string body(130, 'y');
    auto append_each_synced = [&](LogHarness& h, int n) {
      for (int i = 0; i < n; ++i) {
        h.log->append(1, body);
        REQUIRE(h.wait_durable());
      }
    };
    LogOptions o = LogHarness(fs).options();
    o.fsync = FsyncPolicy::kAlways;
    o.segment_bytes = 4 << 20;
    {
      // wal.zero_fill: false writes records only: a sync for nearly every
      // block they reach commits extents (the model checks itself here).
      LogOptions off = o;
      off.spare_segment = false;
      LogHarness h(fs);
      REQUIRE(h.open(off).ok());
      append_each_synced(h, 1000);  // about 35 blocks
      CHECK(fs.extent_syncs() >= 30);
    }
    {
      LogHarness h(fs);
      REQUIRE(h.open(o).ok());
      // The open's marker files (their first writes) are not the segment's.
      const size_t before = fs.extent_syncs();
      append_each_synced(h, 1000);
      CHECK(h.log->current_segment() == 1);  // still the resumed file
      CHECK(fs.extent_syncs() - before <= 1);
    }
    // The zeros grew nothing, and replay finds every record.
    CHECK(fs.contents(kDir + "/" + segment_file_name(1)).size() == o.segment_bytes);
    fs.lose_unsynced();
    LogHarness again(fs);
    REQUIRE(again.open(o).ok());
    size_t jobs = 0;
    for (const ReplayedRecord& r : again.replayed) jobs += r.type == 1 && r.body == body ? 1 : 0;
    CHECK(jobs == 2000);
    CHECK(again.summary.torn.empty());
  }

  TEST_CASE(
      "the model: a first write into a block is metadata until a sync, lost with a power cut") {
    MemoryFileSystem fs;
    auto file = fs.open_for_write(kDir + "/f", true, 8192);  // fallocated: no block written
    REQUIRE(file);
    REQUIRE((*file)->write_at(0, "a").ok());
    REQUIRE((*file)->sync().ok());
    CHECK(fs.extent_syncs() == 1);
    REQUIRE((*file)->write_at(1, "b").ok());  // the same block: data only
    REQUIRE((*file)->sync().ok());
    CHECK(fs.extent_syncs() == 1);
    REQUIRE((*file)->write_at(4096, "c").ok());
    fs.lose_unsynced();  // the second block's first write never reached the disk
    REQUIRE((*file)->write_at(4096, "c").ok());
    REQUIRE((*file)->sync().ok());
    CHECK(fs.extent_syncs() == 2);
  }
}

}  // namespace spare_segment_test
