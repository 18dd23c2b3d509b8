// `tq --stat [queue]`: a line per interval from the server's (or one
// queue's) STATS, as vmstat and redis-cli --stat print them: how many jobs
// wait in each state, and how fast they move. Gauges are shown as they are;
// counters (the *_total fields) as a rate per second since the line before.
//
// This file only turns two samples into a line, so it can be tested with
// made-up samples and times; tq_main.cc takes the samples.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "client/duration.h"
#include "client/job.h"

namespace tq::client {

class StatView {
 public:
  // `queue` empty: the server's STATS; otherwise STATS <queue>.
  explicit StatView(std::string queue);

  const std::string& queue() const { return queue_; }
  // The column titles, aligned as the rows are.
  std::string header() const;
  // One row: `clock` first (the time of the sample), then each column from
  // `sample`. Rates are per second over `elapsed_ms` since `previous`; without
  // one (the first row) or when a counter went down (the server restarted)
  // the rate is "-". A field the server did not send is "?".
  std::string row(std::string_view clock, const Fields& sample, const Fields* previous,
                  int64_t elapsed_ms) const;

 private:
  enum class Show : uint8_t {
    kAsIs,      // a gauge
    kRate,      // a *_total counter, shown per second
    kDuration,  // milliseconds, shown as compact_duration()
  };
  struct Column {
    std::string_view title;
    std::string_view field;
    Show show;
  };

  std::string queue_;
  std::vector<Column> columns_;
};

// A number in at most 7 characters: whole below 100,000, then 123.4k,
// 9999.9k, 10.0M, 1.2G, up to T.
std::string compact_number(double value);

}  // namespace tq::client
