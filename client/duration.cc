#include "client/duration.h"

#include <charconv>
#include <cstdint>

namespace tq::client {

std::string format_duration(milliseconds d) {
  return std::to_string(d.count()) + "ms";
}

std::optional<milliseconds> parse_duration(std::string_view text) {
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end == text.data()) return std::nullopt;
  std::string_view unit(end, static_cast<size_t>(text.data() + text.size() - end));
  uint64_t unit_ms = 0;
  if (unit.empty() || unit == "s") {
    unit_ms = 1000;
  } else if (unit == "ms") {
    unit_ms = 1;
  } else if (unit == "m") {
    unit_ms = 60'000;
  } else if (unit == "h") {
    unit_ms = 3'600'000;
  } else if (unit == "d") {
    unit_ms = 86'400'000;
  } else {
    return std::nullopt;
  }
  constexpr uint64_t kCenturyMs = 100ull * 365 * 86'400'000;
  if (n > kCenturyMs / unit_ms) return std::nullopt;
  return milliseconds(static_cast<int64_t>(n * unit_ms));
}

}  // namespace tq::client
