#include "client/repl_session.h"

#include <optional>
#include <ostream>
#include <utility>

#include "client/request_line.h"
#include "protocol/command_table.h"

namespace tq::client {
namespace {

constexpr std::string_view kPromptTips =
    "In tq: Tab completes commands and queue names, Up and Down walk the history,\n"
    "Ctrl-C stops waiting for a reply, Ctrl-D or quit leaves. PUT reads its body\n"
    "from the next line(s).\n";

}  // namespace

ReplSession::ReplSession(Options options, RenderStyle style, RenderStyle error_style, Mode mode,
                         std::ostream& out, std::ostream& err, CancelToken* cancel)
    : client_(std::move(options)),
      style_(style),
      error_style_(error_style),
      mode_(mode),
      interactive_(mode == Mode::kPrompt),
      out_(out),
      err_(err),
      cancel_(cancel) {}

ReplSession::Outcome ReplSession::connect() {
  auto connected = client_.reconnect(cancel_);
  if (!connected && connected.error().is(protocol::ErrorCode::kNoAuth)) {
    forget_refused_password(connected.error());
    // A script or one command stops here; at the prompt the person can type
    // AUTH <password>, on a connection without one.
    if (!interactive_) return Outcome::kServerError;
    err_ << "tq: it will not be sent again; type AUTH <password> to give another\n";
    connected = client_.reconnect(cancel_);
    if (connected) {
      ever_connected_ = true;
      return Outcome::kServerError;
    }
  }
  if (!connected) return connect_failed(connected.error(), "cannot connect");
  ever_connected_ = true;
  return Outcome::kOk;
}

ReplSession::Outcome ReplSession::check_answers() {
  auto pong = client_.ping();
  if (pong) return Outcome::kOk;
  client_.close();
  if (pong.error().kind == ErrorKind::kServer) {
    err_ << render_server_error(pong.error(), error_style_);
    return Outcome::kServerError;
  }
  return connect_failed(pong.error(), "no answer to PING");
}

Status ReplSession::reconnect(bool& password_refused) {
  password_refused = false;
  auto connected = client_.reconnect(cancel_);
  if (connected || !connected.error().is(protocol::ErrorCode::kNoAuth)) return connected;
  password_refused = true;
  forget_refused_password(connected.error());
  err_ << "tq: it will not be sent again"
       << (interactive_ ? "; type AUTH <password> to give another" : "") << "\n";
  return client_.reconnect(cancel_);
}

void ReplSession::forget_refused_password(const Error& error) {
  // The server's answer, not a server that is away: shown as the ERROR it is.
  err_ << render_server_error(error, error_style_);
  err_ << "tq: the server refused the password "
       << (password_from_auth_ ? "typed with AUTH" : "given with --password or TQ_PASSWORD")
       << "\n";
  client_.set_password("");
  password_from_auth_ = false;
}

ReplSession::Outcome ReplSession::connect_failed(const Error& error, std::string_view what) {
  err_ << "tq: " << what << ": "
       << (error.kind == ErrorKind::kServer ? error.to_string() : error.message) << "\n";
  return Outcome::kNoServer;
}

std::string ReplSession::prompt() const {
  std::string p = "tq " + client_.address();
  if (!client_.connected()) p += " (not connected)";
  return p + "> ";
}

std::vector<std::string> ReplSession::queue_names() {
  // Tab must answer at once, whatever the server is doing: a LIST that has
  // not come back within this is given up on (the connection is kept; its
  // late reply is dropped before the next command).
  constexpr milliseconds kCompletionPatience{300};
  if (!client_.connected()) return {};
  auto names = client_.list(kCompletionPatience);
  if (!names) {
    completion_unanswered_ = names.error().kind == ErrorKind::kTimeout;
    return {};
  }
  return std::move(names).value();
}

ReplSession::Outcome ReplSession::ensure_connected(std::string_view verb) {
  if (client_.connected()) return Outcome::kOk;
  if (std::string refused = client_.socket().closed_reason(); !refused.empty()) {
    // The server refused this client's TLS session (its certificate): a
    // reconnect would be refused the same way.
    client_.socket().close();
    return connect_failed(make_error(ErrorKind::kConnect, client_.address() + ": TLS: " + refused),
                          "cannot connect");
  }
  const bool closed_by_server = client_.socket().is_open();
  std::optional<Error> parting = client_.parting_error();
  if (parting && parting->is(protocol::ErrorCode::kTimeout)) {
    // Closed while it sat idle (limits.idle_timeout): why, then a new
    // connection for this command, as after any close.
    err_ << render_server_error(*parting, error_style_);
    parting.reset();
  }
  if (parting) {
    // The server turned this connection away (MAXCONN) as it accepted it:
    // its answer, as if to this command, which was not sent.
    if (style_.raw) {
      out_ << render_server_error(*parting, style_);
      out_.flush();
    } else {
      err_ << render_server_error(*parting, error_style_);
    }
    err_ << "tq: the server closed the connection (" << parting->code << "); " << verb
         << " was not sent" << (mode_ == Mode::kOneCommand ? "" : "; the next command reconnects")
         << "\n";
    return Outcome::kServerError;
  }
  const bool was_connected = ever_connected_;
  bool password_refused = false;
  auto connected = reconnect(password_refused);
  if (!connected) return connect_failed(connected.error(), "not connected");
  ever_connected_ = true;
  if (password_refused) {
    err_ << "tq: reconnected to " << client_.address() << " without a password";
    // Without one the server would refuse anything but AUTH (and PING).
    if (verb != "AUTH") {
      err_ << "; " << verb << " was not sent\n";
      return Outcome::kServerError;
    }
    err_ << "\n";
  } else if (closed_by_server) {
    err_ << "tq: the server had closed the connection; reconnected to " << client_.address()
         << "\n";
  } else if (was_connected) {
    err_ << "tq: reconnected to " << client_.address() << "\n";
  }
  return Outcome::kOk;
}

void ReplSession::report_lost(const Error& error, std::string_view verb, bool may_have_run,
                              bool after_unanswered_tab) {
  err_ << "tq: " << error.to_string() << "\n";
  if (may_have_run) err_ << "tq: " << verb << " may or may not have run\n";
  if (error.kind == ErrorKind::kUnanswered) {
    err_ << "tq: " << verb << " was not sent"
         << (after_unanswered_tab ? " (the unanswered request was the LIST that Tab sends for "
                                    "queue names)"
                                  : "")
         << "\n";
  }
  if (!interactive_) return;  // no next command to reconnect for
  bool password_refused = false;
  if (auto again = reconnect(password_refused); again) {
    err_ << "tq: reconnected to " << client_.address()
         << (password_refused ? " without a password" : "") << "\n";
  } else {
    err_ << "tq: cannot reconnect (" << again.error().message << "); the next command tries again\n";
  }
}

ReplSession::Outcome ReplSession::run(std::string_view line, const BodyReader& read_body) {
  if (cancel_ != nullptr) cancel_->reset();
  const bool after_unanswered_tab = std::exchange(completion_unanswered_, false);
  while (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  auto words = split_request(line);
  if (!words) {
    err_ << "tq: " << words.error().message << "\n";
    return Outcome::kServerError;
  }
  // Blank lines and # comments are skipped, so a file of commands can explain itself.
  if (words->empty() || (*words)[0][0] == '#') return Outcome::kOk;
  const std::string verb = to_upper((*words)[0]);
  if (verb == "QUIT" || verb == "EXIT") return Outcome::kQuit;

  const protocol::CommandSpec* spec = protocol::find_command(verb);
  std::string body;
  if (spec != nullptr && spec->body_length_arg >= 0 &&
      words->size() > static_cast<size_t>(spec->body_length_arg) + 1) {
    // A length the server cannot read gets its BADFORMAT without a body.
    if (auto bytes = parse_u64((*words)[static_cast<size_t>(spec->body_length_arg) + 1])) {
      auto got = read_body(*bytes);
      if (!got) {
        if (interactive_) {
          err_ << "tq: " << verb << " not sent: its body was left before " << *bytes
               << " bytes (Ctrl-C or Ctrl-D at the ... prompt)\n";
        } else {
          err_ << "tq: " << verb << " needs a body of " << *bytes
               << " bytes after its line, and the input ended\n";
        }
        return Outcome::kServerError;
      }
      if (got->size() != *bytes) {
        err_ << "tq: the body has " << got->size() << " bytes but " << verb << " announced "
             << *bytes << "; not sent\n";
        return Outcome::kServerError;
      }
      body = std::move(*got);
    }
  }

  if (Outcome connected = ensure_connected(verb); connected != Outcome::kOk) return connected;
  auto reply = client_.request(line, body, cancel_);
  if (reply) {
    // The client keeps an accepted password for reconnects (Client::request).
    if (verb == "AUTH" && words->size() == 2) password_from_auth_ = true;
    out_ << render_reply(*words, *reply, style_);
    // --raw promises the server's bytes and nothing else: no tips of tq's own.
    if (interactive_ && !style_.raw && verb == "HELP" && words->size() == 1) out_ << kPromptTips;
    out_.flush();
    return Outcome::kOk;
  }
  const Error& error = reply.error();
  const std::vector<std::string_view> args(words->begin() + 1, words->end());
  const bool writes = spec == nullptr || protocol::request_writes(*spec, args);
  switch (error.kind) {
    case ErrorKind::kServer:
      if (verb == "DEQUEUE" && error.is(protocol::ErrorCode::kEmpty)) {
        out_ << render_no_jobs(error, style_);
        out_.flush();
        return Outcome::kOk;
      }
      if (style_.raw) {
        out_ << render_server_error(error, style_);
        out_.flush();
      } else {
        err_ << render_server_error(error, error_style_);
      }
      if (error.is(protocol::ErrorCode::kNoAuth) && verb != "AUTH" &&
          client_.options().password.empty()) {
        err_ << "tq: the server needs a password: give it with --password or TQ_PASSWORD"
             << (interactive_ ? ", or type AUTH <password>" : "") << "\n";
      }
      if (error.is(protocol::ErrorCode::kNoPerm)) {
        err_ << "tq: " << verb
             << " is an admin command: give the admin password with --password or "
             << "TQ_PASSWORD" << (interactive_ ? ", or type AUTH <admin password>" : "") << "\n";
      }
      if (!client_.socket().is_open()) {
        // TIMEOUT (idle) crossed this command on its way, or SHUTDOWN
        // refused it: not run.
        const bool not_run =
            error.is(protocol::ErrorCode::kTimeout) || error.is(protocol::ErrorCode::kShutdown);
        err_ << "tq: the server closed the connection (" << error.code << ")"
             << (not_run ? "; " + verb + " was not run" : "")
             << (mode_ == Mode::kOneCommand ? "" : "; the next command reconnects") << "\n";
        // A stopping server is one that cannot be reached, for a script's
        // exit status (2: try again later) and for the lines after it, which
        // would run out of order on the next server.
        if (error.is(protocol::ErrorCode::kShutdown)) return Outcome::kNoServer;
      }
      return Outcome::kServerError;
    case ErrorKind::kBadArgument:
      err_ << "tq: " << error.message << "\n";
      return Outcome::kServerError;
    case ErrorKind::kCancelled:
      err_ << "tq: interrupted; closed the connection"
           << (writes ? " (the command may have run)" : "") << "\n";
      return Outcome::kInterrupted;
    default:
      report_lost(error, verb, writes && error.outcome_unknown(), after_unanswered_tab);
      return Outcome::kNoServer;
  }
}

}  // namespace tq::client
