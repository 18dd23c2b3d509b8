// tqd under a service manager (systemd Type=notify): the test plays the
// manager, a unix datagram socket named in $NOTIFY_SOCKET, and reads what a
// real tqd sends it.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "tests/support/tqd_process.h"

namespace service_notify_test {

using tq::testing::TqdOptions;
using tq::testing::TqdProcess;

namespace {

TqdOptions in_dir(const std::string& dir) {
  TqdOptions options;
  options.dir = dir;
  return options;
}

// The manager's end: a bound datagram socket, and the environment that
// names it for the tqd started while this lives.
class FakeManager {
 public:
  // `name` is a path, or "@..." for the abstract namespace.
  explicit FakeManager(const std::string& name, const char* watchdog_usec = nullptr,
                       const char* watchdog_pid = nullptr) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    REQUIRE(name.size() < sizeof(address.sun_path));
    std::memcpy(address.sun_path, name.data(), name.size());
    if (name[0] == '@') address.sun_path[0] = '\0';
    const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&address), length) == 0);
    ::setenv("NOTIFY_SOCKET", name.c_str(), 1);
    set_or_unset("WATCHDOG_USEC", watchdog_usec);
    set_or_unset("WATCHDOG_PID", watchdog_pid);
  }
  ~FakeManager() {
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
    ::unsetenv("WATCHDOG_PID");
    ::close(fd_);
  }
  FakeManager(const FakeManager&) = delete;
  FakeManager& operator=(const FakeManager&) = delete;

  // The next datagram, or nullopt when none comes within `timeout_ms`.
  std::optional<std::string> next(int timeout_ms) {
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    REQUIRE(::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
    char buffer[512];
    const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n < 0) return std::nullopt;
    return std::string(buffer, static_cast<size_t>(n));
  }

 private:
  static void set_or_unset(const char* name, const char* value) {
    if (value != nullptr) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }

  int fd_ = -1;
};

}  // namespace

TEST_SUITE("service_notify") {
  TEST_CASE(
      "READY=1 comes once tqd serves, with what it replayed, then WATCHDOG=1 keep-alives, then "
      "STOPPING=1") {
    const std::string dir = tq::testing::make_temp_dir();
    {
      TqdProcess first(in_dir(dir));
      auto c = first.client();
      REQUIRE(c.create("emails").ok());
      REQUIRE(c.enqueue("emails", "one").ok());
      REQUIRE(c.enqueue("emails", "two").ok());
      REQUIRE(first.stop(SIGTERM) == 0);
    }
    FakeManager manager(dir + "/notify", "200000");
    TqdProcess tqd(in_dir(dir));
    auto ready = manager.next(5000);
    REQUIRE(ready.has_value());
    CHECK(*ready == "READY=1\nSTATUS=serving on port " + std::to_string(tqd.port()) +
                        ": 2 jobs in 1 queue\n");
    CHECK(tqd.client().ping().ok());

    // Half the 200 ms period: three keep-alives span two intervals of 100 ms.
    auto first_tick = manager.next(2000);
    REQUIRE(first_tick.has_value());
    CHECK(*first_tick == "WATCHDOG=1\n");
    const auto started = std::chrono::steady_clock::now();
    REQUIRE(manager.next(2000) == std::optional<std::string>("WATCHDOG=1\n"));
    REQUIRE(manager.next(2000) == std::optional<std::string>("WATCHDOG=1\n"));
    CHECK(std::chrono::steady_clock::now() - started >= std::chrono::milliseconds(150));
    CHECK(tqd.wait_for_log("service manager watchdog: a keep-alive every 100ms"));
    CHECK(tqd.stop(SIGTERM) == 0);
    // Then STOPPING=1 as the shutdown begins (after the keep-alives sent
    // before it).
    std::optional<std::string> last = manager.next(2000);
    while (last == std::optional<std::string>("WATCHDOG=1\n")) last = manager.next(2000);
    CHECK(last == std::optional<std::string>("STOPPING=1\nSTATUS=stopping: SIGTERM\n"));
    tq::testing::remove_tree(dir);
  }

  TEST_CASE("STATUS follows the jobs and queues as tqd serves, sent again only when it changed") {
    // systemctl status must not show the counts of the start for weeks.
    const std::string dir = tq::testing::make_temp_dir();
    FakeManager manager(dir + "/notify");
    TqdProcess tqd(in_dir(dir));
    const std::string serving = "STATUS=serving on port " + std::to_string(tqd.port()) + ": ";
    REQUIRE(manager.next(5000) == "READY=1\n" + serving + "0 jobs in 0 queues\n");
    auto c = tqd.client();
    REQUIRE(c.create("emails").ok());
    REQUIRE(c.enqueue("emails", "one").ok());
    REQUIRE(c.enqueue("emails", "two").ok());
    // Within a second or two; a tick between the requests sends the line
    // of that moment first.
    const std::string expected = serving + "2 jobs in 1 queue\n";
    std::optional<std::string> status;
    for (int i = 0; i < 3 && status != expected; ++i) status = manager.next(5000);
    CHECK(status == expected);
    CHECK_FALSE(manager.next(1500).has_value());  // nothing changed: nothing sent
    CHECK(tqd.stop(SIGTERM) == 0);
    CHECK(manager.next(2000) ==
          std::optional<std::string>("STOPPING=1\nSTATUS=stopping: SIGTERM\n"));
    CHECK_FALSE(manager.next(1200).has_value());  // "stopping" stays
    tq::testing::remove_tree(dir);
  }

  TEST_CASE("an abstract socket works - a watchdog meant for another pid sends no keep-alive") {
    const std::string name = "@tq-notify-test-" + std::to_string(::getpid());
    FakeManager manager(name, "100000", "1");  // WATCHDOG_PID=1: not tqd
    TqdProcess tqd;
    auto ready = manager.next(5000);
    REQUIRE(ready.has_value());
    CHECK(ready->rfind("READY=1\n", 0) == 0);
    CHECK_FALSE(manager.next(400).has_value());  // four periods: no WATCHDOG=1
  }

  TEST_CASE("a NOTIFY_SOCKET that cannot be used is logged once and tqd serves all the same") {
    ::setenv("NOTIFY_SOCKET", "relative/socket", 1);
    TqdProcess tqd;
    ::unsetenv("NOTIFY_SOCKET");
    CHECK(tqd.wait_for_log("NOTIFY_SOCKET 'relative/socket' is neither an absolute path"));
    CHECK(tqd.client().ping().ok());
  }
}

}  // namespace service_notify_test
