#include "server/tls.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>

namespace tq::server {
namespace {

// Ciphertext for more plaintext than this at once gets a fresh outgoing BIO
// afterwards (see TlsSession::send).
constexpr size_t kBigOutputBytes = 64 << 10;

// The reason of the oldest error on OpenSSL's queue (this thread's), which
// is then emptied so it cannot be blamed on a later call.
std::string take_openssl_error() {
  std::string reason;
  while (unsigned long e = ERR_get_error()) {
    if (!reason.empty()) continue;
    const char* text = ERR_reason_error_string(e);
    if (text != nullptr) {
      reason = text;
    } else {
      char buf[256];
      ERR_error_string_n(e, buf, sizeof buf);
      reason = buf;
    }
  }
  return reason.empty() ? "unknown error" : reason;
}

// Why `path` cannot be read, or "". OpenSSL's message for a missing file is
// "system lib", and for a directory (which fopen opens) "no start line":
// say it as the shell would.
std::string unreadable(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return "'" + path + "' is a directory, not a file";
  }
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return "cannot open '" + path + "': " + std::strerror(errno);
  std::fclose(f);
  return "";
}

// Whether a PEM file holds an encrypted private key (PKCS#8
// "ENCRYPTED PRIVATE KEY", or a traditional key with "Proc-Type: 4,ENCRYPTED").
bool key_is_encrypted(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("ENCRYPTED PRIVATE KEY") != std::string::npos ||
        line.find("Proc-Type: 4,ENCRYPTED") != std::string::npos) {
      return true;
    }
  }
  return false;
}

std::string asn1_time_text(const ASN1_TIME* time) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return "?";
  std::string text = "?";
  if (ASN1_TIME_print(bio, time) == 1) {
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    if (n > 0) text.assign(data, static_cast<size_t>(n));
  }
  BIO_free(bio);
  return text;
}

// Appends the DER encoding `i2d` makes of `object` (nothing if it fails).
template <typename T>
void append_der(std::string& out, const T* object, int (*i2d)(const T*, unsigned char**)) {
  unsigned char* der = nullptr;
  const int n = object != nullptr ? i2d(object, &der) : -1;
  if (n > 0) out.append(reinterpret_cast<const char*>(der), static_cast<size_t>(n));
  OPENSSL_free(der);
}

// SHA-256 of `der`; empty if it could not be made.
std::string sha256(const std::string& der) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (EVP_Digest(der.data(), der.size(), md, &md_len, EVP_sha256(), nullptr) != 1) return "";
  return std::string(reinterpret_cast<const char*>(md), md_len);
}

// Digests of what `ctx` holds, taken from what OpenSSL loaded, not read
// from the files again, which may have changed between: the certificate,
// its chain and the private key (tls.cert_file, tls.key_file) ...
std::string certificate_digest(SSL_CTX* ctx) {
  std::string der;
  append_der(der, SSL_CTX_get0_certificate(ctx), i2d_X509);
  STACK_OF(X509)* chain = nullptr;
  SSL_CTX_get0_chain_certs(ctx, &chain);
  for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) {
    append_der(der, sk_X509_value(chain, i), i2d_X509);
  }
  append_der(der, SSL_CTX_get0_privatekey(ctx), i2d_PrivateKey);
  return sha256(der);
}

// ... and the CAs trusted for client certificates (tls.ca_file).
std::string client_ca_digest(SSL_CTX* ctx, bool verifies_clients) {
  std::string der(verifies_clients ? "v" : "-");
  if (verifies_clients) {
    STACK_OF(X509_OBJECT)* trusted = X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));
    for (int i = 0; trusted != nullptr && i < sk_X509_OBJECT_num(trusted); ++i) {
      append_der(der, X509_OBJECT_get0_X509(sk_X509_OBJECT_value(trusted, i)), i2d_X509);
    }
  }
  return sha256(der);
}

}  // namespace

