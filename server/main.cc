// tqd: reads the configuration (defaults, then config.yaml, then flags),
// builds the engine and the server on one libuv loop, and runs until a
// signal asks it to stop.
#include <CLI/CLI.hpp>
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "server/config.h"
#include "server/engine/engine.h"
#include "server/journal.h"
#include "server/log.h"
#include "server/server.h"
#include "wal/file.h"
#include "wal/log.h"

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

// Says, loudly, each piece of damage that --wal-recover skipped.
class LoggingReporter final : public tq::wal::Reporter {
 public:
  void dropped(const std::string& file, uint64_t offset, uint64_t bytes,
               const std::string& reason) override {
    LOG_ERROR("wal recover: DROPPED %llu bytes at %s offset %llu: %s",
              static_cast<unsigned long long>(bytes), file.c_str(),
              static_cast<unsigned long long>(offset), reason.c_str());
  }
};

// Replays the log into the engine. Returns the open log, or null after
// logging why it cannot be used.
std::unique_ptr<tq::wal::Log> open_log(const tq::server::Config& config, tq::engine::Engine& engine,
                                       tq::server::Journal& journal) {
  using namespace tq;
  wal::LogOptions options;
  options.dir = config.data_dir + "/wal";
  options.fsync = config.fsync;
  options.fsync_interval_ms = config.fsync_interval_ms;
  options.segment_bytes = config.segment_bytes;
  options.recover = config.wal_recover;

  if (wal::Status s = wal::posix_file_system().create_dir(config.data_dir); !s.ok()) {
    LOG_ERROR("%s", s.message().c_str());
    return nullptr;
  }
  LoggingReporter reporter;
  wal::OpenSummary summary;
  const int64_t started = engine::SystemClock().now_ms();
  auto opened = wal::Log::open(
      wal::posix_file_system(), options, reporter,
      [&](const wal::Record& record, uint32_t segment) { return journal.apply(record, segment); },
      &summary);
  if (!opened) {
    const wal::Status& s = opened.error();
    LOG_ERROR("cannot open the log: %s", s.message().c_str());
    if (s.code() == wal::Status::Code::kCorruption) {
      LOG_ERROR("the files are left as they are; to start anyway, skipping the damaged "
                "records (they will be lost), run tqd with --wal-recover");
    }
    return nullptr;
  }
  std::unique_ptr<wal::Log> log = std::move(opened).value();
  const size_t requeued = engine.finish_restore();
  auto orphans = engine.placeholder_queues();
  if (!orphans.empty() && !config.wal_recover) {
    LOG_ERROR("cannot open the log: %zu job(s) belong to queue number(s) with no QUEUE record "
              "(first: %s); run tqd with --wal-recover to keep them under that name",
              orphans.front()->job_count(), orphans.front()->name.c_str());
    return nullptr;
  }
  if (!summary.torn.empty()) {
    LOG_WARN("wal: cut off a partial record at %s: the previous run stopped in the middle of a "
             "write that was never acknowledged",
             summary.torn.c_str());
  }
  journal.attach(*log);
  LOG_INFO("wal: replayed %llu records (%llu bytes, %zu segments) in %lldms: %zu queues, %zu jobs "
           "(%zu were leased and are ready again), next job id %llu; fsync=%s",
           static_cast<unsigned long long>(summary.records),
           static_cast<unsigned long long>(summary.bytes), summary.segments,
           static_cast<long long>(engine::SystemClock().now_ms() - started),
           engine.queues().size(), engine.job_count(), requeued,
           static_cast<unsigned long long>(engine.next_job_id()),
           wal::fsync_policy_name(config.fsync));
  if (summary.dropped > 0) {
    LOG_WARN("wal recover: %llu damaged region(s) dropped; rewriting the live state into a new "
             "segment so the damaged files can be deleted",
             static_cast<unsigned long long>(summary.dropped));
    journal.compact_all();
  }
  return log;
}

int run(const tq::server::Config& config) {
  using namespace tq;
  server::set_log_level(config.log_level);

  engine::SystemClock clock;
  engine::EngineLimits limits;
  limits.auto_create_queues = config.auto_create_queues;
  limits.max_queues = config.max_queues;
  engine::Engine engine(clock, limits, config.queue_defaults);
  server::Journal journal(engine, config.compaction_ratio);
  std::unique_ptr<wal::Log> log = open_log(config, engine, journal);
  if (!log) return 1;

  server::ServerStats stats;
  stats.started_at_ms = clock.now_ms();

  uv_loop_t loop;
  uv_loop_init(&loop);
  int exit_code = 0;
  {
    server::Server server(&loop, config, engine, stats, log.get(), &journal);
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
  }
  if (flags.host) config.host = *flags.host;
  if (flags.port) config.port = *flags.port;
  if (flags.data_dir) config.data_dir = *flags.data_dir;
  if (flags.wal_recover) config.wal_recover = true;
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
