// A named queue: its settings, its jobs by state, its dedup keys and its
// counters.
//
// Each state has its own ordered structure, so every operation on a queue is
// O(log n) in the queue's size: ready jobs by (priority desc, id asc);
// delayed, leased and dead jobs by deadline; jobs with a TTL also by expiry.
// A job is in exactly one state structure, the one its state names.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "server/engine/cron.h"
#include "server/engine/intrusive_heap.h"
#include "server/engine/job.h"
#include "server/engine/ready_set.h"
#include "server/engine/wait_histogram.h"

namespace tq::engine {

// The most max_leased, rate_limit and dead_max take, and the longest of the durations
// (CONFIG refuses more, and so does replay: a window of 2^63 ms would
// overflow the time of the next delivery).
constexpr uint64_t kMaxDeliveryLimit = 1'000'000'000;
constexpr int64_t kMaxSettingDurationMs = 30LL * 86'400'000;  // 30 days
// The most deliveries a job's own ATTEMPTS takes.
constexpr uint32_t kMaxJobAttempts = 1'000'000;

struct QueueSettings {
  int64_t ack_timeout_ms = 30'000;     // how long a lease lasts before the job goes back
  uint32_t max_attempts = 0;           // deliveries before dead letters; 0: no limit
  int64_t backoff_base_ms = 0;         // wait before retry k: base * factor^(k-1), capped
  double backoff_factor = 2.0;
  int64_t backoff_max_ms = 3'600'000;
  double backoff_jitter = 0.0;         // +- this fraction of the wait, at random
  int64_t dedup_window_ms = 300'000;   // how long a dedup key is remembered
  uint64_t max_size = 0;               // ready + delayed + leased jobs at most; 0: no limit
  int32_t priority = 0;                // a multi-queue DEQUEUE serves higher first
  int64_t delay_ms = 0;                // a job put without DELAY or AT is ready this long after
  int64_t ttl_ms = 0;                  // a job put without a TTL gets this one, from when it is due
  bool ttl_dead_letter = false;        // a job whose TTL ran out goes to dead letters, not away
  uint64_t max_leased = 0;             // jobs leased at once at most; 0: no limit
  uint64_t rate_limit = 0;             // deliveries per rate_window at most; 0: no limit
  int64_t rate_window_ms = 1'000;
  int64_t dead_retention_ms = 0;  // dead jobs are deleted this long after they died; 0: kept
  uint64_t dead_max = 0;          // dead jobs kept at most, the oldest deleted; 0: no limit
  // A job that dies here moves to this queue, ready, instead of staying in
  // this one's dead letters (SQS's redrive policy); empty: none.
  std::string dead_letter_queue = {};

  bool limits_delivery() const { return max_leased != 0 || rate_limit != 0; }
  bool operator==(const QueueSettings&) const = default;
};

struct QueueCounters {
  uint64_t enqueued = 0;    // jobs accepted
  uint64_t duplicates = 0;  // enqueues answered with an earlier job's id (dedup key)
  uint64_t dequeued = 0;    // deliveries (a job delivered twice counts twice)
  uint64_t acked = 0;       // jobs finished by ACK
  uint64_t timed_out = 0;   // leases that expired
  uint64_t nacked = 0;      // deliveries given back by NACK
  uint64_t dead = 0;        // jobs moved to dead letters (here, or to dead_letter_queue)
  uint64_t dead_forwarded = 0;  // of those, jobs moved to dead_letter_queue
  // Jobs that died in a queue whose dead_letter_queue is this one, and moved
  // here: enqueued counts none of them. No server-wide twin: it would always
  // equal EngineCounters::dead_forwarded.
  uint64_t dead_received = 0;
  uint64_t redriven = 0;  // jobs REDRIVE moved from here back to the queues they died in
  // Jobs REDRIVE brought back here, where they had died, from the
  // dead_letter_queue they had moved to: enqueued counts none of them.
  uint64_t redriven_in = 0;
  uint64_t expired = 0;     // jobs whose TTL ran out before delivery
  uint64_t deleted = 0;     // jobs removed by DELETE or PURGE
  uint64_t kicked = 0;      // KICKed: dead jobs given another chance, delayed ones made ready
  uint64_t dead_discarded = 0;  // dead jobs deleted by dead_retention or dead_max
  uint64_t scheduled = 0;       // jobs put by schedules (counted in enqueued too)
  uint64_t schedule_refused = 0;  // schedule firings refused (max_size, the server's limits)
  // ENQUEUEs and PUTs refused FULL (max_size, the server's limits, a disk
  // nearly full): back-pressure the producer was told of. ERROR replies of
  // every kind (EMPTY of polling workers above all) hide it in errors_total.
  uint64_t refused = 0;
};

// The most schedules a queue holds, and the most payload bytes across them
// (SCHEDULE refuses more): the queue's QUEUE record carries them all, and is
// written again at every SCHEDULE, CANCEL and CONFIG of the queue (a firing
// writes only the new times: SCHEDULE_FIRED).
constexpr size_t kMaxSchedulesPerQueue = 1000;
constexpr size_t kMaxSchedulePayloadBytes = 1 << 20;

// A schedule (SCHEDULE): a job put into the queue on a timetable, as cron,
// Celery beat or BullMQ's repeatable jobs do. It is part of the queue's
// state, logged in its QUEUE record (and each firing's new time in a
// SCHEDULE_FIRED record), so it survives restarts; a firing that
// came due while tqd was down happens once, at the first sweep.
struct Schedule {
  std::string name;
  int64_t every_ms = 0;          // EVERY: at each multiple of it, in Unix time; 0: CRON
  std::optional<CronSpec> cron;  // CRON, in UTC
  std::string payload;
  int32_t priority = 0;  // the options each job is put with (PUT's)
  int64_t ttl_ms = 0;
  uint32_t max_attempts = 0;
  std::string group;
  int64_t next_ms = INT64_MAX;  // when it fires next
  uint64_t fired = 0;           // jobs it has put

