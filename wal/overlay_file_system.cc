#include "wal/overlay_file_system.h"

#include <algorithm>
#include <utility>

namespace tq::wal {
namespace {

std::pair<std::string, std::string> split(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {".", path};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

}  // namespace

class OverlayFileSystem::Writable final : public WritableFile {
 public:
  Writable(OverlayFileSystem& fs, std::string path) : fs_(fs), path_(std::move(path)) {}

  Status write_at(uint64_t offset, std::string_view data) override {
    std::lock_guard<std::mutex> lock(fs_.mu_);
    auto file = fs_.materialize_locked(path_);
    if (!file) return file.error();
    std::string& bytes = **file;
    if (bytes.size() < offset + data.size()) bytes.resize(offset + data.size(), '\0');
    bytes.replace(offset, data.size(), data);
    return Status();
  }
  Status sync() override { return Status(); }
  Status close() override { return Status(); }
  Result<std::unique_ptr<WritableFile>> duplicate() override {
    return std::unique_ptr<WritableFile>(new Writable(fs_, path_));
  }

 private:
  OverlayFileSystem& fs_;
  std::string path_;
};

bool OverlayFileSystem::exists_locked(const std::string& path) {
  if (files_.count(path) != 0) return true;
  if (removed_.count(path) != 0) return false;
  const auto [dir, name] = split(path);
  auto names = base_.list(dir);
  return names && std::find(names->begin(), names->end(), name) != names->end();
}

Result<std::string*> OverlayFileSystem::materialize_locked(const std::string& path) {
  if (auto it = files_.find(path); it != files_.end()) return it->second.get();
  if (!exists_locked(path)) return Status::not_found(path + ": No such file");
  uint64_t size = 0;
  auto below = base_.read_file(path, &size);
  if (!below) return below.error();
  auto bytes = std::make_unique<std::string>((*below)->bytes());
  bytes->resize(static_cast<size_t>(size), '\0');
  return (files_[path] = std::move(bytes)).get();
}

Status OverlayFileSystem::create_dir(const std::string&) {
  return Status();
}

Result<std::vector<std::string>> OverlayFileSystem::list(const std::string& dir) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> names;
  auto below = base_.list(dir);
  if (below) names = std::move(below).value();
  bool here = false;
  for (const auto& [path, bytes] : files_) here |= split(path).first == dir;
  if (!below && !here) return below.error();
  std::erase_if(names, [&](const std::string& name) { return removed_.count(dir + "/" + name); });
  for (const auto& [path, bytes] : files_) {
    const auto [in, name] = split(path);
    if (in == dir && std::find(names.begin(), names.end(), name) == names.end()) {
      names.push_back(name);
    }
  }
  return names;
}

Result<std::unique_ptr<FileBytes>> OverlayFileSystem::read_file(const std::string& path,
                                                                uint64_t* size) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = files_.find(path); it != files_.end()) {
    const std::string& bytes = *it->second;
    *size = bytes.size();
    size_t end = bytes.size();
    while (end > 0 && bytes[end - 1] == '\0') --end;
    return std::unique_ptr<FileBytes>(new CopiedFileBytes(bytes.substr(0, end)));
  }
  if (removed_.count(path) != 0) return Status::not_found(path + ": No such file");
  return base_.read_file(path, size);
}

Result<std::unique_ptr<WritableFile>> OverlayFileSystem::open_for_write(const std::string& path,
                                                                        bool create,
                                                                        uint64_t preallocate) {
  std::lock_guard<std::mutex> lock(mu_);
  if (create) {
    if (exists_locked(path)) return Status::exists(path + ": File exists");
    files_[path] = std::make_unique<std::string>(static_cast<size_t>(preallocate), '\0');
    removed_.erase(path);
  } else if (!exists_locked(path)) {
    return Status::not_found(path + ": No such file");
  } else if (preallocate > 0) {
    auto file = materialize_locked(path);
    if (!file) return file.error();
    if ((*file)->size() < preallocate) (*file)->resize(static_cast<size_t>(preallocate), '\0');
  }
  return std::unique_ptr<WritableFile>(new Writable(*this, path));
}

Status OverlayFileSystem::truncate(const std::string& path, uint64_t size) {
  std::lock_guard<std::mutex> lock(mu_);
  auto file = materialize_locked(path);
  if (!file) return file.error();
  (*file)->resize(static_cast<size_t>(size), '\0');
  return Status();
}

Status OverlayFileSystem::remove(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!exists_locked(path)) return Status::not_found(path + ": No such file");
  files_.erase(path);
  removed_.insert(path);
  return Status();
}

Status OverlayFileSystem::remove_tree(const std::string& path) {
  // Only a log's own files are ever removed on the open path; a tree (a
  // backup's) is left to the real file system's tqd.
  std::lock_guard<std::mutex> lock(mu_);
  std::erase_if(files_, [&](const auto& entry) { return entry.first.rfind(path + "/", 0) == 0; });
  removed_.insert(path);
  return Status();
}

Status OverlayFileSystem::rename(const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> lock(mu_);
  if (exists_locked(to)) return Status::exists(to + ": File exists");
  auto file = materialize_locked(from);
  if (!file) return file.error();
  files_[to] = std::move(files_[from]);
  files_.erase(from);
  removed_.insert(from);
  removed_.erase(to);
  return Status();
}

Status OverlayFileSystem::sync_dir(const std::string&) {
  return Status();
}

Result<uint64_t> OverlayFileSystem::free_bytes(const std::string& dir) {
  return base_.free_bytes(dir);
}

Result<std::unique_ptr<FileLock>> OverlayFileSystem::lock(const std::string& path) {
  return base_.lock(path);
}

}  // namespace tq::wal
