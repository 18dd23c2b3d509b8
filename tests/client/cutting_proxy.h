// A TCP proxy between a client under test and tqd that breaks connections on
// purpose, at exactly the moment a test needs: after tqd has received (and
// answered) a request but before the answer reaches the client, the one case
// where a client cannot know whether its request was carried out. It also
// drops every connection at once (as a restarting server does) and can be
// pointed at another tqd (the restarted one, on its new port), and can pass
// tqd's replies on as a tqd from before lease tokens would have sent them.
//
// Invariant: bytes pass through unchanged and in order, except on the one
// connection being cut, which is closed without passing on anything more,
// the one request refused in tqd's place, and the lease tokens
// hide_lease_tokens() takes out.
// One thread owns every socket; the test's calls reach it through a pipe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace tq::testing {

class CuttingProxy {
 public:
  explicit CuttingProxy(uint16_t upstream_port);
  ~CuttingProxy();
  CuttingProxy(const CuttingProxy&) = delete;
  CuttingProxy& operator=(const CuttingProxy&) = delete;

  uint16_t port() const { return port_; }
  // New connections go to this port from now on.
  void set_upstream(uint16_t port);
  // The next request any client sends is passed to tqd; when tqd's reply
  // begins to arrive, that client's connection is closed instead.
  void cut_after_next_request();
  // The next request any client sends is not passed to tqd: the client gets
  // `line` instead and its connection is closed, as a stopping tqd answers
  // a request it read and did not run (ERROR SHUTDOWN).
  void refuse_next_request(std::string line);
  // Closes every connection now, and returns when they are closed.
  void drop_all();
  // From now on, " lease=<t>" is taken out of each job header tqd sends
  // (a line that begins "JOB "), so the client sees a tqd older than lease
  // tokens. tqd's bytes are then passed on a whole line at a time; a
  // payload line that begins "JOB " would be changed too (tests send none).
  void hide_lease_tokens();
  int connections_accepted();
  int cuts_done();

 private:
  void loop();
  void wake();

  int listen_fd_ = -1;
  int wake_read_ = -1;
  int wake_write_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;

  std::mutex mu_;
  std::condition_variable changed_;
  uint16_t upstream_port_;
  bool cut_armed_ = false;
  std::string refusal_;  // refuse_next_request's line; empty: none armed
  bool hide_tokens_ = false;
  int drop_requests_ = 0;
  int drops_done_ = 0;
  int accepted_ = 0;
  int cuts_done_ = 0;
  bool stopping_ = false;
};

}  // namespace tq::testing
