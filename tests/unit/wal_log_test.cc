#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include "tests/unit/wal_test_support.h"
#include "wal/coding.h"
#include "wal/run_marker.h"

namespace wal_log_test {

using namespace tq::wal;
using tq::wal::testing::LogHarness;
using tq::wal::testing::RecordingReporter;
using tq::wal::testing::ReplayedRecord;

namespace {

const std::string kDir = "/data/wal";

std::string body_of(int i) { return "record " + std::to_string(i) + std::string(i % 50, '.'); }

// Appends n records (types 1..) and waits until they are durable.
std::vector<ReplayedRecord> write_records(LogHarness& h, int n, int from = 0) {
  std::vector<ReplayedRecord> written;
  for (int i = from; i < from + n; ++i) {
    auto a = h.log->append(static_cast<uint8_t>(1 + i % 7), body_of(i));
    written.push_back({static_cast<uint8_t>(1 + i % 7), a.seq, body_of(i), a.segment});
  }
  REQUIRE(h.wait_durable());
  return written;
}

// Opens a fresh log on `fs` (with options `o`, or the defaults), writes n
// records and closes it again: the starting point of every test that
// damages a log. A clean close: all of it synced.
std::vector<ReplayedRecord> write_closed_log(MemoryFileSystem& fs, int n,
                                             std::optional<LogOptions> o = std::nullopt) {
  LogHarness h(fs);
  REQUIRE(h.open(o ? *o : h.options()).ok());
  return write_records(h, n);
}

// The open refuses `empty`, a newest file of 0 bytes that a tqd naming only
// full-size files cannot have left: it was cut short from outside.
void check_refused_as_cut_short(MemoryFileSystem& fs, const std::string& empty) {
  LogHarness h(fs);
  Status s = h.open();
  REQUIRE_FALSE(s.ok());
  CHECK(s.message() == empty +
                           " at offset 0: file is shorter than a segment header (0 bytes; "
                           "segment files are created at full size, so it was cut short)");
}

// Holds the syncs of the log's segment files, not of its markers or its
// directory: files written but not on disk, for a power cut to take.
void hold_segment_syncs(MemoryFileSystem& fs) {
  fs.set_hold_syncs_of([](const std::string& path) {
    return path.size() > 4 && path.substr(path.size() - 4) == ".wal";
  });
}

// A clean close writes CLOSED (where the log ended); a crash does not. Tests
// that damage a log as a crash would, after closing it, take it away.
void as_after_crash(MemoryFileSystem& fs) {
  if (fs.exists(kDir + "/" + kClosedMarkerName)) {
    REQUIRE(fs.remove(kDir + "/" + kClosedMarkerName).ok());
  }
}

// Appends record i (type 1) without waiting, and notes it in `written`.
void append_noted(LogHarness& h, std::vector<ReplayedRecord>& written, int i) {
  auto a = h.log->append(1, body_of(i));
  written.push_back({1, a.seq, body_of(i), a.segment});
}

// After a start that cut the log (a torn write, a power cut's lost writes):
// writing goes on from the cut, and the next open reads `kept` and what was
// written since, with nothing more to cut.
void check_writing_goes_on(LogHarness& h, MemoryFileSystem& fs, const LogOptions& o,
                           std::vector<ReplayedRecord> kept) {
  for (auto& r : write_records(h, 3, 1000)) kept.push_back(r);
  h.close();
  LogHarness again(fs);
  REQUIRE(again.open(o).ok());
  CHECK(again.replayed == kept);
  CHECK(again.summary.torn.empty());
  CHECK_FALSE(again.summary.lost_writes_removed);
}

// Where the records in a segment's contents end: the zeros after them are
// the file's room (preallocated, or zero-filled ahead).
size_t records_end(const std::string& data) {
  size_t end = data.size();
  while (end > 0 && data[end - 1] == 0) --end;
  return end;
}

// Zeros the last three bytes of the last record in `data`: that record is
// then cut short, as a write a crash stopped would be.
void cut_last_record_short(std::string& data) {
  const size_t end = records_end(data);
  std::fill(data.begin() + static_cast<std::ptrdiff_t>(end) - 3,
            data.begin() + static_cast<std::ptrdiff_t>(end), '\0');
}

std::string newest_segment(MemoryFileSystem& fs) {
  auto listed = fs.list(kDir);
  std::vector<std::string> names = *listed;
  std::string newest;
  for (const auto& n : names) {
    if (n.size() > 4 && n.substr(n.size() - 4) == ".wal" && n > newest) newest = n;
  }
  return kDir + "/" + newest;
}

// One turn of the log on another thread while the file system holds file
// creates: the test checks what the turn did, then creates are let go, at
// the latest when this is destroyed, before the thread is joined (even when
// a check failed).
class TurnWhileCreatesHeld {
 public:
  TurnWhileCreatesHeld(LogHarness& h, MemoryFileSystem& fs)
      : fs_(fs), turn_(std::async(std::launch::async, [&h] { h.turn(); })) {}
  ~TurnWhileCreatesHeld() { fs_.set_hold_creates(false); }
  TurnWhileCreatesHeld(const TurnWhileCreatesHeld&) = delete;
  TurnWhileCreatesHeld& operator=(const TurnWhileCreatesHeld&) = delete;

  // Whether the turn returned. The 10 s bound is for the failure case only:
  // a turn that creates the file itself never returns while creates are held.
  bool returned() { return turn_.wait_for(std::chrono::seconds(10)) == std::future_status::ready; }

