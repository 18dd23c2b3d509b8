#include "client/work_mode.h"

#include <poll.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <thread>

#include "client/request_line.h"

namespace tq::client {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using protocol::ErrorCode;

// A DEQUEUE's WAIT; `stop` ends it at once, so its length only sets how often
// an idle worker asks again.
constexpr milliseconds kDequeueWait = 5s;
// After a TOUCH that got no answer, before the next try.
constexpr milliseconds kTouchRetry = 1s;
// Between DEQUEUEs that fail (no such queue yet, no server).
constexpr int kTroublePauseMs = 1000;

// "1.24s", "850ms"
std::string elapsed_text(Clock::duration d) {
  const auto ms = std::chrono::duration_cast<milliseconds>(d).count();
  if (ms < 1000) return std::to_string(ms) + "ms";
  char text[32];
  std::snprintf(text, sizeof text, "%.2fs", static_cast<double>(ms) / 1000.0);
  return text;
}

// An ACK, NACK or FAIL whose reply was lost is sent once more: the server
// then says NOTFOUND or NOTLEASED if the first one was carried out.
template <typename Call>
auto finish(Call call) {
  auto result = call();
  if (result || !result.error().outcome_unknown()) return result;
  auto again = call();
  if (!again &&
      (again.error().is(ErrorCode::kNotFound) || again.error().is(ErrorCode::kNotLeased))) {
    return result;  // the first one went through, or the lease ran out meanwhile
  }
  return again;
}

class Work {
 public:
  Work(const Options& options, const WorkSettings& settings, const CancelToken& stop,
       const CancelToken& abort, std::ostream& log)
      : options_(options), settings_(settings), stop_(stop), abort_(abort), log_(log) {}

  int run() {
    std::string queues;
    for (const auto& q : settings_.queues) queues += (queues.empty() ? "" : ", ") + q;
    say("running " + settings_.program[0] + " for each job from " + queues + ", " +
        std::to_string(settings_.concurrency) +
        " at a time; Ctrl-C stops taking jobs (a second one stops the programs)");
    std::vector<std::thread> workers;
    for (unsigned i = 0; i < settings_.concurrency; ++i) {
      workers.emplace_back([this] {
        worker();
        if (--working_ == 0) finished_.cancel();
      });
    }
    // Says when a signal is seen, so that whoever sent it knows what it did.
    if (wait_for(stop_)) {
      if (status_.load() == kWorkStopped) {
        say("stopping: no more jobs are taken; " + std::to_string(running_.load()) +
            " still running (a second Ctrl-C or SIGTERM stops them and hands their jobs back)");
      }
      if (wait_for(abort_)) say("stopping the running programs");
    }
    for (auto& w : workers) w.join();
    if (abort_.cancelled()) return kWorkAborted;
    return status_.load();
  }

 private:
  // Waits until `token` fires (true) or every worker has returned (false).
  bool wait_for(const CancelToken& token) {
    pollfd fds[2] = {{token.fd(), POLLIN, 0}, {finished_.fd(), POLLIN, 0}};
    for (;;) {
      if (token.cancelled()) return true;
      if (finished_.cancelled()) return false;
      ::poll(fds, 2, -1);
    }
  }

  void say(const std::string& text) {
    std::lock_guard<std::mutex> lock(log_mutex_);
    log_ << "tq: " << text << std::endl;
  }

  // Stops every worker for a reason waiting will not cure; the first reason
  // is said, and is the exit status.
  void give_up(int status, const std::string& why) {
    int none = kWorkStopped;
    if (status_.compare_exchange_strong(none, status)) say(why);
    stop_.cancel();
  }

  // A slot for one more job under max_jobs; false when none is left.
  bool reserve_job() {
    if (settings_.max_jobs == 0) return true;
    if (reserved_.fetch_add(1) < settings_.max_jobs) return true;
    reserved_.fetch_sub(1);
    return false;
  }
  void release_job() {
    if (settings_.max_jobs != 0) reserved_.fetch_sub(1);
  }

  // Said once when workers cannot take jobs, and once when they can again.
  void trouble(const std::string& why) {
    if (!troubled_.exchange(true)) say(why);
  }
  void no_trouble() {
    if (troubled_.exchange(false)) say("taking jobs now");
  }

