// The job table against a model (a std::map by id) through growth: every
// job can be found, and erased, whether its chain has moved to the new
// bucket array yet or not; ids that are gone are not found.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <thread>

#include "server/engine/job.h"

namespace job_table_test {

using namespace tq::engine;

namespace {

void check_agrees(const JobTable& table, const std::map<uint64_t, Job*>& model, uint64_t max_id) {
  REQUIRE(table.size() == model.size());
  for (uint64_t id = 1; id <= max_id; ++id) {
    auto it = model.find(id);
    Job* found = table.find(id);
    if (it == model.end()) {
      REQUIRE(found == nullptr);
    } else {
      REQUIRE(found == it->second);
      REQUIRE(found->payload() == std::to_string(id));
    }
  }
}

}  // namespace

TEST_SUITE("job_table") {
  TEST_CASE("finds and erases every job while the buckets grow, in either array") {
    JobTable table;
    std::map<uint64_t, Job*> model;
    std::mt19937 rng(5);
    uint64_t next_id = 1;
    size_t checks_while_growing = 0;
    size_t erased_while_growing = 0;
    for (int step = 0; step < 40'000; ++step) {
      if (rng() % 4 != 0 || model.empty()) {
        const uint64_t id = next_id++;
        model[id] = table.emplace(id, nullptr, std::to_string(id));
      } else {
        // Erase a random live job: early ids sit in chains not moved yet.
        auto it = model.lower_bound(1 + rng() % (next_id - 1));
        if (it == model.end()) it = model.begin();
        if (table.growing()) ++erased_while_growing;
        table.erase(it->second);
        model.erase(it);
      }
      if (table.growing() && step % 97 == 0) {
        check_agrees(table, model, next_id);
        ++checks_while_growing;
      }
    }
    check_agrees(table, model, next_id);
    // The test saw the table mid-growth, many times, over several doublings.
    CHECK(checks_while_growing >= 10);
    CHECK(erased_while_growing >= 100);
  }

  TEST_CASE("growth finishes: the old array is gone long before the next doubling") {
    JobTable table;
    uint64_t id = 1;
    while (!table.growing()) table.emplace(id++, nullptr, "x");
    const size_t started_at = table.size();  // the old array's size
    while (table.growing()) table.emplace(id++, nullptr, "x");
    // kChainsPerStep = 4 chains per add: a quarter of the old array's adds.
    CHECK(table.size() - started_at <= started_at / 4 + 1);
  }

  TEST_CASE("an emptied table gives its buckets' pages back and goes on working") {
    JobTable table;
    table.reserve(100'000);
    for (uint64_t id = 1; id <= 90'000; ++id) table.emplace(id, nullptr, std::to_string(id));
    CHECK(table.release_empty_buckets() == 0);  // not empty: nothing to give back
    for (uint64_t id = 1; id < 90'000; ++id) table.erase(table.find(id));
    CHECK(table.release_empty_buckets() == 0);  // one job left
    table.erase(table.find(90'000));
    const size_t buckets = table.buckets();
    CHECK(table.release_empty_buckets() >= buckets * sizeof(void*));
    CHECK(table.buckets() == buckets);  // same size: pages come back as zeros
    std::map<uint64_t, Job*> model;
    for (uint64_t id = 100'000; id < 150'000; ++id) {
      model[id] = table.emplace(id, nullptr, std::to_string(id));
    }
    for (uint64_t id = 100'000; id < 150'000; id += 2) {
      table.erase(model[id]);
      model.erase(id);
    }
    check_agrees(table, model, 150'000);
    JobTable small;  // the first array, a page or two: kept
    CHECK(small.release_empty_buckets() == 0);
  }

  TEST_CASE("reserve sizes the table at once, with no growth left to do") {
    JobTable table;
    for (uint64_t id = 1; id <= 1500; ++id) table.emplace(id, nullptr, std::to_string(id));
    table.reserve(100'000);
    CHECK_FALSE(table.growing());
    std::map<uint64_t, Job*> model;
    for (uint64_t id = 1; id <= 1500; ++id) model[id] = table.find(id);
    for (uint64_t id = 1501; id <= 90'000; ++id) {
      model[id] = table.emplace(id, nullptr, std::to_string(id));
      REQUIRE_FALSE(table.growing());
    }
    check_agrees(table, model, 90'000);
  }

  TEST_CASE("jobs with extras are freed with the table, moved or not") {
    // Under ASan a leak of an extras entry (its strings) fails this.
    JobTable table;
    uint64_t id = 1;
    while (!table.growing()) {
      Job* job = table.emplace(id, nullptr, "x");
      table.ensure_extras(*job).dedup_key = std::string(64, 'k') + std::to_string(id);
      ++id;
    }
    CHECK(table.extras(*table.find(1)) != nullptr);
  }

  TEST_CASE("a full table with a prefaulter doubles into the array faulted in ahead") {
    JobTable table;
    table.prefault_memory();
    std::map<uint64_t, Job*> model;
    uint64_t id = 1;
    // Past the first doubling, so the arrays are not the initial one.
    while (table.size() < 5000 || table.growing() || table.next_buckets() != 0) {
      model[id] = table.emplace(id, nullptr, std::to_string(id));
      ++id;
    }
    REQUIRE_FALSE(table.growing());
    const size_t count = table.buckets();
    CHECK(table.next_buckets() == 0);  // nothing mapped ahead before it is full
    while (table.size() < count) {
      model[id] = table.emplace(id, nullptr, std::to_string(id));
      ++id;
    }
    CHECK(table.next_buckets() == 0);
    // The add that finds it full asks for the next array, and doubles into
    // it at once if the helper thread was that quick.
    model[id] = table.emplace(id, nullptr, std::to_string(id));
    ++id;
    if (table.buckets() == count) {
      CHECK(table.next_buckets() == 2 * count);
      while (!table.next_ready()) std::this_thread::yield();
      model[id] = table.emplace(id, nullptr, std::to_string(id));  // now it doubles
      ++id;
    }
    CHECK(table.buckets() == 2 * count);
    CHECK(table.next_buckets() == 0);
    CHECK(table.growing());
    check_agrees(table, model, id);
    while (table.growing()) {
      model[id] = table.emplace(id, nullptr, std::to_string(id));
      ++id;
    }
    check_agrees(table, model, id);
  }

  TEST_CASE("while the next array is faulted in, the table keeps filling, up to a load of 1.25") {
    JobTable table;
    table.prefault_memory();
    uint64_t id = 1;
    // Whatever the helper thread's speed, the table never holds more than
    // 1.25 jobs a bucket, and never doubles before it is full.
    size_t most_per_bucket_x100 = 0;
    size_t buckets = table.buckets();
    while (table.size() < 300'000) {
      const size_t before = table.buckets();
      table.emplace(id++, nullptr, "x");
      if (table.buckets() != before) {
        CHECK(table.size() - 1 >= before);  // it was full when it doubled
      }
      most_per_bucket_x100 = std::max(most_per_bucket_x100, table.size() * 100 / table.buckets());
      buckets = table.buckets();
    }
    CHECK(most_per_bucket_x100 <= 125);
    CHECK(buckets >= 262'144);
  }

  TEST_CASE("CompactString: empty is no allocation - copies, moves and self-assignment keep bytes") {
    static_assert(sizeof(CompactString) == sizeof(void*));
    CompactString none;
    CHECK(none.empty());
    CHECK(none.view().empty());
    CompactString key("tq-client-2f7d951732fc006e-1");
    CHECK(key.size() == 28);
    CHECK(key == "tq-client-2f7d951732fc006e-1");
    CompactString copy = key;
    CHECK(copy == key.view());
    CompactString moved = std::move(copy);
    CHECK(moved == "tq-client-2f7d951732fc006e-1");
    moved = moved.view().substr(3, 6);  // from its own bytes
    CHECK(moved == "client");
    const CompactString& same = moved;
    moved = same;
    CHECK(moved == "client");
    moved = std::string_view("a\0b", 3);  // any bytes
    CHECK(moved.size() == 3);
    CHECK(moved.str() == std::string("a\0b", 3));
    moved = std::string_view();
    CHECK(moved.empty());
    key.clear();
    CHECK(key.empty());
  }
}

}  // namespace job_table_test
