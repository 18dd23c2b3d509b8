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

#include "base/self_connect.h"

namespace tq::client {
namespace {

enum class WaitOutcome { kReady, kTimeout, kCancelled };

// Waits until fd is readable or writable (kReady; a poll error too, for the
// next recv() or send() to report), and ends early when the token fires. A
// signal (EINTR) restarts the wait with what is left of the timeout, so a
// handler that only sets a flag does not shorten it; a handler that fires the
// token ends it.
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
    return WaitOutcome::kReady;  // a poll error: let recv() or send() report it
  }
}

}  // namespace

LineSocket::~LineSocket() {
  close();
}

LineSocket::LineSocket(LineSocket&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      tls_(std::move(other.tls_)),
      timeout_ms_(other.timeout_ms_),
      cancel_(other.cancel_),
      reader_(std::move(other.reader_)) {}

LineSocket& LineSocket::operator=(LineSocket&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    tls_ = std::move(other.tls_);
    timeout_ms_ = other.timeout_ms_;
    cancel_ = other.cancel_;
    reader_ = std::move(other.reader_);
  }
  return *this;
}

std::string host_port(std::string_view host, uint16_t port) {
  const bool ipv6 = host.find(':') != std::string_view::npos;
  return (ipv6 ? "[" : "") + std::string(host) + (ipv6 ? "]:" : ":") + std::to_string(port);
}

Result<LineSocket> LineSocket::connect(const std::string& host, uint16_t port, int timeout_ms,
                                       const TlsOptions& tls, const CancelToken* cancel,
                                       bool* handshake_unanswered) {
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
      const WaitOutcome waited = wait_or_cancel(fd, POLLOUT, timeout_ms, cancel);
      if (waited == WaitOutcome::kCancelled) {
        ::close(fd);
        freeaddrinfo(found);
        return make_error(ErrorKind::kCancelled,
                          host_port(host, port) + ": connecting interrupted");
      }
      if (waited == WaitOutcome::kReady) {
        int so_error = 0;
        socklen_t len = sizeof so_error;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
        r = so_error == 0 ? 0 : -1;
        errno = so_error;
      } else {
        errno = ETIMEDOUT;
      }
    }
    if (r == 0 && connected_to_itself(fd)) {
      r = -1;
      errno = ECONNREFUSED;
    }
    if (r == 0) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      freeaddrinfo(found);
      LineSocket s;
      s.fd_ = fd;
      s.timeout_ms_ = timeout_ms;
      if (tls.enabled) {
        s.cancel_ = cancel;  // for the handshake only: the caller sets its own
        auto secured = s.start_tls(host, tls);
        s.cancel_ = nullptr;
        if (!secured) {
          if (handshake_unanswered != nullptr) {
            *handshake_unanswered = secured.error().kind == ErrorKind::kTimeout;
          }
          return make_error(secured.error().kind == ErrorKind::kCancelled ? ErrorKind::kCancelled
                                                                          : ErrorKind::kConnect,
                            host_port(host, port) + ": " + secured.error().message);
        }
      }
      return s;
    }
    last_error = std::strerror(errno);
    ::close(fd);
  }
  freeaddrinfo(found);
  return make_error(ErrorKind::kConnect, host_port(host, port) + ": " + last_error);
}

Status LineSocket::start_tls(const std::string& host, const TlsOptions& tls) {
  auto session = TlsSession::start(fd_, host, tls);
  if (!session) return session.error();
  tls_ = std::move(session).value();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms_);
  for (;;) {
    IoStep step = tls_.handshake();
    switch (step.kind) {
      case IoStep::Kind::kMoved:
        return Ok{};
      case IoStep::Kind::kClosed:
      case IoStep::Kind::kFailed:
        return make_error(ErrorKind::kConnect, std::move(step.error));
      case IoStep::Kind::kWait:
        break;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    // A plaintext server that reads the ClientHello as a request line without
    // its end waits for more, and says nothing: this is all the client sees.
    const WaitOutcome waited =
        left <= 0 ? WaitOutcome::kTimeout
                  : wait_or_cancel(fd_, step.wait_for, static_cast<int>(left), cancel_);
    if (waited == WaitOutcome::kCancelled) {
      return make_error(ErrorKind::kCancelled, "TLS handshake interrupted");
    }
    if (waited == WaitOutcome::kTimeout) {
      return make_error(ErrorKind::kTimeout, "TLS handshake failed: no answer within " +
                                                 std::to_string(timeout_ms_) +
                                                 "ms (does the server speak TLS on this port?)");
    }
  }
}

