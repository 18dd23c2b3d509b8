// Durations as the protocol writes them (PROTOCOL.md, "Conventions"): a whole
// number with a unit, ms, s, m, h or d, a bare number meaning seconds. The
// library sends every duration in milliseconds ("1500ms"), so nothing is
// rounded; people (and the examples' flags) may use any unit.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace tq::client {

using std::chrono::milliseconds;

// "1500ms".
std::string format_duration(milliseconds d);

// In the largest unit that keeps it whole, as a person would write it and
// the server reads it back: "30s", "5m", "1h", "1500ms", "0".
std::string readable_duration(milliseconds d);

// "500ms", "30s", "2m", "1h", "1d", "30" (seconds); nullopt when malformed,
// negative or absurdly large (over 100 years).
std::optional<milliseconds> parse_duration(std::string_view text);

// Milliseconds in at most 7 characters, in the largest unit that keeps a
// digit before the point: 0, 850ms, 12.3s, 45.0m, 3.5h, 52.1d, 1157d (to
// 27,000 years).
std::string compact_duration(double ms);

}  // namespace tq::client
