// The queue engine: named queues of jobs and everything that happens to a
// job (priorities, delays, leases, retries with backoff, dead letters, TTLs,
// dedup keys). Plain C++ with an injected clock: no sockets, no event loop,
// no disk. The server calls it; the journal observes it; tests drive it.
//
// Invariants: job ids are unique and never reused; every job is in exactly one
// queue and one state structure of that queue; a queue with anything timed
// (a delay, a lease, a TTL, a dedup key) is in the timer heap keyed by its
// earliest deadline, so finding what is due costs O(log n), never a scan.
//
// The implementation is split by concern: engine.cc (queues, enqueue and
// delivery), engine_timers.cc (what time does: leases, delays, TTLs,
// backoff, dedup windows), engine_admin.cc (inspection and repair),
// engine_restore.cc (replay), engine_disposal.cc (freeing what PURGE and
// DROP removed, in steps).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "server/engine/clock.h"
#include "server/engine/disposal.h"
#include "server/engine/job.h"
#include "server/engine/observer.h"
#include "server/engine/queue.h"
#include "server/engine/result.h"

namespace tq::engine {

struct EngineLimits {
  bool auto_create_queues = false;  // ENQUEUE to an unknown queue creates it
  size_t max_queues = 10'000;
  size_t max_jobs = 0;              // across all queues; 0: no limit
  uint64_t max_payload_total = 0;   // bytes of payload across all queues; 0: no limit
};

// What a producer may say about a job.
struct EnqueueOptions {
  int32_t priority = 0;       // higher is delivered first
  int64_t delay_ms = 0;       // not ready before now + delay
  int64_t run_at_ms = 0;      // not ready before this wall-clock time; 0: none
  bool own_time = false;      // DELAY or AT was given, even 0: the queue's delay is not waited
  int64_t ttl_ms = 0;  // from now; expires if not leased then (or given back later); 0: never
  uint32_t max_attempts = 0;  // overrides the queue's; 0: the queue's
  std::string_view key{};     // dedup key; empty: none
  std::string_view group{};   // message group; empty: none
  int64_t key_expires_ms = 0;  // when `key` is forgotten; 0: now + the queue's dedup_window
  bool firing = false;         // put by fire_schedules, which moves its schedule on itself
};

// A schedule as SCHEDULE gives it: EVERY a period, or CRON an expression.
struct ScheduleSpec {
  std::string_view name;
  int64_t every_ms = 0;   // 0: cron
  std::string_view cron;  // five fields or a @shortcut, when every_ms is 0
  std::string_view payload;
  EnqueueOptions job;  // priority, ttl_ms, max_attempts and group of each job it puts
  // Declared in the configuration: its payload counts in
  // limits.max_payload_total but is never refused by it, so a backlog that
  // fills the limit cannot keep tqd from starting (the file bounds it).
  bool declared = false;
};

struct Enqueued {
  uint64_t id = 0;
  bool duplicate = false;  // the key was seen within the window: id is the earlier job's
};

// What became of a job given back (NACK, or a lease that ran out).
// Where a job given back went. kExpired: its TTL had passed meanwhile (a
// lease is never cut short by it), and the queue has no ttl_dead_letter.
enum class Requeue { kReady, kDelayed, kDead, kExpired };

enum class PeekState { kReady, kDelayed, kLeased, kDead, kHeld };

// A job's whole state as the log records it, for replay.
struct JobSnapshot {
  uint64_t id = 0;
  uint32_t queue_number = 0;
  JobState state = JobState::kReady;
  uint32_t attempts = 0;
  int32_t priority = 0;
  int64_t deadline_ms = 0;  // kDelayed: ready at; kDead: died at; kReady: since (0: unknown)
  int64_t expires_at_ms = 0;
  uint32_t max_attempts = 0;
  uint8_t kicks = 0;  // Job::kicks: a late ACK of a kicked job is told so
  int64_t key_expires_ms = 0;  // not 0: the record also remembers `key` until then
  std::string_view key;
  std::string_view reason;
  std::string_view origin;  // the queue it died in, when it moved to a dead_letter_queue
  std::string_view group;
  std::string_view payload;
};

// Which jobs a compaction sweep has visited so far: a queue name and a
// position within that queue's structures, robust to changes in between.
struct JobCursor {
  std::string queue;  // the queue being visited; empty before the first
  int part = 0;       // which of its structures
  size_t index = 0;   // position within it
  bool done = false;
};

struct EngineCounters {
  uint64_t enqueued = 0;
  uint64_t duplicates = 0;
  uint64_t dequeued = 0;
  uint64_t acked = 0;
  uint64_t timed_out = 0;
  uint64_t nacked = 0;
  uint64_t dead = 0;
  uint64_t dead_forwarded = 0;
  uint64_t expired = 0;
  uint64_t deleted = 0;
  uint64_t kicked = 0;
  uint64_t redriven = 0;
  uint64_t dead_discarded = 0;
  uint64_t scheduled = 0;
  uint64_t schedule_refused = 0;
  uint64_t refused = 0;  // ENQUEUEs and PUTs answered FULL (see QueueCounters)
};

class Engine {
 public:
  using QueueMap = std::map<std::string, std::unique_ptr<Queue>, std::less<>>;

