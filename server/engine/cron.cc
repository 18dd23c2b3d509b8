// Cron expressions: parsing crontab(5) fields into bit masks, and finding the
// next matching minute with civil-calendar arithmetic on the zone's clock.
#include "server/engine/cron.h"

#include <date/tz.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <span>
#include <stdexcept>
#include <utility>
#include <vector>

#include "server/engine/result.h"

namespace tq::engine {
namespace {

constexpr int64_t kMsPerMinute = 60'000;
constexpr int64_t kMinutesPerDay = 24 * 60;
// The Gregorian calendar repeats every 400 years (146,097 days): what matches
// nowhere in that span never matches. Anything shorter can stop a schedule
// for good: February 29th on a Monday comes every 28 years or more.
constexpr int64_t kSearchMinutes = 146'097 * kMinutesPerDay;

constexpr std::string_view kMonthNames[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                            "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr std::string_view kDayNames[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

struct FieldRules {
  std::string_view name;
  int min;
  int max;
  // Where '*' and "a/step" end. Only day-of-week differs from max: 7 is
  // accepted as Sunday for ranges like FRI-7, but "1/2" should mean Monday,
  // Wednesday and Friday, not Sunday too.
  int step_end;
  std::span<const std::string_view> names;  // names[i] stands for min + i
  std::string_view name_kind;
};

// What each shortcut stands for.
constexpr std::string_view kShortcuts[][2] = {{"@yearly", "0 0 1 1 *"},  {"@annually", "0 0 1 1 *"},
                                              {"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
                                              {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
                                              {"@hourly", "0 * * * *"}};

constexpr FieldRules kFields[] = {
    {"minute", 0, 59, 59, {}, ""},
    {"hour", 0, 23, 23, {}, ""},
    {"day-of-month", 1, 31, 31, {}, ""},
    {"month", 1, 12, 12, kMonthNames, "month"},
    {"day-of-week", 0, 7, 6, kDayNames, "day"},
};

bool is_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  return out;
}

// Words separated by runs of spaces (or tabs, as crontab files have them).
std::vector<std::string_view> split_words(std::string_view text) {
  std::vector<std::string_view> words;
  for (size_t start = 0, end = 0; start < text.size(); start = end + 1) {
    end = std::min(text.find_first_of(" \t", start), text.size());
    if (end > start) words.push_back(text.substr(start, end - start));
  }
  return words;
}

// Sets the message and returns false, so that a check and its message fit
// on one line.
bool fail(std::string* detail, std::string message) {
  *detail = std::move(message);
  return false;
}

// A number or a name; `item` is the whole list item, for the message.
bool parse_value(std::string_view word, std::string_view item, const FieldRules& rules, int* value,
                 std::string* detail) {
  if (word.empty()) return fail(detail, quoted(item) + " is missing a number");
  if (is_digits(word)) {
    auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), *value);
    if (ec == std::errc() && *value >= rules.min && *value <= rules.max) return true;
    return fail(detail, std::string(word) + " is out of range " + std::to_string(rules.min) + "-" +
                            std::to_string(rules.max));
  }
  auto name = std::find(rules.names.begin(), rules.names.end(), lower(word));
  if (name == rules.names.end()) {
    const std::string or_name =
        rules.names.empty() ? "" : " or " + std::string(rules.name_kind) + " name";
    return fail(detail, quoted(word) + " is not a number" + or_name);
  }
  *value = rules.min + static_cast<int>(name - rules.names.begin());
  return true;
}

// One item: "*", "n" or "a-b", each optionally followed by "/step".
bool parse_item(std::string_view item, const FieldRules& rules, uint64_t* mask,
                std::string* detail) {
  if (item.empty()) return fail(detail, "empty item in the list");
  const size_t slash = item.find('/');
  const std::string_view span = item.substr(0, slash);
  int first = rules.min;
  int last = rules.step_end;
  if (span != "*") {
    const size_t dash = span.find('-');
    if (!parse_value(span.substr(0, dash), item, rules, &first, detail)) return false;
    if (dash != std::string_view::npos) {
      if (!parse_value(span.substr(dash + 1), item, rules, &last, detail)) return false;
      if (last < first) return fail(detail, "range " + quoted(span) + " runs backwards");
    } else if (slash == std::string_view::npos) {
      last = first;  // a single value
    } else {
      // "a/step" runs to the field's end; "7/2" in day-of-week is Sunday alone.
      last = std::max(first, rules.step_end);
    }
  }
  int step = 1;
  if (slash != std::string_view::npos) {
    const std::string_view text = item.substr(slash + 1);
    if (!is_digits(text)) return fail(detail, "step " + quoted(text) + " is not a number");
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), step);
    if (ec != std::errc()) return fail(detail, "step " + std::string(text) + " is too large");
    if (step < 1) return fail(detail, "step must be at least 1");
  }
  // 64 bits, so a step as large as INT_MAX cannot overflow the loop.
  for (int64_t value = first; value <= last; value += step) *mask |= uint64_t{1} << value;
  return true;
}

