#include "bench/stall.h"

#include <atomic>
#include <chrono>
#include <optional>
#include <thread>

#include "bench/blocking_socket.h"
#include "bench/tq_stats.h"

namespace tq::bench {

namespace {

using Clock = std::chrono::steady_clock;

uint64_t nanos_since(Clock::time_point start) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
}

}  // namespace

Result<StallResult> run_stall(const Options& o) {
  std::shared_ptr<const TlsTrust> tls;
  if (!o.tls_ca.empty()) {
    auto loaded = TlsTrust::load(o.tls_ca);
    if (!loaded) return loaded.error();
    tls = std::move(*loaded);
  }
  auto asker = BlockingSocket::connect(o.host, o.port, tls.get());
  if (!asker) return asker.error();
  auto pinger = BlockingSocket::connect(o.host, o.port, tls.get());
  if (!pinger) return pinger.error();

  StallResult result;
  std::atomic<bool> answered{false};
  std::optional<Error> command_failure;  // written by the command's thread only
  std::optional<Error> ping_failure;
  const Clock::time_point sent_at = Clock::now();
  std::thread command([&] {
    if (auto sent = asker->send_all(o.command + "\n"); !sent) {
      command_failure = sent.error();
    } else if (auto reply = asker->read_line(std::chrono::hours(1)); !reply) {
      command_failure = reply.error();
    } else {
      result.reply = *reply;
    }
    result.seconds = static_cast<double>(nanos_since(sent_at)) / 1e9;
    // A tqd older than jobs_freeing has no such line: 0, done.
    while (!command_failure) {
      auto stats = fetch_tq_stats(*asker);
      if (!stats) {
        command_failure = stats.error();
      } else if (stat_number(*stats, "jobs_freeing") == 0) {
        break;
      }
    }
    result.freed_seconds = static_cast<double>(nanos_since(sent_at)) / 1e9;
    answered.store(true, std::memory_order_release);
  });
  while (!answered.load(std::memory_order_acquire)) {
    const Clock::time_point ping_at = Clock::now();
    auto sent = pinger->send_all("PING\n");
    auto pong = sent ? pinger->read_line() : Result<std::string>(sent.error());
    if (!pong) {
      ping_failure = pong.error();
      break;
    }
    result.pings.record(nanos_since(ping_at));
  }
  command.join();
  if (command_failure) return Error{o.command + ": " + command_failure->message};
  if (ping_failure) return Error{"PING: " + ping_failure->message};
  auto stats = fetch_tq_stats(*pinger);
  if (!stats) return stats.error();
  result.loop_max_busy_us = stat_number(*stats, "loop_max_busy_us");
  return result;
}

}  // namespace tq::bench
