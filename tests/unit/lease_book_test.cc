#include <doctest/doctest.h>

#include <random>
#include <unordered_map>

#include "server/lease_book.h"

using tq::server::LeaseBook;

TEST_SUITE("lease_book") {
  TEST_CASE("records, finds and forgets as a map does, through growth and crowded runs") {
    LeaseBook book;
    std::unordered_map<uint64_t, uint32_t> model;
    std::mt19937_64 rng(7);
    for (int step = 0; step < 200'000; ++step) {
      // Few distinct ids, so runs collide and deletions shift entries back.
      const uint64_t id = 1 + rng() % 3'000;
      switch (rng() % 3) {
        case 0:
        case 1: {
          const auto attempts = static_cast<uint32_t>(rng() % 5);
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
          auto got = book.attempt_of(probe);
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
    book.prune([](uint64_t id, uint32_t) { return id % 10 != 0; });  // keep 500
    CHECK(book.size() == 500);
    CHECK(book.attempt_of(10) == 1u);
    CHECK_FALSE(book.attempt_of(11).has_value());
    CHECK(book.prune_at() == 4096);  // twice 500 is less than the first threshold
  }
}
