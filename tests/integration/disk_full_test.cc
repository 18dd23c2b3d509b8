// A full disk, in process: tqd runs on a MemoryFileSystem whose capacity the
// test controls. Writes that cannot be logged are answered ERROR IO (never
// OK), reads go on, and writes work again once there is room; nothing that
// was answered OK is lost.
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "server/log.h"
#include "tests/integration/in_process_tqd.h"
#include "tests/integration/line_call.h"
#include "tests/support/tqd_process.h"
#include "wal/memory_file_system.h"
#include "wal/record.h"

namespace disk_full_test {

using namespace tq;
using tq::testing::call;
using tq::testing::InProcessTqd;
using tq::testing::stat_via;

namespace {

// GET /healthz on the metrics endpoint: its status line.
std::string health_status(InProcessTqd& tqd) {
  auto s =
      client::LineSocket::connect("127.0.0.1", static_cast<uint16_t>(tqd.metrics_port()), 5000);
  REQUIRE(s.ok());
  REQUIRE(s->send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").ok());
  auto line = s->read_line();
  REQUIRE(line.ok());
  std::string status = *line;
  if (!status.empty() && status.back() == '\r') status.pop_back();
  return status;
}

// The one schedule `SCHEDULE q` lists: "tick next=... fired=... ...".
std::string schedule_line(client::LineSocket& s) {
  REQUIRE(call(s, "SCHEDULE q") == "OK 1");
  auto line = s.read_line();
  REQUIRE(line.ok());
  return *line;
}

server::Config small_config() {
  server::Config c;
  c.port = 0;
  c.data_dir = "/data";
  c.max_line_bytes = 4096;
  c.max_payload_bytes = 4096;
  c.segment_bytes = 64 << 10;
  c.log_level = server::LogLevel::kError;
  c.metrics_host = "127.0.0.1";  // for GET /healthz
  c.metrics_port = 0;
  // These tests fill the disk itself: no reserve to stop new jobs first.
  c.wal_min_free_disk = 0;
  return c;
}

}  // namespace

TEST_SUITE("disk_full") {
  TEST_CASE("RELOAD while the log fails applies the settings and reports the declarations failed") {
    server::set_log_level(server::LogLevel::kError);
    wal::MemoryFileSystem fs;
    const std::string file = tq::testing::make_temp_dir() + "/config.yaml";
    std::ofstream(file) << "server:\n  port: 0\n  data_dir: /data\n  log_level: error\n"
                           "wal:\n  segment_bytes: 64KiB\n  min_free_disk: 0\n"
                           "limits:\n  max_line_bytes: 4096\n  max_payload_bytes: 4096\n"
                           "  max_batch: 7\nqueues:\n  declare:\n    invoices: {}\n";
    InProcessTqd tqd(fs, small_config(), nullptr, file);
    auto s = tqd.socket();
    REQUIRE(call(s, "CREATE q") == "OK created q");
    fs.set_capacity(fs.used_bytes());
    for (int i = 0; i < 200 && call(s, "ENQUEUE q " + std::string(1000, 'p'))[0] == 'O'; ++i) {
    }
    REQUIRE(call(s, "ENQUEUE q refused").rfind("ERROR IO ", 0) == 0);  // the log fails
    const std::string reply = call(s, "RELOAD");
    CHECK(reply.rfind("OK reloaded applied=limits.max_batch", 0) == 0);
    CHECK(reply.find("failed=queues.declare.invoices") != std::string::npos);
  }

  TEST_CASE("a new log on a disk with less room than one log file stops the start") {
    // It used to serve, /healthz and all, and refuse the first CREATE with
    // ERROR IO (its first file is made at the first write).
    server::set_log_level(server::LogLevel::kError);
    const server::Config c = small_config();  // 64 KiB log files
    engine::SystemClock clock;
    {
      wal::MemoryFileSystem fs;
      fs.set_capacity(fs.used_bytes() + 32 * 1024);
      server::Daemon daemon(c, fs, clock);
      // Refused as one a later start may get past (exit 1): room may be made.
      CHECK(daemon.start() == server::StartRefusal::kMayPassLater);
      const auto names = fs.list("/data/wal");
      REQUIRE(names);
      for (const std::string& name : *names) {
        CHECK(wal::parse_segment_file_name(name) == 0);  // no log file made: markers only
      }
    }
    wal::MemoryFileSystem fs;
    fs.set_capacity(fs.used_bytes() + 2 * c.segment_bytes);
    InProcessTqd tqd(fs, c);
    auto s = tqd.socket();
    CHECK(call(s, "CREATE q") == "OK created q");
  }

  TEST_CASE("writes get ERROR IO while the disk is full, reads go on, and it recovers") {
    server::set_log_level(server::LogLevel::kError);
    wal::MemoryFileSystem fs;
    std::map<uint64_t, std::string> stored;  // answered OK
    {
      InProcessTqd tqd(fs, small_config());
      auto s = tqd.socket();
      REQUIRE(call(s, "CREATE q") == "OK created q");
      CHECK(health_status(tqd) == "HTTP/1.1 200 OK");

      fs.set_capacity(fs.used_bytes());  // the open segment has room; no new one fits
      std::string first_error;
      for (int i = 0; i < 200 && first_error.empty(); ++i) {
        std::string payload = "job-" + std::to_string(i) + "-" + std::string(1000, 'p');
        std::string reply = call(s, "ENQUEUE q " + payload);
        if (reply.rfind("OK ", 0) == 0) {
          stored[std::stoull(reply.substr(3))] = payload;
        } else {
          first_error = reply;
        }
      }
      REQUIRE_FALSE(first_error.empty());
      CHECK(first_error.rfind("ERROR IO the log cannot be written (", 0) == 0);
      CHECK(first_error.find("No space left on device") != std::string::npos);
      CHECK(stored.size() >= 50);

      // New writes are refused before they happen; reads are served.
      CHECK(call(s, "ENQUEUE q refused").rfind("ERROR IO ", 0) == 0);
      CHECK(call(s, "DEQUEUE q").rfind("ERROR IO ", 0) == 0);
      CHECK(call(s, "PING") == "OK PONG");
      CHECK(call(s, "LIST") == "OK q");
      // CONFIG and SCHEDULE with only a queue read: served too.
      REQUIRE(s.send("SCHEDULE q\n").ok());
      CHECK(*s.read_line() == "OK 0");
      tq::testing::config_via(s, "CONFIG q");
      CHECK(call(s, "CONFIG q max_size=5").rfind("ERROR IO ", 0) == 0);
      CHECK(health_status(tqd) == "HTTP/1.1 503 Service Unavailable");

      fs.set_capacity(UINT64_MAX);
      // The writer retries every second; writes are accepted once it succeeds.
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      std::string reply;
      for (;;) {
        reply = call(s, "ENQUEUE q after-recovery");
        if (reply.rfind("OK ", 0) == 0) break;
        REQUIRE(std::chrono::steady_clock::now() < deadline);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      stored[std::stoull(reply.substr(3))] = "after-recovery";
      CHECK(health_status(tqd) == "HTTP/1.1 200 OK");
      CHECK(tqd.stop());  // all of it written: a clean stop
    }

    // Everything answered OK survived (the write that failed was retried
    // too: ERROR IO means "unknown", and here it did happen).
    InProcessTqd again(fs, small_config());
    auto s = again.socket();
    size_t found = 0;
    for (;;) {
      std::string reply = call(s, "DEQUEUE q");
      if (reply.rfind("OK ", 0) != 0) break;
      size_t space = reply.find(' ', 3);
      uint64_t id = std::stoull(reply.substr(3, space - 3));
      if (stored.count(id)) {
        CHECK(stored[id] == reply.substr(space + 1));
        ++found;
      }
    }
    CHECK(found == stored.size());
  }

  TEST_CASE(
      "with a reserve, a backlog that fills the disk stops new jobs, not workers draining it") {
    server::set_log_level(server::LogLevel::kError);
    wal::MemoryFileSystem fs;
    server::Config c = small_config();
    c.wal_min_free_disk = 1;  // at least two segments: 128 KiB
    InProcessTqd tqd(fs, c);
    auto s = tqd.socket();
    REQUIRE(call(s, "CREATE q") == "OK created q");
    fs.set_capacity(fs.used_bytes() + 12 * c.segment_bytes);
    std::vector<uint64_t> stored;
    std::string refusal;
    for (int i = 0; i < 5000 && refusal.empty(); ++i) {
      const std::string reply = call(s, "ENQUEUE q " + std::string(1000, 'p'));
      if (reply.rfind("OK ", 0) == 0) {
        stored.push_back(std::stoull(reply.substr(3)));
      } else {
        refusal = reply;
      }
    }
    INFO(refusal);
    REQUIRE(refusal.rfind("ERROR FULL the disk holding the log has ", 0) == 0);
    CHECK(refusal.find("wal.min_free_disk") != std::string::npos);
    CHECK(stored.size() >= 300);
    CHECK(stat_via(s, "wal_disk_low") == "1");
    // Workers drain it: without the reserve the disk filled up and every
    // DEQUEUE and ACK was refused (ERROR IO), for want of a file for them.
    for (size_t i = 0; i < stored.size(); ++i) {
      const std::string got = call(s, "DEQUEUE q");
      REQUIRE(got.rfind("OK ", 0) == 0);
      const std::string id = got.substr(3, got.find(' ', 3) - 3);
      REQUIRE(call(s, "ACK " + id) == "OK acked " + id);
    }
    // The drained files are deleted, and new jobs are taken again by themselves.
    REQUIRE(tq::testing::stat_reaches(s, "wal_disk_low", "0"));
    CHECK(call(s, "ENQUEUE q after").rfind("OK ", 0) == 0);
    CHECK(stat_via(s, "wal_disk_low_total") == "1");
    CHECK(stat_via(s, "wal_io_errors_total") == "0");
    CHECK(stat_via(s, "wal_healthy") == "1");
  }

  TEST_CASE("schedule times kept out of the log while the disk was low are written later") {
    // A firing refused for a low disk moves its schedule on in memory only,
    // leaving the room kept for draining alone. Those times are written when
    // the disk has room again, and at a clean stop; before, the restart
    // found the older time and fired it (a job an hour early here).
    server::set_log_level(server::LogLevel::kError);
    // Then the disk has room again, or its free space cannot be measured
    // (the intake opens: unknown is not low), or neither until the stop.
    enum class Then { kRoom, kUnmeasured, kStop };
    for (const Then then : {Then::kRoom, Then::kUnmeasured, Then::kStop}) {
      CAPTURE(static_cast<int>(then));
      wal::MemoryFileSystem fs;
      server::Config c = small_config();
      c.wal_min_free_disk = 1;  // at least two segments: 128 KiB
      tq::testing::SteppedClock clock;
      std::string schedule;
      {
        InProcessTqd tqd(fs, c, &clock);
        auto s = tqd.socket();
        REQUIRE(call(s, "CREATE q") == "OK created q");
        REQUIRE(call(s, "SCHEDULE q tick 1 EVERY 1h\nx") == "OK 1");
        REQUIRE(s.read_line().ok());  // the schedule as set
        fs.set_capacity(fs.used_bytes() + c.segment_bytes);
        REQUIRE(tq::testing::stat_reaches(s, "wal_disk_low", "1"));
        clock.step_ms(3'600'000);  // due: refused, and its next time an hour on
        REQUIRE(tq::testing::stat_reaches(s, "schedule_refused_total", "1"));
        schedule = schedule_line(s);
        if (then != Then::kStop) {
          const std::string bytes = stat_via(s, "wal_bytes");
          if (then == Then::kRoom) fs.set_capacity(UINT64_MAX);
          fs.set_fail_free_bytes(then == Then::kUnmeasured);
          REQUIRE(tq::testing::stat_reaches(s, "wal_disk_low", "0"));
          CHECK(std::stoull(stat_via(s, "wal_bytes")) > std::stoull(bytes));  // written now
          fs.set_fail_free_bytes(false);
        }
        REQUIRE(tqd.stop());
      }
      fs.set_capacity(UINT64_MAX);
      InProcessTqd tqd(fs, c, &clock);
      auto s = tqd.socket();
      CHECK(schedule_line(s) == schedule);
      CHECK(stat_via(s, "jobs_ready") == "0");
    }
  }

  TEST_CASE("a stop while the log cannot be written is not a clean one") {
    server::set_log_level(server::LogLevel::kError);
    wal::MemoryFileSystem fs;
    InProcessTqd tqd(fs, small_config());
    auto s = tqd.socket();
    REQUIRE(call(s, "CREATE q") == "OK created q");
    fs.set_capacity(fs.used_bytes());
    std::string reply;
    for (int i = 0; i < 200 && reply.rfind("ERROR IO ", 0) != 0; ++i) {
      reply = call(s, "ENQUEUE q " + std::string(1000, 'p'));
    }
    REQUIRE(reply.rfind("ERROR IO ", 0) == 0);
    // tqd exits 1 for it (it said 0, "a clean stop", with records lost).
    CHECK_FALSE(tqd.stop());
  }

  TEST_CASE("a log directory removed under tqd fails the log: no write is acknowledged after") {
    // The files stay open, and writes to them work: tqd went on answering
    // OK, and a clean stop, for records a restart could never find.
    tq::testing::TqdProcess tqd;
    auto s = tqd.socket();
    REQUIRE(call(s, "CREATE q") == "OK created q");
    REQUIRE(call(s, "ENQUEUE q before") == "OK 1");
    std::filesystem::remove_all(tqd.dir() + "/data");
    // Found within the second (the upkeep's check), not at the next file.
    REQUIRE(tq::testing::stat_reaches(s, "wal_healthy", "0"));
    const std::string reply = call(s, "ENQUEUE q after");
    CHECK(reply.rfind("ERROR IO the log cannot be written (" + tqd.dir() + "/data/wal/LOCK is gone",
                      0) == 0);
    CHECK(reply.find("put the log's directory back first") != std::string::npos);
    CHECK(call(s, "LIST") == "OK q");  // reads go on
    CHECK(tqd.wait_for_log("the log's directory was removed or moved away"));
    CHECK(tqd.stop(SIGTERM) == 1);  // not a clean stop
  }

  TEST_CASE("replies that vouch for records the log then fails to write are ERROR IO too") {
    server::set_log_level(server::LogLevel::kError);
    wal::MemoryFileSystem fs;
    InProcessTqd tqd(fs, small_config());
    auto admin = tqd.socket();
    REQUIRE(call(admin, "CREATE q") == "OK created q");
    struct Heal {  // whatever the test does, tqd can stop
      wal::MemoryFileSystem& fs;
      ~Heal() { fs.set_fail_syncs(false); }
    } heal{fs};
    fs.set_fail_syncs(true);
    auto s = tqd.socket();
    // One read: the job is handed out, and the key answered DUPLICATE, before
    // the loop hears that the sync of the records creating them failed. (Had
    // the requests come in two reads, the later ones would be refused, ERROR
    // IO as well.)
    REQUIRE(s.send("ENQUEUE q A\nDEQUEUE q\nPUT q 1 KEY k\r\nx\r\nPUT q 1 KEY k\r\ny\r\n").ok());
    for (const char* request : {"ENQUEUE", "DEQUEUE", "PUT", "PUT DUPLICATE"}) {
      INFO(request);
      auto reply = s.read_line();
      REQUIRE(reply.ok());
      CHECK(reply->rfind("ERROR IO the log cannot be written", 0) == 0);
    }
    fs.set_fail_syncs(false);
  }

  TEST_CASE("a KICK in steps that the log fails part way is answered ERROR IO and not held") {
    server::set_log_level(server::LogLevel::kError);
    wal::MemoryFileSystem fs;
    InProcessTqd tqd(fs, small_config());
    auto admin = tqd.socket();
    constexpr int kJobs = 100'000;  // hundreds of steps: the failure is heard part way
    REQUIRE(call(admin, "CREATE q") == "OK created q");
    tq::testing::config_via(admin, "CONFIG q ttl=1ms ttl_dead_letter=true");
    std::string batch;
    for (int i = 0; i < kJobs; ++i) batch += "ENQUEUE q job\n";
    REQUIRE(admin.send(batch).ok());
    for (int i = 0; i < kJobs; ++i) REQUIRE(admin.read_line()->rfind("OK ", 0) == 0);
    tq::testing::config_via(admin, "CONFIG q ttl=0ms");
    REQUIRE(tq::testing::stat_reaches(admin, "dead", std::to_string(kJobs), "q"));
    struct Heal {  // whatever the test does, tqd can stop
      wal::MemoryFileSystem& fs;
      ~Heal() { fs.set_fail_syncs(false); }
    } heal{fs};
    fs.set_fail_syncs(true);
    // Its records cannot be synced: the reply says so (within the socket's
    // 5 s), rather than waiting for the disk to come back.
    REQUIRE(admin.send("KICK q\nPING\n").ok());
    auto reply = admin.read_line();
    REQUIRE(reply.ok());
    CHECK(reply->rfind("ERROR IO the log cannot be written", 0) == 0);
    CHECK(*admin.read_line() == "OK PONG");
    fs.set_fail_syncs(false);
  }
}

}  // namespace disk_full_test
