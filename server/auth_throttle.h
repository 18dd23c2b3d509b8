// How many wrong passwords tqd considers, per client address (an IPv6
// client's /64: throttle_address) and second.
//
// Counting per address, not for all connections together, keeps guessing slow
// for each attacker (however many connections it opens) without letting one
// attacker lock every other client out: a server-wide count refused even the
// right password from anyone once strangers had spent the second's budget.
// The table stays bounded: once it holds kMaxAddresses rows, the rows whose
// second is over are dropped, and if all are still live, new addresses share
// one budget.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <unordered_map>

namespace tq::server {

class AuthThrottle {
 public:
  static constexpr uint64_t kFailuresPerSecond = 20;
  static constexpr size_t kMaxAddresses = 65'536;

  // Whether an AUTH from `address` may be checked now.
  bool allowed(const std::string& address, int64_t now_ms) {
    const Window* w = find(address, now_ms);
    return w == nullptr || w->failures < kFailuresPerSecond;
  }

  // A wrong password from `address`.
  void failed(const std::string& address, int64_t now_ms) {
    if (windows_.size() >= kMaxAddresses && windows_.count(address) == 0) forget_expired(now_ms);
    const bool own_row = windows_.size() < kMaxAddresses || windows_.count(address) != 0;
    Window& w = own_row ? windows_[address] : overflow_;
    if (now_ms - w.start_ms >= 1000) w = Window{now_ms, 0};
    ++w.failures;
  }

  size_t tracked() const { return windows_.size(); }

 private:
  struct Window {
    int64_t start_ms = 0;
    uint64_t failures = 0;
  };

  const Window* find(const std::string& address, int64_t now_ms) const {
    auto it = windows_.find(address);
    const Window* w = nullptr;
    if (it != windows_.end()) {
      w = &it->second;
    } else if (windows_.size() >= kMaxAddresses) {
      w = &overflow_;
    }
    return w != nullptr && now_ms - w->start_ms < 1000 ? w : nullptr;
  }

  void forget_expired(int64_t now_ms) {
    for (auto it = windows_.begin(); it != windows_.end();) {
      it = now_ms - it->second.start_ms >= 1000 ? windows_.erase(it) : std::next(it);
    }
  }

  std::unordered_map<std::string, Window> windows_;
  Window overflow_;
};

}  // namespace tq::server
