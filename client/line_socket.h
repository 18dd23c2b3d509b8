// A blocking TCP connection to tqd that sends bytes and reads reply lines and
// bodies, each read bounded by a timeout. The typed Client is built on it;
// tests use it directly to send whatever bytes they like.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/expected.h"
#include "protocol/reply_reader.h"

namespace tq::client {

// Why a call failed. kServer carries the server's ERROR code and message.
enum class ErrorKind { kConnect, kNetwork, kTimeout, kProtocol, kServer };

struct Error {
  ErrorKind kind = ErrorKind::kNetwork;
  std::string code;     // the server's error code, e.g. "NOTFOUND" (kServer only)
  std::string message;  // for people

  bool is(protocol::ErrorCode c) const {
    return kind == ErrorKind::kServer && code == protocol::error_code_name(c);
  }
  // "NOTFOUND no job 7" for server errors, "timeout: ..." otherwise.
  std::string to_string() const;
};

template <typename T>
using Result = Expected<T, Error>;
using Status = Result<Ok>;
using tq::Ok;

class LineSocket {
 public:
  LineSocket() = default;
  ~LineSocket();
  LineSocket(const LineSocket&) = delete;
  LineSocket& operator=(const LineSocket&) = delete;
  LineSocket(LineSocket&& other) noexcept;
  LineSocket& operator=(LineSocket&& other) noexcept;

  static Result<LineSocket> connect(const std::string& host, uint16_t port, int timeout_ms);

  Status send(std::string_view bytes);
  Result<std::string> read_line();
  Result<std::string> read_body(size_t n);

  // Half-closes: the server sees EOF but may still answer.
  void shutdown_write();
  void close();
  bool is_open() const { return fd_ >= 0; }
  void set_timeout_ms(int ms) { timeout_ms_ = ms; }
  int timeout_ms() const { return timeout_ms_; }

 private:
  // Reads once from the socket into reader_; false with *error on failure.
  bool fill(Error* error);

  int fd_ = -1;
  int timeout_ms_ = 5000;
  protocol::ReplyReader reader_;
};

}  // namespace tq::client
