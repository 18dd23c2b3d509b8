// The server's listeners and settings: the addresses it binds (plaintext,
// TLS, metrics), its TLS certificate, and what a reload changes while it
// serves. The loop itself, and the connections, are server.cc's.
#include "server/server.h"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "server/exposition.h"
#include "server/figures.h"
#include "server/listen_address.h"
#include "server/log.h"

namespace tq::server {
namespace {

ListenAddress protocol_address(const Config& config) {
  return ListenAddress{config.host, config.port, "server.host", ""};
}

ListenAddress tls_address(const Config& config) {
  return ListenAddress{config.host, config.tls_port.value_or(0), "server.host", "TLS"};
}

ListenAddress metrics_address(const Config& config) {
  return ListenAddress{config.metrics_host, config.metrics_port, "metrics.listen", "metrics"};
}

}  // namespace

namespace {

std::vector<ListenAddress> listen_addresses(const Config& config) {
  std::vector<ListenAddress> addresses;
  if (config.plaintext_enabled()) addresses.push_back(protocol_address(config));
  if (config.tls_enabled()) addresses.push_back(tls_address(config));
  if (config.metrics_enabled()) addresses.push_back(metrics_address(config));
  return addresses;
}

// A scrape's body: the server's figures, then its queues, a step's worth
// (about as long as the loop's other background work takes) a turn.
class ScrapeInSteps final : public ScrapeBody {
 public:
  ScrapeInSteps(std::function<FigureSources()> sources, std::chrono::nanoseconds step)
      : sources_(std::move(sources)), step_(step) {}
  bool step() override { return text_.step(sources_(), step_); }
  std::vector<std::string> finish() override { return text_.finish_pieces(); }

 private:
  const std::function<FigureSources()> sources_;
  const std::chrono::nanoseconds step_;
  ExpositionInSteps text_;
};

}  // namespace

bool Server::check_address(const Config& config, std::string* error, int* uv_error) {
  return check_addresses(listen_addresses(config), error, uv_error);
}

bool Server::check_addresses_apart(const Config& config, std::string* error, bool* clashed) {
  return addresses_apart(listen_addresses(config), error, clashed);
}

TlsFiles Server::tls_files(const Config& config) {
  return TlsFiles{config.tls_cert_file, config.tls_key_file, config.tls_ca_file};
}

namespace {

// Binds and listens on `address`; the bound address, or nullopt with *error.
std::optional<sockaddr_storage> bind_listener(uv_tcp_t* listener, const ListenAddress& address,
                                              uv_connection_cb on_connection, std::string* error) {
  AddressList found = resolve(address, error);
  if (!found) return std::nullopt;
  int rc = uv_tcp_bind(listener, found->ai_addr, 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(listener), 511, on_connection);
  if (rc != 0) {
    *error = cannot_listen(address, rc);
    return std::nullopt;
  }
  sockaddr_storage bound{};
  int len = sizeof bound;
  uv_tcp_getsockname(listener, reinterpret_cast<sockaddr*>(&bound), &len);
  return bound;
}

}  // namespace

bool Server::listen(std::string* error) {
  // wal.min_free_disk holds from the first request, not from the first
  // housekeeping tick a second later.
  check_disk_room();
  if (config_.plaintext_enabled()) {
    const std::optional<sockaddr_storage> bound =
        bind_listener(&listener_, protocol_address(config_), on_new_connection, error);
    if (!bound) return false;
    bound_port_ = port_of(*bound);
    listening_ = true;
    LOG_INFO("listening on %s", describe_address(*bound).c_str());
    if (!is_loopback(config_.host) && config_.password.empty()) {
      LOG_WARN(
          "no password, and %s is not loopback: anyone who can reach this address can read "
          "and delete every job; set auth.password (or %s), or keep to 127.0.0.1",
          config_.host.c_str(), config_.password_env.c_str());
    }
  }
  if (config_.tls_enabled()) {
    auto loaded = TlsContext::load(tls_files(config_));
    if (!loaded) {
      *error = loaded.error();
      return false;
    }
    tls_ = std::move(loaded.value());
    const std::optional<sockaddr_storage> bound =
        bind_listener(&tls_listener_, tls_address(config_), on_new_connection, error);
    if (!bound) return false;
    bound_tls_port_ = port_of(*bound);
    tls_listening_ = true;
    LOG_INFO("listening for TLS on %s", describe_address(*bound).c_str());
    log_tls_certificate("");
    if (!is_loopback(config_.host) && config_.password.empty() && !tls_->verifies_clients()) {
      LOG_WARN(
          "no password and no tls.ca_file, and %s is not loopback: anyone who can reach "
          "this address can read and delete every job; set auth.password (or %s) or "
          "tls.ca_file",
          config_.host.c_str(), config_.password_env.c_str());
    }
  }
  if (config_.metrics_enabled()) {
    metrics_ = std::make_unique<MetricsListener>(
        loop_, metrics_address(config_), config_.metrics_token,
        [this]() -> std::unique_ptr<ScrapeBody> {
          return std::make_unique<ScrapeInSteps>(
              [this] {
                return FigureSources{engine_, stats_, &waiters_, log_, journal_};
              },
              std::chrono::nanoseconds(kIterationWorkNs));
        },
        [this] { return health_problem(); });
    if (!metrics_->listen(error)) return false;
  }
  return true;
}

void Server::log_tls_certificate(const char* event) {
  LOG_INFO("tls: %scertificate %s; client certificates %s", event, tls_->summary().c_str(),
           tls_->verifies_clients() ? "required (tls.ca_file)" : "not asked for");
  stats_.tls_cert_expires_at_ms = tls_->expires_at_ms();
  warn_tls_expiry();
}

void Server::warn_tls_expiry() {
  tls_expiry_checked_ticks_ = housekeeping_ticks_;
  const int days = tls_->days_left();
  if (days < 0) {
    LOG_WARN(
        "tls: the certificate in %s has expired: clients that verify it will refuse to "
        "connect; replace it and send SIGHUP",
        config_.tls_cert_file.c_str());
  } else if (days < 14) {
    LOG_WARN("tls: the certificate in %s expires in %d day(s); replace it and send SIGHUP",
             config_.tls_cert_file.c_str(), days);
  }
}

ReloadOutcome Server::reload_settings() {
  if (!on_reload_) return ReloadOutcome{"this server does not reload its settings", {}, {}, {}};
  return on_reload_("RELOAD");
}

void Server::take_request_limits() {
  request_limits_.max_wait_ms = config_.max_wait_ms;
  request_limits_.max_count = config_.max_batch;
  request_limits_.max_batch_bytes = config_.max_batch_bytes;
  request_limits_.max_waiters = config_.max_waiters;
  request_limits_.max_payload_bytes = config_.max_payload_bytes;
}

void Server::settings_changed(std::shared_ptr<TlsContext> tls) {
  take_request_limits();
  check_disk_room();  // wal.min_free_disk may have changed
  if (metrics_) metrics_->set_token(config_.metrics_token);
  if (tls_ && tls) {
    // Every reload loads the files again: only a change is news, or each
    // RELOAD said "reloaded" of the certificate it had.
    const bool changed = !tls->same_material(*tls_);
    // Open connections keep the context they began with (a TlsSession holds
    // it); new ones get this one.
    tls_ = std::move(tls);
    if (changed) {
      log_tls_certificate("reloaded ");
    } else {
      LOG_DEBUG("tls: certificate, key and client CAs unchanged (%s)", tls_->summary().c_str());
      warn_tls_expiry();  // still: it may be why the operator reloaded
    }
  }
}

}  // namespace tq::server
