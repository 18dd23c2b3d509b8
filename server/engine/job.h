// A job: one unit of work with its payload, and the table that owns every job
// by id.
//
// A job is one block: the fixed fields, then the payload bytes, from the job
// table's slab allocator (no malloc header, 8-byte rounding). Fields that
// most jobs never set (a TTL, a dedup key, a dead-letter reason) live in
// JobExtras, kept by the table beside the job for only the jobs that need
// them: at a million pending jobs every byte of Job costs a megabyte.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "server/engine/intrusive_heap.h"
#include "server/engine/slab_allocator.h"

namespace tq::engine {

struct Queue;

enum class JobState : uint8_t {
  kReady,    // waiting in its queue's ready heap, by priority then id
  kDelayed,  // waiting for deadline_ms before it becomes ready
  kLeased,   // delivered to a worker; back to ready if not acked by deadline_ms
  kDead,     // out of attempts (or failed): in its queue's dead-letter set
};

const char* job_state_name(JobState state);

struct Job;

struct JobExtras {
  Job* job = nullptr;          // the job these belong to
  int64_t expires_at_ms = 0;   // TTL: not delivered by then, it expires; 0 = never
  uint32_t ttl_slot = kNoSlot; // position in its queue's TTL heap
  uint32_t max_attempts = 0;   // overrides the queue's when non-zero
  std::string dedup_key;       // the key it was enqueued with; empty: none
  std::string reason;          // why it is dead (kDead only)
};

struct Job {
  uint64_t id;                // unique, never reused; also its FIFO position
  Job* next_in_table;         // chain in JobTable's bucket
  Queue* queue;               // the queue it belongs to
  int64_t deadline_ms;        // kDelayed: ready at; kLeased: lease ends; kDead: died at
  uint32_t slot;              // position in the heap its state puts it in
  uint32_t attempts;          // deliveries so far
  int32_t priority;           // higher is delivered first
  uint32_t payload_size;      // bytes following this struct
  uint32_t log_segment;       // the log segment holding its latest full record
  JobState state;
  bool one_line;              // the payload holds no '\r' or '\n' (set once, at creation)
  bool has_extras;            // the table holds JobExtras for it

  std::string_view payload() const {
    return {reinterpret_cast<const char*>(this + 1), payload_size};
  }
};

// Owns every live job, and its memory, and finds it by id in O(1): a
// chained hash table whose chains run through the jobs themselves (8 bytes a
// job, plus the buckets).
//
// Growing is incremental (as Redis's dict): when the table doubles, the old
// bucket array is kept and each later emplace or erase moves a few of its
// chains over, so no single request pays for moving a million jobs (that
// was a 10 ms stall for everything in flight). Meanwhile a lookup tries the
// new array, then the old one.
class JobTable {
 public:
  JobTable() : JobTable(false) {}
  explicit JobTable(bool huge_pages);
  ~JobTable();
  JobTable(const JobTable&) = delete;
  JobTable& operator=(const JobTable&) = delete;

  Job* find(uint64_t id) const;
  // Makes room for n jobs at once (replay knows roughly how many are coming).
  void reserve(size_t n);
  // Adds a job with the payload copied in, every other field zeroed. The id
  // must not be present.
  Job* emplace(uint64_t id, Queue* queue, std::string_view payload);
  // Removes the job and frees it. The job must be present.
  void erase(Job* job);
  size_t size() const { return size_; }
  SlabAllocator::Stats memory() const { return memory_.stats(); }
  // See SlabAllocator::prefault_ahead.
  void prefault_memory() { memory_.prefault_ahead(); }
  // Whether an old bucket array is still being moved from (for tests).
  bool growing() const { return draining_.heads != nullptr; }

  // The job's rarely-used fields, or nullptr when it has none.
  JobExtras* extras(const Job& job) {
    return job.has_extras ? &extras_.find(job.id)->second : nullptr;
  }
  const JobExtras* extras(const Job& job) const {
    return job.has_extras ? &extras_.find(job.id)->second : nullptr;
  }
  JobExtras& ensure_extras(Job& job);

 private:
  // A power-of-two array of chain heads, from calloc: the kernel's zero
  // pages, not a memset of the whole array on the loop thread.
  struct Buckets {
    Job** heads = nullptr;
    size_t count = 0;
    unsigned shift = 0;  // log2(count)
    size_t index(uint64_t id) const;
  };
  static Buckets make_buckets(size_t count);
  static void free_buckets(Buckets& b);
  // Makes table_ a new array of `count` buckets and the old one draining_.
  void start_growing(size_t count);
  // Moves up to `n` of draining_'s chains into table_; frees it when empty.
  void move_chains(size_t n);
  void finish_growing() { move_chains(SIZE_MAX); }
  void free_job(Job* job);

  SlabAllocator memory_;       // declared first: outlives the jobs
  std::unordered_map<uint64_t, JobExtras> extras_;  // by job id; nodes never move
  Buckets table_;                                   // where jobs are added
  Buckets draining_;                                // the array before the last doubling, or none
  size_t drained_ = 0;                              // draining_'s chains [0, drained_) have moved
  size_t size_ = 0;
};

}  // namespace tq::engine
