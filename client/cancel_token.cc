#include "client/cancel_token.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>

namespace tq::client {

CancelToken::CancelToken() {
  int fds[2];
  // Without a pipe there is no way to cancel; that is a broken process, not
  // an error a caller could handle.
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) std::abort();
  read_fd_ = fds[0];
  write_fd_ = fds[1];
}

CancelToken::~CancelToken() {
  ::close(read_fd_);
  ::close(write_fd_);
}

void CancelToken::cancel() const {
  // One byte is enough; a full pipe means it is cancelled already.
  const char byte = 1;
  ssize_t ignored = ::write(write_fd_, &byte, 1);
  (void)ignored;
}

bool CancelToken::cancelled() const {
  pollfd p{read_fd_, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

void CancelToken::reset() {
  char buf[64];
  while (::read(read_fd_, buf, sizeof buf) > 0) {
  }
}

bool CancelToken::sleep_for_ms(int ms) const {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return !cancelled();
    pollfd p{read_fd_, POLLIN, 0};
    int rc = ::poll(&p, 1, static_cast<int>(left.count()));
    if (rc > 0) return false;
    if (rc < 0 && errno != EINTR) return !cancelled();
  }
}

}  // namespace tq::client
