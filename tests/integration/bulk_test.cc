// KICK, REDRIVE and PURGE ... DEAD of many jobs against a real tqd: they run
// in steps between other clients' requests, the connection that asked
// waits for its one reply (and its later requests behind it), and what the
// reply counts survives a SIGKILL.
#include <doctest/doctest.h>

#include <signal.h>

#include <memory>
#include <string>

#include "tests/integration/line_call.h"
#include "tests/support/tqd_process.h"

namespace bulk_test {

using tq::client::LineSocket;
using tq::testing::call;
using tq::testing::stat_reaches;
using tq::testing::stat_via;
using tq::testing::TqdOptions;
using tq::testing::TqdProcess;

namespace {

// Puts n jobs in `queue`, pipelined, and reads their n replies.
void put_many(LineSocket& s, const std::string& queue, int n) {
  std::string batch;
  for (int i = 0; i < n; ++i) batch += "ENQUEUE " + queue + " job " + std::to_string(i) + "\n";
  REQUIRE(s.send(batch).ok());
  for (int i = 0; i < n; ++i) {
    auto reply = s.read_line();
    REQUIRE(reply.ok());
    REQUIRE(reply->rfind("OK ", 0) == 0);
  }
}

// n jobs dead in `queue` (or moved to its dead_letter_queue, when
// `settings` names one): a TTL of 1 ms sends each to dead letters.
void make_dead(LineSocket& s, const std::string& queue, int n, const std::string& settings = "") {
  REQUIRE(call(s, "CREATE " + queue) == "OK created " + queue);
  tq::testing::config_via(s, "CONFIG " + queue + " ttl=1ms ttl_dead_letter=true " + settings);
  put_many(s, queue, n);
  tq::testing::config_via(s, "CONFIG " + queue + " ttl=0ms");
}

const char* kAlwaysSync = "wal:\n  fsync: always\n";

// Kills tqd with SIGKILL and starts another, as `options` say, on its
// directory and port.
std::unique_ptr<TqdProcess> kill_and_restart(TqdProcess& tqd, TqdOptions options) {
  options.dir = tqd.dir();
  options.port = tqd.port();
  REQUIRE(tqd.stop(SIGKILL) == 128 + SIGKILL);
  return std::make_unique<TqdProcess>(options);
}

// A tqd with n dead jobs in queue q, a connection to send KICK on and
// another to watch with STATS.
struct DeadJobs {
  explicit DeadJobs(int n) : admin(tqd.socket(30'000)), watcher(tqd.socket()) {
    make_dead(admin, "q", n);
    REQUIRE(stat_reaches(watcher, "dead", std::to_string(n), "q"));
  }
  int dead_now() { return std::stoi(stat_via(watcher, "dead", "q")); }

  TqdProcess tqd;
  LineSocket admin;
  LineSocket watcher;
};

}  // namespace

TEST_SUITE("bulk") {
  TEST_CASE("a KICK of many dead jobs lets other clients in between its steps") {
    constexpr int kJobs = 50'000;
    DeadJobs d(kJobs);
    // A request pipelined behind the KICK waits for it.
    REQUIRE(d.admin.send("KICK q\nPING\n").ok());
    // Meanwhile another client's requests are served: STATS shows the
    // dead jobs going down a step at a time, not all at once.
    bool saw_part_way = false;
    for (int i = 0; i < 100'000; ++i) {
      const int dead = d.dead_now();
      if (dead == 0) break;
      if (dead < kJobs) saw_part_way = true;
    }
    CHECK(saw_part_way);
    CHECK(*d.admin.read_line() == "OK kicked " + std::to_string(kJobs));
    CHECK(*d.admin.read_line() == "OK PONG");
    CHECK(stat_via(d.watcher, "ready", "q") == std::to_string(kJobs));
    CHECK(stat_via(d.watcher, "kicked_total", "q") == std::to_string(kJobs));
    CHECK(d.tqd.wait_for_log("KICK q: " + std::to_string(kJobs) + " job(s) in "));
  }

  TEST_CASE("SIGTERM during a KICK in steps - it answers what it did, then refuses what waited") {
    constexpr int kJobs = 100'000;
    DeadJobs d(kJobs);
    LineSocket& admin = d.admin;
    REQUIRE(admin.send("KICK q\nPING\n").ok());
    int dead = kJobs;
    while (dead == kJobs) dead = d.dead_now();
    REQUIRE(kill(d.tqd.pid(), SIGTERM) == 0);
    auto reply = admin.read_line();
    REQUIRE(reply.ok());
    REQUIRE(reply->rfind("OK kicked ", 0) == 0);
    const int kicked = std::stoi(reply->substr(10));
    CHECK(kicked >= kJobs - dead);
    auto after = admin.read_line();
    REQUIRE(after.ok());
    // Refused when the signal cut the KICK short; run when it had ended.
    CHECK(*after == (kicked < kJobs ? "ERROR SHUTDOWN the server is stopping" : "OK PONG"));
    CHECK_FALSE(admin.read_line().ok());
    CHECK(d.tqd.stop(0) == 0);
    MESSAGE("SIGTERM after " << kicked << " of " << kJobs << " kicked");
  }

  TEST_CASE(
      "PURGE and DROP: their jobs are gone for everyone at once, freed after, and stay gone") {
    TqdOptions options;
    options.config_yaml = kAlwaysSync;
    TqdProcess tqd(options);
    auto admin = tqd.socket(30'000);
    constexpr int kJobs = 20'000;
    REQUIRE(call(admin, "CREATE q") == "OK created q");
    REQUIRE(call(admin, "CREATE r") == "OK created r");
    REQUIRE(call(admin, "ENQUEUE q first") == "OK 1");
    put_many(admin, "q", kJobs - 1);
    put_many(admin, "r", 10);
    const std::string leased = call(admin, "DEQUEUE r");
    REQUIRE(leased.rfind("OK ", 0) == 0);
    const std::string leased_id = leased.substr(3, leased.find(' ', 3) - 3);
    const std::string last_in_q = std::to_string(kJobs);

    // Each request behind the PURGE or DROP in one packet runs before tqd
    // frees anything: none of them finds a job those took.
    REQUIRE(admin
                .send("PURGE q\nJOB 1\nDELETE " + last_in_q + "\nDROP r\nACK " + leased_id +
                      "\nENQUEUE q after\n")
                .ok());
    CHECK(admin.read_line().value() == "OK purged " + std::to_string(kJobs));
    CHECK(admin.read_line().value().rfind("ERROR NOTFOUND", 0) == 0);
    CHECK(admin.read_line().value().rfind("ERROR NOTFOUND", 0) == 0);
    CHECK(admin.read_line().value() == "OK dropped r");
    CHECK(admin.read_line().value().rfind("ERROR NOTFOUND", 0) == 0);
    const std::string after = admin.read_line().value();
    CHECK(after.rfind("OK ", 0) == 0);
    CHECK(stat_via(admin, "jobs_ready") == "1");
    CHECK(stat_via(admin, "jobs_leased") == "0");
    REQUIRE(stat_reaches(admin, "jobs_freeing", "0"));
    CHECK(stat_via(admin, "payload_bytes") == "5");  // "after"

    auto restarted = kill_and_restart(tqd, options);
    auto s = restarted->socket();
    CHECK(stat_via(s, "ready", "q") == "1");
    CHECK(call(s, "DEQUEUE q") == "OK " + after.substr(3) + " after");
    CHECK(call(s, "STATS r").rfind("ERROR NOQUEUE", 0) == 0);
  }

  TEST_CASE("REDRIVE and PURGE DEAD in steps: what their replies count survives a SIGKILL") {
    TqdOptions options;
    options.config_yaml = kAlwaysSync;
    TqdProcess tqd(options);
    auto admin = tqd.socket(30'000);
    constexpr int kJobs = 3'000;  // a dozen steps each
    REQUIRE(call(admin, "CREATE dlq") == "OK created dlq");
    make_dead(admin, "q", kJobs, "dead_letter_queue=dlq");
    make_dead(admin, "p", kJobs);
    REQUIRE(stat_reaches(admin, "ready", std::to_string(kJobs), "dlq"));
    REQUIRE(stat_reaches(admin, "dead", std::to_string(kJobs), "p"));

    CHECK(call(admin, "REDRIVE dlq") == "OK redriven " + std::to_string(kJobs));
    CHECK(call(admin, "PURGE p DEAD") == "OK purged " + std::to_string(kJobs));
    auto restarted = kill_and_restart(tqd, options);
    auto after = restarted->socket();
    CHECK(stat_via(after, "ready", "q") == std::to_string(kJobs));
    CHECK(stat_via(after, "ready", "dlq") == "0");
    CHECK(stat_via(after, "dead", "p") == "0");
    CHECK(stat_via(after, "ready", "p") == "0");
  }
}

}  // namespace bulk_test
