// Workers ending or extending a delivery: ACK, NACK, FAIL, TOUCH, and the
// check that keeps a worker whose delivery ended from finishing the one
// another worker holds now.
#include <algorithm>
#include <string>
#include <vector>

#include "server/command_support.h"

namespace tq::server {

using protocol::ErrorCode;
using protocol::Request;

namespace cmd {

namespace {

// Why this connection may not finish `id`, when its own delivery of the job
// was superseded: it ended (the lease ran out, a NACK or a FAIL, its own or
// another connection's, or a KICK) and the job is leased again, as a later
// attempt, to someone else (LeaseBook). Nothing when it may.
std::optional<std::string> superseded(const CommandContext& ctx, uint64_t id) {
  if (ctx.leases == nullptr) return std::nullopt;
  const std::optional<uint64_t> mine = ctx.leases->delivery_of(id);
  if (!mine) return std::nullopt;
  const engine::Job* job = ctx.engine.find_job(id);
  if (job == nullptr || job->state != engine::JobState::kLeased || job->delivery() == *mine) {
    return std::nullopt;
  }
  return "job " + num(id) + " was delivered again (attempt " + num(job->attempts) +
         ") after your delivery of it ended; the worker holding it now finishes it";
}

// Replies NOTLEASED and returns true when superseded() says no.
bool refuse_superseded(CommandContext& ctx, uint64_t id) {
  auto why = superseded(ctx, id);
  if (why) reply_error(ctx, ErrorCode::kNotLeased, *why);
  return why.has_value();
}

void forget_lease(CommandContext& ctx, uint64_t id) {
  if (ctx.leases != nullptr) ctx.leases->forget(id);
}

void reply_acked(CommandContext& ctx, uint64_t n) {
  ctx.out += "OK acked ";
  protocol::append_number(ctx.out, n);
  ctx.out += '\n';
}

// One job, the form nearly every worker sends: no list of ids to build.
void ack_one(CommandContext& ctx, std::string_view id_text, std::optional<std::string_view> queue) {
  uint64_t id = 0;
  if (!parse_id(ctx, id_text, &id)) return;
  // The queue first: a wrong one is the answer whoever holds the job.
  if (queue) {
    if (auto in_queue = ctx.engine.check_ack_queue(id, *queue); !in_queue.ok()) {
      return reply_error(ctx, in_queue.error());
    }
  }
  if (refuse_superseded(ctx, id)) return;
  auto acked = ctx.engine.ack(id);  // its queue, when named, was checked above
  if (!acked.ok()) return reply_error(ctx, acked.error());
  forget_lease(ctx, id);
  reply_acked(ctx, id);
}

}  // namespace

void cmd_ack(CommandContext& ctx, const Request& req) {
  // ACK <id>..., or ACK <queue> <id> as the original worker sends it. Queue
  // names are never all digits, so the two forms cannot be confused (and
  // 'ACK 0 2' is a bad id, not a queue named 0).
  if (req.args.size() == 2 && !all_digits(req.args[0])) {
    return ack_one(ctx, req.args[1], req.args[0]);
  }
  if (req.args.size() == 1) return ack_one(ctx, req.args[0], std::nullopt);
  if (!all_digits(req.args[0])) {
    // A queue name and several ids is neither form: say what both are.
    std::string msg = "'";
    protocol::append_escaped(msg, req.args[0], 32);
    msg += "' is not a job id; ACK takes ACK <id>... or ACK <queue> <id>";
    msg += " (one id after a queue name)";
    return reply_error(ctx, ErrorCode::kBadFormat, msg);
  }
  if (req.args.size() > ctx.limits->max_count) {
    return reply_error(ctx, ErrorCode::kBadFormat,
                       "ACK takes at most " + num(ctx.limits->max_count) +
                           " ids (limits.max_batch), got " + num(req.args.size()) +
                           "; none was acked");
  }
  std::vector<uint64_t> ids;
  for (std::string_view text : req.args) {
    uint64_t id = 0;
    if (!parse_id(ctx, text, &id)) return;
    ids.push_back(id);
  }
  // An id given twice is acked once, and counted once: "ACK 5 5" is not
  // "acked 1 of 2", an error for a job that was acked.
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  size_t done = 0;
  std::string failures;
  ErrorCode code = ErrorCode::kNotLeased;
  for (uint64_t id : ids) {
    if (auto why = superseded(ctx, id)) {
      if (failures.size() < 400) failures += "; " + *why;
      continue;
    }
    auto acked = ctx.engine.ack(id);
    if (acked.ok()) {
      forget_lease(ctx, id);
      ++done;
      continue;
    }
    if (acked.error().code == engine::Errc::kNotFound) code = ErrorCode::kNotFound;
    if (failures.size() < 400) failures += "; " + acked.error().message;
  }
  // One id, however often given: the one-id reply, which names it.
  if (done == ids.size()) return reply_acked(ctx, ids.size() == 1 ? ids.front() : done);
  reply_error(ctx, code, "acked " + num(done) + " of " + num(ids.size()) + failures);
}

void cmd_nack(CommandContext& ctx, const Request& req) {
  uint64_t id = 0;
  if (!parse_id(ctx, req.args[0], &id)) return;
  std::optional<int64_t> delay;
  std::optional<int32_t> priority;
  const auto& a = req.args;
  for (size_t i = 1; i < a.size(); i += 2) {
    const bool is_delay = is_keyword(a[i], "DELAY");
    const bool is_priority = is_keyword(a[i], "PRIORITY");
    if (!is_delay && !is_priority) {
      std::string msg = "unknown NACK option '";
      protocol::append_escaped(msg, a[i], 32);
      msg += "'; options: DELAY, PRIORITY";
      return reply_error(ctx, ErrorCode::kBadFormat, msg);
    }
    if (i + 1 >= a.size()) {
      return reply_error(ctx, ErrorCode::kBadFormat,
                         "option " + std::string(a[i]) + " needs a value");
    }
    if (is_delay ? delay.has_value() : priority.has_value()) {
      return reply_given_twice(ctx, is_delay ? "DELAY" : "PRIORITY");
    }
    if (is_delay) {
      int64_t ms = 0;
      if (!parse_duration(ctx, a[i + 1], "DELAY", &ms)) return;
      delay = ms;
    } else {
      int32_t p = 0;
      if (!parse_priority(ctx, a[i + 1], &p)) return;
      priority = p;
    }
  }
  if (refuse_superseded(ctx, id)) return;
  auto outcome = ctx.engine.nack(id, delay, priority);
  if (!outcome.ok()) return reply_error(ctx, outcome.error());
  // Not forgotten: the job goes on, and once it is delivered again this
  // connection's late ACK, NACK, FAIL or TOUCH must be refused (the book
  // drops the entry when the job is gone, LeaseBook::prune).
  const engine::Requeue where = outcome.value();
  reply_ok(ctx,
           where == engine::Requeue::kDead      ? "dead"
           : where == engine::Requeue::kExpired ? "expired"
                                                : "nacked",
           num(id));
}

void cmd_fail(CommandContext& ctx, const Request& req) {
  uint64_t id = 0;
  if (!parse_id(ctx, req.args[0], &id)) return;
  if (refuse_superseded(ctx, id)) return;
  auto failed = ctx.engine.fail(id, req.args[1].substr(0, 1000));
  if (!failed.ok()) return reply_error(ctx, failed.error());
  // Not forgotten, as after a NACK: a KICK or a dead_letter_queue delivers
  // the job again.
  reply_ok(ctx, "dead", num(id));
}

void cmd_touch(CommandContext& ctx, const Request& req) {
  uint64_t id = 0;
  if (!parse_id(ctx, req.args[0], &id)) return;
  std::optional<int64_t> extend;
  if (req.args.size() == 2) {
    int64_t ms = 0;
    if (!parse_duration(ctx, req.args[1], "TOUCH", &ms)) return;
    if (ms == 0) return reply_error(ctx, ErrorCode::kBadFormat, "TOUCH needs a duration above 0");
    extend = ms;
  }
  if (refuse_superseded(ctx, id)) return;
  ctx.wrote_only_leases = true;  // the new end's record, as a DEQUEUE's lease
  auto left_ms = ctx.engine.touch(id, extend);
  if (!left_ms.ok()) return reply_error(ctx, left_ms.error());
  reply_ok(ctx, "touched", num(id) + " " + num(static_cast<uint64_t>(left_ms.value())));
}

}  // namespace cmd
}  // namespace tq::server