Status LineSocket::send(std::string_view bytes) {
  if (fd_ < 0) return make_error(ErrorKind::kConnect, "not connected");
  while (!bytes.empty()) {
    IoStep step = send_some(bytes);
    switch (step.kind) {
      case IoStep::Kind::kMoved:
        bytes.remove_prefix(step.bytes);
        break;
      case IoStep::Kind::kWait:
        // A server that stopped reading fills the socket's buffers: a big PUT
        // waits here, and Ctrl-C (the token) must end it as it ends a read.
        switch (wait_or_cancel(fd_, step.wait_for, timeout_ms_, cancel_)) {
          case WaitOutcome::kReady:
            break;
          case WaitOutcome::kTimeout:
            return make_error(ErrorKind::kTimeout, "server did not accept data in time");
          case WaitOutcome::kCancelled:
            return make_error(ErrorKind::kCancelled, "stopped sending to the server");
        }
        break;
      case IoStep::Kind::kClosed:
        return make_error(ErrorKind::kNetwork, "server closed the connection");
      case IoStep::Kind::kFailed:
        return make_error(ErrorKind::kNetwork, std::move(step.error));
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
    // Tried before any wait: TLS may hold decrypted bytes the socket no
    // longer shows as readable.
    IoStep step = receive_some(buf, sizeof buf);
    switch (step.kind) {
      case IoStep::Kind::kMoved:
        reader_.feed(std::string_view(buf, step.bytes));
        return true;
      case IoStep::Kind::kClosed:
        *error = make_error(ErrorKind::kNetwork, "server closed the connection");
        return false;
      case IoStep::Kind::kFailed:
        *error = make_error(ErrorKind::kNetwork, std::move(step.error));
        return false;
      case IoStep::Kind::kWait:
        break;
    }
    switch (wait_or_cancel(fd_, step.wait_for, timeout_ms_, cancel_)) {
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
}

IoStep LineSocket::receive_some(char* buffer, size_t n) {
  if (tls_.active()) return tls_.read(buffer, n);
  for (;;) {
    ssize_t got = ::recv(fd_, buffer, n, 0);
    if (got > 0) return IoStep::moved(static_cast<size_t>(got));
    if (got == 0) return IoStep::closed();
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return IoStep::wait(POLLIN);
    return IoStep::failed(std::strerror(errno));
  }
}

IoStep LineSocket::send_some(std::string_view bytes) {
  if (tls_.active()) return tls_.write(bytes);
  for (;;) {
    ssize_t sent = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (sent > 0) return IoStep::moved(static_cast<size_t>(sent));
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return IoStep::wait(POLLOUT);
    return IoStep::failed(std::strerror(errno));
  }
}

Result<std::string> LineSocket::read_line() {
  for (;;) {
    if (auto line = reader_.take_line()) return std::string(*line);
    if (reader_.line_too_long()) {
      return make_error(ErrorKind::kProtocol,
                        "more than " + std::to_string(protocol::kMaxReplyLineBytes >> 20) +
                            " MiB without a line end, longer than any reply of tqd's: is "
                            "this port a tq server?");
    }
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

std::string LineSocket::closed_reason() const {
  return tls_.active() ? tls_.closed_reason() : std::string();
}

bool LineSocket::peer_closed() const {
  if (fd_ < 0) return true;
  if (reader_.buffered() > 0) return false;
  // With TLS, readable bytes may be a record that holds no reply (a session
  // ticket), and a close_notify, once read, leaves nothing readable behind
  // it: only OpenSSL can tell, and it does so without blocking.
  if (tls_.active()) return tls_.peer_closed();
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
  if (fd_ < 0) return;
  tls_.send_close_notify();
  ::shutdown(fd_, SHUT_WR);
}

void LineSocket::close() {
  if (fd_ >= 0) {
    tls_.end();
    ::close(fd_);
    fd_ = -1;
  }
}

}  // namespace tq::client
