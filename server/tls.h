// TLS for client connections, on OpenSSL, shaped for an event loop: the
// socket stays libuv's, and OpenSSL only sees memory. A TlsSession is fed the
// ciphertext the connection read and gives back plaintext for the parser;
// it is handed the replies' plaintext and gives back ciphertext for the
// connection to write. So TLS adds no blocking and no second I/O path: the
// connection reads, writes, pauses and times out exactly as in plaintext.
//
// TlsContext holds the certificate, key and settings (one SSL_CTX); each
// session keeps a reference to the context it began with, so a context
// reloaded on SIGHUP serves new connections while open ones go on.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <string_view>

#include "base/expected.h"

namespace tq::server {

struct TlsFiles {
  std::string cert_file;  // PEM: the server's certificate, then any intermediates
  std::string key_file;   // PEM: its private key
  std::string ca_file;    // PEM: CAs whose client certificates are accepted; empty: none asked
};

class TlsContext {
 public:
  // Loads and checks the files; an error names the file and what is wrong.
  static Expected<std::shared_ptr<TlsContext>, std::string> load(const TlsFiles& files);

  SSL_CTX* get() const { return ctx_.get(); }
  bool verifies_clients() const { return verifies_clients_; }
  // "/CN=tq.example.com, valid until Mar  1 12:00:00 2027 GMT", for the log.
  const std::string& summary() const { return summary_; }
  // Days until the certificate expires; negative once it has.
  int days_left() const;
  // When it expires (notAfter), Unix ms; 0 if that cannot be read.
  int64_t expires_at_ms() const;
  // Whether both loaded the same certificate, chain and key (a renewal in
  // place does not): what tls.cert_file and tls.key_file hold.
  bool same_certificate(const TlsContext& other) const;
  // Whether both trust the same CAs for client certificates (tls.ca_file),
  // or both ask for none.
  bool same_client_cas(const TlsContext& other) const;
  // Both of the above: a reload that read the same files again (or copies
  // of them) loaded the same material.
  bool same_material(const TlsContext& other) const;

 private:
  struct Free {
    void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
  };
  std::unique_ptr<SSL_CTX, Free> ctx_;
  bool verifies_clients_ = false;
  std::string summary_;
  // SHA-256 of the material loaded; empty if it could not be made.
  std::string certificate_digest_;  // certificate, chain and key
  std::string client_ca_digest_;    // the client CAs, or that there are none
};

class TlsSession {
 public:
  explicit TlsSession(std::shared_ptr<TlsContext> context);
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  enum class Read {
    kOk,         // bytes consumed; any plaintext was appended
    kClosed,     // the client sent close_notify: the same as EOF
    kFailed,     // a handshake or protocol failure; error() says which
    kPlaintext,  // the first bytes are not TLS: someone typing plaintext commands
  };
  // Takes ciphertext from the socket; appends the plaintext it held to
  // `plain`. The handshake's own replies go to output().
  Read receive(std::string_view ciphertext, std::string& plain);

  // Encrypts replies into output(); false on failure (then error()). Only
  // once established(): before that the bytes must wait.
  bool send(std::string_view plaintext);

  // Queues a close_notify in output() (once), so a client that reads to the
  // end can tell a complete reply stream from a cut one.
  void close_notify();
  bool notified() const { return notified_; }

  bool established() const { return established_; }
  // Ciphertext waiting to be written to the socket; the connection takes it.
  std::string& output() { return output_; }
  const std::string& error() const { return error_; }
  // "TLSv1.3 TLS_AES_256_GCM_SHA384" once established.
  std::string describe() const;
  // "TLSv1.3" once established.
  std::string version() const;

 private:
  struct Free {
    void operator()(SSL* ssl) const { SSL_free(ssl); }
  };
  // Moves what OpenSSL wrote into its outgoing BIO to output_.
  void collect_output();
  // Sets error_ from OpenSSL's error queue (and the verify result) after an
  // SSL_get_error() of `err`.
  void fail(int err);

  std::shared_ptr<TlsContext> context_;  // keeps the SSL_CTX alive
  std::unique_ptr<SSL, Free> ssl_;
  BIO* in_ = nullptr;   // owned by ssl_: ciphertext from the client
  BIO* out_ = nullptr;  // owned by ssl_: ciphertext for the client
  std::string output_;
  std::string error_;
  bool received_any_ = false;
  bool established_ = false;
  bool notified_ = false;
};

}  // namespace tq::server
