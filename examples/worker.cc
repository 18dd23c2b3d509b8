// worker: takes jobs from tq queues, "processes" them and acknowledges them.
// An example of the client library (client/client.h), meant to be read.
//
//   worker emails                        one worker on one queue
//   worker emails sms --concurrency 4    four workers (threads) on two queues
//   worker emails --fail-rate 0.3        30% of jobs fail: NACKed and retried
//   worker emails --sleep 40s            slower than the 30 s lease: it expires
//   worker emails --tls-ca ca.pem --port 8443   over TLS, trusting ca.pem
//
// Each thread has its own connection and loops: DEQUEUE with WAIT (the server
// answers the moment a job arrives: long polling), process the job, ACK it
// (or NACK it when the simulated work fails). Ctrl-C (or SIGTERM) stops
// cleanly: no new job is taken, a job in the middle of its work is handed
// back with NACK, and a job that arrives during the last wait is handed back
// too, so nothing is left half-done. The waits last 2 s, so a quiet worker
// stops within 2 s and its connection stays in step (tqd would also end a
// wait cut short by closing the connection). A second Ctrl-C quits at once
// (a job held then is redelivered when its lease ends).
//
// A server that is down, or a queue that does not exist yet, is waited for: a
// lost connection is reopened for up to --reconnect-for (30 s) within a call,
// and the loop tries again after that. With --reconnect-for 0 nothing is
// reopened, so a server that cannot be reached, or is lost, ends the worker.
// Exit status: 0 when stopped by Ctrl-C or SIGTERM; 1 when the server refused
// the password; 2 when the server cannot be reached, or was lost, under
// --reconnect-for 0; 64 (EX_USAGE) when the command line is wrong: a bad flag
// or queue name; 130 after a second Ctrl-C.
#include <signal.h>
#include <sysexits.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <iostream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "client/cli_numbers.h"
#include "client/client.h"
#include "client/request_line.h"

namespace {

using namespace std::chrono_literals;
using tq::client::Client;
using tq::client::Job;
using tq::protocol::ErrorCode;

struct Settings {
  std::vector<std::string> queues;
  double fail_rate = 0;                   // share of jobs whose work "fails"
  tq::client::milliseconds work_time{0};  // how long each job's "work" takes
  tq::client::Options options;
};

constexpr int kExitRefused = 1;
constexpr int kExitUnreachable = 2;
constexpr int kExitUsage = EX_USAGE;

// Fired by the first Ctrl-C, or by a worker that gives up; the simulated
// work watches it.
tq::client::CancelToken stop;
// The exit status: 0 until a worker gives up.
std::atomic<int> exit_status{0};
// Whether a worker has said the server answered: once, by the first.
std::atomic<bool> said_taking{false};

void on_stop_signal(int) {
  if (stop.cancelled()) _exit(130);  // the second Ctrl-C: quit now
  stop.cancel();
}

std::mutex print_mutex;

void say(int worker, const std::string& text) {
  std::lock_guard<std::mutex> lock(print_mutex);
  std::cout << "[worker " << worker << "] " << text << std::endl;
}

// Stops every worker for a reason that waiting will not cure; the first
// reason is the one said and the exit status.
void give_up(int status, const std::string& why) {
  int none = 0;
  if (exit_status.compare_exchange_strong(none, status)) {
    std::lock_guard<std::mutex> lock(print_mutex);
    std::cerr << "worker: " << why << std::endl;
  }
  stop.cancel();
}

// A payload as one line of output: control bytes (a newline, an escape
// sequence, a C1 control) are shown as \n, \t, \xHH, so a job cannot split or rewrite the
// worker's lines; other bytes, UTF-8 text among them, are printed as they are.
std::string printable(std::string_view payload) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(payload.size());
  for (size_t i = 0; i < payload.size(); ++i) {
    const char byte = payload[i];
    const auto c = static_cast<unsigned char>(byte);
    if (c == 0xc2 && i + 1 < payload.size() &&
        (static_cast<unsigned char>(payload[i + 1]) & 0xe0) == 0x80) {
      // U+0080-U+009F, the C1 controls in UTF-8: terminals act on them too.
      const auto next = static_cast<unsigned char>(payload[++i]);
      out += "\\xc2\\x";
      out += kHex[next >> 4];
      out += kHex[next & 0xf];
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += byte;
    }
  }
  return out;
}

