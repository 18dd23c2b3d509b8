// FileSystem on POSIX. Every error message names the path and the call.
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "wal/file.h"

namespace tq::wal {
namespace {

Status errno_status(const std::string& what, int err) {
  std::string msg = what + ": " + std::strerror(err);
  if (err == ENOSPC || err == EDQUOT) return Status::no_space(msg);
  if (err == EEXIST) return Status::exists(msg);
  if (err == ENOENT) return Status::not_found(msg);
  return Status::io_error(msg);
}

Status not_a_directory(const std::string& dir) {
  return Status::invalid("create directory " + dir + ": " + std::strerror(ENOTDIR));
}

// mkdir found `path`, a part of `dir`, taken: fine when a directory is
// there now (made meanwhile), not when something else is.
Status taken_name(const std::string& dir, const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) return S_ISDIR(st.st_mode) ? Status() : not_a_directory(dir);
  const int err = errno;
  std::error_code ec;
  const std::filesystem::path target = std::filesystem::read_symlink(path, ec);
  if (err == ENOENT && !ec) {
    // Not kInvalidArgument: mounting the disk it points to may be all a
    // later start needs.
    return Status::not_found("create directory " + dir + ": " + path.string() +
                             " is a symbolic link to " + target.string() +
                             ", which does not exist");
  }
  return errno_status("create directory " + dir, err);
}

// fsyncs a directory, so that the names made in it are durable.
// `unreadable_ok`: a directory tqd may write in but not read (a drop-box,
// mode 0333) cannot be opened to be synced, and is left to the file
// system, as before tqd synced the directories it makes, rather than made
// an error that the next start, finding the directory made, would not meet.
Status fsync_directory(const std::string& dir, bool unreadable_ok = false) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 && unreadable_ok && errno == EACCES) return Status();
  if (fd < 0) return errno_status("open directory " + dir, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return errno_status("fsync directory " + dir, err);
  return Status();
}

// Run as root in a directory another user owns (an operator's `tqd
// --check-log` or `--wal-recover` on the data directory of a service that
// runs as its own user, systemd's DynamicUser), what tqd creates there
// becomes that user's, as the files around it are: a LOCK or log file
// left root's, mode 0600, would keep the service from opening its own log
// at its next start. Only what the caller just created (O_EXCL, mkdir):
// never a file a symbolic link leads to. Best effort: the file works for
// this run either way.
void adopt_directory_owner(const std::string& path, int fd) {
  if (::geteuid() != 0) return;
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  struct stat dir {};
  if (::stat(parent.empty() ? "." : parent.c_str(), &dir) != 0) return;
  struct stat st {};
  const int rc = fd >= 0 ? ::fstat(fd, &st) : ::lstat(path.c_str(), &st);
  if (rc != 0 || (st.st_uid == dir.st_uid && st.st_gid == dir.st_gid)) return;
  [[maybe_unused]] const int changed = fd >= 0 ? ::fchown(fd, dir.st_uid, dir.st_gid)
                                               : ::lchown(path.c_str(), dir.st_uid, dir.st_gid);
}

Status pread_all(int fd, const std::string& path, char* out, uint64_t n, uint64_t offset) {
  while (n > 0) {
    ssize_t got = ::pread(fd, out, n, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return errno_status("read " + path, errno);
    if (got == 0) return Status::io_error("read " + path + ": file shrank while being read");
    out += got;
    n -= static_cast<uint64_t>(got);
    offset += static_cast<uint64_t>(got);
  }
  return Status();
}

class MappedBytes final : public FileBytes {
 public:
  MappedBytes(void* map, size_t size) : map_(map), size_(size) {}
  ~MappedBytes() override {
    if (map_ != nullptr) ::munmap(map_, size_);
  }
  std::string_view bytes() const override {
    return {static_cast<const char*>(map_), size_};
  }

 private:
  void* map_;
  size_t size_;
};

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  Status write_at(uint64_t offset, std::string_view data) override {
    while (!data.empty()) {
      ssize_t n = ::pwrite(fd_, data.data(), data.size(), static_cast<off_t>(offset));
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno_status("write " + path_, errno);
      }
      data.remove_prefix(static_cast<size_t>(n));
      offset += static_cast<uint64_t>(n);
    }
    return Status();
  }

  Status sync() override {
    if (::fdatasync(fd_) != 0) return errno_status("fdatasync " + path_, errno);
    return Status();
  }

  Result<std::unique_ptr<WritableFile>> duplicate() override {
    int fd = ::fcntl(fd_, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return errno_status("dup " + path_, errno);
    return std::unique_ptr<WritableFile>(new PosixWritableFile(path_, fd));
  }

  Status close() override {
    if (fd_ < 0) return Status();
    int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) return errno_status("close " + path_, errno);
    return Status();
  }

 private:
  std::string path_;
  int fd_;
};

