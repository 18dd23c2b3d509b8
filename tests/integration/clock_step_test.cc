// The wall clock stepped (an NTP step, a VM resumed) under a running tqd,
// in process with a clock the test moves: what is counted on the wall clock
// (deadlines the log keeps) moves with it, and what only this process
// counts does not.
#include <doctest/doctest.h>

#include <string>

#include "server/log.h"
#include "tests/integration/in_process_tqd.h"
#include "tests/integration/line_call.h"
#include "wal/memory_file_system.h"

namespace clock_step_test {

using namespace tq;
using tq::testing::call;
using tq::testing::InProcessTqd;
using tq::testing::stat_reaches;
using tq::testing::stat_via;
using tq::testing::SteppedClock;

namespace {

server::Config memory_config() {
  server::Config c;
  c.port = 0;
  c.data_dir = "/data";
  c.log_level = server::LogLevel::kError;
  return c;
}

// tqd in this process, on an in-memory disk and a wall clock the test steps.
struct SteppedTqd {
  bool quiet = (server::set_log_level(server::LogLevel::kError), true);
  wal::MemoryFileSystem fs;
  SteppedClock clock;
  InProcessTqd tqd{fs, memory_config(), &clock};
};

// Sends `request` (a DEQUEUE ... WAIT) on `worker`, steps the wall clock by
// `step_ms` once the server counts the waiter, and returns the reply, which
// must come within 5 s.
std::string reply_to_wait_over_step(client::LineSocket& admin, client::LineSocket worker,
                                    SteppedClock& clock, const std::string& request,
                                    int64_t step_ms) {
  REQUIRE(worker.send(request + "\n").ok());
  REQUIRE(stat_reaches(admin, "waiters", "1"));
  clock.step_ms(step_ms);
  worker.set_timeout_ms(5'000);
  auto reply = worker.read_line();
  REQUIRE(reply.ok());
  return *reply;
}

}  // namespace

TEST_SUITE("clock_step") {
  TEST_CASE("a DEQUEUE ... WAIT lasts its duration though the wall clock is set back meanwhile") {
    SteppedTqd stepped;
    SteppedClock& clock = stepped.clock;
    auto admin = stepped.tqd.socket();
    CHECK(call(admin, "CREATE q") == "OK created q");
    // On the wall clock it waited on until the clock came back to where it
    // ended, an hour; on the loop's clock it ends after its 300 ms.
    const std::string reply = reply_to_wait_over_step(admin, stepped.tqd.socket(), clock,
                                                      "DEQUEUE q WAIT 300ms", -3'600'000);
    CHECK(reply.rfind("ERROR EMPTY", 0) == 0);
  }

  TEST_CASE(
      "a delayed job the wall clock jumped past is ready within a second, not a delay later") {
    SteppedTqd stepped;
    SteppedClock& clock = stepped.clock;
    auto s = stepped.tqd.socket();
    CHECK(call(s, "CREATE q") == "OK created q");
    CHECK(call(s, "PUT q 1 DELAY 1h\nx") == "OK 1");
    // The sweeper's timer is armed now, an hour of loop time away.
    REQUIRE(stat_reaches(s, "jobs_delayed", "1"));
    clock.step_ms(2 * 3'600'000);  // two hours on (an NTP step, a host resumed from suspend)
    CHECK(call(s, "DEQUEUE q WAIT 5s") == "OK 1 x");
  }

  TEST_CASE("a wait that ends after a delayed job fell due gets the job, not EMPTY") {
    SteppedTqd stepped;
    SteppedClock& clock = stepped.clock;
    auto admin = stepped.tqd.socket();
    CHECK(call(admin, "CREATE q") == "OK created q");
    CHECK(call(admin, "PUT q 1 DELAY 1h\nx") == "OK 1");
    // The step comes while the wait's 300 ms run: nothing wakes the loop
    // before the wait's timer, whose iteration is the first to find the job
    // due (the sweeper's timer is an hour of loop time away). The same
    // holds when a delay and a wait end in the same millisecond.
    CHECK(reply_to_wait_over_step(admin, stepped.tqd.socket(), clock, "DEQUEUE q WAIT 300ms",
                                  2 * 3'600'000) == "OK 1 x");
  }

  TEST_CASE(
      "a worker waiting on a rate limit is served as it allows though the clock is set back") {
    SteppedTqd stepped;
    SteppedClock& clock = stepped.clock;
    auto admin = stepped.tqd.socket();
    CHECK(call(admin, "CREATE q") == "OK created q");
    tq::testing::config_via(admin, "CONFIG q rate_limit=1 rate_window=1s");
    CHECK(call(admin, "ENQUEUE q a") == "OK 1");
    CHECK(call(admin, "ENQUEUE q b") == "OK 2");
    CHECK(call(admin, "DEQUEUE q") == "OK 1 a");  // the bucket held one
    // The bucket counts on from the new time: the next token comes a second
    // after the step is noticed (within a second), not an hour later.
    CHECK(reply_to_wait_over_step(admin, stepped.tqd.socket(), clock, "DEQUEUE q WAIT 1h",
                                  -3'600'000) == "OK 2 b");
  }

  TEST_CASE("uptime_seconds counts this process's time, not the wall clock's steps") {
    SteppedTqd stepped;
    auto admin = stepped.tqd.socket();
    stepped.clock.step_ms(2 * 3'600'000);  // two hours on
    // Seconds at most (a slow machine): not the two hours the step added.
    CHECK(std::stoull(stat_via(admin, "uptime_seconds")) < 60);
  }
}

}  // namespace clock_step_test