// One job: print it, "work" for a while, then ACK, or NACK when the work fails
// or is interrupted.
void process(Client& client, const Job& job, int worker, const Settings& settings,
             std::mt19937& random) {
  say(worker, "job " + std::to_string(job.id) + " from " + job.queue + " (attempt " +
                  std::to_string(job.attempts) + "): " + printable(job.payload));

  // The "work". Ctrl-C ends it early (and a job that arrives after Ctrl-C
  // does not start).
  if (!stop.sleep_for_ms(static_cast<int>(settings.work_time.count()))) {
    // Stopping in the middle of the work: give the job back for someone else.
    auto nacked = client.nack(job);
    say(worker, "stopping: job " + std::to_string(job.id) +
                    (nacked ? " handed back (NACK)"
                            : " left to its lease (" + nacked.error().to_string() + ")"));
    return;
  }

  if (std::uniform_real_distribution<double>(0, 1)(random) < settings.fail_rate) {
    auto nacked = client.nack(job);
    if (!nacked) {
      say(worker, "job " + std::to_string(job.id) + " failed; NACK failed too (" +
                      nacked.error().to_string() + "): its lease will run out");
    } else if (*nacked == tq::client::NackOutcome::kDead) {
      say(worker, "job " + std::to_string(job.id) + " failed, out of attempts: dead letters");
    } else if (*nacked == tq::client::NackOutcome::kExpired) {
      say(worker, "job " + std::to_string(job.id) + " failed; its TTL had passed: expired");
    } else {
      say(worker, "job " + std::to_string(job.id) + " failed: NACKed, to be retried");
    }
    return;
  }

  // The job, not just its id: the call carries the delivery's lease token,
  // so it can only ever finish the delivery this worker was handed.
  auto acked = client.ack(job);
  if (acked) {
    say(worker, "job " + std::to_string(job.id) + " done (ACK)");
  } else if (acked.error().is(ErrorCode::kNotLeased) || acked.error().is(ErrorCode::kNotFound)) {
    // The lease ended before the ACK: we were slower than the queue's
    // ack_timeout (a restart of tqd keeps leases to their end; a crash can
    // lose the newest ones). The job went back to the queue, so it runs
    // again (at-least-once).
    say(worker, "job " + std::to_string(job.id) +
                    " done, but its lease had ended (it ran out): " + acked.error().to_string());
  } else {
    say(worker, "job " + std::to_string(job.id) + " done, ACK failed (" +
                    acked.error().to_string() + "): it will be delivered again");
  }
}

