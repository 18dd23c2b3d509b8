#include "client/duration.h"

#include "protocol/command_table.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

namespace tq::client {

std::string format_duration(milliseconds d) {
  return std::to_string(d.count()) + "ms";
}

std::string readable_duration(milliseconds d) {
  const int64_t ms = d.count();
  if (ms == 0) return "0";
  constexpr struct {
    int64_t ms;
    const char* unit;
  } kUnits[] = {{86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1000, "s"}};
  for (const auto& u : kUnits) {
    if (ms % u.ms == 0) return std::to_string(ms / u.ms) + u.unit;
  }
  return std::to_string(ms) + "ms";
}

std::optional<milliseconds> parse_duration(std::string_view text) {
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end == text.data()) return std::nullopt;
  // In any case, as the server takes them.
  std::string_view unit(end, static_cast<size_t>(text.data() + text.size() - end));
  using protocol::equals_ignoring_case;
  uint64_t unit_ms = 0;
  if (unit.empty() || equals_ignoring_case("S", unit)) {
    unit_ms = 1000;
  } else if (equals_ignoring_case("MS", unit)) {
    unit_ms = 1;
  } else if (equals_ignoring_case("M", unit)) {
    unit_ms = 60'000;
  } else if (equals_ignoring_case("H", unit)) {
    unit_ms = 3'600'000;
  } else if (equals_ignoring_case("D", unit)) {
    unit_ms = 86'400'000;
  } else {
    return std::nullopt;
  }
  constexpr uint64_t kCenturyMs = 100ull * 365 * 86'400'000;
  if (n > kCenturyMs / unit_ms) return std::nullopt;
  return milliseconds(static_cast<int64_t>(n * unit_ms));
}

std::string compact_duration(double ms) {
  char text[32];
  if (ms < 999.5) {
    std::snprintf(text, sizeof text, ms < 0.5 ? "0" : "%.0fms", std::floor(ms + 0.5));
    return text;
  }
  // The next unit once one decimal would round to its size: 60s, 60m; hours
  // go on to 999.9h (1000h is 41.7d; 10000h would be 8 characters).
  struct Step {
    double from;  // the value at which to move on
    double factor;
    const char* unit;
  };
  static constexpr Step kSteps[] = {{59.95, 60, "m"}, {59.95, 60, "h"}, {999.95, 24, "d"}};
  double value = ms / 1000;
  const char* unit = "s";
  for (const Step& step : kSteps) {
    if (value < step.from) break;
    value /= step.factor;
    unit = step.unit;
  }
  std::snprintf(text, sizeof text, value < 999.95 ? "%.1f%s" : "%.0f%s", value, unit);
  return text;
}

}  // namespace tq::client
