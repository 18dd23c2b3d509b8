// A zero-filled, synced file kept ready to become the log's next segment.
//
// Why: a segment preallocated with fallocate holds "unwritten" extents, and
// on ext4 (and XFS) the first write into each one must be journalled, so
// every fdatasync of a fresh segment also commits file-system metadata. On
// blocks that were written before, fdatasync flushes data only: a micro test
// on our CI disk measured 440 µs against 300 µs per 4 KiB write + fdatasync.
// Under fsync=always that is the floor of every reply's latency, so the
// writer asks for a spare when its segment is half full, a thread of this
// class writes the zeros (and syncs them) off the hot path, and rotation
// renames the spare into place instead of creating a file. When no spare is
// ready (a burst outran the thread, the disk was full) rotation creates the
// file as before. PostgreSQL's wal_init_zero makes the same trade.
//
// Under fsync=never and interval the spare is only created, preallocated and
// its size synced (zero_fill false; the size must be durable before the file
// gets a segment's name, see log_writer.h): nothing waits for a sync of data
// there, but creating a file can wait for the disk (ext4 allocating an inode
// while an old segment is being deleted), and with a spare ready the event
// loop's rotation is a rename.
//
// The spare is named "spare" in the log's directory, which replay ignores;
// a leftover one from an earlier run is removed when this starts (or, by a
// log that makes no spare, with remove_leftover).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "wal/file.h"

namespace tq::wal {

class SpareSegment {
 public:
  // Removes the spare an earlier run may have left in `dir`. The
  // constructor does it; a log that makes no spare must call it.
  static void remove_leftover(FileSystem& fs, const std::string& dir);

  // zero_fill: write the zeros and sync them; otherwise preallocate and sync
  // the size only.
  SpareSegment(FileSystem& fs, std::string dir, uint64_t bytes, bool zero_fill);
  ~SpareSegment();  // stops the thread; a half-made spare is removed
  SpareSegment(const SpareSegment&) = delete;
  SpareSegment& operator=(const SpareSegment&) = delete;

  // Asks for a spare to be made, unless one is ready or being made. Cheap:
  // call it as often as you like.
  void request();
  // Renames the ready spare to `path` (which must not exist) and returns
  // true; false when none is ready, and the caller makes the file itself.
  bool take(const std::string& path);
  // A spare is ready: take() will not create anything. Only the caller of
  // take() can make this false again.
  bool ready() const;

  // For tests: blocks until no spare is being made.
  void wait_idle();
  uint64_t made() const;   // spares finished
  uint64_t taken() const;  // spares that became segments
  // Spares that could not be made (a disk filling up shows here first: the
  // next rotation then makes its file itself, and may fail), and why the
  // last one could not.
  uint64_t failures() const;
  std::string last_failure() const;

 private:
  void run();
  Status make();  // thread: create the file, then zero-fill and sync it or preallocate

  FileSystem& fs_;
  const std::string path_;
  const uint64_t bytes_;
  const bool zero_fill_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  bool wanted_ = false;
  bool making_ = false;
  bool ready_ = false;
  bool stopping_ = false;
  uint64_t failures_ = 0;
  std::string last_failure_;
  int64_t retry_after_ms_ = 0;  // after a failure, not before this
  uint64_t made_ = 0;
  uint64_t taken_ = 0;
  std::thread thread_;
};

}  // namespace tq::wal
