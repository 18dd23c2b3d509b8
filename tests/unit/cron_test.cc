// Cron expressions: next_after() against concrete UTC times (checked with
// `date -u`), the day-of-month / day-of-week rule, calendar edges, parse
// errors word for word, and a minute-by-minute walk against std::chrono's
// calendar.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "server/engine/cron.h"

namespace cron_test {

using namespace tq::engine;

namespace {

constexpr int64_t kMsPerMinute = 60'000;

bool is_leap(int year) {
  return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
}

int days_in_month(int year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return kDays[month - 1] + (month == 2 && is_leap(year) ? 1 : 0);
}

// "2026-12-03 14:05" (UTC) in Unix ms. Days are counted the slow, obvious way
// so that the test shares no arithmetic with the code under test.
int64_t at(const char* when) {
  int year = 0, month = 0, day = 0, hour = 0, minute = 0;
  REQUIRE(std::sscanf(when, "%d-%d-%d %d:%d", &year, &month, &day, &hour, &minute) == 5);
  int64_t days = day - 1;
  for (int y = 1970; y < year; ++y) days += is_leap(y) ? 366 : 365;
  for (int m = 1; m < month; ++m) days += days_in_month(year, m);
  return ((days * 24 + hour) * 60 + minute) * kMsPerMinute;
}

// The reverse of at(), so that a failure reads as a date.
std::string show(int64_t ms) {
  if (ms == INT64_MAX) return "never";
  int64_t minutes = ms / kMsPerMinute;
  int64_t days = minutes / (24 * 60);
  int year = 1970;
  while (days >= (is_leap(year) ? 366 : 365)) days -= is_leap(year++) ? 366 : 365;
  int month = 1;
  while (days >= days_in_month(year, month)) days -= days_in_month(year, month++);
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02d-%02d %02d:%02d", year, month,
                static_cast<int>(days) + 1, static_cast<int>(minutes / 60 % 24),
                static_cast<int>(minutes % 60));
  std::string shown = text;
  if (ms % kMsPerMinute != 0) shown += " +" + std::to_string(ms % kMsPerMinute) + "ms";
  return shown;
}

CronSpec must_parse(const char* expression) {
  std::string error;
  std::optional<CronSpec> spec = CronSpec::parse(expression, &error);
  INFO(expression, ": ", error);
  REQUIRE(spec.has_value());
  return *spec;
}

std::string next(const char* expression, int64_t after_ms) {
  return show(must_parse(expression).next_after(after_ms));
}

std::string next(const char* expression, const char* after) {
  return next(expression, at(after));
}

std::string parse_error(const char* expression) {
  std::string error;
  CHECK_FALSE(CronSpec::parse(expression, &error).has_value());
  return error;
}

}  // namespace

