// Comparing secrets (passwords, tokens) so that the time taken tells an
// attacker nothing about where the first difference is.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string_view>

namespace tq::server {

// Time that depends only on the lengths, not on the contents.
inline bool same_secret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

}  // namespace tq::server
