#include "tests/support/tls_certs.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <memory>
#include <stdexcept>

namespace tq::testing {
namespace {

struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct CertFree {
  void operator()(X509* cert) const { X509_free(cert); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, CertFree>;

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("tls_certs: ") + what + " failed");
}

Key new_key() {
  Key key(EVP_EC_gen("P-256"));
  check(key != nullptr, "EVP_EC_gen");
  return key;
}

void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  check(ext != nullptr, "X509V3_EXT_conf_nid");
  const int added = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  check(added == 1, "X509_add_ext");
}

// A certificate for `key` named `common_name`, signed by `issuer_key` under
// `issuer` (null: self-signed), valid from an hour ago for 30 days.
Cert new_cert(EVP_PKEY* key, const std::string& common_name, X509* issuer, EVP_PKEY* issuer_key,
              long serial, bool is_ca, const char* alt_names) {
  Cert cert(X509_new());
  check(cert != nullptr, "X509_new");
  check(X509_set_version(cert.get(), 2) == 1, "X509_set_version");
  check(ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial) == 1, "ASN1_INTEGER_set");
  check(X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) != nullptr, "notBefore");
  check(X509_gmtime_adj(X509_getm_notAfter(cert.get()), 30L * 86400) != nullptr, "notAfter");
  check(X509_set_pubkey(cert.get(), key) == 1, "X509_set_pubkey");
  X509_NAME* name = X509_get_subject_name(cert.get());
  check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                   -1, 0) == 1,
        "X509_NAME_add_entry_by_txt");
  X509* signer = issuer != nullptr ? issuer : cert.get();
  check(X509_set_issuer_name(cert.get(), X509_get_subject_name(signer)) == 1,
        "X509_set_issuer_name");
  if (is_ca) {
    add_extension(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
    add_extension(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_extension(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(cert.get(), signer, NID_key_usage, "critical,digitalSignature");
  }
  if (alt_names != nullptr) add_extension(cert.get(), signer, NID_subject_alt_name, alt_names);
  check(X509_sign(cert.get(), issuer_key, EVP_sha256()) > 0, "X509_sign");
  return cert;
}

void write_pem(const std::string& path, X509* cert, EVP_PKEY* key) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) throw std::runtime_error("tls_certs: cannot write " + path);
  const bool ok = cert != nullptr
                      ? PEM_write_X509(f, cert) == 1
                      : PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  std::fclose(f);
  check(ok, "PEM_write");
}

}  // namespace

TlsFiles make_tls_files(const std::string& dir, const std::string& prefix,
                        const std::string& ca_name, const std::string& client_name) {
  const std::string base = dir + "/" + prefix;
  TlsFiles files{base + "ca.pem", base + "server.pem", base + "server-key.pem",
                 base + "client.pem", base + "client-key.pem"};
  Key ca_key = new_key();
  Cert ca = new_cert(ca_key.get(), ca_name, nullptr, ca_key.get(), 1, true, nullptr);
  Key server_key = new_key();
  Cert server = new_cert(server_key.get(), "localhost", ca.get(), ca_key.get(), 2, false,
                         "DNS:localhost,IP:127.0.0.1");
  Key client_key = new_key();
  Cert client = new_cert(client_key.get(), client_name, ca.get(), ca_key.get(), 3, false, nullptr);
  write_pem(files.ca_cert, ca.get(), nullptr);
  write_pem(files.server_cert, server.get(), nullptr);
  write_pem(files.server_key, nullptr, server_key.get());
  write_pem(files.client_cert, client.get(), nullptr);
  write_pem(files.client_key, nullptr, client_key.get());
  return files;
}

void write_encrypted_key(const std::string& path, const std::string& passphrase) {
  Key key = new_key();
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) throw std::runtime_error("tls_certs: cannot write " + path);
  const bool ok = PEM_write_PrivateKey(f, key.get(), EVP_aes_256_cbc(),
                                       reinterpret_cast<const unsigned char*>(passphrase.data()),
                                       static_cast<int>(passphrase.size()), nullptr, nullptr) == 1;
  std::fclose(f);
  check(ok, "PEM_write_PrivateKey (encrypted)");
}

}  // namespace tq::testing
