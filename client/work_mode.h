// `tq --work <queue>[,<queue>...] -- <program> [args...]`: a worker with no
// code to write. Each job's payload goes to a run of the program (JobProgram,
// client/job_program.h); how the program ends decides what becomes of the job:
//
//   exit 0                         ACK: done
//   an exit status in fail_exits   FAIL: straight to dead letters, not retried
//   any other exit, or a signal    NACK: retried after the queue's backoff
//                                  (dead letters once max_attempts are used)
//
// While a program runs, its job's lease is kept alive with TOUCH (a third of
// the lease at a time), so work longer than the queue's ack_timeout is not
// delivered twice; if tq itself dies, the TOUCHes stop and the lease runs
// out, as for any worker. `job_timeout` bounds a run: then the program is
// stopped (SIGTERM, SIGKILL after kill_grace) and the job is retried. A run
// whose lease is lost (TOUCH refused, no TOUCH through for a whole lease,
// or JOB showing another delivery, below) is stopped the same way and its
// job left alone. TOUCH, ACK, NACK and FAIL carry the job's lease token, so
// the server refuses them once the run's delivery is over, also on a
// connection made after the first one broke: a run does not end the job's
// next delivery, unless that delivery has the same token (a crash lost a
// DEQUEUE's lease record, or the job was kicked 256 times; PROTOCOL.md).
// A tqd older than tokens gives none, and tells a late worker apart only on
// the connection the job came on: on another one, tq asks JOB first and goes
// on only while the job is still leased at the run's attempt, which narrows
// the window (the delivery may still end between the JOB and the request).
//
// Stopping: the first SIGINT, SIGTERM or SIGHUP (`stop`) takes no more jobs and lets
// running programs finish (their jobs are then ACKed or NACKed as usual); the
// second (`abort`) stops them as a job_timeout does, hands their jobs back
// with NACK, and ends with status 130.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "client/cancel_token.h"
#include "client/client.h"
#include "client/job_program.h"

namespace tq::client {

struct WorkSettings {
  std::vector<std::string> queues;   // DEQUEUE's queues, in order
  std::vector<std::string> program;  // argv; argv[0] looked up in PATH
  unsigned concurrency = 1;          // programs at once, each with its own connection
  uint64_t max_jobs = 0;             // stop after this many jobs; 0: no limit
  milliseconds job_timeout{0};       // stop a program running longer; 0: no limit
  std::vector<int> fail_exits;       // exit statuses that FAIL the job
  milliseconds kill_grace{5000};     // from SIGTERM to SIGKILL
};

// What becomes of a job, from how its program ended.
enum class Verdict { kAck, kFail, kRetry };
Verdict verdict_for(const ProgramExit& exit, const std::vector<int>& fail_exits);

// "65,75" -> {65, 75}; nullopt unless each is a whole number from 1 to 255.
std::optional<std::vector<int>> parse_exit_statuses(std::string_view text);

// "emails,sms" -> {"emails", "sms"}; nullopt when a name is empty.
std::optional<std::vector<std::string>> parse_queue_list(std::string_view text);

constexpr int kWorkStopped = 0;    // stopped by a signal, or after max_jobs
constexpr int kWorkRefused = 1;    // the server refused the password
constexpr int kWorkUsage = 2;      // a name the server will not take
constexpr int kWorkAborted = 130;  // a second signal

// Runs the workers until `stop` fires and their programs have finished, or
// until max_jobs jobs are done; says what happens to each job on `log`. The
// exit status: one of the kWork* above.
int run_work(const Options& options, const WorkSettings& settings, const CancelToken& stop,
             const CancelToken& abort, std::ostream& log);

}  // namespace tq::client
