#include "server/config.h"

#include "protocol/command_table.h"
#include "server/queue_settings.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <system_error>
#include <vector>

namespace tq::server {
namespace {

// Thrown inside this file only; load_config_text catches it.
struct ConfigError {
  std::string message;
};

struct Field {
  const char* name;
  std::function<void(const YAML::Node&, const std::string& key)> read;
};

[[noreturn]] void fail(const std::string& key, const std::string& what) {
  throw ConfigError{key + ": " + what};
}

std::string scalar(const YAML::Node& node, const std::string& key) {
  if (!node.IsScalar()) fail(key, "expected a single value");
  return node.Scalar();
}

// Calls visit(name, key, value) for each entry of a mapping, in order, where
// key is the dotted path an error names. yaml-cpp keeps both of two equal
// keys, and the second would silently win: that is an error.
template <typename Visit>
void for_each_entry(const YAML::Node& map, const std::string& prefix, Visit visit) {
  std::set<std::string> seen;
  for (const auto& entry : map) {
    std::string name = entry.first.as<std::string>();
    std::string key = prefix.empty() ? name : prefix + "." + name;
    if (!seen.insert(name).second) fail(key, "given twice");
    visit(name, key, entry.second);
  }
}

// Checks every key of `node` against `fields` (so a typo is an error, not a
// silently ignored setting) and reads each one present.
void read_section(const YAML::Node& node, const std::string& prefix,
                  const std::vector<Field>& fields) {
  if (!node || node.IsNull()) return;
  if (!node.IsMap()) fail(prefix.empty() ? "(top level)" : prefix, "expected a mapping of keys");
  for_each_entry(node, prefix, [&](const std::string& name, const std::string& key,
                                    const YAML::Node& value) {
    bool known = false;
    for (const Field& field : fields) {
      if (name == field.name) {
        field.read(value, key);
        known = true;
        break;
      }
    }
    if (!known) {
      // "password:hunter2" (no space after the colon) is one key holding
      // its value: the message, logged at a reload, must not carry it.
      const size_t cut = name.find_first_of(":= \t");
      if (cut != std::string::npos) {
        const std::string head = name.substr(0, cut);
        fail((prefix.empty() ? "" : prefix + ".") + head + "...",
             "not a key (is the space after its colon missing? the rest is not shown)");
      }
      std::string names;
      for (const Field& field : fields) names += names.empty() ? field.name : std::string(", ") + field.name;
      // Where secrets are written, an unknown key may be one: a password
      // in a block scalar indented too little ("password: |" and the value
      // under it at the key's own column) becomes a key of its own.
      if (prefix.empty() || prefix == "auth" || prefix == "metrics") {
        int entry_line = 0;
        for (const auto& e : node) {
          if (e.first.IsScalar() && e.first.Scalar() == name) entry_line = e.first.Mark().line;
        }
        fail(prefix.empty() ? "(top level)" : prefix,
             "an unknown key at line " + std::to_string(entry_line + 1) +
                 " (not shown; expected one of: " + names + ")");
      }
      fail(key, "unknown key (expected one of: " + names + ")");
    }
  });
}

uint64_t read_uint(const YAML::Node& node, const std::string& key, uint64_t min, uint64_t max) {
  std::string text = scalar(node, key);
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < min || v > max) {
    fail(key, "expected a whole number from " + std::to_string(min) + " to " +
                  std::to_string(max) + ", got '" + text + "'");
  }
  return v;
}

int64_t read_int(const YAML::Node& node, const std::string& key, int64_t min, int64_t max) {
  std::string text = scalar(node, key);
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < min || v > max) {
    fail(key, "expected a whole number from " + std::to_string(min) + " to " +
                  std::to_string(max) + ", got '" + text + "'");
  }
  return v;
}

