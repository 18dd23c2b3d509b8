// The replay measurement, step by step; see replay.h. The tqd processes are
// TqdProcess values, so an early return stops them.
#include "bench/replay.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <thread>
#include <vector>

#include "bench/blocking_socket.h"
#include "bench/line_scan.h"
#include "bench/load_loop.h"
#include "bench/tq_stats.h"
#include "bench/tqd_process.h"

namespace tq::bench {
namespace {

struct WalFiles {
  uint64_t count = 0;
  uint64_t apparent_bytes = 0;
  uint64_t allocated_bytes = 0;
};

WalFiles scan_wal(const std::string& dir) {
  WalFiles files;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return files;
  while (dirent* entry = ::readdir(d)) {
    std::string name = entry->d_name;
    if (name.size() < 4 || name.compare(name.size() - 4, 4, ".wal") != 0) continue;
    struct stat st {};
    if (::stat((dir + "/" + name).c_str(), &st) != 0) continue;
    ++files.count;
    files.apparent_bytes += static_cast<uint64_t>(st.st_size);
    files.allocated_bytes += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  ::closedir(d);
  return files;
}

// A data directory the replay may fill: missing (it is created) or empty.
Result<Ok> prepare_data_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) == 0) return Ok{};
  if (errno != EEXIST) return Error{"mkdir " + dir + ": " + errno_text(errno)};
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return Error{"opendir " + dir + ": " + errno_text(errno)};
  bool empty = true;
  while (dirent* entry = ::readdir(d)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") empty = false;
  }
  ::closedir(d);
  if (!empty) return Error{"--data-dir " + dir + " is not empty; the replay needs a fresh one"};
  return Ok{};
}

// A file under /tmp named after `pattern` (ending in XXXXXX), holding `text`.
Result<std::string> write_temp_file(const std::string& pattern, const std::string& text) {
  std::string path = pattern;
  int fd = ::mkstemp(path.data());
  if (fd < 0) return Error{"mkstemp " + pattern + ": " + errno_text(errno)};
  ::close(fd);
  std::ofstream out(path);
  out << text;
  if (!out) return Error{"cannot write " + path};
  return path;
}

// `path` as a single-quoted YAML scalar, which escapes nothing but the quote.
std::string yaml_quoted(const std::string& path) {
  std::string out = "'";
  for (char c : path) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

// tq-bench's own tqd config: no fsync (what is measured is the restart; the
// first run need not wait for disks), and TLS on a free port when asked.
std::string default_config(const Options& o) {
  std::string text = "wal:\n  fsync: never\n";
  if (!o.tls_cert.empty()) {
    text += "tls:\n  port: 0\n  cert_file: " + yaml_quoted(o.tls_cert) +
            "\n  key_file: " + yaml_quoted(o.tls_key) + "\n";
  }
  return text;
}

// "wal: replayed ... in 2104ms" from the last start in the log.
std::optional<double> logged_replay_ms(const std::string& log) {
  size_t at = log.rfind("wal: replayed ");
  if (at == std::string::npos) return std::nullopt;
  size_t in = log.find(" in ", at);
  size_t ms = log.find("ms", in == std::string::npos ? at : in);
  if (in == std::string::npos || ms == std::string::npos) return std::nullopt;
  auto v = parse_int(std::string_view(log).substr(in + 4, ms - in - 4));
  if (!v) return std::nullopt;
  return static_cast<double>(*v);
}

// Removes the files it was given when the replay ends, however it ends.
struct TempFiles {
  std::vector<std::string> paths;
  ~TempFiles() {
    for (const std::string& p : paths) ::unlink(p.c_str());
  }
};

double seconds_since(uint64_t start_ns) {
  return static_cast<double>(monotonic_ns() - start_ns) / 1e9;
}

}  // namespace

