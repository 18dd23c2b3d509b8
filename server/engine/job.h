// A job: one unit of work with its payload, and the table that owns every job
// by id.
//
// A job is one block: the fixed fields, then the payload bytes, from the job
// table's slab allocator (no malloc header, 8-byte rounding). Fields that
// most jobs never set (a TTL, a dedup key, a dead-letter reason) live in
// JobExtras, kept by the table beside the job for only the jobs that need
// them: at a million pending jobs every byte of Job costs a megabyte.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "server/engine/compact_string.h"
#include "server/engine/intrusive_heap.h"
#include "server/engine/slab_allocator.h"

namespace tq::engine {

struct Queue;

enum class JobState : uint8_t {
  kReady,    // waiting in its queue's ready heap, by priority then id
  kDelayed,  // waiting for deadline_ms before it becomes ready
  kLeased,   // delivered to a worker; back to ready if not acked by deadline_ms
  kDead,     // out of attempts (or failed): in its queue's dead-letter set
  kHeld,     // ready, but its group's earlier job is not finished: in its queue's
             // held heap, by id (the log calls it ready: held is worked out again)
};

const char* job_state_name(JobState state);

struct Job;

struct JobExtras {
  Job* job = nullptr;          // the job these belong to
  int64_t expires_at_ms = 0;   // TTL: not delivered by then, it expires; 0 = never
  uint32_t ttl_slot = kNoSlot; // position in its queue's TTL heap
  uint32_t max_attempts = 0;   // overrides the queue's when non-zero
  CompactString dedup_key;     // the key it was enqueued with; empty: none
  CompactString reason;        // why it died (kDead; or kept after a move to a dead_letter_queue)
  CompactString origin;        // the queue it died in before it moved to a dead_letter_queue
  std::string group;           // its message group; empty: none (the groups' map takes it as is)
};

struct Job {
  uint64_t id;                // unique, never reused; also its FIFO position
  Job* next_in_table;         // chain in JobTable's bucket
  Queue* queue;               // the queue it belongs to
  int64_t deadline_ms;        // kDelayed: ready at; kLeased: lease ends; kDead: died at;
                              // kReady, kHeld: ready since (its wait counts from then)
  uint32_t slot;              // position in the heap its state puts it in
  uint32_t attempts;          // deliveries so far
  int32_t priority;           // higher is delivered first
  uint32_t payload_size;      // bytes following this struct
  uint32_t log_segment;       // the log segment holding its latest full record
  JobState state;
  uint8_t kicks;  // KICKs so far, mod 256: KICK resets attempts, so
                  // attempts and kicks together name a delivery
  // Its queue's Queue::generation when it last began to wait (ready, held
  // or delayed). PURGE starts a new generation, and a waiting job of an
  // older one is purged, freed a step at a time (Engine's disposals).
  uint8_t generation;
  bool one_line : 1;    // the payload holds no '\r' or '\n' (set once, at creation)
  bool has_extras : 1;  // the table holds JobExtras for it

  // Which delivery of the job its current (or last) lease is: unlike attempts
  // alone, never the same for two deliveries across a KICK.
  uint64_t delivery() const { return (uint64_t{kicks} << 32) | attempts; }

