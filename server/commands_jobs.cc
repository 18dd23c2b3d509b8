// Producers and workers: ENQUEUE, PUT, DEQUEUE, ACK, NACK, FAIL, TOUCH,
// DELETE.
#include <algorithm>
#include <charconv>
#include <unordered_set>

#include "server/command_support.h"

namespace tq::server {

using protocol::ErrorCode;
using protocol::Request;

namespace {

// A payload travels on DEQUEUE's one-line reply as it is, unless it holds a
// line break (only PUT can store one): then \n, \r and \ are escaped, so the
// reply stays one line. COUNT replies carry the bytes as they are.
void append_line_payload(std::string& out, const engine::Job& job) {
  std::string_view payload = job.payload();
  if (job.one_line) {  // known since the job was made: no scan per delivery
    out += payload;
    return;
  }
  for (char c : payload) {
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\\': out += "\\\\"; break;
      default: out += c;
    }
  }
}

// Adds `queue` to DEQUEUE's list unless it is there already: a queue named
// twice is watched, drained and counted once (a waiter's second copy of a
// dropped queue was left dangling, and every copy cost a waiter entry). A
// short list is searched; a long one, up to a line's worth of names, is
// checked against a set.
void add_once(std::vector<engine::Queue*>& queues, std::unordered_set<engine::Queue*>& seen,
              engine::Queue* queue) {
  constexpr size_t kSearched = 16;
  if (queues.size() < kSearched) {
    if (std::find(queues.begin(), queues.end(), queue) == queues.end()) queues.push_back(queue);
    return;
  }
  if (seen.empty()) seen.insert(queues.begin(), queues.end());
  if (seen.insert(queue).second) queues.push_back(queue);
}

// An EMPTY names this many of DEQUEUE's queues, then says how many more: a
// worker may name thousands, and the line is for a person to read.
constexpr size_t kNamedQueues = 10;

void append_queue_names(std::string& msg, const std::vector<engine::Queue*>& queues) {
  for (size_t i = 0; i < queues.size() && i < kNamedQueues; ++i) msg += " " + queues[i]->name;
  if (queues.size() > kNamedQueues) {
    msg += " and " + std::to_string(queues.size() - kNamedQueues) + " more";
  }
}

void reply_enqueued(CommandContext& ctx, const engine::Enqueued& e) {
  ctx.out += "OK ";
  protocol::append_number(ctx.out, e.id);
  if (e.duplicate) {
    ctx.out += " DUPLICATE";
    ctx.vouches = true;
  }
  ctx.out += '\n';
}

}  // namespace

void append_delivery(std::string& out, const std::vector<const engine::Job*>& jobs, bool framed,
                     const std::vector<engine::Queue*>& queues, engine::Engine& engine) {
  if (framed) {
    cmd::reserve_for_jobs(out, jobs);
    out += "OK ";
    protocol::append_number(out, jobs.size());
    out += '\n';
    for (const engine::Job* job : jobs) cmd::append_job_frame(out, *job, false);
    return;
  }
  if (jobs.empty()) {
    std::string msg;
    if (queues.size() == 1) {
      msg = "queue '" + queues[0]->name + "' " + engine.why_not_delivering(*queues[0]);
    } else {
      // Name the reasons when one is more than an empty queue.
      bool only_empty = true;
      for (const engine::Queue* q : queues)
        only_empty =
            only_empty && q->ready.empty() && q->held.empty() && q->delayed.empty() && !q->paused;
      if (only_empty) {
        msg = "no ready job in";
        append_queue_names(msg, queues);
      } else {
        msg = "nothing to deliver:";
        for (size_t i = 0; i < queues.size() && i < kNamedQueues; ++i) {
          msg += (i == 0 ? " '" : "; '") + queues[i]->name + "' " +
                 engine.why_not_delivering(*queues[i]);
        }
        if (queues.size() > kNamedQueues) {
          msg += "; and " + std::to_string(queues.size() - kNamedQueues) + " more";
        }
      }
    }
    protocol::append_error(out, ErrorCode::kEmpty, msg);
    return;
  }
  const engine::Job& job = *jobs.front();
  out += "OK ";
  protocol::append_number(out, job.id);
  out += ' ';
  append_line_payload(out, job);
  out += '\n';
}

namespace cmd {

void cmd_enqueue(CommandContext& ctx, const Request& req) {
  // The payload limit is a job's, not only a PUT body's: an operator who
  // sets it expects no bigger job to get in by ENQUEUE.
  if (req.args[1].size() > ctx.limits->max_payload_bytes) {
    return reply_error(ctx, ErrorCode::kTooBig,
                       "payload exceeds " + num(ctx.limits->max_payload_bytes) +
                           " bytes (limits.max_payload_bytes)");
  }
  auto id = ctx.engine.enqueue(req.args[0], req.args[1]);
  if (!id.ok()) return reply_error(ctx, id.error());
  reply_enqueued(ctx, id.value());
}

namespace {

// The latest AT: far past any real date, and small enough that its
// milliseconds, and a DELAY added to now, stay well inside int64.
constexpr uint64_t kMaxAtSeconds = 100'000'000'000;

// A job priority: a whole number that fits 32 bits, signed.
bool parse_priority(CommandContext& ctx, std::string_view value, int32_t* priority) {
  int64_t p = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), p);
  if (ec != std::errc() || end != value.data() + value.size() || p < INT32_MIN || p > INT32_MAX) {
    reply_error(ctx, ErrorCode::kBadFormat,
                "PRIORITY takes a whole number from -2147483648 to 2147483647");
    return false;
  }
  *priority = static_cast<int32_t>(p);
  return true;
}

}  // namespace

