#include "wal/memory_file_system.h"

#include <algorithm>

namespace tq::wal {

class MemoryFileSystem::Writable final : public WritableFile {
 public:
  Writable(MemoryFileSystem& fs, std::string path, std::shared_ptr<File> file)
      : fs_(fs), path_(std::move(path)), file_(std::move(file)) {}

  Status write_at(uint64_t offset, std::string_view data) override {
    std::lock_guard<std::mutex> lock(fs_.mu_);
    if (fs_.fail_writes_) return Status::io_error("write " + path_ + ": injected I/O error");
    const bool cut = data.size() > fs_.cut_next_write_;
    if (cut) {
      data = data.substr(0, fs_.cut_next_write_);
      fs_.cut_next_write_ = UINT64_MAX;
    }
    uint64_t end = offset + data.size();
    if (end > file_->data.size() && end > fs_.max_file_size_) {
      return Status::io_error("write " + path_ + ": File too large");
    }
    if (end > file_->data.size()) {
      uint64_t grow = end - file_->data.size();
      if (fs_.used_locked() + grow > fs_.capacity_) {
        return Status::no_space("write " + path_ + ": No space left on device");
      }
      file_->data.resize(end, '\0');
    }
    file_->data.replace(offset, data.size(), data);
    mark_written(offset, end);
    if (cut) return Status::io_error("write " + path_ + ": injected kill in the middle of a write");
    return Status();
  }

  Status sync() override {
    std::unique_lock<std::mutex> lock(fs_.mu_);
    auto held = [this] {
      return fs_.hold_syncs_ || (fs_.hold_syncs_of_ && fs_.hold_syncs_of_(path_));
    };
    if (held()) {
      ++fs_.held_syncs_;
      fs_.sync_held_.notify_all();
      fs_.syncs_released_.wait(lock, [&] { return !held(); });
      --fs_.held_syncs_;
    }
    if (fs_.fail_syncs_ || (fs_.fail_syncs_of_ && fs_.fail_syncs_of_(path_))) {
      return Status::io_error("fdatasync " + path_ + ": injected I/O error");
    }
    file_->synced = file_->data;
    ++fs_.syncs_;
    if (!file_->unsynced_blocks.empty()) ++fs_.extent_syncs_;
    file_->unsynced_blocks.clear();
    return Status();
  }

  Status close() override { return Status(); }

  Result<std::unique_ptr<WritableFile>> duplicate() override {
    return std::unique_ptr<WritableFile>(new Writable(fs_, path_, file_));
  }

 private:
  static constexpr uint64_t kBlockBytes = 4096;

  // Holds fs_.mu_.
  void mark_written(uint64_t offset, uint64_t end) {
    if (offset == end) return;
    std::vector<bool>& blocks = file_->written_blocks;
    const uint64_t last = (end - 1) / kBlockBytes;
    if (blocks.size() <= last) blocks.resize(last + 1, false);
    for (uint64_t b = offset / kBlockBytes; b <= last; ++b) {
      if (!blocks[b]) {
        blocks[b] = true;
        file_->unsynced_blocks.push_back(b);
      }
    }
  }

  MemoryFileSystem& fs_;
  std::string path_;
  std::shared_ptr<File> file_;
};

class MemoryFileSystem::Lock final : public FileLock {
 public:
  Lock(MemoryFileSystem& fs, std::string path) : fs_(fs), path_(std::move(path)) {}
  ~Lock() override {
    std::lock_guard<std::mutex> lock(fs_.mu_);
    fs_.locks_.erase(path_);
  }

 private:
  MemoryFileSystem& fs_;
  std::string path_;
};

uint64_t MemoryFileSystem::used_locked() const {
  uint64_t total = 0;
  for (const auto& [path, file] : files_) total += file->data.size();
  return total;
}

Status MemoryFileSystem::create_dir(const std::string&) { return Status(); }

Result<std::vector<std::string>> MemoryFileSystem::list(const std::string& dir) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> names;
  std::string prefix = dir + "/";
  for (const auto& [path, file] : files_) {
    if (path.rfind(prefix, 0) != 0) continue;
    // A file, or the directory holding it (directories exist while they
    // hold files), as readdir names both.
    std::string name = path.substr(prefix.size(), path.find('/', prefix.size()) - prefix.size());
    if (names.empty() || names.back() != name) names.push_back(std::move(name));
  }
  return names;
}

Result<std::unique_ptr<FileBytes>> MemoryFileSystem::read_file(const std::string& path,
                                                               uint64_t* size) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = files_.find(path);
  if (it == files_.end()) return Status::io_error("open " + path + ": No such file or directory");
  std::string data = it->second->data;
  *size = data.size();
  while (!data.empty() && data.back() == 0) data.pop_back();
  return std::unique_ptr<FileBytes>(new CopiedFileBytes(std::move(data)));
}

