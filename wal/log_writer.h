// Writes the log's batches into segment files, syncing as the policy says,
// so that the event loop never waits for a sync.
//
// fsync=always (group commit): the loop appends records to a batch for as
// long as the writer thread is busy; when it is idle the loop hands the whole
// batch over in one move. The thread writes it with one write per segment and
// one fdatasync, then reports the highest seq that is durable and calls
// on_progress (from its own thread: the server turns that into a
// uv_async_send).
//
// fsync=interval and never: a write into the page cache takes microseconds,
// so the loop writes each batch itself, at once, and the reply waits for
// nothing more (two thread hand-offs per request were most of the cost of a
// small request). The thread syncs: every fsync_interval_ms (interval),
// each segment the loop has moved past, and before deleting segments. The
// loop starts no segment while two it moved past wait for their sync: that
// batch goes to the thread, which syncs them first (a slow disk then holds
// writes up, and a power cut leaves at most three files unsynced, which the
// next start can cut: Log::open).
//
// A segment file gets its name only once its full size is on disk: a spare
// is synced before it is renamed into place, and a file made at rotation is
// made under a temporary name, synced, then renamed. So no crash leaves a
// segment shorter than it was made (a file made with open(O_CREAT) and
// fallocate could be left at any size from zero up: its size is metadata,
// durable only at the next sync), and replay can take a short one for damage.
//
// Once a new segment's name is durable, the thread records its first seq in
// the NEWEST marker (run_marker.h), so that a start after a crash can tell
// when the newest file was lost whole. Under always that is part of the
// batch that starts the segment: synced before its records are written, and
// retried with them. Under never and interval the thread does it after the
// directory sync it does anyway, best effort, like the rest of their syncs.
// It costs one small write and sync per segment, none per batch.
//
// Rotation renames a spare file into place when one is ready (SpareSegment):
// under always a zero-filled one, so fdatasync on the new segment flushes
// data, not extent metadata; otherwise a preallocated one, so the loop never
// creates a file (that can wait for the disk). When no spare is ready, the
// batch that starts the segment goes to the thread, whatever the policy.
//
// Under always, a segment that did not come from a spare (a new log's first
// one, one made when no spare was ready, the one a restart resumes: its
// blocks may still be fallocate's "unwritten" ones) is zero-filled as it
// goes: the thread keeps 0.5-1 MiB of zeros written past the last record, in
// the write before the sync. So the extent metadata is committed once a MiB,
// not at nearly every sync (measured: see bench/RESULTS.md). Zeroing the
// whole file before its first record would hold that record's reply for
// 64 MiB of writes.
//
// A failed write or sync is retried, from the same offset, every
// retry_interval until it succeeds; meanwhile the failure is reported once so
// the loop can answer ERROR IO and refuse new writes. A sync is never
// trusted after it failed: the retry rewrites the bytes before syncing again.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "wal/file.h"
#include "wal/record.h"
#include "wal/spare_segment.h"

namespace tq::wal {

enum class FsyncPolicy { kAlways, kInterval, kNever };

const char* fsync_policy_name(FsyncPolicy policy);

// Bytes for one segment, in the order they go to disk.
struct Chunk {
  uint32_t ordinal = 0;
  uint64_t first_seq = 0;      // names the file when it is opened
  bool opens_segment = false;  // create the file first; bytes start with its header
  uint64_t offset = 0;         // where in the file the bytes go
  std::string bytes;
  uint64_t last_seq = 0;       // of the last record in bytes; 0 if none
};

struct Batch {
  std::vector<Chunk> chunks;
  // After the chunks are durable, delete the segments named here (their
  // first seqs), syncing what replaced them first whatever the policy.
  std::vector<uint64_t> delete_first_seqs;
  // fsync=always: once the chunks are durable, rewrite the run marker
  // (RUNNING) to name this policy (Log::flush says when).
  std::optional<FsyncPolicy> run_marker_after;
  // Once the chunks are synced, remove the marker of a log restored from a
  // backup (wal/backup.h): the first batch of its first run holds the
  // caller's id jump, and later starts need not jump again.
  bool backup_marker_off_after = false;
  // Durable only once synced, whatever the policy: the files it wrote, and
  // the names of those it made. For the first batch of a run that followed a
  // loss (Log::flush says when): it holds what the caller derived from the
  // loss, and a second crash must not take that while acknowledged records
  // that depend on it survive in clients' hands.
  bool sync = false;
};

struct WriterReport {
  bool batch_done = false;       // the batch handed over has finished
  uint64_t durable_seq = 0;      // highest seq written (and synced, if always)
  std::optional<Status> failure; // a write or sync failed; being retried
  bool lasting = false;          // ... or not: a background sync failed (interval, never),
                                 // and writes stay refused until a restart
  bool recovered = false;        // a failed batch has since succeeded
  std::vector<uint64_t> deleted; // first seqs of segments deleted
  // The byte buffers of batches written since, emptied, capacity kept: the
  // loop fills them again instead of growing a new string every batch (a
  // string grown by doubling copies its bytes about once more, and a big
  // one can come fresh from mmap, page faults and all).
  std::vector<std::string> spent;
};

struct WriterStats {
  uint64_t fsyncs = 0;
  int64_t last_fsync_us = 0;
  int64_t max_fsync_us = 0;
  int64_t fsync_us_total = 0;  // over fsyncs: the mean sync time
  uint64_t batches = 0;
  uint64_t bytes_written = 0;
  uint64_t io_errors = 0;
  uint64_t spare_segments_used = 0;  // rotations into a spare segment
  uint64_t spare_failures = 0;       // spares that could not be made (SpareSegment)
  std::string spare_last_failure;
};

class LogWriter {
 public:
  LogWriter(FileSystem& fs, std::string dir, FsyncPolicy policy, int64_t fsync_interval_ms,
            uint64_t segment_bytes, int64_t retry_interval_ms, bool spare_segment,
            std::function<void()> on_progress);
  ~LogWriter();
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  // Before start(): continue writing into an existing segment file of
  // `file_size` bytes (grown, and synced, if segments are bigger now).
  Status resume(uint64_t first_seq, uint64_t file_size);

