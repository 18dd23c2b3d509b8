// A queue's delivery limits over TCP against a real tqd: max_leased holds
// workers back until a lease ends, the rate limit until it allows another
// delivery, and a worker blocked in WAIT is let in when either does.
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <string>
#include <thread>

#include "tests/integration/line_call.h"
#include "tests/support/tqd_process.h"

namespace limits_test {

using tq::client::LineSocket;
using tq::testing::call;
using tq::testing::TqdOptions;
using tq::testing::TqdProcess;
using Clock = std::chrono::steady_clock;

namespace {

// CONFIG with changes; the listing it answers with is read and dropped.
void configure(LineSocket& s, const std::string& changes) {
  tq::testing::config_via(s, "CONFIG q " + changes);
}

// Leases the job and FAILs it: to dead letters.
void kill_job(LineSocket& s, const std::string& payload) {
  const std::string id = call(s, "ENQUEUE q " + payload).substr(3);
  REQUIRE(call(s, "DEQUEUE q") == "OK " + id + " " + payload);
  REQUIRE(call(s, "FAIL " + id + " bad") == "OK dead " + id);
}

std::string id_of(const std::string& reply) {
  return reply.substr(3, reply.find(' ', 3) - 3);
}

}  // namespace

TEST_SUITE("limits") {
  TEST_CASE("max_leased: a worker waits until a lease ends, then gets the job") {
    TqdProcess tqd;
    auto admin = tqd.socket();
    REQUIRE(call(admin, "CREATE q") == "OK created q");
    REQUIRE(call(admin, "CREATE other") == "OK created other");
    configure(admin, "max_leased=1");
    call(admin, "ENQUEUE q first");
    const std::string second = call(admin, "ENQUEUE q second").substr(3);
    const std::string first_reply = call(admin, "DEQUEUE q");
    REQUIRE(first_reply.rfind("OK ", 0) == 0);
    CHECK(call(admin, "DEQUEUE q") ==
          "ERROR EMPTY queue 'q' is at max_leased=1 (1 leased, 1 ready)");
    CHECK(call(admin, "DEQUEUE q other") ==
          "ERROR EMPTY nothing to deliver: 'q' is at max_leased=1 (1 leased, 1 ready); 'other' has "
          "no ready job");
    auto worker = tqd.socket(30'000);
    REQUIRE(worker.send("DEQUEUE q WAIT 20\n").ok());
    REQUIRE(tq::testing::stat_reaches(admin, "waiters", "1"));
    CHECK(call(admin, "ACK " + id_of(first_reply)) == "OK acked " + id_of(first_reply));
    auto got = worker.read_line();
    REQUIRE(got.ok());
    CHECK(*got == "OK " + second + " second");
  }

  TEST_CASE(
      "rate_limit: deliveries past the limit wait for the window, and a waiting worker is woken") {
    TqdProcess tqd;
    auto admin = tqd.socket();
    REQUIRE(call(admin, "CREATE q") == "OK created q");
    // One delivery per 3 s: long enough that the worker below is parked
    // (STATS says so) well before the next token.
    configure(admin, "rate_limit=1 rate_window=3s");
    for (int i = 0; i < 2; ++i) call(admin, "ENQUEUE q job " + std::to_string(i));
    const auto first = Clock::now();
    REQUIRE(admin.send("DEQUEUE q COUNT 10\n").ok());
    REQUIRE(*admin.read_line() == "OK 1");  // the bucket holds one
    for (int i = 0; i < 2; ++i) REQUIRE(admin.read_line().ok());
    const std::string refused = call(admin, "DEQUEUE q");
    CHECK(refused.rfind(
              "ERROR EMPTY queue 'q' is at rate_limit=1 per 3000ms: the next delivery in ", 0) ==
          0);
    // Without a timer for the next token, the worker would sit out its whole
    // 20 s and get EMPTY.
    auto worker = tqd.socket(30'000);
    REQUIRE(worker.send("DEQUEUE q WAIT 20\n").ok());
    REQUIRE(tq::testing::stat_reaches(admin, "waiters", "1"));
    auto got = worker.read_line();
    REQUIRE(got.ok());
    CHECK(*got == "OK 2 job 1");
    const auto waited = Clock::now() - first;
    CHECK(waited >= std::chrono::milliseconds(2'900));  // not before the token (ms granularity)
    CHECK(waited < std::chrono::seconds(15));
  }

  TEST_CASE("limits refuse values out of range and say what they take") {
    TqdProcess tqd;
    auto s = tqd.socket();
    REQUIRE(call(s, "CREATE q") == "OK created q");
    CHECK(call(s, "CONFIG q rate_window=0") ==
          "ERROR BADFORMAT rate_window: expected a duration from 1ms to 30d, such as 1s or 1m, got "
          "'0'");
    CHECK(call(s, "CONFIG q max_leased=-1") ==
          "ERROR BADFORMAT max_leased: expected a whole number up to 1000000000 (0: no limit), got "
          "'-1'");
    CHECK(call(s, "CONFIG q rate_limit=ten").rfind("ERROR BADFORMAT rate_limit: expected", 0) == 0);
  }

  TEST_CASE(
      "dead_max and dead_retention delete old dead letters, and a restart keeps them deleted") {
    const std::string dir = tq::testing::make_temp_dir();
    TqdOptions options;
    options.dir = dir;
    {
      TqdProcess tqd(options);
      auto s = tqd.socket();
      REQUIRE(call(s, "CREATE q") == "OK created q");
      configure(s, "dead_max=2");
      for (const char* p : {"one", "two", "three"}) kill_job(s, p);
      CHECK(tq::testing::stat_reaches(s, "dead", "2", "q"));
      CHECK(tq::testing::stat_reaches(s, "dead_discarded_total", "1", "q"));
      CHECK(call(s, "JOB 1").rfind("ERROR NOTFOUND", 0) == 0);
      tqd.stop(SIGKILL);
    }
    {
      TqdProcess tqd(options);
      auto s = tqd.socket();
      CHECK(tq::testing::stat_reaches(s, "dead", "2", "q"));  // job 1 stays deleted
      CHECK(call(s, "JOB 1").rfind("ERROR NOTFOUND", 0) == 0);
      // ... by its REMOVE record, not deleted again at start-up.
      CHECK(tq::testing::stat_via(s, "jobs_dead_discarded_total") == "0");
      // Retention: the two left died moments ago; with 1 s they go soon.
      configure(s, "dead_retention=1s");
      CHECK(tq::testing::stat_reaches(s, "dead", "0", "q"));
      CHECK(tq::testing::stat_reaches(s, "dead_discarded_total", "2", "q"));
      tqd.stop(SIGKILL);
    }
    TqdProcess tqd(options);
    auto s = tqd.socket();
    CHECK(tq::testing::stat_reaches(s, "dead", "0", "q"));
    CHECK(call(s, "JOB 2").rfind("ERROR NOTFOUND", 0) == 0);
    tqd.stop(SIGTERM);
    tq::testing::remove_tree(dir);
  }

  TEST_CASE("PAUSE for a while: a waiting worker is served when it ends, with no RESUME") {
    TqdProcess tqd;
    auto admin = tqd.socket();
    REQUIRE(call(admin, "CREATE q") == "OK created q");
    const std::string id = call(admin, "ENQUEUE q after the pause").substr(3);
    const auto paused_at = Clock::now();
    REQUIRE(call(admin, "PAUSE q 1500ms") == "OK paused q");
    CHECK(call(admin, "DEQUEUE q").rfind("ERROR EMPTY queue 'q' is paused for ", 0) == 0);
    CHECK(call(admin, "PAUSE q 0").rfind("ERROR BADFORMAT PAUSE takes a duration of 1ms", 0) == 0);
    auto worker = tqd.socket(30'000);
    REQUIRE(worker.send("DEQUEUE q WAIT 20\n").ok());
    REQUIRE(tq::testing::stat_reaches(admin, "waiters", "1"));
    auto got = worker.read_line();
    REQUIRE(got.ok());
    CHECK(*got == "OK " + id + " after the pause");
    const auto waited = Clock::now() - paused_at;
    CHECK(waited >= std::chrono::milliseconds(1'400));
    CHECK(waited < std::chrono::seconds(15));
    CHECK(tq::testing::stat_reaches(admin, "paused", "0", "q"));
  }
}

}  // namespace limits_test
