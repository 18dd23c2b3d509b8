// The POSIX file system's directory making (wal/posix_file.cc): the path's
// missing directories, owner only, where the kernel resolves the path
// (relative, doubled slashes, dots, symbolic links and their ".."); an
// existing one as it was; a file or a symbolic link to nothing in the way
// refused as such; permissions (as nobody when run as root); a race.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "wal/file.h"

namespace wal_posix_file_test {

using tq::wal::posix_file_system;
using tq::wal::Status;

namespace {

std::string make_temp_dir() {
  std::string path = (std::filesystem::temp_directory_path() / "tq-posix-XXXXXX").string();
  REQUIRE(::mkdtemp(path.data()) != nullptr);
  return path;
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  REQUIRE(S_ISDIR(st.st_mode));
  return st.st_mode & 07777;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// Permissions do not stop root: a test of them runs as this user, or, when
// it is root, as nobody.
uid_t test_uid() {
  return ::geteuid() == 0 ? 65534 : ::geteuid();
}

// create_dir(dir) as test_uid(): "" when it worked, else its message. As
// root, in a child process that gives root up.
std::string create_dir_as_test_user(const std::string& dir) {
  if (::geteuid() != 0) {
    const Status s = posix_file_system().create_dir(dir);
    return s.ok() ? "" : s.message();
  }
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
    const Status s = posix_file_system().create_dir(dir);
    const std::string out = s.ok() ? "" : s.message();
    const bool written =
        ::write(fds[1], out.data(), out.size()) == static_cast<ssize_t>(out.size());
    ::_exit(written ? 0 : 3);
  }
  ::close(fds[1]);
  std::string out;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;)
    out.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  return out;
}

}  // namespace

