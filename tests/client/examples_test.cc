// The producer and worker examples, run as the README's quick start runs
// them: producers print ids, a worker prints and acks each job, retries
// failures, notices expired leases and stops cleanly on Ctrl-C (SIGINT).
#include <doctest/doctest.h>

#include <unistd.h>

#include <csignal>
#include <thread>

#include "tests/client/cutting_proxy.h"
#include "tests/client/subprocess.h"
#include "tests/support/tqd_process.h"

namespace examples_test {

using namespace std::chrono_literals;
using tq::testing::BackgroundProcess;
using tq::testing::run_program;
using tq::testing::TqdProcess;

namespace {

std::string stat_of(TqdProcess& tqd, const std::string& queue, const std::string& name) {
  auto connected = tq::client::Client::connect({.port = tqd.port()});
  if (!connected) {
    // Say what tqd said last: the reason it is gone is in its log.
    for (const auto& line : tqd.log_lines()) MESSAGE(line);
    FAIL("tqd does not answer: " << connected.error().to_string());
  }
  auto stats = connected->stats(queue);
  REQUIRE(stats.ok());
  return tq::client::field(*stats, name);
}

BackgroundProcess start_worker(const TqdProcess& tqd, std::vector<std::string> args) {
  std::vector<std::string> argv = {WORKER_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {"--port", std::to_string(tqd.port())});
  return BackgroundProcess(argv);
}

// Whether one of tqd's clients is waiting in a DEQUEUE (CLIENTS: cmd=DEQUEUE
// with a wait).
bool a_dequeue_waits(const TqdProcess& tqd) {
  auto connected = tq::client::Client::connect({.port = tqd.port()});
  if (!connected) return false;
  auto clients = connected->call_lines("CLIENTS");
  if (!clients) return false;
  for (const std::string& line : *clients) {
    if (line.find("cmd=DEQUEUE") != std::string::npos && line.find("wait=-") == std::string::npos) {
      return true;
    }
  }
  return false;
}

}  // namespace

TEST_SUITE("examples") {
  TEST_CASE("the quick start - three producers then a worker that prints and acks each job") {
    TqdProcess tqd;
    const std::vector<std::string> messages = {"Send welcome email", "Send password reset",
                                               "Send notification"};
    for (size_t i = 0; i < messages.size(); ++i) {
      auto produced =
          run_program({PRODUCER_PATH, "emails", messages[i], "--port", std::to_string(tqd.port())});
      CHECK(produced.status == 0);
      CHECK(produced.out ==
            "enqueued job " + std::to_string(i + 1) + " to emails: " + messages[i] + "\n");
    }

    BackgroundProcess worker = start_worker(tqd, {"emails"});
    for (size_t i = 0; i < messages.size(); ++i) {
      const std::string id = std::to_string(i + 1);
      auto took =
          worker.wait_for_line("job " + id + " from emails (attempt 1): " + messages[i], 10s);
      CHECK(took.has_value());
      CHECK(worker.wait_for_line("job " + id + " done (ACK)", 10s).has_value());
    }
    CHECK(worker.stop(SIGINT, 10s) == 0);
    // What README's quick start shows: the start, then the server answered.
    const std::vector<std::string> lines = worker.lines();
    REQUIRE(lines.size() >= 2);
    CHECK(lines[0] == "worker: 1 worker for emails at 127.0.0.1:" + std::to_string(tqd.port()) +
                          "; Ctrl-C stops");
    CHECK(lines[1] == "worker: connected, taking jobs");
    CHECK(worker.lines().back() == "worker: stopped");
    CHECK(stat_of(tqd, "emails", "acked_total") == "3");
    CHECK(stat_of(tqd, "emails", "leased") == "0");
  }

  TEST_CASE("producer --count prints one id per job - no server is exit 2 with the reason") {
    TqdProcess tqd;
    auto produced = run_program({PRODUCER_PATH, "reports", "weekly", "report", "--count", "3",
                                 "--port", std::to_string(tqd.port())});
    CHECK(produced.status == 0);
    CHECK(produced.out ==
          "enqueued job 1 to reports: weekly report #1\n"
          "enqueued job 2 to reports: weekly report #2\n"
          "enqueued job 3 to reports: weekly report #3\n");
    CHECK(stat_of(tqd, "reports", "ready") == "3");

    const std::string port = std::to_string(tqd.port());
    REQUIRE(tqd.stop(SIGTERM) == 0);
    auto refused =
        run_program({PRODUCER_PATH, "reports", "x", "--port", port, "--reconnect-for", "0"});
    CHECK(refused.status == 2);
    CHECK(refused.err.find("producer: cannot connect") != std::string::npos);
    // With a reconnect policy it waits for a server that is not there yet,
    // saying so, as for one restarting (it gave up at once).
    auto waited =
        run_program({PRODUCER_PATH, "reports", "x", "--port", port, "--reconnect-for", "300ms"});
    CHECK(waited.status == 2);
    CHECK(waited.err.find("; reconnecting in 100ms (attempt 2 of ") != std::string::npos);
  }

  TEST_CASE("a producer started before its server waits for it and stores the job") {
    TqdProcess first;
    const uint16_t port = first.port();
    REQUIRE(first.stop(SIGTERM) == 0);
    BackgroundProcess producer(
        {PRODUCER_PATH, "early", "job", "--port", std::to_string(port), "--reconnect-for", "20s"},
        true);
    REQUIRE(producer.wait_for_line("producer: cannot connect", 10s).has_value());
    tq::testing::TqdOptions o;
    o.port = port;
    TqdProcess tqd(o);
    CHECK(producer.wait_for_line("enqueued job 1 to early: job", 20s).has_value());
    CHECK(producer.wait_for_exit(10s) == 0);
  }

  TEST_CASE("the producer rides out a server restart longer than the old 1.5 s budget") {
    TqdProcess first_run;
    const uint16_t port = first_run.port();
    // Two jobs a second apart; reading what it prints, standard error included.
    BackgroundProcess producer({PRODUCER_PATH, "restart", "job", "--count", "2", "--rate", "1",
                                "--port", std::to_string(port)},
                               /*with_stderr=*/true);
    REQUIRE(producer.wait_for_line("enqueued job 1 to restart: job #1", 10s).has_value());
    // Held still while the server stops, so that job 2 finds it gone.
    REQUIRE(kill(producer.pid(), SIGSTOP) == 0);
    REQUIRE(first_run.stop(SIGTERM) == 0);
    REQUIRE(kill(producer.pid(), SIGCONT) == 0);
    // Five attempts failed (100+200+400+800 ms of pauses): where the producer
    // used to give up. It says so and goes on.
    auto retrying = producer.wait_for_line("(attempt 6 of ", 20s);
    REQUIRE(retrying.has_value());
    CHECK(retrying->rfind("producer: cannot connect: 127.0.0.1:" + std::to_string(port), 0) == 0);

    tq::testing::TqdOptions restart;
    restart.dir = first_run.dir();
    restart.port = port;
    TqdProcess second_run(restart);
    CHECK(producer.wait_for_line("enqueued job 2 to restart: job #2", 20s).has_value());
    CHECK(producer.wait_for_exit(10s) == 0);
    CHECK(stat_of(second_run, "restart", "ready") == "2");  // each stored once
  }

  TEST_CASE("the producer's --reconnect-for 0 gives up at once and names the message, not an id") {
    TqdProcess tqd;
    BackgroundProcess producer({PRODUCER_PATH, "restart", "job", "--count", "2", "--rate", "1",
                                "--reconnect-for", "0", "--port", std::to_string(tqd.port())},
                               /*with_stderr=*/true);
    REQUIRE(producer.wait_for_line("enqueued job 1 to restart: job #1", 10s).has_value());
    REQUIRE(kill(producer.pid(), SIGSTOP) == 0);
    REQUIRE(tqd.stop(SIGTERM) == 0);
    REQUIRE(kill(producer.pid(), SIGCONT) == 0);
    auto gave_up = producer.wait_for_line("not stored", 10s);
    REQUIRE(gave_up.has_value());
    CHECK(gave_up->rfind("producer: message #2 of 2 was not stored: ", 0) == 0);
    CHECK(producer.wait_for_exit(10s) == 2);
  }

  TEST_CASE("a producer whose reply is lost says the job may have been stored - and it was") {
    TqdProcess tqd;
    tq::testing::CuttingProxy proxy(tqd.port());
    // Four seconds between the two jobs: time to arm the cut after the first.
    BackgroundProcess producer({PRODUCER_PATH, "cut", "job", "--count", "2", "--rate", "0.25",
                                "--reconnect-for", "0", "--port", std::to_string(proxy.port())},
                               /*with_stderr=*/true);
    REQUIRE(producer.wait_for_line("enqueued job 1 to cut: job #1", 10s).has_value());
    REQUIRE(kill(producer.pid(), SIGSTOP) == 0);
    proxy.cut_after_next_request();
    REQUIRE(kill(producer.pid(), SIGCONT) == 0);
    auto gave_up = producer.wait_for_line("stored", 10s);
    REQUIRE(gave_up.has_value());
    CHECK(gave_up->rfind("producer: message #2 of 2 may or may not have been stored (its reply "
                         "was lost): ",
                         0) == 0);
    CHECK(producer.wait_for_exit(10s) == 2);
    CHECK(stat_of(tqd, "cut", "ready") == "2");  // it was: tqd answered before the cut
  }

  TEST_CASE("the producer authenticates with TQ_PASSWORD - without it tqd refuses the job") {
    tq::testing::TqdOptions options;
    options.config_yaml = "auth:\n  password: s3cret\n";
    TqdProcess tqd(options);
    const std::string port = std::to_string(tqd.port());
    auto refused = run_program({PRODUCER_PATH, "secure", "hello", "--port", port});
    CHECK(refused.status == 1);
    CHECK(refused.err.find("NOAUTH") != std::string::npos);
    auto produced = run_program({PRODUCER_PATH, "secure", "hello", "--port", port}, {},
                                {"TQ_PASSWORD=s3cret"});
    CHECK(produced.status == 0);
    CHECK(produced.out == "enqueued job 1 to secure: hello\n");
  }

  TEST_CASE("a wrong command line is exit 64 (EX_USAGE) with a one-line reason, for both") {
    TqdProcess tqd;
    const std::string port = std::to_string(tqd.port());
    auto producer = [&](std::vector<std::string> args) {
      args.insert(args.begin(), PRODUCER_PATH);
      args.insert(args.end(), {"--port", port});
      return run_program(args);
    };
    auto no_jobs = producer({"q", "x", "--count", "0"});
    CHECK(no_jobs.status == 64);
    CHECK(no_jobs.err ==
          "producer: --count: expected a whole number from 1 to 2147483647, got '0' (see producer "
          "--help)\n");
    auto far_port = producer({"q", "x", "--port", "99999"});  // checked, though a good one follows
    CHECK(far_port.status == 64);
    CHECK(far_port.err ==
          "producer: --port: expected a whole number from 1 to 65535, got '99999' (see producer "
          "--help)\n");
    CHECK(producer({"q", "x", "--rate", "-1"}).status == 64);
    auto unknown = producer({"q", "x", "--bogus"});
    CHECK(unknown.status == 64);
    CHECK(unknown.err.rfind("producer: ", 0) == 0);
    CHECK(producer({}).status == 64);

    // Queue names: one the client will not send, one the server will not take.
    auto spaced = producer({"my queue", "x"});
    CHECK(spaced.status == 64);
    CHECK(spaced.err == "producer: queue name 'my queue' holds a space or a control character\n");
    auto digits = producer({"42", "x"});
    CHECK(digits.status == 64);
    CHECK(digits.err.rfind("producer: invalid queue name '42'", 0) == 0);
    CHECK(tqd.client().list().value().empty());

    auto worker = [&](std::vector<std::string> args) {
      args.insert(args.begin(), WORKER_PATH);
      args.insert(args.end(), {"--port", port});
      return run_program(args);
    };
    auto threads = worker({"q", "--concurrency", "0"});
    CHECK(threads.status == 64);
    CHECK(threads.err ==
          "worker: --concurrency: expected a whole number from 1 to 1000, got '0' (see worker "
          "--help)\n");
    CHECK(worker({"q", "--fail-rate", "2"}).status == 64);
    CHECK(worker({"q", "--sleep", "soon"}).status == 64);
    CHECK(worker({"q", "--bogus"}).status == 64);
    // The worker waits for a queue that does not exist yet, not for one it cannot name.
    auto bad_queue = worker({"my queue"});
    CHECK(bad_queue.status == 64);
    CHECK(bad_queue.err == "worker: queue name 'my queue' holds a space or a control character\n");
    CHECK(bad_queue.out.empty());  // refused before it says anything
  }

  TEST_CASE("a refused password is exit 1 for both, with a hint when none was given") {
    tq::testing::TqdOptions options;
    options.config_yaml = "auth:\n  password: s3cret\n";
    TqdProcess tqd(options);
    const std::string port = std::to_string(tqd.port());
    auto producer = run_program({PRODUCER_PATH, "q", "x", "--port", port, "--password", "guess"});
    CHECK(producer.status == 1);
    CHECK(producer.err.find("NOAUTH wrong password") != std::string::npos);
    CHECK(producer.err.find("the server refused the password") != std::string::npos);
    CHECK(producer.err.find("wants a password") == std::string::npos);
    auto worker = run_program({WORKER_PATH, "q", "--port", port, "--password", "guess"});
    CHECK(worker.status == 1);
    CHECK(worker.err.find("NOAUTH wrong password") != std::string::npos);
    auto anonymous = run_program({WORKER_PATH, "q", "--port", port});
    CHECK(anonymous.status == 1);
    CHECK(anonymous.err.find("NOAUTH") != std::string::npos);
    CHECK(anonymous.err.find("--password or TQ_PASSWORD") != std::string::npos);
  }

  TEST_CASE("worker --concurrency shares the jobs among its threads and all are acked") {
    TqdProcess tqd;
    REQUIRE(run_program({PRODUCER_PATH, "bulk", "job", "--count", "12", "--port",
                         std::to_string(tqd.port())})
                .status == 0);
    BackgroundProcess worker = start_worker(tqd, {"bulk", "--concurrency", "3"});
    CHECK(worker.wait_for_line("worker: 3 workers for", 10s).has_value());
    for (int i = 0; i < 12; ++i) CHECK(worker.wait_for_line("done (ACK)", 10s).has_value());
    CHECK(worker.stop(SIGINT, 10s) == 0);
    CHECK(stat_of(tqd, "bulk", "acked_total") == "12");
  }

  TEST_CASE("worker --fail-rate 1 NACKs each delivery until the job is in dead letters") {
    TqdProcess tqd;
    auto c = tqd.client();
    REQUIRE(c.create("flaky").ok());
    REQUIRE(c.config("flaky", {{"max_attempts", "2"}}).ok());
    REQUIRE(c.enqueue("flaky", "never works").ok());
    BackgroundProcess worker = start_worker(tqd, {"flaky", "--fail-rate", "1"});
    CHECK(worker.wait_for_line("job 1 failed: NACKed, to be retried", 10s).has_value());
    CHECK(worker.wait_for_line("(attempt 2)", 10s).has_value());
    CHECK(worker.wait_for_line("job 1 failed, out of attempts: dead letters", 10s).has_value());
    CHECK(worker.stop(SIGINT, 10s) == 0);
    CHECK(stat_of(tqd, "flaky", "dead") == "1");
  }

  TEST_CASE(
      "worker --sleep longer than the lease - the ACK comes too late and the job runs again") {
    TqdProcess tqd;
    auto c = tqd.client();
    REQUIRE(c.create("slow").ok());
    REQUIRE(c.config("slow", {{"ack_timeout", "200ms"}}).ok());
    REQUIRE(c.enqueue("slow", "takes a while").ok());
    BackgroundProcess worker = start_worker(tqd, {"slow", "--sleep", "1s"});
    CHECK(
        worker.wait_for_line("job 1 done, but its lease had ended (it ran out)", 10s).has_value());
    CHECK(worker.wait_for_line("job 1 from slow (attempt 2)", 10s).has_value());
    CHECK(worker.stop(SIGINT, 10s) == 0);
  }

  TEST_CASE("Ctrl-C in the middle of a job hands it back with NACK - nothing stays leased") {
    TqdProcess tqd;
    auto c = tqd.client();
    REQUIRE(c.create("long").ok());
    REQUIRE(c.enqueue("long", "an hour of work").ok());
    BackgroundProcess worker = start_worker(tqd, {"long", "--sleep", "1h"});
    CHECK(worker.wait_for_line("job 1 from long (attempt 1)", 10s).has_value());
    CHECK(worker.stop(SIGINT, 10s) == 0);
    bool handed_back = false;
    for (const auto& line : worker.lines())
      handed_back |= line.find("job 1 handed back (NACK)") != std::string::npos;
    CHECK(handed_back);
    CHECK(stat_of(tqd, "long", "ready") == "1");
    CHECK(stat_of(tqd, "long", "leased") == "0");

    // A stopped worker leaves no waiter behind to swallow the next job.
    REQUIRE(c.enqueue("long", "after the worker left").ok());
    CHECK(stat_of(tqd, "long", "ready") == "2");
  }

  TEST_CASE("a worker started before its queue exists waits for it") {
    TqdProcess tqd;
    BackgroundProcess worker = start_worker(tqd, {"later"});
    CHECK(worker.wait_for_line("cannot take jobs yet", 10s).has_value());
    REQUIRE(run_program({PRODUCER_PATH, "later", "finally", "--port", std::to_string(tqd.port())})
                .status == 0);
    CHECK(worker.wait_for_line("job 1 done (ACK)", 10s).has_value());
    CHECK(worker.stop(SIGINT, 10s) == 0);
  }

  TEST_CASE("a worker with --reconnect-for 0 that loses the server says so and exits 2") {
    // It used to wait for ever, with no connection it would ever reopen.
    TqdProcess tqd;
    tq::client::Client c = tqd.client();
    REQUIRE(c.create("gone").ok());
    BackgroundProcess worker(
        {WORKER_PATH, "gone", "--reconnect-for", "0", "--port", std::to_string(tqd.port())},
        /*with_stderr=*/true);
    REQUIRE(c.enqueue("gone", "first").ok());
    REQUIRE(worker.wait_for_line("job 1 done (ACK)", 10s).has_value());
    c.close();
    REQUIRE(tqd.stop(SIGTERM) == 0);
    auto gave_up = worker.wait_for_line("worker: lost the server", 10s);
    REQUIRE(gave_up.has_value());
    CHECK(gave_up->find("--reconnect-for 0: not reconnecting") != std::string::npos);
    CHECK(worker.wait_for_exit(10s) == 2);
  }

  TEST_CASE(
      "a worker whose server restarts during its first wait says it lost it, not that it never "
      "reached it") {
    TqdProcess first_run;
    const uint16_t port = first_run.port();
    REQUIRE(first_run.client().create("q").ok());
    BackgroundProcess worker({WORKER_PATH, "q", "--port", std::to_string(port)});
    // Its DEQUEUE is waiting: it has connected. (The first one used to wait
    // 2 s, and a server lost in them read as one never reached.)
    for (int i = 0; i < 500 && !a_dequeue_waits(first_run); ++i) {
      std::this_thread::sleep_for(10ms);
    }
    REQUIRE(a_dequeue_waits(first_run));
    REQUIRE(first_run.stop(SIGTERM) == 0);
    auto said = worker.wait_for_line("[worker 1] ", 10s);
    REQUIRE(said.has_value());
    CHECK(said->rfind("[worker 1] lost the server (", 0) == 0);
    tq::testing::TqdOptions restart;
    restart.dir = first_run.dir();
    restart.port = port;
    TqdProcess second_run(restart);
    CHECK(worker.wait_for_line("[worker 1] taking jobs now", 20s).has_value());
    CHECK(worker.stop(SIGINT, 10s) == 0);
    const std::vector<std::string> lines = worker.lines();
    REQUIRE(lines.size() >= 2);
    CHECK(lines[1] == "worker: connected, taking jobs");
  }

  TEST_CASE("a worker whose connection is lost says so even when the first reconnect works") {
    // The proxy drops the connections and keeps taking new ones: the first
    // attempt to replace it succeeds, as when a server is back (or, while
    // it stops, still takes connections) by the time the worker notices.
    // Whether that was said used to depend on that timing.
    TqdProcess tqd;
    tq::testing::CuttingProxy proxy(tqd.port());
    REQUIRE(tqd.client().create("q").ok());
    BackgroundProcess worker({WORKER_PATH, "q", "--port", std::to_string(proxy.port())});
    REQUIRE(worker.wait_for_line("worker: connected, taking jobs", 10s).has_value());
    for (int round = 1; round <= 2; ++round) {
      INFO("outage " << round);
      proxy.drop_all();
      auto lost = worker.wait_for_line("[worker 1] ", 10s);
      REQUIRE(lost.has_value());
      CHECK(lost->rfind("[worker 1] lost the server (", 0) == 0);
      REQUIRE(tqd.client().enqueue("q", "after outage " + std::to_string(round)).ok());
      CHECK(worker.wait_for_line("[worker 1] taking jobs now", 10s).has_value());
      CHECK(worker.wait_for_line("): after outage " + std::to_string(round), 10s).has_value());
      CHECK(worker.wait_for_line(" done (ACK)", 10s).has_value());
    }
    CHECK(worker.stop(SIGINT, 10s) == 0);
  }

  TEST_CASE("a worker started before the server says it cannot reach it yet, then takes jobs") {
    // A port held by a socket that is bound but not listening: connecting is
    // refused, and no other test can take the port until tqd does.
    const tq::testing::LoopbackSocket holder = tq::testing::bind_loopback_socket();
    const uint16_t port = holder.port;
    BackgroundProcess worker({WORKER_PATH, "q", "--port", std::to_string(port)});
    auto waiting = worker.wait_for_line("[worker 1] ", 10s);
    REQUIRE(waiting.has_value());
    CHECK(waiting->find("[worker 1] cannot reach the server yet (cannot connect") == 0);

    ::close(holder.fd);
    tq::testing::TqdOptions options;
    options.port = port;  // the server comes up where the worker looks
    TqdProcess tqd(options);
    REQUIRE(tqd.client().create("q").ok());
    CHECK(worker.wait_for_line("[worker 1] taking jobs now", 20s).has_value());
    REQUIRE(tqd.client()
                .enqueue("q",
                         "two\nlines \x1b[31m \xc2\x9b"
                         "0m caf\xc3\xa9")
                .ok());
    // A payload's control bytes (C1 too) are shown escaped, on the job's one line.
    CHECK(worker
              .wait_for_line("): two\\nlines \\x1b[31m \\xc2\\x9b"
                             "0m caf\xc3\xa9",
                             10s)
              .has_value());
    CHECK(worker.stop(SIGINT, 10s) == 0);
  }
}

}  // namespace examples_test
