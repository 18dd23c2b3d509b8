// ReplSession: what tq does with one command line, whichever way the line
// arrived (typed at the prompt, read from a file on standard input, or given
// on tq's command line). It sends the line, prints the reply readably (or raw)
// on `out`, and keeps the connection: an idle connection the server closed is
// replaced before the command is sent; a connection lost under a command is
// reported, with whether the command may have run, and at the prompt one
// reconnect is tried at once (one command, or a script, ends there). Replies
// go to `out`; ERROR replies and tq's own messages go to `err`, so a script
// that reads the output gets answers only. With raw, every
// reply, ERROR too, goes to `out` exactly as the server sent it. DEQUEUE's
// ERROR EMPTY is not an error here: it is shown as "(no jobs...)" and counts
// as OK, as an empty DEQUEUE ... COUNT does.
//
// A password the server refuses (--password, TQ_PASSWORD, or one typed with
// AUTH before a reconnect) is reported once and forgotten: sending it again
// would only be refused again, and every wrong one counts against the
// server's AUTH throttle for this address. At the prompt the session then
// connects without a password, so that the person can type AUTH <password>;
// once the server accepts that, the client keeps it for later reconnects.
//
// Invariant: a command is sent at most once. The session never repeats a
// command by itself; after a loss it is the person (or the script) who
// decides.
#pragma once

#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/cancel_token.h"
#include "client/client.h"
#include "client/repl_render.h"

namespace tq::client {

class ReplSession {
 public:
  enum class Outcome {
    kOk,           // the server answered OK or EMPTY (or nothing was to be sent)
    kServerError,  // the server answered ERROR (or refused the password), or the line was
                   // refused locally
    kNoServer,     // no connection: the command was not sent, or its connection was lost
    kInterrupted,  // Ctrl-C ended the wait for the reply
    kQuit,         // quit / exit
  };

  // Where the commands come from, which decides what is said after a loss:
  // only at the prompt is there a next command to reconnect for (a script
  // stops at a lost connection, so that the rest does not run out of order).
  enum class Mode {
    kPrompt,      // typed at a terminal
    kScript,      // one per line of standard input
    kOneCommand,  // from tq's arguments
  };

  // Reads a PUT body of `bytes` bytes from wherever the commands come from;
  // nullopt when the input ends first.
  using BodyReader = std::function<std::optional<std::string>(size_t bytes)>;

  // `style` is for `out`, `error_style` for ERROR replies on `err` (each
  // stream has colours only when it is a terminal). `cancel` ends a wait for
  // a reply (tq fires it on Ctrl-C); it may be null. The session resets it
  // before each command.
  ReplSession(Options options, RenderStyle style, RenderStyle error_style, Mode mode,
              std::ostream& out, std::ostream& err, CancelToken* cancel);

  // Connects; on failure says why on err and returns kNoServer. When the
  // server refuses the password, says so and returns kServerError; an
  // interactive session has then connected without one, ready for AUTH.
  Outcome connect();
  // A PING on the connection just made, so that the prompt's "Connected"
  // means a tq server answered: a TLS port (ERROR TLS) or another program's
  // port would otherwise show only at the first command. On failure says
  // why on err, closes the connection, and returns kServerError or kNoServer.
  Outcome check_answers();

  Outcome run(std::string_view line, const BodyReader& read_body);

  // "tq 127.0.0.1:8080> ", marked when not connected.
  std::string prompt() const;
  // Queue names for completion (LIST); empty when not connected, or when the
  // server does not answer within a moment.
  std::vector<std::string> queue_names();

 private:
  // Connects before a command (`verb`) if there is no usable connection;
  // kOk when there is one and the command is to be sent.
  Outcome ensure_connected(std::string_view verb);
  // One attempt to open a new connection. When the server refuses the
  // password, says so, forgets it and connects without one (setting
  // `password_refused`).
  Status reconnect(bool& password_refused);
  // Says that the server refused the password, and forgets it.
  void forget_refused_password(const Error& error);
  // Says why connecting failed; the outcome for it.
  Outcome connect_failed(const Error& error, std::string_view what);
  // `after_unanswered_tab`: completion's LIST went unanswered before this
  // command, which may be the reply it found still owed.
  void report_lost(const Error& error, std::string_view verb, bool may_have_run,
                   bool after_unanswered_tab);

  Client client_;
  RenderStyle style_;
  RenderStyle error_style_;
  Mode mode_;
  bool interactive_;  // mode_ == Mode::kPrompt
  std::ostream& out_;
  std::ostream& err_;
  CancelToken* cancel_;
  bool ever_connected_ = false;
  // Completion's LIST got no reply in time: the next command, if it finds
  // a reply still owed, says which request it was (the person never saw it).
  bool completion_unanswered_ = false;
  bool password_from_auth_ = false;  // the client's password is one AUTH at the prompt set
};

}  // namespace tq::client
