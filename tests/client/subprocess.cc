#include "tests/client/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace tq::testing {
namespace {

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// argv and environment as exec wants them, built before fork: the child of a
// threaded process may only call async-signal-safe functions, so no malloc.
struct ExecArgs {
  std::vector<std::string> strings;
  std::vector<char*> argv;
  std::vector<char*> envp;

  ExecArgs(const std::vector<std::string>& args, const std::vector<std::string>& extra_env) {
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      std::string entry(*e);
      bool replaced = false;
      for (const auto& x : extra_env) {
        replaced = replaced || entry.compare(0, x.find('=') + 1, x, 0, x.find('=') + 1) == 0;
      }
      if (!replaced) env.push_back(entry);
    }
    env.insert(env.end(), extra_env.begin(), extra_env.end());
    strings = args;
    strings.insert(strings.end(), env.begin(), env.end());
    for (size_t i = 0; i < strings.size(); ++i) {
      (i < args.size() ? argv : envp).push_back(strings[i].data());
    }
    argv.push_back(nullptr);
    envp.push_back(nullptr);
  }
};

[[noreturn]] void exec_child(const ExecArgs& exec) {
  signal(SIGPIPE, SIG_DFL);  // the test ignores it (below); the program must not
  execvpe(exec.argv[0], exec.argv.data(), exec.envp.data());
  _exit(127);
}

void make_pipe(int fds[2]) {
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
}

// Appends what is readable on fd to out; false at end of file.
bool drain(int fd, std::string& out) {
  char buf[4096];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n < 0 && errno == EINTR) return true;
  if (n <= 0) return false;
  out.append(buf, static_cast<size_t>(n));
  return true;
}

}  // namespace

ProgramResult run_program(const std::vector<std::string>& argv, const std::string& input,
                          const std::vector<std::string>& env) {
  // A program that exits without reading all its input must not kill the
  // test with SIGPIPE: the write fails instead, and the input is dropped.
  static const bool sigpipe_ignored = [] { return signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();
  (void)sigpipe_ignored;
  int in[2], out[2], err[2];
  make_pipe(in);
  make_pipe(out);
  make_pipe(err);
  ExecArgs exec(argv, env);
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    exec_child(exec);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  // Feed stdin and read both outputs together, so no pipe fills up and stalls.
  ProgramResult result;
  size_t fed = 0;
  int in_fd = in[1];
  fcntl(in_fd, F_SETFL, O_NONBLOCK);
  if (input.empty()) {
    close(in_fd);
    in_fd = -1;
  }
  bool out_open = true, err_open = true;
  while (out_open || err_open) {
    pollfd p[3] = {{out_open ? out[0] : -1, POLLIN, 0},
                   {err_open ? err[0] : -1, POLLIN, 0},
                   {in_fd, POLLOUT, 0}};
    if (poll(p, 3, -1) < 0 && errno != EINTR) break;
    if ((p[0].revents & (POLLIN | POLLHUP)) != 0) out_open = drain(out[0], result.out);
    if ((p[1].revents & (POLLIN | POLLHUP)) != 0) err_open = drain(err[0], result.err);
    if (in_fd >= 0 && (p[2].revents & (POLLOUT | POLLERR)) != 0) {
      ssize_t n = write(in_fd, input.data() + fed, input.size() - fed);
      if (n > 0) fed += static_cast<size_t>(n);
      if (n < 0 && errno != EAGAIN && errno != EINTR) fed = input.size();
      if (fed == input.size()) {
        close(in_fd);
        in_fd = -1;
      }
    }
  }
  if (in_fd >= 0) close(in_fd);
  close(out[0]);
  close(err[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  result.status = decode_status(status);
  return result;
}

BackgroundProcess::BackgroundProcess(const std::vector<std::string>& argv, bool with_stderr) {
  int out[2];
  make_pipe(out);
  ExecArgs exec(argv, {});
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    dup2(devnull, STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    if (with_stderr) dup2(out[1], STDERR_FILENO);
    exec_child(exec);
  }
  close(out[1]);
  out_fd_ = out[0];
}

BackgroundProcess::~BackgroundProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (out_fd_ >= 0) close(out_fd_);
}

std::optional<std::string> BackgroundProcess::wait_for_line(const std::string& needle,
                                                            std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    for (; scanned_ < lines_.size(); ++scanned_) {
      if (lines_[scanned_].find(needle) != std::string::npos) return lines_[scanned_++];
    }
    if (out_fd_ < 0) return std::nullopt;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{out_fd_, POLLIN, 0};
    int rc = poll(&p, 1, static_cast<int>(left.count()));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) return std::nullopt;
    if (!drain(out_fd_, partial_)) {
      close(out_fd_);
      out_fd_ = -1;
      if (!partial_.empty()) lines_.push_back(partial_);
      partial_.clear();
    }
    size_t nl;
    while ((nl = partial_.find('\n')) != std::string::npos) {
      lines_.push_back(partial_.substr(0, nl));
      partial_.erase(0, nl + 1);
    }
  }
}

int BackgroundProcess::stop(int signum, std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  kill(pid_, signum);
  return wait_for_exit(timeout);
}

int BackgroundProcess::wait_for_exit(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  // The pipe reaches end of file when the process is gone: wait for that
  // (reading what it still prints) rather than polling waitpid.
  wait_for_line("\n", timeout);  // no line holds a newline: reads to the end or the deadline
  int status = 0;
  if (out_fd_ >= 0) {  // still running at the deadline
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return -1;
  }
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return decode_status(status);
}

}  // namespace tq::testing
