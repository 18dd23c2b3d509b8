#include "wal/log_writer.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "wal/backup.h"
#include "wal/run_marker.h"

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

// Inline modes: at most this many files the log has left wait for their
// sync, the one a rotation leaves included (the loop's batch goes to the
// thread otherwise, which syncs them first). A power cut can lose part of
// the oldest of them and keep later files' records; Log::open cuts the log
// there only when the later files lie within four segments' worth of seqs
// from its first (as far as a start after one more crash skips ids): with
// the newest, three files, one to spare. Without the bound a slow sync let
// the loop write on into as many spares as came, and such a power cut left
// a log the start refused.
constexpr size_t kMaxFilesLeftUnsynced = 2;

// Where a segment made at rotation is put together (see create_segment).
constexpr const char* kNewSegmentName = "new-segment";

// How far ahead of the records zero_ahead writes zeros: once the records
// come within half of it of the written end, it writes up to this past them.
constexpr uint64_t kZeroAheadBytes = 1 << 20;

// Opens the new segment `path`, first making it `bytes` of zeros so that a
// crash leaves it whole or not at all: made under a temporary name, its size
// synced, then renamed (the caller syncs the directory). A retry after a
// failure may find the file it made last time: that one is whole already.
Result<std::unique_ptr<WritableFile>> create_segment(FileSystem& fs, const std::string& dir,
                                                     const std::string& path, uint64_t bytes) {
  if (auto made_before = fs.open_for_write(path, false, 0)) return made_before;
  const std::string temporary = dir + "/" + kNewSegmentName;
  (void)fs.remove(temporary);  // left by a crash or a failed try; usually there is none
  auto file = fs.open_for_write(temporary, true, bytes);
  if (!file) return file.error();
  Status s = (*file)->sync();
  if (s.ok()) s = (*file)->close();
  if (s.ok()) s = fs.rename(temporary, path);
  if (!s.ok()) {
    (void)fs.remove(temporary);
    return s;
  }
  return fs.open_for_write(path, false, 0);
}

uint64_t last_seq_of(const Batch& batch) {
  uint64_t last = 0;
  for (const Chunk& c : batch.chunks) last = std::max(last, c.last_seq);
  return last;
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
                     int64_t retry_interval_ms, bool spare_segment,
                     std::function<void()> on_progress)
    : fs_(fs),
      dir_(std::move(dir)),
      policy_(policy),
      fsync_interval_ms_(fsync_interval_ms),
      segment_bytes_(segment_bytes),
      retry_interval_ms_(retry_interval_ms),
      on_progress_(std::move(on_progress)) {
  if (inline_writes()) {
    spare_ = std::make_unique<SpareSegment>(fs_, dir_, segment_bytes_, false);
  } else if (spare_segment) {
    spare_ = std::make_unique<SpareSegment>(fs_, dir_, segment_bytes_, true);
  } else {
    SpareSegment::remove_leftover(fs_, dir_);  // from a run with zero_fill on
  }
  (void)fs_.remove(dir_ + "/" + kNewSegmentName);  // a crash's leftover; usually there is none
}

LogWriter::~LogWriter() {
  if (thread_.joinable()) (void)stop();
}

std::string LogWriter::path_of(uint64_t first_seq) const {
  return dir_ + "/" + segment_file_name(first_seq);
}

Status LogWriter::resume(uint64_t first_seq, uint64_t file_size) {
  // Segments are bigger than when this one was made: grow it, and sync the
  // new size before any record goes past the old one (replay takes a record
  // past the end of its file for damage, not for a crash).
  const bool grow = file_size < segment_bytes_;
  auto file = fs_.open_for_write(path_of(first_seq), false, grow ? segment_bytes_ : 0);
  if (!file) return file.error();
  if (grow) {
    if (Status s = (*file)->sync(); !s.ok()) return s;
  }
  file_ = std::move(file).value();
  file_first_seq_ = first_seq;
  written_to_ = 0;  // not known: it may have been fallocated
  file_size_ = std::max(file_size, segment_bytes_);
  if (inline_writes()) {
    auto dup = file_->duplicate();
    if (!dup) return dup.error();
    sync_target_ = std::move(dup).value();
  }
  return Status();
}

