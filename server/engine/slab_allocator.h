// Memory for jobs: many small blocks of a few sizes, each living from an
// ENQUEUE to its ACK.
//
// malloc puts an 8-byte header on every chunk and rounds chunks to 16 bytes:
// a 64-byte Job with a 100-byte payload takes a 176-byte chunk, and at a
// million pending jobs those 12 bytes are 12 MB. Here a block is rounded to 8
// bytes and carries no header. Blocks of one size share 4 KiB pages; the first
// bytes of a page describe it, and a block finds its page by masking its
// address. Blocks larger than kMaxSlabBlock go to operator new, where malloc's
// overhead is a small fraction.
//
// Pages are cut from 2 MiB regions mapped once, in 4 KiB pages unless told
// to use huge ones (use_huge_pages; job.h says why not by default). A page
// whose blocks are all freed goes to a reserve,
// and is handed out again before any other. Pages that then sit in the reserve,
// unused, for a whole period between two calls of mark_idle() (the server calls
// it every few seconds) go back to the kernel (MADV_DONTNEED, a slice at a
// time: release_marked), down to a small floor. So a queue that drains gives
// back its memory, which malloc does not do for chunks in the middle of its
// heap, but not at once: a queue that fills again within the period (bursts, or
// the next wave of work) finds its pages resident instead of paying a page
// fault, and a kernel zeroing, for each one. Giving pages back as soon as the
// reserve passed a bound made every burst after a drain fault its memory in
// again: 10% more server CPU on a second burst, measured. jemalloc's dirty-page
// decay, which Redis runs with, works the same way.
//
// Released pages come back through the prefaulter when there is one: once
// the reserve is half gone, a batch of them is faulted in on the helper
// thread and joins the reserve when done (never past the reserve's limit,
// or a steady queue would cycle pages between the kernel and the reserve).
// Taking them one by one, the loop would pay a page fault for each (a
// second burst of a million enqueues ran at 0.8-0.9M jobs/s against 1.3M
// for the first, with 40% more server CPU).
//
// Invariants: a page is in exactly one place: its size class's list of pages
// with a free block, the reserve, the released pages, the batch being
// faulted back in, or nowhere (full).
// page->used counts its live blocks.
//
// Not thread-safe: the engine owns one (in its job table) and uses it from one
// thread. The only other thread is the optional prefaulter (prefaulter.h),
// which faults the next region in before the allocator needs it. Under
// AddressSanitizer freed blocks and unused page space are poisoned, so a use
// after free is still reported.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "server/engine/prefaulter.h"

namespace tq::engine {

class SlabAllocator {
 public:
  static constexpr size_t kPageBytes = 4096;
  static constexpr size_t kRegionBytes = size_t{2} << 20;
  // Above this malloc's 8-16 bytes are under 6% of a block, and a page holds
  // too few blocks for its unused tail to be cheaper.
  static constexpr size_t kMaxSlabBlock = 256;
  // The reserve's floor: mark_idle() keeps at least this many empty
  // pages resident, or an eighth of the pages in use if that is more (a FIFO
  // queue empties and refills pages all the time).
  static constexpr size_t kMinReservePages = 64;
  // Released pages faulted back in at most at a time (1 MiB), once the
  // reserve is below half its limit, up to the limit.
  static constexpr size_t kRefillPages = 256;

  struct Stats {
    uint64_t mapped_bytes = 0;    // address space of the regions
    uint64_t used_bytes = 0;      // pages holding at least one block
    uint64_t reserve_bytes = 0;   // empty pages kept resident (or being faulted back in)
    uint64_t released_bytes = 0;  // empty pages given back to the kernel
    uint64_t block_bytes = 0;     // live blocks in pages, rounded to 8 bytes
    uint64_t large_bytes = 0;     // live blocks from operator new, as asked
    uint64_t releases = 0;        // times empty pages were given back
    uint64_t refills = 0;         // batches of given-back pages faulted back in
  };

  SlabAllocator();
  // Unmaps every region: no block may be used after this.
  ~SlabAllocator();
  SlabAllocator(const SlabAllocator&) = delete;
  SlabAllocator& operator=(const SlabAllocator&) = delete;

