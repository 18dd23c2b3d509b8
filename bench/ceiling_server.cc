// tq-ceiling: the least a server can do and still pass for tq in front of
// tq-bench. It keeps no queues: every line gets its reply at once (ENQUEUE
// "OK <id>", DEQUEUE "OK <id> <payload>", ACK "OK acked <id>", STATS the
// empty listing "OK 0", anything else "OK <id>"). What it does do is what any single-threaded
// server must: one epoll_wait per turn, one read per readable socket, one write per socket with
// replies, and, at the chosen durability, one write of the turn's requests to a file (log) and one
// fdatasync before the replies go (fsync: group commit on the loop itself, the cheapest a durable
// reply can be).
//
// So what tq-bench measures against it is the ceiling of this machine and
// client for that workload: no server on the same design goes faster. When
// the ceiling is less than twice a peer's rate, no server can be twice as
// fast as that peer here (bench/compare.sh reports the ratio).
//
// Not a server to use: it loses everything and answers nonsense to all but
// the three requests tq-bench sends.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench/ceiling_options.h"

namespace {

enum class Durability { kNone, kLog, kFsync };

// The request log wraps around in a file of this size, zero-filled (written,
// not only fallocated) before the first request, so fdatasync never has to
// allocate blocks, change the file's size or convert fallocate's "unwritten"
// extents: data only, the cheapest sync there is (tqd zero-fills ahead too,
// wal/log_writer.h).
constexpr off_t kLogBytes = 64 << 20;

bool zero_fill(int fd) {
  const std::string zeros(1 << 20, '\0');
  for (off_t at = 0; at < kLogBytes; at += static_cast<off_t>(zeros.size())) {
    if (::pwrite(fd, zeros.data(), zeros.size(), at) != static_cast<ssize_t>(zeros.size())) {
      return false;
    }
  }
  return ::fsync(fd) == 0;
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

struct Client {
  explicit Client(int socket) : fd(socket) {}
  Fd fd;
  std::string in;   // a partial line from the last read
  std::string out;  // replies not yet written
  bool want_write = false;
  bool closed = false;
};

class CeilingServer {
 public:
  CeilingServer(int listener, int epoll, int log, Durability durability, size_t payload_bytes)
      : listener_(listener),
        epoll_(epoll),
        log_(log),
        durability_(durability),
        payload_(payload_bytes, 'x') {}

  [[noreturn]] void run() {
    std::vector<epoll_event> events(256);
    for (;;) {
      int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), -1);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) die("epoll_wait");
      for (int i = 0; i < n; ++i) serve(events[i]);
      commit();
      for (Client* c : replied_) flush(*c);
      replied_.clear();
      for (int fd : closed_) clients_.erase(fd);
      closed_.clear();
    }
  }

  void watch(int fd, uint32_t events, int op) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (::epoll_ctl(epoll_.get(), op, fd, &ev) != 0) die("epoll_ctl");
  }

 private:
  [[noreturn]] static void die(const char* what) {
    std::fprintf(stderr, "tq-ceiling: %s: %s\n", what, std::strerror(errno));
    std::exit(1);
  }

  void serve(const epoll_event& ev) {
    if (ev.data.fd == listener_) {
      accept_all();
      return;
    }
    auto it = clients_.find(ev.data.fd);
    if (it == clients_.end()) return;
    Client& c = *it->second;
    if (ev.events & EPOLLOUT) flush(c);
    if (!c.closed && (ev.events & (EPOLLIN | EPOLLHUP | EPOLLERR))) read_from(c);
  }

  void accept_all() {
    for (;;) {
      int fd = ::accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;  // EAGAIN, or a connection that went away
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      clients_[fd] = std::make_unique<Client>(fd);
      watch(fd, EPOLLIN, EPOLL_CTL_ADD);
    }
  }

  void read_from(Client& c) {
    char buf[64 * 1024];
    ssize_t got = ::read(c.fd.get(), buf, sizeof buf);
    if (got < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (got <= 0) {
      close_later(c);
      return;
    }
    c.in.append(buf, static_cast<size_t>(got));
    size_t start = 0;
    const size_t before = c.out.size();
    for (size_t nl; (nl = c.in.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string_view line(c.in.data() + start, nl - start);
      if (durability_ != Durability::kNone) pending_log_.append(c.in, start, nl + 1 - start);
      answer(line, c.out);
    }
    c.in.erase(0, start);
    if (c.out.size() > before && !c.want_write) replied_.push_back(&c);
  }

  // Appended straight to `out`, with no string made per request: what the
  // ceiling spends is what it measures.
  void answer(std::string_view line, std::string& out) {
    if (line.rfind("STATS", 0) == 0) {
      out += "OK 0\n";  // an empty listing: tq-bench asks before and after a run
      return;
    }
    const bool ack = line.rfind("ACK", 0) == 0;
    out += ack ? "OK acked " : "OK ";
    char id[20];
    out.append(id, std::to_chars(id, id + sizeof id, ++next_id_).ptr);
    if (line.rfind("DEQUEUE", 0) == 0) {
      out += ' ';
      out += payload_;
    }
    out += '\n';
  }

  // The turn's requests reach the file (and the disk, under fsync) before
  // any of their replies is written.
  void commit() {
    if (pending_log_.empty()) return;
    if (log_offset_ + static_cast<off_t>(pending_log_.size()) > kLogBytes) log_offset_ = 0;
    ssize_t wrote = ::pwrite(log_.get(), pending_log_.data(), pending_log_.size(), log_offset_);
    if (wrote != static_cast<ssize_t>(pending_log_.size())) die("write to the log");
    log_offset_ += wrote;
    pending_log_.clear();
    if (durability_ == Durability::kFsync && ::fdatasync(log_.get()) != 0) die("fdatasync");
  }

  void flush(Client& c) {
    if (c.closed) return;
    while (!c.out.empty()) {
      ssize_t n = ::write(c.fd.get(), c.out.data(), c.out.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      if (n < 0) {
        close_later(c);
        return;
      }
      c.out.erase(0, static_cast<size_t>(n));
    }
    const bool want = !c.out.empty();
    if (want != c.want_write) {
      c.want_write = want;
      watch(c.fd.get(), want ? EPOLLIN | EPOLLOUT : EPOLLIN, EPOLL_CTL_MOD);
    }
  }

  void close_later(Client& c) {
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, c.fd.get(), nullptr);
    c.out.clear();
    c.closed = true;
    closed_.push_back(c.fd.get());
  }

  const int listener_;
  Fd epoll_;
  Fd log_;
  const Durability durability_;
  const std::string payload_;
  std::unordered_map<int, std::unique_ptr<Client>> clients_;
  std::vector<Client*> replied_;  // clients with replies to write this turn
  std::vector<int> closed_;
  std::string pending_log_;
  off_t log_offset_ = 0;
  uint64_t next_id_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  int exit_code = 0;
  const std::optional<CeilingOptions> options = parse_ceiling_options(argc, argv, &exit_code);
  if (!options) return exit_code;
  const uint16_t port = options->port;
  const std::string& durability_name = options->durability;
  const std::string& log_path = options->log_path;
  const size_t payload_bytes = options->payload_bytes;

  const Durability durability = durability_name == "fsync" ? Durability::kFsync
                                : durability_name == "log" ? Durability::kLog
                                                           : Durability::kNone;
  if (durability != Durability::kNone && log_path.empty()) {
    std::fprintf(stderr, "tq-ceiling: --durability %s needs --log-file\n", durability_name.c_str());
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);

  int log = -1;
  if (durability != Durability::kNone) {
    log = ::open(log_path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (log < 0 || !zero_fill(log)) {
      std::fprintf(stderr, "tq-ceiling: %s: cannot make a %lld-byte log\n", log_path.c_str(),
                   static_cast<long long>(kLogBytes));
      return 1;
    }
  }

  Fd listener(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  int one = 1;
  ::setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener.get(), 1024) != 0 ||
      ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::fprintf(stderr, "tq-ceiling: listen on 127.0.0.1:%u: %s\n", port, std::strerror(errno));
    return 1;
  }
  // The same line tqd logs, so scripts find the port the same way.
  std::fprintf(stderr, "listening on 127.0.0.1:%u\n", ntohs(addr.sin_port));

  CeilingServer server(listener.get(), ::epoll_create1(EPOLL_CLOEXEC), log, durability,
                       payload_bytes);
  server.watch(listener.get(), EPOLLIN, EPOLL_CTL_ADD);
  server.run();
}
