#include "protocol/reply.h"

#include <array>
#include <charconv>
#include <cstring>

namespace tq::protocol {
namespace {

constexpr std::array<std::string_view, static_cast<size_t>(ErrorCode::kCount)> kNames{
    "BADFORMAT", "UNKNOWN", "NOQUEUE", "NOTFOUND", "NOTLEASED", "TOOBIG",    "EXISTS",
    "EMPTY",     "LIMIT",   "MAXCONN", "FULL",     "IO",        "NOAUTH",    "SHUTDOWN",
    "INTERNAL",  "TLS",     "BUSY",    "NOLOG",    "NOPERM",    "BADCONFIG", "TIMEOUT",
};

}  // namespace

std::string_view error_code_name(ErrorCode code) { return kNames[static_cast<size_t>(code)]; }

std::optional<ErrorCode> parse_error_code(std::string_view name) {
  for (size_t i = 0; i < kNames.size(); ++i) {
    if (kNames[i] == name) return static_cast<ErrorCode>(i);
  }
  return std::nullopt;
}

void append_error(std::string& out, ErrorCode code, std::string_view message) {
  out += "ERROR ";
  out += error_code_name(code);
  if (!message.empty()) {
    out += ' ';
    // Messages are ours, but they may quote client input or a config file's
    // text. Call sites quote input with append_escaped; this is the last
    // guard: a control byte (a line break would break the framing, an
    // escape sequence would reach a person's terminal through nc or the tq
    // prompt) becomes a space. UTF-8 text passes as it is.
    for (char c : message) {
      const auto byte = static_cast<unsigned char>(c);
      if (byte < 0x20 || byte == 0x7f) {
        out += ' ';
      } else {
        out += c;
      }
    }
  }
  out += '\n';
}

void append_ok(std::string& out, std::string_view text) {
  out += "OK";
  if (!text.empty()) {
    out += ' ';
    out += text;
  }
  out += '\n';
}

void append_number(std::string& out, uint64_t v) {
  // Two digits a step, from a table, written backwards: every reply carries
  // an id, and std::to_chars first counts the digits, then writes them
  // (about 75 instructions for a 6-digit id; this takes about half).
  static constexpr char kPairs[] =
      "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
      "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
      "8081828384858687888990919293949596979899";
  char buf[20];  // UINT64_MAX has 20 digits
  char* p = buf + sizeof buf;
  while (v >= 100) {
    p -= 2;
    std::memcpy(p, kPairs + 2 * (v % 100), 2);
    v /= 100;
  }
  if (v >= 10) {
    p -= 2;
    std::memcpy(p, kPairs + 2 * v, 2);
  } else {
    *--p = static_cast<char>('0' + v);
  }
  out.append(p, static_cast<size_t>(buf + sizeof buf - p));
}

void append_signed(std::string& out, int64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

void append_escaped(std::string& out, std::string_view bytes, size_t max_bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t n = bytes.size() < max_bytes ? bytes.size() : max_bytes;
  for (size_t i = 0; i < n; ++i) {
    auto c = static_cast<unsigned char>(bytes[i]);
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\\': out += "\\\\"; break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          out += "\\x";
          out += kHex[c >> 4];
          out += kHex[c & 0xf];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  if (bytes.size() > n) out += "...";
}

}  // namespace tq::protocol
