// The TLS half of a client connection: OpenSSL's state for one connected,
// non-blocking socket (a context with the trust and client certificate that
// TlsOptions name, and the session on it), and one-step read, write and
// handshake calls that never block. LineSocket owns the socket, does the
// waiting (poll, timeouts, CancelToken) and calls these between waits; a
// plaintext connection goes through the same IoStep shape, so the two share
// one loop.
//
// Invariants: the socket is written with MSG_NOSIGNAL, never write(), so a
// server gone away is an error value, not a SIGPIPE that kills the program;
// and OpenSSL's thread-local error queue is empty after every call here, so
// one connection's failure cannot show up in another's message.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "client/error.h"
#include "client/tls_options.h"

// OpenSSL's types, declared so that this header (and client.h) does not
// bring in the OpenSSL headers.
struct ssl_st;
struct ssl_ctx_st;

namespace tq::client {

// What one attempt to move bytes (or to take the handshake a step further)
// did.
struct IoStep {
  enum class Kind {
    kMoved,   // `bytes` moved (the handshake: it is complete)
    kWait,    // nothing now: poll for `wait_for`, then try the same call again
    kClosed,  // the server closed the connection (a TLS close_notify, or EOF)
    kFailed,  // broken: `error` says why
  };
  Kind kind = Kind::kFailed;
  size_t bytes = 0;
  short wait_for = 0;  // POLLIN or POLLOUT
  std::string error{};

  static IoStep moved(size_t n) { return {Kind::kMoved, n, 0, {}}; }
  static IoStep wait(short events) { return {Kind::kWait, 0, events, {}}; }
  static IoStep closed() { return {Kind::kClosed, 0, 0, {}}; }
  static IoStep failed(std::string why) { return {Kind::kFailed, 0, 0, std::move(why)}; }
};

class TlsSession {
 public:
  // None: a plaintext connection.
  TlsSession() = default;
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;
  TlsSession(TlsSession&&) noexcept = default;
  TlsSession& operator=(TlsSession&&) noexcept = default;
  ~TlsSession() = default;

  // Sets up TLS on `fd` (which the caller keeps owning and must keep open
  // while this lives) for a connection to `host`: loads the CA and client
  // certificate files, sets what to verify. A file that cannot be used is a
  // kConnect error naming it. The handshake is not started: see handshake().
  static Result<TlsSession> start(int fd, const std::string& host, const TlsOptions& options);

  bool active() const { return ssl_ != nullptr; }

  // One step of the handshake: kMoved when it is done, kWait, or kFailed
  // with the reason for people ("certificate verify failed: ...").
  IoStep handshake();
  // Up to n application bytes. Data OpenSSL holds already is returned
  // without touching the socket, so call this before polling, not after.
  IoStep read(char* buffer, size_t n);
  // Some of `bytes` (one record or more). After kWait, the same bytes must
  // be passed again: OpenSSL may have sent part of a record already.
  IoStep write(std::string_view bytes);

  // Whether the server has ended the TLS session (close_notify, EOF, a
  // reset, an alert), and keeps saying so. Does not block: a record that
  // holds no application data (a session ticket, say) is read and counts as
  // not closed; so does application data nobody asked for, which the next
  // read reports.
  bool peer_closed() const;
  // Why, when peer_closed() saw the server refuse the session with an
  // alert ("tlsv13 alert certificate required ..."); empty otherwise.
  const std::string& closed_reason() const { return closed_reason_; }

  // Sends close_notify, once: the server reads it as the end of requests.
  // Best effort (the socket does not block): a close_notify that does not fit
  // is dropped, and the TCP FIN that follows says the same.
  void send_close_notify();
  // send_close_notify() when the session is still sound, then frees it.
  void end();

 private:
  struct ContextFree {
    void operator()(ssl_ctx_st* context) const;
  };
  struct SessionFree {
    void operator()(ssl_st* ssl) const;
  };

  // The reason the last call failed, for people; empties the error queue.
  std::string failure(int ssl_error, int saved_errno, bool in_handshake) const;

  std::unique_ptr<ssl_ctx_st, ContextFree> context_;
  std::unique_ptr<ssl_st, SessionFree> ssl_;
  std::string verified_name_;  // the server_name checked, for a mismatch's message
  bool broken_ = false;        // a fatal error: no close_notify may follow
  bool close_notify_sent_ = false;
  mutable std::string closed_reason_;  // set by peer_closed(), which only looks
};

}  // namespace tq::client
