#include "wal/backup.h"

#include <algorithm>
#include <cstdint>
#include <tuple>

#include "wal/format.h"
#include "wal/marker_file.h"

namespace tq::wal {
namespace {

// Written in pieces, so that a cancel (shutdown) is heard within one.
constexpr uint64_t kPieceBytes = uint64_t{1} << 20;

Status copy_segment(FileSystem& fs, const std::string& from, const std::string& to, uint64_t length,
                    bool newest, const std::atomic<bool>& cancel) {
  uint64_t file_size = 0;
  auto source = fs.read_file(from, &file_size);
  if (!source) return source.error();
  if (length > file_size) {
    return Status::corruption(from + ": " + std::to_string(file_size) +
                              " bytes, shorter than the " + std::to_string(length) +
                              " the log has written into it");
  }
  // read_file leaves out the zeros at the end: a record may end in some.
  const std::string_view bytes = (*source)->bytes();
  const std::string_view data = bytes.substr(0, std::min<uint64_t>(length, bytes.size()));
  // Nothing is preallocated: a copy costs the disk what it holds.
  auto file = fs.open_for_write(to, true, 0);
  if (!file) return file.error();
  for (uint64_t at = 0; at < data.size(); at += kPieceBytes) {
    if (cancel.load(std::memory_order_relaxed)) return Status::io_error("backup cancelled");
    const uint64_t n = std::min<uint64_t>(kPieceBytes, data.size() - at);
    if (Status s = (*file)->write_at(at, data.substr(at, n)); !s.ok()) return s;
  }
  // Older segments keep their size (their zero tails, holes, end them);
  // the newest ends with the end marker after `length` (replay takes a
  // segment without one for a file cut short), and the log that resumes it
  // grows it.
  const uint64_t copy_size = newest ? std::min(file_size, length + kEndMarkerRoom) : file_size;
  if (Status s = fs.truncate(to, copy_size); !s.ok()) return s;
  if (Status s = (*file)->sync(); !s.ok()) return s;
  return (*file)->close();
}

}  // namespace

Status copy_backup(FileSystem& fs, const BackupPlan& plan, const std::string& to_dir,
                   const std::atomic<bool>& cancel, BackupSummary* summary) {
  if (Status s = fs.create_dir(to_dir); !s.ok()) return s;
  for (const SegmentCopy& segment : plan.segments) {
    const bool newest = &segment == &plan.segments.back();
    Status s = copy_segment(fs, plan.dir + "/" + segment.name, to_dir + "/" + segment.name,
                            segment.length, newest, cancel);
    if (!s.ok()) return s;
    ++summary->segments;
    summary->bytes += segment.length;
  }
  // Synced with the directory: it also makes the segments' names durable.
  return write_marker_file(fs, to_dir, kBackupMarkerName, std::to_string(plan.made_at_ms) + "\n");
}

int64_t read_backup_marker(FileSystem& fs, const std::string& dir,
                           const std::vector<std::string>& names) {
  if (std::find(names.begin(), names.end(), kBackupMarkerName) == names.end()) return 0;
  uint64_t size = 0;
  auto contents = fs.read_file(dir + "/" + kBackupMarkerName, &size);
  if (!contents) return -1;
  int64_t ms = 0;
  for (char c : (*contents)->bytes()) {
    if (c == '\n') break;
    if (c < '0' || c > '9' || ms > INT64_MAX / 10 - 9) return -1;
    ms = ms * 10 + (c - '0');
  }
  return ms > 0 ? ms : -1;
}

Status remove_backup_marker(FileSystem& fs, const std::string& dir) {
  return remove_marker_file(fs, dir, kBackupMarkerName);
}

namespace {

// `path` is `dir` or inside it, comparing whole names.
bool within(const std::string& path, const std::string& dir) {
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         path[dir.size()] == '/');
}

}  // namespace

Result<std::vector<DatedBackup>> dated_backups(FileSystem& fs, const std::string& backup_dir,
                                               const std::string& live_data_dir) {
  auto names = fs.list(backup_dir);
  if (!names) return names.error();
  std::vector<DatedBackup> dated;
  for (const std::string& name : *names) {
    const std::string path = backup_dir + "/" + name;
    if (name.empty() || name[0] == '.') continue;
    if (!live_data_dir.empty() && within(live_data_dir, path)) continue;
    const std::string wal_dir = path + "/wal";
    auto inside = fs.list(wal_dir);
    if (!inside) continue;  // a file, or a directory that is no backup
    const int64_t made_at_ms = read_backup_marker(fs, wal_dir, *inside);
    if (made_at_ms > 0) dated.push_back({made_at_ms, name});
  }
  return dated;
}

Status prune_backups(FileSystem& fs, const std::string& backup_dir, const PruneOptions& options,
                     std::vector<std::string>* removed) {
  auto all = dated_backups(fs, backup_dir, options.live_data_dir);
  if (!all) return all.error();
  std::vector<DatedBackup>& dated = *all;
  std::erase_if(dated, [&](const DatedBackup& b) { return b.name == options.newest; });
  const size_t others_kept = options.keep > 0 ? options.keep - 1 : 0;
  if (dated.size() <= others_kept) return Status();
  std::sort(dated.begin(), dated.end(), [](const DatedBackup& a, const DatedBackup& b) {
    return std::tie(a.made_at_ms, a.name) < std::tie(b.made_at_ms, b.name);  // oldest first
  });
  dated.resize(dated.size() - others_kept);
  Status first_failure;
  for (const DatedBackup& backup : dated) {
    const std::string& name = backup.name;
    const std::string path = backup_dir + "/" + name;
    {
      // A tqd running on it holds this lock (and a restored log still has
      // its marker): never pull a live log away.
      auto held = fs.lock(path + "/wal/LOCK");
      if (!held) {
        if (first_failure.ok()) first_failure = held.error();
        continue;
      }
    }
    if (Status s = fs.remove_tree(path); !s.ok()) {
      if (first_failure.ok()) first_failure = s;
      continue;
    }
    removed->push_back(name);
  }
  if (Status s = fs.sync_dir(backup_dir); !s.ok() && first_failure.ok()) first_failure = s;
  return first_failure;
}

}  // namespace tq::wal