  // The first time after `after_ms` it fires at; INT64_MAX: never.
  int64_t next_after(int64_t after_ms) const {
    if (every_ms > 0) return (after_ms / every_ms + 1) * every_ms;
    return cron ? cron->next_after(after_ms) : INT64_MAX;
  }
};

// The dedup key of one firing's job: "schedule:<name>@<due ms>". A name too
// long for a key is cut and followed by its FNV-1a hash, the same in every
// run. The job's record carries it, and so tells replay which firing the job
// was (Engine::restore_job); live, it makes a firing of a time already fired
// a duplicate.
std::string firing_key(std::string_view name, int64_t due_ms);

struct JobSlot {
  static uint32_t& get(Job* job) { return job->slot; }
};
struct TtlSlot {
  static uint32_t& get(JobExtras* extras) { return extras->ttl_slot; }
};

struct ReadyOrder {
  bool operator()(const Job* a, const Job* b) const {
    if (a->priority != b->priority) return a->priority > b->priority;
    return a->id < b->id;  // ids grow: FIFO among equal priorities
  }
};

struct DeadlineOrder {
  bool operator()(const Job* a, const Job* b) const {
    if (a->deadline_ms != b->deadline_ms) return a->deadline_ms < b->deadline_ms;
    return a->id < b->id;
  }
};

struct ExpiryOrder {
  bool operator()(const JobExtras* a, const JobExtras* b) const {
    if (a->expires_at_ms != b->expires_at_ms) return a->expires_at_ms < b->expires_at_ms;
    return a->job->id < b->job->id;
  }
};

using DeadlineHeap = IntrusiveHeap<Job, DeadlineOrder, JobSlot>;
using HeldHeap = IntrusiveHeap<Job, IdOrder, JobSlot>;
// Holds the jobs' extras (where the expiry is), not the jobs.
using ExpiryHeap = IntrusiveHeap<JobExtras, ExpiryOrder, TtlSlot>;

// A dedup key remembered for the queue's dedup window: a second enqueue with
// it returns job_id and stores nothing. The window is fixed when the key is
// added (a new dedup_window applies to keys added after the change), so the
// log and the live server always agree on when a key is forgotten.
struct DedupEntry {
  uint64_t job_id = 0;
  int64_t expires_ms = 0;    // forgotten from this time on
  uint32_t log_segment = 0;  // the log segment holding its record
  uint32_t heap_slot = kNoSlot;  // its place in the queue's DedupExpiries
};

// Looked up by string_view too: a PUT's key and a job's (CompactString) are
// found without a copy of them made first.
struct KeyHash {
  using is_transparent = void;
  size_t operator()(std::string_view key) const noexcept {
    return std::hash<std::string_view>{}(key);
  }
};
using DedupMap = std::unordered_map<std::string, DedupEntry, KeyHash, std::equal_to<>>;

// An entry of a queue's dedup map: its key and what it says. The map's nodes
// never move, so the heap below points at them.
using DedupNode = std::pair<const std::string, DedupEntry>;

struct DedupSlot {
  static uint32_t& get(DedupNode* node) { return node->second.heap_slot; }
};
struct DedupExpiryOrder {
  bool operator()(const DedupNode* a, const DedupNode* b) const {
    return a->second.expires_ms < b->second.expires_ms;
  }
};

// A queue's dedup keys by the time each is forgotten, the soonest on top: not
// the order they were added, since after dedup_window is lowered a key added
// later expires before one added earlier. One element a key, pointing at its
// map entry: a key added again moves in place. (It held a copy of each key
// with its expiry, and another copy each time the key came again: 90 of the
// 470 bytes a keyed job took, a million keys 4 s to replay.)
using DedupExpiries = IntrusiveHeap<DedupNode, DedupExpiryOrder, DedupSlot>;

// About the memory a remembered key takes: the key (in its map entry, and
// the entry's allocation when longer than 15 bytes), the node, its bucket and
// its heap element. limits.max_payload_total counts it for each entry of the
// map, or PUT ... KEY then DELETE, again and again, grew memory that no
// limit bounded (kept the whole window). The job's own copy goes with it.
inline uint64_t dedup_key_cost(std::string_view key) {
  return key.size() + 112;
}

// A message group (PUT ... GROUP g): the queue delivers its jobs one at a
// time, in the order they were enqueued. Only the group's first job, and
// only while no job of the group is leased, is in the ready set; its other
// ready jobs are held (JobState::kHeld). A job that dies leaves the group; a
// KICK brings it back at its old place.
struct Group {
  std::set<uint64_t> members;  // ids of its jobs that are not dead: the first goes next
  uint32_t leased = 0;         // members leased now
  Job* released = nullptr;     // the member in the ready set, or nullptr
  // The member delivered and not finished (leased, or given back to be
  // retried), or 0: it goes next whatever its place, so a job a KICK put
  // back before it waits until it is finished.
  uint64_t retrying = 0;
  bool empty() const { return members.empty() && leased == 0 && released == nullptr; }
};

struct Queue {
  explicit Queue(const JobTable* jobs) : ready(jobs, this) {}

