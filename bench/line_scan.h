// Small helpers shared by the adapters: find one reply line at the front of
// the received bytes, and append decimal numbers without allocating.
#pragma once

#include <charconv>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace tq::bench {

struct ScannedLine {
  std::string_view line;  // without "\n" or "\r\n"
  size_t consumed = 0;    // bytes up to and including the '\n'
};

// The first whole line of `input`, or nullopt until its '\n' has arrived.
inline std::optional<ScannedLine> scan_line(std::string_view input) {
  const void* nl = std::memchr(input.data(), '\n', input.size());
  if (nl == nullptr) return std::nullopt;
  size_t end = static_cast<size_t>(static_cast<const char*>(nl) - input.data());
  std::string_view line = input.substr(0, end);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return ScannedLine{line, end + 1};
}

inline bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// Parses a whole decimal number (optionally negative); nullopt otherwise.
inline std::optional<int64_t> parse_int(std::string_view text) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

inline void append_decimal(std::string& out, uint64_t v) {
  char digits[20];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, v);
  (void)ec;  // 20 digits always hold a uint64_t
  out.append(digits, static_cast<size_t>(end - digits));
}

}  // namespace tq::bench
