#include "server/config_source.h"

#include <sys/resource.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <vector>

#include "server/log.h"

namespace tq::server {
namespace {

// A secret in the environment keeps it out of config.yaml, and wins over it.
// `key` names it for a note when the file sets it too.
void take_from_environment(const std::string& variable, std::string& secret, const std::string& key,
                           const std::string& file, std::vector<std::string>& notes) {
  if (variable.empty()) return;
  const char* value = std::getenv(variable.c_str());
  if (value == nullptr || *value == '\0') return;
  if (!secret.empty() && secret != value) {
    notes.push_back(key + " in " + file + " is not used: $" + variable +
                    " is set, and wins (a running tqd keeps the environment it started with)");
  }
  secret = value;
}

// A flag wins over the file; `key` names the file's setting for a note when
// the file sets it to something else than the built-in default. `same`
// says whether two values are one setting (paths: "./data" is "data").
template <typename T, typename Same = std::equal_to<T>>
void take_flag(const std::optional<T>& flag, T& setting, const T& built_in, const char* key,
               const char* name, const std::string& file, std::vector<std::string>& notes,
               Same same = {}) {
  if (!flag) return;
  if (!same(setting, built_in) && !same(setting, *flag)) {
    notes.push_back(std::string(key) + " in " + file + " is not used: " + name + " wins");
  }
  setting = *flag;
}

bool same_path(const std::string& a, const std::string& b) {
  return std::filesystem::path(a).lexically_normal() == std::filesystem::path(b).lexically_normal();
}

}  // namespace

ConfigResult read_config(const ConfigSource& source) {
  const Config built_in;
  Config config;
  std::vector<std::string> notes;
  const std::string& file = source.config_path;
  if (!file.empty()) {
    // built_in is the default base; passed, not defaulted, because GCC 12
    // takes the defaulted temporary's strings for uninitialized (-Werror).
    ConfigResult loaded = load_config_file(file, built_in);
    if (!loaded.config) return loaded;
    config = std::move(*loaded.config);
    config.source = file;
  }
  take_flag(source.host, config.host, built_in.host, "server.host", "--host", file, notes);
  take_flag(source.port, config.port, built_in.port, "server.port", "--port", file, notes);
  // The shipped config.yaml says ./data, the built-in default: the systemd
  // unit's --data-dir must not be warned about at every start and reload.
  take_flag(source.data_dir, config.data_dir, built_in.data_dir, "server.data_dir", "--data-dir",
            file, notes, same_path);
  if (source.wal_recover) config.wal_recover = true;
  take_from_environment(config.password_env, config.password, "auth.password", file, notes);
  take_from_environment(config.admin_password_env, config.admin_password, "auth.admin_password",
                        file, notes);
  take_from_environment(config.metrics_token_env, config.metrics_token, "metrics.token", file,
                        notes);
  if (std::string why = startup_problem(config); !why.empty()) return {std::nullopt, why, {}};
  if (source.log_level) {
    auto level = parse_log_level(*source.log_level);
    if (!level) {
      return {std::nullopt,
              "--log-level: expected debug, info, warn or error, got '" + *source.log_level + "'",
              {}};
    }
    take_flag(std::optional<LogLevel>(*level), config.log_level, built_in.log_level,
              "server.log_level", "--log-level", file, notes);
  }
  return {std::move(config), "", std::move(notes)};
}

size_t fit_open_file_limit(size_t wanted) {
  // tqd's own descriptors: the log's files, the loop's, metrics scrapes.
  constexpr rlim_t kReserve = 64;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return wanted;
  const rlim_t needed = static_cast<rlim_t>(wanted) + kReserve;
  if (limit.rlim_cur < needed && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = std::min(limit.rlim_max, needed);
    setrlimit(RLIMIT_NOFILE, &limit);
    getrlimit(RLIMIT_NOFILE, &limit);
  }
  if (limit.rlim_cur >= needed) return wanted;
  // Past the open-file limit itself accept() would fail and libuv would close
  // the connection without a word; below it, ERROR MAXCONN says why.
  const size_t fits =
      limit.rlim_cur > kReserve ? static_cast<size_t>(limit.rlim_cur - kReserve) : 1;
  LOG_WARN(
      "the open-file limit is %llu: limits.max_connections is lowered from %zu to %zu, so "
      "clients past it get ERROR MAXCONN; raise the limit (ulimit -n, or LimitNOFILE= "
      "under systemd)",
      static_cast<unsigned long long>(limit.rlim_cur), wanted, fits);
  return fits;
}

}  // namespace tq::server
