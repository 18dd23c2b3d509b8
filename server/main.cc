// tqd: reads the configuration (defaults, then config.yaml, then flags),
// builds the daemon (engine, journal and log, server) and runs it until a
// signal asks it to stop.
#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "server/config.h"
#include "server/daemon.h"
#include "server/log.h"
#include "server/server.h"
#include "server/tls.h"
#include "wal/file.h"

#ifndef TQ_VERSION
#define TQ_VERSION "0.0.0"
#endif

namespace {

struct Flags {
  std::string config_path;
  std::optional<std::string> host;
  std::optional<uint16_t> port;
  std::optional<std::string> data_dir;
  std::optional<std::string> log_level;
  bool wal_recover = false;
};

// Each connection is a file descriptor: allow as many as the hard limit lets
// us, so limits.max_connections, not the default soft limit of 1024, decides.
// Returns how many connections fit: max_connections, or fewer when the limit
// is lower. Connections past that many are then answered ERROR MAXCONN;
// past the open-file limit itself, accept() would fail and libuv would
// close them without a word.
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
  const size_t fits =
      limit.rlim_cur > kReserve ? static_cast<size_t>(limit.rlim_cur - kReserve) : 1;
  LOG_WARN(
      "the open-file limit is %llu: limits.max_connections is lowered from %zu to %zu, so "
      "clients past it get ERROR MAXCONN; raise the limit (ulimit -n, or LimitNOFILE= "
      "under systemd)",
      static_cast<unsigned long long>(limit.rlim_cur), wanted, fits);
  return fits;
}

int run(tq::server::Config config) {
  if (config.tls_enabled()) {
    // A certificate that cannot be used is a configuration error (exit 2:
    // starting again will not help), found before the log is replayed.
    auto tls = tq::server::TlsContext::load(tq::server::Server::tls_files(config));
    if (!tls) {
      std::fprintf(stderr, "tqd: %s\n", tls.error().c_str());
      return 2;
    }
  }
  tq::server::set_log_level(config.log_level);
  config.max_connections = fit_open_file_limit(config.max_connections);
  tq::engine::SystemClock clock;
  tq::server::Daemon daemon(config, tq::wal::posix_file_system(), clock);
  if (!daemon.start()) return 1;
  daemon.run();
  return 0;
}

// Started with standard input, output or error closed (`tqd 1>&- 2>&-`,
// some supervisors), the next files opened would take those numbers: libuv's
// own pipes then did, and closing them at exit aborted tqd (libuv asserts
// that it never closes 0-2), and log lines would go into whatever file got
// descriptor 2. /dev/null takes each missing one first.
void fill_standard_descriptors() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    const int null = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
    if (null >= 0 && null != fd) {
      dup2(null, fd);
      close(null);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  fill_standard_descriptors();
  // A client that disconnects while we write must not kill the server.
  std::signal(SIGPIPE, SIG_IGN);

  Flags flags;
  CLI::App app{"tqd: a durable task-queue server"};
  app.set_version_flag("--version", "tqd " TQ_VERSION);
  app.add_option("--config", flags.config_path, "read settings from this YAML file");
  app.add_option("--host", flags.host, "address to listen on (server.host)");
  app.add_option("--port", flags.port, "TCP port, 0 for any free one (server.port)");
  app.add_option("--data-dir", flags.data_dir, "where the log lives (server.data_dir)");
  app.add_option("--log-level", flags.log_level, "debug, info, warn or error (server.log_level)");
  app.add_flag("--wal-recover", flags.wal_recover,
               "start even if the log is damaged, dropping (and logging) the damaged records");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "tqd: %s (see tqd --help)\n", e.what());
    return 2;
  }

  tq::server::Config config;
  if (!flags.config_path.empty()) {
    tq::server::ConfigResult loaded = tq::server::load_config_file(flags.config_path);
    if (!loaded.config) {
      std::fprintf(stderr, "tqd: %s\n", loaded.error.c_str());
      return 2;
    }
    config = *loaded.config;
    config.source = flags.config_path;
  }
  if (flags.host) config.host = *flags.host;
  if (flags.port) config.port = *flags.port;
  if (flags.data_dir) config.data_dir = *flags.data_dir;
  if (flags.wal_recover) config.wal_recover = true;
  // A password in the environment keeps it out of config.yaml (and wins over it).
  auto from_environment = [](const std::string& variable, std::string& password) {
    if (variable.empty()) return;
    if (const char* secret = std::getenv(variable.c_str()); secret != nullptr && *secret) {
      password = secret;
    }
  };
  from_environment(config.password_env, config.password);
  from_environment(config.admin_password_env, config.admin_password);
  from_environment(config.metrics_token_env, config.metrics_token);
  if (std::string why = tq::server::startup_problem(config); !why.empty()) {
    std::fprintf(stderr, "tqd: %s\n", why.c_str());
    return 2;
  }
  if (flags.log_level) {
    auto level = tq::server::parse_log_level(*flags.log_level);
    if (!level) {
      std::fprintf(stderr, "tqd: --log-level: expected debug, info, warn or error, got '%s'\n",
                   flags.log_level->c_str());
      return 2;
    }
    config.log_level = *level;
  }
  return run(config);
}