  Engine(const Clock& clock, EngineLimits limits, QueueSettings defaults, uint64_t seed = 1);
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // A queue name is 1-200 bytes of [A-Za-z0-9._:-], not only digits (so it is
  // never mistaken for a job id) and not WAIT or COUNT (DEQUEUE's keywords).
  static bool valid_queue_name(std::string_view name);
  // WAIT or COUNT, in any case: DEQUEUE's keywords, which the first tqds
  // still took as queue names (a log may hold one; replay keeps it).
  static bool dequeue_keyword(std::string_view name);
  static bool valid_key(std::string_view key);

  // --- Queues ---
  Result<Queue*> create_queue(std::string_view name);
  Queue* find_queue(std::string_view name) const;
  Queue* find_queue_by_number(uint32_t number) const;
  Result<Queue*> queue_or_error(std::string_view name) const;
  Status configure(std::string_view queue, const QueueSettings& settings);
  // Pauses (until `resume_at_ms`, when it is not 0) or resumes a queue.
  Status set_paused(std::string_view queue, bool paused, int64_t resume_at_ms = 0);
  // Removes the ready, held and delayed jobs; returns how many. They are
  // gone for every purpose at once, and freed later, in steps
  // (dispose_some).
  Result<size_t> purge(std::string_view queue);
  // Removes up to `max` dead jobs (the dead letters), in no useful order;
  // returns how many.
  Result<size_t> purge_dead(std::string_view queue, size_t max = SIZE_MAX);
  // Removes the queue and every job in it; the jobs are freed later, in
  // steps (dispose_some), as PURGE's.
  Status drop(std::string_view queue);

  // --- Jobs PURGE and DROP removed, still to be freed (disposal.h) ---
  // Frees up to `max` of them, the oldest PURGE's or DROP's first; true when
  // some are left.
  bool dispose_some(size_t max);
  void finish_disposals() {
    while (dispose_some(SIZE_MAX)) {
    }
  }
  bool disposing() const { return !disposals_.empty(); }
  size_t jobs_disposing() const { return jobs_disposing_; }
  // Adds a schedule to the queue, or replaces the one with that name
  // (keeping its count of jobs put); it fires first at its next time
  // after now.
  Result<const Schedule*> schedule(std::string_view queue, const ScheduleSpec& spec);
  Status unschedule(std::string_view queue, std::string_view name);

  // --- Producers ---
  Result<Enqueued> enqueue(std::string_view queue, std::string_view payload,
                           const EnqueueOptions& options = {});

  // --- Workers ---
  // Leases up to `max` ready jobs from the first of `queues` (by queue
  // priority, then the order given) that has any, then from the next ones
  // while fewer than `max` were taken, appending them to `out`. Paused
  // queues are skipped; a queue listed twice is taken from as one. Stops
  // early once the payloads taken reach `max_bytes` (at least one job is
  // taken), so one reply stays bounded. Pointers are valid until the next
  // change.
  void dequeue(std::span<Queue* const> queues, size_t max, std::vector<const Job*>* out,
               uint64_t max_bytes = UINT64_MAX);
  // The seed's form: one job from one queue, or EMPTY.
  Result<const Job*> dequeue(std::string_view queue);
  // Finishes a leased job. When `queue` is given, the job must belong to it.
  Status ack(uint64_t id, std::optional<std::string_view> queue = std::nullopt);
  // ACK <queue> <id>'s test of the queue: a valid name, a queue that exists,
  // and the job, when there is one, in it.
  Status check_ack_queue(uint64_t id, std::string_view queue) const;
  // Gives a leased job back: after `delay_ms`, or the queue's backoff when
  // absent; to dead letters when it is out of attempts. With `priority`, the
  // job takes it for its next delivery (and keeps it: the log records it).
  Result<Requeue> nack(uint64_t id, std::optional<int64_t> delay_ms,
                       std::optional<int32_t> priority = std::nullopt);
  // Sends a leased job straight to dead letters.
  Status fail(uint64_t id, std::string_view reason);
  // Extends a lease to now + `extend_ms` (the queue's ack timeout when
  // absent); returns the milliseconds the lease now has left, from the same
  // reading of the clock (a second reading could be a millisecond later).
  Result<int64_t> touch(uint64_t id, std::optional<int64_t> extend_ms);

