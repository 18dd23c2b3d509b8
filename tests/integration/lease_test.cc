#include <doctest/doctest.h>

#include <algorithm>

#include <signal.h>

#include <chrono>
#include <string>
#include <thread>

#include "tests/support/tqd_process.h"

namespace lease_test {

using tq::testing::TqdOptions;
using tq::testing::TqdProcess;

namespace {

TqdOptions short_lease() {
  TqdOptions o;
  o.config_yaml = "queues:\n  defaults:\n    ack_timeout: 300ms\n";
  return o;
}

}  // namespace

TEST_SUITE("lease") {
  TEST_CASE("a job not acked within ack_timeout comes back and can be dequeued again") {
    TqdProcess tqd(short_lease());
    auto c = tqd.client();
    REQUIRE(c.create("q").ok());
    auto id = c.enqueue("q", "work");
    REQUIRE(id.ok());
    // Before the DEQUEUE is sent: the lease cannot start earlier. (Taken
    // after its reply, a reply slow to arrive on a loaded machine, 150 ms
    // once under ASan, made the lease look shorter than it was.)
    auto started = std::chrono::steady_clock::now();
    auto first = c.dequeue("q");
    REQUIRE(first.ok());
    REQUIRE(first->has_value());
    CHECK((*first)->id == *id);

    // Until the lease ends the queue is empty; afterwards the job is back.
    std::optional<tq::client::Job> again;
    while (!again) {
      auto r = c.dequeue("q");
      REQUIRE(r.ok());
      again = *r;
      REQUIRE(std::chrono::steady_clock::now() - started < std::chrono::seconds(5));
      if (!again) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    auto waited = std::chrono::steady_clock::now() - started;
    CHECK(waited >= std::chrono::milliseconds(250));
    CHECK(again->id == *id);
    CHECK(again->payload == "work");

    auto stats = c.stats("q");
    REQUIRE(stats.ok());
    CHECK(tq::client::field(*stats, "timed_out_total") == "1");
    CHECK(c.ack(*id).ok());
  }

  TEST_CASE("an ACK that arrives after the lease expired is NOTLEASED") {
    TqdProcess tqd(short_lease());
    auto c = tqd.client();
    REQUIRE(c.create("q").ok());
    auto id = c.enqueue("q", "slow work");
    REQUIRE(id.ok());
    REQUIRE(c.dequeue("q").ok());
    // Wait until the server reports the expiry rather than guessing a time.
    auto started = std::chrono::steady_clock::now();
    for (;;) {
      auto stats = c.stats("q");
      REQUIRE(stats.ok());
      if (tq::client::field(*stats, "ready") == "1") break;
      REQUIRE(std::chrono::steady_clock::now() - started < std::chrono::seconds(5));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    auto late = c.ack(*id);
    REQUIRE_FALSE(late.ok());
    CHECK(late.error().code == "NOTLEASED");
  }

  TEST_CASE(
      "once the job went to another worker, the late worker's ACK is refused and the other's "
      "counts") {
    TqdProcess tqd(short_lease());
    auto late = tqd.client();
    REQUIRE(late.create("q").ok());
    auto id = late.enqueue("q", "slow work");
    REQUIRE(id.ok());
    REQUIRE(late.dequeue("q").ok());
    auto current = tqd.client();
    // Served by the sweeper once the first lease runs out.
    auto again = current.dequeue("q", std::chrono::milliseconds(5'000));
    REQUIRE(again.ok());
    REQUIRE(again->has_value());
    CHECK((*again)->id == *id);
    auto refused = late.ack(*id);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code == "NOTLEASED");
    CHECK(refused.error().message.find("delivered again (attempt 2)") != std::string::npos);
    CHECK(current.ack(*id).ok());
  }

  TEST_CASE(
      "a late worker back on a new connection cannot finish with its lease token the delivery "
      "another worker holds - the holder can") {
    TqdProcess tqd(short_lease());
    auto late = tqd.client();
    REQUIRE(late.create("q").ok());
    auto id = late.enqueue("q", "slow work");
    REQUIRE(id.ok());
    auto first = late.dequeue("q");
    REQUIRE(first.ok());
    REQUIRE(first->has_value());
    CHECK(tq::client::field((*first)->fields, "lease") == "1");
    late.close();  // the worker restarts, say
    auto current = tqd.client();
    auto again = current.dequeue("q", std::chrono::milliseconds(5'000));  // once the lease ran out
    REQUIRE(again.ok());
    REQUIRE(again->has_value());
    CHECK(tq::client::field((*again)->fields, "lease") == "2");
    // A plain ACK 1 here would finish the current delivery: this connection
    // was never handed the job. The token says which delivery it means.
    auto back = tqd.client();
    const std::string job = std::to_string(*id);
    for (const char* verb : {"ACK ", "TOUCH ", "NACK ", "ACK q "}) {
      auto refused = back.call(std::string(verb) + job + "@1");
      REQUIRE_FALSE(refused.ok());
      CHECK(refused.error().code == "NOTLEASED");
      CHECK(refused.error().message ==
            "job " + job +
                " is in another delivery now (lease=2, attempt 2), not lease=1: yours ended; the "
                "worker holding it finishes it");
    }
    auto looked = back.job(*id);
    REQUIRE(looked.ok());
    CHECK(looked->state == "leased");
    CHECK(tq::client::field(looked->fields, "lease") == "2");
    auto acked = current.call("ACK " + job);  // a plain id, as before tokens
    REQUIRE(acked.ok());
    CHECK(*acked == "acked " + job);
  }

  TEST_CASE(
      "a lease and its token outlive a restart: the token still ends it, the next delivery has "
      "a new one, the old one is refused, and a KICK's part of it is kept") {
    TqdProcess first;
    std::string job;
    {
      auto c = first.client();
      REQUIRE(c.create("q").ok());
      auto id = c.enqueue("q", "work");
      REQUIRE(id.ok());
      job = std::to_string(*id);
      REQUIRE(c.dequeue("q").ok());
      REQUIRE(c.call("FAIL " + job + "@1 broken").ok());
      REQUIRE(c.call("KICK " + job).ok());  // attempts back to 0, kicks 1
      auto kicked = c.dequeue("q");
      REQUIRE(kicked.ok());
      REQUIRE(kicked->has_value());
      CHECK(tq::client::field((*kicked)->fields, "lease") == "4294967297");  // 1 << 32 | 1
    }
    REQUIRE(first.stop(SIGTERM) == 0);
    tq::testing::TqdOptions again;
    again.dir = first.dir();
    TqdProcess second(again);
    auto c = second.client();
    // The lease is kept across the restart, token and all: a worker back on
    // a new connection gives it back by its token.
    auto shown = c.job(std::stoull(job));
    REQUIRE(shown.ok());
    CHECK(shown->state == "leased");
    CHECK(tq::client::field(shown->fields, "lease") == "4294967297");
    REQUIRE(c.call("NACK " + job + "@4294967297").ok());
    // The next delivery is attempt 2 of the same kick.
    auto redelivered = c.dequeue("q");
    REQUIRE(redelivered.ok());
    REQUIRE(redelivered->has_value());
    CHECK((*redelivered)->attempts == 2);
    CHECK(tq::client::field((*redelivered)->fields, "lease") == "4294967298");
    auto stale = c.call("ACK " + job + "@4294967297");
    REQUIRE_FALSE(stale.ok());
    CHECK(stale.error().code == "NOTLEASED");
    CHECK(stale.error().message.find("(lease=4294967298, attempt 2), not lease=4294967297") !=
          std::string::npos);
    auto acked = c.call("ACK " + job + "@4294967298");
    REQUIRE(acked.ok());
    CHECK(*acked == "acked " + job);
  }
}

}  // namespace lease_test