TEST_SUITE("cron") {
  TEST_CASE("the test's clock agrees with date -u") {
    CHECK(at("1970-01-01 00:00") == 0);
    CHECK(at("2000-02-29 12:34") == 951'827'640'000);
    CHECK(at("2026-12-03 14:05") == 1'796'306'700'000);
    CHECK(at("2028-02-29 00:00") == 1'835'395'200'000);
    CHECK(at("2099-12-31 23:59") == 4'102'444'740'000);
    CHECK(show(1'796'306'700'000) == "2026-12-03 14:05");
  }

  TEST_CASE("every minute fires on the next whole minute") {
    CHECK(next("* * * * *", "2026-12-03 14:05") == "2026-12-03 14:06");
    CHECK(next("* * * * *", at("2026-12-03 14:05") + 30'000) == "2026-12-03 14:06");
    CHECK(next("* * * * *", at("2026-12-03 14:05") - 1) == "2026-12-03 14:05");
    CHECK(next("* * * * *", int64_t{0}) == "1970-01-01 00:01");
  }

  TEST_CASE("strictly after: a time exactly on a match gets the next one") {
    CHECK(next("30 14 * * *", "2026-12-03 14:30") == "2026-12-04 14:30");
    CHECK(next("30 14 * * *", at("2026-12-03 14:30") - 1) == "2026-12-03 14:30");
    CHECK(next("30 14 * * *", at("2026-12-03 14:30") + 59'999) == "2026-12-04 14:30");
  }

  TEST_CASE("*/15 fires on the quarter hours") {
    CHECK(next("*/15 * * * *", "2026-12-03 14:05") == "2026-12-03 14:15");
    CHECK(next("*/15 * * * *", "2026-12-03 14:45") == "2026-12-03 15:00");
    CHECK(next("*/15 * * * *", "2026-12-03 23:45") == "2026-12-04 00:00");
  }

  TEST_CASE("ranges with steps, and a/step running to the field's end") {
    CHECK(next("10-50/20 * * * *", "2026-12-03 14:05") == "2026-12-03 14:10");
    CHECK(next("10-50/20 * * * *", "2026-12-03 14:10") == "2026-12-03 14:30");
    CHECK(next("10-50/20 * * * *", "2026-12-03 14:50") == "2026-12-03 15:10");
    CHECK(next("5/20 * * * *", "2026-12-03 14:05") == "2026-12-03 14:25");
    CHECK(next("5/20 * * * *", "2026-12-03 14:45") == "2026-12-03 15:05");
    CHECK(next("0 9-17/4 * * *", "2026-12-03 14:05") == "2026-12-03 17:00");
    CHECK(next("0 9-17/4 * * *", "2026-12-03 17:00") == "2026-12-04 09:00");
    CHECK(next("0 */6 * * *", "2026-12-03 18:00") == "2026-12-04 00:00");
  }

  TEST_CASE("a step past the field's end keeps only the start") {
    CHECK(next("*/100 * * * *", "2026-12-03 14:05") == "2026-12-03 15:00");
    CHECK(next("7/2147483647 * * * *", "2026-12-03 14:05") == "2026-12-03 14:07");
  }

  TEST_CASE("lists mix values, ranges and steps") {
    CHECK(next("0,30 8,20 * * *", "2026-12-03 14:05") == "2026-12-03 20:00");
    CHECK(next("0,30 8,20 * * *", "2026-12-03 20:00") == "2026-12-03 20:30");
    CHECK(next("0,30 8,20 * * *", "2026-12-03 20:30") == "2026-12-04 08:00");
    CHECK(next("1,10-12,*/30 * * * *", "2026-12-03 14:05") == "2026-12-03 14:10");
    CHECK(next("1,10-12,*/30 * * * *", "2026-12-03 14:12") == "2026-12-03 14:30");
    CHECK(next("1,10-12,*/30 * * * *", "2026-12-03 14:30") == "2026-12-03 15:00");
  }

  TEST_CASE("month names, in any case and in ranges") {
    CHECK(next("0 9 * JAN,jul *", "2026-12-03 14:05") == "2027-01-01 09:00");
    CHECK(next("0 9 * JAN,jul *", "2027-01-31 09:00") == "2027-07-01 09:00");
    CHECK(next("0 0 1 Jun-AUG *", "2026-06-01 00:00") == "2026-07-01 00:00");
    CHECK(next("0 0 1 Jun-AUG *", "2026-08-01 00:00") == "2027-06-01 00:00");
  }

  TEST_CASE("day names: MON-FRI skips the weekend") {
    // 2026-12-03 is a Thursday.
    CHECK(next("0 9 * * MON-FRI", "2026-12-03 14:05") == "2026-12-04 09:00");
    CHECK(next("0 9 * * MON-FRI", "2026-12-04 09:00") == "2026-12-07 09:00");
    CHECK(next("0 9 * * sat,Sun", "2026-12-03 14:05") == "2026-12-05 09:00");
    CHECK(next("0 9 * * sat,Sun", "2026-12-06 09:00") == "2026-12-12 09:00");
  }

  TEST_CASE("7 is Sunday, like 0 and SUN") {
    for (const char* sunday : {"0 0 * * 7", "0 0 * * 0", "0 0 * * SUN"}) {
      CHECK(next(sunday, "2026-12-03 14:05") == "2026-12-06 00:00");
    }
    CHECK(next("0 0 * * 5-7", "2026-12-03 14:05") == "2026-12-04 00:00");
    CHECK(next("0 0 * * FRI-7", "2026-12-05 00:00") == "2026-12-06 00:00");
    CHECK(next("0 0 * * 5-7", "2026-12-06 00:00") == "2026-12-11 00:00");
  }

  TEST_CASE("a day-of-week step runs to Saturday, not on to 7") {
    // Monday, Wednesday and Friday; Sunday only by name or 0 or 7.
    CHECK(next("0 0 * * 1/2", "2026-12-06 00:00") == "2026-12-07 00:00");
    CHECK(next("0 0 * * 1/2", "2026-12-07 00:00") == "2026-12-09 00:00");
    CHECK(next("0 0 * * 1/2", "2026-12-11 00:00") == "2026-12-14 00:00");
    CHECK(next("0 0 * * 7/2", "2026-12-03 14:05") == "2026-12-06 00:00");
    CHECK(next("0 0 * * 7/2", "2026-12-06 00:00") == "2026-12-13 00:00");
  }

  TEST_CASE("both day fields restricted: a day matching either fires") {
    // 2026-06-01 is a Monday, and so are the 8th, 15th, 22nd and 29th.
    CHECK(next("0 0 1,15 * MON", "2026-06-01 00:00") == "2026-06-08 00:00");
    CHECK(next("0 0 1,15 * MON", "2026-06-08 00:00") == "2026-06-15 00:00");
    CHECK(next("0 0 1,15 * MON", "2026-06-29 00:00") == "2026-07-01 00:00");
    CHECK(next("0 0 1,15 * MON", "2026-07-01 00:00") == "2026-07-06 00:00");
    // 2026-12-13 is a Sunday.
    CHECK(next("0 0 13 * FRI", "2026-12-11 00:00") == "2026-12-13 00:00");
    CHECK(next("0 0 13 * FRI", "2026-12-13 00:00") == "2026-12-18 00:00");
  }

  TEST_CASE("a day field starting with * makes both fields apply") {
    CHECK(next("0 0 * * MON", "2026-06-01 00:00") == "2026-06-08 00:00");
    CHECK(next("0 0 1 * *", "2026-06-01 00:00") == "2026-07-01 00:00");
    // Odd days that are Mondays: "*/2" counts as a star, as in Vixie cron.
    CHECK(next("0 0 */2 * MON", "2026-06-01 00:00") == "2026-06-15 00:00");
    CHECK(next("0 0 */2 * MON", "2026-06-15 00:00") == "2026-06-29 00:00");
    CHECK(next("0 0 */2 * MON", "2026-06-29 00:00") == "2026-07-13 00:00");
    CHECK(next("0 0 1 * */1", "2026-06-01 00:00") == "2026-07-01 00:00");
  }

  TEST_CASE("shortcuts stand for their five fields") {
    // 2026-06-15 is a Monday.
    const char* after = "2026-06-15 12:00";
    CHECK(next("@yearly", after) == "2027-01-01 00:00");
    CHECK(next("@annually", after) == "2027-01-01 00:00");
    CHECK(next("@monthly", after) == "2026-07-01 00:00");
    CHECK(next("@weekly", after) == "2026-06-21 00:00");
    CHECK(next("@daily", after) == "2026-06-16 00:00");
    CHECK(next("@midnight", after) == "2026-06-16 00:00");
    CHECK(next("@hourly", after) == "2026-06-15 13:00");
    CHECK(next("@HOURLY", "2026-06-15 13:00") == "2026-06-15 14:00");
  }

  TEST_CASE("the 31st skips the months without one") {
    CHECK(next("0 0 31 * *", "2026-03-31 00:00") == "2026-05-31 00:00");
    CHECK(next("0 0 31 * *", "2026-05-31 00:00") == "2026-07-31 00:00");
    CHECK(next("0 0 31 * *", "2026-07-31 00:00") == "2026-08-31 00:00");
    CHECK(next("0 0 31 * *", "2026-08-31 00:00") == "2026-10-31 00:00");
    CHECK(next("0 0 31 * *", "2026-12-31 00:00") == "2027-01-31 00:00");
    CHECK(next("0 12 30 * *", "2027-01-30 12:00") == "2027-03-30 12:00");
  }

  TEST_CASE("February 29th fires only in leap years") {
    CHECK(next("0 0 29 2 *", "2025-03-01 00:00") == "2028-02-29 00:00");
    CHECK(next("0 0 29 2 *", "2027-02-28 23:59") == "2028-02-29 00:00");
    CHECK(next("0 0 29 2 *", "2028-02-29 00:00") == "2032-02-29 00:00");
    CHECK(next("0 0 29 2 *", "1999-03-01 00:00") == "2000-02-29 00:00");  // 400-year rule
    CHECK(next("0 0 29 * *", "2027-01-29 00:00") == "2027-03-29 00:00");
    CHECK(next("0 0 29 * *", "2028-01-29 00:00") == "2028-02-29 00:00");
  }

  TEST_CASE("the year rolls over") {
    CHECK(next("* * * * *", "2026-12-31 23:59") == "2027-01-01 00:00");
    CHECK(next("0 0 1 1 *", at("2026-12-31 23:59") + 59'999) == "2027-01-01 00:00");
    CHECK(next("59 23 31 12 *", "2026-12-31 23:59") == "2027-12-31 23:59");
    CHECK(next("0 0 1 JAN *", "2026-01-01 00:00") == "2027-01-01 00:00");
  }

  TEST_CASE("an expression that never matches gives INT64_MAX") {
    CHECK(must_parse("0 0 30 2 *").next_after(at("2026-12-03 14:05")) == INT64_MAX);
    CHECK(next("0 0 31 4,6,9,11 *", "2026-12-03 14:05") == "never");
    // Rare is not never: 2100 is no leap year, so after 2096 the next
    // February 29th is 8 years off; one on a Sunday, Tuesday, Thursday or
    // Saturday after 2032's comes 16 years later. A search of 5 years took
    // both for never, and a schedule stopped for good after a firing.
    CHECK(next("0 0 29 2 *", "2096-03-01 00:00") == "2104-02-29 00:00");
    CHECK(next("0 0 29 2 */2", "2032-02-29 00:00") == "2048-02-29 00:00");
    // Nothing fits in an int64_t of milliseconds past the end of time.
    CHECK(must_parse("* * * * *").next_after(INT64_MAX - 1) == INT64_MAX);
    // With a day of the week as well, February 30th is only one way in.
    CHECK(next("0 0 30 2 MON", "2026-12-03 14:05") == "2027-02-01 00:00");
  }

  TEST_CASE("text() keeps the expression with runs of spaces made one") {
    CHECK(must_parse("  */5   9-17 *  *   mon-FRI ").text() == "*/5 9-17 * * mon-FRI");
    CHECK(must_parse("0\t0 * * *").text() == "0 0 * * *");
    CHECK(must_parse("@Weekly").text() == "@weekly");
    CHECK(must_parse(" @annually ").text() == "@annually");
  }

  TEST_CASE("accepts every field's extremes") {
    // December's Sundays fire too (the OR rule); 2026-12-06 is the first.
    CHECK(next("59 23 31 12 7", "2026-01-01 00:00") == "2026-12-06 23:59");
    CHECK(next("0-59 0-23 1-31 1-12 0-7", "2026-12-03 14:05") == "2026-12-03 14:06");
  }

  TEST_CASE("rejects the wrong number of fields") {
    const std::string expected = " fields, expected 5 (minute hour day-of-month month day-of-week)";
    CHECK(parse_error("1 2 3 4") == "cron expression '1 2 3 4' has 4" + expected);
    CHECK(parse_error("1  2 3 4 5 6") == "cron expression '1 2 3 4 5 6' has 6" + expected);
    CHECK(parse_error("   ") == "cron expression '' has 0" + expected);
  }

  TEST_CASE("rejects values out of range") {
    CHECK(parse_error("0 25 * * *") == "cron field 2 (hour) '25': 25 is out of range 0-23");
    CHECK(parse_error("60 * * * *") == "cron field 1 (minute) '60': 60 is out of range 0-59");
    CHECK(parse_error("0 0 0 * *") == "cron field 3 (day-of-month) '0': 0 is out of range 1-31");
    CHECK(parse_error("0 0 32 * *") == "cron field 3 (day-of-month) '32': 32 is out of range 1-31");
    CHECK(parse_error("0 0 * 13 *") == "cron field 4 (month) '13': 13 is out of range 1-12");
    CHECK(parse_error("0 0 * * 1-3,8") ==
          "cron field 5 (day-of-week) '1-3,8': 8 is out of range 0-7");
    CHECK(parse_error("99999999999 * * * *") ==
          "cron field 1 (minute) '99999999999': 99999999999 is out of range 0-59");
  }

  TEST_CASE("rejects a range that runs backwards") {
    CHECK(parse_error("50-10 * * * *") ==
          "cron field 1 (minute) '50-10': range '50-10' runs backwards");
    CHECK(parse_error("0 0 * * FRI-MON") ==
          "cron field 5 (day-of-week) 'FRI-MON': range 'FRI-MON' runs backwards");
  }

  TEST_CASE("rejects a step of 0 and steps that are not numbers") {
    CHECK(parse_error("*/0 * * * *") == "cron field 1 (minute) '*/0': step must be at least 1");
    CHECK(parse_error("0 1-5/0 * * *") == "cron field 2 (hour) '1-5/0': step must be at least 1");
    CHECK(parse_error("*/x * * * *") == "cron field 1 (minute) '*/x': step 'x' is not a number");
    CHECK(parse_error("*/ * * * *") == "cron field 1 (minute) '*/': step '' is not a number");
    CHECK(parse_error("*/99999999999 * * * *") ==
          "cron field 1 (minute) '*/99999999999': step 99999999999 is too large");
  }

  TEST_CASE("rejects unknown names and names in the wrong field") {
    CHECK(parse_error("0 0 * FOO *") ==
          "cron field 4 (month) 'FOO': 'FOO' is not a number or month name");
    CHECK(parse_error("0 0 * * MONDAY") ==
          "cron field 5 (day-of-week) 'MONDAY': 'MONDAY' is not a number or day name");
    CHECK(parse_error("0 0 * * JAN") ==
          "cron field 5 (day-of-week) 'JAN': 'JAN' is not a number or day name");
    CHECK(parse_error("JAN * * * *") == "cron field 1 (minute) 'JAN': 'JAN' is not a number");
  }

  TEST_CASE("rejects empty list items") {
    CHECK(parse_error("1,,2 * * * *") == "cron field 1 (minute) '1,,2': empty item in the list");
    CHECK(parse_error("0 1, * * *") == "cron field 2 (hour) '1,': empty item in the list");
    CHECK(parse_error("0 0 ,1 * *") == "cron field 3 (day-of-month) ',1': empty item in the list");
  }

  TEST_CASE("rejects junk") {
    CHECK(parse_error("5x * * * *") == "cron field 1 (minute) '5x': '5x' is not a number");
    CHECK(parse_error("1-2-3 * * * *") == "cron field 1 (minute) '1-2-3': '2-3' is not a number");
    CHECK(parse_error("*5 * * * *") == "cron field 1 (minute) '*5': '*5' is not a number");
    CHECK(parse_error("+5 * * * *") == "cron field 1 (minute) '+5': '+5' is not a number");
    CHECK(parse_error("-5 * * * *") == "cron field 1 (minute) '-5': '-5' is missing a number");
    CHECK(parse_error("0 3- * * *") == "cron field 2 (hour) '3-': '3-' is missing a number");
  }

  TEST_CASE("rejects unknown shortcuts and a shortcut with fields") {
    const std::string known =
        " (expected @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)";
    CHECK(parse_error("@often") == "unknown cron shortcut '@often'" + known);
    CHECK(parse_error("@reboot") == "unknown cron shortcut '@reboot'" + known);
    CHECK(parse_error("@") == "unknown cron shortcut '@'" + known);
    CHECK(parse_error("@daily 5") == "cron shortcut '@daily' must stand alone");
  }

  TEST_CASE("a null error pointer is allowed") {
    CHECK_FALSE(CronSpec::parse("0 25 * * *", nullptr).has_value());
    CHECK(CronSpec::parse("@daily", nullptr).has_value());
  }

  // Europe/Berlin in 2026: clocks go forward at 01:00 UTC on March 29th (02:00
  // CET becomes 03:00 CEST) and back at 01:00 UTC on October 25th (03:00 CEST
  // becomes 02:00 CET). Times shown are UTC.
  TEST_CASE("CRON_TZ: the fields are read on the zone's clock, summer and winter") {
    CHECK(next("CRON_TZ=Europe/Berlin 0 3 * * *", "2026-12-03 14:05") == "2026-12-04 02:00");
    CHECK(next("CRON_TZ=Europe/Berlin 0 3 * * *", "2026-07-01 12:00") == "2026-07-02 01:00");
    CHECK(next("CRON_TZ=America/New_York 0 9 * * MON-FRI", "2026-12-03 14:05") ==
          "2026-12-04 14:00");
    CHECK(next("CRON_TZ=Asia/Kolkata 0 9 * * *", "2026-12-03 00:00") == "2026-12-03 03:30");
    CHECK(next("CRON_TZ=Asia/Tokyo @DAILY", "2026-12-03 14:05") == "2026-12-03 15:00");
    CHECK(next("CRON_TZ=UTC 0 3 * * *", "2026-12-03 14:05") == "2026-12-04 03:00");
  }

  TEST_CASE("CRON_TZ: a minute the clocks skip fires once, when they jump") {
    CHECK(next("CRON_TZ=Europe/Berlin 30 2 * * *", "2026-03-28 12:00") == "2026-03-29 01:00");
    CHECK(next("CRON_TZ=Europe/Berlin 30 2 * * *", "2026-03-29 01:00") == "2026-03-30 00:30");
    // Four skipped minutes, one firing.
    CHECK(next("CRON_TZ=Europe/Berlin */15 2 * * *", "2026-03-28 12:00") == "2026-03-29 01:00");
    CHECK(next("CRON_TZ=Europe/Berlin */15 2 * * *", "2026-03-29 01:00") == "2026-03-30 00:00");
    // Around the jump, every minute fires once: 00:59 UTC is 01:59 CET, and
    // the next, 01:00 UTC, is 03:00 CEST.
    CHECK(next("CRON_TZ=Europe/Berlin * * * * *", "2026-03-29 00:59") == "2026-03-29 01:00");
    CHECK(next("CRON_TZ=Europe/Berlin * * * * *", "2026-03-29 01:00") == "2026-03-29 01:01");
  }

  TEST_CASE("CRON_TZ: a minute that comes twice fires once - twice with an hour field of *") {
    CHECK(next("CRON_TZ=Europe/Berlin 30 2 * * *", "2026-10-24 12:00") == "2026-10-25 00:30");
    CHECK(next("CRON_TZ=Europe/Berlin 30 2 * * *", "2026-10-25 00:30") == "2026-10-26 01:30");
    CHECK(next("CRON_TZ=Europe/Berlin */20 2 * * *", "2026-10-25 00:40") == "2026-10-26 01:00");
    // From inside the second pass: its walls were shown once already.
    CHECK(next("CRON_TZ=Europe/Berlin 30 2 * * *", "2026-10-25 01:27") == "2026-10-26 01:30");
    // As Vixie cron: a job every hour runs through the repeated hour too.
    CHECK(next("CRON_TZ=Europe/Berlin 0 * * * *", "2026-10-24 23:30") == "2026-10-25 00:00");
    CHECK(next("CRON_TZ=Europe/Berlin 0 * * * *", "2026-10-25 00:00") == "2026-10-25 01:00");
    CHECK(next("CRON_TZ=Europe/Berlin 0 * * * *", "2026-10-25 01:00") == "2026-10-25 02:00");
    CHECK(next("CRON_TZ=Europe/Berlin */30 * * * *", "2026-10-25 00:45") == "2026-10-25 01:00");
    CHECK(next("CRON_TZ=Europe/Berlin */30 * * * *", "2026-10-25 01:15") == "2026-10-25 01:30");
  }

  TEST_CASE("CRON_TZ: southern summer, a 30-minute shift and a skipped day") {
    // Sydney: clocks go back at 16:00 UTC on April 4th, 2026 (03:00 AEDT
    // becomes 02:00 AEST), forward at 16:00 UTC on October 3rd.
    CHECK(next("CRON_TZ=Australia/Sydney 0 9 * * *", "2026-01-10 00:00") == "2026-01-10 22:00");
    CHECK(next("CRON_TZ=Australia/Sydney 0 9 * * *", "2026-07-10 00:00") == "2026-07-10 23:00");
    CHECK(next("CRON_TZ=Australia/Sydney 30 2 * * *", "2026-10-03 12:00") == "2026-10-03 16:00");
    // Lord Howe moves by half an hour (+11 in summer, +10:30 in winter).
    CHECK(next("CRON_TZ=Australia/Lord_Howe 0 12 * * *", "2026-01-10 00:00") == "2026-01-10 01:00");
    CHECK(next("CRON_TZ=Australia/Lord_Howe 0 12 * * *", "2026-07-10 00:00") == "2026-07-10 01:30");
    // Samoa skipped December 30th, 2011: a daily job fires at the jump.
    CHECK(next("CRON_TZ=Pacific/Apia 0 12 * * *", "2011-12-29 22:00") == "2011-12-30 10:00");
  }

  TEST_CASE("CRON_TZ: a zone missing on this host is kept, and never fires") {
    std::string error;
    CHECK_FALSE(CronSpec::parse("CRON_TZ=Mars/Olympus 0 3 * * *", &error).has_value());
    const std::optional<CronSpec> kept =
        CronSpec::parse("CRON_TZ=Mars/Olympus 0 3 * * *", &error, true);
    REQUIRE(kept.has_value());
    CHECK(kept->zone_missing());
    CHECK(kept->text() == "CRON_TZ=Mars/Olympus 0 3 * * *");
    CHECK(kept->next_after(at("2026-12-03 14:05")) == INT64_MAX);
    // A bad field is refused all the same.
    CHECK_FALSE(CronSpec::parse("CRON_TZ=Mars/Olympus 0 25 * * *", &error, true).has_value());
  }

  TEST_CASE("CRON_TZ: text keeps the zone, expression and zone_name split it") {
    const CronSpec spec = must_parse("CRON_TZ=Europe/Berlin   0 3  * * MON-FRI");
    CHECK(spec.text() == "CRON_TZ=Europe/Berlin 0 3 * * MON-FRI");
    CHECK(spec.expression() == "0 3 * * MON-FRI");
    CHECK(spec.zone_name() == "Europe/Berlin");
    const CronSpec utc = must_parse("0 3 * * *");
    CHECK(utc.expression() == "0 3 * * *");
    CHECK(utc.zone_name().empty());
    CHECK(must_parse("CRON_TZ=Asia/Tokyo @DAILY").text() == "CRON_TZ=Asia/Tokyo @daily");
    CHECK(must_parse("CRON_TZ=Asia/Tokyo @DAILY").expression() == "@daily");
  }

  TEST_CASE("CRON_TZ: an unknown or missing zone is refused") {
    CHECK(parse_error("CRON_TZ=Mars/Olympus 0 3 * * *") ==
          "unknown time zone 'Mars/Olympus' (an IANA name such as Europe/Berlin or "
          "America/New_York)");
    CHECK(parse_error("CRON_TZ= 0 3 * * *") == "CRON_TZ= names no time zone");
    CHECK(parse_error("CRON_TZ=localtime 0 3 * * *") ==
          "'localtime' is the host's zone, not a named one: name it (Europe/Berlin, "
          "America/New_York)");
    CHECK(parse_error("CRON_TZ=Europe/Berlin").find("has 0 fields") != std::string::npos);
  }

  TEST_CASE("agrees with a minute-by-minute walk through a leap-year winter") {
    struct When {
      int minute, hour, day, month, weekday;
    };
    struct Case {
      const char* expression;
      std::function<bool(const When&)> matches;
    };
    const Case cases[] = {
        {"* * * * *", [](const When&) { return true; }},
        {"*/15 9-17 * * MON-FRI",
         [](const When& w) {
           return w.minute % 15 == 0 && w.hour >= 9 && w.hour <= 17 && w.weekday >= 1 &&
                  w.weekday <= 5;
         }},
        {"0 0 1,15 * MON",
         [](const When& w) {
           return w.minute == 0 && w.hour == 0 && (w.day == 1 || w.day == 15 || w.weekday == 1);
         }},
        {"30 12 */2 * mon",
         [](const When& w) {
           return w.minute == 30 && w.hour == 12 && w.day % 2 == 1 && w.weekday == 1;
         }},
        {"5-10/2,50 */6 31 * *",
         [](const When& w) {
           return (w.minute == 5 || w.minute == 7 || w.minute == 9 || w.minute == 50) &&
                  w.hour % 6 == 0 && w.day == 31;
         }},
        {"0 22 * JAN-feb,DEC SUN,7",
         [](const When& w) {
           return w.minute == 0 && w.hour == 22 && w.month != 3 && w.weekday == 0;
         }},
        {"59 23 29 2 *",
         [](const When& w) {
           return w.minute == 59 && w.hour == 23 && w.day == 29 && w.month == 2;
         }},
        {"0 0 * * 1/2",
         [](const When& w) {
           return w.minute == 0 && w.hour == 0 &&
                  (w.weekday == 1 || w.weekday == 3 || w.weekday == 5);
         }},
    };
    const int64_t first = at("2027-12-01 00:00") / kMsPerMinute;
    const int64_t last = at("2028-03-15 00:00") / kMsPerMinute;
    for (const Case& c : cases) {
      const CronSpec spec = must_parse(c.expression);
      // expected[t - first]: the first matching minute after t, found walking
      // backwards; INT64_MAX where it lies past the end of the walk.
      std::vector<int64_t> expected(static_cast<size_t>(last - first + 1));
      int64_t upcoming = INT64_MAX;
      for (int64_t t = last; t >= first; --t) {
        expected[static_cast<size_t>(t - first)] = upcoming;
        using namespace std::chrono;
        const sys_days day{days{t / (24 * 60)}};
        const year_month_day date{day};
        const When when{static_cast<int>(t % 60), static_cast<int>(t / 60 % 24),
                        static_cast<int>(unsigned{date.day()}),
                        static_cast<int>(unsigned{date.month()}),
                        static_cast<int>(weekday{day}.c_encoding())};
        if (c.matches(when)) upcoming = t;
      }
      int mismatches = 0;
      std::string first_mismatch;
      // Every 7th minute (with a varying offset into it) reaches every
      // minute of the hour and every hour of the day.
      for (int64_t t = first; t <= last; t += 7) {
        const int64_t want = expected[static_cast<size_t>(t - first)];
        if (want == INT64_MAX) continue;
        const int64_t after_ms = t * kMsPerMinute + (t % 4) * 19'999;
        const int64_t got = spec.next_after(after_ms);
        if (got != want * kMsPerMinute && mismatches++ == 0) {
          first_mismatch = "after " + show(after_ms) + ": got " + show(got) + ", want " +
                           show(want * kMsPerMinute);
        }
      }
      INFO(std::string(c.expression), ": ", first_mismatch);
      CHECK(mismatches == 0);
    }
  }
}

}  // namespace cron_test
