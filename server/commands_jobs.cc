// Producers and workers taking jobs: ENQUEUE, PUT, DEQUEUE, and DELETE and
// JOB, which name a job by id. How a delivery ends (ACK, NACK, FAIL, TOUCH)
// is in commands_leases.cc.
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

}  // namespace

bool parse_priority(CommandContext& ctx, std::string_view value, int32_t* priority) {
  int64_t p = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), p);
  if (ec != std::errc() || end != value.data() + value.size() || p < INT32_MIN || p > INT32_MAX) {
    std::string msg = "PRIORITY takes a whole number from -2147483648 to 2147483647, got '";
    protocol::append_escaped(msg, value, 32);
    msg += "'";
    reply_error(ctx, ErrorCode::kBadFormat, msg);
    return false;
  }
  *priority = static_cast<int32_t>(p);
  return true;
}

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
  // Too many names is said first, whatever they name: not NOQUEUE for the
  // first missing one of a list that could never be taken.
  size_t names = 0;
  while (names < a.size() && !is_keyword(a[names], "WAIT") && !is_keyword(a[names], "COUNT")) {
    ++names;
  }
  if (names > ctx.limits->max_count) {
    return reply_error(
        ctx, ErrorCode::kBadFormat,
        "DEQUEUE names at most " + num(ctx.limits->max_count) + " queues (limits.max_batch)");
  }
  size_t i = 0;
  for (; i < names; ++i) {
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
    ctx.wait =
        WaitRequest{queues, count, framed, ctx.loop_now_ms + wait_ms, ctx.limits->max_batch_bytes};
    return;
  }
  if (jobs.empty() && !framed) ++ctx.stats.errors_total;
  append_delivery(ctx.out, jobs, framed, queues, ctx.engine);
}

void cmd_delete(CommandContext& ctx, const Request& req) {
  uint64_t id = 0;
  if (!parse_id(ctx, req.args[0], &id)) return;
  auto removed = ctx.engine.remove(id);
  if (!removed.ok()) return reply_error(ctx, removed.error());
  if (ctx.leases != nullptr) ctx.leases->forget(id);
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
