// The write-ahead log: a directory of segments, the lock that makes it ours,
// replay at open, appends from the event loop, and deletion of segments the
// caller no longer needs.
//
// Threads: every method is for the loop thread. Disk writes happen on the
// LogWriter's thread; the loop learns of them through poll(), which it calls
// when the progress callback (run on the writer thread) wakes it.
//
// Guarantees: records are durable in append order (a seq is durable only if
// every lower seq is); a record the writer reports durable survives a process
// crash in every policy, and a power cut under fsync=always. Segments are
// deleted only as the caller asks, and only after everything appended before
// the request is durable, so a record's replacement is never lost with it.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "wal/backup.h"
#include "wal/file.h"
#include "wal/log_writer.h"
#include "wal/record.h"
#include "wal/segment_reader.h"

namespace tq::wal {

struct LogOptions {
  std::string dir;                           // the segments live here
  FsyncPolicy fsync = FsyncPolicy::kAlways;
  int64_t fsync_interval_ms = 1000;          // fsync=interval: sync at least this often
  uint64_t segment_bytes = 64ull << 20;      // rotate to a new segment past this size
  bool recover = false;                      // skip damaged records instead of refusing to open
  int64_t retry_interval_ms = 1000;          // after a failed write, try again this often
  bool spare_segment = true;                 // always: zero-fill the next segment ahead (spare_segment.h);
                                             // never and interval always preallocate one
};

struct OpenSummary {
  size_t segments = 0;
  uint64_t records = 0;
  uint64_t bytes = 0;
  std::string torn;        // "<file> offset N (M bytes)" when a partial record was cut off
  // What `torn` cut off starts with zeros a power cut left among records
  // (wal/segment_reader.h), and this many intact records after them went too.
  bool torn_lost_writes = false;
  uint64_t cut_after_lost_writes = 0;
  // Segments were removed as a power cut's lost writes (the newest, its
  // header's sector lost, records after it; or the files after a cut in a
  // file before the newest): seq_bound covers what they could hold.
  bool lost_writes_removed = false;
  uint64_t dropped = 0;    // recover: how many damaged regions were skipped
  // The last run did not close the log, and ran under a policy that can
  // lose acknowledged records in a power cut (run_marker.h): some may be
  // missing from the end, with nothing in the log to show it.
  bool acknowledged_may_be_lost = false;
  FsyncPolicy previous_policy = FsyncPolicy::kAlways;  // when it may be
  bool previous_policy_unknown = false;                // its marker named none: never assumed
  bool previous_unclean = false;  // the last run did not close the log, whatever its policy
  // No record ever written to this log had a seq above this: the last one
  // replayed, or, when recovery dropped the newest segment's tail (whose
  // records cannot be counted), as far as a segment could have held; after
  // a torn write, as far as the rest of the newest file and one more could;
  // when acknowledged records may be lost, as far as the rest of the newest
  // file and four more segments could (the writer syncs each segment the
  // loop has left as soon as it is left, and starts no segment while two
  // it left wait for their sync: kMaxFilesLeftUnsynced);
  // when no record is left at all, only files of zeros (which a crash does
  // not leave), as far as those files could have held; when the newest
  // file(s) are missing (closed_at_seq_missing, newest_missing_first_seq),
  // as far as they could have held.
  uint64_t seq_bound = 0;
  // No record is left, only files of zeros, which were removed: the first
  // start stopped before its first record, or the disk lost synced data
  // (seq_bound then covers what those files could have held).
  bool only_zeros_left = false;
  std::vector<std::string> removed;  // "<file>: <why>" for each segment file deleted by open
  // The log is a backup's copy (wal/backup.h) not yet started on: when it
  // was made, Unix ms; -1 when its marker cannot be read; 0: not a copy.
  int64_t restored_backup_at_ms = 0;
  // Recover only: the log ends before the record a clean close left last
  // (CLOSED names it): its newest file(s) are gone whole, or the newest
  // file left lost its end, or all of it. seq_bound covers it.
  uint64_t closed_at_seq_missing = 0;
  // ... and which records are missing and what took them, in words ("records
  // 6 to 9 are missing: the end of <file> lost them (...)"; "its newest
  // file(s) are missing, ..."), as the refusal without recover says it.
  std::string closed_at_missing_cause;
  // Recover only: the last run did not close the log, and had made a segment
  // with this first seq (NEWEST names it, run_marker.h), but no file from it
  // on is here: the newest file(s) are gone whole. seq_bound covers what a
  // segment of the largest size could have held from there.
  uint64_t newest_missing_first_seq = 0;
  // The last run found ids to skip at its own open and crashed before its
  // log recorded the skip (its RUNNING marker says so): seq_bound covers it.
  uint64_t unrecorded_skip_seq_bound = 0;

