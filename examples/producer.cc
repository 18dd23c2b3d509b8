// producer: puts messages into a tq queue and prints their ids. An example of
// the client library (client/client.h), meant to be read.
//
//   producer emails "Send welcome email"           one job
//   producer emails "Digest" --count 100 --rate 20  100 jobs, 20 a second
//
// What it shows: connecting, creating the queue if it is missing, enqueueing,
// and errors as values. It asks the client to reconnect after a dropped
// connection; the client then sends every job with a dedup key, so a job
// whose reply was lost is retried without being stored twice.
//
// Exit status: 0 when every job was stored, 1 when the server refused one
// (the error is printed), 2 when the server cannot be reached.
#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "client/client.h"

int main(int argc, char** argv) {
  CLI::App app{"Enqueue messages into a tq queue and print their ids.", "producer"};
  std::string queue;
  std::vector<std::string> words;
  int count = 1;
  double rate = 0;
  tq::client::Options options;  // 127.0.0.1:8080 unless told otherwise
  app.add_option("queue", queue, "the queue to put the jobs in")->required();
  app.add_option("message", words, "the message (its words are joined with spaces)")->required();
  app.add_option("--count", count, "how many jobs; each gets ' #<n>' after the message")
      ->check(CLI::PositiveNumber);
  app.add_option("--rate", rate, "jobs per second (default: as fast as the server takes them)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--host", options.host, "server address")->capture_default_str();
  app.add_option("--port", options.port, "server port")->capture_default_str();
  app.add_option("--password", options.password, "sent with AUTH when connecting")
      ->envname("TQ_PASSWORD");
  CLI11_PARSE(app, argc, argv);

  std::string message;
  for (const auto& word : words) message += (message.empty() ? "" : " ") + word;

  // Reconnect after a dropped connection (a restarting server, say). Retried
  // enqueues carry a dedup key, so none can be stored twice.
  options.reconnect.attempts = 5;
  auto client = tq::client::Client::connect(options);
  if (!client) {
    std::cerr << "producer: " << client.error().to_string() << "\n";
    return 2;
  }

  // tqd does not create queues on ENQUEUE unless configured to (a typo would
  // fill a queue nobody reads), so create it; EXISTS just means it is there.
  auto created = client->create(queue);
  if (!created && !created.error().is(tq::protocol::ErrorCode::kExists)) {
    std::cerr << "producer: cannot create " << queue << ": " << created.error().to_string() << "\n";
    return created.error().kind == tq::client::ErrorKind::kServer ? 1 : 2;
  }

  const auto start = std::chrono::steady_clock::now();
  for (int n = 1; n <= count; ++n) {
    if (rate > 0) {
      // Pace from the start, not from the last send, so the rate does not drift.
      std::this_thread::sleep_until(start + std::chrono::duration<double>((n - 1) / rate));
    }
    std::string payload = count == 1 ? message : message + " #" + std::to_string(n);
    auto id = client->enqueue(queue, payload);
    if (!id) {
      std::cerr << "producer: job " << n << " not stored: " << id.error().to_string() << "\n";
      return id.error().kind == tq::client::ErrorKind::kServer ? 1 : 2;
    }
    std::cout << "enqueued job " << *id << " to " << queue << ": " << payload << std::endl;
  }
  return 0;
}
