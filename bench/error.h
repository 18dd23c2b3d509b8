// How tq-bench passes failures around: as values (base/expected.h), each a
// message that main() prints once. Nothing in tq-bench throws.
#pragma once

#include <string>

#include "base/expected.h"

namespace tq::bench {

struct Error {
  std::string message;
};

template <typename T>
using Result = Expected<T, Error>;

// errno as text, for messages: "connect 127.0.0.1:80: Connection refused".
std::string errno_text(int err);

}  // namespace tq::bench