uint64_t read_size(const YAML::Node& node, const std::string& key, uint64_t min, uint64_t max) {
  std::string text = scalar(node, key);
  std::optional<uint64_t> v = parse_size(text);
  if (!v || *v < min || *v > max) {
    fail(key, "expected a size such as 1048576, 512KiB or 64MiB, from " + std::to_string(min) +
                  " to " + std::to_string(max) + " bytes, got '" + text + "'");
  }
  return *v;
}

int64_t read_duration(const YAML::Node& node, const std::string& key, int64_t unit_ms,
                      int64_t min_ms, int64_t max_ms) {
  std::string text = scalar(node, key);
  std::optional<int64_t> v = parse_duration_ms(text, unit_ms);
  if (!v || *v < min_ms || *v > max_ms) {
    fail(key, "expected a duration such as 30s, 500ms or 2m, from " + std::to_string(min_ms) +
                  "ms to " + std::to_string(max_ms) + "ms, got '" + text + "'");
  }
  return *v;
}

bool read_bool(const YAML::Node& node, const std::string& key) {
  std::string text = scalar(node, key);
  if (std::optional<bool> v = parse_bool(text)) return *v;
  fail(key, "expected true or false (yes/no, on/off and 1/0 too), got '" + text + "'");
}

// queues.declare.<queue>.schedules: each name with `every` or `cron`, its
// `payload`, and PUT's options. Checked here as SCHEDULE checks them, so a
// mistake stops tqd at start-up with the key that holds it.
void read_schedules(const YAML::Node& node, const std::string& prefix,
                    std::vector<DeclaredSchedule>* schedules) {
  if (!node || node.IsNull()) return;
  if (!node.IsMap()) fail(prefix, "expected schedule names, each with every or cron and payload");
  for_each_entry(node, prefix, [&](const std::string& name, const std::string& key,
                                    const YAML::Node& fields) {
    if (!engine::Engine::valid_key(name)) {
      fail(key, "a schedule name is 1-200 printable characters without spaces");
    }
    if (!fields.IsMap()) fail(key, "expected every or cron, and payload");
    DeclaredSchedule s;
    s.name = name;
    bool has_payload = false;
    std::string tz;  // the zone of `cron`: checked with it, once both are read
    std::string tz_key;
    std::string cron_key;
    read_section(fields, key, {
      {"every", [&](const YAML::Node& v, const std::string& kk) {
        s.every_ms = read_duration(v, kk, 1000, 1000, engine::kMaxSettingDurationMs); }},
      {"cron", [&](const YAML::Node& v, const std::string& kk) {
        s.cron = scalar(v, kk);
        cron_key = kk; }},
      {"tz", [&](const YAML::Node& v, const std::string& kk) {
        tz = scalar(v, kk);
        tz_key = kk;
        if (tz.empty()) fail(kk, "expected a time zone name, such as Europe/Berlin"); }},
      {"payload", [&](const YAML::Node& v, const std::string& kk) {
        s.payload = scalar(v, kk);
        has_payload = true; }},
      {"priority", [&](const YAML::Node& v, const std::string& kk) {
        s.priority = static_cast<int32_t>(read_int(v, kk, INT32_MIN, INT32_MAX)); }},
      {"ttl", [&](const YAML::Node& v, const std::string& kk) {
        s.ttl_ms = read_duration(v, kk, 1000, 1, engine::kMaxSettingDurationMs); }},
      {"attempts", [&](const YAML::Node& v, const std::string& kk) {
        s.attempts = static_cast<uint32_t>(read_uint(v, kk, 0, engine::kMaxJobAttempts)); }},
      {"group", [&](const YAML::Node& v, const std::string& kk) {
        s.group = scalar(v, kk);
        if (!engine::Engine::valid_key(s.group)) {
          fail(kk, "a group name is 1-200 printable characters without spaces");
        } }},
    });
    if ((s.every_ms > 0) == !s.cron.empty()) fail(key, "expected one of every and cron");
    if (!tz.empty() && s.cron.empty()) fail(tz_key, "tz goes with cron; every counts in Unix time");
    if (!s.cron.empty()) {
      // The fields alone first, so that each mistake names its own key.
      std::string why;
      if (!engine::CronSpec::parse(s.cron, &why)) fail(cron_key, why);
      if (!tz.empty()) s.cron = std::string(engine::CronSpec::kZonePrefix) + tz + " " + s.cron;
      std::optional<engine::CronSpec> cron = engine::CronSpec::parse(s.cron, &why);
      if (!cron) fail(tz_key, why);
      if (cron->next_after(0) == INT64_MAX) fail(cron_key, "cron '" + s.cron + "' never fires");
      // As the engine keeps it (spaces, a shortcut's case), so that the
      // next start finds the schedule the same.
      s.cron = cron->text();
    }
    if (!has_payload) fail(key, "expected a payload (the job each firing puts)");
    schedules->push_back(std::move(s));
  });
}

