// The client library's typed calls against a real tqd: each call sends what
// PROTOCOL.md says and turns the reply into the value its header promises;
// server errors come back as values carrying the server's code.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <thread>

#include "client/client.h"
#include "client/line_socket.h"
#include "client/request_line.h"
#include "protocol/reply_reader.h"
#include "tests/support/tqd_process.h"
#include "wal/format.h"

namespace client_test {

using namespace std::chrono_literals;
using tq::client::Client;
using tq::client::ErrorKind;
using tq::client::JobState;
using tq::client::NackOutcome;
using tq::protocol::ErrorCode;
using tq::testing::TqdProcess;

namespace {

Client connect_to(const TqdProcess& tqd) {
  auto client = Client::connect({.host = "127.0.0.1", .port = tqd.port()});
  REQUIRE(client.ok());
  return std::move(client).value();
}

}  // namespace

TEST_SUITE("client library") {
  TEST_CASE("durations in any case, as the server reads them - a WAIT 2M extends the read by 2m") {
    CHECK(tq::client::parse_duration("500MS") == 500ms);
    CHECK(tq::client::parse_duration("1H") == 1h);
    CHECK(tq::client::wait_argument({"DEQUEUE", "q", "wait", "2M"}) == 2min);
    CHECK_FALSE(tq::client::parse_duration("2 weeks").has_value());
  }

  TEST_CASE("connect fails as a value naming the address when nothing listens") {
    TqdProcess tqd;
    const uint16_t port = tqd.port();
    tqd.stop(SIGTERM);
    auto client = Client::connect({.host = "127.0.0.1", .port = port, .timeout_ms = 2000});
    REQUIRE_FALSE(client.ok());
    CHECK(client.error().kind == ErrorKind::kConnect);
    CHECK(client.error().message.find(std::to_string(port)) != std::string::npos);
  }

  TEST_CASE("an IPv6 address is named in brackets so its port reads apart") {
    CHECK(tq::client::host_port("127.0.0.1", 8080) == "127.0.0.1:8080");
    CHECK(tq::client::host_port("::1", 8080) == "[::1]:8080");
    CHECK(Client({.host = "::1", .port = 8080}).address() == "[::1]:8080");
    // Port 1 on the loopback: nothing listens there (or IPv6 is off); either
    // way the error names the address as the prompt does.
    auto refused = Client::connect({.host = "::1", .port = 1, .timeout_ms = 2000});
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().message.rfind("[::1]:1: ", 0) == 0);
  }

