// A FileSystem in memory, for tests, with faults on demand: a disk that fills
// up, writes or syncs that fail, bytes that rot, and power cuts that lose
// whatever was written but not synced. Thread-safe: the log's writer thread
// and the test share it.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "wal/file.h"

namespace tq::wal {

class MemoryFileSystem final : public FileSystem {
 public:
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
  Result<uint64_t> free_bytes(const std::string& dir) override;  // capacity left
  Result<std::unique_ptr<FileLock>> lock(const std::string& path) override;
  // Changed by a power cut (lose_unsynced, power_cut_copy), as a machine's
  // is by the restart after one; a new MemoryFileSystem's is "boot 1".
  std::string boot_id() override;

  // --- for tests ---
  // Total bytes all files may occupy; allocations beyond fail with no-space.
  void set_capacity(uint64_t bytes);
  // The size no file may grow past (RLIMIT_FSIZE): growing one beyond it
  // fails with "File too large", an I/O error, not no-space. A file being
  // created is not left behind, as with posix_file_system().
  void set_max_file_size(uint64_t bytes);
  // While set, free_bytes fails with an I/O error (statvfs failing).
  void set_fail_free_bytes(bool fail);
  // While set, every write_at (sync) fails with an I/O error.
  void set_fail_writes(bool fail);
  void set_fail_syncs(bool fail);
  // The same for the syncs of the files `which` names only (empty: none).
  void set_fail_syncs_of(std::function<bool(const std::string& path)> which);
  // The next `count` syncs of a directory fail with an I/O error.
  void fail_next_dir_syncs(size_t count);
  // The next write_at of more than `keep` bytes writes only its first
  // `keep` and fails: what a process killed in the middle of a write
  // leaves on disk (the page cache keeps the part written).
  void set_cut_next_write(uint64_t keep);
  // While set, every sync waits (on its own thread) until it is cleared: a
  // disk whose fdatasync takes as long as the test likes.
  void set_hold_syncs(bool hold);
  // The same for the syncs of the files `which` names only (empty: none).
  void set_hold_syncs_of(std::function<bool(const std::string& path)> which);
  // Blocks until a sync is waiting on either hold.
  void wait_sync_held();
  // While set, creating a file waits until it is cleared: a disk on which
  // open(O_CREAT) blocks behind other metadata work, as ext4's may.
  void set_hold_creates(bool hold);
  // A power cut: every file loses what was written since its last sync, and
  // the size it was given since (by preallocation too). Names are kept: a
  // file created, renamed or removed stays so, synced or not.
  void lose_unsynced();
  // What a power cut now would leave, as a new file system, while this one
  // (and the tqd on it) goes on: for checking what a crash at this moment
  // keeps without stopping the server.
  std::unique_ptr<MemoryFileSystem> power_cut_copy();
  // The same, but the disk wrote back some of what was not synced and not
  // the rest, in no order: each 512-byte sector that differs from what was
  // synced keeps its new bytes when `keep(file, sector)` says so. Sizes
  // stay as synced.
  std::unique_ptr<MemoryFileSystem> power_cut_copy(
      const std::function<bool(const std::string& path, uint64_t sector)>& keep);
  // What a kill of the process now would leave, as a new file system in
  // the same boot: every file as written (the page cache keeps it), and
  // what a later power cut would still take from it.
  std::unique_ptr<MemoryFileSystem> kill_copy();
  // The raw bytes of a file, to inspect or damage.
  std::string contents(const std::string& path);
  void set_contents(const std::string& path, std::string data);
  bool exists(const std::string& path);
  size_t sync_count();
  size_t dir_sync_count();  // directory syncs that succeeded
  // Syncs that found blocks of their file written for the first time since
  // its last sync. On ext4 and XFS the blocks fallocate reserves are
  // "unwritten", and the first write into each is metadata: such a sync
  // also commits the file system's journal (wal/spare_segment.h). Blocks are
  // 4 KiB; a file's bytes from open_for_write's preallocation count as never
  // written, and so do those of set_contents and of power_cut_copy's files.
  size_t extent_syncs();
  uint64_t used_bytes();

 private:
  struct File {
    std::string data;    // what a reader sees now
    std::string synced;  // what survives a power cut
    std::vector<bool> written_blocks;       // see extent_syncs()
    std::vector<uint64_t> unsynced_blocks;  // first written since the last sync

    // A power cut: blocks whose first write was not synced are unwritten
    // again. Cut to `size` bytes: the blocks past it are gone.
    void lose_unsynced_blocks();
    void shrink_blocks(uint64_t size);
  };
  class Writable;
  class Lock;

  uint64_t used_locked() const;

  std::mutex mu_;
  std::map<std::string, std::shared_ptr<File>> files_;
  std::set<std::string> locks_;
  uint64_t capacity_ = UINT64_MAX;
  uint64_t max_file_size_ = UINT64_MAX;
  bool fail_writes_ = false;
  bool fail_free_bytes_ = false;
  bool fail_syncs_ = false;
  std::function<bool(const std::string& path)> fail_syncs_of_;
  size_t dir_syncs_to_fail_ = 0;
  size_t dir_syncs_ = 0;
  uint64_t cut_next_write_ = UINT64_MAX;
  bool hold_syncs_ = false;
  std::function<bool(const std::string& path)> hold_syncs_of_;
  std::condition_variable syncs_released_;
  size_t held_syncs_ = 0;  // syncs waiting for the hold to end
  std::condition_variable sync_held_;
  bool hold_creates_ = false;
  uint64_t boot_ = 1;  // see boot_id()
  std::condition_variable creates_released_;
  size_t syncs_ = 0;
  size_t extent_syncs_ = 0;
};

}  // namespace tq::wal
