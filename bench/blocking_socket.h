// BlockingSocket: a plain TCP connection used outside the measured run: to
// create queues, to set up each load connection, to read tq's STATS and to
// poll a restarting tqd. Reads and writes wait at most a given time, so a
// silent server fails the benchmark with a message instead of hanging it.
// Once set up, a connection's descriptor is handed to the event loop with
// release(); the socket then owns nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bench/error.h"
#include "bench/protocol_adapter.h"

namespace tq::bench {

class BlockingSocket {
 public:
  using Millis = std::chrono::milliseconds;

  // Connects with TCP_NODELAY set; refused or timed-out connects are errors.
  static Result<BlockingSocket> connect(const std::string& host, uint16_t port,
                                        Millis timeout = Millis(5000));

  BlockingSocket(BlockingSocket&& other) noexcept;
  BlockingSocket& operator=(BlockingSocket&& other) noexcept;
  BlockingSocket(const BlockingSocket&) = delete;
  BlockingSocket& operator=(const BlockingSocket&) = delete;
  ~BlockingSocket();

  Result<Ok> send_all(std::string_view bytes, Millis timeout = Millis(5000));

  // One reply line without "\n" or "\r\n".
  Result<std::string> read_line(Millis timeout = Millis(5000));

  // Bytes received past the last line read; a setup exchange must leave none.
  size_t buffered() const { return buffer_.size(); }

  // Gives up the descriptor (the caller closes it) and leaves this empty.
  int release();

 private:
  explicit BlockingSocket(int fd) : fd_(fd) {}

  int fd_ = -1;
  std::string buffer_;
};

// Sends each step's command and checks that its one-line reply begins with an
// accepted prefix. All commands go out first (pipelined), then the replies
// are read in order.
Result<Ok> run_setup(BlockingSocket& socket, const std::vector<SetupStep>& steps);

}  // namespace tq::bench
