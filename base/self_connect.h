// Whether a connected socket's two ends are one address. A connect to a free
// port of the ephemeral range may be given that very port as its source and
// connect to itself (TCP simultaneous open): nothing listens there, and the
// socket holds the port a restarting server wants. Callers take it for a
// refusal. Shared by the client library and tq-bench, which connect alike
// and do not link each other.
#pragma once

#include <sys/socket.h>

#include <cstring>

namespace tq {

inline bool connected_to_itself(int fd) {
  sockaddr_storage local{};
  sockaddr_storage peer{};
  socklen_t local_len = sizeof local;
  socklen_t peer_len = sizeof peer;
  return ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) == 0 &&
         ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) == 0 &&
         local_len == peer_len && std::memcmp(&local, &peer, local_len) == 0;
}

}  // namespace tq
