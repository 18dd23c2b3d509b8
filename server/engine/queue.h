// A named queue: its settings, its jobs by state, and its counters.
//
// Each state has its own ordered structure, so every operation on a queue is
// O(log n) in the queue's size: ready jobs by (priority desc, id asc), and
// delayed, leased and dead jobs by deadline. A job is in exactly one of them,
// the one its state names.
#pragma once

#include <cstdint>
#include <string>

#include "server/engine/intrusive_heap.h"
#include "server/engine/job.h"

namespace tq::engine {

struct QueueSettings {
  int64_t ack_timeout_ms = 30'000;  // how long a lease lasts before the job goes back
};

struct QueueCounters {
  uint64_t enqueued = 0;   // jobs accepted
  uint64_t dequeued = 0;   // deliveries (a job delivered twice counts twice)
  uint64_t acked = 0;      // jobs finished by ACK
  uint64_t timed_out = 0;  // leases that expired
};

struct JobSlot {
  static uint32_t& get(Job* job) { return job->slot; }
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

using ReadyHeap = IntrusiveHeap<Job, ReadyOrder, JobSlot>;
using DeadlineHeap = IntrusiveHeap<Job, DeadlineOrder, JobSlot>;

struct Queue {
  uint32_t number = 0;        // assigned at creation, never reused; names it in the log
  std::string name;
  QueueSettings settings;
  ReadyHeap ready;            // kReady jobs
  DeadlineHeap leased;        // kLeased jobs, by lease end
  QueueCounters counters;
  uint32_t timer_slot = kNoSlot;  // position in the engine's heap of queue timers
  int64_t timer_at = INT64_MAX;   // earliest deadline of any of its timed jobs
  uint32_t log_segment = 0;       // the log segment holding its latest full record
  bool placeholder = false;       // replay met its jobs before its QUEUE record

  size_t job_count() const { return ready.size() + leased.size(); }
};

}  // namespace tq::engine
