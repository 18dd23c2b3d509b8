// A string in one pointer, for JobExtras: empty is null, and anything else
// one block holding its length, then its bytes. Most of a job's extras hold
// one string at most (a dedup key, say) and leave the others empty: a
// std::string is 32 bytes even then, and three of them were a third of the
// 470 bytes a job with a dedup key took.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <utility>

namespace tq::engine {

class CompactString {
 public:
  CompactString() = default;
  explicit CompactString(std::string_view s) { assign(s); }
  CompactString(const CompactString& other) { assign(other.view()); }
  CompactString(CompactString&& other) noexcept : block_(std::exchange(other.block_, nullptr)) {}
  CompactString& operator=(const CompactString& other) {
    assign(other.view());  // safe on itself: the new block is made first
    return *this;
  }
  CompactString& operator=(CompactString&& other) noexcept {
    std::swap(block_, other.block_);
    return *this;
  }
  CompactString& operator=(std::string_view s) {
    assign(s);
    return *this;
  }
  ~CompactString() { std::free(block_); }

  bool empty() const { return block_ == nullptr; }
  size_t size() const {
    if (block_ == nullptr) return 0;
    uint32_t n;
    std::memcpy(&n, block_, sizeof n);
    return n;
  }
  std::string_view view() const { return {block_ == nullptr ? "" : block_ + kHeader, size()}; }
  operator std::string_view() const { return view(); }  // NOLINT: used as a string_view
  std::string str() const { return std::string(view()); }
  void clear() {
    std::free(block_);
    block_ = nullptr;
  }

  friend bool operator==(const CompactString& a, std::string_view b) { return a.view() == b; }

 private:
  static constexpr size_t kHeader = sizeof(uint32_t);

  // Up to 4 GiB: the longest string a job carries (a FAIL reason, a key) is
  // bounded by the request line, far below.
  void assign(std::string_view s) {
    char* fresh = nullptr;
    if (!s.empty()) {
      fresh = static_cast<char*>(std::malloc(kHeader + s.size()));
      if (fresh == nullptr) throw std::bad_alloc();
      const auto n = static_cast<uint32_t>(s.size());
      std::memcpy(fresh, &n, sizeof n);
      std::memcpy(fresh + kHeader, s.data(), s.size());
    }
    std::free(block_);
    block_ = fresh;
  }

  char* block_ = nullptr;
};

}  // namespace tq::engine
