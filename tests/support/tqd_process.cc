#include "tests/support/tqd_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <thread>

namespace tq::testing {
namespace {

std::vector<char*> argv_of(std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return argv;
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// The caller's environment, with JOURNAL_STREAM naming `fd`'s device and
// inode, as systemd sets it for a unit whose output goes to the journal.
std::vector<std::string> environment_with_journal(int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0) throw std::runtime_error("fstat failed");
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "JOURNAL_STREAM=", 15) != 0) env.emplace_back(*e);
  }
  env.push_back("JOURNAL_STREAM=" + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino));
  return env;
}

struct SpawnOptions {
  unsigned open_files = 0;     // the child's RLIMIT_NOFILE (0: as the caller's)
  bool journal = false;        // the pipe passes for systemd's journal ($JOURNAL_STREAM)
  bool no_bind_right = false;  // without CAP_NET_BIND_SERVICE, even as root
};

// fork+exec with stderr going into a pipe; returns the pid and the pipe's
// read end.
std::pair<pid_t, int> spawn(std::vector<std::string> args, const SpawnOptions& options) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  // Made before the fork: the child of a threaded test may not allocate.
  std::vector<std::string> env =
      options.journal ? environment_with_journal(fds[1]) : std::vector<std::string>{};
  auto envp = argv_of(env);
  auto argv = argv_of(args);
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    dup2(fds[1], STDERR_FILENO);
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, STDIN_FILENO);
    dup2(devnull, STDOUT_FILENO);
    if (options.open_files > 0) {
      const rlimit limit{options.open_files, options.open_files};
      setrlimit(RLIMIT_NOFILE, &limit);
    }
    // Out of the bounding set, the right is gone after the exec, though root
    // keeps every other (reading a clone under /root, say). Without
    // CAP_SETPCAP the drop fails, and the caller had no such right anyway.
    if (options.no_bind_right) prctl(PR_CAPBSET_DROP, CAP_NET_BIND_SERVICE, 0, 0, 0);
    if (options.journal) {
      execve(argv[0], argv.data(), envp.data());
    } else {
      execv(argv[0], argv.data());
    }
    _exit(127);
  }
  close(fds[1]);
  return {pid, fds[0]};
}

}  // namespace

std::string make_temp_dir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "tq-test-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

void remove_tree(const std::string& path) {
  std::error_code ignored;
  std::filesystem::remove_all(path, ignored);
}

TqdProcess::TqdProcess(TqdOptions options) : options_(std::move(options)) {
  if (options_.dir.empty()) {
    dir_ = make_temp_dir();
    own_dir_ = true;
  } else {
    dir_ = options_.dir;
  }
  std::string config_path = dir_ + "/config.yaml";
  {
    std::ofstream config(config_path);
    config << options_.config_yaml << "\n";
  }
  const std::string listen_port = std::to_string(options_.port);
  std::vector<std::string> args = {TQD_PATH,    "--config",   config_path,   "--port",
                                   listen_port, "--data-dir", dir_ + "/data"};
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
  auto [pid, fd] = spawn(args, SpawnOptions{options_.open_files});
  pid_ = pid;
  reader_ = std::thread([this, fd = fd] { read_stderr(fd); });

  // "listening on <address>" (plaintext) comes before "listening for TLS
  // on <address>", in one go: when either is logged, the first is there.
  if (!wait_for_log("listening ", 15'000)) {
    std::string log;
    for (const auto& l : log_lines()) log += l + "\n";
    stop(SIGKILL);
    throw std::runtime_error("tqd did not start:\n" + log);
  }
  port_ = logged_port("listening on ");
}

uint16_t TqdProcess::logged_port(const std::string& marker) {
  for (const auto& line : log_lines()) {
    // "... info  listening on 127.0.0.1:41234": the address ends the line.
    size_t at = line.find(marker);
    size_t colon = line.rfind(':');
    if (at == std::string::npos || colon == std::string::npos || colon + 1 >= line.size()) continue;
    std::string port = line.substr(colon + 1);
    if (port.find_first_not_of("0123456789") != std::string::npos) continue;
    return static_cast<uint16_t>(std::stoi(port));
  }
  return 0;
}

uint16_t TqdProcess::tls_port() {
  const std::string marker = "listening for TLS on ";
  if (!wait_for_log(marker, 15'000)) return 0;
  return logged_port(marker);
}

TqdProcess::~TqdProcess() {
  if (pid_ > 0) stop(SIGKILL);
  if (reader_.joinable()) reader_.join();
  if (own_dir_) remove_tree(dir_);
}

void TqdProcess::read_stderr(int fd) {
  std::string partial;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    partial.append(buf, static_cast<size_t>(n));
    size_t nl;
    while ((nl = partial.find('\n')) != std::string::npos) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.push_back(partial.substr(0, nl));
      partial.erase(0, nl + 1);
      changed_.notify_all();
    }
  }
  close(fd);
  std::lock_guard<std::mutex> lock(mu_);
  if (!partial.empty()) lines_.push_back(partial);
  stderr_closed_ = true;
  changed_.notify_all();
}

bool TqdProcess::wait_for_log(const std::string& needle, int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  auto found = [&] {
    for (const auto& line : lines_) {
      if (line.find(needle) != std::string::npos) return true;
    }
    return false;
  };
  changed_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                    [&] { return found() || stderr_closed_; });
  return found();
}

