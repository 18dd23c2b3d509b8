// Damaged logs against a real tqd: the files are damaged the way a bad disk
// (or a lost record) would leave them; a plain start must refuse with a line
// that says what is wrong, `--wal-recover` must start and say what it
// dropped, and the directory it leaves must open again without it.
#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "server/journal.h"
#include "tests/integration/line_call.h"
#include "tests/support/tqd_process.h"
#include "wal/record.h"

namespace recover_test {

using tq::testing::call;
using tq::testing::TqdOptions;
using tq::testing::TqdProcess;

namespace {

struct DataDir {
  TqdOptions options;
  DataDir() {
    options.dir = tq::testing::make_temp_dir();
    options.config_yaml =
        "limits:\n  max_line_bytes: 4KiB\n  max_payload_bytes: 4KiB\n"
        "wal:\n  segment_bytes: 64KiB\n";
  }
  ~DataDir() { tq::testing::remove_tree(options.dir); }

  std::string segment(uint64_t first_seq = 1) const {
    return options.dir + "/data/wal/" + tq::wal::segment_file_name(first_seq);
  }
  TqdOptions with(std::vector<std::string> args) const {
    TqdOptions o = options;
    o.extra_args = std::move(args);
    return o;
  }
  // Runs tqd to its exit (it is expected to refuse to start).
  std::pair<int, std::string> refused(std::vector<std::string> args = {}) const {
    std::vector<std::string> all = {"--config",   options.dir + "/config.yaml", "--port", "0",
                                    "--data-dir", options.dir + "/data"};
    all.insert(all.end(), args.begin(), args.end());
    return tq::testing::run_tqd(all);
  }
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_file(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  REQUIRE(out.good());
}

struct RecordAt {
  size_t offset;
  size_t size;
  tq::wal::Record record;
};

// The intact records of a segment's bytes, in order.
std::vector<RecordAt> records_in(const std::string& data) {
  std::vector<RecordAt> found;
  size_t at = tq::wal::kSegmentHeaderSize;
  for (;;) {
    RecordAt r{at, 0, {}};
    if (tq::wal::decode_record(std::string_view(data).substr(at), &r.record, &r.size) !=
        tq::wal::Decoded::kRecord) {
      return found;
    }
    found.push_back(r);
    at += r.size;
  }
}

size_t offset_of_first(const std::string& data, tq::server::RecordType type) {
  for (const RecordAt& r : records_in(data)) {
    if (r.record.type == static_cast<uint8_t>(type)) return r.offset;
  }
  FAIL("no record of type " << static_cast<int>(type));
  return 0;
}

std::vector<std::string> queues(TqdProcess& tqd) {
  auto s = tqd.socket();
  std::string head = call(s, "QUEUES");
  REQUIRE(head.rfind("OK ", 0) == 0);
  std::vector<std::string> lines;
  for (size_t i = 0, n = std::stoul(head.substr(3)); i < n; ++i) {
    auto line = s.read_line();
    REQUIRE(line.ok());
    lines.push_back(*line);
  }
  return lines;
}

bool logged(TqdProcess& tqd, const std::string& needle) {
  for (const auto& line : tqd.log_lines()) {
    if (line.find(needle) != std::string::npos) return true;
  }
  return false;
}

// The id an "OK <id>" reply gives; 0 for any other reply.
uint64_t id_in(const std::string& reply) {
  return reply.rfind("OK ", 0) == 0 ? std::stoull(reply.substr(3)) : 0;
}

// After a recovery that dropped acknowledged job 2 (or more): the ids given
// next are new, on the recovered server and again after one more restart.
void check_ids_stay_new(DataDir& dir, TqdProcess& recovered) {
  uint64_t next = 0;
  {
    auto s = recovered.socket();
    next = id_in(call(s, "ENQUEUE emails three"));
    CHECK(next > 2);
  }
  REQUIRE(recovered.stop(SIGTERM) == 0);
  TqdProcess again(dir.options);
  auto s = again.socket();
  CHECK(id_in(call(s, "ENQUEUE emails four")) > next);
}

// CREATE emails, two jobs, a clean stop.
// A clean stop writes wal/CLOSED (where the log ended); a crash does not.
// Tests that damage a log as a crash would, after a clean stop, take it away.
void as_after_crash(const DataDir& dir) {
  REQUIRE(::unlink((dir.options.dir + "/data/wal/CLOSED").c_str()) == 0);
}

void two_emails(const DataDir& dir) {
  TqdProcess tqd(dir.options);
  auto s = tqd.socket();
  REQUIRE(call(s, "CREATE emails") == "OK created emails");
  REQUIRE(call(s, "ENQUEUE emails one") == "OK 1");
  REQUIRE(call(s, "ENQUEUE emails two") == "OK 2");
  REQUIRE(tqd.stop(SIGTERM) == 0);
}

// Moves the log's directory, data/wal, to data/<to>, as a restore that put
// a backup in the wrong place does; returns the data directory.
std::string move_log(const DataDir& dir, const std::string& to) {
  const std::string data = dir.options.dir + "/data";
  std::filesystem::rename(data + "/wal", dir.options.dir + "/copy");
  std::filesystem::create_directories(std::filesystem::path(data + "/" + to).parent_path());
  std::filesystem::rename(dir.options.dir + "/copy", data + "/" + to);
  return data;
}

// The paths of the log's files, oldest first.
std::vector<std::string> segment_files(const DataDir& dir) {
  std::vector<std::string> segments;
  for (const auto& entry : std::filesystem::directory_iterator(dir.options.dir + "/data/wal")) {
    if (entry.path().extension() == ".wal") segments.push_back(entry.path().string());
  }
  std::sort(segments.begin(), segments.end());
  return segments;
}

// Every file of the log but LOCK (which holds the pid of the last process
// to lock it), by name, with its bytes.
std::vector<std::pair<std::string, std::string>> log_files(const DataDir& dir) {
  std::vector<std::pair<std::string, std::string>> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir.options.dir + "/data/wal")) {
    if (entry.path().filename() == "LOCK") continue;
    files.emplace_back(entry.path().filename().string(), read_file(entry.path().string()));
  }
  std::sort(files.begin(), files.end());
  return files;
}

// CREATE emails and 50 jobs of 3,000 bytes (about 20 a 64 KiB file), tqd
// stopped with `signal`, then its newest log file deleted: the file's name.
std::string fifty_jobs_then_lose_newest_file(const DataDir& dir, int signal) {
  {
    TqdProcess tqd(dir.options);
    auto s = tqd.socket();
    REQUIRE(call(s, "CREATE emails") == "OK created emails");
    const std::string payload(3'000, 'x');
    for (int i = 1; i <= 50; ++i) {
      REQUIRE(call(s, "ENQUEUE emails " + payload) == "OK " + std::to_string(i));
    }
    REQUIRE(tqd.stop(signal) == (signal == SIGTERM ? 0 : 128 + signal));
  }
  const std::vector<std::string> segments = segment_files(dir);
  REQUIRE(segments.size() >= 2);
  REQUIRE(::unlink(segments.back().c_str()) == 0);
  return std::filesystem::path(segments.back()).filename().string();
}

}  // namespace

TEST_SUITE("recover") {
  TEST_CASE(
      "jobs whose QUEUE record was damaged are kept in recovered-N, and the log opens again") {
    DataDir dir;
    two_emails(dir);
    std::string data = read_file(dir.segment());
    data[offset_of_first(data, tq::server::RecordType::kQueue) + tq::wal::kRecordHeaderSize + 3] ^=
        1;
    write_file(dir.segment(), data);

    auto [status, err] = dir.refused();
    CHECK(status != 0);
    CHECK(err.find("checksum mismatch") != std::string::npos);
    {
      TqdProcess tqd(dir.with({"--wal-recover"}));
      CHECK(logged(tqd, "wal recover: DROPPED"));
      CHECK(logged(tqd, "are kept in a new queue named recovered-1"));
      CHECK(queues(tqd) == std::vector<std::string>{
                               "recovered-1 ready=2 held=0 delayed=0 leased=0 dead=0 paused=0"});
      REQUIRE(tqd.stop(SIGTERM) == 0);
    }
    // Before, the rewrite held a QUEUE record named "#1", which replay
    // refuses even with --wal-recover: the directory could never be opened.
    TqdProcess again(dir.options);
    CHECK(queues(again) == std::vector<std::string>{
                               "recovered-1 ready=2 held=0 delayed=0 leased=0 dead=0 paused=0"});
    auto s = again.socket();
    CHECK(call(s, "DEQUEUE recovered-1").rfind("OK 1 ", 0) == 0);
  }

  TEST_CASE("a queue created again after a DROP whose record is damaged") {
    // --wal-recover used to die with SIGSEGV here: replay met the second
    // "a" while the first still held the name.
    DataDir dir;
    {
      TqdProcess tqd(dir.options);
      auto s = tqd.socket();
      REQUIRE(call(s, "CREATE a") == "OK created a");
      REQUIRE(call(s, "ENQUEUE a old") == "OK 1");
      REQUIRE(call(s, "DROP a") == "OK dropped a");
      REQUIRE(call(s, "CREATE a") == "OK created a");
      REQUIRE(call(s, "ENQUEUE a new") == "OK 2");
      REQUIRE(tqd.stop(SIGTERM) == 0);
    }
    std::string data = read_file(dir.segment());
    const size_t drop = offset_of_first(data, tq::server::RecordType::kQueueDrop);
    data[drop + tq::wal::kRecordHeaderSize] ^= 1;
    write_file(dir.segment(), data);

    TqdProcess tqd(dir.with({"--wal-recover"}));
    CHECK(logged(tqd, "its DROP record was lost, so it is dropped now with its 1 job(s)"));
    CHECK(queues(tqd) ==
          std::vector<std::string>{"a ready=1 held=0 delayed=0 leased=0 dead=0 paused=0"});
    auto s = tqd.socket();
    CHECK(call(s, "DEQUEUE a").rfind("OK 2 ", 0) == 0);
  }

  TEST_CASE("a log whose QUEUE record is missing says what --wal-recover will call the queue") {
    // The record is replaced by one replay ignores, seqs and checksums
    // intact: a log no damage check objects to, with jobs of no queue.
    DataDir dir;
    two_emails(dir);
    const std::string data = read_file(dir.segment());
    std::string rebuilt = data.substr(0, tq::wal::kSegmentHeaderSize);
    for (const RecordAt& r : records_in(data)) {
      if (r.record.type == static_cast<uint8_t>(tq::server::RecordType::kQueue)) {
        const std::string remove_nothing("\x01", 1);  // REMOVE of job 1, not yet there
        tq::wal::append_record(rebuilt, static_cast<uint8_t>(tq::server::RecordType::kRemove),
                               r.record.seq, remove_nothing);
      } else {
        tq::wal::append_record(rebuilt, r.record.type, r.record.seq, r.record.body);
      }
    }
    rebuilt.resize(data.size(), '\0');
    write_file(dir.segment(), rebuilt);

    auto [status, err] = dir.refused();
    CHECK(status != 0);
    CHECK(err.find("2 job(s) belong to queue number 1, which has no QUEUE record; run tqd with "
                   "--wal-recover to keep them in a new queue named recovered-1") !=
          std::string::npos);
    {
      TqdProcess tqd(dir.with({"--wal-recover"}));
      CHECK(queues(tqd) == std::vector<std::string>{
                               "recovered-1 ready=2 held=0 delayed=0 leased=0 dead=0 paused=0"});
      REQUIRE(tqd.stop(SIGTERM) == 0);
    }
    TqdProcess again(dir.options);
    CHECK(queues(again) == std::vector<std::string>{
                               "recovered-1 ready=2 held=0 delayed=0 leased=0 dead=0 paused=0"});
  }

  TEST_CASE("after a recovery that leaves the newest file empty, new writes survive a restart") {
    // The rewrite's new segment used to take the damaged file's name; the
    // deletion of the damaged segment then deleted the new records too.
    DataDir dir;
    {
      TqdProcess tqd(dir.options);
      auto s = tqd.socket();
      REQUIRE(call(s, "CREATE q") == "OK created q");
      REQUIRE(tqd.stop(SIGTERM) == 0);
    }
    std::string data = read_file(dir.segment());
    for (const RecordAt& r : records_in(data)) data[r.offset + tq::wal::kRecordHeaderSize] ^= 1;
    write_file(dir.segment(), data);
    {
      TqdProcess tqd(dir.with({"--wal-recover"}));
      CHECK(logged(tqd, "wal: removed " + dir.segment() + ": no intact record is left in it"));
      auto s = tqd.socket();
      CHECK(call(s, "CREATE z") == "OK created z");
      REQUIRE(tqd.stop(SIGTERM) == 0);
    }
    TqdProcess again(dir.options);
    CHECK(queues(again) ==
          std::vector<std::string>{"z ready=0 held=0 delayed=0 leased=0 dead=0 paused=0"});
  }

  TEST_CASE("--wal-recover on a healthy log says once, at info, that it found nothing to drop") {
    // A flag left in a unit file, or a recovery already done: nothing else
    // in the log showed that the start ran in recover mode.
    DataDir dir;
    two_emails(dir);
    {
      TqdProcess plain(dir.options);
      CHECK_FALSE(logged(plain, "recover mode"));
      REQUIRE(plain.stop(SIGTERM) == 0);
    }
    TqdProcess tqd(dir.with({"--wal-recover"}));
    const std::vector<std::string> lines = tqd.log_lines();
    CHECK(std::count_if(lines.begin(), lines.end(), [](const std::string& line) {
            return line.find("recover mode") != std::string::npos;
          }) == 1);
    CHECK(logged(tqd,
                 " info  wal recover: ran in recover mode (--wal-recover) and found nothing "
                 "to drop"));
    CHECK_FALSE(logged(tqd, "DROPPED"));
    CHECK(queues(tqd) ==
          std::vector<std::string>{"emails ready=2 held=0 delayed=0 leased=0 dead=0 paused=0"});
    auto s = tqd.socket();
    CHECK(call(s, "ENQUEUE emails three") == "OK 3");  // no id skipped: nothing was lost
  }

  TEST_CASE("a torn last record is cut off, and no id it may have held is given again") {
    // The machine lost power under fsync: never after "OK 2": the end of job
    // 2's record never reached the disk. tqd starts (a torn write is what a
    // crash leaves), and the id 2 the client was told stays job 2's.
    DataDir dir;
    two_emails(dir);
    as_after_crash(dir);
    std::string data = read_file(dir.segment());
    const RecordAt last = records_in(data).back();
    REQUIRE(last.record.type == static_cast<uint8_t>(tq::server::RecordType::kJob));
    for (size_t i = last.offset + last.size / 2; i < last.offset + last.size; ++i) data[i] = 0;
    write_file(dir.segment(), data);
    TqdProcess tqd(dir.options);
    CHECK(logged(tqd, "wal: cut off a partial record at " + dir.segment() + " offset " +
                          std::to_string(last.offset)));
    CHECK(queues(tqd) ==
          std::vector<std::string>{"emails ready=1 held=0 delayed=0 leased=0 dead=0 paused=0"});
    check_ids_stay_new(dir, tqd);
  }

  TEST_CASE("fsync never: a power cut that lost whole records gives none of their ids again") {
    // tqd answered "OK 2", then the machine lost power before the OS wrote
    // job 2's record: the log ends cleanly after job 1, as if job 2 had
    // never been. The run marker says the run did not stop cleanly.
    DataDir dir;
    dir.options.config_yaml += "  fsync: never\n";  // under wal:, the last section
    {
      TqdProcess tqd(dir.options);
      auto s = tqd.socket();
      REQUIRE(call(s, "CREATE emails") == "OK created emails");
      REQUIRE(call(s, "ENQUEUE emails one") == "OK 1");
      REQUIRE(call(s, "ENQUEUE emails two") == "OK 2");
      REQUIRE(tqd.stop(SIGKILL) == 128 + SIGKILL);
    }
    std::string data = read_file(dir.segment());
    const RecordAt last = records_in(data).back();
    REQUIRE(last.record.type == static_cast<uint8_t>(tq::server::RecordType::kJob));
    for (size_t i = last.offset; i < last.offset + last.size; ++i) data[i] = 0;
    write_file(dir.segment(), data);
    TqdProcess tqd(dir.options);
    CHECK(logged(tqd, "wal: the previous run (fsync: never) did not stop cleanly"));
    CHECK(queues(tqd) ==
          std::vector<std::string>{"emails ready=1 held=0 delayed=0 leased=0 dead=0 paused=0"});
    check_ids_stay_new(dir, tqd);
  }

  TEST_CASE("after a power cut, zeros among the last records cut the log there and tqd starts") {
    // The disk kept a later sector of the last writes and not an earlier
    // one (writeback has no order), and the run ended without a clean stop.
    // tqd cuts the log before the zeros, as before a torn write, and starts:
    // under fsync: always none of what it cut was acknowledged. Only a
    // machine that went down loses such writes: after a kill in the same
    // boot the zeros are damage.
    DataDir dir;
    {
      TqdProcess tqd(dir.options);
      auto s = tqd.socket();
      REQUIRE(call(s, "CREATE emails") == "OK created emails");
      for (int i = 1; i <= 40; ++i) {
        REQUIRE(call(s, "ENQUEUE emails job " + std::to_string(i) + std::string(60, '.')) ==
                "OK " + std::to_string(i));
      }
      REQUIRE(tqd.stop(SIGKILL) == 128 + SIGKILL);
    }
    std::string data = read_file(dir.segment());
    const std::vector<RecordAt> records = records_in(data);
    const size_t hole = 1536;
    REQUIRE(records.back().offset > hole + 512);
    size_t jobs_before = 0;
    size_t cut_at = 0;
    size_t intact_after = 0;
    for (const RecordAt& r : records) {
      if (r.offset + r.size <= hole) {
        jobs_before += r.record.type == static_cast<uint8_t>(tq::server::RecordType::kJob);
      } else if (cut_at == 0) {
        cut_at = r.offset;
      }
      intact_after += r.offset >= hole + 512;
    }
    std::fill(data.begin() + hole, data.begin() + hole + 512, '\0');
    write_file(dir.segment(), data);
    {
      auto [status, err] = dir.refused();  // the kill left the page cache: damage
      CHECK(status == 65);                 // EX_DATAERR: a retry would read the same damage
      CHECK(err.find("what a power cut leaves") != std::string::npos);
      CHECK(read_file(dir.segment()) == data);
    }
    // The boot the run began in, as a machine that went down leaves it.
    const std::string marker = dir.options.dir + "/data/wal/RUNNING";
    const std::string running = read_file(marker);
    REQUIRE(running.rfind("always  \n", 0) == 0);
    write_file(marker, "always  \n" + std::string(36, '0') + std::string(4, ' ') + "\n");

    TqdProcess tqd(dir.options);
    CHECK(logged(tqd, "wal: cut off the log at " + dir.segment() + " offset " +
                          std::to_string(cut_at) + " ("));
    CHECK(logged(tqd, "zeros where records were, with " + std::to_string(intact_after) +
                          " intact record(s) after them, after a run that did not stop cleanly"));
    CHECK(queues(tqd) == std::vector<std::string>{"emails ready=" + std::to_string(jobs_before) +
                                                  " held=0 delayed=0 leased=0 dead=0 paused=0"});
    auto s = tqd.socket();
    CHECK(id_in(call(s, "ENQUEUE emails after")) > 40);  // no id the cut records held
  }

  TEST_CASE(
      "fsync never: after a power cut, zeros in the file before the newest cut the log there, "
      "and the newest file goes") {
    // The writer syncs a file the log has left in the background: a power
    // cut in that moment can lose part of its end and keep records in the
    // newest file, none of them synced. NEWEST still names the file before
    // the newest (the writer names a new file once the ones before it are
    // synced), and RUNNING another boot.
    DataDir dir;
    dir.options.config_yaml += "  fsync: never\n";
    {
      TqdProcess tqd(dir.options);
      auto s = tqd.socket();
      REQUIRE(call(s, "CREATE emails") == "OK created emails");
      for (int i = 1; i <= 700; ++i) {
        REQUIRE(call(s, "ENQUEUE emails job " + std::to_string(i) + std::string(200, '.')) ==
                "OK " + std::to_string(i));
      }
      REQUIRE(tqd.stop(SIGKILL) == 128 + SIGKILL);
    }
    const std::vector<std::string> segments = segment_files(dir);
    REQUIRE(segments.size() >= 3);
    const std::string before = segments[segments.size() - 2];
    const std::string newest = segments.back();
    const auto is_job = [](const RecordAt& r) {
      return r.record.type == static_cast<uint8_t>(tq::server::RecordType::kJob);
    };
    size_t jobs_kept = 0;
    for (size_t i = 0; i + 2 < segments.size(); ++i) {
      const std::vector<RecordAt> records = records_in(read_file(segments[i]));
      jobs_kept += static_cast<size_t>(std::count_if(records.begin(), records.end(), is_job));
    }
    std::string data = read_file(before);
    const std::vector<RecordAt> records = records_in(data);
    const size_t hole = 8192;
    size_t cut_at = 0;
    for (const RecordAt& r : records) {
      if (r.offset + r.size <= hole) {
        jobs_kept += is_job(r);
      } else if (cut_at == 0) {
        cut_at = r.offset;
      }
    }
    std::fill(data.begin() + hole, data.begin() + hole + 512, '\0');
    write_file(before, data);
    const std::string wal = dir.options.dir + "/data/wal/";
    const std::string first_seq_of_before = std::filesystem::path(before).stem().string();
    write_file(wal + "NEWEST", std::to_string(std::stoull(first_seq_of_before)) + "\n");
    const std::string running = read_file(wal + "RUNNING");
    REQUIRE(running.rfind("never   \n", 0) == 0);
    write_file(wal + "RUNNING", "never   \n" + std::string(36, '0') + std::string(4, ' ') + "\n");
    {
      // --check-log says what the start will do, and leaves it to it.
      const auto files = log_files(dir);
      auto [status, err] = dir.refused({"--check-log"});
      CHECK(status == 0);
      CHECK(err.find("wal: cut off the log at " + before + " offset ") != std::string::npos);
      CHECK(log_files(dir) == files);
    }

    TqdProcess tqd(dir.options);
    CHECK(logged(tqd, "wal: removed " + newest + ": it follows the zeros a power cut left in " +
                          std::filesystem::path(before).filename().string()));
    CHECK(logged(tqd,
                 "wal: cut off the log at " + before + " offset " + std::to_string(cut_at) + " ("));
    CHECK_FALSE(std::filesystem::exists(newest));
    CHECK(queues(tqd) == std::vector<std::string>{"emails ready=" + std::to_string(jobs_kept) +
                                                  " held=0 delayed=0 leased=0 dead=0 paused=0"});
    auto s = tqd.socket();
    CHECK(id_in(call(s, "ENQUEUE emails after")) > 700);  // no id the cut records held
  }

  TEST_CASE("--check-log refuses what is in the log directory's place, as a start does") {
    // Only nothing there is a new, empty log: a file, or a link to nowhere,
    // is refused by a start, and so by the check.
    DataDir dir;
    write_file(dir.options.dir + "/config.yaml", dir.options.config_yaml + "\n");
    const std::string wal = dir.options.dir + "/data/wal";
    std::filesystem::create_directories(dir.options.dir + "/data");
    write_file(wal, "not a directory");
    {
      auto [status, err] = dir.refused({"--check-log"});
      CHECK(status == 1);
      CHECK(err.find(wal + "/LOCK: Not a directory") != std::string::npos);
      CHECK(dir.refused().first == 1);
    }
    std::filesystem::remove(wal);
    std::filesystem::create_directory_symlink(dir.options.dir + "/nowhere", wal);
    {
      auto [status, err] = dir.refused({"--check-log"});
      CHECK(status == 1);
      CHECK(dir.refused().first == 1);
    }
    CHECK_FALSE(std::filesystem::exists(dir.options.dir + "/nowhere"));
    std::filesystem::remove(wal);
    {
      // Nothing there: a start begins a new log, but a check of a backup
      // with a wrong path must not pass for a good one.
      auto [status, err] = dir.refused({"--check-log"});
      CHECK(status == 4);
      CHECK(err.find("there is no log in " + wal) != std::string::npos);
    }
    CHECK_FALSE(std::filesystem::exists(wal));
  }

  TEST_CASE("under systemd's journal, --check-log's verdicts carry their priority") {
    // As an ExecStartPre runs it: journalctl -p err finds why it failed.
    // At a terminal the lines are as they were.
    DataDir dir;
    write_file(dir.options.dir + "/config.yaml", dir.options.config_yaml + "\n");
    std::vector<std::string> args = {
        "--config",   dir.options.dir + "/config.yaml", "--port",     "0",
        "--data-dir", dir.options.dir + "/data",        "--check-log"};
    const std::string no_log = "tqd: there is no log in " + dir.options.dir + "/data/wal: ";
    auto [status, err] = tq::testing::run_tqd_under_journal(args);
    CHECK(status == 4);
    CHECK(err.rfind("<3>" + no_log, 0) == 0);
    auto [plain_status, plain_err] = tq::testing::run_tqd(args);
    CHECK(plain_status == 4);
    CHECK(plain_err.rfind(no_log, 0) == 0);
    // The replay's own lines are log lines, with theirs.
    two_emails(dir);
    auto [replayed_status, replayed] = tq::testing::run_tqd_under_journal(args);
    CHECK(replayed_status == 0);
    const size_t at = replayed.find(" info  wal: replayed ");
    REQUIRE(at != std::string::npos);
    const size_t line = replayed.rfind('\n', at);
    CHECK(replayed.compare(line == std::string::npos ? 0 : line + 1, 3, "<6>") == 0);
  }

  TEST_CASE("--check-log finds no log in a backup copied one level too deep, and says where") {
    // cp -a backups/nightly data/wal makes data/wal/wal/...: a start would
    // begin an empty log there, with job ids from 1 again.
    DataDir dir;
    two_emails(dir);
    const std::string data = move_log(dir, "wal/wal");
    auto [status, err] = dir.refused({"--check-log"});
    CHECK(status == 4);
    CHECK(err.find("there is no log in " + data + "/wal") != std::string::npos);
    CHECK(err.find("log files are in " + data + "/wal/wal") != std::string::npos);
    // The way out as typed: with the directory there, a cp -a nests again.
    CHECK(err.find("(mv " + data + "/wal " + data +
                   "/wal.old, then cp -a <backup_dir>/<name>/wal " + data +
                   "/wal: the copy went inside it)") != std::string::npos);
    {
      // Nor does a start begin an empty log beside it.
      auto [start_status, start_err] = dir.refused();
      // 65, which the unit file's RestartPreventExitStatus lists: no retry
      // can succeed until someone moves the copy.
      CHECK(start_status == 65);
      CHECK(start_err.find("but log files are in " + data + "/wal/wal") != std::string::npos);
      CHECK(segment_files(dir).empty());
    }
    // Put in its place, it is the log again.
    std::filesystem::rename(data + "/wal/wal", dir.options.dir + "/copy");
    std::filesystem::remove(data + "/wal");
    std::filesystem::rename(dir.options.dir + "/copy", data + "/wal");
    CHECK(dir.refused({"--check-log"}).first == 0);
  }

  TEST_CASE("a backup copied whole into the data directory - no empty log is begun beside it") {
    // cp -a backups/nightly data/ makes data/nightly/wal and no data/wal: a
    // start began an empty log, with job ids from 1 again.
    DataDir dir;
    two_emails(dir);
    const std::string data = move_log(dir, "nightly/wal");
    auto [status, err] = dir.refused({"--check-log"});
    CHECK(status == 4);
    CHECK(err.find("there is no log in " + data + "/wal, but log files are in " + data +
                   "/nightly/wal") != std::string::npos);
    CHECK(err.find("(mv " + data + "/nightly/wal " + data + "/wal)") != std::string::npos);
    {
      auto [start_status, start_err] = dir.refused();
      CHECK(start_status == 65);
      CHECK(start_err.find("but log files are in " + data + "/nightly/wal") != std::string::npos);
      CHECK_FALSE(std::filesystem::exists(data + "/wal"));
    }
    // Where backups are kept in the data directory itself, that is where
    // they belong: a start there with no log yet is a first start.
    {
      TqdOptions kept_here = dir.options;
      kept_here.config_yaml += "  backup_dir: " + data + "\n";  // under wal:
      TqdProcess tqd(kept_here);
      auto c = tqd.client();
      CHECK(c.ping().ok());
    }
    std::filesystem::remove_all(data + "/wal");
    // Moved as the message says, it is the log again.
    std::filesystem::rename(data + "/nightly/wal", data + "/wal");
    CHECK(dir.refused({"--check-log"}).first == 0);
  }

  TEST_CASE("--check-log applies the declared queues a start applies, and fails as it does") {
    DataDir dir;
    two_emails(dir);  // one queue
    const auto before = log_files(dir);
    write_file(dir.options.dir + "/config.yaml",
               "limits:\n  max_queues: 1\n  max_line_bytes: 4KiB\n  max_payload_bytes: 4KiB\n"
               "wal:\n  segment_bytes: 64KiB\nqueues:\n  declare:\n    reports: {}\n");
    auto [status, err] = dir.refused({"--check-log"});
    CHECK(status == 1);
    CHECK(err.find("queues.declare.reports: ") != std::string::npos);
    CHECK(log_files(dir) == before);
    CHECK(dir.refused().first == 2);  // the start it described: its settings
  }

  TEST_CASE("--check-log with wal.enabled false says there is no log to check, not a refusal") {
    DataDir dir;
    two_emails(dir);
    write_file(dir.options.dir + "/config.yaml", "wal:\n  enabled: false\n");
    auto [status, err] = dir.refused({"--check-log"});
    CHECK(status == 2);
    CHECK(err.find("wal.enabled is false: a start keeps jobs in memory only") != std::string::npos);
  }

  TEST_CASE("--check-log says what a start would do with a log, and changes no file") {
    // A flipped bit in an acknowledged job: a start refuses, --wal-recover
    // drops the record. --check-log says so, either way, and leaves the log
    // for the real start.
    DataDir dir;
    two_emails(dir);
    std::string data = read_file(dir.segment());
    data[offset_of_first(data, tq::server::RecordType::kJob) + tq::wal::kRecordHeaderSize + 2] ^= 1;
    write_file(dir.segment(), data);
    const auto before = log_files(dir);
    {
      auto [status, err] = dir.refused({"--check-log"});
      CHECK(status == 1);
      CHECK(err.find(dir.segment() + " at offset ") != std::string::npos);
      CHECK(err.find("run tqd with --wal-recover") != std::string::npos);
    }
    CHECK(log_files(dir) == before);
    {
      auto [status, err] = dir.refused({"--check-log", "--wal-recover"});
      CHECK(status == 0);
      CHECK(err.find("wal recover: DROPPED ") != std::string::npos);
      CHECK(err.find("wal: replayed ") != std::string::npos);
    }
    CHECK(log_files(dir) == before);
    // The start it described: refused, then recovered, for real.
    CHECK(dir.refused().first == 65);
    TqdProcess tqd(dir.with({"--wal-recover"}));
    CHECK(logged(tqd, "wal recover: DROPPED "));
    CHECK(log_files(dir) != before);
    // Beside the tqd using the log: no verdict, and not a refusal's.
    auto [status, err] = dir.refused({"--check-log"});
    CHECK(status == 3);
    CHECK(err.find("is held by another tqd (pid ") != std::string::npos);
    CHECK(err.find("it is in use; stop that tqd first, or check a copy") != std::string::npos);
  }

  TEST_CASE(
      "a crash is logged at the next start - under always as harmless, a junk marker as never") {
    DataDir dir;  // fsync: always, the default
    {
      TqdProcess tqd(dir.options);
      auto s = tqd.socket();
      REQUIRE(call(s, "CREATE emails") == "OK created emails");
      REQUIRE(tqd.stop(SIGKILL) == 128 + SIGKILL);
    }
    {
      TqdProcess tqd(dir.options);
      CHECK(logged(tqd,
                   "wal: the previous run (fsync: always) did not stop cleanly (a crash, "
                   "SIGKILL or a power cut); every change it acknowledged was synced"));
      REQUIRE(tqd.stop(SIGKILL) == 128 + SIGKILL);
    }
    // A marker that names no policy is taken as the worst, and said to be so.
    write_file(dir.options.dir + "/data/wal/RUNNING", "garbage\n");
    TqdProcess tqd(dir.options);
    CHECK(logged(tqd,
                 "wal: the previous run (fsync: unknown: its wal/RUNNING marker names none, "
                 "so never is assumed) did not stop cleanly"));
    CHECK_FALSE(logged(tqd, "every change it acknowledged was synced"));
  }

  TEST_CASE("a log whose only file lost its records to zeros gives none of their ids again") {
    // The disk lost what was synced: the only file is all zeros now. The
    // records it held (ids 1 and 2 here) may have been acknowledged; its size
    // bounds how many there were.
    DataDir dir;
    two_emails(dir);
    as_after_crash(dir);
    const std::string data = read_file(dir.segment());
    write_file(dir.segment(), std::string(data.size(), '\0'));
    TqdProcess tqd(dir.options);
    CHECK(logged(tqd, dir.segment() + ": it holds only zeros"));
    CHECK(logged(tqd, "wal: no record is left in the log, only files of zeros"));
    auto s = tqd.socket();
    REQUIRE(call(s, "CREATE emails") == "OK created emails");
    CHECK(id_in(call(s, "ENQUEUE emails again")) > 2);
  }

  TEST_CASE("a log that lost its newest file after a clean stop stops a plain start") {
    // Nothing in the files left shows it: CLOSED, written at the clean stop,
    // says where the log ended.
    DataDir dir;  // 64 KiB files
    fifty_jobs_then_lose_newest_file(dir, SIGTERM);
    auto [status, err] = dir.refused();
    CHECK(status == 65);
    CHECK(err.find("its newest file(s) are missing") != std::string::npos);
    // --wal-recover starts from what is left, and gives no id the lost file held.
    TqdProcess tqd(dir.with({"--wal-recover"}));
    CHECK(logged(tqd, "wal recover: the log ends before record"));
    auto s = tqd.socket();
    CHECK(id_in(call(s, "ENQUEUE emails again")) > 50);
  }

  TEST_CASE("--wal-recover after a clean stop names the file whose end was cut, not lost files") {
    // The newest file is there, cut inside its last record (job 2's): the
    // records CLOSED names went with its end. "its newest file(s) are
    // missing" sent the operator looking for a file that was there.
    DataDir dir;  // fsync: always, the default
    two_emails(dir);
    const std::string data = read_file(dir.segment());
    const std::vector<RecordAt> records = records_in(data);
    REQUIRE(records.size() >= 4);
    const RecordAt& last = records.back();
    REQUIRE(last.record.type == static_cast<uint8_t>(tq::server::RecordType::kJob));
    write_file(dir.segment(), data.substr(0, last.offset + last.size - 4));
    auto [status, err] = dir.refused();
    CHECK(status == 65);
    CHECK(err.find("record runs 4 bytes past the end of the file") != std::string::npos);
    TqdProcess tqd(dir.with({"--wal-recover"}));
    const std::string seq = std::to_string(last.record.seq);
    CHECK(logged(tqd, "wal recover: the log ends before record " + seq +
                          ", where it ended when tqd last stopped cleanly (wal/CLOSED): records " +
                          seq + " to " + seq + " are missing: the end of " +
                          tq::wal::segment_file_name(1) + " lost them (from offset " +
                          std::to_string(last.offset) +
                          " on it is cut short or damaged, and was dropped)"));
    CHECK_FALSE(logged(tqd, "newest file(s) are missing"));
    {
      auto s = tqd.socket();
      CHECK(call(s, "DEQUEUE emails") == "OK 1 one");
      CHECK(call(s, "DEQUEUE emails").rfind("ERROR EMPTY", 0) == 0);  // job 2 went with the end
    }
    check_ids_stay_new(dir, tqd);
  }

  TEST_CASE("a log that lost its newest file after a crash stops a plain start") {
    // No clean stop wrote CLOSED: wal/NEWEST, written as each file is
    // started, names the newest file the killed tqd had.
    DataDir dir;  // 64 KiB files, fsync: always
    const std::string lost = fifty_jobs_then_lose_newest_file(dir, SIGKILL);
    auto [status, err] = dir.refused();
    CHECK(status == 65);
    CHECK(err.find("but tqd, which did not stop cleanly, had started " + lost +
                   " (wal/NEWEST): its newest file(s) are missing") != std::string::npos);
    CHECK(err.find("run tqd with --wal-recover") != std::string::npos);
    // --wal-recover starts from what is left, and gives no id the lost file held.
    TqdProcess tqd(dir.with({"--wal-recover"}));
    CHECK(logged(tqd, "wal recover: the log's files from " + lost + " on are missing"));
    auto s = tqd.socket();
    CHECK(id_in(call(s, "ENQUEUE emails again")) > 50);
  }

  TEST_CASE("a flipped byte in the last, acknowledged record stops a plain start") {
    // It used to be cut off as a torn write, with a warning only, and its
    // job id handed out again to the next ENQUEUE.
    DataDir dir;
    two_emails(dir);
    std::string data = read_file(dir.segment());
    const RecordAt last = records_in(data).back();
    REQUIRE(last.record.type == static_cast<uint8_t>(tq::server::RecordType::kJob));
    data[last.offset + last.size - 1] ^= 1;  // a byte of the payload "two"
    write_file(dir.segment(), data);

    auto [status, err] = dir.refused();
    CHECK(status != 0);
    CHECK(err.find(dir.segment() + " at offset " + std::to_string(last.offset) +
                   ": checksum mismatch in the last record, which is whole") != std::string::npos);
    TqdProcess tqd(dir.with({"--wal-recover"}));
    CHECK(logged(tqd, "wal recover: DROPPED " + std::to_string(last.size) + " bytes at " +
                          dir.segment() + " offset " + std::to_string(last.offset)));
    CHECK(logged(tqd,
                 "wal recover: ran in recover mode (--wal-recover): what it dropped or found "
                 "lost is logged above"));
    CHECK_FALSE(logged(tqd, "found nothing to drop"));
    CHECK(queues(tqd) ==
          std::vector<std::string>{"emails ready=1 held=0 delayed=0 leased=0 dead=0 paused=0"});
    // Job 2 was acknowledged: its id is never given to another job.
    check_ids_stay_new(dir, tqd);
  }

  TEST_CASE("a newest segment cut short stops a plain start - --wal-recover drops what is lost") {
    // Segment files are made at full size before they are named, so a
    // crash never leaves one short: it was cut short later (a bad disk, a
    // careless copy), and acknowledged jobs went with it. It used to be taken
    // for a crash's leftover and deleted (or cut off) with a warning only,
    // and the lost jobs' ids were handed out again.
    DataDir dir;
    two_emails(dir);
    const std::string data = read_file(dir.segment());
    const RecordAt last = records_in(data).back();
    std::string expected_error;
    SUBCASE("to nothing") {
      write_file(dir.segment(), "");
      expected_error = dir.segment() +
                       " at offset 0: file is shorter than a segment header (0 bytes; segment "
                       "files are created at full size, so it was cut short)";
    }
    SUBCASE("inside its last record") {
      write_file(dir.segment(), data.substr(0, last.offset + last.size - 2));
      expected_error = dir.segment() + " at offset " + std::to_string(last.offset) +
                       ": record runs 2 bytes past the end of the file";
    }
    auto [status, err] = dir.refused();
    CHECK(status != 0);
    CHECK(err.find(expected_error) != std::string::npos);
    CHECK(read_file(dir.segment()).size() < data.size());  // left as it was

    TqdProcess tqd(dir.with({"--wal-recover"}));
    CHECK(logged(tqd, "wal recover: DROPPED"));
    {
      auto s = tqd.socket();
      (void)call(s, "CREATE emails");  // gone with the file cut to nothing
    }
    check_ids_stay_new(dir, tqd);
  }

  TEST_CASE("--wal-recover opens a directory an earlier recovery wrote a queue named #N into") {
    // Before recovered-N, the rewrite wrote a QUEUE record naming the
    // placeholder "#1": intact and checksummed, but replay refuses the name,
    // and that stopped --wal-recover too. Now recovery drops such a record
    // like damage, and its jobs are kept as any orphans are.
    DataDir dir;
    two_emails(dir);
    const std::string data = read_file(dir.segment());
    std::string rebuilt = data.substr(0, tq::wal::kSegmentHeaderSize);
    for (const RecordAt& r : records_in(data)) {
      std::string body(r.record.body);
      if (r.record.type == static_cast<uint8_t>(tq::server::RecordType::kQueue)) {
        REQUIRE(body.substr(0, 8) == std::string("\x01\x06") + "emails");  // number, name
        body = std::string("\x01\x02") + "#1" + body.substr(8);
      }
      tq::wal::append_record(rebuilt, r.record.type, r.record.seq, body);
    }
    rebuilt.resize(data.size(), '\0');
    write_file(dir.segment(), rebuilt);

    auto [status, err] = dir.refused();
    CHECK(status != 0);
    CHECK(err.find("undecodable QUEUE record body") != std::string::npos);
    {
      TqdProcess tqd(dir.with({"--wal-recover"}));
      CHECK(logged(tqd, "wal recover: DROPPED"));
      CHECK(queues(tqd) == std::vector<std::string>{
                               "recovered-1 ready=2 held=0 delayed=0 leased=0 dead=0 paused=0"});
      REQUIRE(tqd.stop(SIGTERM) == 0);
    }
    TqdProcess again(dir.options);
    CHECK(queues(again) == std::vector<std::string>{
                               "recovered-1 ready=2 held=0 delayed=0 leased=0 dead=0 paused=0"});
  }
}

}  // namespace recover_test
