#include "server/config_source.h"

#include <sys/resource.h>

#include <algorithm>
#include <cstdlib>

#include "server/log.h"

namespace tq::server {
namespace {

// A secret in the environment keeps it out of config.yaml, and wins over it.
void take_from_environment(const std::string& variable, std::string& secret) {
  if (variable.empty()) return;
  if (const char* value = std::getenv(variable.c_str()); value != nullptr && *value) {
    secret = value;
  }
}

}  // namespace

ConfigResult read_config(const ConfigSource& source) {
  Config config;
  if (!source.config_path.empty()) {
    ConfigResult loaded = load_config_file(source.config_path);
    if (!loaded.config) return loaded;
    config = std::move(*loaded.config);
    config.source = source.config_path;
  }
  if (source.host) config.host = *source.host;
  if (source.port) config.port = *source.port;
  if (source.data_dir) config.data_dir = *source.data_dir;
  if (source.wal_recover) config.wal_recover = true;
  take_from_environment(config.password_env, config.password);
  take_from_environment(config.admin_password_env, config.admin_password);
  take_from_environment(config.metrics_token_env, config.metrics_token);
  if (std::string why = startup_problem(config); !why.empty()) return {std::nullopt, why};
  if (source.log_level) {
    auto level = parse_log_level(*source.log_level);
    if (!level) {
      return {std::nullopt,
              "--log-level: expected debug, info, warn or error, got '" + *source.log_level + "'"};
    }
    config.log_level = *level;
  }
  return {std::move(config), ""};
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
