// Little-endian fixed-width integers and LEB128 varints: how record headers
// and record bodies are written. Decoding never reads past the end it is
// given and says so when the input is short.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace tq::wal {

inline void put_fixed32(std::string& out, uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out.append(b, 4);
}

inline void put_fixed64(std::string& out, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out.append(b, 8);
}

inline uint32_t get_fixed32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

inline uint64_t get_fixed64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

inline void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

inline void put_signed_varint(std::string& out, int64_t v) {
  // Zigzag, so small negative numbers stay small.
  put_varint(out, (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
}

inline void put_bytes(std::string& out, std::string_view bytes) {
  put_varint(out, bytes.size());
  out.append(bytes);
}

// Reads fields from a body front to back; any read past the end sets failed()
// and returns zeros, so a decoder checks once at the end.
class BodyReader {
 public:
  explicit BodyReader(std::string_view body) : rest_(body) {}

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (rest_.empty()) return fail();
      auto byte = static_cast<uint8_t>(rest_.front());
      rest_.remove_prefix(1);
      v |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return v;
    }
    return fail();
  }

  int64_t signed_varint() {
    uint64_t z = varint();
    return static_cast<int64_t>((z >> 1) ^ (~(z & 1) + 1));
  }

  uint8_t byte() {
    if (rest_.empty()) return static_cast<uint8_t>(fail());
    auto b = static_cast<uint8_t>(rest_.front());
    rest_.remove_prefix(1);
    return b;
  }

  std::string_view bytes() {
    uint64_t n = varint();
    if (failed_ || n > rest_.size()) {
      fail();
      return {};
    }
    std::string_view b = rest_.substr(0, n);
    rest_.remove_prefix(n);
    return b;
  }

  // Everything not yet read.
  std::string_view rest() {
    std::string_view r = rest_;
    rest_ = {};
    return r;
  }

  bool empty() const { return rest_.empty(); }
  bool failed() const { return failed_; }

 private:
  uint64_t fail() {
    failed_ = true;
    rest_ = {};
    return 0;
  }

  std::string_view rest_;
  bool failed_ = false;
};

}  // namespace tq::wal
