// The job lifecycle over TCP against a real tqd: long polling, several
// queues, framed batches with binary payloads, and every setting and state
// surviving a restart.
#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "tests/integration/line_call.h"
#include "tests/support/smaps.h"
#include "tests/support/tqd_process.h"

namespace lifecycle_test {

using tq::client::LineSocket;
using tq::testing::TqdOptions;
using tq::testing::TqdProcess;
using Clock = std::chrono::steady_clock;

using tq::testing::call;

namespace {

struct Frame {
  uint64_t id;
  std::string header;
  std::string payload;
};

// Reads "OK <n>" and n framed jobs.
std::vector<Frame> read_jobs(LineSocket& s) {
  auto head = s.read_line();
  REQUIRE(head.ok());
  REQUIRE(head->rfind("OK ", 0) == 0);
  size_t n = std::stoul(head->substr(3));
  std::vector<Frame> frames;
  for (size_t i = 0; i < n; ++i) {
    auto line = s.read_line();
    REQUIRE(line.ok());
    REQUIRE(line->rfind("JOB ", 0) == 0);
    size_t a = line->find(' ', 4);
    size_t b = line->find(' ', a + 1);
    uint64_t id = std::stoull(line->substr(4, a - 4));
    size_t bytes = std::stoul(line->substr(a + 1, b - a - 1));
    auto body = s.read_body(bytes);
    REQUIRE(body.ok());
    frames.push_back({id, *line, *body});
  }
  return frames;
}

// A numeric STATS figure; fails when STATS lacks it.
uint64_t stat(LineSocket& s, const std::string& name) {
  const std::string value = tq::testing::stat_via(s, name);
  REQUIRE(!value.empty());
  return std::stoull(value);
}

}  // namespace

TEST_SUITE("lifecycle") {
  TEST_CASE("a worker blocked in WAIT gets a job enqueued by another connection at once") {
    TqdProcess tqd;
    auto producer = tqd.socket();
    REQUIRE(call(producer, "CREATE jobs") == "OK created jobs");
    auto worker = tqd.socket(30'000);
    REQUIRE(worker.send("DEQUEUE jobs WAIT 30\n").ok());
    REQUIRE(tq::testing::stat_reaches(producer, "waiters", "1"));  // parked before the job is sent
    auto sent = Clock::now();
    std::string id = call(producer, "ENQUEUE jobs wake up").substr(3);
    auto got = worker.read_line();
    auto latency = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - sent);
    REQUIRE(got.ok());
    CHECK(*got == "OK " + id + " wake up");
    MESSAGE("long-poll wake-up latency: " << latency.count() << " us");
    CHECK(latency < std::chrono::seconds(2));  // far inside the 30 s wait: pushed, not polled
  }

  TEST_CASE(
      "a worker that closes while blocked in WAIT is forgotten - the next job goes to a live one") {
    TqdProcess tqd;
    auto admin = tqd.socket();
    REQUIRE(call(admin, "CREATE q") == "OK created q");
    {
      auto gone = tqd.socket();
      REQUIRE(gone.send("DEQUEUE q WAIT 30\n").ok());
      REQUIRE(tq::testing::stat_reaches(admin, "waiters", "1"));
    }  // closed
    REQUIRE(tq::testing::stat_reaches(admin, "waiters", "0"));
    auto half = tqd.socket();
    REQUIRE(half.send("DEQUEUE q WAIT 30\n").ok());
    REQUIRE(tq::testing::stat_reaches(admin, "waiters", "1"));
    half.shutdown_write();  // looks the same as gone: the wait ends, the server closes
    CHECK_FALSE(half.read_line().ok());
    REQUIRE(tq::testing::stat_reaches(admin, "waiters", "0"));
    auto live = tqd.socket(30'000);
    REQUIRE(live.send("DEQUEUE q WAIT 30\n").ok());
    REQUIRE(tq::testing::stat_reaches(admin, "waiters", "1"));
    std::string id = call(admin, "ENQUEUE q for the living").substr(3);
    CHECK(*live.read_line() == "OK " + id + " for the living");
    CHECK(stat(admin, "jobs_leased") == 1);
  }

  TEST_CASE("WAIT ends with EMPTY (or OK 0 with COUNT) when no job comes") {
    TqdProcess tqd;
    auto s = tqd.socket();
    REQUIRE(call(s, "CREATE q") == "OK created q");
    auto started = Clock::now();
    CHECK(call(s, "DEQUEUE q WAIT 300ms") == "ERROR EMPTY queue 'q' has no ready job");
    CHECK(Clock::now() - started >= std::chrono::milliseconds(250));
    CHECK(call(s, "DEQUEUE q WAIT 100ms COUNT 5") == "OK 0");
  }

  TEST_CASE("requests pipelined behind a blocked DEQUEUE are answered after it, in order") {
    TqdProcess tqd;
    auto s = tqd.socket();
    REQUIRE(call(s, "CREATE q") == "OK created q");
    REQUIRE(s.send("DEQUEUE q WAIT 200ms\nPING\n").ok());
    CHECK(*s.read_line() == "ERROR EMPTY queue 'q' has no ready job");
    CHECK(*s.read_line() == "OK PONG");
  }

  TEST_CASE("several queues: queue priority first, then the order given") {
    TqdProcess tqd;
    auto s = tqd.socket();
    for (const char* q : {"low", "high", "mid"}) call(s, std::string("CREATE ") + q);
    tq::testing::config_via(s, "CONFIG high priority=10");
    call(s, "ENQUEUE low l1");
    call(s, "ENQUEUE mid m1");
    call(s, "ENQUEUE high h1");
    auto first = call(s, "DEQUEUE low mid high");
    CHECK(first.substr(first.rfind(' ') + 1) == "h1");
    auto second = call(s, "DEQUEUE mid low high");
    CHECK(second.substr(second.rfind(' ') + 1) == "m1");
  }

  TEST_CASE("PUT stores any bytes - DEQUEUE COUNT returns them framed, byte for byte") {
    TqdProcess tqd;
    auto s = tqd.socket();
    REQUIRE(call(s, "CREATE bin") == "OK created bin");
    const std::string tricky("line one\r\nline two\n\0\xff end", 25);
    REQUIRE(s.send("PUT bin " + std::to_string(tricky.size()) + "\r\n" + tricky + "\r\n").ok());
    auto put = s.read_line();
    REQUIRE(put.ok());
    REQUIRE(put->rfind("OK ", 0) == 0);
    call(s, "ENQUEUE bin plain text");
    REQUIRE(s.send("DEQUEUE bin COUNT 10\n").ok());
    auto frames = read_jobs(s);
    REQUIRE(frames.size() == 2);
    CHECK(frames[0].payload == tricky);
    CHECK(frames[0].header == "JOB " + put->substr(3) + " 25 queue=bin attempts=1 lease=1");
    CHECK(frames[1].payload == "plain text");
    // On DEQUEUE's one-line form, line breaks are escaped so the reply stays one line.
    REQUIRE(s.send("NACK " + put->substr(3) + "\n").ok());
    CHECK(*s.read_line() == "OK nacked " + put->substr(3));
    std::string line = call(s, "DEQUEUE bin");
    CHECK(line == "OK " + put->substr(3) + " line one\\r\\nline two\\n" + std::string("\0\xff end", 6));
  }

  TEST_CASE("a PUT whose body does not match its length is refused and the stream recovers") {
    TqdProcess tqd;
    auto s = tqd.socket();
    REQUIRE(call(s, "CREATE q") == "OK created q");
    REQUIRE(s.send("PUT q 3\r\nhello\r\nPING\r\n").ok());
    CHECK(s.read_line()->rfind("ERROR BADFORMAT the 3-byte body must be followed by a line end", 0) == 0);
    CHECK(*s.read_line() == "OK PONG");
    REQUIRE(s.send("PUT q 2000000\r\n").ok());
    CHECK(s.read_line()->rfind("ERROR TOOBIG payload exceeds", 0) == 0);
    REQUIRE(s.send(std::string(2'000'000, 'x') + "\r\nPING\r\n").ok());
    CHECK(*s.read_line() == "OK PONG");
  }

  TEST_CASE("settings, pauses, delays, dead letters and dedup keys survive a restart") {
    const std::string dir = tq::testing::make_temp_dir();
    TqdOptions options;
    options.dir = dir;
    std::string dead_id, delayed_id, keyed_id;
    {
      TqdProcess tqd(options);
      auto s = tqd.socket();
      call(s, "CREATE emails");
      tq::testing::config_via(s,
                              "CONFIG emails max_attempts=1 backoff_base=2s dedup_window=1h "
                              "priority=3 max_leased=3 rate_limit=100 rate_window=1m ttl=2h");
      keyed_id = call(s, "PUT emails 5 KEY welcome-42\r\nhello").substr(3);
      REQUIRE(s.send("PUT emails 5 DELAY 1h\r\nlater\r\n").ok());
      delayed_id = s.read_line()->substr(3);
      dead_id = call(s, "ENQUEUE emails doomed").substr(3);
      // Lease everything ready: the keyed job (id order), then the doomed one.
      CHECK(call(s, "DEQUEUE emails") == "OK " + keyed_id + " hello");
      CHECK(call(s, "DEQUEUE emails") == "OK " + dead_id + " doomed");
      CHECK(call(s, "NACK " + dead_id) == "OK dead " + dead_id);  // max_attempts=1
      tq::testing::config_via(s, "CONFIG emails delay=1h");
      CHECK(call(s, "PAUSE emails") == "OK paused emails");
      tqd.stop(SIGKILL);
    }
    TqdProcess tqd(options);
    auto s = tqd.socket();
    const std::vector<std::string> settings = tq::testing::config_via(s, "CONFIG emails");
    CHECK(std::find(settings.begin(), settings.end(), "max_attempts 1") != settings.end());
    CHECK(std::find(settings.begin(), settings.end(), "backoff_base 2000ms") != settings.end());
    CHECK(std::find(settings.begin(), settings.end(), "dedup_window 3600000ms") != settings.end());
    CHECK(std::find(settings.begin(), settings.end(), "priority 3") != settings.end());
    CHECK(std::find(settings.begin(), settings.end(), "max_leased 3") != settings.end());
    CHECK(std::find(settings.begin(), settings.end(), "rate_limit 100") != settings.end());
    CHECK(std::find(settings.begin(), settings.end(), "rate_window 60000ms") != settings.end());
    CHECK(std::find(settings.begin(), settings.end(), "ttl 7200000ms") != settings.end());
    CHECK(std::find(settings.begin(), settings.end(), "delay 3600000ms") != settings.end());
    CHECK(std::find(settings.begin(), settings.end(), "paused true") != settings.end());
    CHECK(call(s, "DEQUEUE emails") == "ERROR EMPTY queue 'emails' is paused");
    // The dedup key is remembered.
    CHECK(call(s, "PUT emails 5 KEY welcome-42\r\nagain") == "OK " + keyed_id + " DUPLICATE");
    // The dead job and its reason; the keyed job, leased when tqd died, is
    // leased still: a lease is kept to its end across a restart.
    REQUIRE(s.send("PEEK emails DEAD\n").ok());
    auto dead = read_jobs(s);
    REQUIRE(dead.size() == 1);
    CHECK(dead[0].id == std::stoull(dead_id));
    CHECK(dead[0].header.find("reason=nacked after 1 attempt") != std::string::npos);
    REQUIRE(s.send("PEEK emails LEASED\n").ok());
    auto leased = read_jobs(s);
    REQUIRE(leased.size() == 1);
    CHECK(leased[0].id == std::stoull(keyed_id));
    CHECK(leased[0].header.find(" attempts=1 ") != std::string::npos);
    REQUIRE(s.send("PEEK emails DELAYED\n").ok());
    auto delayed = read_jobs(s);
    REQUIRE(delayed.size() == 1);
    CHECK(delayed[0].id == std::stoull(delayed_id));
    CHECK(call(s, "RESUME emails") == "OK resumed emails");
    CHECK(call(s, "KICK emails") == "OK kicked 1");  // kicked jobs do not wait the delay
    CHECK(call(s, "DEQUEUE emails") == "OK " + dead_id + " doomed");
    // The worker that had the keyed job finishes it, on a new connection.
    CHECK(call(s, "ACK " + keyed_id) == "OK acked " + keyed_id);
    // The queue's delay (1h) and ttl (2h) go to a job put without its own.
    const std::string fresh = call(s, "ENQUEUE emails fresh").substr(3);
    REQUIRE(s.send("JOB " + fresh + "\n").ok());
    auto fresh_job = read_jobs(s);
    REQUIRE(fresh_job.size() == 1);
    CHECK(fresh_job[0].header.find(" state=delayed ") != std::string::npos);
    CHECK(fresh_job[0].header.find(" expires=") != std::string::npos);
    tqd.stop(SIGTERM);
    tq::testing::remove_tree(dir);
  }

  TEST_CASE(
      "server.huge_pages asks the kernel for huge pages for job memory, and says if it took") {
    const std::string mode = tq::testing::transparent_huge_page_mode();
    const bool kernel_allows = mode == "always" || mode == "madvise";
    for (const bool huge : {false, true}) {
      CAPTURE(huge);
      TqdOptions options;
      options.config_yaml = std::string("server:\n  huge_pages: ") + (huge ? "true" : "false") +
                            "\nwal:\n  enabled: false\n";
      TqdProcess tqd(options);
      auto s = tqd.socket();
      CHECK(call(s, "CREATE emails") == "OK created emails");
      CHECK(call(s, "ENQUEUE emails first") == "OK 1");  // maps the first region of job memory
      size_t asked = 0;
      size_t refused = 0;
      for (const tq::testing::Mapping& m : tq::testing::read_mappings(tqd.pid())) {
        asked += m.has("hg") ? 1 : 0;
        refused += m.has("nh") ? 1 : 0;
      }
      if (huge) {
        CHECK(asked >= 1);
        const std::string said =
            kernel_allows
                ? "server.huge_pages: job memory in transparent huge pages (kernel mode " + mode +
                      ")"
                : "server.huge_pages is on, but this kernel's";
        CHECK(tqd.wait_for_log(said));
      } else {
        CHECK(asked == 0);
        CHECK(refused >= 1);  // job memory and the job table
      }
      CHECK(call(s, "DEQUEUE emails") == "OK 1 first");
    }
  }

  TEST_CASE(
      "with wal.enabled false jobs are served from memory, nothing is written, and a restart "
      "starts empty") {
    const std::string dir = tq::testing::make_temp_dir();
    TqdOptions options;
    options.dir = dir;
    options.config_yaml = "wal:\n  enabled: false\n";
    {
      TqdProcess tqd(options);
      CHECK(tqd.wait_for_log("wal.enabled is false"));  // an operator is told, loudly
      auto s = tqd.socket();
      CHECK(call(s, "CREATE emails") == "OK created emails");
      CHECK(call(s, "ENQUEUE emails first") == "OK 1");
      CHECK(call(s, "DEQUEUE emails") == "OK 1 first");
      CHECK(call(s, "ACK 1") == "OK acked 1");
      CHECK(call(s, "ENQUEUE emails second") == "OK 2");
      CHECK(stat(s, "wal_enabled") == 0);
      CHECK(tq::testing::stat_via(s, "wal_fsync").empty());
      CHECK(stat(s, "jobs_ready") == 1);
      tqd.stop(SIGKILL);
    }
    CHECK(::access((dir + "/data").c_str(), F_OK) != 0);  // not even the directory
    TqdProcess tqd(options);
    auto s = tqd.socket();
    CHECK(call(s, "ENQUEUE emails third").rfind("ERROR NOQUEUE", 0) == 0);  // the queue went too
    tqd.stop(SIGTERM);
    tq::testing::remove_tree(dir);
  }

  TEST_CASE("DROP answers the workers waiting on the queue, and shutdown answers the rest") {
    TqdProcess tqd;
    auto admin = tqd.socket();
    call(admin, "CREATE a");
    call(admin, "CREATE b");
    auto on_a = tqd.socket(10'000);
    auto on_b = tqd.socket(10'000);
    REQUIRE(on_a.send("DEQUEUE a WAIT 30\n").ok());
    REQUIRE(on_b.send("DEQUEUE b WAIT 30\n").ok());
    REQUIRE(tq::testing::stat_reaches(admin, "waiters", "2"));
    CHECK(call(admin, "DROP a") == "OK dropped a");
    CHECK(*on_a.read_line() == "ERROR NOQUEUE queue 'a' was dropped while you waited");
    tqd.stop(SIGTERM);
    CHECK(*on_b.read_line() == "ERROR SHUTDOWN the server is stopping");
  }

  TEST_CASE("at shutdown, requests pipelined behind a WAIT are answered SHUTDOWN and not run") {
    const std::string dir = tq::testing::make_temp_dir();
    TqdOptions options;
    options.dir = dir;
    {
      TqdProcess tqd(options);
      auto admin = tqd.socket();
      call(admin, "CREATE a");
      auto worker = tqd.socket(10'000);
      // The ENQUEUE waits behind the DEQUEUE, as does half a PUT.
      REQUIRE(worker.send("DEQUEUE a WAIT 30\nPING\nENQUEUE a not-run\nPUT a 10\r\nhalf").ok());
      REQUIRE(tq::testing::stat_reaches(admin, "waiters", "1"));
      REQUIRE(kill(tqd.pid(), SIGTERM) == 0);
      for (int i = 0; i < 3; ++i) {
        auto reply = worker.read_line();
        REQUIRE(reply.ok());
        CHECK(*reply == "ERROR SHUTDOWN the server is stopping");
      }
      CHECK_FALSE(worker.read_line().ok());  // then the end: nothing for half a request
      CHECK(tqd.stop(0) == 0);
    }
    TqdProcess tqd(options);
    auto s = tqd.socket();
    CHECK(call(s, "DEQUEUE a") == "ERROR EMPTY queue 'a' has no ready job");  // not run
    tqd.stop(SIGTERM);
    tq::testing::remove_tree(dir);
  }

  TEST_CASE("at shutdown, a pipeline its client reads slowly is answered whole - run or SHUTDOWN") {
    TqdProcess tqd;
    auto admin = tqd.socket();
    call(admin, "CREATE big");
    auto s = tqd.socket(10'000);
    // Each PEEK's reply carries a 60 KB payload, and the client reads none
    // until the signal: tqd runs them until a MiB of replies waits unsent,
    // then stops reading it; the signal comes while the rest wait.
    const std::string payload(60'000, 'x');
    std::string requests;
    constexpr int kJobs = 400;
    for (int i = 0; i < kJobs; ++i) requests += "ENQUEUE big " + payload + "\n";
    REQUIRE(s.send(requests).ok());
    for (int i = 0; i < kJobs; ++i) REQUIRE(s.read_line().ok());
    std::string peeks;
    for (int i = 0; i < kJobs; ++i) peeks += "PEEK big READY 1\n";
    REQUIRE(s.send(peeks).ok());
    REQUIRE(kill(tqd.pid(), SIGTERM) == 0);
    int run = 0;
    int refused = 0;
    for (int i = 0; i < kJobs; ++i) {
      auto line = s.read_line();
      REQUIRE(line.ok());
      if (*line == "ERROR SHUTDOWN the server is stopping") {
        ++refused;
        continue;
      }
      CHECK(refused == 0);  // in order: what ran, then what did not
      REQUIRE(*line == "OK 1");
      REQUIRE(s.read_line().ok());  // JOB <id> <bytes> ...
      REQUIRE(s.read_line().ok());  // the payload
      ++run;
    }
    CHECK(run + refused == kJobs);
    MESSAGE(run << " PEEK(s) run before the signal, " << refused << " refused");
    CHECK_FALSE(s.read_line().ok());
    CHECK(tqd.stop(0) == 0);
  }

  TEST_CASE("a queue named twice is one queue - DROP answers its waiter, and tqd goes on") {
    // The waiter's second copy of the queue once outlived the DROP: the wait
    // went on with a freed queue, and tqd crashed when it ran out.
    TqdProcess tqd;
    auto admin = tqd.socket();
    call(admin, "CREATE dq");
    auto worker = tqd.socket(10'000);
    REQUIRE(worker.send("DEQUEUE dq dq WAIT 1s\n").ok());
    REQUIRE(tq::testing::stat_reaches(admin, "waiters", "1"));
    CHECK(call(admin, "DROP dq") == "OK dropped dq");
    CHECK(*worker.read_line() == "ERROR NOQUEUE queue 'dq' was dropped while you waited");
    std::this_thread::sleep_for(std::chrono::milliseconds(1'200));  // past the wait's end
    CHECK(call(admin, "PING") == "OK PONG");
    call(admin, "CREATE twice");
    call(admin, "ENQUEUE twice one");
    CHECK(call(worker, "DEQUEUE twice twice twice COUNT 5").rfind("OK 1", 0) == 0);
  }
}

TEST_SUITE("lifecycle") {
  TEST_CASE("more queues declared than limits.max_queues is a configuration error - exit 2") {
    // Seen in the file alone, so --check-config says so too: start-up once
    // created the first and stopped at the limit (exit 1, which the shipped
    // unit restarts), and RELOAD took the first and failed the rest.
    const std::string dir = tq::testing::make_temp_dir();
    {
      std::ofstream config(dir + "/config.yaml");
      config << "limits:\n  max_queues: 1\nqueues:\n  declare:\n    a: {}\n    b: {}\n";
    }
    const std::string why = "queues.declare: 2 queues declared, more than limits.max_queues (1)";
    for (bool check_only : {true, false}) {
      CAPTURE(check_only);
      std::vector<std::string> args = {"--config", dir + "/config.yaml", "--port",
                                       "0",        "--data-dir",         dir + "/data"};
      if (check_only) args.push_back("--check-config");
      auto [status, err] = tq::testing::run_tqd(args, std::chrono::seconds(20));
      CHECK(status == 2);
      CHECK(err.find(why) != std::string::npos);
    }
    CHECK_FALSE(std::filesystem::exists(dir + "/data/wal"));  // nothing was started
    tq::testing::remove_tree(dir);
  }

  TEST_CASE("an empty --host or --data-dir is a configuration error, as in the file - exit 2") {
    const std::string dir = tq::testing::make_temp_dir();
    for (bool check_only : {true, false}) {
      CAPTURE(check_only);
      std::vector<std::string> host = {"--port", "0", "--host", "", "--data-dir", dir + "/data"};
      std::vector<std::string> data = {"--port", "0", "--data-dir", ""};
      if (check_only) {
        host.push_back("--check-config");
        data.push_back("--check-config");
      }
      auto [host_status, host_err] = tq::testing::run_tqd(host, std::chrono::seconds(20));
      CHECK(host_status == 2);
      CHECK(host_err.find("server.host (--host): expected a host name or address, got ''") !=
            std::string::npos);
      auto [data_status, data_err] = tq::testing::run_tqd(data, std::chrono::seconds(20));
      CHECK(data_status == 2);
      CHECK(data_err.find("server.data_dir (--data-dir): expected a directory, got ''") !=
            std::string::npos);
    }
    tq::testing::remove_tree(dir);
  }

  TEST_CASE("declared queues past limits.max_queues with the log's own stop start-up - no hang") {
    // The log holds a queue: the first declared queue is created (and its
    // record appended) before the second is refused: the log must still
    // close.
    const std::string dir = tq::testing::make_temp_dir();
    TqdOptions first;
    first.config_yaml = "queues:\n  declare:\n    old: {}\n";
    first.dir = dir;
    {
      TqdProcess tqd(first);
      tqd.stop(SIGTERM);
    }
    {
      std::ofstream config(dir + "/second.yaml");
      config << "limits:\n  max_queues: 2\nqueues:\n  declare:\n    a: {}\n    b: {}\n";
    }
    auto [status, err] = tq::testing::run_tqd(
        {"--config", dir + "/second.yaml", "--port", "0", "--data-dir", dir + "/data"},
        std::chrono::seconds(20));
    CHECK(status == 2);  // the same at every start: not one for Restart= to retry
    CHECK(err.find("queues.declare.b: cannot create 'b'") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir + "/data/wal/RUNNING"));  // closed cleanly
    tq::testing::remove_tree(dir);
  }

  TEST_CASE("two of tqd's own listeners on one port stop a start with exit 2, not 1") {
    // metrics.listen on server.port fails at every start, as --check-config
    // says (exit 2): a start exited 1, which the unit file restarts.
    const std::string dir = tq::testing::make_temp_dir();
    const tq::testing::LoopbackSocket probe = tq::testing::bind_loopback_socket();
    const std::string port = std::to_string(probe.port);
    ::close(probe.fd);  // free, for the start's own probe to take
    std::ofstream(dir + "/clash.yaml") << "metrics:\n  listen: 127.0.0.1:" << port << "\n";
    auto [status, err] = tq::testing::run_tqd(
        {"--config", dir + "/clash.yaml", "--port", port, "--data-dir", dir + "/data"});
    CHECK(status == 2);
    CHECK(err.find("cannot listen for metrics on 127.0.0.1:" + port +
                   ": address already in use: the protocol's listener is on that port too") !=
          std::string::npos);
    tq::testing::remove_tree(dir);
  }

  TEST_CASE("a port this user may not bind stops a start with exit 2, naming the right") {
    // The hardened unit file grants no capability, so port 80 in the config
    // failed at every start with exit 1, which the unit restarts.
    int unprivileged_from = 1024;
    std::ifstream("/proc/sys/net/ipv4/ip_unprivileged_port_start") >> unprivileged_from;
    if (unprivileged_from <= 1) {
      MESSAGE("every port may be bound here (net.ipv4.ip_unprivileged_port_start=0): skipped");
      return;
    }
    const std::string dir = tq::testing::make_temp_dir();
    auto [status, err] =
        tq::testing::run_tqd_without_bind_right({"--port", "1", "--data-dir", dir + "/data"});
    CHECK(status == 2);
    CHECK(err.find("cannot listen on 127.0.0.1:1: permission denied (a port below "
                   "net.ipv4.ip_unprivileged_port_start, 1024 by default, needs the "
                   "CAP_NET_BIND_SERVICE capability") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir + "/data"));  // refused before the log
    tq::testing::remove_tree(dir);
  }

  TEST_CASE("queues declared in config.yaml exist at start with their settings") {
    TqdOptions options;
    options.config_yaml =
        "queues:\n  defaults:\n    max_attempts: 7\n  declare:\n    emails:\n      priority: 4\n";
    TqdProcess tqd(options);
    auto s = tqd.socket();
    CHECK(call(s, "LIST") == "OK emails");
    const std::vector<std::string> settings = tq::testing::config_via(s, "CONFIG emails");
    CHECK(std::find(settings.begin(), settings.end(), "priority 4") != settings.end());
    CHECK(std::find(settings.begin(), settings.end(), "max_attempts 7") != settings.end());
  }

  TEST_CASE("a job moved to a dead_letter_queue is there, once, after a SIGKILL") {
    const std::string dir = tq::testing::make_temp_dir();
    TqdOptions options;
    options.dir = dir;
    std::string id;
    {
      TqdProcess tqd(options);
      auto s = tqd.socket();
      call(s, "CREATE payments");
      call(s, "CREATE payments-failed");
      tq::testing::config_via(s,
                              "CONFIG payments max_attempts=2 dead_letter_queue=payments-failed");
      id = call(s, "ENQUEUE payments charge 42").substr(3);
      CHECK(call(s, "DEQUEUE payments") == "OK " + id + " charge 42");
      CHECK(call(s, "NACK " + id) == "OK nacked " + id);
      CHECK(call(s, "DEQUEUE payments") == "OK " + id + " charge 42");
      CHECK(call(s, "NACK " + id) == "OK dead " + id);  // died in payments: moved
      CHECK(stat(s, "jobs_dead_forwarded_total") == 1);
      // Counted where it arrived too: enqueued_total there counts only puts.
      CHECK(tq::testing::stat_via(s, "dead_received_total", "payments-failed") == "1");
      CHECK(tq::testing::stat_via(s, "enqueued_total", "payments-failed") == "0");
      CHECK(tq::testing::stat_via(s, "dead_received_total", "payments") == "0");
      tqd.stop(SIGKILL);
    }
    TqdProcess tqd(options);
    auto s = tqd.socket();
    // Like every _total, counted since this tqd started: the replay of the
    // move counts it nowhere.
    CHECK(tq::testing::stat_via(s, "dead_received_total", "payments-failed") == "0");
    CHECK(stat(s, "jobs_dead_forwarded_total") == 0);
    const std::vector<std::string> settings = tq::testing::config_via(s, "CONFIG payments");
    CHECK(std::find(settings.begin(), settings.end(), "dead_letter_queue payments-failed") !=
          settings.end());
    REQUIRE(s.send("JOB " + id + "\n").ok());
    auto job = read_jobs(s);
    REQUIRE(job.size() == 1);
    CHECK(job[0].header == "JOB " + id +
                               " 9 queue=payments-failed state=ready attempts=0 priority=0 "
                               "from=payments reason=nacked after 2 attempts");
    CHECK(call(s, "DEQUEUE payments") == "ERROR EMPTY queue 'payments' has no ready job");
    CHECK(call(s, "DEQUEUE payments-failed") == "OK " + id + " charge 42");
    CHECK(call(s, "ACK " + id) == "OK acked " + id);
    tqd.stop(SIGTERM);
    tq::testing::remove_tree(dir);
  }

  TEST_CASE("a declared queue may name one declared after it as its dead_letter_queue") {
    TqdOptions options;
    options.config_yaml =
        "queues:\n  defaults:\n    dead_letter_queue: later\n  declare:\n    jobs:\n"
        "      max_attempts: 1\n      dead_letter_queue: jobs-dead\n    jobs-dead: {}\n"
        "    orphans:\n      dead_letter_queue: nowhere\n    later: {}\n";
    TqdProcess tqd(options);
    auto s = tqd.socket();
    const std::vector<std::string> settings = tq::testing::config_via(s, "CONFIG jobs");
    CHECK(std::find(settings.begin(), settings.end(), "max_attempts 1") != settings.end());
    CHECK(std::find(settings.begin(), settings.end(), "dead_letter_queue jobs-dead") !=
          settings.end());
    // One that names no queue is set all the same (its dead letters stay
    // until the queue exists), and the log says so.
    const std::vector<std::string> orphans = tq::testing::config_via(s, "CONFIG orphans");
    CHECK(std::find(orphans.begin(), orphans.end(), "dead_letter_queue nowhere") != orphans.end());
    CHECK(
        tqd.wait_for_log("queues.declare.orphans.dead_letter_queue: queue nowhere does not exist"));
    // jobs-dead was there before jobs took its settings: nothing to say
    // (written before the line above, if at all).
    CHECK_FALSE(tqd.wait_for_log("queues.declare.jobs.dead_letter_queue", 0));
    // jobs-dead has queues.defaults' value, which waits for its queue quietly.
    CHECK_FALSE(tqd.wait_for_log("queues.declare.jobs-dead.dead_letter_queue", 0));
    const std::vector<std::string> dead = tq::testing::config_via(s, "CONFIG jobs-dead");
    CHECK(std::find(dead.begin(), dead.end(), "dead_letter_queue later") != dead.end());
    // The default's own queue, declared or created, is not its own dead_letter_queue.
    const std::vector<std::string> later = tq::testing::config_via(s, "CONFIG later");
    CHECK(std::find(later.begin(), later.end(), "dead_letter_queue -") != later.end());
    REQUIRE(call(s, "CREATE fresh") == "OK created fresh");
    REQUIRE(call(s, "DROP later") == "OK dropped later");
    REQUIRE(call(s, "CREATE later") == "OK created later");
    const std::vector<std::string> again = tq::testing::config_via(s, "CONFIG later");
    CHECK(std::find(again.begin(), again.end(), "dead_letter_queue -") != again.end());
    const std::vector<std::string> fresh = tq::testing::config_via(s, "CONFIG fresh");
    CHECK(std::find(fresh.begin(), fresh.end(), "dead_letter_queue later") != fresh.end());
    // later is declared after the queues that take the default: nothing to say.
    CHECK_FALSE(tqd.wait_for_log("queues.defaults.dead_letter_queue", 0));
  }

  TEST_CASE("a queues.defaults.dead_letter_queue that names no queue is said once at start") {
    TqdOptions options;
    options.dir = tq::testing::make_temp_dir();
    options.config_yaml =
        "queues:\n  defaults:\n    dead_letter_queue: nowhere\n  declare:\n    a: {}\n"
        "    b: {}\n";
    const std::string warning = "queues.defaults.dead_letter_queue: queue nowhere does not exist";
    auto warnings = [&](TqdProcess& tqd) {
      const std::vector<std::string> lines = tqd.log_lines();
      return std::count_if(lines.begin(), lines.end(), [&](const std::string& line) {
        return line.find(warning) != std::string::npos;
      });
    };
    {
      TqdProcess tqd(options);
      // Written before "listening on", which the start waited for.
      CHECK(warnings(tqd) == 1);  // not once for each of a and b
      CHECK_FALSE(tqd.wait_for_log("queues.declare.a.dead_letter_queue", 0));
      auto s = tqd.socket();
      const std::vector<std::string> a = tq::testing::config_via(s, "CONFIG a");
      CHECK(std::find(a.begin(), a.end(), "dead_letter_queue nowhere") != a.end());
      REQUIRE(call(s, "CREATE nowhere") == "OK created nowhere");
      tqd.stop(SIGTERM);
    }
    {
      // It is in the log now, declared or not.
      TqdProcess tqd(options);
      CHECK(warnings(tqd) == 0);
      tqd.stop(SIGTERM);
    }
    tq::testing::remove_tree(options.dir);
  }

  TEST_CASE("schedules declared in config.yaml are set at start, and kept when the log has them") {
    const std::string dir = tq::testing::make_temp_dir();
    auto config = [](const std::string& ping) {
      return "queues:\n  declare:\n    reports:\n      schedules:\n"
             "        heartbeat: {every: 1s, payload: " +
             ping +
             ", priority: 5}\n"
             // It must not fire while the test runs: 03:00 on 29 February only.
             "        nightly: {cron: '0 3 29 2 *', payload: build report, ttl: 1h}\n";
    };
    // SCHEDULE reports: its lines, by schedule name.
    auto listing = [](tq::client::LineSocket& s) {
      REQUIRE(s.send("SCHEDULE reports\n").ok());
      auto head = s.read_line();
      REQUIRE(head.ok());
      REQUIRE(*head == "OK 2");
      std::map<std::string, std::string> lines;
      for (int i = 0; i < 2; ++i) {
        auto line = s.read_line();
        REQUIRE(line.ok());
        lines[line->substr(0, line->find(' '))] = *line;
      }
      return lines;
    };
    auto fired = [](const std::string& line) {
      const size_t at = line.find(" fired=") + 7;
      return std::stoull(line.substr(at, line.find(' ', at) - at));
    };
    TqdOptions options;
    options.dir = dir;
    options.config_yaml = config("ping");
    std::string nightly;
    {
      TqdProcess tqd(options);
      CHECK(tqd.wait_for_log("created schedule heartbeat of queue reports"));
      auto s = tqd.socket();
      CHECK(call(s, "LIST") == "OK reports");  // the queue came with its schedules
      auto lines = listing(s);
      CHECK(lines["heartbeat"].ends_with(" bytes=4 priority=5 every=1000ms"));
      nightly = lines["nightly"];
      CHECK(nightly.ends_with(" fired=0 bytes=12 ttl=3600000ms cron=0 3 29 2 *"));
      CHECK(tq::testing::stat_reaches(s, "scheduled_total", "1", "reports"));
      CHECK(tqd.stop(SIGTERM) == 0);
    }
    uint64_t fired_before = 0;
    {
      // The same file: nothing is set again (a firing missed while tqd was
      // down still comes), and the count goes on.
      TqdProcess tqd(options);
      auto s = tqd.socket();
      auto lines = listing(s);
      CHECK(lines["nightly"] == nightly);
      fired_before = fired(lines["heartbeat"]);
      CHECK(fired_before >= 1);
      const auto log = tqd.log_lines();
      CHECK(std::count_if(log.begin(), log.end(), [](const std::string& line) {
              return line.find("schedule heartbeat") != std::string::npos;
            }) == 0);
      CHECK(tqd.stop(SIGTERM) == 0);
    }
    // Another payload in the file: replaced, its count kept.
    options.config_yaml = config("pong!");
    TqdProcess tqd(options);
    CHECK(tqd.wait_for_log("replaced schedule heartbeat of queue reports"));
    auto s = tqd.socket();
    auto lines = listing(s);
    CHECK(lines["heartbeat"].find(" bytes=5 priority=5 every=1000ms") != std::string::npos);
    CHECK(fired(lines["heartbeat"]) >= fired_before);
    CHECK(lines["nightly"] == nightly);
    tqd.stop(SIGTERM);
    tq::testing::remove_tree(dir);
  }

  TEST_CASE("a declared schedule is set at start even when jobs fill limits.max_payload_total") {
    const std::string dir = tq::testing::make_temp_dir();
    TqdOptions options;
    options.dir = dir;
    options.config_yaml = "limits:\n  max_payload_total: 100\n";
    {
      TqdProcess tqd(options);
      auto s = tqd.socket();
      REQUIRE(call(s, "CREATE work") == "OK created work");
      REQUIRE(call(s, "ENQUEUE work " + std::string(90, 'x')).rfind("OK ", 0) == 0);
      REQUIRE(s.send("SCHEDULE work late 20 EVERY 1h\n" + std::string(20, 's') + "\n").ok());
      CHECK(s.read_line()->rfind("ERROR FULL ", 0) == 0);  // a client's is refused
      CHECK(tqd.stop(SIGTERM) == 0);
    }
    options.config_yaml +=
        "queues:\n  declare:\n    reports:\n      schedules:\n"
        "        heartbeat: {every: 1h, payload: ping-ping-ping-ping}\n";
    TqdProcess tqd(options);  // it starts: the backlog must be served
    CHECK(tqd.wait_for_log("created schedule heartbeat of queue reports"));
    auto s = tqd.socket();
    CHECK(tq::testing::stat_via(s, "payload_bytes") == "90");
    CHECK(tq::testing::stat_via(s, "schedule_payload_bytes") == "19");
    // Its jobs wait for room, and the log says so.
    CHECK(tqd.wait_for_log("its jobs are refused (FULL, counted in schedule_refused_total)"));
    tqd.stop(SIGTERM);
    tq::testing::remove_tree(dir);
  }

  TEST_CASE("STATS shows the memory jobs hold, and acked jobs give it back") {
    TqdProcess tqd;
    auto s = tqd.socket();
    REQUIRE(call(s, "CREATE mem") == "OK created mem");
    CHECK(stat(s, "memory_jobs_bytes") == 0);
    CHECK(stat(s, "memory_rss_bytes") > 0);
    const int jobs = 3000;
    const std::string payload(100, 'x');
    std::string batch;
    for (int i = 0; i < jobs; ++i) batch += "ENQUEUE mem " + payload + "\n";
    REQUIRE(s.send(batch).ok());
    std::vector<std::string> ids;
    for (int i = 0; i < jobs; ++i) {
      auto reply = s.read_line();
      REQUIRE(reply.ok());
      REQUIRE(reply->rfind("OK ", 0) == 0);
      ids.push_back(reply->substr(3));
    }
    // A job's 56 bytes of fields and its 100 bytes take a 160-byte block, 25
    // to a 4 KiB page.
    const uint64_t pages = (jobs + 24) / 25;
    CHECK(stat(s, "memory_jobs_bytes") == pages * 4096);

    std::string work;
    for (int i = 0; i < jobs; ++i) work += "DEQUEUE mem\n";
    REQUIRE(s.send(work).ok());
    std::string acks;
    for (int i = 0; i < jobs; ++i) {
      auto reply = s.read_line();
      REQUIRE(reply.ok());
      REQUIRE(reply->rfind("OK ", 0) == 0);
      acks += "ACK " + reply->substr(3, reply->find(' ', 3) - 3) + "\n";
    }
    REQUIRE(s.send(acks).ok());
    for (int i = 0; i < jobs; ++i) REQUIRE(s.read_line()->rfind("OK acked ", 0) == 0);
    CHECK(stat(s, "memory_jobs_bytes") == 0);
    // Kept for reuse at first: a queue that refills soon pays no page faults.
    CHECK(stat(s, "memory_jobs_reserve_bytes") == pages * 4096);
    // Unused for 5-10 s, all but the reserve's floor (64 pages) goes back
    // to the kernel.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (stat(s, "memory_jobs_reserve_bytes") > 64 * 4096) {
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    CHECK(stat(s, "memory_jobs_reserve_bytes") == 64 * 4096);
  }

  TEST_CASE("STATS shows how busy the event loop is and what the log's syncs took") {
    const auto launched = std::chrono::steady_clock::now();
    TqdProcess tqd;  // fsync: always, the default
    auto s = tqd.socket();
    const uint64_t iterations = stat(s, "loop_iterations_total");
    REQUIRE(call(s, "CREATE busy") == "OK created busy");
    REQUIRE(call(s, "ENQUEUE busy hello").rfind("OK ", 0) == 0);
    // Every request is at least one more iteration of the loop.
    CHECK(stat(s, "loop_iterations_total") >= iterations + 3);
    const auto elapsed_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                std::chrono::steady_clock::now() - launched)
                                .count();
    CHECK(stat(s, "loop_busy_us_total") <= static_cast<uint64_t>(elapsed_us));
    CHECK(stat(s, "loop_max_busy_us") <= stat(s, "loop_busy_us_total"));
    {
      // The last minute's longest is one of those since start (one reply:
      // both read at the same moment).
      auto figures = tqd.client().stats();
      REQUIRE(figures.ok());
      CHECK(std::stoull(tq::client::field(*figures, "loop_max_busy_1m_us")) <=
            std::stoull(tq::client::field(*figures, "loop_max_busy_us")));
    }
    CHECK(stat(s, "loop_slow_iterations_total") <= stat(s, "loop_iterations_total"));
    const double pct = std::stod(tq::testing::stat_via(s, "loop_busy_pct"));
    CHECK(pct >= 0.0);
    CHECK(pct <= 100.0);
    // Two syncs at least (CREATE and ENQUEUE); their total covers the longest.
    REQUIRE(stat(s, "wal_fsyncs_total") >= 2);
    CHECK(stat(s, "wal_fsync_us_total") >= stat(s, "wal_max_fsync_us"));
  }
}

}  // namespace lifecycle_test