void work(int worker, const Settings& settings) {
  tq::client::Options options = settings.options;
  // What the worker says when it cannot take jobs: that it lost the server
  // only if it ever had it; and once a call gets through again, that it is
  // taking jobs.
  bool ever_connected = false;
  bool in_trouble = false;
  // Said when the connection is found lost, not only when an attempt to
  // replace it fails: a server that is back (or, as it stops, still takes
  // connections) at the first attempt would otherwise come and go unsaid,
  // depending on when the worker happened to notice.
  options.reconnect.on_lost = [&, worker](const tq::client::Error& why) {
    ever_connected = true;  // a connection lost is one that was made
    // A connection closed as idle (TIMEOUT, after work longer than
    // limits.idle_timeout) is no trouble with the server.
    if (in_trouble || why.is(ErrorCode::kTimeout)) return;
    in_trouble = true;
    say(worker, "lost the server (" + why.to_string() + "); reconnecting");
  };
  options.reconnect.on_retry = [&, worker](int failed, const tq::client::Error& why,
                                           tq::client::milliseconds) {
    if (failed != 1 || in_trouble) return;
    in_trouble = true;
    say(worker, (ever_connected ? "lost the server (" : "cannot reach the server yet (") +
                    why.to_string() + "); reconnecting");
  };
  // --reconnect-for 0: a connection lost, or never made, stays so; waiting
  // would leave a process that looks alive and does nothing.
  auto unreachable = [&](const tq::client::Error& error) {
    give_up(kExitUnreachable,
            std::string(ever_connected ? "lost the server (" : "cannot reach the server (") +
                error.to_string() + "); --reconnect-for 0: not reconnecting");
  };
  // Not connected yet: with a reconnect policy the first call connects;
  // without one nothing would, so connect here.
  Client client(options);
  if (options.reconnect.attempts == 0) {
    if (auto connected = client.reconnect(); !connected) return unreachable(connected.error());
  }
  std::mt19937 random(std::random_device{}());
  bool said_waiting = false;
  while (!stop.cancelled()) {
    // Long polling: the server answers the moment a job arrives, or after 2 s
    // with nothing, when the loop looks at the stop flag again. Not the first
    // time: "connected" is said when the server has answered, and a server
    // lost in a first wait of 2 s would read as one never reached.
    auto jobs =
        client.dequeue_many(settings.queues, {.wait = ever_connected ? 2000ms : 0ms, .count = 1});
    if (!jobs) {
      if (stop.cancelled()) break;  // Ctrl-C while reconnecting
      const tq::client::Error& error = jobs.error();
      // A name the client will not send or the server will not take, and a
      // refused password, stay wrong however long we wait.
      if (error.kind == tq::client::ErrorKind::kBadArgument || error.is(ErrorCode::kBadFormat)) {
        give_up(kExitUsage, error.message);
        return;
      }
      if (error.is(ErrorCode::kNoAuth)) {
        give_up(kExitRefused,
                error.to_string() + " (give the password with --password or TQ_PASSWORD)");
        return;
      }
      if (options.reconnect.attempts == 0 && !client.connected()) return unreachable(error);
      if (!said_waiting) {
        // The server said why (a queue not created yet), or it is not there.
        const bool answered = error.kind == tq::client::ErrorKind::kServer;
        say(worker, std::string(answered ? "cannot take jobs yet (" : "cannot reach the server (") +
                        error.to_string() + "); retrying every second");
        said_waiting = true;
      }
      in_trouble = true;
      stop.sleep_for_ms(1000);
      continue;
    }
    if (in_trouble) {
      say(worker, "taking jobs now");
      said_taking = true;
    } else if (!said_taking.exchange(true)) {
      // Said once the server has answered, not at start: it may not be up.
      std::lock_guard<std::mutex> lock(print_mutex);
      std::cout << "worker: connected, taking jobs" << std::endl;
    }
    in_trouble = false;
    ever_connected = true;
    said_waiting = false;
    for (const Job& job : *jobs) process(client, job, worker, settings, random);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Take jobs from tq queues, print them and acknowledge them.", "worker"};
  Settings settings;
  int concurrency = 1;
  std::string work_time = "0s";
  std::string reconnect_for = "30s";
  app.add_option("queues", settings.queues, "the queues to take jobs from, in order")->required();
  app.add_option("--concurrency", concurrency, "workers (threads, one connection each), 1 to 1000")
      ->check(tq::client::whole_number(1, 1000));
  app.add_option("--fail-rate", settings.fail_rate, "share of jobs that fail, 0 to 1 (NACKed)");
  app.add_option("--sleep", work_time, "how long each job's work takes: 500ms, 2s, 1m")
      ->capture_default_str();
  app.add_option("--reconnect-for", reconnect_for,
                 "after a lost connection, keep trying to reconnect this long (0: never)")
      ->capture_default_str();
  app.add_option("--host", settings.options.host, "server address")->capture_default_str();
  app.add_option("--port", settings.options.port, "server port")
      ->capture_default_str()
      ->check(tq::client::whole_number(1, 65535));
  app.add_option("--password", settings.options.password, "sent with AUTH when connecting")
      ->envname("TQ_PASSWORD");
  // TLS: --tls alone trusts the system's CAs; --tls-ca names your own CA;
  // --tls-cert and --tls-key present a client certificate to a tqd that
  // asks for one. Each of them turns TLS on.
  bool tls = false;
  app.add_flag("--tls", tls, "connect with TLS, trusting the system's CAs");
  app.add_option("--tls-ca", settings.options.tls.ca_file,
                 "trust the CAs in this PEM file (implies --tls)")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-cert", settings.options.tls.cert_file,
                 "client certificate (PEM), with --tls-key (implies --tls)")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", settings.options.tls.key_file,
                 "its private key (PEM) (implies --tls)")
      ->check(CLI::ExistingFile);
  auto usage_error = [](const std::string& why) {
    std::cerr << "worker: " << why << " (see worker --help)\n";
    return kExitUsage;
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);  // prints the help; 0
  } catch (const CLI::ParseError& e) {
    return usage_error(e.what());
  }
  settings.options.tls.enabled = tls || !settings.options.tls.ca_file.empty() ||
                                 !settings.options.tls.cert_file.empty() ||
                                 !settings.options.tls.key_file.empty();
  if (settings.options.tls.cert_file.empty() != settings.options.tls.key_file.empty()) {
    return usage_error("--tls-cert and --tls-key go together");
  }
  if (!(settings.fail_rate >= 0 && settings.fail_rate <= 1)) {
    return usage_error("--fail-rate must be 0 to 1, a share of the jobs");
  }
  auto parsed = tq::client::parse_duration(work_time);
  if (!parsed) {
    return usage_error("--sleep: expected a duration such as 500ms or 2s, got '" + work_time + "'");
  }
  settings.work_time = *parsed;
  for (const std::string& queue : settings.queues) {
    // Before anything is said: a name with a space can never be sent.
    if (auto bad = tq::client::check_word(queue, "queue name"); !bad) {
      std::cerr << "worker: " << bad.error().message << "\n";
      return kExitUsage;
    }
  }
  auto reconnect_span = tq::client::parse_duration(reconnect_for);
  if (!reconnect_span) {
    return usage_error("--reconnect-for: expected a duration such as 30s or 2m, got '" +
                       reconnect_for + "'");
  }
  // Reconnect after a dropped connection (a lost DEQUEUE is safe to repeat),
  // so that the worker rides out a server restart. A job held across a
  // restart stays this worker's until its lease ends (a restart keeps
  // leases), so its ACK on the new connection finishes it. Once the lease
  // ended and another worker has the job, the ACK, which carries the
  // delivery's lease token, is answered NOTLEASED (PROTOCOL.md, Workers).
  // Ctrl-C ends a wait to reconnect at once.
  settings.options.reconnect = tq::client::ReconnectPolicy::lasting(*reconnect_span);
  settings.options.reconnect.cancel = &stop;

  signal(SIGINT, on_stop_signal);
  signal(SIGTERM, on_stop_signal);

  std::string queues;
  for (const auto& q : settings.queues) queues += (queues.empty() ? "" : ", ") + q;
  std::cout << "worker: " << concurrency << (concurrency == 1 ? " worker" : " workers") << " for "
            << queues << " at " << (settings.options.tls.enabled ? "tls://" : "")
            << tq::client::host_port(settings.options.host, settings.options.port)
            << "; Ctrl-C stops" << std::endl;

  std::vector<std::thread> workers;
  for (int n = 1; n <= concurrency; ++n) workers.emplace_back(work, n, std::cref(settings));
  for (auto& t : workers) t.join();
  std::cout << "worker: stopped" << std::endl;
  return exit_status;
}
