// One request line out, one reply line back, over a raw socket: the step the
// integration tests that speak the protocol byte for byte share; and a STATS
// figure read the same way.
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "client/line_socket.h"
#include "server/queue_settings.h"

namespace tq::testing {

inline std::string call(client::LineSocket& s, const std::string& line) {
  REQUIRE(s.send(line + "\n").ok());
  auto reply = s.read_line();
  REQUIRE(reply.ok());
  return *reply;
}

// A CONFIG request ("CONFIG q", "CONFIG q ttl=1h") and its listing: one
// "<key> <value>" line per setting, then paused. The count comes from the
// server's list of settings, so a new setting changes no test.
inline std::vector<std::string> config_via(client::LineSocket& s, const std::string& request) {
  const size_t lines = server::queue_setting_keys().size() + 1;
  REQUIRE(call(s, request) == "OK " + std::to_string(lines));
  std::vector<std::string> settings;
  for (size_t i = 0; i < lines; ++i) {
    auto line = s.read_line();
    REQUIRE(line.ok());
    settings.push_back(*line);
  }
  return settings;
}

// A STATS figure (STATS <queue> with a queue) read on an open (and, if need
// be, authenticated) socket; empty when STATS has no such line.
inline std::string stat_via(client::LineSocket& s, const std::string& name,
                            const std::string& queue = "") {
  REQUIRE(s.send(queue.empty() ? "STATS\n" : "STATS " + queue + "\n").ok());
  auto head = s.read_line();
  REQUIRE(head.ok());
  REQUIRE(head->rfind("OK ", 0) == 0);
  std::string value;
  for (size_t i = 0, n = std::stoul(head->substr(3)); i < n; ++i) {
    auto line = s.read_line();
    REQUIRE(line.ok());
    if (line->rfind(name + " ", 0) == 0) value = line->substr(name.size() + 1);
  }
  return value;
}

// Polls STATS (or STATS <queue>) until the figure reads `value`, for about
// 5 s at most: how a test knows the server got somewhere (a worker parked,
// a timer fired) before it goes on.
inline bool stat_reaches(client::LineSocket& s, const std::string& name, const std::string& value,
                         const std::string& queue = "") {
  for (int i = 0; i < 1000; ++i) {
    if (stat_via(s, name, queue) == value) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

}  // namespace tq::testing
