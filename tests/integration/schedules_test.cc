// Schedules over TCP against a real tqd: a schedule puts its job when it
// comes due, and it survives a SIGKILL and a restart with its count.
#include <doctest/doctest.h>

#include <signal.h>

#include <string>

#include "tests/integration/line_call.h"
#include "tests/support/tqd_process.h"

using tq::testing::call;
using tq::testing::TqdOptions;
using tq::testing::TqdProcess;

TEST_SUITE("schedules") {
  TEST_CASE("EVERY 1s puts its job each second, and the schedule survives SIGKILL with its count") {
    TqdOptions options;
    options.dir = tq::testing::make_temp_dir();
    options.config_yaml = "wal:\n  fsync: always\n";
    {
      TqdProcess tqd(options);
      auto s = tqd.socket();
      REQUIRE(call(s, "CREATE q") == "OK created q");
      REQUIRE(s.send("SCHEDULE q tick 4 EVERY 1s PRIORITY 3\nping\n").ok());
      REQUIRE(*s.read_line() == "OK 1");
      const std::string line = *s.read_line();
      CHECK(line.rfind("tick next=", 0) == 0);
      CHECK(line.find(" fired=0 bytes=4 priority=3 every=1000ms") != std::string::npos);
      // Within about a second the first job is in (stat_reaches polls up to 5 s).
      REQUIRE(tq::testing::stat_reaches(s, "scheduled_total", "1", "q"));
      const std::string job = call(s, "DEQUEUE q");
      CHECK(job.rfind("OK ", 0) == 0);
      CHECK(job.substr(job.size() - 5) == " ping");
      REQUIRE(tq::testing::stat_reaches(s, "scheduled_total", "2", "q"));
      tqd.stop(SIGKILL);
    }
    TqdProcess tqd(options);
    auto s = tqd.socket();
    REQUIRE(s.send("SCHEDULE q\n").ok());
    REQUIRE(*s.read_line() == "OK 1");
    const std::string line = *s.read_line();
    CHECK(line.find("tick next=") == 0);
    CHECK(line.find(" fired=") != std::string::npos);
    CHECK(line.find(" fired=0 ") == std::string::npos);  // it kept its count
    // It goes on firing after the restart.
    REQUIRE(tq::testing::stat_reaches(s, "scheduled_total", "1", "q"));
    CHECK(call(s, "CANCEL q tick") == "OK cancelled tick");
    REQUIRE(s.send("SCHEDULE q\n").ok());
    CHECK(*s.read_line() == "OK 0");
  }
}
