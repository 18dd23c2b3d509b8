// How a client call fails: client::Error, and the Result<T> every call of the
// client library returns. A server's `ERROR <CODE> <message>` becomes an Error
// of kind kServer carrying the code as sent; everything else (no connection, a
// lost one, a timeout, a reply that makes no sense, a cancelled wait) has its
// own kind, so a caller can tell "the server said no" from "we do not know
// what the server did".
//
// Invariant: code is set only for kServer; message is for people and may
// change between versions; programs branch on kind and code.
#pragma once

#include <string>

#include "base/expected.h"
#include "protocol/reply.h"

namespace tq::client {

enum class ErrorKind {
  kConnect,      // could not connect (or authenticate) to the server
  kNetwork,      // the connection broke, or there is none
  kTimeout,      // no reply in time; the connection is closed, its state unknown
  kProtocol,     // the server sent something this client cannot read
  kServer,       // the server answered ERROR <code> <message>
  kCancelled,    // a CancelToken ended the wait (or had fired before anything was sent)
  kBadArgument,  // refused before sending: it would not be one request (nothing sent)
  kUnanswered,   // an earlier request's reply never came, so the connection was closed
                 // before this one was sent (nothing sent)
};

struct Error {
  ErrorKind kind = ErrorKind::kNetwork;
  std::string code;     // the server's error code, e.g. "NOTFOUND" (kServer only)
  std::string message;  // for people

  bool is(protocol::ErrorCode c) const {
    return kind == ErrorKind::kServer && code == protocol::error_code_name(c);
  }
  // True when a request may or may not have been carried out: the connection
  // broke or timed out after it was sent. A write that fails this way has an
  // unknown outcome (see PROTOCOL.md, ERROR IO, for the server-side twin).
  bool outcome_unknown() const {
    return kind == ErrorKind::kNetwork || kind == ErrorKind::kTimeout ||
           kind == ErrorKind::kCancelled || kind == ErrorKind::kProtocol;
  }
  // True for the line a server sends as it closes the connection: ERROR
  // SHUTDOWN (it is stopping), TIMEOUT (limits.idle_timeout) or MAXCONN. A
  // request answered so was not run.
  bool server_closing() const {
    return is(protocol::ErrorCode::kShutdown) || is(protocol::ErrorCode::kTimeout) ||
           is(protocol::ErrorCode::kMaxConn);
  }
  // "NOTFOUND no job 7" for server errors, "timed out: ..." otherwise.
  std::string to_string() const;
};

// An error the client finds itself (any kind but kServer), with its message.
Error make_error(ErrorKind kind, std::string message);

template <typename T>
using Result = Expected<T, Error>;
using Status = Result<Ok>;
using tq::Ok;

}  // namespace tq::client
