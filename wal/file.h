// The files the log uses, behind a small interface (LevelDB's Env idea), so
// tests can run the log on MemoryFileSystem: corrupt bytes, cut files short,
// fill the disk, fail a sync, or lose everything not synced (a power cut).
//
// Ownership: a FileSystem outlives every file and lock it hands out. Files
// are used by one thread at a time (the log's writer thread).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wal/status.h"

namespace tq::wal {

class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status write_at(uint64_t offset, std::string_view data) = 0;
  virtual Status sync() = 0;  // data durable (fdatasync)
  virtual Status close() = 0;
  // A second handle on the same file, so another thread can sync it while
  // this one writes.
  virtual Result<std::unique_ptr<WritableFile>> duplicate() = 0;
};

// A file's bytes, read-only, owning their storage (a memory map, or a copy)
// for as long as the object lives.
class FileBytes {
 public:
  virtual ~FileBytes() = default;
  virtual std::string_view bytes() const = 0;
};

// FileBytes that own a copy (file systems that keep files in memory).
class CopiedFileBytes final : public FileBytes {
 public:
  explicit CopiedFileBytes(std::string bytes) : bytes_(std::move(bytes)) {}
  std::string_view bytes() const override { return bytes_; }

 private:
  std::string bytes_;
};

// Held for as long as it lives; released by its destructor.
class FileLock {
 public:
  virtual ~FileLock() = default;
  // An error when its path no longer names the file locked: the file, or a
  // directory above it, was removed or moved away (`rm -rf` of the data
  // directory under a running tqd). What is written after that is lost to
  // the next start, which finds no log there.
  virtual Status still_in_place() { return Status(); }
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  // Creates the directory (and its parents) with owner-only permissions.
  virtual Status create_dir(const std::string& dir) = 0;
  // Names (not paths) of the entries in dir.
  virtual Result<std::vector<std::string>> list(const std::string& dir) = 0;
  // The file's bytes up to its last non-zero byte, and (in *size) the size
  // of the whole file, the rest being zeros: a preallocated segment's zero
  // tail is not read into memory (it would cost a copy of the whole
  // preallocation at every start).
  virtual Result<std::unique_ptr<FileBytes>> read_file(const std::string& path, uint64_t* size) = 0;
  // Opens for writing at explicit offsets. With `create`, the file must not
  // exist yet (kExists if it does), and is removed again if it cannot be
  // extended. The file is extended to at least `preallocate` bytes of zeros
  // on disk, so later writes inside it cannot run out of space.
  virtual Result<std::unique_ptr<WritableFile>> open_for_write(const std::string& path,
                                                               bool create,
                                                               uint64_t preallocate) = 0;
  virtual Status truncate(const std::string& path, uint64_t size) = 0;
  // kNotFound when there is no such file.
  virtual Status remove(const std::string& path) = 0;
  // Removes `path` and, when it is a directory, everything under it; a
  // symbolic link is removed, never followed. Nothing there is no error.
  virtual Status remove_tree(const std::string& path) = 0;
  // Gives `from` the name `to`, replacing nothing: `to` must not exist
  // (kExists if it does).
  virtual Status rename(const std::string& from, const std::string& to) = 0;
  // Makes creations and removals in dir durable.
  virtual Status sync_dir(const std::string& dir) = 0;
  // Bytes an unprivileged process may still allocate on the file system
  // holding `dir` (statvfs's f_bavail).
  virtual Result<uint64_t> free_bytes(const std::string& dir) = 0;
  // Takes an exclusive lock on `path` without waiting, and writes our pid
  // into it. Fails with kLocked, naming the holder's pid, when it is held.
  virtual Result<std::unique_ptr<FileLock>> lock(const std::string& path) = 0;
  // Names this boot of the machine (Linux: /proc/sys/kernel/random/boot_id):
  // a power cut or an OS crash changes it, a process's crash does not, so
  // it tells whether writes never synced may be gone. Empty when unknown.
  virtual std::string boot_id() { return {}; }
};

// The real thing: POSIX calls, fallocate, fdatasync, flock.
FileSystem& posix_file_system();

}  // namespace tq::wal
