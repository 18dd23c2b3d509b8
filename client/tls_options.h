// How a client connection speaks TLS to tqd (client::Options::tls, and
// LineSocket::connect). Plain data: the defaults are a plaintext connection,
// and with `enabled` alone, TLS that trusts what the system trusts and checks
// the server's certificate against the host connected to, as a browser would.
#pragma once

#include <string>

namespace tq::client {

struct TlsOptions {
  // Speak TLS (1.2 or later) on the connection. Every field below matters
  // only when this is set.
  bool enabled = false;
  // PEM file of the CAs that may have signed the server's certificate: your
  // own CA for a private tqd. Empty: the system's default trust store
  // (Debian's /etc/ssl/certs).
  std::string ca_file{};
  // PEM file of a client certificate (its chain may follow it), for a tqd
  // that asks for one (mutual TLS). Needs key_file; one without the other is
  // an error.
  std::string cert_file{};
  // PEM file of cert_file's private key.
  std::string key_file{};
  // The name the server's certificate must be for, also sent as SNI (unless
  // it is an IP address, which SNI cannot carry). Empty: the host connected
  // to. Set it when connecting by an address the certificate does not name.
  std::string server_name{};
  // Check the server's certificate: that a trusted CA signed it and that it
  // is for server_name. false skips both checks (curl's -k): the traffic is
  // still encrypted, but anyone in the middle can pose as the server. For
  // tests and first steps, never for a real deployment.
  bool verify = true;
};

}  // namespace tq::client
