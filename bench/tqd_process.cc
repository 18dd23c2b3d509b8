// fork/exec of tqd with stderr into a log file; polling that file for the
// listening line; SIGTERM and a bounded wait to stop it.
#include "bench/tqd_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <thread>

#include "bench/line_scan.h"

namespace tq::bench {

Result<TqdProcess> TqdProcess::spawn(const std::string& tqd_path,
                                     const std::vector<std::string>& args,
                                     const std::string& log_path) {
  int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return Error{"open " + log_path + ": " + errno_text(errno)};
  std::vector<std::string> argv_strings{tqd_path};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);

  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    return Error{"fork: " + errno_text(errno)};
  }
  if (pid == 0) {
    // The child: only async-signal-safe calls until exec.
    ::dup2(log_fd, STDERR_FILENO);
    int devnull = ::open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      ::dup2(devnull, STDIN_FILENO);
      ::dup2(devnull, STDOUT_FILENO);
    }
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(log_fd);
  return TqdProcess(pid, log_path);
}

TqdProcess::TqdProcess(TqdProcess&& other) noexcept
    : pid_(other.pid_), log_path_(std::move(other.log_path_)), exit_status_(other.exit_status_) {
  other.pid_ = -1;
}

TqdProcess::~TqdProcess() {
  if (pid_ > 0 && !exited()) {
    auto stopped = stop(std::chrono::milliseconds(5000));
    (void)stopped;  // a destructor has no one to tell; stop() kills as a last resort
  }
}

bool TqdProcess::exited() {
  if (pid_ <= 0 || exit_status_) return true;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) exit_status_ = status;
  return exit_status_.has_value();
}

std::string TqdProcess::log_text() const {
  std::ifstream in(log_path_);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

Result<uint16_t> TqdProcess::wait_listening(std::chrono::milliseconds timeout, Listener listener) {
  const std::string_view prefix =
      listener == Listener::kTls ? "listening for TLS on " : "listening on ";
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::string log = log_text();
    size_t at = log.find(prefix);
    if (at != std::string::npos) {
      size_t eol = log.find('\n', at);
      if (eol != std::string::npos) {
        const size_t begin = at + prefix.size();
        std::string_view address(log.data() + begin, eol - begin);
        size_t colon = address.rfind(':');
        auto port =
            colon == std::string_view::npos ? std::nullopt : parse_int(address.substr(colon + 1));
        if (!port || *port <= 0 || *port > 65535) {
          return Error{"cannot read a port from tqd's '" + std::string(address) + "'"};
        }
        return static_cast<uint16_t>(*port);
      }
    }
    if (exited()) return Error{"tqd exited before listening; its log:\n" + log};
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return Error{std::string("tqd did not report '") + std::string(prefix) +
               "...' in time; its log:\n" + log_text()};
}

Result<Ok> TqdProcess::stop(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return Ok{};
  if (!exited()) ::kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!exited()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      exit_status_ = status;
      return Error{"tqd did not stop within the timeout after SIGTERM; killed it"};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  int status = *exit_status_;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Error{"tqd did not exit cleanly after SIGTERM (status " + std::to_string(status) + ")"};
  }
  return Ok{};
}

}  // namespace tq::bench