  std::string_view payload() const {
    return {reinterpret_cast<const char*>(this + 1), payload_size};
  }
};

// Jobs by id: the order they were enqueued in.
struct IdOrder {
  bool operator()(const Job* a, const Job* b) const { return a->id < b->id; }
};

// Appends the id of each of `jobs` to `out`. Jobs lie all over their slabs,
// so each read is a cache miss: the next few are fetched ahead, which makes
// a million of them (REDRIVE's choice) several times quicker.
void append_job_ids(const std::vector<Job*>& jobs, std::vector<uint64_t>* out);

// Owns every live job, and its memory, and finds it by id in O(1): a
// chained hash table whose chains run through the jobs themselves (8 bytes a
// job, plus the buckets).
//
// Growing is incremental (as Redis's dict): when the table doubles, the old
// bucket array is kept and each later emplace or erase moves a few of its
// chains over, so no single request pays for moving a million jobs (that
// was a 10 ms stall for everything in flight). Meanwhile a lookup tries the
// new array, then the old one.
//
// With a prefaulter (prefault_memory()), the next array is mapped when the
// table is full and faulted in on the helper thread; the table doubles once
// that is done, its load meanwhile going a little over 1. The new array's
// first touches were otherwise the loop's: 8 MiB to zero at half a million
// jobs, a 5-12 ms stall on a VM.
//
// All of it in 4 KiB pages by default (MADV_NOHUGEPAGE, so also where
// transparent huge pages are "always"): a huge page's first touch zeroes
// 2 MiB at once, and whichever thread does it holds the address-space lock
// the loop's own mmap and page faults need. Measured at a million enqueues
// a second (bench/RESULTS.md): huge job memory took p99.9 from 3-5 ms to
// 9-10 ms when the loop's heap and bucket arrays were huge too; huge bucket
// arrays gave 10-18 ms iterations against 3-4 ms without. Job memory alone
// may be huge (server.huge_pages, use_huge_pages): where a 4 KiB fault costs
// about 10 us, as on the VM of bench/RESULTS.md's notes of 2026-12-07, that
// produced a third more jobs a second into an empty server (the median of
// nine rounds), for 1-2 ms more at p99.9.
class JobTable {
 public:
  JobTable();
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
  // Job memory and bucket arrays are faulted in ahead, on a helper thread
  // (SlabAllocator::prefault_ahead).
  void prefault_memory() { memory_.prefault_ahead(); }
  // Jobs (not the bucket arrays) in huge pages (SlabAllocator::use_huge_pages).
  void use_huge_pages(bool on) { memory_.use_huge_pages(on); }
  // Job memory left empty and unused a whole period goes back to the
  // kernel, a slice at a time (SlabAllocator::mark_idle, release_marked).
  size_t mark_idle_memory() { return memory_.mark_idle(); }
  size_t release_marked_memory(size_t max_pages) { return memory_.release_marked(max_pages); }
  // When the table holds no job, gives its bucket array's pages back to the
  // kernel (they are all empty buckets, and read back as such: zero pages,
  // faulted in again as jobs come); returns the bytes. The array keeps its
  // size. Not while it grows. A backlog of 8 million kept 64 MiB otherwise.
  size_t release_empty_buckets();
  // For tests: whether an old bucket array is still being moved from; the
  // size of the current array, of the next one being made ready (0: none),
  // and whether that one is in.
  bool growing() const { return draining_.heads != nullptr; }
  size_t buckets() const { return table_.count; }
  size_t next_buckets() const { return next_.count; }
  bool next_ready() const { return next_ready_ != nullptr && next_ready_->load(); }

  // The job's rarely-used fields, or nullptr when it has none.
  JobExtras* extras(const Job& job) {
    return job.has_extras ? &extras_.find(job.id)->second : nullptr;
  }
  const JobExtras* extras(const Job& job) const {
    return job.has_extras ? &extras_.find(job.id)->second : nullptr;
  }
  JobExtras& ensure_extras(Job& job);

 private:
  // A power-of-two array of chain heads, mapped from the kernel: its zero
  // pages, not a memset of the whole array on the loop thread. In huge
  // pages when glibc's malloc uses them (as calloc did): lookups land all
  // over it, and it is faulted in ahead, off the loop.
  struct Buckets {
    Job** heads = nullptr;
    size_t count = 0;
    unsigned shift = 0;  // log2(count)
    size_t index(uint64_t id) const;
    Job* find(uint64_t id) const;
    void push(Job* job);  // onto the front of its chain
  };
  Buckets make_buckets(size_t count) const;
  static void free_buckets(Buckets& b);
  // Before an emplace: asks for the next array, and doubles when it is time.
  void grow_if_due();
  // Makes table_ a new array of `count` buckets (next_ if it has that many)
  // and the old one draining_.
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
  Buckets next_;                                    // the next table_, being faulted in, or none
  std::shared_ptr<std::atomic<bool>> next_ready_;   // set by the prefaulter when next_ is in
  size_t size_ = 0;
};

}  // namespace tq::engine
