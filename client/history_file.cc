#include "client/history_file.h"

#include <sys/stat.h>
#include <unistd.h>

namespace tq::client {

void keep_private(const std::string& path) {
  // Only a file of our own, as it is: TQ_HISTFILE=/dev/null once became
  // 0600 for everyone when tq ran as root, and a link's target is someone
  // else's choice.
  struct stat info {};
  if (lstat(path.c_str(), &info) != 0 || !S_ISREG(info.st_mode) || info.st_uid != geteuid()) {
    return;
  }
  if ((info.st_mode & 0077) != 0) chmod(path.c_str(), S_IRUSR | S_IWUSR);
}

}  // namespace tq::client
