// Queue administration: CREATE, QUEUES, PEEK, KICK, REDRIVE, CONFIG, PAUSE, RESUME,
// PURGE, DROP.
#include <algorithm>
#include <cctype>
#include <string>

#include "server/command_support.h"
#include "server/queue_settings.h"

namespace tq::server::cmd {

using protocol::ErrorCode;
using protocol::Request;

void cmd_create(CommandContext& ctx, const Request& req) {
  auto created = ctx.engine.create_queue(req.args[0]);
  if (!created.ok()) return reply_error(ctx, created.error());
  reply_ok(ctx, "created", created.value()->name);
}

void cmd_queues(CommandContext& ctx, const Request&) {
  Lines lines;
  for (const auto& [name, q] : ctx.engine.queues()) {
    lines.emplace_back(
        name, "ready=" + num(q->ready.size()) + " held=" + num(q->held.size()) +
                  " delayed=" + num(q->delayed.size()) + " leased=" + num(q->leased.size()) +
                  " dead=" + num(q->dead.size()) + " paused=" + (q->paused ? "1" : "0"));
  }
  reply_lines(ctx, lines);
}

namespace {

// PEEK's states, in the order its usage names them: one table for matching
// and for the message that lists them.
struct PeekStateName {
  const char* name;
  engine::PeekState state;
};
constexpr PeekStateName kPeekStates[] = {{"READY", engine::PeekState::kReady},
                                         {"HELD", engine::PeekState::kHeld},
                                         {"DELAYED", engine::PeekState::kDelayed},
                                         {"LEASED", engine::PeekState::kLeased},
                                         {"DEAD", engine::PeekState::kDead}};

}  // namespace

void cmd_peek(CommandContext& ctx, const Request& req) {
  std::optional<engine::PeekState> state;
  std::optional<size_t> n;
  for (size_t i = 1; i < req.args.size(); ++i) {
    std::string_view a = req.args[i];
    std::optional<engine::PeekState> named;
    for (const PeekStateName& s : kPeekStates) {
      if (is_keyword(a, s.name)) named = s.state;
    }
    if (!named && !all_digits(a)) {
      // Neither a state nor a number: say both, not only "a number".
      std::string msg = "PEEK takes a state (";
      for (const PeekStateName& s : kPeekStates) {
        msg += std::string(&s == kPeekStates ? "" : ", ") + s.name;
      }
      msg += ") or a number from 1 to " + num(ctx.limits->max_count) + ", got '";
      protocol::append_escaped(msg, a, 32);
      msg += "'";
      return reply_error(ctx, ErrorCode::kBadFormat, msg);
    }
    size_t count = 0;
    if (!named && !parse_count(ctx, a, "PEEK", ctx.limits->max_count, &count)) return;
    // One state and one number: a second one would silently win.
    if (named ? state.has_value() : n.has_value()) {
      return reply_error(
          ctx, ErrorCode::kBadFormat,
          std::string(named ? "a state" : "a number") +
              " given twice; usage: PEEK <queue> [READY|HELD|DELAYED|LEASED|DEAD] [n]");
    }
    if (named) {
      state = named;
    } else {
      n = count;
    }
  }
  std::vector<const engine::Job*> jobs;
  auto peeked = ctx.engine.peek(req.args[0], state.value_or(engine::PeekState::kReady),
                                n.value_or(10), [&](const engine::Job& j) { jobs.push_back(&j); });
  if (!peeked.ok()) return reply_error(ctx, peeked.error());
  // As DEQUEUE ... COUNT: stop before the job that would take the payloads
  // past limits.max_batch_bytes (the first goes whatever its size), or one
  // PEEK of big jobs could put a gigabyte in a connection's output at once.
  uint64_t bytes = 0;
  size_t fit = 0;
  for (; fit < jobs.size(); ++fit) {
    if (fit > 0 && bytes + jobs[fit]->payload_size > ctx.limits->max_batch_bytes) break;
    bytes += jobs[fit]->payload_size;
  }
  jobs.resize(fit);
  reserve_for_jobs(ctx.out, jobs);
  ctx.out += "OK ";
  protocol::append_number(ctx.out, jobs.size());
  ctx.out += '\n';
  for (const engine::Job* job : jobs) {
    append_job_frame(ctx.out, *job, true, ctx.engine.extras_of(*job));
  }
}

namespace {

// KICK <queue>, REDRIVE and PURGE <queue> DEAD: the first step here; when
// jobs are left, the server runs the others between other clients'
// requests (server/bulk_work.h). Without a server (tests), all of them now.
void run_bulk(CommandContext& ctx, BulkTask task) {
  auto first = run_bulk_step(ctx.engine, task, kBulkStepJobs);
  if (!first.ok()) return reply_error(ctx, first.error());
  if (!task.finished) {
    if (ctx.bulk != nullptr) {
      ctx.bulk->start_bulk(ctx.connection_id, std::move(task));
      ctx.deferred = true;
      return;
    }
    while (!task.finished) (void)run_bulk_step(ctx.engine, task, SIZE_MAX);
  }
  ctx.out += bulk_reply(task);
}

}  // namespace

void cmd_kick(CommandContext& ctx, const Request& req) {
  // A queue name is never only digits and never holds '@', so KICK <digits>
  // names a job (and KICK 17@2 is a job id with a lease token it refuses).
  if (req.args.size() == 1 && names_job(ctx, req.args[0])) {
    uint64_t id = 0;
    if (!parse_id(ctx, req.args[0], &id)) return;
    auto kicked = ctx.engine.kick_job(id);
    if (!kicked.ok()) return reply_error(ctx, kicked.error());
    return reply_ok(ctx, "kicked", "1");
  }
  size_t n = SIZE_MAX;  // all; a count above what is dead kicks them all too
  if (req.args.size() == 2 && !parse_count(ctx, req.args[1], "KICK", SIZE_MAX, &n)) return;
  run_bulk(ctx,
           BulkTask{.kind = BulkTask::Kind::kKick, .queue = std::string(req.args[0]), .left = n});
}

void cmd_redrive(CommandContext& ctx, const Request& req) {
  size_t n = SIZE_MAX;  // all
  if (req.args.size() == 2 && !parse_count(ctx, req.args[1], "REDRIVE", SIZE_MAX, &n)) return;
  run_bulk(
      ctx,
      BulkTask{.kind = BulkTask::Kind::kRedrive, .queue = std::string(req.args[0]), .left = n});
}

namespace {

// CONFIG lists it after the settings, but it is the queue's state, not one
// of its settings: PAUSE and RESUME change it.
constexpr std::string_view kPausedKey = "paused";

// A key as given, in the case the settings are named in when it names one:
// keys are taken in any case, as verbs and options are (Max_Attempts=5 is
// max_attempts=5); an unknown key is echoed as it was sent.
std::string setting_name(std::string_view given) {
  std::string lower(given);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == kPausedKey) return lower;
  for (const auto& known : queue_setting_keys()) {
    if (lower == known) return lower;
  }
  return std::string(given);
}

}  // namespace

