// SIGHUP reads the settings again (server/config_reload.h): what may change
// while tqd runs changes, what may not is reported and waits for a restart,
// and a file that cannot be used changes nothing.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "tests/integration/line_call.h"
#include "tests/support/tqd_process.h"

namespace reload_test {

using tq::testing::call;
using tq::testing::stat_via;
using tq::testing::TqdOptions;
using tq::testing::TqdProcess;

namespace {

// The value of `key` in the listing of CONFIG <queue> [<change>].
std::string queue_setting(tq::client::LineSocket& s, const std::string& queue,
                          const std::string& key, const std::string& change = "") {
  const std::string head = call(s, "CONFIG " + queue + (change.empty() ? "" : " " + change));
  REQUIRE(head.rfind("OK ", 0) == 0);
  std::string value;
  for (size_t i = 0, n = std::stoul(head.substr(3)); i < n; ++i) {
    auto line = s.read_line();
    REQUIRE(line.ok());
    if (line->rfind(key + " ", 0) == 0) value = line->substr(key.size() + 1);
  }
  return value;
}

void rewrite(const TqdProcess& tqd, const std::string& yaml) {
  std::ofstream(tqd.dir() + "/config.yaml", std::ios::trunc) << yaml;
}

// Sends SIGHUP and waits (5 s at most) for a new log line with `needle`:
// the reload's last.
void reload(TqdProcess& tqd, const std::string& needle) {
  const size_t seen = tqd.log_lines().size();
  REQUIRE(kill(tqd.pid(), SIGHUP) == 0);
  for (int i = 0; i < 1000; ++i) {
    const auto lines = tqd.log_lines();
    for (size_t j = seen; j < lines.size(); ++j) {
      if (lines[j].find(needle) != std::string::npos) return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  FAIL("no '" << needle << "' in tqd's log after SIGHUP");
}

bool logged(TqdProcess& tqd, const std::string& needle) {
  for (const std::string& line : tqd.log_lines()) {
    if (line.find(needle) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_SUITE("reload") {
  TEST_CASE("SIGHUP applies limits, passwords and declared queues at once, and nothing else") {
    TqdOptions o;
    o.config_yaml =
        "auth:\n  password: first-secret\n"
        "wal:\n  segment_bytes: 2MiB\n"
        "queues:\n  declare:\n    emails:\n      max_attempts: 5\n    reports: {}\n";
    TqdProcess tqd(o);
    auto old = tqd.socket();
    REQUIRE(call(old, "AUTH first-secret") == "OK authenticated");
    REQUIRE(queue_setting(old, "reports", "max_attempts", "max_attempts=9") == "9");

    // server.port is also given as a flag (TqdProcess passes --port): the
    // flag keeps winning, so it is no change at all.
    rewrite(tqd,
            "server:\n  port: 1\n"
            "auth:\n  password: second-secret\n"
            "limits:\n  max_batch: 2\n"
            "queues:\n  declare:\n    emails:\n      max_attempts: 7\n    reports: {}\n"
            "    invoices: {}\n"
            "wal:\n  segment_bytes: 2MiB\n  fsync: never\n");
    reload(tqd, "settings read again");
    CHECK(logged(tqd, "SIGHUP: limits.max_batch: 1000 -> 2"));
    CHECK(logged(tqd, "wal.fsync changed (always -> never) but applies only after a restart"));
    CHECK_FALSE(logged(tqd, "server.port changed"));
    CHECK(logged(tqd, "/config.yaml is not used: --port wins"));
    CHECK_FALSE(logged(tqd, "second-secret"));  // a password is never logged

    // The connection that authenticated before keeps its access.
    CHECK(call(old, "PING") == "OK PONG");
    auto fresh = tqd.socket();
    CHECK(call(fresh, "AUTH first-secret").rfind("ERROR", 0) == 0);
    CHECK(call(fresh, "AUTH second-secret") == "OK authenticated");
    CHECK(call(fresh, "DEQUEUE emails COUNT 3").rfind("ERROR BADFORMAT", 0) == 0);
    CHECK(call(fresh, "DEQUEUE emails COUNT 2") == "OK 0");
    CHECK(call(fresh, "LIST") == "OK emails,invoices,reports");
    CHECK(queue_setting(fresh, "emails", "max_attempts") == "7");
    // Its declaration did not change: CONFIG's change at run time stands.
    CHECK(queue_setting(fresh, "reports", "max_attempts") == "9");
    CHECK(stat_via(fresh, "config_reloads_total") == "1");
    CHECK(stat_via(fresh, "config_pending_restart") == "1");
    CHECK(stat_via(fresh, "wal_fsync") == "always");

    // A file that cannot be read changes nothing.
    rewrite(tqd, "limits:\n  max_batch: [\n");
    reload(tqd, "nothing changed");
    CHECK(stat_via(fresh, "config_reload_failures_total") == "1");
    CHECK(call(fresh, "DEQUEUE emails COUNT 3").rfind("ERROR BADFORMAT", 0) == 0);
    // Nor does one whose live settings do not fit those that wait for a
    // restart: a longer line than the running log files can hold.
    rewrite(tqd,
            "auth:\n  password: third-secret\n"
            "limits:\n  max_line_bytes: 8MiB\n  max_batch: 50\n"
            "wal:\n  segment_bytes: 16MiB\n");
    reload(tqd, "nothing changed");
    CHECK(stat_via(fresh, "config_reload_failures_total") == "2");
    auto third = tqd.socket();
    CHECK(call(third, "AUTH third-secret").rfind("ERROR", 0) == 0);
    CHECK(call(third, "AUTH second-secret") == "OK authenticated");
    tqd.stop(SIGTERM);
  }

  TEST_CASE("RELOAD answers with the keys it applied and those that wait for a restart") {
    TqdOptions o;
    o.config_yaml = "auth:\n  admin_password: admin-secret\n";
    TqdProcess tqd(o);
    auto s = tqd.socket();
    CHECK(call(s, "RELOAD").rfind("ERROR NOPERM", 0) == 0);  // an admin command
    REQUIRE(call(s, "AUTH admin-secret") == "OK authenticated admin");
    CHECK(call(s, "RELOAD") == "OK reloaded applied=- restart=-");

    rewrite(tqd,
            "auth:\n  admin_password: admin-secret\n"
            "limits:\n  max_batch: 5\n"
            "queues:\n  declare:\n    invoices: {}\n"
            "wal:\n  fsync: never\n");
    CHECK(call(s, "RELOAD") ==
          "OK reloaded applied=limits.max_batch,queues.declare.invoices restart=wal.fsync");
    CHECK(logged(tqd, "RELOAD: limits.max_batch: 1000 -> 5"));
    CHECK(call(s, "LIST") == "OK invoices");
    CHECK(stat_via(s, "config_reloads_total") == "2");

    // Queue defaults: for queues created from now on.
    rewrite(tqd,
            "auth:\n  admin_password: admin-secret\n"
            "limits:\n  max_batch: 5\n"
            "queues:\n  defaults:\n    max_attempts: 3\n  declare:\n    invoices: {}\n"
            "wal:\n  fsync: never\n");
    CHECK(call(s, "RELOAD") ==
          "OK reloaded applied=queues.defaults.max_attempts restart=wal.fsync");
    REQUIRE(call(s, "CREATE receipts") == "OK created receipts");
    CHECK(queue_setting(s, "receipts", "max_attempts") == "3");
    CHECK(queue_setting(s, "invoices", "max_attempts") == "0");

    rewrite(tqd, "limits:\n  max_batch: -1\n");
    const std::string refused = call(s, "RELOAD");
    CHECK(refused.rfind("ERROR BADCONFIG ", 0) == 0);
    CHECK(refused.find("limits.max_batch") != std::string::npos);
    CHECK(stat_via(s, "config_reload_failures_total") == "1");
    CHECK(call(s, "DEQUEUE invoices COUNT 6").rfind("ERROR BADFORMAT", 0) == 0);  // still 5
    tqd.stop(SIGTERM);
  }

  TEST_CASE(
      "SIGHUP applies engine limits and the log level, and a declaration that fails is retried") {
    TqdOptions o;
    o.config_yaml =
        "auth:\n  password: pw\n"
        "limits:\n  max_queues: 2\n"
        "queues:\n  declare:\n    emails:\n      max_attempts: 5\n      ack_timeout: 30s\n";
    TqdProcess tqd(o);
    auto s = tqd.socket();
    REQUIRE(call(s, "AUTH pw") == "OK authenticated");
    REQUIRE(queue_setting(s, "emails", "max_attempts", "max_attempts=9") == "9");
    CHECK(call(s, "ENQUEUE other hello").rfind("ERROR", 0) == 0);
    REQUIRE(call(s, "CREATE other") == "OK created other");  // the last room

    // The same declaration, written in another order: no change, CONFIG's 9
    // stands. A queue max_queues has no room for (a client's queue took
    // it): not created, and said so. The password turned off waits for a
    // restart; the log level goes to warn, and the lines of this reload are
    // still logged.
    rewrite(tqd,
            "server:\n  log_level: warn\n"
            "limits:\n  max_queues: 2\n"
            "queues:\n  auto_create: true\n  declare:\n"
            "    emails:\n      ack_timeout: 30000ms\n      max_attempts: 5\n"
            "    invoices: {}\n");
    reload(tqd, "settings read again");
    CHECK(logged(tqd, "SIGHUP: queues.auto_create: false -> true"));
    CHECK(logged(tqd, "auth.password changed (set -> empty) but applies only after a restart"));
    CHECK(logged(tqd, "queues.declare.invoices: not applied"));
    CHECK(queue_setting(s, "emails", "max_attempts") == "9");
    auto fresh = tqd.socket();
    CHECK(call(fresh, "LIST").rfind("ERROR NOAUTH", 0) == 0);  // still a password
    REQUIRE(call(fresh, "AUTH pw") == "OK authenticated");
    // auto_create reached the engine (max_queues too: no room for "third").
    CHECK(call(fresh, "ENQUEUE third hello").find("max_queues") != std::string::npos);

    // Room now: the same declaration is tried again, and applies.
    rewrite(tqd,
            "auth:\n  password: pw\n"
            "limits:\n  max_queues: 5\n"
            "queues:\n  auto_create: true\n  declare:\n"
            "    emails:\n      ack_timeout: 30000ms\n      max_attempts: 5\n"
            "    invoices: {}\n");
    reload(tqd, "settings read again");
    CHECK(call(fresh, "LIST") == "OK emails,invoices,other");
    CHECK(call(fresh, "ENQUEUE third hello").rfind("OK", 0) == 0);

    // Live settings that break a start-up rule with the running ones: an
    // admin password equal to the password.
    rewrite(tqd, "auth:\n  password: pw\n  admin_password: pw\n");
    reload(tqd, "nothing changed");
    CHECK(stat_via(fresh, "config_reload_failures_total") == "1");
    tqd.stop(SIGTERM);
  }

  TEST_CASE("wal.min_free_disk: over the disk's free space new jobs get FULL, a reload lifts it") {
    TqdOptions o;
    o.config_yaml = "wal:\n  min_free_disk: 1048576GiB\n";  // 1 PiB: more than any disk here has
    TqdProcess tqd(o);
    auto s = tqd.socket();
    REQUIRE(call(s, "CREATE q") == "OK created q");  // not a job: served
    const std::string refused = call(s, "ENQUEUE q job");
    CHECK(refused.rfind("ERROR FULL the disk holding the log has ", 0) == 0);
    // Low since the start: the message adds the file more it takes to lift it.
    CHECK(refused.find("under wal.min_free_disk (1073741824 MiB") != std::string::npos);
    CHECK(stat_via(s, "wal_disk_low") == "1");
    CHECK(std::stoull(stat_via(s, "wal_disk_free_bytes")) > 0);
    CHECK(logged(tqd, "refusing new jobs (FULL)"));
    // Applied at once, not at the next once-a-second check.
    rewrite(tqd, "wal:\n  min_free_disk: 0\n");
    CHECK(call(s, "RELOAD") == "OK reloaded applied=wal.min_free_disk restart=-");
    CHECK(call(s, "ENQUEUE q job") == "OK 1");
    CHECK(stat_via(s, "wal_disk_low") == "0");
    CHECK(stat_via(s, "wal_disk_low_total") == "1");
    tqd.stop(SIGTERM);
  }

  TEST_CASE("a refused reload leaves nothing behind for the next one") {
    TqdOptions o;
    o.config_yaml = "limits:\n  max_connections: 100\nwal:\n  segment_bytes: 2MiB\n";
    TqdProcess tqd(o);
    auto s = tqd.socket();
    // Refused: the longer lines do not fit the running log files.
    rewrite(tqd,
            "limits:\n  max_connections: 5\n  max_line_bytes: 8MiB\n"
            "wal:\n  segment_bytes: 16MiB\n");
    CHECK(call(s, "RELOAD").rfind("ERROR BADCONFIG wal.segment_bytes", 0) == 0);
    // The same max_connections, now in a file that can be used: a change.
    rewrite(tqd, "limits:\n  max_connections: 5\nwal:\n  segment_bytes: 16MiB\n");
    CHECK(call(s, "RELOAD") ==
          "OK reloaded applied=limits.max_connections restart=wal.segment_bytes");
    // More queues declared than max_queues: refused whole, as at start-up
    // (once the first was created and the rest failed, and the next
    // restart stopped at the limit).
    rewrite(tqd,
            "limits:\n  max_connections: 5\n  max_queues: 1\nwal:\n  segment_bytes: 16MiB\n"
            "queues:\n  declare:\n    a: {}\n    b: {}\n");
    CHECK(call(s, "RELOAD")
              .rfind("ERROR BADCONFIG queues.declare: 2 queues declared, more than "
                     "limits.max_queues (1)",
                     0) == 0);
    CHECK(call(s, "LIST") == "OK");
    tqd.stop(SIGTERM);
  }

  TEST_CASE("a reload may declare a queue whose dead_letter_queue is declared after it") {
    TqdProcess tqd;
    auto s = tqd.socket();
    // jobs comes first in the file and names jobs-dead, new in the same
    // reload: nothing to warn about (start-up creates both first too).
    rewrite(tqd,
            "queues:\n  declare:\n    jobs:\n      max_attempts: 1\n"
            "      dead_letter_queue: jobs-dead\n    jobs-dead: {}\n"
            "    orphans:\n      dead_letter_queue: nowhere\n");
    CHECK(call(s, "RELOAD") == "OK reloaded applied=queues.declare.jobs,queues.declare.jobs-dead,"
                               "queues.declare.orphans restart=-");
    CHECK(queue_setting(s, "jobs", "dead_letter_queue") == "jobs-dead");
    CHECK_FALSE(logged(tqd, "queues.declare.jobs.dead_letter_queue"));
    // One that names no queue, declared or not, is still said.
    CHECK(logged(tqd, "queues.declare.orphans.dead_letter_queue: queue nowhere does not exist"));
    tqd.stop(SIGTERM);
  }

  TEST_CASE("a reload that names a missing queues.defaults.dead_letter_queue says so") {
    TqdProcess tqd;
    // reload() waits for the reload's last line: a warning comes before it.
    rewrite(tqd, "queues:\n  defaults:\n    dead_letter_queue: nowhere\n");
    reload(tqd, "settings read again");
    CHECK(logged(tqd, "queues.defaults.dead_letter_queue: queue nowhere does not exist"));
    // Declared in the same reload that names it: there by the time it is looked for.
    rewrite(tqd,
            "queues:\n  defaults:\n    dead_letter_queue: failed\n  declare:\n    jobs: {}\n"
            "    failed: {}\n");
    reload(tqd, "settings read again");
    auto s = tqd.socket();
    CHECK(queue_setting(s, "jobs", "dead_letter_queue") == "failed");
    CHECK_FALSE(logged(tqd, "queues.defaults.dead_letter_queue: queue failed"));
    tqd.stop(SIGTERM);
  }

  TEST_CASE("a SIGHUP that lets more jobs be leased serves the workers waiting at once") {
    TqdOptions o;
    o.config_yaml = "queues:\n  declare:\n    b:\n      max_leased: 1\n";
    TqdProcess tqd(o);
    auto producer = tqd.socket();
    REQUIRE(call(producer, "ENQUEUE b one").rfind("OK", 0) == 0);
    REQUIRE(call(producer, "ENQUEUE b two").rfind("OK", 0) == 0);
    auto first = tqd.socket();
    REQUIRE(call(first, "DEQUEUE b").rfind("OK", 0) == 0);
    auto second = tqd.socket(3000);  // far less than its WAIT
    REQUIRE(second.send("DEQUEUE b WAIT 30s\n").ok());
    REQUIRE(tq::testing::stat_reaches(producer, "waiters", "1"));
    rewrite(tqd, "queues:\n  declare:\n    b:\n      max_leased: 2\n");
    reload(tqd, "settings read again");
    auto reply = second.read_line();
    REQUIRE(reply.ok());
    CHECK(reply->rfind("OK ", 0) == 0);
    CHECK(reply->find("two") != std::string::npos);
    tqd.stop(SIGTERM);
  }

  TEST_CASE("tqd --check-config says whether the settings would start tqd") {
    const std::string dir = tq::testing::make_temp_dir();
    const std::string good = dir + "/good.yaml";
    const std::string bad = dir + "/bad.yaml";
    std::ofstream(good) << "server:\n  data_dir: " << dir << "/data\nlimits:\n  max_batch: 10\n";
    std::ofstream(bad) << "limits:\n  max_batch: lots\n";
    auto [good_status, good_err] = tq::testing::run_tqd({"--check-config", "--config", good});
    CHECK(good_status == 0);
    CHECK(good_err.empty());
    auto [bad_status, bad_err] = tq::testing::run_tqd({"--check-config", "--config", bad});
    CHECK(bad_status == 2);
    CHECK(bad_err.find("limits.max_batch") != std::string::npos);
    // Nothing was started: no data directory was made (the file names it:
    // run_tqd keeps the test's working directory).
    struct stat st {};
    CHECK(stat((dir + "/data").c_str(), &st) != 0);
    tq::testing::remove_tree(dir);
  }

  TEST_CASE("under systemd's journal, tqd --check-config's lines carry their priority") {
    // As an ExecStartPre (or ExecReload) runs it: journalctl -p err finds a
    // refusal. At a terminal the lines are as they were.
    tq::testing::TempDir dir;
    const std::string bad = dir.path + "/bad.yaml";
    const std::string noted = dir.path + "/noted.yaml";
    std::ofstream(bad) << "limits:\n  max_batch: lots\n";
    std::ofstream(noted) << "server:\n  port: 1234\n  data_dir: " << dir.path << "/data\n";
    {
      auto [status, err] = tq::testing::run_tqd_under_journal({"--check-config", "--config", bad});
      CHECK(status == 2);
      CHECK(err.rfind("<3>tqd: " + bad + ": limits.max_batch: ", 0) == 0);
      auto [plain_status, plain_err] = tq::testing::run_tqd({"--check-config", "--config", bad});
      CHECK(plain_status == 2);
      CHECK(plain_err.rfind("tqd: " + bad + ": limits.max_batch: ", 0) == 0);
    }
    {
      const std::vector<std::string> args = {"--check-config", "--config", noted, "--port", "0"};
      auto [status, err] = tq::testing::run_tqd_under_journal(args);
      CHECK(status == 0);
      CHECK(err == "<4>tqd: note: server.port in " + noted + " is not used: --port wins\n");
      CHECK(tq::testing::run_tqd(args).second ==
            "tqd: note: server.port in " + noted + " is not used: --port wins\n");
    }
  }

  TEST_CASE("tqd --check-config passes beside the running tqd that holds its port") {
    // systemctl reload runs the check before SIGHUP, while tqd listens on the
    // configured port: a check that bound the port failed every reload.
    TqdProcess tqd;
    const std::string port = std::to_string(tqd.port());
    auto [status, err] = tq::testing::run_tqd({"--check-config", "--port", port});
    CHECK(status == 0);
    CHECK(err.empty());
    // Two listeners of its own on one port are still refused.
    const std::string dir = tq::testing::make_temp_dir();
    const std::string clash = dir + "/clash.yaml";
    std::ofstream(clash) << "metrics:\n  listen: 127.0.0.1:" << port << "\n";
    std::tie(status, err) =
        tq::testing::run_tqd({"--check-config", "--config", clash, "--port", port});
    CHECK(status == 2);
    CHECK(err.find("cannot listen for metrics on 127.0.0.1:" + port +
                   ": address already in use: the protocol's listener is on that port too") !=
          std::string::npos);
    tq::testing::remove_tree(dir);
  }
}

}  // namespace reload_test