class PosixFileLock final : public FileLock {
 public:
  PosixFileLock(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixFileLock() override { ::close(fd_); }  // closing releases the flock

  Status still_in_place() override {
    struct stat held {};
    struct stat named {};
    if (::fstat(fd_, &held) != 0) return errno_status("fstat " + path_, errno);
    if (::stat(path_.c_str(), &named) != 0) {
      const int err = errno;
      if (err != ENOENT && err != ENOTDIR) return Status();  // unknown is not gone
      return Status::io_error(path_ + " is gone (" + std::strerror(err) +
                              "): the log's directory was removed or moved away");
    }
    if (held.st_dev != named.st_dev || held.st_ino != named.st_ino) {
      return Status::io_error(path_ +
                              " is another file now: the log's directory was removed or moved "
                              "away, and another made in its place");
    }
    return Status();
  }

 private:
  int fd_;
  std::string path_;
};

class PosixFileSystem final : public FileSystem {
 public:
  Status create_dir(const std::string& dir) override {
    // The directories missing from the path, innermost first. The path is
    // walked as written, not lexically normalised: the kernel resolves
    // "link/../x" from the link's target, as every later open of a file in
    // it does, so x goes beside the target, not beside the link. A "." or
    // ".." is there once what leads to it is.
    std::vector<std::filesystem::path> missing;
    std::filesystem::path p(dir);
    if (p.has_relative_path() && !p.has_filename()) p = p.parent_path();  // "a/b/" is a/b
    for (; !p.empty() && p != p.root_path(); p = p.parent_path()) {
      if (p.filename() == "." || p.filename() == "..") continue;
      struct stat st {};
      const int err = ::stat(p.c_str(), &st) == 0 ? (S_ISDIR(st.st_mode) ? 0 : ENOTDIR) : errno;
      if (err == 0) break;
      // A file where the path needs a directory: no retry gets past it.
      if (err == ENOTDIR) return not_a_directory(dir);
      if (err != ENOENT) return errno_status("create directory " + dir, err);
      missing.push_back(p);
    }
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
      if (::mkdir(it->c_str(), 0700) != 0) {
        const int err = errno;
        if (err != EEXIST) return errno_status("create directory " + dir, err);
        // Made meanwhile by someone else (theirs, mode and all), or a name
        // stat did not see through: a symbolic link to nothing (a data_dir
        // linked to a disk not mounted yet), not a directory to go on in.
        if (Status there = taken_name(dir, *it); !there.ok()) return there;
        continue;
      }
      // Jobs are other people's data: a directory tqd makes is owner only
      // (mkdir's mode passed through the umask). One the operator made keeps
      // its mode (a backup group, a root-owned mount point tqd may write to
      // but not chmod).
      if (::chmod(it->c_str(), 0700) != 0) return errno_status("chmod " + it->string(), errno);
      adopt_directory_owner(it->string(), -1);
      // Its name is durable only once its parent is synced. Without this a
      // crash soon after the first start could lose data_dir/wal, with the
      // log synced inside it, or a backup's whole directory (POSIX promises
      // nothing; journaling file systems mostly keep it anyway).
      const std::filesystem::path parent = it->parent_path();
      if (Status s = fsync_directory(parent.empty() ? "." : parent.string(), true); !s.ok()) {
        return s;
      }
    }
    return Status();
  }

