// A CLI11 check for the numeric flags of tq and the example programs, so
// that a bad one is refused in our words ("--port: expected a whole number
// from 1 to 65535, got '99999'") rather than CLI11's ("Could not convert").
// Header-only, for programs that link CLI11: the client library does not.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

namespace tq::client {

// Checked before CLI11 converts the value, so its message never shows.
inline CLI::Validator whole_number(uint64_t least, uint64_t most) {
  return CLI::Validator(
      [least, most](std::string& value) -> std::string {
        uint64_t n = 0;
        const char* end = value.data() + value.size();
        auto [at, ec] = std::from_chars(value.data(), end, n);
        if (ec == std::errc() && at == end && n >= least && n <= most) return "";
        return "expected a whole number from " + std::to_string(least) + " to " +
               std::to_string(most) + ", got '" + value + "'";
      },
      "");
}

}  // namespace tq::client