  uint32_t number = 0;        // assigned at creation, never reused; names it in the log
  std::string name;
  QueueSettings settings;
  bool paused = false;        // no deliveries while paused
  int64_t resume_at_ms = 0;   // a timed PAUSE ends then; 0: a pause lasts until RESUME
  // Whether the queue may have a deadline from a timed PAUSE, dead-letter
  // retention or the rate limit: paused, or one of those set. The engine
  // keeps it (Engine::settings_changed) so reschedule() tests one byte.
  bool limit_timers = false;
  ReadySet ready;             // kReady jobs
  DeadlineHeap delayed;       // kDelayed jobs, by the time they become ready
  DeadlineHeap leased;        // kLeased jobs, by lease end
  DeadlineHeap dead;          // kDead jobs, by the time they died
  HeldHeap held;              // kHeld jobs, by id
  ExpiryHeap ttl;             // kReady and kDelayed jobs that have a TTL
  DedupMap dedup;             // key -> entry
  // The keys in the order they are forgotten.
  DedupExpiries dedup_order;
  std::unordered_map<std::string, Group> groups;  // groups with members, by name
  std::map<std::string, Schedule> schedules;      // by name
  int64_t schedule_at = INT64_MAX;                // the earliest next_ms of its schedules
  uint64_t schedule_payload_bytes = 0;            // of its schedules (count_schedule_payloads)
  QueueCounters counters;
  WaitHistogram waits;            // how long each delivered job had been ready
  uint32_t timer_slot = kNoSlot;  // position in the engine's heap of queue timers
  int64_t timer_at = INT64_MAX;   // earliest deadline of anything timed in it
  uint32_t log_segment = 0;       // the log segment holding its latest full record
  uint64_t log_bytes = 0;         // that record's size, as the journal counts it live
  bool placeholder = false;       // replay met its jobs before its QUEUE record
  // The generation its waiting jobs join (Job::generation): a PURGE starts
  // a new one, and leaves the jobs of the old one to be freed in steps.
  uint8_t generation = 0;
  // DROP took it out of the engine's maps: it lives on, with its jobs,
  // until they are freed in steps (Engine's disposals).
  bool dropped = false;
  // Schedules fired while the intake was closed, their new times in memory
  // only: the next firing logged writes the whole QUEUE record, not only
  // its own times (SCHEDULE_FIRED), or a restart would fire them again; so
  // do the intake's opening and a clean stop (save_unlogged_schedules).
  bool schedules_unlogged = false;
  uint32_t waiters = 0;           // connections blocked on it (the server keeps count)
  // The rate limit's token bucket: deliveries it allows now, as of
  // rate_checked_ms. It refills at rate_limit per rate_window up to
  // rate_limit. Not logged: a restart, or a change of either setting, fills
  // it.
  double rate_tokens = 0;
  int64_t rate_checked_ms = 0;

  // Jobs that count against max_size: everything not dead.
  size_t active_count() const {
    return ready.size() + held.size() + delayed.size() + leased.size();
  }
  size_t job_count() const { return active_count() + dead.size(); }
  // How long the jobs at the head of the ready set have waited, at `now_ms`:
  // the longest of them (ReadySet::head_ready_since), 0 when none is ready.
  // Held jobs wait for their group, not for a worker: not counted.
  int64_t head_wait_ms(int64_t now_ms) const {
    const int64_t since = ready.head_ready_since();
    return since == INT64_MAX ? 0 : std::max<int64_t>(0, now_ms - since);
  }
  // After its schedules changed: schedule_at is their earliest next_ms.
  void refresh_schedule_at() {
    schedule_at = INT64_MAX;
    for (const auto& [key, s] : schedules) schedule_at = std::min(schedule_at, s.next_ms);
  }
};

}  // namespace tq::engine
