// Running the programs under test (build/tq, the examples, tmux) from a test:
// run_program() to completion with given standard input, or a
// BackgroundProcess whose standard output is read line by line with a
// deadline, so a test waits for what a program prints instead of sleeping.
//
// Invariant: every child started here is waited for; a BackgroundProcess that
// is still running when destroyed is killed (SIGKILL) and reaped.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace tq::testing {

struct ProgramResult {
  int status = -1;  // exit status, or 128 + signal
  std::string out;  // standard output
  std::string err;  // standard error
};

// Runs argv[0] with argv, feeding `input` to its standard input (then EOF).
// `env` entries ("NAME=value") are added to the environment.
ProgramResult run_program(const std::vector<std::string>& argv, const std::string& input = {},
                          const std::vector<std::string>& env = {});

class BackgroundProcess {
 public:
  // With `with_stderr`, standard error is read into the same lines as
  // standard output; otherwise it is the test's.
  explicit BackgroundProcess(const std::vector<std::string>& argv, bool with_stderr = false);
  ~BackgroundProcess();
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;

  // Reads standard output until a line containing `needle` arrives; returns
  // that line, or nullopt at the deadline or end of output. Every line read
  // is kept in lines().
  std::optional<std::string> wait_for_line(const std::string& needle,
                                           std::chrono::milliseconds timeout);
  const std::vector<std::string>& lines() const { return lines_; }

  // Sends a signal and waits for the exit; the status (128 + signal when
  // killed), or -1 if it had not exited within timeout.
  int stop(int signum, std::chrono::milliseconds timeout);
  // Waits for the program to exit by itself, reading what it still prints;
  // its status as stop() gives it (-1 if it had not exited: then it is killed).
  int wait_for_exit(std::chrono::milliseconds timeout);
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string partial_;
  std::vector<std::string> lines_;
  size_t scanned_ = 0;  // lines already looked at by wait_for_line
};

}  // namespace tq::testing
