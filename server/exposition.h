// The Prometheus text exposition format (version 0.0.4) of a list of
// figures (server/figures.h): for each family a "# HELP" and a "# TYPE"
// line, then its samples. Plain string building, no I/O, so every rule is
// unit-tested.
//
// Names: "tq_" and the STATS name for server-wide figures, "tq_queue_" and
// the STATS <queue> name for per-queue ones, which carry a queue="<name>"
// label (a family of their own, so that summing a per-queue family never
// counts the server-wide figure twice). Units become base units: _us and _ms
// become _seconds (the value divided, exactly, in decimal), _pct becomes
// _ratio (0 to 1). A counter's name ends in _total. A word (version,
// wal_fsync) is an _info gauge of 1 with the word as a label. Label values
// and help text are escaped as the format says (\\, \" and \n). A queue's
// histogram (add_queue_histogram) has no STATS line: buckets do not read as
// one number.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "server/figures.h"

namespace tq::server {

class ExpositionBuilder {
 public:
  // The server-wide figures; those sharing a family must be adjacent.
  void add_server(const std::vector<Figure>& figures);
  // One queue's figures. Every queue must give the same figures in the same
  // order (queue_figures() does); their samples are gathered per family.
  // The figures' views must stay valid until finish().
  void add_queue(std::string_view queue, const std::vector<Figure>& figures);
  // One queue's histogram of waits, as family `name` ("tq_queue_wait_seconds":
  // _bucket with le in seconds, _sum, _count); every queue's samples of a
  // family go under one header, after the queues' figures.
  void add_queue_histogram(std::string_view queue, std::string_view name, std::string_view help,
                           const engine::WaitHistogram& waits);
  // The whole text, ending in a newline.
  std::string finish();
  // The same text in pieces, in order (each family's header, then its
  // samples), not copied into one: a scrape of thousands of queues writes
  // them as they are.
  std::vector<std::string> finish_pieces();

 private:
  std::string out_;
  std::vector<Figure> queue_heads_;         // the first queue's figures: names, kinds, help
  std::vector<std::string> queue_names_;    // their family names
  std::vector<std::string> queue_samples_;  // every queue's sample lines, by position
  struct HistogramFamily {
    std::string name;
    std::string help;
    std::string samples;
  };
  std::vector<HistogramFamily> histograms_;
};

// The family name a figure is exposed under ("tq_wal_fsync_seconds_total").
std::string exposition_name(const Figure& figure, std::string_view prefix);

// A label value or help text as the format wants it.
std::string escape_label_value(std::string_view value);
std::string escape_help(std::string_view help);

// metrics_exposition (figures.h), made a few queues at a time, so that a scrape of a server with
// many queues does not hold the loop: 8,000 queues with long names made an
// 86 MB body in one go, 1.2-1.5 s in which no client was served. Queues go
// in name order from where the last step stopped, so one created or dropped
// meanwhile is in or out as it happens to fall; the figures of a body made
// over several steps are from moments milliseconds apart.
class ExpositionInSteps {
 public:
  // Adds the server's figures (on the first call), then queues until
  // `budget` has passed (at least 16 a call); true once every queue is in.
  bool step(const FigureSources& sources, std::chrono::nanoseconds budget);
  std::string finish() { return text_.finish(); }
  std::vector<std::string> finish_pieces() { return text_.finish_pieces(); }

 private:
  ExpositionBuilder text_;
  std::string next_queue_;  // the name to go on from (every name is not empty)
  bool started_ = false;
};

}  // namespace tq::server
