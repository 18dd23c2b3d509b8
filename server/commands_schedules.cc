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
  if (s.cron) return text + " cron=" + s.cron->text();
  return text + " every=" + num(static_cast<uint64_t>(s.every_ms)) + "ms";
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
      "<minute hour day month weekday> (or CRON @daily...), then the payload, sets one";
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
      if (i > 4) cron += ' ';
      cron += a[i];
    }
    spec.cron = cron;
  } else {
    return reply_error(ctx, ErrorCode::kBadFormat, kHow);
  }
  static constexpr const char* kOptions[] = {"PRIORITY", "TTL", "ATTEMPTS", "GROUP"};
  const std::span<const std::string_view> args(a);
  if (!parse_job_options(ctx, args.subspan(options_from), kOptions, "SCHEDULE", &spec.job)) return;
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