  // --- Repair and inspection ---
  Status remove(uint64_t id);
  // Moves up to `max` dead jobs back to ready, attempts reset; how many moved.
  Result<size_t> kick(std::string_view queue, size_t max);
  // Moves one dead job back to ready, attempts reset; or one delayed job to
  // ready now, its attempts kept.
  Status kick_job(uint64_t id);
  // Moves up to `max` jobs that came to the queue as its dead_letter_queue
  // (ready, delayed or dead; not leased: a worker has those) back to the
  // queue each died in, ready, attempts reset, oldest job first (SQS's DLQ
  // redrive); how many moved. A job whose queue is gone stays.
  Result<size_t> redrive(std::string_view queue, size_t max);
  // REDRIVE in two parts, so that many jobs can move a few at a time
  // (server/bulk_work.h). First the ids of every job it might move: the
  // queue's ready, delayed and dead jobs, not yet checked (a scan of a
  // million that looked at each job took 120 ms). Then, call by call, the
  // move of those that qualify: in the queue, ready, delayed or dead, come
  // from a queue that still exists.
  struct RedriveChoice {
    // With `oldest_first`, every id once, in id order. Otherwise the ids of
    // the jobs in the queue's heaps (returned to ready, delayed, dead),
    // then from `fifo_from` on those in its ready FIFOs, stale ones among
    // them: a job that left its FIFO (for the dead jobs, say) leaves its id
    // behind, so an id may be there twice.
    std::vector<uint64_t> ids;
    size_t fifo_from = 0;
    size_t next = 0;  // the first id not yet tried
    bool done() const { return next == ids.size(); }
    // Whether `id` is among the heaps' ids; only once those were all tried
    // (it sorts them, the first time).
    bool among_heap_ids(uint64_t id);

   private:
    bool heap_ids_sorted_ = false;
  };
  Result<RedriveChoice> redrive_candidates(std::string_view queue, bool oldest_first) const;
  // Tries the next ids of `choice`, at most `max` (so at most `max` move),
  // and moves those that qualify; how many moved. A FIFO id whose job has
  // left its FIFO since (a worker gave it back, its TTL killed it) takes the
  // job unless the job had an id among the heaps' too: then it was tried by
  // that one (and, sent back, may have died and come back since).
  Result<size_t> redrive_next(std::string_view queue, RedriveChoice& choice, size_t max);
  // Calls f for the first n jobs in `state`, in the order they would leave it.
  Status peek(std::string_view queue, PeekState state, size_t n,
              const std::function<void(const Job&)>& f) const;

  // --- Time ---
  // Does what is due by now, at most `budget` changes (jobs and forgotten
  // dedup keys) per call: expired leases go back (or die), delayed jobs
  // become ready, TTLs expire, old dedup keys are forgotten. Returns how
  // many jobs changed state. With work left over, next_deadline_ms() is
  // still in the past: the server calls again after serving its clients, so
  // a million leases running out together is many short turns of the loop,
  // not one long one.
  size_t expire_due(size_t budget = SIZE_MAX);
  // The earliest deadline of anything timed, or INT64_MAX when there is none.
  int64_t next_deadline_ms() const;
  // Called every second or so: when the wall clock was set back since the
  // last call, the rate limit's timers of the queues workers wait on are set
  // again from now. The limit counts from the new time (refill_rate) rather
  // than holding deliveries until the clock catches up, but each timer was
  // set for a time of the clock before the step: a waiting worker waited
  // out the whole step (an hour for an hour) while a DEQUEUE without WAIT
  // got the job. Delays, leases and TTLs keep their times (README, The
  // clock). Returns whether the clock went back.
  bool follow_clock_set_back();

