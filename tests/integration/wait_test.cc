// How long ready jobs have waited (STATS <queue> head_wait_ms, the
// tq_queue_wait_seconds histogram) against a real tqd: the wait grows while
// nobody takes a job, and a crash does not start it again.
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <string>
#include <thread>

#include "tests/integration/line_call.h"
#include "tests/support/tqd_process.h"

namespace wait_test {

using tq::testing::call;
using tq::testing::stat_via;
using tq::testing::TqdOptions;
using tq::testing::TqdProcess;

namespace {

int64_t head_wait_ms(TqdProcess& tqd) {
  auto s = tqd.socket();
  const std::string value = stat_via(s, "head_wait_ms", "q");
  REQUIRE(!value.empty());
  return std::stoll(value);
}

// Time passing is what is tested here: the wait is wall-clock time.
void let_pass(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

}  // namespace

TEST_SUITE("wait") {
  TEST_CASE("head_wait_ms grows while nobody takes a job, and a crash does not reset it") {
    const std::string dir = tq::testing::make_temp_dir();
    TqdOptions o;
    o.dir = dir;
    o.config_yaml = "wal:\n  fsync: always\n";
    {
      TqdProcess tqd(o);
      auto s = tqd.socket();
      CHECK(call(s, "CREATE q") == "OK created q");
      CHECK(call(s, "ENQUEUE q x") == "OK 1");
      let_pass(400);
      CHECK(head_wait_ms(tqd) >= 400);
      CHECK(tqd.stop(SIGKILL) == 128 + SIGKILL);
    }
    {
      // The JOB record holds when it became ready: replay keeps the wait.
      TqdProcess tqd(o);
      CHECK(head_wait_ms(tqd) >= 400);
      auto s = tqd.socket();
      CHECK(call(s, "DEQUEUE q") == "OK 1 x");
      CHECK(head_wait_ms(tqd) == 0);
      CHECK(call(s, "NACK 1") == "OK nacked 1");
      let_pass(400);
      CHECK(head_wait_ms(tqd) >= 400);
      CHECK(tqd.stop(SIGKILL) == 128 + SIGKILL);
    }
    {
      // So does the RELEASE record of a job given back.
      TqdProcess tqd(o);
      const int64_t after = head_wait_ms(tqd);
      CHECK(after >= 400);
      CHECK(after < 60'000);
    }
    tq::testing::remove_tree(dir);
  }
}

}  // namespace wait_test