bool parse_job_options(CommandContext& ctx, std::span<const std::string_view> a,
                       std::span<const char* const> allowed, const char* verb,
                       engine::EnqueueOptions* options) {
  auto index_of = [&](std::string_view word) {
    size_t k = 0;
    while (k < allowed.size() && !is_keyword(word, allowed[k])) ++k;
    return k;
  };
  // An option given twice is refused, as config.yaml refuses a key given
  // twice: the last one winning silently hides a mistake in the request.
  uint32_t given = 0;  // a bit per keyword of `allowed` (a handful)
  for (size_t i = 0; i < a.size(); i += 2) {
    const size_t k = index_of(a[i]);
    if (k == allowed.size()) {
      std::string msg = "unknown " + std::string(verb) + " option '";
      protocol::append_escaped(msg, a[i], 32);
      msg += "'; options:";
      for (const char* option : allowed)
        msg += std::string(option == allowed[0] ? " " : ", ") + option;
      reply_error(ctx, ErrorCode::kBadFormat, msg);
      return false;
    }
    if (i + 1 >= a.size()) {
      reply_error(ctx, ErrorCode::kBadFormat, "option " + std::string(a[i]) + " needs a value");
      return false;
    }
    if (given & (1u << k)) {
      reply_given_twice(ctx, allowed[k]);
      return false;
    }
    given |= 1u << k;
    std::string_view value = a[i + 1];
    if (is_keyword(a[i], "PRIORITY")) {
      if (!parse_priority(ctx, value, &options->priority)) return false;
    } else if (is_keyword(a[i], "DELAY")) {
      if (!parse_duration(ctx, value, "DELAY", &options->delay_ms)) return false;
      options->own_time = true;
    } else if (is_keyword(a[i], "AT")) {
      uint64_t at = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), at);
      if (ec != std::errc() || end != value.data() + value.size() || at > kMaxAtSeconds) {
        std::string msg = "AT takes a Unix time in seconds, 0 to " + num(kMaxAtSeconds) +
                          " (the year 5138), got '";
        protocol::append_escaped(msg, value, 32);
        msg += "'";
        reply_error(ctx, ErrorCode::kBadFormat, msg);
        return false;
      }
      options->run_at_ms = static_cast<int64_t>(at) * 1000;
      options->own_time = true;
    } else if (is_keyword(a[i], "TTL")) {
      if (!parse_duration(ctx, value, "TTL", &options->ttl_ms)) return false;
      if (options->ttl_ms == 0) {
        reply_error(ctx, ErrorCode::kBadFormat, "TTL must be above 0");
        return false;
      }
    } else if (is_keyword(a[i], "ATTEMPTS")) {
      size_t n = 0;
      if (!parse_count(ctx, value, "ATTEMPTS", engine::kMaxJobAttempts, &n)) return false;
      options->max_attempts = static_cast<uint32_t>(n);
    } else if (is_keyword(a[i], "KEY")) {
      options->key = value;
    } else if (is_keyword(a[i], "GROUP")) {
      options->group = value;
    } else {
      // An option of `allowed` this parser does not know: a caller's own
      // (SCHEDULE's TZ) that it should have taken out of `a` first.
      reply_error(ctx, ErrorCode::kInternal, std::string(allowed[k]) + " was not parsed");
      return false;
    }
  }
  return true;
}

void cmd_put(CommandContext& ctx, const Request& req) {
  static constexpr const char* kPutOptions[] = {"PRIORITY", "DELAY", "AT",   "TTL",
                                                "ATTEMPTS", "KEY",   "GROUP"};
  engine::EnqueueOptions options;
  const std::span<const std::string_view> args(req.args);
  if (!parse_job_options(ctx, args.subspan(2), kPutOptions, "PUT", &options)) return;
  auto id = ctx.engine.enqueue(req.args[0], req.body, options);
  if (!id.ok()) return reply_error(ctx, id.error());
  reply_enqueued(ctx, id.value());
}