void LogWriter::start() {
  if (thread_.joinable()) return;
  last_sync_ms_ = steady_ms();
  thread_ = std::thread([this] { run(); });
}

namespace {

// How many segments the batch starts; a record too long for a segment (with
// the end marker's room after it) counts as two, so that its file is made,
// or grown (a segment left with only its header), and synced on the thread.
size_t segments_opened(const Batch& batch, uint64_t segment_bytes) {
  size_t opened = 0;
  for (const Chunk& chunk : batch.chunks) {
    if (chunk.offset + chunk.bytes.size() + kEndMarkerRoom > segment_bytes) {
      opened += 2;
    } else if (chunk.opens_segment) {
      ++opened;
    }
  }
  return opened;
}

}  // namespace

void LogWriter::submit(Batch batch) {
  // Inline modes write here, except a batch that starts a segment when no
  // spare is ready: creating a file can wait for the disk (an open(O_CREAT)
  // was measured taking 23 ms while this writer's thread deleted an old
  // segment), and every client would wait with the loop. The thread writes
  // that batch, and the loop goes on serving. With a spare, rotation here is
  // a rename; but one spare covers one rotation: a batch that starts two
  // segments (records piled up while the thread was busy) would make the
  // second file, and sync it, on the loop; so would one whose record is
  // longer than a spare (segments_opened counts that one twice).
  const size_t opened = inline_writes() ? segments_opened(batch, segment_bytes_) : 0;
  // The room to leave another file unsynced is asked only of a batch that
  // leaves one, so a plain batch takes no lock for it.
  if (inline_writes() && !batch.sync &&
      (opened == 0 || (opened == 1 && spare_->ready() && room_to_leave_a_file()))) {
    Status s = write_chunks(batch.chunks);
    if (s.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      uint64_t last = last_seq_of(batch);
      if (!durable_seq_frozen_ && last > report_.durable_seq) report_.durable_seq = last;
      report_.batch_done = true;
      ++stats_.batches;
      return_buffers(batch);
      if (!batch.delete_first_seqs.empty()) {
        deletions_.insert(deletions_.end(), batch.delete_first_seqs.begin(),
                          batch.delete_first_seqs.end());
        wake_.notify_one();
      }
      return;
    }
    // The page cache said no (an I/O error, no space): the thread retries
    // the whole batch, and owns the file until it succeeds.
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.io_errors;
    report_.failure = s;
    inbox_ = std::move(batch);
    inbox_is_retry_ = true;
    busy_ = true;
    wake_.notify_one();
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    inbox_ = std::move(batch);
    inbox_is_retry_ = false;
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
  WriterStats stats = stats_;
  if (spare_) {
    stats.spare_segments_used = spare_->taken();
    stats.spare_failures = spare_->failures();
    stats.spare_last_failure = spare_->last_failure();
  }
  return stats;
}

Status LogWriter::sync_file(WritableFile& file) {
  int64_t started = steady_us();
  Status s = file.sync();
  int64_t took = steady_us() - started;
  std::lock_guard<std::mutex> lock(mu_);
  if (s.ok()) {
    ++stats_.fsyncs;
    stats_.last_fsync_us = took;
    stats_.fsync_us_total += took;
    if (took > stats_.max_fsync_us) stats_.max_fsync_us = took;
  }
  return s;
}

Status LogWriter::sync_left_behind() {
  std::vector<std::unique_ptr<WritableFile>> retired;
  bool dir = false;
  uint64_t newest = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    retired.swap(retired_);
    dir = sync_dir_;
    sync_dir_ = false;
    newest = std::exchange(newest_marker_seq_, 0);
  }
  // On a failure the batch gives up for good (process_on_thread): those
  // files' pages may be gone, and nothing writes them again.
  const Status failure = sync_retired(retired, dir, newest);
  if (!failure.ok()) {
    // The new file's name still wants its sync, which run() does; it does
    // not move NEWEST after a failed sync (sync_retired).
    std::lock_guard<std::mutex> lock(mu_);
    sync_dir_ = sync_dir_ || dir;
    if (newest_marker_seq_ == 0) newest_marker_seq_ = newest;
  }
  return failure;
}

