#include "client/history_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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

}  // namespace tq::client