Expected<std::shared_ptr<TlsContext>, std::string> TlsContext::load(const TlsFiles& files) {
  ERR_clear_error();
  auto context = std::make_shared<TlsContext>();
  context->ctx_.reset(SSL_CTX_new(TLS_server_method()));
  SSL_CTX* ctx = context->ctx_.get();
  if (ctx == nullptr) return Unexpected<std::string>{"tls: " + take_openssl_error()};
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // Renegotiation a client starts costs the server a handshake per request
  // of the client's choosing; nothing here needs it.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Connections live long, so resumption saves little, and a session cache
  // is memory for every client that ever connected; a TLS 1.3 ticket would
  // also be the one record a client gets without asking.
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  // An idle connection gives its two ~17 KiB record buffers back.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  static const unsigned char kSessionContext[] = "tqd";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);

  // OpenSSL's default for an encrypted key is to ask for its passphrase on
  // the terminal: at start-up that hangs tqd, and on SIGHUP the event loop.
  // Refuse instead, with a message that says why.
  SSL_CTX_set_default_passwd_cb(ctx, [](char*, int, int, void*) { return -1; });
  if (std::string why = unreadable(files.cert_file); !why.empty()) {
    return Unexpected<std::string>{"tls.cert_file: " + why};
  }
  if (SSL_CTX_use_certificate_chain_file(ctx, files.cert_file.c_str()) != 1) {
    return Unexpected<std::string>{"tls.cert_file: '" + files.cert_file +
                                   "' holds no usable PEM certificate: " + take_openssl_error()};
  }
  if (std::string why = unreadable(files.key_file); !why.empty()) {
    return Unexpected<std::string>{"tls.key_file: " + why};
  }
  const bool key_loaded =
      SSL_CTX_use_PrivateKey_file(ctx, files.key_file.c_str(), SSL_FILETYPE_PEM) == 1;
  const unsigned long key_error = ERR_peek_last_error();
  if (!key_loaded && key_is_encrypted(files.key_file)) {
    ERR_clear_error();
    return Unexpected<std::string>{"tls.key_file: '" + files.key_file +
                                   "' is encrypted: tqd needs the key without a passphrase "
                                   "(keep the file readable by tqd's user only)"};
  }
  if (!key_loaded && ERR_GET_REASON(key_error) != X509_R_KEY_VALUES_MISMATCH) {
    return Unexpected<std::string>{"tls.key_file: '" + files.key_file +
                                   "' holds no usable PEM private key: " + take_openssl_error()};
  }
  if (!key_loaded || SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    return Unexpected<std::string>{"tls.key_file: '" + files.key_file +
                                   "' is not the key of the certificate in tls.cert_file"};
  }
  if (!files.ca_file.empty()) {
    if (std::string why = unreadable(files.ca_file); !why.empty()) {
      return Unexpected<std::string>{"tls.ca_file: " + why};
    }
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(files.ca_file.c_str());
    if (names == nullptr ||
        SSL_CTX_load_verify_locations(ctx, files.ca_file.c_str(), nullptr) != 1) {
      if (names != nullptr) sk_X509_NAME_pop_free(names, X509_NAME_free);
      return Unexpected<std::string>{"tls.ca_file: '" + files.ca_file +
                                     "' holds no usable PEM certificate: " + take_openssl_error()};
    }
    SSL_CTX_set_client_CA_list(ctx, names);  // takes ownership
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    context->verifies_clients_ = true;
  }

  X509* cert = SSL_CTX_get0_certificate(ctx);
  char subject[256] = "?";
  X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof subject);
  context->summary_ =
      std::string(subject) + ", valid until " + asn1_time_text(X509_get0_notAfter(cert));
  context->certificate_digest_ = certificate_digest(ctx);
  context->client_ca_digest_ = client_ca_digest(ctx, context->verifies_clients_);
  ERR_clear_error();
  return context;
}

bool TlsContext::same_material(const TlsContext& other) const {
  return same_certificate(other) && same_client_cas(other);
}

bool TlsContext::same_certificate(const TlsContext& other) const {
  return !certificate_digest_.empty() && certificate_digest_ == other.certificate_digest_;
}

bool TlsContext::same_client_cas(const TlsContext& other) const {
  return !client_ca_digest_.empty() && client_ca_digest_ == other.client_ca_digest_;
}

int TlsContext::days_left() const {
  int days = 0;
  int seconds = 0;
  X509* cert = SSL_CTX_get0_certificate(ctx_.get());
  if (cert == nullptr || ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(cert)) != 1) {
    return 0;
  }
  return days < 0 || seconds < 0 ? std::min(days, -1) : days;
}

int64_t TlsContext::expires_at_ms() const {
  X509* cert = SSL_CTX_get0_certificate(ctx_.get());
  std::tm when{};
  if (cert == nullptr || ASN1_TIME_to_tm(X509_get0_notAfter(cert), &when) != 1) return 0;
  return static_cast<int64_t>(timegm(&when)) * 1000;
}

