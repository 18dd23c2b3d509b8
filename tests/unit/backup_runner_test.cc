// BackupRunner (server/backup.h) on a real libuv loop and a file system in
// memory that can hold a sync: one backup at a time, the reply once the
// copy is whole, and a shutdown that cancels it, without sockets or sleeps.
#include <doctest/doctest.h>

#include <uv.h>

#include <string>
#include <utility>
#include <vector>

#include "server/backup.h"
#include "tests/unit/wal_test_support.h"

namespace backup_runner_test {

using tq::protocol::ErrorCode;
using tq::server::BackupRunner;
using tq::server::ServerStats;
using tq::wal::FsyncPolicy;
using tq::wal::LogOptions;
using tq::wal::MemoryFileSystem;
using tq::wal::segment_file_name;
using tq::wal::testing::LogHarness;

namespace {

struct Fixture {
  Fixture() : h(fs) {
    LogOptions options = h.options();
    options.fsync = FsyncPolicy::kNever;
    REQUIRE(h.open(options).ok());
    uv_loop_init(&loop);
  }
  ~Fixture() {
    fs.set_hold_syncs(false);
    uv_run(&loop, UV_RUN_DEFAULT);  // a copy still on its thread finishes
    uv_loop_close(&loop);
  }

  // Appends n records and waits until they are written.
  void write(int n) {
    for (int i = 0; i < n; ++i) h.log->append(1, "job " + std::to_string(i) + std::string(50, '.'));
    REQUIRE(h.wait_durable());
  }

