#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tests/unit/wal_test_support.h"
#include "wal/overlay_file_system.h"

namespace wal_overlay_test {

using namespace tq::wal;
using tq::wal::testing::LogHarness;

namespace {

std::vector<std::string> sorted_list(FileSystem& fs, const std::string& dir) {
  auto names = fs.list(dir);
  REQUIRE(names.ok());
  std::vector<std::string> sorted = *names;
  std::sort(sorted.begin(), sorted.end());
  return sorted;
}

std::string read_all(FileSystem& fs, const std::string& path) {
  uint64_t size = 0;
  auto bytes = fs.read_file(path, &size);
  REQUIRE(bytes.ok());
  std::string all((*bytes)->bytes());
  all.resize(static_cast<size_t>(size), '\0');
  return all;
}

}  // namespace

TEST_SUITE("wal_overlay") {
  TEST_CASE("writes, removals and renames are seen above and never reach the file system below") {
    MemoryFileSystem below;
    below.set_contents("/d/a", "alpha");
    below.set_contents("/d/b", "beta");
    OverlayFileSystem fs(below);

    auto a = fs.open_for_write("/d/a", false, 0);
    REQUIRE(a.ok());
    REQUIRE((*a)->write_at(1, "LP").ok());
    REQUIRE((*a)->write_at(7, "!").ok());
    CHECK(read_all(fs, "/d/a") == std::string("aLPha\0\0!", 8));
    REQUIRE(fs.remove("/d/b").ok());
    CHECK(fs.remove("/d/b").code() == Status::Code::kNotFound);
    auto c = fs.open_for_write("/d/c", true, 4);
    REQUIRE(c.ok());
    CHECK(fs.open_for_write("/d/a", true, 0).error().code() == Status::Code::kExists);
    REQUIRE(fs.rename("/d/c", "/d/e").ok());
    CHECK(sorted_list(fs, "/d") == std::vector<std::string>{"a", "e"});
    CHECK(read_all(fs, "/d/e") == std::string(4, '\0'));
    CHECK(fs.read_file("/d/b", nullptr).error().code() == Status::Code::kNotFound);

    CHECK(below.contents("/d/a") == "alpha");
    CHECK(below.contents("/d/b") == "beta");
    CHECK_FALSE(below.exists("/d/c"));
    CHECK_FALSE(below.exists("/d/e"));
    CHECK(sorted_list(below, "/d") == std::vector<std::string>{"a", "b"});
  }

  TEST_CASE("a file opened for writing is copied up only when written") {
    MemoryFileSystem below;
    below.set_contents("/d/big", std::string(1000, 'x'));
    OverlayFileSystem fs(below);
    auto file = fs.open_for_write("/d/big", false, 0);
    REQUIRE(file.ok());
    below.set_contents("/d/big", std::string(1000, 'y'));  // still read through
    CHECK(read_all(fs, "/d/big") == std::string(1000, 'y'));
    REQUIRE((*file)->write_at(0, "z").ok());
    below.set_contents("/d/big", std::string(1000, 'w'));  // copied now: no longer seen
    CHECK(read_all(fs, "/d/big") == "z" + std::string(999, 'y'));
  }

  TEST_CASE("a log opened on it is cut and replayed as on disk, and the disk keeps it as it was") {
    // What tqd --check-log does: the whole open, with a power cut's lost
    // writes cut off and the markers rewritten, in memory only.
    MemoryFileSystem fs;
    LogHarness h(fs);
    LogOptions o = h.options();
    o.fsync = FsyncPolicy::kNever;
    o.segment_bytes = 1 << 20;
    std::unique_ptr<MemoryFileSystem> cut;
    {
      REQUIRE(h.open(o).ok());
      for (int i = 0; i < 300; ++i) h.log->append(1, "record " + std::to_string(i));
      REQUIRE(h.wait_durable());  // written: never syncs
      cut = fs.power_cut_copy([](const std::string&, uint64_t sector) { return sector != 2; });
      h.close();
    }
    auto names = cut->list(o.dir);
    REQUIRE(names.ok());
    std::vector<std::pair<std::string, std::string>> files;
    for (const std::string& name : *names) {
      files.emplace_back(name, cut->contents(o.dir + "/" + name));
    }

    OverlayFileSystem untouched(*cut);
    tq::wal::testing::RecordingReporter reporter;
    OpenSummary checked;
    std::vector<uint64_t> seqs;
    {
      auto log = Log::open(
          untouched, o, reporter,
          [&](const Record& r, uint32_t) {
            seqs.push_back(r.seq);
            return Status();
          },
          &checked);
      REQUIRE(log.ok());
      (*log)->append(1, "after the check");
      REQUIRE((*log)->close().ok());
    }
    CHECK(checked.torn_lost_writes);
    for (const auto& file : files) {
      const auto& name = file.first;
      const auto& bytes = file.second;
      CAPTURE(name);
      CHECK(cut->contents(o.dir + "/" + name) == bytes);
    }

    LogHarness real(*cut);
    REQUIRE(real.open(o).ok());
    CHECK(real.summary.torn == checked.torn);
    REQUIRE(!seqs.empty());
    REQUIRE(real.replayed.size() == seqs.size());
    CHECK(real.replayed.back().seq == seqs.back());
  }
}

}  // namespace wal_overlay_test
