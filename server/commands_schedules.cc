// Schedules: SCHEDULE (set one, or list them) and CANCEL.
#include "server/command_support.h"

namespace tq::server::cmd {

using protocol::ErrorCode;
using protocol::Request;

namespace {

// A schedule as SCHEDULES lists it: its figures, then the options its jobs
// get, then its timetable last (a cron expression holds spaces).
std::string describe(const engine::Schedule& s) {
  std::string text = "next=" + num(static_cast<uint64_t>(s.next_ms)) + " fired=" + num(s.fired) +
                     " bytes=" + num(s.payload.size());
  if (s.priority != 0) text += " priority=" + std::to_string(s.priority);
  if (s.ttl_ms > 0) text += " ttl=" + num(static_cast<uint64_t>(s.ttl_ms)) + "ms";
  if (s.max_attempts > 0) text += " attempts=" + num(s.max_attempts);
  if (!s.group.empty()) text += " group=" + s.group;
  if (s.cron) {
    if (!s.cron->zone_name().empty()) text += " tz=" + std::string(s.cron->zone_name());
    return text + " cron=" + std::string(s.cron->expression());
  }
  return text + " every=" + num(static_cast<uint64_t>(s.every_ms)) + "ms";
}

// Every SCHEDULE option, TZ too, so that the list an unknown one is told is
// whole (parse_job_options never sees a TZ: cmd_schedule takes it out).
constexpr const char* kScheduleOptions[] = {"PRIORITY", "TTL", "ATTEMPTS", "GROUP", "TZ"};

// A word that starts SCHEDULE's options.
bool is_option(std::string_view word) {
  for (const char* option : kScheduleOptions) {
    if (is_keyword(word, option)) return true;
  }
  return false;
}

// Whether `word` could be a cron field: digits, '*', '/', ',', '-', '?' and
// three-letter names (MON, JAN), so that a sixth field is told from a
// misspelt option or a stray word after a shortcut (FLAVOR, PRIORTY).
bool looks_like_cron_field(std::string_view word) {
  if (word.empty()) return false;
  size_t letters = 0;
  for (char c : word) {
    const bool letter = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    if (letter) {
      ++letters;
      continue;
    }
    if (letters != 0 && letters != 3) return false;
    letters = 0;
    if ((c < '0' || c > '9') && std::string_view("*/,-?").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return letters == 0 || letters == 3;
}

// CRON's fields were not five: an option among them (the first
// `fields_before` words are fields), or a sixth field (seconds, as Quartz,
// node-cron and BullMQ take them) where the options begin. Told as such,
// not as an unknown option or a field out of range.
void reply_wrong_field_count(CommandContext& ctx, const std::vector<std::string_view>& args,
                             size_t fields_before) {
  size_t fields = fields_before;
  for (size_t at = 4 + fields;
       at < args.size() && !is_option(args[at]) && looks_like_cron_field(args[at]); ++at) {
    ++fields;
  }
  reply_error(ctx, ErrorCode::kBadFormat,
              "CRON takes five fields (minute hour day-of-month month day-of-week), got " +
                  std::to_string(fields) + (fields > 5 ? ": a seconds field is not taken" : ""));
}

}  // namespace

namespace {

void list_schedules(CommandContext& ctx, std::string_view queue_name) {
  auto found = ctx.engine.queue_or_error(queue_name);
  if (!found.ok()) return reply_error(ctx, found.error());
  Lines lines;
  for (const auto& [name, s] : found.value()->schedules) lines.emplace_back(name, describe(s));
  reply_lines(ctx, lines);
}

}  // namespace

void cmd_schedule(CommandContext& ctx, const Request& req) {
  const auto& a = req.args;  // queue, name, bytes, EVERY d | CRON ..., options
  if (a.size() == 1) return list_schedules(ctx, a[0]);
  constexpr const char* kHow =
      "usage: SCHEDULE <queue> lists; SCHEDULE <queue> <name> <bytes> EVERY <duration> | CRON "
      "<minute hour day month weekday> (or CRON @daily...) [TZ <zone>], then the payload, sets "
      "one";
  if (a.size() < 5) return reply_error(ctx, ErrorCode::kBadFormat, kHow);
  engine::ScheduleSpec spec;
  spec.name = a[1];
  spec.payload = req.body;
  size_t options_from = 5;
  std::string cron;
  if (is_keyword(a[3], "EVERY")) {
    if (!parse_duration(ctx, a[4], "EVERY", &spec.every_ms)) return;
    if (spec.every_ms == 0) return reply_error(ctx, ErrorCode::kBadFormat, "EVERY must be above 0");
  } else if (is_keyword(a[3], "CRON")) {
    if (a[4].empty() || a[4][0] != '@') {
      if (a.size() < 9) {
        return reply_error(ctx, ErrorCode::kBadFormat,
                           "CRON takes five fields (minute hour day-of-month month "
                           "day-of-week) or a shortcut (@hourly, @daily, @weekly...)");
      }
      options_from = 9;
    }
    for (size_t i = 4; i < options_from; ++i) {
      if (is_keyword(a[i], "TZ")) {
        return reply_error(ctx, ErrorCode::kBadFormat, "TZ <zone> goes after CRON's fields");
      }
      if (is_option(a[i])) return reply_wrong_field_count(ctx, a, i - 4);
      // Five fields and a sixth: a shortcut (@daily) is one word, and what
      // follows it is an option, known or not.
      if (options_from == 9 && i + 1 == options_from && a.size() > options_from &&
          !is_option(a[options_from]) && looks_like_cron_field(a[options_from])) {
        return reply_wrong_field_count(ctx, a, 5);
      }
      if (i > 4) cron += ' ';
      cron += a[i];
    }
    spec.cron = cron;
  } else {
    return reply_error(ctx, ErrorCode::kBadFormat, kHow);
  }
  // TZ <zone> goes with CRON: the engine takes the zone as cronie writes
  // it, before the fields. The job options are the rest (kScheduleOptions).
  std::vector<std::string_view> options(a.begin() + static_cast<ptrdiff_t>(options_from), a.end());
  bool zoned = false;
  for (size_t i = 0; i < options.size();) {
    // The timing again, in the options: told as such, not as an unknown option.
    for (const char* timing : {"EVERY", "CRON"}) {
      if (!is_keyword(options[i], timing)) continue;
      if (is_keyword(a[3], timing)) return reply_given_twice(ctx, timing);
      return reply_error(ctx, ErrorCode::kBadFormat, "a schedule takes EVERY or CRON, not both");
    }
    if (!is_keyword(options[i], "TZ")) {
      i += 2;
      continue;
    }
    if (zoned) return reply_given_twice(ctx, "TZ");
    zoned = true;
    if (cron.empty()) {
      return reply_error(ctx, ErrorCode::kBadFormat,
                         "TZ goes with CRON; EVERY counts in Unix time, the same in every zone");
    }
    if (i + 1 >= options.size()) {
      return reply_error(ctx, ErrorCode::kBadFormat,
                         "TZ takes a time zone name, such as Europe/Berlin");
    }
    cron = std::string(engine::CronSpec::kZonePrefix) + std::string(options[i + 1]) + " " + cron;
    spec.cron = cron;
    options.erase(options.begin() + static_cast<ptrdiff_t>(i),
                  options.begin() + static_cast<ptrdiff_t>(i) + 2);
  }
  if (!parse_job_options(ctx, options, kScheduleOptions, "SCHEDULE", &spec.job)) return;
  auto made = ctx.engine.schedule(a[0], spec);
  if (!made.ok()) return reply_error(ctx, made.error());
  reply_lines(ctx, {{made.value()->name, describe(*made.value())}});
}

void cmd_cancel(CommandContext& ctx, const Request& req) {
  auto removed = ctx.engine.unschedule(req.args[0], req.args[1]);
  if (!removed.ok()) return reply_error(ctx, removed.error());
  reply_ok(ctx, "cancelled", req.args[1]);
}

}  // namespace tq::server::cmd
