// The C++ client library for tqd: one typed call per command, each returning
// a value or a client::Error that carries the server's ERROR code and
// message. No exceptions cross this API.
//
// A Client is one connection and is not thread-safe: use one per thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "client/line_socket.h"

namespace tq::client {

struct Options {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  int timeout_ms = 5000;  // connect, and each wait for a reply
};

struct Job {
  uint64_t id = 0;
  std::string payload;
};

using Fields = std::vector<std::pair<std::string, std::string>>;

// The value of `name` in a STATS-like listing; empty when absent.
std::string field(const Fields& fields, std::string_view name);

class Client {
 public:
  static Result<Client> connect(const Options& options);

  // CREATE; an existing queue is an error with code EXISTS.
  Status create(const std::string& queue);
  // ENQUEUE; returns the new job's id.
  Result<uint64_t> enqueue(const std::string& queue, const std::string& payload);
  // DEQUEUE; nullopt when no job is ready (the server's EMPTY).
  Result<std::optional<Job>> dequeue(const std::string& queue);
  Status ack(uint64_t id);
  Result<std::vector<std::string>> list();
  Result<Fields> stats(const std::string& queue = "");
  Status ping();

  // Sends one line and returns the text after "OK" of a one-line reply.
  Result<std::string> call(std::string_view line);
  // Sends one line and reads an "OK <n>" reply with its n lines.
  Result<std::vector<std::string>> call_lines(std::string_view line);

  LineSocket& socket() { return socket_; }
  const Options& options() const { return options_; }

 private:
  Client(LineSocket socket, Options options) : socket_(std::move(socket)), options_(std::move(options)) {}
  // Reads one reply line; an ERROR line becomes an Error of kind kServer.
  Result<std::string> read_ok_line();

  LineSocket socket_;
  Options options_;
};

}  // namespace tq::client
