// The typed calls of Client: each builds its request line from checked
// arguments, sends it through exchange() (client.cc) and turns the reply into
// a value. Whether a call may be repeated after a reconnect is decided here,
// per command, as client.h explains.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>

#include "client/client.h"
#include "client/request_line.h"

namespace tq::client {
namespace {

// "<word> <number>" replies such as "kicked 3" or "touched 7 30000": the
// number after `prefix`, which must be the whole rest of the text.
Result<uint64_t> number_after(const std::string& text, std::string_view prefix) {
  std::string_view rest = text;
  if (rest.substr(0, prefix.size()) == prefix) {
    if (auto n = parse_u64(rest.substr(prefix.size()))) return *n;
  }
  return make_error(ErrorKind::kProtocol,
                    "expected OK " + std::string(prefix) + "<n>, got 'OK " + text + "'");
}

// LIST's "emails,orders": the names.
std::vector<std::string> queue_names(std::string_view text) {
  if (text.empty()) return {};
  const auto parts = split_commas(text);
  return {parts.begin(), parts.end()};
}

std::string_view state_word(JobState state) {
  switch (state) {
    case JobState::kReady:
      return "READY";
    case JobState::kDelayed:
      return "DELAYED";
    case JobState::kLeased:
      return "LEASED";
    case JobState::kDead:
      return "DEAD";
    case JobState::kHeld:
      return "HELD";
  }
  return "READY";
}

// "emails ready=3 held=0 delayed=1 leased=0 dead=0 paused=0".
std::optional<QueueInfo> parse_queue_line(std::string_view line) {
  QueueInfo info;
  size_t space = line.find(' ');
  info.name = std::string(line.substr(0, space));
  line = space == std::string_view::npos ? std::string_view{} : line.substr(space + 1);
  while (!line.empty()) {
    space = line.find(' ');
    std::string_view word = line.substr(0, space);
    line = space == std::string_view::npos ? std::string_view{} : line.substr(space + 1);
    size_t eq = word.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    auto value = parse_u64(word.substr(eq + 1));
    if (!value) return std::nullopt;
    std::string_view name = word.substr(0, eq);
    if (name == "ready") info.ready = *value;
    if (name == "held") info.held = *value;
    if (name == "delayed") info.delayed = *value;
    if (name == "leased") info.leased = *value;
    if (name == "dead") info.dead = *value;
    if (name == "paused") info.paused = *value != 0;
  }
  return info;
}

// "<name> <value>" lines (STATS, CONFIG).
Fields to_fields(const std::vector<std::string>& lines) {
  Fields fields;
  for (const std::string& line : lines) {
    size_t space = line.find(' ');
    fields.emplace_back(line.substr(0, space),
                        space == std::string::npos ? "" : line.substr(space + 1));
  }
  return fields;
}

}  // namespace

// --- Producers -----------------------------------------------------------------

Status Client::create(const std::string& queue) {
  if (auto bad = check_word(queue, "queue name"); !bad) return bad.error();
  auto reply = line_call("CREATE " + queue, Repeat::kNever);
  if (!reply) return reply.error();
  return Ok{};
}

Result<uint64_t> Client::enqueue(const std::string& queue, std::string_view payload,
                                 const EnqueueOptions& options) {
  auto put_reply = put(queue, payload, options);
  if (!put_reply) return put_reply.error();
  return put_reply->id;
}

Result<Client::PutWire> Client::put_wire(const std::string& queue, std::string_view payload,
                                         const EnqueueOptions& options) {
  if (auto bad = check_word(queue, "queue name"); !bad) return bad.error();
  if (!options.key.empty()) {
    if (auto bad = check_word(options.key, "dedup key"); !bad) return bad.error();
  }
  if (!options.group.empty()) {
    if (auto bad = check_word(options.group, "group name"); !bad) return bad.error();
  }
  PutWire put;
  std::string& line = put.wire;
  line = "PUT " + queue + " " + std::to_string(payload.size());
  if (options.priority != 0) line += " PRIORITY " + std::to_string(options.priority);
  if (options.delay) line += " DELAY " + format_duration(*options.delay);
  if (options.at) {
    // AT takes whole seconds; rounded up, as the job is "not before" it.
    auto seconds = std::chrono::ceil<std::chrono::seconds>(options.at->time_since_epoch());
    line += " AT " + std::to_string(std::max<int64_t>(seconds.count(), 0));
  }
  if (options.ttl) line += " TTL " + format_duration(*options.ttl);
  if (options.attempts) line += " ATTEMPTS " + std::to_string(*options.attempts);
  if (!options.group.empty()) line += " GROUP " + options.group;
  // Without a key a repeat could store the job twice, so a client that may
  // repeat (one with a reconnect policy) always sends one.
  put.key_is_ours = options.key.empty() && options_.reconnect.attempts > 0;
  if (put.key_is_ours) {
    line += " KEY " + generated_key();
  } else if (!options.key.empty()) {
    line += " KEY " + options.key;
  }
  line += '\n';
  line.append(payload);
  line += '\n';
  return put;
}

Result<Enqueued> Client::parse_put_reply(const Reply& reply, bool key_is_ours) {
  std::string_view text = reply.text;
  Enqueued result;
  constexpr std::string_view kDuplicate = " DUPLICATE";
  if (text.size() > kDuplicate.size() &&
      text.substr(text.size() - kDuplicate.size()) == kDuplicate) {
    result.duplicate = !key_is_ours;
    text.remove_suffix(kDuplicate.size());
  }
  auto id = parse_u64(text);
  if (!id) {
    return make_error(ErrorKind::kProtocol, "expected OK <id>, got 'OK " + reply.text + "'");
  }
  result.id = *id;
  return result;
}

Result<Enqueued> Client::put(const std::string& queue, std::string_view payload,
                             const EnqueueOptions& options) {
  auto put = put_wire(queue, payload, options);
  if (!put) return put.error();
  const Repeat repeat = put->key_is_ours || !options.key.empty() ? Repeat::kSafe : Repeat::kNever;
  auto reply =
      exchange(put->wire, protocol::ReplyShape::kLine, repeat, options_.timeout_ms, nullptr);
  if (!reply) return reply.error();
  return parse_put_reply(*reply, put->key_is_ours);
}

Result<std::vector<Result<uint64_t>>> Client::put_many(const std::string& queue,
                                                       std::span<const std::string_view> payloads,
                                                       const EnqueueOptions& options) {
  if (!options.key.empty()) {
    return make_error(ErrorKind::kBadArgument,
                      "put_many takes no dedup key: a key names one job (use put)");
  }
  std::vector<Result<uint64_t>> ids;
  ids.reserve(payloads.size());
  // Keys of our own, or none at all: one answer for the whole round.
  const Repeat repeat = options_.reconnect.attempts > 0 ? Repeat::kSafe : Repeat::kNever;
  std::string wire;
  // The requests (keys and all) of jobs from `first` on that were sent and
  // refused as the server closed: they go again as they were, since an
  // earlier send of the round, lost, may have stored them under that key.
  // `maybe_stored` marks those whose earlier send was lost: if they cannot
  // be sent again, their outcome is unknown, not "not stored".
  std::vector<std::string> unsent;
  std::vector<bool> maybe_stored;
  for (size_t first = 0; first < payloads.size();) {
    const size_t count = std::min(kPutRound, payloads.size() - first);
    wire.clear();
    std::vector<std::string> round;
    round.reserve(count);
    for (size_t i = first; i < first + count; ++i) {
      if (i - first < unsent.size()) {
        round.push_back(std::move(unsent[i - first]));
      } else {
        auto put = put_wire(queue, payloads[i], options);
        if (!put) return put.error();
        round.push_back(std::move(put->wire));
      }
      wire += round.back();
    }
    maybe_stored.resize(count, false);
    bool lost_a_send = false;
    auto replies = exchange_many(wire, count, protocol::ReplyShape::kLine, repeat,
                                 options_.timeout_ms, nullptr, false, &lost_a_send);
    if (lost_a_send) maybe_stored.assign(count, true);
    if (!replies) {
      for (size_t i = 0; i < count; ++i) {
        const Error& e = replies.error();
        ids.emplace_back(maybe_stored[i] && !e.outcome_unknown()
                             ? make_error(ErrorKind::kNetwork,
                                          "an earlier send of this job was lost, so it may be "
                                          "stored; then: " +
                                              e.to_string())
                             : e);
      }
      return ids;
    }
    // A server that closes the connection partway through a round (a restart,
    // limits.idle_timeout) answers the rest with its closing line: those
    // were not run, and with a reconnect policy they go again, first in the
    // next round. The first reply is never such a line (exchange_many sends
    // the round again then), so each round moves on.
    size_t answered = replies->size();
    while (repeat == Repeat::kSafe && answered > 1 && !(*replies)[answered - 1] &&
           (*replies)[answered - 1].error().server_closing()) {
      --answered;
    }
    for (size_t i = 0; i < answered; ++i) {
      Result<Reply>& reply = (*replies)[i];
      if (reply) {
        auto put = parse_put_reply(*reply, repeat == Repeat::kSafe);
        ids.emplace_back(put ? Result<uint64_t>(put->id) : Result<uint64_t>(put.error()));
      } else {
        ids.emplace_back(reply.error());
      }
    }
    unsent.assign(std::make_move_iterator(round.begin() + static_cast<ptrdiff_t>(answered)),
                  std::make_move_iterator(round.end()));
    maybe_stored.erase(maybe_stored.begin(),
                       maybe_stored.begin() + static_cast<ptrdiff_t>(answered));
    first += answered;
  }
  return ids;
}

// --- Workers -------------------------------------------------------------------

Result<std::vector<Job>> Client::dequeue_many(const std::vector<std::string>& queues,
                                              const DequeueOptions& options) {
  if (queues.empty()) return make_error(ErrorKind::kBadArgument, "DEQUEUE needs a queue");
  std::string line = "DEQUEUE";
  for (const std::string& queue : queues) {
    if (auto bad = check_word(queue, "queue name"); !bad) return bad.error();
    line += " " + queue;
  }
  if (options.wait.count() > 0) line += " WAIT " + format_duration(options.wait);
  // Always COUNT: the framed reply carries payloads byte for byte, and the
  // job's queue and attempts.
  line += " COUNT " + std::to_string(std::max<size_t>(options.count, 1));
  line += '\n';
  // The reply may take the whole wait, and then as long as any other reply.
  const int timeout_ms =
      static_cast<int>(std::min<int64_t>(options_.timeout_ms + options.wait.count(), INT32_MAX));
  auto reply =
      exchange(line, protocol::ReplyShape::kJobs, Repeat::kSafe, timeout_ms, options.cancel);
  if (!reply) return reply.error();
  return std::move(reply->jobs);
}

Result<std::optional<Job>> Client::dequeue(const std::string& queue, milliseconds wait) {
  auto jobs = dequeue_many({queue}, {.wait = wait});
  if (!jobs) return jobs.error();
  if (jobs->empty()) return std::optional<Job>{};
  return std::optional<Job>(std::move(jobs->front()));
}

namespace {

// How ACK, NACK, FAIL and TOUCH name a delivery: "<id>@<lease>" when the job
// came with its lease token, else "<id>".
std::string delivery_ref(const Job& job) {
  std::string ref = std::to_string(job.id);
  if (job.lease) ref += "@" + std::to_string(*job.lease);
  return ref;
}

}  // namespace

Status Client::ack(const Job& job) {
  return ack_ref(delivery_ref(job));
}
Status Client::ack(uint64_t id) {
  return ack_ref(std::to_string(id));
}

Status Client::ack_ref(const std::string& ref) {
  auto reply = line_call("ACK " + ref, Repeat::kNever);
  if (!reply) return reply.error();
  return Ok{};
}

Result<uint64_t> Client::ack(std::span<const Job> jobs) {
  std::vector<std::string> refs;
  for (const Job& job : jobs) refs.push_back(delivery_ref(job));
  return ack_refs(refs);
}

Result<uint64_t> Client::ack(std::span<const uint64_t> ids) {
  std::vector<std::string> refs;
  for (uint64_t id : ids) refs.push_back(std::to_string(id));
  return ack_refs(refs);
}

Result<uint64_t> Client::ack_refs(const std::vector<std::string>& refs) {
  if (refs.empty()) return uint64_t{0};
  std::string line = "ACK";
  for (const std::string& ref : refs) line += " " + ref;
  auto reply = line_call(line, Repeat::kNever);
  if (!reply) return reply.error();
  // One job, however often given: the reply names it, not a count. (The
  // server refuses one job given in two ways, 7 and 7@2, so equal words
  // are the only way to name one job twice.)
  if (std::all_of(refs.begin(), refs.end(),
                  [&](const std::string& ref) { return ref == refs.front(); })) {
    return uint64_t{1};
  }
  return number_after(*reply, "acked ");
}

Result<NackOutcome> Client::nack(const Job& job, std::optional<milliseconds> delay,
                                 std::optional<int32_t> priority) {
  return nack_ref(delivery_ref(job), delay, priority);
}

Result<NackOutcome> Client::nack(uint64_t id, std::optional<milliseconds> delay,
                                 std::optional<int32_t> priority) {
  return nack_ref(std::to_string(id), delay, priority);
}

Result<NackOutcome> Client::nack_ref(const std::string& ref, std::optional<milliseconds> delay,
                                     std::optional<int32_t> priority) {
  std::string line = "NACK " + ref;
  if (delay) line += " DELAY " + format_duration(*delay);
  if (priority) line += " PRIORITY " + std::to_string(*priority);
  auto reply = line_call(line, Repeat::kNever);
  if (!reply) return reply.error();
  if (reply->rfind("dead ", 0) == 0) return NackOutcome::kDead;
  if (reply->rfind("nacked ", 0) == 0) return NackOutcome::kRetry;
  if (reply->rfind("expired ", 0) == 0) return NackOutcome::kExpired;
  return make_error(
      ErrorKind::kProtocol,
      "expected OK nacked <id>, OK dead <id> or OK expired <id>, got 'OK " + *reply + "'");
}

Status Client::fail(const Job& job, std::string_view reason) {
  return fail_ref(delivery_ref(job), reason);
}

Status Client::fail(uint64_t id, std::string_view reason) {
  return fail_ref(std::to_string(id), reason);
}

Status Client::fail_ref(const std::string& ref, std::string_view reason) {
  if (auto bad = check_line(reason); !bad) return bad.error();
  // The server needs a reason; an empty one would be a wrong number of arguments.
  std::string line =
      "FAIL " + ref + " " + (reason.empty() ? std::string("failed") : std::string(reason));
  auto reply = line_call(line, Repeat::kNever);
  if (!reply) return reply.error();
  return Ok{};
}

Result<milliseconds> Client::touch(const Job& job, std::optional<milliseconds> lease,
                                   std::optional<milliseconds> patience) {
  return touch_ref(job.id, delivery_ref(job), lease, patience);
}

Result<milliseconds> Client::touch(uint64_t id, std::optional<milliseconds> lease,
                                   std::optional<milliseconds> patience) {
  return touch_ref(id, std::to_string(id), lease, patience);
}

Result<milliseconds> Client::touch_ref(uint64_t id, const std::string& ref,
                                       std::optional<milliseconds> lease,
                                       std::optional<milliseconds> patience) {
  std::string line = "TOUCH " + ref;
  if (lease) line += " " + format_duration(*lease);
  auto reply = line_call(line, Repeat::kNever, patience);
  if (!reply) return reply.error();
  auto left = number_after(*reply, "touched " + std::to_string(id) + " ");
  if (!left) return left.error();
  return milliseconds(static_cast<int64_t>(*left));
}

Status Client::delete_job(uint64_t id) {
  auto reply = line_call("DELETE " + std::to_string(id), Repeat::kNever);
  if (!reply) return reply.error();
  return Ok{};
}

// --- Queues --------------------------------------------------------------------

Result<std::vector<std::string>> Client::list() {
  auto reply = line_call("LIST", Repeat::kSafe);
  if (!reply) return reply.error();
  return queue_names(*reply);
}

Result<std::vector<std::string>> Client::list(milliseconds patience) {
  if (!connected()) return make_error(ErrorKind::kConnect, "not connected to " + address());
  auto reply = line_call("LIST", Repeat::kNever, patience);
  if (!reply) return reply.error();
  return queue_names(*reply);
}

Result<std::vector<QueueInfo>> Client::queues() {
  auto reply = exchange("QUEUES\n", protocol::ReplyShape::kCountedLines, Repeat::kSafe,
                        options_.timeout_ms, nullptr);
  if (!reply) return reply.error();
  std::vector<QueueInfo> infos;
  for (const std::string& line : reply->lines) {
    auto info = parse_queue_line(line);
    if (!info) return make_error(ErrorKind::kProtocol, "unreadable QUEUES line '" + line + "'");
    infos.push_back(std::move(*info));
  }
  return infos;
}

Result<std::vector<Job>> Client::peek(const std::string& queue, JobState state, size_t n) {
  if (auto bad = check_word(queue, "queue name"); !bad) return bad.error();
  std::string line =
      "PEEK " + queue + " " + std::string(state_word(state)) + " " + std::to_string(n) + "\n";
  auto reply =
      exchange(line, protocol::ReplyShape::kJobs, Repeat::kSafe, options_.timeout_ms, nullptr);
  if (!reply) return reply.error();
  return std::move(reply->jobs);
}

Result<Job> Client::job(uint64_t id) {
  auto reply = exchange("JOB " + std::to_string(id) + "\n", protocol::ReplyShape::kJobs,
                        Repeat::kSafe, options_.timeout_ms, nullptr);
  if (!reply) return reply.error();
  if (reply->jobs.size() != 1) {
    return make_error(ErrorKind::kProtocol,
                      "JOB answered " + std::to_string(reply->jobs.size()) + " jobs, not one");
  }
  return std::move(reply->jobs.front());
}

Result<uint64_t> Client::kick(const std::string& queue, std::optional<size_t> n) {
  if (auto bad = check_word(queue, "queue name"); !bad) return bad.error();
  // The server reads KICK <digits> as a job id (no queue name is only
  // digits): sent as it is, this would kick a job, not refuse the name.
  if (!n && queue.find_first_not_of("0123456789") == std::string::npos) {
    return make_error(ErrorKind::kBadArgument,
                      "queue name '" + queue.substr(0, 64) +
                          "' is only digits, which no queue name is (kick_job takes a job id)");
  }
  std::string line = "KICK " + queue;
  if (n) line += " " + std::to_string(*n);
  auto reply = line_call(line, Repeat::kNever);
  if (!reply) return reply.error();
  return number_after(*reply, "kicked ");
}

Result<uint64_t> Client::redrive(const std::string& queue, std::optional<size_t> n) {
  if (auto bad = check_word(queue, "queue name"); !bad) return bad.error();
  std::string line = "REDRIVE " + queue;
  if (n) line += " " + std::to_string(*n);
  auto reply = line_call(line, Repeat::kNever);
  if (!reply) return reply.error();
  return number_after(*reply, "redriven ");
}

Status Client::kick_job(uint64_t id) {
  auto reply = line_call("KICK " + std::to_string(id), Repeat::kNever);
  if (!reply) return reply.error();
  return Ok{};
}

Result<Fields> Client::config(const std::string& queue, const Fields& changes) {
  if (auto bad = check_word(queue, "queue name"); !bad) return bad.error();
  std::string line = "CONFIG " + queue;
  for (const auto& [key, value] : changes) {
    std::string setting = key + "=" + value;
    if (auto bad = check_word(setting, "setting"); !bad) return bad.error();
    line += " " + setting;
  }
  line += '\n';
  auto reply =
      exchange(line, protocol::ReplyShape::kCountedLines,
               changes.empty() ? Repeat::kSafe : Repeat::kNever, options_.timeout_ms, nullptr);
  if (!reply) return reply.error();
  return to_fields(reply->lines);
}

Status Client::pause(const std::string& queue, std::optional<milliseconds> duration) {
  if (auto bad = check_word(queue, "queue name"); !bad) return bad.error();
  std::string line = "PAUSE " + queue;
  if (duration) line += " " + format_duration(*duration);
  auto reply = line_call(line, Repeat::kNever);
  if (!reply) return reply.error();
  return Ok{};
}

Status Client::resume(const std::string& queue) {
  if (auto bad = check_word(queue, "queue name"); !bad) return bad.error();
  auto reply = line_call("RESUME " + queue, Repeat::kNever);
  if (!reply) return reply.error();
  return Ok{};
}

Result<uint64_t> Client::purge(const std::string& queue, bool dead) {
  if (auto bad = check_word(queue, "queue name"); !bad) return bad.error();
  auto reply = line_call("PURGE " + queue + (dead ? " DEAD" : ""), Repeat::kNever);
  if (!reply) return reply.error();
  return number_after(*reply, "purged ");
}

Status Client::drop(const std::string& queue) {
  if (auto bad = check_word(queue, "queue name"); !bad) return bad.error();
  auto reply = line_call("DROP " + queue, Repeat::kNever);
  if (!reply) return reply.error();
  return Ok{};
}

namespace {

// "<name> next=<ms> fired=<n> bytes=<n> [...] every=<ms>ms" or "... cron=<expression>".
std::optional<ScheduleInfo> parse_schedule_line(std::string_view line) {
  ScheduleInfo info;
  size_t space = line.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  info.name = std::string(line.substr(0, space));
  std::string_view rest = line.substr(space + 1);
  // cron= is last and holds spaces: everything after it is its value. (A
  // group or name may hold "cron=", never " cron=": they have no spaces.)
  size_t cron = rest.rfind(" cron=");
  if (cron != std::string_view::npos) ++cron;
  std::string_view words = cron == std::string_view::npos ? rest : rest.substr(0, cron);
  while (!words.empty()) {
    space = words.find(' ');
    std::string_view word = words.substr(0, space);
    words = space == std::string_view::npos ? std::string_view{} : words.substr(space + 1);
    if (word.empty()) continue;
    size_t eq = word.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    info.fields.emplace_back(std::string(word.substr(0, eq)), std::string(word.substr(eq + 1)));
    if (word.rfind("every=", 0) == 0) info.when = std::string(word);
  }
  if (cron != std::string_view::npos) {
    info.when = std::string(rest.substr(cron));
    info.fields.emplace_back("cron", std::string(rest.substr(cron + 5)));
  }
  auto next = parse_u64(field(info.fields, "next"));
  auto fired = parse_u64(field(info.fields, "fired"));
  if (!next || !fired || info.when.empty()) return std::nullopt;
  info.next_ms = static_cast<int64_t>(*next);
  info.fired = *fired;
  return info;
}

Result<std::vector<ScheduleInfo>> to_schedules(const std::vector<std::string>& lines) {
  std::vector<ScheduleInfo> schedules;
  for (const std::string& line : lines) {
    auto info = parse_schedule_line(line);
    if (!info) return make_error(ErrorKind::kProtocol, "unreadable SCHEDULE line '" + line + "'");
    schedules.push_back(std::move(*info));
  }
  return schedules;
}

}  // namespace

Result<ScheduleInfo> Client::schedule(const std::string& queue, const std::string& name,
                                      std::string_view payload, const ScheduleOptions& options) {
  if (auto bad = check_word(queue, "queue name"); !bad) return bad.error();
  if (auto bad = check_word(name, "schedule name"); !bad) return bad.error();
  if (!options.group.empty()) {
    if (auto bad = check_word(options.group, "group name"); !bad) return bad.error();
  }
  if (!options.tz.empty()) {
    if (auto bad = check_word(options.tz, "time zone"); !bad) return bad.error();
    if (options.every) return make_error(ErrorKind::kBadArgument, "tz goes with cron, not every");
  }
  std::string line = "SCHEDULE " + queue + " " + name + " " + std::to_string(payload.size());
  if (options.every) {
    line += " EVERY " + format_duration(*options.every);
  } else {
    if (auto bad = check_line(options.cron); !bad) return bad.error();
    if (options.cron.empty()) {
      return make_error(ErrorKind::kBadArgument, "a schedule needs every or cron");
    }
    line += " CRON " + options.cron;
    if (!options.tz.empty()) line += " TZ " + options.tz;
  }
  if (options.priority != 0) line += " PRIORITY " + std::to_string(options.priority);
  if (options.ttl) line += " TTL " + format_duration(*options.ttl);
  if (options.attempts) line += " ATTEMPTS " + std::to_string(*options.attempts);
  if (!options.group.empty()) line += " GROUP " + options.group;
  std::string wire = line + "\n";
  wire.append(payload);
  wire += '\n';
  // Setting the same schedule twice leaves what once does: safe to repeat.
  auto reply = exchange(wire, protocol::ReplyShape::kCountedLines, Repeat::kSafe,
                        options_.timeout_ms, nullptr);
  if (!reply) return reply.error();
  auto listed = to_schedules(reply->lines);
  if (!listed) return listed.error();
  if (listed->size() != 1) return make_error(ErrorKind::kProtocol, "SCHEDULE answered no schedule");
  return std::move(listed->front());
}

Result<std::vector<ScheduleInfo>> Client::schedules(const std::string& queue) {
  if (auto bad = check_word(queue, "queue name"); !bad) return bad.error();
  auto reply = exchange("SCHEDULE " + queue + "\n", protocol::ReplyShape::kCountedLines,
                        Repeat::kSafe, options_.timeout_ms, nullptr);
  if (!reply) return reply.error();
  return to_schedules(reply->lines);
}

Status Client::cancel_schedule(const std::string& queue, const std::string& name) {
  if (auto bad = check_word(queue, "queue name"); !bad) return bad.error();
  if (auto bad = check_word(name, "schedule name"); !bad) return bad.error();
  auto reply = line_call("CANCEL " + queue + " " + name, Repeat::kNever);
  if (!reply) return reply.error();
  return Ok{};
}

// --- Server --------------------------------------------------------------------

Result<Fields> Client::stats(const std::string& queue, const CancelToken* cancel) {
  std::string line = "STATS";
  if (!queue.empty()) {
    if (auto bad = check_word(queue, "queue name"); !bad) return bad.error();
    line += " " + queue;
  }
  line += '\n';
  auto reply = exchange(line, protocol::ReplyShape::kCountedLines, Repeat::kSafe,
                        options_.timeout_ms, cancel);
  if (!reply) return reply.error();
  return to_fields(reply->lines);
}

Status Client::ping() {
  auto reply = line_call("PING", Repeat::kSafe);
  if (!reply) return reply.error();
  return Ok{};
}

Result<std::vector<std::string>> Client::help(const std::string& verb) {
  std::string line = "HELP";
  if (!verb.empty()) {
    if (auto bad = check_word(verb, "command"); !bad) return bad.error();
    line += " " + verb;
  }
  line += '\n';
  auto reply = exchange(line, protocol::ReplyShape::kCountedLines, Repeat::kSafe,
                        options_.timeout_ms, nullptr);
  if (!reply) return reply.error();
  return std::move(reply->lines);
}

Status Client::auth(const std::string& password) {
  if (auto bad = check_word(password, "password"); !bad) return bad.error();
  auto reply = line_call("AUTH " + password, Repeat::kNever);
  if (!reply) return reply.error();
  options_.password = password;
  return Ok{};
}

}  // namespace tq::client