Result<std::unique_ptr<WritableFile>> MemoryFileSystem::open_for_write(const std::string& path,
                                                                       bool create,
                                                                       uint64_t preallocate) {
  std::unique_lock<std::mutex> lock(mu_);
  if (create) creates_released_.wait(lock, [this] { return !hold_creates_; });
  auto it = files_.find(path);
  if (create && it != files_.end()) return Status::exists("open " + path + ": File exists");
  if (!create && it == files_.end()) {
    return Status::io_error("open " + path + ": No such file or directory");
  }
  std::shared_ptr<File> file = create ? std::make_shared<File>() : it->second;
  if (preallocate > file->data.size() && preallocate > max_file_size_) {
    return Status::io_error("allocate " + std::to_string(preallocate) + " bytes for " + path +
                            ": File too large");
  }
  if (file->data.size() < preallocate) {
    uint64_t grow = preallocate - file->data.size();
    if (used_locked() + grow > capacity_) {
      return Status::no_space("allocate " + std::to_string(preallocate) + " bytes for " + path +
                              ": No space left on device");
    }
    file->data.resize(preallocate, '\0');
  }
  if (create) files_[path] = file;
  return std::unique_ptr<WritableFile>(new Writable(*this, path, file));
}

Status MemoryFileSystem::truncate(const std::string& path, uint64_t size) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = files_.find(path);
  if (it == files_.end()) return Status::io_error("truncate " + path + ": No such file");
  it->second->data.resize(size, '\0');
  it->second->shrink_blocks(size);
  return Status();
}

Status MemoryFileSystem::remove(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  if (files_.erase(path) == 0) return Status::not_found("remove " + path + ": No such file");
  return Status();
}

Status MemoryFileSystem::remove_tree(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  files_.erase(path);
  const std::string prefix = path + "/";
  auto it = files_.lower_bound(prefix);
  while (it != files_.end() && it->first.rfind(prefix, 0) == 0) it = files_.erase(it);
  return Status();
}

Status MemoryFileSystem::rename(const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = files_.find(from);
  if (it == files_.end()) {
    // A directory: every file under it moves.
    const std::string prefix = from + "/";
    std::vector<std::string> moving;
    for (auto f = files_.lower_bound(prefix); f != files_.end() && f->first.rfind(prefix, 0) == 0;
         ++f) {
      moving.push_back(f->first);
    }
    if (moving.empty()) return Status::io_error("rename " + from + ": No such file");
    const std::string target = to + "/";
    const auto under_target = files_.lower_bound(target);
    const bool target_is_dir =
        under_target != files_.end() && under_target->first.rfind(target, 0) == 0;
    if (files_.count(to) != 0 || target_is_dir) {
      return Status::exists("rename " + from + " to " + to + ": File exists");
    }
    for (const std::string& path : moving) {
      files_[target + path.substr(prefix.size())] = files_[path];
      files_.erase(path);
    }
    return Status();
  }
  if (files_.count(to) != 0) {
    return Status::exists("rename " + from + " to " + to + ": File exists");
  }
  files_[to] = it->second;
  files_.erase(it);
  return Status();
}

Result<uint64_t> MemoryFileSystem::free_bytes(const std::string&) {
  std::lock_guard<std::mutex> lock(mu_);
  if (fail_free_bytes_) return Status::io_error("free space: injected failure");
  const uint64_t used = used_locked();
  return capacity_ > used ? capacity_ - used : 0;
}

Status MemoryFileSystem::sync_dir(const std::string& dir) {
  std::lock_guard<std::mutex> lock(mu_);
  if (dir_syncs_to_fail_ == 0) {
    ++dir_syncs_;
    return Status();
  }
  --dir_syncs_to_fail_;
  return Status::io_error("fsync directory " + dir + ": injected I/O error");
}

Result<std::unique_ptr<FileLock>> MemoryFileSystem::lock(const std::string& path) {
  std::lock_guard<std::mutex> guard(mu_);
  if (!locks_.insert(path).second) return Status::locked(path + " is held by another tqd (pid 0)");
  return std::unique_ptr<FileLock>(new Lock(*this, path));
}

void MemoryFileSystem::set_capacity(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  capacity_ = bytes;
}

void MemoryFileSystem::set_max_file_size(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  max_file_size_ = bytes;
}

void MemoryFileSystem::set_fail_free_bytes(bool fail) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_free_bytes_ = fail;
}

void MemoryFileSystem::set_fail_writes(bool fail) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_writes_ = fail;
}

void MemoryFileSystem::set_fail_syncs_of(std::function<bool(const std::string& path)> which) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_syncs_of_ = std::move(which);
}

void MemoryFileSystem::set_fail_syncs(bool fail) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_syncs_ = fail;
}

void MemoryFileSystem::fail_next_dir_syncs(size_t count) {
  std::lock_guard<std::mutex> lock(mu_);
  dir_syncs_to_fail_ = count;
}

void MemoryFileSystem::set_cut_next_write(uint64_t keep) {
  std::lock_guard<std::mutex> lock(mu_);
  cut_next_write_ = keep;
}

void MemoryFileSystem::set_hold_syncs(bool hold) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    hold_syncs_ = hold;
  }
  syncs_released_.notify_all();
}

