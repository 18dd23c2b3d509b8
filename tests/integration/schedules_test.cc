// Schedules over TCP against a real tqd: a schedule puts its job when it
// comes due, and it survives a SIGKILL and a restart with its count.
#include <doctest/doctest.h>

#include <signal.h>

#include <string>

#include "tests/integration/line_call.h"
#include "tests/support/tqd_process.h"

namespace schedules_test {

using tq::testing::call;
using tq::testing::TqdOptions;
using tq::testing::TqdProcess;

namespace {

// The code of the ERROR line read next.
std::string read_error_code(tq::client::LineSocket& s) {
  auto line = s.read_line();
  REQUIRE(line.ok());
  REQUIRE(line->rfind("ERROR ", 0) == 0);
  return line->substr(6, line->find(' ', 6) - 6);
}

}  // namespace

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

  TEST_CASE("CRON ... TZ: a schedule on a zone's clock, listed with tz=, kept across a restart") {
    TqdOptions options;
    options.dir = tq::testing::make_temp_dir();
    std::string listed;
    {
      TqdProcess tqd(options);
      auto s = tqd.socket();
      REQUIRE(call(s, "CREATE q") == "OK created q");
      // TZ among the job options, in any place. (29 February only: it must
      // not fire between the listings.)
      REQUIRE(
          s.send("SCHEDULE q nightly 6 CRON 0 3 29 2 * TTL 1h TZ Europe/Berlin\nreport\n").ok());
      REQUIRE(*s.read_line() == "OK 1");
      listed = *s.read_line();
      CHECK(listed.rfind("nightly next=", 0) == 0);
      CHECK(listed.find(" ttl=3600000ms tz=Europe/Berlin cron=0 3 29 2 *") != std::string::npos);
      // 03:00 in Berlin is 01:00 or 02:00 UTC: a whole hour, never 03:00 UTC.
      const int64_t next = std::stoll(listed.substr(listed.find("next=") + 5));
      CHECK(next % 3'600'000 == 0);
      CHECK((next / 3'600'000 % 24 == 1 || next / 3'600'000 % 24 == 2));

      REQUIRE(s.send("SCHEDULE q bad 1 CRON 0 3 * * * TZ Mars/Olympus\nx\n").ok());
      CHECK(*s.read_line() ==
            "ERROR BADFORMAT unknown time zone 'Mars/Olympus' (an IANA name such as "
            "Europe/Berlin or America/New_York)");
      REQUIRE(s.send("SCHEDULE q bad 1 EVERY 1h TZ Europe/Berlin\nx\n").ok());
      CHECK(read_error_code(s) == "BADFORMAT");
      REQUIRE(s.send("SCHEDULE q bad 1 CRON @daily TZ\nx\n").ok());
      CHECK(read_error_code(s) == "BADFORMAT");
      CHECK(call(s, "SCHEDULE q bad 1 CRON 0 3 * * * TZ Europe/Berlin TZ UTC\nx") ==
            "ERROR BADFORMAT TZ given twice");
      CHECK(call(s, "SCHEDULE q bad 1 CRON 0 TZ Europe/Berlin 3 * *\nx") ==
            "ERROR BADFORMAT TZ <zone> goes after CRON's fields");
      // Six fields (seconds first, as Quartz and BullMQ take them), or an
      // option where a field should be: told as a count of fields, not as
      // an unknown option '*' or '1h'.
      CHECK(call(s, "SCHEDULE q bad 1 CRON 0 0 3 * * * TTL 1h\nx") ==
            "ERROR BADFORMAT CRON takes five fields (minute hour day-of-month month "
            "day-of-week), got 6: a seconds field is not taken");
      CHECK(call(s, "SCHEDULE q bad 1 CRON 0 3 * * TTL 1h\nx") ==
            "ERROR BADFORMAT CRON takes five fields (minute hour day-of-month month "
            "day-of-week), got 4");
      CHECK(call(s, "SCHEDULE q bad 1 CRON 0 0 3 * * MON-FRI\nx") ==
            "ERROR BADFORMAT CRON takes five fields (minute hour day-of-month month "
            "day-of-week), got 6: a seconds field is not taken");
      // A word that is no field after five of them, or after a shortcut, is
      // an option misspelt: told as that.
      CHECK(call(s, "SCHEDULE q bad 1 CRON 0 3 * * * PRIORTY 5\nx") ==
            "ERROR BADFORMAT unknown SCHEDULE option 'PRIORTY'; options: PRIORITY, TTL, "
            "ATTEMPTS, GROUP, TZ");
      CHECK(call(s, "SCHEDULE q bad 1 CRON @daily FLAVOR mint\nx") ==
            "ERROR BADFORMAT unknown SCHEDULE option 'FLAVOR'; options: PRIORITY, TTL, "
            "ATTEMPTS, GROUP, TZ");
      CHECK(tqd.stop(SIGKILL) == 128 + SIGKILL);
    }
    TqdProcess tqd(options);
    auto s = tqd.socket();
    REQUIRE(s.send("SCHEDULE q\n").ok());
    REQUIRE(*s.read_line() == "OK 1");
    CHECK(*s.read_line() == listed);
    tq::testing::remove_tree(options.dir);
  }
}

}  // namespace schedules_test
