#include "wal/backup.h"

#include <algorithm>

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
  // The newest segment is written into again after a restore, so it gets
  // its space as the log's own files do; older ones are only ever read,
  // and their zero tails stay holes.
  auto file = fs.open_for_write(to, true, newest ? file_size : 0);
  if (!file) return file.error();
  for (uint64_t at = 0; at < data.size(); at += kPieceBytes) {
    if (cancel.load(std::memory_order_relaxed)) return Status::io_error("backup cancelled");
    const uint64_t n = std::min<uint64_t>(kPieceBytes, data.size() - at);
    if (Status s = (*file)->write_at(at, data.substr(at, n)); !s.ok()) return s;
  }
  if (Status s = fs.truncate(to, file_size); !s.ok()) return s;
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
  return fs.sync_dir(to_dir);
}

}  // namespace tq::wal