void MemoryFileSystem::set_hold_syncs_of(std::function<bool(const std::string& path)> which) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    hold_syncs_of_ = std::move(which);
  }
  syncs_released_.notify_all();
}

void MemoryFileSystem::wait_sync_held() {
  std::unique_lock<std::mutex> lock(mu_);
  sync_held_.wait(lock, [this] { return held_syncs_ > 0; });
}

void MemoryFileSystem::set_hold_creates(bool hold) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    hold_creates_ = hold;
  }
  creates_released_.notify_all();
}

// What was synced, at the size it had then: a file's size, set by
// preallocation or by writes past its end, is metadata that only a sync makes
// durable (a file created and preallocated but never synced may be left
// empty). A file cut shorter since stays cut.
static std::string power_cut_survivor(const std::string& data, const std::string& synced) {
  std::string survivor = synced;
  if (survivor.size() > data.size()) survivor.resize(data.size());
  return survivor;
}

std::string MemoryFileSystem::boot_id() {
  std::lock_guard<std::mutex> lock(mu_);
  return "boot " + std::to_string(boot_);
}

void MemoryFileSystem::lose_unsynced() {
  std::lock_guard<std::mutex> lock(mu_);
  ++boot_;
  for (auto& [path, file] : files_) {
    file->data = power_cut_survivor(file->data, file->synced);
    file->lose_unsynced_blocks();
    file->shrink_blocks(file->data.size());
  }
}

std::unique_ptr<MemoryFileSystem> MemoryFileSystem::power_cut_copy() {
  auto copy = std::make_unique<MemoryFileSystem>();
  std::lock_guard<std::mutex> lock(mu_);
  copy->capacity_ = capacity_;
  copy->boot_ = boot_ + 1;
  for (const auto& [path, file] : files_) {
    std::string survivor = power_cut_survivor(file->data, file->synced);
    copy->files_[path] = std::make_shared<File>(File{survivor, survivor, {}, {}});
  }
  return copy;
}

std::unique_ptr<MemoryFileSystem> MemoryFileSystem::power_cut_copy(
    const std::function<bool(const std::string& path, uint64_t sector)>& keep) {
  constexpr uint64_t kSector = 512;
  auto copy = std::make_unique<MemoryFileSystem>();
  std::lock_guard<std::mutex> lock(mu_);
  copy->capacity_ = capacity_;
  copy->boot_ = boot_ + 1;
  for (const auto& [path, file] : files_) {
    std::string survivor = power_cut_survivor(file->data, file->synced);
    for (uint64_t at = 0; at < survivor.size(); at += kSector) {
      const uint64_t n = std::min<uint64_t>(kSector, survivor.size() - at);
      if (survivor.compare(at, n, file->data, at, n) != 0 && keep(path, at / kSector)) {
        survivor.replace(at, n, file->data, at, n);
      }
    }
    copy->files_[path] = std::make_shared<File>(File{survivor, survivor, {}, {}});
  }
  return copy;
}

std::unique_ptr<MemoryFileSystem> MemoryFileSystem::kill_copy() {
  auto copy = std::make_unique<MemoryFileSystem>();
  std::lock_guard<std::mutex> lock(mu_);
  copy->capacity_ = capacity_;
  copy->max_file_size_ = max_file_size_;
  copy->boot_ = boot_;
  for (const auto& [path, file] : files_) copy->files_[path] = std::make_shared<File>(*file);
  return copy;
}

std::string MemoryFileSystem::contents(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = files_.find(path);
  return it == files_.end() ? std::string() : it->second->data;
}

void MemoryFileSystem::set_contents(const std::string& path, std::string data) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& file = files_[path];
  if (!file) file = std::make_shared<File>();
  file->data = data;
  file->synced = std::move(data);
  file->written_blocks.clear();  // set_contents' files count as never written
  file->unsynced_blocks.clear();
}

bool MemoryFileSystem::exists(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  return files_.count(path) > 0;
}

size_t MemoryFileSystem::sync_count() {
  std::lock_guard<std::mutex> lock(mu_);
  return syncs_;
}

size_t MemoryFileSystem::dir_sync_count() {
  std::lock_guard<std::mutex> lock(mu_);
  return dir_syncs_;
}

void MemoryFileSystem::File::lose_unsynced_blocks() {
  for (uint64_t b : unsynced_blocks) {
    if (b < written_blocks.size()) written_blocks[b] = false;
  }
  unsynced_blocks.clear();
}

void MemoryFileSystem::File::shrink_blocks(uint64_t size) {
  constexpr uint64_t kBlockBytes = 4096;
  const uint64_t keep = (size + kBlockBytes - 1) / kBlockBytes;
  if (written_blocks.size() > keep) written_blocks.resize(keep);
  std::erase_if(unsynced_blocks, [&](uint64_t b) { return b >= keep; });
}

size_t MemoryFileSystem::extent_syncs() {
  std::lock_guard<std::mutex> lock(mu_);
  return extent_syncs_;
}

uint64_t MemoryFileSystem::used_bytes() {
  std::lock_guard<std::mutex> lock(mu_);
  return used_locked();
}

}  // namespace tq::wal