bool parse_field(std::string_view field, const FieldRules& rules, uint64_t* mask,
                 std::string* detail) {
  for (size_t start = 0;;) {
    const size_t comma = field.find(',', start);
    if (!parse_item(field.substr(start, comma - start), rules, mask, detail)) return false;
    if (comma == std::string_view::npos) return true;
    start = comma + 1;
  }
}

struct Civil {
  int64_t year;
  int month;  // 1-12
  int day;    // 1-31
};

// Howard Hinnant's days_from_civil and civil_from_days
// (https://howardhinnant.github.io/date_algorithms.html): years counted from
// March, so the leap day falls at the end and each 400-year era is alike.
int64_t days_from_civil(int64_t year, int month, int day) {
  year -= month <= 2 ? 1 : 0;
  const int64_t era = (year >= 0 ? year : year - 399) / 400;
  const int64_t year_of_era = year - era * 400;
  const int64_t day_of_year = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
  const int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + day_of_era - 719468;
}

Civil civil_from_days(int64_t days) {
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const int64_t day_of_era = days - era * 146097;
  const int64_t year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  const int64_t day_of_year =
      day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const int64_t month_from_march = (5 * day_of_year + 2) / 153;
  const int day = static_cast<int>(day_of_year - (153 * month_from_march + 2) / 5 + 1);
  const int month =
      static_cast<int>(month_from_march < 10 ? month_from_march + 3 : month_from_march - 9);
  return {year_of_era + era * 400 + (month <= 2 ? 1 : 0), month, day};
}

int64_t floor_div(int64_t a, int64_t b) {
  return a / b - (a % b < 0 ? 1 : 0);
}

int weekday_of(int64_t days) {  // 0 is Sunday; day 0, 1970-01-01, was a Thursday
  return static_cast<int>((days % 7 + 7 + 4) % 7);
}

}  // namespace

std::optional<CronSpec> CronSpec::parse(std::string_view text, std::string* error,
                                        bool keep_unknown_zone) {
  std::string ignored;
  CronSpec spec;
  if (!spec.parse_text(text, error != nullptr ? error : &ignored, keep_unknown_zone)) {
    return std::nullopt;
  }
  return spec;
}

bool CronSpec::parse_text(std::string_view text, std::string* error, bool keep_unknown_zone) {
  std::vector<std::string_view> words = split_words(text);
  if (!words.empty() && words[0].starts_with(kZonePrefix)) {
    const std::string_view name = words[0].substr(kZonePrefix.size());
    if (name.empty()) return fail(error, "CRON_TZ= names no time zone");
    // tzdata's "localtime" is a link to the host's own zone: a schedule
    // would change meaning with the host. A tqd from before this check
    // took it, so replay (keep_unknown_zone) reads it as that tqd did.
    if ((name == "localtime" || name == "posixrules") && !keep_unknown_zone) {
      return fail(error, quoted(name) +
                             " is the host's zone, not a named one: name it "
                             "(Europe/Berlin, America/New_York)");
    }
    try {
      zone_ = date::locate_zone(name);
    } catch (const std::exception&) {
      if (!keep_unknown_zone) {
        return fail(error, "unknown time zone " + quoted(name) +
                               " (an IANA name such as Europe/Berlin or America/New_York)");
      }
      zone_missing_ = true;
    }
    // The name as asked, not as the database keeps it ("US/Eastern" may be
    // a link): what was asked is what the log and a listing show.
    text_ = std::string(words[0]) + " ";
    zone_prefix_ = text_.size();
    words.erase(words.begin());
  }
  std::string joined;
  for (std::string_view word : words) joined += (joined.empty() ? "" : " ") + std::string(word);
  if (joined.size() > kMaxExpressionBytes) {
    return fail(error, "a cron expression is at most " + std::to_string(kMaxExpressionBytes) +
                           " characters");
  }
  if (words.empty() || !words[0].starts_with('@')) {
    text_ += joined;
    return parse_fields(joined, error);
  }
  if (words.size() > 1)
    return fail(error, "cron shortcut " + quoted(words[0]) + " must stand alone");
  text_ += lower(words[0]);
  for (const auto& [name, fields] : kShortcuts) {
    if (name == expression()) return parse_fields(fields, error);
  }
  return fail(
      error, "unknown cron shortcut " + quoted(words[0]) +
                 " (expected @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)");
}

bool CronSpec::parse_fields(std::string_view fields, std::string* error) {
  const std::vector<std::string_view> words = split_words(fields);
  if (words.size() != std::size(kFields)) {
    return fail(error, "cron expression " + quoted(fields) + " has " +
                           std::to_string(words.size()) +
                           " fields, expected 5 (minute hour day-of-month month day-of-week)");
  }
  uint64_t masks[std::size(kFields)] = {};
  for (size_t i = 0; i < words.size(); ++i) {
    std::string detail;
    if (!parse_field(words[i], kFields[i], &masks[i], &detail)) {
      return fail(error, "cron field " + std::to_string(i + 1) + " (" +
                             std::string(kFields[i].name) + ") " + quoted(words[i]) + ": " +
                             detail);
    }
  }
  minutes_ = std::bitset<60>(masks[0]);
  hours_ = std::bitset<24>(masks[1]);
  days_of_month_ = std::bitset<32>(masks[2]);
  months_ = std::bitset<13>(masks[3]);
  weekdays_ = std::bitset<7>(masks[4] | masks[4] >> 7);  // 7 is Sunday too
  day_of_month_star_ = words[2].starts_with('*');
  weekday_star_ = words[4].starts_with('*');
  hour_star_ = words[1].starts_with('*');
  return true;
}

