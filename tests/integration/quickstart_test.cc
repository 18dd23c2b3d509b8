#include <doctest/doctest.h>

#include <algorithm>

#include "tests/support/tqd_process.h"

namespace quickstart_test {

using tq::protocol::ErrorCode;
using tq::testing::TqdProcess;

TEST_SUITE("quickstart") {
  TEST_CASE("three producers enqueue to emails - a worker dequeues and acks each") {
    TqdProcess tqd;
    const std::vector<std::string> messages = {"Send welcome email", "Send password reset",
                                               "Send notification"};
    // Each producer does what the original one did: CREATE (ignoring EXISTS),
    // then ENQUEUE, on its own connection.
    std::vector<uint64_t> ids;
    for (const auto& message : messages) {
      auto producer = tqd.client();
      auto created = producer.create("emails");
      CHECK((created.ok() || created.error().is(ErrorCode::kExists)));
      auto id = producer.enqueue("emails", message);
      REQUIRE(id.ok());
      ids.push_back(*id);
    }

    // The worker speaks the original worker's lines: DEQUEUE <q>, ACK <q> <id>.
    auto worker = tqd.socket();
    for (size_t i = 0; i < messages.size(); ++i) {
      REQUIRE(worker.send("DEQUEUE emails\n").ok());
      CHECK(*worker.read_line() == "OK " + std::to_string(ids[i]) + " " + messages[i]);
      REQUIRE(worker.send("ACK emails " + std::to_string(ids[i]) + "\n").ok());
      CHECK(*worker.read_line() == "OK acked " + std::to_string(ids[i]));
    }
    REQUIRE(worker.send("DEQUEUE emails\n").ok());
    auto empty = worker.read_line();
    REQUIRE(empty.ok());
    CHECK(empty->rfind("OK", 0) != 0);  // the original worker waits and retries on non-OK

    auto admin = tqd.client();
    auto list = admin.list();
    REQUIRE(list.ok());
    CHECK(*list == std::vector<std::string>{"emails"});
    auto stats = admin.stats("emails");
    REQUIRE(stats.ok());
    CHECK(tq::client::field(*stats, "acked_total") == "3");
    CHECK(tq::client::field(*stats, "ready") == "0");
  }
}

}  // namespace quickstart_test
