// Online backup: a copy of the log as it stood at one moment, made while
// the log goes on being written.
//
// The idea: a log's files at any moment, each cut at what had been written,
// are exactly what a crash at that moment would leave, and replay already
// starts from that. So a backup needs no snapshot of the state and no pause:
// Log::pin_for_backup() notes each segment and how far it was written, and
// keeps every segment from being deleted (compaction goes on, its deletions
// wait); once the log has written the plan's last record, copy_backup()
// copies each segment up to its noted length on any thread, and the caller
// unpins. Records appended after the plan are left out; segments deleted
// before it (already asked to go) are left out too, which is safe because
// deletion only ever removes a prefix whose replacements the plan includes.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "wal/file.h"
#include "wal/status.h"

namespace tq::wal {

struct SegmentCopy {
  std::string name;     // file name in the log's directory
  uint64_t length = 0;  // bytes written when the plan was made: what to copy
};

struct BackupPlan {
  std::string dir;                    // the log's directory
  std::vector<SegmentCopy> segments;  // oldest first
  uint64_t last_seq = 0;              // the newest record the copy holds
  int64_t made_at_ms = 0;             // wall clock, Unix ms: written into the copy's marker
};

// The file in a copy's directory that says it is one, holding when it was
// made (Unix ms). The original goes on issuing job ids after the copy; a
// server started on the copy must not issue them again, so the first open
// reports the marker (OpenSummary::restored_backup_at_ms) and the caller
// skips ids. The log removes it once its first batch of records (the
// caller's skip) is synced, or failing that at its first clean close after one.
inline constexpr const char* kBackupMarkerName = "BACKUP";

struct BackupSummary {
  size_t segments = 0;
  uint64_t bytes = 0;  // log bytes copied (headers and records)
};

// Copies the plan's segments into `to_dir` (created; it must not hold
// segments already): each older one as long as its original (the zeros
// after its `length` bytes are a hole, costing no disk), the newest cut at
// `length` (a log opened on it grows it again, allocating the space then).
// Then writes the marker, and syncs every file and the directory. Stops with an error when `cancel`
// becomes true. Safe to run on any thread while the log appends: it reads only what the plan says
// was written. On failure the copied files are left for the caller to
// remove.
Status copy_backup(FileSystem& fs, const BackupPlan& plan, const std::string& to_dir,
                   const std::atomic<bool>& cancel, BackupSummary* summary);

// The marker's time, or 0 when `names` (the directory's listing) has none;
// -1 when it is there but unreadable.
int64_t read_backup_marker(FileSystem& fs, const std::string& dir,
                           const std::vector<std::string>& names);
Status remove_backup_marker(FileSystem& fs, const std::string& dir);

// The backups in `backup_dir` that can be dated: each directory <name>/wal
// whose BACKUP marker is readable, with the marker's time, in no order.
// Passed over: a name starting with '.' (a backup being made), and
// `live_data_dir` and any directory holding it (the same paths, lexically;
// empty: none). An error only when `backup_dir` cannot be listed.
struct DatedBackup {
  int64_t made_at_ms = 0;
  std::string name;
};
Result<std::vector<DatedBackup>> dated_backups(FileSystem& fs, const std::string& backup_dir,
                                               const std::string& live_data_dir);

// Retention: of the backups dated_backups finds (what cannot be dated is
// not deleted), keeps `newest` (the one just made, whatever its marker says:
// a clock that ran ahead once must not make it go) and the `keep` - 1 newest
// others by the marker's time (the greater name first, on a tie), and
// removes the rest. Never touched either: one whose wal/LOCK is held (a tqd
// runs on it: a restored log keeps its marker until its first clean stop).
// A removal that fails is skipped: the others still go, and the first
// failure is returned. `removed` gets the names removed, oldest first.
struct PruneOptions {
  size_t keep = 0;            // at least 1
  std::string newest;         // the backup just made
  std::string live_data_dir;  // absolute and normal, as backup_dir
};
Status prune_backups(FileSystem& fs, const std::string& backup_dir, const PruneOptions& options,
                     std::vector<std::string>* removed);

}  // namespace tq::wal