  // Whether a DEQUEUE would get a job from the queue now: it is not paused,
  // has a ready job, is under its max_leased and has a delivery left in its
  // rate limit (counted at `now`; by default the clock is read, and only for
  // a rate-limited queue).
  bool can_deliver(Queue& queue, int64_t now = kClockUnread) {
    if (queue.paused || queue.ready.empty()) return false;
    return !queue.settings.limits_delivery() || delivery_room(queue, now) > 0;  // most: no limits
  }
  // Why a DEQUEUE gets nothing from the queue now, for the EMPTY reply:
  // "is paused", "has no ready job", "is at max_leased=...", or "is at
  // rate_limit=...: the next delivery in <n>ms".
  std::string why_not_delivering(Queue& queue);

  // --- For the server's blocked DEQUEUEs ---
  // The server counts waiters per queue; a queue with waiters that can
  // deliver again (a job became ready, a lease under max_leased ended, the
  // rate limit allows another delivery) is reported by take_ready_signals().
  void add_waiter(Queue* queue);
  void remove_waiter(Queue* queue) { --queue->waiters; }
  std::vector<Queue*> take_ready_signals();
  bool has_ready_signals() const { return !ready_signals_.empty(); }

  // --- For the journal ---
  void set_observer(ChangeObserver* observer) { observer_ = observer; }
  // The job with that id, or nullptr (one PURGE or DROP removed is gone).
  const Job* find_job(uint64_t id) const { return live_job(id); }
  Job* find_job(uint64_t id) { return live_job(id); }
  // Visits up to `budget` jobs from `cursor` on (moving it on), in no useful
  // order; false when every job has been visited. `visit` returns false to
  // stop early. A job moved while a sweep runs may be missed or seen twice:
  // callers check their own counts.
  bool visit_jobs(JobCursor& cursor, size_t budget, const std::function<bool(Job&)>& visit);
  uint64_t next_job_id() const { return next_job_id_; }
  void reserve_jobs(size_t n) { jobs_.reserve(n); }
  uint32_t next_queue_number() const { return next_queue_number_; }

  // --- Replay: rebuild state from the log. Each reports to the observer as
  // the live operation would, and none checks business rules. ---
  void restore_ids(uint64_t next_job_id, uint32_t next_queue_number);
  // A queue of another number that holds `name` is dropped first: a name is
  // used again only after DROP, so that queue's QUEUE_DROP record was lost.
  Queue* restore_queue(uint32_t number, std::string_view name, const QueueSettings& settings,
                       bool paused, int64_t resume_at_ms = 0,
                       std::map<std::string, Schedule> schedules = {});
  void restore_drop_queue(uint32_t number);
  void restore_purge(uint32_t number);
  // Creates the job, or replaces the state of the one with that id. A job
  // whose QUEUE record has not been replayed yet (compaction may move a
  // queue's record after its jobs') goes into a placeholder queue that the
  // QUEUE record later names.
  Job* restore_job(const JobSnapshot& snapshot);
  // `ends_ms`: when the lease ends; 0 when the record does not say (older
  // logs), for end_unknown_leases.
  void restore_lease(uint64_t id, uint32_t attempts, int64_t ends_ms);
  // `ready_at_ms`: 0 ready now, else delayed until then; `ready_since_ms`,
  // when ready: since when (0: unknown, now).
  void restore_release(uint64_t id, uint32_t attempts, int64_t ready_at_ms,
                       int64_t ready_since_ms = 0);
  void restore_dead(uint64_t id, std::string_view reason, int64_t died_at_ms);
  void restore_remove(uint64_t id);
  void restore_dedup(uint32_t queue_number, std::string_view key, uint64_t job_id,
                     int64_t expires_ms);
  // A schedule fired: its next time and count of jobs put. Nothing when the
  // queue or the schedule is gone (dropped, cancelled: a later record says
  // so, or compaction moved the queue's record past it).
  void restore_schedule_fired(uint32_t queue_number, std::string_view name, int64_t next_ms,
                              uint64_t fired);
  // After the last record: sets each queue's timer.
  void finish_restore();
  // A lease the log gives an end (LEASE and JOB records since December
  // 2026) is kept to that end across a restart, so a worker that finished
  // while tqd restarted can still ACK; one that ended while tqd was down is
  // given back by the first sweep, as any lease that runs out. Once the log
  // takes records again, every lease whose end the log does not say (an
  // older tqd's records) goes back as a lease that ran out would (its
  // attempt counted, then backoff, or dead letters once max_attempts are
  // used), and says so through the observer. Without those records the log
  // would go on calling the jobs leased, and a later PURGE (which leaves
  // leased jobs alone) would not stay done at the next replay. Returns how
  // many there were.
  size_t end_unknown_leases();
  // Leases whose end is still to come (at start-up: those kept across the
  // restart; the others run out at the first sweep).
  size_t leases_running() const;
  // Queues replay created for jobs but never saw a QUEUE record for.
  std::vector<const Queue*> placeholder_queues() const;
  // The name name_placeholders() gives a placeholder: "recovered-<number>",
  // or with "-2", "-3"... appended while that is taken.
  std::string recovered_name(const Queue& placeholder) const;
  // After replay, when the QUEUE records were lost (--wal-recover): makes
  // each placeholder a real queue under its recovered_name(), with the
  // default settings it was given, and returns them. The caller has their
  // QUEUE records written.
  std::vector<Queue*> name_placeholders();

