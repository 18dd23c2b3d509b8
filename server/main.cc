// tqd: reads the configuration (defaults, then config.yaml, then flags),
// builds the engine and the server on one libuv loop, and runs until a
// signal asks it to stop.
#include <CLI/CLI.hpp>
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <optional>
#include <string>

#include "server/config.h"
#include "server/engine/engine.h"
#include "server/log.h"
#include "server/server.h"

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
};

int run(const tq::server::Config& config) {
  using namespace tq;
  server::set_log_level(config.log_level);

  engine::SystemClock clock;
  engine::EngineLimits limits;
  limits.auto_create_queues = config.auto_create_queues;
  limits.max_queues = config.max_queues;
  engine::Engine engine(clock, limits, config.queue_defaults);

  server::ServerStats stats;
  stats.started_at_ms = clock.now_ms();

  uv_loop_t loop;
  uv_loop_init(&loop);
  int exit_code = 0;
  {
    server::Server server(&loop, config, engine, stats);
    std::string error;
    if (!server.listen(&error)) {
      LOG_ERROR("%s", error.c_str());
      exit_code = 1;
      server.shutdown("start-up failed");
    } else {
      LOG_INFO("tqd %s started: data_dir=%s auto_create=%s ack_timeout=%lldms log_level=%s",
               TQ_VERSION, config.data_dir.c_str(), config.auto_create_queues ? "true" : "false",
               static_cast<long long>(config.queue_defaults.ack_timeout_ms),
               server::log_level_name(config.log_level));
    }
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  uv_loop_close(&loop);
  if (exit_code == 0) LOG_INFO("stopped");
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
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
  }
  if (flags.host) config.host = *flags.host;
  if (flags.port) config.port = *flags.port;
  if (flags.data_dir) config.data_dir = *flags.data_dir;
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
