// Workers ending or extending a delivery: ACK, NACK, FAIL, TOUCH, and the
// check that keeps a worker whose delivery ended from finishing the one
// another worker holds now.
//
// A lease belongs to the job, not the connection, so any connection may end
// a leased job's delivery. A worker tells the server which delivery it holds
// by its lease token (`<id>@<lease>`, JobRef): refused, on any connection,
// unless that is the job's delivery now. A plain id carries no such proof,
// and only the connection's own LeaseBook can refuse it: when this very
// connection was handed an earlier delivery. A job that is not leased at all
// is left to the engine, whose NOTFOUND or NOTLEASED says what became of it.
#include <algorithm>
#include <span>
#include <string>
#include <vector>

#include "server/command_support.h"

namespace tq::server {

using protocol::ErrorCode;
using protocol::Request;

namespace cmd {

namespace {

// Why the sender may not end `ref`'s delivery: the job is leased in another
// delivery than the sender's, the one its token names or, without a token,
// the one this connection was handed. Nothing when it may.
std::optional<std::string> delivery_ended(const CommandContext& ctx, const JobRef& ref) {
  std::optional<uint64_t> mine = ref.lease;
  if (!mine && ctx.leases != nullptr) mine = ctx.leases->delivery_of(ref.id);
  if (!mine) return std::nullopt;
  const engine::Job* job = ctx.engine.find_job(ref.id);
  if (job == nullptr || job->state != engine::JobState::kLeased || job->delivery() == *mine) {
    return std::nullopt;
  }
  // A token is the job's KICKs (high 32 bits) and the attempt (low 32, from
  // 1) of its delivery; tokens only grow, until 256 KICKs wrap their count.
  const uint64_t token_attempt = ref.lease ? *ref.lease & 0xffff'ffffU : 0;
  if (ref.lease && (*ref.lease > job->delivery() || token_attempt == 0)) {
    // A typo, or a token of some other job's.
    return "job " + num(ref.id) + " is in delivery lease=" + num(job->delivery()) + " (attempt " +
           num(job->attempts) + "); lease=" + num(*ref.lease) +
           " was never given out: check the token";
  }
  if (ref.lease && (*ref.lease >> 32) < job->kicks) {
    // Before the last KICK: how many attempts the job had then is not
    // kept, so whether this one was among them cannot be told.
    return "job " + num(ref.id) + " is in delivery lease=" + num(job->delivery()) + " (attempt " +
           num(job->attempts) +
           "), after a KICK or REDRIVE started its attempts again: lease=" + num(*ref.lease) +
           " came before that, if it was given out, and is over; the worker holding it "
           "finishes it";
  }
  if (ref.lease) {
    return "job " + num(ref.id) + " is in another delivery now (lease=" + num(job->delivery()) +
           ", attempt " + num(job->attempts) + "), not lease=" + num(*ref.lease) +
           ": yours ended; the worker holding it finishes it";
  }
  return "job " + num(ref.id) + " was delivered again (attempt " + num(job->attempts) +
         ") after your delivery of it ended; the worker holding it now finishes it";
}

// Replies NOTLEASED and returns true when delivery_ended() says no.
bool refuse_ended(CommandContext& ctx, const JobRef& ref) {
  auto why = delivery_ended(ctx, ref);
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

std::string ref_text(const JobRef& ref) {
  return ref.lease ? num(ref.id) + "@" + num(*ref.lease) : num(ref.id);
}

// One job, the form nearly every worker sends: no list of ids to build.
void ack_one(CommandContext& ctx, std::string_view text, std::optional<std::string_view> queue) {
  JobRef ref;
  if (!parse_job_ref(ctx, text, &ref)) return;
  // The queue first: a wrong one is the answer whoever holds the job.
  if (queue) {
    if (auto in_queue = ctx.engine.check_ack_queue(ref.id, *queue); !in_queue.ok()) {
      return reply_error(ctx, in_queue.error());
    }
  }
  if (refuse_ended(ctx, ref)) return;
  auto acked = ctx.engine.ack(ref.id);  // its queue, when named, was checked above
  if (!acked.ok()) return reply_error(ctx, acked.error());
  forget_lease(ctx, ref.id);
  reply_acked(ctx, ref.id);
}

// ACK's ids, sorted, each job once; false, with BADFORMAT replied, when one
// is malformed or a job is named twice in two ways (17@2 and 17@3, or 17
// and 17@2): which of them the worker means is not for the server to pick.
bool parse_ack_refs(CommandContext& ctx, std::span<const std::string_view> args,
                    std::vector<JobRef>* refs) {
  refs->reserve(args.size());
  for (std::string_view text : args) {
    JobRef ref;
    if (!parse_job_ref(ctx, text, &ref)) return false;
    refs->push_back(ref);
  }
  auto order = [](const JobRef& a, const JobRef& b) {
    return a.id != b.id ? a.id < b.id : a.lease < b.lease;
  };
  auto same = [](const JobRef& a, const JobRef& b) { return a.id == b.id && a.lease == b.lease; };
  std::sort(refs->begin(), refs->end(), order);
  refs->erase(std::unique(refs->begin(), refs->end(), same), refs->end());
  for (size_t i = 1; i < refs->size(); ++i) {
    if ((*refs)[i].id == (*refs)[i - 1].id) {
      reply_error(ctx, ErrorCode::kBadFormat,
                  "job " + num((*refs)[i].id) + " is given twice, as " + ref_text((*refs)[i - 1]) +
                      " and " + ref_text((*refs)[i]) + "; none was acked");
      return false;
    }
  }
  return true;
}

}  // namespace

void cmd_ack(CommandContext& ctx, const Request& req) {
  // ACK <id>..., or ACK <queue> <id> as the original worker sends it. Queue
  // names are never all digits and never hold '@', so the two forms cannot
  // be confused (and 'ACK 0 2' is a bad id, not a queue named 0).
  if (req.args.size() == 2 && !names_job(ctx, req.args[0])) {
    return ack_one(ctx, req.args[1], req.args[0]);
  }
  if (req.args.size() == 1) return ack_one(ctx, req.args[0], std::nullopt);
  if (!names_job(ctx, req.args[0])) {
    // A queue name and several ids is neither form: say what both are.
    std::string msg = "'";
    protocol::append_escaped(msg, req.args[0], 32);
    msg += "' is not a job id; ACK takes ACK <id>[@<lease>]... or ACK <queue> <id>[@<lease>]";
    msg += " (one id after a queue name)";
    return reply_error(ctx, ErrorCode::kBadFormat, msg);
  }
  if (req.args.size() > ctx.limits->max_count) {
    return reply_error(ctx, ErrorCode::kBadFormat,
                       "ACK takes at most " + num(ctx.limits->max_count) +
                           " ids (limits.max_batch), got " + num(req.args.size()) +
                           "; none was acked");
  }
  // An id given twice is acked once, and counted once: "ACK 5 5" is not
  // "acked 1 of 2", an error for a job that was acked.
  std::vector<JobRef> refs;
  if (!parse_ack_refs(ctx, req.args, &refs)) return;
  // One job, however often given: ACK <id> in all, its refusals too.
  if (refs.size() == 1) return ack_one(ctx, req.args[0], std::nullopt);
  size_t done = 0;
  std::string failures;
  ErrorCode code = ErrorCode::kNotLeased;
  for (const JobRef& ref : refs) {
    if (auto why = delivery_ended(ctx, ref)) {
      if (failures.size() < 400) failures += "; " + *why;
      continue;
    }
    auto acked = ctx.engine.ack(ref.id);
    if (acked.ok()) {
      forget_lease(ctx, ref.id);
      ++done;
      continue;
    }
    if (acked.error().code == engine::Errc::kNotFound) code = ErrorCode::kNotFound;
    if (failures.size() < 400) failures += "; " + acked.error().message;
  }
  if (done == refs.size()) return reply_acked(ctx, done);
  reply_error(ctx, code, "acked " + num(done) + " of " + num(refs.size()) + failures);
}

void cmd_nack(CommandContext& ctx, const Request& req) {
  JobRef ref;
  if (!parse_job_ref(ctx, req.args[0], &ref)) return;
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
  if (refuse_ended(ctx, ref)) return;
  auto outcome = ctx.engine.nack(ref.id, delay, priority);
  if (!outcome.ok()) return reply_error(ctx, outcome.error());
  // Not forgotten: the job goes on, and once it is delivered again this
  // connection's late ACK, NACK, FAIL or TOUCH must be refused (the book
  // drops the entry when the job is gone, LeaseBook::prune).
  const engine::Requeue where = outcome.value();
  reply_ok(ctx,
           where == engine::Requeue::kDead      ? "dead"
           : where == engine::Requeue::kExpired ? "expired"
                                                : "nacked",
           num(ref.id));
}

void cmd_fail(CommandContext& ctx, const Request& req) {
  JobRef ref;
  if (!parse_job_ref(ctx, req.args[0], &ref)) return;
  if (refuse_ended(ctx, ref)) return;
  auto failed = ctx.engine.fail(ref.id, req.args[1].substr(0, 1000));
  if (!failed.ok()) return reply_error(ctx, failed.error());
  // Not forgotten, as after a NACK: a KICK or a dead_letter_queue delivers
  // the job again.
  reply_ok(ctx, "dead", num(ref.id));
}

void cmd_touch(CommandContext& ctx, const Request& req) {
  JobRef ref;
  if (!parse_job_ref(ctx, req.args[0], &ref)) return;
  std::optional<int64_t> extend;
  if (req.args.size() == 2) {
    int64_t ms = 0;
    if (!parse_duration(ctx, req.args[1], "TOUCH", &ms)) return;
    if (ms == 0) return reply_error(ctx, ErrorCode::kBadFormat, "TOUCH needs a duration above 0");
    extend = ms;
  }
  if (refuse_ended(ctx, ref)) return;
  ctx.wrote_only_leases = true;  // the new end's record, as a DEQUEUE's lease
  auto left_ms = ctx.engine.touch(ref.id, extend);
  if (!left_ms.ok()) return reply_error(ctx, left_ms.error());
  reply_ok(ctx, "touched", num(ref.id) + " " + num(static_cast<uint64_t>(left_ms.value())));
}

}  // namespace cmd
}  // namespace tq::server