  void worker() {
    Options options = options_;
    options.reconnect = ReconnectPolicy::lasting(30s);
    options.reconnect.cancel = &abort_;  // after the first Ctrl-C, jobs held still get their ACK
    options.reconnect.on_retry = [this](int failed, const Error& why, milliseconds) {
      if (failed == 1) trouble("cannot reach the server: " + why.to_string() + "; trying again");
    };
    Client client(options);
    while (!stop_.cancelled()) {
      if (!reserve_job()) return;
      auto jobs = client.dequeue_many(settings_.queues,
                                      {.wait = kDequeueWait, .count = 1, .cancel = &stop_});
      if (!jobs || jobs->empty()) release_job();
      if (!jobs) {
        if (stop_.cancelled()) return;
        const Error& error = jobs.error();
        if (error.kind == ErrorKind::kBadArgument || error.is(ErrorCode::kBadFormat)) {
          give_up(kWorkUsage, error.message);
          return;
        }
        if (error.is(ErrorCode::kNoAuth)) {
          give_up(kWorkRefused,
                  error.to_string() + " (give the password with --password or TQ_PASSWORD)");
          return;
        }
        trouble("cannot take jobs yet: " + error.to_string() + "; trying again");
        stop_.sleep_for_ms(kTroublePauseMs);
        continue;
      }
      no_trouble();
      if (!jobs->empty()) run_job(client, jobs->front());
    }
  }

  void run_job(Client& client, const Job& job) {
    const Clock::time_point started = Clock::now();
    const std::string who = "job " + std::to_string(job.id) + " from " + job.queue + " (attempt " +
                            std::to_string(job.attempts) + ")";
    auto program = JobProgram::start(settings_.program, job);
    if (!program) {
      auto nacked = finish([&] { return client.nack(job.id); });
      say(who + ": " + program.error() + "; " +
          (nacked ? "handed back (NACK)"
                  : "left to its lease (" + nacked.error().to_string() + ")"));
      stop_.sleep_for_ms(kTroublePauseMs);  // fork may fail again at once
      return;
    }

    ++running_;
    struct Done {
      std::atomic<unsigned>& running;
      ~Done() { --running; }
    } done{running_};

    enum class Stopped { kNo, kTimeout, kAbort, kLeaseLost };
    Stopped stopped = Stopped::kNo;
    std::string lease_lost;
    // The first TOUCH, at once, tells how long the lease is; then a third of it.
    Clock::time_point next_touch = started;
    // Clock::time_point::max() is never: no --job-timeout, no SIGKILL due.
    constexpr Clock::time_point kNever = Clock::time_point::max();
    const Clock::time_point timeout_at =
        settings_.job_timeout.count() > 0 ? started + settings_.job_timeout : kNever;
    Clock::time_point kill_at = kNever;
    auto stop_program = [&](Stopped why, Clock::time_point now) {
      stopped = why;
      program->signal(SIGTERM);
      kill_at = now + settings_.kill_grace;
    };

    std::optional<ProgramExit> exit;
    while (!exit) {
      const Clock::time_point now = Clock::now();
      if (stopped != Stopped::kLeaseLost && now >= next_touch) {
        auto left = client.touch(job.id);
        if (left) {
          next_touch = Clock::now() + std::max(*left / 3, milliseconds(1));
        } else if (left.error().is(ErrorCode::kNotLeased) ||
                   left.error().is(ErrorCode::kNotFound)) {
          // Another worker may be running it now, or it was deleted: this run is moot.
          lease_lost = left.error().to_string();
          if (stopped == Stopped::kNo) stop_program(Stopped::kLeaseLost, now);
          stopped = Stopped::kLeaseLost;
        } else {
          next_touch = Clock::now() + kTouchRetry;
        }
      }
      if (stopped == Stopped::kNo && now >= timeout_at) {
        stop_program(Stopped::kTimeout, now);
      }
      if (stopped == Stopped::kNo && abort_.cancelled()) stop_program(Stopped::kAbort, now);
      if (now >= kill_at) {
        program->signal(SIGKILL);
        kill_at = kNever;
      }
      Clock::time_point deadline = stopped == Stopped::kLeaseLost ? kNever : next_touch;
      if (stopped == Stopped::kNo) deadline = std::min(deadline, timeout_at);
      deadline = std::min(deadline, kill_at);
      exit = program->wait_until(deadline, stopped == Stopped::kNo ? abort_.fd() : -1);
    }

    const std::string how =
        who + ": " + exit->describe() + " after " + elapsed_text(Clock::now() - started);
    if (stopped == Stopped::kLeaseLost) {
      say(how + "; stopped, as its lease was lost (" + lease_lost + ")");
      return;
    }
    if (stopped == Stopped::kTimeout || (stopped == Stopped::kAbort && !exit->succeeded())) {
      const std::string why =
          stopped == Stopped::kTimeout
              ? "stopped at --job-timeout " + format_duration(settings_.job_timeout)
              : "stopped by a second Ctrl-C or SIGTERM";
      retry(client, job, how + " (" + why + ")");
      return;
    }
    switch (verdict_for(*exit, settings_.fail_exits)) {
      case Verdict::kAck: {
        auto acked = finish([&] { return client.ack(job.id); });
        if (acked) {
          say(how + "; acked");
        } else if (acked.error().is(ErrorCode::kNotLeased) ||
                   acked.error().is(ErrorCode::kNotFound)) {
          say(how + "; too late to ACK (" + acked.error().to_string() + ")");
        } else {
          say(how + "; ACK failed (" + acked.error().to_string() +
              "): it will be delivered again when its lease runs out");
        }
        return;
      }
      case Verdict::kFail: {
        auto failed = finish([&] {
          return client.fail(job.id, settings_.program[0] + " ended with " + exit->describe());
        });
        say(how + (failed ? "; failed: moved to dead letters"
                          : "; FAIL failed (" + failed.error().to_string() +
                                "): it will be delivered again when its lease runs out"));
        return;
      }
      case Verdict::kRetry:
        retry(client, job, how);
        return;
    }
  }

