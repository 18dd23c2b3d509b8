// Time for the engine. The engine never reads the system clock itself: it is
// handed a Clock, so tests drive time by hand and never sleep.
//
// Times are wall-clock milliseconds since the Unix epoch: deadlines (delays,
// TTLs) are written to the log and must keep their meaning across a restart.
#pragma once

#include <chrono>
#include <cstdint>

namespace tq::engine {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t now_ms() const = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t now_ms() const override {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  }
};

// A clock that moves only when told to: for tests.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_ms = 1'700'000'000'000) : now_(start_ms) {}
  int64_t now_ms() const override { return now_; }
  void advance_ms(int64_t ms) { now_ += ms; }
  void set_ms(int64_t ms) { now_ = ms; }

 private:
  int64_t now_;
};

}  // namespace tq::engine
