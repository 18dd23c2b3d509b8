// The loop itself. Finished-ness is checked by scanning the connections at
// most once a millisecond (and whenever epoll times out), which is also when
// parked consumer slots are given their retry: the hot path handles only the
// connections that epoll reports.
#include "bench/load_loop.h"

#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

namespace tq::bench {
namespace {

constexpr uint64_t kScanIntervalNs = 1'000'000;
constexpr uint64_t kDrainTimeoutNs =
    10'000'000'000;  // after a stop, in-flight replies get this long

}  // namespace

uint64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

LoadLoop::~LoadLoop() {
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

void LoadLoop::add(std::unique_ptr<LoadConnection> connection) {
  watched_.push_back(Watched{std::move(connection), false, false});
}

Result<Ok> LoadLoop::prepare() {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return Error{"epoll_create1: " + errno_text(errno)};
  for (Watched& w : watched_) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &w;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, w.connection->fd(), &ev) < 0) {
      return Error{"epoll_ctl: " + errno_text(errno)};
    }
  }
  return Ok{};
}

void LoadLoop::update_interest(Watched& w) {
  if (w.connection->broken()) {
    // Stop watching it, or a dead peer's hang-up would wake the loop forever.
    if (!w.unwatched) ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, w.connection->fd(), nullptr);
    w.unwatched = true;
    return;
  }
  const bool wants = w.connection->wants_write();
  if (wants == w.watching_writes) return;
  epoll_event ev{};
  ev.events = EPOLLIN | (wants ? EPOLLOUT : 0u);
  ev.data.ptr = &w;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, w.connection->fd(), &ev);
  w.watching_writes = wants;
}

void LoadLoop::run() {
  uint64_t now = monotonic_ns();
  for (Watched& w : watched_) {
    w.connection->pump(now);
    update_interest(w);
  }
  uint64_t last_scan = 0;
  uint64_t stop_seen_at = 0;
  bool any_parked = false;
  epoll_event events[64];
  for (;;) {
    now = monotonic_ns();
    if (now - last_scan >= kScanIntervalNs) {
      last_scan = now;
      bool all_finished = true;
      any_parked = false;
      for (Watched& w : watched_) {
        LoadConnection& c = *w.connection;
        uint64_t resume = c.resume_at_ns();
        if (resume != 0) {
          any_parked = true;
          if (now >= resume) {
            c.pump(now);
            update_interest(w);
          }
        }
        all_finished = all_finished && c.finished();
      }
      if (all_finished) return;
      if (control_.stopping()) {
        if (stop_seen_at == 0) stop_seen_at = now;
        if (now - stop_seen_at > kDrainTimeoutNs) {
          control_.fail("replies still missing 10 s after the run was stopped");
          return;
        }
      }
    }
    const int timeout_ms = any_parked ? 1 : 10;
    int n = ::epoll_wait(epoll_fd_, events, 64, timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      control_.fail("epoll_wait: " + errno_text(errno));
      return;
    }
    if (n == 0) {
      last_scan = 0;  // idle: scan now
      continue;
    }
    now = monotonic_ns();
    for (int i = 0; i < n; ++i) {
      auto& w = *static_cast<Watched*>(events[i].data.ptr);
      if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) w.connection->on_readable(now);
      if (events[i].events & EPOLLOUT) w.connection->on_writable(now);
      update_interest(w);
    }
  }
}

}  // namespace tq::bench
