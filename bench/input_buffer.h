// InputBuffer: bytes received and not yet parsed, in one contiguous run so a
// reply can be parsed in place. Space is reused: parsed bytes are dropped by
// moving the unparsed tail to the front only when room runs short, and the
// buffer grows only for a reply larger than itself.
#pragma once

#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

namespace tq::bench {

class InputBuffer {
 public:
  explicit InputBuffer(size_t initial = 64 * 1024) : data_(initial) {}

  std::string_view unparsed() const { return {data_.data() + begin_, end_ - begin_}; }

  void consume(size_t n) {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }

  // Makes room for at least `min_free` bytes after the data and returns it.
  // Invalidates views from unparsed().
  char* tail(size_t min_free) {
    if (data_.size() - end_ < min_free && begin_ > 0) {
      std::memmove(data_.data(), data_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (data_.size() - end_ < min_free) data_.resize(std::max(data_.size() * 2, end_ + min_free));
    return data_.data() + end_;
  }
  size_t tail_size() const { return data_.size() - end_; }
  void commit(size_t n) { end_ += n; }

 private:
  std::vector<char> data_;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace tq::bench
