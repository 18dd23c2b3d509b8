// Cron expressions for schedules (SCHEDULE ... CRON): crontab(5) syntax with
// Vixie cron's day rule, always in UTC so a schedule means the same thing on
// every host and across a restart. Parsing is strict; next_after() is plain
// calendar arithmetic with no time zone calls.
#pragma once

#include <bitset>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tq::engine {

// A cron expression, in UTC: when a schedule (SCHEDULE ... CRON) fires.
class CronSpec {
 public:
  // Parses five fields "minute hour day-of-month month day-of-week",
  // separated by one or more spaces, or one shortcut: @yearly @annually
  // @monthly @weekly @daily @midnight @hourly. On error returns nullopt and
  // sets *error to one line naming the field and what is wrong, e.g.
  // "cron field 2 (hour) '25': 25 is out of range 0-23".
  static std::optional<CronSpec> parse(std::string_view text, std::string* error);

  // The first whole minute strictly after `after_ms` (Unix time in ms, UTC)
  // that the expression matches, in Unix ms; INT64_MAX when none ever comes
  // (e.g. "0 0 30 2 *", February 30th: the calendar repeats every 400
  // years, so that is as far as it looks).
  int64_t next_after(int64_t after_ms) const;

  // The expression as it was given, with runs of spaces made one space and
  // shortcuts kept as written (lower-cased): for listings and the log.
  const std::string& text() const { return text_; }

 private:
  CronSpec() = default;
  bool parse_text(std::string_view text, std::string* error);
  bool parse_fields(std::string_view fields, std::string* error);
  bool day_matches(int day_of_month, int weekday) const;

  std::string text_;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_of_month_;  // bits 1-31
  std::bitset<13> months_;         // bits 1-12
  std::bitset<7> weekdays_;        // 0 is Sunday
  // A field that starts with '*' does not restrict the day on its own; see
  // day_matches().
  bool day_of_month_star_ = false;
  bool weekday_star_ = false;
};

}  // namespace tq::engine
