// The ready set against a model (an ordered set): random pushes of new and
// returning jobs, deliveries from the front, removals from the middle, over
// several priorities; order, size, peeking and walking always agree.
#include <doctest/doctest.h>

#include <random>
#include <set>

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
}

}  // namespace ready_set_test
