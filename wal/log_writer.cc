#include "wal/log_writer.h"

#include <chrono>

namespace tq::wal {
namespace {

int64_t steady_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

int64_t steady_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace

const char* fsync_policy_name(FsyncPolicy policy) {
  switch (policy) {
    case FsyncPolicy::kAlways: return "always";
    case FsyncPolicy::kInterval: return "interval";
    case FsyncPolicy::kNever: return "never";
  }
  return "?";
}

LogWriter::LogWriter(FileSystem& fs, std::string dir, FsyncPolicy policy,
                     int64_t fsync_interval_ms, uint64_t segment_bytes,
                     int64_t retry_interval_ms, std::function<void()> on_progress)
    : fs_(fs),
      dir_(std::move(dir)),
      policy_(policy),
      fsync_interval_ms_(fsync_interval_ms),
      segment_bytes_(segment_bytes),
      retry_interval_ms_(retry_interval_ms),
      on_progress_(std::move(on_progress)) {}

LogWriter::~LogWriter() {
  if (thread_.joinable()) (void)stop();
}

std::string LogWriter::path_of(uint64_t first_seq) const {
  return dir_ + "/" + segment_file_name(first_seq);
}

Status LogWriter::resume(uint64_t first_seq) {
  auto file = fs_.open_for_write(path_of(first_seq), false, segment_bytes_);
  if (!file) return file.error();
  file_ = std::move(file).value();
  file_first_seq_ = first_seq;
  return Status();
}

void LogWriter::start() {
  last_sync_ms_ = steady_ms();
  thread_ = std::thread([this] { run(); });
}

void LogWriter::submit(Batch batch) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    inbox_ = std::move(batch);
  }
  busy_ = true;
  wake_.notify_one();
}

WriterReport LogWriter::take_report() {
  std::lock_guard<std::mutex> lock(mu_);
  WriterReport r = std::move(report_);
  report_ = WriterReport{};
  report_.durable_seq = r.durable_seq;  // durable_seq only grows
  if (r.batch_done) busy_ = false;
  return r;
}

void LogWriter::wait_idle() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [&] { return report_.batch_done || report_.failure.has_value(); });
}

Status LogWriter::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
  return final_status_;
}

WriterStats LogWriter::stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

Status LogWriter::sync_current() {
  if (!file_ || !dirty_) return Status();
  int64_t started = steady_us();
  Status s = file_->sync();
  int64_t took = steady_us() - started;
  last_sync_ms_ = steady_ms();
  std::lock_guard<std::mutex> lock(mu_);
  if (s.ok()) {
    dirty_ = false;
    ++stats_.fsyncs;
    stats_.last_fsync_us = took;
    if (took > stats_.max_fsync_us) stats_.max_fsync_us = took;
  }
  return s;
}

Status LogWriter::write_batch(const Batch& batch) {
  for (const Chunk& chunk : batch.chunks) {
    if (file_first_seq_ != chunk.first_seq) {
      // Finish the previous segment before moving on.
      if (Status s = sync_current(); !s.ok()) return s;
      if (file_) (void)file_->close();
      file_.reset();
      file_first_seq_ = 0;
      const std::string path = path_of(chunk.first_seq);
      Result<std::unique_ptr<WritableFile>> opened = Status();
      if (chunk.opens_segment) {
        opened = fs_.open_for_write(path, true, segment_bytes_);
        if (!opened && opened.error().code() != Status::Code::kNoSpace) {
          // A retry after a failure may find the file it created last time.
          opened = fs_.open_for_write(path, false, segment_bytes_);
        }
      } else {
        // A retry that starts in a segment it had already left.
        opened = fs_.open_for_write(path, false, 0);
      }
      if (!opened) return opened.error();
      file_ = std::move(opened).value();
      file_first_seq_ = chunk.first_seq;
      if (chunk.opens_segment) {
        if (Status s = fs_.sync_dir(dir_); !s.ok()) return s;
      }
    }
    if (Status s = file_->write_at(chunk.offset, chunk.bytes); !s.ok()) return s;
    dirty_ = true;
    std::lock_guard<std::mutex> lock(mu_);
    stats_.bytes_written += chunk.bytes.size();
  }
  if (policy_ == FsyncPolicy::kAlways || !batch.delete_first_seqs.empty()) {
    // Deleting a segment is only safe once what replaced it is durable,
    // whatever the policy.
    if (Status s = sync_current(); !s.ok()) return s;
  }
  if (!batch.delete_first_seqs.empty()) {
    for (uint64_t first_seq : batch.delete_first_seqs) {
      if (Status s = fs_.remove(path_of(first_seq)); !s.ok()) return s;
    }
    if (Status s = fs_.sync_dir(dir_); !s.ok()) return s;
  }
  return Status();
}

void LogWriter::run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    auto sync_due = [&] {
      return policy_ == FsyncPolicy::kInterval && dirty_ &&
             steady_ms() - last_sync_ms_ >= fsync_interval_ms_;
    };
    while (!inbox_ && !stopping_ && !sync_due()) {
      if (policy_ == FsyncPolicy::kInterval && dirty_) {
        int64_t wait = fsync_interval_ms_ - (steady_ms() - last_sync_ms_);
        wake_.wait_for(lock, std::chrono::milliseconds(wait > 0 ? wait : 0));
      } else {
        wake_.wait(lock);
      }
    }

    if (inbox_) {
      Batch batch = std::move(*inbox_);
      inbox_.reset();
      lock.unlock();
      Status s = write_batch(batch);
      bool failed = false;
      while (!s.ok()) {
        lock.lock();
        ++stats_.io_errors;
        if (!failed) report_.failure = s;
        failed = true;
        idle_.notify_all();
        lock.unlock();
        on_progress_();
        lock.lock();
        // Retry until it works, unless we are told to stop.
        if (wake_.wait_for(lock, std::chrono::milliseconds(retry_interval_ms_),
                           [&] { return stopping_; })) {
          final_status_ = s;
          report_.batch_done = true;
          idle_.notify_all();
          return;
        }
        lock.unlock();
        s = write_batch(batch);
      }
      lock.lock();
      uint64_t last = 0;
      for (const Chunk& c : batch.chunks) last = std::max(last, c.last_seq);
      if (last > report_.durable_seq) report_.durable_seq = last;
      report_.batch_done = true;
      if (failed) report_.recovered = true;
      report_.deleted.insert(report_.deleted.end(), batch.delete_first_seqs.begin(),
                             batch.delete_first_seqs.end());
      ++stats_.batches;
      idle_.notify_all();
      lock.unlock();
      on_progress_();
      lock.lock();
      continue;
    }

    if (sync_due()) {
      lock.unlock();
      Status s = sync_current();
      lock.lock();
      if (!s.ok()) {
        // The pages may be gone (Linux drops them after a failed writeback):
        // say so and refuse writes; a restart replays what is really there.
        ++stats_.io_errors;
        report_.failure = s;
        final_status_ = s;
        dirty_ = false;
        lock.unlock();
        on_progress_();
        lock.lock();
      }
      continue;
    }

    if (stopping_) {
      lock.unlock();
      Status s = sync_current();
      if (file_) (void)file_->close();
      lock.lock();
      if (!s.ok() && final_status_.ok()) final_status_ = s;
      return;
    }
  }
}

}  // namespace tq::wal
