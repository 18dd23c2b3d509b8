#include "server/config_reload.h"

#include <cstdio>
#include <map>
#include <tuple>

#include "server/queue_settings.h"

namespace tq::server {
namespace {

enum class Scope {
  kLive,     // applied at once
  kRestart,  // the running value stays until tqd restarts
  kSecret,   // a password: a new one applies at once, on or off needs a restart
  kTlsFile,  // live while a TLS listener runs before and after; else with tls.port
  kMetrics,  // live while the metrics endpoint runs; else with metrics.listen
};

// One line each, as a table.
// clang-format off
std::string text(const std::string& s) { return s; }
std::string text(bool b) { return b ? "true" : "false"; }
std::string text(uint64_t n) { return std::to_string(n); }
std::string text(int64_t n) { return std::to_string(n); }
std::string text(uint16_t n) { return std::to_string(n); }
std::string text(LogLevel level) { return log_level_name(level); }
std::string text(wal::FsyncPolicy policy) { return wal::fsync_policy_name(policy); }
std::string text(double d) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", d);  // 2, 1.5: as written
  return buffer;
}
std::string text(const std::optional<uint16_t>& port) {
  return port ? std::to_string(*port) : "(none)";
}
// clang-format on

// Milliseconds as config.yaml takes them: "30s", "500ms", "2h".
std::string duration(int64_t ms) {
  static constexpr struct {
    int64_t ms;
    const char* unit;
  } kUnits[] = {{86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1'000, "s"}};
  if (ms == 0) return "0";
  for (const auto& u : kUnits) {
    if (ms % u.ms == 0) return std::to_string(ms / u.ms) + u.unit;
  }
  return std::to_string(ms) + "ms";
}

// Bytes as config.yaml takes them: "16MiB", "1GiB", "100".
std::string size(uint64_t bytes) {
  static constexpr struct {
    uint64_t bytes;
    const char* unit;
  } kUnits[] = {{1ull << 30, "GiB"}, {1ull << 20, "MiB"}, {1ull << 10, "KiB"}};
  for (const auto& u : kUnits) {
    if (bytes != 0 && bytes % u.bytes == 0) return std::to_string(bytes / u.bytes) + u.unit;
  }
  return std::to_string(bytes);
}

// metrics.listen is two fields, shown as it is written.
std::string metrics_listen(const Config& c) {
  return c.metrics_enabled() ? c.metrics_host + ":" + std::to_string(c.metrics_port) : "(off)";
}
void take_metrics_listen(Config& to, const Config& from) {
  to.metrics_host = from.metrics_host;
  to.metrics_port = from.metrics_port;
}

struct Setting {
  const char* key;
  Scope scope;
  std::string (*show)(const Config&);  // compared, and logged unless a secret
  void (*take)(Config& to, const Config& from);
};

// One row per config.yaml key (most are one field: TQ_SETTING); queues.defaults and
// queues.declare are compared key by key below.
#define TQ_SETTING(key, scope, member, format)                          \
  Setting {                                                             \
    key, scope, [](const Config& c) { return format(c.member); },       \
        [](Config& to, const Config& from) { to.member = from.member; } \
  }

// clang-format off
const Setting kSettings[] = {
    TQ_SETTING("server.host", Scope::kRestart, host, text),
    TQ_SETTING("server.port", Scope::kRestart, port, text),
    TQ_SETTING("server.data_dir", Scope::kRestart, data_dir, text),
    TQ_SETTING("server.log_level", Scope::kLive, log_level, text),
    TQ_SETTING("server.shutdown_timeout", Scope::kLive, shutdown_timeout_ms, duration),
    TQ_SETTING("server.tcp_keepalive", Scope::kLive, tcp_keepalive_ms, duration),
    TQ_SETTING("server.huge_pages", Scope::kRestart, huge_pages, text),
    TQ_SETTING("auth.password", Scope::kSecret, password, text),
    TQ_SETTING("auth.password_env", Scope::kLive, password_env, text),
    TQ_SETTING("auth.admin_password", Scope::kSecret, admin_password, text),
    TQ_SETTING("auth.admin_password_env", Scope::kLive, admin_password_env, text),
    TQ_SETTING("tls.port", Scope::kRestart, tls_port, text),
    TQ_SETTING("tls.cert_file", Scope::kTlsFile, tls_cert_file, text),
    TQ_SETTING("tls.key_file", Scope::kTlsFile, tls_key_file, text),
    TQ_SETTING("tls.ca_file", Scope::kTlsFile, tls_ca_file, text),
    TQ_SETTING("tls.plaintext", Scope::kRestart, tls_plaintext, text),
    TQ_SETTING("limits.max_connections", Scope::kLive, max_connections, text),
    TQ_SETTING("limits.idle_timeout", Scope::kLive, idle_timeout_ms, duration),
    TQ_SETTING("limits.request_timeout", Scope::kLive, request_timeout_ms, duration),
    TQ_SETTING("limits.send_timeout", Scope::kLive, send_timeout_ms, duration),
    TQ_SETTING("limits.max_auth_failures", Scope::kLive, max_auth_failures, text),
    TQ_SETTING("limits.max_waiters", Scope::kLive, max_waiters, text),
    TQ_SETTING("limits.max_batch_bytes", Scope::kLive, max_batch_bytes, size),
    TQ_SETTING("limits.max_line_bytes", Scope::kLive, max_line_bytes, size),
    TQ_SETTING("limits.max_payload_bytes", Scope::kLive, max_payload_bytes, size),
    TQ_SETTING("limits.max_queues", Scope::kLive, max_queues, text),
    TQ_SETTING("limits.max_jobs", Scope::kLive, max_jobs, text),
    TQ_SETTING("limits.max_payload_total", Scope::kLive, max_payload_total, size),
    TQ_SETTING("limits.max_client_memory", Scope::kLive, max_client_memory, size),
    TQ_SETTING("limits.max_wait", Scope::kLive, max_wait_ms, duration),
    TQ_SETTING("limits.max_batch", Scope::kLive, max_batch, text),
    TQ_SETTING("wal.enabled", Scope::kRestart, wal_enabled, text),
    TQ_SETTING("wal.fsync", Scope::kRestart, fsync, text),
    TQ_SETTING("wal.fsync_interval_ms", Scope::kRestart, fsync_interval_ms, text),
    TQ_SETTING("wal.segment_bytes", Scope::kRestart, segment_bytes, size),
    TQ_SETTING("wal.compaction_ratio", Scope::kRestart, compaction_ratio, text),
    TQ_SETTING("wal.min_free_disk", Scope::kLive, wal_min_free_disk, size),
    TQ_SETTING("wal.recover", Scope::kRestart, wal_recover, text),
    TQ_SETTING("wal.zero_fill", Scope::kRestart, wal_zero_fill, text),
    TQ_SETTING("wal.sync_leases", Scope::kRestart, wal_sync_leases, text),
    TQ_SETTING("wal.backup_dir", Scope::kRestart, wal_backup_dir, text),
    TQ_SETTING("wal.backup_keep", Scope::kRestart, wal_backup_keep, text),
    TQ_SETTING("queues.auto_create", Scope::kLive, auto_create_queues, text),
    Setting{"metrics.listen", Scope::kRestart, metrics_listen, take_metrics_listen},
    TQ_SETTING("metrics.token", Scope::kMetrics, metrics_token, text),
    TQ_SETTING("metrics.token_env", Scope::kLive, metrics_token_env, text),
};
// clang-format on

#undef TQ_SETTING

bool is_secret(const Setting& s) {
  return s.scope == Scope::kSecret || s.scope == Scope::kMetrics;
}

bool needs_restart(const Setting& s, const Config& running, const Config& next) {
  if (s.scope == Scope::kRestart) return true;
  if (s.scope == Scope::kSecret) return s.show(running).empty() != s.show(next).empty();
  // Without a TLS listener now, or with none after the restart, the files
  // are for the restart: a running listener keeps the files it has.
  if (s.scope == Scope::kTlsFile) return !running.tls_enabled() || !next.tls_enabled();
  // Without an endpoint running, a token is for the one the restart opens.
  if (s.scope == Scope::kMetrics) return !running.metrics_enabled();
  return false;
}

std::string masked(const std::string& secret) {
  return secret.empty() ? "empty" : "set";
}

std::map<std::string, std::string> settings_map(const engine::QueueSettings& settings) {
  std::map<std::string, std::string> m;
  for (auto& [key, value] : describe_queue_settings(settings)) m.emplace(key, value);
  return m;
}

}  // namespace

std::vector<std::string> compared_setting_keys() {
  std::vector<std::string> keys;
  for (const Setting& s : kSettings) keys.push_back(s.key);
  return keys;
}

std::vector<SettingChange> compare_settings(const Config& running, const Config& next) {
  std::vector<SettingChange> changes;
  for (const Setting& s : kSettings) {
    std::string before = s.show(running);
    std::string after = s.show(next);
    if (before == after) continue;
    if (is_secret(s)) {
      // Never the secret itself; a rotation logs "set -> a new one", not "set -> set".
      const bool rotated = !before.empty() && !after.empty();
      before = masked(before);
      after = rotated ? "a new one" : masked(after);
    }
    if (before.empty()) before = "(none)";
    if (after.empty()) after = "(none)";
    changes.push_back({s.key, before, after, needs_restart(s, running, next)});
  }
  const auto defaults_before = settings_map(running.queue_defaults);
  for (const auto& [key, after] : settings_map(next.queue_defaults)) {
    const auto it = defaults_before.find(key);
    const std::string before = it == defaults_before.end() ? "" : it->second;
    if (before != after) changes.push_back({"queues.defaults." + key, before, after, false});
  }
  for (const DeclaredQueue& declared : changed_declarations(running, next)) {
    changes.push_back({"queues.declare." + declared.name, "", "", false});
  }
  return changes;
}

void take_live_settings(Config& running, const Config& next) {
  for (const Setting& s : kSettings) {
    if (!needs_restart(s, running, next)) s.take(running, next);
  }
  running.queue_defaults = next.queue_defaults;
  running.declared_queues = next.declared_queues;
}

namespace {

bool same_declaration(const DeclaredQueue& a, const DeclaredQueue& b) {
  // What the declaration does, not how it is written: the order of its keys
  // and schedules, or 30s for 30000ms, is no change (applying it again would
  // undo CONFIG changes made at run time for nothing).
  auto effect = [](const DeclaredQueue& d) {
    engine::QueueSettings settings;
    std::map<std::string, std::string> keys;
    for (const auto& [key, value] : d.settings) {
      (void)apply_queue_setting(settings, key, value);
      keys.emplace(key, "");
    }
    std::map<std::string, DeclaredSchedule> schedules;
    for (const DeclaredSchedule& s : d.schedules) schedules.emplace(s.name, s);
    return std::tuple(keys, settings_map(settings), schedules);
  };
  return a.name == b.name && effect(a) == effect(b);
}

}  // namespace

std::vector<DeclaredQueue> changed_declarations(const Config& running, const Config& next) {
  std::map<std::string, const DeclaredQueue*> before;
  for (const DeclaredQueue& d : running.declared_queues) before.emplace(d.name, &d);
  std::vector<DeclaredQueue> changed;
  for (const DeclaredQueue& d : next.declared_queues) {
    const auto it = before.find(d.name);
    if (it == before.end() || !same_declaration(*it->second, d)) changed.push_back(d);
  }
  return changed;
}

}  // namespace tq::server