  TEST_CASE("a connect to a server that never answers ends when the token fires") {
    // A listener whose backlog is full: the kernel drops further SYNs, and
    // a connect waits for the whole timeout (Ctrl-C at tq's prompt did
    // nothing for it).
    const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(listener >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    REQUIRE(::listen(listener, 0) == 0);
    const uint16_t port = ntohs(address.sin_port);
    std::vector<tq::client::LineSocket> queued;  // fill the backlog; never accepted
    for (int i = 0; i < 4; ++i) {
      auto s = tq::client::LineSocket::connect("127.0.0.1", port, 200);
      if (!s) break;
      queued.push_back(std::move(s).value());
    }
    REQUIRE_FALSE(queued.empty());

    tq::client::CancelToken cancel;
    std::thread interrupt([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the person's Ctrl-C
      cancel.cancel();
    });
    const auto started = std::chrono::steady_clock::now();
    Client client({.host = "127.0.0.1", .port = port, .timeout_ms = 20'000});
    auto connected = client.reconnect(&cancel);
    const auto took = std::chrono::steady_clock::now() - started;
    interrupt.join();
    ::close(listener);
    REQUIRE_FALSE(connected.ok());
    CHECK(connected.error().kind == ErrorKind::kCancelled);
    CHECK(connected.error().message.find("connecting interrupted") != std::string::npos);
    CHECK(took < std::chrono::seconds(10));  // not the 20 s timeout
  }

  TEST_CASE("a big PUT to a server that stopped reading ends when the token fires") {
    // A stand-in that accepts and never reads: the client's send fills the
    // socket's buffers and waits. Ctrl-C (the token) once ended only reads,
    // and tq sat out the whole --timeout here.
    const tq::testing::LoopbackSocket bound = tq::testing::bind_loopback_socket();
    REQUIRE(::listen(bound.fd, 1) == 0);
    tq::client::CancelToken cancel;
    int conn = -1;
    std::thread stalled([&] {
      conn = ::accept(bound.fd, nullptr, nullptr);
      pollfd p{conn, POLLIN, 0};
      ::poll(&p, 1, 30'000);  // bytes are waiting, unread: the person's Ctrl-C
      cancel.cancel();
    });
    Client client({.host = "127.0.0.1", .port = bound.port, .timeout_ms = 30'000});
    REQUIRE(client.reconnect().ok());
    const std::string payload(64 << 20, 'x');
    const auto started = std::chrono::steady_clock::now();
    auto put = client.request("PUT q " + std::to_string(payload.size()), payload, &cancel);
    const auto took = std::chrono::steady_clock::now() - started;
    stalled.join();
    client.close();
    ::close(conn);
    ::close(bound.fd);
    REQUIRE_FALSE(put.ok());
    CHECK(put.error().kind == ErrorKind::kCancelled);
    CHECK(put.error().message.find("stopped sending") != std::string::npos);
    CHECK(took < std::chrono::seconds(20));  // not the 30 s timeout
  }

  TEST_CASE("a port that streams bytes without a line end is given up on, not kept in memory") {
    // Some other service on tqd's port: past the longest reply line tqd can
    // send, the client stops reading, where it once grew without end.
    const tq::testing::LoopbackSocket bound = tq::testing::bind_loopback_socket();
    REQUIRE(::listen(bound.fd, 1) == 0);
    std::thread streamer([&] {
      const int conn = ::accept(bound.fd, nullptr, nullptr);
      const std::string chunk(1 << 20, 'z');
      for (size_t sent = 0; sent <= tq::protocol::kMaxReplyLineBytes + chunk.size();) {
        const ssize_t n = ::send(conn, chunk.data(), chunk.size(), MSG_NOSIGNAL);
        if (n <= 0) break;  // the client closed: it gave up
        sent += static_cast<size_t>(n);
      }
      // Reads the client's request before closing: a close with it unread
      // would reset the connection, and the client lose the bytes in flight.
      ::shutdown(conn, SHUT_WR);
      char sink[4096];
      while (::recv(conn, sink, sizeof sink, 0) > 0) {
      }
      ::close(conn);
    });
    auto client = Client::connect({.host = "127.0.0.1", .port = bound.port});
    REQUIRE(client.ok());
    auto pong = client->ping();
    client->close();
    streamer.join();
    ::close(bound.fd);
    REQUIRE_FALSE(pong.ok());
    CHECK(pong.error().kind == ErrorKind::kProtocol);
    CHECK(pong.error().message.find("is this port a tq server?") != std::string::npos);
  }

  TEST_CASE("a job header announcing more bytes than any job holds is refused, not waited for") {
    static_assert(tq::protocol::kMaxReplyPayloadBytes == tq::wal::kMaxPayloadBytes);
    // A garbled count (or not a tq server): the client waited for that many
    // bytes and kept all that came, gigabytes within seconds from a sender
    // that streams, until the process was killed.
    const tq::testing::LoopbackSocket bound = tq::testing::bind_loopback_socket();
    REQUIRE(::listen(bound.fd, 1) == 0);
    std::thread garbler([&] {
      const int conn = ::accept(bound.fd, nullptr, nullptr);
      char request[4096];
      (void)::recv(conn, request, sizeof request, 0);
      const std::string reply = "OK 1\nJOB 7 " +
                                std::to_string(tq::protocol::kMaxReplyPayloadBytes + 1) +
                                " queue=q attempts=1 lease=1\nsome bytes";
      (void)::send(conn, reply.data(), reply.size(), MSG_NOSIGNAL);
      // Holds the connection open: only the client can end the call.
      while (::recv(conn, request, sizeof request, 0) > 0) {
      }
      ::close(conn);
    });
    auto client = Client::connect({.host = "127.0.0.1", .port = bound.port, .timeout_ms = 2000});
    REQUIRE(client.ok());
    auto jobs = client->dequeue_many({"q"});
    client->close();
    garbler.join();
    ::close(bound.fd);
    REQUIRE_FALSE(jobs.ok());
    CHECK(jobs.error().kind == ErrorKind::kProtocol);  // at once, not kTimeout
    CHECK(jobs.error().message.find("more than any tq server sends") != std::string::npos);
  }

  TEST_CASE("a connection closed for idle_timeout - the next call says why, not sent") {
    tq::testing::TqdOptions options;
    options.config_yaml = "limits:\n  idle_timeout: 1s\n";
    TqdProcess tqd(options);
    Client idle = connect_to(tqd);
    REQUIRE(idle.create("q").ok());
    for (int i = 0; i < 500 && idle.connected(); ++i) std::this_thread::sleep_for(10ms);
    REQUIRE_FALSE(idle.connected());
    auto refused = idle.enqueue("q", "x");
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().is(ErrorCode::kTimeout));
    CHECK(refused.error().to_string() ==
          "TIMEOUT closing the connection: no request came for 1 second (limits.idle_timeout)");
    CHECK_FALSE(refused.error().outcome_unknown());
    REQUIRE(idle.reconnect().ok());
    CHECK(idle.ping().ok());
    // With a reconnect policy the loss is not the caller's business.
    auto options_with_policy = tq::client::Options{.host = "127.0.0.1", .port = tqd.port()};
    options_with_policy.reconnect.attempts = 1;
    auto kept = Client::connect(options_with_policy);
    REQUIRE(kept.ok());
    for (int i = 0; i < 500 && kept->connected(); ++i) std::this_thread::sleep_for(10ms);
    REQUIRE_FALSE(kept->connected());
    CHECK(kept->enqueue("q", "y").ok());
    auto stats = kept->stats("q");
    REQUIRE(stats.ok());
    CHECK(tq::client::field(*stats, "ready") == "1");  // x was never stored
  }

  TEST_CASE("a connection turned away with MAXCONN - the next call returns that ERROR, not sent") {
    tq::testing::TqdOptions options;
    options.config_yaml = "limits:\n  max_connections: 1\n";
    TqdProcess tqd(options);
    Client first = connect_to(tqd);
    REQUIRE(first.ping().ok());
    Client turned_away = connect_to(tqd);  // TCP connects; then ERROR MAXCONN and the close
    for (int i = 0; i < 500 && turned_away.connected(); ++i) std::this_thread::sleep_for(10ms);
    REQUIRE_FALSE(turned_away.connected());
    auto refused = turned_away.ping();
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().kind == ErrorKind::kServer);
    CHECK(refused.error().is(ErrorCode::kMaxConn));
    CHECK(refused.error().to_string() ==
          "MAXCONN too many connections (limits.max_connections is 1)");
    CHECK_FALSE(refused.error().outcome_unknown());
    CHECK_FALSE(turned_away.socket().is_open());
    // Read once: the call after it says the connection is gone.
    auto again = turned_away.ping();
    REQUIRE_FALSE(again.ok());
    CHECK(again.error().kind == ErrorKind::kConnect);
  }

  TEST_CASE(
      "create then EXISTS - enqueue to a missing queue is NOQUEUE with the server's message") {
    TqdProcess tqd;
    Client c = connect_to(tqd);
    REQUIRE(c.create("emails").ok());
    auto again = c.create("emails");
    REQUIRE_FALSE(again.ok());
    CHECK(again.error().kind == ErrorKind::kServer);
    CHECK(again.error().is(ErrorCode::kExists));
    CHECK(again.error().to_string() == "EXISTS queue 'emails' already exists");

    auto missing = c.enqueue("orders", "Ship order 7");
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().is(ErrorCode::kNoQueue));
    CHECK(missing.error().code == "NOQUEUE");
    CHECK_FALSE(missing.error().outcome_unknown());  // the server said no: nothing was stored
  }

  TEST_CASE("list(patience) gives up on a hung server at once - the late reply is dropped later") {
    TqdProcess tqd;
    Client c = connect_to(tqd);  // a 5 s timeout
    REQUIRE(c.create("q").ok());
    Client quick = Client::connect({.port = tqd.port(), .timeout_ms = 200}).value();

    REQUIRE(kill(tqd.pid(), SIGSTOP) == 0);
    const auto started = std::chrono::steady_clock::now();
    auto late = c.list(50ms);
    REQUIRE_FALSE(late.ok());
    CHECK(late.error().kind == ErrorKind::kTimeout);
    CHECK(std::chrono::steady_clock::now() - started < 4s);  // not the 5 s timeout
    CHECK(c.connected());                                    // kept: the reply is owed
    CHECK_FALSE(c.list(50ms).ok());  // waits for the owed reply, sends nothing more
    // A call whose own timeout passes while a reply is still owed: the
    // connection is closed before anything of it is sent.
    REQUIRE_FALSE(quick.list(50ms).ok());
    auto unsent = quick.create("never");
    REQUIRE_FALSE(unsent.ok());
    CHECK(unsent.error().kind == ErrorKind::kUnanswered);
    CHECK(unsent.error().to_string().rfind(
              "not sent: the server did not answer an earlier request (timed out: ", 0) == 0);
    CHECK_FALSE(unsent.error().outcome_unknown());
    CHECK_FALSE(quick.socket().is_open());
    REQUIRE(kill(tqd.pid(), SIGCONT) == 0);

    // In step: each call gets its own reply, not the late LIST's.
    auto stats = c.stats("q");
    REQUIRE(stats.ok());
    CHECK(tq::client::field(*stats, "queue") == "q");
    auto names = c.list(5s);
    REQUIRE(names.ok());
    CHECK(*names == std::vector<std::string>{"q"});
    REQUIRE(quick.reconnect().ok());
    CHECK(quick.list().value() == std::vector<std::string>{"q"});  // "never" was never sent
  }

  TEST_CASE("payloads travel byte for byte - newlines, zero bytes, spaces and an empty one") {
    TqdProcess tqd;
    Client c = connect_to(tqd);
    REQUIRE(c.create("bin").ok());
    const std::vector<std::string> payloads = {std::string("two\nlines\r\n", 11),
                                               std::string("zero\0byte", 9), "  spaced  ", ""};
    std::vector<uint64_t> ids;
    for (const auto& p : payloads) {
      auto id = c.enqueue("bin", p);
      REQUIRE(id.ok());
      ids.push_back(*id);
    }
    auto jobs = c.dequeue_many({"bin"}, {.count = 10});
    REQUIRE(jobs.ok());
    REQUIRE(jobs->size() == payloads.size());
    for (size_t i = 0; i < payloads.size(); ++i) {
      CHECK((*jobs)[i].id == ids[i]);
      CHECK((*jobs)[i].payload == payloads[i]);
      CHECK((*jobs)[i].queue == "bin");
      CHECK((*jobs)[i].attempts == 1);
    }
  }

  TEST_CASE("put_many - rounds of pipelined PUTs, ids in order, options on each, errors per job") {
    TqdProcess tqd;
    Client c = connect_to(tqd);
    REQUIRE(c.create("bulk").ok());
    // More than two rounds, so a round boundary falls inside.
    std::vector<std::string> payloads;
    for (size_t i = 0; i < 2 * Client::kPutRound + 7; ++i) {
      payloads.push_back("job " + std::to_string(i) + (i % 5 == 0 ? std::string("\n\0x", 3) : ""));
    }
    std::vector<std::string_view> views(payloads.begin(), payloads.end());
    auto ids = c.put_many("bulk", views, {.priority = 3});
    REQUIRE(ids.ok());
    REQUIRE(ids->size() == payloads.size());
    for (size_t i = 0; i < ids->size(); ++i) {
      REQUIRE((*ids)[i].ok());
      if (i > 0) CHECK(*(*ids)[i] > *(*ids)[i - 1]);
    }
    auto last = c.peek("bulk", JobState::kReady, 1);  // DEQUEUE does not show priorities
    REQUIRE((last.ok() && last->size() == 1));
    CHECK(last->front().priority == 3);
    auto jobs = c.dequeue_many({"bulk"}, {.count = 1000});
    REQUIRE(jobs.ok());
    REQUIRE(jobs->size() == payloads.size());
    for (size_t i = 0; i < payloads.size(); ++i) {
      CHECK((*jobs)[i].id == *(*ids)[i]);
      CHECK((*jobs)[i].payload == payloads[i]);
    }
    // A job the server refuses is that job's error; the others are stored.
    auto limited = c.config("bulk", {{"max_size", "2"}});
    REQUIRE(limited.ok());
    for (const auto& job : *jobs) REQUIRE(c.ack(job.id).ok());
    const std::vector<std::string_view> three = {"a", "b", "c"};
    auto some = c.put_many("bulk", three);
    REQUIRE(some.ok());
    REQUIRE(some->size() == 3);
    CHECK((*some)[0].ok());
    CHECK((*some)[1].ok());
    REQUIRE_FALSE((*some)[2].ok());
    CHECK((*some)[2].error().is(ErrorCode::kFull));
    CHECK(c.ping().ok());  // the stream is in step
    // A dedup key names one job: refused before anything is sent.
    auto keyed = c.put_many("bulk", three, {.key = "k"});
    REQUIRE_FALSE(keyed.ok());
    CHECK(keyed.error().kind == ErrorKind::kBadArgument);
    auto none = c.put_many("bulk", {});
    REQUIRE(none.ok());
    CHECK(none->empty());
  }

  TEST_CASE("put options - priority first, delay and TTL and attempts show in PEEK, a key dedups") {
    TqdProcess tqd;
    Client c = connect_to(tqd);
    REQUIRE(c.create("q").ok());
    auto plain = c.put("q", "plain");
    auto urgent = c.put("q", "urgent", {.priority = 5});
    auto later = c.put("q", "later", {.delay = 1h});
    auto limited = c.put("q", "limited", {.ttl = 10min, .attempts = 3});
    auto keyed = c.put("q", "first", {.key = "signup-42"});
    auto again = c.put("q", "second", {.key = "signup-42"});
    REQUIRE((plain.ok() && urgent.ok() && later.ok() && limited.ok() && keyed.ok() && again.ok()));
    CHECK_FALSE(keyed->duplicate);
    CHECK(again->duplicate);
    CHECK(again->id == keyed->id);

    auto ready = c.peek("q");
    REQUIRE(ready.ok());
    REQUIRE(ready->size() == 4);
    CHECK((*ready)[0].id == urgent->id);  // higher priority first
    CHECK((*ready)[0].priority == 5);
    CHECK((*ready)[0].state == "ready");
    CHECK((*ready)[2].expires_ms.has_value());
    CHECK((*ready)[3].key == "signup-42");

    auto delayed = c.peek("q", JobState::kDelayed);
    REQUIRE(delayed.ok());
    REQUIRE(delayed->size() == 1);
    CHECK((*delayed)[0].id == later->id);
    CHECK((*delayed)[0].at_ms.has_value());

    auto at = c.put("q", "at", {.at = std::chrono::system_clock::now() + 24h});
    REQUIRE(at.ok());
    auto queues = c.queues();
    REQUIRE(queues.ok());
    REQUIRE(queues->size() == 1);
    CHECK((*queues)[0].name == "q");
    CHECK((*queues)[0].ready == 4);
    CHECK((*queues)[0].delayed == 2);
  }

  TEST_CASE("put at a time between two seconds - not ready before it (AT takes whole seconds)") {
    // EnqueueOptions::at is "not before this time"; the client sent AT with
    // the seconds rounded down, so the job could be ready up to 999 ms early.
    TqdProcess tqd;
    Client c = connect_to(tqd);
    REQUIRE(c.create("q").ok());
    using namespace std::chrono;
    const auto when = floor<seconds>(system_clock::now()) + 1h + 500ms;
    auto put = c.put("q", "at", {.at = when});
    REQUIRE(put.ok());
    auto job = c.job(put->id);
    REQUIRE(job.ok());
    REQUIRE(job->at_ms.has_value());
    const int64_t asked_ms = duration_cast<milliseconds>(when.time_since_epoch()).count();
    CHECK(*job->at_ms >= asked_ms);
    CHECK(*job->at_ms < asked_ms + 1000);
  }

  TEST_CASE("put with a group - its later jobs are held, PEEK HELD and QUEUES show them") {
    TqdProcess tqd;
    Client c = connect_to(tqd);
    REQUIRE(c.create("q").ok());
    auto first = c.put("q", "open", {.group = "user-7"});
    auto second = c.put("q", "deposit", {.group = "user-7"});
    REQUIRE((first.ok() && second.ok()));
    auto held = c.peek("q", JobState::kHeld);
    REQUIRE(held.ok());
    REQUIRE(held->size() == 1);
    CHECK((*held)[0].id == second->id);
    CHECK((*held)[0].state == "held");
    CHECK((*held)[0].group == "user-7");
    auto queues = c.queues();
    REQUIRE(queues.ok());
    CHECK((*queues)[0].ready == 1);
    CHECK((*queues)[0].held == 1);
    auto job = c.dequeue("q");
    REQUIRE((job.ok() && job->has_value()));
    CHECK((*job)->id == first->id);
    auto none = c.dequeue("q");
    REQUIRE(none.ok());
    CHECK_FALSE(none->has_value());
    REQUIRE(c.ack((*job)->id).ok());
    auto next = c.dequeue("q");
    REQUIRE((next.ok() && next->has_value()));
    CHECK((*next)->payload == "deposit");
    CHECK(c.put("q", "p", {.group = "two words"}).error().kind == ErrorKind::kBadArgument);
  }

  TEST_CASE("schedule, schedules and cancel_schedule - the timetable as the server lists it") {
    TqdProcess tqd;
    Client c = connect_to(tqd);
    REQUIRE(c.create("q").ok());
    auto hourly = c.schedule("q", "hourly", "tick", {.every = 1h, .group = "ticks"});
    REQUIRE(hourly.ok());
    CHECK(hourly->name == "hourly");
    CHECK(hourly->when == "every=3600000ms");
    CHECK(hourly->fired == 0);
    CHECK(hourly->next_ms % 3'600'000 == 0);
    CHECK(tq::client::field(hourly->fields, "group") == "ticks");
    auto nightly = c.schedule("q", "nightly", "report", {.cron = "0 3 * * MON-FRI", .priority = 2});
    REQUIRE(nightly.ok());
    CHECK(nightly->when == "cron=0 3 * * MON-FRI");
    CHECK(tq::client::field(nightly->fields, "priority") == "2");
    // On a zone's clock: the listing shows the zone, and the cron alone.
    auto berlin = c.schedule("q", "berlin", "report", {.cron = "0 3 * * *", .tz = "Europe/Berlin"});
    REQUIRE(berlin.ok());
    CHECK(berlin->when == "cron=0 3 * * *");
    CHECK(tq::client::field(berlin->fields, "tz") == "Europe/Berlin");
    CHECK(c.schedule("q", "x", "p", {.every = 1h, .tz = "Europe/Berlin"}).error().kind ==
          ErrorKind::kBadArgument);
    CHECK(c.schedule("q", "x", "p", {.cron = "0 3 * * *", .tz = "Europe/Berlin PRIORITY 9"})
              .error()
              .kind == ErrorKind::kBadArgument);
    REQUIRE(c.cancel_schedule("q", "berlin").ok());
    auto listed = c.schedules("q");
    REQUIRE(listed.ok());
    REQUIRE(listed->size() == 2);
    CHECK((*listed)[0].name == "hourly");
    CHECK((*listed)[1].name == "nightly");
    REQUIRE(c.cancel_schedule("q", "hourly").ok());
    auto gone = c.cancel_schedule("q", "hourly");
    REQUIRE_FALSE(gone.ok());
    CHECK(gone.error().code == "NOTFOUND");
    auto bad = c.schedule("q", "bad", "x", {.cron = "0 24 * * *"});
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().message == "cron field 2 (hour) '24': 24 is out of range 0-23");
    CHECK(c.schedule("q", "x", "p", {}).error().kind == ErrorKind::kBadArgument);
    CHECK(c.schedule("q", "x", "p", {.cron = "0 3 * * *\nDROP q"}).error().kind ==
          ErrorKind::kBadArgument);
    CHECK(c.schedules("q")->size() == 1);
    // A group may hold "cron=": the listing's timetable is still read right.
    auto odd = c.schedule("q", "odd", "x", {.every = 1h, .group = "nightly-cron=a"});
    REQUIRE(odd.ok());
    CHECK(odd->when == "every=3600000ms");
    CHECK(tq::client::field(odd->fields, "group") == "nightly-cron=a");
  }

  TEST_CASE("a dead-letter queue's job tells where it died - redrive sends it back") {
    TqdProcess tqd;
    Client c = connect_to(tqd);
    REQUIRE(c.create("orders").ok());
    REQUIRE(c.create("orders-dead").ok());
    REQUIRE(c.config("orders", {{"dead_letter_queue", "orders-dead"}}).ok());
    auto id = c.enqueue("orders", "ship 7");
    REQUIRE(id.ok());
    auto taken = c.dequeue("orders");
    REQUIRE((taken.ok() && taken->has_value()));
    REQUIRE(c.fail(*id, "no stock").ok());
    auto moved = c.job(*id);
    REQUIRE(moved.ok());
    CHECK(moved->queue == "orders-dead");
    CHECK(moved->state == "ready");
    CHECK(moved->from == "orders");
    CHECK(moved->reason == "failed: no stock");
    auto sent = c.redrive("orders-dead");
    REQUIRE(sent.ok());
    CHECK(*sent == 1);
    auto back = c.job(*id);
    REQUIRE(back.ok());
    CHECK(back->queue == "orders");
    CHECK(back->from.empty());
    CHECK(c.redrive("orders-dead", 5).value() == 0);
  }

  TEST_CASE("a worker's calls - dequeue from several queues, touch, nack, fail, ack and kick") {
    TqdProcess tqd;
    Client c = connect_to(tqd);
    REQUIRE(c.create("a").ok());
    REQUIRE(c.create("b").ok());
    REQUIRE(c.config("b", {{"max_attempts", "2"}}).ok());
    auto id = c.enqueue("b", "work");
    REQUIRE(id.ok());

    auto first = c.dequeue_many({"a", "b"});
    REQUIRE(first.ok());
    REQUIRE(first->size() == 1);
    CHECK((*first)[0].queue == "b");
    auto left = c.touch(*id, 2min);
    REQUIRE(left.ok());
    CHECK(*left > 100s);
    CHECK(*left <= 120s);

    auto nacked = c.nack(*id);
    REQUIRE(nacked.ok());
    CHECK(*nacked == NackOutcome::kRetry);
    auto second = c.dequeue("b");
    REQUIRE(second.ok());
    REQUIRE(second->has_value());
    CHECK((*second)->attempts == 2);
    auto dead = c.nack(*id);  // it has used its two attempts
    REQUIRE(dead.ok());
    CHECK(*dead == NackOutcome::kDead);

    auto digits = c.kick(std::to_string(*id));  // a name no queue has, not a job id
    REQUIRE_FALSE(digits.ok());
    CHECK(digits.error().kind == tq::client::ErrorKind::kBadArgument);
    auto kicked_one = c.kick_job(*id);
    REQUIRE(kicked_one.ok());
    auto not_dead = c.kick_job(*id);  // ready now
    REQUIRE_FALSE(not_dead.ok());
    CHECK(not_dead.error().is(ErrorCode::kNotFound));
    auto again = c.dequeue("b");
    REQUIRE((again.ok() && again->has_value()));
    auto lowered = c.nack(*id, std::nullopt, -7);
    REQUIRE(lowered.ok());
    CHECK(*lowered == NackOutcome::kRetry);
    auto peeked = c.job(*id);
    REQUIRE(peeked.ok());
    CHECK(peeked->priority == -7);
    auto dead_again = c.dequeue("b");
    REQUIRE((dead_again.ok() && dead_again->has_value()));
    REQUIRE(c.nack(*id).ok());  // dead again: its two attempts
    auto kicked = c.kick("b");
    REQUIRE(kicked.ok());
    CHECK(*kicked == 1);
    auto third = c.dequeue("b");
    REQUIRE((third.ok() && third->has_value()));
    REQUIRE(c.fail(*id, "address does not exist").ok());
    auto dead_jobs = c.peek("b", JobState::kDead);
    REQUIRE(dead_jobs.ok());
    REQUIRE(dead_jobs->size() == 1);
    CHECK((*dead_jobs)[0].reason.find("address does not exist") != std::string::npos);
    auto one = c.job(*id);
    REQUIRE(one.ok());
    CHECK(one->id == *id);
    CHECK(one->queue == "b");
    CHECK(one->state == "dead");
    CHECK(one->reason == (*dead_jobs)[0].reason);

    // A job whose TTL passed during its lease expires when it is given back.
    auto brief = c.put("a", "brief", {.ttl = 50ms});
    REQUIRE(brief.ok());
    auto taken = c.dequeue("a");
    REQUIRE((taken.ok() && taken->has_value()));
    std::this_thread::sleep_for(100ms);  // the TTL passes, the lease (30 s) holds
    auto expired = c.nack(brief->id);
    REQUIRE(expired.ok());
    CHECK(*expired == NackOutcome::kExpired);
    CHECK(one->payload == (*dead_jobs)[0].payload);
    REQUIRE(c.delete_job(*id).ok());
    auto gone = c.job(*id);
    REQUIRE_FALSE(gone.ok());
    CHECK(gone.error().is(ErrorCode::kNotFound));

    auto a_id = c.enqueue("a", "x");
    auto b_id = c.enqueue("a", "y");
    auto two = c.dequeue_many({"a"}, {.count = 2});
    REQUIRE((two.ok() && two->size() == 2));
    const uint64_t ids[] = {*a_id, *b_id};
    auto acked = c.ack(ids);
    REQUIRE(acked.ok());
    CHECK(*acked == 2);
    // One job named twice is one acked (the server names it, not a count).
    auto repeated = c.enqueue("a", "z");
    REQUIRE(c.dequeue("a").ok());
    const uint64_t twice[] = {*repeated, *repeated};
    auto once = c.ack(twice);
    REQUIRE(once.ok());
    CHECK(*once == 1);

    auto not_found = c.ack(*a_id);
    REQUIRE_FALSE(not_found.ok());
    CHECK(not_found.error().is(ErrorCode::kNotFound));
    auto ready = c.enqueue("a", "never delivered");
    auto not_leased = c.ack(*ready);
    REQUIRE_FALSE(not_leased.ok());
    CHECK(not_leased.error().is(ErrorCode::kNotLeased));
  }

  TEST_CASE(
      "a Job's ack, nack, fail and touch carry its lease token - once its delivery is over they "
      "are refused on any connection") {
    TqdProcess tqd;
    Client worker = connect_to(tqd);
    REQUIRE(worker.create("q").ok());
    REQUIRE(worker.enqueue("q", "x").ok());
    REQUIRE(worker.enqueue("q", "y").ok());
    auto taken = worker.dequeue_many({"q"}, {.count = 2});
    REQUIRE((taken.ok() && taken->size() == 2));
    const tq::client::Job& mine = (*taken)[0];
    CHECK(mine.lease == 1u);
    auto shown = worker.job(mine.id);  // JOB shows it too, PEEK LEASED as well
    REQUIRE(shown.ok());
    CHECK(shown->lease == 1u);
    auto leased = worker.peek("q", JobState::kLeased);
    REQUIRE((leased.ok() && leased->size() == 2));
    CHECK((*leased)[0].lease == 1u);
    auto ready = worker.peek("q");
    REQUIRE(ready.ok());
    CHECK(ready->empty());
    REQUIRE(worker.touch(mine).ok());

    // Another worker ends the delivery and takes the job again.
    Client other = connect_to(tqd);
    REQUIRE(other.nack(mine.id).ok());
    auto again = other.dequeue("q");
    REQUIRE((again.ok() && again->has_value()));
    const tq::client::Job& current = **again;
    CHECK(current.lease == 2u);

    // The first worker, back on a new connection: every call with its Job is
    // refused, where a bare id would have ended the other worker's delivery.
    Client back = connect_to(tqd);
    auto check_refused = [&](const tq::client::Error& error) {
      CHECK(error.is(ErrorCode::kNotLeased));
      CHECK(error.message.find("is in another delivery now (lease=2, attempt 2), not lease=1") !=
            std::string::npos);
    };
    check_refused(back.ack(mine).error());
    check_refused(back.nack(mine).error());
    check_refused(back.fail(mine, "late").error());
    check_refused(back.touch(mine).error());
    const tq::client::Job both[] = {mine, (*taken)[1]};
    auto partly = back.ack(both);
    REQUIRE_FALSE(partly.ok());
    CHECK(partly.error().is(ErrorCode::kNotLeased));
    CHECK(partly.error().message.rfind("acked 1 of 2; job ", 0) == 0);
    auto still = back.job(mine.id);
    REQUIRE(still.ok());
    CHECK(still->state == "leased");
    CHECK(still->lease == 2u);

    // The current holder's calls go through, from any connection.
    auto left = back.touch(current, 1min);
    REQUIRE(left.ok());
    CHECK(*left == 1min);
    const tq::client::Job current_twice[] = {current, current};
    auto acked = other.ack(current_twice);
    REQUIRE(acked.ok());
    CHECK(*acked == 1);
  }

  TEST_CASE("dequeue with WAIT returns the job another client enqueues meanwhile") {
    TqdProcess tqd;
    Client worker = connect_to(tqd);
    REQUIRE(worker.create("jobs").ok());
    std::thread producer([&] {
      // Until the worker waits, the queue is empty: the producer waits for
      // the server to count the waiter, then enqueues.
      Client p = connect_to(tqd);
      const auto deadline = std::chrono::steady_clock::now() + 10s;
      while (std::chrono::steady_clock::now() < deadline) {
        auto stats = p.stats("jobs");
        if (!stats.ok() || tq::client::field(*stats, "waiters") == "1") break;
      }
      CHECK(p.enqueue("jobs", "arrived").ok());
    });
    auto job = worker.dequeue("jobs", 30s);
    producer.join();
    REQUIRE(job.ok());
    REQUIRE(job->has_value());
    CHECK((*job)->payload == "arrived");

    auto empty = worker.dequeue_many({"jobs"}, {.wait = 50ms, .count = 5});
    REQUIRE(empty.ok());
    CHECK(empty->empty());
  }

  TEST_CASE("queues and server - list, config, pause, resume, purge, drop, stats, help, ping") {
    TqdProcess tqd;
    Client c = connect_to(tqd);
    auto none = c.list();
    REQUIRE(none.ok());
    CHECK(none->empty());
    REQUIRE(c.create("orders").ok());
    REQUIRE(c.create("audit").ok());
    CHECK(*c.list() == std::vector<std::string>{"audit", "orders"});

    auto settings = c.config("orders", {{"ack_timeout", "1m"}});
    REQUIRE(settings.ok());
    CHECK(tq::client::field(*settings, "ack_timeout") == "60000ms");
    auto bad = c.config("orders", {{"retries", "3"}});
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().is(ErrorCode::kBadFormat));

    REQUIRE(c.pause("orders").ok());
    REQUIRE(c.enqueue("orders", "held").ok());
    auto paused = c.dequeue("orders");
    REQUIRE(paused.ok());
    CHECK_FALSE(paused->has_value());
    REQUIRE(c.resume("orders").ok());
    REQUIRE(c.pause("orders", 1h).ok());
    auto timed = c.stats("orders");
    REQUIRE(timed.ok());
    CHECK(tq::client::field(*timed, "paused") == "1");
    CHECK(tq::client::field(*timed, "paused_until_ms") != "0");
    REQUIRE(c.resume("orders").ok());
    auto purged = c.purge("orders");
    REQUIRE(purged.ok());
    CHECK(*purged == 1);
    REQUIRE(c.drop("audit").ok());

    auto stats = c.stats();
    REQUIRE(stats.ok());
    CHECK(tq::client::field(*stats, "queues") == "1");
    auto queue_stats = c.stats("orders");
    REQUIRE(queue_stats.ok());
    CHECK(tq::client::field(*queue_stats, "queue") == "orders");

    auto help = c.help();
    REQUIRE(help.ok());
    CHECK(help->size() == tq::protocol::all_commands().size());
    auto ack_help = c.help("ack");
    REQUIRE(ack_help.ok());
    CHECK(ack_help->front().rfind("ACK <id>", 0) == 0);
    CHECK(c.ping().ok());
  }

  TEST_CASE("arguments that would change the request are refused before anything is sent") {
    TqdProcess tqd;
    Client c = connect_to(tqd);
    REQUIRE(c.create("q").ok());
    auto spaced = c.create("q DROP");
    REQUIRE_FALSE(spaced.ok());
    CHECK(spaced.error().kind == ErrorKind::kBadArgument);
    CHECK_FALSE(spaced.error().outcome_unknown());
    CHECK(c.enqueue("q x", "p").error().kind == ErrorKind::kBadArgument);
    CHECK(c.put("q", "p", {.key = "two words"}).error().kind == ErrorKind::kBadArgument);
    CHECK(c.fail(1, "line\nbreak").error().kind == ErrorKind::kBadArgument);
    CHECK(c.request("LIST\nDROP q").error().kind == ErrorKind::kBadArgument);
    CHECK(c.fail(1, "ends in\r").error().kind == ErrorKind::kBadArgument);
    // A body that does not fit its byte count would be read as requests, or
    // requests as body; a count past 2^64 - 1 has the server drop all that follows.
    CHECK(c.request("PUT q 3", "abcd").error().kind == ErrorKind::kBadArgument);
    CHECK(c.request("PUT q 5", "abcd").error().kind == ErrorKind::kBadArgument);
    CHECK(c.request("PUT q +4", "abcd").error().kind == ErrorKind::kBadArgument);
    auto endless = c.request("PUT q 99999999999999999999999");
    REQUIRE_FALSE(endless.ok());
    CHECK(endless.error().kind == ErrorKind::kBadArgument);
    CHECK(endless.error().message.find("past 2^64 - 1") != std::string::npos);
    CHECK(c.request("SCHEDULE q s 1 EVERY 1m", "").error().kind == ErrorKind::kBadArgument);
    // A count that is no number and no body: the server's BADFORMAT, in step.
    CHECK(c.request("PUT q +4").error().is(ErrorCode::kBadFormat));
    // The connection is still in step: nothing half-sent.
    CHECK(*c.list() == std::vector<std::string>{"q"});
    // A '\r' inside a line is no line end: ENQUEUE stores it (PROTOCOL.md).
    auto stored = c.request("ENQUEUE q cr\rhere");
    REQUIRE(stored.ok());
    auto job = c.dequeue("q");
    REQUIRE(job.ok());
    REQUIRE(job->has_value());
    CHECK((*job)->payload == "cr\rhere");
  }

  TEST_CASE("request() reads any reply whole - lines, counted lines, framed jobs and a PUT body") {
    TqdProcess tqd;
    Client c = connect_to(tqd);
    auto created = c.request("CREATE emails");
    REQUIRE(created.ok());
    CHECK(created->text == "created emails");
    auto put = c.request("PUT emails 9 PRIORITY 2", "two\nlines");
    REQUIRE(put.ok());
    auto peek = c.request("peek emails");
    REQUIRE(peek.ok());
    CHECK(peek->shape == tq::protocol::ReplyShape::kJobs);
    REQUIRE(peek->jobs.size() == 1);
    CHECK(peek->jobs[0].payload == "two\nlines");
    CHECK(peek->raw == "OK 1\nJOB " + put->text +
                           " 9 queue=emails state=ready attempts=0 priority=2\ntwo\nlines\n");
    auto queues = c.request("QUEUES");
    REQUIRE(queues.ok());
    CHECK(queues->lines ==
          std::vector<std::string>{"emails ready=1 held=0 delayed=0 leased=0 dead=0 paused=0"});
    auto unknown = c.request("FETCH emails");
    REQUIRE_FALSE(unknown.ok());
    CHECK(unknown.error().is(ErrorCode::kUnknown));
    CHECK(c.request("PING")->text == "PONG");
  }
}

}  // namespace client_test
