// What one tq-bench run is asked to do: the flags, parsed and checked by
// main.cc, handed read-only to the workload, the replay and the report.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <sys/types.h>

namespace tq::bench {

// The server spoken to. Only the protocol adapter depends on it.
enum class Target { kTq, kBeanstalkd, kRedis };

enum class Phase { kProduce, kConsume, kMixed, kReplay, kStall };

const char* target_name(Target target);
const char* phase_name(Phase phase);

struct Options {
  Target target = Target::kTq;
  Phase phase = Phase::kProduce;
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: the target's usual port
  int connections = 16;
  int pipeline = 1;  // requests in flight per connection
  int threads = 1;   // client event loops; connections spread over them
  uint64_t jobs = 100'000;
  size_t payload_bytes = 100;
  int queues = 1;
  std::string queue_prefix = "bench";  // queues are <prefix>, or <prefix>.<i> when queues > 1
  double duration_seconds = 10;        // mixed: how long to run
  double time_limit_seconds = 0;       // produce/consume: stop early after this long (0: never)
  int producers = -1;                  // mixed: producer connections (-1: half)
  std::optional<pid_t> server_pid;     // read the server's CPU and memory from /proc
  bool json = false;
  std::string tls_ca;  // tq only: speak TLS, trusting the CAs in this PEM file (empty: plaintext)

  // stall only: the command whose effect on other clients is measured
  std::string command;

  // replay only
  std::string tqd_path;
  std::string data_dir;
  std::string tqd_config;  // a config file for tqd; empty: tq-bench writes one (fsync: never)
  std::string tls_cert;    // with tls_key: tls.cert_file and tls.key_file of the config written
  std::string tls_key;
};

// The usual port of each target when --port is not given.
uint16_t default_port(Target target);

}  // namespace tq::bench
