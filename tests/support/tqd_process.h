// Starts a real tqd for an integration test: a fresh temporary directory, the
// given config.yaml, port 0 (the kernel picks a free one), and its stderr read
// by a thread, so a test can wait for a log line instead of sleeping.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "client/client.h"

namespace tq::testing {

struct TqdOptions {
  std::string config_yaml;              // written to <dir>/config.yaml
  std::vector<std::string> extra_args;  // after --config, --port, --data-dir
  std::string dir;                      // reuse this directory (a restart); empty: make one
  uint16_t port = 0;                    // listen here (a restart on the same port); 0: any
  unsigned open_files = 0;              // tqd's RLIMIT_NOFILE, soft and hard; 0: inherited
};

class TqdProcess {
 public:
  explicit TqdProcess(TqdOptions options = {});
  ~TqdProcess();
  TqdProcess(const TqdProcess&) = delete;
  TqdProcess& operator=(const TqdProcess&) = delete;

  // The plaintext port (0 when tls.plaintext is false).
  uint16_t port() const { return port_; }
  // The TLS port, from the log (tls.port: 0 picks one); 0 when not listening.
  uint16_t tls_port();
  pid_t pid() const { return pid_; }
  const std::string& dir() const { return dir_; }
  bool running() const { return pid_ > 0; }

  client::Client client(int timeout_ms = 5000) const;
  client::LineSocket socket(int timeout_ms = 5000) const;

  // Sends a signal and waits for the exit; returns the exit status (or
  // 128+signal when killed). -1 if it did not exit within timeout_ms.
  int stop(int signum, int timeout_ms = 10'000);

  // Waits until a log line contains `needle`; false on timeout.
  bool wait_for_log(const std::string& needle, int timeout_ms = 10'000);
  std::vector<std::string> log_lines();

 private:
  void read_stderr(int fd);
  // The port at the end of the first log line containing `marker`; 0: none.
  uint16_t logged_port(const std::string& marker);

  TqdOptions options_;
  std::string dir_;
  bool own_dir_ = false;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::vector<std::string> lines_;
  bool stderr_closed_ = false;
};

// Runs `tqd args...` to completion and returns {exit status, stderr}. A tqd
// still running after `limit` is killed (SIGKILL), and its status is then
// 128 + SIGKILL, so a hang fails the test instead of stopping the suite.
std::pair<int, std::string> run_tqd(const std::vector<std::string>& args,
                                    std::chrono::milliseconds limit = std::chrono::seconds(30));
// As run_tqd, with $JOURNAL_STREAM naming tqd's stderr, as systemd sets it
// for a unit (ExecStart, ExecStartPre) whose output goes to the journal.
std::pair<int, std::string> run_tqd_under_journal(const std::vector<std::string>& args);
// As run_tqd, without the right to bind a port below 1024
// (CAP_NET_BIND_SERVICE), as an ordinary user or a unit without it.
std::pair<int, std::string> run_tqd_without_bind_right(const std::vector<std::string>& args);

// A TCP socket bound to 127.0.0.1 on a port the kernel picked, not yet
// listening (close-on-exec, so no child holds it). Bound, it keeps other
// tests off the port; connecting to it is refused until it listens.
struct LoopbackSocket {
  int fd = -1;
  uint16_t port = 0;
};
// Throws std::runtime_error when the socket cannot be made.
LoopbackSocket bind_loopback_socket();

// A plain blocking socket to tqd on 127.0.0.1, for what the client library
// never does (send without reading, a tiny receive buffer); -1 on failure.
int connect_raw(uint16_t port, int receive_buffer = 0);

// Sends SIGSTOP and waits (up to 5 s) until the process is stopped: the
// signal takes effect when it is next scheduled, not when kill returns, and
// a test that sends requests "while tqd is stopped" must not race it.
bool stop_and_wait(pid_t pid);

// A memory figure of /proc/<pid>/status in KiB ("VmRSS": resident now,
// "VmHWM": the most ever resident); 0 if it cannot be read.
uint64_t proc_status_kib(pid_t pid, const std::string& figure);

// A fresh temporary directory, removed by the caller.
std::string make_temp_dir();
void remove_tree(const std::string& path);

// A temporary directory, removed with what is in it when the test ends.
struct TempDir {
  std::string path = make_temp_dir();
  TempDir() = default;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() { remove_tree(path); }
};

}  // namespace tq::testing
