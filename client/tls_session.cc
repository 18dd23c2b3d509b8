#include "client/tls_session.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>

namespace tq::client {
namespace {

// --- A socket BIO that cannot raise SIGPIPE -----------------------------------
// OpenSSL's own socket BIO writes with write(), which raises SIGPIPE on a
// connection the server reset, and a client library must not kill the program
// that uses it (tq does not ignore SIGPIPE). This one is the same with
// send(MSG_NOSIGNAL). The BIO's data is the descriptor; it never closes it.

int socket_of(BIO* bio) {
  return static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(bio)));
}

int bio_write(BIO* bio, const char* data, int n) {
  BIO_clear_retry_flags(bio);
  for (;;) {
    ssize_t sent = ::send(socket_of(bio), data, static_cast<size_t>(n), MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_write(bio);
    return static_cast<int>(sent);
  }
}

int bio_read(BIO* bio, char* data, int n) {
  BIO_clear_retry_flags(bio);
  for (;;) {
    ssize_t got = ::recv(socket_of(bio), data, static_cast<size_t>(n), 0);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_read(bio);
    // OpenSSL asks BIO_eof() to tell a closed connection from an error.
    if (got == 0) BIO_set_flags(bio, BIO_FLAGS_IN_EOF);
    return static_cast<int>(got);
  }
}

long bio_ctrl(BIO* bio, int command, long, void*) {
  switch (command) {
    case BIO_CTRL_FLUSH:
      return 1;  // nothing is buffered here
    case BIO_CTRL_EOF:
      return BIO_test_flags(bio, BIO_FLAGS_IN_EOF) != 0 ? 1 : 0;
    default:
      return 0;
  }
}

int bio_create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

// Made once, on first use, and kept for the program's life.
const BIO_METHOD* no_sigpipe_socket_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m =
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "tq socket");
    if (m == nullptr) return m;
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    return m;
  }();
  return method;
}

// --- Messages -------------------------------------------------------------------

// The oldest error OpenSSL queued (the cause; later ones tend to be "and so
// the handshake failed"), as its reason alone when it has one
// ("wrong version number"), or in OpenSSL's long form. Empties the queue.
std::string take_openssl_error(unsigned long* code = nullptr) {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (code != nullptr) *code = e;
  if (e == 0) return {};
  if (const char* reason = ERR_reason_error_string(e)) return reason;
  char text[256];
  ERR_error_string_n(e, text, sizeof text);
  return text;
}

// Whether `name` is an IP address rather than a host name: such a name is
// checked against the certificate's IP entries, and is not sent as SNI.
bool is_ip_address(const std::string& name) {
  unsigned char address[sizeof(in6_addr)];
  return inet_pton(AF_INET, name.c_str(), address) == 1 ||
         inet_pton(AF_INET6, name.c_str(), address) == 1;
}

// The server's alerts about this client's certificate, which TLS 1.3
// delivers after the client's handshake, on the first read, said in
// words that point at the fix.
std::string with_alert_hint(std::string reason) {
  if (reason.find("certificate required") != std::string::npos) {
    reason += " (tqd asks for a client certificate: --tls-cert and --tls-key)";
  } else if (reason.find("unknown ca") != std::string::npos ||
             reason.find("bad certificate") != std::string::npos) {
    reason += " (tqd does not accept this client certificate)";
  }
  return reason;
}

Error setup_error(const std::string& what) {
  std::string why = take_openssl_error();
  return make_error(ErrorKind::kConnect, "TLS: " + what + (why.empty() ? "" : ": " + why));
}

}  // namespace

void TlsSession::ContextFree::operator()(ssl_ctx_st* context) const {
  SSL_CTX_free(context);
}

void TlsSession::SessionFree::operator()(ssl_st* ssl) const {
  SSL_free(ssl);
}

