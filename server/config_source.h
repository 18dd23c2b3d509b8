// Where tqd's settings come from, and in what order: the defaults, the file
// given with --config, the command line's flags, then the environment
// (passwords and the metrics token named by *_env). Start-up and a reload
// (SIGHUP) read them the same way, so a flag keeps winning over the file
// after a reload too.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "server/config.h"

namespace tq::server {

struct ConfigSource {
  std::string config_path;  // empty: the defaults, and nothing to reload
  std::optional<std::string> host;
  std::optional<uint16_t> port;
  std::optional<std::string> data_dir;
  std::optional<std::string> log_level;
  bool wal_recover = false;
};

// The settings, or a one-line error (naming the file and key, or the flag).
ConfigResult read_config(const ConfigSource& source);

// Each connection is a file descriptor: raises the open-file limit as far as
// the hard limit lets it, so that `wanted` (limits.max_connections), not the
// default soft limit of 1024, decides. Returns how many connections fit:
// `wanted`, or fewer (with a warning logged) when the limit is lower.
size_t fit_open_file_limit(size_t wanted);

}  // namespace tq::server
