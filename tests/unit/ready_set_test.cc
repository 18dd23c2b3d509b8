// The ready set against a model (an ordered set): random pushes of new and
// returning jobs, deliveries from the front, removals from the middle, over
// several priorities; order, size, peeking and walking always agree.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "server/engine/queue.h"
#include "server/engine/ready_set.h"

namespace ready_set_test {

using namespace tq::engine;

namespace {

struct Order {
  bool operator()(const Job* a, const Job* b) const {
    if (a->priority != b->priority) return a->priority > b->priority;
    return a->id < b->id;
  }
};

}  // namespace

TEST_SUITE("ready_set") {
  TEST_CASE("a stale id that a job of another queue takes again is not live in the first queue") {
    // Only a damaged log moves a job to another queue (replay then makes it
    // anew there): the id left stale in the first queue's FIFO must stay dead.
    JobTable table;
    Queue first(&table), second(&table);
    Job* kept = table.emplace(1, &first, "a");
    first.ready.push(kept);
    first.ready.push(table.emplace(2, &first, "b"));
    first.ready.erase(table.find(2));  // not at the front: id 2 stays behind, stale
    table.erase(table.find(2));
    Job* moved = table.emplace(2, &second, "b");
    second.ready.push(moved);
    CHECK(first.ready.jobs() == std::vector<Job*>{kept});
    CHECK(first.ready.pop() == kept);
    CHECK(first.ready.top() == nullptr);
    CHECK(second.ready.pop() == moved);
  }

  TEST_CASE("agrees with an ordered set through random pushes, pops and removals") {
    JobTable table;
    ReadySet ready(&table);
    std::set<Job*, Order> model;
    std::vector<Job*> outside;  // jobs that exist but are not ready
    std::mt19937 rng(11);
    uint64_t next_id = 1;
    for (int step = 0; step < 60'000; ++step) {
      int op = static_cast<int>(rng() % 10);
      if (op < 4) {  // a new job
        Job* job = table.emplace(next_id++, nullptr, "x");
        job->priority = static_cast<int32_t>(rng() % 3);
        ready.push(job);
        model.insert(job);
      } else if (op < 6 && !outside.empty()) {  // a job comes back to its place
        size_t i = rng() % outside.size();
        Job* job = outside[i];
        outside.erase(outside.begin() + static_cast<long>(i));
        // Sometimes with another priority (NACK ... PRIORITY; replay moves a
        // ready job to its newer priority).
        if (rng() % 4 == 0) job->priority = static_cast<int32_t>(rng() % 3);
        ready.push(job);
        model.insert(job);
      } else if (op < 8 && !model.empty()) {  // deliver the front
        Job* job = ready.pop();
        REQUIRE(job == *model.begin());
        model.erase(model.begin());
        outside.push_back(job);
      } else if (!model.empty()) {  // remove one from anywhere
        auto it = model.begin();
        std::advance(it, rng() % model.size());
        Job* job = *it;
        model.erase(it);
        ready.erase(job);
        if (rng() % 2) {
          table.erase(job);  // gone for good: its FIFO id is now stale
        } else {
          outside.push_back(job);
        }
      }
      REQUIRE(ready.size() == model.size());
      REQUIRE(ready.top() == (model.empty() ? nullptr : *model.begin()));
      if (step % 997 == 0) {
        std::vector<Job*> peeked;
        ready.first(50, [&](Job* j) { peeked.push_back(j); });
        std::vector<Job*> expected(model.begin(), model.end());
        if (expected.size() > 50) expected.resize(50);
        CHECK(peeked == expected);
        std::set<Job*> walked;
        for (size_t p = 0; p < ready.positions(); ++p) {
          if (Job* j = ready.at(p)) walked.insert(j);
        }
        CHECK(walked == std::set<Job*>(model.begin(), model.end()));
      }
    }
  }

  TEST_CASE("a job moved to another priority's FIFO is not also live at its old place") {
    // What a replay of "NACK 7 PRIORITY -5" does: job 7 is ready behind job
    // 6 at priority 0, then its JOB record moves it to priority -5, where it
    // is the newest. Its id stays behind in priority 0's FIFO.
    JobTable table;
    ReadySet ready(&table);
    Job* six = table.emplace(6, nullptr, "w");
    Job* seven = table.emplace(7, nullptr, "x");
    ready.push(six);
    ready.push(seven);
    ready.erase(seven);
    seven->priority = -5;
    ready.push(seven);
    Job* eight = table.emplace(8, nullptr, "y");
    ready.push(eight);
    std::vector<uint64_t> order;
    ready.first(10, [&](Job* j) { order.push_back(j->id); });
    CHECK(order == std::vector<uint64_t>{6, 8, 7});
    CHECK(ready.jobs().size() == 3);
    CHECK(ready.pop() == six);
    CHECK(ready.pop() == eight);
    CHECK(ready.pop() == seven);
    CHECK(ready.empty());
  }

  TEST_CASE("many removals from the middle do not leave the FIFO growing") {
    JobTable table;
    ReadySet ready(&table);
    std::vector<Job*> jobs;
    for (uint64_t id = 1; id <= 100'000; ++id) {
      jobs.push_back(table.emplace(id, nullptr, ""));
      ready.push(jobs.back());
    }
    // Remove every job but the first: the FIFO's ids all go stale.
    for (size_t i = 1; i < jobs.size(); ++i) ready.erase(jobs[i]);
    CHECK(ready.size() == 1);
    CHECK(ready.positions() < 2'100);  // compacted, not 100,000 stale ids
    CHECK(ready.top() == jobs[0]);
  }

  TEST_CASE("take_all hands each live job over once - stale ids, several lanes, returns") {
    // PURGE and DROP (Engine::destroy_waiting) empty a set this way, freeing
    // each job as it comes out: a job must not be handed over twice (its id
    // stale in one lane, the job live in another lane or in a heap of
    // returns), nor read once freed.
    JobTable table;
    ReadySet ready(&table);
    auto put = [&](uint64_t id, int32_t priority) {
      Job* job = table.emplace(id, nullptr, "job " + std::to_string(id));
      job->priority = priority;
      ready.push(job);
    };
    for (uint64_t id = 1; id <= 6; ++id) put(id, 0);
    // 1 is delivered: it stays outside the set.
    Job* outside = ready.pop();
    REQUIRE(outside->id == 1);
    put(10, 2);
    put(11, 2);
    // 3 is leased from the middle and given back: its id stays in priority
    // 0's FIFO, stale, the job in the returns beside it.
    Job* three = table.find(3);
    ready.erase(three);
    ready.push(three);
    REQUIRE_FALSE(ReadySet::in_fifo(*three));
    // 4 comes back at priority 1, where it is the newest: live in that
    // lane's FIFO, stale in priority 0's.
    Job* four = table.find(4);
    ready.erase(four);
    four->priority = 1;
    ready.push(four);
    REQUIRE(ReadySet::in_fifo(*four));
    // 11 moves to priority 0, the newest there: stale in priority 2's FIFO.
    Job* eleven = table.find(11);
    ready.erase(eleven);
    eleven->priority = 0;
    ready.push(eleven);
    REQUIRE(ReadySet::in_fifo(*eleven));
    // 2, at the front of priority 0's FIFO, moves to priority 2's returns.
    Job* two = table.find(2);
    ready.erase(two);
    two->priority = 2;
    ready.push(two);
    REQUIRE_FALSE(ReadySet::in_fifo(*two));
    // 5 is deleted: its id stays behind, its job gone from the table.
    ready.erase(table.find(5));
    table.erase(table.find(5));
    REQUIRE(ready.size() == 6);  // 2, 3, 4, 6, 10, 11
    std::multiset<uint64_t> handed;
    SUBCASE("each freed as it comes out") {
      ready.take_all([&](Job* job) {
        CHECK(job->slot == kNoSlot);
        handed.insert(job->id);
        table.erase(job);
      });
      CHECK(table.size() == 1);  // 1, which was outside
      CHECK(table.find(1) == outside);
    }
    SUBCASE("kept, and pushed back into the emptied set") {
      std::vector<Job*> taken;
      ready.take_all([&](Job* job) {
        CHECK(job->slot == kNoSlot);
        handed.insert(job->id);
        taken.push_back(job);
      });
      CHECK(ready.empty());
      for (Job* job : taken) ready.push(job);
      std::vector<uint64_t> order;
      while (Job* job = ready.pop()) order.push_back(job->id);
      CHECK(order == std::vector<uint64_t>{2, 10, 4, 3, 6, 11});
    }
    CHECK(handed == std::multiset<uint64_t>{2, 3, 4, 6, 10, 11});
    CHECK(ready.size() == 0);
    CHECK(ready.empty());
    CHECK(ready.top() == nullptr);
    CHECK(ready.positions() == 0);
    CHECK(ready.jobs().empty());
    CHECK(ready.head_ready_since() == INT64_MAX);
    // The set starts over: a job with an old id is a FIFO's first again.
    ready.push(outside);
    Job* next = table.emplace(20, nullptr, "next");
    ready.push(next);
    CHECK(ready.pop() == outside);
    CHECK(ready.pop() == next);
    CHECK(ready.empty());
  }
}

}  // namespace ready_set_test