  const QueueMap& queues() const { return queues_; }
  const EngineCounters& counters() const { return counters_; }
  // Jobs in queues (not those PURGE or DROP removed that are still to be freed).
  size_t job_count() const { return jobs_.size() - jobs_disposing_; }
  size_t count_in(JobState state) const { return state_counts_[static_cast<size_t>(state)]; }
  uint64_t payload_bytes() const { return payload_bytes_; }
  // Payload bytes the schedules of every queue hold; limits.max_payload_total
  // counts them with the jobs'.
  uint64_t schedule_payload_bytes() const { return schedule_payload_bytes_; }
  // About the memory the dedup keys of every queue take (dedup_key_cost);
  // limits.max_payload_total counts it with the payloads.
  uint64_t dedup_key_bytes() const { return dedup_key_bytes_; }
  // The job's rarely-used fields (TTL, own max_attempts, dedup key, why it
  // died), or nullptr when it has none.
  const JobExtras* extras_of(const Job& job) const { return jobs_.extras(job); }
  // The memory holding jobs (their fields and payloads).
  SlabAllocator::Stats job_memory() const { return jobs_.memory(); }
  // Job memory is faulted in ahead by a helper thread (the server wants it;
  // tests need not start a thread per engine).
  void prefault_job_memory() { jobs_.prefault_memory(); }
  void use_huge_pages_for_jobs(bool on) { jobs_.use_huge_pages(on); }
  // Called every few seconds: marks the job memory left empty and unused
  // since the last call, to go back to the kernel; returns how many pages.
  size_t mark_idle_job_memory() { return jobs_.mark_idle_memory(); }
  // Gives up to `max_pages` marked pages back; returns how many stay marked.
  size_t release_marked_job_memory(size_t max_pages) {
    return jobs_.release_marked_memory(max_pages);
  }
  // JobTable::release_empty_buckets.
  size_t release_empty_job_table() { return jobs_.release_empty_buckets(); }
  const QueueSettings& default_settings() const { return defaults_; }
  // A reload of the settings. Limits lowered below what is held refuse
  // what would add more; nothing held is removed. Defaults apply to queues
  // created afterwards.
  void set_limits(const EngineLimits& limits) { limits_ = limits; }
  const EngineLimits& limits() const { return limits_; }
  // While closed, every new job (ENQUEUE, PUT, a schedule's firing) is
  // refused FULL with `why`; the rest (ACK, DELETE, KICK...) goes on. The
  // server closes it when the log's disk runs low, so that the room left
  // goes to the records that drain queues.
  void close_intake(std::string why) { intake_closed_ = std::move(why); }
  // Takes new jobs again; the schedule times kept out of the log while the
  // intake was closed are written now (save_unlogged_schedules).
  void open_intake() {
    if (intake_closed_.empty()) return;
    intake_closed_.clear();
    save_unlogged_schedules();
  }
  // Writes the whole record of each queue whose schedules moved on in memory
  // only while the intake was closed (Queue::schedules_unlogged); returns
  // how many. open_intake() calls it, and the server at a clean stop, so
  // neither a crash after the disk recovered nor a restart fires those
  // times again.
  size_t save_unlogged_schedules();
  bool intake_open() const { return intake_closed_.empty(); }
  void set_default_settings(const QueueSettings& defaults) { defaults_ = defaults; }
  int64_t now_ms() const { return clock_.now_ms(); }

 private:
  struct QueueTimerSlot {
    static uint32_t& get(Queue* q) { return q->timer_slot; }
  };
  struct QueueTimerOrder {
    bool operator()(const Queue* a, const Queue* b) const { return a->timer_at < b->timer_at; }
  };

