#include <doctest/doctest.h>

#include <random>
#include <unordered_map>

#include "server/lease_book.h"

namespace lease_book_test {

using tq::server::LeaseBook;

TEST_SUITE("lease_book") {
  TEST_CASE("records, finds and forgets as a map does, through growth and crowded runs") {
    LeaseBook book;
    std::unordered_map<uint64_t, uint64_t> model;
    std::mt19937_64 rng(7);
    for (int step = 0; step < 200'000; ++step) {
      // Few distinct ids, so runs collide and deletions shift entries back.
      const uint64_t id = 1 + rng() % 3'000;
      switch (rng() % 3) {
        case 0:
        case 1: {
          const uint64_t attempts = rng() % 5;
          book.record(id, attempts);
          model[id] = attempts;
          break;
        }
        case 2:
          book.forget(id);
          model.erase(id);
          break;
      }
      if (step % 997 == 0) {
        REQUIRE(book.size() == model.size());
        for (uint64_t probe = 1; probe <= 3'000; ++probe) {
          auto it = model.find(probe);
          auto got = book.delivery_of(probe);
          REQUIRE(got.has_value() == (it != model.end()));
          if (got) REQUIRE(*got == it->second);
        }
      }
    }
  }

  TEST_CASE(
      "prune drops what the caller says is over, and the next prune waits for twice as many") {
    LeaseBook book;
    for (uint64_t id = 1; id <= 5'000; ++id) book.record(id, 1);
    REQUIRE(book.size() >= book.prune_at());
    book.prune([](uint64_t id) { return id % 10 != 0; });  // keep 500
    CHECK(book.size() == 500);
    CHECK(book.delivery_of(10) == uint64_t{1});
    CHECK_FALSE(book.delivery_of(11).has_value());
    CHECK(book.prune_at() == 4096);  // twice 500 is less than the first threshold
    for (uint64_t id = 10'001; id <= 20'000; ++id) book.record(id, 2);
    book.prune([](uint64_t id) { return id % 2 != 0; });  // keep 500 + 5,000
    CHECK(book.size() == 5'500);
    CHECK(book.prune_at() == 11'000);  // twice what is left
  }

  TEST_CASE("a prune that keeps many leases costs about one probe each, not a pile-up") {
    // A worker holding 131,072 jobs (DEQUEUE ... COUNT, never acked yet):
    // the prune keeps them all. Put back in hash order into a table that
    // started small, they piled into one run, quadratic in the leases.
    LeaseBook book;
    constexpr uint64_t kLeases = 131'072;
    for (uint64_t id = 1; id <= kLeases; ++id) book.record(id, 1);
    const uint64_t before = book.probes();
    book.prune([](uint64_t) { return false; });
    CHECK(book.size() == kLeases);
    CHECK(book.probes() - before < 3 * kLeases);
    for (uint64_t id = 1; id <= kLeases; id += 4'099) CHECK(book.delivery_of(id) == uint64_t{1});
  }
}

}  // namespace lease_book_test
