// PayloadMaker: the filler is made once; each job overwrites its first bytes
// with its number.
#include "bench/payload.h"

#include <algorithm>
#include <charconv>

namespace tq::bench {

PayloadMaker::PayloadMaker(size_t size) : filler_(size, 'x') {
  // A repeating alphabet compresses like typical text would, not like zeros.
  for (size_t i = 0; i < size; ++i) filler_[i] = static_cast<char>('a' + i % 26);
}

std::string_view PayloadMaker::make(std::string& scratch, uint64_t number) const {
  if (scratch.size() != filler_.size()) scratch = filler_;
  // "<number>." then the filler; a payload shorter than the number keeps its
  // last digits, which is still unique among the jobs in flight.
  char digits[21];
  auto [end, ec] = std::to_chars(digits, digits + 20, number);
  (void)ec;
  *end++ = '.';
  size_t len = static_cast<size_t>(end - digits);
  size_t take = std::min(len, scratch.size());
  std::copy(end - take, end, scratch.begin());
  std::copy(filler_.begin() + static_cast<std::ptrdiff_t>(take), filler_.end(),
            scratch.begin() + static_cast<std::ptrdiff_t>(take));
  return scratch;
}

}  // namespace tq::bench