TlsSession::TlsSession(std::shared_ptr<TlsContext> context) : context_(std::move(context)) {
  ssl_.reset(SSL_new(context_->get()));
  if (!ssl_) return;
  in_ = BIO_new(BIO_s_mem());
  out_ = BIO_new(BIO_s_mem());
  if (in_ == nullptr || out_ == nullptr) {
    BIO_free(in_);
    BIO_free(out_);
    in_ = out_ = nullptr;
    ssl_.reset();
    return;
  }
  // An empty inbound BIO means "more to come" (WANT_READ), not end of file.
  BIO_set_mem_eof_return(in_, -1);
  SSL_set_bio(ssl_.get(), in_, out_);
  SSL_set_accept_state(ssl_.get());
}

TlsSession::Read TlsSession::receive(std::string_view ciphertext, std::string& plain) {
  if (!ssl_) {
    error_ = "out of memory";
    return Read::kFailed;
  }
  if (!received_any_ && !ciphertext.empty()) {
    received_any_ = true;
    // Every TLS connection opens with a handshake record (content type 22);
    // a letter is someone typing commands in plaintext.
    if (static_cast<unsigned char>(ciphertext[0]) != 22) return Read::kPlaintext;
  }
  ERR_clear_error();
  while (!ciphertext.empty()) {
    const int n = BIO_write(in_, ciphertext.data(), static_cast<int>(ciphertext.size()));
    if (n <= 0) {
      error_ = "out of memory";
      return Read::kFailed;
    }
    ciphertext.remove_prefix(static_cast<size_t>(n));
  }
  if (!established_) {
    const int rc = SSL_do_handshake(ssl_.get());
    if (rc != 1) {
      const int err = SSL_get_error(ssl_.get(), rc);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        collect_output();
        return Read::kOk;
      }
      fail(err);
      return Read::kFailed;
    }
    established_ = true;
  }
  char buf[16 << 10];
  for (;;) {
    const int n = SSL_read(ssl_.get(), buf, sizeof buf);
    if (n > 0) {
      plain.append(buf, static_cast<size_t>(n));
      continue;
    }
    const int err = SSL_get_error(ssl_.get(), n);
    collect_output();
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return Read::kOk;
    if (err == SSL_ERROR_ZERO_RETURN) return Read::kClosed;
    fail(err);
    return Read::kFailed;
  }
}

bool TlsSession::send(std::string_view plaintext) {
  if (!ssl_ || !established_) return false;
  ERR_clear_error();
  const bool big = plaintext.size() > kBigOutputBytes;
  while (!plaintext.empty()) {
    // A memory BIO takes everything at once; the loop is for lengths past INT_MAX.
    const size_t chunk = std::min<size_t>(plaintext.size(), 1 << 30);
    const int n = SSL_write(ssl_.get(), plaintext.data(), static_cast<int>(chunk));
    if (n <= 0) {
      fail(SSL_get_error(ssl_.get(), n));
      return false;
    }
    plaintext.remove_prefix(static_cast<size_t>(n));
  }
  collect_output();
  if (big) {
    // A memory BIO keeps the capacity it grew to: after a big reply, start
    // a fresh one rather than hold that much for an idle connection.
    if (BIO* fresh = BIO_new(BIO_s_mem())) {
      SSL_set0_wbio(ssl_.get(), fresh);  // frees the old one
      out_ = fresh;
    }
  }
  return true;
}

void TlsSession::close_notify() {
  if (notified_) return;
  notified_ = true;
  if (!ssl_ || !established_) return;
  ERR_clear_error();
  SSL_shutdown(ssl_.get());
  ERR_clear_error();
  collect_output();
}

std::string TlsSession::describe() const {
  if (!ssl_ || !established_) return "";
  return std::string(SSL_get_version(ssl_.get())) + " " + SSL_get_cipher_name(ssl_.get());
}

std::string TlsSession::version() const {
  if (!ssl_ || !established_) return "";
  return SSL_get_version(ssl_.get());
}

void TlsSession::collect_output() {
  const size_t pending = BIO_ctrl_pending(out_);
  if (pending == 0) return;
  const size_t old = output_.size();
  output_.resize(old + pending);
  const int n = BIO_read(out_, output_.data() + old, static_cast<int>(pending));
  output_.resize(old + static_cast<size_t>(std::max(n, 0)));
}

void TlsSession::fail(int err) {
  // A failed session must not send close_notify afterwards; its alert (if
  // OpenSSL made one) is in the output, for the client to learn why.
  notified_ = true;
  collect_output();
  const long verify = SSL_get_verify_result(ssl_.get());
  if (verify != X509_V_OK) {
    error_ = std::string("client certificate rejected: ") + X509_verify_cert_error_string(verify);
    ERR_clear_error();
  } else if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
    error_ = "the client closed the connection";
  } else {
    error_ = take_openssl_error();
  }
}

}  // namespace tq::server