  // The queue a write (ENQUEUE, PUT, SCHEDULE) names, or nullptr when
  // queues.auto_create is to make it: the caller makes it (create_queue)
  // only once the request passed every check, reading defaults_ for its
  // settings meanwhile. Made first, a queue stayed (in the log, and counted
  // in limits.max_queues) behind a request refused for its own arguments.
  Result<Queue*> queue_to_write(std::string_view name) const;
  // FULL when a new job of that size (and dedup key) would pass a limit:
  // the queue's max_size (`queue` may be null: not made yet), the server's
  // limits.max_jobs and max_payload_total, or the intake closed for a disk
  // that is nearly full.
  Status room_for_job(const Queue* queue, size_t payload_bytes, std::string_view key) const;
  // A producer's job refused FULL, in the queue's counters (when it exists)
  // and the server's.
  void count_refused(Queue* queue);
  // nullptr, changing nothing, if the name or the number is taken.
  Queue* add_queue(uint32_t number, std::string_view name, const QueueSettings& settings);
  Queue* queue_for_restore(uint32_t number);
  // NOQUEUE, or BADFORMAT's invalid_name() for a name no queue can have.
  Error no_queue(std::string_view name) const;
  static Error invalid_name(std::string_view name);
  // BADFORMAT for a schedule name no schedule can have (SCHEDULE, CANCEL).
  static Error invalid_schedule_name(std::string_view name);
  Result<Job*> leased_job(uint64_t id, const char* verb);
  uint32_t max_attempts_of(const Job& job) const;
  // Gives a new job the rarely-used fields that are set (0 or empty: not).
  // Inline: a plain job (most) pays four tests, not a call.
  void set_extras(Job& job, int64_t expires_at_ms, uint32_t max_attempts, std::string_view key,
                  std::string_view group) {
    if (expires_at_ms > 0 || max_attempts > 0 || !key.empty() || !group.empty()) {
      fill_extras(job, expires_at_ms, max_attempts, key, group);
    }
  }
  void fill_extras(Job& job, int64_t expires_at_ms, uint32_t max_attempts, std::string_view key,
                   std::string_view group);

