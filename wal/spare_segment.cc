#include "wal/spare_segment.h"

#include <algorithm>
#include <chrono>

namespace tq::wal {
namespace {

constexpr const char* kSpareName = "spare";
constexpr uint64_t kZeroChunk = 1 << 20;
// After a failure (a full disk, say) wait this long before trying again, so
// that a sick disk is not hammered with 64 MiB writes.
constexpr int64_t kRetryAfterFailureMs = 10'000;

int64_t steady_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace

void SpareSegment::remove_leftover(FileSystem& fs, const std::string& dir) {
  (void)fs.remove(dir + "/" + kSpareName);  // usually there is none
}

SpareSegment::SpareSegment(FileSystem& fs, std::string dir, uint64_t bytes, bool zero_fill)
    : fs_(fs), path_(dir + "/" + kSpareName), bytes_(bytes), zero_fill_(zero_fill) {
  // A spare from an earlier run may be half made; it is cheaper to start over
  // than to check.
  remove_leftover(fs_, dir);
  thread_ = std::thread([this] { run(); });
}

SpareSegment::~SpareSegment() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void SpareSegment::request() {
  std::lock_guard<std::mutex> lock(mu_);
  if (wanted_ || making_ || ready_) return;
  wanted_ = true;
  wake_.notify_one();
}

bool SpareSegment::take(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ready_) return false;
  ready_ = false;
  if (Status s = fs_.rename(path_, path); !s.ok()) {
    (void)fs_.remove(path_);  // whatever went wrong, make a fresh one next time
    return false;
  }
  ++taken_;
  return true;
}

bool SpareSegment::ready() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ready_;
}

void SpareSegment::wait_idle() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [&] { return !wanted_ && !making_; });
}

uint64_t SpareSegment::failures() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failures_;
}

std::string SpareSegment::last_failure() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_failure_;
}

uint64_t SpareSegment::made() const {
  std::lock_guard<std::mutex> lock(mu_);
  return made_;
}

uint64_t SpareSegment::taken() const {
  std::lock_guard<std::mutex> lock(mu_);
  return taken_;
}

void SpareSegment::run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || wanted_; });
    if (stopping_) return;
    wanted_ = false;
    if (steady_ms() < retry_after_ms_) {
      idle_.notify_all();
      continue;
    }
    making_ = true;
    lock.unlock();
    Status s = make();
    lock.lock();
    making_ = false;
    if (s.ok()) {
      ready_ = true;
      ++made_;
    } else if (!stopping_) {  // a stop cuts a spare short: no failure
      (void)fs_.remove(path_);
      retry_after_ms_ = steady_ms() + kRetryAfterFailureMs;
      ++failures_;
      last_failure_ = s.message();
    } else {
      (void)fs_.remove(path_);
    }
    idle_.notify_all();
  }
}

Status SpareSegment::make() {
  (void)fs_.remove(path_);
  auto file = fs_.open_for_write(path_, true, zero_fill_ ? 0 : bytes_);
  if (!file) return file.error();
  if (!zero_fill_) {
    // The size must be durable before the file gets a segment's name: see
    // log_writer.h. A sync of metadata only, off the writer's path.
    if (Status s = (*file)->sync(); !s.ok()) return s;
    return (*file)->close();
  }
  const std::string zeros(static_cast<size_t>(std::min(kZeroChunk, bytes_)), '\0');
  for (uint64_t offset = 0; offset < bytes_; offset += zeros.size()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return Status::io_error("stopped while making " + path_);
    }
    const size_t n = static_cast<size_t>(std::min<uint64_t>(zeros.size(), bytes_ - offset));
    if (Status s = (*file)->write_at(offset, std::string_view(zeros).substr(0, n)); !s.ok()) {
      return s;
    }
  }
  if (Status s = (*file)->sync(); !s.ok()) return s;
  return (*file)->close();
}

}  // namespace tq::wal