// crontab(5): when both day fields restrict, a day matching either one fires
// ("0 0 1,15 * MON" runs on the 1st, the 15th and every Monday). Vixie cron
// judges "restricts" by the first character, so "*/2" counts as a star and
// the two fields must then both match.
bool CronSpec::day_matches(int day_of_month, int weekday) const {
  const bool by_date = days_of_month_[static_cast<size_t>(day_of_month)];
  const bool by_weekday = weekdays_[static_cast<size_t>(weekday)];
  if (day_of_month_star_ || weekday_star_) return by_date && by_weekday;
  return by_date || by_weekday;
}

namespace {

// An instant of date/tz's in Unix ms; INT64_MAX and INT64_MIN for "never"
// and "always" (a zone's last period ends at the largest time point there
// is, its first begins at the smallest).
int64_t unix_ms(date::sys_seconds at) {
  const int64_t seconds = at.time_since_epoch().count();
  if (seconds >= INT64_MAX / 1000) return INT64_MAX;
  return seconds <= INT64_MIN / 1000 ? INT64_MIN : seconds * 1000;
}

int64_t offset_ms(const date::sys_info& period) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(period.offset).count();
}

date::sys_info period_at(const date::time_zone& zone, int64_t unix_ms) {
  using std::chrono::milliseconds;
  return zone.get_info(date::sys_time<milliseconds>(milliseconds(unix_ms)));
}

}  // namespace

int64_t CronSpec::next_after(int64_t after_ms) const {
  if (zone_missing_) return INT64_MAX;
  if (zone_ == nullptr) return next_on_calendar(after_ms);
  // Walk the zone's periods (spans of one UTC offset) from `after_ms`: in
  // each, wall-clock time is the instant plus the offset, so the calendar
  // search finds the next match there. A match past the period's end is
  // looked for again in the next period, unless the clocks jumped over it.
  int64_t after = after_ms;
  int64_t wall_floor = INT64_MIN;  // after clocks went back: walls that fired already
  if (!hour_star_) {
    // `after_ms` may be in the second pass of a repeated hour already.
    const date::sys_info period = period_at(*zone_, after + 1);
    const int64_t begin = unix_ms(period.begin);
    if (begin != INT64_MIN) {
      const int64_t before = offset_ms(period_at(*zone_, begin - 1));
      if (before > offset_ms(period)) wall_floor = begin + before - 1;
    }
  }
  for (int pass = 0; pass < 1'000; ++pass) {
    const date::sys_info period = period_at(*zone_, after + 1);
    const int64_t offset = offset_ms(period);
    const int64_t end = unix_ms(period.end);
    const int64_t wall = next_on_calendar(std::max(after + offset, wall_floor));
    if (wall == INT64_MAX) return INT64_MAX;
    const int64_t at = wall - offset;
    if (at < end) return at;
    const int64_t next_offset = offset_ms(period_at(*zone_, end));
    // Between end + offset and end + next_offset no clock showed: a minute
    // there fires when the clocks jumped.
    if (wall < end + next_offset) return end;
    // Clocks went back: the next period shows walls this one showed. They
    // fire again only for an hour field that starts with '*'.
    if (next_offset < offset && !hour_star_) wall_floor = end + offset - 1;
    after = end - 1;
  }
  return INT64_MAX;
}

int64_t CronSpec::next_on_calendar(int64_t after_ms) const {
  const int64_t after_minute = floor_div(after_ms, kMsPerMinute);
  // The cap keeps minute * kMsPerMinute from overflowing near INT64_MAX.
  const int64_t last_minute = std::min(after_minute + kSearchMinutes, INT64_MAX / kMsPerMinute);
  int64_t minute = after_minute + 1;
  // Each miss skips to the start of the next month, day, hour or minute.
  while (minute <= last_minute) {
    const int64_t day = floor_div(minute, kMinutesPerDay);
    const Civil date = civil_from_days(day);
    const int64_t minute_of_day = minute - day * kMinutesPerDay;
    const int64_t hour = minute_of_day / 60;
    if (!months_[static_cast<size_t>(date.month)]) {
      const int64_t next_month =
          days_from_civil(date.year + date.month / 12, date.month % 12 + 1, 1);
      minute = next_month * kMinutesPerDay;
    } else if (!day_matches(date.day, weekday_of(day))) {
      minute = (day + 1) * kMinutesPerDay;
    } else if (!hours_[static_cast<size_t>(hour)]) {
      minute = day * kMinutesPerDay + (hour + 1) * 60;
    } else if (!minutes_[static_cast<size_t>(minute_of_day % 60)]) {
      ++minute;
    } else {
      return minute * kMsPerMinute;
    }
  }
  return INT64_MAX;
}

}  // namespace tq::engine
