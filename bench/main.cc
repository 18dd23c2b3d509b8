// tq-bench: a load generator for tq, beanstalkd and redis. Reads the flags,
// checks them, runs one phase and prints its report. Exit status: 0 when the
// run completed, 1 when it failed (the report says why), 2 for bad flags.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <optional>
#include <string>

#include "bench/options.h"
#include "bench/replay.h"
#include "bench/report.h"
#include "bench/stall.h"
#include "bench/workload.h"

namespace {

using tq::bench::Options;
using tq::bench::Phase;
using tq::bench::Target;

std::optional<Target> parse_target(const std::string& s) {
  if (s == "tq") return Target::kTq;
  if (s == "beanstalkd") return Target::kBeanstalkd;
  if (s == "redis") return Target::kRedis;
  return std::nullopt;
}

std::optional<Phase> parse_phase(const std::string& s) {
  if (s == "produce") return Phase::kProduce;
  if (s == "consume") return Phase::kConsume;
  if (s == "mixed") return Phase::kMixed;
  if (s == "replay") return Phase::kReplay;
  if (s == "stall") return Phase::kStall;
  return std::nullopt;
}

// An empty string when the options make sense together, else why not.
std::string check(const Options& o) {
  if (o.connections < 1 || o.connections > 100'000) return "--connections: expected 1 to 100000";
  if (o.pipeline < 1 || o.pipeline > 65'536) return "--pipeline: expected 1 to 65536";
  if (o.threads < 1 || o.threads > 1024) return "--threads: expected 1 to 1024";
  if (o.payload_bytes < 1 || o.payload_bytes > (1u << 20)) return "--size: expected 1 to 1048576";
  if (o.queues < 1 || o.queues > 10'000) return "--queues: expected 1 to 10000";
  if (o.queue_prefix.empty() || o.queue_prefix.find_first_of(" \r\n\t") != std::string::npos) {
    return "--queue-prefix: expected a name without spaces";
  }
  if (o.phase != Phase::kMixed && o.jobs < 1) return "--jobs: expected at least 1";
  if (o.phase == Phase::kMixed) {
    if (o.duration_seconds <= 0) return "--duration: expected a positive number of seconds";
    int producers = o.producers >= 0 ? o.producers : o.connections / 2;
    if (producers < 1 || producers >= o.connections) {
      return "mixed needs at least one producer and one consumer connection (--connections >= 2, "
             "--producers from 1 to connections-1)";
    }
  }
  if (o.phase == Phase::kStall) {
    if (o.target != Target::kTq) return "the stall phase measures tqd only (--target tq)";
    if (o.command.empty() || o.command.find_first_of("\r\n") != std::string::npos) {
      return "stall needs --command, one line (such as 'KICK bench')";
    }
  }
  if (o.phase == Phase::kReplay) {
    if (o.target != Target::kTq) return "the replay phase measures tqd only (--target tq)";
    if (o.tqd_path.empty() || o.data_dir.empty())
      return "replay needs --tqd PATH and --data-dir DIR";
  }
  if (!o.tls_ca.empty() && o.target != Target::kTq) return "--tls-ca: TLS is for --target tq only";
  if (o.tls_cert.empty() != o.tls_key.empty()) return "--tls-cert and --tls-key go together";
  if (!o.tls_cert.empty()) {
    if (o.phase != Phase::kReplay) {
      return "--tls-cert/--tls-key are for the tqd that replay starts; against a running tqd, "
             "--tls-ca is enough";
    }
    if (!o.tqd_config.empty()) {
      return "--tls-cert/--tls-key go into the config tq-bench writes; with --tqd-config, set "
             "tls.* in that file";
    }
    if (o.tls_ca.empty()) {
      return "--tls-cert needs --tls-ca to check it with (for a self-signed certificate: the "
             "certificate itself)";
    }
  }
  if (o.phase == Phase::kReplay && !o.tls_ca.empty() && o.tls_cert.empty() &&
      o.tqd_config.empty()) {
    return "replay with --tls-ca needs --tls-cert and --tls-key, or a --tqd-config that sets "
           "tls.port";
  }
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);

  Options o;
  std::string target = "tq";
  std::string phase = "produce";
  int server_pid = 0;
  CLI::App app{"tq-bench: load generator for tq (and beanstalkd, redis, for comparison)"};
  app.add_option("--target", target, "tq, beanstalkd or redis")->capture_default_str();
  app.add_option("--host", o.host, "server address")->capture_default_str();
  app.add_option("--port", o.port, "server port (default: 8080, 11300 or 6379 by target)");
  app.add_option("--phase", phase, "produce, consume, mixed, replay or stall")
      ->capture_default_str();
  app.add_option("-c,--connections", o.connections, "connections")->capture_default_str();
  app.add_option("-p,--pipeline", o.pipeline, "requests in flight per connection")
      ->capture_default_str();
  app.add_option("--threads", o.threads, "client threads; connections are spread over them")
      ->capture_default_str();
  app.add_option("-n,--jobs", o.jobs, "jobs to produce or consume (replay: jobs pending)")
      ->capture_default_str();
  app.add_option("--size", o.payload_bytes, "payload bytes")->capture_default_str();
  app.add_option("--queues", o.queues, "spread jobs over this many queues")->capture_default_str();
  app.add_option("--queue-prefix", o.queue_prefix, "queue name, or prefix of <prefix>.<i>")
      ->capture_default_str();
  app.add_option("--duration", o.duration_seconds, "mixed: seconds to run")->capture_default_str();
  app.add_option("--time-limit", o.time_limit_seconds,
                 "produce/consume: stop after this many seconds even if jobs remain (0: no limit)")
      ->capture_default_str();
  app.add_option("--producers", o.producers, "mixed: producer connections (default: half)");
  app.add_option("--server-pid", server_pid,
                 "read the server's CPU time and memory from /proc/PID");
  app.add_flag("--json", o.json, "print one JSON object instead of text");
  app.add_option("--command", o.command,
                 "stall: the request to send (one line, such as 'KICK bench'); PINGs on another "
                 "connection measure how long other clients wait meanwhile");
  app.add_option("--tqd", o.tqd_path, "replay: the tqd binary to start");
  app.add_option("--data-dir", o.data_dir, "replay: a fresh data directory for tqd");
  app.add_option("--tqd-config", o.tqd_config,
                 "replay: tqd's config file (default: one with wal.fsync: never)");
  app.add_option("--tls-ca", o.tls_ca,
                 "tq: speak TLS, checking the server's certificate (for --host) against the CAs "
                 "in this PEM file");
  app.add_option("--tls-cert", o.tls_cert,
                 "replay: tls.cert_file of the config tq-bench writes; the produce run then uses "
                 "the TLS port (needs --tls-ca)");
  app.add_option("--tls-key", o.tls_key, "replay: tls.key_file of the config tq-bench writes");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "tq-bench: %s (see tq-bench --help)\n", e.what());
    return 2;
  }
  auto parsed_target = parse_target(target);
  auto parsed_phase = parse_phase(phase);
  if (!parsed_target) {
    std::fprintf(stderr, "tq-bench: --target: expected tq, beanstalkd or redis, got '%s'\n",
                 target.c_str());
    return 2;
  }
  if (!parsed_phase) {
    std::fprintf(stderr,
                 "tq-bench: --phase: expected produce, consume, mixed, replay or stall, got '%s'\n",
                 phase.c_str());
    return 2;
  }
  o.target = *parsed_target;
  o.phase = *parsed_phase;
  if (o.port == 0 && o.phase != Phase::kReplay) o.port = tq::bench::default_port(o.target);
  if (server_pid > 0) o.server_pid = server_pid;
  o.threads = std::min(o.threads, o.connections);  // a thread without a connection idles
  if (std::string problem = check(o); !problem.empty()) {
    std::fprintf(stderr, "tq-bench: %s\n", problem.c_str());
    return 2;
  }

  if (o.phase == Phase::kReplay) {
    auto result = tq::bench::run_replay(o);
    if (!result) {
      std::fprintf(stderr, "tq-bench: replay: %s\n", result.error().message.c_str());
      return 1;
    }
    std::string out = o.json ? tq::bench::replay_json(o, *result).str() + "\n"
                             : tq::bench::replay_text(o, *result);
    std::fputs(out.c_str(), stdout);
    return result->produce.failure ? 1 : 0;
  }
  if (o.phase == Phase::kStall) {
    auto result = tq::bench::run_stall(o);
    if (!result) {
      std::fprintf(stderr, "tq-bench: stall: %s\n", result.error().message.c_str());
      return 1;
    }
    std::string out =
        o.json ? tq::bench::stall_json(o, *result).str() + "\n" : tq::bench::stall_text(o, *result);
    std::fputs(out.c_str(), stdout);
    return 0;
  }
  auto result = tq::bench::run_workload(o);
  if (!result) {
    std::fprintf(stderr, "tq-bench: %s\n", result.error().message.c_str());
    return 1;
  }
  std::string out = o.json ? tq::bench::workload_json(o, *result).str() + "\n"
                           : tq::bench::workload_text(o, *result);
  std::fputs(out.c_str(), stdout);
  if (result->failure) {
    std::fprintf(stderr, "tq-bench: %s\n", result->failure->c_str());
    return 1;
  }
  return 0;
}
