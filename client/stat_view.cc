#include "client/stat_view.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <optional>

namespace tq::client {
namespace {

constexpr size_t kClockWidth = 8;   // HH:MM:SS
constexpr size_t kColumnWidth = 8;  // a title or compact_number(), right-aligned, and a space

// Right-aligned, and at least one space from the cell before.
void append_cell(std::string& line, std::string_view text) {
  line.append(text.size() < kColumnWidth ? kColumnWidth - text.size() : 1, ' ');
  line += text;
}

// A count, or a figure with decimals (loop_busy_pct is "37.5").
std::optional<double> number_field(const Fields& fields, std::string_view name) {
  for (const auto& [key, value] : fields) {
    if (key != name) continue;
    double number = 0;
    const char* end = value.data() + value.size();
    auto [stop, error] = std::from_chars(value.data(), end, number);
    if (error != std::errc() || stop != end || number < 0) return std::nullopt;
    return number;
  }
  return std::nullopt;
}

std::string one_decimal(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", value);
  return text;
}

}  // namespace

std::string compact_number(double value) {
  char text[32];
  if (value < 100'000) {
    std::snprintf(text, sizeof text, "%.0f", std::floor(value + 0.5));
    return text;
  }
  // The next unit as soon as one decimal would round to 10000 (9999.96k
  // prints 10000.0k: one character too many for the column).
  static constexpr const char* kSuffixes[] = {"k", "M", "G", "T"};
  double scaled = value / 1e3;
  size_t unit = 0;
  while (scaled >= 9999.95 && unit + 1 < std::size(kSuffixes)) {
    scaled /= 1e3;
    ++unit;
  }
  std::snprintf(text, sizeof text, "%.1f%s", scaled, kSuffixes[unit]);
  return text;
}

StatView::StatView(std::string queue) : queue_(std::move(queue)) {
  // The same story for both: what waits (ready, delayed), what is being
  // worked on (leased), what failed for good (dead), and the flow through;
  // and how long the next jobs have waited (the server: in the queue where
  // they have waited longest).
  constexpr Show kAsIs = Show::kAsIs;
  constexpr Show kRate = Show::kRate;
  if (queue_.empty()) {
    columns_ = {
        {"ready", "jobs_ready", kAsIs},
        {"wait", "max_head_wait_ms", Show::kDuration},
        {"delayed", "jobs_delayed", kAsIs},
        {"leased", "jobs_leased", kAsIs},
        {"dead", "jobs_dead", kAsIs},
        {"enq/s", "jobs_enqueued_total", kRate},
        {"deq/s", "jobs_dequeued_total", kRate},
        {"ack/s", "jobs_acked_total", kRate},
        {"tmout/s", "jobs_timed_out_total", kRate},
        {"conns", "connections_current", kAsIs},
        {"waiters", "waiters", kAsIs},
        {"loop%", "loop_busy_pct", kAsIs},
    };
  } else {
    columns_ = {{"ready", "ready", kAsIs},
                {"wait", "head_wait_ms", Show::kDuration},
                {"held", "held", kAsIs},
                {"delayed", "delayed", kAsIs},
                {"leased", "leased", kAsIs},
                {"dead", "dead", kAsIs},
                {"enq/s", "enqueued_total", kRate},
                {"deq/s", "dequeued_total", kRate},
                {"ack/s", "acked_total", kRate},
                {"tmout/s", "timed_out_total", kRate},
                {"waiters", "waiters", kAsIs}};
  }
}

std::string StatView::header() const {
  std::string line = "time";
  line.append(kClockWidth - line.size(), ' ');
  for (const Column& column : columns_) append_cell(line, column.title);
  return line;
}

std::string StatView::row(std::string_view clock, const Fields& sample, const Fields* previous,
                          int64_t elapsed_ms) const {
  std::string line(clock);
  if (line.size() < kClockWidth) line.append(kClockWidth - line.size(), ' ');
  for (const Column& column : columns_) {
    const std::optional<double> now = number_field(sample, column.field);
    if (!now) {
      append_cell(line, "?");
      continue;
    }
    if (column.show == Show::kDuration) {
      append_cell(line, compact_duration(*now));
      continue;
    }
    if (column.show == Show::kAsIs) {
      // Whole numbers, but a share keeps its decimal: "37.5".
      append_cell(
          line, *now < 100 && *now != std::floor(*now) ? one_decimal(*now) : compact_number(*now));
      continue;
    }
    const std::optional<double> before =
        previous != nullptr ? number_field(*previous, column.field) : std::nullopt;
    if (!before || *before > *now || elapsed_ms <= 0) {
      append_cell(line, "-");
      continue;
    }
    const double per_second = (*now - *before) * 1000.0 / static_cast<double>(elapsed_ms);
    // A slow trickle (4 jobs in 10 s) is not shown as 0.
    const bool trickle = per_second < 9.95 && per_second != std::floor(per_second);
    append_cell(line, trickle ? one_decimal(per_second) : compact_number(per_second));
  }
  return line;
}

}  // namespace tq::client
