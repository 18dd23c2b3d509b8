// Threads a test runs beside its own checks, joined however the test ends.
//
// A joinable std::thread destroyed while a failed REQUIRE unwinds the test
// calls std::terminate, and the run ends with "terminate called without an
// active exception" instead of the check that failed. A ThreadGroup joins
// in its destructor, after running `stop` (set a flag, kill the server the
// threads talk to) so that threads that loop until told can end.
//
// A thread's body must not let an exception out (that too would terminate):
// whatever it throws is caught here and reported as a failed check, with
// its message when it has one.
#pragma once

#include <doctest/doctest.h>

#include <exception>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace tq::testing {

class ThreadGroup {
 public:
  explicit ThreadGroup(std::function<void()> stop = {}) : stop_(std::move(stop)) {}
  ~ThreadGroup() {
    if (!threads_.empty() && stop_) stop_();
    join();
  }
  ThreadGroup(const ThreadGroup&) = delete;
  ThreadGroup& operator=(const ThreadGroup&) = delete;

  template <typename Body>
  void spawn(Body body) {
    threads_.emplace_back([body = std::move(body)]() mutable {
      try {
        body();
      } catch (const std::exception& e) {
        FAIL_CHECK("a test thread threw: " << e.what());
      } catch (...) {
        // A failed REQUIRE: doctest has already reported it.
      }
    });
  }

  // Waits for every thread (the normal end of a test).
  void join() {
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
    threads_.clear();
  }

 private:
  std::function<void()> stop_;
  std::vector<std::thread> threads_;
};

}  // namespace tq::testing
