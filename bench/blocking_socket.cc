// BlockingSocket on a non-blocking descriptor: every wait is a poll() with a
// deadline, so the same descriptor (and TLS session) can later join an epoll
// loop unchanged.
#include "bench/blocking_socket.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/self_connect.h"
#include "bench/protocol_adapter.h"

namespace tq::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Waits until `fd` is ready for `events` or the deadline passes.
Result<Ok> wait_for(int fd, short events, Clock::time_point deadline, const char* what) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return Error{std::string("timed out waiting to ") + what};
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n > 0) return Ok{};
    if (n < 0 && errno != EINTR) return Error{std::string("poll: ") + errno_text(errno)};
  }
}

// What to wait for before a TLS call answered `status` may be made again.
short tls_wait_events(TlsStream::Status status) {
  return status == TlsStream::Status::kWantWrite ? POLLOUT : POLLIN;
}

}  // namespace

std::string errno_text(int err) {
  return std::strerror(err);
}

Result<BlockingSocket> BlockingSocket::connect(const std::string& host, uint16_t port,
                                               const TlsTrust* tls, Millis timeout) {
  const std::string where = host + ":" + std::to_string(port);
  const auto deadline = Clock::now() + timeout;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    return Error{"resolve " + host + ": " + ::gai_strerror(rc)};
  }
  int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ::freeaddrinfo(found);
    return Error{"socket: " + errno_text(errno)};
  }
  BlockingSocket sock(fd);
  int rc = ::connect(fd, found->ai_addr, found->ai_addrlen);
  ::freeaddrinfo(found);
  if (rc < 0 && errno != EINPROGRESS) return Error{"connect " + where + ": " + errno_text(errno)};
  if (rc < 0) {
    auto waited = wait_for(fd, POLLOUT, deadline, ("connect to " + where).c_str());
    if (!waited) return waited.error();
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return Error{"connect " + where + ": " + errno_text(err)};
  }
  if (connected_to_itself(fd)) return Error{"connect " + where + ": " + errno_text(ECONNREFUSED)};
  // Small requests must leave at once; Nagle would add delayed-ack stalls to
  // every unpipelined round trip.
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (tls == nullptr) return sock;

  auto started = TlsStream::start(*tls, fd, host);
  if (!started) return Error{where + ": " + started.error().message};
  sock.tls_ = std::move(*started);
  for (;;) {
    const TlsStream::Io io = sock.tls_->handshake();
    if (io.status == TlsStream::Status::kDone) return sock;
    if (io.status == TlsStream::Status::kFailed) return Error{where + ": " + sock.tls_->error()};
    if (io.status == TlsStream::Status::kClosed) {
      return Error{where + ": TLS handshake failed: the server closed the connection"};
    }
    auto waited = wait_for(fd, tls_wait_events(io.status), deadline,
                           ("finish the TLS handshake with " + where).c_str());
    if (!waited) return waited.error();
  }
}

BlockingSocket::BlockingSocket(BlockingSocket&& other) noexcept
    : fd_(other.fd_), tls_(std::move(other.tls_)), buffer_(std::move(other.buffer_)) {
  other.fd_ = -1;
}

BlockingSocket& BlockingSocket::operator=(BlockingSocket&& other) noexcept {
  if (this != &other) {
    tls_.reset();
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    tls_ = std::move(other.tls_);
    buffer_ = std::move(other.buffer_);
    other.fd_ = -1;
  }
  return *this;
}

BlockingSocket::~BlockingSocket() {
  tls_.reset();
  if (fd_ >= 0) ::close(fd_);
}

ReleasedSocket BlockingSocket::release() {
  ReleasedSocket released{fd_, std::move(tls_)};
  fd_ = -1;
  return released;
}

Result<Ok> BlockingSocket::send_all(std::string_view bytes, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  while (tls_ && !bytes.empty()) {
    // A retry after kWant* passes the same bytes, as OpenSSL requires.
    const TlsStream::Io io = tls_->write(bytes);
    if (io.status == TlsStream::Status::kDone) {
      bytes.remove_prefix(io.bytes);
    } else if (io.status == TlsStream::Status::kFailed) {
      return Error{tls_->error()};
    } else if (io.status == TlsStream::Status::kClosed) {
      return Error{"the server closed the connection"};
    } else if (auto waited = wait_for(fd_, tls_wait_events(io.status), deadline, "send"); !waited) {
      return waited.error();
    }
  }
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      auto waited = wait_for(fd_, POLLOUT, deadline, "send");
      if (!waited) return waited.error();
      continue;
    }
    return Error{"send: " + errno_text(errno)};
  }
  return Ok{};
}

Result<std::string> BlockingSocket::read_line(Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    size_t nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return line;
    }
    char chunk[16 * 1024];
    if (tls_) {
      const TlsStream::Io io = tls_->read(chunk, sizeof chunk);
      if (io.status == TlsStream::Status::kDone) {
        buffer_.append(chunk, io.bytes);
        continue;
      }
      if (io.status == TlsStream::Status::kClosed) {
        return Error{"the server closed the connection"};
      }
      if (io.status == TlsStream::Status::kFailed) return Error{tls_->error()};
      auto waited = wait_for(fd_, tls_wait_events(io.status), deadline, "read a reply");
      if (!waited) return waited.error();
      continue;
    }
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n > 0) {
      buffer_.append(chunk, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) return Error{"the server closed the connection"};
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return Error{"recv: " + errno_text(errno)};
    auto waited = wait_for(fd_, POLLIN, deadline, "read a reply");
    if (!waited) return waited.error();
  }
}

Result<Ok> run_setup(BlockingSocket& socket, const std::vector<SetupStep>& steps) {
  std::string all;
  for (const SetupStep& step : steps) all += step.command;
  if (all.empty()) return Ok{};
  if (auto sent = socket.send_all(all); !sent) return sent.error();
  for (const SetupStep& step : steps) {
    auto line = socket.read_line();
    if (!line) return line.error();
    bool accepted = false;
    for (const std::string& prefix : step.accepted) {
      accepted = accepted || line->compare(0, prefix.size(), prefix) == 0;
    }
    if (!accepted) {
      std::string command = step.command;
      while (!command.empty() && (command.back() == '\n' || command.back() == '\r')) {
        command.pop_back();
      }
      return Error{"'" + command + "' was answered '" + *line + "'"};
    }
  }
  return Ok{};
}

}  // namespace tq::bench
