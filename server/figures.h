// The figures tqd shows about itself: one list, walked by STATS (name and
// value lines) and by the Prometheus endpoint (server/exposition.h), so the
// two can never disagree on what there is or what it is worth.
//
// A figure carries what both readers need: the name STATS shows, the value,
// whether it is a level (gauge), a count since start (counter) or a word
// (text), the unit its value is counted in (the exposition converts to
// seconds and ratios, STATS shows it as it is) and one line of help. Every
// string_view points into static storage or into the sources it was read
// from, so a list is valid as long as they are.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "server/engine/engine.h"
#include "server/journal.h"
#include "server/stats.h"
#include "server/waiters.h"
#include "wal/log.h"

namespace tq::server {

enum class FigureKind : uint8_t {
  kGauge,    // a level that goes up and down (0 or 1 for a yes/no)
  kCounter,  // counts up from 0 since tqd started
  kText,     // a word (version, wal_fsync): value unused
};

// What the value is counted in; the name says it too (_us, _ms, _pct).
enum class FigureUnit : uint8_t {
  kNone,  // a count, bytes or whole seconds
  kMicroseconds,
  kMilliseconds,
  kTenthsPercent,  // 375 is 37.5%
};

struct Figure {
  std::string_view name;  // as STATS shows it: "jobs_ready", "wal_fsync_us_total"
  FigureKind kind = FigureKind::kGauge;
  FigureUnit unit = FigureUnit::kNone;
  uint64_t value = 0;
  std::string_view text;  // kText: the word
  std::string_view help;  // one line, for Prometheus's # HELP
  // A figure that is one of a set (commands_<verb>) shares one exposition
  // family with the others, told apart by a label: family "commands_by_verb",
  // label "verb", label_value "ack". Empty family: the figure is its own.
  // A kText figure's word goes in the label named here (default: its name).
  std::string_view family;
  std::string_view label;
  std::string_view label_value;
};

// Where the server-wide figures come from. Null pointers: that part is not
// there (no log, no waiters), and its figures are left out as STATS does.
struct FigureSources {
  const engine::Engine& engine;
  const ServerStats& stats;
  const WaiterTable* waiters = nullptr;
  wal::Log* log = nullptr;  // not const: reading its stats takes its lock
  const Journal* journal = nullptr;
};

// Server-wide figures, in STATS order.
std::vector<Figure> server_figures(const FigureSources& sources);

// One queue's figures, in STATS <queue> order (without the "queue <name>"
// line that heads that reply: the name is a label, not a figure). Every
// queue gives the same figures in the same order.
// queue. `now_ms`: the engine's time, for head_wait_ms.
std::vector<Figure> queue_figures(const engine::Queue& queue, int64_t now_ms);

// The value as STATS shows it: the word, the whole number, or a percentage
// with one decimal ("37.5").
std::string stats_value(const Figure& figure);

// The whole Prometheus exposition of the server and of every queue.
std::string metrics_exposition(const FigureSources& sources);

}  // namespace tq::server
