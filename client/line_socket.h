// A blocking TCP connection to tqd, plaintext or TLS (client/tls_session.h),
// that sends bytes and reads reply lines and bodies, each wait to send or to
// read bounded by a timeout (and, when a CancelToken is set, by that token).
// The typed Client is built on it; tests use it directly to send whatever
// bytes they like.
//
// Invariant: it never reads past what it is asked for, except into its reply
// buffer, so after a failed read the stream position is unknown and the only
// safe thing is close(); the Client does exactly that.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "client/cancel_token.h"
#include "client/error.h"
#include "client/tls_options.h"
#include "client/tls_session.h"
#include "protocol/reply_reader.h"

namespace tq::client {

// "127.0.0.1:8080", or "[::1]:8080" for an IPv6 address, whose own colons
// would otherwise run into the port's.
std::string host_port(std::string_view host, uint16_t port);

class LineSocket {
 public:
  LineSocket() = default;
  ~LineSocket();
  LineSocket(const LineSocket&) = delete;
  LineSocket& operator=(const LineSocket&) = delete;
  LineSocket(LineSocket&& other) noexcept;
  LineSocket& operator=(LineSocket&& other) noexcept;

  // Connects within timeout_ms; with tls.enabled, then runs the TLS
  // handshake within timeout_ms more. Every failure, a certificate that does
  // not verify included, is a kConnect error that starts with "host:port: ".
  // `cancel`, when it fires, ends either wait (kCancelled): a person at the
  // prompt need not sit out the timeout. *handshake_unanswered, when given,
  // is set when the connection was made and the server did not answer the
  // TLS handshake in time (a stopped server: trying again would wait as long).
  static Result<LineSocket> connect(const std::string& host, uint16_t port, int timeout_ms,
                                    const TlsOptions& tls = {}, const CancelToken* cancel = nullptr,
                                    bool* handshake_unanswered = nullptr);

  Status send(std::string_view bytes);
  Result<std::string> read_line();
  Result<std::string> read_body(size_t n);

  // Half-closes: the server sees EOF but may still answer. With TLS, a
  // close_notify goes first.
  void shutdown_write();
  void close();
  bool is_open() const { return fd_ >= 0; }
  void set_timeout_ms(int ms) { timeout_ms_ = ms; }
  int timeout_ms() const { return timeout_ms_; }
  // While set, a read or send that waits ends with kCancelled once the token
  // fires. The token must outlive its use here; nullptr unsets it.
  void set_cancel(const CancelToken* token) { cancel_ = token; }

  // True when the server has closed its end (or reset it) while we were not
  // reading: an idle connection the server dropped. Does not block. Unread
  // reply bytes do not count as closed.
  bool peer_closed() const;
  // With TLS, the server's reason when peer_closed() saw it refuse the
  // session (a client certificate it wanted); empty otherwise.
  std::string closed_reason() const;

 private:
  // Sets up TLS on the connected fd_ and runs the handshake, within
  // timeout_ms_ from now; kTimeout when the server did not answer in time.
  Status start_tls(const std::string& host, const TlsOptions& tls);
  // Reads once from the connection into reader_; false with *error on failure.
  bool fill(Error* error);
  // One attempt to receive or send, through TLS when it is on; never blocks.
  IoStep receive_some(char* buffer, size_t n);
  IoStep send_some(std::string_view bytes);

  int fd_ = -1;
  TlsSession tls_;  // inactive on a plaintext connection; uses fd_, so ends before it closes
  int timeout_ms_ = 5000;
  const CancelToken* cancel_ = nullptr;
  protocol::ReplyReader reader_;
};

}  // namespace tq::client
