#include "server/commands.h"

#include <array>
#include <charconv>
#include <utility>
#include <vector>

namespace tq::server {
namespace {

using protocol::ErrorCode;
using protocol::Request;
using protocol::Verb;

protocol::ErrorCode wire_code(engine::Errc code) {
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

void reply_error(CommandContext& ctx, ErrorCode code, std::string_view message) {
  ++ctx.stats.errors_total;
  protocol::append_error(ctx.out, code, message);
}

void reply_error(CommandContext& ctx, const engine::Error& error) {
  reply_error(ctx, wire_code(error.code), error.message);
}

// "OK <n>" and n lines of "<name> <value>": the framing of every listing.
using Lines = std::vector<std::pair<std::string, std::string>>;
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

std::optional<uint64_t> parse_job_id(std::string_view text) {
  uint64_t id = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc() || end != text.data() + text.size() || id == 0) return std::nullopt;
  return id;
}

bool parse_id_or_reply(CommandContext& ctx, std::string_view text, uint64_t& id) {
  if (auto parsed = parse_job_id(text)) {
    id = *parsed;
    return true;
  }
  std::string msg = "a job id is a positive whole number, got '";
  protocol::append_escaped(msg, text, 32);
  msg += "'";
  reply_error(ctx, ErrorCode::kBadFormat, msg);
  return false;
}

void cmd_create(CommandContext& ctx, const Request& req) {
  auto created = ctx.engine.create_queue(req.args[0]);
  if (!created.ok()) return reply_error(ctx, created.error());
  ctx.out += "OK created ";
  ctx.out += created.value()->name;
  ctx.out += '\n';
}

void cmd_enqueue(CommandContext& ctx, const Request& req) {
  auto id = ctx.engine.enqueue(req.args[0], req.args[1]);
  if (!id.ok()) return reply_error(ctx, id.error());
  ctx.out += "OK ";
  protocol::append_number(ctx.out, id.value());
  ctx.out += '\n';
}

void cmd_dequeue(CommandContext& ctx, const Request& req) {
  auto job = ctx.engine.dequeue(req.args[0]);
  if (!job.ok()) return reply_error(ctx, job.error());
  ctx.out += "OK ";
  protocol::append_number(ctx.out, job.value()->id);
  ctx.out += ' ';
  ctx.out += job.value()->payload();
  ctx.out += '\n';
}

void cmd_ack(CommandContext& ctx, const Request& req) {
  // ACK <id>, or ACK <queue> <id> as the original worker sends it. Queue
  // names are never all digits, so the two forms cannot be confused.
  std::optional<std::string_view> queue;
  std::string_view id_text = req.args[0];
  if (req.args.size() == 2) {
    queue = req.args[0];
    id_text = req.args[1];
  }
  uint64_t id = 0;
  if (!parse_id_or_reply(ctx, id_text, id)) return;
  auto acked = ctx.engine.ack(id, queue);
  if (!acked.ok()) return reply_error(ctx, acked.error());
  ctx.out += "OK acked ";
  protocol::append_number(ctx.out, id);
  ctx.out += '\n';
}

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

void cmd_quit(CommandContext& ctx, const Request&) {
  ctx.out += "OK bye\n";
  ctx.close_after_reply = true;
}

void cmd_help(CommandContext& ctx, const Request& req) {
  Lines lines;
  if (req.args.empty()) {
    for (const auto& spec : protocol::all_commands()) {
      std::string usage(spec.usage);
      if (usage.size() < 40) usage.resize(40, ' ');
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
  std::string_view details = spec->details;
  while (!details.empty()) {
    size_t nl = details.find('\n');
    lines.emplace_back("  " + std::string(details.substr(0, nl)), "");
    details = nl == std::string_view::npos ? std::string_view{} : details.substr(nl + 1);
  }
  reply_lines(ctx, lines);
}

std::string num(uint64_t v) { return std::to_string(v); }

void cmd_stats(CommandContext& ctx, const Request& req) {
  const engine::Engine& engine = ctx.engine;
  Lines lines;
  if (!req.args.empty()) {
    const engine::Queue* queue = engine.find_queue(req.args[0]);
    if (queue == nullptr) {
      return reply_error(ctx, ErrorCode::kNoQueue,
                         "queue '" + std::string(req.args[0].substr(0, 200)) + "' does not exist");
    }
    lines = {
        {"queue", queue->name},
        {"ready", num(queue->ready.size())},
        {"leased", num(queue->leased.size())},
        {"enqueued_total", num(queue->counters.enqueued)},
        {"dequeued_total", num(queue->counters.dequeued)},
        {"acked_total", num(queue->counters.acked)},
        {"timed_out_total", num(queue->counters.timed_out)},
        {"ack_timeout_ms", num(static_cast<uint64_t>(queue->settings.ack_timeout_ms))},
    };
    return reply_lines(ctx, lines);
  }
  const ServerStats& s = ctx.stats;
  const engine::EngineCounters& c = engine.counters();
  int64_t uptime_ms = engine.now_ms() - s.started_at_ms;
  lines = {
      {"uptime_seconds", num(static_cast<uint64_t>(uptime_ms > 0 ? uptime_ms / 1000 : 0))},
      {"connections_current", num(s.connections_current)},
      {"connections_total", num(s.connections_total)},
      {"connections_refused", num(s.connections_refused)},
      {"queues", num(engine.queues().size())},
      {"jobs_ready", num(engine.job_count() - engine.leased_count())},
      {"jobs_leased", num(engine.leased_count())},
      {"jobs_enqueued_total", num(c.enqueued)},
      {"jobs_dequeued_total", num(c.dequeued)},
      {"jobs_acked_total", num(c.acked)},
      {"jobs_timed_out_total", num(c.timed_out)},
      {"commands_total", num(s.commands_total)},
      {"errors_total", num(s.errors_total)},
  };
  if (ctx.log != nullptr) {
    wal::LogStats w = ctx.log->stats();
    lines.emplace_back("wal_fsync", wal::fsync_policy_name(ctx.log->policy()));
    lines.emplace_back("wal_healthy", w.healthy ? "1" : "0");
    lines.emplace_back("wal_segments", num(w.segments));
    lines.emplace_back("wal_bytes", num(w.bytes));
    lines.emplace_back("wal_records_total", num(w.records_appended));
    lines.emplace_back("wal_last_seq", num(w.last_seq));
    lines.emplace_back("wal_durable_seq", num(w.durable_seq));
    lines.emplace_back("wal_batches_total", num(w.writer.batches));
    lines.emplace_back("wal_fsyncs_total", num(w.writer.fsyncs));
    lines.emplace_back("wal_last_fsync_us", num(static_cast<uint64_t>(w.writer.last_fsync_us)));
    lines.emplace_back("wal_max_fsync_us", num(static_cast<uint64_t>(w.writer.max_fsync_us)));
    lines.emplace_back("wal_io_errors_total", num(w.writer.io_errors));
    lines.emplace_back("wal_segments_deleted_total", num(w.segments_deleted));
    if (ctx.journal != nullptr) {
      JournalStats j = ctx.journal->stats();
      lines.emplace_back("wal_live_bytes", num(j.live_bytes));
      lines.emplace_back("wal_compactions_total", num(j.compactions));
      lines.emplace_back("wal_moved_records_total", num(j.moved_records));
      lines.emplace_back("wal_compacting", j.compacting ? "1" : "0");
    }
  }
  for (const auto& spec : protocol::all_commands()) {
    std::string name = "commands_";
    for (char ch : spec.name) name += static_cast<char>(ch - 'A' + 'a');
    lines.emplace_back(std::move(name), num(s.commands_by_verb[static_cast<size_t>(spec.verb)]));
  }
  reply_lines(ctx, lines);
}

using Handler = void (*)(CommandContext&, const Request&);

constexpr std::array<Handler, static_cast<size_t>(Verb::kCount)> kHandlers = [] {
  std::array<Handler, static_cast<size_t>(Verb::kCount)> h{};
  h[static_cast<size_t>(Verb::kCreate)] = cmd_create;
  h[static_cast<size_t>(Verb::kEnqueue)] = cmd_enqueue;
  h[static_cast<size_t>(Verb::kDequeue)] = cmd_dequeue;
  h[static_cast<size_t>(Verb::kAck)] = cmd_ack;
  h[static_cast<size_t>(Verb::kList)] = cmd_list;
  h[static_cast<size_t>(Verb::kPing)] = cmd_ping;
  h[static_cast<size_t>(Verb::kHelp)] = cmd_help;
  h[static_cast<size_t>(Verb::kQuit)] = cmd_quit;
  h[static_cast<size_t>(Verb::kStats)] = cmd_stats;
  return h;
}();

}  // namespace

std::string io_error_reply(const wal::Log& log) {
  std::string line;
  protocol::append_error(line, ErrorCode::kIo,
                         "the log cannot be written (" + log.last_error() +
                             "); the outcome of this write is unknown, and writes are refused "
                             "until the disk recovers");
  return line;
}

void dispatch(CommandContext& ctx, const Request& request) {
  ++ctx.stats.commands_total;
  ++ctx.stats.commands_by_verb[static_cast<size_t>(request.spec->verb)];
  if (request.spec->has(protocol::kWrites) && ctx.log != nullptr && !ctx.log->healthy()) {
    // Refused before anything changes: this write surely did not happen.
    ++ctx.stats.errors_total;
    protocol::append_error(ctx.out, ErrorCode::kIo,
                           "the log cannot be written (" + ctx.log->last_error() +
                               "); writes are refused until the disk recovers, reads still work");
    return;
  }
  Handler handler = kHandlers[static_cast<size_t>(request.spec->verb)];
  if (handler == nullptr) {
    return reply_error(ctx, ErrorCode::kInternal, "no handler for a known command");
  }
  handler(ctx, request);
}

void reply_parse_error(CommandContext& ctx, const protocol::ParseError& error) {
  reply_error(ctx, error.code, error.message);
}

}  // namespace tq::server
