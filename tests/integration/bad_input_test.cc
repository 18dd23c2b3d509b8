#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include <random>
#include <thread>

#include "tests/support/thread_group.h"
#include "tests/support/tqd_process.h"

namespace bad_input_test {

using tq::testing::TqdOptions;
using tq::testing::TqdProcess;

namespace {

TqdOptions small_lines() {
  TqdOptions o;
  o.config_yaml = "limits:\n  max_line_bytes: 1KiB\n";
  return o;
}

}  // namespace

TEST_SUITE("bad_input") {
  TEST_CASE("each kind of bad line gets a clear ERROR and the connection goes on") {
    TqdProcess tqd(small_lines());
    auto s = tqd.socket();
    struct Case {
      std::string send;
      std::string reply_prefix;
    };
    const std::vector<Case> cases = {
        {"FROB\n", "ERROR UNKNOWN unknown command 'FROB'"},
        {std::string("\x00\x01\xfe\xff garbage\n", 13),
         "ERROR UNKNOWN unknown command '\\x00\\x01\\xfe\\xff'"},
        {"ENQUEUE\n", "ERROR BADFORMAT wrong number of arguments for ENQUEUE"},
        {"ENQUEUE q " + std::string(2000, 'x') + "\n",
         "ERROR TOOBIG line exceeds 1024 bytes (limits.max_line_bytes)"},
        {"ACK -5\n", "ERROR BADFORMAT a job id is a positive whole number"},
        {"CREATE bad/name\n", "ERROR BADFORMAT invalid queue name 'bad/name'"},
        {"DEQUEUE nothere\n", "ERROR NOQUEUE queue 'nothere' does not exist"},
        {"PING\n", "OK PONG"},
    };
    for (const auto& c : cases) {
      CAPTURE(c.reply_prefix);
      REQUIRE(s.send(c.send).ok());
      auto line = s.read_line();
      REQUIRE(line.ok());
      CHECK(line->rfind(c.reply_prefix, 0) == 0);
    }
  }

  TEST_CASE("random bytes from one client do not disturb another") {
    TqdProcess tqd(small_lines());
    auto good = tqd.client();
    REQUIRE(good.create("q").ok());

    tq::testing::ThreadGroup noisy;
    noisy.spawn([&] {
      auto s = tqd.socket();
      std::mt19937 rng(1234);
      for (int round = 0; round < 200; ++round) {
        std::string junk(1 + rng() % 3000, '\0');
        for (char& ch : junk) ch = static_cast<char>(rng());
        if (!s.send(junk).ok()) break;
      }
      // Whatever it sent, the server is still talking to it.
      (void)s.send("\nPING\n");
    });
    for (int i = 0; i < 200; ++i) {
      auto id = good.enqueue("q", "job " + std::to_string(i));
      REQUIRE(id.ok());
      auto job = good.dequeue("q");
      REQUIRE(job.ok());
      REQUIRE(job->has_value());
      CHECK((*job)->payload == "job " + std::to_string(i));
      REQUIRE(good.ack((*job)->id).ok());
    }
    noisy.join();
    CHECK(good.ping().ok());
  }

  TEST_CASE("a client that vanishes mid-command leaves the server serving") {
    TqdProcess tqd;
    {
      auto s = tqd.socket();
      REQUIRE(s.send("ENQUEUE q half a comm").ok());
    }  // closed without a newline
    {
      auto s = tqd.socket();
      REQUIRE(s.send(std::string(100000, 'z')).ok());
    }
    auto c = tqd.client();
    CHECK(c.ping().ok());
  }

  TEST_CASE("a client that half-closes still gets every reply") {
    TqdProcess tqd;
    auto s = tqd.socket();
    REQUIRE(s.send("CREATE q\nENQUEUE q a\nENQUEUE q b\nLIST\n").ok());
    s.shutdown_write();
    CHECK(*s.read_line() == "OK created q");
    CHECK(*s.read_line() == "OK 1");
    CHECK(*s.read_line() == "OK 2");
    CHECK(*s.read_line() == "OK q");
    CHECK_FALSE(s.read_line().ok());  // then the server closes
  }

  TEST_CASE("a client that half-closes gets every reply, megabytes still in flight as tqd closes") {
    // Once it has read the client's FIN, tqd closes without lingering:
    // nothing can come after a FIN to reset the replies. The kernel sends
    // what the socket still holds, then its own FIN. A tiny receive buffer
    // keeps most of the 1.6 MB of replies waiting in tqd's socket and
    // libuv's queue when the last is written.
    TqdProcess tqd;
    const int fd = tq::testing::connect_raw(tqd.port(), 4096);
    REQUIRE(fd >= 0);
    const timeval timeout{10, 0};  // a tqd that never closes fails the test, not hangs it
    REQUIRE(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) == 0);
    constexpr size_t kPings = 200'000;
    size_t received = 0;
    std::thread reader([&] {
      char buf[4096];
      ssize_t n;
      while ((n = recv(fd, buf, sizeof buf, 0)) > 0) received += static_cast<size_t>(n);
    });
    std::string pings;
    for (size_t i = 0; i < kPings; ++i) pings += "PING\n";
    size_t sent = 0;
    while (sent < pings.size()) {
      const ssize_t n = send(fd, pings.data() + sent, pings.size() - sent, MSG_NOSIGNAL);
      REQUIRE(n > 0);
      sent += static_cast<size_t>(n);
    }
    REQUIRE(::shutdown(fd, SHUT_WR) == 0);
    reader.join();  // to tqd's FIN
    close(fd);
    CHECK(received == kPings * std::string("OK PONG\n").size());
  }
}

}  // namespace bad_input_test