  Result<std::vector<std::string>> list(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return errno_status("open directory " + dir, errno);
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(std::move(name));
    }
    ::closedir(d);
    return names;
  }

  Result<std::unique_ptr<FileBytes>> read_file(const std::string& path, uint64_t* size) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno_status("open " + path, errno);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      return errno_status("stat " + path, err);
    }
    *size = static_cast<uint64_t>(st.st_size);
    // Find the last non-zero byte, reading backwards a block at a time.
    std::string block(1 << 20, '\0');
    uint64_t end = static_cast<uint64_t>(st.st_size);
    while (end > 0) {
      uint64_t start = end > block.size() ? end - block.size() : 0;
      Status s = pread_all(fd, path, block.data(), end - start, start);
      if (!s.ok()) {
        ::close(fd);
        return s;
      }
      size_t i = static_cast<size_t>(end - start);
      while (i > 0 && block[i - 1] == 0) --i;
      if (i > 0) {
        end = start + i;
        break;
      }
      end = start;
    }
    // Map the part with data: the page cache itself, no copy and no zeroing
    // (a copy of a 64 MiB segment cost more than replaying it).
    void* map = nullptr;
    if (end > 0) {
      map = ::mmap(nullptr, end, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
      if (map == MAP_FAILED) {
        int err = errno;
        ::close(fd);
        return errno_status("mmap " + path, err);
      }
      ::madvise(map, end, MADV_SEQUENTIAL);
    }
    ::close(fd);
    return std::unique_ptr<FileBytes>(new MappedBytes(map, end));
  }

  Result<std::unique_ptr<WritableFile>> open_for_write(const std::string& path, bool create,
                                                       uint64_t preallocate) override {
    int flags = O_WRONLY | O_CLOEXEC | (create ? (O_CREAT | O_EXCL) : 0);
    int fd = ::open(path.c_str(), flags, 0600);
    if (fd < 0) return errno_status("open " + path, errno);
    if (create) adopt_directory_owner(path, fd);
    if (preallocate > 0) {
      int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(preallocate));
      if (rc != 0) {
        ::close(fd);
        if (create) ::unlink(path.c_str());  // do not leave a half-made segment
        return errno_status("allocate " + std::to_string(preallocate) + " bytes for " + path, rc);
      }
    }
    return std::unique_ptr<WritableFile>(new PosixWritableFile(path, fd));
  }

  Status truncate(const std::string& path, uint64_t size) override {
    if (::truncate(path.c_str(), static_cast<off_t>(size)) != 0) {
      return errno_status("truncate " + path, errno);
    }
    return Status();
  }

  Status remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return errno_status("remove " + path, errno);
    return Status();
  }

  Status remove_tree(const std::string& path) override {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);  // unlinks symbolic links, does not follow them
    if (ec) return errno_status("remove " + path, ec.value());
    return Status();
  }

  Status rename(const std::string& from, const std::string& to) override {
    // The log's one writer is the only one naming files here, so checking
    // first is enough to never replace one (and works on every file system,
    // unlike link() or renameat2's RENAME_NOREPLACE).
    if (::access(to.c_str(), F_OK) == 0) {
      return errno_status("rename " + from + " to " + to, EEXIST);
    }
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return errno_status("rename " + from + " to " + to, errno);
    }
    return Status();
  }

  Status sync_dir(const std::string& dir) override { return fsync_directory(dir); }

  Result<uint64_t> free_bytes(const std::string& dir) override {
    struct statvfs st {};
    if (::statvfs(dir.c_str(), &st) != 0) return errno_status("statvfs " + dir, errno);
    return static_cast<uint64_t>(st.f_bavail) * static_cast<uint64_t>(st.f_frsize);
  }

  Result<std::unique_ptr<FileLock>> lock(const std::string& path) override {
    // Made here, or opened as it is (removed in between: made after all).
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 3; ++tries) {
      fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (fd >= 0) {
        adopt_directory_owner(path, fd);
      } else if (errno == EEXIST) {
        fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
        if (fd < 0 && errno != ENOENT) break;
      } else {
        break;
      }
    }
    if (fd < 0) return errno_status("open " + path, errno);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int err = errno;
      char pid[32] = {};
      ssize_t n = ::pread(fd, pid, sizeof pid - 1, 0);
      ::close(fd);
      if (err == EWOULDBLOCK) {
        std::string holder = n > 0 ? std::string(pid, static_cast<size_t>(n)) : "?";
        while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
        return Status::locked(path + " is held by another tqd (pid " + holder + ")");
      }
      return errno_status("lock " + path, err);
    }
    std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
      int err = errno;
      ::close(fd);
      return errno_status("write " + path, err);
    }
    return std::unique_ptr<FileLock>(new PosixFileLock(fd, path));
  }

  std::string boot_id() override {
    int fd = ::open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return {};
    char id[64] = {};
    ssize_t n = ::read(fd, id, sizeof id - 1);
    ::close(fd);
    std::string text = n > 0 ? std::string(id, static_cast<size_t>(n)) : std::string();
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    return text;
  }
};

}  // namespace

FileSystem& posix_file_system() {
  static PosixFileSystem fs;
  return fs;
}

}  // namespace tq::wal
