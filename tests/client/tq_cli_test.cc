// build/tq without a terminal, as a shell script uses it: one command from
// its arguments (exit 0 on OK, 1 on ERROR, 2 without a server), or one
// command per line of standard input, printing only replies: OK ones on
// standard output, ERROR ones on standard error.
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/client/cutting_proxy.h"
#include "tests/client/subprocess.h"
#include "tests/support/tqd_process.h"

namespace tq_cli_test {

using namespace std::chrono_literals;
using tq::testing::ProgramResult;
using tq::testing::run_program;
using tq::testing::TqdProcess;

namespace {

ProgramResult tq_run(const TqdProcess& tqd, std::vector<std::string> args,
                     const std::string& input = {}) {
  std::vector<std::string> argv = {TQ_PATH, "--port", std::to_string(tqd.port())};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv, input);
}

}  // namespace

TEST_SUITE("tq command line") {
  TEST_CASE("one command - exit 0 on OK and 1 on ERROR, the ERROR on standard error") {
    TqdProcess tqd;
    auto created = tq_run(tqd, {"CREATE", "emails"});
    CHECK(created.status == 0);
    CHECK(created.out == "OK created emails\n");
    CHECK(created.err.empty());

    auto exists = tq_run(tqd, {"CREATE", "emails"});
    CHECK(exists.status == 1);
    CHECK(exists.out.empty());
    CHECK(exists.err == "ERROR EXISTS queue 'emails' already exists\n");

    auto enqueued = tq_run(tqd, {"ENQUEUE", "emails", "Send", "welcome", "email"});
    CHECK(enqueued.status == 0);
    CHECK(enqueued.out == "OK 1\n");

    auto dequeued = tq_run(tqd, {"DEQUEUE", "emails"});
    CHECK(dequeued.status == 0);
    CHECK(dequeued.out == "job 1\n  Send welcome email\n");
    CHECK(dequeued.out.find('\x1b') == std::string::npos);  // no colours off a terminal

    auto unknown = tq_run(tqd, {"FETCH", "emails"});
    CHECK(unknown.status == 1);
    CHECK(unknown.out.empty());
    CHECK(unknown.err.rfind("ERROR UNKNOWN", 0) == 0);

    // --raw prints every reply as the server sent it, ERROR too, on standard output.
    auto raw = tq_run(tqd, {"--raw", "CREATE", "emails"});
    CHECK(raw.status == 1);
    CHECK(raw.out == "ERROR EXISTS queue 'emails' already exists\n");
    CHECK(raw.err.empty());
  }

  TEST_CASE("one command - DEQUEUE from an empty queue is no error - exit 0 and (no jobs)") {
    TqdProcess tqd;
    REQUIRE(tq_run(tqd, {"CREATE", "emails"}).status == 0);
    auto empty = tq_run(tqd, {"DEQUEUE", "emails"});
    CHECK(empty.status == 0);
    CHECK(empty.out == "(no jobs: queue 'emails' has no ready job)\n");
    CHECK(empty.err.empty());
    auto waited = tq_run(tqd, {"DEQUEUE", "emails", "WAIT", "10ms"});
    CHECK(waited.status == 0);
    CHECK(waited.out == "(no jobs: queue 'emails' has no ready job)\n");
    auto counted = tq_run(tqd, {"DEQUEUE", "emails", "COUNT", "5"});
    CHECK(counted.status == 0);
    CHECK(counted.out == "(no jobs)\n");
    auto raw = tq_run(tqd, {"--raw", "DEQUEUE", "emails"});
    CHECK(raw.status == 0);
    CHECK(raw.out == "ERROR EMPTY queue 'emails' has no ready job\n");

    // A queue that does not exist is still an error.
    auto missing = tq_run(tqd, {"DEQUEUE", "nowhere"});
    CHECK(missing.status == 1);
    CHECK(missing.err.rfind("ERROR NOQUEUE", 0) == 0);
  }

  TEST_CASE("one command - exit 2 with the reason when no server answers or the flags are wrong") {
    TqdProcess tqd;
    const std::string port = std::to_string(tqd.port());
    REQUIRE(tqd.stop(SIGTERM) == 0);
    auto refused = run_program({TQ_PATH, "--port", port, "LIST"});
    CHECK(refused.status == 2);
    CHECK(refused.out.empty());
    CHECK(refused.err.find("tq: cannot connect: 127.0.0.1:" + port) != std::string::npos);

    auto bad_flag = run_program({TQ_PATH, "--port", "not-a-port", "LIST"});
    CHECK(bad_flag.status == 2);
    CHECK(bad_flag.err ==
          "tq: --port: expected a whole number from 1 to 65535, got 'not-a-port'\n");
    auto too_many = run_program({TQ_PATH, "--work", "q", "--concurrency", "1001", "--", "true"});
    CHECK(too_many.status == 2);
    CHECK(too_many.err ==
          "tq: --concurrency: expected a whole number from 1 to 1000, got '1001'\n");

    // A port in --host is not taken for a host name: tq says where it goes.
    auto host_port = run_program({TQ_PATH, "--host", "127.0.0.1:" + port, "LIST"});
    CHECK(host_port.status == 2);
    CHECK(host_port.err ==
          "tq: --host takes a name or an address, without a port: --host "
          "127.0.0.1 --port " +
              port + "\n");
    // An empty command, or a comment, sends nothing and says so.
    for (const std::string& nothing :
         {std::string(""), std::string("  "), std::string("#x"), std::string("\r")}) {
      auto empty = run_program({TQ_PATH, "--port", port, nothing});
      CHECK(empty.status == 2);
      CHECK(empty.err.find("tq: the command is empty") == 0);
    }
  }

  TEST_CASE("one command - a connection lost under it is reported once, with no reconnect") {
    TqdProcess tqd;
    REQUIRE(tqd.client().create("q").ok());
    tq::testing::CuttingProxy proxy(tqd.port());
    proxy.cut_after_next_request();
    auto lost = run_program({TQ_PATH, "--port", std::to_string(proxy.port()), "ENQUEUE", "q", "x"});
    CHECK(lost.status == 2);
    CHECK(lost.err.find("tq: ENQUEUE may or may not have run\n") != std::string::npos);
    // No next command to reconnect for: no second connection, no advice about one.
    CHECK(proxy.connections_accepted() == 1);
    CHECK(lost.err.find("reconnect") == std::string::npos);
    CHECK(lost.err.find("next command") == std::string::npos);
  }

  TEST_CASE("one command - ERROR SHUTDOWN exits 2, as a server that cannot be reached does") {
    // The command was not run: a script retries it once the server is back.
    // It exited 1, an ordinary error, where the README promised 2.
    TqdProcess tqd;
    REQUIRE(tqd.client().create("q").ok());
    ProgramResult waited;
    std::thread worker([&] { waited = tq_run(tqd, {"DEQUEUE", "q", "WAIT", "20s"}); });
    auto admin = tqd.client();
    for (int i = 0; i < 500; ++i) {
      auto stats = admin.stats();
      if (stats.ok() && tq::client::field(*stats, "waiters") == "1") break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling tqd, not a sync
    }
    CHECK(tqd.stop(SIGTERM) == 0);
    worker.join();
    CHECK(waited.status == 2);
    CHECK(waited.err.find("ERROR SHUTDOWN") != std::string::npos);
    CHECK(
        waited.err.find("tq: the server closed the connection (SHUTDOWN); DEQUEUE was not run\n") !=
        std::string::npos);
  }

  TEST_CASE("one command - past limits.max_connections it prints the server's ERROR MAXCONN") {
    tq::testing::TqdOptions options;
    options.config_yaml = "limits:\n  max_connections: 1\n";
    TqdProcess tqd(options);
    auto held = tqd.client();
    REQUIRE(held.ping().ok());
    // Whether the refusal comes before tq sends PING or after, it is the
    // server's answer (exit 1), not "cannot connect" (2). Tried a few times:
    // which comes first is up to the scheduler.
    for (int i = 0; i < 5; ++i) {
      auto refused = tq_run(tqd, {"PING"});
      CHECK(refused.status == 1);
      CHECK(refused.out.empty());
      CHECK(refused.err.rfind("ERROR MAXCONN too many connections (limits.max_connections is 1)\n",
                              0) == 0);
      CHECK(refused.err.find("reconnect") == std::string::npos);
    }
  }

  TEST_CASE("commands from standard input - a lost connection stops them and says so") {
    TqdProcess tqd;
    REQUIRE(tqd.client().create("q").ok());
    tq::testing::CuttingProxy proxy(tqd.port());
    REQUIRE(run_program({TQ_PATH, "--port", std::to_string(proxy.port()), "PING"}).status == 0);
    proxy.cut_after_next_request();
    auto lost = run_program({TQ_PATH, "--port", std::to_string(proxy.port())},
                            "ENQUEUE q x\nENQUEUE q never-sent\n");
    CHECK(lost.status == 2);
    CHECK(lost.err.find("tq: ENQUEUE may or may not have run\n") != std::string::npos);
    CHECK(lost.err.find("tq: the script stops here: no line after this one is run\n") !=
          std::string::npos);
    CHECK(lost.err.find("reconnect") == std::string::npos);
    CHECK(proxy.connections_accepted() == 2);  // the PING's, then the script's
    // The first ENQUEUE reached tqd (its reply was cut); the second was never sent.
    auto stats = tqd.client().stats("q");
    REQUIRE(stats.ok());
    CHECK(tq::client::field(*stats, "ready") == "1");
  }

  TEST_CASE("commands from standard input - closed as idle between two, tq says why and goes on") {
    tq::testing::TqdOptions options;
    options.config_yaml = "limits:\n  idle_timeout: 1s\n";
    TqdProcess tqd(options);
    const std::string port = std::to_string(tqd.port());
    // The pause is the condition under test (past the timeout and the
    // once-a-second check that enforces it), not a wait for something.
    auto result =
        run_program({"/bin/sh", "-c", "{ echo PING; sleep 3; echo PING; } | \"$0\" --port \"$1\"",
                     TQ_PATH, port});
    CHECK(result.status == 0);
    CHECK(result.out == "OK PONG\nOK PONG\n");
    CHECK(result.err ==
          "ERROR TIMEOUT closing the connection: no request came for 1 second "
          "(limits.idle_timeout)\ntq: the server had closed the connection; reconnected to "
          "127.0.0.1:" +
              port + "\n");
  }

  TEST_CASE("options go before the command - a misplaced or unknown one is refused, -- sends all") {
    TqdProcess tqd;
    REQUIRE(tq_run(tqd, {"CREATE", "scr"}).status == 0);

    // Not "hello --port 19301" sent as the payload: refused, nothing sent.
    auto misplaced = tq_run(tqd, {"ENQUEUE", "scr", "hello", "--port", "19301"});
    CHECK(misplaced.status == 2);
    CHECK(misplaced.out.empty());
    CHECK(misplaced.err.find("tq: '--port' comes after the command; options go before it") !=
          std::string::npos);
    CHECK(misplaced.err.find("put -- before the command") != std::string::npos);
    CHECK(tq_run(tqd, {"LIST", "--raw"}).status == 2);
    CHECK(tq_run(tqd, {"LIST", "--timeout=1s"}).status == 2);
    // The way out keeps the options given before it, by name (a value may
    // be a password): not "tq --count ... emails", which runs COUNT.
    auto stat = run_program({TQ_PATH, "--password", "s3cret", "--stat", "emails", "--count", "2"});
    CHECK(stat.status == 2);
    CHECK(stat.err.find("options go before it: tq --password ... --stat --count ... emails ...") !=
          std::string::npos);
    CHECK(stat.err.find("s3cret") == std::string::npos);
    CHECK(tqd.client().peek("scr").value().empty());

    // 0 is a duration, but not one these take: the message says so.
    auto zero = tq_run(tqd, {"--timeout", "0", "PING"});
    CHECK(zero.status == 2);
    CHECK(zero.err == "tq: --timeout: expected a duration above 0, such as 5s or 500ms, got '0'\n");

    // An option that took the command as its value says so, rather than
    // running no command at all.
    auto swallowed = tq_run(tqd, {"--password", "PING"});
    CHECK(swallowed.status == 2);
    CHECK(swallowed.out.empty());
    CHECK(swallowed.err ==
          "tq: --password took 'PING' as its value, and no command is left: give the value "
          "first (tq --password <value> PING), or write --password=PING if that is the value\n");
    // Written with '=', or followed by a command, the value is taken as given.
    CHECK(tq_run(tqd, {"--host", "127.0.0.1", "PING"}).status == 0);
    CHECK(tq_run(tqd, {"--timeout", "PING"}).err.find("took 'PING'") != std::string::npos);
    CHECK(tq_run(tqd, {"--password", "list"}).err.find("took 'list'") != std::string::npos);

    auto unknown = tq_run(tqd, {"--bogus", "LIST"});
    CHECK(unknown.status == 2);
    CHECK(unknown.out.empty());
    CHECK(unknown.err.find("tq: unknown option '--bogus'") != std::string::npos);

    // After --, every word is the command's, options or not.
    auto verbatim = tq_run(tqd, {"--", "ENQUEUE", "scr", "hello", "--port", "19301"});
    CHECK(verbatim.status == 0);
    CHECK(verbatim.out == "OK 1\n");
    auto jobs = tqd.client().peek("scr");
    REQUIRE(jobs.ok());
    REQUIRE(jobs->size() == 1);
    CHECK(jobs->front().payload == "hello --port 19301");
    // A word that only looks like an option is part of the command.
    CHECK(tq_run(tqd, {"ENQUEUE", "scr", "-5", "--verbose"}).out == "OK 2\n");

    auto help = run_program({TQ_PATH, "--help"});
    CHECK(help.status == 0);
    CHECK(help.out.find("Usage: tq [OPTIONS] [--] [COMMAND...]") != std::string::npos);
    auto version = run_program({TQ_PATH, "--version"});  // as tqd --version
    CHECK(version.status == 0);
    CHECK(version.out == "tq " TQ_VERSION "\n");
  }

  TEST_CASE("a wrong or missing password is the server's ERROR NOAUTH - exit 1, not 2") {
    tq::testing::TqdOptions options;
    options.config_yaml = "auth:\n  password: s3cret\n";
    TqdProcess tqd(options);

    auto missing = tq_run(tqd, {"LIST"});
    CHECK(missing.status == 1);
    CHECK(missing.out.empty());
    CHECK(missing.err.rfind("ERROR NOAUTH", 0) == 0);
    CHECK(missing.err.find("tq: the server needs a password: give it with --password or "
                           "TQ_PASSWORD\n") != std::string::npos);

    auto wrong = tq_run(tqd, {"--password", "guess", "LIST"});
    CHECK(wrong.status == 1);
    CHECK(wrong.out.empty());
    CHECK(wrong.err.rfind("ERROR NOAUTH wrong password\n", 0) == 0);
    CHECK(wrong.err.find("refused the password") != std::string::npos);
    CHECK(tq_run(tqd, {"--password", "guess"}, "LIST\n").status == 1);  // commands from input
    // An empty --password turns TQ_PASSWORD off.
    auto emptied =
        run_program({TQ_PATH, "--port", std::to_string(tqd.port()), "--password", "", "LIST"}, {},
                    {"TQ_PASSWORD=s3cret"});
    CHECK(emptied.status == 1);
    CHECK(emptied.err.rfind("ERROR NOAUTH", 0) == 0);

    std::vector<std::string> with_env = {TQ_PATH, "--port", std::to_string(tqd.port()), "LIST"};
    auto right = run_program(with_env, {}, {"TQ_PASSWORD=s3cret"});
    CHECK(right.status == 0);
    CHECK(right.out == "OK\n");
  }

  TEST_CASE("--stat - a wrong or missing password gets the same hint as a command - exit 1") {
    tq::testing::TqdOptions options;
    options.config_yaml = "auth:\n  password: s3cret\n";
    TqdProcess tqd(options);

    auto missing = tq_run(tqd, {"--stat", "--count", "1"});
    CHECK(missing.status == 1);
    CHECK(missing.err.rfind("ERROR NOAUTH", 0) == 0);
    CHECK(missing.err.find("tq: the server needs a password: give it with --password or "
                           "TQ_PASSWORD\n") != std::string::npos);

    auto wrong = tq_run(tqd, {"--password", "guess", "--stat", "--count", "1"});
    CHECK(wrong.status == 1);
    CHECK(wrong.err.rfind("ERROR NOAUTH wrong password\n", 0) == 0);
    CHECK(wrong.err.find("tq: the server refused the password given with --password or "
                         "TQ_PASSWORD\n") != std::string::npos);
  }

  TEST_CASE("an admin command with the other password is ERROR NOPERM and a hint - exit 1") {
    tq::testing::TqdOptions options;
    options.config_yaml = "auth:\n  password: worker\n  admin_password: boss\n";
    TqdProcess tqd(options);
    CHECK(tq_run(tqd, {"--password", "worker", "CREATE", "q"}).out == "OK created q\n");
    auto denied = tq_run(tqd, {"--password", "worker", "DROP", "q"});
    CHECK(denied.status == 1);
    CHECK(denied.out.empty());
    CHECK(denied.err.rfind("ERROR NOPERM DROP is an admin command", 0) == 0);
    CHECK(denied.err.find("tq: DROP is an admin command: give the admin password with "
                          "--password or TQ_PASSWORD\n") != std::string::npos);
    auto admin = tq_run(tqd, {"--password", "boss", "DROP", "q"});
    CHECK(admin.status == 0);
    CHECK(admin.out == "OK dropped q\n");
  }

  TEST_CASE("--stat prints a line per interval, a queue's too, and stops after --count") {
    TqdProcess tqd;
    auto c = tqd.client();
    REQUIRE(c.create("emails").ok());
    for (int i = 0; i < 3; ++i) REQUIRE(c.enqueue("emails", "job").ok());

    auto server = tq_run(tqd, {"--stat", "--interval", "50ms", "--count", "2"});
    CHECK(server.status == 0);
    CHECK(server.err.empty());
    std::istringstream lines(server.out);
    std::vector<std::string> rows;
    for (std::string line; std::getline(lines, line);) rows.push_back(line);
    REQUIRE(rows.size() == 3);  // the titles once (not a terminal), then two rows
    CHECK(rows[0].rfind("time", 0) == 0);
    CHECK(rows[0].find("ready    wait delayed  leased") != std::string::npos);
    std::istringstream second(rows[2]);
    std::string clock, ready, wait, delayed, leased, dead, enqueued_rate;
    second >> clock >> ready >> wait >> delayed >> leased >> dead >> enqueued_rate;
    CHECK(clock.size() == 8);  // HH:MM:SS
    CHECK(ready == "3");
    // The three have waited a moment: a duration the server sent, not "?".
    CHECK((wait.ends_with("ms") || wait.ends_with("s") || wait == "0"));
    CHECK(enqueued_rate == "0");  // nothing enqueued between the two rows

    auto queue = tq_run(tqd, {"--stat", "--interval", "50ms", "--count", "1", "emails"});
    CHECK(queue.status == 0);
    CHECK(queue.out.find("held") != std::string::npos);

    auto missing = tq_run(tqd, {"--stat", "--count", "1", "nope"});
    CHECK(missing.status == 1);
    CHECK(missing.out.empty());
    CHECK(missing.err.rfind("ERROR NOQUEUE", 0) == 0);

    CHECK(tq_run(tqd, {"--count", "1", "LIST"}).status == 2);  // --count alone
    CHECK(tq_run(tqd, {"--stat", "--interval", "soon"}).status == 2);
    CHECK(tq_run(tqd, {"--stat", "a", "b"}).status == 2);
  }

  TEST_CASE("--stat=emails is --stat emails - a flag given a value says it takes none") {
    TqdProcess tqd;
    REQUIRE(tqd.client().create("emails").ok());

    auto joined = tq_run(tqd, {"--stat=emails", "--interval", "50ms", "--count", "1"});
    CHECK(joined.status == 0);
    CHECK(joined.err.empty());
    CHECK(joined.out.find("held") != std::string::npos);  // the queue's line, not the server's
    auto missing = tq_run(tqd, {"--stat=nope", "--count", "1"});
    CHECK(missing.status == 1);
    CHECK(missing.err.rfind("ERROR NOQUEUE", 0) == 0);
    // Not a way to turn it off (or on): "1" is a queue name as any other.
    auto number = tq_run(tqd, {"--stat=1", "--count", "1"});
    CHECK(number.status == 1);
    CHECK(number.out.empty());
    for (const std::vector<std::string>& two :
         {std::vector<std::string>{"--stat=emails", "sms"}, {"--stat=emails", "--stat=sms"}}) {
      auto both = tq_run(tqd, two);
      CHECK(both.status == 2);
      CHECK(both.err == "tq: --stat takes one queue name at most (tq --stat emails)\n");
    }
    // Given twice, as a flag could be, it is still one --stat.
    auto twice = tq_run(tqd, {"--stat", "--stat=emails", "--count", "1"});
    CHECK(twice.status == 0);
    CHECK(twice.out.find("held") != std::string::npos);
    CHECK(tq_run(tqd, {"--stat", "--stat", "--count", "1"}).status == 0);

    // CLI11 would say only "Could not convert: --raw = x", and take
    // --raw=false for no --raw.
    for (const std::string flag : {"--raw", "--tls", "--tls-insecure", "--no-color"}) {
      for (const std::string value : {"x", "false", "1"}) {
        INFO(flag << "=" << value);
        auto valued = tq_run(tqd, {flag + "=" + value, "PING"});
        CHECK(valued.status == 2);
        CHECK(valued.out.empty());
        CHECK(valued.err ==
              "tq: " + flag + " takes no value: write " + flag + " alone, or leave it out\n");
      }
    }
    CHECK(tq_run(tqd, {"--raw", "PING"}).out == "OK PONG\n");
    // An option given without its value, last, before -- or empty after
    // '=', says which and what it takes (CLI11 would say only "--port: 1
    // required UINT missing").
    for (const std::string option :
         {"--host", "--port", "--timeout", "--password", "--tls-ca", "--tls-cert", "--tls-key",
          "--tls-server-name", "--interval", "--work", "--concurrency", "--job-timeout",
          "--fail-exit", "--count"}) {
      INFO(option);
      auto last = tq_run(tqd, {option});
      CHECK(last.status == 2);
      CHECK(last.out.empty());
      CHECK(last.err.rfind("tq: " + option + " takes a value: ", 0) == 0);
      CHECK(last.err.find("such as " + option + " ") != std::string::npos);
      CHECK(std::count(last.err.begin(), last.err.end(), '\n') == 1);
      CHECK(tq_run(tqd, {option, "--", "./program"}).err == last.err);
      auto empty = tq_run(tqd, {option + "=", "PING"});  // given, but empty
      CHECK(empty.status == 2);
      CHECK(empty.out.empty());
      CHECK(empty.err == "tq: " + option + "= has no value after the '=': " +
                             last.err.substr(("tq: " + option + " takes a value: ").size()));
    }
    CHECK(tq_run(tqd, {"--port"}).err ==
          "tq: --port takes a value: a port number, such as --port 9000\n");
    // A word after an option that takes one is its value, whatever it looks like.
    CHECK(tq_run(tqd, {"--timeout", "--raw=x", "PING"}).err ==
          "tq: --timeout: expected a duration above 0, such as 5s or 500ms, got '--raw=x'\n");
  }

  TEST_CASE("--stat - Ctrl-C ends a wait for a server that does not answer STATS, with 0") {
    // A stand-in that takes the connection, reads the STATS and says
    // nothing, until tq closes the connection.
    const tq::testing::LoopbackSocket bound = tq::testing::bind_loopback_socket();
    REQUIRE(::listen(bound.fd, 4) == 0);
    std::atomic<bool> asked{false};
    std::thread silent([&] {
      const int conn = ::accept(bound.fd, nullptr, nullptr);
      if (conn < 0) return;
      std::string got;
      char buf[256];
      ssize_t n;
      while ((n = ::recv(conn, buf, sizeof buf, 0)) > 0) {
        got.append(buf, static_cast<size_t>(n));
        if (got.find("STATS\n") != std::string::npos) asked = true;
      }
      ::close(conn);
    });
    int status = -1;
    {
      tq::testing::BackgroundProcess tq(
          {TQ_PATH, "--port", std::to_string(bound.port), "--timeout", "60s", "--stat"});
      const auto give_up = std::chrono::steady_clock::now() + 10s;
      while (!asked && std::chrono::steady_clock::now() < give_up)
        std::this_thread::sleep_for(10ms);
      REQUIRE(asked);
      status = tq.stop(SIGINT, 10s);
    }  // killed here if it did not stop
    ::shutdown(bound.fd, SHUT_RDWR);
    silent.join();
    ::close(bound.fd);
    CHECK(status == 0);
  }

  TEST_CASE("one command - PUT takes its body from standard input and --raw prints the wire") {
    TqdProcess tqd;
    REQUIRE(tq_run(tqd, {"CREATE", "emails"}).status == 0);
    auto put = tq_run(tqd, {"PUT", "emails", "9", "PRIORITY", "3"}, "two\nlines");
    CHECK(put.status == 0);
    CHECK(put.out == "OK 1\n");
    auto echoed = tq_run(tqd, {"PUT", "emails", "5"}, "hello\n");  // echo's newline is not body
    CHECK(echoed.status == 0);
    auto wrong = tq_run(tqd, {"PUT", "emails", "3"}, "too long");
    CHECK(wrong.status == 1);
    CHECK(wrong.err.find("the body has 8 bytes but PUT announced 3") != std::string::npos);

    auto raw = tq_run(tqd, {"--raw", "PEEK", "emails"});
    CHECK(raw.status == 0);
    CHECK(raw.out ==
          "OK 2\n"
          "JOB 1 9 queue=emails state=ready attempts=0 priority=3\ntwo\nlines\n"
          "JOB 2 5 queue=emails state=ready attempts=0 priority=0\nhello\n");
  }

  TEST_CASE(
      "commands from standard input - no prompt, ERROR does not stop them, exit 1 after one") {
    TqdProcess tqd;
    const std::string script =
        "# a comment, then a blank line\n"
        "\n"
        "CREATE orders\n"
        "ENQUEUE nowhere x\n"
        "ENQUEUE orders Ship order 7\n"
        "PUT orders 11\n"
        "hello\n"
        "world\n"
        "QUEUES\n"
        "DEQUEUE orders COUNT 5\n"
        "DEQUEUE orders\n";
    auto result = tq_run(tqd, {}, script);
    CHECK(result.status == 1);
    CHECK(result.out ==
          "OK created orders\n"
          "OK 1\n"
          "OK 2\n"
          "queue   ready  held  delayed  leased  dead  paused\n"
          "orders      2     0        0       0     0       0\n"
          "job 1  queue=orders attempts=1 lease=1\n"
          "  Ship order 7\n"
          "job 2  queue=orders attempts=1 lease=1\n"
          "  hello\n"
          "  world\n"
          "(no jobs: queue 'orders' has no ready job)\n");
    CHECK(result.err == "ERROR NOQUEUE queue 'nowhere' does not exist; CREATE it first\n");
  }

  TEST_CASE("commands from standard input - a byte count past 2^64 is refused, the rest runs") {
    TqdProcess tqd;
    REQUIRE(tqd.client().create("q").ok());
    // Sent, it would have the server drop every later line as its body.
    auto run = tq_run(tqd, {}, "PUT q 99999999999999999999999\nPING\n");
    CHECK(run.status == 1);
    CHECK(run.out == "OK PONG\n");
    CHECK(run.err.find("tq: the byte count 99999999999999999999999 is past 2^64 - 1") !=
          std::string::npos);
  }

  TEST_CASE("commands from standard input - CRLF line ends, PUT bodies' too, are line ends") {
    TqdProcess tqd;
    auto result = tq_run(tqd, {}, "CREATE q\r\nPUT q 6\r\ntwo\r\nab\r\nDEQUEUE q COUNT 1\r\n");
    CHECK(result.status == 0);
    CHECK(result.err.empty());
    CHECK(result.out == "OK created q\nOK 1\njob 1  queue=q attempts=1 lease=1\n  two\n  ab\n");

    // In a "\n" file, a '\r' that ends a body line is part of the body.
    auto lf = tq_run(tqd, {}, "PUT q 5\nab\r\nc\nQUEUES\n");
    CHECK(lf.status == 0);
    CHECK(lf.err.empty());
    auto job = tqd.client().dequeue("q");
    REQUIRE((job.ok() && job->has_value()));
    CHECK((*job)->payload == "ab\r\nc");
  }

  TEST_CASE("commands from standard input - a DEQUEUE that finds nothing is no error - exit 0") {
    TqdProcess tqd;
    auto result = tq_run(tqd, {}, "CREATE q\nDEQUEUE q\nDEQUEUE q COUNT 2\n");
    CHECK(result.status == 0);
    CHECK(result.out == "OK created q\n(no jobs: queue 'q' has no ready job)\n(no jobs)\n");
    CHECK(result.err.empty());
  }

  TEST_CASE("commands from standard input - exit 0 when every reply is OK - quit ends them") {
    TqdProcess tqd;
    auto result = tq_run(tqd, {}, "CREATE a\nPING\nquit\nCREATE never-sent\n");
    CHECK(result.status == 0);
    CHECK(result.out == "OK created a\nOK PONG\n");
    CHECK(tqd.client().list().value() == std::vector<std::string>{"a"});
  }
}

}  // namespace tq_cli_test
