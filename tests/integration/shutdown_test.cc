#include <doctest/doctest.h>

#include <algorithm>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/asan.h"
#include "client/client.h"
#include "tests/support/tqd_process.h"

namespace shutdown_test {

using tq::testing::connect_raw;
using tq::testing::run_tqd;
using tq::testing::TqdOptions;
using tq::testing::TqdProcess;

// The most memory tqd has held, in KiB.
int64_t peak_rss_kib(pid_t pid) {
  return static_cast<int64_t>(tq::testing::proc_status_kib(pid, "VmHWM"));
}

// A worker that holds tqd's shutdown open: blocked in DEQUEUE ... WAIT with
// a pipelined batch behind it, and reading none of the refusals the batch
// gets at the stop (about 10 MB of them: tqd waits for it to read them,
// up to server.shutdown_timeout). read_all() reads them, and tqd ends.
class DrainHolder {
 public:
  explicit DrainHolder(const TqdProcess& tqd) : fd_(connect_raw(tqd.port(), 4096)) {
    std::string batch = "DEQUEUE held WAIT 1h\n";
    for (int i = 0; i < 256 * 1024; ++i) batch += "X\n";
    REQUIRE(fd_ >= 0);
    REQUIRE(::send(fd_, batch.data(), batch.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(batch.size()));
  }
  ~DrainHolder() {
    if (fd_ >= 0) ::close(fd_);
  }
  DrainHolder(const DrainHolder&) = delete;
  DrainHolder& operator=(const DrainHolder&) = delete;

  // Reads until tqd closes the connection; the bytes read.
  size_t read_all() {
    char buffer[65536];
    size_t total = 0;
    ssize_t n = 0;
    while ((n = ::recv(fd_, buffer, sizeof buffer, 0)) > 0) total += static_cast<size_t>(n);
    ::close(fd_);
    fd_ = -1;
    return total;
  }

 private:
  int fd_;
};

// Waits until queue `queue` has `count` workers waiting on it.
void wait_for_waiters(tq::client::Client& admin, const std::string& queue, int count) {
  for (int i = 0; i < 1000; ++i) {
    auto stats = admin.stats(queue);
    REQUIRE(stats.ok());
    if (tq::client::field(*stats, "waiters") == std::to_string(count)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  FAIL("no worker waits on " << queue);
}

// Makes the queue "held" and a DrainHolder waiting on it, in: a SIGTERM
// then keeps tqd draining until the holder reads.
std::unique_ptr<DrainHolder> hold_drain(const TqdProcess& tqd) {
  auto admin = tqd.client();
  REQUIRE(admin.create("held").ok());
  auto holder = std::make_unique<DrainHolder>(tqd);
  wait_for_waiters(admin, "held", 1);
  return holder;
}

TEST_SUITE("shutdown") {
  TEST_CASE("SIGTERM: open connections are closed, tqd logs and exits 0 promptly") {
    // Promptly: not at shutdown_timeout, far off here, whose warning
    // ("still open after") must not be in the log, however slow the machine.
    TqdOptions options;
    options.config_yaml = "server:\n  shutdown_timeout: 60s\n";
    TqdProcess tqd(options);
    auto idle = tqd.socket();
    auto busy = tqd.client();
    REQUIRE(busy.create("q").ok());
    CHECK(tqd.stop(SIGTERM) == 0);
    auto lines = tqd.log_lines();
    auto has = [&](const std::string& needle) {
      return std::any_of(lines.begin(), lines.end(),
                         [&](const std::string& l) { return l.find(needle) != std::string::npos; });
    };
    CHECK(has("SIGTERM: shutting down (2 connection(s) open)"));
    CHECK(has("stopped"));
    CHECK_FALSE(has("still open after"));
    CHECK_FALSE(idle.read_line().ok());  // closed by the server
  }

  TEST_CASE("SIGINT: requests already received are answered before the close") {
    TqdProcess tqd;
    auto s = tqd.socket();
    REQUIRE(s.send("CREATE q\nPING\n").ok());
    CHECK(*s.read_line() == "OK created q");
    CHECK(*s.read_line() == "OK PONG");
    CHECK(tqd.stop(SIGINT) == 0);
  }

  TEST_CASE("a restart keeps leases to their ends: the worker ACKs after it, no attempt lost") {
    // A deploy used to end every lease: a max_attempts=1 job went to dead
    // letters, and the worker that had done the work was refused its ACK.
    tq::testing::TqdOptions options;
    options.dir = tq::testing::make_temp_dir();
    std::string touched;
    {
      TqdProcess tqd(options);
      auto worker = tqd.client();
      REQUIRE(worker.create("q").ok());
      REQUIRE(worker.config("q", {{"max_attempts", "1"}}).ok());
      REQUIRE(worker.enqueue("q", "charge card").ok());
      REQUIRE(worker.enqueue("q", "send receipt").ok());
      REQUIRE(worker.dequeue("q").ok());
      REQUIRE(worker.dequeue("q").ok());
      REQUIRE(worker.touch(2, std::chrono::minutes(10)).ok());  // its new end is kept too
      touched = tq::client::field(worker.job(2).value().fields, "at");
      CHECK(tqd.stop(SIGTERM) == 0);
    }
    TqdProcess tqd(options);
    CHECK(tqd.wait_for_log("(leased, kept until their leases end: 2)"));
    auto worker = tqd.client();  // a new connection, as a worker's after a restart
    const auto job = worker.job(2);
    REQUIRE(job.ok());
    CHECK(job->state == "leased");
    CHECK(job->attempts == 1);
    CHECK(tq::client::field(job->fields, "at") == touched);
    CHECK(worker.ack(1).ok());
    CHECK(worker.ack(2).ok());
    CHECK(tq::client::field(worker.stats().value(), "jobs_leased") == "0");
    CHECK(tq::client::field(worker.stats().value(), "jobs_dead") == "0");
    tqd.stop(SIGTERM);
    tq::testing::remove_tree(options.dir);
  }

  TEST_CASE("a client still sending when tqd stops gets whole replies, then a clean end") {
    // Closing a socket with unread input sends an RST, and the client's
    // kernel then drops what it had received and not yet read: this client
    // got a reply cut in half, then ECONNRESET.
    TqdProcess tqd;
    const int fd = connect_raw(tqd.port());
    REQUIRE(fd >= 0);
    std::atomic<bool> stop_sending{false};
    std::thread sender([&] {
      std::string pings;
      for (int i = 0; i < 8192; ++i) pings += "PING\n";
      // Until the server stops reading and the socket fills, or the test ends.
      while (!stop_sending && ::send(fd, pings.data(), pings.size(), MSG_NOSIGNAL) > 0) {
      }
    });
    std::string replies;
    char buffer[65536];
    bool signalled = false;
    ssize_t n = 0;
    int error = 0;
    for (;;) {
      n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) {
        error = n < 0 ? errno : 0;
        break;
      }
      replies.append(buffer, static_cast<size_t>(n));
      if (!signalled && replies.size() > 100'000) {
        REQUIRE(kill(tqd.pid(), SIGTERM) == 0);
        signalled = true;
      }
    }
    stop_sending = true;
    ::shutdown(fd, SHUT_RDWR);  // the sender's next send fails, if it is in one
    sender.join();
    ::close(fd);
    CHECK(signalled);
    CHECK(n == 0);  // the server's FIN, not a reset
    CHECK(error == 0);
    // The PINGs run before the signal, then those read and not yet run
    // (past the turn's budget), refused: whole lines, in that order.
    const std::string pong = "OK PONG\n";
    const std::string refusal = "ERROR SHUTDOWN the server is stopping\n";
    size_t at = 0;
    while (replies.compare(at, pong.size(), pong) == 0) at += pong.size();
    const size_t pongs = at / pong.size();
    while (replies.compare(at, refusal.size(), refusal) == 0) at += refusal.size();
    CHECK(at == replies.size());
    CHECK(pongs > 0);
    MESSAGE(pongs << " PING(s) answered, " << (at - pongs * pong.size()) / refusal.size()
                  << " refused");
    CHECK(tqd.stop(0) == 0);  // signalled already: our close ends its last connection
  }

  TEST_CASE("a slow reader that sends again after tqd stopped still gets every reply") {
    // Its replies wait in tqd's socket, unacknowledged (the client reads
    // slowly); a request arriving at a closed socket resets it, and the
    // replies still queued there were dropped.
    TqdProcess tqd;
    const int fd = connect_raw(tqd.port(), 4096);
    REQUIRE(fd >= 0);
    constexpr int kPings = 60'000;  // 480 KB of replies: under the 1 MiB that pauses reading
    std::string pings;
    for (int i = 0; i < kPings; ++i) pings += "PING\n";
    REQUIRE(::send(fd, pings.data(), pings.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(pings.size()));
    auto admin = tqd.client();
    for (int i = 0; i < 1000; ++i) {
      auto stats = admin.stats();
      REQUIRE(stats.ok());
      if (tq::client::field(*stats, "commands_ping") == std::to_string(kPings)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    admin.close();
    REQUIRE(kill(tqd.pid(), SIGTERM) == 0);
    REQUIRE(tqd.wait_for_log("shutting down"));
    // The scenario, not a wait for something: the late request comes a
    // moment after tqd has handed the last reply to the kernel.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    REQUIRE(::send(fd, "PING\n", 5, MSG_NOSIGNAL) == 5);
    std::string replies;
    char buffer[65536];
    ssize_t n = 0;
    int error = 0;
    while ((n = ::recv(fd, buffer, sizeof buffer, 0)) > 0)
      replies.append(buffer, static_cast<size_t>(n));
    if (n < 0) error = errno;
    ::close(fd);
    CHECK(error == 0);
    CHECK(replies.size() == 8u * kPings);  // "OK PONG\n" each
    CHECK(tqd.stop(0) == 0);
  }

  TEST_CASE("requests sent while tqd drains are answered SHUTDOWN in order, and not run") {
    // They were read and dropped: the client saw its connection close with
    // no answer, so an ACK sent then had an unknown outcome (its job ran
    // again after the restart, though it was done).
    TqdOptions options;
    options.dir = tq::testing::make_temp_dir();
    // A deadline far off: the drain must end because nothing holds it any
    // more, which the log shows (no "still open after"), however long a
    // loaded machine takes to read the holder's refusals.
    options.config_yaml = "server:\n  shutdown_timeout: 60s\n";
    {
      TqdProcess tqd(options);
      auto admin = tqd.client();
      REQUIRE(admin.create("q").ok());
      REQUIRE(admin.create("held").ok());
      auto s = tqd.socket();
      REQUIRE(s.send("ENQUEUE q done\nDEQUEUE q\n").ok());
      REQUIRE(*s.read_line() == "OK 1");
      const auto delivery = s.read_line();
      REQUIRE(delivery.ok());
      REQUIRE(delivery->rfind("OK 1 ", 0) == 0);
      DrainHolder holder(tqd);
      wait_for_waiters(admin, "held", 1);
      admin.close();
      const auto stop_began = std::chrono::steady_clock::now();
      REQUIRE(kill(tqd.pid(), SIGTERM) == 0);
      REQUIRE(tqd.wait_for_log("shutting down"));
      const std::string refusal = "ERROR SHUTDOWN the server is stopping";
      auto reply = [&] {
        auto line = s.read_line();
        return line.ok() ? *line : "(no reply: " + line.error().to_string() + ")";
      };
      // One at a time, as a worker sends its ACK when its job is done.
      REQUIRE(s.send("ACK 1\n").ok());
      CHECK(reply() == refusal);
      REQUIRE(s.send("ENQUEUE q lost\n").ok());
      CHECK(reply() == refusal);
      // The body is skipped whole: its lines are not requests.
      REQUIRE(s.send("PUT q 11\nACK 1\nPING\n\n").ok());
      CHECK(reply() == refusal);
      // A pipelined batch, a malformed line among them: one refusal each.
      REQUIRE(s.send("PING\nFROBNICATE\nACK 1\nSTATS\n").ok());
      for (int i = 0; i < 4; ++i) CHECK(reply() == refusal);
      CHECK(holder.read_all() > 1'000'000);  // its refusals; then tqd closes it
      CHECK_FALSE(s.read_line().ok());       // and this one: nothing else holds it
      CHECK(tqd.stop(0) == 0);
      const auto drain = std::chrono::steady_clock::now() - stop_began;
      MESSAGE(
          "the drain took " << std::chrono::duration_cast<std::chrono::milliseconds>(drain).count()
                            << " ms");
      for (const std::string& line : tqd.log_lines()) {
        CHECK(line.find("still open after") == std::string::npos);
      }
    }
    TqdProcess tqd(options);
    auto admin = tqd.client();
    const auto job = admin.job(1);
    REQUIRE(job.ok());
    CHECK(job->state == "leased");  // kept to its lease's end, as any restart does
    const auto stats = admin.stats();
    REQUIRE(stats.ok());
    CHECK(tq::client::field(*stats, "jobs_ready") == "0");  // the ENQUEUE and PUT not stored
    CHECK(tq::client::field(*stats, "jobs_leased") == "1");
    CHECK(tqd.stop(SIGTERM) == 0);
    tq::testing::remove_tree(options.dir);
  }

  TEST_CASE("a client that keeps sending while tqd drains does not keep it up") {
    TqdProcess tqd;
    const auto holder = hold_drain(tqd);
    const int fd = connect_raw(tqd.port());
    REQUIRE(fd >= 0);
    REQUIRE(kill(tqd.pid(), SIGTERM) == 0);
    REQUIRE(tqd.wait_for_log("shutting down"));
    const auto stop_began = std::chrono::steady_clock::now();
    std::atomic<bool> stop_sending{false};
    std::thread sender([&] {
      std::string pings;
      for (int i = 0; i < 1024; ++i) pings += "PING\n";
      while (!stop_sending && ::send(fd, pings.data(), pings.size(), MSG_NOSIGNAL) > 0) {
      }
    });
    std::string replies;
    char buffer[65536];
    ssize_t n = 0;
    while ((n = ::recv(fd, buffer, sizeof buffer, 0)) > 0) {
      replies.append(buffer, static_cast<size_t>(n));
    }
    const auto ended = std::chrono::steady_clock::now() - stop_began;
    stop_sending = true;
    ::shutdown(fd, SHUT_RDWR);
    sender.join();
    ::close(fd);
    // Refused as they came, whole lines, for a linger's time (two to three
    // seconds: the housekeeping looks once a second), then the end. The end
    // of a client still sending is a reset (its input unread), which may
    // drop the last replies in flight, so only what came before the last
    // line end is checked: refusals, and nothing else.
    const std::string refusal = "ERROR SHUTDOWN the server is stopping\n";
    const size_t whole = replies.rfind('\n') + 1;  // 0 when none came
    CHECK(whole > 0);
    CHECK(whole % refusal.size() == 0);
    bool only_refusals = true;
    for (size_t at = 0; at + refusal.size() <= whole; at += refusal.size()) {
      only_refusals = only_refusals && replies.compare(at, refusal.size(), refusal) == 0;
    }
    CHECK(only_refusals);
    const size_t refused = whole / refusal.size();
    MESSAGE(refused << " refused in "
                    << std::chrono::duration_cast<std::chrono::milliseconds>(ended).count()
                    << " ms");
    // At most a linger's time (3 s) and two housekeeping looks a second
    // apart (the refusals', then the linger's): 5 s, and a margin for a
    // loaded machine (4.3 s seen under the sanitizers).
    CHECK(ended < std::chrono::seconds(8));
    holder->read_all();
    CHECK(tqd.stop(0) == 0);
  }

  TEST_CASE("clients flooding requests while tqd drains take turns with another's refusal") {
    // Refusals were not charged to the iteration's reply budget: each
    // flooding client had up to 1 MiB of them made at its read, all of them
    // before a bystander's one request was answered (64 MiB, about 200 ms
    // here, every one of the 64 served first). Charged, the budget takes
    // about four clients' turns, then the bystander's request.
    TqdProcess tqd;
    const auto holder = hold_drain(tqd);
    constexpr int kFlooders = 64;
    std::vector<int> flooders;
    for (int i = 0; i < kFlooders; ++i) {
      // A small receive buffer: they read nothing, so what tqd sends them
      // waits in its socket and its output, a few KiB in theirs.
      flooders.push_back(connect_raw(tqd.port(), 4096));
      REQUIRE(flooders.back() >= 0);
      REQUIRE(::send(flooders.back(), "PING\n", 5, MSG_NOSIGNAL) == 5);
      char pong[8];
      REQUIRE(::recv(flooders.back(), pong, sizeof pong, MSG_WAITALL) == 8);  // admitted
    }
    auto bystander = tqd.socket();
    REQUIRE(bystander.send("PING\n").ok());
    REQUIRE(*bystander.read_line() == "OK PONG");
    REQUIRE(kill(tqd.pid(), SIGTERM) == 0);
    REQUIRE(tqd.wait_for_log("shutting down"));
    // Stopped, so that one iteration of its loop reads every flood (32768
    // requests, 1.2 MiB of refusals each), then the bystander's request.
    REQUIRE(tq::testing::stop_and_wait(tqd.pid()));
    std::string flood;
    for (int i = 0; i < 32 * 1024; ++i) flood += "X\n";
    for (int fd : flooders) {
      REQUIRE(::send(fd, flood.data(), flood.size(), MSG_NOSIGNAL) ==
              static_cast<ssize_t>(flood.size()));
    }
    REQUIRE(bystander.send("PING\n").ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    REQUIRE(kill(tqd.pid(), SIGCONT) == 0);
    const auto refused = bystander.read_line();
    // Stopped again at once, so that a test thread slow to look (a loaded
    // CI machine) does not count the turns of later iterations, four or so
    // flooders each; what a SIGSTOP takes to land is the margin.
    REQUIRE(tq::testing::stop_and_wait(tqd.pid()));
    REQUIRE(refused.ok());
    CHECK(*refused == "ERROR SHUTDOWN the server is stopping");
    // Which flooders had refusals sent (more than the one each takes at its
    // read) by the time the bystander's came.
    int served = 0;
    for (int fd : flooders) {
      int unread = 0;
      REQUIRE(::ioctl(fd, FIONREAD, &unread) == 0);
      if (unread > 1000) ++served;
    }
    REQUIRE(kill(tqd.pid(), SIGCONT) == 0);
    MESSAGE(served << " of " << kFlooders << " flooders served before the bystander");
    CHECK(served < kFlooders / 2);
    for (int fd : flooders) ::close(fd);
    holder->read_all();
    CHECK(tqd.stop(0) == 0);
  }

  TEST_CASE("requests held behind a wait are refused at a stop as the client reads, every one") {
    // A waiting connection keeps up to 1 MiB of pipelined requests. At a
    // stop each is refused, 38 bytes a refusal: two-byte lines made 19
    // times their size in replies, on every such connection at once.
    TqdOptions options;
    // 80 MB of refusals, read one connection after another: more than the
    // default 5 s under the sanitizers.
    options.config_yaml = "server:\n  shutdown_timeout: 120s\n";
    TqdProcess tqd(options);
    auto admin = tqd.client();
    REQUIRE(admin.create("w").ok());
    constexpr int kWaiters = 8;
    constexpr size_t kLines = 256 * 1024;  // 512 KiB of "X\n" each: 9.5 MiB of refusals
    std::vector<int> fds;
    for (int i = 0; i < kWaiters; ++i) {
      fds.push_back(connect_raw(tqd.port(), 4096));
      REQUIRE(fds.back() >= 0);
      REQUIRE(::send(fds.back(), "DEQUEUE w WAIT 1h\n", 18, MSG_NOSIGNAL) == 18);
    }
    auto stat = [&](const std::string& name, const std::string& queue) {
      auto stats = queue.empty() ? admin.stats() : admin.stats(queue);
      REQUIRE(stats.ok());
      const std::string value = tq::client::field(*stats, name);
      return value.empty() ? 0ull : std::stoull(value);
    };
    for (int i = 0; i < 1000 && stat("waiters", "w") < kWaiters; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    REQUIRE(stat("waiters", "w") == kWaiters);
    std::string lines;
    for (size_t i = 0; i < kLines; ++i) lines += "X\n";
    for (int fd : fds) {
      REQUIRE(::send(fd, lines.data(), lines.size(), MSG_NOSIGNAL) ==
              static_cast<ssize_t>(lines.size()));
    }
    // client_buffer_bytes is counted once a second: read into tqd, then.
    for (int i = 0; i < 600 && stat("client_buffer_bytes", "") < kWaiters * lines.size(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE(stat("client_buffer_bytes", "") >= kWaiters * lines.size());
    admin.close();
    const int64_t peak_before = peak_rss_kib(tqd.pid());
    REQUIRE(kill(tqd.pid(), SIGTERM) == 0);
    REQUIRE(tqd.wait_for_log("shutting down"));
    const std::string refusal = "ERROR SHUTDOWN the server is stopping\n";
    int64_t peak_while_refusing = 0;
    for (size_t i = 0; i < fds.size(); ++i) {
      // Before the last connection is read, tqd is still up: what it holds
      // for all of them is in its peak.
      if (i + 1 == fds.size()) peak_while_refusing = peak_rss_kib(tqd.pid());
      std::string replies;
      char buffer[65536];
      ssize_t n = 0;
      while ((n = ::recv(fds[i], buffer, sizeof buffer, 0)) > 0) {
        replies.append(buffer, static_cast<size_t>(n));
      }
      CHECK(n == 0);
      ::close(fds[i]);
      // The wait's own reply, then one refusal a line.
      const size_t first_end = replies.find('\n') + 1;
      CHECK(replies.substr(0, first_end).rfind("ERROR SHUTDOWN", 0) == 0);
      CHECK(replies.size() - first_end == kLines * refusal.size());
      CHECK(replies.compare(replies.size() - refusal.size(), refusal.size(), refusal) == 0);
    }
    MESSAGE("tqd's peak RSS " << peak_before << " KiB before the stop, " << peak_while_refusing
                              << " KiB while refusing");
#ifndef TQ_ASAN  // ASan keeps freed memory back (its quarantine)
    // All at once it was 8 x 9.5 MiB more; as the clients read, about 1 MiB
    // each at most.
    CHECK(peak_while_refusing - peak_before < 40 * 1024);
#endif
    CHECK(tqd.stop(0) == 0);
  }
}

TEST_SUITE("command_line") {
  TEST_CASE("--version and --help") {
    auto [code, err] = run_tqd({"--version"});
    CHECK(code == 0);
    auto [help_code, help] = run_tqd({"--help"});
    CHECK(help_code == 0);
  }

  TEST_CASE("an unknown flag is one clear line and exit 2") {
    auto [code, err] = run_tqd({"--frobnicate"});
    CHECK(code == 2);
    CHECK(err.find("tqd: ") == 0);
    CHECK(err.find("--frobnicate") != std::string::npos);
    CHECK(std::count(err.begin(), err.end(), '\n') == 1);
  }

  TEST_CASE("a bad config file names the key and exits 2") {
    std::string dir = tq::testing::make_temp_dir();
    std::string path = dir + "/bad.yaml";
    std::ofstream(path) << "server:\n  port: 99999\n";
    auto [code, err] = run_tqd({"--config", path});
    CHECK(code == 2);
    CHECK(err == "tqd: " + path + ": server.port: expected a whole number from 0 to 65535, got '99999'\n");
    tq::testing::remove_tree(dir);
  }

  TEST_CASE("a port in use is one clear line and exit 1, before any log is read") {
    TqdProcess first;
    const std::string dir = tq::testing::make_temp_dir();
    auto [code, err] =
        run_tqd({"--port", std::to_string(first.port()), "--data-dir", dir + "/data"});
    CHECK(code == 1);
    CHECK(err.find("cannot listen on 127.0.0.1:" + std::to_string(first.port()) +
                   ": address already in use") != std::string::npos);
    CHECK(err.find("wal: replayed") == std::string::npos);  // reported before the replay
    tq::testing::remove_tree(dir);
  }
}

}  // namespace shutdown_test
