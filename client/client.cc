// The connection side of Client: connecting, authenticating, reconnecting,
// and exchange(), through which every call goes. The typed calls are in
// client_commands.cc.
#include "client/client.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <thread>

#include "client/request_line.h"

namespace tq::client {
namespace {

// A reply after which this connection is of no more use: it broke, or the
// server is going away, turned us away, or closed it for a timeout (a
// request sent as it did so gets that line and was not run: one safe to
// repeat is sent again on a new connection).
bool connection_is_lost(const Error& e) {
  return e.kind != ErrorKind::kServer || e.server_closing();
}

// The server reads exactly as many bytes after the line as its byte count
// says, whatever they are: a body of another length, or one after a count
// that declares none, would be read as requests (or requests as body), and
// the connection would answer out of step. A count of digits past 2^64 - 1
// has the server drop every byte that follows, every later request with it.
Status check_body_length(std::string_view count, std::string_view body) {
  const bool digits = !count.empty() && std::all_of(count.begin(), count.end(),
                                                    [](char c) { return c >= '0' && c <= '9'; });
  const std::optional<uint64_t> bytes = parse_u64(count);
  if (digits && !bytes) {
    return make_error(ErrorKind::kBadArgument,
                      "the byte count " + std::string(count.substr(0, 40)) +
                          " is past 2^64 - 1: the server would read everything sent after it as "
                          "its body, later requests included");
  }
  if (!bytes && !body.empty()) {
    return make_error(ErrorKind::kBadArgument,
                      "'" + std::string(count.substr(0, 40)) +
                          "' is no byte count, so the server would read the body as requests");
  }
  if (bytes && *bytes != body.size()) {
    return make_error(ErrorKind::kBadArgument, "the body has " + std::to_string(body.size()) +
                                                   " bytes but the line announces " +
                                                   std::to_string(*bytes));
  }
  return Ok{};
}

}  // namespace

ReconnectPolicy ReconnectPolicy::lasting(milliseconds span) {
  ReconnectPolicy policy;
  if (span <= milliseconds(0)) return policy;
  policy.span = span;
  // The pauses double up to max_delay, then stay there: count the doubling
  // ones, then divide what is left (rounding up).
  int64_t attempts = 1;
  milliseconds paused{0};
  milliseconds delay = policy.first_delay;
  while (paused < span && delay < policy.max_delay) {
    paused += delay;
    ++attempts;
    delay = std::min(delay * 2, policy.max_delay);
  }
  if (paused < span) {
    attempts += (span - paused + policy.max_delay - milliseconds(1)) / policy.max_delay;
  }
  policy.attempts = static_cast<int>(std::min<int64_t>(attempts, INT32_MAX - 1));
  return policy;
}

Client::Client(Options options)
    : options_(std::move(options)), key_random_(std::random_device{}()) {
  socket_.set_timeout_ms(options_.timeout_ms);
}

Result<Client> Client::connect(const Options& options) {
  Client client(options);
  if (auto connected = client.connect_once(); !connected) return connected.error();
  return client;
}

Status Client::connect_once(const CancelToken* cancel, bool* unanswered) {
  close();
  auto socket = LineSocket::connect(options_.host, options_.port, options_.timeout_ms, options_.tls,
                                    cancel, unanswered);
  if (!socket) return socket.error();
  socket_ = std::move(socket).value();
  if (options_.password.empty()) return Ok{};
  // On this connection or not at all: exchange() replaces a connection it
  // finds closed (a server turning connections away closes each at once),
  // and doing so from here, inside the reconnect loop, would recurse
  // without end.
  authenticating_ = true;
  auto authed = exchange("AUTH " + options_.password + "\n", protocol::ReplyShape::kLine,
                         Repeat::kNever, options_.timeout_ms, cancel);
  authenticating_ = false;
  if (!authed) {
    socket_.close();
    const Error& why = authed.error();
    if (why.kind == ErrorKind::kServer || why.kind == ErrorKind::kCancelled ||
        why.kind == ErrorKind::kConnect) {
      return why;
    }
    // No answer to AUTH (or none this client can read): not connected, and
    // nothing of the caller's was sent, so not an unknown outcome.
    if (unanswered != nullptr) *unanswered = why.kind == ErrorKind::kTimeout;
    return make_error(ErrorKind::kConnect, address() + ": AUTH: " + why.to_string());
  }
  return Ok{};
}

Status Client::reconnect(const CancelToken* cancel) {
  return connect_once(cancel);
}

Status Client::ensure_connected(const CancelToken* cancel) {
  const ReconnectPolicy& policy = options_.reconnect;
  // A connection the server has closed is not used even without a policy: a
  // request sent on it would be lost with its outcome unknown, when it is
  // known not to have been sent.
  if (socket_.is_open() && !socket_.peer_closed()) return Ok{};
  const std::string refused = socket_.closed_reason();
  if (!refused.empty()) {
    // The server refused this client's TLS session (its certificate):
    // connecting again would be refused again.
    socket_.close();
    return make_error(ErrorKind::kConnect, address() + ": TLS: " + refused);
  }
  if (policy.attempts == 0 || authenticating_) {
    const bool closed_by_server = socket_.is_open();
    // Turned away (MAXCONN): the server's words, not "not connected".
    if (auto parting = parting_error()) return *parting;
    socket_.close();
    return make_error(ErrorKind::kConnect,
                      "not connected to " + address() +
                          (closed_by_server ? " (the server closed the connection"
                                            : " (the connection was lost") +
                          "; reconnect() opens a new one)");
  }
  if (socket_.is_open() && policy.on_lost) {
    // Closed by the server while idle: its last word, if it said one.
    std::optional<Error> parting = parting_error();
    policy.on_lost(parting ? *parting
                           : make_error(ErrorKind::kConnect,
                                        address() + ": the server closed the connection"));
  }
  const CancelToken* stop = cancel != nullptr ? cancel : policy.cancel;
  milliseconds delay = policy.first_delay;
  milliseconds paused{0};
  Error last;
  for (int attempt = 0; attempt < policy.attempts; ++attempt) {
    if (attempt > 0) {
      if (policy.span > milliseconds(0)) {
        delay = std::clamp(policy.span - paused, milliseconds(0), delay);
      }
      paused += delay;
      if (policy.on_retry) policy.on_retry(attempt, last, delay);
      bool slept = true;
      if (stop != nullptr) {
        slept = stop->sleep_for_ms(static_cast<int>(delay.count()));
      } else {
        std::this_thread::sleep_for(delay);  // a pause between attempts, not a synchronisation
      }
      if (!slept) return make_error(ErrorKind::kCancelled, "stopped reconnecting");
      delay = std::min(delay * 2, policy.max_delay);
    }
    // The policy's token ends the pauses, not the first attempt: a call made
    // after it fired (a worker handing back, as it stops, the job it held
    // when its connection was lost) still gets one try, within the timeout.
    bool unanswered = false;
    auto connected = connect_once(attempt == 0 ? cancel : stop, &unanswered);
    if (connected) return Ok{};
    if (connected.error().kind == ErrorKind::kCancelled) return connected;
    last = connected.error();
    // A wrong password will not get better by trying again; a server that
    // takes connections and does not answer (stopped, stalled) would make
    // each attempt wait a whole timeout (exchange_many: no reply in time).
    if (last.is(protocol::ErrorCode::kNoAuth) || unanswered) break;
  }
  return last;
}

std::optional<Error> Client::parting_error() {
  // Only a line no request asked for can be the server's last word.
  if (!socket_.is_open() || owed_replies_ > 0 || !socket_.peer_closed()) return std::nullopt;
  // The server closed after writing it, so it is here already: no waiting.
  socket_.set_timeout_ms(0);
  auto last = read_reply(socket_, protocol::ReplyShape::kLine);
  socket_.set_timeout_ms(options_.timeout_ms);
  close();
  if (last || last.error().kind != ErrorKind::kServer) return std::nullopt;
  return last.error();
}

Status Client::settle_owed_replies(int timeout_ms, const CancelToken* cancel, bool keep_if_late) {
  while (owed_replies_ > 0) {
    socket_.set_timeout_ms(timeout_ms);
    socket_.set_cancel(cancel);
    auto late = read_reply(socket_, protocol::ReplyShape::kLine);
    socket_.set_timeout_ms(options_.timeout_ms);
    socket_.set_cancel(nullptr);
    // An ERROR line is a whole reply too.
    if (late || late.error().kind == ErrorKind::kServer) {
      --owed_replies_;
      continue;
    }
    if (keep_if_late && late.error().kind == ErrorKind::kTimeout) return late.error();
    close();
    return make_error(ErrorKind::kUnanswered,
                      "the server did not answer an earlier request (" + late.error().to_string() +
                          "), so the connection to " + address() + " was closed");
  }
  return Ok{};
}

Result<Reply> Client::exchange(std::string_view wire, protocol::ReplyShape shape, Repeat repeat,
                               int read_timeout_ms, const CancelToken* cancel, bool keep_if_late) {
  auto replies = exchange_many(wire, 1, shape, repeat, read_timeout_ms, cancel, keep_if_late);
  if (!replies) return replies.error();
  return std::move(replies->front());
}

Result<std::vector<Result<Reply>>> Client::exchange_many(std::string_view wire, size_t count,
                                                         protocol::ReplyShape shape, Repeat repeat,
                                                         int read_timeout_ms,
                                                         const CancelToken* cancel,
                                                         bool keep_if_late, bool* lost_a_send) {
  const int max_sends = repeat == Repeat::kSafe ? 1 + options_.reconnect.attempts : 1;
  // The loss of an earlier send of this call: the server may have carried it
  // out, so a later failure to reconnect must not read as "nothing was sent".
  std::optional<Error> unsettled;
  auto failed_after = [&](const Error& now) {
    if (!unsettled) return now;
    Error e = *unsettled;
    e.message += "; then: " + now.to_string();
    return e;
  };
  std::vector<Result<Reply>> replies;
  for (int sends = 1;; ++sends) {
    if (auto ready = ensure_connected(cancel); !ready) return failed_after(ready.error());
    if (auto settled = settle_owed_replies(read_timeout_ms, cancel, keep_if_late); !settled) {
      if (keep_if_late || options_.reconnect.attempts == 0) return failed_after(settled.error());
      if (auto ready = ensure_connected(cancel); !ready) return failed_after(ready.error());
    }
    // Fired already: nothing is sent. A DEQUEUE sent now would be given up
    // on at its first wait, and a job the server handed it meanwhile would
    // stay leased to nobody until its ack_timeout, an attempt spent.
    if (cancel != nullptr && cancel->cancelled()) {
      return failed_after(make_error(ErrorKind::kCancelled, "cancelled before sending"));
    }
    socket_.set_timeout_ms(read_timeout_ms);
    socket_.set_cancel(cancel);
    auto sent = socket_.send(wire);
    std::optional<Error> lost;
    if (!sent) lost = sent.error();
    replies.clear();
    while (!lost && replies.size() < count) {
      Result<Reply> reply = read_reply(socket_, shape);
      if (!reply && connection_is_lost(reply.error())) {
        lost = reply.error();
      } else {
        replies.push_back(std::move(reply));
      }
    }
    socket_.set_timeout_ms(options_.timeout_ms);
    socket_.set_cancel(nullptr);
    if (!lost) return replies;
    if (lost->kind == ErrorKind::kServer && !replies.empty()) {
      // The server answered these, then said it is closing (TIMEOUT,
      // SHUTDOWN): it ran them, and not the rest, which get its line. Not
      // sent again: the requests are in one piece of wire.
      close();
      while (replies.size() < count) replies.push_back(*lost);
      return replies;
    }
    if (keep_if_late && sent && count == 1 && shape == protocol::ReplyShape::kLine &&
        lost->kind == ErrorKind::kTimeout) {
      ++owed_replies_;  // nothing of it was read: the stream is still in step
      return *lost;
    }
    close();
    // Refused as the server closed the connection (ERROR SHUTDOWN: it is
    // stopping; TIMEOUT; MAXCONN) with nothing of the call answered: not
    // run, so with a reconnect policy any request goes again on a new
    // connection, a write too. A worker's ACK sent while tqd restarts is
    // then done on the restarted tqd, which kept the lease. Not the AUTH of
    // a connect: the reconnect loop around it tries again.
    const bool not_run = lost->server_closing() && !authenticating_;
    const int sends_allowed = not_run ? 1 + options_.reconnect.attempts : max_sends;
    if (lost->kind == ErrorKind::kCancelled || sends >= sends_allowed) return *lost;
    // No reply in time: the server took the connection and the request and
    // said nothing (stopped, stalled on its disk, cut off). A copy on a new
    // connection would wait as long again, each send a whole timeout, so
    // the call ends after one; the next call connects again.
    if (lost->kind == ErrorKind::kTimeout) return *lost;
    if (sent && lost->outcome_unknown()) {
      unsettled = *lost;
      if (lost_a_send != nullptr) *lost_a_send = true;
    }
    if (options_.reconnect.on_lost) options_.reconnect.on_lost(*lost);
  }
}

Result<Reply> Client::request(std::string_view line, std::string_view body,
                              const CancelToken* cancel) {
  auto words = split_request(line);
  if (!words) return words.error();
  const protocol::CommandSpec* spec =
      words->empty() ? nullptr : protocol::find_command((*words)[0]);
  protocol::ReplyShape shape = protocol::ReplyShape::kLine;
  Repeat repeat = Repeat::kNever;
  int timeout_ms = options_.timeout_ms;
  if (spec != nullptr) {
    std::vector<std::string_view> args(words->begin() + 1, words->end());
    shape = protocol::reply_shape(*spec, args);
    if (!protocol::request_writes(*spec, args)) repeat = Repeat::kSafe;
    // A DEQUEUE that may wait d needs d more to answer.
    if (spec->has(protocol::kMayBlock)) {
      timeout_ms =
          static_cast<int>(std::min<int64_t>(timeout_ms + wait_argument(args).count(), INT32_MAX));
    }
    // A BACKUP answers when its copy is done, which takes as long as the
    // disk does; sent again after a lost connection, it would only find
    // the first one still running. A KICK of ten million jobs takes seconds
    // too (in steps, between other clients' requests).
    if (spec->has(protocol::kLong)) {
      timeout_ms = INT32_MAX;
      repeat = Repeat::kNever;
    }
  }
  std::string wire(line);
  wire += '\n';
  // A body goes with a line that gives its length (SCHEDULE <queue> alone
  // lists, and has none).
  if (spec != nullptr && spec->body_length_arg >= 0 &&
      words->size() > static_cast<size_t>(spec->body_length_arg) + 1) {
    if (auto bad =
            check_body_length((*words)[static_cast<size_t>(spec->body_length_arg) + 1], body);
        !bad) {
      return bad.error();
    }
    wire.append(body);
    wire += '\n';
  }
  auto reply = exchange(wire, shape, repeat, timeout_ms, cancel);
  // Remember a password the user gave by hand, so a reconnect can use it.
  if (reply && spec != nullptr && spec->verb == protocol::Verb::kAuth && words->size() == 2) {
    options_.password = std::string((*words)[1]);
  }
  return reply;
}

Result<std::string> Client::line_call(std::string_view line, Repeat repeat,
                                      std::optional<milliseconds> patience) {
  if (auto bad = check_line(line); !bad) return bad.error();
  std::string wire(line);
  wire += '\n';
  const int timeout_ms =
      patience ? static_cast<int>(std::clamp<int64_t>(patience->count(), 1, INT32_MAX))
               : options_.timeout_ms;
  auto reply = exchange(wire, protocol::ReplyShape::kLine, repeat, timeout_ms, nullptr,
                        /*keep_if_late=*/patience.has_value());
  if (!reply) return reply.error();
  return std::move(reply->text);
}

Result<std::string> Client::call(std::string_view line) {
  auto reply = request(line);
  if (!reply) return reply.error();
  return std::move(reply->text);
}

Result<std::vector<std::string>> Client::call_lines(std::string_view line) {
  if (auto bad = check_line(line); !bad) return bad.error();
  std::string wire(line);
  wire += '\n';
  auto reply = exchange(wire, protocol::ReplyShape::kCountedLines, Repeat::kNever,
                        options_.timeout_ms, nullptr);
  if (!reply) return reply.error();
  return std::move(reply->lines);
}

std::string Client::generated_key() {
  // Random per client and counted per call: unique without coordination.
  static constexpr char kHex[] = "0123456789abcdef";
  std::string key = "tq-client-";
  uint64_t r = key_random_();
  for (int i = 0; i < 16; ++i) key += kHex[(r >> (i * 4)) & 0xf];
  key += '-';
  key += std::to_string(++keys_made_);
  return key;
}

}  // namespace tq::client
