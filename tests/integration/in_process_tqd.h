// tqd in the test's own process, on a file system the test controls (a
// MemoryFileSystem that fills up, fails or holds its syncs), serving on an
// ephemeral loopback port from a thread of its own.
#pragma once

#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "client/line_socket.h"
#include "server/config.h"
#include "server/config_source.h"
#include "server/daemon.h"
#include "server/engine/clock.h"
#include "wal/file.h"

namespace tq::testing {

// The system's clock, set back or forward by the test as an NTP step does.
class SteppedClock final : public engine::Clock {
 public:
  int64_t now_ms() const override { return system_.now_ms() + offset_ms_.load(); }
  void step_ms(int64_t ms) { offset_ms_ += ms; }

 private:
  engine::SystemClock system_;
  std::atomic<int64_t> offset_ms_{0};
};

class InProcessTqd {
 public:
  // `clock`: one the test moves (the wall clock stepped); null: the system's.
  // `reload`: the file RELOAD reads (from the real disk); empty: none.
  InProcessTqd(wal::FileSystem& fs, const server::Config& config,
               const engine::Clock* clock = nullptr, const std::string& reload = "") {
    daemon_ = std::make_unique<server::Daemon>(config, fs, clock != nullptr ? *clock : clock_);
    if (!reload.empty()) {
      server::ConfigSource source;
      source.config_path = reload;
      daemon_->reload_from(std::move(source), config.max_connections);
    }
    REQUIRE(daemon_->start() == server::StartRefusal::kNone);
    thread_ = std::thread([this] { clean_ = daemon_->run(); });
  }
  ~InProcessTqd() { (void)stop(); }
  InProcessTqd(const InProcessTqd&) = delete;
  InProcessTqd& operator=(const InProcessTqd&) = delete;

  client::LineSocket socket() {
    auto s = client::LineSocket::connect("127.0.0.1", static_cast<uint16_t>(daemon_->port()), 5000);
    REQUIRE(s.ok());
    return std::move(s).value();
  }
  // Set by start(), before the loop's thread begins: safe to read from here.
  int metrics_port() const { return daemon_->metrics_port(); }
  // Stops tqd (once); what Daemon::run returned: false when the stop was not
  // clean (main() exits 1 for it).
  bool stop() {
    if (thread_.joinable()) {
      daemon_->stop();
      thread_.join();
    }
    return clean_;
  }

 private:
  engine::SystemClock clock_;
  std::unique_ptr<server::Daemon> daemon_;
  std::thread thread_;
  bool clean_ = false;
};

}  // namespace tq::testing
