#include "client/job_program.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "client/job.h"

extern char** environ;

namespace tq::client {
namespace {

std::string errno_text(const char* what, int error) {
  return std::string(what) + ": " + std::strerror(error);
}

// A memory file holding the payload, read from its start: the program's
// standard input. A pipe would need tq to write while the program reads, and
// would block on a payload larger than the pipe that the program ignores.
Expected<int, std::string> payload_file(std::string_view payload) {
  const int fd = memfd_create("tq-job-payload", MFD_CLOEXEC);
  if (fd < 0) return errno_text("memfd_create", errno);
  size_t written = 0;
  while (written < payload.size()) {
    const ssize_t n = ::write(fd, payload.data() + written, payload.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      return errno_text("writing the payload", error);
    }
    written += static_cast<size_t>(n);
  }
  if (::lseek(fd, 0, SEEK_SET) != 0) {
    const int error = errno;
    ::close(fd);
    return errno_text("lseek", error);
  }
  return fd;
}

// tq's environment, with the job's variables in place of any of that name.
std::vector<std::string> job_environment(const Job& job) {
  const std::string ours[] = {"TQ_JOB_ID=" + std::to_string(job.id), "TQ_QUEUE=" + job.queue,
                              "TQ_ATTEMPT=" + std::to_string(job.attempts)};
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    const bool replaced = std::any_of(std::begin(ours), std::end(ours), [&](const std::string& o) {
      return text.substr(0, text.find('=') + 1) == std::string_view(o).substr(0, o.find('=') + 1);
    });
    if (!replaced) env.emplace_back(text);
  }
  env.insert(env.end(), std::begin(ours), std::end(ours));
  return env;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// posix_spawn's attribute and file-action objects, destroyed on every path.
struct SpawnSetup {
  posix_spawnattr_t attributes;
  posix_spawn_file_actions_t actions;
  SpawnSetup() {
    posix_spawnattr_init(&attributes);
    posix_spawn_file_actions_init(&actions);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
};

bool executable_file(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) &&
         ::access(path.c_str(), X_OK) == 0;
}

}  // namespace

std::string ProgramExit::describe() const {
  if (signal == 0) return "exit " + std::to_string(status);
  const char* name = sigabbrev_np(signal);
  return std::string("killed by ") +
         (name != nullptr ? std::string("SIG") + name : "signal " + std::to_string(signal));
}

bool StartError::program_unusable() const {
  return error == ENOENT || error == EACCES || error == ENOEXEC || error == ENOTDIR ||
         error == ELOOP || error == ENAMETOOLONG || error == EISDIR || error == EPERM;
}

Expected<JobProgram, StartError> JobProgram::start(const std::vector<std::string>& argv,
                                                   const Job& job) {
  auto input = payload_file(job.payload);
  if (!input) return StartError{0, input.error()};
  SpawnSetup setup;
  // Its own session (so its own process group, and no terminal: see the
  // header), tq's handlers and blocked signals not inherited.
  sigset_t none;
  sigemptyset(&none);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD}) sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(&setup.attributes, &none);
  posix_spawnattr_setsigdefault(&setup.attributes, &defaults);
  posix_spawnattr_setflags(&setup.attributes,
                           POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawn_file_actions_adddup2(&setup.actions, *input, STDIN_FILENO);

  std::vector<std::string> args = argv;
  std::vector<std::string> env = job_environment(job);
  std::vector<char*> arg_pointers = pointers(args);
  std::vector<char*> env_pointers = pointers(env);
  pid_t pid = -1;
  const int error = posix_spawnp(&pid, args[0].c_str(), &setup.actions, &setup.attributes,
                                 arg_pointers.data(), env_pointers.data());
  ::close(*input);
  if (error != 0) return StartError{error, errno_text(("cannot run " + args[0]).c_str(), error)};
  // Without pidfd_open (kernels before 5.3) the wait polls instead.
  const int pid_fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  return JobProgram(pid, pid_fd);
}

JobProgram::JobProgram(JobProgram&& other) noexcept
    : pid_(other.pid_), group_(other.group_), pid_fd_(other.pid_fd_) {
  other.pid_ = -1;
  other.group_ = -1;
  other.pid_fd_ = -1;
}

JobProgram::~JobProgram() {
  if (pid_ > 0) {
    signal(SIGKILL);
    reap(true);
  }
  if (pid_fd_ >= 0) ::close(pid_fd_);
}

void JobProgram::signal(int signum) const {
  if (pid_ > 0) ::kill(-pid_, signum);
}

void JobProgram::kill_leftovers() const {
  // A group outlives its leader while members remain, and its id is not
  // given to a new process until then: this reaches only what it left.
  if (group_ > 0) ::kill(-group_, SIGKILL);
}

std::optional<ProgramExit> JobProgram::reap(bool block) {
  int status = 0;
  pid_t done;
  do {
    done = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (done < 0 && errno == EINTR);
  if (done == 0) return std::nullopt;
  pid_ = -1;
  if (done < 0) return ProgramExit{.status = 127};  // reaped elsewhere: cannot tell
  if (WIFSIGNALED(status)) return ProgramExit{.signal = WTERMSIG(status)};
  return ProgramExit{.status = WEXITSTATUS(status)};
}

std::optional<ProgramExit> JobProgram::wait_until(Clock::time_point deadline, int wake_fd) {
  if (pid_ <= 0) return std::nullopt;
  for (;;) {
    if (auto exit = reap(false)) return exit;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return std::nullopt;
    // Without a pidfd, look again every 20 ms.
    const int timeout =
        static_cast<int>(std::min<int64_t>(left.count(), pid_fd_ >= 0 ? INT32_MAX : int64_t{20}));
    pollfd fds[2] = {{pid_fd_, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    const int ready = ::poll(fds, 2, timeout);
    if (ready > 0 && (fds[1].revents & POLLIN) != 0) return reap(false);
  }
}

std::optional<std::string> program_problem(const std::string& program) {
  if (program.empty()) return "no program given";
  if (program.find('/') != std::string::npos) {
    if (executable_file(program)) return std::nullopt;
    return program + ": not an executable file";
  }
  const char* path = std::getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  for (;;) {
    const size_t colon = dirs.find(':');
    std::string dir(dirs.substr(0, colon));
    if (executable_file((dir.empty() ? "." : dir) + "/" + program)) return std::nullopt;
    if (colon == std::string_view::npos) break;
    dirs.remove_prefix(colon + 1);
  }
  return program + ": not found in PATH";
}

}  // namespace tq::client
