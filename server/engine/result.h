// Errors as values at the engine's boundary. The server turns an Error into
// "ERROR <CODE> <message>"; the message is written for the person reading it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/expected.h"

namespace tq::engine {

enum class Errc : uint8_t {
  kBadArgument,  // a name or value the engine cannot accept
  kNoQueue,      // no queue by that name
  kExists,       // a queue by that name exists already
  kNotFound,     // no job by that id (in that queue)
  kNotLeased,    // the job exists but is not leased
  kEmpty,        // nothing ready to deliver
  kLimit,        // a count limit (queues) is reached
  kFull,         // a size limit (jobs, bytes) is reached
};

struct Error {
  Errc code;
  std::string message;
};

template <typename T>
using Result = Expected<T, Error>;
using Status = Result<Ok>;
using tq::Ok;

inline Error make_error(Errc code, std::string message) { return Error{code, std::move(message)}; }

// Client input (a name, a key, a value) as a message shows it: in single
// quotes, cut at 200 bytes, and bytes a terminal or a line-based client
// would choke on (control bytes, ESC above all, and non-ASCII) as \xNN.
// Every message that echoes what a client sent goes through this.
std::string quoted(std::string_view text);

}  // namespace tq::engine
