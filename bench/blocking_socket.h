// BlockingSocket: a plain TCP connection used outside the measured run: to
// create queues, to set up each load connection, to read tq's STATS and to
// poll a restarting tqd. Reads and writes wait at most a given time, so a
// silent server fails the benchmark with a message instead of hanging it.
// With a TlsTrust, connect() also does the TLS handshake, and every read and
// write goes through the session. Once set up, a connection's descriptor
// (and session) is handed to the event loop with release(); the socket then
// owns nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bench/error.h"
#include "bench/protocol_adapter.h"
#include "bench/tls_stream.h"

namespace tq::bench {

// What release() hands over: the descriptor, and the TLS session on it (null
// on a plaintext connection). The receiver closes the one and frees the other.
struct ReleasedSocket {
  int fd = -1;
  std::unique_ptr<TlsStream> tls;
};

class BlockingSocket {
 public:
  using Millis = std::chrono::milliseconds;

  // Connects with TCP_NODELAY set; refused or timed-out connects are errors.
  // With `tls` (else null), then does the TLS handshake within the same
  // timeout, checking the server's certificate against `tls` and `host`.
  static Result<BlockingSocket> connect(const std::string& host, uint16_t port, const TlsTrust* tls,
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

  // Gives up the descriptor and the session and leaves this empty.
  ReleasedSocket release();

 private:
  explicit BlockingSocket(int fd) : fd_(fd) {}

  int fd_ = -1;
  std::unique_ptr<TlsStream> tls_;  // null: plaintext
  std::string buffer_;
};

// Sends each step's command and checks that its one-line reply begins with an
// accepted prefix. All commands go out first (pipelined), then the replies
// are read in order.
Result<Ok> run_setup(BlockingSocket& socket, const std::vector<SetupStep>& steps);

}  // namespace tq::bench
