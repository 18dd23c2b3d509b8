// TLS for tq-bench's connections to tqd (--tls-ca): a TlsTrust made once per
// run (the CA file, loaded into one OpenSSL context that every connection and
// thread shares), and a TlsStream per connection (its session, on a
// non-blocking socket it does not own). Setup and the handshake happen in
// BlockingSocket, before the clock starts; the load loop only reads and
// writes. Plaintext connections have no TlsStream at all, so their path is
// what it was with one branch more.
//
// The calls never block: they return kWantRead or kWantWrite, and the caller
// waits for that and calls again. Two rules of OpenSSL's come with that:
// read() returns at most one record, and OpenSSL may hold decrypted bytes the
// socket no longer shows, so a reader reads until kWantRead, not until the
// socket looks drained; and a write() answered with a kWant* must be retried
// with the same bytes (at least as many: they may have grown at the end, and
// may have moved, which the session allows).
//
// Invariant: the thread's OpenSSL error queue is empty after every call, so
// a failure's message is that failure's, and SSL_get_error can be trusted.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "bench/error.h"

// OpenSSL's types, declared so that the load loop's headers do not pull in
// OpenSSL's.
struct ssl_st;
struct ssl_ctx_st;

namespace tq::bench {

// The CAs a server certificate must chain to. Immutable once loaded; shared
// by all threads (OpenSSL contexts are safe to make sessions from
// concurrently).
class TlsTrust {
 public:
  static Result<std::shared_ptr<const TlsTrust>> load(const std::string& ca_file);
  ~TlsTrust();
  TlsTrust(const TlsTrust&) = delete;
  TlsTrust& operator=(const TlsTrust&) = delete;

  ssl_ctx_st* context() const { return context_; }

 private:
  explicit TlsTrust(ssl_ctx_st* context) : context_(context) {}
  ssl_ctx_st* context_;  // owned; each session holds a reference of its own
};

class TlsStream {
 public:
  enum class Status {
    kDone,       // bytes moved (handshake: complete)
    kWantRead,   // wait until the socket is readable, then call again
    kWantWrite,  // wait until it is writable, then call again
    kClosed,     // the server ended the connection
    kFailed,     // broken; error() says why
  };
  struct Io {
    Status status;
    size_t bytes;
  };

  // A session on `fd` (connected, non-blocking; the caller keeps owning it),
  // checking that the server's certificate names `host`, an IP address or a
  // DNS name as the user gave it. The handshake is not started.
  static Result<std::unique_ptr<TlsStream>> start(const TlsTrust& trust, int fd,
                                                  const std::string& host);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  Io handshake();
  Io read(char* buffer, size_t size);
  Io write(std::string_view bytes);

  // Why the last kFailed happened, for people: the certificate check's
  // verdict in the handshake, else OpenSSL's reason or errno's.
  const std::string& error() const { return error_; }

 private:
  explicit TlsStream(ssl_st* ssl) : ssl_(ssl) {}
  Io finish(int rc, bool in_handshake);

  ssl_st* ssl_;        // owned
  std::string error_;  // set with kFailed
};

}  // namespace tq::bench
