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

  TEST_CASE("ids left stale at a FIFO's front until the next top hide no job and show none") {
    // A delivery or DELETE of a FIFO's front pops only its own id
    // (ReadySet::erase): ids of jobs taken from just behind it stay at the
    // front until the next top() drops them. Whatever reads the set in
    // between passes over them.
    JobTable table;
    ReadySet ready(&table);
    auto put = [&](uint64_t id, int32_t priority, int64_t ready_since) {
      Job* job = table.emplace(id, nullptr, "");
      job->priority = priority;
      job->deadline_ms = ready_since;
      ready.push(job);
      return job;
    };
    for (uint64_t id = 1; id <= 8; ++id) put(id, 0, static_cast<int64_t>(100 * id));
    for (uint64_t id = 20; id <= 22; ++id) put(id, 1, static_cast<int64_t>(10'000 + id));
    // Taken from just behind each front: 2 leased (its lease ends early: if
    // it were read as ready, it would be the longest wait), 3 and 21
    // deleted.
    Job* leased = table.find(2);
    ready.erase(leased);
    leased->deadline_ms = 1;
    for (uint64_t id : {3, 21}) {
      ready.erase(table.find(id));
      table.erase(table.find(id));
    }
    // Each front goes: 20 delivered, 1 deleted. Both FIFOs now start with
    // stale ids, and nothing has called top() since.
    CHECK(ready.pop()->id == 20);
    ready.erase(table.find(1));
    table.erase(table.find(1));
    auto all = [&] {
      std::vector<uint64_t> ids;
      ready.first(SIZE_MAX, [&](Job* j) { ids.push_back(j->id); });
      return ids;
    };
    auto walked = [&] {
      std::set<uint64_t> ids;
      for (size_t p = 0; p < ready.positions(); ++p) {
        if (Job* j = ready.at(p)) ids.insert(j->id);
      }
      return ids;
    };
    CHECK(ready.size() == 6);
    CHECK(all() == std::vector<uint64_t>{22, 4, 5, 6, 7, 8});
    std::vector<uint64_t> two;
    ready.first(2, [&](Job* j) { two.push_back(j->id); });
    CHECK(two == std::vector<uint64_t>{22, 4});
    CHECK(ready.head_ready_since() == 400);
    CHECK(walked() == std::set<uint64_t>{4, 5, 6, 7, 8, 22});
    CHECK(ready.jobs().size() == 6);
    // The first live job behind the stale ids is deleted: not the front,
    // its id stays behind too.
    ready.erase(table.find(4));
    table.erase(table.find(4));
    CHECK(all() == std::vector<uint64_t>{22, 5, 6, 7, 8});
    CHECK(ready.head_ready_since() == 500);
    // The lease ends: 2 goes to the returns, before everything at its priority.
    leased->deadline_ms = 50;
    ready.push(leased);
    CHECK(all() == std::vector<uint64_t>{22, 2, 5, 6, 7, 8});
    CHECK(ready.head_ready_since() == 50);
    CHECK(walked() == std::set<uint64_t>{2, 5, 6, 7, 8, 22});
    std::vector<uint64_t> delivered;
    while (Job* j = ready.pop()) delivered.push_back(j->id);
    CHECK(delivered == std::vector<uint64_t>{22, 2, 5, 6, 7, 8});
    CHECK(ready.empty());
    CHECK(ready.positions() == 0);
  }

  TEST_CASE("a lane whose FIFO holds only stale ids delivers its returns, then new jobs") {
    JobTable table;
    ReadySet ready(&table);
    std::vector<Job*> jobs;
    for (uint64_t id = 1; id <= 3; ++id) {
      jobs.push_back(table.emplace(id, nullptr, ""));
      ready.push(jobs.back());
    }
    ready.erase(jobs[2]);  // 3 and 2 leased, from behind the front
    ready.erase(jobs[1]);
    ready.push(jobs[1]);  // 2 given back: to the returns
    CHECK(ready.pop() == jobs[0]);
    // The FIFO holds 2 and 3, both stale; the lane lives on its returns.
    CHECK(ready.size() == 1);
    std::vector<Job*> peeked;
    ready.first(10, [&](Job* j) { peeked.push_back(j); });
    CHECK(peeked == std::vector<Job*>{jobs[1]});
    CHECK(ready.jobs() == std::vector<Job*>{jobs[1]});
    Job* four = table.emplace(4, nullptr, "");
    ready.push(four);
    CHECK(ready.pop() == jobs[1]);
    CHECK(ready.pop() == four);
    CHECK(ready.empty());
    ready.push(jobs[2]);  // 3's lease ends: the lane starts over
    CHECK(ready.pop() == jobs[2]);
    CHECK(ready.top() == nullptr);
  }
}

}  // namespace ready_set_test