Status LogWriter::sync_retired(std::vector<std::unique_ptr<WritableFile>>& retired, bool dir,
                               uint64_t newest) {
  Status failure;
  for (auto& file : retired) {
    if (Status s = sync_file(*file); !s.ok() && failure.ok()) failure = s;
    (void)file->close();
  }
  {
    // Synced or failed: after a failure the log is unhealthy for good.
    std::lock_guard<std::mutex> lock(mu_);
    files_left_unsynced_ -= retired.size();
  }
  if (dir) {
    if (Status s = fs_.sync_dir(dir_); !s.ok() && failure.ok()) failure = s;
  }
  // Once the name is durable (see write_chunks). Best effort: under these
  // modes records are acknowledged before any sync here, and a marker that
  // names an older segment only makes the next start's check weaker.
  // Not after a failed sync (final_status_, set on this thread): NEWEST
  // names a segment only once every file before it was synced, and a file
  // whose sync failed may have lost its pages.
  if (dir && newest != 0 && failure.ok() && final_status_.ok()) {
    (void)write_newest_marker(fs_, dir_, newest);
  }
  return failure;
}

bool LogWriter::room_to_leave_a_file() {
  std::lock_guard<std::mutex> lock(mu_);
  return files_left_unsynced_ < kMaxFilesLeftUnsynced;
}