  // Never returns nullptr (throws std::bad_alloc like operator new). The
  // block is 8-byte aligned.
  void* allocate(size_t bytes);
  // `bytes` must be what was passed to allocate().
  void deallocate(void* block, size_t bytes);

  // From now on a helper thread faults in the next region before it is
  // needed. Without it the first touch of each region stalls the caller
  // while the kernel zeroes it (32% of tqd's CPU when producing a million
  // jobs a second, in 2-4 ms stalls when regions were huge pages). Costs one
  // region of memory ahead.
  void prefault_ahead();
  // The helper thread prefault_ahead() started, or nullptr; others may hand
  // it their memory too.
  Prefaulter* prefaulter() const { return prefaulter_.get(); }

  // Regions mapped from now on ask for transparent huge pages
  // (MADV_HUGEPAGE) rather than refuse them (MADV_NOHUGEPAGE, the default).
  // Where a page fault is dear, as under some hypervisors, that is one fault
  // for 2 MiB instead of 512; the price is a 2 MiB zeroing at once, which
  // holds the address-space lock while it runs (job.h).
  void use_huge_pages(bool on) { huge_pages_ = on; }

  // Ends a period: marks for giving back the empty pages that stayed in the
  // reserve, untaken, since the previous call (keeping the reserve's floor),
  // and returns how many. A page emptied just before a call is therefore
  // marked at the call after next: one to two periods after it emptied.
  size_t mark_idle();
  // Gives up to `max_pages` of the marked pages back to the kernel, oldest
  // first; returns how many stay marked. In slices, because giving back a
  // drained backlog at once (MADV_DONTNEED of 160 MB) held the caller for
  // 17 ms. A marked page taken again before its turn is simply kept.
  size_t release_marked(size_t max_pages);
  // Both at once (tests).
  void release_idle();

  Stats stats() const;
  // Tests only: released pages are being faulted back in.
  bool refilling() const { return !refilling_.empty(); }

 private:
  struct Page;
  static constexpr size_t kClasses = kMaxSlabBlock / 8;

  static size_t class_of(size_t bytes) { return (bytes + 7) / 8 - 1; }
  Page* page_of(void* block) const;
  Page* new_page(size_t block_bytes);
  Page* take_empty_page();
  // With a prefaulter: hands a batch of released pages to it when the
  // reserve runs low; moves a finished batch into the reserve.
  void refill_reserve();
  char* map_region();
  char* next_region();
  // A page whose last block was freed: into the reserve.
  void retire_page(Page* page);
  // Gives the `count` oldest pages of the reserve back to the kernel.
  void release_oldest_reserve(size_t count);
  size_t reserve_limit() const;
  // Pages in the reserve above its floor (reserve_limit()).
  size_t reserve_excess() const;

  Page* partial_[kClasses] = {};  // per size class: pages with a free block
  // Empty pages, oldest first. Addresses only: releasing a page must not
  // touch it (a cache miss each, and a fault for a released one).
  std::vector<char*> reserve_;  // memory resident; taken from the back
  // The fewest pages the reserve held since the last mark_idle(): its
  // first idle_pages_ were not taken all that time.
  size_t idle_pages_ = 0;
  // The first marked_pages_ of reserve_ are to be given back (mark_idle).
  size_t marked_pages_ = 0;
  std::vector<char*> released_;  // memory given back
  std::vector<char*> refilling_;  // released pages the prefaulter is faulting in
  std::shared_ptr<std::atomic<bool>> refill_done_;
  size_t used_pages_ = 0;
  std::vector<char*> regions_;
  char* region_next_ = nullptr;  // the next page never used, in the newest region
  char* region_end_ = nullptr;
  char* spare_region_ = nullptr;  // mapped, being faulted in by the prefaulter
  std::unique_ptr<Prefaulter> prefaulter_;
  bool huge_pages_ = false;
  uint64_t block_bytes_ = 0;  // Stats::block_bytes
  uint64_t large_bytes_ = 0;  // Stats::large_bytes
  uint64_t releases_ = 0;     // Stats::releases
  uint64_t refills_ = 0;      // Stats::refills
};

}  // namespace tq::engine