  // State changes. Each takes a job out of nothing (a fresh or unlinked job)
  // and puts it where its new state says, keeping every index in step.
  // `ready_since_ms`: when it became ready (its wait is counted from then).
  void make_ready(Job* job, int64_t ready_since_ms);
  void make_delayed(Job* job, int64_t ready_at_ms);
  void make_leased(Job* job, int64_t until_ms);
  // To dead letters: the queue's own, or its dead_letter_queue's ready jobs.
  void make_dead(Job* job, std::string reason);
  // Where a job that dies now goes instead of its queue's dead letters: the
  // queue's dead_letter_queue, when it names another queue that exists and
  // the job has not moved to one before (so no loop of queues can pass a
  // job around forever); nullptr otherwise.
  Queue* dead_letter_target(const Job& job) const;
  // Moves an unlinked job that died to `target`, ready, as a new arrival
  // there: attempts 0, the reason and its old queue kept, the rest of what
  // belonged to the old queue (its group, its TTL, its own ATTEMPTS) left.
  void forward_dead(Job* job, Queue* target, std::string reason);
  // Puts an unlinked job in `queue`, ready, as a new arrival there: attempts
  // 0, a delivery id it never had, recorded whole (a move to or from a
  // dead_letter_queue).
  void start_over_in(Job* job, Queue* queue);
  // Remembers a dedup key until expires_ms, for job_id (an old entry, past
  // its window, is forgotten first): the queue's map, its expiry copy,
  // dedup_key_bytes_, and the observer's record, unless `in_job_record`:
  // then the job's own record, saved next, carries the key (a put, and
  // replay of one). ENQUEUE's and replay's.
  void remember_key(Queue* queue, std::string_view key, uint64_t job_id, int64_t expires_ms,
                    bool in_job_record = false);
  // A key about to leave queue->dedup (its window over, its queue dropped):
  // told to the journal, and its bytes no longer counted.
  void forget_key(Queue& queue, const std::string& key, DedupEntry& entry);
  // Files an unlinked job in dead letters (make_dead adds the rest; replay
  // uses it as the log recorded the death).
  void put_dead(Job* job, std::string_view reason, int64_t died_at_ms);
  // Takes a job out of whatever structure its state puts it in, and out of
  // its group.
  void unlink(Job* job);
  // unlink()'s part outside the state's structure: the state's count, the
  // TTL heap, the group.
  void unlink_rest(Job* job);
  // The job's message group, or nullptr when it has none.
  const std::string* group_name(const Job& job) const {
    const JobExtras* extras = jobs_.extras(job);
    return extras != nullptr && !extras->group.empty() ? &extras->group : nullptr;
  }
  // Puts a job that was just made ready, delayed or leased in its group;
  // unlink() takes it out (and whoever unlinks then calls regroup()).
  void join_group(Job* job, const std::string& group);
  void leave_group(Job* job, const std::string& group);
  // After a group changed: its first job goes in the ready set if it is
  // ready and no job of the group is leased, and every other ready job of
  // the group is held. A group left without jobs is forgotten.
  void regroup(Queue* queue, const std::string& group);
  // Removes a job for good; `logged_in_bulk`: a PURGE or DROP record covers it.
  void destroy(Job* job, bool logged_in_bulk = false);
  // Removes the queue's ready, held and delayed jobs (PURGE), logged in bulk.
  void destroy_waiting(Queue* queue);
  // A job PURGE or DROP removed and not freed yet (disposal.h).
  static bool being_disposed(const Job& job) {
    if (job.queue->dropped) return true;
    const bool waiting = job.state == JobState::kReady || job.state == JobState::kHeld ||
                         job.state == JobState::kDelayed;
    return waiting && job.generation != job.queue->generation;
  }
  // jobs_.find(), but nullptr for a job being disposed of.
  Job* live_job(uint64_t id) const {
    Job* job = jobs_.find(id);
    return job != nullptr && !being_disposed(*job) ? job : nullptr;
  }
  // PURGE: takes the queue's waiting sets aside whole, to be freed in steps.
  void dispose_waiting(Queue* queue);
  // DROP and its replay: everything but the queue's jobs at once; them, and
  // the queue, in steps when `in_steps`, else at once.
  void drop_queue(Queue* queue, bool in_steps);
  // Frees up to about `max` of the disposal's keys, group members and jobs;
  // returns how many.
  size_t dispose_from(Disposal& disposal, size_t max);
  // Forgets and frees up to `max` of a dropped queue's dedup keys; returns how many.
  size_t forget_dropped_keys(Queue& dropped, size_t max);
  // destroy(), logged in bulk, for a job already out of its state's structure
  // and whose removal moves no other job (it has no group to settle).
  void destroy_taken(Job* job);
  // After a lease ends without ACK: back to ready, delayed by backoff (or
  // `delay_ms`), or dead when out of attempts.
  // `ended_at_ms`: when the lease ended (a ready job waits from then; 0: now).
  Requeue give_back(Job* job, std::optional<int64_t> delay_ms, const char* why,
                    int64_t ended_at_ms = 0);
  int64_t backoff_ms(const Queue& queue, uint32_t attempts);
  void expire_ttl(Job* job);
  // " after 3 attempts": how a job's dead reason counts its deliveries.
  static std::string after_attempts(uint32_t attempts);
  // Pause state changes, logged, with waiting workers told.
  void apply_pause(Queue* queue, bool paused, int64_t resume_at_ms);
  // A dead job back to ready with its attempts reset (KICK).
  void revive(Job* job);
  // A job of a dead_letter_queue back to `origin`, the queue it died in,
  // ready, as if it had never died (REDRIVE).
  void send_back(Job* job, Queue* origin);
  // The last origin queue REDRIVE looked up by name.
  struct OriginCache {
    Queue* queue = nullptr;
  };
  // Where REDRIVE would send `job`, a job of `queue`: the queue it died in,
  // when it came to `queue` as its dead_letter_queue, is ready, delayed or
  // dead here, and that queue exists; else nullptr.
  Queue* redrive_target(const Job& job, const Queue* queue, OriginCache& origins) const;
  // Deletes the queue's oldest dead job (dead_retention, dead_max).
  void discard_oldest_dead(Queue* queue);
  // Deletes dead jobs past dead_retention or beyond dead_max, at most `max`;
  // returns how many.
  size_t discard_old_dead(Queue* queue, int64_t now, size_t max);
  // Reports the queue to take_ready_signals() (once, if it is the last one
  // reported already).
  void signal_ready(Queue* queue) {
    if (ready_signals_.empty() || ready_signals_.back() != queue) ready_signals_.push_back(queue);
  }
  // How many jobs the queue may deliver at `now` (kClockUnread: read the
  // clock if the rate limit needs it), by max_leased and the rate limit
  // (SIZE_MAX when neither applies); pauses and ready jobs aside.
  size_t delivery_room(Queue& queue, int64_t now);
  struct Leased {
    size_t jobs = 0;
    uint64_t bytes = 0;  // their payloads
  };
  // Leases up to `max` of the queue's ready jobs, as its limits allow,
  // stopping before the job that would take the payloads past `max_bytes`.
  Leased lease_from(Queue& queue, size_t max, std::vector<const Job*>* out, uint64_t max_bytes);
  // Adds what the rate limit earned since the last look.
  void refill_rate(Queue& queue, int64_t now);
  // A full bucket: at creation, at a restart, when the rate settings change.
  void fill_rate(Queue& queue, int64_t now);
  // When the rate limit next allows a delivery; INT64_MAX when it does now
  // or there is none. Always later than `now`.
  int64_t next_rate_token_ms(Queue& queue, int64_t now);
  // Puts a job for each of the queue's schedules that is due by `now`, at
  // most `max`; returns how many fired (a firing the queue's limits refuse
  // counts, and is skipped).
  size_t fire_schedules(Queue* queue, int64_t now, size_t max);
  // A job put under `key`, kept until `key_expires_ms`, may be a schedule's
  // firing (engine_restore.cc): at replay, and live at a PUT, so the two agree.
  // `put_at_ms`: when it was put ready (its ready time: a late firing stood
  // for every time up to then); INT64_MIN when not known (a delayed job).
  void restore_firing(Queue* queue, std::string_view key, int64_t key_expires_ms,
                      int64_t put_at_ms);
  // After the queue's schedules changed: Queue::schedule_at and (unless
  // `logged` is false) the log.
  void schedules_changed(Queue* queue, bool logged = true);
  // Counts the queue's schedule payloads again, into the server's total.
  void count_schedule_payloads(Queue* queue);
  // Forgets keys whose window ended, at most `max` entries; returns how many.
  size_t forget_old_keys(Queue* queue, int64_t now, size_t max);
  // Puts the queue in the timer heap at its earliest deadline. `now` is the
  // time the rate limit's next delivery is counted from: expire_due passes
  // the time it sweeps at, so a wall clock set back meanwhile cannot give a
  // deadline it has passed already (it would visit the queue again and
  // again); the others read the clock, and only for a rate-limited queue.
  void reschedule(Queue* queue, int64_t now = kClockUnread);
  // The earliest deadline of a timed PAUSE, dead-letter retention and the
  // rate limit (for workers waiting on it), or INT64_MAX.
  int64_t limit_deadline(Queue* queue, int64_t now);
  // After a queue's settings or pause changed: keeps Queue::limit_timers.
  static void settings_changed(Queue* queue) {
    const QueueSettings& s = queue->settings;
    queue->limit_timers = queue->paused || s.rate_limit > 0 || s.dead_max > 0 ||
                          s.dead_retention_ms > 0 || !queue->schedules.empty();
  }
  static constexpr int64_t kClockUnread = INT64_MIN;

