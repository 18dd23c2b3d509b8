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

// "500ms", "30s", "2m", "1h", "1d", "30" (seconds); nullopt when malformed,
// negative or absurdly large (over 100 years).
std::optional<milliseconds> parse_duration(std::string_view text);

}  // namespace tq::client