Result<ReplayResult> run_replay(const Options& o) {
  if (o.tqd_path.empty() || o.data_dir.empty()) {
    return Error{"the replay phase needs --tqd PATH and --data-dir DIR"};
  }
  if (auto ready = prepare_data_dir(o.data_dir); !ready) return ready.error();
  TempFiles temp_files;
  std::string config_path = o.tqd_config;
  if (config_path.empty()) {
    auto written = write_temp_file("/tmp/tq-bench-replay-XXXXXX", default_config(o));
    if (!written) return written.error();
    config_path = *written;
    temp_files.paths.push_back(config_path);
  }
  auto log = write_temp_file("/tmp/tq-bench-tqd-XXXXXX", "");
  if (!log) return log.error();
  temp_files.paths.push_back(*log);

  std::vector<std::string> args{"--config",   config_path, "--host", o.host,
                                "--data-dir", o.data_dir,  "--port", "0"};
  ReplayResult result;
  result.jobs = o.jobs;
  uint16_t port = 0;
  {
    auto first = TqdProcess::spawn(o.tqd_path, args, *log);
    if (!first) return first.error();
    auto listening = first->wait_listening(std::chrono::milliseconds(30'000));
    if (!listening) return listening.error();
    port = *listening;

    Options produce = o;
    produce.phase = Phase::kProduce;
    produce.target = Target::kTq;
    produce.port = port;
    if (!o.tls_ca.empty()) {
      auto tls_port =
          first->wait_listening(std::chrono::milliseconds(30'000), TqdProcess::Listener::kTls);
      if (!tls_port) return tls_port.error();
      produce.port = *tls_port;
    }
    produce.server_pid = first->pid();
    auto produced = run_workload(produce);
    if (!produced) return produced.error();
    result.produce = std::move(*produced);
    if (result.produce.failure) return result;
    if (result.produce.tq_after && wal_disabled(*result.produce.tq_after)) {
      return Error{"the replay needs a log, and the tqd config sets wal.enabled: false"};
    }
    result.after_produce = read_process_usage(first->pid());
    if (auto stopped = first->stop(); !stopped) return stopped.error();
  }

  // A port of its own again, read from a log of its own: the first's port,
  // free while tqd restarts, may be taken meanwhile by any process binding
  // port 0 (a test's tqd, under ctest -j), and a connect would reach that.
  auto second_log = write_temp_file("/tmp/tq-bench-tqd-XXXXXX", "");
  if (!second_log) return second_log.error();
  temp_files.paths.push_back(*second_log);
  const uint64_t exec_ns = monotonic_ns();
  auto second = TqdProcess::spawn(o.tqd_path, args, *second_log);
  if (!second) return second.error();
  auto relistening = second->wait_listening(std::chrono::milliseconds(600'000));
  if (!relistening) return relistening.error();
  port = *relistening;
  std::optional<BlockingSocket> socket;
  while (!socket) {
    if (second->exited())
      return Error{"tqd exited during the restart; its log:\n" + second->log_text()};
    if (seconds_since(exec_ns) > 600) return Error{"tqd did not accept connections within 600 s"};
    auto connected =
        BlockingSocket::connect(o.host, port, nullptr, std::chrono::milliseconds(1000));
    if (connected) {
      socket = std::move(*connected);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  result.listening_seconds = seconds_since(exec_ns);
  TqStats stats;
  for (;;) {
    auto fetched = fetch_tq_stats(*socket);
    if (!fetched) {
      return Error{"STATS after the restart: " + fetched.error().message + "; tqd's log:\n" +
                   second->log_text()};
    }
    stats = std::move(*fetched);
    if (stat_number(stats, "jobs_ready") >= o.jobs) break;
    if (seconds_since(exec_ns) > 600) {
      return Error{"after 600 s tqd shows jobs_ready " +
                   std::to_string(stat_number(stats, "jobs_ready")) + ", not " +
                   std::to_string(o.jobs)};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  result.restart_seconds = seconds_since(exec_ns);
  result.wal_bytes = stat_number(stats, "wal_bytes");
  const WalFiles files = scan_wal(o.data_dir + "/wal");
  result.wal_files = files.count;
  result.wal_apparent_bytes = files.apparent_bytes;
  result.wal_allocated_bytes = files.allocated_bytes;
  result.after_restart = read_process_usage(second->pid());
  socket.reset();
  if (auto stopped = second->stop(); !stopped) return stopped.error();
  result.tqd_replay_ms = logged_replay_ms(second->log_text());
  return result;
}

}  // namespace tq::bench
