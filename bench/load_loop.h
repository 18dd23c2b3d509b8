// LoadLoop: one client thread's event loop: an epoll set over its share of
// the connections, run until every one of them is finished. Readiness for
// reading is always watched (level-triggered); readiness for writing only
// while a connection has unsent bytes, so an idle loop costs no wake-ups.
#pragma once

#include <memory>
#include <vector>

#include "bench/error.h"
#include "bench/load_connection.h"
#include "bench/run_control.h"

namespace tq::bench {

class LoadLoop {
 public:
  explicit LoadLoop(RunControl& control) : control_(control) {}
  ~LoadLoop();
  LoadLoop(const LoadLoop&) = delete;
  LoadLoop& operator=(const LoadLoop&) = delete;

  void add(std::unique_ptr<LoadConnection> connection);

  // Creates the epoll set; before run(), outside the measured time.
  Result<Ok> prepare();

  // Drives the connections until all are finished, or until the run has been
  // stopped and they have not drained within kDrainTimeout.
  void run();

 private:
  struct Watched {
    std::unique_ptr<LoadConnection> connection;
    bool watching_writes = false;
    bool unwatched = false;  // broken, and taken out of the epoll set
  };

  void update_interest(Watched& w);

  RunControl& control_;
  std::vector<Watched> watched_;
  int epoll_fd_ = -1;
};

// The monotonic clock in nanoseconds, as every timestamp of a run.
uint64_t monotonic_ns();

}  // namespace tq::bench
