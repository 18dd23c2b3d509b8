// Certificates for TLS tests, made when a test runs (so none expires in the
// repository): a CA, a server certificate it signed for "localhost" and
// 127.0.0.1, and a client certificate it signed, each as PEM files in a
// directory. Keys are ECDSA P-256.
#pragma once

#include <string>

namespace tq::testing {

struct TlsFiles {
  std::string ca_cert;      // the CA that signed the two below
  std::string server_cert;  // CN=localhost, subjectAltName DNS:localhost, IP:127.0.0.1
  std::string server_key;
  std::string client_cert;  // CN=<client_name>, for mutual TLS
  std::string client_key;
};

// Writes the five files into `dir` (which must exist), their names starting
// with `prefix`, under a fresh CA named `ca_name`. Throws std::runtime_error
// when OpenSSL fails.
TlsFiles make_tls_files(const std::string& dir, const std::string& prefix = "",
                        const std::string& ca_name = "tq test CA",
                        const std::string& client_name = "tq test client");

// Writes a fresh private key to `path`, encrypted with `passphrase` (PEM,
// AES-256-CBC), as `openssl genpkey -aes256` would.
void write_encrypted_key(const std::string& path, const std::string& passphrase);

}  // namespace tq::testing
