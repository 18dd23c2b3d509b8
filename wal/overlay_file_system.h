// A FileSystem that reads another and keeps every change in memory: what
// `tqd --check-log` opens the log on, so that a start's whole replay runs
// (a cut zeroed, files removed, markers written, a recovery's rewrite) and
// says what it would do, while the files on disk stay as they are.
//
// A file is copied into memory the first time it is written, not when it is
// opened for writing (the writer opens the newest segment at every open).
// The lock is the other file system's: no tqd may write the log while it is
// read (taking it writes this process's pid into the LOCK file, nothing else).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "wal/file.h"

namespace tq::wal {

class OverlayFileSystem final : public FileSystem {
 public:
  explicit OverlayFileSystem(FileSystem& base) : base_(base) {}

  Status create_dir(const std::string& dir) override;
  Result<std::vector<std::string>> list(const std::string& dir) override;
  Result<std::unique_ptr<FileBytes>> read_file(const std::string& path, uint64_t* size) override;
  Result<std::unique_ptr<WritableFile>> open_for_write(const std::string& path, bool create,
                                                       uint64_t preallocate) override;
  Status truncate(const std::string& path, uint64_t size) override;
  Status remove(const std::string& path) override;
  Status remove_tree(const std::string& path) override;
  Status rename(const std::string& from, const std::string& to) override;
  Status sync_dir(const std::string& dir) override;
  Result<uint64_t> free_bytes(const std::string& dir) override;
  Result<std::unique_ptr<FileLock>> lock(const std::string& path) override;
  std::string boot_id() override { return base_.boot_id(); }

 private:
  class Writable;

  // Holds mu_. Whether `path` exists, here or (not removed here) below.
  bool exists_locked(const std::string& path);
  // Holds mu_. The file's bytes here, copied from below the first time.
  Result<std::string*> materialize_locked(const std::string& path);

  FileSystem& base_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<std::string>> files_;  // written or made here
  std::set<std::string> removed_;                              // gone here, there below
};

}  // namespace tq::wal
