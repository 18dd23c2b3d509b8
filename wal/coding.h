// Little-endian fixed-width integers and LEB128 varints: how record headers
// and record bodies are written. Decoding never reads past the end it is
// given and says so when the input is short.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace tq::wal {

// The encoders write to a raw buffer and return the end, so a record's
// fields go out in one append: std::string's per-append checks cost more
// than the bytes. The std::string forms are for the cold paths.
inline constexpr size_t kMaxVarintBytes = 10;

// Little-endian on disk whatever the machine; on a little-endian one (every
// one tq runs on so far) a single move, which the byte loop was not
// compiled into.
inline char* store_fixed32(char* p, uint32_t v) {
  if constexpr (std::endian::native != std::endian::little) v = __builtin_bswap32(v);
  std::memcpy(p, &v, sizeof v);
  return p + sizeof v;
}

inline char* store_fixed64(char* p, uint64_t v) {
  if constexpr (std::endian::native != std::endian::little) v = __builtin_bswap64(v);
  std::memcpy(p, &v, sizeof v);
  return p + sizeof v;
}

// At most kMaxVarintBytes.
inline char* store_varint(char* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

// Zigzag, so small negative numbers stay small.
inline uint64_t zigzag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}

inline void put_fixed32(std::string& out, uint32_t v) {
  char b[4];
  out.append(b, store_fixed32(b, v));
}

inline void put_fixed64(std::string& out, uint64_t v) {
  char b[8];
  out.append(b, store_fixed64(b, v));
}

inline uint32_t get_fixed32(const char* p) {
  uint32_t v = 0;
  std::memcpy(&v, p, sizeof v);
  if constexpr (std::endian::native != std::endian::little) v = __builtin_bswap32(v);
  return v;
}

inline uint64_t get_fixed64(const char* p) {
  uint64_t v = 0;
  std::memcpy(&v, p, sizeof v);
  if constexpr (std::endian::native != std::endian::little) v = __builtin_bswap64(v);
  return v;
}

inline void put_varint(std::string& out, uint64_t v) {
  char b[kMaxVarintBytes];
  out.append(b, store_varint(b, v));
}

inline void put_signed_varint(std::string& out, int64_t v) {
  put_varint(out, zigzag(v));
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
