// BACKUP: an online copy of the log into <wal.backup_dir>/<name>, made on a
// libuv work thread while the loop goes on serving everyone. One at a time.
//
// The steps: start() pins the log's segments (wal/backup.h: none is deleted
// until the copy is done) and notes the last record appended; the
// connection that asked waits. Once the log has written that record (poll(),
// every loop iteration), a work thread copies the segments into
// <backup_dir>/.<name>.partial/wal, syncs them, and renames the directory to
// <backup_dir>/<name>: a directory with a backup's name always holds a whole
// one, and a crash part way leaves only a `.partial` one (removed by the
// next backup of that name). Back on the loop, the log is unpinned and the
// connection answered. What is copied is what a crash at the moment of the
// command would have left, which replay starts from like any other log: a
// backup is a data directory (README, Backups).
//
// A shutdown cancels the copy (the connection gets ERROR SHUTDOWN); a log
// that fails before its records are written fails the backup (ERROR IO).
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "protocol/reply.h"
#include "server/commands.h"
#include "server/stats.h"
#include "wal/backup.h"
#include "wal/log.h"

namespace tq::server {

class BackupRunner {
 public:
  // Called on the loop thread with the whole reply for the connection that
  // asked (it may have gone since).
  using Done = std::function<void(uint64_t connection_id, const std::string& reply)>;

  // `keep`: after each backup, remove all but the `keep` newest in
  // backup_dir (wal::prune_backups), never `data_dir` or what holds it; 0
  // keeps them all.
  BackupRunner(uv_loop_t* loop, wal::FileSystem& fs, std::string backup_dir, size_t keep,
               const std::string& data_dir, ServerStats& stats, Done done);
  BackupRunner(const BackupRunner&) = delete;
  BackupRunner& operator=(const BackupRunner&) = delete;

  // Starts a backup named `name` (checked by BACKUP's handler);
  // the reply comes through Done. `now_ms`: wall-clock time, for STATS.
  std::optional<BackupRefusal> start(wal::Log& log, uint64_t connection_id, const std::string& name,
                                     int64_t now_ms);
  // Loop thread, every iteration: begins the copy once the log has written
  // what the backup holds; fails it if the log failed first.
  void poll();
  // Shutdown: a copy not yet begun ends at the next poll(), one under way
  // at its next megabyte; either answers ERROR SHUTDOWN.
  void cancel();
  // A backup is pinned or copying; the loop must not close the log.
  bool running() const { return log_ != nullptr; }
  const std::string& backup_dir() const { return backup_dir_; }

 private:
  static void on_work(uv_work_t* req);
  static void on_work_done(uv_work_t* req, int status);
  // Unpins the log, counts, logs, and answers. `refused`: the name was
  // taken; neither a backup nor a failure.
  void finish(const std::string& reply, bool ok, bool refused = false);

  uv_loop_t* loop_;
  wal::FileSystem& fs_;
  const std::string backup_dir_;  // absolute
  const size_t keep_;
  const std::string data_dir_;  // absolute
  ServerStats& stats_;
  Done done_;

  // The backup under way; log_ is null when there is none.
  wal::Log* log_ = nullptr;
  uint64_t connection_id_ = 0;
  std::string name_;
  wal::BackupPlan plan_;
  uint64_t started_ns_ = 0;
  bool copying_ = false;  // handed to the work thread
  uv_work_t work_{};
  std::atomic<bool> cancel_{false};
  // Written by the work thread, read on the loop after it finished.
  wal::Status status_;
  wal::BackupSummary summary_;
  std::vector<std::string> removed_;  // older backups removed after this one (keep_)
  wal::Status prune_status_;
};

}  // namespace tq::server
