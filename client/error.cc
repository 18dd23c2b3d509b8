#include "client/error.h"

namespace tq::client {

Error make_error(ErrorKind kind, std::string message) {
  Error e;
  e.kind = kind;
  e.message = std::move(message);
  return e;
}

std::string Error::to_string() const {
  switch (kind) {
    case ErrorKind::kServer:
      return code + (message.empty() ? "" : " " + message);
    case ErrorKind::kConnect:
      return "cannot connect: " + message;
    case ErrorKind::kNetwork:
      return "connection lost: " + message;
    case ErrorKind::kTimeout:
      return "timed out: " + message;
    case ErrorKind::kProtocol:
      return "unexpected reply: " + message;
    case ErrorKind::kCancelled:
      return "cancelled: " + message;
    case ErrorKind::kBadArgument:
    case ErrorKind::kUnanswered:
      return "not sent: " + message;
  }
  return message;
}

}  // namespace tq::client
