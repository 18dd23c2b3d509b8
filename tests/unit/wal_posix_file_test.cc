// The POSIX file system's directory making (wal/posix_file.cc): the path's
// missing directories, owner only; an existing one as it was; a file in the
// way refused as such.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

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
}

}  // namespace wal_posix_file_test