Status LogWriter::write_chunks(const std::vector<Chunk>& chunks, bool on_thread,
                               bool* left_behind_lost) {
  for (const Chunk& chunk : chunks) {
    if (file_first_seq_ != chunk.first_seq && inline_writes() && on_thread) {
      // A batch that starts segments on the thread (records piled up while
      // it was busy) syncs the files left first once they are too many.
      if (!room_to_leave_a_file()) {
        if (Status s = sync_left_behind(); !s.ok()) {
          if (left_behind_lost) *left_behind_lost = true;
          return s;
        }
      }
    }
    if (file_first_seq_ != chunk.first_seq) {
      // Moving on to another segment. Under always, finish the old one now
      // (this batch's bytes in it are not synced yet); otherwise the thread
      // syncs it in the background.
      std::unique_ptr<WritableFile> old = std::move(file_);
      if (old && !inline_writes() && file_dirty_) {
        if (Status s = sync_file(*old); !s.ok()) {
          file_ = std::move(old);
          return s;
        }
        file_dirty_ = false;
      }
      file_first_seq_ = 0;
      const std::string path = path_of(chunk.first_seq);
      Result<std::unique_ptr<WritableFile>> opened = Status();
      written_to_ = 0;
      // A record longer than a segment (a queue's schedules, a dead job's
      // payload and reason) starts one of its own (Log::append): made big
      // enough for it and an end marker before it is written, so that a
      // write cut short leaves zeros after it, a torn tail, not a record past
      // the end of the file, and replay can tell the file was not cut short.
      file_size_ = std::max(segment_bytes_, chunk.offset + chunk.bytes.size() + kEndMarkerRoom);
      if (chunk.opens_segment && file_size_ == segment_bytes_ && spare_ && spare_->take(path)) {
        opened = fs_.open_for_write(path, false, 0);
        if (!inline_writes()) written_to_ = segment_bytes_;  // a zero-filled spare
      } else if (chunk.opens_segment) {
        opened = create_segment(fs_, dir_, path, file_size_);
      } else {
        // A retry that starts in a segment it had already left.
        opened = fs_.open_for_write(path, false, 0);
      }
      if (!opened) {
        if (old && inline_writes()) {
          std::lock_guard<std::mutex> lock(mu_);
          retired_.push_back(std::move(old));
          ++files_left_unsynced_;
        }
        return opened.error();
      }
      file_ = std::move(opened).value();
      file_first_seq_ = chunk.first_seq;
      if (inline_writes()) {
        auto dup = file_->duplicate();
        if (!dup) return dup.error();
        std::lock_guard<std::mutex> lock(mu_);
        if (old) {
          retired_.push_back(std::move(old));
          ++files_left_unsynced_;
        }
        sync_target_ = std::move(dup).value();
        if (chunk.opens_segment) {
          // The new file's name must be durable too, and then NEWEST name it.
          sync_dir_ = true;
          newest_marker_seq_ = chunk.first_seq;
        }
        wake_.notify_one();
      } else {
        if (old) (void)old->close();
        dir_sync_owed_ = chunk.opens_segment;
        newest_marker_owed_ = chunk.opens_segment ? chunk.first_seq : 0;
      }
    }
    if (dir_sync_owed_) {
      // The new file's name must be durable before its records are. Owed
      // until it succeeds: a retry after a failure here finds the segment
      // open already and would not come back to it.
      if (Status s = fs_.sync_dir(dir_); !s.ok()) return s;
      dir_sync_owed_ = false;
    }
    if (newest_marker_owed_ != 0) {
      // After the name is durable (a marker naming a file a power cut took
      // would refuse the next start), before any record of the file is
      // written: a record acknowledged from it is then always one whose
      // file's loss the next start sees. Owed until it succeeds, as above.
      if (Status s = write_newest_marker(fs_, dir_, newest_marker_owed_); !s.ok()) return s;
      newest_marker_owed_ = 0;
    }
    if (const uint64_t end = chunk.offset + chunk.bytes.size() + kEndMarkerRoom; end > file_size_) {
      // A record longer than a segment, in a segment that holds only its
      // header (a start cut its first record off as a torn write, and a new
      // segment would take that one's name): grown, and the size synced,
      // before the record is written, as at rotation, so that a write cut
      // short leaves a torn tail, not a record past the end of the file.
      auto grown = fs_.open_for_write(path_of(chunk.first_seq), false, end);
      if (!grown) return grown.error();
      if (Status s = (*grown)->sync(); !s.ok()) return s;
      (void)(*grown)->close();
      file_size_ = end;
    }
    if (Status s = file_->write_at(chunk.offset, chunk.bytes); !s.ok()) return s;
    if (!inline_writes() && spare_) {
      if (Status s = zero_ahead(chunk.offset + chunk.bytes.size()); !s.ok()) return s;
    }
    file_dirty_ = true;
    if (spare_ && chunk.offset + chunk.bytes.size() > segment_bytes_ / 2) spare_->request();
    dirty_.store(true, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(mu_);
    stats_.bytes_written += chunk.bytes.size();
  }
  return Status();
}

Status LogWriter::zero_ahead(uint64_t end) {
  if (end + kZeroAheadBytes / 2 <= written_to_) return Status();
  const uint64_t from = std::max(written_to_, end);
  const uint64_t to = std::min(end + kZeroAheadBytes, file_size_);
  if (from < to) {
    if (zeros_.empty()) zeros_.assign(kZeroAheadBytes, '\0');
    std::string_view zeros(zeros_);
    if (Status s = file_->write_at(from, zeros.substr(0, to - from)); !s.ok()) return s;
  }
  written_to_ = std::max({written_to_, end, to});
  return Status();
}

Status LogWriter::delete_segments(const std::vector<uint64_t>& first_seqs) {
  for (uint64_t first_seq : first_seqs) {
    // Gone already is done: a retry after a failure later in this list (or
    // in the directory's sync) removes the same files again.
    Status s = fs_.remove(path_of(first_seq));
    if (!s.ok() && s.code() != Status::Code::kNotFound) return s;
  }
  return fs_.sync_dir(dir_);
}

void LogWriter::process_on_thread(Batch batch, bool retry) {
  // Always mode: write, sync, then delete (deleting a segment is only safe
  // once what replaced it is durable). Inline modes (a batch that starts a
  // segment, or a retry of one that failed on the loop): write, and leave
  // syncing to the usual schedule.
  // A failed sync of the files left behind: their pages may be gone (Linux
  // drops them after a failed writeback), and a retry writes only this
  // batch again, never those files' records.
  bool left_behind_lost = false;
  auto attempt = [&]() -> Status {
    if (Status s = write_chunks(batch.chunks, true, &left_behind_lost); !s.ok()) return s;
    if (inline_writes() && batch.sync) {
      // The files left behind first, as run() does: no file's sync may
      // finish before theirs (a power cut's zeros in one then say that
      // nothing after them was synced: Log::open cuts the log there).
      if (Status s = sync_left_behind(); !s.ok()) {
        left_behind_lost = true;
        return s;
      }
    }
    // Inline modes sync a batch's deletions' replacement in run(), after
    // the files left behind, as any other sync there.
    if (!inline_writes() || batch.sync) {
      if (file_ && file_dirty_) {
        if (Status s = sync_file(*file_); !s.ok()) return s;
        file_dirty_ = false;
      }
    }
    if (batch.run_marker_after && (!inline_writes() || batch.sync)) {
      // Best effort, as at open: a marker that still names the weaker
      // policy, or a bound, only skips ids again after a crash. Inline
      // modes rewrite it only after a synced batch (the first after an open
      // that found ids to skip is: Log::flush).
      (void)write_run_marker(fs_, dir_, *batch.run_marker_after);
      batch.run_marker_after.reset();
    }
    if (batch.backup_marker_off_after && (!inline_writes() || batch.sync)) {
      // Best effort too: a marker left only jumps ids again at the next start.
      (void)remove_backup_marker(fs_, dir_);
      batch.backup_marker_off_after = false;
    }
    if (!inline_writes() && !batch.delete_first_seqs.empty()) {
      return delete_segments(batch.delete_first_seqs);
    }
    return Status();
  };
  Status s = attempt();
  bool failed = false;
  std::unique_lock<std::mutex> lock(mu_);
  while (!s.ok()) {
    ++stats_.io_errors;
    if (!failed && !retry) report_.failure = s;  // a retry's failure was reported already
    failed = true;
    if (left_behind_lost) {
      // As after any failed sync in run(): unhealthy for good, and a
      // restart replays what is really there. The batch is not durable.
      report_.failure = s;
      report_.lasting = true;
      if (final_status_.ok()) final_status_ = s;
      // The batches the loop hands over next are written after this one's
      // records: their seqs being "written" must not vouch for these.
      durable_seq_frozen_ = true;
      report_.batch_done = true;
      idle_.notify_all();
      lock.unlock();
      on_progress_();
      return;
    }
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
    s = attempt();
    lock.lock();
  }
  uint64_t last = last_seq_of(batch);
  if (!durable_seq_frozen_ && last > report_.durable_seq) report_.durable_seq = last;
  report_.batch_done = true;
  // A retry's first failure happened on the loop: success is a recovery
  // even on the first try here.
  if (failed || retry) report_.recovered = true;
  if (inline_writes()) {
    // A retried batch may carry deletions: they follow the usual path.
    deletions_.insert(deletions_.end(), batch.delete_first_seqs.begin(),
                      batch.delete_first_seqs.end());
  } else {
    report_.deleted.insert(report_.deleted.end(), batch.delete_first_seqs.begin(),
                           batch.delete_first_seqs.end());
  }
  ++stats_.batches;
  return_buffers(batch);
  idle_.notify_all();
  lock.unlock();
  on_progress_();
}

void LogWriter::return_buffers(Batch& batch) {
  // All of them: the loop decides how many it keeps (Log::apply).
  for (Chunk& chunk : batch.chunks) {
    chunk.bytes.clear();
    report_.spent.push_back(std::move(chunk.bytes));
  }
}

void LogWriter::run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    auto sync_due = [&] {
      return policy_ == FsyncPolicy::kInterval && dirty_.load() &&
             steady_ms() - last_sync_ms_ >= fsync_interval_ms_;
    };
    while (!inbox_ && !stopping_ && !sync_due() && retired_.empty() && deletions_.empty() &&
           !sync_dir_) {
      if (policy_ == FsyncPolicy::kInterval && dirty_.load()) {
        int64_t wait = fsync_interval_ms_ - (steady_ms() - last_sync_ms_);
        wake_.wait_for(lock, std::chrono::milliseconds(wait > 0 ? wait : 0));
      } else if (policy_ == FsyncPolicy::kInterval) {
        // The loop writes without waking us; look again after an interval.
        wake_.wait_for(lock, std::chrono::milliseconds(fsync_interval_ms_));
      } else {
        wake_.wait(lock);
      }
    }

    if (inbox_) {
      Batch batch = std::move(*inbox_);
      inbox_.reset();
      const bool retry = inbox_is_retry_;
      lock.unlock();
      process_on_thread(std::move(batch), retry);
      lock.lock();
      continue;
    }

    // Inline modes from here: syncs and deletions the loop left to us.
    Status failure;
    if (!retired_.empty() || sync_dir_) {
      std::vector<std::unique_ptr<WritableFile>> retired;
      retired.swap(retired_);
      bool dir = sync_dir_;
      sync_dir_ = false;
      const uint64_t newest = std::exchange(newest_marker_seq_, 0);
      lock.unlock();
      failure = sync_retired(retired, dir, newest);
      lock.lock();
    } else if (sync_due() || !deletions_.empty() || (stopping_ && dirty_.load())) {
      std::shared_ptr<WritableFile> target = sync_target_;
      std::vector<uint64_t> deletions;
      deletions.swap(deletions_);
      lock.unlock();
      const bool was_dirty = dirty_.exchange(false);
      if (target && was_dirty) {
        if (Status s = sync_file(*target); !s.ok()) failure = s;
      }
      last_sync_ms_ = steady_ms();
      // Deleting a segment is safe only once what replaced it is durable.
      // After a failed sync nothing written before it can be trusted (the
      // pages may be gone, and a second sync then finds nothing to do), so
      // no segment is deleted again in this run: the log is unhealthy for
      // good, and a restart replays what is really there.
      const bool trusted = final_status_.ok();
      if (failure.ok() && trusted && !deletions.empty()) failure = delete_segments(deletions);
      lock.lock();
      if (failure.ok() && trusted && !deletions.empty()) {
        report_.deleted.insert(report_.deleted.end(), deletions.begin(), deletions.end());
        lock.unlock();
        on_progress_();
        lock.lock();
      }
    } else if (stopping_) {
      lock.unlock();
      Status s;
      if (file_ && file_dirty_ && !inline_writes()) s = sync_file(*file_);
      if (file_) (void)file_->close();
      lock.lock();
      if (!s.ok() && final_status_.ok()) final_status_ = s;
      return;
    }
    if (!failure.ok()) {
      // The pages may be gone (Linux drops them after a failed writeback):
      // say so and refuse writes; a restart replays what is really there.
      ++stats_.io_errors;
      report_.failure = failure;
      report_.lasting = true;
      if (final_status_.ok()) final_status_ = failure;
      lock.unlock();
      on_progress_();
      lock.lock();
    }
  }
}

}  // namespace tq::wal
