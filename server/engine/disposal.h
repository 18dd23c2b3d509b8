// Jobs that PURGE or DROP removed and that are still to be freed.
//
// Freeing a job costs a cache miss or two (its chain in the id table, the
// slab's free list): a million took every client's 54-74 ms when PURGE and
// DROP freed them in one go (bench/stall.sh). Instead, those commands take
// the jobs out of every view at once, in O(1), and the engine frees them a
// few thousand at a time between other work (Engine::dispose_some).
//
// Meanwhile the jobs are still in the job table, and nothing may find them
// there. Engine::being_disposed() tells them apart without PURGE or DROP
// touching each:
//   - DROP marks their queue dropped, and the disposal keeps the queue
//     alive until the last of its jobs is freed;
//   - PURGE starts a new generation in the queue (Queue::generation): a
//     waiting job (ready, held, delayed) of an older one was purged. Leased
//     and dead jobs stay, and a job that begins to wait again (a NACK, a
//     lease that ran out) joins the new generation.
// Message groups: the jobs' groups are forgotten with them, at once, and
// a PURGE's leased jobs start the queue's groups again, as each would
// joining a group with no other member. A DROP's dedup keys are forgotten
// with the queue, and freed in steps with it too (the groups and the keys
// before the jobs, so that STATS jobs_freeing is not 0 until the end).
// A generation is a byte: before a queue's comes round to one that a
// disposal still holds jobs of, the pending disposals are finished at once
// (256 PURGEs of a queue within the time one takes to free).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "server/engine/queue.h"
#include "server/engine/ready_set.h"

namespace tq::engine {

struct Disposal {
  Disposal(const JobTable* table, Queue* of) : queue(of), ready(table, of) {}

  Queue* queue;                    // whose jobs these are
  std::unique_ptr<Queue> dropped;  // DROP: the queue, its jobs still in its sets; freed last
  uint8_t generation = 0;          // PURGE: the generation whose waiting jobs these are
  // PURGE: the queue's waiting sets, taken whole, and their TTLs (only
  // waiting jobs have one in the heap). The TTL heap is never read again:
  // it goes with the disposal, its entries unread.
  ReadySet ready;
  DeadlineHeap delayed;
  HeldHeap held;
  ExpiryHeap ttl;
  // The queue's message groups as they were: their member sets hold an id
  // of every job in a group, a node each, freed in steps before the jobs.
  // (PURGE gives the queue new ones for its leased jobs.)
  std::unordered_map<std::string, Group> groups;
  size_t left = 0;  // jobs still to free

  bool done() const {
    return left == 0 && groups.empty() && (dropped == nullptr || (dropped->dedup.empty()));
  }
};

}  // namespace tq::engine