  const Clock& clock_;
  EngineLimits limits_;
  std::string intake_closed_;  // why new jobs are refused; empty: they are not
  QueueSettings defaults_;
  QueueMap queues_;
  // The queue find_queue found last: producers and workers name the same
  // queue request after request, and a string compare is cheaper than the
  // map's walk. Checked by name, so a rename needs nothing; cleared when
  // its queue is freed (restore_drop_queue).
  mutable Queue* last_found_ = nullptr;
  std::unordered_map<uint32_t, Queue*> queues_by_number_;
  JobTable jobs_;
  IntrusiveHeap<Queue, QueueTimerOrder, QueueTimerSlot> timers_;
  ChangeObserver* observer_ = nullptr;
  std::vector<Queue*> ready_signals_;
  std::vector<Queue*> dequeue_order_;  // dequeue()'s scratch, kept for its capacity
  std::vector<const Schedule*> fired_schedules_;  // fire_schedules()'s, likewise
  EngineCounters counters_;
  size_t state_counts_[5] = {0, 0, 0, 0, 0};
  uint64_t payload_bytes_ = 0;
  std::deque<std::unique_ptr<Disposal>> disposals_;  // oldest first
  size_t jobs_disposing_ = 0;                        // the jobs they hold
  uint64_t schedule_payload_bytes_ = 0;
  uint64_t dedup_key_bytes_ = 0;
  uint64_t next_job_id_ = 1;
  uint32_t next_queue_number_ = 1;
  uint64_t random_state_;  // xorshift64 for backoff jitter; seeded, so tests repeat
  int64_t clock_seen_ms_;  // follow_clock_set_back()'s last reading (at first, the engine's start)
};

}  // namespace tq::engine