void cmd_dequeue(CommandContext& ctx, const Request& req) {
  HandlerScratch own;
  HandlerScratch& scratch = ctx.scratch != nullptr ? *ctx.scratch : own;
  std::vector<engine::Queue*>& queues = scratch.queues;
  queues.clear();
  scratch.seen.clear();
  size_t count = 1;
  bool framed = false;
  int64_t wait_ms = 0;
  const auto& a = req.args;
  size_t i = 0;
  for (; i < a.size() && !is_keyword(a[i], "WAIT") && !is_keyword(a[i], "COUNT"); ++i) {
    if (i == ctx.limits->max_count) {
      return reply_error(
          ctx, ErrorCode::kBadFormat,
          "DEQUEUE names at most " + num(ctx.limits->max_count) + " queues (limits.max_batch)");
    }
    auto queue = ctx.engine.queue_or_error(a[i]);
    if (!queue.ok()) {
      engine::Error error = queue.error();
      // Past the first, a word that names no queue may be a mistyped
      // option ("DEQUEUE jobs WIAT 5"): say which options there are.
      if (i > 0)
        error.message += " (DEQUEUE's options, after the queue names: WAIT <d>, COUNT <n>)";
      return reply_error(ctx, error);
    }
    add_once(queues, scratch.seen, queue.value());
  }
  if (queues.empty()) {
    return reply_error(ctx, ErrorCode::kBadFormat, "DEQUEUE needs a queue before WAIT or COUNT");
  }
  bool wait_given = false;
  bool count_given = false;
  for (; i < a.size(); i += 2) {
    if (!is_keyword(a[i], "WAIT") && !is_keyword(a[i], "COUNT")) {
      std::string msg = "after the queues, DEQUEUE takes WAIT <d> and COUNT <n>, got '";
      protocol::append_escaped(msg, a[i], 32);
      msg += "' (queue names go first)";
      return reply_error(ctx, ErrorCode::kBadFormat, msg);
    }
    if (i + 1 >= a.size()) {
      return reply_error(ctx, ErrorCode::kBadFormat, std::string(a[i]) + " needs a value");
    }
    const bool is_wait = is_keyword(a[i], "WAIT");
    bool& given = is_wait ? wait_given : count_given;
    if (given) {
      return reply_given_twice(ctx, is_wait ? "WAIT" : "COUNT");
    }
    given = true;
    if (is_wait) {
      if (!parse_duration(ctx, a[i + 1], "WAIT", &wait_ms, ctx.limits->max_wait_ms,
                          "limits.max_wait")) {
        return;
      }
    } else {  // COUNT
      if (!parse_count(ctx, a[i + 1], "COUNT", ctx.limits->max_count, &count)) return;
      framed = true;
    }
  }

  std::vector<const engine::Job*>& jobs = scratch.jobs;
  jobs.clear();
  ctx.engine.dequeue(queues, count, &jobs, ctx.limits->max_batch_bytes);
  ctx.wrote_only_leases = true;
  ctx.vouches = !jobs.empty();
  if (ctx.leases != nullptr && !jobs.empty()) record_deliveries(*ctx.leases, ctx.engine, jobs);
  if (jobs.empty() && wait_ms > 0 && ctx.waiters != nullptr) {
    if (ctx.limits->max_waiters == 0) {
      return reply_error(ctx, ErrorCode::kLimit,
                         "WAIT is turned off here (limits.max_waiters is 0); retry without WAIT");
    }
    if (const size_t waiting = ctx.waiters->size(); waiting >= ctx.limits->max_waiters) {
      return reply_error(ctx, ErrorCode::kLimit,
                         num(waiting) + (waiting == 1 ? " worker is" : " workers are") +
                             " waiting already, the limit (limits.max_waiters); retry without "
                             "WAIT or later");
    }
    ctx.wait = WaitRequest{queues, count, framed, ctx.engine.now_ms() + wait_ms,
                           ctx.limits->max_batch_bytes};
    return;
  }
  if (jobs.empty() && !framed) ++ctx.stats.errors_total;
  append_delivery(ctx.out, jobs, framed, queues, ctx.engine);
}

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

void cmd_delete(CommandContext& ctx, const Request& req) {
  uint64_t id = 0;
  if (!parse_id(ctx, req.args[0], &id)) return;
  auto removed = ctx.engine.remove(id);
  if (!removed.ok()) return reply_error(ctx, removed.error());
  forget_lease(ctx, id);
  reply_ok(ctx, "deleted", num(id));
}

// Looks, changes nothing: an operator's answer to "what became of job N?".
void cmd_job(CommandContext& ctx, const Request& req) {
  uint64_t id = 0;
  if (!parse_id(ctx, req.args[0], &id)) return;
  const engine::Job* job = ctx.engine.find_job(id);
  if (job == nullptr) {
    return reply_error(
        ctx, ErrorCode::kNotFound,
        "no job " + num(id) + " (never existed, or finished: acked, deleted, expired or purged)");
  }
  ctx.out += "OK 1\n";
  append_job_frame(ctx.out, *job, true, ctx.engine.extras_of(*job));
}

}  // namespace cmd

void record_deliveries(LeaseBook& book, const engine::Engine& engine,
                       const std::vector<const engine::Job*>& jobs) {
  for (const engine::Job* job : jobs) book.record(job->id, job->delivery());
  if (book.size() >= book.prune_at()) {
    book.prune([&](uint64_t id) { return engine.find_job(id) == nullptr; });
  }
}

}  // namespace tq::server
