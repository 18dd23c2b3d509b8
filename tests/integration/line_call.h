// One request line out, one reply line back, over a raw socket: the step the
// integration tests that speak the protocol byte for byte share.
#pragma once

#include <doctest/doctest.h>

#include <string>

#include "client/line_socket.h"

namespace tq::testing {

inline std::string call(client::LineSocket& s, const std::string& line) {
  REQUIRE(s.send(line + "\n").ok());
  auto reply = s.read_line();
  REQUIRE(reply.ok());
  return *reply;
}

}  // namespace tq::testing
