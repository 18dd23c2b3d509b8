// The metrics endpoint (metrics.listen): a minimal HTTP/1.1 server on the
// server's libuv loop that Prometheus scrapes. GET /metrics (and GET /)
// answers the body `render` starts, once it is made (a step a turn of the
// loop: a body of thousands of queues is tens of MB); GET (or HEAD) /healthz answers 200
// "ok" or 503 with what `health` says is wrong, for load balancers' and
// Kubernetes' probes, which send no token; another path is 404, another method
// 405, a malformed request 400, a request over kMaxRequestBytes 431, a
// scrape without the bearer token (metrics.token, when set) 401. One
// request per connection: every answer says Connection: close, and the
// connection closes once it is written.
//
// It must not cost the queue server anything when misused: nothing blocks,
// a request is read up to kMaxRequestBytes, at most kMaxClients connections
// are open (one more closes the oldest that has not sent its request yet,
// or, when all of them have, is closed at once), and each has deadlines:
// the whole request within kRequestTimeoutMs of connecting, the answer read
// within kAnswerTimeoutMs; after that the connection is closed. After the answer
// is written the sending side is shut down and whatever the client still
// sends is read and dropped until it closes (at most kLingerMs), so a
// client that sent more than was read gets its answer rather than a reset.
//
// Lifetime (as Connection's): the listener and each client embed their
// libuv handles and cannot be copied or moved; close() is safe to call
// twice; a client's memory is freed in its close callback. The owner calls
// close() and runs the loop until the callbacks have run before destroying
// the listener.
#pragma once

#include <uv.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "server/listen_address.h"

namespace tq::server {

// A scrape's body, made in steps on the loop, a turn of the loop each, so
// that a big one does not hold the other clients: step() adds some and
// says whether it is whole; finish() hands it over in pieces, which are
// written as they are (a body of 80 MB is not copied into one string).
class ScrapeBody {
 public:
  virtual ~ScrapeBody() = default;
  virtual bool step() = 0;
  virtual std::vector<std::string> finish() = 0;
};

class MetricsListener {
 public:
  static constexpr size_t kMaxRequestBytes = 8 << 10;
  static constexpr size_t kMaxClients = 16;
  static constexpr uint64_t kRequestTimeoutMs = 5'000;
  static constexpr uint64_t kAnswerTimeoutMs = 10'000;
  static constexpr uint64_t kLingerMs = 2'000;

  // `render` starts the body of a 200 answer to a scrape, made in steps on
  // the loop (one scrape's step a turn, the oldest first). `token` not empty: a scrape must send
  // `Authorization: Bearer <token>` (401 otherwise). `health` says what keeps the server from doing
  // its work, empty when nothing does: one line, that anyone who reaches the port may read.
  MetricsListener(uv_loop_t* loop, ListenAddress address, std::string token,
                  std::function<std::unique_ptr<ScrapeBody>()> render,
                  std::function<std::string()> health);
  MetricsListener(const MetricsListener&) = delete;
  MetricsListener& operator=(const MetricsListener&) = delete;
  MetricsListener(MetricsListener&&) = delete;
  MetricsListener& operator=(MetricsListener&&) = delete;
  ~MetricsListener();

  // A reload (SIGHUP): scrapes from now on must send this token; empty: none
  // (warned of, as at the start, when the endpoint is not on loopback).
  void set_token(std::string token);
  // Binds and listens, and logs where; false with a one-line reason in *error.
  bool listen(std::string* error);
  int bound_port() const { return bound_port_; }

  // Stops accepting and closes every connection now. Safe to call twice.
  void close();

 private:
  class Client;

  static void on_connection(uv_stream_t* listener, int status);
  static void on_sweep(uv_timer_t* timer);
  static void on_step(uv_idle_t* idle);
  void want_steps(uint64_t id);
  void warn_if_open_to_all() const;
  void accept_one();
  void remove(uint64_t id);  // from a client's close callback

  uv_loop_t* loop_;
  const ListenAddress address_;
  std::string token_;
  const std::function<std::unique_ptr<ScrapeBody>()> render_;
  const std::function<std::string()> health_;
  uv_tcp_t listener_{};
  uv_timer_t sweeper_{};  // runs while clients are open: enforces their deadlines
  uv_idle_t stepper_{};   // runs while scrapes' bodies are being made
  std::vector<uint64_t> rendering_;  // their clients, oldest first (some may be gone)
  std::unordered_map<uint64_t, std::unique_ptr<Client>> clients_;
  std::array<char, 4096> read_buffer_{};  // shared: the client copies what it keeps
  uint64_t next_id_ = 1;
  int bound_port_ = 0;
  bool closed_ = false;
  size_t handles_open_ = 0;  // listener_, sweeper_ and stepper_, until their close callbacks
};

}  // namespace tq::server
