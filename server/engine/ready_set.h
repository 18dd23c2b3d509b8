// A queue's ready jobs, in delivery order: higher priority first, then
// lower id (FIFO). Built for the common case: per priority, new jobs arrive
// with ever higher ids and leave from the front, so a lane is a plain FIFO of
// ids (O(1) in, O(1) out, no pointer chasing) and only jobs that come back to
// an earlier place (a lease that ran out, a NACK, a KICK) go into a small
// heap beside it. A binary heap of every ready job made each DEQUEUE sift
// log2(n) cache misses deep: a fifth of the server's time at 1.5M jobs.
//
// Invariants: a job is in at most one place: its lane's FIFO (job->slot ==
// kInFifo) or its lane's heap (job->slot is its index). Removing a job from
// the middle of a FIFO leaves its id behind, stale; stale ids are recognised
// (the job is gone, or its slot says it is elsewhere, or it has another
// priority now: replay can move a ready job to another lane's FIFO; or it is
// in another queue now, which only a damaged log can do) and
// dropped when they reach the front, or all at once when they outnumber the
// live ones.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>

#include "server/engine/intrusive_heap.h"
#include "server/engine/job.h"

namespace tq::engine {

class ReadySet {
 public:
  static constexpr uint32_t kInFifo = UINT32_MAX - 1;

  // `owner`: the queue whose ready jobs these are (an id left stale here
  // may be reused by a job of another queue only in a damaged log, but then
  // it must not count as live here).
  explicit ReadySet(const JobTable* table, const Queue* owner = nullptr)
      : table_(table), owner_(owner) {}
  ReadySet(const ReadySet&) = delete;
  ReadySet& operator=(const ReadySet&) = delete;

  void push(Job* job);
  void erase(Job* job);
  // The job that would be delivered next, or nullptr.
  Job* top();
  Job* pop() {
    Job* job = top();
    if (job != nullptr) erase(job);
    return job;
  }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // The earliest ready-since time (Job::deadline_ms) among the jobs at the
  // head of the set: the first of each priority's FIFO and of its heap of
  // returns, the jobs delivered next. INT64_MAX when empty. A job deeper in
  // a heap of returns is not looked at: it goes before the FIFO's head all
  // the same, so a head that is not moving still shows.
  int64_t head_ready_since() const;

  // Calls f for the first n jobs in delivery order, changing nothing.
  void first(size_t n, const std::function<void(Job*)>& f) const;
  // Calls f for every job, in no particular order.
  void for_each(const std::function<void(Job*)>& f) const;
  // Every job, in no particular order (a copy: for tests and bulk removal).
  std::vector<Job*> jobs() const;
  // Empties the set, handing each job (its slot cleared) to f, in no
  // particular order; f may free it. PURGE and DROP take a million at once:
  // popped one by one, each next job was looked up five times.
  void take_all(const std::function<void(Job*)>& f);
  // Exchanges the jobs with `other`'s, a set of the same queue's: PURGE
  // takes the whole set aside at once, to be freed in steps.
  void swap(ReadySet& other) noexcept;
  // Takes up to `max` jobs out (their slots cleared), the FIFOs' first, and
  // hands each to f, which may free it; returns how many. A FIFO id whose
  // job `mine` refuses is dropped as stale: in a set taken aside by PURGE,
  // an id left behind may name a job that has been made ready again since,
  // in the queue's new set.
  size_t take_some(size_t max, const std::function<bool(const Job*)>& mine,
                   const std::function<void(Job*)>& f);
  // Appends the ids in the lanes' FIFOs, stale ones too (those who use them
  // look each up), with no job touched: REDRIVE's choice of a million jobs.
  void append_fifo_ids(std::vector<uint64_t>* out) const;
  // Appends the ids of the jobs in the lanes' heaps of returns.
  void append_returned_ids(std::vector<uint64_t>* out) const;
  // Whether `job`, one of this set's, sits in its lane's FIFO.
  static bool in_fifo(const Job& job) { return job.slot == kInFifo; }
  // Positions 0 .. positions()-1 cover every job once (and stale ids, for
  // which at() gives nullptr), so a sweep can walk the set a piece at a time.
  // Positions shift as jobs come and go: a walk may miss or repeat one.
  size_t positions() const;
  Job* at(size_t position) const;

 private:
  struct Slot {
    static uint32_t& get(Job* job) { return job->slot; }
  };
  struct Lane {
    int32_t priority = 0;
    std::deque<uint64_t> fifo;  // ids, strictly increasing; some may be stale
    uint64_t last_id = 0;       // the highest id ever appended
    size_t live = 0;            // ids in fifo that are not stale
    IntrusiveHeap<Job, IdOrder, Slot> returns;  // jobs back at an earlier place
    bool empty() const { return live == 0 && returns.empty(); }
  };

  // The job behind an id in the lane's FIFO, or nullptr when the id is stale.
  Job* live_job(const Lane& lane, uint64_t id) const;
  // Drops stale ids at the front of the lane's FIFO; returns the job at its
  // front, or nullptr when it is empty.
  Job* trim(Lane& lane);
  // Drops every stale id when they outnumber the live ones.
  void compact(Lane& lane);

  const JobTable* table_;
  const Queue* owner_;
  std::map<int32_t, Lane, std::greater<>> lanes_;  // highest priority first
  size_t size_ = 0;
};

}  // namespace tq::engine
