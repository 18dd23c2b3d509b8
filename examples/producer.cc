// producer: puts messages into a tq queue and prints their ids. An example of
// the client library (client/client.h), meant to be read.
//
//   producer emails "Send welcome email"           one job
//   producer emails "Digest" --count 100 --rate 20  100 jobs, 20 a second
//   producer emails "Hi" --tls-ca ca.pem --port 8443  over TLS, trusting ca.pem
//
// What it shows: connecting, creating the queue if it is missing, enqueueing
// (many at once, pipelined, when not paced), and errors as values. It asks the client to reconnect
// after a dropped connection (or before the first), for up to --reconnect-for (30 s), so a
// restarting server, or one starting after it, is ridden out; the client then sends every job with
// a dedup key, so a job whose reply was lost is retried without being stored twice.
//
// Exit status: 0 when every job was stored; 1 when the server refused one, or
// the password (the error is printed); 2 when the server cannot be reached
// (within --reconnect-for), or does not answer within the 5 s timeout;
// 64 (EX_USAGE) when the command line is wrong: a bad flag or queue name.
#include <sysexits.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "client/cli_numbers.h"
#include "client/client.h"

namespace {

constexpr int kExitRefused = 1;
constexpr int kExitNoServer = 2;
constexpr int kExitUsage = EX_USAGE;

// Says why a call failed and returns the exit status for it. `password_given`:
// whether a password was sent, which decides the hint for a NOAUTH.
int fail(const std::string& what, const tq::client::Error& error, bool password_given) {
  using tq::protocol::ErrorCode;
  // A name the client will not send, or the server will not take, is the
  // command line's fault, not the server's.
  if (error.kind == tq::client::ErrorKind::kBadArgument || error.is(ErrorCode::kBadFormat)) {
    std::cerr << "producer: " << error.message << "\n";
    return kExitUsage;
  }
  std::cerr << "producer: " << what << error.to_string() << "\n";
  if (error.is(ErrorCode::kNoAuth)) {
    std::cerr << (password_given
                      ? "producer: the server refused the password (--password or TQ_PASSWORD)\n"
                      : "producer: the server wants a password: --password or TQ_PASSWORD\n");
  }
  return error.kind == tq::client::ErrorKind::kServer ? kExitRefused : kExitNoServer;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Enqueue messages into a tq queue and print their ids.", "producer"};
  std::string queue;
  std::vector<std::string> words;
  int count = 1;
  double rate = 0;
  std::string reconnect_for = "30s";
  tq::client::Options options;  // 127.0.0.1:8080 unless told otherwise
  app.add_option("queue", queue, "the queue to put the jobs in")->required();
  app.add_option("message", words, "the message (its words are joined with spaces)")->required();
  app.add_option("--count", count, "how many jobs, 1 or more; each gets ' #<n>' after the message")
      ->check(tq::client::whole_number(1, INT32_MAX));
  app.add_option("--rate", rate, "jobs per second; 0, the default: as fast as the server takes them");
  app.add_option("--reconnect-for", reconnect_for,
                 "after a lost connection, keep trying to reconnect this long (0: never)")
      ->capture_default_str();
  app.add_option("--host", options.host, "server address")->capture_default_str();
  app.add_option("--port", options.port, "server port")
      ->capture_default_str()
      ->check(tq::client::whole_number(1, 65535));
  app.add_option("--password", options.password, "sent with AUTH when connecting")
      ->envname("TQ_PASSWORD");
  // TLS: --tls alone trusts the system's CAs; --tls-ca names your own CA;
  // --tls-cert and --tls-key present a client certificate to a tqd that
  // asks for one. Each of them turns TLS on.
  bool tls = false;
  app.add_flag("--tls", tls, "connect with TLS, trusting the system's CAs");
  app.add_option("--tls-ca", options.tls.ca_file, "trust the CAs in this PEM file (implies --tls)")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-cert", options.tls.cert_file,
                 "client certificate (PEM), with --tls-key (implies --tls)")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", options.tls.key_file, "its private key (PEM) (implies --tls)")
      ->check(CLI::ExistingFile);
  auto usage_error = [](const std::string& why) {
    std::cerr << "producer: " << why << " (see producer --help)\n";
    return kExitUsage;
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);  // prints the help; 0
  } catch (const CLI::ParseError& e) {
    return usage_error(e.what());
  }
  options.tls.enabled = tls || !options.tls.ca_file.empty() || !options.tls.cert_file.empty() ||
                        !options.tls.key_file.empty();
  if (options.tls.cert_file.empty() != options.tls.key_file.empty()) {
    return usage_error("--tls-cert and --tls-key go together");
  }
  if (!(rate >= 0)) return usage_error("--rate must be 0 (no pacing) or more");
  auto reconnect_span = tq::client::parse_duration(reconnect_for);
  if (!reconnect_span) {
    return usage_error("--reconnect-for: expected a duration such as 30s or 2m, got '" +
                       reconnect_for + "'");
  }

  std::string message;
  for (const auto& word : words) message += (message.empty() ? "" : " ") + word;

  // Reconnect after a dropped connection (a restarting server, say), saying
  // so while it lasts. Retried enqueues carry a dedup key, so none can be
  // stored twice.
  options.reconnect = tq::client::ReconnectPolicy::lasting(*reconnect_span);
  const int attempts = options.reconnect.attempts;
  options.reconnect.on_retry = [attempts](int failed, const tq::client::Error& why,
                                          tq::client::milliseconds pause) {
    std::cerr << "producer: " << why.to_string() << "; reconnecting in "
              << tq::client::format_duration(pause) << " (attempt " << failed + 1 << " of "
              << attempts << ")" << std::endl;
  };
  // Not connected yet: with a reconnect policy the first call connects, and
  // waits for a server that is not up yet as for one restarting; without
  // one, connect here.
  tq::client::Client client(options);
  const bool password_given = !options.password.empty();
  if (options.reconnect.attempts == 0) {
    if (auto connected = client.reconnect(); !connected) {
      return fail("", connected.error(), password_given);
    }
  }

  // tqd does not create queues on ENQUEUE unless configured to (a typo would
  // fill a queue nobody reads), so create it; EXISTS just means it is there.
  auto created = client.create(queue);
  if (!created && !created.error().is(tq::protocol::ErrorCode::kExists)) {
    return fail("cannot create " + queue + ": ", created.error(), password_given);
  }

  // Paced, one job at a time; unpaced, in rounds of pipelined PUTs
  // (put_many): a round trip per round of jobs rather than per job.
  const size_t batch = rate > 0 ? 1 : tq::client::Client::kPutRound;
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::string> payloads;
  for (int first = 1; first <= count; first += static_cast<int>(payloads.size())) {
    if (rate > 0) {
      // Pace from the start, not from the last send, so the rate does not drift.
      std::this_thread::sleep_until(start + std::chrono::duration<double>((first - 1) / rate));
    }
    payloads.clear();
    for (int n = first; n <= count && payloads.size() < batch; ++n) {
      payloads.push_back(count == 1 ? message : message + " #" + std::to_string(n));
    }
    const std::vector<std::string_view> views(payloads.begin(), payloads.end());
    auto ids = client.put_many(queue, views);
    if (!ids) return fail("", ids.error(), password_given);
    // Every job of the round is told of, stored or not; the first failure
    // then ends the run.
    int status = 0;
    for (size_t i = 0; i < ids->size(); ++i) {
      const auto& id = (*ids)[i];
      if (!id) {
        // n counts messages; the job ids printed are the server's.
        const int n = first + static_cast<int>(i);
        std::string which = count == 1
                                ? "the message"
                                : "message #" + std::to_string(n) + " of " + std::to_string(count);
        // A reply lost after the request went out leaves the job's fate open:
        // the server may have stored it before the connection broke.
        const char* fate = id.error().outcome_unknown()
                               ? " may or may not have been stored (its reply was lost): "
                               : " was not stored: ";
        std::cout.flush();
        const int failed = fail(which + fate, id.error(), password_given);
        if (status == 0) status = failed;
        continue;
      }
      std::cout << "enqueued job " << *id << " to " << queue << ": " << payloads[i] << "\n";
    }
    std::cout.flush();
    if (status != 0) return status;
  }
  return 0;
}
