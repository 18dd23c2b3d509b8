// Lost connections: what the client repeats after reconnecting (reads,
// DEQUEUE, enqueues with a dedup key) and what it never repeats (other
// writes), proven with a proxy that cuts a connection after tqd has carried
// out a request but before its reply gets through.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <string_view>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>

#include <thread>

#include "client/client.h"
#include "tests/client/cutting_proxy.h"
#include "tests/support/tqd_process.h"

namespace reconnect_test {

using namespace std::chrono_literals;
using tq::client::CancelToken;
using tq::client::Client;
using tq::client::ErrorKind;
using tq::client::Options;
using tq::protocol::ErrorCode;
using tq::testing::CuttingProxy;
using tq::testing::TqdProcess;

namespace {

Options through(uint16_t port, int reconnect_attempts) {
  Options options;
  options.port = port;
  options.reconnect.attempts = reconnect_attempts;
  options.reconnect.first_delay = 10ms;
  return options;
}

// For a stand-in server: reads from `conn` until `lines` line ends came,
// or the client closed.
void read_lines(int conn, size_t lines) {
  char buf[4096];
  size_t seen = 0;
  ssize_t n = 0;
  while (conn >= 0 && seen < lines && (n = ::recv(conn, buf, sizeof buf, 0)) > 0) {
    seen += static_cast<size_t>(std::count(buf, buf + n, '\n'));
  }
}

// A stand-in for tqd on a loopback port, for one connection: it accepts
// it, stops listening (connecting again is refused), reads `lines` request
// lines, sends `replies` and closes. Join `thread` before the port goes.
struct StandIn {
  uint16_t port = 0;
  std::thread thread;
};
StandIn stand_in(size_t lines, std::string replies = {}) {
  const tq::testing::LoopbackSocket bound = tq::testing::bind_loopback_socket();
  const int listener = bound.fd;
  REQUIRE(::listen(listener, 4) == 0);
  return {bound.port, std::thread([listener, lines, replies = std::move(replies)] {
            const int conn = ::accept(listener, nullptr, nullptr);
            ::close(listener);
            read_lines(conn, lines);
            if (conn < 0) return;
            if (!replies.empty()) (void)::send(conn, replies.data(), replies.size(), MSG_NOSIGNAL);
            ::close(conn);
          })};
}

Client connect_with(const Options& options) {
  auto client = Client::connect(options);
  REQUIRE(client.ok());
  return std::move(client).value();
}

// For a stand-in with a listener of its own: the client's next connection,
// or -1 after 10 s without one (so a missing fix fails, not hangs).
int accept_next(int listener) {
  pollfd p{listener, POLLIN, 0};
  return ::poll(&p, 1, 10'000) == 1 ? ::accept(listener, nullptr, nullptr) : -1;
}

// put_many of "job a" and "job b" with three reconnect attempts, to a
// stand-in on `port` run by `server`, joined after; a result for each.
std::vector<tq::client::Result<uint64_t>> put_a_and_b(uint16_t port, std::thread& server) {
  const std::vector<std::string_view> views = {"job a", "job b"};
  auto ids = [&] {
    Client c = connect_with(through(port, 3));
    return c.put_many("q", views);
  }();
  server.join();
  REQUIRE(ids.ok());
  REQUIRE(ids->size() == 2);
  return std::move(ids).value();
}

std::string queue_stat(const TqdProcess& tqd, const std::string& queue, const std::string& name) {
  auto stats = tqd.client().stats(queue);
  REQUIRE(stats.ok());
  return tq::client::field(*stats, name);
}

// The server's FIN reaches us a moment after its last reply; wait for it
// (bounded) so a test knows which path the next call takes.
void wait_until_closed_by_server(const Client& client) {
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (client.connected() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  REQUIRE_FALSE(client.connected());
}

}  // namespace

TEST_SUITE("client reconnect") {
  TEST_CASE("without a reconnect policy a lost connection stays lost until reconnect()") {
    TqdProcess tqd;
    Client c = connect_with(through(tqd.port(), 0));
    REQUIRE(c.request("QUIT").ok());
    wait_until_closed_by_server(c);
    // Known to be closed: the call fails before sending, its outcome known.
    auto lost = c.ping();
    REQUIRE_FALSE(lost.ok());
    CHECK(lost.error().kind == ErrorKind::kConnect);
    CHECK_FALSE(lost.error().outcome_unknown());
    CHECK(lost.error().message.find("the server closed the connection") != std::string::npos);
    auto still = c.ping();
    REQUIRE_FALSE(still.ok());
    CHECK(still.error().kind == ErrorKind::kConnect);  // nothing was sent
    CHECK_FALSE(still.error().outcome_unknown());
    REQUIRE(c.reconnect().ok());
    CHECK(c.ping().ok());
  }

  TEST_CASE("with a policy a connection the server closed is replaced before an ACK is sent") {
    TqdProcess tqd;
    Client c = connect_with(through(tqd.port(), 3));
    REQUIRE(c.create("q").ok());
    REQUIRE(c.enqueue("q", "job").ok());
    auto job = c.dequeue("q");
    REQUIRE((job.ok() && job->has_value()));
    REQUIRE(c.request("QUIT").ok());
    wait_until_closed_by_server(c);
    // The lease belongs to the job, not the connection: a new one may ack it.
    REQUIRE(c.ack((*job)->id).ok());
    CHECK(queue_stat(tqd, "q", "acked_total") == "1");
  }

  TEST_CASE("an enqueue whose reply is lost is sent again with its made-up key and stored once") {
    TqdProcess tqd;
    CuttingProxy proxy(tqd.port());
    Client c = connect_with(through(proxy.port(), 3));
    REQUIRE(c.create("q").ok());
    proxy.cut_after_next_request();
    auto put = c.put("q", "exactly once");
    REQUIRE(put.ok());
    CHECK(proxy.cuts_done() == 1);
    CHECK(proxy.connections_accepted() == 2);
    CHECK_FALSE(put->duplicate);  // the only earlier holder of the key was this call
    CHECK(queue_stat(tqd, "q", "ready") == "1");
    CHECK(queue_stat(tqd, "q", "enqueued_total") == "1");
    CHECK(queue_stat(tqd, "q", "duplicates_total") == "1");
    auto job = tqd.client().dequeue("q");
    REQUIRE((job.ok() && job->has_value()));
    CHECK((*job)->id == put->id);
  }

  TEST_CASE("put_many: a round whose replies are lost is sent again, and each job stored once") {
    TqdProcess tqd;
    CuttingProxy proxy(tqd.port());
    Client c = connect_with(through(proxy.port(), 3));
    REQUIRE(c.create("q").ok());
    std::vector<std::string> payloads;
    for (int i = 0; i < 50; ++i) payloads.push_back("job " + std::to_string(i));
    std::vector<std::string_view> views(payloads.begin(), payloads.end());
    proxy.cut_after_next_request();
    auto ids = c.put_many("q", views);
    REQUIRE(ids.ok());
    CHECK(proxy.cuts_done() == 1);
    CHECK(proxy.connections_accepted() == 2);
    REQUIRE(ids->size() == 50);
    CHECK(queue_stat(tqd, "q", "ready") == "50");
    CHECK(queue_stat(tqd, "q", "enqueued_total") == "50");
    auto jobs = tqd.client().dequeue_many({"q"}, {.count = 100});
    REQUIRE(jobs.ok());
    REQUIRE(jobs->size() == 50);
    for (size_t i = 0; i < 50; ++i) {
      REQUIRE((*ids)[i].ok());
      CHECK((*jobs)[i].id == *(*ids)[i]);
      CHECK((*jobs)[i].payload == payloads[i]);
    }
  }

  TEST_CASE("a lost reply, then no server to reconnect to - the outcome stays unknown") {
    // A server that reads one request, then goes away without answering:
    // the request may have been carried out, so failing to reconnect
    // afterwards must not read as "nothing was sent" (the producer example
    // said "not stored" of a job tqd had stored).
    StandIn server = stand_in(1);  // a request came; from then on, connecting is refused
    Client c = connect_with(through(server.port, 2));
    auto put = c.put("q", "maybe stored");
    server.thread.join();
    REQUIRE_FALSE(put.ok());
    CHECK(put.error().outcome_unknown());
    CHECK(put.error().message.find("then: ") != std::string::npos);  // and why it stopped
  }

  TEST_CASE(
      "put_many with no server to reconnect to - the broken round's jobs say so, no more sent") {
    // As above: a server that reads, then goes away without answering.
    StandIn server = stand_in(1);
    Client c = connect_with(through(server.port, 2));
    std::vector<std::string_view> views(Client::kPutRound + 10, "maybe stored");
    auto ids = c.put_many("q", views);
    server.thread.join();
    REQUIRE(ids.ok());                          // the call's arguments were fine
    REQUIRE(ids->size() == Client::kPutRound);  // the second round was never sent
    for (const auto& id : *ids) {
      REQUIRE_FALSE(id.ok());
      CHECK(id.error().outcome_unknown());
    }
  }

  TEST_CASE(
      "a batch the server answered in part before closing - the answers kept, the rest not run") {
    // tqd answers what it ran, then says why it closes (ERROR TIMEOUT, as
    // for a request cut off by limits.request_timeout; ERROR SHUTDOWN):
    // the jobs it stored must not be reported as not run. Without a
    // reconnect policy the rest are not sent again.
    StandIn server = stand_in(  // each PUT is a line and a body line
        6,
        "OK 1\r\nOK 2\r\nERROR TIMEOUT closing the connection: a request was started and not "
        "finished within 1 second (limits.request_timeout)\r\n");
    std::vector<std::string_view> views(3, "a job");
    auto ids = [&] {
      Client c = connect_with(through(server.port, 0));
      return c.put_many("q", views);
    }();  // closed: the server's read ends even if fewer requests came
    server.thread.join();
    REQUIRE(ids.ok());
    REQUIRE(ids->size() == 3);
    REQUIRE((*ids)[0].ok());
    CHECK(*(*ids)[0] == 1);
    REQUIRE((*ids)[1].ok());
    CHECK(*(*ids)[1] == 2);
    REQUIRE_FALSE((*ids)[2].ok());
    CHECK((*ids)[2].error().is(tq::protocol::ErrorCode::kTimeout));
    CHECK_FALSE((*ids)[2].error().outcome_unknown());
  }

  TEST_CASE(
      "put_many with a policy sends again, on a new connection, what a stopping server refused") {
    // A stand-in for a tqd that stops partway through a round: it stores 3
    // of 5 PUTs, answers the other 2 ERROR SHUTDOWN (not run) and closes;
    // then, restarted, stores what comes. The producer once reported those 2
    // as failed and exited, where a restart is what a reconnect policy is for.
    const tq::testing::LoopbackSocket bound = tq::testing::bind_loopback_socket();
    REQUIRE(::listen(bound.fd, 4) == 0);
    std::string heard_again;
    std::thread server([&] {
      int conn = ::accept(bound.fd, nullptr, nullptr);
      read_lines(conn, 10);  // 5 PUTs, each a line and a body line
      const std::string stopping =
          "OK 1\nOK 2\nOK 3\nERROR SHUTDOWN server is stopping\nERROR SHUTDOWN server is "
          "stopping\n";
      (void)::send(conn, stopping.data(), stopping.size(), MSG_NOSIGNAL);
      ::close(conn);
      pollfd next{bound.fd, POLLIN, 0};
      conn = ::poll(&next, 1, 10'000) == 1 ? ::accept(bound.fd, nullptr, nullptr) : -1;
      ::close(bound.fd);
      char buf[4096];
      ssize_t n = 0;
      while (conn >= 0 && std::count(heard_again.begin(), heard_again.end(), '\n') < 4 &&
             (n = ::recv(conn, buf, sizeof buf, 0)) > 0) {
        heard_again.append(buf, static_cast<size_t>(n));
      }
      const std::string stored = "OK 4\nOK 5\n";
      (void)::send(conn, stored.data(), stored.size(), MSG_NOSIGNAL);
      read_lines(conn, 1);  // until the client closes
      ::close(conn);
    });
    const std::vector<std::string> payloads = {"job a", "job b", "job c", "job d", "job e"};
    const std::vector<std::string_view> views(payloads.begin(), payloads.end());
    auto ids = [&] {
      Client c = connect_with(through(bound.port, 2));
      return c.put_many("q", views);
    }();
    server.join();
    REQUIRE(ids.ok());
    REQUIRE(ids->size() == 5);
    for (uint64_t i = 0; i < 5; ++i) {
      REQUIRE((*ids)[i].ok());
      CHECK(*(*ids)[i] == i + 1);
    }
    // Only the refused two went again.
    CHECK(heard_again.find("\njob d\n") != std::string::npos);
    CHECK(heard_again.find("\njob e\n") != std::string::npos);
    CHECK(heard_again.find("job c") == std::string::npos);
  }

  TEST_CASE("put_many: a job refused after a lost round goes again with the key it was sent with") {
    // The first connection breaks after the server read the round: each job
    // may be stored. The round goes again (same keys); the server, stopping,
    // answers the first (DUPLICATE: stored by the first send) and refuses the
    // second, which the first send may have stored too. Sent once more, it
    // must carry the same key, or a job stored by the first send is stored
    // twice.
    const tq::testing::LoopbackSocket bound = tq::testing::bind_loopback_socket();
    REQUIRE(::listen(bound.fd, 4) == 0);
    std::vector<std::string> heard(3);
    std::thread server([&] {
      auto hear = [&](int conn, size_t lines, std::string* into) {
        char buf[4096];
        ssize_t n = 0;
        while (conn >= 0 &&
               static_cast<size_t>(std::count(into->begin(), into->end(), '\n')) < lines &&
               (n = ::recv(conn, buf, sizeof buf, 0)) > 0) {
          into->append(buf, static_cast<size_t>(n));
        }
      };
      auto next = [&] { return accept_next(bound.fd); };
      int conn = next();
      hear(conn, 4, &heard[0]);  // both PUTs read (and, say, stored); no reply gets out
      ::close(conn);
      conn = next();
      hear(conn, 4, &heard[1]);
      const std::string stopping = "OK 1 DUPLICATE\nERROR SHUTDOWN server is stopping\n";
      (void)::send(conn, stopping.data(), stopping.size(), MSG_NOSIGNAL);
      ::close(conn);
      conn = next();
      ::close(bound.fd);
      hear(conn, 2, &heard[2]);
      const std::string stored = "OK 2 DUPLICATE\n";
      (void)::send(conn, stored.data(), stored.size(), MSG_NOSIGNAL);
      read_lines(conn, 1);  // until the client closes
      ::close(conn);
    });
    auto ids = put_a_and_b(bound.port, server);
    auto key_of_b = [](const std::string& wire) {
      const size_t body = wire.find("\njob b\n");
      if (body == std::string::npos) return std::string("(job b not sent)");
      const size_t line = wire.rfind("PUT ", body);
      return wire.substr(line, body - line);
    };
    MESSAGE("first send:  " << key_of_b(heard[0]));
    MESSAGE("second send: " << key_of_b(heard[1]));
    MESSAGE("third send:  " << key_of_b(heard[2]));
    CHECK(key_of_b(heard[0]) == key_of_b(heard[1]));
    CHECK(key_of_b(heard[2]) == key_of_b(heard[0]));
  }

  TEST_CASE("put_many: a job refused after a lost round, then no server - its outcome is unknown") {
    // As above, but the server is gone before the refused job can go again.
    // The lost first send may have stored it, so "could not connect" must
    // not read as "not stored" (a producer would store it again).
    const tq::testing::LoopbackSocket bound = tq::testing::bind_loopback_socket();
    REQUIRE(::listen(bound.fd, 4) == 0);
    std::thread server([&] {
      auto next = [&] { return accept_next(bound.fd); };
      int conn = next();
      read_lines(conn, 4);  // both PUTs read (and, say, stored); no reply gets out
      ::close(conn);
      conn = next();
      ::close(bound.fd);  // from now on, connecting is refused
      read_lines(conn, 4);
      const std::string stopping = "OK 1 DUPLICATE\nERROR SHUTDOWN server is stopping\n";
      (void)::send(conn, stopping.data(), stopping.size(), MSG_NOSIGNAL);
      ::close(conn);
    });
    auto ids = put_a_and_b(bound.port, server);
    REQUIRE(ids[0].ok());
    CHECK(*ids[0] == 1);
    REQUIRE_FALSE(ids[1].ok());
    MESSAGE(ids[1].error().to_string());
    CHECK(ids[1].error().outcome_unknown());
  }

  TEST_CASE("with the caller's own key the repeat is stored once and reported as a duplicate") {
    TqdProcess tqd;
    CuttingProxy proxy(tqd.port());
    Client c = connect_with(through(proxy.port(), 3));
    REQUIRE(c.create("q").ok());
    proxy.cut_after_next_request();
    auto put = c.put("q", "welcome", {.key = "signup-42"});
    REQUIRE(put.ok());
    CHECK(put->duplicate);
    CHECK(queue_stat(tqd, "q", "ready") == "1");
  }

  TEST_CASE(
      "without a policy an enqueue whose reply is lost fails as outcome unknown - not sent again") {
    TqdProcess tqd;
    CuttingProxy proxy(tqd.port());
    Client c = connect_with(through(proxy.port(), 0));
    REQUIRE(c.create("q").ok());
    proxy.cut_after_next_request();
    auto id = c.enqueue("q", "maybe");
    REQUIRE_FALSE(id.ok());
    CHECK(id.error().kind == ErrorKind::kNetwork);
    CHECK(id.error().outcome_unknown());
    CHECK(queue_stat(tqd, "q", "ready") == "1");  // it was stored, once
    CHECK(proxy.connections_accepted() == 1);
  }

  TEST_CASE("an ACK whose reply is lost is not sent again - the next call reconnects") {
    TqdProcess tqd;
    CuttingProxy proxy(tqd.port());
    Client c = connect_with(through(proxy.port(), 3));
    REQUIRE(c.create("q").ok());
    REQUIRE(c.enqueue("q", "job").ok());
    auto job = c.dequeue("q");
    REQUIRE((job.ok() && job->has_value()));
    proxy.cut_after_next_request();
    auto acked = c.ack((*job)->id);
    REQUIRE_FALSE(acked.ok());
    CHECK(acked.error().outcome_unknown());
    CHECK(proxy.connections_accepted() == 1);  // no second attempt
    CHECK(queue_stat(tqd, "q", "acked_total") == "1");
    CHECK(c.ping().ok());
    CHECK(proxy.connections_accepted() == 2);
  }

  TEST_CASE("reads and DEQUEUE are sent again after a lost reply - the lost lease just runs out") {
    TqdProcess tqd;
    CuttingProxy proxy(tqd.port());
    Client c = connect_with(through(proxy.port(), 3));
    REQUIRE(c.create("q").ok());
    proxy.cut_after_next_request();
    auto names = c.list();
    REQUIRE(names.ok());
    CHECK(*names == std::vector<std::string>{"q"});

    auto first = c.enqueue("q", "first");
    auto second = c.enqueue("q", "second");
    proxy.cut_after_next_request();
    auto job = c.dequeue("q");
    REQUIRE((job.ok() && job->has_value()));
    CHECK((*job)->id == *second);  // the first was leased by the lost reply
    CHECK(queue_stat(tqd, "q", "leased") == "2");
    CHECK(proxy.cuts_done() == 2);
  }

  TEST_CASE("a reply that times out is not sent again - a call takes one timeout, not one a try") {
    // A stopped tqd (SIGSTOP; or one stalled on its disk) still has its
    // connections accepted by the kernel, and answers none of them. Each
    // copy of a repeatable call sent on a new connection waited a whole
    // timeout of its own: with lasting(30s) (20 attempts) a ping took 21
    // timeouts, a DEQUEUE 21 times its wait and timeout.
    TqdProcess tqd;
    CuttingProxy proxy(tqd.port());
    Options options = through(proxy.port(), 3);
    options.timeout_ms = 200;
    Client c = connect_with(options);
    REQUIRE(c.create("q").ok());
    REQUIRE(tq::testing::stop_and_wait(tqd.pid()));
    auto ping = c.ping();
    auto put = c.put("q", "stalled");
    auto jobs = c.dequeue_many({"q"}, {.wait = 100ms});
    REQUIRE(kill(tqd.pid(), SIGCONT) == 0);
    REQUIRE_FALSE(ping.ok());
    REQUIRE_FALSE(put.ok());
    REQUIRE_FALSE(jobs.ok());
    for (const auto* error : {&ping.error(), &put.error(), &jobs.error()}) {
      CHECK(error->kind == ErrorKind::kTimeout);
      CHECK(error->outcome_unknown());
    }
    CHECK(proxy.connections_accepted() == 3);  // the first, then one a call: nothing sent twice
    CHECK(c.ping().ok());                      // the next call connects again
  }

  TEST_CASE("an AUTH left unanswered ends the reconnect attempts - a kConnect error, not sent") {
    // With a password, a stalled tqd made each reconnect attempt wait a
    // whole timeout for AUTH's reply: with lasting(30s) a ping after the
    // stall took 20 timeouts and 31 s of pauses, then failed kTimeout,
    // outcome unknown, though nothing of it had been sent.
    tq::testing::TqdOptions with_password;
    with_password.config_yaml = "auth:\n  password: s3cret\n";
    TqdProcess tqd(with_password);
    CuttingProxy proxy(tqd.port());
    Options options = through(proxy.port(), 3);
    options.timeout_ms = 200;
    options.password = "s3cret";
    Client c = connect_with(options);
    REQUIRE(tq::testing::stop_and_wait(tqd.pid()));
    auto stalled = c.ping();  // its reply times out: the connection is closed
    auto unsent = c.ping();   // connects again; AUTH gets no answer
    REQUIRE(kill(tqd.pid(), SIGCONT) == 0);
    REQUIRE_FALSE(stalled.ok());
    CHECK(stalled.error().kind == ErrorKind::kTimeout);
    REQUIRE_FALSE(unsent.ok());
    INFO(unsent.error().to_string());
    CHECK(unsent.error().kind == ErrorKind::kConnect);
    CHECK_FALSE(unsent.error().outcome_unknown());
    CHECK(unsent.error().message.find("AUTH: timed out") != std::string::npos);
    CHECK(proxy.connections_accepted() == 2);  // one attempt, not one per attempt allowed
    CHECK(c.ping().ok());
  }

  TEST_CASE("a restarted server is reconnected to and its jobs are still there") {
    TqdProcess first_run;
    CuttingProxy proxy(first_run.port());
    Client c = connect_with(through(proxy.port(), 5));
    REQUIRE(c.create("q").ok());
    REQUIRE(c.enqueue("q", "survives").ok());
    REQUIRE(first_run.stop(SIGTERM) == 0);
    tq::testing::TqdOptions restart;
    restart.dir = first_run.dir();
    TqdProcess second_run(restart);
    proxy.set_upstream(second_run.port());
    auto job = c.dequeue("q");
    REQUIRE(job.ok());
    REQUIRE(job->has_value());
    CHECK((*job)->payload == "survives");
  }

  TEST_CASE("an ACK a stopping tqd refused unrun is sent again after its restart, in one call") {
    // The real server, kept draining by a waiting worker that reads none of
    // its replies, answers the ACK ERROR SHUTDOWN (not run). The call goes on
    // reconnecting until tqd is back, and the ACK is done there: the caller
    // sees OK. It used to see the refusal, and had to send it again itself.
    TqdProcess first_run;
    const uint16_t port = first_run.port();
    Options options;
    options.port = port;
    options.reconnect = tq::client::ReconnectPolicy::lasting(30s);
    std::atomic<int> retries{0};
    options.reconnect.on_retry = [&](int, const tq::client::Error&, std::chrono::milliseconds) {
      ++retries;
    };
    Client worker = connect_with(options);
    REQUIRE(worker.create("q").ok());
    REQUIRE(worker.create("held").ok());
    REQUIRE(worker.enqueue("q", "charge card").ok());
    auto job = worker.dequeue("q");
    REQUIRE(job.ok());
    REQUIRE(job->has_value());
    const int holder = tq::testing::connect_raw(port, 4096);
    REQUIRE(holder >= 0);
    std::string batch = "DEQUEUE held WAIT 1h\n";
    for (int i = 0; i < 256 * 1024; ++i) batch += "X\n";
    REQUIRE(::send(holder, batch.data(), batch.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(batch.size()));
    for (int i = 0; i < 1000 && queue_stat(first_run, "held", "waiters") != "1"; ++i) {
      std::this_thread::sleep_for(10ms);
    }
    REQUIRE(queue_stat(first_run, "held", "waiters") == "1");
    REQUIRE(::kill(first_run.pid(), SIGTERM) == 0);
    REQUIRE(first_run.wait_for_log("shutting down"));
    std::optional<tq::client::Status> acked;
    std::thread acking([&] { acked = worker.ack(**job); });
    // Refused, then reconnecting: the stopped tqd takes no connections.
    for (int i = 0; i < 1000 && retries == 0; ++i) std::this_thread::sleep_for(10ms);
    CHECK(retries > 0);
    char buffer[65536];
    while (::recv(holder, buffer, sizeof buffer, 0) > 0) {
    }
    ::close(holder);
    CHECK(first_run.stop(0) == 0);
    tq::testing::TqdOptions restart;
    restart.dir = first_run.dir();
    restart.port = port;
    TqdProcess second_run(restart);
    acking.join();
    REQUIRE(acked.has_value());
    if (!acked->ok()) FAIL_CHECK(acked->error().to_string());
    auto stats = second_run.client().stats();
    REQUIRE(stats.ok());
    CHECK(tq::client::field(*stats, "jobs_leased") == "0");  // done, and not run again
    CHECK(tq::client::field(*stats, "jobs_ready") == "0");
  }

  TEST_CASE("an ACK refused as the server closed goes again only with a reconnect policy") {
    // A stand-in answers the ACK ERROR SHUTDOWN and closes; with a policy,
    // the next connection gets the ACK again and answers it.
    const tq::testing::LoopbackSocket bound = tq::testing::bind_loopback_socket();
    REQUIRE(::listen(bound.fd, 4) == 0);
    int attempts = 0;
    SUBCASE("no policy") {
      attempts = 0;
    }
    SUBCASE("a policy") {
      attempts = 2;
    }
    std::string heard_again;
    std::thread server([&] {
      int conn = accept_next(bound.fd);
      read_lines(conn, 1);
      const std::string stopping = "ERROR SHUTDOWN server is stopping\n";
      (void)::send(conn, stopping.data(), stopping.size(), MSG_NOSIGNAL);
      ::close(conn);
      conn = attempts > 0 ? accept_next(bound.fd) : -1;
      ::close(bound.fd);
      char buf[4096];
      ssize_t n = 0;
      while (conn >= 0 && heard_again.find('\n') == std::string::npos &&
             (n = ::recv(conn, buf, sizeof buf, 0)) > 0) {
        heard_again.append(buf, static_cast<size_t>(n));
      }
      const std::string done = "OK acked 7\n";
      if (conn >= 0) (void)::send(conn, done.data(), done.size(), MSG_NOSIGNAL);
      read_lines(conn, 1);  // until the client closes
      if (conn >= 0) ::close(conn);
    });
    auto acked = [&] {
      Client c = connect_with(through(bound.port, attempts));
      tq::client::Job job;
      job.id = 7;
      return c.ack(job);
    }();
    server.join();
    if (attempts == 0) {
      REQUIRE_FALSE(acked.ok());
      CHECK(acked.error().is(ErrorCode::kShutdown));
      CHECK_FALSE(acked.error().outcome_unknown());  // not run: the caller may send it again
      CHECK(heard_again.empty());
    } else {
      if (!acked.ok()) FAIL_CHECK(acked.error().to_string());
      CHECK(heard_again.rfind("ACK 7", 0) == 0);
    }
  }

  TEST_CASE("a password is sent on connect and again after every reconnect") {
    tq::testing::TqdOptions with_password;
    with_password.config_yaml = "auth:\n  password: s3cret\n";
    TqdProcess tqd(with_password);
    auto anonymous = tqd.client().list();
    REQUIRE_FALSE(anonymous.ok());
    CHECK(anonymous.error().is(ErrorCode::kNoAuth));

    Options wrong = through(tqd.port(), 0);
    wrong.password = "guess";
    auto refused = Client::connect(wrong);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().is(ErrorCode::kNoAuth));

    CuttingProxy proxy(tqd.port());
    Options options = through(proxy.port(), 3);
    options.password = "s3cret";
    Client c = connect_with(options);
    REQUIRE(c.create("q").ok());
    proxy.drop_all();
    auto names = c.list();
    REQUIRE(names.ok());
    CHECK(*names == std::vector<std::string>{"q"});
  }

  TEST_CASE("a cancelled wait ends at once with kCancelled and closes the connection") {
    TqdProcess tqd;
    Client c = connect_with(through(tqd.port(), 0));
    REQUIRE(c.create("q").ok());
    CancelToken cancel;
    std::thread canceller([&] {
      auto watcher = tqd.client();
      const auto deadline = std::chrono::steady_clock::now() + 10s;
      while (std::chrono::steady_clock::now() < deadline) {
        auto stats = watcher.stats("q");
        if (!stats.ok() || tq::client::field(*stats, "waiters") == "1") break;
      }
      cancel.cancel();
    });
    const auto started = std::chrono::steady_clock::now();
    auto jobs = c.dequeue_many({"q"}, {.wait = 60s, .cancel = &cancel});
    canceller.join();
    REQUIRE_FALSE(jobs.ok());
    CHECK(jobs.error().kind == ErrorKind::kCancelled);
    CHECK(std::chrono::steady_clock::now() - started < 30s);
    CHECK_FALSE(c.socket().is_open());
  }

  TEST_CASE("a token fired before the call sends nothing - no job is leased to nobody") {
    // A worker loop checks its flag, then the token fires, then it calls
    // dequeue_many: the DEQUEUE went out, the wait for its reply ended at
    // once, and the job the server had handed out stayed leased until its
    // ack_timeout, an attempt spent.
    TqdProcess tqd;
    Client c = connect_with(through(tqd.port(), 0));
    REQUIRE(c.create("q").ok());
    REQUIRE(c.enqueue("q", "ready").ok());
    CancelToken cancel;
    cancel.cancel();
    auto jobs = c.dequeue_many({"q"}, {.wait = 1s, .cancel = &cancel});
    REQUIRE_FALSE(jobs.ok());
    CHECK(jobs.error().kind == ErrorKind::kCancelled);
    CHECK(queue_stat(tqd, "q", "leased") == "0");
    CHECK(c.connected());  // nothing sent: still in step
    cancel.reset();
    auto job = c.dequeue("q");
    REQUIRE((job.ok() && job->has_value()));
    CHECK((*job)->attempts == 1);
  }

  TEST_CASE("ReconnectPolicy::lasting - pauses of 100 ms doubling to 2 s that add up to the span") {
    using tq::client::ReconnectPolicy;
    CHECK(ReconnectPolicy::lasting(0ms).attempts == 0);
    CHECK(ReconnectPolicy::lasting(1ms).attempts == 2);                 // one pause of 100 ms
    CHECK(ReconnectPolicy::lasting(1500ms).attempts == 5);              // 100+200+400+800
    CHECK(ReconnectPolicy::lasting(3100ms).attempts == 6);              // ... +1600
    CHECK(ReconnectPolicy::lasting(3101ms).attempts == 7);              // ... +2000
    CHECK(ReconnectPolicy::lasting(30s).attempts == 20);                // 3100 + 14 x 2000
    CHECK(ReconnectPolicy::lasting(24h * 36500).attempts > 1'000'000);  // no overflow
  }

  TEST_CASE("a lasting policy's pauses add up to its span - the last one is cut short") {
    // --reconnect-for 2s paused 100+200+400+800+1600 ms: 3.1 s, not 2.
    TqdProcess tqd;
    Options options;
    options.port = tqd.port();
    options.reconnect = tq::client::ReconnectPolicy::lasting(350ms);
    std::vector<int64_t> pauses;
    options.reconnect.on_retry = [&](int, const tq::client::Error&,
                                     tq::client::milliseconds pause) {
      pauses.push_back(pause.count());
    };
    Client c = connect_with(options);
    REQUIRE(tqd.stop(SIGTERM) == 0);
    REQUIRE_FALSE(c.ping().ok());
    CHECK(pauses == std::vector<int64_t>{100, 200, 50});
  }

  TEST_CASE("on_retry is told of each failed attempt and the pause - cancel ends the pauses") {
    TqdProcess tqd;
    Options options = through(tqd.port(), 4);
    std::vector<std::pair<int, int64_t>> retries;
    CancelToken cancel;
    options.reconnect.on_retry = [&](int failed, const tq::client::Error& why,
                                     tq::client::milliseconds pause) {
      CHECK(why.kind == ErrorKind::kConnect);
      retries.emplace_back(failed, pause.count());
      if (failed == 3) cancel.cancel();
    };
    options.reconnect.cancel = &cancel;
    Client c = connect_with(options);
    REQUIRE(tqd.stop(SIGTERM) == 0);
    auto ping = c.ping();
    REQUIRE_FALSE(ping.ok());
    CHECK(ping.error().kind == ErrorKind::kCancelled);  // the third pause was cut short
    CHECK(retries == std::vector<std::pair<int, int64_t>>{{1, 10}, {2, 20}, {3, 40}});
  }

  TEST_CASE("a fired policy token ends the pauses, not the first attempt - a held job goes back") {
    // The worker example stops on the token its policy ends pauses with:
    // a job it held when tqd restarted could not be NACKed on Ctrl-C, the
    // one connection attempt cancelled at once though tqd was back
    // ("left to its lease"), and it stayed leased until its ack_timeout.
    TqdProcess tqd;
    CuttingProxy proxy(tqd.port());
    Options options = through(proxy.port(), 3);
    CancelToken stop;
    options.reconnect.cancel = &stop;
    Client c = connect_with(options);
    REQUIRE(c.create("q").ok());
    REQUIRE(c.enqueue("q", "held").ok());
    auto job = c.dequeue("q");
    REQUIRE((job.ok() && job->has_value()));
    proxy.drop_all();  // a restart while the job is worked on
    stop.cancel();     // then Ctrl-C
    auto nacked = c.nack(**job);
    REQUIRE_MESSAGE(nacked.ok(), nacked.error().to_string());
    CHECK(*nacked == tq::client::NackOutcome::kRetry);
    CHECK(queue_stat(tqd, "q", "ready") == "1");

    // With no server, the pause after the first attempt ends at once.
    Options direct = through(tqd.port(), 3);
    direct.reconnect.cancel = &stop;
    direct.reconnect.first_delay = 60s;
    Client d = connect_with(direct);
    REQUIRE(tqd.stop(SIGTERM) == 0);
    const auto started = std::chrono::steady_clock::now();
    auto lost = d.ping();
    REQUIRE_FALSE(lost.ok());
    CHECK(lost.error().kind == ErrorKind::kCancelled);
    CHECK(std::chrono::steady_clock::now() - started < 30s);  // not the 60 s pause
  }

  TEST_CASE(
      "a server that turns every connection away is tried as often as the policy says, password "
      "or not - AUTH does not open connections of its own") {
    // A tqd at max_connections (or a proxy with no server behind it) takes
    // each connection and closes it at once. The AUTH after a connect found
    // it closed and reconnected from inside the reconnect loop: again and
    // again, deeper each time, until the stack ran out.
    const tq::testing::LoopbackSocket bound = tq::testing::bind_loopback_socket();
    REQUIRE(::listen(bound.fd, 64) == 0);
    constexpr int kMostAccepted = 100;  // enough to see the loop; then refused
    std::atomic<int> accepted{0};
    std::thread turning_away([&] {
      constexpr std::string_view kMaxConn = "ERROR MAXCONN too many connections\n";
      while (accepted < kMostAccepted) {
        const int conn = ::accept(bound.fd, nullptr, nullptr);
        if (conn < 0) return;
        ++accepted;
        (void)::send(conn, kMaxConn.data(), kMaxConn.size(), MSG_NOSIGNAL);
        ::close(conn);
      }
      ::shutdown(bound.fd, SHUT_RDWR);
    });
    Options options = through(bound.port, 10);
    options.reconnect.first_delay = 1ms;
    options.reconnect.max_delay = 1ms;
    options.password = "s3cret";
    Client c(options);
    auto ping = c.ping();
    ::shutdown(bound.fd, SHUT_RDWR);  // ends the accept
    turning_away.join();
    ::close(bound.fd);
    REQUIRE_FALSE(ping.ok());
    INFO(ping.error().to_string());
    CHECK(ping.error().is(ErrorCode::kMaxConn));
    CHECK(accepted.load() == 10);  // one connection an attempt
  }

  TEST_CASE("reconnecting gives up after its attempts with the last error") {
    TqdProcess tqd;
    Client c = connect_with(through(tqd.port(), 2));
    REQUIRE(tqd.stop(SIGTERM) == 0);
    auto ping = c.ping();
    REQUIRE_FALSE(ping.ok());
    CHECK(ping.error().kind == ErrorKind::kConnect);
  }
}

}  // namespace reconnect_test