TEST_SUITE("wal_posix_file") {
  TEST_CASE("create_dir makes every missing directory of the path, owner only") {
    const std::string root = make_temp_dir();
    ::chmod(root.c_str(), 0755);
    const mode_t old_umask = ::umask(0);  // the umask would not otherwise lower 0777 to 0700
    std::string dir = root + "/a/b/c";
    SUBCASE("plain") {}
    SUBCASE("a trailing slash") { dir += "/"; }
    SUBCASE("dots") { dir = root + "/./a/../a/b/c"; }
    const Status made = posix_file_system().create_dir(dir);
    ::umask(old_umask);
    REQUIRE(made.ok());
    CHECK(mode_of(root + "/a") == 0700);
    CHECK(mode_of(root + "/a/b") == 0700);
    CHECK(mode_of(root + "/a/b/c") == 0700);
    CHECK(mode_of(root) == 0755);  // there before: left as the operator made it
    // Again: nothing to make, nothing changed.
    ::chmod((root + "/a/b").c_str(), 0750);
    CHECK(posix_file_system().create_dir(dir).ok());
    CHECK(mode_of(root + "/a/b") == 0750);
    std::filesystem::remove_all(root);
  }

  TEST_CASE("create_dir refuses a path through a file, naming the whole path") {
    const std::string root = make_temp_dir();
    { std::ofstream file(root + "/afile"); }
    for (const std::string& dir : {root + "/afile", root + "/afile/data"}) {
      CAPTURE(dir);
      const Status s = posix_file_system().create_dir(dir);
      CHECK(s.code() == Status::Code::kInvalidArgument);
      CHECK(s.message() == "create directory " + dir + ": Not a directory");
    }
    std::filesystem::remove_all(root);
  }

  TEST_CASE("create_dir of a relative path makes it under the working directory") {
    const std::string root = make_temp_dir();
    const std::filesystem::path was = std::filesystem::current_path();
    std::filesystem::current_path(root);
    const Status made = posix_file_system().create_dir("data/wal");
    std::filesystem::current_path(was);
    CHECK(made.ok());
    CHECK(mode_of(root + "/data/wal") == 0700);
    std::filesystem::remove_all(root);
  }

  TEST_CASE("create_dir of relative paths, doubled slashes, the root and an existing one") {
    const std::string root = make_temp_dir();
    std::filesystem::create_directory(root + "/cwd");
    const std::filesystem::path was = std::filesystem::current_path();
    std::filesystem::current_path(root + "/cwd");
    std::string dir, made_at;
    SUBCASE("./x") {
      dir = "./x";
      made_at = root + "/cwd/x";
    }
    SUBCASE("../x") {
      dir = "../x";
      made_at = root + "/x";
    }
    SUBCASE("../cwd/y/z") {
      dir = "../cwd/y/z";
      made_at = root + "/cwd/y/z";
    }
    SUBCASE("a//b") {
      dir = "a//b";
      made_at = root + "/cwd/a/b";
    }
    SUBCASE("an absolute a//b//") {
      dir = root + "//a//b//";
      made_at = root + "/a/b";
    }
    const Status made = posix_file_system().create_dir(dir);
    std::filesystem::current_path(was);
    CAPTURE(dir);
    CHECK(made.ok());
    CHECK(mode_of(made_at) == 0700);
    CHECK(posix_file_system().create_dir("/").ok());
    CHECK(posix_file_system().create_dir(root + "/").ok());
    CHECK(mode_of(root) == 0700);  // mkdtemp's: not made here, left as it was
    std::filesystem::remove_all(root);
  }

  TEST_CASE("create_dir follows a symbolic link as every later open does, .. included") {
    // data_dir is often a link to another disk: "link/../x" is x beside
    // the link's target, not beside the link (a lexical "x", made there,
    // was a directory no later open of "link/../x/..." would find).
    const std::string root = make_temp_dir();
    std::filesystem::create_directories(root + "/disk/tq");
    ::chmod((root + "/disk/tq").c_str(), 0750);
    std::filesystem::create_directory_symlink(root + "/disk/tq", root + "/link");
    CHECK(posix_file_system().create_dir(root + "/link").ok());
    CHECK(mode_of(root + "/disk/tq") == 0750);  // the target, as the operator made it
    REQUIRE(posix_file_system().create_dir(root + "/link/data/wal").ok());
    CHECK(mode_of(root + "/disk/tq/data/wal") == 0700);
    REQUIRE(posix_file_system().create_dir(root + "/link/../backups/b").ok());
    CHECK(mode_of(root + "/disk/backups") == 0700);
    CHECK(mode_of(root + "/disk/backups/b") == 0700);
    CHECK_FALSE(exists(root + "/backups"));
    std::filesystem::remove_all(root);
  }

  TEST_CASE("create_dir refuses a symbolic link to nothing, naming it, rather than call it made") {
    // A data_dir linked to a disk not mounted yet: mkdir finds the name
    // taken, and no directory is there.
    const std::string root = make_temp_dir();
    std::filesystem::create_directory_symlink(root + "/not-mounted/tq", root + "/link");
    for (const std::string& dir : {root + "/link", root + "/link/wal"}) {
      CAPTURE(dir);
      const Status s = posix_file_system().create_dir(dir);
      REQUIRE_FALSE(s.ok());
      CHECK(s.code() == Status::Code::kNotFound);  // a mount may come: a later start may pass
      CHECK(s.message() == "create directory " + dir + ": " + root +
                               "/link is a symbolic link to " + root +
                               "/not-mounted/tq, which does not exist");
    }
    CHECK_FALSE(exists(root + "/not-mounted"));
    std::filesystem::remove_all(root);
  }

  TEST_CASE("create_dir where it may not write names the whole path, and makes nothing") {
    const std::string root = make_temp_dir();
    ::chmod(root.c_str(), 0755);
    std::filesystem::create_directory(root + "/read-only");
    REQUIRE(::chown((root + "/read-only").c_str(), test_uid(), static_cast<gid_t>(-1)) == 0);
    ::chmod((root + "/read-only").c_str(), 0555);
    const std::string dir = root + "/read-only/data/wal";
    CHECK(create_dir_as_test_user(dir) == "create directory " + dir + ": Permission denied");
    CHECK_FALSE(exists(root + "/read-only/data"));
    std::filesystem::remove_all(root);
  }

  TEST_CASE("create_dir makes a directory where it may write but not list") {
    // A drop-box (mode 0333): the new directory's name cannot be synced
    // into it (no fsync without opening it, no opening it without read
    // permission), but that is no reason to refuse the start: the next one
    // would find the directory made and go on all the same.
    const std::string root = make_temp_dir();
    ::chmod(root.c_str(), 0755);
    std::filesystem::create_directory(root + "/write-only");
    REQUIRE(::chown((root + "/write-only").c_str(), test_uid(), static_cast<gid_t>(-1)) == 0);
    ::chmod((root + "/write-only").c_str(), 0333);
    CHECK(create_dir_as_test_user(root + "/write-only/data/wal") == "");
    CHECK(mode_of(root + "/write-only/data/wal") == 0700);
    std::filesystem::remove_all(root);
  }

  TEST_CASE("create_dir of the same new path from many threads at once: every one succeeds") {
    // Two tqds making a shared backup_dir, say: one makes each directory,
    // the others find it made (EEXIST) and go on.
    const std::string root = make_temp_dir();
    for (int round = 0; round < 20; ++round) {
      const std::string dir = root + "/r" + std::to_string(round) + "/a/b/c";
      std::atomic<int> ready{0};
      std::atomic<int> failed{0};
      std::vector<std::thread> threads;
      for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
          ++ready;
          while (ready.load() < 4) {
          }
          if (!posix_file_system().create_dir(dir).ok()) ++failed;
        });
      }
      for (std::thread& t : threads) t.join();
      CHECK(failed.load() == 0);
      CHECK(mode_of(dir) == 0700);
    }
    std::filesystem::remove_all(root);
  }

  TEST_CASE("run as root in another user's directory, what it makes there is that user's") {
    // An operator's `tqd --check-log` (or --wal-recover) as root on the log
    // of a service that runs as its own user: a LOCK, log file or
    // directory left root's, mode 0600 or 0700, would keep the service out
    // of its own log at its next start (open .../wal/LOCK: Permission
    // denied, and a restart that fails the same way).
    if (::geteuid() != 0) {
      MESSAGE("not run as root: nothing to give away");
      return;
    }
    const std::string root = make_temp_dir();
    REQUIRE(::chown(root.c_str(), 65534, 65534) == 0);
    auto owner_of = [](const std::string& path) {
      struct stat st {};
      REQUIRE(::lstat(path.c_str(), &st) == 0);
      return std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid);
    };
    {
      auto lock = posix_file_system().lock(root + "/LOCK");
      REQUIRE(lock.ok());
      CHECK(owner_of(root + "/LOCK") == "65534:65534");
    }
    {
      auto lock = posix_file_system().lock(root + "/LOCK");  // there now: taken as it is
      REQUIRE(lock.ok());
    }
    CHECK(posix_file_system().open_for_write(root + "/seg", true, 4096).ok());
    CHECK(owner_of(root + "/seg") == "65534:65534");
    REQUIRE(posix_file_system().create_dir(root + "/backups/x").ok());
    CHECK(owner_of(root + "/backups") == "65534:65534");
    CHECK(owner_of(root + "/backups/x") == "65534:65534");
    // What was there keeps its owner; root's own directory, root's files.
    REQUIRE(::chown(root.c_str(), 0, 0) == 0);
    CHECK(posix_file_system().open_for_write(root + "/mine", true, 0).ok());
    CHECK(owner_of(root + "/mine") == "0:0");
    CHECK(posix_file_system().lock(root + "/LOCK").ok());
    CHECK(owner_of(root + "/LOCK") == "65534:65534");
    std::filesystem::remove_all(root);
  }
}

}  // namespace wal_posix_file_test