  MemoryFileSystem fs;
  LogHarness h;
  uv_loop_t loop{};
  ServerStats stats;
  std::vector<std::pair<uint64_t, std::string>> replies;
  BackupRunner runner{
      &loop, fs, "/backups", 0, "/data", stats, [this](uint64_t id, const std::string& reply) {
        replies.emplace_back(id, reply);
      }};
};

}  // namespace

TEST_SUITE("backup_runner") {
  TEST_CASE("one backup at a time - the reply comes once the copy is whole") {
    Fixture f;
    f.write(10);
    REQUIRE_FALSE(f.runner.start(*f.h.log, 1, "a", 1'000'000).has_value());
    CHECK(f.stats.backup_running);
    CHECK(f.h.log->pinned_for_backup());
    auto refused = f.runner.start(*f.h.log, 2, "b", 1'000'000);
    REQUIRE(refused.has_value());
    CHECK(refused->code == ErrorCode::kBusy);

    f.fs.set_hold_syncs(true);  // the copy's sync waits for the test
    f.runner.poll();
    f.fs.wait_sync_held();
    CHECK(f.runner.start(*f.h.log, 2, "b", 1'000'000)->code == ErrorCode::kBusy);
    CHECK(f.replies.empty());
    CHECK_FALSE(f.fs.exists("/backups/a/wal/" + segment_file_name(1)));

    f.fs.set_hold_syncs(false);
    uv_run(&f.loop, UV_RUN_DEFAULT);  // until the copy is done
    REQUIRE(f.replies.size() == 1);
    CHECK(f.replies[0].first == 1);
    CHECK(f.replies[0].second.rfind("OK backup /backups/a segments=1 bytes=", 0) == 0);
    CHECK(f.replies[0].second.find(" seq=10 ") != std::string::npos);
    CHECK(f.fs.exists("/backups/a/wal/" + segment_file_name(1)));
    CHECK_FALSE(f.fs.exists("/backups/.a.partial/wal/" + segment_file_name(1)));
    CHECK_FALSE(f.runner.running());
    CHECK_FALSE(f.h.log->pinned_for_backup());
    CHECK(f.stats.backups == 1);
    CHECK(f.stats.last_backup_at_ms == 1'000'000);

    // A name taken is found on the work thread, not by the loop.
    REQUIRE_FALSE(f.runner.start(*f.h.log, 3, "a", 2'000'000).has_value());
    f.runner.poll();
    uv_run(&f.loop, UV_RUN_DEFAULT);
    REQUIRE(f.replies.size() == 2);
    CHECK(f.replies[1] ==
          std::make_pair(uint64_t{3}, std::string("ERROR EXISTS backup /backups/a exists\n")));
    CHECK_FALSE(f.h.log->pinned_for_backup());
    CHECK(f.stats.backups == 1);
    CHECK(f.stats.backups_failed == 0);
    CHECK(f.fs.exists("/backups/a/wal/" + segment_file_name(1)));
  }

  TEST_CASE("a shutdown cancels a backup not yet copying - the copy never starts") {
    Fixture f;
    f.write(10);
    REQUIRE_FALSE(f.runner.start(*f.h.log, 7, "a", 1'000'000).has_value());
    f.runner.cancel();
    CHECK(f.replies.empty());  // not from inside the shutdown that cancels
    f.runner.poll();
    REQUIRE(f.replies.size() == 1);
    CHECK(f.replies[0] == std::make_pair(uint64_t{7}, std::string("ERROR SHUTDOWN the server is "
                                                                  "stopping: backup cancelled\n")));
    CHECK_FALSE(f.runner.running());
    CHECK_FALSE(f.h.log->pinned_for_backup());
    CHECK(f.stats.backups_failed == 1);
    CHECK_FALSE(f.fs.exists("/backups/a/wal/" + segment_file_name(1)));
  }

  TEST_CASE("a shutdown cancels a copy under way - nothing is left under the name") {
    Fixture f;
    f.write(300);  // 4 KiB segments: several files
    REQUIRE(f.h.log->current_segment() > 2);
    REQUIRE_FALSE(f.runner.start(*f.h.log, 7, "a", 1'000'000).has_value());
    f.fs.set_hold_syncs(true);
    f.runner.poll();
    f.fs.wait_sync_held();
    f.runner.cancel();
    CHECK(f.replies.empty());  // the copy answers when it stops
    CHECK(f.runner.running());
    f.fs.set_hold_syncs(false);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    REQUIRE(f.replies.size() == 1);
    CHECK(f.replies[0].second.rfind("ERROR SHUTDOWN", 0) == 0);
    CHECK_FALSE(f.fs.exists("/backups/a/wal/" + segment_file_name(1)));
    CHECK_FALSE(f.h.log->pinned_for_backup());
  }

  TEST_CASE("a backup_dir given with a trailing slash names backups with one slash") {
    // `backup_dir: /var/lib/tq/backups/` made replies and logs say
    // ".../backups//nightly", and a data directory inside it no longer
    // compared equal to its backup path, so a restored log's marker counted
    // as the newest backup (wal_last_backup_at_ms).
    Fixture f;
    for (const char* dir :
         {"/shelf", "/shelf/old", "/shelf/old/wal", "/shelf/live", "/shelf/live/wal"}) {
      REQUIRE(f.fs.create_dir(dir).ok());
    }
    f.fs.set_contents("/shelf/old/wal/BACKUP", "500\n");
    f.fs.set_contents("/shelf/live/wal/BACKUP", "900\n");  // the data directory, restored
    ServerStats stats;
    std::vector<std::string> replies;
    BackupRunner runner(&f.loop, f.fs, "/shelf/", 0, "/shelf/live/", stats,
                        [&](uint64_t, const std::string& reply) { replies.push_back(reply); });
    CHECK(stats.last_backup_at_ms == 500);
    CHECK(runner.backup_dir() == "/shelf");
    f.write(3);
    REQUIRE_FALSE(runner.start(*f.h.log, 1, "a", 1'000'000).has_value());
    runner.poll();
    uv_run(&f.loop, UV_RUN_DEFAULT);
    REQUIRE(replies.size() == 1);
    CHECK(replies[0].rfind("OK backup /shelf/a segments=1 ", 0) == 0);
  }
}

}  // namespace backup_runner_test