  // Starts the thread; a second call does nothing.
  void start();
  // Loop thread. Precondition: !busy(). Under fsync=always the thread writes
  // the batch; otherwise its chunks are written here and now, and the report
  // is ready when this returns, unless the batch starts a segment or is to
  // be synced (then the thread writes it, as under always).
  void submit(Batch batch);
  bool busy() const { return busy_; }
  // Loop thread: what happened since the last call. Clears busy() when the
  // batch finished.
  WriterReport take_report();
  // Blocks until the batch handed to the thread finishes or fails.
  void wait_idle();
  // Finishes what was handed over, syncs, and stops the thread. After a
  // failure that did not recover, returns it.
  Status stop();
  WriterStats stats();
  // Tests only: blocks until no spare segment is being made.
  void wait_spare_idle_for_tests() {
    if (spare_) spare_->wait_idle();
  }

 private:
  bool inline_writes() const { return policy_ != FsyncPolicy::kAlways; }
  void run();
  // Writes the chunks, opening and rotating segment files as they say.
  // Whoever holds the batch owns file_: the thread under always (and with a
  // batch that starts a segment, or a retry of a failed write), the loop
  // otherwise. `on_thread`: the writer's thread calls (see
  // kMaxFilesLeftUnsynced); a failed sync of the files left sets
  // *left_behind_lost.
  Status write_chunks(const std::vector<Chunk>& chunks, bool on_thread = false,
                      bool* left_behind_lost = nullptr);
  // The thread's part of a batch: write, sync (always), delete; retried.
  // `retry`: an inline write that failed on the loop (already reported).
  void process_on_thread(Batch batch, bool retry);
  Status sync_file(WritableFile& file);
  // Inline modes, thread: syncs the segments the batch just left and the
  // directory now, not in the background (a batch that must be synced).
  Status sync_left_behind();
  // Inline modes: whether one more file may be left waiting for its sync
  // (kMaxFilesLeftUnsynced). Takes mu_.
  bool room_to_leave_a_file();
  // Inline modes, thread: syncs and closes `retired` (files the log has
  // left), then the directory when `dir` (a new segment's name), then has
  // NEWEST name `newest` if that all worked. The first failure.
  Status sync_retired(std::vector<std::unique_ptr<WritableFile>>& retired, bool dir,
                      uint64_t newest);
  // Always with zero-fill: writes zeros past `end` (where the records written
  // into file_ stop), see the top of this file.
  Status zero_ahead(uint64_t end);
  // Puts the written batch's buffers in the report. Holds mu_.
  void return_buffers(Batch& batch);
  Status delete_segments(const std::vector<uint64_t>& first_seqs);
  std::string path_of(uint64_t first_seq) const;

  FileSystem& fs_;
  const std::string dir_;
  const FsyncPolicy policy_;
  const int64_t fsync_interval_ms_;
  const uint64_t segment_bytes_;
  const int64_t retry_interval_ms_;
  const std::function<void()> on_progress_;

  // The open segment; see write_chunks for who may touch it.
  std::unique_ptr<WritableFile> file_;
  uint64_t file_first_seq_ = 0;
  bool file_dirty_ = false;  // written since the last sync (always mode)
  bool dir_sync_owed_ = false;  // always: file_ is new, its name not yet synced
  // Always: file_ is new, and NEWEST does not name it yet (its first seq).
  uint64_t newest_marker_owed_ = 0;
  // Always with zero-fill (zero_ahead): file_'s bytes below written_to_ hold
  // records or zeros that were written, not only fallocated; the file is
  // file_size_ bytes long.
  uint64_t written_to_ = 0;
  uint64_t file_size_ = 0;
  std::string zeros_;  // kZeroAheadBytes of them, made when first needed
  int64_t last_sync_ms_ = 0;

  // Loop thread only.
  bool busy_ = false;

  std::mutex mu_;
  std::condition_variable wake_;  // the thread waits on it
  std::condition_variable idle_;  // wait_idle() waits on it
  std::optional<Batch> inbox_;    // a batch for the thread (see submit)
  bool inbox_is_retry_ = false;   // inbox_ failed on the loop first
  // Inline modes: what the thread syncs. `sync_target_` is a second handle
  // on the open segment; `retired_` are segments the loop moved past.
  std::shared_ptr<WritableFile> sync_target_;
  std::vector<std::unique_ptr<WritableFile>> retired_;
  // Inline modes: files the log has left whose sync has not finished
  // (retired_, and those sync_retired is syncing). See kMaxFilesLeftUnsynced.
  size_t files_left_unsynced_ = 0;
  std::vector<uint64_t> deletions_;
  bool sync_dir_ = false;
  // Inline modes: after sync_dir_'s sync, NEWEST is to name this segment
  // (its first seq; 0: no new one).
  uint64_t newest_marker_seq_ = 0;
  std::atomic<bool> dirty_{false};  // written since the thread last synced
  bool stopping_ = false;
  WriterReport report_;
  // A batch that had to be synced gave up for good (process_on_thread):
  // report_.durable_seq stays below its records.
  bool durable_seq_frozen_ = false;
  WriterStats stats_;
  Status final_status_;
  std::thread thread_;
  // The next segment, made ahead of time (see spare_segment.h); none under
  // always without zero-fill. Used by whoever owns file_.
  std::unique_ptr<SpareSegment> spare_;
};

}  // namespace tq::wal
