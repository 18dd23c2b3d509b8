// When a reply may leave under fsync: always, checked on a disk whose
// fdatasync the test holds (a MemoryFileSystem in process). An ENQUEUE or ACK
// reply waits for its own record; a DEQUEUE reply waits for the records of
// what it read but not for its lease (unless wal.sync_leases), and a power
// cut that loses the lease gives the job back with the attempt uncounted.
//
// "Not answered" is checked as a read that times out (300 ms): the positive
// half of each check, the answer once syncs resume, is what the test waits
// on.
#include <doctest/doctest.h>

#include <string>

#include "server/log.h"
#include "tests/integration/in_process_tqd.h"
#include "tests/integration/line_call.h"
#include "wal/memory_file_system.h"

namespace lease_sync_test {

using namespace tq;
using tq::testing::call;
using tq::testing::InProcessTqd;

namespace {

server::Config memory_config(bool sync_leases) {
  server::Config c;
  c.port = 0;
  c.data_dir = "/data";
  c.segment_bytes = 64 << 10;
  c.fsync = wal::FsyncPolicy::kAlways;
  c.wal_sync_leases = sync_leases;
  c.log_level = server::LogLevel::kError;
  return c;
}

// Holds the file system's syncs while it lives (so that a failing check never
// leaves tqd unable to shut down); release() lets them go earlier.
class SyncHold {
 public:
  explicit SyncHold(wal::MemoryFileSystem& fs) : fs_(fs) { fs_.set_hold_syncs(true); }
  ~SyncHold() { release(); }
  SyncHold(const SyncHold&) = delete;
  SyncHold& operator=(const SyncHold&) = delete;
  void release() { fs_.set_hold_syncs(false); }

 private:
  wal::MemoryFileSystem& fs_;
};

// True if no reply line arrives within `ms`; the socket stays usable.
bool silent_for(client::LineSocket& s, int ms) {
  const int before = s.timeout_ms();
  s.set_timeout_ms(ms);
  auto line = s.read_line();
  s.set_timeout_ms(before);
  if (line.ok()) return false;
  return line.error().kind == client::ErrorKind::kTimeout;
}

std::string read_reply(client::LineSocket& s) {
  auto line = s.read_line();
  REQUIRE(line.ok());
  return *line;
}

// "OK <id>" -> id
std::string id_of(const std::string& reply) {
  REQUIRE(reply.rfind("OK ", 0) == 0);
  return reply.substr(3);
}

}  // namespace

TEST_SUITE("lease_sync") {
  TEST_CASE("DEQUEUE's reply does not wait for its lease to be synced, ACK's waits for the ack") {
    server::set_log_level(server::LogLevel::kError);
    wal::MemoryFileSystem fs;
    const server::Config config = memory_config(false);
    InProcessTqd tqd(fs, config);
    auto s = tqd.socket();
    REQUIRE(call(s, "CREATE q") == "OK created q");
    const std::string id = id_of(call(s, "ENQUEUE q job"));

    SyncHold hold(fs);
    CHECK(call(s, "DEQUEUE q") == "OK " + id + " job");
    REQUIRE(s.send("ACK " + id + "\n").ok());
    CHECK(silent_for(s, 300));

    {
      // A power cut now loses the lease (never synced): the job is back,
      // ready, with no attempt counted, and nothing else is lost.
      auto cut = fs.power_cut_copy();
      InProcessTqd after(*cut, config);
      auto t = after.socket();
      CHECK(call(t, "PEEK q READY") == "OK 1");
      CHECK(read_reply(t) == "JOB " + id + " 3 queue=q state=ready attempts=0 priority=0");
      CHECK(read_reply(t) == "job");
    }

    hold.release();
    CHECK(read_reply(s) == "OK acked " + id);
  }

  TEST_CASE("a DEQUEUE does not wait for another worker's ACK to be synced") {
    server::set_log_level(server::LogLevel::kError);
    wal::MemoryFileSystem fs;
    InProcessTqd tqd(fs, memory_config(false));
    auto first = tqd.socket();
    auto second = tqd.socket();
    REQUIRE(call(first, "CREATE q") == "OK created q");
    const std::string a = id_of(call(first, "ENQUEUE q a"));
    const std::string b = id_of(call(first, "ENQUEUE q b"));
    REQUIRE(call(first, "DEQUEUE q") == "OK " + a + " a");

    SyncHold hold(fs);
    REQUIRE(first.send("ACK " + a + "\n").ok());
    CHECK(silent_for(first, 300));
    CHECK(call(second, "DEQUEUE q") == "OK " + b + " b");
    hold.release();
    CHECK(read_reply(first) == "OK acked " + a);
  }

  TEST_CASE("one worker consuming one job at a time costs one sync per job, not two") {
    server::set_log_level(server::LogLevel::kError);
    wal::MemoryFileSystem fs;
    InProcessTqd tqd(fs, memory_config(false));
    auto s = tqd.socket();
    REQUIRE(call(s, "CREATE q") == "OK created q");
    constexpr int kJobs = 40;
    for (int i = 0; i < kJobs; ++i) REQUIRE(call(s, "ENQUEUE q job").rfind("OK ", 0) == 0);

    const size_t before = fs.sync_count();
    for (int i = 0; i < kJobs; ++i) {
      const std::string reply = call(s, "DEQUEUE q");
      REQUIRE(reply.rfind("OK ", 0) == 0);
      const std::string id = reply.substr(3, reply.find(' ', 3) - 3);
      REQUIRE(call(s, "ACK " + id) == "OK acked " + id);
    }
    const size_t syncs = fs.sync_count() - before;
    // Each ACK is synced before its reply; the lease before it rides along
    // (a lease synced alone would make this 2 * kJobs). Slack for round
    // trips slower than the 10 ms a lease waits for company (a loaded CI
    // machine, sanitizers).
    CHECK(syncs >= kJobs);
    CHECK(syncs < kJobs * 3 / 2);
  }

  TEST_CASE("with wal.sync_leases, DEQUEUE's reply waits for its lease too") {
    server::set_log_level(server::LogLevel::kError);
    wal::MemoryFileSystem fs;
    InProcessTqd tqd(fs, memory_config(true));
    auto s = tqd.socket();
    REQUIRE(call(s, "CREATE q") == "OK created q");
    const std::string id = id_of(call(s, "ENQUEUE q job"));

    SyncHold hold(fs);
    REQUIRE(s.send("DEQUEUE q\n").ok());
    CHECK(silent_for(s, 300));
    hold.release();
    CHECK(read_reply(s) == "OK " + id + " job");
  }

  TEST_CASE("a DEQUEUE does not hand out a job before its enqueue is durable") {
    server::set_log_level(server::LogLevel::kError);
    wal::MemoryFileSystem fs;
    InProcessTqd tqd(fs, memory_config(false));
    auto producer = tqd.socket();
    auto worker = tqd.socket();
    REQUIRE(call(producer, "CREATE q") == "OK created q");

    SyncHold hold(fs);
    REQUIRE(producer.send("ENQUEUE q job\n").ok());
    CHECK(silent_for(producer, 300));
    REQUIRE(worker.send("DEQUEUE q\n").ok());
    CHECK(silent_for(worker, 300));

    hold.release();
    const std::string id = id_of(read_reply(producer));
    CHECK(read_reply(worker) == "OK " + id + " job");
  }
}

}  // namespace lease_sync_test
