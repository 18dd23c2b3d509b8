// The queue engine: named queues of jobs, leases and their expiry. Plain C++
// with an injected clock: no sockets, no event loop, no disk. The server calls
// it; the journal (later) observes it; tests drive it directly.
//
// Invariants: job ids are unique and never reused; every job is in exactly one
// queue and one state structure of that queue; a queue with a timed job is in
// the timer heap keyed by its earliest deadline, so finding what is due costs
// O(log n), never a scan.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <unordered_map>
#include <vector>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "server/engine/clock.h"
#include "server/engine/job.h"
#include "server/engine/observer.h"
#include "server/engine/queue.h"
#include "server/engine/result.h"

namespace tq::engine {

struct EngineLimits {
  bool auto_create_queues = false;  // ENQUEUE to an unknown queue creates it
  size_t max_queues = 10'000;
};

// A job's whole state as the log records it, for replay.
struct JobSnapshot {
  uint64_t id = 0;
  uint32_t queue_number = 0;
  JobState state = JobState::kReady;
  uint32_t attempts = 0;
  int32_t priority = 0;
  int64_t deadline_ms = 0;
  std::string_view payload;
};

// Which jobs a compaction sweep has visited so far: a queue name and a
// position within that queue's structures, robust to changes in between.
struct JobCursor {
  std::string queue;   // the queue being visited; empty before the first
  int part = 0;        // which of its structures
  size_t index = 0;    // position within it
  bool done = false;
};

struct EngineCounters {
  uint64_t enqueued = 0;
  uint64_t dequeued = 0;
  uint64_t acked = 0;
  uint64_t timed_out = 0;
};

class Engine {
 public:
  using QueueMap = std::map<std::string, std::unique_ptr<Queue>, std::less<>>;

  Engine(const Clock& clock, EngineLimits limits, QueueSettings defaults);
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // A queue name is 1-200 bytes of [A-Za-z0-9._:-] and not only digits, so it
  // can never be mistaken for a job id.
  static bool valid_queue_name(std::string_view name);

  Result<Queue*> create_queue(std::string_view name);
  Queue* find_queue(std::string_view name) const;

  // Adds a job to the end of the queue (among its priority); returns its id.
  Result<uint64_t> enqueue(std::string_view queue, std::string_view payload);

  // Leases the first ready job for the queue's ack timeout and counts the
  // delivery. The pointer is valid until the next call that changes state.
  Result<const Job*> dequeue(std::string_view queue);

  // Finishes a leased job. When `queue` is given, the job must belong to it.
  Status ack(uint64_t id, std::optional<std::string_view> queue = std::nullopt);

  // Puts back every job whose lease has ended by now; returns how many.
  size_t expire_due();

  // The earliest deadline of any timed job, or INT64_MAX when there is none.
  int64_t next_deadline_ms() const;

  const Job* find_job(uint64_t id) const { return jobs_.find(id); }
  Job* find_job(uint64_t id) { return jobs_.find(id); }
  Queue* find_queue_by_number(uint32_t number) const;

  // Reports every change to `observer` (nullptr: to nobody).
  void set_observer(ChangeObserver* observer) { observer_ = observer; }

  // --- Replay: rebuild state from the log. Each reports to the observer as
  // the live operation would, and none checks business rules. ---
  void restore_ids(uint64_t next_job_id, uint32_t next_queue_number);
  Queue* restore_queue(uint32_t number, std::string_view name, const QueueSettings& settings);
  void restore_drop_queue(uint32_t number);
  // Creates the job, or replaces the state of the one with that id. A job
  // whose QUEUE record has not been replayed yet (compaction may move a
  // queue's record after its jobs') goes into a placeholder queue that the
  // QUEUE record later names.
  Job* restore_job(const JobSnapshot& snapshot);
  void restore_lease(uint64_t id, uint32_t attempts);
  void restore_release(uint64_t id, uint32_t attempts);
  void restore_remove(uint64_t id);
  // After the last record: leased jobs are ready again (their attempt was
  // counted). Returns how many were leased.
  size_t finish_restore();
  // Queues replay created for jobs but never saw a QUEUE record for.
  std::vector<const Queue*> placeholder_queues() const;

  // Visits up to `budget` jobs from `cursor` on (moving it on), in no useful
  // order; false when every job has been visited. A job moved while the
  // sweep runs may be missed or seen twice: callers check their own counts.
  // `visit` returns false to stop after the job it was given.
  bool visit_jobs(JobCursor& cursor, size_t budget, const std::function<bool(Job&)>& visit);
  uint64_t next_job_id() const { return next_job_id_; }
  uint32_t next_queue_number() const { return next_queue_number_; }
  const QueueMap& queues() const { return queues_; }
  const EngineCounters& counters() const { return counters_; }
  size_t job_count() const { return jobs_.size(); }
  size_t leased_count() const { return leased_count_; }
  const QueueSettings& default_settings() const { return defaults_; }
  int64_t now_ms() const { return clock_.now_ms(); }

 private:
  struct QueueTimerSlot {
    static uint32_t& get(Queue* q) { return q->timer_slot; }
  };
  struct QueueTimerOrder {
    bool operator()(const Queue* a, const Queue* b) const { return a->timer_at < b->timer_at; }
  };

  Result<Queue*> queue_for_write(std::string_view name);
  Queue* add_queue(uint32_t number, std::string_view name, const QueueSettings& settings);
  // Takes a job out of whatever structure its state puts it in.
  void unlink(Job* job);
  void destroy(Job* job);
  Error no_queue(std::string_view name) const;
  void make_ready(Job* job);
  void reschedule(Queue* queue);

  const Clock& clock_;
  EngineLimits limits_;
  QueueSettings defaults_;
  QueueMap queues_;
  JobTable jobs_;
  IntrusiveHeap<Queue, QueueTimerOrder, QueueTimerSlot> timers_;
  std::unordered_map<uint32_t, Queue*> queues_by_number_;
  ChangeObserver* observer_ = nullptr;
  EngineCounters counters_;
  uint64_t next_job_id_ = 1;
  uint32_t next_queue_number_ = 1;
  size_t leased_count_ = 0;
};

}  // namespace tq::engine
