// TqdProcess: a tqd that tq-bench started itself (the replay phase), with
// its stderr going to a log file that tq-bench reads for the listening port
// and the replay time. The destructor stops a tqd that is still running
// (SIGTERM, then SIGKILL after a grace period), so no server outlives the
// benchmark, even on an error path.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "bench/error.h"

namespace tq::bench {

class TqdProcess {
 public:
  // tqd's listeners: server.port, and tls.port when it is set.
  enum class Listener { kPlaintext, kTls };

  // fork + exec `tqd_path` with `args`; stderr is appended to `log_path`.
  static Result<TqdProcess> spawn(const std::string& tqd_path, const std::vector<std::string>& args,
                                  const std::string& log_path);

  TqdProcess(TqdProcess&& other) noexcept;
  TqdProcess& operator=(TqdProcess&&) = delete;
  TqdProcess(const TqdProcess&) = delete;
  TqdProcess& operator=(const TqdProcess&) = delete;
  ~TqdProcess();

  pid_t pid() const { return pid_; }

  // Waits for the "listening on <host>:<port>" line in the log ("listening
  // for TLS on ..." for kTls) and returns the port; an error if tqd exits
  // first or the timeout passes.
  Result<uint16_t> wait_listening(std::chrono::milliseconds timeout,
                                  Listener listener = Listener::kPlaintext);

  // SIGTERM and wait for exit; an error if it does not exit cleanly in time.
  Result<Ok> stop(std::chrono::milliseconds timeout = std::chrono::milliseconds(60'000));

  // Whether the process has exited (reaping it if so).
  bool exited();

  // The whole log written so far.
  std::string log_text() const;

 private:
  TqdProcess(pid_t pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}

  pid_t pid_ = -1;
  std::string log_path_;
  std::optional<int> exit_status_;
};

}  // namespace tq::bench