void cmd_config(CommandContext& ctx, const Request& req) {
  auto queue = ctx.engine.queue_or_error(req.args[0]);
  if (!queue.ok()) return reply_error(ctx, queue.error());
  engine::QueueSettings settings = queue.value()->settings;
  std::vector<std::string> keys;  // given so far: a key given twice is refused
  for (size_t i = 1; i < req.args.size(); ++i) {
    std::string_view a = req.args[i];
    size_t eq = a.find('=');
    if (eq == std::string_view::npos) {
      return reply_error(ctx, ErrorCode::kBadFormat, "settings are written <key>=<value>, e.g. max_attempts=5");
    }
    const std::string key = setting_name(a.substr(0, eq));
    if (key == kPausedKey) {
      return reply_error(ctx, ErrorCode::kBadFormat,
                         "paused is read-only here: PAUSE <queue> and RESUME <queue> change it");
    }
    if (auto error = apply_queue_setting(settings, key, a.substr(eq + 1))) {
      return reply_error(ctx, ErrorCode::kBadFormat, *error);  // nothing was changed
    }
    // Known, so safe to echo: apply_queue_setting refused any other key.
    if (std::find(keys.begin(), keys.end(), key) != keys.end()) {
      return reply_given_twice(ctx, key);
    }
    keys.push_back(key);
  }
  if (const std::string& target = settings.dead_letter_queue;
      !target.empty() && target != queue.value()->settings.dead_letter_queue) {
    // Checked when named, so a typo shows now rather than when the first
    // job dies. (Named by queues.defaults, or dropped later, a missing
    // queue leaves dead jobs in their own queue's dead letters.)
    if (target == queue.value()->name) {
      return reply_error(ctx, ErrorCode::kBadFormat,
                         "dead_letter_queue: a queue cannot be its own (without one, its dead "
                         "letters stay in it)");
    }
    if (ctx.engine.find_queue(target) == nullptr) {
      return reply_error(ctx, ErrorCode::kNoQueue,
                         "dead_letter_queue: queue " + engine::quoted(target) +
                             " does not exist; CREATE it first");
    }
  }
  if (auto changed = ctx.engine.configure(req.args[0], settings); !changed.ok()) {
    return reply_error(ctx, changed.error());
  }
  Lines lines = describe_queue_settings(queue.value()->settings);
  lines.emplace_back(kPausedKey, queue.value()->paused ? "true" : "false");
  reply_lines(ctx, lines);
}

