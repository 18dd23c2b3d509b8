// TlsTrust and TlsStream on OpenSSL. Sessions use OpenSSL's own socket BIO,
// which writes with write(): tq-bench ignores SIGPIPE (main.cc), so a server
// gone away is an error value here, as it is for send().
#include "bench/tls_stream.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <climits>

namespace tq::bench {
namespace {

// The oldest error OpenSSL queued (the cause), as its reason alone when it
// has one ("wrong version number"). Empties the queue.
std::string take_openssl_error() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "no reason given";
  if (const char* reason = ERR_reason_error_string(e)) return reason;
  char text[256];
  ERR_error_string_n(e, text, sizeof text);
  return text;
}

Error setup_error(const std::string& what) {
  return Error{"TLS: " + what + ": " + take_openssl_error()};
}

bool is_ip_address(const std::string& name) {
  unsigned char address[sizeof(in6_addr)];
  return inet_pton(AF_INET, name.c_str(), address) == 1 ||
         inet_pton(AF_INET6, name.c_str(), address) == 1;
}

}  // namespace

Result<std::shared_ptr<const TlsTrust>> TlsTrust::load(const std::string& ca_file) {
  ERR_clear_error();
  SSL_CTX* context = SSL_CTX_new(TLS_client_method());
  if (context == nullptr) return setup_error("cannot make a context");
  std::shared_ptr<const TlsTrust> trust(new TlsTrust(context));
  SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
  SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_load_verify_locations(context, ca_file.c_str(), nullptr) != 1) {
    return setup_error("cannot load the CA file " + ca_file);
  }
  // A close without close_notify reads as a close, as it does in plaintext:
  // every reply is framed, so a cut one shows anyway.
  SSL_CTX_set_options(context, SSL_OP_IGNORE_UNEXPECTED_EOF);
  // write() returns after each record it could send, like send() after a
  // partial write; and a retry may pass the unsent bytes from a buffer that
  // has since grown and moved (a connection appends requests to it).
  SSL_CTX_set_mode(context, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // One recv() takes whatever the socket holds, up to a buffer of records,
  // rather than one for each record's header and one for its body: without
  // this an unpipelined run makes three recv() calls per reply to the
  // plaintext run's one. The reader reads until kWantRead either way.
  SSL_CTX_set_read_ahead(context, 1);
  return trust;
}

TlsTrust::~TlsTrust() {
  SSL_CTX_free(context_);
}

Result<std::unique_ptr<TlsStream>> TlsStream::start(const TlsTrust& trust, int fd,
                                                    const std::string& host) {
  ERR_clear_error();
  SSL* ssl = SSL_new(trust.context());
  if (ssl == nullptr) return setup_error("cannot make a session");
  std::unique_ptr<TlsStream> stream(new TlsStream(ssl));
  if (SSL_set_fd(ssl, fd) != 1) return setup_error("cannot attach the socket");
  if (is_ip_address(host)) {
    // Checked against the certificate's IP entries; SNI carries names only.
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str()) != 1) {
      return setup_error("cannot check the address " + host);
    }
  } else if (SSL_set_tlsext_host_name(ssl, host.c_str()) != 1 ||
             SSL_set1_host(ssl, host.c_str()) != 1) {
    return setup_error("cannot check the name " + host);
  }
  return stream;
}

TlsStream::~TlsStream() {
  // No close_notify: the socket closes next, and tqd reads its EOF as the
  // end of the connection either way.
  SSL_free(ssl_);
}

TlsStream::Io TlsStream::handshake() {
  return finish(SSL_connect(ssl_), true);
}

TlsStream::Io TlsStream::read(char* buffer, size_t size) {
  return finish(SSL_read(ssl_, buffer, static_cast<int>(std::min<size_t>(size, INT_MAX))), false);
}

TlsStream::Io TlsStream::write(std::string_view bytes) {
  return finish(
      SSL_write(ssl_, bytes.data(), static_cast<int>(std::min<size_t>(bytes.size(), INT_MAX))),
      false);
}

TlsStream::Io TlsStream::finish(int rc, bool in_handshake) {
  const int saved_errno = errno;
  if (rc > 0) return {Status::kDone, in_handshake ? 0 : static_cast<size_t>(rc)};
  switch (SSL_get_error(ssl_, rc)) {
    case SSL_ERROR_WANT_READ:
      return {Status::kWantRead, 0};
    case SSL_ERROR_WANT_WRITE:
      return {Status::kWantWrite, 0};
    case SSL_ERROR_ZERO_RETURN:
      return {Status::kClosed, 0};
    case SSL_ERROR_SYSCALL:
      ERR_clear_error();
      if (saved_errno == 0) return {Status::kClosed, 0};
      error_ = "TLS: " + errno_text(saved_errno);
      return {Status::kFailed, 0};
    default:
      break;
  }
  const long verified = SSL_get_verify_result(ssl_);
  if (in_handshake && verified != X509_V_OK) {
    ERR_clear_error();
    error_ = std::string("TLS handshake failed: certificate verify failed: ") +
             X509_verify_cert_error_string(verified);
  } else {
    error_ = std::string(in_handshake ? "TLS handshake failed: " : "TLS: ") + take_openssl_error();
  }
  return {Status::kFailed, 0};
}

}  // namespace tq::bench
