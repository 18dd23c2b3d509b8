#include "tests/client/cutting_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tq::testing {
namespace {

sockaddr_in loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

bool write_all(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// One client connection and its connection to tqd.
struct Link {
  int client = -1;
  int upstream = -1;
  bool cut_pending = false;  // close when tqd's reply begins
  std::string held;          // tqd's bytes after its last whole line, when hiding tokens
};

// A job header line without its " lease=<t>"; any other line as it is.
std::string without_lease_token(std::string line) {
  if (line.rfind("JOB ", 0) != 0) return line;
  constexpr std::string_view kField = " lease=";
  const size_t at = line.find(kField);
  if (at == std::string::npos) return line;
  size_t end = at + kField.size();
  while (end < line.size() && std::isdigit(static_cast<unsigned char>(line[end])) != 0) ++end;
  line.erase(at, end - at);
  return line;
}

// Passes tqd's bytes on to the client; when hiding tokens, only whole lines,
// as a line's token may be split between two reads.
bool pass_to_client(Link& link, const char* data, size_t n, bool hide_tokens) {
  if (!hide_tokens) return write_all(link.client, data, n);
  link.held.append(data, n);
  std::string out;
  size_t start = 0;
  for (size_t end; (end = link.held.find('\n', start)) != std::string::npos; start = end + 1) {
    out += without_lease_token(link.held.substr(start, end + 1 - start));
  }
  link.held.erase(0, start);
  return write_all(link.client, out.data(), out.size());
}

void close_link(Link& link) {
  ::close(link.client);
  ::close(link.upstream);
  link.client = link.upstream = -1;
}

}  // namespace

CuttingProxy::CuttingProxy(uint16_t upstream_port) : upstream_port_(upstream_port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = loopback(0);
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 64) != 0) {
    throw std::runtime_error("proxy: cannot listen");
  }
  socklen_t len = sizeof addr;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error("proxy: pipe failed");
  wake_read_ = fds[0];
  wake_write_ = fds[1];
  thread_ = std::thread([this] { loop(); });
}

CuttingProxy::~CuttingProxy() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake();
  thread_.join();
  ::close(listen_fd_);
  ::close(wake_read_);
  ::close(wake_write_);
}

void CuttingProxy::wake() {
  char byte = 1;
  ssize_t ignored = ::write(wake_write_, &byte, 1);
  (void)ignored;
}

void CuttingProxy::set_upstream(uint16_t port) {
  std::lock_guard<std::mutex> lock(mu_);
  upstream_port_ = port;
}

void CuttingProxy::cut_after_next_request() {
  std::lock_guard<std::mutex> lock(mu_);
  cut_armed_ = true;
}

void CuttingProxy::refuse_next_request(std::string line) {
  std::lock_guard<std::mutex> lock(mu_);
  refusal_ = std::move(line);
}

void CuttingProxy::hide_lease_tokens() {
  std::lock_guard<std::mutex> lock(mu_);
  hide_tokens_ = true;
}

void CuttingProxy::drop_all() {
  std::unique_lock<std::mutex> lock(mu_);
  int target = ++drop_requests_;
  lock.unlock();
  wake();
  lock.lock();
  changed_.wait(lock, [&] { return drops_done_ >= target; });
}

int CuttingProxy::connections_accepted() {
  std::lock_guard<std::mutex> lock(mu_);
  return accepted_;
}

int CuttingProxy::cuts_done() {
  std::lock_guard<std::mutex> lock(mu_);
  return cuts_done_;
}

void CuttingProxy::loop() {
  std::vector<Link> links;
  char buf[64 << 10];
  for (;;) {
    std::vector<pollfd> fds = {{listen_fd_, POLLIN, 0}, {wake_read_, POLLIN, 0}};
    for (const Link& link : links) {
      fds.push_back({link.client, POLLIN, 0});
      fds.push_back({link.upstream, POLLIN, 0});
    }
    if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) return;

    if ((fds[1].revents & POLLIN) != 0) {
      while (::read(wake_read_, buf, sizeof buf) > 0) {
      }
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) {
        for (Link& link : links) close_link(link);
        return;
      }
      if (drops_done_ < drop_requests_) {
        for (Link& link : links) close_link(link);
        links.clear();
        drops_done_ = drop_requests_;
        changed_.notify_all();
        continue;
      }
    }

    for (size_t i = 0; i < links.size(); ++i) {
      Link& link = links[i];
      const pollfd& from_client = fds[2 + 2 * i];
      const pollfd& from_server = fds[3 + 2 * i];
      if (link.client >= 0 && (from_client.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        ssize_t n = ::recv(link.client, buf, sizeof buf, 0);
        std::string refusal;
        if (n > 0) {
          std::lock_guard<std::mutex> lock(mu_);
          refusal = std::exchange(refusal_, std::string());
        }
        if (!refusal.empty()) {
          write_all(link.client, refusal.data(), refusal.size());
          close_link(link);
          continue;
        }
        if (n <= 0 || !write_all(link.upstream, buf, static_cast<size_t>(n))) {
          close_link(link);
          continue;
        }
        std::lock_guard<std::mutex> lock(mu_);
        if (cut_armed_) {
          cut_armed_ = false;
          link.cut_pending = true;
        }
      }
      if (link.client >= 0 && (from_server.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        ssize_t n = ::recv(link.upstream, buf, sizeof buf, 0);
        bool hide_tokens;
        {
          std::lock_guard<std::mutex> lock(mu_);
          hide_tokens = hide_tokens_;
        }
        if (n <= 0 || link.cut_pending ||
            !pass_to_client(link, buf, static_cast<size_t>(n), hide_tokens)) {
          if (link.cut_pending) {
            std::lock_guard<std::mutex> lock(mu_);
            ++cuts_done_;
          }
          close_link(link);
        }
      }
    }
    std::erase_if(links, [](const Link& link) { return link.client < 0; });

    if ((fds[0].revents & POLLIN) != 0) {
      int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      uint16_t upstream_port;
      {
        std::lock_guard<std::mutex> lock(mu_);
        upstream_port = upstream_port_;
        ++accepted_;
      }
      int upstream = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in addr = loopback(upstream_port);
      if (upstream < 0 ||
          ::connect(upstream, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        // No server behind us: the client sees its connection closed at once.
        ::close(client);
        if (upstream >= 0) ::close(upstream);
        continue;
      }
      links.push_back({client, upstream, false, {}});
    }
  }
}

}  // namespace tq::testing
