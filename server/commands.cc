// Dispatch, the helpers every handler shares, and the informational verbs
// (LIST, PING, HELP, QUIT, STATS).
#include "server/commands.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <ctime>

#include "server/command_support.h"
#include "server/config.h"
#include "server/figures.h"
#include "server/secret.h"

namespace tq::server {
namespace cmd {

using protocol::ErrorCode;
using protocol::Request;
using protocol::Verb;

namespace {

ErrorCode wire_code(engine::Errc code) {
  switch (code) {
    case engine::Errc::kBadArgument: return ErrorCode::kBadFormat;
    case engine::Errc::kNoQueue: return ErrorCode::kNoQueue;
    case engine::Errc::kExists: return ErrorCode::kExists;
    case engine::Errc::kNotFound: return ErrorCode::kNotFound;
    case engine::Errc::kNotLeased: return ErrorCode::kNotLeased;
    case engine::Errc::kEmpty: return ErrorCode::kEmpty;
    case engine::Errc::kLimit: return ErrorCode::kLimit;
    case engine::Errc::kFull: return ErrorCode::kFull;
  }
  return ErrorCode::kInternal;
}

}  // namespace

std::string num(uint64_t v) { return std::to_string(v); }

void reply_error(CommandContext& ctx, ErrorCode code, std::string_view message) {
  ++ctx.stats.errors_total;
  protocol::append_error(ctx.out, code, message);
}

void reply_error(CommandContext& ctx, const engine::Error& error) {
  reply_error(ctx, wire_code(error.code), error.message);
}

void reply_given_twice(CommandContext& ctx, std::string_view what) {
  reply_error(ctx, protocol::ErrorCode::kBadFormat, std::string(what) + " given twice");
}

void reply_lines(CommandContext& ctx, const Lines& lines) {
  ctx.out += "OK ";
  protocol::append_number(ctx.out, lines.size());
  ctx.out += '\n';
  for (const auto& [name, value] : lines) {
    ctx.out += name;
    if (!value.empty()) {
      ctx.out += ' ';
      ctx.out += value;
    }
    ctx.out += '\n';
  }
}

void reply_ok(CommandContext& ctx, std::string_view word, std::string_view text) {
  ctx.out += "OK ";
  ctx.out += word;
  ctx.out += ' ';
  ctx.out += text;
  ctx.out += '\n';
}

bool all_digits(std::string_view text) {
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

namespace {

// A positive whole number that fits 64 bits, and nothing else: no sign, no
// spaces, no leading '+'.
bool parse_positive(std::string_view text, uint64_t* n) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *n);
  return ec == std::errc() && end == text.data() + text.size() && *n != 0;
}

}  // namespace

bool parse_id(CommandContext& ctx, std::string_view text, uint64_t* id) {
  if (parse_positive(text, id)) return true;
  std::string msg = "a job id is a positive whole number, got '";
  protocol::append_escaped(msg, text, 32);
  msg += "'";
  // DELETE 17@2, JOB 17@2: a token fences a delivery, which these do not end.
  if (text.find('@') != std::string_view::npos) {
    msg += " (<id>@<lease>, with a lease token, is for ACK, NACK, FAIL and TOUCH)";
  }
  reply_error(ctx, ErrorCode::kBadFormat, msg);
  return false;
}

bool parse_job_ref(CommandContext& ctx, std::string_view text, JobRef* ref) {
  ref->lease.reset();
  // A plain id first, as nearly every ACK sends it: no search for '@' (a
  // percent of tqd's instructions a job, in bench/callgrind.sh).
  if (parse_positive(text, &ref->id)) return true;
  const size_t at = text.find('@');
  if (at == std::string_view::npos) return parse_id(ctx, text, &ref->id);
  uint64_t lease = 0;
  const bool id_ok = parse_positive(text.substr(0, at), &ref->id);
  if (id_ok && parse_positive(text.substr(at + 1), &lease)) {
    ref->lease = lease;
    return true;
  }
  std::string msg = "'";
  protocol::append_escaped(msg, text, 48);
  msg += id_ok ? "' is not <id>@<lease>: a lease token is a positive whole number, as lease= "
                 "shows it in DEQUEUE ... COUNT, PEEK and JOB"
               : "' is not <id>@<lease>: a job id is a positive whole number";
  reply_error(ctx, ErrorCode::kBadFormat, msg);
  return false;
}

bool names_job(const CommandContext& ctx, std::string_view text) {
  if (all_digits(text) || text.find('@') != std::string_view::npos) return true;
  // "-1" may name a queue, but ACK -1 3 or KICK -5 with no such queue meant
  // an id: answered as a bad id, not as a queue to CREATE.
  return text.size() > 1 && text[0] == '-' && all_digits(text.substr(1)) &&
         ctx.engine.find_queue(text) == nullptr;
}

bool parse_duration(CommandContext& ctx, std::string_view text, const char* what, int64_t* ms,
                    int64_t max_ms, const char* max_setting) {
  auto parsed = parse_duration_ms(std::string(text), 1000);
  if (parsed && *parsed <= max_ms) {
    *ms = *parsed;
    return true;
  }
  // The bound in every case: a number too big to parse at all is over it too.
  std::string msg = std::string(what) + " takes a duration such as 30, 30s, 500ms or 2m, at most " +
                    duration_words(max_ms);
  if (max_setting != nullptr) msg += std::string(" (") + max_setting + ")";
  msg += ", got '";
  protocol::append_escaped(msg, text, 32);
  msg += "'";
  reply_error(ctx, ErrorCode::kBadFormat, msg);
  return false;
}

std::string duration_words(int64_t ms) {
  struct Unit {
    int64_t ms;
    const char* name;
  };
  static constexpr Unit kUnits[] = {
      {86'400'000, "day"}, {3'600'000, "hour"}, {60'000, "minute"}, {1000, "second"}};
  for (const Unit& unit : kUnits) {
    if (ms > 0 && ms % unit.ms == 0) {
      const int64_t n = ms / unit.ms;
      return std::to_string(n) + " " + unit.name + (n == 1 ? "" : "s");
    }
  }
  return std::to_string(ms) + "ms";
}

bool parse_count(CommandContext& ctx, std::string_view text, const char* what, size_t max,
                 size_t* n) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *n);
  if (ec == std::errc() && end == text.data() + text.size() && *n >= 1 && *n <= max) return true;
  std::string msg = std::string(what) + " takes a number from 1 to " + std::to_string(max) + ", got '";
  protocol::append_escaped(msg, text, 32);
  msg += "'";
  reply_error(ctx, ErrorCode::kBadFormat, msg);
  return false;
}

bool is_keyword(std::string_view arg, std::string_view upper) {
  if (arg.size() != upper.size()) return false;
  for (size_t i = 0; i < arg.size(); ++i) {
    char c = arg[i];
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
    if (c != upper[i]) return false;
  }
  return true;
}

void reserve_for_jobs(std::string& out, const std::vector<const engine::Job*>& jobs) {
  // A frame's fields are a few hundred bytes at most, but for a dead job's
  // reason (up to 512 escaped): a guess, not a bound; append grows past it.
  constexpr size_t kFieldBytes = 160;
  size_t needed = out.size();
  for (const engine::Job* job : jobs) needed += job->payload_size + kFieldBytes;
  if (needed > out.capacity()) out.reserve(std::max(needed, 2 * out.capacity()));
}

void append_job_frame(std::string& out, const engine::Job& job, bool detailed,
                      const engine::JobExtras* extras) {
  out += "JOB ";
  protocol::append_number(out, job.id);
  out += ' ';
  protocol::append_number(out, job.payload_size);
  out += " queue=";
  out += job.queue->name;
  if (detailed) {
    out += " state=";
    out += engine::job_state_name(job.state);
  }
  out += " attempts=";
  protocol::append_number(out, job.attempts);
  if (job.state == engine::JobState::kLeased) {
    // The lease token: ACK <id>@<lease> (and NACK, FAIL, TOUCH) finishes this
    // delivery and no later one, on any connection.
    out += " lease=";
    protocol::append_number(out, job.delivery());
  }
  if (detailed) {
    out += " priority=";
    protocol::append_signed(out, job.priority);
    if (job.state != engine::JobState::kReady && job.state != engine::JobState::kHeld) {
      out += " at=";
      protocol::append_signed(out, job.deadline_ms);
    }
    if (const engine::JobExtras* x = extras) {
      // A dead job never expires (and a KICK clears its TTL): no expires=.
      if (x->expires_at_ms > 0 && job.state != engine::JobState::kDead) {
        out += " expires=";
        protocol::append_signed(out, x->expires_at_ms);
      }
      if (!x->dedup_key.empty()) {
        out += " key=";
        out += x->dedup_key;
      }
      if (!x->group.empty()) {
        out += " group=";
        out += x->group;
      }
      if (!x->origin.empty()) {
        out += " from=";
        out += x->origin;
      }
      // Dead, or moved to a dead_letter_queue: why it died. Last, as it may
      // hold spaces.
      if (!x->reason.empty()) {
        out += " reason=";
        protocol::append_escaped(out, x->reason, 512);
      }
    }
  }
  out += '\n';
  out += job.payload();
  out += '\n';
}

namespace {

void cmd_list(CommandContext& ctx, const Request&) {
  ctx.out += "OK";
  char separator = ' ';
  for (const auto& [name, queue] : ctx.engine.queues()) {
    ctx.out += separator;
    ctx.out += name;
    separator = ',';
  }
  ctx.out += '\n';
}

void cmd_ping(CommandContext& ctx, const Request&) { ctx.out += "OK PONG\n"; }

void cmd_auth(CommandContext& ctx, const Request& req) {
  if (ctx.auth == nullptr || (!ctx.auth->has_password() && !ctx.auth->has_admin_password())) {
    ctx.out += "OK no password is set\n";
    return;
  }
  AuthState& auth = *ctx.auth;
  // The loop's monotonic clock: the wall clock set back an hour must not
  // keep an address's second of wrong passwords going for that hour.
  const int64_t now = ctx.loop_now_ms;
  if (auth.throttle != nullptr && !auth.throttle->allowed(auth.address, now)) {
    ctx.close_after_reply = true;
    return reply_error(ctx, ErrorCode::kNoAuth,
                       "too many wrong passwords from this address; try again in a second");
  }
  // Both compared, whichever matches: the time says nothing about which.
  const bool is_admin = auth.has_admin_password() && same_secret(req.args[0], *auth.admin_password);
  const bool is_client = auth.has_password() && same_secret(req.args[0], *auth.password);
  if (is_admin || is_client) {
    auth.authenticated = true;
    auth.admin = is_admin;  // AUTH says who the connection is now, a step down included
    ctx.out += is_admin ? "OK authenticated admin\n" : "OK authenticated\n";
    return;
  }
  ++ctx.stats.auth_failures;
  if (auth.throttle != nullptr) auth.throttle->failed(auth.address, now);
  if (++auth.failures >= auth.max_failures) {
    ctx.close_after_reply = true;
    return reply_error(ctx, ErrorCode::kNoAuth,
                       "wrong password; " + std::to_string(auth.failures) +
                           " wrong on this connection: closing it");
  }
  reply_error(ctx, ErrorCode::kNoAuth, "wrong password");
}

void cmd_quit(CommandContext& ctx, const Request&) {
  ctx.out += "OK bye\n";
  ctx.close_after_reply = true;
}

void cmd_help(CommandContext& ctx, const Request& req) {
  Lines lines;
  if (req.args.empty()) {
    for (const auto& spec : protocol::all_commands()) {
      std::string usage(spec.brief.empty() ? spec.usage : spec.brief);
      if (usage.size() < protocol::kHelpUsageColumn) usage.resize(protocol::kHelpUsageColumn, ' ');
      lines.emplace_back(std::move(usage), std::string(spec.summary));
    }
    return reply_lines(ctx, lines);
  }
  const protocol::CommandSpec* spec = protocol::find_command(req.args[0]);
  if (spec == nullptr) {
    std::string msg = "no command '";
    protocol::append_escaped(msg, req.args[0], 32);
    msg += "'; HELP lists the commands";
    return reply_error(ctx, ErrorCode::kUnknown, msg);
  }
  lines.emplace_back(std::string(spec->usage), "");
  lines.emplace_back("  " + std::string(spec->summary), "");
  if (spec->has(protocol::kAdmin)) {
    lines.emplace_back("  An admin command: with auth.admin_password set, AUTH with it first.", "");
  }
  std::string_view details = spec->details;
  while (!details.empty()) {
    size_t nl = details.find('\n');
    lines.emplace_back("  " + std::string(details.substr(0, nl)), "");
    details = nl == std::string_view::npos ? std::string_view{} : details.substr(nl + 1);
  }
  reply_lines(ctx, lines);
}

// STATS walks the same figures as the metrics endpoint (server/figures.h).
void reply_figures(CommandContext& ctx, Lines lines, const std::vector<Figure>& figures) {
  for (const Figure& figure : figures) {
    lines.emplace_back(std::string(figure.name), stats_value(figure));
  }
  reply_lines(ctx, lines);
}

void cmd_stats(CommandContext& ctx, const Request& req) {
  const engine::Engine& engine = ctx.engine;
  if (!req.args.empty()) {
    auto queue = engine.queue_or_error(req.args[0]);
    if (!queue.ok()) return reply_error(ctx, queue.error());
    const engine::Queue& q = *queue.value();
    return reply_figures(ctx, {{"queue", q.name}}, queue_figures(q, engine.now_ms()));
  }
  reply_figures(
      ctx, {}, server_figures(FigureSources{engine, ctx.stats, ctx.waiters, ctx.log, ctx.journal}));
}

// Whole seconds, as "12s": ages and idle times read at a glance.
void append_seconds(std::string& out, uint64_t ms) {
  protocol::append_number(out, ms / 1000);
  out += 's';
}

void cmd_clients(CommandContext& ctx, const Request&) {
  if (ctx.clients == nullptr) {
    return reply_error(ctx, ErrorCode::kInternal, "CLIENTS needs a server that lists connections");
  }
  const std::vector<ClientInfo> clients = ctx.clients->describe_clients();
  ctx.out += "OK ";
  protocol::append_number(ctx.out, clients.size());
  ctx.out += '\n';
  for (const ClientInfo& c : clients) {
    ctx.out += "id=";
    protocol::append_number(ctx.out, c.id);
    ctx.out += " addr=";
    ctx.out += c.address.empty() ? "?" : c.address;
    ctx.out += " age=";
    append_seconds(ctx.out, c.age_ms);
    ctx.out += " idle=";
    append_seconds(ctx.out, c.idle_ms);
    ctx.out += " cmd=";
    ctx.out += c.last_command.empty() ? std::string_view("-") : c.last_command;
    ctx.out += " leases=";
    protocol::append_number(ctx.out, c.leases);
    ctx.out += " wait=";
    ctx.out += c.waiting_on.empty() ? "-" : c.waiting_on;
    ctx.out += " unsent=";
    protocol::append_number(ctx.out, c.unsent_bytes);
    if (!c.tls.empty()) {
      ctx.out += " tls=";
      ctx.out += c.tls;
    }
    if (c.admin) ctx.out += " admin";
    ctx.out += '\n';
  }
}

// A backup's directory name: no paths, no hidden (or staging) names, and
// nothing a shell command would take for an option (rm -r $name).
bool valid_backup_name(std::string_view name) {
  if (name.empty() || name.size() > 100 || name.front() == '.' || name.front() == '-') {
    return false;
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// tq-20261203T215959.042Z: sorts by time, says it in UTC, and two backups
// asked for in the same second still get a name each.
std::string default_backup_name(int64_t now_ms) {
  const auto seconds = static_cast<std::time_t>(now_ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[40];
  const size_t n = std::strftime(text, sizeof text, "tq-%Y%m%dT%H%M%S", &utc);
  std::snprintf(text + n, sizeof text - n, ".%03dZ", static_cast<int>(now_ms % 1000));
  return text;
}

void cmd_backup(CommandContext& ctx, const Request& req) {
  if (ctx.log == nullptr) {
    return reply_error(ctx, ErrorCode::kNoLog,
                       "wal.enabled is false: jobs live in memory only, and there is no log to "
                       "back up");
  }
  if (ctx.backups == nullptr) {
    return reply_error(ctx, ErrorCode::kInternal, "BACKUP needs a server that makes backups");
  }
  const std::string name =
      req.args.empty() ? default_backup_name(ctx.engine.now_ms()) : std::string(req.args[0]);
  if (!valid_backup_name(name)) {
    return reply_error(ctx, ErrorCode::kBadFormat,
                       "a backup name is 1 to 100 letters, digits, '.', '_' or '-', not starting "
                       "with '.' or '-'");
  }
  if (auto refused = ctx.backups->start_backup(ctx.connection_id, name)) {
    return reply_error(ctx, refused->code, refused->message);
  }
  ctx.deferred = true;
}

void cmd_reload(CommandContext& ctx, const Request&) {
  if (ctx.reloads == nullptr) {
    return reply_error(ctx, ErrorCode::kInternal, "RELOAD needs a server that reloads");
  }
  const ReloadOutcome outcome = ctx.reloads->reload_settings();
  if (!outcome.error.empty()) return reply_error(ctx, ErrorCode::kBadConfig, outcome.error);
  auto keys = [](const std::vector<std::string>& list) {
    std::string joined;
    for (const std::string& key : list) joined += (joined.empty() ? "" : ",") + key;
    return joined.empty() ? std::string("-") : joined;
  };
  ctx.out += "OK reloaded applied=" + keys(outcome.applied) + " restart=" + keys(outcome.pending);
  if (!outcome.failed.empty()) ctx.out += " failed=" + keys(outcome.failed);
  ctx.out += '\n';
}

using Handler = void (*)(CommandContext&, const Request&);

constexpr std::array<Handler, static_cast<size_t>(Verb::kCount)> kHandlers = [] {
  std::array<Handler, static_cast<size_t>(Verb::kCount)> h{};
  auto set = [&h](Verb v, Handler f) { h[static_cast<size_t>(v)] = f; };
  set(Verb::kCreate, cmd_create);
  set(Verb::kEnqueue, cmd_enqueue);
  set(Verb::kPut, cmd_put);
  set(Verb::kDequeue, cmd_dequeue);
  set(Verb::kAck, cmd_ack);
  set(Verb::kNack, cmd_nack);
  set(Verb::kFail, cmd_fail);
  set(Verb::kTouch, cmd_touch);
  set(Verb::kDelete, cmd_delete);
  set(Verb::kList, cmd_list);
  set(Verb::kQueues, cmd_queues);
  set(Verb::kPeek, cmd_peek);
  set(Verb::kJob, cmd_job);
  set(Verb::kClients, cmd_clients);
  set(Verb::kBackup, cmd_backup);
  set(Verb::kReload, cmd_reload);
  set(Verb::kKick, cmd_kick);
  set(Verb::kRedrive, cmd_redrive);
  set(Verb::kConfig, cmd_config);
  set(Verb::kPause, cmd_pause);
  set(Verb::kResume, cmd_resume);
  set(Verb::kPurge, cmd_purge);
  set(Verb::kDrop, cmd_drop);
  set(Verb::kSchedule, cmd_schedule);
  set(Verb::kCancel, cmd_cancel);
  set(Verb::kPing, cmd_ping);
  set(Verb::kAuth, cmd_auth);
  set(Verb::kHelp, cmd_help);
  set(Verb::kQuit, cmd_quit);
  set(Verb::kStats, cmd_stats);
  return h;
}();

}  // namespace
}  // namespace cmd

std::string refused_until(const wal::Log& log) {
  if (log.directory_gone()) {
    return "until tqd is restarted (put the log's directory back first: a start without it "
           "begins an empty log)";
  }
  return log.failed_until_restart()
             ? "until tqd is restarted (a failed sync leaves the log untrusted; a restart "
               "replays what is on disk)"
             : "until the disk recovers";
}

std::string io_error_reply(const wal::Log& log) {
  std::string line;
  protocol::append_error(line, protocol::ErrorCode::kIo,
                         "the log cannot be written (" + log.last_error() +
                             "); the outcome of this write is unknown, and writes are refused " +
                             refused_until(log));
  return line;
}

std::string timeout_notice(bool idle, uint64_t timeout_ms) {
  const std::string limit = cmd::duration_words(static_cast<int64_t>(timeout_ms));
  std::string message = "closing the connection: ";
  if (idle) {
    message += "no request came for " + limit + " (limits.idle_timeout)";
  } else {
    message +=
        "a request was started and not finished within " + limit + " (limits.request_timeout)";
  }
  std::string line;
  protocol::append_error(line, protocol::ErrorCode::kTimeout, message);
  return line;
}

namespace {

// An admin command on a connection that may not run it: answered NOPERM and
// counted. Returns whether it was refused.
bool refused_admin(CommandContext& ctx, const protocol::CommandSpec& spec) {
  if (ctx.auth == nullptr || !spec.has(protocol::kAdmin) || ctx.auth->may_admin()) return false;
  ++ctx.stats.commands_denied;
  cmd::reply_error(
      ctx, protocol::ErrorCode::kNoPerm,
      std::string(spec.name) + " is an admin command: AUTH with the admin password first");
  return true;
}

}  // namespace

void dispatch(CommandContext& ctx, const protocol::Request& request) {
  ++ctx.stats.commands_total;
  ++ctx.stats.commands_by_verb[static_cast<size_t>(request.spec->verb)];
  if (ctx.auth != nullptr && ctx.auth->required() && !request.spec->has(protocol::kNoAuth)) {
    return cmd::reply_error(ctx, protocol::ErrorCode::kNoAuth,
                            "authenticate first: AUTH <password>");
  }
  if (refused_admin(ctx, *request.spec)) return;
  // RELOAD is a write so that no client sends it twice; while the log fails
  // it still applies the settings and reports the declarations it cannot.
  if (ctx.log != nullptr && !ctx.log->healthy() && request.spec->verb != protocol::Verb::kReload &&
      protocol::request_writes(*request.spec, request.args)) {
    // Refused before anything changes: this write surely did not happen.
    cmd::reply_error(ctx, protocol::ErrorCode::kIo,
                     "the log cannot be written (" + ctx.log->last_error() +
                         "); writes are refused " + refused_until(*ctx.log) + ", reads still work");
    return;
  }
  cmd::Handler handler = cmd::kHandlers[static_cast<size_t>(request.spec->verb)];
  if (handler == nullptr) {
    return cmd::reply_error(ctx, protocol::ErrorCode::kInternal, "no handler for a known command");
  }
  handler(ctx, request);
}

void reply_parse_error(CommandContext& ctx, const protocol::ParseError& error) {
  if (ctx.auth != nullptr && ctx.auth->required()) {
    // Before AUTH, everything but PING, AUTH and QUIT is NOAUTH, malformed
    // or not: a stranger learns nothing about the commands.
    return cmd::reply_error(ctx, protocol::ErrorCode::kNoAuth,
                            "authenticate first: AUTH <password>");
  }
  // A malformed admin command is refused as a well-formed one is: whoever may
  // not run it learns nothing from how it was wrong, and the refusal counts.
  if (error.spec != nullptr && refused_admin(ctx, *error.spec)) return;
  cmd::reply_error(ctx, error.code, error.message);
}

}  // namespace tq::server