std::vector<std::string> TqdProcess::log_lines() {
  std::lock_guard<std::mutex> lock(mu_);
  return lines_;
}

client::Client TqdProcess::client(int timeout_ms) const {
  client::Options options;
  options.port = port_;
  options.timeout_ms = timeout_ms;
  auto c = client::Client::connect(options);
  if (!c) throw std::runtime_error("connect failed: " + c.error().to_string());
  return std::move(c).value();
}

client::LineSocket TqdProcess::socket(int timeout_ms) const {
  auto s = client::LineSocket::connect("127.0.0.1", port_, timeout_ms);
  if (!s) throw std::runtime_error("connect failed: " + s.error().to_string());
  return std::move(s).value();
}

int TqdProcess::stop(int signum, int timeout_ms) {
  if (pid_ <= 0) return -1;
  kill(pid_, signum);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  int status = 0;
  for (;;) {
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) break;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      pid_ = -1;
      return -1;
    }
    // Waiting for a child to exit has no event to block on without signals;
    // a short poll interval bounded by the deadline.
    usleep(2000);
  }
  pid_ = -1;
  if (reader_.joinable()) reader_.join();
  return decode_status(status);
}

bool stop_and_wait(pid_t pid) {
  if (::kill(pid, SIGSTOP) != 0) return false;
  for (int i = 0; i < 500; ++i) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string all((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const size_t after_name = all.rfind(')');  // the name may hold spaces
    if (after_name != std::string::npos && all.size() > after_name + 2 &&
        (all[after_name + 2] == 'T' || all[after_name + 2] == 't')) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

uint64_t proc_status_kib(pid_t pid, const std::string& figure) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  const std::string prefix = figure + ":";
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(prefix, 0) == 0) return std::stoull(line.substr(prefix.size()));
  }
  return 0;
}

int connect_raw(uint16_t port, int receive_buffer) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = (receive_buffer == 0 || ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer,
                                                       sizeof receive_buffer) == 0) &&
                  ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  if (!ok) ::close(fd);
  return ok ? fd : -1;
}

LoopbackSocket bind_loopback_socket() {
  LoopbackSocket bound;
  bound.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (bound.fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(bound.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(bound.fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string why = std::strerror(errno);
    ::close(bound.fd);
    throw std::runtime_error("bind to 127.0.0.1: " + why);
  }
  bound.port = ntohs(addr.sin_port);
  return bound;
}

namespace {

std::pair<int, std::string> run_tqd_to_exit(const std::vector<std::string>& args,
                                            std::chrono::milliseconds limit,
                                            const SpawnOptions& options) {
  std::vector<std::string> full = {TQD_PATH};
  full.insert(full.end(), args.begin(), args.end());
  auto [pid, fd] = spawn(full, options);
  std::string err;
  char buf[4096];
  const auto deadline = std::chrono::steady_clock::now() + limit;
  bool killed = false;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (!killed && (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) == 0)) {
      kill(pid, SIGKILL);  // hung: its stderr closes when it dies, and read() sees the end
      killed = true;
    }
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      err.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  close(fd);
  int status = 0;
  waitpid(pid, &status, 0);
  return {decode_status(status), err};
}

}  // namespace

std::pair<int, std::string> run_tqd(const std::vector<std::string>& args,
                                    std::chrono::milliseconds limit) {
  return run_tqd_to_exit(args, limit, SpawnOptions{});
}

std::pair<int, std::string> run_tqd_under_journal(const std::vector<std::string>& args) {
  SpawnOptions options;
  options.journal = true;
  return run_tqd_to_exit(args, std::chrono::seconds(30), options);
}

std::pair<int, std::string> run_tqd_without_bind_right(const std::vector<std::string>& args) {
  SpawnOptions options;
  options.no_bind_right = true;
  return run_tqd_to_exit(args, std::chrono::seconds(30), options);
}

}  // namespace tq::testing
