// Cron expressions for schedules (SCHEDULE ... CRON): crontab(5) syntax with
// Vixie cron's day rule, in UTC unless the expression names a time zone
// (cronie's and Go cron's "CRON_TZ=Europe/Berlin 0 3 * * *"), never in the
// host's zone, so a schedule means the same thing on every host and across a
// restart. Parsing is strict; next_after() is calendar arithmetic on the
// zone's wall clock, with the zone's rules (the system's tzdata) only to
// turn wall-clock minutes into instants.
#pragma once

#include <bitset>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace date {
class time_zone;
}

namespace tq::engine {

// A cron expression, in UTC or a named zone: when a schedule fires.
class CronSpec {
 public:
  // Parses five fields "minute hour day-of-month month day-of-week",
  // separated by one or more spaces, or one shortcut: @yearly @annually
  // @monthly @weekly @daily @midnight @hourly; either may follow
  // "CRON_TZ=<IANA zone> ". On error returns nullopt and sets *error to one
  // line naming the field and what is wrong, e.g. "cron field 2 (hour) '25':
  // 25 is out of range 0-23". With `keep_unknown_zone` (replay: the log's
  // schedules must not be lost because this host's tzdata lacks a zone), a
  // zone not found still parses, zone_missing() is true and it never fires;
  // and the host's zone ("localtime"), which SCHEDULE refuses and older
  // tqds took, is read as they read it.
  static std::optional<CronSpec> parse(std::string_view text, std::string* error,
                                       bool keep_unknown_zone = false);

  // The first whole minute strictly after `after_ms` (Unix time in ms) that
  // the expression matches on its zone's clock, in Unix ms; INT64_MAX when
  // none ever comes (e.g. "0 0 30 2 *", February 30th: the calendar repeats
  // every 400 years, so that is as far as it looks). Where clocks go
  // forward, a minute they skip fires at the moment they jump (once for all
  // the skipped minutes); where they go back, a minute that comes twice
  // fires the first time only, unless the hour field starts with '*' (as
  // Vixie cron: "0 * * * *" stays hourly through the repeated hour).
  // Zone rules come from the system's tzdata files, which list changes up
  // to 2037: past that the last offset they give holds.
  int64_t next_after(int64_t after_ms) const;
  // The zone was not found (parse's keep_unknown_zone): it never fires.
  bool zone_missing() const { return zone_missing_; }

  // The expression as it was given, with runs of spaces made one space and
  // shortcuts kept as written (lower-cased), after "CRON_TZ=<zone> " when it
  // has one: what the log keeps, and what tells two schedules apart.
  const std::string& text() const { return text_; }
  // The same without the zone, and the zone ("" for UTC): for listings.
  std::string_view expression() const { return std::string_view(text_).substr(zone_prefix_); }
  std::string_view zone_name() const {
    return zone_prefix_ == 0 ? std::string_view()
                             : std::string_view(text_).substr(
                                   kZonePrefix.size(), zone_prefix_ - kZonePrefix.size() - 1);
  }

  static constexpr std::string_view kZonePrefix = "CRON_TZ=";
  // The longest expression parse() takes (the zone not counted), spaces
  // made one.
  static constexpr size_t kMaxExpressionBytes = 200;

 private:
  CronSpec() = default;
  bool parse_text(std::string_view text, std::string* error, bool keep_unknown_zone);
  bool parse_fields(std::string_view fields, std::string* error);
  bool day_matches(int day_of_month, int weekday) const;
  // next_after() on a clock that keeps UTC's calendar, with no zone.
  int64_t next_on_calendar(int64_t after_ms) const;

  std::string text_;
  size_t zone_prefix_ = 0;                 // "CRON_TZ=<zone> " at text_'s start: its length
  const date::time_zone* zone_ = nullptr;  // nullptr: UTC (or a missing zone)
  bool zone_missing_ = false;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_of_month_;  // bits 1-31
  std::bitset<13> months_;         // bits 1-12
  std::bitset<7> weekdays_;        // 0 is Sunday
  // A field that starts with '*' does not restrict the day on its own; see
  // day_matches().
  bool day_of_month_star_ = false;
  bool weekday_star_ = false;
  bool hour_star_ = false;  // both passes of a repeated hour fire
};

}  // namespace tq::engine
