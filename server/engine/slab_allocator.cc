#include "server/engine/slab_allocator.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <new>

#include "base/asan.h"
#ifdef TQ_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace tq::engine {
namespace {

void poison(void* p, size_t n) {
#ifdef TQ_ASAN
  ASAN_POISON_MEMORY_REGION(p, n);
#else
  (void)p, (void)n;
#endif
}

void unpoison(void* p, size_t n) {
#ifdef TQ_ASAN
  ASAN_UNPOISON_MEMORY_REGION(p, n);
#else
  (void)p, (void)n;
#endif
}

}  // namespace

// The first bytes of every page holding blocks.
struct SlabAllocator::Page {
  Page* prev;  // in partial_[class]
  Page* next;
  void* free_blocks;  // freed blocks, linked through their first 8 bytes
  uint16_t block_bytes;
  uint16_t capacity;  // blocks that fit after this header
  uint16_t used;      // live blocks
  uint16_t carved;    // blocks ever handed out; the rest of the page is untouched

  char* block(size_t i) { return reinterpret_cast<char*>(this + 1) + i * block_bytes; }
};

namespace {

template <typename P>
void push_front(P*& head, P* page) {
  page->prev = nullptr;
  page->next = head;
  if (head != nullptr) head->prev = page;
  head = page;
}

template <typename P>
void unlink(P*& head, P* page) {
  (page->prev != nullptr ? page->prev->next : head) = page->next;
  if (page->next != nullptr) page->next->prev = page->prev;
  page->prev = page->next = nullptr;
}

}  // namespace

SlabAllocator::SlabAllocator() {
  static_assert(sizeof(Page) == 32 && sizeof(Page) % 8 == 0, "blocks start 8-byte aligned");
}

SlabAllocator::~SlabAllocator() {
  prefaulter_.reset();  // no thread touches a region once it is unmapped
  for (char* region : regions_) {
    unpoison(region, kRegionBytes);
    munmap(region, kRegionBytes);
  }
}

SlabAllocator::Page* SlabAllocator::page_of(void* block) const {
  return reinterpret_cast<Page*>(reinterpret_cast<uintptr_t>(block) & ~uintptr_t{kPageBytes - 1});
}

void* SlabAllocator::allocate(size_t bytes) {
  if (bytes > kMaxSlabBlock) {
    large_bytes_ += bytes;
    return ::operator new(bytes);
  }
  if (bytes == 0) bytes = 1;
  const size_t cls = class_of(bytes);
  Page* page = partial_[cls];
  if (page == nullptr) {
    page = new_page((cls + 1) * 8);
    push_front(partial_[cls], page);
  }
  char* block;
  if (page->free_blocks != nullptr) {
    block = static_cast<char*>(page->free_blocks);
    unpoison(block, sizeof(void*));
    std::memcpy(&page->free_blocks, block, sizeof(void*));
  } else {
    block = page->block(page->carved++);
  }
  unpoison(block, page->block_bytes);
  if (++page->used == page->capacity) unlink(partial_[cls], page);
  block_bytes_ += page->block_bytes;
  return block;
}

void SlabAllocator::deallocate(void* block, size_t bytes) {
  if (bytes > kMaxSlabBlock) {
    large_bytes_ -= bytes;
    ::operator delete(block);
    return;
  }
  Page* page = page_of(block);
  const size_t cls = class_of(page->block_bytes);
  if (page->used == page->capacity) push_front(partial_[cls], page);
  std::memcpy(block, &page->free_blocks, sizeof(void*));
  page->free_blocks = block;
  poison(block, page->block_bytes);
  block_bytes_ -= page->block_bytes;
  if (--page->used == 0) {
    unlink(partial_[cls], page);
    retire_page(page);
  }
}

SlabAllocator::Page* SlabAllocator::new_page(size_t block_bytes) {
  Page* page = take_empty_page();
  page->prev = page->next = nullptr;
  page->free_blocks = nullptr;
  page->block_bytes = static_cast<uint16_t>(block_bytes);
  page->capacity = static_cast<uint16_t>((kPageBytes - sizeof(Page)) / block_bytes);
  page->used = 0;
  page->carved = 0;
  ++used_pages_;
  return page;
}

SlabAllocator::Page* SlabAllocator::take_empty_page() {
  if (prefaulter_ != nullptr) refill_reserve();
  char* memory;
  if (!reserve_.empty()) {
    memory = reserve_.back();  // the most recently emptied: likely still in cache
    reserve_.pop_back();
    idle_pages_ = std::min(idle_pages_, reserve_.size());
    marked_pages_ = std::min(marked_pages_, reserve_.size());  // taken again: kept
  } else if (!released_.empty()) {
    memory = released_.back();  // faults on first touch: the refill fell behind, or no prefaulter
    released_.pop_back();
  } else {
    if (region_next_ == region_end_) {
      region_next_ = next_region();
      region_end_ = region_next_ + kRegionBytes;
    }
    memory = region_next_;
    region_next_ += kPageBytes;
  }
  unpoison(memory, sizeof(Page));
  return reinterpret_cast<Page*>(memory);
}