  void retry(Client& client, const Job& job, const std::string& how) {
    auto nacked = finish([&] { return client.nack(job.id); });
    if (!nacked) {
      say(how + "; NACK failed (" + nacked.error().to_string() +
          "): it will be delivered again when its lease runs out");
    } else if (*nacked == NackOutcome::kDead) {
      say(how + "; out of attempts: moved to dead letters");
    } else {
      say(how + "; handed back to be retried (NACK)");
    }
  }

  const Options& options_;
  const WorkSettings& settings_;
  const CancelToken& stop_;
  const CancelToken& abort_;
  std::ostream& log_;
  std::mutex log_mutex_;
  std::atomic<uint64_t> reserved_{0};
  std::atomic<int> status_{kWorkStopped};
  std::atomic<bool> troubled_{false};
  std::atomic<unsigned> working_{settings_.concurrency};  // worker threads not yet returned
  std::atomic<unsigned> running_{0};                      // programs running now
  CancelToken finished_;                                  // fired by the last worker to return
};

}  // namespace

Verdict verdict_for(const ProgramExit& exit, const std::vector<int>& fail_exits) {
  if (exit.succeeded()) return Verdict::kAck;
  if (exit.signal == 0 &&
      std::find(fail_exits.begin(), fail_exits.end(), exit.status) != fail_exits.end()) {
    return Verdict::kFail;
  }
  return Verdict::kRetry;
}

std::optional<std::vector<int>> parse_exit_statuses(std::string_view text) {
  std::vector<int> statuses;
  for (;;) {
    const size_t comma = text.find(',');
    auto number = parse_u64(text.substr(0, comma));
    if (!number || *number < 1 || *number > 255) return std::nullopt;
    statuses.push_back(static_cast<int>(*number));
    if (comma == std::string_view::npos) return statuses;
    text.remove_prefix(comma + 1);
  }
}

std::optional<std::vector<std::string>> parse_queue_list(std::string_view text) {
  std::vector<std::string> queues;
  for (;;) {
    const size_t comma = text.find(',');
    const std::string_view name = text.substr(0, comma);
    if (name.empty()) return std::nullopt;
    queues.emplace_back(name);
    if (comma == std::string_view::npos) return queues;
    text.remove_prefix(comma + 1);
  }
}

int run_work(const Options& options, const WorkSettings& settings, const CancelToken& stop,
             const CancelToken& abort, std::ostream& log) {
  return Work(options, settings, stop, abort, log).run();
}

}  // namespace tq::client
