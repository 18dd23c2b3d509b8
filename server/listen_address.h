// An address a listener binds, as the configuration gives it, and what the
// two listeners (the protocol's, server.host and server.port, and the
// metrics endpoint's, metrics.listen) share to bind one: the lookup, the
// check made before the log is replayed, and the messages. Start-up only:
// the lookup blocks, which cannot stall a client before the loop runs.
#pragma once

#include <netdb.h>
#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tq::server {

struct ListenAddress {
  std::string host;
  uint16_t port = 0;
  std::string key;      // the setting that names the host, in messages: "server.host"
  std::string purpose;  // in "cannot listen for <purpose> on ..."; empty: the protocol's
};

using AddressList = std::unique_ptr<addrinfo, decltype(&freeaddrinfo)>;

// The address to bind, or null with *error set.
AddressList resolve(const ListenAddress& address, std::string* error);

// Whether a listener could bind `address` now: as libuv binds, with
// SO_REUSEADDR, so only a socket listening there (not one in TIME_WAIT)
// makes it fail. False with a one-line reason in *error.
bool check_address(const ListenAddress& address, std::string* error);
// The same for several addresses at once: each is bound while the ones
// before it still are, so two that clash (metrics.listen on server.port)
// fail too. *uv_error (when given) is libuv's code of the bind that failed,
// UV_EACCES for a privileged port, say; 0 when a name did not resolve.
bool check_addresses(const std::vector<ListenAddress>& addresses, std::string* error,
                     int* uv_error = nullptr);

// Without binding anything: whether each address resolves, and no two would
// take the same port (the same address, or one of them a wildcard such as
// 0.0.0.0 or ::). What `tqd --check-config` checks: it runs beside the tqd
// it checks for, which holds those ports, so a bind would always fail.
// *clashed (when given) tells two that clash from one that does not resolve.
bool addresses_apart(const std::vector<ListenAddress>& addresses, std::string* error,
                     bool* clashed = nullptr);

// "cannot listen on 127.0.0.1:8080: address already in use"; for a port
// it may not bind, also which right that takes.
std::string cannot_listen(const ListenAddress& address, int uv_error);

// "127.0.0.1", "::1": an address without its port.
std::string host_of(const sockaddr_storage& address);

// "127.0.0.1:8080", "[::1]:8080": a bound address, for the log.
std::string describe_address(const sockaddr_storage& address);

// What a client's wrong passwords are counted under (AuthThrottle): its
// IPv4 address, or the /64 of an IPv6 one ("2001:db8::/64"), since one host
// is given a whole /64 and could otherwise guess from each of its addresses.
// An IPv4-mapped address (a dual-stack listener) is its IPv4 one.
std::string throttle_address(const sockaddr_storage& address);

// The port a bound socket got (the kernel's pick when asked for 0).
int port_of(const sockaddr_storage& address);

// 127.0.0.1, ::1 or localhost: only this machine can connect.
bool is_loopback(const std::string& host);

}  // namespace tq::server