 private:
  MemoryFileSystem& fs_;
  std::future<void> turn_;
};

// The log's files as a kill leaves them, for a second process to open.
void copy_log(MemoryFileSystem& from, MemoryFileSystem& to) {
  const std::vector<std::string> names = *from.list(kDir);
  for (const std::string& name : names) {
    to.set_contents(kDir + "/" + name, from.contents(kDir + "/" + name));
  }
}

// What the next start finds if tqd is killed now: `live`'s files, as the
// kill leaves them, opened anew (the open must succeed).
OpenSummary open_after_kill(MemoryFileSystem& live, const LogOptions& o) {
  MemoryFileSystem killed;
  copy_log(live, killed);
  LogHarness next(killed);
  REQUIRE(next.open(o).ok());
  return next.summary;
}

// A fresh log under `policy` whose first record a kill tore, into `killed`
// as the kill left it: the next start cuts the record off, and the segment
// holds only its header. Returns the options the log was opened with.
LogOptions tear_first_record(FsyncPolicy policy, MemoryFileSystem& killed) {
  MemoryFileSystem fs;
  LogHarness h(fs);
  LogOptions o = h.options();
  o.fsync = policy;
  o.spare_segment = false;          // the only writes are the records'
  o.retry_interval_ms = 3'600'000;  // the killed process writes nothing more
  REQUIRE(h.open(o).ok());
  fs.set_cut_next_write(kSegmentHeaderSize + 8);
  h.log->append(1, "the first record of the log");
  CHECK_FALSE(h.wait_durable());
  copy_log(fs, killed);
  return o;
}

// The first seq the NEWEST marker names; 0 when there is none.
uint64_t newest_marked(MemoryFileSystem& fs) {
  return read_newest_marker(fs, kDir, *fs.list(kDir)).value_or(0);
}

size_t segment_count(MemoryFileSystem& fs) {
  auto listed = fs.list(kDir);
  std::vector<std::string> names = *listed;
  size_t n = 0;
  for (const auto& name : names) n += parse_segment_file_name(name) != 0;
  return n;
}

// Segment paths, oldest first.
std::vector<std::string> segment_paths(MemoryFileSystem& fs) {
  auto listed = fs.list(kDir);
  std::vector<std::string> paths;
  for (const auto& n : *listed) {
    if (parse_segment_file_name(n) != 0) paths.push_back(kDir + "/" + n);
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

// What the server does after a recovery: the live state written into a new
// segment, then every older one deleted. The log must then open without
// recover.
void rewrite_and_reopen(MemoryFileSystem& fs, LogHarness& h) {
  h.log->rotate();
  auto a = h.log->append(3, "rewritten");
  h.log->delete_segments_before(h.log->current_segment());
  REQUIRE(h.wait_durable());
  h.settle();
  h.close();
  CHECK(segment_count(fs) == 1);
  LogHarness again(fs);
  REQUIRE(again.open().ok());
  CHECK(again.replayed == std::vector<ReplayedRecord>{{3, a.seq, "rewritten", a.segment}});
}

}  // namespace

TEST_SUITE("wal_log") {
  TEST_CASE("records replay in order after a reopen, across rotated segments") {
    MemoryFileSystem fs;
    std::vector<ReplayedRecord> written = write_closed_log(fs, 300);
    CHECK(segment_count(fs) > 3);  // 4 KiB segments
    LogHarness h(fs);
    REQUIRE(h.open().ok());
    CHECK(h.replayed == written);
    CHECK(h.summary.torn.empty());
    // Appending continues the sequence.
    auto a = h.log->append(1, "after");
    CHECK(a.seq == written.back().seq + 1);
  }

  TEST_CASE("a log that ends before its CLOSED lost its newest file: refused, or recovered") {
    MemoryFileSystem fs;
    {
      LogHarness h(fs);
      LogOptions o = h.options();
      REQUIRE(h.open(o).ok());
      write_records(h, 300);  // 4 KiB segments: several
    }
    REQUIRE(segment_count(fs) > 2);
    REQUIRE(fs.remove(newest_segment(fs)).ok());
    {
      LogHarness h(fs);
      auto opened = h.open();
      REQUIRE_FALSE(opened.ok());
      CHECK(opened.message().find("but when tqd last stopped cleanly it ended at record 300") !=
            std::string::npos);
    }
    LogHarness h(fs);
    LogOptions o = h.options();
    o.recover = true;
    REQUIRE(h.open(o).ok());
    CHECK(h.summary.closed_at_seq_missing == 300);
    // The file before it has room left: it may have lost them too (zeros).
    CHECK(h.summary.closed_at_missing_cause.find(
              "are missing: its newest file(s) are missing, deleted or left out of a copy") !=
          std::string::npos);
    CHECK(h.summary.closed_at_missing_cause.find("dropped") == std::string::npos);
    CHECK(h.summary.seq_bound >= 300);
    CHECK(h.replayed.size() < 300);
    h.close();
    // Closed cleanly again, where the log ends now: a plain start is fine.
    LogHarness again(fs);
    CHECK(again.open().ok());
  }

  TEST_CASE("a crashed log that lost its newest file(s) is refused - or recovered past them") {
    // Nothing in the files left shows it, and no CLOSED says where the log
    // ended: NEWEST names the newest segment the run had made.
    MemoryFileSystem fs;
    MemoryFileSystem killed;
    {
      LogHarness h(fs);
      REQUIRE(h.open().ok());
      write_records(h, 300);  // 4 KiB segments: several
      copy_log(fs, killed);   // what a kill leaves: RUNNING, no CLOSED
    }
    const std::vector<std::string> paths = segment_paths(killed);
    REQUIRE(paths.size() > 2);
    const uint64_t lost_first_seq = parse_segment_file_name(paths.back().substr(kDir.size() + 1));
    std::string expected;
    uint64_t resumed = 0;  // the first seq of the segment writing resumes in
    SUBCASE("the newest file") {
      REQUIRE(killed.remove(paths.back()).ok());
      const std::string left = paths[paths.size() - 2].substr(kDir.size() + 1);
      expected = "the log's newest file is " + left;
      resumed = parse_segment_file_name(left);
    }
    SUBCASE("every file: the log would start empty, its ids from 1") {
      for (const std::string& path : paths) REQUIRE(killed.remove(path).ok());
      expected = "the log has no file";
    }
    {
      LogHarness h(killed);
      Status opened = h.open();
      REQUIRE_FALSE(opened.ok());
      CHECK(opened.code() == Status::Code::kCorruption);
      CHECK(opened.message() == expected + ", but tqd, which did not stop cleanly, had started " +
                                    segment_file_name(lost_first_seq) +
                                    " (wal/NEWEST): its newest file(s) are missing, deleted or "
                                    "left out of a copy; put them back (to start a new, empty "
                                    "log on purpose, remove the whole wal directory)");
      CHECK(h.summary.removed.empty());
    }
    LogHarness h(killed);
    LogOptions o = h.options();
    o.recover = true;
    REQUIRE(h.open(o).ok());
    CHECK(h.summary.newest_missing_first_seq == lost_first_seq);
    // How many records the lost file held is not known: as many as the
    // largest segment can.
    CHECK(h.summary.seq_bound >= lost_first_seq - 1 + kMaxSegmentBytes / kRecordHeaderSize);
    CHECK(h.replayed.size() == (resumed == 0 ? 0 : lost_first_seq - 1));
    CHECK(newest_marked(killed) == resumed);
    h.log->append(1, "after the recovery");
    REQUIRE(h.wait_durable());
    const std::unique_ptr<MemoryFileSystem> crashed_again = killed.power_cut_copy();
    h.close();
    // NEWEST names what is there now: a crash after the recovery is no loss.
    LogHarness again(*crashed_again);
    CHECK(again.open().ok());
    CHECK(again.summary.previous_unclean);
  }

  TEST_CASE(
      "a crashed log refused for a lost newest file keeps the torn tail of the file before it") {
    // The file left last looks torn: the open must not cut it before it
    // refuses, or --wal-recover could no longer keep what it holds.
    MemoryFileSystem fs;
    MemoryFileSystem killed;
    {
      LogHarness h(fs);
      REQUIRE(h.open().ok());
      write_records(h, 300);  // 4 KiB segments: several
      copy_log(fs, killed);
    }
    const std::vector<std::string> paths = segment_paths(killed);
    REQUIRE(paths.size() > 2);
    REQUIRE(killed.remove(paths.back()).ok());
    const std::string left = paths[paths.size() - 2];
    std::string data = killed.contents(left);
    size_t end = data.size();
    while (end > 0 && data[end - 1] == 0) --end;
    std::fill(data.begin() + static_cast<long>(end - 8), data.begin() + static_cast<long>(end),
              '\0');  // the last record's last bytes: a torn write, by its look
    killed.set_contents(left, data);
    LogHarness h(killed);
    const Status opened = h.open();
    REQUIRE_FALSE(opened.ok());
    CHECK(opened.message().find("its newest file(s) are missing") != std::string::npos);
    CHECK(killed.contents(left) == data);
  }

  TEST_CASE("fsync=always: NEWEST names a new segment before any of its records is written") {
    MemoryFileSystem fs;
    LogHarness h(fs);
    LogOptions o = h.options();
    o.spare_segment = false;          // the only writes are the records' (no zeros ahead)
    o.retry_interval_ms = 3'600'000;  // the killed process writes nothing more
    REQUIRE(h.open(o).ok());
    const std::vector<ReplayedRecord> written = write_records(h, 3);
    CHECK(newest_marked(fs) == 1);
    // One sync per batch; a new segment adds its file's and NEWEST's.
    size_t syncs = fs.sync_count();
    write_records(h, 1, 3);
    CHECK(fs.sync_count() == syncs + 1);
    h.log->rotate();
    write_records(h, 1, 4);
    CHECK(fs.sync_count() == syncs + 1 + 3);
    const uint64_t before = newest_marked(fs);
    CHECK(before == 5);
    // A kill (or a power cut) in the first write of the next segment: none
    // of its records is on disk, NEWEST names it all the same.
    h.log->rotate();
    fs.set_cut_next_write(kSegmentHeaderSize + 8);
    const auto a = h.log->append(1, "the first record of a new segment");
    CHECK_FALSE(h.wait_durable());
    const std::unique_ptr<MemoryFileSystem> cut = fs.power_cut_copy();
    const std::string path = kDir + "/" + segment_file_name(a.seq);
    CHECK(cut->contents(path) == std::string(o.segment_bytes, '\0'));
    CHECK(newest_marked(*cut) == a.seq);
    // Its file holds only zeros: it was there, and is removed; nothing is
    // missing. NEWEST names the segment writing resumes in before it goes.
    LogHarness after(*cut);
    REQUIRE(after.open(o).ok());
    CHECK(after.summary.previous_unclean);
    CHECK(after.summary.removed ==
          std::vector<std::string>{path + ": it holds only zeros (created, never written)"});
    CHECK(after.replayed.size() == 5);
    CHECK(newest_marked(*cut) == before);
    const std::unique_ptr<MemoryFileSystem> cut_again = cut->power_cut_copy();
    after.close();
    LogHarness again(*cut_again);
    CHECK(again.open(o).ok());
  }

  TEST_CASE("fsync=never and interval: NEWEST is written by the writer thread, not the caller") {
    FsyncPolicy policy = FsyncPolicy::kNever;
    SUBCASE("never") {
      policy = FsyncPolicy::kNever;
    }
    SUBCASE("interval") {
      policy = FsyncPolicy::kInterval;
    }
    MemoryFileSystem fs;
    LogHarness h(fs);
    LogOptions o = h.options();
    o.fsync = policy;
    REQUIRE(h.open(o).ok());
    write_records(h, 60);  // past half the segment: a spare is made
    h.log->wait_spare_idle_for_tests();
    // The rotation into the spare is the caller's; NEWEST's write and sync
    // would hold it up for as long as the disk takes. The thread gets to it
    // only after syncing the segment left behind, which is held.
    fs.set_hold_syncs(true);
    h.log->rotate();
    const auto a = h.log->append(1, "the first record of a new segment");
    auto turn = std::async(std::launch::async, [&h] { h.turn(); });
    const bool returned = turn.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
    CHECK(h.log->stats().writer.spare_segments_used == 1);
    CHECK(newest_marked(fs) != a.seq);
    fs.set_hold_syncs(false);
    turn.wait();
    REQUIRE(returned);
    // The thread writes it after the new name's directory sync, before it
    // goes on to the deletions asked next.
    h.log->delete_segments_before(h.log->current_segment());
    h.wait_until([&] { return h.log->stats().segments_deleted > 0; });
    CHECK(newest_marked(fs) == a.seq);
  }

  TEST_CASE("fsync=never: NEWEST names a segment the synced first batch after a crash starts") {
    // That batch goes to the writer's thread and syncs what it left behind,
    // the new name too: NEWEST must follow that sync as it follows the
    // thread's own, or it names the older segment for the new one's life.
    MemoryFileSystem fs;
    MemoryFileSystem killed;
    LogOptions o;
    {
      LogHarness h(fs);
      o = h.options();
      o.fsync = FsyncPolicy::kNever;
      REQUIRE(h.open(o).ok());
      write_records(h, 30);
      copy_log(fs, killed);  // RUNNING, no CLOSED
    }
    LogHarness h(killed);
    REQUIRE(h.open(o).ok());
    REQUIRE(h.summary.previous_unclean);
    h.log->rotate();
    const auto a = h.log->append(1, "the first record after the crash, in a new segment");
    REQUIRE(h.wait_durable());
    h.settle();
    CHECK(newest_marked(killed) == a.seq);
    // Its file lost whole now is seen, not read as the log's end.
    const std::unique_ptr<MemoryFileSystem> cut = killed.power_cut_copy();
    REQUIRE(cut->remove(kDir + "/" + segment_file_name(a.seq)).ok());
    LogHarness after(*cut);
    CHECK_FALSE(after.open(o).ok());
  }

  TEST_CASE(
      "NEWEST left behind by a tqd from before it, naming a file it removed and wrote past, is "
      "not taken for a lost file") {
    // A crash just after a rotation left NEWEST naming a file of zeros; a tqd
    // from before NEWEST removed that file, went on writing in the one
    // before, past the removed file's seq, and crashed too.
    MemoryFileSystem fs;
    MemoryFileSystem killed;
    std::vector<ReplayedRecord> written;
    {
      LogHarness h(fs);
      REQUIRE(h.open().ok());
      written = write_records(h, 100);
      copy_log(fs, killed);
    }
    const std::vector<std::string> paths = segment_paths(killed);
    const uint64_t newest_first = parse_segment_file_name(paths.back().substr(kDir.size() + 1));
    REQUIRE(written.back().seq > newest_first);
    REQUIRE(write_newest_marker(killed, kDir, newest_first + 1).ok());
    LogHarness h(killed);
    REQUIRE(h.open().ok());
    CHECK(h.replayed == written);
    CHECK(h.summary.newest_missing_first_seq == 0);
    h.close();

    // Past every record it names a file that is missing indeed.
    {
      LogHarness again(fs);
      REQUIRE(again.open().ok());
      copy_log(fs, killed);
    }
    REQUIRE(write_newest_marker(killed, kDir, written.back().seq + 1).ok());
    LogHarness refused(killed);
    const Status s = refused.open();
    REQUIRE_FALSE(s.ok());
    CHECK(s.message().find("its newest file(s) are missing") != std::string::npos);
  }

  TEST_CASE("RUNNING without NEWEST (a crash of a tqd from before it) opens, and NEWEST is made") {
    MemoryFileSystem fs;
    MemoryFileSystem killed;
    {
      LogHarness h(fs);
      REQUIRE(h.open().ok());
      write_records(h, 300);
      copy_log(fs, killed);
    }
    REQUIRE(killed.remove(kDir + "/" + kNewestMarkerName).ok());
    // An older tqd's RUNNING: the policy alone.
    killed.set_contents(kDir + "/" + kRunMarkerName, "always  \n");
    const std::vector<std::string> paths = segment_paths(killed);
    REQUIRE(paths.size() > 2);
    REQUIRE(killed.remove(paths.back()).ok());  // a loss nothing can show
    LogHarness h(killed);
    REQUIRE(h.open().ok());
    CHECK(h.summary.previous_unclean);
    CHECK(h.summary.newest_missing_first_seq == 0);
    CHECK(killed.contents(kDir + "/" + kRunMarkerName).rfind("always  \n", 0) == 0);
    CHECK(newest_marked(killed) ==
          parse_segment_file_name(paths[paths.size() - 2].substr(kDir.size() + 1)));
    h.close();
    CHECK_FALSE(killed.exists(kDir + "/" + kNewestMarkerName));  // with RUNNING, at a clean close
  }

  TEST_CASE("a log cut at every byte of its last record replays to the last whole record") {
    MemoryFileSystem fs;
    std::vector<ReplayedRecord> written = write_closed_log(fs, 5);
    as_after_crash(fs);
    const std::string path = newest_segment(fs);
    const std::string full = fs.contents(path);
    const size_t last_size = record_size(written.back().body.size());
    size_t end = full.size();
    while (full[end - 1] == 0) --end;  // past the preallocated zeros
    const size_t last_start = end - last_size;
    for (size_t cut = last_start; cut < end; ++cut) {
      CAPTURE(cut);
      std::string damaged = full.substr(0, cut) + std::string(full.size() - cut, '\0');
      fs.set_contents(path, damaged);
      LogHarness h(fs);
      REQUIRE(h.open().ok());
      CHECK(h.replayed == std::vector<ReplayedRecord>(written.begin(), written.end() - 1));
      CHECK(h.summary.torn.empty() == (cut == last_start));
      // The partial record was overwritten with zeros.
      CHECK(fs.contents(path).substr(last_start) == std::string(full.size() - last_start, '\0'));
      h.close();
    }
  }

  TEST_CASE("a batch cut short anywhere in its last records is a torn write") {
    // A crash in the middle of a write leaves a prefix of it: whole records,
    // one cut short, then the file's zeros.
    MemoryFileSystem fs;
    std::vector<ReplayedRecord> written = write_closed_log(fs, 8);
    as_after_crash(fs);
    const std::string path = newest_segment(fs);
    const std::string full = fs.contents(path);
    std::vector<size_t> starts;  // of each record, and the end of the last
    size_t at = kSegmentHeaderSize;
    for (const auto& r : written) {
      starts.push_back(at);
      at += record_size(r.body.size());
    }
    starts.push_back(at);
    for (size_t cut = starts[5] + 1; cut < starts[8]; cut += 3) {
      CAPTURE(cut);
      fs.set_contents(path, full.substr(0, cut) + std::string(full.size() - cut, '\0'));
      LogHarness h(fs);
      REQUIRE(h.open().ok());
      size_t whole = 0;
      while (starts[whole + 1] <= cut) ++whole;
      CHECK(h.replayed == std::vector<ReplayedRecord>(written.begin(), written.begin() + whole));
      // (Unless what was written of it is zeros: then nothing is there to cut.)
      const bool zeros = full.find_first_not_of('\0', starts[whole]) >= cut;
      CHECK(h.summary.torn.rfind(path + " offset " + std::to_string(starts[whole]) + " ", 0) ==
            (zeros ? std::string::npos : 0));
      // Torn, the lost records may have been acknowledged (fsync=never): the
      // bound covers every seq that was written.
      if (!zeros) CHECK(h.summary.seq_bound >= written.back().seq);
      h.close();
    }
  }

  TEST_CASE("a last record whose body ends in zero bytes is not mistaken for a torn one") {
    MemoryFileSystem fs;
    std::string zeros_at_end = std::string("payload") + std::string(100, '\0');
    uint64_t seq = 0;
    {
      LogHarness h(fs);
      REQUIRE(h.open().ok());
      write_records(h, 2);
      seq = h.log->append(9, zeros_at_end).seq;
      REQUIRE(h.wait_durable());
    }
    LogHarness h(fs);
    REQUIRE(h.open().ok());
    REQUIRE(h.replayed.size() == 3);
    CHECK(h.replayed.back().seq == seq);
    CHECK(h.replayed.back().body == zeros_at_end);
    CHECK(h.summary.torn.empty());
  }

  TEST_CASE("a bit flip in an older record stops the open, naming file and offset") {
    MemoryFileSystem fs;
    std::vector<ReplayedRecord> written = write_closed_log(fs, 10);
    const std::string path = newest_segment(fs);
    std::string data = fs.contents(path);
    const size_t third = kSegmentHeaderSize + record_size(written[0].body.size()) +
                         record_size(written[1].body.size());
    data[third + 30] ^= 0x04;
    fs.set_contents(path, data);

    LogHarness h(fs);
    Status s = h.open();
    REQUIRE_FALSE(s.ok());
    CHECK(s.code() == Status::Code::kCorruption);
    CHECK(s.message() == path + " at offset " + std::to_string(third) + ": checksum mismatch");
    CHECK(fs.contents(path) == data);  // left as it was

    // With recover, the damaged record is dropped, loudly, and the rest kept.
    LogOptions o = h.options();
    o.recover = true;
    REQUIRE(h.open(o).ok());
    REQUIRE(h.reporter.drops.size() == 1);
    CHECK(h.reporter.drops[0] == path + "@" + std::to_string(third) + "+" +
                                     std::to_string(record_size(written[2].body.size())) +
                                     ": checksum mismatch; records 3 to 3 lost");
    auto expected = written;
    expected.erase(expected.begin() + 2);
    CHECK(h.replayed == expected);
  }

  TEST_CASE("a missing segment between two others is corruption") {
    MemoryFileSystem fs;
    {
      LogHarness h(fs);
      REQUIRE(h.open().ok());
      write_records(h, 300);
    }
    auto listed = fs.list(kDir);
    std::vector<std::string> names = *listed;
    std::sort(names.begin(), names.end());
    std::vector<std::string> segments;
    for (const auto& n : names) if (parse_segment_file_name(n)) segments.push_back(n);
    REQUIRE(segments.size() >= 3);
    REQUIRE(fs.remove(kDir + "/" + segments[1]).ok());
    LogHarness h(fs);
    Status s = h.open();
    REQUIRE_FALSE(s.ok());
    CHECK(s.message().find(segments[2]) != std::string::npos);
    CHECK(s.message().find("a segment is missing") != std::string::npos);
  }

  TEST_CASE("a second open of the same directory is refused by the lock") {
    MemoryFileSystem fs;
    LogHarness a(fs), b(fs);
    REQUIRE(a.open().ok());
    Status s = b.open();
    CHECK(s.code() == Status::Code::kLocked);
    a.close();
    CHECK(b.open().ok());
  }

  TEST_CASE("fsync=always: one sync per batch, and durable records survive a power cut") {
    MemoryFileSystem fs;
    std::vector<ReplayedRecord> written;
    {
      LogHarness h(fs);
      LogOptions o = h.options();
      o.spare_segment = false;  // its background sync would count too
      REQUIRE(h.open(o).ok());
      size_t before = fs.sync_count();
      // Many records appended in one iteration go out as one batch.
      for (int i = 0; i < 50; ++i) {
        append_noted(h, written, i);
      }
      REQUIRE(h.wait_durable());
      CHECK(fs.sync_count() - before <= 3);  // one per segment touched at most
      fs.lose_unsynced();
    }
    LogHarness h(fs);
    REQUIRE(h.open().ok());
    CHECK(h.replayed == written);
  }

  TEST_CASE("fsync=never: records reach the OS but a power cut may lose them") {
    MemoryFileSystem fs;
    {
      LogHarness h(fs);
      LogOptions o = h.options();
      o.fsync = FsyncPolicy::kNever;
      o.segment_bytes = 1 << 20;
      REQUIRE(h.open(o).ok());
      write_records(h, 1);  // creates the segment (its header is synced with it)
      size_t syncs = fs.sync_count();
      write_records(h, 20, 1);
      CHECK(fs.sync_count() == syncs);
      fs.lose_unsynced();
      h.log.reset();  // a crash: no final sync of what was written
      as_after_crash(fs);
    }
    LogHarness h(fs);
    REQUIRE(h.open().ok());
    CHECK(h.replayed.size() < 21);
  }

  TEST_CASE("a log left open under fsync=never bounds every seq it may have lost") {
    // A power cut, then nothing more reaches the disk: the close that
    // follows cannot make anything durable, as none would run after a crash.
    auto crash = [](MemoryFileSystem& fs, LogHarness& h) {
      fs.lose_unsynced();
      fs.set_fail_syncs(true);
      h.log.reset();
      fs.set_fail_syncs(false);
    };
    MemoryFileSystem fs;
    LogOptions o = LogHarness(fs).options();
    o.fsync = FsyncPolicy::kNever;
    o.segment_bytes = 1 << 20;
    uint64_t last = 0;
    {
      LogHarness h(fs);
      REQUIRE(h.open(o).ok());
      CHECK_FALSE(h.summary.acknowledged_may_be_lost);  // a new log
      write_records(h, 1);
      write_records(h, 20, 1);  // acknowledged, not synced
      last = h.log->last_seq();
      crash(fs, h);
    }
    {
      LogHarness h(fs);
      REQUIRE(h.open(o).ok());
      CHECK(h.summary.acknowledged_may_be_lost);
      CHECK(h.summary.previous_policy == FsyncPolicy::kNever);
      CHECK(h.replayed.size() < 21);  // lost, and the log cannot show it
      CHECK(h.summary.seq_bound >= last);
      // Closed without appending: what the caller derived from the loss is
      // not in the log yet, so the next open must know of the loss too.
    }
    {
      LogHarness h(fs);
      REQUIRE(h.open(o).ok());
      CHECK(h.summary.acknowledged_may_be_lost);
      write_records(h, 1, 100);
      h.close();  // appended, then a clean close
    }
    {
      LogHarness h(fs);
      REQUIRE(h.open(o).ok());
      CHECK_FALSE(h.summary.acknowledged_may_be_lost);
      CHECK(h.summary.seq_bound == h.log->last_seq());
    }
    // Under fsync=always a crash loses nothing acknowledged: no bound.
    o.fsync = FsyncPolicy::kAlways;
    {
      LogHarness h(fs);
      REQUIRE(h.open(o).ok());
      write_records(h, 5, 200);
      crash(fs, h);
    }
    LogHarness h(fs);
    REQUIRE(h.open(o).ok());
    CHECK_FALSE(h.summary.acknowledged_may_be_lost);
    CHECK(h.summary.seq_bound == h.log->last_seq());
  }

  TEST_CASE("after a crash under never, an always run that has written is not taken for lossy") {
    // Each run ends in a power cut: the next one opens a copy of what was
    // synced, and the run's own close never happens on it.
    auto fs = std::make_unique<MemoryFileSystem>();
    LogOptions o = LogHarness(*fs).options();
    o.fsync = FsyncPolicy::kNever;
    o.segment_bytes = 1 << 20;
    auto run = [&](auto&& body) {
      std::unique_ptr<MemoryFileSystem> after;
      {
        LogHarness h(*fs);
        REQUIRE(h.open(o).ok());
        body(h);
        after = fs->power_cut_copy();
      }
      fs = std::move(after);
    };
    run([](LogHarness& h) { write_records(h, 20); });
    o.fsync = FsyncPolicy::kAlways;
    run([](LogHarness& h) {
      CHECK(h.summary.acknowledged_may_be_lost);  // the never run's crash
    });  // cut before this run wrote: the loss must still be known
    run([](LogHarness& h) {
      CHECK(h.summary.acknowledged_may_be_lost);
      CHECK(h.summary.previous_policy == FsyncPolicy::kNever);
      write_records(h, 3, 100);  // durable: what was derived from the loss is in the log
    });
    run([](LogHarness& h) {
      // The cut of a run under always: nothing acknowledged lost, no ids to skip.
      CHECK(h.summary.previous_unclean);
      CHECK_FALSE(h.summary.acknowledged_may_be_lost);
      CHECK(h.summary.seq_bound == h.log->last_seq());
    });
  }

  TEST_CASE("fsync=never and interval: starting a segment does not hold up the caller") {
    // Creating a file can wait for the disk. With a spare ready, the caller
    // (the event loop) renames it into place and writes at once; without one,
    // the batch that starts the segment goes to the writer thread and the
    // caller goes on.
    FsyncPolicy policy = FsyncPolicy::kNever;
    SUBCASE("never") { policy = FsyncPolicy::kNever; }
    SUBCASE("interval") { policy = FsyncPolicy::kInterval; }
    bool spare_ready = false;
    bool oversized = false;  // a record longer than a segment, so than the spare
    SUBCASE("a spare is ready") { spare_ready = true; }
    SUBCASE("no spare yet") { spare_ready = false; }
    SUBCASE("a spare is ready, but the record needs a bigger segment") {
      spare_ready = true;
      oversized = true;
    }
    MemoryFileSystem fs;
    std::vector<ReplayedRecord> written;
    {
      LogHarness h(fs);
      LogOptions o = h.options();
      o.fsync = policy;
      REQUIRE(h.open(o).ok());
      // Past half the segment a spare is asked for; a few records are not.
      written = write_records(h, spare_ready ? 60 : 5);
      h.log->wait_spare_idle_for_tests();
      const uint32_t first = h.log->current_segment();
      const size_t segments = segment_count(fs);
      fs.set_hold_creates(true);
      uint64_t last_seq = 0;
      while (h.log->current_segment() == first) {
        if (oversized) {
          const std::string big(2 * o.segment_bytes, 'b');
          auto a = h.log->append(1, big);
          written.push_back({1, a.seq, big, a.segment});
        } else {
          append_noted(h, written, static_cast<int>(written.size()));
        }
        last_seq = written.back().seq;
      }
      TurnWhileCreatesHeld flushed(h, fs);
      REQUIRE(flushed.returned());
      if (spare_ready && !oversized) {
        CHECK(h.log->durable_seq() == last_seq);  // written in the turn, into the spare
        CHECK(h.log->stats().writer.spare_segments_used == 1);
        CHECK(segment_count(fs) == segments + 1);
      } else {
        CHECK(h.log->durable_seq() < last_seq);  // the new segment's records wait for it
        CHECK(segment_count(fs) == segments);
        CHECK_FALSE(h.log->idle());
      }
      fs.set_hold_creates(false);
      REQUIRE(h.wait_durable());
      CHECK(segment_count(fs) == segments + 1);
      CHECK(h.log->healthy());
      CHECK(h.log->stats().writer.io_errors == 0);
      auto a = h.log->append(2, "after");  // the log goes on in the new segment
      written.push_back({2, a.seq, "after", a.segment});
      REQUIRE(h.wait_durable());
    }
    LogHarness h(fs);
    REQUIRE(h.open().ok());
    CHECK(h.replayed == written);
  }

  TEST_CASE(
      "fsync=interval: a batch that starts two segments with one spare does not hold up the "
      "caller") {
    // One spare covers one rotation. A batch that starts a second segment
    // (records piled up while the writer was busy, or more than a segment's
    // worth in one turn) must go to the writer thread: making that file on
    // the caller means a create and a sync on the event loop.
    MemoryFileSystem fs;
    std::vector<ReplayedRecord> written;
    LogHarness h(fs);
    LogOptions o = h.options();
    o.fsync = FsyncPolicy::kInterval;
    REQUIRE(h.open(o).ok());
    written = write_records(h, 60);  // past half the segment: a spare is made
    h.log->wait_spare_idle_for_tests();
    const size_t segments = segment_count(fs);
    fs.set_hold_creates(true);
    h.log->rotate();
    append_noted(h, written, static_cast<int>(written.size()));
    h.log->rotate();
    append_noted(h, written, static_cast<int>(written.size()));
    TurnWhileCreatesHeld flushed(h, fs);
    REQUIRE(flushed.returned());
    fs.set_hold_creates(false);
    REQUIRE(h.wait_durable());
    CHECK(segment_count(fs) == segments + 2);
    CHECK(h.log->healthy());
    h.close();
    LogHarness again(fs);
    REQUIRE(again.open(o).ok());
    CHECK(again.replayed == written);
  }

  TEST_CASE("a power cut while a segment is made leaves it at its full size, or not there") {
    // Made with open(O_CREAT) and fallocate under its own name, a segment
    // could be left empty by a power cut before its first sync: the size is
    // metadata. Replay takes a short segment for damage, so it must not be.
    MemoryFileSystem fs;
    LogHarness h(fs);
    LogOptions o = h.options();
    o.spare_segment = false;  // rotation makes the file itself
    REQUIRE(h.open(o).ok());
    const std::vector<ReplayedRecord> written = write_records(h, 5);
    fs.set_hold_syncs(true);
    h.log->rotate();
    h.log->append(1, "the first record of a new segment");
    h.log->flush();
    fs.wait_sync_held();
    const std::unique_ptr<MemoryFileSystem> cut = fs.power_cut_copy();
    fs.set_hold_syncs(false);
    REQUIRE(h.wait_durable());
    for (const std::string& path : segment_paths(*cut)) {
      CAPTURE(path);
      CHECK(cut->contents(path).size() == o.segment_bytes);
    }
    LogHarness after(*cut);
    REQUIRE(after.open(o).ok());
    CHECK(after.replayed == written);
  }

  TEST_CASE("a kill in the middle of a record longer than a segment leaves a torn tail") {
    // A queue's schedules (up to 1 MiB), or a dead job's payload with its
    // reason, can make a record longer than wal.segment_bytes. Its segment
    // must be made big enough before it is written: a write that grew the
    // file and was cut short by a kill left the record running past the end
    // of the file, damage that tqd refused to start on.
    MemoryFileSystem fs;
    LogHarness h(fs);
    LogOptions o = h.options();
    o.spare_segment = false;          // the only writes are the records'
    o.retry_interval_ms = 3'600'000;  // the killed process writes nothing more
    REQUIRE(h.open(o).ok());
    const std::vector<ReplayedRecord> written = write_records(h, 5);
    const std::string big(3 * o.segment_bytes, 'x');
    fs.set_cut_next_write(o.segment_bytes + 100);  // the kill comes past the old end
    h.log->append(1, big);
    CHECK_FALSE(h.wait_durable());
    MemoryFileSystem killed;  // what the page cache holds at the kill
    copy_log(fs, killed);
    LogHarness after(killed);
    REQUIRE(after.open(o).ok());
    CHECK(after.replayed == written);
    CHECK_FALSE(after.summary.torn.empty());
    // Whole, it replays, in a segment of its own that holds all of it.
    auto a = after.log->append(1, big);
    REQUIRE(after.wait_durable());
    after.close();
    LogHarness again(killed);
    REQUIRE(again.open(o).ok());
    REQUIRE(again.replayed.size() == written.size() + 1);
    CHECK(again.replayed.back() == ReplayedRecord{1, a.seq, big, a.segment});
  }

  TEST_CASE("a start killed after it cut a torn record skips the ids again - RUNNING says so") {
    // The cut zeroes the torn record, the only sign that ids may be lost,
    // before the first batch records the skip (fsync=always; under never
    // and interval the marker's policy makes any crash skip). Killed in
    // between, the next start found a clean end and gave those ids again
    // (found by a crash harness: next job id 26985, then 16687).
    MemoryFileSystem fs;
    LogHarness h(fs);
    LogOptions o = h.options();
    o.fsync = FsyncPolicy::kAlways;
    o.spare_segment = false;          // the only writes are the records'
    o.retry_interval_ms = 3'600'000;  // the killed process writes nothing more
    REQUIRE(h.open(o).ok());
    write_records(h, 5);
    fs.set_cut_next_write(60);
    h.log->append(1, std::string(500, 'x'));
    CHECK_FALSE(h.wait_durable());
    MemoryFileSystem killed;
    copy_log(fs, killed);
    LogHarness first(killed);
    REQUIRE(first.open(o).ok());
    REQUIRE_FALSE(first.summary.torn.empty());
    REQUIRE(first.summary.ids_may_be_lost());
    const uint64_t bound = first.summary.seq_bound;
    CHECK(first.summary.unrecorded_skip_seq_bound == 0);

    const OpenSummary second = open_after_kill(killed, o);  // before its first batch
    CHECK(second.torn.empty());                             // the cut is gone
    CHECK(second.unrecorded_skip_seq_bound == bound);
    CHECK(second.ids_may_be_lost());
    CHECK(second.seq_bound >= bound);

    // Once the first batch (the caller's skip) is durable, the marker
    // forgets the bound: a later kill is an ordinary one under always.
    first.log->append(1, "the skip");
    REQUIRE(first.wait_durable());
    const OpenSummary third = open_after_kill(killed, o);
    CHECK(third.unrecorded_skip_seq_bound == 0);
    CHECK_FALSE(third.ids_may_be_lost());
  }

  TEST_CASE("a --wal-recover start killed as it rewrites the markers skips the lost ids again") {
    // fsync=always. The recovering start rewrites NEWEST to name the file
    // writing resumes in, the only sign that newer files were lost. It wrote
    // RUNNING, with the bound of ids to skip, after that: killed in between,
    // the next start found NEWEST naming a file that is there and skipped
    // nothing (found by review). RUNNING goes first now, after a crash.
    MemoryFileSystem fs;
    MemoryFileSystem killed;
    {
      LogHarness h(fs);
      REQUIRE(h.open().ok());
      write_records(h, 300);
      copy_log(fs, killed);
    }
    const std::vector<std::string> paths = segment_paths(killed);
    REQUIRE(paths.size() > 2);
    REQUIRE(killed.remove(paths.back()).ok());
    MemoryFileSystem before_open;
    copy_log(killed, before_open);
    LogHarness first(killed);
    LogOptions o = first.options();
    REQUIRE(o.fsync == FsyncPolicy::kAlways);
    LogOptions recover = o;
    recover.recover = true;
    REQUIRE(first.open(recover).ok());
    REQUIRE(first.summary.newest_missing_first_seq != 0);
    const uint64_t bound = first.summary.seq_bound;

    // Killed while NEWEST's rewrite waits for its sync: what the start
    // wrote by then is in the page cache, and the next start must skip.
    {
      MemoryFileSystem during;
      copy_log(before_open, during);
      const std::string newest_path = kDir + "/" + kNewestMarkerName;
      during.set_hold_syncs_of([&](const std::string& path) { return path == newest_path; });
      LogHarness held(during);
      std::thread opening([&] { (void)held.open(recover); });
      during.wait_sync_held();
      MemoryFileSystem killed_there;
      copy_log(during, killed_there);
      during.set_hold_syncs_of(nullptr);
      opening.join();
      LogHarness second(killed_there);
      REQUIRE(second.open(o).ok());
      CHECK(second.summary.ids_may_be_lost());
      CHECK(second.summary.seq_bound >= bound);
    }
    // Killed once RUNNING is rewritten, before NEWEST is, and once both
    // are: the crashed run's files, and the markers the start wrote.
    for (const bool newest_too : {false, true}) {
      CAPTURE(newest_too);
      MemoryFileSystem killed_between;
      copy_log(before_open, killed_between);
      killed_between.set_contents(kDir + "/" + kRunMarkerName,
                                  killed.contents(kDir + "/" + kRunMarkerName));
      if (newest_too) {
        killed_between.set_contents(kDir + "/" + kNewestMarkerName,
                                    killed.contents(kDir + "/" + kNewestMarkerName));
      }
      LogHarness second(killed_between);
      LogOptions again = newest_too ? o : recover;  // NEWEST alone still names the lost file
      REQUIRE(second.open(again).ok());
      CHECK(second.summary.ids_may_be_lost());
      CHECK(second.summary.seq_bound >= bound);
    }
  }

  TEST_CASE("under interval a start killed after it removed files of zeros skips as far again") {
    // Only a file of zeros, named for a late seq: the disk lost what was
    // synced, and ids up to what the file could have held are skipped.
    // Killed before its first batch, the start after found an empty log:
    // under interval the marker's policy made it skip, but only a few
    // segments' worth from seq 1 (found by review). RUNNING carries the
    // bound under every policy now, until the first batch is synced.
    for (FsyncPolicy policy : {FsyncPolicy::kInterval, FsyncPolicy::kAlways}) {
      const std::string policy_name = fsync_policy_name(policy);
      CAPTURE(policy_name);
      MemoryFileSystem killed;
      killed.set_contents(kDir + "/" + segment_file_name(1'000'000), std::string(4096, '\0'));
      REQUIRE(write_run_marker(killed, kDir, policy).ok());
      LogHarness first(killed);
      LogOptions o = first.options();
      o.fsync = policy;
      REQUIRE(first.open(o).ok());
      REQUIRE(first.summary.only_zeros_left);
      const uint64_t bound = first.summary.seq_bound;
      REQUIRE(bound >= 1'000'000);

      const OpenSummary second = open_after_kill(killed, o);  // before its first batch
      CHECK(second.ids_may_be_lost());
      CHECK(second.seq_bound >= bound);

      // The first batch, synced, takes the bound out of RUNNING.
      first.log->append(1, "the skip");
      REQUIRE(first.wait_durable());
      CHECK(open_after_kill(killed, o).unrecorded_skip_seq_bound == 0);
    }
  }

  TEST_CASE("a long record after a torn first record - a kill in it is a torn tail") {
    // A kill tears the first record of a fresh log: the next start cuts it
    // off, and the segment holds only its header, so the next record goes
    // into it whatever its size. One longer than a segment was written past
    // the end of the file, and a kill in the middle of it left damage.
    MemoryFileSystem killed;
    const LogOptions o = tear_first_record(FsyncPolicy::kAlways, killed);
    LogHarness after(killed);
    REQUIRE(after.open(o).ok());
    REQUIRE_FALSE(after.summary.torn.empty());
    const std::string big(3 * o.segment_bytes, 'x');
    killed.set_cut_next_write(o.segment_bytes + 100);  // the kill comes past the old end
    after.log->append(1, big);
    CHECK_FALSE(after.wait_durable());
    MemoryFileSystem killed_again;
    copy_log(killed, killed_again);
    LogHarness again(killed_again);
    const Status reopened = again.open(o);
    INFO(reopened.message());
    REQUIRE(reopened.ok());
    CHECK_FALSE(again.summary.torn.empty());
    // Whole, it replays.
    auto a = again.log->append(1, big);
    REQUIRE(again.wait_durable());
    again.close();
    LogHarness last(killed_again);
    REQUIRE(last.open(o).ok());
    CHECK(last.replayed == std::vector<ReplayedRecord>{{1, a.seq, big, a.segment}});
  }

  TEST_CASE("fsync=never: that long record's segment is grown and synced off the caller's turn") {
    MemoryFileSystem killed;
    const LogOptions o = tear_first_record(FsyncPolicy::kNever, killed);
    LogHarness after(killed);
    REQUIRE(after.open(o).ok());
    REQUIRE_FALSE(after.summary.torn.empty());
    const std::string big(3 * o.segment_bytes, 'x');
    auto a = after.log->append(1, big);
    killed.set_hold_syncs(true);
    auto turn = std::async(std::launch::async, [&after] { after.turn(); });
    // The 10 s bound is for the failure case: a turn that syncs never returns.
    const bool returned = turn.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
    killed.set_hold_syncs(false);
    CHECK(returned);
    REQUIRE(after.wait_durable());
    after.close();
    LogHarness last(killed);
    REQUIRE(last.open(o).ok());
    CHECK(last.replayed == std::vector<ReplayedRecord>{{1, a.seq, big, a.segment}});
  }

  TEST_CASE("fsync=never: a power cut after rotation into a spare leaves the spare's full size") {
    // Without zero-fill the spare is only preallocated; it was renamed into
    // place without its size ever synced, so a power cut could leave the
    // new segment empty.
    MemoryFileSystem fs;
    LogOptions o = LogHarness(fs).options();
    o.fsync = FsyncPolicy::kNever;
    std::vector<ReplayedRecord> written;
    {
      LogHarness h(fs);
      REQUIRE(h.open(o).ok());
      written = write_records(h, 3);
    }  // closed: synced
    LogHarness h(fs);
    REQUIRE(h.open(o).ok());
    REQUIRE(h.replayed == written);
    // Past half the segment a spare is asked for.
    while (h.log->total_bytes() < o.segment_bytes * 3 / 4) {
      append_noted(h, written, static_cast<int>(written.size()));
    }
    h.turn();
    h.log->wait_spare_idle_for_tests();
    h.log->rotate();
    append_noted(h, written, static_cast<int>(written.size()));
    h.turn();
    REQUIRE(h.log->stats().writer.spare_segments_used == 1);
    const std::unique_ptr<MemoryFileSystem> cut = fs.power_cut_copy();
    const std::vector<std::string> paths = segment_paths(*cut);
    REQUIRE(paths.size() >= 2);
    for (const std::string& path : paths) {
      CAPTURE(path);
      CHECK(cut->contents(path).size() == o.segment_bytes);
    }
    LogHarness after(*cut);
    REQUIRE(after.open(o).ok());
    REQUIRE(after.replayed.size() >= 3);
    CHECK(after.replayed ==
          std::vector<ReplayedRecord>(written.begin(), written.begin() + after.replayed.size()));
  }

  TEST_CASE("a full disk fails the batch - the log recovers when space returns") {
    // fsync=always writes on the writer thread; never and interval on the
    // caller's: both must fail the same way and recover the same way.
    FsyncPolicy policy = FsyncPolicy::kAlways;
    SUBCASE("always") { policy = FsyncPolicy::kAlways; }
    SUBCASE("never") { policy = FsyncPolicy::kNever; }
    MemoryFileSystem fs;
    std::vector<ReplayedRecord> written;
    {
      LogHarness h(fs);
      LogOptions o = h.options();
      o.fsync = policy;
      REQUIRE(h.open(o).ok());
      written = write_records(h, 5);
      fs.set_capacity(fs.used_bytes());  // the current segment is full of room, the disk is not
      // Enough records to need a new segment.
      for (int i = 5; i < 200; ++i) {
        append_noted(h, written, i);
      }
      h.log->flush();
      h.wait_failed();
      CHECK_FALSE(h.log->healthy());
      CHECK(h.log->last_error().find("No space left on device") != std::string::npos);
      CHECK_FALSE(h.log->failed_until_restart());  // retried: it may come back
      CHECK(h.log->durable_seq() < written.back().seq);
      fs.set_capacity(UINT64_MAX);
      REQUIRE(h.wait_durable(true));
      CHECK(h.log->healthy());
      CHECK(h.log->stats().writer.io_errors >= 1);
    }
    LogHarness h(fs);
    REQUIRE(h.open().ok());
    CHECK(h.replayed == written);
  }

  TEST_CASE("close() on a full disk returns at once - it does not wait for space") {
    FsyncPolicy policy = FsyncPolicy::kAlways;
    SUBCASE("always") {
      policy = FsyncPolicy::kAlways;
    }
    SUBCASE("never") {
      policy = FsyncPolicy::kNever;
    }
    MemoryFileSystem fs;
    LogHarness h(fs);
    LogOptions o = h.options();
    o.fsync = policy;
    REQUIRE(h.open(o).ok());
    std::vector<ReplayedRecord> written = write_records(h, 5);
    fs.set_capacity(fs.used_bytes());
    for (int i = 5; i < 200; ++i) append_noted(h, written, i);
    h.log->flush();
    h.wait_failed();
    REQUIRE_FALSE(h.log->healthy());

    std::mutex mu;
    std::condition_variable done_cv;
    bool done = false;
    Status closed;
    std::thread closer([&] {
      Status s = h.log->close();
      std::lock_guard<std::mutex> lock(mu);
      closed = s;
      done = true;
      done_cv.notify_all();
    });
    bool returned = false;
    {
      std::unique_lock<std::mutex> lock(mu);
      returned = done_cv.wait_for(lock, std::chrono::seconds(10), [&] { return done; });
    }
    if (!returned) fs.set_capacity(UINT64_MAX);  // let it finish, so the test ends
    closer.join();
    CHECK(returned);
    CHECK_FALSE(closed.ok());  // the failure, not a clean close
  }

  TEST_CASE("a new segment that cannot be made reports why, not a missing file") {
    // posix_file_system() removes a file it created but could not allocate;
    // the writer's retry without O_CREAT then failed with "No such file or
    // directory", and that was the error reported (seen with EFBIG).
    FsyncPolicy policy = FsyncPolicy::kAlways;
    SUBCASE("always") { policy = FsyncPolicy::kAlways; }
    SUBCASE("never") { policy = FsyncPolicy::kNever; }
    MemoryFileSystem fs;
    std::vector<ReplayedRecord> written;
    {
      LogHarness h(fs);
      LogOptions o = h.options();
      o.fsync = policy;
      o.spare_segment = false;
      REQUIRE(h.open(o).ok());
      written = write_records(h, 5);
      fs.set_max_file_size(o.segment_bytes - 1);
      const uint32_t first = h.log->current_segment();
      for (int i = 5; h.log->current_segment() == first; ++i) {
        append_noted(h, written, i);
      }
      h.log->flush();
      h.wait_failed();
      CHECK(h.log->last_error().find("File too large") != std::string::npos);
      CHECK(h.log->last_error().find("No such file") == std::string::npos);
      fs.set_max_file_size(UINT64_MAX);
      REQUIRE(h.wait_durable(true));
      CHECK(h.log->healthy());
    }
    LogHarness h(fs);
    REQUIRE(h.open().ok());
    CHECK(h.replayed == written);
  }

  TEST_CASE("a retried batch opens the segment it created on its first try") {
    // The batch spans two new segments and the disk holds only one: the
    // retry finds the first already there (kExists) and writes into it.
    MemoryFileSystem fs;
    std::vector<ReplayedRecord> written;
    {
      LogHarness h(fs);
      LogOptions o = h.options();
      o.spare_segment = false;
      REQUIRE(h.open(o).ok());
      written = write_records(h, 5);
      fs.set_capacity(fs.used_bytes() + o.segment_bytes);
      const uint32_t first = h.log->current_segment();
      for (int i = 5; h.log->current_segment() < first + 2; ++i) {
        append_noted(h, written, i);
      }
      h.log->flush();
      h.wait_failed();
      CHECK(h.log->last_error().find("No space left on device") != std::string::npos);
      CHECK(segment_count(fs) == 2);
      fs.set_capacity(UINT64_MAX);
      REQUIRE(h.wait_durable(true));
      CHECK(segment_count(fs) == 3);
    }
    LogHarness h(fs);
    REQUIRE(h.open().ok());
    CHECK(h.replayed == written);
  }

  TEST_CASE("a failed write is retried from the same offset until it succeeds") {
    MemoryFileSystem fs;
    std::vector<ReplayedRecord> written;
    {
      LogHarness h(fs);
      REQUIRE(h.open().ok());
      written = write_records(h, 3);
      fs.set_fail_syncs(true);
      auto a = h.log->append(2, "needs a sync");
      written.push_back({2, a.seq, "needs a sync", a.segment});
      h.wait_failed();
      fs.set_fail_syncs(false);
      REQUIRE(h.wait_durable(true));
      fs.lose_unsynced();
    }
    LogHarness h(fs);
    REQUIRE(h.open().ok());
    CHECK(h.replayed == written);
  }

  TEST_CASE("segments are deleted on request, oldest first, never the current one") {
    MemoryFileSystem fs;
    LogHarness h(fs);
    REQUIRE(h.open().ok());
    write_records(h, 300);
    size_t before = segment_count(fs);
    uint32_t current = h.log->current_segment();
    REQUIRE(before > 3);
    h.log->delete_segments_before(current + 100);
    h.settle();
    CHECK(segment_count(fs) == 1);
    h.log->append(1, "x");
    REQUIRE(h.wait_durable());
    CHECK(h.log->oldest_segment() == current);
    CHECK(h.log->stats().segments_deleted == before - 1);
    h.close();
    // Replay starts at the remaining segment; seqs still continue.
    LogHarness again(fs);
    REQUIRE(again.open().ok());
    REQUIRE_FALSE(again.replayed.empty());
    CHECK(again.replayed.back().body == "x");
  }

  TEST_CASE("a deletion whose directory sync failed is retried and the log recovers") {
    // Under always the writer retries the whole batch: the files it had
    // removed before the directory's sync failed are gone on the retry, and
    // that must count as done (it once failed with "No such file" every
    // retry, writes refused until a restart).
    MemoryFileSystem fs;
    LogHarness h(fs);
    REQUIRE(h.open().ok());
    std::vector<ReplayedRecord> written = write_records(h, 300);
    const size_t before = segment_count(fs);
    REQUIRE(before > 3);
    fs.fail_next_dir_syncs(1);
    h.log->delete_segments_before(h.log->current_segment());
    append_noted(h, written, 300);
    h.log->flush();
    REQUIRE(h.wait_durable(true));
    CHECK(h.log->healthy());
    CHECK(h.log->stats().writer.io_errors == 1);
    h.settle();
    CHECK(segment_count(fs) == 1);
    CHECK(h.log->stats().segments_deleted == before - 1);
    h.close();
    LogHarness again(fs);
    REQUIRE(again.open().ok());
    REQUIRE_FALSE(again.replayed.empty());
    CHECK(again.replayed.back() == written.back());
  }

  TEST_CASE("fsync=always: a new segment's name is synced before its records, retries too") {
    bool spare = true;
    SUBCASE("into a spare") { spare = true; }
    SUBCASE("a file made at rotation") { spare = false; }
    MemoryFileSystem fs;
    LogHarness h(fs);
    LogOptions o = h.options();
    o.spare_segment = spare;
    REQUIRE(h.open(o).ok());
    std::vector<ReplayedRecord> written = write_records(h, 3);
    h.log->wait_spare_idle_for_tests();
    h.log->rotate();
    fs.fail_next_dir_syncs(1);
    const size_t dir_syncs = fs.dir_sync_count();
    append_noted(h, written, 3);
    h.log->flush();
    REQUIRE(h.wait_durable(true));
    // The retry found the segment open from its first try: it once went on
    // to the records and acknowledged them with the name maybe not on disk.
    CHECK(h.log->stats().writer.io_errors == 1);
    CHECK(fs.dir_sync_count() == dir_syncs + 1);
    h.close();
    LogHarness again(fs);
    REQUIRE(again.open(o).ok());
    CHECK(again.replayed == written);
  }

  TEST_CASE("fsync=never: once a sync has failed no segment is deleted") {
    MemoryFileSystem fs;
    LogHarness h(fs);
    LogOptions o = h.options();
    o.fsync = FsyncPolicy::kNever;
    {
      // Three segments, all synced by a clean close.
      REQUIRE(h.open(o).ok());
      for (const char* body : {"in the first", "in the second", "in the third"}) {
        h.log->rotate();
        h.log->append(1, body);
        REQUIRE(h.wait_durable());
      }
      h.close();
    }
    REQUIRE(h.open(o).ok());  // writing resumes in the third, nothing else to sync
    const uint32_t second = h.log->oldest_segment() + 1;
    const uint32_t third = h.log->current_segment();
    h.log->append(1, "moved into the third");
    REQUIRE(h.wait_durable());
    // The sync before deleting the first fails: nothing is deleted, and the
    // third segment's new bytes may be gone (Linux drops the pages of a
    // failed writeback and calls them clean).
    fs.set_fail_syncs(true);
    h.log->delete_segments_before(second);
    h.wait_failed();
    CHECK(h.log->failed_until_restart());  // what ERROR IO and tqd's log say
    fs.set_fail_syncs(false);
    // A later deletion must not trust that sync: it once deleted the second
    // segment with nothing synced since, and left the first before a gap
    // that stops the next start.
    h.log->delete_segments_before(third);
    h.settle();
    h.close();
    fs.lose_unsynced();
    LogHarness again(fs);
    const Status reopened = again.open(o);
    INFO(reopened.message());
    REQUIRE(reopened.ok());
    std::vector<std::string> bodies;
    for (const ReplayedRecord& r : again.replayed) bodies.push_back(r.body);
    CHECK(bodies == std::vector<std::string>{"in the first", "in the second", "in the third"});
  }

  TEST_CASE("recover: a newest segment left with no record is removed, not reused by the rewrite") {
    // The rewrite after a recovery starts a new segment, named by the next
    // seq. With no intact record in the newest segment that is the newest
    // segment's own name: the new records went into the damaged file, and
    // deleting the damaged segment then deleted them.
    MemoryFileSystem fs;
    {
      LogHarness h(fs);
      REQUIRE(h.open().ok());
      write_records(h, 3);
    }
    const std::string path = newest_segment(fs);
    std::string data = fs.contents(path);
    const size_t end = records_end(data);
    for (size_t i = kSegmentHeaderSize; i < end; ++i) data[i] = '\xff';  // every record
    fs.set_contents(path, data);

    LogHarness h(fs);
    LogOptions o = h.options();
    o.recover = true;
    REQUIRE(h.open(o).ok());
    CHECK(h.replayed.empty());
    CHECK(h.reporter.drops.size() == 1);
    REQUIRE(h.summary.removed.size() == 1);
    CHECK(h.summary.removed[0].rfind(path + ": ", 0) == 0);
    CHECK_FALSE(fs.exists(path));
    // What compact_all does: a new segment, then every older one deleted.
    h.log->rotate();
    auto a = h.log->append(2, "after");
    h.log->delete_segments_before(h.log->current_segment());
    REQUIRE(h.wait_durable());
    h.settle();
    h.close();

    LogHarness again(fs);
    REQUIRE(again.open().ok());
    CHECK(again.replayed == std::vector<ReplayedRecord>{{2, a.seq, "after", a.segment}});
  }

  TEST_CASE("a newest segment of zeros (created, never written) is removed, and said so") {
    MemoryFileSystem fs;
    std::vector<ReplayedRecord> written = write_closed_log(fs, 3);
    const std::string empty = kDir + "/" + segment_file_name(written.back().seq + 1);
    fs.set_contents(empty, std::string(4096, '\0'));
    LogHarness h(fs);
    REQUIRE(h.open().ok());
    CHECK(h.replayed == written);
    CHECK_FALSE(fs.exists(empty));
    CHECK(h.summary.removed ==
          std::vector<std::string>{empty + ": it holds only zeros (created, never written)"});
  }

  TEST_CASE("recover: a newest segment of zeros still bounds the seqs an older lost tail held") {
    // The newest file is named by its first seq, so the damaged tail of the
    // segment before it held records up to that seq less one. Removing the
    // empty file must not forget that: the bound decides how far job ids
    // skip after a recovery.
    MemoryFileSystem fs;
    std::vector<ReplayedRecord> written = write_closed_log(fs, 10);
    const std::string older = newest_segment(fs);
    std::string bytes = fs.contents(older);
    const size_t last_body = bytes.rfind(body_of(9));
    REQUIRE(last_body != std::string::npos);
    bytes[last_body] ^= 0x20;  // the last record: damage, and nothing intact after it
    fs.set_contents(older, bytes);
    const uint64_t next_seq = written.back().seq + 1;
    const std::string empty = kDir + "/" + segment_file_name(next_seq);
    fs.set_contents(empty, std::string(4096, '\0'));
    LogHarness h(fs);
    LogOptions o = h.options();
    o.recover = true;
    REQUIRE(h.open(o).ok());
    CHECK(h.summary.dropped > 0);
    CHECK_FALSE(fs.exists(empty));
    CHECK(h.summary.seq_bound >= next_seq - 1);
  }

  TEST_CASE("a segment holding only its header opens, even when the header ends in a zero byte") {
    // The reader gets a file's bytes up to its last non-zero one, so such a
    // header arrived a byte short and was refused as damage (1 in 256
    // headers; a segment holds only its header after a torn first record
    // was cut off and nothing was written since).
    std::string header;
    uint64_t first_seq = 1;
    for (;; ++first_seq) {
      header.clear();
      append_segment_header(header, SegmentHeader{1, first_seq});
      if (header.back() == '\0') break;
    }
    MemoryFileSystem fs;
    header.resize(4096, '\0');
    fs.set_contents(kDir + "/" + segment_file_name(first_seq), header);
    {
      LogHarness h(fs);
      REQUIRE(h.open().ok());
      CHECK(h.replayed.empty());
      CHECK(h.log->append(1, "next").seq == first_seq);
      REQUIRE(h.wait_durable());
    }
    LogHarness h(fs);
    REQUIRE(h.open().ok());
    CHECK(h.replayed == std::vector<ReplayedRecord>{{1, first_seq, "next", 1}});
  }

  TEST_CASE("a damaged segment header stops the open - --wal-recover reads its records anyway") {
    MemoryFileSystem fs;
    std::vector<ReplayedRecord> written = write_closed_log(fs, 300);
    const std::vector<std::string> paths = segment_paths(fs);
    REQUIRE(paths.size() >= 4);
    size_t which = 0;
    SUBCASE("the oldest") { which = 0; }
    SUBCASE("one in the middle") { which = 1; }
    SUBCASE("the newest") { which = paths.size() - 1; }
    const std::string path = paths[which];
    std::string data = fs.contents(path);
    data[20] ^= 0x01;  // first_seq, covered by the header checksum
    fs.set_contents(path, data);

    LogHarness h(fs);
    Status s = h.open();
    REQUIRE_FALSE(s.ok());
    CHECK(s.message() == path + " at offset 0: segment header checksum mismatch");
    CHECK(fs.contents(path) == data);

    LogOptions o = h.options();
    o.recover = true;
    REQUIRE(h.open(o).ok());
    const std::string drop = path + "@0+32: segment header checksum mismatch";
    CHECK(h.reporter.drops ==
          std::vector<std::string>{drop + "; the records after it are read all the same"});
    CHECK(h.replayed == written);  // nothing but the header was lost
    CHECK(h.summary.dropped == 1);
    rewrite_and_reopen(fs, h);
  }

  TEST_CASE("a middle segment shorter than a header stops the open - --wal-recover skips it") {
    MemoryFileSystem fs;
    std::vector<ReplayedRecord> written = write_closed_log(fs, 300);
    const std::vector<std::string> paths = segment_paths(fs);
    REQUIRE(paths.size() >= 4);
    const std::string path = paths[1];
    const uint64_t lost_from = parse_segment_file_name(paths[1].substr(kDir.size() + 1));
    const uint64_t lost_to = parse_segment_file_name(paths[2].substr(kDir.size() + 1)) - 1;
    fs.set_contents(path, fs.contents(path).substr(0, 10));

    LogHarness h(fs);
    Status s = h.open();
    REQUIRE_FALSE(s.ok());
    const std::string why =
        "file is shorter than a segment header (10 bytes; segment files are created at full "
        "size, so it was cut short)";
    CHECK(s.message() == path + " at offset 0: " + why);

    LogOptions o = h.options();
    o.recover = true;
    REQUIRE(h.open(o).ok());
    REQUIRE(h.reporter.drops.size() == 2);
    CHECK(h.reporter.drops[0] == path + "@0+10: " + why + "; what it held is lost");
    const std::string lost = std::to_string(lost_from) + " to " + std::to_string(lost_to);
    CHECK(h.reporter.drops[1] == paths[2] + "@0+0: records " + lost + " are missing");
    std::vector<ReplayedRecord> kept;
    for (const auto& r : written) {
      if (r.seq < lost_from || r.seq > lost_to) kept.push_back(r);
    }
    CHECK(h.replayed == kept);
    rewrite_and_reopen(fs, h);
  }

  TEST_CASE("a newest segment cut exactly between two records stops the open") {
    // Outside damage (a copy that stopped, a file system that lost the
    // file's end) can cut a file exactly where a record ends. The writer
    // always leaves an end marker's room after the last record, so the cut
    // shows; read as the log's end, the records after it were lost without a
    // word and their jobs' ids given out again.
    MemoryFileSystem fs;
    std::vector<ReplayedRecord> written = write_closed_log(fs, 300);
    const std::string path = newest_segment(fs);
    const uint32_t newest = written.back().segment;
    std::vector<ReplayedRecord> before;  // the records of the older segments
    std::vector<size_t> ends;            // where each record of the newest one ends
    size_t at = kSegmentHeaderSize;
    for (const auto& r : written) {
      if (r.segment != newest) {
        before.push_back(r);
        continue;
      }
      at += record_size(r.body.size());
      ends.push_back(at);
    }
    REQUIRE(ends.size() >= 3);
    size_t kept = 0;   // records of the newest segment left whole by the cut
    size_t slack = 0;  // zero bytes left after the last one
    SUBCASE("after its second record") {
      kept = 2;
    }
    SUBCASE("after its last record") {
      kept = ends.size();
    }
    SUBCASE("in the zeros, short of an end marker") {
      kept = ends.size();
      slack = kEndMarkerRoom - 1;
    }
    SUBCASE("after its header") {
      kept = 0;
    }
    const size_t cut_at = kept == 0 ? kSegmentHeaderSize : ends[kept - 1];
    CAPTURE(cut_at);
    const std::string full = fs.contents(path);
    const std::string damaged = full.substr(0, cut_at + slack);
    fs.set_contents(path, damaged);

    LogHarness h(fs);
    Status s = h.open();
    REQUIRE_FALSE(s.ok());
    CHECK(s.code() == Status::Code::kCorruption);
    const std::string after =
        kept == 0 ? "its header" : "seq " + std::to_string(before.size() + kept);
    const std::string why = "the file ends " + std::to_string(slack) + " bytes after " + after +
                            ", with no room for the end marker the log always leaves: it was "
                            "cut short (a copy that stopped, or a file system that lost its end)";
    CHECK(s.message() == path + " at offset " + std::to_string(cut_at) + ": " + why +
                             ", and records after it may be lost");
    CHECK(fs.contents(path) == damaged);  // left as it was

    // --wal-recover keeps what is there, and the ids of whatever followed
    // are skipped: a segment's worth of records, as for any lost tail.
    LogOptions o = h.options();
    o.recover = true;
    REQUIRE(h.open(o).ok());
    std::vector<ReplayedRecord> left = before;
    left.insert(left.end(), written.end() - static_cast<long>(ends.size()),
                written.end() - static_cast<long>(ends.size() - kept));
    CHECK(h.replayed == left);
    REQUIRE_FALSE(h.reporter.drops.empty());
    CHECK(h.reporter.drops[0] ==
          path + "@" + std::to_string(cut_at) + "+0: " + why + "; what followed it is lost");
    CHECK(h.summary.seq_bound >= before.size() + kept + kMaxSegmentBytes / kRecordHeaderSize);
    rewrite_and_reopen(fs, h);
  }

  TEST_CASE("a newest segment cut in its zeros, an end marker after the last record, opens whole") {
    MemoryFileSystem fs;
    std::vector<ReplayedRecord> written = write_closed_log(fs, 20);
    const std::string path = newest_segment(fs);
    const std::string full = fs.contents(path);
    size_t end = full.size();
    while (full[end - 1] == 0) --end;
    fs.set_contents(path, full.substr(0, end + kEndMarkerRoom));
    {
      LogHarness h(fs);
      REQUIRE(h.open().ok());
      CHECK(h.replayed == written);
      append_noted(h, written, 20);  // written into the file, grown back to a segment's size
      REQUIRE(h.wait_durable());
    }
    LogHarness h(fs);
    REQUIRE(h.open().ok());
    CHECK(h.replayed == written);
  }

  TEST_CASE("records stop an end marker short of a segment's end, long ones included") {
    // 16 records of this size fill a 4 KiB segment to its last byte: the
    // writer puts 15 in each, and replay finds every segment whole.
    MemoryFileSystem fs;
    const std::string body(((4096 - kSegmentHeaderSize) / 16) - kRecordHeaderSize, 'x');
    REQUIRE(kSegmentHeaderSize + 16 * record_size(body.size()) == 4096);
    std::vector<ReplayedRecord> written;
    {
      LogHarness h(fs);
      REQUIRE(h.open().ok());
      for (int i = 0; i < 40; ++i) {
        auto a = h.log->append(1, body);
        written.push_back({1, a.seq, body, a.segment});
      }
      // Longer than a segment, and exactly as long as one: each gets a
      // segment of its own, made an end marker longer than the record.
      for (size_t size : {size_t{6000}, 4096 - kSegmentHeaderSize - kRecordHeaderSize}) {
        const std::string long_body(size, 'L');
        auto a = h.log->append(2, long_body);
        written.push_back({2, a.seq, long_body, a.segment});
      }
      REQUIRE(h.wait_durable());
    }
    for (const std::string& path : segment_paths(fs)) {
      CAPTURE(path);
      const std::string data = fs.contents(path);
      size_t end = data.size();
      while (end > 0 && data[end - 1] == 0) --end;
      CHECK(data.size() - end >= kEndMarkerRoom);
    }
    CHECK(segment_paths(fs).size() == 5);  // 15 + 15 + 10 records, then the two long ones
    LogHarness h(fs);
    REQUIRE(h.open().ok());
    CHECK(h.replayed == written);
  }

  TEST_CASE("a version 1 segment full to its last byte still opens") {
    // Logs from before version 2 could fill a segment exactly: no end
    // marker proves nothing about them, and they are read as before.
    std::string segment;
    append_segment_header(segment, SegmentHeader{1, 1, 1});
    std::vector<ReplayedRecord> written;
    const std::string body(((4096 - kSegmentHeaderSize) / 16) - kRecordHeaderSize, 'v');
    for (uint64_t seq = 1; seq <= 16; ++seq) {
      append_record(segment, 3, seq, body);
      written.push_back({3, seq, body, 1});
    }
    REQUIRE(segment.size() == 4096);
    MemoryFileSystem fs;
    fs.set_contents(kDir + "/" + segment_file_name(1), segment);
    {
      LogHarness h(fs);
      REQUIRE(h.open().ok());
      CHECK(h.replayed == written);
      append_noted(h, written, 1);  // into a new segment, written as version 2
      CHECK(written.back().segment == 2);
      REQUIRE(h.wait_durable());
    }
    LogHarness h(fs);
    REQUIRE(h.open().ok());
    CHECK(h.replayed == written);
    SegmentHeader header;
    std::string why;
    REQUIRE(parse_segment_header(fs.contents(newest_segment(fs)), &header, &why));
    CHECK(header.version == kFormatVersion);
  }

  // A tqd from before December 2 2026 (evening; a93b7fc, seen under strace)
  // named a segment and then allocated it: a kill between the two left 0
  // bytes under the next seq's name, which its own replay removed.
  TEST_CASE("an empty newest file after a version 1 segment, no marker, is removed") {
    std::string segment;
    append_segment_header(segment, SegmentHeader{1, 1, 1});
    std::vector<ReplayedRecord> written;
    for (uint64_t seq = 1; seq <= 5; ++seq) {
      const std::string body = "job " + std::to_string(seq);
      append_record(segment, 4, seq, body);
      written.push_back({4, seq, body, 1});
    }
    segment.resize(4096, '\0');
    MemoryFileSystem fs;
    fs.set_contents(kDir + "/" + segment_file_name(1), segment);
    const std::string empty = kDir + "/" + segment_file_name(6);
    fs.set_contents(empty, "");

    SUBCASE("the older tqd's log opens, and writing goes on") {
      {
        LogHarness h(fs);
        REQUIRE(h.open().ok());
        CHECK(h.replayed == written);
        CHECK_FALSE(fs.exists(empty));
        CHECK(h.summary.removed ==
              std::vector<std::string>{empty + ": it is empty (0 bytes): an older tqd named it and "
                                               "stopped before it allocated it, never written"});
        append_noted(h, written, 6);
        REQUIRE(h.wait_durable());
      }
      LogHarness again(fs);
      REQUIRE(again.open().ok());
      CHECK(again.replayed == written);
    }
    SUBCASE("with RUNNING, a newer tqd ran last: it names only full files, so it was cut") {
      fs.set_contents(kDir + "/" + kRunMarkerName, "always  \n");
      check_refused_as_cut_short(fs, empty);
      CHECK(fs.exists(empty));
    }
  }

  TEST_CASE("an empty newest file after a version 2 segment, no marker, is damage") {
    MemoryFileSystem fs;
    std::vector<ReplayedRecord> written = write_closed_log(fs, 5);
    as_after_crash(fs);  // no marker left, as in an older tqd's log
    const std::string empty = kDir + "/" + segment_file_name(written.back().seq + 1);
    fs.set_contents(empty, "");
    check_refused_as_cut_short(fs, empty);
  }

  TEST_CASE("damage to the last record, whole on disk, is not taken for a write cut short") {
    // Segments are zero-filled, so a write cut short leaves the record's
    // tail zero. A record whose bytes are all there was written whole and
    // may have been acknowledged: dropping it as torn lost it silently, and
    // its id was handed out again.
    MemoryFileSystem fs;
    std::vector<ReplayedRecord> written = write_closed_log(fs, 5);
    const std::string path = newest_segment(fs);
    const std::string full = fs.contents(path);
    size_t end = full.size();
    while (full[end - 1] == 0) --end;
    const size_t last_start = end - record_size(written.back().body.size());
    size_t flip = 0;
    char bit = 0x01;
    SUBCASE("a byte of the body") { flip = last_start + kRecordHeaderSize + 3; }
    SUBCASE("its last byte") { flip = end - 1; }
    SUBCASE("a byte of the checksum") { flip = last_start + 2; }
    SUBCASE("the length, made shorter") {
      // 12 -> 8: a longer one would reach into the zeros, which is what a
      // record cut short looks like.
      flip = last_start + 8;
      bit = 0x04;
      REQUIRE((full[flip] ^ bit) < full[flip]);
    }
    SUBCASE("the type") { flip = last_start + 12; }
    CAPTURE(flip - last_start);
    std::string damaged = full;
    damaged[flip] ^= bit;
    REQUIRE(damaged[end - 1] != 0);
    fs.set_contents(path, damaged);

    LogHarness h(fs);
    Status s = h.open();
    REQUIRE_FALSE(s.ok());
    CHECK(s.code() == Status::Code::kCorruption);
    CHECK(s.message().rfind(path + " at offset " + std::to_string(last_start) + ": ", 0) == 0);
    CHECK(fs.contents(path) == damaged);  // left as it was

    LogOptions o = h.options();
    o.recover = true;
    REQUIRE(h.open(o).ok());
    CHECK(h.summary.torn.empty());
    REQUIRE(h.reporter.drops.size() == 1);
    CHECK(h.reporter.drops[0].rfind(path + "@" + std::to_string(last_start) + "+" +
                                        std::to_string(end - last_start) + ": ",
                                    0) == 0);
    CHECK(h.replayed == std::vector<ReplayedRecord>(written.begin(), written.end() - 1));
  }

  TEST_CASE("a record whose length was damaged to run past the data is not a torn tail") {
    // Records after it are intact: a write cut short has nothing after it,
    // and cutting the tail there would zero acknowledged records.
    MemoryFileSystem fs;
    std::vector<ReplayedRecord> written = write_closed_log(fs, 5);
    const std::string path = newest_segment(fs);
    std::string damaged = fs.contents(path);
    const size_t second = kSegmentHeaderSize + record_size(written[0].body.size());
    damaged[second + 10] ^= 0x01;  // the length's third byte: 64 KiB longer
    fs.set_contents(path, damaged);

    LogHarness h(fs);
    Status s = h.open();
    REQUIRE_FALSE(s.ok());
    CHECK(s.code() == Status::Code::kCorruption);
    CHECK(s.message().rfind(path + " at offset " + std::to_string(second) + ": ", 0) == 0);
    CHECK(fs.contents(path) == damaged);  // nothing zeroed

    LogOptions o = h.options();
    o.recover = true;
    REQUIRE(h.open(o).ok());
    CHECK(h.summary.torn.empty());
    std::vector<ReplayedRecord> kept = written;
    kept.erase(kept.begin() + 1);
    CHECK(h.replayed == kept);
  }

  TEST_CASE("the refusal says why a damaged last record is not a torn write") {
    MemoryFileSystem fs;
    std::vector<ReplayedRecord> written = write_closed_log(fs, 2);
    const std::string path = newest_segment(fs);
    std::string data = fs.contents(path);
    const size_t last_start = kSegmentHeaderSize + record_size(written[0].body.size());
    data[last_start + kRecordHeaderSize] ^= 0x01;
    fs.set_contents(path, data);
    LogHarness h(fs);
    Status s = h.open();
    CHECK(s.message() == path + " at offset " + std::to_string(last_start) +
                             ": checksum mismatch in the last record, which is whole (damage, "
                             "not a write cut short)");
  }

  TEST_CASE("the refusal says why a record cut short after a clean stop is not cut off") {
    // After a crash such a record is the write the crash stopped, cut off
    // with a warning (README, Crashes). A clean stop synced it whole, so
    // here it is damage, and a bare "record cut short" left an operator
    // wondering why this one stopped the start.
    MemoryFileSystem fs;
    std::vector<ReplayedRecord> written = write_closed_log(fs, 5);
    const std::string path = newest_segment(fs);
    std::string data = fs.contents(path);
    const size_t last_start = records_end(data) - record_size(written.back().body.size());
    cut_last_record_short(data);
    fs.set_contents(path, data);
    LogHarness h(fs);
    Status s = h.open();
    CHECK(s.message() == path + " at offset " + std::to_string(last_start) +
                             ": record cut short, before record " +
                             std::to_string(written.back().seq) +
                             ", where the log ended when tqd last stopped cleanly (wal/CLOSED): "
                             "that stop synced it whole, so no crash cut it short (damage)");
  }

  TEST_CASE("a record cut short in a file before the newest is named damage, not a crash's") {
    MemoryFileSystem fs;
    std::vector<ReplayedRecord> written = write_closed_log(fs, 300);  // several segments
    as_after_crash(fs);  // no CLOSED: the file before the newest is what says it was synced
    auto listed = fs.list(kDir);
    std::vector<std::string> segments;
    for (const std::string& name : *listed) {
      if (name.size() > 4 && name.substr(name.size() - 4) == ".wal") segments.push_back(name);
    }
    REQUIRE(segments.size() > 2);
    std::sort(segments.begin(), segments.end());
    const std::string path = kDir + "/" + segments[segments.size() - 2];
    std::string data = fs.contents(path);
    cut_last_record_short(data);
    fs.set_contents(path, data);
    LogHarness h(fs);
    Status s = h.open();
    REQUIRE_FALSE(s.ok());
    CAPTURE(s.message());
    CHECK(s.message().find(": record cut short, in a file before the newest: the log went on "
                           "in later files, so no crash cut it short (damage)") !=
          std::string::npos);
  }

  TEST_CASE("a log whose newest file lost its last records after a clean stop says so") {
    // The file is there, its end zeros where records were: "its newest
    // file(s) are missing" alone sent the operator looking for files that
    // were all there.
    MemoryFileSystem fs;
    std::vector<ReplayedRecord> written = write_closed_log(fs, 5);
    const std::string path = newest_segment(fs);
    std::string data = fs.contents(path);
    const size_t end = records_end(data);
    const size_t fourth =
        end - record_size(written[4].body.size()) - record_size(written[3].body.size());
    std::fill(data.begin() + static_cast<std::ptrdiff_t>(fourth),
              data.begin() + static_cast<std::ptrdiff_t>(end), '\0');
    fs.set_contents(path, data);
    LogHarness h(fs);
    Status s = h.open();
    CHECK(s.message() ==
          "the log ends at record " + std::to_string(written[2].seq) +
              ", but when tqd last stopped cleanly it ended at record " +
              std::to_string(written[4].seq) + " (wal/CLOSED): records " +
              std::to_string(written[3].seq) + " to " + std::to_string(written[4].seq) +
              " are missing: its newest file(s) are missing, deleted or left out of a copy, or "
              "the end of " +
              path.substr(kDir.size() + 1) + " lost them (zeros from offset " +
              std::to_string(fourth) +
              " on, where that stop had synced records); put back what is missing (to start a "
              "new, empty log on purpose, remove the whole wal directory)");
  }

  TEST_CASE("--wal-recover of a log whose newest file lost its end after a clean stop names it") {
    // The file is there, cut inside its last record, or its last record's
    // end gone to zeros: recovery drops that end, and the records CLOSED
    // says the log held are missing. "its newest file(s) are missing" sent
    // the operator looking for files that were all there.
    MemoryFileSystem fs;
    std::vector<ReplayedRecord> written = write_closed_log(fs, 5);
    const std::string path = newest_segment(fs);
    const std::string name = path.substr(kDir.size() + 1);
    std::string data = fs.contents(path);
    const size_t last_start = records_end(data) - record_size(written.back().body.size());
    SUBCASE("cut inside its last record") {
      data.resize(records_end(data) - 4);
    }
    SUBCASE("its last record's end zeros") {
      cut_last_record_short(data);
    }
    fs.set_contents(path, data);
    LogHarness h(fs);
    LogOptions o = h.options();
    o.recover = true;
    REQUIRE(h.open(o).ok());
    CHECK(h.reporter.drops.size() == 1);
    CHECK(h.replayed.size() == 4);
    CHECK(h.summary.closed_at_seq_missing == written.back().seq);
    CHECK(h.summary.closed_at_missing_cause ==
          "records " + std::to_string(written.back().seq) + " to " +
              std::to_string(written.back().seq) + " are missing: the end of " + name +
              " lost them (from offset " + std::to_string(last_start) +
              " on it is cut short or damaged, and was dropped), or newer file(s) held some of "
              "them and are missing too");
    CHECK(h.summary.seq_bound >= written.back().seq);
  }

  TEST_CASE("a log whose newest file is left with no record after a clean stop says so") {
    // Zeros where the whole file was (refused, or recovered past as a file
    // that may have lost them), or cut before its first record's end
    // (recovery removes it: no intact record is left in it).
    MemoryFileSystem fs;
    std::vector<ReplayedRecord> written = write_closed_log(fs, 300);  // several segments
    const std::string path = newest_segment(fs);
    const std::string name = path.substr(kDir.size() + 1);
    const std::string data = fs.contents(path);
    const uint64_t first_seq = parse_segment_file_name(name);
    const std::string missing = "records " + std::to_string(first_seq) + " to " +
                                std::to_string(written.back().seq) + " are missing: ";
    LogOptions o = LogHarness(fs).options();
    o.recover = true;
    SUBCASE("zeros") {
      fs.set_contents(path, std::string(data.size(), '\0'));
      {
        LogHarness h(fs);
        Status s = h.open();
        CHECK(s.message() ==
              "the log ends at record " + std::to_string(first_seq - 1) +
                  ", but when tqd last stopped cleanly it ended at record " +
                  std::to_string(written.back().seq) + " (wal/CLOSED): " + missing +
                  "its newest file(s) are missing, deleted or left out of a copy, or " + name +
                  " lost them (it holds only zeros, where that stop had synced records); put "
                  "back what is missing (to start a new, empty log on purpose, remove the whole "
                  "wal directory)");
      }
      LogHarness h(fs);
      REQUIRE(h.open(o).ok());
      CHECK(h.summary.closed_at_missing_cause ==
            missing + "its newest file(s) are missing, deleted or left out of a copy, or " + name +
                " lost them (it holds only zeros, where that stop had synced records)");
      // Removed as a file that lost its records, not one never written.
      CHECK(h.summary.removed ==
            std::vector<std::string>{path + ": it holds only zeros, where tqd's last clean stop "
                                            "had synced records (wal/CLOSED)"});
    }
    SUBCASE("cut inside its first record") {
      fs.set_contents(path, data.substr(0, kSegmentHeaderSize + 10));
      LogHarness h(fs);
      REQUIRE(h.open(o).ok());
      CHECK(h.summary.closed_at_missing_cause ==
            missing + name +
                " lost them (no intact record is left in it), or newer file(s) held some of them "
                "and are missing too");
    }
  }

  TEST_CASE(
      "a sector of zeros among records is refused with a power cut's hint; recover keeps the "
      "rest") {
    // A power cut can keep a later sector of a write and not an earlier
    // one, but this log was closed cleanly (no RUNNING): every write was
    // synced, so the zeros are damage. The start stops, says what it looks
    // like, and --wal-recover skips the hole and keeps the intact records
    // after it.
    MemoryFileSystem fs;
    LogOptions o = LogHarness(fs).options();
    o.segment_bytes = 1 << 20;  // one segment
    std::vector<ReplayedRecord> written;
    {
      LogHarness h(fs);
      REQUIRE(h.open(o).ok());
      written = write_records(h, 100);
    }
    as_after_crash(fs);
    const std::string path = newest_segment(fs);
    const std::string full = fs.contents(path);
    std::vector<size_t> starts;
    size_t at = kSegmentHeaderSize;
    for (const auto& r : written) {
      starts.push_back(at);
      at += record_size(r.body.size());
    }
    starts.push_back(at);
    const size_t sector = 1024;
    REQUIRE(sector + 512 < starts.back());
    size_t hit = 0;  // the first record the hole reaches
    while (starts[hit + 1] <= sector) ++hit;
    std::string holed = full;
    std::fill(holed.begin() + sector, holed.begin() + sector + 512, '\0');
    fs.set_contents(path, holed);

    LogHarness h(fs);
    Status s = h.open(o);
    REQUIRE_FALSE(s.ok());
    CHECK(s.message().rfind(path + " at offset " + std::to_string(starts[hit]) + ": ", 0) == 0);
    CHECK(s.message().find("what a power cut leaves when the disk kept a later part of a "
                           "write and not this one") != std::string::npos);
    CHECK(fs.contents(path) == holed);  // left as it was

    o.recover = true;
    REQUIRE(h.open(o).ok());
    size_t after = hit;  // the first record wholly after the hole
    while (starts[after] < sector + 512) ++after;
    std::vector<ReplayedRecord> kept(written.begin(), written.begin() + static_cast<long>(hit));
    kept.insert(kept.end(), written.begin() + static_cast<long>(after), written.end());
    CHECK(h.replayed == kept);
  }

  TEST_CASE(
      "after a power cut, zeros among the newest segment's records cut the log there, with the "
      "intact records after them") {
    // Page writeback has no order: a power cut can keep a later page of
    // writes not yet synced and lose an earlier one. RUNNING says the run
    // did not stop cleanly, so the zeros are its unsynced tail: the log is
    // cut before them, as before a torn write, and nothing after them is
    // replayed. Under always, none of it was acknowledged.
    LogOptions o = LogHarness(*std::make_unique<MemoryFileSystem>()).options();
    o.fsync = FsyncPolicy::kNever;
    o.segment_bytes = 1 << 20;
    for (const size_t hole_size : {size_t{512}, size_t{4096}}) {
      for (size_t hole = 512; hole < 12 * 1024; hole += 512) {
        CAPTURE(hole_size);
        CAPTURE(hole);
        MemoryFileSystem fs;
        std::vector<ReplayedRecord> written;
        std::unique_ptr<MemoryFileSystem> cut;
        std::string path;
        std::string full;
        {
          LogHarness h(fs);
          REQUIRE(h.open(o).ok());
          written = write_records(h, 300);  // written, never synced
          path = newest_segment(fs);
          full = fs.contents(path);
          cut = fs.power_cut_copy();  // RUNNING (synced at open) is there
        }
        std::vector<size_t> starts;
        size_t at = kSegmentHeaderSize;
        for (const auto& r : written) {
          starts.push_back(at);
          at += record_size(r.body.size());
        }
        REQUIRE(hole + hole_size < at);
        size_t hit = 0;  // the first record the hole reaches
        while (starts[hit] + record_size(written[hit].body.size()) <= hole) ++hit;
        size_t after = hit;  // the first record wholly after it
        while (starts[after] < hole + hole_size) ++after;
        std::string holed = full;
        std::fill(holed.begin() + static_cast<long>(hole),
                  holed.begin() + static_cast<long>(hole + hole_size), '\0');
        cut->set_contents(path, holed);

        LogHarness h(*cut);
        REQUIRE(h.open(o).ok());
        const std::vector<ReplayedRecord> kept(written.begin(),
                                               written.begin() + static_cast<long>(hit));
        CHECK(h.replayed == kept);
        CHECK(h.summary.torn_lost_writes);
        CHECK(h.summary.cut_after_lost_writes == written.size() - after);
        CHECK(h.summary.torn.find(path + " offset " + std::to_string(starts[hit])) == 0);
        CHECK(h.summary.seq_bound >= written.back().seq);  // their ids are not issued again
        CHECK(cut->contents(path).find_first_not_of('\0', starts[hit]) == std::string::npos);
        check_writing_goes_on(h, *cut, o, kept);
      }
    }
  }

  TEST_CASE(
      "power cuts that keep unsynced sectors in no order leave a log that opens with every "
      "acknowledged record") {
    // The disk's model: each 512-byte sector written since its file's last
    // sync survives the cut or not, at random. Under always the records of a
    // batch whose sync is still running are not acknowledged; every earlier
    // one is. Under never and interval nothing is synced after the open (or
    // after a clean stop, which synced all before it): the writer's thread
    // is still syncing the first file the log left (in the background) when
    // the power goes, and the log has gone on into more. Each file keeps
    // none, about half or all of its unsynced sectors.
    // Either way the log must open by itself, and replay a prefix of what
    // was written that holds every acknowledged record, with no id of a
    // record written given again.
    std::mt19937_64 random(20261206);
    for (const FsyncPolicy policy :
         {FsyncPolicy::kAlways, FsyncPolicy::kNever, FsyncPolicy::kInterval}) {
      for (int round = 0; round < 30; ++round) {
        const std::string policy_name = fsync_policy_name(policy);
        CAPTURE(policy_name);
        CAPTURE(round);
        MemoryFileSystem fs;
        LogOptions o = LogHarness(fs).options();
        o.fsync = policy;
        o.segment_bytes = 16 << 10;
        std::vector<ReplayedRecord> all;
        size_t acknowledged = 0;
        uint64_t written_seq = 0;  // under never and interval, what the OS was handed
        std::unique_ptr<MemoryFileSystem> cut;
        // Each file keeps none of its unsynced sectors, about half, or all.
        std::map<std::string, uint64_t> keeps;
        auto keep_some = [&](const std::string& path, uint64_t) {
          const uint64_t keep = keeps.try_emplace(path, random() % 3).first->second;
          return keep == 2 || (keep == 1 && random() % 2 == 0);
        };
        {
          LogHarness h(fs);
          REQUIRE(h.open(o).ok());
          all = write_records(h, static_cast<int>(random() % 200));
          if (policy == FsyncPolicy::kAlways) {
            acknowledged = all.size();
            fs.set_hold_syncs(true);
            for (int i = 0, n = 1 + static_cast<int>(random() % 150); i < n; ++i) {
              append_noted(h, all, 10'000 + i);
            }
            h.log->flush();
            fs.wait_sync_held();  // written, not synced
            cut = fs.power_cut_copy(keep_some);
            fs.set_hold_syncs(false);
            REQUIRE(h.wait_durable());
          } else {
            if (random() % 2 == 0) {
              // A clean stop syncs them: a file synced part way, whose
              // later writes a power cut may lose whole.
              h.close();
              REQUIRE(h.open(o).ok());
              acknowledged = all.size();
            }
            hold_segment_syncs(fs);
            for (int i = 0, n = static_cast<int>(random() % 900); i < n; ++i) {
              append_noted(h, all, i);
              if (random() % 8 == 0) h.turn();
            }
            h.turn();
            written_seq = h.log->durable_seq();
            cut = fs.power_cut_copy(keep_some);
            fs.set_hold_syncs_of(nullptr);
          }
        }
        LogHarness after(*cut);
        const Status opened = after.open(o);
        REQUIRE_MESSAGE(opened.ok(), opened.message());
        REQUIRE(after.replayed.size() >= acknowledged);
        REQUIRE(after.replayed.size() <= all.size());
        CHECK(std::equal(after.replayed.begin(), after.replayed.end(), all.begin()));
        CHECK(after.summary.seq_bound >= std::max<uint64_t>(after.replayed.size(), written_seq));
        // And it goes on from there.
        std::vector<ReplayedRecord> kept = after.replayed;
        for (auto& r : write_records(after, 5, 20'000)) kept.push_back(r);
        after.close();
        LogHarness again(*cut);
        REQUIRE(again.open(o).ok());
        CHECK(again.replayed == kept);
      }
    }
  }

  // A log of several 4 KiB files under `policy`, every record written, and
  // what a power cut that kept all of it leaves (RUNNING, another boot),
  // when the writer was still syncing the file before the newest (NEWEST
  // names it yet): the tests below take sectors out of it.
  struct SeveralFiles {
    std::vector<ReplayedRecord> written;
    std::unique_ptr<MemoryFileSystem> cut;
    LogOptions options;
  };
  SeveralFiles several_files_cut(FsyncPolicy policy, int records = 240) {
    SeveralFiles log;
    MemoryFileSystem fs;
    log.options = LogHarness(fs).options();
    log.options.fsync = policy;
    LogHarness h(fs);
    REQUIRE(h.open(log.options).ok());
    log.written = write_records(h, records);
    REQUIRE(log.written.back().segment >= 3);
    log.cut = fs.power_cut_copy([](const std::string&, uint64_t) { return true; });
    const uint32_t before = log.written.back().segment - 1;
    for (const ReplayedRecord& r : log.written) {
      if (r.segment != before) continue;
      REQUIRE(write_newest_marker(*log.cut, kDir, r.seq).ok());
      break;
    }
    return log;
  }

  // Opens `base` (a crash under never) in `h` and appends records past its
  // newest file's end, not yet handed to the writer: the synced first batch
  // after the crash, which leaves that file for a new one. Returns the path
  // of the file it leaves.
  std::string first_batch_past_the_newest(LogHarness & h, const SeveralFiles& base,
                                          std::vector<ReplayedRecord>* batch) {
    REQUIRE(h.open(base.options).ok());
    const std::string left = newest_segment(*base.cut);
    while (batch->empty() || batch->back().segment == batch->front().segment) {
      append_noted(h, *batch, static_cast<int>(batch->size()));
    }
    return left;
  }

  // The records of segment `ordinal`, and where each starts in its file.
  std::vector<std::pair<ReplayedRecord, size_t>> records_in(
      const std::vector<ReplayedRecord>& written, uint32_t ordinal) {
    std::vector<std::pair<ReplayedRecord, size_t>> in;
    size_t at = kSegmentHeaderSize;
    for (const ReplayedRecord& r : written) {
      if (r.segment != ordinal) continue;
      in.emplace_back(r, at);
      at += record_size(r.body.size());
    }
    return in;
  }

  TEST_CASE(
      "fsync=never and interval: after a power cut, zeros in the file before the newest cut the "
      "log there, and the newest file goes") {
    // The writer syncs a file the log has left in the background: a power
    // cut just after a rotation can lose some of its last writes and keep
    // the newest file's records. None of those was synced (the writer syncs
    // no file before the ones left before it), so the log is cut before the
    // zeros as in the newest file, and the files after them are removed.
    for (const FsyncPolicy policy : {FsyncPolicy::kNever, FsyncPolicy::kInterval}) {
      const SeveralFiles base = several_files_cut(policy);
      const uint32_t newest = base.written.back().segment;
      const uint32_t before = newest - 1;
      const auto in_before = records_in(base.written, before);
      const std::string before_path = kDir + "/" + segment_file_name(in_before[0].first.seq);
      const std::string newest_path =
          kDir + "/" + segment_file_name(records_in(base.written, newest)[0].first.seq);
      const size_t newest_records = records_in(base.written, newest).size();
      const size_t end = in_before.back().second + record_size(in_before.back().first.body.size());
      for (size_t hole = 0; hole < end; hole += 512) {
        const std::string policy_name = fsync_policy_name(policy);
        CAPTURE(policy_name);
        CAPTURE(hole);
        std::unique_ptr<MemoryFileSystem> cut = std::make_unique<MemoryFileSystem>();
        copy_log(*base.cut, *cut);
        cut->lose_unsynced();  // another boot again: copy_log's files count as synced
        std::string holed = cut->contents(before_path);
        std::fill(holed.begin() + static_cast<long>(hole),
                  holed.begin() + static_cast<long>(hole + 512), '\0');
        cut->set_contents(before_path, holed);

        LogHarness h(*cut);
        const Status opened = h.open(base.options);
        REQUIRE_MESSAGE(opened.ok(), opened.message());
        std::vector<ReplayedRecord> kept;
        for (const ReplayedRecord& r : base.written) {
          if (r.segment < before) kept.push_back(r);
        }
        size_t hit = 0;    // the first record of the file the hole reaches
        size_t after = 0;  // the first wholly after it
        if (hole != 0) {
          while (in_before[hit].second + record_size(in_before[hit].first.body.size()) <= hole) {
            kept.push_back(in_before[hit++].first);
          }
          after = hit;
          while (after < in_before.size() && in_before[after].second < hole + 512) ++after;
        }
        CHECK(h.replayed == kept);
        CHECK_FALSE(cut->exists(newest_path));
        CHECK(h.summary.lost_writes_removed);
        CHECK(h.summary.seq_bound >= base.written.back().seq);
        if (hole == 0) {
          CHECK_FALSE(cut->exists(before_path));  // its header's sector: nothing in it synced
        } else {
          CHECK(h.summary.torn_lost_writes);
          CHECK(h.summary.torn.rfind(before_path + " offset ", 0) == 0);
          CHECK(h.summary.cut_after_lost_writes == in_before.size() - after + newest_records);
          CHECK(cut->contents(before_path).find_first_not_of('\0', in_before[hit].second) ==
                std::string::npos);
        }
        bool said = false;
        for (const std::string& removed : h.summary.removed) {
          said |=
              removed.rfind(newest_path + ": it follows the zeros a power cut left in ", 0) == 0;
        }
        CHECK(said);
        check_writing_goes_on(h, *cut, base.options, kept);
      }
    }
  }

  TEST_CASE(
      "zeros in the file before the newest are damage under always, once NEWEST is past it, or "
      "with damage after them") {
    // Under always the writer syncs a file before it writes the next one:
    // such zeros with records after them are no power cut's. Nor are they
    // once NEWEST names a later file (the writer names it once the files
    // before it are synced), or when a later file holds anything a power
    // cut does not leave. Refused, with the files left as they are.
    enum class Case { kAlways, kNewestPast, kDamageAfter };
    for (const Case c : {Case::kAlways, Case::kNewestPast, Case::kDamageAfter}) {
      CAPTURE(static_cast<int>(c));
      const FsyncPolicy policy = c == Case::kAlways ? FsyncPolicy::kAlways : FsyncPolicy::kNever;
      const SeveralFiles base = several_files_cut(policy);
      const uint32_t newest = base.written.back().segment;
      const auto in_before = records_in(base.written, newest - 1);
      const auto in_newest = records_in(base.written, newest);
      const std::string before_path = kDir + "/" + segment_file_name(in_before[0].first.seq);
      const std::string newest_path = kDir + "/" + segment_file_name(in_newest[0].first.seq);
      std::string holed = base.cut->contents(before_path);
      std::fill(holed.begin() + 1024, holed.begin() + 1536, '\0');
      base.cut->set_contents(before_path, holed);
      std::string newest_file = base.cut->contents(newest_path);
      if (c == Case::kNewestPast) {
        REQUIRE(write_newest_marker(*base.cut, kDir, in_newest[0].first.seq).ok());
      } else if (c == Case::kDamageAfter) {
        newest_file[in_newest[1].second + kRecordHeaderSize] ^= 0x01;  // a flipped bit
        base.cut->set_contents(newest_path, newest_file);
      }
      base.cut->lose_unsynced();
      LogHarness h(*base.cut);
      const Status s = h.open(base.options);
      REQUIRE_FALSE(s.ok());
      CHECK(s.message().rfind(before_path + " at offset ", 0) == 0);
      CHECK(base.cut->contents(before_path) == holed);
      CHECK(base.cut->contents(newest_path) == newest_file);
    }
  }

  TEST_CASE("fsync=never: a failed sync of the file the synced first batch left is for good") {
    // After a failed fdatasync the file's pages may be gone. The batch's
    // retry wrote only its own records again and found nothing left behind
    // to sync: the log counted itself recovered, with that file's records
    // lost. As any failed sync of such a file, it is unhealthy until a
    // restart replays what is really there.
    const SeveralFiles base = several_files_cut(FsyncPolicy::kNever);
    LogHarness h(*base.cut);
    std::vector<ReplayedRecord> batch;
    const std::string left = first_batch_past_the_newest(h, base, &batch);
    base.cut->set_fail_syncs_of([&](const std::string& path) { return path == left; });
    h.turn();
    h.wait_failed();
    CHECK(h.log->failed_until_restart());
    CHECK(h.log->durable_seq() < batch.back().seq);
    base.cut->set_fail_syncs_of(nullptr);
  }

  TEST_CASE(
      "fsync=never: after a failed sync of the file the synced first batch left, NEWEST does not "
      "name a later file") {
    // NEWEST names a segment only once every file before it is synced: a
    // start after a power cut then takes zeros in the file left for lost
    // writes and cuts the log there. The batch gives up, but the directory
    // sync and NEWEST it owed were still done by the thread afterwards.
    const SeveralFiles base = several_files_cut(FsyncPolicy::kNever);
    LogHarness h(*base.cut);
    std::vector<ReplayedRecord> batch;
    const std::string left = first_batch_past_the_newest(h, base, &batch);
    const std::optional<uint64_t> marked =
        read_newest_marker(*base.cut, kDir, *base.cut->list(kDir));
    REQUIRE(marked.has_value());
    base.cut->set_fail_syncs_of([&](const std::string& path) { return path == left; });
    h.turn();
    h.wait_failed();
    base.cut->set_fail_syncs_of(nullptr);
    h.close();
    CHECK(read_newest_marker(*base.cut, kDir, *base.cut->list(kDir)) == marked);
    // A power cut: the file left loses what its failed sync did not make
    // durable; the start cuts the log there rather than refusing it.
    base.cut->lose_unsynced();
    LogHarness again(*base.cut);
    const Status reopened = again.open(base.options);
    CHECK_MESSAGE(reopened.ok(), reopened.message());
  }

  TEST_CASE(
      "fsync=never: once the synced first batch gave up, durable_seq does not pass its records") {
    const SeveralFiles base = several_files_cut(FsyncPolicy::kNever);
    LogHarness h(*base.cut);
    std::vector<ReplayedRecord> batch;
    const std::string left = first_batch_past_the_newest(h, base, &batch);
    base.cut->set_hold_syncs_of([&](const std::string& path) { return path == left; });
    h.turn();
    base.cut->wait_sync_held();
    // Appended while the batch is on the thread: the next batch.
    std::vector<ReplayedRecord> next;
    append_noted(h, next, 1000);
    base.cut->set_fail_syncs_of([&](const std::string& path) { return path == left; });
    base.cut->set_hold_syncs_of(nullptr);
    h.wait_failed();
    CHECK(h.log->failed_until_restart());
    h.turn();
    h.turn();
    CHECK(h.log->durable_seq() < batch.back().seq);
    base.cut->set_fail_syncs_of(nullptr);
  }

  TEST_CASE(
      "fsync=never: a cut before the newest removes only files whose seqs a crash right after "
      "still skips") {
    // The skip past the seqs the removed files held is durable once the first
    // batch after the open is synced. A crash before that leaves a log whose
    // newest file is the one cut, and that start skips ids past it and four
    // segments more: the rule removes no file past that, and a log that would
    // need it is refused, left as it is.
    const SeveralFiles base = several_files_cut(FsyncPolicy::kNever, 1000);
    const std::vector<ReplayedRecord>& written = base.written;
    const LogOptions& o = base.options;
    const uint32_t newest = written.back().segment;
    REQUIRE(newest > 8);  // more files than the skip covers
    for (const uint32_t cut_in : {newest - 2, uint32_t{2}}) {
      CAPTURE(cut_in);
      MemoryFileSystem cut;
      copy_log(*base.cut, cut);
      const auto in_cut = records_in(written, cut_in);
      const std::string path = kDir + "/" + segment_file_name(in_cut[0].first.seq);
      REQUIRE(write_newest_marker(cut, kDir, in_cut[0].first.seq).ok());
      std::string holed = cut.contents(path);
      std::fill(holed.begin() + 1024, holed.begin() + 1536, '\0');
      cut.set_contents(path, holed);
      cut.lose_unsynced();
      LogHarness first(cut);
      const Status opened = first.open(o);
      if (cut_in == 2) {
        REQUIRE_FALSE(opened.ok());
        CHECK(opened.message().rfind(path + " at offset ", 0) == 0);
        CHECK(cut.contents(path) == holed);
        CHECK(segment_count(cut) == newest);
        continue;
      }
      REQUIRE_MESSAGE(opened.ok(), opened.message());
      CHECK(first.summary.lost_writes_removed);
      MemoryFileSystem killed;  // before the first batch after the open
      copy_log(cut, killed);
      first.close();
      LogHarness second(killed);
      REQUIRE(second.open(o).ok());
      CHECK(second.summary.seq_bound >= written.back().seq);
    }
    // The file before the newest is the log's first (compaction deleted the
    // older ones), and its header's sector is the zeros: both files would go,
    // and a start after a second crash would find no file at all, and skip
    // ids only past the margin from nothing. Refused.
    MemoryFileSystem cut;
    copy_log(*base.cut, cut);
    const auto in_before = records_in(written, newest - 1);
    for (const ReplayedRecord& r : written) {
      if (r.segment < newest - 1 && r.seq == records_in(written, r.segment)[0].first.seq) {
        REQUIRE(cut.remove(kDir + "/" + segment_file_name(r.seq)).ok());
      }
    }
    REQUIRE(segment_count(cut) == 2);
    const std::string path = kDir + "/" + segment_file_name(in_before[0].first.seq);
    REQUIRE(write_newest_marker(cut, kDir, in_before[0].first.seq).ok());
    std::string holed = cut.contents(path);
    std::fill(holed.begin(), holed.begin() + 512, '\0');
    cut.set_contents(path, holed);
    cut.lose_unsynced();
    LogHarness h(cut);
    const Status s = h.open(o);
    REQUIRE_FALSE(s.ok());
    CHECK(cut.contents(path) == holed);
    CHECK(segment_count(cut) == 2);
  }

  TEST_CASE("fsync=never: the synced first batch after a crash syncs the file it left first") {
    // Log::open cuts the log at zeros in a file before the newest only
    // because no sync of a later file finishes before that file's: the
    // first batch after a crash, synced whatever the policy, used to sync
    // the newest file first.
    const SeveralFiles base = several_files_cut(FsyncPolicy::kNever);
    const std::unique_ptr<MemoryFileSystem>& crashed = base.cut;
    LogHarness h(*crashed);
    std::vector<ReplayedRecord> batch;
    const std::string left = first_batch_past_the_newest(h, base, &batch);
    const std::string started = kDir + "/" + segment_file_name(batch.back().seq);
    crashed->set_hold_syncs_of([&](const std::string& path) { return path == started; });
    h.turn();
    crashed->wait_sync_held();  // the new file's sync, held
    const std::unique_ptr<MemoryFileSystem> now = crashed->power_cut_copy();
    CHECK(now->contents(left) == crashed->contents(left));  // synced already
    crashed->set_hold_syncs_of(nullptr);
    CHECK(h.wait_durable());
  }

  TEST_CASE(
      "fsync=never and interval: after a power cut that lost the whole unsynced tail of the file "
      "before the newest, from a record's start, the log is cut there too") {
    // The likeliest loss of all: the file the log left ends where its last
    // sync left it (a clean stop's, the synced first batch's, an interval's:
    // always after a whole record), its later writes all lost, while some of
    // the newest file's were kept. Nothing in the file shows a loss; the
    // newest file starts past the seq the file before it ends at.
    for (const FsyncPolicy policy : {FsyncPolicy::kNever, FsyncPolicy::kInterval}) {
      const std::string policy_name = fsync_policy_name(policy);
      CAPTURE(policy_name);
      MemoryFileSystem fs;
      LogOptions o = LogHarness(fs).options();
      o.fsync = policy;
      o.fsync_interval_ms = 3'600'000;
      const std::vector<ReplayedRecord> synced = write_closed_log(fs, 10, o);
      std::vector<ReplayedRecord> all = synced;
      std::string left;
      std::unique_ptr<MemoryFileSystem> cut;
      {
        LogHarness h(fs);
        REQUIRE(h.open(o).ok());
        left = newest_segment(fs);
        hold_segment_syncs(fs);
        while (all.back().segment == synced.back().segment) {
          append_noted(h, all, static_cast<int>(all.size()));
          h.turn();
        }
        append_noted(h, all, static_cast<int>(all.size()));
        // Written (the thread makes the new file): only syncs are held.
        h.wait_until([&] { return h.log->durable_seq() >= all.back().seq; });
        REQUIRE(newest_marked(fs) == synced.front().seq);  // the left file's sync is held
        // The disk kept the newest file's writes and none of the left one's.
        cut = fs.power_cut_copy([&](const std::string& path, uint64_t) { return path != left; });
        fs.set_hold_syncs_of(nullptr);
      }
      REQUIRE(cut->contents(left).find_first_not_of('\0', 0) != std::string::npos);
      LogHarness after(*cut);
      const Status opened = after.open(o);
      REQUIRE_MESSAGE(opened.ok(), opened.message());
      CHECK(after.replayed == synced);
      CHECK(segment_count(*cut) == 1);
      CHECK(after.summary.lost_writes_removed);
      CHECK(after.summary.seq_bound >= all.back().seq);
      check_writing_goes_on(after, *cut, o, synced);
    }
  }

  TEST_CASE("fsync=never: a slow sync of the file left keeps the log a power cut leaves whole") {
    // While the thread synced the file the log left, the loop went on
    // writing into spares, as many as came. A power cut then lost that
    // file's unsynced writes and kept the later files': the start cuts the
    // log in that file only when the later ones lie within what a start
    // after one more crash skips ids past (four files' worth), and refused
    // this one, 20 files on. The loop starts no file while two it left
    // wait for their sync now: its batches wait for the thread.
    MemoryFileSystem fs;
    LogOptions o = LogHarness(fs).options();
    o.fsync = FsyncPolicy::kNever;
    const std::vector<ReplayedRecord> synced = write_closed_log(fs, 10, o);
    std::vector<ReplayedRecord> all = synced;
    std::string left;
    std::unique_ptr<MemoryFileSystem> cut;
    uint64_t written_seq = 0;
    {
      LogHarness h(fs);
      REQUIRE(h.open(o).ok());
      left = newest_segment(fs);
      hold_segment_syncs(fs);
      while (all.back().segment < synced.back().segment + 20) {
        append_noted(h, all, static_cast<int>(all.size()));
        h.turn();
        h.log->wait_spare_idle_for_tests();  // a disk whose spares come in time
      }
      written_seq = h.log->durable_seq();  // handed to the OS
      cut = fs.power_cut_copy([&](const std::string& path, uint64_t) { return path != left; });
      fs.set_hold_syncs_of(nullptr);
    }
    LogHarness after(*cut);
    const Status opened = after.open(o);
    REQUIRE_MESSAGE(opened.ok(), opened.message());
    CHECK(after.replayed == synced);
    CHECK(after.summary.lost_writes_removed);
    CHECK(written_seq > synced.back().seq);
    CHECK(after.summary.seq_bound >= written_seq);
  }

  TEST_CASE(
      "a file whose header's sector is zeros is no power cut's when the file before it, synced, "
      "ends short of its first seq") {
    // NEWEST names the file (or the run was under always): the file before
    // was synced whole before it was written, so records missing from that
    // one's end are damage, not lost writes; removing the file as a power
    // cut's would drop them without a word.
    for (const bool newest_file : {false, true}) {
      CAPTURE(newest_file);
      const SeveralFiles base = several_files_cut(FsyncPolicy::kNever);
      const uint32_t newest = base.written.back().segment;
      const uint32_t holed = newest_file ? newest : newest - 1;
      const auto in_holed = records_in(base.written, holed);
      const auto in_synced = records_in(base.written, holed - 1);
      const std::string holed_path = kDir + "/" + segment_file_name(in_holed[0].first.seq);
      const std::string synced_path = kDir + "/" + segment_file_name(in_synced[0].first.seq);
      REQUIRE(write_newest_marker(*base.cut, kDir, in_holed[0].first.seq).ok());
      // The synced file's last record gone to zeros, ending it cleanly one
      // record short.
      std::string synced = base.cut->contents(synced_path);
      std::fill(synced.begin() + static_cast<long>(in_synced.back().second), synced.end(), '\0');
      base.cut->set_contents(synced_path, synced);
      std::string header_lost = base.cut->contents(holed_path);
      std::fill(header_lost.begin(), header_lost.begin() + 512, '\0');
      base.cut->set_contents(holed_path, header_lost);
      base.cut->lose_unsynced();
      LogHarness h(*base.cut);
      const Status s = h.open(base.options);
      CHECK_FALSE(s.ok());
      CHECK(base.cut->contents(synced_path) == synced);
      CHECK(base.cut->exists(holed_path));
    }
  }

  TEST_CASE(
      "after a power cut that lost the newest segment's first sector, the segment is removed and "
      "its seqs are not used again") {
    // The header goes to disk with the first records, in one write: with
    // its sector lost and later ones kept, nothing in the file was synced.
    MemoryFileSystem fs;
    LogOptions o = LogHarness(fs).options();
    o.fsync = FsyncPolicy::kNever;
    o.segment_bytes = 1 << 20;
    std::vector<ReplayedRecord> written;
    std::unique_ptr<MemoryFileSystem> cut;
    std::string path;
    {
      LogHarness h(fs);
      REQUIRE(h.open(o).ok());
      written = write_records(h, 100);
      path = newest_segment(fs);
      cut = fs.power_cut_copy([](const std::string&, uint64_t sector) { return sector != 0; });
    }
    LogHarness h(*cut);
    REQUIRE(h.open(o).ok());
    CHECK(h.replayed.empty());
    CHECK(h.summary.lost_writes_removed);
    REQUIRE(h.summary.removed.size() == 1);
    CHECK(h.summary.removed[0].find(path + ": its first sector, the header's, is zeros, with ") ==
          0);
    CHECK_FALSE(cut->exists(path));
    CHECK(h.summary.seq_bound >= written.back().seq);
    const std::vector<ReplayedRecord> next = write_records(h, 3, 500);
    h.close();
    LogHarness again(*cut);
    REQUIRE(again.open(o).ok());
    CHECK(again.replayed == next);
  }

  TEST_CASE("after a power cut, zeros among records with other damage after them are refused") {
    // The rule takes zeros for lost writes only when everything after them
    // is intact records, zeros or a write cut short: a flipped bit further
    // on is damage, and the start stops as it would without the zeros.
    LogOptions o = LogHarness(*std::make_unique<MemoryFileSystem>()).options();
    o.fsync = FsyncPolicy::kNever;
    o.segment_bytes = 1 << 20;
    MemoryFileSystem fs;
    std::unique_ptr<MemoryFileSystem> cut;
    std::string path;
    std::string full;
    {
      LogHarness h(fs);
      REQUIRE(h.open(o).ok());
      write_records(h, 300);
      path = newest_segment(fs);
      full = fs.contents(path);
      cut = fs.power_cut_copy();
    }
    std::string damaged = full;
    std::fill(damaged.begin() + 1024, damaged.begin() + 1536, '\0');
    damaged[6000] ^= 0x01;  // a record well after the hole
    cut->set_contents(path, damaged);
    LogHarness h(*cut);
    const Status s = h.open(o);
    REQUIRE_FALSE(s.ok());
    CHECK(s.message().find("what a power cut leaves") != std::string::npos);
    CHECK(cut->contents(path) == damaged);  // left as it was

    // The same zeros without the flipped bit are cut off.
    damaged[6000] ^= 0x01;
    cut->set_contents(path, damaged);
    CHECK(h.open(o).ok());
    CHECK(h.summary.torn_lost_writes);
  }

  TEST_CASE(
      "after a crash, a record whose length damage made longer does not take later records' "
      "zeros for lost writes") {
    // Payloads with a sector of zeros in them are common. A record whose
    // length was damaged claims to run over them, but those zeros are not
    // its own: they were written, and synced, with the acknowledged
    // records after it. Taking them for a power cut's lost writes cut all
    // of those off.
    for (const size_t flipped : {size_t{9}, size_t{10}}) {  // length + 2 KiB, + 512 KiB
      CAPTURE(flipped);
      MemoryFileSystem fs;
      LogOptions o = LogHarness(fs).options();
      o.segment_bytes = 1 << 20;
      std::vector<ReplayedRecord> written;
      std::unique_ptr<MemoryFileSystem> crashed;
      std::string path;
      {
        LogHarness h(fs);
        REQUIRE(h.open(o).ok());
        written = write_records(h, 20);
        append_noted(h, written, 20);
        const std::string zeros(2048, '\0');
        auto a = h.log->append(1, zeros);
        written.push_back({1, a.seq, zeros, a.segment});
        for (const auto& r : write_records(h, 20, 21)) written.push_back(r);  // all synced
        path = newest_segment(fs);
        crashed = fs.power_cut_copy();  // with RUNNING: the run did not stop cleanly
      }
      std::string damaged = crashed->contents(path);
      const size_t at = kSegmentHeaderSize + record_size(written[0].body.size());
      damaged[at + flipped] ^= 0x08;
      crashed->set_contents(path, damaged);
      LogHarness h(*crashed);
      const Status s = h.open(o);
      CHECK_FALSE(s.ok());
      CHECK_FALSE(h.summary.torn_lost_writes);
      CHECK(crashed->contents(path) == damaged);  // left as it was
    }
  }

  TEST_CASE("after a crash, a region of damage every sector costs no more than its own bytes") {
    // Each sector: an intact record, then a header whose checksum is zeros
    // to the sector's end (a lost sector's) and whose length runs far into
    // the file's zero tail. Each such region was decoded in full, completed
    // with zeros, twice: the scan cost the rest of the file per region.
    MemoryFileSystem fs;
    const LogOptions o = LogHarness(fs).options();
    REQUIRE(write_run_marker(fs, kDir, FsyncPolicy::kAlways).ok());
    std::string segment;
    append_segment_header(segment, SegmentHeader{1, 1});
    uint64_t seq = 1;
    auto record_to = [&](size_t until) {
      append_record(segment, 1, seq++,
                    std::string(until - segment.size() - kRecordHeaderSize, 'x'));
    };
    record_to(512 - 8);
    constexpr size_t kData = 2 << 20;
    constexpr size_t kFile = 32 << 20;
    while (segment.size() + 1024 < kData) {
      segment.append(8, '\0');                                          // checksum
      put_fixed32(segment, static_cast<uint32_t>(kFile - kData - 64));  // length
      segment.push_back(1);                                             // type
      put_fixed64(segment, 1);                                          // seq: an old one
      record_to((segment.size() / 512 + 1) * 512 - 8);
    }
    segment.resize(kFile, '\0');
    fs.set_contents(kDir + "/" + segment_file_name(1), segment);
    fs.lose_unsynced();  // the machine went down: the boot is another one
    LogHarness h(fs);
    const auto started = std::chrono::steady_clock::now();
    REQUIRE(h.open(o).ok());
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(10));
    CHECK(h.summary.torn_lost_writes);
    CHECK(h.replayed.size() == 1);
  }

  TEST_CASE(
      "after a crash, zeros among records the last clean stop synced are damage, and left as "
      "they are") {
    // CLOSED says the log ended at seq 300 when it last stopped cleanly:
    // those records were synced. The run after it crashed, and zeros lie
    // among them: damage, not a power cut's lost writes. The start used to
    // cut (zero) everything after them, and only then refuse for CLOSED.
    MemoryFileSystem fs;
    LogOptions o = LogHarness(fs).options();
    o.segment_bytes = 1 << 20;
    {
      LogHarness h(fs);
      REQUIRE(h.open(o).ok());
      write_records(h, 300);
    }  // a clean stop: CLOSED
    std::unique_ptr<MemoryFileSystem> crashed;
    {
      LogHarness h(fs);
      REQUIRE(h.open(o).ok());
      crashed = fs.power_cut_copy();  // with RUNNING
    }
    const std::string path = newest_segment(*crashed);
    std::string damaged = crashed->contents(path);
    std::fill(damaged.begin() + 1024, damaged.begin() + 1536, '\0');
    crashed->set_contents(path, damaged);
    LogHarness h(*crashed);
    const Status s = h.open(o);
    REQUIRE_FALSE(s.ok());
    CHECK(s.message().find("what a power cut leaves") != std::string::npos);
    CHECK(crashed->contents(path) == damaged);  // left as it was, for --wal-recover
    o.recover = true;
    REQUIRE(h.open(o).ok());
    CHECK(h.replayed.size() > 250);  // the records after the hole are still there
  }

  TEST_CASE("after a kill of the process alone, zeros among records are damage, not lost writes") {
    // A kill leaves every write in the page cache, synced or not: only a
    // machine that went down (the next start is in another boot) can lose
    // some pages of them and keep later ones. The same zeros after a kill
    // are damage, refused with the file left as it is, though RUNNING says
    // the run did not stop cleanly: they may lie among acknowledged records.
    MemoryFileSystem fs;
    LogOptions o = LogHarness(fs).options();
    o.segment_bytes = 1 << 20;
    MemoryFileSystem killed;  // what the page cache holds at the kill
    {
      LogHarness h(fs);
      REQUIRE(h.open(o).ok());
      write_records(h, 300);
      copy_log(fs, killed);
    }
    REQUIRE(killed.boot_id() == fs.boot_id());
    const std::string path = newest_segment(killed);
    std::string damaged = killed.contents(path);
    std::fill(damaged.begin() + 1024, damaged.begin() + 1536, '\0');
    killed.set_contents(path, damaged);
    {
      LogHarness h(killed);
      const Status s = h.open(o);
      REQUIRE_FALSE(s.ok());
      CHECK(s.message().find("what a power cut leaves") != std::string::npos);
      CHECK(killed.contents(path) == damaged);  // left as it was
    }
    // In another boot they are what a power cut leaves, and are cut off.
    killed.lose_unsynced();
    LogHarness h(killed);
    REQUIRE(h.open(o).ok());
    CHECK(h.summary.torn_lost_writes);
  }

  // Opens `cut` (after a power cut that left lost writes to cut) on another
  // thread, and kills it once the open has rewritten RUNNING, while NEWEST's
  // rewrite waits for its sync: before the cut, so the lost writes are all
  // still there. What the kill leaves opens in the same boot, as after a
  // kill of the start alone; `first` is the start that was not killed.
  void check_start_killed_before_its_cut(MemoryFileSystem & cut, const LogOptions& o) {
    MemoryFileSystem untouched;
    copy_log(cut, untouched);
    untouched.lose_unsynced();  // copy_log's files count as synced; another boot again
    LogHarness first(untouched);
    REQUIRE(first.open(o).ok());
    REQUIRE((first.summary.lost_writes_removed || first.summary.torn_lost_writes));

    const std::string newest_path = kDir + "/" + kNewestMarkerName;
    cut.set_hold_syncs_of([&](const std::string& path) { return path == newest_path; });
    std::unique_ptr<MemoryFileSystem> killed;
    {
      LogHarness held(cut);
      std::thread opening([&] { (void)held.open(o); });
      cut.wait_sync_held();
      killed = cut.kill_copy();
      cut.set_hold_syncs_of(nullptr);
      opening.join();
    }
    REQUIRE(killed->boot_id() == cut.boot_id());
    LogHarness second(*killed);
    const Status opened = second.open(o);
    REQUIRE_MESSAGE(opened.ok(), opened.message());
    CHECK(second.replayed == first.replayed);
    CHECK(second.summary.ids_may_be_lost());
    CHECK(second.summary.seq_bound >= first.summary.seq_bound);
    // Once the first batch is synced, the marker names the boot the run
    // writes in: a kill of it is a kill of the process alone.
    first.log->append(1, "the skip");
    REQUIRE(first.wait_durable());
    CHECK(read_run_marker(untouched, kDir, *untouched.list(kDir)).boot_id == untouched.boot_id());
  }

  TEST_CASE("a start killed before its cut of lost writes in the newest file starts again") {
    // The start rewrites RUNNING, naming its own boot, before it zeroes
    // the lost writes. Killed in between, the next start (the same boot)
    // took the zeros for damage: only a power cut leaves them, and RUNNING
    // said there had been none since the run began. tqd refused to start.
    MemoryFileSystem fs;
    LogOptions o = LogHarness(fs).options();
    o.fsync = FsyncPolicy::kNever;
    o.segment_bytes = 1 << 20;
    std::unique_ptr<MemoryFileSystem> cut;
    {
      LogHarness h(fs);
      REQUIRE(h.open(o).ok());
      write_records(h, 300);  // written, never synced
      cut = fs.power_cut_copy([](const std::string&, uint64_t sector) { return sector != 2; });
    }
    check_start_killed_before_its_cut(*cut, o);
  }

  TEST_CASE("a start killed before its cut in the file before the newest starts again") {
    // The same, when the zeros are in the file before the newest (fsync=never):
    // the start also removes the newest file, after rewriting RUNNING.
    const SeveralFiles base = several_files_cut(FsyncPolicy::kNever);
    const uint32_t before = base.written.back().segment - 1;
    const std::string before_path =
        kDir + "/" + segment_file_name(records_in(base.written, before)[0].first.seq);
    MemoryFileSystem cut;
    copy_log(*base.cut, cut);
    std::string holed = cut.contents(before_path);
    std::fill(holed.begin() + 1024, holed.begin() + 1536, '\0');
    cut.set_contents(before_path, holed);
    cut.lose_unsynced();  // another boot again: copy_log's files count as synced
    check_start_killed_before_its_cut(cut, base.options);
  }

  TEST_CASE("records replayed after a crash are durable before the log says they are") {
    // A kill between a batch's write and its sync leaves the batch in the
    // page cache only. The next run replays it and takes it for durable: it
    // may hand out a job it holds, or answer DUPLICATE for one, with no sync
    // to wait for. A power cut then took the batch, and under always nothing
    // made the ids it held skipped: they were issued again.
    MemoryFileSystem fs;
    LogOptions o = LogHarness(fs).options();
    o.spare_segment = false;
    o.retry_interval_ms = 3'600'000;  // the killed process syncs nothing more
    std::vector<ReplayedRecord> written;
    {
      LogHarness h(fs);
      REQUIRE(h.open(o).ok());
      written = write_records(h, 5);
      fs.set_fail_syncs(true);
      append_noted(h, written, 5);
      CHECK_FALSE(h.wait_durable());
    }
    fs.set_fail_syncs(false);
    LogHarness h(fs);
    REQUIRE(h.open(o).ok());
    REQUIRE(h.replayed == written);
    REQUIRE(h.log->durable_seq() == written.back().seq);
    const std::unique_ptr<MemoryFileSystem> cut = fs.power_cut_copy();
    LogHarness after(*cut);
    REQUIRE(after.open(o).ok());
    CHECK(after.replayed == written);
  }

  TEST_CASE("a flipped bit is refused without the power cut's hint") {
    MemoryFileSystem fs;
    std::vector<ReplayedRecord> written = write_closed_log(fs, 5);
    const std::string path = newest_segment(fs);
    std::string damaged = fs.contents(path);
    damaged[kSegmentHeaderSize + kRecordHeaderSize + 1] ^= 0x01;
    fs.set_contents(path, damaged);
    LogHarness h(fs);
    Status s = h.open();
    REQUIRE_FALSE(s.ok());
    CHECK(s.message().find("power cut") == std::string::npos);
  }

  TEST_CASE("a record the caller cannot apply stops the open - --wal-recover drops it") {
    MemoryFileSystem fs;
    uint64_t poison_seq = 0;
    {
      LogHarness h(fs);
      REQUIRE(h.open().ok());
      h.log->append(1, "one");
      poison_seq = h.log->append(1, "poison").seq;
      h.log->append(1, "three");
      REQUIRE(h.wait_durable());
    }
    const std::string path = newest_segment(fs);
    const size_t poison_at = kSegmentHeaderSize + record_size(3);
    std::vector<std::string> applied;
    auto open = [&](bool recover, RecordingReporter& reporter) {
      applied.clear();
      LogOptions o = LogHarness(fs).options();
      o.recover = recover;
      OpenSummary summary;
      return Log::open(
          fs, o, reporter,
          [&](const Record& r, uint32_t) {
            if (r.body == "poison") return Status::corruption("undecodable POISON record body");
            applied.emplace_back(r.body);
            return Status();
          },
          &summary);
    };
    {
      RecordingReporter reporter;
      auto refused = open(false, reporter);
      REQUIRE_FALSE(refused.ok());
      CHECK(refused.error().message() ==
            path + " at offset " + std::to_string(poison_at) + ": undecodable POISON record body");
    }
    RecordingReporter reporter;
    auto opened = open(true, reporter);
    REQUIRE(opened.ok());
    CHECK(applied == std::vector<std::string>{"one", "three"});
    CHECK(reporter.drops == std::vector<std::string>{path + "@" + std::to_string(poison_at) + "+" +
                                                     std::to_string(record_size(6)) +
                                                     ": undecodable POISON record body"});
    CHECK((*opened)->last_seq() == poison_seq + 1);  // its seq is not handed out again
  }
}

}  // namespace wal_log_test
