#include "server/listen_address.h"

#include <netinet/in.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace tq::server {

AddressList resolve(const ListenAddress& address, std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const int rc =
      getaddrinfo(address.host.c_str(), std::to_string(address.port).c_str(), &hints, &found);
  if (rc != 0) {
    *error = "cannot resolve " + address.key + " '" + address.host + "': " + gai_strerror(rc);
    return AddressList(nullptr, freeaddrinfo);
  }
  return AddressList(found, freeaddrinfo);
}

namespace {

// A socket bound to `address` and listening, as libuv binds (SO_REUSEADDR,
// so only a socket listening there, not one in TIME_WAIT, makes it fail);
// -1 with *error set, and *uv_error to libuv's code of the failure (0 for
// a name that does not resolve).
int bind_probe(const ListenAddress& address, std::string* error, int* uv_error) {
  *uv_error = 0;
  AddressList found = resolve(address, error);
  if (!found) return -1;
  int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int err = fd < 0 ? errno : 0;
  if (fd >= 0) {
    const int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (::bind(fd, found->ai_addr, found->ai_addrlen) != 0 || ::listen(fd, 1) != 0) {
      err = errno;
      ::close(fd);
      fd = -1;
    }
  }
  if (err != 0) {
    *uv_error = uv_translate_sys_error(err);
    *error = cannot_listen(address, *uv_error);
  }
  return fd;
}

}  // namespace

bool check_address(const ListenAddress& address, std::string* error) {
  return check_addresses({address}, error);
}

bool check_addresses(const std::vector<ListenAddress>& addresses, std::string* error,
                     int* uv_error) {
  std::vector<int> bound;
  bool ok = true;
  int failed_with = 0;
  for (const ListenAddress& address : addresses) {
    const int fd = bind_probe(address, error, &failed_with);
    if (fd < 0) {
      ok = false;
      break;
    }
    bound.push_back(fd);  // kept until the others are bound: two that clash fail
  }
  for (int fd : bound) ::close(fd);
  if (uv_error != nullptr) *uv_error = failed_with;
  return ok;
}

namespace {

bool is_wildcard(const sockaddr* address) {
  if (address->sa_family == AF_INET6) {
    const in6_addr& ip = reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr;
    return IN6_IS_ADDR_UNSPECIFIED(&ip);
  }
  return reinterpret_cast<const sockaddr_in*>(address)->sin_addr.s_addr == htonl(INADDR_ANY);
}

// Whether `wildcard` (0.0.0.0 or ::) takes the port on `other`'s address:
// 0.0.0.0 on every IPv4 one; :: on every one, as libuv binds it dual-stack
// (IPV6_V6ONLY off).
bool covers(const addrinfo& wildcard, const addrinfo& other) {
  return is_wildcard(wildcard.ai_addr) &&
         (wildcard.ai_family == AF_INET6 || other.ai_family == AF_INET);
}

// Whether binding both would fail: the same port (not 0, which the kernel
// picks afresh for each) on the same address, or on one a wildcard covers.
bool clash(const addrinfo& a, const addrinfo& b) {
  const auto port = [](const addrinfo& x) {
    sockaddr_storage s{};
    std::memcpy(&s, x.ai_addr, std::min<size_t>(x.ai_addrlen, sizeof s));
    return port_of(s);
  };
  if (port(a) == 0 || port(a) != port(b)) return false;
  if (covers(a, b) || covers(b, a)) return true;
  return a.ai_addrlen == b.ai_addrlen && std::memcmp(a.ai_addr, b.ai_addr, a.ai_addrlen) == 0;
}

}  // namespace

bool addresses_apart(const std::vector<ListenAddress>& addresses, std::string* error,
                     bool* clashed) {
  std::vector<AddressList> found;
  for (const ListenAddress& address : addresses) {
    found.push_back(resolve(address, error));
    if (!found.back()) return false;
    for (size_t i = 0; i + 1 < found.size(); ++i) {
      if (clash(*found[i], *found.back())) {
        const std::string& other = addresses[i].purpose;
        *error = cannot_listen(address, UV_EADDRINUSE) + ": the " +
                 (other.empty() ? std::string("protocol's") : other) +
                 " listener is on that port too; give them different ports";
        if (clashed != nullptr) *clashed = true;
        return false;
      }
    }
  }
  return true;
}

std::string cannot_listen(const ListenAddress& address, int uv_error) {
  std::string text = "cannot listen";
  if (!address.purpose.empty()) text += " for " + address.purpose;
  text += " on " + address.host + ":" + std::to_string(address.port) + ": " + uv_strerror(uv_error);
  // The kernel's word alone does not say which right is missing.
  if (uv_error == UV_EACCES) {
    text +=
        " (a port below net.ipv4.ip_unprivileged_port_start, 1024 by default, needs the "
        "CAP_NET_BIND_SERVICE capability: scripts/tqd.service says how to grant it; or choose a "
        "port from 1024 up)";
  }
  return text;
}

std::string host_of(const sockaddr_storage& address) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (address.ss_family == AF_INET6) {
    uv_ip6_name(reinterpret_cast<const sockaddr_in6*>(&address), host, sizeof host);
  } else {
    uv_ip4_name(reinterpret_cast<const sockaddr_in*>(&address), host, sizeof host);
  }
  return host;
}

std::string describe_address(const sockaddr_storage& address) {
  const std::string port = std::to_string(port_of(address));
  if (address.ss_family == AF_INET6) return "[" + host_of(address) + "]:" + port;
  return host_of(address) + ":" + port;
}

std::string throttle_address(const sockaddr_storage& address) {
  if (address.ss_family != AF_INET6) return host_of(address);
  sockaddr_storage copy = address;
  auto& v6 = *reinterpret_cast<sockaddr_in6*>(&copy);
  if (IN6_IS_ADDR_V4MAPPED(&v6.sin6_addr)) {
    sockaddr_storage v4_storage{};
    auto& v4 = *reinterpret_cast<sockaddr_in*>(&v4_storage);
    v4.sin_family = AF_INET;
    std::memcpy(&v4.sin_addr, &v6.sin6_addr.s6_addr[12], sizeof v4.sin_addr);
    return host_of(v4_storage);
  }
  std::memset(&v6.sin6_addr.s6_addr[8], 0, 8);  // the interface identifier
  return host_of(copy) + "/64";
}

int port_of(const sockaddr_storage& address) {
  if (address.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&address)->sin6_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in*>(&address)->sin_port);
}

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "::1" || host == "localhost";
}

}  // namespace tq::server