Result<TlsSession> TlsSession::start(int fd, const std::string& host, const TlsOptions& options) {
  ERR_clear_error();
  if (options.cert_file.empty() != options.key_file.empty()) {
    return make_error(ErrorKind::kConnect,
                      "TLS: a client certificate needs its key, and a key its certificate "
                      "(cert_file and key_file go together)");
  }
  TlsSession session;
  // A context per connection: a client reconnects seldom, and the files are
  // read afresh, so a renewed certificate is picked up by the next connect.
  session.context_.reset(SSL_CTX_new(TLS_client_method()));
  SSL_CTX* context = session.context_.get();
  if (context == nullptr) return setup_error("cannot make a context");
  SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
  // A server that closes without close_notify reads as a plain close, as on a
  // plaintext connection, not as an attack on the stream: the line protocol
  // frames every reply itself, so a cut one is noticed anyway.
  SSL_CTX_set_options(context, SSL_OP_IGNORE_UNEXPECTED_EOF);
  // write() may then return after one record, and is retried like send().
  SSL_CTX_set_mode(context, SSL_MODE_ENABLE_PARTIAL_WRITE);

  if (options.verify) {
    SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nullptr);
    if (options.ca_file.empty()) {
      if (SSL_CTX_set_default_verify_paths(context) != 1) {
        return setup_error("cannot load the system's trusted CAs");
      }
    } else if (SSL_CTX_load_verify_locations(context, options.ca_file.c_str(), nullptr) != 1) {
      return setup_error("cannot load the CA file " + options.ca_file);
    }
  } else {
    SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nullptr);
  }
  if (!options.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(context, options.cert_file.c_str()) != 1) {
      return setup_error("cannot load the client certificate " + options.cert_file);
    }
    if (SSL_CTX_use_PrivateKey_file(context, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      return setup_error("cannot load the client key " + options.key_file);
    }
    if (SSL_CTX_check_private_key(context) != 1) {
      return setup_error("the client key " + options.key_file + " is not the key of " +
                         options.cert_file);
    }
  }

  session.ssl_.reset(SSL_new(context));
  SSL* ssl = session.ssl_.get();
  if (ssl == nullptr) return setup_error("cannot make a session");
  const BIO_METHOD* method = no_sigpipe_socket_method();
  BIO* bio = method != nullptr ? BIO_new(method) : nullptr;
  if (bio == nullptr) return setup_error("cannot wrap the socket");
  BIO_set_data(bio, reinterpret_cast<void*>(static_cast<intptr_t>(fd)));
  SSL_set_bio(ssl, bio, bio);  // the session owns the BIO now

  const std::string& name = options.server_name.empty() ? host : options.server_name;
  const bool ip = is_ip_address(name);
  // SNI carries host names only (RFC 6066); a server with one certificate
  // does not need it, one with several picks by it.
  if (!ip && SSL_set_tlsext_host_name(ssl, name.c_str()) != 1) {
    return setup_error("cannot send the server name " + name);
  }
  if (options.verify) {
    session.verified_name_ = name;
    if (ip) {
      if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) != 1) {
        return setup_error("cannot check the address " + name);
      }
    } else {
      SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      if (SSL_set1_host(ssl, name.c_str()) != 1) {
        return setup_error("cannot check the name " + name);
      }
    }
  }
  return session;
}

IoStep TlsSession::handshake() {
  ERR_clear_error();
  const int rc = SSL_connect(ssl_.get());
  const int saved_errno = errno;
  if (rc == 1) return IoStep::moved(0);
  const int ssl_error = SSL_get_error(ssl_.get(), rc);
  if (ssl_error == SSL_ERROR_WANT_READ) return IoStep::wait(POLLIN);
  if (ssl_error == SSL_ERROR_WANT_WRITE) return IoStep::wait(POLLOUT);
  broken_ = true;
  return IoStep::failed(failure(ssl_error, saved_errno, true));
}

IoStep TlsSession::read(char* buffer, size_t n) {
  ERR_clear_error();
  const int rc = SSL_read(ssl_.get(), buffer, static_cast<int>(std::min<size_t>(n, INT_MAX)));
  const int saved_errno = errno;
  if (rc > 0) {
    return IoStep::moved(static_cast<size_t>(rc));
  }
  const int ssl_error = SSL_get_error(ssl_.get(), rc);
  switch (ssl_error) {
    case SSL_ERROR_WANT_READ:
      return IoStep::wait(POLLIN);
    case SSL_ERROR_WANT_WRITE:  // a record OpenSSL must send first (a key update)
      return IoStep::wait(POLLOUT);
    case SSL_ERROR_ZERO_RETURN:
      return IoStep::closed();
    default:
      broken_ = true;
      return IoStep::failed(failure(ssl_error, saved_errno, false));
  }
}

