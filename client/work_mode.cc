#include "client/work_mode.h"

#include <poll.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "client/duration.h"
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
// The most a TOUCH waits for its answer (or --timeout, when shorter): the
// program is not watched meanwhile (its exit, --job-timeout). A late answer
// is read before the next request, on the same connection.
constexpr milliseconds kTouchPatience = 500ms;
// Between DEQUEUEs that fail (no such queue yet, no server), and between
// tries of an ACK, NACK or FAIL that got no answer.
constexpr int kTroublePauseMs = 1000;
// How long an ACK, NACK or FAIL is tried while the server does not answer.
constexpr milliseconds kConcludeFor = 30s;

class Work {
 public:
  Work(const Options& options, const WorkSettings& settings, const CancelToken& stop,
       const CancelToken& abort, std::ostream& log)
      : options_(options), settings_(settings), stop_(stop), abort_(abort), log_(log) {}

  int run() {
    std::string queues;
    for (const auto& q : settings_.queues) {
      // Before anything is said or started: a name no request can carry.
      if (auto named = check_word(q, "queue name"); !named) {
        say(named.error().message);
        return kWorkUsage;
      }
      queues += (queues.empty() ? "" : ", ") + q;
    }
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
    // One connection attempt per call: this loop does the waiting, so that a
    // TOUCH never holds up the watch on a program (its --job-timeout, its
    // exit) while the server is away.
    options.reconnect = ReconnectPolicy{};
    options.reconnect.attempts = 1;
    options.reconnect.cancel = &abort_;  // after the first Ctrl-C, jobs held still get their ACK
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
        trouble((error.kind == ErrorKind::kServer ? "cannot take jobs yet: "
                                                  : "cannot reach the server: ") +
                error.to_string() + "; trying again");
        stop_.sleep_for_ms(kTroublePauseMs);
        continue;
      }
      no_trouble();
      if (!jobs->empty()) {
        Run run{client, jobs->front()};
        run_job(run);
      }
    }
  }

  // One job's run. Its TOUCH, ACK, NACK and FAIL name the job with its
  // lease token when it came with one (Client::ack(job)), so the server
  // refuses them once this delivery is over, on whatever connection they
  // come: one made after the first was lost (an idle close, a restarted
  // tqd) included.
  struct Run {
    Client& client;
    const Job& job;
    // The connection may no longer be the one the job was delivered on: it
    // was seen closed, or a request on it failed short of a server's reply.
    // Only a job without a token cares (owner()).
    bool suspect = false;
  };

  enum class Owner { kUs, kNotUs, kUnknown };
  // Whether the job is still in this run's delivery, asked (JOB) only for a
  // job without a lease token, from a tqd older than tokens, and only once
  // the connection may have been replaced: such a tqd tells a late worker
  // apart on the connection the job came on, and a plain ACK, NACK, FAIL or
  // TOUCH on any other acts on whatever delivery the job is in now. A
  // delivery that ends between the JOB and the request still gets it; only
  // the token closes that. This can go once no tqd without lease tokens is
  // in use.
  Owner owner(Run& run, std::string* why) {
    if (run.job.lease) return Owner::kUs;  // the server checks the token
    if (!run.client.connected()) run.suspect = true;
    if (!run.suspect) return Owner::kUs;
    auto found = run.client.job(run.job.id);
    if (!found) {
      if (!found.error().is(ErrorCode::kNotFound)) return Owner::kUnknown;
      *why = "the job is gone";
      return Owner::kNotUs;
    }
    if (found->state == "leased" && found->attempts == run.job.attempts) {
      run.suspect = false;  // checked on this connection; its TOUCHes keep the lease
      return Owner::kUs;
    }
    *why = "the job is now " + found->state + " at attempt " + std::to_string(found->attempts);
    return Owner::kNotUs;
  }

  void run_job(Run& run) {
    const Job& job = run.job;
    const Clock::time_point started = Clock::now();
    const std::string who = "job " + std::to_string(job.id) + " from " + job.queue + " (attempt " +
                            std::to_string(job.attempts) + ")";
    // Counted before the start: the program may be seen running (its output,
    // by whoever then sends a signal) before start() returns here.
    ++running_;
    struct Done {
      std::atomic<unsigned>& running;
      ~Done() { --running; }
    } done{running_};
    auto program = JobProgram::start(settings_.program, job);
    if (!program) {
      conclude(run, Verb::kNack, who + ": " + program.error().message);
      if (program.error().program_unusable()) {
        give_up(kWorkUsage,
                "the program cannot be run; stopping (" + program.error().message + ")");
      } else {
        stop_.sleep_for_ms(kTroublePauseMs);  // fork may fail again at once
      }
      return;
    }

    enum class Stopped { kNo, kTimeout, kAbort, kLeaseLost };
    Stopped stopped = Stopped::kNo;
    std::string lease_lost;
    // Clock::time_point::max() is never: no --job-timeout, no SIGKILL due.
    constexpr Clock::time_point kNever = Clock::time_point::max();
    const Clock::time_point timeout_at =
        settings_.job_timeout.count() > 0 ? started + settings_.job_timeout : kNever;
    Clock::time_point kill_at = kNever;
    auto stop_program = [&](Stopped why, Clock::time_point now) {
      if (stopped == Stopped::kNo) {
        program->signal(SIGTERM);
        kill_at = now + settings_.kill_grace;
      }
      stopped = why;
    };
    // The first TOUCH, at once, tells how long the lease is; then a third of
    // it. A lease no TOUCH renewed for its whole length is over on the
    // server: the job may be running elsewhere already.
    Clock::time_point next_touch = started;
    Clock::time_point renewed_at = started;
    milliseconds lease = milliseconds::max();  // unknown until a TOUCH answers
    const milliseconds touch_patience =
        std::min(kTouchPatience, milliseconds(run.client.options().timeout_ms));
    auto lose_lease = [&](const std::string& why, Clock::time_point now) {
      lease_lost = why;
      stop_program(Stopped::kLeaseLost, now);
    };

    std::optional<ProgramExit> exit;
    while (!exit) {
      const Clock::time_point now = Clock::now();
      if (stopped != Stopped::kLeaseLost && now >= next_touch) {
        std::string why;
        const Owner ours = owner(run, &why);
        if (ours == Owner::kNotUs) {
          lose_lease(why, now);
        } else if (ours == Owner::kUnknown) {
          next_touch = Clock::now() + kTouchRetry;
        } else if (auto left = run.client.touch(job, std::nullopt, touch_patience)) {
          lease = *left;
          renewed_at = Clock::now();
          next_touch = renewed_at + std::max(lease / 3, milliseconds(1));
        } else if (left.error().is(ErrorCode::kNotLeased) ||
                   left.error().is(ErrorCode::kNotFound)) {
          lose_lease(left.error().to_string(), now);
        } else {
          // A late answer leaves the connection as it was: the job's.
          if (left.error().kind != ErrorKind::kServer &&
              !(left.error().kind == ErrorKind::kTimeout && run.client.connected())) {
            run.suspect = true;
          }
          next_touch = Clock::now() + kTouchRetry;
        }
        if (stopped != Stopped::kLeaseLost && lease != milliseconds::max() &&
            Clock::now() - renewed_at >= lease) {
          lose_lease("no TOUCH got through for the lease's " +
                         compact_duration(static_cast<double>(lease.count())),
                     now);
        }
      }
      if (stopped == Stopped::kNo && now >= timeout_at) stop_program(Stopped::kTimeout, now);
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
    // What a stopped program left running got SIGTERM with it, and had as
    // long as it took; now it goes, so no retry runs beside it.
    if (stopped != Stopped::kNo) program->kill_leftovers();

    const std::string how =
        who + ": " + exit->describe() + " after " +
        compact_duration(std::chrono::duration<double, std::milli>(Clock::now() - started).count());
    if (stopped == Stopped::kLeaseLost) {
      say(how + "; stopped, as its lease was lost (" + lease_lost + ")");
      return;
    }
    if (stopped == Stopped::kTimeout || (stopped == Stopped::kAbort && !exit->succeeded())) {
      const std::string why =
          stopped == Stopped::kTimeout
              ? "stopped at --job-timeout " +
                    compact_duration(static_cast<double>(settings_.job_timeout.count()))
              : "stopped by a second Ctrl-C or SIGTERM";
      conclude(run, Verb::kNack, how + " (" + why + ")");
      return;
    }
    switch (verdict_for(*exit, settings_.fail_exits)) {
      case Verdict::kAck:
        conclude(run, Verb::kAck, how);
        return;
      case Verdict::kFail:
        conclude(run, Verb::kFail, how, settings_.program[0] + " ended with " + exit->describe());
        return;
      case Verdict::kRetry:
        conclude(run, Verb::kNack, how);
        return;
    }
  }

  enum class Verb { kAck, kNack, kFail };

  // Sends the ACK, NACK or FAIL that ends a run, and says how it went. While
  // the server does not answer (or refuses it unrun as it closes the
  // connection) it is sent again, for up to kConcludeFor (not
  // after a second Ctrl-C), on a new connection when the old one broke: with
  // the job's lease token, so a try that comes after this delivery ended is
  // refused (NOTLEASED) instead of ending the job's next delivery. Without a
  // token, owner() stands in for that check.
  void conclude(Run& run, Verb verb, const std::string& how, const std::string& reason = {}) {
    static constexpr const char* kName[] = {"ACK", "NACK", "FAIL"};
    const std::string name = kName[static_cast<int>(verb)];
    const Clock::time_point give_up_at = Clock::now() + kConcludeFor;
    bool maybe_sent = false;  // an earlier try may have been carried out
    std::string last_error;   // the last try's, when the server stops answering
    bool retried_timeout = false;
    for (;;) {
      std::string why;
      const Owner ours = owner(run, &why);
      if (ours == Owner::kNotUs) {
        say(how + (maybe_sent ? "; " + name + " sent, its reply lost; " + why
                              : "; no " + name + ": its delivery is over (" + why + ")"));
        return;
      }
      if (ours == Owner::kUs) {
        auto sent = send_conclusion(run, verb, reason);
        if (sent) {
          say(how + "; " + *sent);
          return;
        }
        const Error& error = sent.error();
        if (error.is(ErrorCode::kNotLeased) || error.is(ErrorCode::kNotFound)) {
          // Not this run's delivery any more. After a lost reply that may be
          // the earlier try's doing (an ACK that went through: the job is
          // gone), so say so, with what the server says now.
          if (maybe_sent) {
            say(how + "; " + name + " sent, its reply lost; sent again: " + error.to_string());
          } else {
            say(how + "; too late to " + name + " (" + error.to_string() + ")");
          }
          return;
        }
        // A server closing the connection as the request came did not run
        // it: TIMEOUT (limits.idle_timeout), SHUTDOWN (it is stopping, and
        // keeps the lease across its restart), MAXCONN. Sent again on a new
        // connection.
        if (error.kind == ErrorKind::kServer && !error.server_closing()) {
          say(how + "; " + name + " refused (" + error.to_string() +
              "): the job will be delivered again when its lease runs out");
          return;
        }
        run.suspect = true;
        maybe_sent = maybe_sent || error.outcome_unknown();
        last_error = error.to_string();
        // A connection closed as idle is no trouble with the server: the
        // first such try goes again on a new connection at once.
        if (error.is(ErrorCode::kTimeout) && !retried_timeout) {
          retried_timeout = true;
          continue;
        }
      }
      if (abort_.cancelled() || Clock::now() >= give_up_at) {
        say(how + "; " + name + " got no answer" +
            (last_error.empty() ? "" : " (" + last_error + ")") +
            ": the job will be delivered again when its lease runs out");
        return;
      }
      abort_.sleep_for_ms(kTroublePauseMs);
    }
  }

  // One try of the ACK, NACK or FAIL: what became of the job, or the error.
  Result<std::string> send_conclusion(Run& run, Verb verb, const std::string& reason) {
    if (verb == Verb::kNack) {
      auto nacked = run.client.nack(run.job);
      if (!nacked) return nacked.error();
      return std::string(*nacked == NackOutcome::kDead ? "out of attempts: moved to dead letters"
                         : *nacked == NackOutcome::kExpired ? "NACK: its TTL had passed, it expired"
                                                            : "handed back to be retried (NACK)");
    }
    auto done = verb == Verb::kAck ? run.client.ack(run.job) : run.client.fail(run.job, reason);
    if (!done) return done.error();
    return std::string(verb == Verb::kAck ? "acked" : "failed: moved to dead letters");
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
  for (std::string_view part : split_commas(text)) {
    auto number = parse_u64(part);
    if (!number || *number < 1 || *number > 255) return std::nullopt;
    statuses.push_back(static_cast<int>(*number));
  }
  return statuses;
}

std::optional<std::vector<std::string>> parse_queue_list(std::string_view text) {
  std::vector<std::string> queues;
  for (std::string_view name : split_commas(text)) {
    if (name.empty()) return std::nullopt;
    queues.emplace_back(name);
  }
  return queues;
}

int run_work(const Options& options, const WorkSettings& settings, const CancelToken& stop,
             const CancelToken& abort, std::ostream& log) {
  return Work(options, settings, stop, abort, log).run();
}

}  // namespace tq::client
