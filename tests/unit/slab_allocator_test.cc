#include "server/engine/slab_allocator.h"

#include <doctest/doctest.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/asan.h"
#include "tests/support/smaps.h"

namespace slab_allocator_test {

using tq::engine::SlabAllocator;

namespace {

constexpr size_t kPage = SlabAllocator::kPageBytes;
// Blocks of 168 bytes after a page's 32-byte header.
constexpr size_t kPerPage = (kPage - 32) / 168;

// True when the n bytes at p all equal `fill`.
bool holds(const void* p, size_t n, unsigned char fill) {
  std::vector<unsigned char> expected(n, fill);
  return std::memcmp(p, expected.data(), n) == 0;
}

uintptr_t page_address(const void* block) {
  return reinterpret_cast<uintptr_t>(block) & ~(kPage - 1);
}

uint64_t minor_faults_of_this_thread() {
  rusage usage{};
  REQUIRE(getrusage(RUSAGE_THREAD, &usage) == 0);
  return static_cast<uint64_t>(usage.ru_minflt);
}

// Fills `pages` pages with blocks and frees them all: the pages are then
// in the reserve, emptied in this period.
void fill_and_drain(SlabAllocator& slab, size_t pages) {
  std::vector<void*> blocks;
  for (size_t i = 0; i < pages * kPerPage; ++i) blocks.push_back(slab.allocate(164));
  for (void* block : blocks) slab.deallocate(block, 164);
}

bool resident(uintptr_t page) {
  unsigned char in_core = 0;
  REQUIRE(mincore(reinterpret_cast<void*>(page), kPage, &in_core) == 0);
  return (in_core & 1) != 0;
}

}  // namespace

TEST_SUITE("slab_allocator") {
  TEST_CASE("blocks are rounded to 8 bytes, packed into shared pages, and hold their bytes") {
    SlabAllocator slab;
    std::vector<char*> blocks;
    for (size_t i = 0; i < kPerPage + 1; ++i) {
      char* block = static_cast<char*>(slab.allocate(164));
      CHECK(reinterpret_cast<uintptr_t>(block) % 8 == 0);
      std::memset(block, static_cast<int>(i), 164);
      blocks.push_back(block);
    }
    CHECK(slab.stats().block_bytes == (kPerPage + 1) * 168);
    CHECK(slab.stats().used_bytes == 2 * kPage);  // the 25th block opens a second page
    for (size_t i = 0; i + 1 < kPerPage; ++i) CHECK(blocks[i + 1] - blocks[i] == 168);
    CHECK(page_address(blocks[0]) == page_address(blocks[kPerPage - 1]));
    CHECK(page_address(blocks[kPerPage]) != page_address(blocks[0]));
    for (size_t i = 0; i < blocks.size(); ++i)
      CHECK(holds(blocks[i], 164, static_cast<unsigned char>(i)));
    for (char* block : blocks) slab.deallocate(block, 164);
    CHECK(slab.stats().block_bytes == 0);
    CHECK(slab.stats().used_bytes == 0);
    CHECK(slab.stats().reserve_bytes == 2 * kPage);
  }

  TEST_CASE("a freed block is the next one handed out in its size class") {
    SlabAllocator slab;
    void* a = slab.allocate(100);
    void* b = slab.allocate(100);
    void* other = slab.allocate(200);
    CHECK(page_address(other) != page_address(a));  // sizes never share a page
    slab.deallocate(a, 100);
    CHECK(slab.allocate(100) == a);
    slab.deallocate(b, 100);
    CHECK(slab.allocate(97) == b);  // 97 and 100 round to the same 104
    slab.deallocate(a, 100);
    slab.deallocate(b, 97);
    slab.deallocate(other, 200);
  }

  TEST_CASE("blocks above kMaxSlabBlock come from operator new and are counted apart") {
    SlabAllocator slab;
    const size_t big = SlabAllocator::kMaxSlabBlock + 1;
    void* block = slab.allocate(big);
    std::memset(block, 7, big);
    CHECK(slab.stats().large_bytes == big);
    CHECK(slab.stats().block_bytes == 0);
    CHECK(slab.stats().used_bytes == 0);
    slab.deallocate(block, big);
    CHECK(slab.stats().large_bytes == 0);
  }

  TEST_CASE("a drained allocator keeps its pages for one period, then gives all but a floor back") {
    SlabAllocator slab;
    const size_t pages = 1000;
    std::vector<void*> blocks;
    std::set<uintptr_t> used_pages;
    for (size_t i = 0; i < pages * kPerPage; ++i) {
      blocks.push_back(slab.allocate(164));
      std::memset(blocks.back(), 1, 164);  // touch it: resident
      used_pages.insert(page_address(blocks.back()));
    }
    REQUIRE(used_pages.size() == pages);
    CHECK(slab.stats().used_bytes == pages * kPage);
    for (void* block : blocks) slab.deallocate(block, 164);
    CHECK(slab.stats().used_bytes == 0);
    CHECK(slab.stats().reserve_bytes == pages * kPage);  // nothing given back yet
    CHECK(slab.stats().released_bytes == 0);

    // They emptied during this period: the first call keeps them, the
    // second finds them unused the whole period and gives them back.
    slab.release_idle();
    CHECK(slab.stats().reserve_bytes == pages * kPage);
    slab.release_idle();
    const auto& stats = slab.stats();
    CHECK(stats.reserve_bytes == SlabAllocator::kMinReservePages * kPage);
    CHECK(stats.reserve_bytes + stats.released_bytes == pages * kPage);
    CHECK(stats.releases == 1);
    size_t still_resident = 0;
    for (uintptr_t page : used_pages) still_resident += resident(page) ? 1 : 0;
    CHECK(still_resident * kPage == stats.reserve_bytes);

    // Released pages are used again before any new memory is mapped.
    const uint64_t mapped = stats.mapped_bytes;
    blocks.clear();
    for (size_t i = 0; i < pages * kPerPage; ++i) {
      blocks.push_back(slab.allocate(164));
      std::memset(blocks.back(), 2, 164);
      REQUIRE(used_pages.count(page_address(blocks.back())) == 1);
    }
    CHECK(slab.stats().mapped_bytes == mapped);
    CHECK(slab.stats().released_bytes == 0);
    for (void* block : blocks) slab.deallocate(block, 164);
  }

  TEST_CASE("pages taken from the reserve during a period are not given back at its end") {
    SlabAllocator slab;
    const size_t pages = 1000;
    fill_and_drain(slab, pages);
    slab.release_idle();  // the period starts with 1000 empty pages
    REQUIRE(slab.stats().reserve_bytes == pages * kPage);

    // A burst takes 300 pages and gives them back: the reserve is whole
    // again, but only its 700 oldest pages went unused all period.
    fill_and_drain(slab, 300);
    REQUIRE(slab.stats().reserve_bytes == pages * kPage);
    slab.release_idle();
    CHECK(slab.stats().released_bytes == 700 * kPage);
    CHECK(slab.stats().reserve_bytes == 300 * kPage);

    // Those 300 then sit unused for a period: down to the floor.
    slab.release_idle();
    CHECK(slab.stats().reserve_bytes == SlabAllocator::kMinReservePages * kPage);
    CHECK(slab.stats().released_bytes == (pages - SlabAllocator::kMinReservePages) * kPage);

    // Pages in use raise the floor to an eighth of them.
    std::vector<void*> blocks;
    for (size_t i = 0; i < 1600 * kPerPage; ++i) blocks.push_back(slab.allocate(164));
    for (size_t i = 0; i < 800 * kPerPage; ++i) slab.deallocate(blocks[i], 164);  // 800 emptied
    slab.release_idle();
    slab.release_idle();
    CHECK(slab.stats().used_bytes == 800 * kPage);
    static_assert(800 / 8 > SlabAllocator::kMinReservePages);
    CHECK(slab.stats().reserve_bytes == 800 / 8 * kPage);
    for (size_t i = 800 * kPerPage; i < blocks.size(); ++i) slab.deallocate(blocks[i], 164);
  }

  TEST_CASE("marked pages go back a slice at a time, and a marked page taken again is kept") {
    SlabAllocator slab;
    const size_t pages = 1000;
    fill_and_drain(slab, pages);
    CHECK(slab.mark_idle() == 0);  // emptied this period: none idle a whole one
    const size_t floor = SlabAllocator::kMinReservePages;
    REQUIRE(slab.mark_idle() == pages - floor);

    CHECK(slab.release_marked(100) == pages - floor - 100);
    CHECK(slab.stats().released_bytes == 100 * kPage);
    CHECK(slab.stats().releases == 1);
    // A burst between slices takes 200 pages from the top of the reserve:
    // the 64 unmarked ones, then 136 marked ones, which are kept. The 700
    // below them stay marked and go back.
    std::vector<void*> blocks;
    for (size_t i = 0; i < 200 * kPerPage; ++i) blocks.push_back(slab.allocate(164));
    CHECK(slab.stats().reserve_bytes == 700 * kPage);
    CHECK(slab.release_marked(300) == 400);
    CHECK(slab.stats().released_bytes == 400 * kPage);
    // What is left would take the reserve below its floor: only down to it.
    CHECK(slab.release_marked(SIZE_MAX) == 0);
    CHECK(slab.stats().reserve_bytes == floor * kPage);
    CHECK(slab.release_marked(SIZE_MAX) == 0);
    for (void* block : blocks) slab.deallocate(block, 164);
  }

  TEST_CASE("random sizes, allocated and freed in random order, never overlap") {
    SlabAllocator slab;
    std::mt19937 random(12345);
    struct Live {
      unsigned char* block;
      size_t bytes;
      unsigned char fill;
    };
    std::vector<Live> live;
    uint64_t expected_block_bytes = 0;
    auto slab_bytes = [](size_t bytes) -> uint64_t {
      return bytes <= SlabAllocator::kMaxSlabBlock ? (bytes + 7) / 8 * 8 : 0;
    };
    for (int step = 0; step < 200'000; ++step) {
      if (live.empty() || random() % 100 < 55) {
        const size_t bytes = 1 + random() % (SlabAllocator::kMaxSlabBlock + 64);
        auto* block = static_cast<unsigned char*>(slab.allocate(bytes));
        const auto fill = static_cast<unsigned char>(random());
        std::memset(block, fill, bytes);
        live.push_back({block, bytes, fill});
        expected_block_bytes += slab_bytes(bytes);
      } else {
        const size_t i = random() % live.size();
        REQUIRE(holds(live[i].block, live[i].bytes, live[i].fill));
        slab.deallocate(live[i].block, live[i].bytes);
        expected_block_bytes -= slab_bytes(live[i].bytes);
        live[i] = live.back();
        live.pop_back();
      }
    }
    CHECK(slab.stats().block_bytes == expected_block_bytes);
    // No two live blocks overlap, and each still holds what was written.
    std::sort(live.begin(), live.end(),
              [](const Live& a, const Live& b) { return a.block < b.block; });
    for (size_t i = 0; i < live.size(); ++i) {
      if (i > 0) CHECK(live[i - 1].block + live[i - 1].bytes <= live[i].block);
      CHECK(holds(live[i].block, live[i].bytes, live[i].fill));
    }
    for (const Live& l : live) slab.deallocate(l.block, l.bytes);
    CHECK(slab.stats().block_bytes == 0);
    CHECK(slab.stats().large_bytes == 0);
    CHECK(slab.stats().used_bytes == 0);
  }

  TEST_CASE("with prefault_ahead, released pages are faulted back in off the caller's thread") {
    SlabAllocator slab;
    slab.prefault_ahead();
    const size_t pages = 1000;
    std::vector<void*> blocks;
    for (size_t i = 0; i < pages * kPerPage; ++i) {
      blocks.push_back(slab.allocate(164));
      std::memset(blocks.back(), 1, 164);
    }
    for (void* block : blocks) slab.deallocate(block, 164);
    slab.release_idle();
    slab.release_idle();  // the drained pages sat unused a whole period
    REQUIRE(slab.stats().released_bytes > SlabAllocator::kRefillPages * kPage);
    blocks.clear();

    // The reserve runs low: the next pages come from a batch of released
    // ones, faulted in by the helper thread, so taking them costs this
    // thread no page faults. Taken one by one they would cost one each.
    const uint64_t released = slab.stats().released_bytes;
    uint64_t faults = 0;
    for (size_t i = 0; i < pages * kPerPage; ++i) {
      // The server never waits for a batch; this test does, so that every
      // page could come from one. A new page (8-byte blocks) makes the
      // allocator look at the batch.
      while (slab.refilling()) {
        void* probe = slab.allocate(8);
        slab.deallocate(probe, 8);
      }
      const uint64_t before = minor_faults_of_this_thread();
      void* block = slab.allocate(164);  // writes the page's header: its first touch
      faults += minor_faults_of_this_thread() - before;
      std::memset(block, 2, 164);
      blocks.push_back(block);
    }
    MESSAGE("page faults taking " << pages << " pages: " << faults);
#ifndef TQ_ASAN
    // Under AddressSanitizer its own bookkeeping (a stack trace kept for
    // every malloc) faults pages on this thread too: the count means nothing.
    CHECK(faults < pages / 20);
#endif
    CHECK(slab.stats().released_bytes < released);
    for (void* block : blocks) slab.deallocate(block, 164);
  }

  TEST_CASE("a steady queue does not cycle pages between the kernel and the reserve") {
    // After a drain most pages are given back. A queue that then holds
    // steady (as many enqueues as acks) must settle: no batch faulted back
    // in only to be given back again at the next free, and the reserve no
    // bigger than its limit.
    SlabAllocator slab;
    slab.prefault_ahead();
    std::vector<void*> fifo;
    for (size_t i = 0; i < 1000 * kPerPage; ++i) fifo.push_back(slab.allocate(164));
    for (void* block : fifo) slab.deallocate(block, 164);
    fifo.clear();
    slab.release_idle();
    slab.release_idle();
    REQUIRE(slab.stats().released_bytes > 0);
    size_t head = 0;  // fifo[head, end) are live
    // As in the server, idle pages are given back now and then.
    auto run = [&](size_t rounds, size_t pages) {
      for (size_t i = 0; i < rounds; ++i) {
        fifo.push_back(slab.allocate(164));
        if (fifo.size() - head > pages * kPerPage) slab.deallocate(fifo[head++], 164);
        if (i % (20 * kPerPage) == 0) slab.release_idle();
      }
    };
    auto reserve_within_limit = [&] {
      const auto stats = slab.stats();
      const size_t used_pages = stats.used_bytes / kPage;
      return stats.reserve_bytes / kPage <=
             std::max(SlabAllocator::kMinReservePages, used_pages / 8);
    };
    SUBCASE("smaller than what the drain left in the reserve: nothing comes back") {
      run(50 * kPerPage, 10);
      const auto settled = slab.stats();
      run(2000 * kPerPage, 10);  // twice the pages the backlog had
      CHECK(slab.stats().refills == settled.refills);
      CHECK(slab.stats().releases == settled.releases);
    }
    SUBCASE("bigger: given-back pages come back, and stay") {
      run(150 * kPerPage, 150);  // past the reserve: batches are faulted back in
      while (slab.refilling()) run(1, 150);
      const auto settled = slab.stats();
      CHECK(settled.refills >= 1);
      run(2000 * kPerPage, 150);
      while (slab.refilling()) run(1, 150);
      CHECK(slab.stats().releases == settled.releases);
      CHECK(reserve_within_limit());
    }
    for (size_t i = head; i < fifo.size(); ++i) slab.deallocate(fifo[i], 164);
  }

  TEST_CASE("regions refuse huge pages unless use_huge_pages asks for them") {
    SlabAllocator plain;
    void* plain_block = plain.allocate(164);
    const tq::testing::Mapping refused = tq::testing::mapping_at(plain_block);
    REQUIRE(refused.end > refused.start);
    CHECK(refused.has("nh"));  // MADV_NOHUGEPAGE
    CHECK_FALSE(refused.has("hg"));

    SlabAllocator huge;
    huge.use_huge_pages(true);
    void* huge_block = huge.allocate(164);
    const tq::testing::Mapping asked = tq::testing::mapping_at(huge_block);
    CHECK(asked.has("hg"));  // MADV_HUGEPAGE
    CHECK_FALSE(asked.has("nh"));
    std::memset(huge_block, 0x5a, 164);
    CHECK(holds(huge_block, 164, 0x5a));
    // Whether the kernel will back it with huge pages is its mode's say.
    const std::string mode = tq::testing::transparent_huge_page_mode();
    if (mode == "always" || mode == "madvise") {
      CHECK(asked.thp_eligible == "1");
      CHECK(refused.thp_eligible == "0");
    } else {
      MESSAGE("transparent huge pages are '" << mode << "' here: THPeligible not checked");
    }
    plain.deallocate(plain_block, 164);
    huge.deallocate(huge_block, 164);
  }

  TEST_CASE("with prefault_ahead one region more is mapped, ahead, and blocks work as before") {
    SlabAllocator slab;
    slab.prefault_ahead();
    // Enough 168-byte blocks to fill two regions and start a third.
    const size_t per_region = SlabAllocator::kRegionBytes / kPage * kPerPage;
    std::vector<void*> blocks;
    for (size_t i = 0; i < 2 * per_region + 1; ++i) {
      blocks.push_back(slab.allocate(164));
      std::memset(blocks.back(), static_cast<int>(i & 0xff), 164);
    }
    // Three regions in use and one spare ahead.
    CHECK(slab.stats().mapped_bytes == 4 * SlabAllocator::kRegionBytes);
    for (size_t i = 0; i < blocks.size(); ++i) {
      REQUIRE(holds(blocks[i], 164, static_cast<unsigned char>(i & 0xff)));
    }
    // Every block lies in one of the three regions in use, none in the spare.
    std::set<uintptr_t> used_regions;
    for (void* b : blocks)
      used_regions.insert(reinterpret_cast<uintptr_t>(b) & ~(SlabAllocator::kRegionBytes - 1));
    CHECK(used_regions.size() == 3);
    for (void* b : blocks) slab.deallocate(b, 164);
  }
}

}  // namespace slab_allocator_test