IoStep TlsSession::write(std::string_view bytes) {
  ERR_clear_error();
  const int rc = SSL_write(ssl_.get(), bytes.data(),
                           static_cast<int>(std::min<size_t>(bytes.size(), INT_MAX)));
  const int saved_errno = errno;
  if (rc > 0) {
    return IoStep::moved(static_cast<size_t>(rc));
  }
  const int ssl_error = SSL_get_error(ssl_.get(), rc);
  switch (ssl_error) {
    case SSL_ERROR_WANT_WRITE:
      return IoStep::wait(POLLOUT);
    case SSL_ERROR_WANT_READ:  // a record OpenSSL must read first
      return IoStep::wait(POLLIN);
    case SSL_ERROR_ZERO_RETURN:
      return IoStep::closed();
    default:
      broken_ = true;
      return IoStep::failed(failure(ssl_error, saved_errno, false));
  }
}

bool TlsSession::peer_closed() const {
  if (ssl_ == nullptr || broken_) return true;
  if (SSL_pending(ssl_.get()) > 0) return false;
  // Seen already (by an earlier call, say): the socket shows nothing more.
  if ((SSL_get_shutdown(ssl_.get()) & SSL_RECEIVED_SHUTDOWN) != 0) return true;
  ERR_clear_error();
  char byte;
  // The socket does not block, so neither does this.
  const int rc = SSL_peek(ssl_.get(), &byte, 1);
  if (rc > 0) return false;
  const int ssl_error = SSL_get_error(ssl_.get(), rc);
  if (ssl_error == SSL_ERROR_WANT_READ || ssl_error == SSL_ERROR_WANT_WRITE) {
    ERR_clear_error();
    return false;
  }
  // Under TLS 1.3 the server checks a client certificate after the
  // client's handshake is done: its refusal is an alert found here, and
  // "closed" alone would hide why.
  if (ssl_error == SSL_ERROR_SSL) {
    closed_reason_ = with_alert_hint(take_openssl_error());
  }
  ERR_clear_error();
  return true;
}

void TlsSession::send_close_notify() {
  if (ssl_ == nullptr || broken_ || close_notify_sent_ || !SSL_is_init_finished(ssl_.get())) return;
  close_notify_sent_ = true;
  ERR_clear_error();
  // 0: sent, the server's own close_notify not yet read; -1 with WANT_WRITE:
  // did not fit. Neither is waited for.
  SSL_shutdown(ssl_.get());
  ERR_clear_error();
}

void TlsSession::end() {
  send_close_notify();
  ssl_.reset();
  context_.reset();
}

std::string TlsSession::failure(int ssl_error, int saved_errno, bool in_handshake) const {
  std::string prefix = in_handshake ? "TLS handshake failed: " : "TLS: ";
  if (ssl_error == SSL_ERROR_ZERO_RETURN) {
    ERR_clear_error();
    return prefix + "the server closed the connection";
  }
  if (ssl_error == SSL_ERROR_SYSCALL) {
    ERR_clear_error();
    if (saved_errno != 0) return prefix + std::strerror(saved_errno);
    return prefix + "the server closed the connection";
  }
  // The chain or the name did not pass: say which, as OpenSSL's verifier
  // puts it ("unable to get local issuer certificate").
  const long verified = SSL_get_verify_result(ssl_.get());
  if (in_handshake && verified != X509_V_OK) {
    ERR_clear_error();
    std::string why =
        prefix + "certificate verify failed: " + X509_verify_cert_error_string(verified);
    if (verified == X509_V_ERR_HOSTNAME_MISMATCH || verified == X509_V_ERR_IP_ADDRESS_MISMATCH) {
      why += " (the server's certificate is not for " + verified_name_ + ")";
    }
    return why;
  }
  unsigned long code = 0;
  std::string why = with_alert_hint(take_openssl_error(&code));
  if (why.empty()) why = "error " + std::to_string(ssl_error);
  // What OpenSSL says when the other end does not speak TLS at all.
  const int reason = ERR_GET_REASON(code);
  if (in_handshake && ERR_GET_LIB(code) == ERR_LIB_SSL &&
      (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
       reason == SSL_R_UNKNOWN_PROTOCOL)) {
    why += " (does the server speak TLS on this port? a plaintext one answers like this)";
  }
  return prefix + why;
}

}  // namespace tq::client
