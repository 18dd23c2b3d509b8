// Tells the service manager that started tqd how it is doing: "ready to
// serve" once it accepts connections, and, when a watchdog is asked for,
// keep-alives from the event loop, so that a loop stuck for longer than
// WatchdogSec gets tqd restarted. This is systemd's sd_notify protocol
// (Type=notify): one datagram of "KEY=value" lines to the unix socket named
// by $NOTIFY_SOCKET, a leading '@' meaning the abstract namespace. It is
// written here rather than linked from libsystemd because the protocol is a
// single sendto() and tqd should not need systemd to build.
//
// Without $NOTIFY_SOCKET in the environment nothing is sent and nothing fails.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace tq::server {

class ServiceNotifier {
 public:
  ServiceNotifier() = default;  // disabled
  ~ServiceNotifier();
  ServiceNotifier(const ServiceNotifier&) = delete;
  ServiceNotifier& operator=(const ServiceNotifier&) = delete;

  // Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID. A socket name
  // that cannot be used is reported in *error (for the log) and leaves the
  // notifier disabled: tqd serves all the same.
  bool open_from_environment(std::string* error);

  bool enabled() const { return fd_ >= 0; }
  // How often the manager expects WATCHDOG=1, in microseconds; 0: it does
  // not (no $WATCHDOG_USEC, or $WATCHDOG_PID names another process).
  uint64_t watchdog_usec() const { return watchdog_usec_; }

  // Sends `state` ("READY=1\nSTATUS=..."). Never blocks: the socket is
  // non-blocking and a datagram is either taken whole or not at all. False
  // (with *error set) when the send failed.
  bool notify(std::string_view state, std::string* error);

 private:
  int fd_ = -1;
  sockaddr_un address_{};
  socklen_t address_length_ = 0;
  uint64_t watchdog_usec_ = 0;
};

}  // namespace tq::server