// Reads queue settings (the keys of CONFIG) from a mapping into `settings`,
// keeping what was written in `written` and a declared queue's schedules in
// `schedules` when they are given.
void read_queue_settings(const YAML::Node& node, const std::string& prefix,
                         engine::QueueSettings& settings,
                         std::vector<std::pair<std::string, std::string>>* written,
                         std::vector<DeclaredSchedule>* schedules = nullptr) {
  if (!node || node.IsNull()) return;
  if (!node.IsMap()) fail(prefix, "expected settings such as ack_timeout: 30s");
  for_each_entry(node, prefix, [&](const std::string& name, const std::string& key,
                                    const YAML::Node& node_value) {
    if (name == "schedules") {
      if (schedules == nullptr) {
        fail(key, "schedules belong to one queue: queues.declare.<queue>.schedules");
      }
      return read_schedules(node_value, key, schedules);
    }
    std::string value = scalar(node_value, key);
    if (auto error = apply_queue_setting(settings, name, value)) {
      const std::string own = name + ": ";
      if (error->rfind(own, 0) == 0) fail(key, error->substr(own.size()));
      fail(key, *error);
    }
    if (written != nullptr) written->emplace_back(name, value);
  });
}

void read_config(const YAML::Node& root, Config& c) {
  constexpr int64_t kDay = 86'400'000;
  // A table, one key a line or two: clang-format would spread it over three
  // times as many.
  // clang-format off
  read_section(root, "", {
    {"server", [&](const YAML::Node& n, const std::string& k) {
      read_section(n, k, {
        {"host", [&](const YAML::Node& v, const std::string& kk) { c.host = scalar(v, kk); }},
        {"port", [&](const YAML::Node& v, const std::string& kk) {
          c.port = static_cast<uint16_t>(read_uint(v, kk, 0, 65535)); }},
        {"data_dir", [&](const YAML::Node& v, const std::string& kk) {
          c.data_dir = scalar(v, kk);
          if (c.data_dir.empty()) fail(kk, "expected a directory, got ''"); }},
        {"log_level", [&](const YAML::Node& v, const std::string& kk) {
          const std::string text = scalar(v, kk);
          auto level = parse_log_level(text);
          if (!level) fail(kk, "expected debug, info, warn or error, got '" + text + "'");
          c.log_level = *level; }},
        {"shutdown_timeout", [&](const YAML::Node& v, const std::string& kk) {
          c.shutdown_timeout_ms = read_duration(v, kk, 1000, 0, 600'000); }},
        {"tcp_keepalive", [&](const YAML::Node& v, const std::string& kk) {
          c.tcp_keepalive_ms = read_duration(v, kk, 1000, 0, kDay); }},
        {"huge_pages", [&](const YAML::Node& v, const std::string& kk) {
          c.huge_pages = read_bool(v, kk); }},
      });
    }},
    {"limits", [&](const YAML::Node& n, const std::string& k) {
      read_section(n, k, {
        {"max_connections", [&](const YAML::Node& v, const std::string& kk) {
          c.max_connections = read_uint(v, kk, 1, 1'000'000); }},
        {"idle_timeout", [&](const YAML::Node& v, const std::string& kk) {
          c.idle_timeout_ms = read_duration(v, kk, 1000, 0, kDay); }},
        {"request_timeout", [&](const YAML::Node& v, const std::string& kk) {
          c.request_timeout_ms = read_duration(v, kk, 1000, 0, kDay); }},
        {"send_timeout", [&](const YAML::Node& v, const std::string& kk) {
          c.send_timeout_ms = read_duration(v, kk, 1000, 0, kDay); }},
        {"max_auth_failures", [&](const YAML::Node& v, const std::string& kk) {
          c.max_auth_failures = read_uint(v, kk, 1, 1000); }},
        {"max_waiters", [&](const YAML::Node& v, const std::string& kk) {
          c.max_waiters = read_uint(v, kk, 0, 10'000'000); }},
        {"max_batch_bytes", [&](const YAML::Node& v, const std::string& kk) {
          c.max_batch_bytes = read_size(v, kk, 1, 1ull << 30); }},
        {"max_line_bytes", [&](const YAML::Node& v, const std::string& kk) {
          c.max_line_bytes = read_size(v, kk, 64, 64ull << 20); }},
        {"max_queues", [&](const YAML::Node& v, const std::string& kk) {
          c.max_queues = read_uint(v, kk, 1, 10'000'000); }},
        {"max_wait", [&](const YAML::Node& v, const std::string& kk) {
          // 0 would refuse every WAIT as too long: max_waiters: 0 turns WAIT off.
          c.max_wait_ms = read_duration(v, kk, 1000, 1, kDay); }},
        {"max_batch", [&](const YAML::Node& v, const std::string& kk) {
          c.max_batch = read_uint(v, kk, 1, 100'000); }},
        {"max_payload_bytes", [&](const YAML::Node& v, const std::string& kk) {
          c.max_payload_bytes = read_size(v, kk, 1, wal::kMaxPayloadBytes); }},
        {"max_jobs", [&](const YAML::Node& v, const std::string& kk) {
          c.max_jobs = read_uint(v, kk, 0, 1'000'000'000); }},
        {"max_payload_total", [&](const YAML::Node& v, const std::string& kk) {
          c.max_payload_total = read_size(v, kk, 0, 1ull << 40); }},
        {"max_client_memory", [&](const YAML::Node& v, const std::string& kk) {
          c.max_client_memory = read_size(v, kk, 0, 1ull << 40); }},
      });
    }},
    {"auth", [&](const YAML::Node& n, const std::string& k) {
      read_section(n, k, {
        {"password", [&](const YAML::Node& v, const std::string& kk) { c.password = scalar(v, kk); }},
        {"password_env", [&](const YAML::Node& v, const std::string& kk) {
          c.password_env = scalar(v, kk); }},
        {"admin_password", [&](const YAML::Node& v, const std::string& kk) {
          c.admin_password = scalar(v, kk); }},
        {"admin_password_env", [&](const YAML::Node& v, const std::string& kk) {
          c.admin_password_env = scalar(v, kk); }},
      });
    }},
    {"wal", [&](const YAML::Node& n, const std::string& k) {
      read_section(n, k, {
        {"enabled", [&](const YAML::Node& v, const std::string& kk) {
          c.wal_enabled = read_bool(v, kk); }},
        {"fsync", [&](const YAML::Node& v, const std::string& kk) {
          std::string text = scalar(v, kk);
          if (text == "always") c.fsync = wal::FsyncPolicy::kAlways;
          else if (text == "interval") c.fsync = wal::FsyncPolicy::kInterval;
          else if (text == "never") c.fsync = wal::FsyncPolicy::kNever;
          else fail(kk, "expected always, interval or never, got '" + text + "'"); }},
        {"fsync_interval_ms", [&](const YAML::Node& v, const std::string& kk) {
          c.fsync_interval_ms = static_cast<int64_t>(read_uint(v, kk, 1, 3'600'000)); }},
        {"segment_bytes", [&](const YAML::Node& v, const std::string& kk) {
          c.segment_bytes = read_size(v, kk, 64 << 10, wal::kMaxSegmentBytes); }},
        {"compaction_ratio", [&](const YAML::Node& v, const std::string& kk) {
          std::string text = scalar(v, kk);
          auto ratio = parse_decimal(text);
          if (!ratio || *ratio < 1.2 || *ratio > 100) {
            fail(kk, "expected a number from 1.2 to 100, got '" + text + "'");
          }
          c.compaction_ratio = *ratio; }},
        {"min_free_disk", [&](const YAML::Node& v, const std::string& kk) {
          c.wal_min_free_disk = read_size(v, kk, 0, 1ull << 50); }},
        {"recover", [&](const YAML::Node& v, const std::string& kk) {
          c.wal_recover = read_bool(v, kk); }},
        {"zero_fill", [&](const YAML::Node& v, const std::string& kk) {
          c.wal_zero_fill = read_bool(v, kk); }},
        {"sync_leases", [&](const YAML::Node& v, const std::string& kk) {
          c.wal_sync_leases = read_bool(v, kk); }},
        {"backup_dir", [&](const YAML::Node& v, const std::string& kk) {
          c.wal_backup_dir = scalar(v, kk);
          // BACKUP's reply gives the path as one word.
          if (c.wal_backup_dir.find_first_of(" \t\r\n") != std::string::npos) {
            fail(kk, "expected a directory without spaces, got '" + c.wal_backup_dir + "'");
          } }},
        {"backup_keep", [&](const YAML::Node& v, const std::string& kk) {
          c.wal_backup_keep = read_uint(v, kk, 0, 100'000); }},
      });
    }},
    {"tls", [&](const YAML::Node& n, const std::string& k) {
      read_section(n, k, {
        {"port", [&](const YAML::Node& v, const std::string& kk) {
          c.tls_port.reset();
          if (v.IsNull() || (v.IsScalar() && v.Scalar().empty())) return;
          c.tls_port = static_cast<uint16_t>(read_uint(v, kk, 0, 65535)); }},
        {"cert_file", [&](const YAML::Node& v, const std::string& kk) {
          c.tls_cert_file = scalar(v, kk); }},
        {"key_file", [&](const YAML::Node& v, const std::string& kk) {
          c.tls_key_file = scalar(v, kk); }},
        {"ca_file", [&](const YAML::Node& v, const std::string& kk) {
          c.tls_ca_file = scalar(v, kk); }},
        {"plaintext", [&](const YAML::Node& v, const std::string& kk) {
          c.tls_plaintext = read_bool(v, kk); }},
      });
    }},
    {"metrics", [&](const YAML::Node& n, const std::string& k) {
      read_section(n, k, {
        {"listen", [&](const YAML::Node& v, const std::string& kk) {
          const std::string text = scalar(v, kk);
          c.metrics_host.clear();
          c.metrics_port = 0;
          if (text.empty()) return;
          auto address = parse_host_port(text);
          if (!address) {
            fail(kk, "expected host:port such as 127.0.0.1:9108 or [::1]:9108 (empty: off), "
                     "got '" + text + "'");
          }
          c.metrics_host = address->first;
          c.metrics_port = address->second; }},
        {"token", [&](const YAML::Node& v, const std::string& kk) {
          c.metrics_token = scalar(v, kk); }},
        {"token_env", [&](const YAML::Node& v, const std::string& kk) {
          c.metrics_token_env = scalar(v, kk); }},
      });
    }},
    {"queues", [&](const YAML::Node& n, const std::string& k) {
      read_section(n, k, {
        {"auto_create", [&](const YAML::Node& v, const std::string& kk) {
          c.auto_create_queues = read_bool(v, kk); }},
        {"defaults", [&](const YAML::Node& d, const std::string& kk) {
          read_queue_settings(d, kk, c.queue_defaults, nullptr);
        }},
        {"declare", [&](const YAML::Node& d, const std::string& kk) {
          if (!d || d.IsNull()) return;
          if (!d.IsMap()) fail(kk, "expected queue names, each with its settings");
          for_each_entry(d, kk, [&](const std::string& name, const std::string& key,
                                    const YAML::Node& settings) {
            if (!engine::Engine::valid_queue_name(name)) {
              fail(key, "not a valid queue name (1-200 of A-Z a-z 0-9 . _ : -, not only digits)");
            }
            DeclaredQueue declared{name, {}, {}};
            engine::QueueSettings scratch;
            read_queue_settings(settings, key, scratch, &declared.settings, &declared.schedules);
            if (scratch.dead_letter_queue == name) {
              fail(key + ".dead_letter_queue",
                   "a queue cannot be its own (without one, its dead letters stay in it)");
            }
            c.declared_queues.push_back(std::move(declared));
          });
        }},
      });
    }},
  });
  // clang-format on
}

}  // namespace

const char* log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "?";
}

std::optional<LogLevel> parse_log_level(const std::string& name) {
  // In any case: WARN, as syslog and most loggers write it.
  using protocol::equals_ignoring_case;
  if (equals_ignoring_case("DEBUG", name)) return LogLevel::kDebug;
  if (equals_ignoring_case("INFO", name)) return LogLevel::kInfo;
  if (equals_ignoring_case("WARN", name) || equals_ignoring_case("WARNING", name)) {
    return LogLevel::kWarn;
  }
  if (equals_ignoring_case("ERROR", name)) return LogLevel::kError;
  return std::nullopt;
}

namespace {

// Splits "30s" into 30 and "s"; nullopt without a leading number.
std::optional<std::pair<uint64_t, std::string>> number_and_unit(const std::string& text) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end == text.data()) return std::nullopt;
  std::string unit(end, text.data() + text.size());
  while (!unit.empty() && unit.front() == ' ') unit.erase(0, 1);
  return std::pair{v, unit};
}

}  // namespace

std::optional<int64_t> parse_duration_ms(const std::string& text, int64_t unit_ms) {
  auto parsed = number_and_unit(text);
  if (!parsed) return std::nullopt;
  const uint64_t v = parsed->first;
  const std::string& unit = parsed->second;  // not a binding: the lambda below takes it
  // In any case, as verbs and options are: DELAY 1H beside PRIORITY 5.
  static constexpr std::pair<std::string_view, int64_t> kUnits[] = {
      {"MS", 1}, {"S", 1000}, {"M", 60'000}, {"H", 3'600'000}, {"D", 86'400'000}};
  int64_t scale = unit_ms;
  if (!unit.empty()) {
    const auto* found = std::find_if(std::begin(kUnits), std::end(kUnits), [&](const auto& u) {
      return protocol::equals_ignoring_case(u.first, unit);
    });
    if (found == std::end(kUnits)) return std::nullopt;
    scale = found->second;
  }
  if (v > static_cast<uint64_t>(INT64_MAX / scale)) return std::nullopt;
  return static_cast<int64_t>(v) * scale;
}

std::optional<std::pair<std::string, uint16_t>> parse_host_port(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || text.substr(close + 1, 1) != ":") return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    // An IPv6 address needs brackets to tell its colons from the port's.
    if (host.find(':') != std::string_view::npos) return std::nullopt;
  }
  const bool plain_host = std::all_of(host.begin(), host.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-' || ch == ':' ||
           ch == '_' || ch == '%';
  });
  uint16_t number = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
  if (host.empty() || !plain_host || port.empty() || ec != std::errc() ||
      end != port.data() + port.size()) {
    return std::nullopt;
  }
  return std::pair{std::string(host), number};
}

std::optional<bool> parse_bool(std::string_view text) {
  // YAML 1.1 spells each word three ways: true, True, TRUE (not tRUE).
  for (std::string_view yes :
       {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "1"}) {
    if (text == yes) return true;
  }
  for (std::string_view no :
       {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "0"}) {
    if (text == no) return false;
  }
  return std::nullopt;
}

std::optional<double> parse_decimal(std::string_view text) {
  size_t digits = 0;
  size_t points = 0;
  for (char ch : text) {
    if (ch >= '0' && ch <= '9') ++digits;
    else if (ch == '.') ++points;
    else return std::nullopt;
  }
  if (digits == 0 || points > 1 || text.size() > 32) return std::nullopt;
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v,
                                   std::chars_format::fixed);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

std::optional<uint64_t> parse_size(const std::string& text) {
  auto parsed = number_and_unit(text);
  if (!parsed) return std::nullopt;
  auto [v, unit] = *parsed;
  uint64_t scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "KiB") scale = 1ull << 10;
  else if (unit == "MiB") scale = 1ull << 20;
  else if (unit == "GiB") scale = 1ull << 30;
  else if (unit == "KB") scale = 1000;
  else if (unit == "MB") scale = 1000 * 1000;
  else if (unit == "GB") scale = 1000 * 1000 * 1000;
  else return std::nullopt;
  if (v > UINT64_MAX / scale) return std::nullopt;
  return v * scale;
}

namespace {

// The tls keys make sense only together.
void check_tls(const Config& c) {
  if (c.tls_enabled()) {
    if (c.tls_cert_file.empty()) fail("tls.cert_file", "required with tls.port");
    if (c.tls_key_file.empty()) fail("tls.key_file", "required with tls.port");
    return;
  }
  if (!c.tls_cert_file.empty() || !c.tls_key_file.empty() || !c.tls_ca_file.empty()) {
    fail("tls.port", "required with tls.cert_file, tls.key_file and tls.ca_file (the port "
                     "that speaks TLS, 0 for any)");
  }
  if (!c.tls_plaintext) {
    fail("tls.plaintext", "false needs tls.port, or tqd would listen nowhere");
  }
}

}  // namespace

namespace {

// `path` (absolute, normal) with each symbolic link on it replaced by what
// it points to, whether it exists yet or not. (The caller has already
// folded "link/.." lexically, where the kernel would follow the link
// first: such a path is taken as written.) Unlike
// std::filesystem::weakly_canonical, a link to something that does not
// exist yet is followed too: a backup_dir that is a link to a directory a
// first start will create inside the log must be seen to be inside it.
std::filesystem::path resolve_links(std::filesystem::path path) {
  namespace fs = std::filesystem;
  // A loop of links (a -> b -> a) ends with what was reached: the kernel
  // refuses such a path anyway (ELOOP), at the first write.
  for (int links_followed = 0; links_followed < 40;) {
    const fs::path parts = path.relative_path();
    fs::path done = path.root_path();
    bool followed = false;
    for (auto part = parts.begin(); part != parts.end(); ++part) {
      done /= *part;
      std::error_code ec;
      if (!fs::is_symlink(fs::symlink_status(done, ec))) continue;
      fs::path target = fs::read_symlink(done, ec);
      if (ec) break;
      fs::path rest;
      for (auto after = std::next(part); after != parts.end(); ++after) {
        rest /= *after;
      }
      path = (target.is_absolute() ? target : done.parent_path() / target) / rest;
      path = path.lexically_normal();
      followed = true;
      ++links_followed;
      break;
    }
    if (!followed) break;
  }
  return path;
}

}  // namespace

std::string backup_dir_problem(const Config& config) {
  namespace fs = std::filesystem;
  // Absolute, normal, without a trailing slash, through every symbolic
  // link on the way: whole names compare, and a backup_dir that is a link
  // to the data directory's parent is seen to hold it.
  auto full = [](const fs::path& p) {
    std::error_code ec;
    fs::path resolved = resolve_links(fs::absolute(p, ec).lexically_normal());
    return resolved.has_filename() ? resolved : resolved.parent_path();
  };
  auto inside = [](const fs::path& path, const fs::path& dir) {
    return std::mismatch(dir.begin(), dir.end(), path.begin(), path.end()).first == dir.end();
  };
  const fs::path wal = full(fs::path(config.data_dir) / "wal");
  const fs::path backups = full(config.backup_dir());
  const fs::path data = full(config.data_dir);
  if (inside(backups, wal)) {
    return "wal.backup_dir: " + backups.string() + " is inside the log's directory " +
           wal.string() + "; give one outside it";
  }
  // Retention removes old backups from backup_dir: the data directory must
  // not be one of the things in it.
  if (config.wal_backup_keep > 0 && inside(data, backups)) {
    return "wal.backup_dir: the data directory " + data.string() + " is inside " +
           backups.string() + ", where wal.backup_keep removes old backups; give one apart";
  }
  return {};
}

std::string segment_problem(const Config& config) {
  // A record never spans segments, so the longest one must fit in one.
  const uint64_t longest = std::max<uint64_t>(config.max_line_bytes, config.max_payload_bytes) + 4096;
  if (config.segment_bytes >= longest) return {};
  return "wal.segment_bytes: must be at least the longest line or payload "
         "(limits.max_line_bytes, limits.max_payload_bytes) + 4096 (" +
         std::to_string(longest) + ")";
}

std::string startup_problem(const Config& config) {
  // Flags and files meet here: `--host ''` is as empty as `host: ""`.
  if (config.host.empty()) {
    return "server.host (--host): expected a host name or address, got ''";
  }
  if (config.data_dir.empty()) {
    return "server.data_dir (--data-dir): expected a directory, got ''";
  }
  // Seen in the file alone: start-up would create some and stop at the
  // limit, on every restart.
  if (config.declared_queues.size() > config.max_queues) {
    return "queues.declare: " + std::to_string(config.declared_queues.size()) +
           " queues declared, more than limits.max_queues (" + std::to_string(config.max_queues) +
           ")";
  }
  if (std::string why = backup_dir_problem(config); !why.empty()) return why;
  if (const std::string& t = config.metrics_token;
      !t.empty() && (t.front() == ' ' || t.back() == ' ' || t.find_first_of("\t\r\n") != t.npos)) {
    return "metrics.token begins or ends with a space, or holds a tab or a line break: no "
           "Authorization header could carry it";
  }
  for (const auto& [key, value] :
       {std::pair<const char*, const std::string&>{"auth.password", config.password},
        {"auth.admin_password", config.admin_password}}) {
    // AUTH takes one word: such a password could never be given.
    if (value.find_first_of(" \t\r\n") != std::string::npos) {
      return std::string(key) +
             " (from the file or its _env variable) holds a space, tab or line break: AUTH "
             "takes the password as one word, so no client could give it; choose one without";
    }
  }
  if (!config.admin_password.empty() && config.admin_password == config.password) {
    return "auth.admin_password is the same as auth.password: every client could run admin "
           "commands; choose another, or leave it unset";
  }
  return {};
}

ConfigResult load_config_text(const std::string& text, const std::string& origin, Config base) {
  ConfigResult result;
  try {
    YAML::Node root = YAML::Load(text);
    read_config(root, base);
    if (std::string why = segment_problem(base); !why.empty()) throw ConfigError{why};
    check_tls(base);
    result.config = std::move(base);
  } catch (const ConfigError& e) {
    result.error = origin + ": " + e.message;
  } catch (const YAML::Exception& e) {
    // yaml-cpp's own message already carries "line L, column C".
    result.error = origin + ": " + e.what();
  }
  return result;
}

ConfigResult load_config_file(const std::string& path, Config base) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    ConfigResult result;
    result.error = path + ": is a directory, not a configuration file";
    return result;
  }
  errno = 0;
  std::ifstream in(path);
  if (!in) {
    // The open(2) under the stream says why (no such file, permission).
    const int why = errno;
    ConfigResult result;
    result.error = path + ": cannot open the configuration file" +
                   (why != 0 ? ": " + std::generic_category().message(why) : "");
    return result;
  }
  std::stringstream text;
  text << in.rdbuf();
  return load_config_text(text.str(), path, std::move(base));
}

}  // namespace tq::server
