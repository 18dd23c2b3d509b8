#include <doctest/doctest.h>

#include <algorithm>

#include <set>
#include <thread>

#include "tests/support/thread_group.h"
#include "tests/support/tqd_process.h"

using tq::testing::TqdOptions;
using tq::testing::TqdProcess;

TEST_SUITE("concurrency") {
  TEST_CASE("many connections enqueue at once - every job is delivered exactly once") {
    TqdProcess tqd;
    REQUIRE(tqd.client().create("load").ok());
    constexpr int kProducers = 64;
    constexpr int kJobsEach = 100;

    // Every producer connects first, then all pipeline their ENQUEUEs at once.
    std::vector<tq::client::LineSocket> sockets;
    for (int p = 0; p < kProducers; ++p) sockets.push_back(tqd.socket());
    tq::testing::ThreadGroup threads;
    std::vector<std::vector<std::string>> replies(kProducers);
    for (int p = 0; p < kProducers; ++p) {
      threads.spawn([&, p] {
        std::string batch;
        for (int j = 0; j < kJobsEach; ++j) {
          batch += "ENQUEUE load p" + std::to_string(p) + "-j" + std::to_string(j) + "\n";
        }
        if (!sockets[p].send(batch).ok()) return;
        for (int j = 0; j < kJobsEach; ++j) {
          auto line = sockets[p].read_line();
          if (!line) return;
          replies[p].push_back(*line);
        }
      });
    }
    threads.join();
    std::set<std::string> ids;
    for (const auto& r : replies) {
      REQUIRE(r.size() == kJobsEach);
      for (const auto& line : r) {
        REQUIRE(line.rfind("OK ", 0) == 0);
        ids.insert(line.substr(3));
      }
    }
    CHECK(ids.size() == kProducers * kJobsEach);

    // Several workers drain the queue concurrently; no job twice, none lost.
    std::mutex mu;
    std::multiset<std::string> seen;
    for (int w = 0; w < 8; ++w) {
      threads.spawn([&] {
        auto c = tqd.client();
        for (;;) {
          auto job = c.dequeue("load");
          if (!job.ok() || !job->has_value()) return;
          {
            std::lock_guard<std::mutex> lock(mu);
            seen.insert((*job)->payload);
          }
          if (!c.ack((*job)->id).ok()) return;
        }
      });
    }
    threads.join();
    CHECK(seen.size() == kProducers * kJobsEach);
    CHECK(std::set<std::string>(seen.begin(), seen.end()).size() == seen.size());
  }

  TEST_CASE("connections over limits.max_connections are refused with MAXCONN") {
    TqdOptions options;
    options.config_yaml = "limits:\n  max_connections: 4\n";
    TqdProcess tqd(options);
    std::vector<tq::client::Client> clients;
    for (int i = 0; i < 4; ++i) {
      clients.push_back(tqd.client());
      REQUIRE(clients.back().ping().ok());
    }
    auto extra = tqd.socket();
    auto refused = extra.read_line();
    REQUIRE(refused.ok());
    CHECK(refused->rfind("ERROR MAXCONN ", 0) == 0);
    CHECK_FALSE(extra.read_line().ok());  // and closed

    // Closing one makes room again.
    clients.pop_back();
    bool admitted = false;
    for (int attempt = 0; attempt < 100 && !admitted; ++attempt) {
      auto c = tqd.client();
      admitted = c.ping().ok();
      if (!admitted) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CHECK(admitted);
  }
}
