// KICK <queue>, REDRIVE and PURGE <queue> DEAD, run in steps.
//
// Each of them changes every job it moves or removes, one log record a job:
// a million dead jobs took 0.6 s (PURGE ... DEAD) to 2.3 s (KICK) of the
// loop in one go, and every other client waited that long. So they run a
// step at a time: the request's own turn runs the first step, and when jobs
// are left, the server runs further steps in the following iterations of
// the loop, a few milliseconds' worth each (BulkRunner), serving the other
// clients in between. The connection that asked waits for its reply, as for
// BACKUP; its reply counts the jobs of every step, and is held until the
// log holds the last of their records.
//
// What a task works through is fixed by its first step: a KICK or PURGE
// ... DEAD takes at most as many jobs as were dead then (KICK the longest
// dead first), since a job that dies meanwhile, say a kicked one that a
// broken worker fails again at once, would otherwise keep it going for
// ever; a REDRIVE takes the jobs in the queue then, less those acked,
// leased or deleted since. A queue dropped part way (even if created again
// at once) ends the task with the jobs done by then.
// A client that disconnects does not stop its task (the request was
// received: it is carried out, as a quick one would have been); a shutdown
// ends every task after its current step, and their replies count what was
// done.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "server/engine/engine.h"

namespace tq::server {

// Jobs a step moves or removes at most: at about 2 µs a job (KICK of jobs
// with a TTL, recorded whole) about half a millisecond, so that the
// runner's budget is kept to within that.
inline constexpr size_t kBulkStepJobs = 256;

struct BulkTask {
  enum class Kind { kKick, kRedrive, kPurgeDead };
  Kind kind = Kind::kKick;
  std::string queue;
  uint32_t queue_number = 0;  // Queue::number of the queue its first step found
  size_t left = SIZE_MAX;  // jobs it may still move or remove (KICK's and REDRIVE's n)
  size_t done = 0;         // jobs moved or removed so far
  // REDRIVE: the ids its first step took from the queue
  // (Engine::redrive_candidates), and how far it got in them.
  engine::Engine::RedriveChoice chosen_ids = {};
  bool finished = false;  // nothing is left to do
  int steps = 0;          // steps run, for the log
};

// Runs one step of `task`, at most `max_jobs` jobs. An error (the queue
// does not exist) finishes the task; at its first step it is the reply.
engine::Status run_bulk_step(engine::Engine& engine, BulkTask& task, size_t max_jobs);

// The reply to a finished task: "OK kicked 12", "OK redriven 3", "OK purged 7".
std::string bulk_reply(const BulkTask& task);

// The command and queue, for the log: "KICK jobs".
std::string bulk_title(const BulkTask& task);

// The tasks under way, for the server: each iteration of the loop runs their
// steps in turn for a bounded time.
class BulkRunner {
 public:
  // Called with the finished task of the connection that asked (it may
  // have gone since), and how long it ran, by the runner's clock.
  using Done =
      std::function<void(uint64_t connection_id, const BulkTask& task, uint64_t elapsed_ns)>;
  // Reads a monotonic clock, in nanoseconds (uv_hrtime; tests pass their own).
  using Clock = std::function<uint64_t()>;

  BulkRunner(Clock clock, Done done) : clock_(std::move(clock)), done_(std::move(done)) {}

  void start(uint64_t connection_id, BulkTask task);
  // Runs steps of every task in turn, until each is finished or
  // `budget_ns` has passed (read between steps: one step more may run).
  // True when tasks are left: the loop must come back without waiting.
  bool run(engine::Engine& engine, uint64_t budget_ns);
  // Shutdown: every task ends here, and its reply says what it did.
  void finish_all();
  bool busy() const { return !tasks_.empty(); }

 private:
  struct Entry {
    uint64_t connection_id;
    BulkTask task;
    uint64_t started_ns;
  };
  void finish(size_t index);

  Clock clock_;
  Done done_;
  std::vector<Entry> tasks_;
  size_t next_ = 0;  // whose step is next: where the last run stopped
};

}  // namespace tq::server
