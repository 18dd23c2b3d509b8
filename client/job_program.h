// JobProgram: one run of the program `tq --work` runs for each job.
//
// The program gets the job's payload as its standard input (a memory file
// holding the exact bytes, so a payload of any size never blocks tq on a pipe
// the program does not read), the job's id, queue and attempt in its
// environment, and tq's standard output and error. It runs in a session (so a
// process group) of its own, without a controlling terminal: a Ctrl-C typed
// at tq's terminal is tq's to act on (it stops taking jobs and lets running
// programs finish), a program that would ask the terminal for a password
// fails at once instead of stopping there for good, and stopping a program
// stops whatever it started too.
//
// Invariant: a JobProgram that is destroyed while its process runs kills the
// process group (SIGKILL) and reaps it, so no child outlives its owner
// unwaited.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/expected.h"

namespace tq::client {

struct Job;

// Why a program could not be started: the errno, and a message.
struct StartError {
  int error = 0;
  std::string message;
  // The program itself cannot be run (missing, not executable, not a
  // program): every job would fail the same way. Otherwise (no memory, too
  // many processes) a later try may work.
  bool program_unusable() const;
};

// How a program ended: an exit status, or the signal that killed it.
struct ProgramExit {
  int status = 0;  // exit status; meaningful when signal == 0
  int signal = 0;  // the signal that ended it; 0 when it exited

  bool succeeded() const { return signal == 0 && status == 0; }
  // "exit 3", "killed by SIGKILL"
  std::string describe() const;
};

class JobProgram {
 public:
  using Clock = std::chrono::steady_clock;

  // Starts argv (argv[0] looked up in PATH as a shell would) for `job`, with
  // TQ_JOB_ID, TQ_QUEUE and TQ_ATTEMPT added to the environment; why not, if
  // it cannot be started.
  static Expected<JobProgram, StartError> start(const std::vector<std::string>& argv,
                                                const Job& job);

  JobProgram(JobProgram&& other) noexcept;
  JobProgram& operator=(JobProgram&&) = delete;
  JobProgram(const JobProgram&) = delete;
  JobProgram& operator=(const JobProgram&) = delete;
  ~JobProgram();

  // Waits until the program exits, `deadline` passes, or `wake_fd` (when not
  // -1) becomes readable; the exit once it has exited (then it is reaped),
  // nullopt otherwise.
  std::optional<ProgramExit> wait_until(Clock::time_point deadline, int wake_fd);

  // Sends `signum` to the program's process group, while it runs.
  void signal(int signum) const;
  // SIGKILL to what is left of its process group once it has exited: what
  // it started and left behind, after tq stopped it.
  void kill_leftovers() const;

  pid_t pid() const { return pid_; }

 private:
  JobProgram(pid_t pid, int pid_fd) : pid_(pid), group_(pid), pid_fd_(pid_fd) {}
  std::optional<ProgramExit> reap(bool block);

  pid_t pid_ = -1;    // -1 once reaped
  pid_t group_ = -1;  // its process group (and session), which outlives it while members do
  int pid_fd_ = -1;  // readable when the process exits; -1 when the kernel lacks pidfd_open
};

// Whether argv[0] names a program that can be run: a path with a '/' that is
// an executable file, or a name found executable in PATH. The reason if not.
std::optional<std::string> program_problem(const std::string& program);

}  // namespace tq::client