void cmd_pause(CommandContext& ctx, const Request& req) {
  int64_t resume_at_ms = 0;
  if (req.args.size() == 2) {
    int64_t for_ms = 0;
    if (!parse_duration(ctx, req.args[1], "PAUSE", &for_ms)) return;
    if (for_ms < 1) {
      return reply_error(ctx, ErrorCode::kBadFormat,
                         "PAUSE takes a duration of 1ms or more (none: until RESUME)");
    }
    resume_at_ms = ctx.engine.now_ms() + for_ms;
  }
  auto paused = ctx.engine.set_paused(req.args[0], true, resume_at_ms);
  if (!paused.ok()) return reply_error(ctx, paused.error());
  reply_ok(ctx, "paused", req.args[0]);
}

void cmd_resume(CommandContext& ctx, const Request& req) {
  auto resumed = ctx.engine.set_paused(req.args[0], false);
  if (!resumed.ok()) return reply_error(ctx, resumed.error());
  reply_ok(ctx, "resumed", req.args[0]);
}

void cmd_purge(CommandContext& ctx, const Request& req) {
  const bool dead = req.args.size() > 1;
  if (dead && !is_keyword(req.args[1], "DEAD")) {
    std::string msg = "PURGE takes DEAD or nothing after the queue, got '";
    protocol::append_escaped(msg, req.args[1], 32);
    msg += "'";
    return reply_error(ctx, protocol::ErrorCode::kBadFormat, msg);
  }
  if (dead) {
    return run_bulk(
        ctx, BulkTask{.kind = BulkTask::Kind::kPurgeDead, .queue = std::string(req.args[0])});
  }
  // The ready, held and delayed jobs go in one record, and out of every
  // view at once; the server frees them afterwards, in steps (a million
  // took every client's 0.07 s in one go: bench/stall.sh).
  auto purged = ctx.engine.purge(req.args[0]);
  if (!purged.ok()) return reply_error(ctx, purged.error());
  reply_ok(ctx, "purged", num(purged.value()));
}

void cmd_drop(CommandContext& ctx, const Request& req) {
  auto queue = ctx.engine.queue_or_error(req.args[0]);
  if (!queue.ok()) return reply_error(ctx, queue.error());
  if (ctx.waiters != nullptr) {
    // Waiters hold the queue by pointer: let them go before it is freed.
    std::string error;
    protocol::append_error(error, ErrorCode::kNoQueue,
                           "queue '" + queue.value()->name + "' was dropped while you waited");
    ctx.waiters->queue_dropping(queue.value(), error);
  }
  std::string name = queue.value()->name;
  if (auto dropped = ctx.engine.drop(name); !dropped.ok()) return reply_error(ctx, dropped.error());
  reply_ok(ctx, "dropped", name);
}

}  // namespace tq::server::cmd