void SlabAllocator::refill_reserve() {
  if (!refilling_.empty()) {
    if (!refill_done_->load(std::memory_order_acquire)) return;
    reserve_.insert(reserve_.end(), refilling_.begin(), refilling_.end());
    refilling_.clear();
  }
  // Only when the reserve is half gone (a backlog is growing), and never past
  // the reserve's limit (its floor): what sits above it unused goes back at
  // the next period's end, and a steady queue would cycle pages between the
  // kernel and the reserve.
  const size_t limit = reserve_limit();
  if (released_.empty() || reserve_.size() >= limit / 2) return;
  const size_t n = std::min({kRefillPages, released_.size(), limit - reserve_.size()});
  refilling_.assign(released_.end() - static_cast<ptrdiff_t>(n), released_.end());
  released_.resize(released_.size() - n);
  std::sort(refilling_.begin(), refilling_.end());
  refill_done_ = std::make_shared<std::atomic<bool>>(false);
  ++refills_;
  // One range per run of neighbouring pages; the prefaulter takes them in
  // order, so the last one's flag says the whole batch is in.
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && refilling_[j] == refilling_[j - 1] + kPageBytes) ++j;
    prefaulter_->populate(refilling_[i], (j - i) * kPageBytes, j == n ? refill_done_ : nullptr);
    i = j;
  }
}

void SlabAllocator::prefault_ahead() {
  if (prefaulter_ == nullptr) prefaulter_ = std::make_unique<Prefaulter>();
}

char* SlabAllocator::next_region() {
  char* region = spare_region_ != nullptr ? spare_region_ : map_region();
  spare_region_ = nullptr;
  if (prefaulter_ != nullptr) {
    spare_region_ = map_region();
    prefaulter_->populate(spare_region_, kRegionBytes);
  }
  return region;
}

char* SlabAllocator::map_region() {
  // Twice the size, so that a region aligned to its size fits (the ends are
  // unmapped at once): a region is then whole page-table pages, and a block's
  // region is its address, masked.
  const size_t span = 2 * kRegionBytes;
  void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kRegionBytes - 1) & ~uintptr_t{kRegionBytes - 1};
  if (aligned > start) munmap(raw, aligned - start);
  const uintptr_t tail = aligned + kRegionBytes;
  if (tail < start + span) munmap(reinterpret_cast<void*>(tail), start + span - tail);
  char* region = reinterpret_cast<char*>(aligned);
  // Unless told otherwise, 4 KiB pages even where transparent huge pages
  // are "always" (job.h).
  madvise(region, kRegionBytes, huge_pages_ ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  poison(region, kRegionBytes);
  regions_.push_back(region);
  return region;
}

size_t SlabAllocator::reserve_limit() const {
  return std::max(kMinReservePages, used_pages_ / 8);
}

void SlabAllocator::retire_page(Page* page) {
  --used_pages_;
  poison(page, kPageBytes);
  reserve_.push_back(reinterpret_cast<char*>(page));
}

size_t SlabAllocator::reserve_excess() const {
  const size_t floor = reserve_limit();
  return reserve_.size() > floor ? reserve_.size() - floor : 0;
}

size_t SlabAllocator::mark_idle() {
  marked_pages_ = std::min(idle_pages_, reserve_excess());
  idle_pages_ = reserve_.size();  // the next period starts with all of them idle
  return marked_pages_;
}

size_t SlabAllocator::release_marked(size_t max_pages) {
  const size_t excess = reserve_excess();
  const size_t count = std::min({marked_pages_, max_pages, excess});
  if (count > 0) release_oldest_reserve(count);
  marked_pages_ = count < marked_pages_ && count < excess ? marked_pages_ - count : 0;
  idle_pages_ -= std::min(idle_pages_, count);  // they were the oldest: counted first
  return marked_pages_;
}

void SlabAllocator::release_idle() {
  mark_idle();
  release_marked(SIZE_MAX);
}

void SlabAllocator::release_oldest_reserve(size_t count) {
  ++releases_;
  // Sorted, neighbouring pages go back in one call per run, not a call
  // each: a queue drained in order empties its pages in address order.
  std::sort(reserve_.begin(), reserve_.begin() + static_cast<ptrdiff_t>(count));
  for (size_t i = 0; i < count;) {
    size_t j = i + 1;
    while (j < count && reserve_[j] == reserve_[j - 1] + kPageBytes) ++j;
    madvise(reserve_[i], (j - i) * kPageBytes, MADV_DONTNEED);
    i = j;
  }
  released_.insert(released_.end(), reserve_.begin(),
                   reserve_.begin() + static_cast<ptrdiff_t>(count));
  reserve_.erase(reserve_.begin(), reserve_.begin() + static_cast<ptrdiff_t>(count));
}

SlabAllocator::Stats SlabAllocator::stats() const {
  Stats stats;
  stats.mapped_bytes = regions_.size() * kRegionBytes;
  stats.used_bytes = used_pages_ * kPageBytes;
  stats.reserve_bytes = (reserve_.size() + refilling_.size()) * kPageBytes;
  stats.released_bytes = released_.size() * kPageBytes;
  stats.block_bytes = block_bytes_;
  stats.large_bytes = large_bytes_;
  stats.releases = releases_;
  stats.refills = refills_;
  return stats;
}

}  // namespace tq::engine