  // Whether job ids that lost records may have held must be skipped (up to
  // what seq_bound allows), and the skip written before anything else.
  bool ids_may_be_lost() const {
    return dropped > 0 || !torn.empty() || acknowledged_may_be_lost || only_zeros_left ||
           lost_writes_removed || closed_at_seq_missing != 0 || newest_missing_first_seq != 0 ||
           unrecorded_skip_seq_bound != 0;
  }
};

struct LogStats {
  size_t segments = 0;
  uint64_t bytes = 0;              // written bytes across segments (headers and records)
  uint64_t records_appended = 0;   // since start
  uint64_t last_seq = 0;
  uint64_t durable_seq = 0;
  uint64_t segments_deleted = 0;
  bool healthy = true;
  std::string last_error;
  WriterStats writer;
};

// Visits each replayed record; `segment` is the ordinal of the file it is in.
using ReplayVisitor = std::function<Status(const Record& record, uint32_t segment)>;

class Log {
 public:
  // `sizing`, when given, is told the bytes of log about to be replayed
  // before the first record is, so tables can be sized once.
  static Result<std::unique_ptr<Log>> open(FileSystem& fs, const LogOptions& options,
                                           Reporter& reporter, const ReplayVisitor& visit,
                                           OpenSummary* summary,
                                           const std::function<void(uint64_t)>& sizing = {});
  ~Log();
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;

  // Called on the writer thread after each batch; must be cheap and
  // thread-safe (uv_async_send). Set before start().
  void set_progress_callback(std::function<void()> callback);
  void start();

  struct Appended {
    uint64_t seq;
    uint32_t segment;  // ordinal of the segment the record goes into
  };
  // The body is `body` followed by `body_tail` (see append_record).
  Appended append(uint8_t type, std::string_view body, std::string_view body_tail = {});

  // Hands what was appended to the writer, if it is idle. Once per iteration,
  // and after poll() (the next batch fills while one is written); the caller
  // decides when, so that it may let records nobody waits for gather.
  void flush();

  struct Progress {
    bool advanced = false;   // durable_seq() moved
    bool failed = false;     // a write failed: healthy() is now false
    bool recovered = false;  // writes work again
  };
  Progress poll();

  // Asks for every segment with an ordinal below `ordinal` to be deleted
  // (never the current one), once what is appended now is durable.
  void delete_segments_before(uint32_t ordinal);
  // Makes the next append start a new segment.
  void rotate() { rotate_next_ = true; }

  // Online backup (wal/backup.h): what to copy for a backup of the log as
  // it stands now. From here until unpin_for_backup() no segment is
  // deleted: deletions asked for meanwhile wait, so the copy can read every
  // segment the plan names. Copy once durable_seq() reaches the plan's
  // last_seq. One pin at a time.
  BackupPlan pin_for_backup();
  void unpin_for_backup();
  bool pinned_for_backup() const { return pinned_; }

  // Nothing appended or requested is waiting for the writer.
  bool idle() const { return !writer_->busy() && !has_unflushed(); }
  // Records or deletions wait for flush().
  bool has_unflushed() const {
    return !pending_.chunks.empty() || !pending_.delete_first_seqs.empty();
  }
  uint64_t last_seq() const { return next_seq_ - 1; }
  uint64_t durable_seq() const { return durable_seq_; }
  bool healthy() const { return healthy_; }
  // Unhealthy for the rest of this run: a background sync failed (interval,
  // never), and nothing written since the last good one can be trusted; or
  // the directory went (check_in_place).
  bool failed_until_restart() const { return failed_until_restart_; }
  // Whether the log's directory is still where it was opened. When it is
  // not (removed or moved away under a running tqd), the log fails until a
  // restart: what it writes goes to files the next start cannot find, so
  // nothing more may be acknowledged as stored. The next poll() reports the
  // failure. Cheap (two stats): the caller's upkeep calls it once a second.
  Status check_in_place();
  bool directory_gone() const { return directory_gone_; }
  const std::string& last_error() const { return last_error_; }
  uint32_t current_segment() const { return segments_.empty() ? 0 : segments_.back().ordinal; }
  uint32_t oldest_segment() const { return segments_.empty() ? 0 : segments_.front().ordinal; }
  uint64_t total_bytes() const { return total_bytes_; }
  // Bytes appended since open (headers and records); only grows.
  uint64_t appended_bytes() const { return appended_bytes_; }
  uint64_t segment_bytes() const { return options_.segment_bytes; }
  // Bytes the current segment can still take before the next one is made
  // (its file is preallocated: they need no more disk).
  uint64_t head_room() const {
    if (segments_.empty() || segments_.back().bytes >= options_.segment_bytes) return 0;
    return options_.segment_bytes - segments_.back().bytes;
  }
  // Free bytes on the log's file system (a statvfs: no disk I/O).
  Result<uint64_t> free_disk_bytes() const { return fs_->free_bytes(options_.dir); }
  FsyncPolicy policy() const { return options_.fsync; }
  LogStats stats();

