// tq --stat's lines, from made-up samples: gauges as sent, counters as rates
// over the time between two samples, and the cases where no rate can be
// told (the first line, a server that restarted, a field it does not send).
#include <doctest/doctest.h>

#include <sstream>
#include <string>
#include <vector>

#include "client/stat_view.h"

namespace stat_view_test {

using tq::client::compact_duration;
using tq::client::compact_number;
using tq::client::Fields;
using tq::client::StatView;

namespace {

// The row's cells, split on spaces: the clock first.
std::vector<std::string> cells(const std::string& row) {
  std::istringstream in(row);
  std::vector<std::string> out;
  for (std::string cell; in >> cell;) out.push_back(cell);
  return out;
}

Fields server_sample(uint64_t ready, uint64_t enqueued, uint64_t acked, const char* loop) {
  return {{"jobs_ready", std::to_string(ready)},
          {"max_head_wait_ms", "1500"},
          {"jobs_delayed", "2"},
          {"jobs_leased", "3"},
          {"jobs_dead", "4"},
          {"jobs_enqueued_total", std::to_string(enqueued)},
          {"jobs_dequeued_total", "0"},
          {"jobs_acked_total", std::to_string(acked)},
          {"jobs_timed_out_total", "0"},
          {"connections_current", "7"},
          {"waiters", "1"},
          {"loop_busy_pct", loop}};
}

}  // namespace

TEST_SUITE("stat_view") {
  TEST_CASE("compact numbers fit a column") {
    CHECK(compact_number(0) == "0");
    CHECK(compact_number(99'999) == "99999");
    CHECK(compact_number(12.6) == "13");
    CHECK(compact_number(123'456) == "123.5k");
    CHECK(compact_number(9'999'000) == "9999.0k");
    CHECK(compact_number(12'345'678) == "12.3M");
    CHECK(compact_number(98'765'432'100) == "98.8G");
    CHECK(compact_number(9'999'960) == "10.0M");  // not 10000.0k, a character too wide
    CHECK(compact_number(9'999'940) == "9999.9k");
  }

  TEST_CASE("the server's line: gauges as sent, counters per second since the last line") {
    StatView view("");
    CHECK(cells(view.header()) ==
          std::vector<std::string>{"time", "ready", "wait", "delayed", "leased", "dead", "enq/s",
                                   "deq/s", "ack/s", "tmout/s", "conns", "waiters", "loop%"});
    const Fields first = server_sample(10, 1000, 500, "0");
    const Fields second = server_sample(40, 1600, 800, "37.5");
    // The first line has nothing to take a rate against.
    CHECK(cells(view.row("10:00:00", first, nullptr, 0)) ==
          std::vector<std::string>{"10:00:00", "10", "1.5s", "2", "3", "4", "-", "-", "-", "-", "7",
                                   "1", "0"});
    // 600 enqueued and 300 acked in half a second.
    CHECK(cells(view.row("10:00:01", second, &first, 500)) ==
          std::vector<std::string>{"10:00:01", "40", "1.5s", "2", "3", "4", "1200", "0", "600", "0",
                                   "7", "1", "37.5"});
    // Columns line up under their titles, whatever the numbers' widths.
    CHECK(view.row("10:00:01", second, &first, 500).size() == view.header().size());
  }

  TEST_CASE("no rate across a restart, and ? for a field the server does not send") {
    StatView view("");
    const Fields before = server_sample(10, 5000, 100, "1.0");
    Fields after = server_sample(10, 20, 100, "1.0");  // the counters began again
    after.erase(after.begin() + 4);                    // no jobs_dead
    const auto row = cells(view.row("10:00:02", after, &before, 1000));
    CHECK(row[5] == "?");
    CHECK(row[6] == "-");  // enqueued went down
    CHECK(row[8] == "0");  // acked stayed
  }

  TEST_CASE("waits read as durations in at most 7 characters") {
    CHECK(compact_duration(0) == "0");
    CHECK(compact_duration(0.4) == "0");
    CHECK(compact_duration(4) == "4ms");
    CHECK(compact_duration(999) == "999ms");
    CHECK(compact_duration(999.7) == "1.0s");
    CHECK(compact_duration(12'340) == "12.3s");
    CHECK(compact_duration(59'960) == "1.0m");
    CHECK(compact_duration(2'700'000) == "45.0m");
    CHECK(compact_duration(3'597'000) == "1.0h");
    CHECK(compact_duration(12'600'000) == "3.5h");
    CHECK(compact_duration(3'599'000'000.0) == "999.7h");
    CHECK(compact_duration(4'500'000'000.0) == "52.1d");
    CHECK(compact_duration(100'000'000'000.0) == "1157d");
    for (double ms = 1; ms < 1e13; ms *= 1.37) {
      INFO(ms);
      CHECK(compact_duration(ms).size() <= 7);
    }
  }

  TEST_CASE("a queue's line has its own columns, held included") {
    StatView view("emails");
    CHECK(view.queue() == "emails");
    CHECK(cells(view.header()) == std::vector<std::string>{"time", "ready", "wait", "held",
                                                           "delayed", "leased", "dead", "enq/s",
                                                           "deq/s", "ack/s", "tmout/s", "waiters"});
    const Fields first = {{"ready", "5"},           {"head_wait_ms", "83000"}, {"held", "1"},
                          {"delayed", "0"},         {"leased", "2"},           {"dead", "0"},
                          {"enqueued_total", "10"}, {"dequeued_total", "4"},   {"acked_total", "2"},
                          {"timed_out_total", "0"}, {"waiters", "3"}};
    Fields second = first;
    second[7].second = "14";  // 10 deliveries
    second[9].second = "1";   // a lease ran out
    CHECK(cells(view.row("10:00:03", second, &first, 2000)) ==
          std::vector<std::string>{"10:00:03", "5", "1.4m", "1", "0", "2", "0", "0", "5", "0",
                                   "0.5", "3"});
  }
}

}  // namespace stat_view_test
