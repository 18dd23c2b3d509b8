// tqd's configuration: the defaults, config.yaml, then command-line flags on
// top. This is the only file that knows yaml-cpp; yaml-cpp throws, and those
// exceptions stop here and come out as one line naming the key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/engine/engine.h"
#include "wal/log_writer.h"

namespace tq::server {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

// A queue named in config.yaml: created at start-up if missing, and given
// these settings at every start (settings changed by CONFIG at run time
// last until then).
// A schedule declared in config.yaml (queues.declare.<queue>.schedules.<name>):
// what SCHEDULE <queue> <name> ... would say.
struct DeclaredSchedule {
  std::string name;
  int64_t every_ms = 0;  // every: ...; 0: cron
  std::string cron;      // cron: five fields or a @shortcut
  std::string payload;
  int32_t priority = 0;  // the options of each job it puts, as PUT's
  int64_t ttl_ms = 0;
  uint32_t attempts = 0;
  std::string group;
  bool operator==(const DeclaredSchedule&) const = default;
};

struct DeclaredQueue {
  std::string name;
  std::vector<std::pair<std::string, std::string>> settings;  // key, value as written
  std::vector<DeclaredSchedule> schedules;  // set at every start unless already the same
  bool operator==(const DeclaredQueue&) const = default;
};

struct Config {
  // server:
  std::string host = "127.0.0.1";     // loopback unless told otherwise
  uint16_t port = 8080;               // the original server's port; its clients dial it
  std::string data_dir = "data";      // the log and the lock file live here
  std::string source;  // the file these settings came from; empty: built-in defaults
  LogLevel log_level = LogLevel::kInfo;
  int64_t shutdown_timeout_ms = 5'000;  // to finish replies and flush before exit
  int64_t tcp_keepalive_ms = 60'000;    // probe idle peers so half-open connections close; 0: off
  // Job memory in transparent huge pages (engine::SlabAllocator::use_huge_pages).
  bool huge_pages = false;
  // auth:
  std::string password;                 // empty: no authentication
  std::string password_env = "TQ_PASSWORD";  // read the password from this variable when set
  // With it set, admin commands (kAdmin) need AUTH with this one; empty: the
  // password (or, without one, anyone) may run them.
  std::string admin_password;
  std::string admin_password_env = "TQ_ADMIN_PASSWORD";
  // limits:
  size_t max_connections = 10'000;
  int64_t idle_timeout_ms = 0;          // close a connection silent this long; 0: never
  int64_t request_timeout_ms = 30'000;  // close one that takes longer to send one request
  int64_t send_timeout_ms = 30'000;     // close one that reads none of its replies this long
  size_t max_auth_failures = 3;         // wrong passwords before the connection is closed
  size_t max_waiters = 10'000;          // connections blocked in DEQUEUE ... WAIT
  uint64_t max_batch_bytes = 16ull << 20;  // payload bytes in one DEQUEUE ... COUNT or PEEK reply
  size_t max_line_bytes = 1 << 20;
  size_t max_queues = 10'000;
  int64_t max_wait_ms = 3'600'000;   // longest DEQUEUE ... WAIT
  size_t max_batch = 1000;           // largest DEQUEUE ... COUNT and PEEK n
  size_t max_payload_bytes = 1 << 20;          // one PUT body
  size_t max_jobs = 10'000'000;                // across all queues
  uint64_t max_payload_total = 2ull << 30;     // payload bytes across all queues
  // Unsent replies and unread requests of all connections together; past
  // it, the clients that do not keep up are closed, the biggest first
  // (Server::limit_client_memory). 0: no limit.
  uint64_t max_client_memory = 1ull << 30;
  // queues:
  bool auto_create_queues = false;
  engine::QueueSettings queue_defaults;
  std::vector<DeclaredQueue> declared_queues;
  // wal:
  // false: jobs live in memory only and nothing is written to data_dir; a
  // restart or a crash loses every job (beanstalkd without -b, redis without
  // persistence). For work that can be redone; never the default.
  bool wal_enabled = true;
  wal::FsyncPolicy fsync = wal::FsyncPolicy::kAlways;
  int64_t fsync_interval_ms = 1000;
  uint64_t segment_bytes = 64ull << 20;
  double compaction_ratio = 2.0;
  // Below this many free bytes on the log's disk, new jobs are refused
  // (FULL) so that the rest goes to ACKs and the like, which drain queues
  // and free segments (never less than two segments; 0: no reserve).
  uint64_t wal_min_free_disk = 256ull << 20;
  bool wal_recover = false;
  bool wal_zero_fill = true;  // always: zero-fill the next segment ahead (wal/spare_segment.h)
  // Whether DEQUEUE's reply waits for its lease records to be durable too
  // (see CommandContext::wrote_only_leases).
  bool wal_sync_leases = false;
  // BACKUP writes here (server/backup.h); empty: <data_dir>/backups.
  std::string wal_backup_dir;
  size_t wal_backup_keep = 0;  // after a backup, keep this many in backup_dir; 0: all
  std::string backup_dir() const {
    return wal_backup_dir.empty() ? data_dir + "/backups" : wal_backup_dir;
  }
  // tls: a second listener, on `host`, for clients that speak TLS.
  std::optional<uint16_t> tls_port;  // nullopt: none; 0: any free port
  std::string tls_cert_file;         // PEM: certificate chain
  std::string tls_key_file;          // PEM: its private key
  std::string tls_ca_file;           // PEM: CAs for client certificates; empty: none asked
  bool tls_plaintext = true;         // false: `port` is not opened, only TLS is spoken
  bool tls_enabled() const { return tls_port.has_value(); }
  bool plaintext_enabled() const { return !tls_enabled() || tls_plaintext; }
  // metrics: (listen, split)
  std::string metrics_host;  // the Prometheus endpoint's address; empty: no endpoint
  uint16_t metrics_port = 0;
  std::string metrics_token;  // not empty: scrapes send Authorization: Bearer <token>
  std::string metrics_token_env = "TQ_METRICS_TOKEN";  // read the token from this variable
  bool metrics_enabled() const { return !metrics_host.empty(); }
};

struct ConfigResult {
  std::optional<Config> config;
  std::string error;  // one line, naming the file and the key; set when !config
  // Settings of the file that something else overrides (a flag, the
  // environment), one line each: worth a warning, since an edit of them in
  // the file changes nothing.
  std::vector<std::string> notes;
};

// Empty, or why wal.backup_dir cannot be used with this data_dir: a backup
// inside the log's directory would be read as part of the log, and with
// wal.backup_keep a data directory inside backup_dir could be taken for an
// old backup.
std::string backup_dir_problem(const Config& config);

// Empty, or why wal.segment_bytes is too small for the longest request the
// limits allow (a record never spans log files).
std::string segment_problem(const Config& config);

// Empty, or why tqd must not start with these settings, checked once the
// command line and the environment have had their say: an empty host or
// data directory, more queues declared than limits.max_queues allows,
// backup_dir_problem, a metrics.token no header can carry, an admin
// password equal to the other.
std::string startup_problem(const Config& config);

// Reads `path` over the defaults. A missing file is an error: tqd was asked
// for it by name.
ConfigResult load_config_file(const std::string& path, Config base = {});

// Parses YAML text (for tests and for the file loader); `origin` names it in
// messages.
ConfigResult load_config_text(const std::string& text, const std::string& origin,
                              Config base = {});

const char* log_level_name(LogLevel level);
std::optional<LogLevel> parse_log_level(const std::string& name);

// "30s", "500ms", "2m", "1h", or a plain number of `unit_ms` units.
std::optional<int64_t> parse_duration_ms(const std::string& text, int64_t unit_ms);
// "64MiB", "512KiB", "1GiB", "100KB", or a plain number of bytes.
std::optional<uint64_t> parse_size(const std::string& text);
// "127.0.0.1:9108", "[::1]:9108", "localhost:9108" as host and port; the
// host is looked up at start-up, not here.
std::optional<std::pair<std::string, uint16_t>> parse_host_port(std::string_view text);
// "2", "1.5", "0.25": digits with at most one decimal point, nothing else
// (no sign, exponent, hex, inf or nan), as a person writes a ratio.
std::optional<double> parse_decimal(std::string_view text);
// true/yes/on/1 or false/no/off/0 (also True, TRUE and so on): the same
// words in config.yaml and in CONFIG, as YAML 1.1 and a person write them.
std::optional<bool> parse_bool(std::string_view text);

}  // namespace tq::server
