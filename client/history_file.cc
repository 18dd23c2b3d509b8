#include "client/history_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tq::client {

void keep_private(const std::string& path) {
  // Only a file of our own, as it is: TQ_HISTFILE=/dev/null once became
  // 0600 for everyone when tq ran as root, and a link's target is someone
  // else's choice.
  // Opened, not named twice: a name checked and then changed could be
  // swapped for a link in between (O_NOFOLLOW: a link fails to open here).
  const int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return;
  struct stat info {};
  if (fstat(fd, &info) == 0 && S_ISREG(info.st_mode) && info.st_uid == geteuid() &&
      (info.st_mode & 0077) != 0) {
    fchmod(fd, S_IRUSR | S_IWUSR);
  }
  close(fd);
}

std::optional<std::string> history_problem(const std::string& path) {
  // libedit saves by opening the file for writing and says nothing when it
  // cannot; asked here the same way. O_NONBLOCK: a FIFO without a reader
  // must not hold tq at its start.
  const int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_NONBLOCK | O_CLOEXEC);
  if (fd >= 0) {
    close(fd);
    return std::nullopt;
  }
  if (errno != ENOENT) return std::strerror(errno);
  // Not there yet: the first save creates it, if its directory lets it.
  const size_t slash = path.rfind('/');
  const std::string directory = slash == std::string::npos ? "."
                                : slash == 0               ? "/"
                                                           : path.substr(0, slash);
  if (access(directory.c_str(), W_OK | X_OK) != 0) return std::strerror(errno);
  return std::nullopt;
}

}  // namespace tq::client
