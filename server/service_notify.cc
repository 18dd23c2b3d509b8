#include "server/service_notify.h"

#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace tq::server {
namespace {

// A whole, positive decimal number; 0 for anything else.
uint64_t parse_positive(const char* text) {
  if (text == nullptr || *text == '\0') return 0;
  uint64_t value = 0;
  for (const char* p = text; *p != '\0'; ++p) {
    if (*p < '0' || *p > '9') return 0;
    if (value > (UINT64_MAX - 9) / 10) return 0;
    value = value * 10 + static_cast<uint64_t>(*p - '0');
  }
  return value;
}

}  // namespace

ServiceNotifier::~ServiceNotifier() {
  if (fd_ >= 0) ::close(fd_);
}

bool ServiceNotifier::open_from_environment(std::string* error) {
  const char* name = std::getenv("NOTIFY_SOCKET");
  if (name == nullptr || *name == '\0') return true;  // not started by a service manager
  const size_t length = std::strlen(name);
  if ((name[0] != '/' && name[0] != '@') || length >= sizeof(address_.sun_path)) {
    *error = std::string("NOTIFY_SOCKET '") + name +
             "' is neither an absolute path nor an abstract name ('@...') that fits a unix "
             "socket address; not notifying the service manager";
    return false;
  }
  address_.sun_family = AF_UNIX;
  std::memcpy(address_.sun_path, name, length);
  if (name[0] == '@') address_.sun_path[0] = '\0';  // the abstract namespace
  address_length_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length);

  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) {
    *error =
        std::string("cannot make a socket to notify the service manager: ") + std::strerror(errno);
    return false;
  }
  // The watchdog is meant for us only if WATCHDOG_PID is unset or our pid.
  const uint64_t for_pid = parse_positive(std::getenv("WATCHDOG_PID"));
  if (for_pid == 0 || for_pid == static_cast<uint64_t>(::getpid())) {
    watchdog_usec_ = parse_positive(std::getenv("WATCHDOG_USEC"));
  }
  return true;
}

bool ServiceNotifier::notify(std::string_view state, std::string* error) {
  if (fd_ < 0) return true;
  const ssize_t sent = ::sendto(fd_, state.data(), state.size(), MSG_NOSIGNAL,
                                reinterpret_cast<const sockaddr*>(&address_), address_length_);
  if (sent == static_cast<ssize_t>(state.size())) return true;
  *error = std::string("cannot notify the service manager: ") +
           (sent < 0 ? std::strerror(errno) : "the datagram was cut short");
  return false;
}

}  // namespace tq::server
