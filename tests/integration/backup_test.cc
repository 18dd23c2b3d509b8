// BACKUP against a real tqd: the copy holds every change answered before the
// command and none after, while producers and workers keep going (small
// segments: rotation, deletion and compaction run during the copy), and a
// tqd started on it serves exactly that.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/line_call.h"
#include "tests/support/thread_group.h"
#include "tests/support/tqd_process.h"

namespace backup_test {

using tq::testing::call;
using tq::testing::stat_via;
using tq::testing::ThreadGroup;
using tq::testing::TqdOptions;
using tq::testing::TqdProcess;

namespace {

// Small files, so that a few thousand jobs rotate through many of them, and
// a low compaction ratio, so that old files are rewritten and deleted.
const char* kChurnConfig =
    "queues:\n  auto_create: true\n"
    "limits:\n  max_line_bytes: 4096\n  max_payload_bytes: 2048\n"
    "wal:\n  segment_bytes: 65536\n  compaction_ratio: 1.2\n";

TqdOptions with_config(const std::string& yaml) {
  TqdOptions options;
  options.config_yaml = yaml;
  return options;
}

// The backup's directory, from "OK backup <dir> segments=..."
std::string backup_path(const std::string& reply) {
  REQUIRE(reply.rfind("OK backup ", 0) == 0);
  const size_t start = std::string("OK backup ").size();
  return reply.substr(start, reply.find(' ', start) - start);
}

// A tqd on a copy of the backup, as an operator restores one: the backup
// directory moved into place as a data directory.
std::unique_ptr<TqdProcess> start_on(const std::string& backup, const std::string& config) {
  TqdOptions options;
  options.config_yaml = config;
  options.dir = backup + "-restored";
  std::filesystem::create_directories(options.dir);
  std::filesystem::copy(backup, options.dir + "/data", std::filesystem::copy_options::recursive);
  return std::make_unique<TqdProcess>(options);
}

// Every ready job of `queue`, id -> payload, taken out by DEQUEUE.
std::map<uint64_t, std::string> drain(TqdProcess& tqd, const std::string& queue) {
  auto s = tqd.socket(10'000);
  std::map<uint64_t, std::string> found;
  for (;;) {
    const std::string reply = call(s, "DEQUEUE " + queue);
    if (reply.rfind("ERROR EMPTY", 0) == 0) return found;
    REQUIRE(reply.rfind("OK ", 0) == 0);
    const size_t space = reply.find(' ', 3);
    found[std::stoull(reply.substr(3, space - 3))] = reply.substr(space + 1);
  }
}

}  // namespace

TEST_SUITE("backup") {
  TEST_CASE("a tqd started on a backup serves the jobs as they were when BACKUP ran") {
    TqdProcess tqd(with_config(kChurnConfig));
    auto s = tqd.socket();
    for (int i = 0; i < 3000; ++i) {
      REQUIRE(call(s, "ENQUEUE emails job " + std::to_string(i) + " " + std::string(i % 90, 'x')) ==
              "OK " + std::to_string(i + 1));
    }
    // 500 finished, 1 leased when the backup is made.
    for (int i = 1; i <= 500; ++i) {
      REQUIRE(call(s, "DEQUEUE emails").rfind("OK " + std::to_string(i) + " ", 0) == 0);
      REQUIRE(call(s, "ACK " + std::to_string(i)) == "OK acked " + std::to_string(i));
    }
    REQUIRE(call(s, "DEQUEUE emails").rfind("OK 501 ", 0) == 0);
    REQUIRE(s.send("PUT emails 5 KEY once\nhello\n").ok());
    REQUIRE(*s.read_line() == "OK 3001");
    CHECK(std::stoull(stat_via(s, "wal_segments")) > 3);

    const std::string reply = call(s, "BACKUP nightly");
    const std::string dir = backup_path(reply);
    CHECK(dir == tqd.dir() + "/data/backups/nightly");
    CHECK(reply.find(" segments=") != std::string::npos);
    CHECK(std::filesystem::is_directory(dir + "/wal"));
    CHECK(stat_via(s, "wal_backups_total") == "1");
    CHECK(stat_via(s, "wal_backup_running") == "0");

    // What happens next is not in the backup.
    REQUIRE(call(s, "ENQUEUE emails after the backup") == "OK 3002");
    REQUIRE(call(s, "ACK 501") == "OK acked 501");
    REQUIRE(call(s, "PURGE emails").rfind("OK purged ", 0) == 0);

    auto restored = start_on(dir, kChurnConfig);
    auto r = restored->socket();
    // 501 is leased, as it was: to its lease's end, which has not come.
    CHECK(stat_via(r, "ready", "emails") == "2500");
    CHECK(stat_via(r, "leased", "emails") == "1");
    const std::map<uint64_t, std::string> jobs = drain(*restored, "emails");
    REQUIRE(jobs.size() == 2500);
    CHECK(jobs.begin()->first == 502);
    CHECK(jobs.at(2000) == "job 1999 " + std::string(1999 % 90, 'x'));
    CHECK(jobs.at(3001) == "hello");
    // The dedup key came along.
    REQUIRE(r.send("PUT emails 5 KEY once\nhello\n").ok());
    CHECK(*r.read_line() == "OK 3001 DUPLICATE");
    // The original went on to give out 3002 after the backup: the copy's
    // first start skips every id the original can have issued since.
    const std::string fresh = call(r, "ENQUEUE emails new");
    REQUIRE(fresh.rfind("OK ", 0) == 0);
    const uint64_t fresh_id = std::stoull(fresh.substr(3));
    CHECK(fresh_id > 3002 + (uint64_t{1} << 31));
    CHECK(restored->wait_for_log("job ids jump from 3002 to"));
    CHECK(std::filesystem::exists(dir + "/wal/BACKUP"));  // the backup itself is untouched
    // Once that start has written, the copy is a log like any other: no
    // second jump.
    const std::string restored_dir = restored->dir();
    REQUIRE(restored->stop(SIGTERM) == 0);
    CHECK_FALSE(std::filesystem::exists(restored_dir + "/data/wal/BACKUP"));
    TqdOptions again = with_config(kChurnConfig);
    again.dir = restored_dir;
    TqdProcess second(again);
    auto r2 = second.socket();
    CHECK(call(r2, "ENQUEUE emails newer") == "OK " + std::to_string(fresh_id + 1));
  }

  TEST_CASE("a backup taken under load holds what was answered before it and nothing after") {
    TqdProcess tqd(with_config(kChurnConfig));
    std::mutex mu;
    std::map<uint64_t, std::string> payloads;  // every job stored
    std::atomic<int> phase{0};        // 0 before BACKUP is sent, 1 while, 2 after its reply
    std::set<uint64_t> before;        // ENQUEUE answered in phase 0: in the backup (unless acked)
    std::set<uint64_t> after;         // ENQUEUE sent in phase 2: not in it
    std::set<uint64_t> acked;         // ACK answered, at any time
    std::set<uint64_t> acked_before;  // ACK answered in phase 0: not in it
    std::set<uint64_t> acked_after;   // ACK sent in phase 2: in it (if stored before)
    std::atomic<bool> stop{false};
    std::string dir;
    {
      // A backlog for the workers to eat into, so old files empty and are
      // deleted while the backup is made.
      auto admin = tqd.socket();
      std::string batch;
      for (int n = 0; n < 3000; ++n) batch += "ENQUEUE load backlog " + std::to_string(n) + "\n";
      REQUIRE(admin.send(batch).ok());
      for (int n = 0; n < 3000; ++n) {
        auto reply = admin.read_line();
        REQUIRE(reply.ok());
        REQUIRE(*reply == "OK " + std::to_string(n + 1));
        payloads[n + 1] = "backlog " + std::to_string(n);
        before.insert(n + 1);
      }
      ThreadGroup threads([&] { stop = true; });
      for (int p = 0; p < 1; ++p) {
        threads.spawn([&, p] {
          auto s = tqd.socket();
          for (int n = 0; !stop; ++n) {
            const int sent_in = phase;
            const std::string payload = "p" + std::to_string(p) + "-" + std::to_string(n) +
                                        std::string(static_cast<size_t>(n % 200), '.');
            const std::string reply = call(s, "ENQUEUE load " + payload);
            REQUIRE(reply.rfind("OK ", 0) == 0);
            const uint64_t id = std::stoull(reply.substr(3));
            std::lock_guard<std::mutex> lock(mu);
            payloads[id] = payload;
            if (sent_in == 0 && phase == 0) before.insert(id);
            if (sent_in == 2) after.insert(id);
          }
        });
      }
      for (int w = 0; w < 2; ++w) {
        threads.spawn([&] {
          auto s = tqd.socket();
          while (!stop) {
            const int sent_in = phase;
            const std::string reply = call(s, "DEQUEUE load");
            if (reply.rfind("OK ", 0) != 0) continue;
            const uint64_t id = std::stoull(reply.substr(3, reply.find(' ', 3) - 3));
            const int acked_in = phase;
            REQUIRE(call(s, "ACK " + std::to_string(id)) == "OK acked " + std::to_string(id));
            std::lock_guard<std::mutex> lock(mu);
            acked.insert(id);
            if (sent_in == 0 && phase == 0) acked_before.insert(id);
            if (acked_in == 2) acked_after.insert(id);
          }
        });
      }
      // Back up once old files are being deleted.
      while (stat_via(admin, "wal_segments_deleted_total") == "0") {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      phase = 1;
      const std::string reply = call(admin, "BACKUP busy");
      phase = 2;
      dir = backup_path(reply);
      for (;;) {
        {
          std::lock_guard<std::mutex> lock(mu);
          if (after.size() >= 200 && acked_after.size() >= 20) break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      stop = true;
      threads.join();
    }

    auto restored = start_on(dir, kChurnConfig);
    const std::map<uint64_t, std::string> jobs = drain(*restored, "load");
    REQUIRE(before.size() > 100);
    size_t checked = 0;
    for (uint64_t id : before) {
      // Acked while the backup was made: either way is right.
      if (acked.count(id) != 0 && acked_after.count(id) == 0) continue;
      INFO("job " << id << " was stored before BACKUP and is missing from it");
      REQUIRE(jobs.count(id) == 1);
      CHECK(jobs.at(id) == payloads.at(id));
      ++checked;
    }
    CHECK(checked > 0);
    for (uint64_t id : acked_before) {
      INFO("job " << id << " was acked before BACKUP and came back");
      CHECK(jobs.count(id) == 0);
    }
    for (uint64_t id : after) {
      INFO("job " << id << " was sent after BACKUP answered and is in it");
      CHECK(jobs.count(id) == 0);
    }
  }

  TEST_CASE(
      "BACKUP refuses a name used already, a name that is a path, and a server without a log") {
    TqdProcess tqd(with_config("queues:\n  auto_create: true\n"));
    auto s = tqd.socket();
    REQUIRE(call(s, "ENQUEUE q one").rfind("OK ", 0) == 0);
    const std::string dir = backup_path(call(s, "BACKUP first"));
    CHECK(call(s, "BACKUP first") == "ERROR EXISTS backup " + dir + " exists");
    for (const std::string& name :
         std::vector<std::string>{"../up", ".hidden", "-rf", "a/b", std::string(101, 'n')}) {
      CAPTURE(name);
      CHECK(call(s, "BACKUP " + name).rfind("ERROR BADFORMAT a backup name is", 0) == 0);
    }
    CHECK(call(s, "BACKUP a b").rfind("ERROR BADFORMAT", 0) == 0);
    // Without a name: tq-<UTC time>.
    const std::string named = backup_path(call(s, "BACKUP"));
    const std::string default_name = std::filesystem::path(named).filename().string();
    CHECK(default_name.rfind("tq-20", 0) == 0);
    CHECK(default_name.size() == std::string("tq-20261203T215959.042Z").size());
    CHECK(stat_via(s, "wal_backups_failed_total") == "0");

    TqdProcess memory(with_config("wal:\n  enabled: false\n"));
    auto m = memory.socket();
    CHECK(call(m, "BACKUP x").rfind("ERROR NOLOG wal.enabled is false", 0) == 0);
    CHECK(call(m, "PING") == "OK PONG");
  }

  TEST_CASE(
      "BACKUP writes to wal.backup_dir, replaces a crashed attempt, answers before what follows") {
    TqdProcess tqd(with_config(""));
    const std::string backups = tqd.dir() + "/elsewhere";
    TqdProcess configured(with_config("wal:\n  backup_dir: " + backups + "\n"));
    // What a crash in the middle of a backup leaves: a partial copy.
    std::filesystem::create_directories(backups + "/.b1.partial/wal");
    std::filesystem::create_directories(backups + "/.b1.partial/junk");
    auto s = configured.socket();
    REQUIRE(call(s, "CREATE q") == "OK created q");
    // Pipelined: the replies come in order, the PING's after the backup's.
    REQUIRE(s.send("BACKUP b1\nPING\n").ok());
    auto first = s.read_line();
    REQUIRE(first.ok());
    CHECK(backup_path(*first) == backups + "/b1");
    CHECK(*s.read_line() == "OK PONG");
    CHECK_FALSE(std::filesystem::exists(backups + "/.b1.partial"));
    CHECK_FALSE(std::filesystem::exists(backups + "/b1/junk"));
    CHECK(std::filesystem::is_directory(backups + "/b1/wal"));
  }

  TEST_CASE("BACKUP removes what backups of other names left when cut short, not one under way") {
    TqdProcess tqd(with_config(""));
    const std::string backups = tqd.dir() + "/elsewhere";
    TqdProcess configured(with_config("wal:\n  backup_dir: " + backups + "\n"));
    // Left by kills: a partial copy (with its lock file), and a lock file alone.
    std::filesystem::create_directories(backups + "/.tq-old.partial/wal");
    std::ofstream(backups + "/.tq-old.partial/wal/00000000000000000001.wal") << "half a copy";
    std::ofstream(backups + "/.tq-old.partial.lock") << "123\n";
    std::ofstream(backups + "/.tq-gone.partial.lock") << "124\n";
    // Under way in another tqd sharing the directory: its lock is held.
    std::filesystem::create_directories(backups + "/.busy.partial/wal");
    const int held = ::open((backups + "/.busy.partial.lock").c_str(), O_RDWR | O_CREAT, 0600);
    REQUIRE(held >= 0);
    REQUIRE(::flock(held, LOCK_EX | LOCK_NB) == 0);
    auto s = configured.socket();
    CHECK(backup_path(call(s, "BACKUP b2")) == backups + "/b2");
    CHECK_FALSE(std::filesystem::exists(backups + "/.tq-old.partial"));
    CHECK_FALSE(std::filesystem::exists(backups + "/.tq-old.partial.lock"));
    CHECK_FALSE(std::filesystem::exists(backups + "/.tq-gone.partial.lock"));
    CHECK(std::filesystem::is_directory(backups + "/.busy.partial/wal"));
    CHECK_FALSE(std::filesystem::exists(backups + "/.b2.partial.lock"));  // ours went too
    // Two backups of one name at once: the second is told the name is taken.
    const int held2 = ::open((backups + "/.b3.partial.lock").c_str(), O_RDWR | O_CREAT, 0600);
    REQUIRE(held2 >= 0);
    REQUIRE(::flock(held2, LOCK_EX | LOCK_NB) == 0);
    CHECK(call(s, "BACKUP b3") ==
          "ERROR EXISTS backup " + backups + "/b3 is being written by another tqd");
    ::close(held2);
    ::close(held);
    CHECK(backup_path(call(s, "BACKUP b3")) == backups + "/b3");
    CHECK_FALSE(std::filesystem::exists(backups + "/.busy.partial"));  // its lock is free now
  }
}

TEST_SUITE("backup") {
  TEST_CASE("wal.backup_keep removes the oldest backups after a new one, and nothing else") {
    const std::string dir = tq::testing::make_temp_dir();
    const std::string backups = dir + "/backups";
    TqdProcess tqd(with_config("wal:\n  backup_dir: " + backups + "\n  backup_keep: 2\n"));
    std::filesystem::create_directories(backups + "/photos");  // not a backup: never touched
    auto s = tqd.socket();
    REQUIRE(call(s, "CREATE q") == "OK created q");
    CHECK(call(s, "BACKUP first").ends_with(" removed=0"));
    CHECK(call(s, "BACKUP second").ends_with(" removed=0"));
    const std::string third = call(s, "BACKUP third");
    CHECK(backup_path(third) == backups + "/third");
    CHECK(third.ends_with(" removed=1"));
    CHECK_FALSE(std::filesystem::exists(backups + "/first"));
    CHECK(std::filesystem::is_directory(backups + "/second/wal"));
    CHECK(std::filesystem::is_directory(backups + "/third/wal"));
    CHECK(std::filesystem::is_directory(backups + "/photos"));
    CHECK(stat_via(s, "wal_backups_removed_total") == "1");
    CHECK(stat_via(s, "wal_backups_total") == "3");
    CHECK(tqd.wait_for_log("backup " + backups + "/first removed: wal.backup_keep is 2"));
    const std::string last_at = stat_via(s, "wal_last_backup_at_ms");
    CHECK(std::stoll(last_at) > 0);
    tqd.stop(SIGTERM);
    {
      // A restart does not read as "no backup yet": the newest one there dates it.
      TqdOptions again = with_config("wal:\n  backup_dir: " + backups + "\n  backup_keep: 2\n");
      again.dir = tqd.dir();
      TqdProcess restarted(again);
      auto r = restarted.socket();
      CHECK(stat_via(r, "wal_last_backup_at_ms") == last_at);
      CHECK(stat_via(r, "wal_backups_total") == "0");
      restarted.stop(SIGTERM);
    }
    tq::testing::remove_tree(dir);
  }

  TEST_CASE("with wal.backup_keep, a data directory inside backup_dir stops tqd at start") {
    // Retention could take it for an old backup: a restored log keeps its
    // BACKUP marker until its first clean stop.
    const std::string dir = tq::testing::make_temp_dir();
    {
      std::ofstream config(dir + "/config.yaml");
      config << "wal:\n  backup_dir: " << dir << "/backups\n  backup_keep: 2\n";
    }
    auto [status, err] = tq::testing::run_tqd(
        {"--config", dir + "/config.yaml", "--port", "0", "--data-dir", dir + "/backups/live"});
    CHECK(status == 2);
    CHECK(err.find("wal.backup_dir: the data directory " + dir + "/backups/live is inside " + dir +
                   "/backups, where wal.backup_keep removes old backups") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir + "/backups/live/wal"));  // refused before the log
    tq::testing::remove_tree(dir);
  }

  TEST_CASE("SIGTERM during a backup - it is answered, nothing partial is left, tqd exits 0") {
    TqdProcess tqd(with_config("queues:\n  auto_create: true\nwal:\n  fsync: never\n"));
    auto s = tqd.socket(10'000);
    // Enough log (about 30 MB) that the copy takes a while.
    const std::string payload(200, 'p');
    for (int round = 0; round < 20; ++round) {
      std::string batch;
      for (int i = 0; i < 5000; ++i) batch += "ENQUEUE q " + payload + "\n";
      REQUIRE(s.send(batch).ok());
      for (int i = 0; i < 5000; ++i) REQUIRE(s.read_line().ok());
    }
    auto admin = tqd.socket();
    REQUIRE(s.send("BACKUP big\nPING\n").ok());  // the PING waits for the BACKUP
    bool caught_running = false;
    for (int i = 0; i < 2000 && !caught_running; ++i) {
      caught_running = stat_via(admin, "wal_backup_running") == "1";
      if (!caught_running && stat_via(admin, "wal_backups_total") == "1") break;  // done already
    }
    REQUIRE(kill(tqd.pid(), SIGTERM) == 0);
    auto reply = s.read_line();
    REQUIRE(reply.ok());
    CAPTURE(*reply);
    const bool finished = reply->rfind("OK backup ", 0) == 0;
    const bool cancelled = *reply == "ERROR SHUTDOWN the server is stopping: backup cancelled";
    CHECK((finished || cancelled));
    // Run when the BACKUP ended before the signal; else refused, after it.
    auto after = s.read_line();
    REQUIRE(after.ok());
    CHECK((*after == "OK PONG" || *after == "ERROR SHUTDOWN the server is stopping"));
    if (cancelled) CHECK(*after == "ERROR SHUTDOWN the server is stopping");
    CHECK_FALSE(s.read_line().ok());
    CHECK(tqd.stop(0) == 0);  // signal 0: only waits for the exit the SIGTERM began
    const std::string backups = tqd.dir() + "/data/backups";
    CHECK_FALSE(std::filesystem::exists(backups + "/.big.partial"));
    CHECK(std::filesystem::exists(backups + "/big") == finished);
    MESSAGE("the backup was " << std::string(caught_running ? "running" : "not seen running")
                              << " at SIGTERM: " << *reply);
  }
}

TEST_SUITE("backup") {
  TEST_CASE("a client that half-closes after BACKUP still hears how it went") {
    TqdProcess tqd(with_config("queues:\n  auto_create: true\n"));
    auto s = tqd.socket();
    REQUIRE(call(s, "ENQUEUE q one").rfind("OK ", 0) == 0);
    // printf 'BACKUP hc\nENQUEUE q two\nLIST\n' | nc -N: every request is
    // answered, in order, then the server closes.
    REQUIRE(s.send("BACKUP hc\nENQUEUE q two\nLIST\n").ok());
    s.shutdown_write();
    auto reply = s.read_line();
    REQUIRE(reply.ok());
    CHECK(backup_path(*reply) == tqd.dir() + "/data/backups/hc");
    CHECK(*s.read_line() == "OK 2");
    CHECK(*s.read_line() == "OK q");
    CHECK_FALSE(s.read_line().ok());
  }
}

}  // namespace backup_test
