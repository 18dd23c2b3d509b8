// Message groups over TCP against a real tqd: a worker blocked in WAIT gets
// a group's next job the moment the one before it is acked, several workers
// never hold two jobs of one group at once, and the order survives a
// SIGKILL and a restart.
#include <doctest/doctest.h>

#include <signal.h>

#include <map>
#include <set>
#include <string>

#include "tests/integration/line_call.h"
#include "tests/support/tqd_process.h"

namespace groups_test {

using tq::testing::call;
using tq::testing::TqdOptions;
using tq::testing::TqdProcess;

namespace {

// PUT with a group; returns the id.
std::string put(tq::client::LineSocket& s, const std::string& group, const std::string& payload) {
  const std::string reply = call(s, "PUT q " + std::to_string(payload.size()) + " GROUP " + group +
                                        "\n" + payload);
  REQUIRE(reply.rfind("OK ", 0) == 0);
  return reply.substr(3);
}

}  // namespace

TEST_SUITE("groups") {
  TEST_CASE("a worker waiting on a group's next job gets it as soon as the one before is acked") {
    TqdProcess tqd;
    auto admin = tqd.socket();
    REQUIRE(call(admin, "CREATE q") == "OK created q");
    const std::string first = put(admin, "g", "one");
    put(admin, "g", "two");
    REQUIRE(call(admin, "DEQUEUE q") == "OK " + first + " one");
    auto worker = tqd.socket(30'000);
    REQUIRE(worker.send("DEQUEUE q WAIT 20\n").ok());
    REQUIRE(tq::testing::stat_reaches(admin, "waiters", "1"));
    CHECK(tq::testing::stat_via(admin, "held", "q") == "1");
    REQUIRE(call(admin, "ACK " + first) == "OK acked " + first);
    auto got = worker.read_line();
    REQUIRE(got.ok());
    CHECK(got.value().find(" two") != std::string::npos);
  }

  TEST_CASE("workers taking batches never hold two jobs of one group, and each group keeps its order") {
    TqdProcess tqd;
    auto s = tqd.socket();
    REQUIRE(call(s, "CREATE q") == "OK created q");
    constexpr int kGroups = 5, kPerGroup = 20;
    for (int i = 0; i < kPerGroup; ++i) {
      for (int g = 0; g < kGroups; ++g) put(s, "g" + std::to_string(g), std::to_string(i));
    }
    std::map<std::string, int> next;  // group -> the payload it must deliver next
    int done = 0;
    while (done < kGroups * kPerGroup) {
      REQUIRE(s.send("DEQUEUE q COUNT 100\n").ok());
      auto head = s.read_line();
      REQUIRE(head.ok());
      const int n = std::stoi(head.value().substr(3));
      REQUIRE(n > 0);
      CHECK(n <= kGroups);
      std::vector<std::string> ids, payloads;
      for (int i = 0; i < n; ++i) {
        auto header = s.read_line();
        auto payload = s.read_line();
        REQUIRE((header.ok() && payload.ok()));
        ids.push_back(header.value().substr(4, header.value().find(' ', 4) - 4));
        payloads.push_back(payload.value());
      }
      std::set<std::string> groups_in_batch;
      for (int i = 0; i < n; ++i) {
        REQUIRE(call(s, "JOB " + ids[i]) == "OK 1");
        auto frame = s.read_line();
        REQUIRE(frame.ok());
        REQUIRE(s.read_line().ok());  // the payload
        const std::string& line = frame.value();
        REQUIRE(line.find("group=") != std::string::npos);
        const std::string group = line.substr(line.find("group=") + 6);
        CHECK(groups_in_batch.insert(group).second);
        CHECK(std::stoi(payloads[i]) == next[group]);
        ++next[group];
      }
      for (const auto& id : ids) REQUIRE(call(s, "ACK " + id) == "OK acked " + id);
      done += n;
    }
    CHECK(call(s, "DEQUEUE q") == "ERROR EMPTY queue 'q' has no ready job");
  }

  TEST_CASE("a group's order survives SIGKILL - a lease kept across the restart holds it") {
    TqdOptions options;
    options.dir = tq::testing::make_temp_dir();
    // sync_leases: the lease is durable before the DEQUEUE's reply, as the
    // SIGKILL right after it needs (without, a crash may lose the newest).
    options.config_yaml = "wal:\n  fsync: always\n  sync_leases: true\n";
    std::string first, second;
    {
      TqdProcess tqd(options);
      auto s = tqd.socket();
      REQUIRE(call(s, "CREATE q") == "OK created q");
      first = put(s, "acct-1", "open");
      second = put(s, "acct-1", "deposit");
      put(s, "acct-2", "other");
      REQUIRE(call(s, "DEQUEUE q") == "OK " + first + " open");
      tqd.stop(SIGKILL);
    }
    TqdProcess tqd(options);
    auto s = tqd.socket();
    CHECK(tq::testing::stat_via(s, "held", "q") == "1");
    CHECK(tq::testing::stat_via(s, "leased", "q") == "1");  // "open", to its lease's end
    CHECK(call(s, "DEQUEUE q") == "OK " + std::to_string(std::stoull(second) + 1) + " other");
    CHECK(call(s, "DEQUEUE q") ==
          "ERROR EMPTY queue 'q' has no ready job: 1 held, each behind another job of its group");
    // The worker that had "open", back on a new connection, finishes it.
    REQUIRE(call(s, "ACK " + first) == "OK acked " + first);
    CHECK(call(s, "DEQUEUE q") == "OK " + second + " deposit");
  }
}

}  // namespace groups_test