  // Writes and syncs everything appended, then stops the writer thread.
  Status close();

  // Tests only: blocks until no spare segment is being made (always mode).
  void wait_spare_idle_for_tests() { writer_->wait_spare_idle_for_tests(); }

 private:
  struct Segment {
    uint32_t ordinal;
    uint64_t first_seq;
    uint64_t bytes;         // written (or queued) so far
    bool deleting = false;  // asked to be deleted
  };

  explicit Log(LogOptions options);
  // Takes the report's spent buffers for reuse.
  void apply(WriterReport& report, Progress* progress);
  // An empty buffer for a new chunk: a spent one when there is one.
  std::string take_buffer();

  const LogOptions options_;
  FileSystem* fs_ = nullptr;  // for the run marker at close
  // The run before this one may have lost acknowledged records: the marker
  // stays until this run has appended (what it derived from the loss, the
  // server's id counters, is then in the log) and closes cleanly.
  bool after_lossy_crash_ = false;
  // fsync=always after a crash of a run under never or interval: the marker
  // names that run's policy (policy_to_mark) until this run's first batch,
  // which holds the caller's id skip (its counters), is durable; the writer
  // then rewrites it to name always. Otherwise every later crash of this
  // run would be taken for a lossy one: ids skipped, and the log saying so.
  bool marker_upgrade_pending_ = false;
  // What the marker names then. Under every policy, a bound of ids to skip
  // (RUNNING's third line) goes with the same rewrite, after the batch that
  // records the skip is synced (sync_first_batch_).
  FsyncPolicy marker_after_first_batch_ = FsyncPolicy::kAlways;
  // The open found a run that did not stop cleanly, or recovered: the
  // first batch is synced whatever the policy (Batch::sync). It holds the
  // caller's id skip (its counters); under never or interval a second crash
  // could otherwise take it with the ids this run gave out after it, and the
  // next open, which derives the same skip from the same files, would give
  // them out again.
  bool sync_first_batch_ = false;
  // Opened on a backup's copy: its marker goes once the first batch (the
  // caller's id skip) is synced, and, if that removal failed, at the first
  // clean close after a record. Otherwise every crash until a clean stop
  // would jump ids again, and say the copy was not yet written to.
  bool backup_marker_ = false;
  bool backup_marker_off_pending_ = false;  // the next batch with records takes it off
  bool directory_gone_ = false;  // check_in_place found it: failed for good, reported once
  bool gone_unreported_ = false;
  std::unique_ptr<FileLock> lock_;
  std::unique_ptr<LogWriter> writer_;
  std::function<void()> progress_callback_;

  std::deque<Segment> segments_;
  Batch pending_;                 // appended, not yet handed to the writer
  std::vector<std::string> spare_buffers_;  // written chunks' buffers, empty, to fill again
  uint64_t next_seq_ = 1;
  uint64_t durable_seq_ = 0;
  uint64_t total_bytes_ = 0;
  uint64_t appended_bytes_ = 0;
  uint64_t records_appended_ = 0;
  uint64_t segments_deleted_ = 0;
  bool rotate_next_ = false;
  bool pinned_ = false;              // a backup is reading the segments
  uint32_t delete_after_unpin_ = 0;  // delete_segments_before() asked while pinned
  bool healthy_ = true;
  bool failed_until_restart_ = false;
  bool closed_ = false;
  std::string last_error_;
};

}  // namespace tq::wal
