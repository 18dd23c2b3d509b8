#include "client/line_socket.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

namespace tq::client {
namespace {

// Waits until fd is readable or writable; false on timeout or error.
bool wait_for(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  for (;;) {
    int rc = ::poll(&p, 1, timeout_ms);
    if (rc < 0 && errno == EINTR) continue;
    return rc > 0;
  }
}

enum class WaitOutcome { kReady, kTimeout, kCancelled };

// As wait_for, and also ends when the token fires. A signal (EINTR) restarts
// the wait with what is left of the timeout, so a handler that only sets a
// flag does not shorten it; a handler that fires the token ends it.
WaitOutcome wait_or_cancel(int fd, short events, int timeout_ms, const CancelToken* cancel) {
  pollfd p[2] = {{fd, events, 0}, {cancel != nullptr ? cancel->fd() : -1, POLLIN, 0}};
  const nfds_t n = cancel != nullptr ? 2 : 1;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    int rc = ::poll(p, n, static_cast<int>(std::max<int64_t>(left, 0)));
    if (rc < 0 && errno == EINTR) continue;
    if (n == 2 && (p[1].revents & POLLIN) != 0) return WaitOutcome::kCancelled;
    if (rc > 0) return WaitOutcome::kReady;
    if (rc == 0) return WaitOutcome::kTimeout;
    return WaitOutcome::kReady;  // a poll error: let recv() report it
  }
}

}  // namespace

LineSocket::~LineSocket() {
  close();
}

LineSocket::LineSocket(LineSocket&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      timeout_ms_(other.timeout_ms_),
      cancel_(other.cancel_),
      reader_(std::move(other.reader_)) {}

LineSocket& LineSocket::operator=(LineSocket&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    timeout_ms_ = other.timeout_ms_;
    cancel_ = other.cancel_;
    reader_ = std::move(other.reader_);
  }
  return *this;
}

Result<LineSocket> LineSocket::connect(const std::string& host, uint16_t port, int timeout_ms) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  std::string service = std::to_string(port);
  int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found);
  if (rc != 0) return make_error(ErrorKind::kConnect, host + ": " + gai_strerror(rc));

  std::string last_error = "no address";
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    int r = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (r != 0 && errno == EINPROGRESS) {
      if (wait_for(fd, POLLOUT, timeout_ms)) {
        int so_error = 0;
        socklen_t len = sizeof so_error;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
        r = so_error == 0 ? 0 : -1;
        errno = so_error;
      } else {
        errno = ETIMEDOUT;
      }
    }
    if (r == 0) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      freeaddrinfo(found);
      LineSocket s;
      s.fd_ = fd;
      s.timeout_ms_ = timeout_ms;
      return s;
    }
    last_error = std::strerror(errno);
    ::close(fd);
  }
  freeaddrinfo(found);
  return make_error(ErrorKind::kConnect, host + ":" + service + ": " + last_error);
}

Status LineSocket::send(std::string_view bytes) {
  if (fd_ < 0) return make_error(ErrorKind::kConnect, "not connected");
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_for(fd_, POLLOUT, timeout_ms_)) {
        return make_error(ErrorKind::kTimeout, "server did not accept data in time");
      }
    } else {
      return make_error(ErrorKind::kNetwork, std::strerror(errno));
    }
  }
  return Ok{};
}

bool LineSocket::fill(Error* error) {
  if (fd_ < 0) {
    *error = make_error(ErrorKind::kConnect, "not connected");
    return false;
  }
  char buf[64 << 10];
  for (;;) {
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      reader_.feed(std::string_view(buf, static_cast<size_t>(n)));
      return true;
    }
    if (n == 0) {
      *error = make_error(ErrorKind::kNetwork, "server closed the connection");
      return false;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      switch (wait_or_cancel(fd_, POLLIN, timeout_ms_, cancel_)) {
        case WaitOutcome::kReady:
          continue;
        case WaitOutcome::kTimeout:
          *error = make_error(ErrorKind::kTimeout,
                              "no reply within " + std::to_string(timeout_ms_) + "ms");
          return false;
        case WaitOutcome::kCancelled:
          *error = make_error(ErrorKind::kCancelled, "stopped waiting for the server");
          return false;
      }
    }
    *error = make_error(ErrorKind::kNetwork, std::strerror(errno));
    return false;
  }
}

Result<std::string> LineSocket::read_line() {
  for (;;) {
    if (auto line = reader_.take_line()) return std::string(*line);
    Error error;
    if (!fill(&error)) return error;
  }
}

Result<std::string> LineSocket::read_body(size_t n) {
  for (;;) {
    if (auto body = reader_.take_body(n)) return std::string(*body);
    if (reader_.broken())
      return make_error(ErrorKind::kProtocol, "body not followed by a line end");
    Error error;
    if (!fill(&error)) return error;
  }
}

bool LineSocket::peer_closed() const {
  if (fd_ < 0) return true;
  if (reader_.buffered() > 0) return false;
  pollfd p{fd_, POLLIN | POLLRDHUP, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  if ((p.revents & (POLLHUP | POLLERR | POLLRDHUP)) != 0) return true;
  // Readable while no reply is due: end of file (closed), or bytes nobody
  // asked for, which the next read reports as the stream being out of step.
  char byte;
  ssize_t n = ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

void LineSocket::shutdown_write() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

void LineSocket::close() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

}  // namespace tq::client
