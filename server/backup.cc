#include "server/backup.h"

#include <algorithm>
#include <cinttypes>
#include <filesystem>
#include <map>
#include <string_view>
#include <system_error>

#include "server/log.h"

namespace tq::server {

namespace {

// Absolute and normal, without a trailing '/': names are appended with
// one, and compared whole with the data directory's (a `backup_dir:
// /var/lib/tq/backups/` made ".../backups//nightly").
std::string absolute(const std::string& dir) {
  std::error_code ec;
  std::filesystem::path path = std::filesystem::absolute(dir, ec);
  std::string normal = ec ? dir : path.lexically_normal().string();
  while (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  return normal;
}

constexpr std::string_view kPartial = ".partial";
constexpr std::string_view kLockSuffix = ".lock";

std::string staging_dir(const std::string& backup_dir, const std::string& name) {
  return backup_dir + "/." + name + std::string(kPartial);
}

// Removes what backups cut short by a crash or a kill left in `dir`: their
// `.<name>.partial` directories, each up to a whole copy of the log. A
// backup under way holds `.<name>.partial.lock` until its copy has its
// name, so a partial whose lock can be taken is a leftover, even where
// several tqds share the directory. The lock file is removed after the
// partial, while still held, so a backup of that name that starts meanwhile
// is refused (the name looks taken) rather than writing into a partial
// being removed.
void remove_leftovers(wal::FileSystem& fs, const std::string& dir) {
  auto names = fs.list(dir);
  if (!names.ok()) return;
  std::map<std::string, bool> partials;  // name -> whether its directory is there
  for (std::string_view name : *names) {
    const bool lock_file = name.ends_with(kLockSuffix);
    if (lock_file) name.remove_suffix(kLockSuffix.size());
    if (name.size() > 1 + kPartial.size() && name[0] == '.' && name.ends_with(kPartial)) {
      partials[std::string(name)] |= !lock_file;
    }
  }
  for (const auto& [name, has_dir] : partials) {
    const std::string partial = dir + "/" + name;
    auto held = fs.lock(partial + std::string(kLockSuffix));
    if (!held.ok()) continue;  // being written (or by this backup: its caller's)
    if (has_dir && fs.remove_tree(partial).ok()) {
      LOG_INFO("backup: removed %s, left by a backup that was cut short", partial.c_str());
    }
    (void)fs.remove(partial + std::string(kLockSuffix));
  }
}

}  // namespace

BackupRunner::BackupRunner(uv_loop_t* loop, wal::FileSystem& fs, std::string backup_dir,
                           size_t keep, const std::string& data_dir, ServerStats& stats, Done done)
    : loop_(loop),
      fs_(fs),
      backup_dir_(absolute(backup_dir)),
      keep_(keep),
      data_dir_(absolute(data_dir)),
      stats_(stats),
      done_(std::move(done)) {
  work_.data = this;
  // An alert on wal_last_backup_at_ms ("the newest backup is too old") must
  // not fire at every restart, nor go quiet after one: start from the
  // newest backup already in backup_dir, dated by its marker as retention
  // dates it. Not the data directory or what holds it: a restored log keeps
  // its marker until its first clean stop.
  if (auto dated = wal::dated_backups(fs_, backup_dir_, data_dir_)) {
    for (const wal::DatedBackup& backup : *dated) {
      stats_.last_backup_at_ms = std::max(stats_.last_backup_at_ms, backup.made_at_ms);
    }
  }
}

std::optional<BackupRefusal> BackupRunner::start(wal::Log& log, uint64_t connection_id,
                                                 const std::string& name, int64_t now_ms) {
  if (running()) {
    return BackupRefusal{protocol::ErrorCode::kBusy,
                         "a backup is under way (" + name_ + "); one runs at a time"};
  }
  if (!log.healthy()) {
    return BackupRefusal{protocol::ErrorCode::kIo,
                         "the log cannot be written (" + log.last_error() + "): no backup"};
  }
  // Whether the name is taken is for the work thread to find out: the
  // directory is on a disk (or a network mount) the loop must not wait for.
  log_ = &log;
  connection_id_ = connection_id;
  name_ = name;
  plan_ = log.pin_for_backup();
  plan_.made_at_ms = now_ms;
  started_ns_ = uv_hrtime();
  copying_ = false;
  cancel_ = false;
  status_ = wal::Status();
  summary_ = wal::BackupSummary{};
  stats_.backup_running = true;
  return std::nullopt;
}

void BackupRunner::poll() {
  if (log_ == nullptr || copying_) return;
  if (cancel_) {
    std::string reply;
    protocol::append_error(reply, protocol::ErrorCode::kShutdown,
                           "the server is stopping: backup cancelled");
    finish(reply, false);
    return;
  }
  if (log_->durable_seq() < plan_.last_seq) {
    // Written, the records could be copied even if the log failed since;
    // unwritten, they may never be.
    if (!log_->healthy()) {
      std::string reply;
      protocol::append_error(reply, protocol::ErrorCode::kIo,
                             "the log failed before the backup's records were written (" +
                                 log_->last_error() + "): no backup");
      finish(reply, false);
    }
    return;
  }
  copying_ = true;
  const int rc = uv_queue_work(loop_, &work_, on_work, on_work_done);
  if (rc != 0) {
    copying_ = false;
    std::string reply;
    protocol::append_error(reply, protocol::ErrorCode::kInternal,
                           std::string("cannot start the copy: ") + uv_strerror(rc));
    finish(reply, false);
  }
}

void BackupRunner::cancel() {
  // Answered by poll() or on_work_done, never from here: the answer may
  // end the shutdown that called this, while it is still under way.
  if (log_ != nullptr) cancel_ = true;
}

// The work thread: only the plan, the file system and the staging directory.
void BackupRunner::on_work(uv_work_t* req) {
  auto* self = static_cast<BackupRunner*>(req->data);
  const std::string staging = staging_dir(self->backup_dir_, self->name_);
  const std::string target = self->backup_dir_ + "/" + self->name_;
  // Not there yet, the directory lists as an error: no backups at all.
  if (auto names = self->fs_.list(self->backup_dir_); names.ok()) {
    for (const std::string& existing : *names) {
      if (existing == self->name_) {
        self->status_ = wal::Status::exists("backup " + target + " exists");
        return;
      }
    }
  }
  wal::Status s = self->fs_.create_dir(self->backup_dir_);
  if (!s.ok()) {
    self->status_ = std::move(s);
    return;
  }
  // Held until the copy has its name: another tqd sharing the directory
  // leaves this staging directory alone meanwhile (remove_leftovers).
  const std::string lock_path = staging + std::string(kLockSuffix);
  auto held = self->fs_.lock(lock_path);
  if (!held.ok()) {
    self->status_ =
        held.error().code() == wal::Status::Code::kLocked
            ? wal::Status::exists("backup " + target + " is being written by another tqd")
            : held.error();
    return;
  }
  (void)self->fs_.remove_tree(staging);  // this name's leftovers: the lock is ours
  remove_leftovers(self->fs_, self->backup_dir_);
  s = self->fs_.create_dir(staging);
  if (s.ok()) {
    s = wal::copy_backup(self->fs_, self->plan_, staging + "/wal", self->cancel_, &self->summary_);
  }
  if (s.ok()) s = self->fs_.sync_dir(staging);
  if (s.ok()) s = self->fs_.rename(staging, target);
  if (s.ok()) s = self->fs_.sync_dir(self->backup_dir_);
  if (!s.ok()) (void)self->fs_.remove_tree(staging);
  (void)self->fs_.remove(lock_path);  // while held: see remove_leftovers
  held.value().reset();
  // Retention only after a backup that worked: a failing disk must not
  // also eat the backups that are left.
  self->removed_.clear();
  self->prune_status_ = wal::Status();
  if (s.ok() && self->keep_ > 0) {
    const wal::PruneOptions prune{self->keep_, self->name_, self->data_dir_};
    self->prune_status_ = wal::prune_backups(self->fs_, self->backup_dir_, prune, &self->removed_);
  }
  self->status_ = std::move(s);
}

void BackupRunner::on_work_done(uv_work_t* req, int) {
  auto* self = static_cast<BackupRunner*>(req->data);
  self->copying_ = false;
  std::string reply;
  if (self->status_.ok()) {
    const uint64_t ms = (uv_hrtime() - self->started_ns_) / 1'000'000;
    self->stats_.last_backup_at_ms = self->plan_.made_at_ms;
    self->stats_.last_backup_bytes = self->summary_.bytes;
    self->stats_.last_backup_duration_ms = ms;
    protocol::append_ok(
        reply, "backup " + self->backup_dir_ + "/" + self->name_ +
                   " segments=" + std::to_string(self->summary_.segments) +
                   " bytes=" + std::to_string(self->summary_.bytes) +
                   " seq=" + std::to_string(self->plan_.last_seq) + " ms=" + std::to_string(ms) +
                   (self->keep_ > 0 ? " removed=" + std::to_string(self->removed_.size())
                                    : std::string()));
    self->stats_.backups_removed += self->removed_.size();
    for (const std::string& name : self->removed_) {
      LOG_INFO("backup %s/%s removed: wal.backup_keep is %zu", self->backup_dir_.c_str(),
               name.c_str(), self->keep_);
    }
    if (!self->prune_status_.ok()) {
      ++self->stats_.backup_prune_errors;
      LOG_WARN("backups beyond wal.backup_keep (%zu) not all removed: %s", self->keep_,
               self->prune_status_.message().c_str());
    }
    self->finish(reply, true);
  } else if (self->status_.code() == wal::Status::Code::kExists) {
    // Backups are never replaced (the rename refuses one made meanwhile too).
    protocol::append_error(reply, protocol::ErrorCode::kExists, self->status_.message());
    self->finish(reply, false, /*refused=*/true);
  } else if (self->cancel_) {
    protocol::append_error(reply, protocol::ErrorCode::kShutdown,
                           "the server is stopping: backup cancelled");
    self->finish(reply, false);
  } else {
    protocol::append_error(reply, protocol::ErrorCode::kIo,
                           "backup failed: " + self->status_.message());
    self->finish(reply, false);
  }
}

void BackupRunner::finish(const std::string& reply, bool ok, bool refused) {
  log_->unpin_for_backup();
  log_ = nullptr;
  stats_.backup_running = false;
  if (refused) {
    LOG_INFO("backup %s/%s: %s", backup_dir_.c_str(), name_.c_str(),
             reply.substr(0, reply.find('\n')).c_str());
  } else if (ok) {
    ++stats_.backups;
    LOG_INFO("backup %s/%s: %zu segment(s), %" PRIu64 " bytes, up to record %" PRIu64
             ", in %" PRIu64 " ms",
             backup_dir_.c_str(), name_.c_str(), summary_.segments, summary_.bytes, plan_.last_seq,
             stats_.last_backup_duration_ms);
  } else {
    ++stats_.backups_failed;
    LOG_WARN("backup %s/%s: %s", backup_dir_.c_str(), name_.c_str(),
             reply.substr(0, reply.find('\n')).c_str());
  }
  plan_ = wal::BackupPlan{};
  done_(connection_id_, reply);
}

}  // namespace tq::server
