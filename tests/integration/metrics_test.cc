// The Prometheus endpoint (metrics.listen) of a real tqd, spoken to over a
// plain socket: the figures it shows after real traffic, its answers to
// wrong requests, and the limits that keep a bad client from costing the
// server anything.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/line_call.h"
#include "tests/support/tqd_process.h"

namespace metrics_test {

using tq::testing::call;
using tq::testing::stat_via;
using tq::testing::TqdOptions;
using tq::testing::TqdProcess;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kEnabled = "metrics:\n  listen: 127.0.0.1:0\n";

// A connected TCP socket, closed when it goes.
class PlainSocket {
 public:
  explicit PlainSocket(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  }
  ~PlainSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  PlainSocket(const PlainSocket&) = delete;
  PlainSocket& operator=(const PlainSocket&) = delete;

  void send(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      REQUIRE(n > 0);
      sent += static_cast<size_t>(n);
    }
  }
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

  // Everything the server sends until it closes the connection; *closed is
  // false if it did not close within timeout_ms.
  std::string read_to_end(int timeout_ms, bool* closed) {
    std::string got;
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    *closed = false;
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return got;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char buf[65536];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        *closed = true;  // EOF, or a reset: either way the server closed it
        return got;
      }
      got.append(buf, static_cast<size_t>(n));
    }
  }

 private:
  int fd_ = -1;
};

struct HttpReply {
  int status = 0;
  std::string head;  // status line and headers
  std::string body;
};

HttpReply parse_reply(const std::string& raw) {
  HttpReply reply;
  const size_t end = raw.find("\r\n\r\n");
  REQUIRE(end != std::string::npos);
  REQUIRE(raw.rfind("HTTP/1.1 ", 0) == 0);
  reply.status = std::stoi(raw.substr(9, 3));
  reply.head = raw.substr(0, end + 2);
  reply.body = raw.substr(end + 4);
  return reply;
}

// One request on a fresh connection; the reply is read until the server
// closes the connection, as Connection: close says it will.
HttpReply http_call(uint16_t port, const std::string& request, bool half_close = false) {
  PlainSocket s(port);
  s.send(request);
  if (half_close) s.shutdown_write();
  bool closed = false;
  const std::string raw = s.read_to_end(10'000, &closed);
  CHECK(closed);
  return parse_reply(raw);
}

std::string get_request(const std::string& path) {
  return "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\nAccept: */*\r\n\r\n";
}

// The endpoint's port, from its start-up line.
uint16_t metrics_port(TqdProcess& tqd) {
  const std::string marker = "serving Prometheus metrics at http://127.0.0.1:";
  REQUIRE(tqd.wait_for_log(marker));
  for (const std::string& line : tqd.log_lines()) {
    const size_t at = line.find(marker);
    if (at == std::string::npos) continue;
    return static_cast<uint16_t>(std::stoi(line.substr(at + marker.size())));
  }
  FAIL("no metrics line");
  return 0;
}

// Sample lines by series ("tq_queue_ready{queue=\"emails\"}" -> "2").
std::map<std::string, std::string> samples_of(const std::string& body) {
  std::map<std::string, std::string> samples;
  std::stringstream in(body);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    REQUIRE(space != std::string::npos);
    samples[line.substr(0, space)] = line.substr(space + 1);
  }
  return samples;
}

bool has_header(const HttpReply& reply, const std::string& header) {
  return reply.head.find("\r\n" + header + "\r\n") != std::string::npos;
}

}  // namespace

TEST_SUITE("metrics") {
  TEST_CASE("GET /metrics shows the figures STATS shows after real traffic") {
    TqdOptions o;
    o.config_yaml = kEnabled;
    TqdProcess tqd(o);
    const uint16_t port = metrics_port(tqd);

    auto s = tqd.socket();
    CHECK(call(s, "CREATE emails") == "OK created emails");
    CHECK(call(s, "CREATE orders.eu-1") == "OK created orders.eu-1");
    CHECK(call(s, "ENQUEUE emails one") == "OK 1");
    CHECK(call(s, "ENQUEUE emails two") == "OK 2");
    CHECK(call(s, "ENQUEUE emails three") == "OK 3");
    CHECK(call(s, "ENQUEUE orders.eu-1 four") == "OK 4");
    CHECK(call(s, "DEQUEUE emails") == "OK 1 one");
    CHECK(call(s, "ACK 1") == "OK acked 1");
    CHECK(call(s, "DEQUEUE emails") == "OK 2 two");
    CHECK(call(s, "PAUSE orders.eu-1") == "OK paused orders.eu-1");

    const HttpReply reply = http_call(port, get_request("/metrics"));
    CHECK(reply.status == 200);
    CHECK(has_header(reply, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
    CHECK(has_header(reply, "Connection: close"));
    CHECK(has_header(reply, "Content-Length: " + std::to_string(reply.body.size())));
    auto m = samples_of(reply.body);

    CHECK(m["tq_queues"] == "2");
    CHECK(m["tq_jobs_ready"] == "2");
    CHECK(m["tq_jobs_leased"] == "1");
    CHECK(m["tq_jobs_enqueued_total"] == "4");
    CHECK(m["tq_jobs_acked_total"] == "1");
    CHECK(m["tq_connections_current"] == "1");
    CHECK(m["tq_commands_by_verb_total{verb=\"enqueue\"}"] == "4");
    CHECK(m["tq_commands_by_verb_total{verb=\"dequeue\"}"] == "2");
    CHECK(m["tq_wal_enabled"] == "1");
    CHECK(m["tq_wal_fsync_info{policy=\"always\"}"] == "1");
    CHECK(m["tq_version_info{version=\"" TQ_VERSION "\"}"] == "1");
    CHECK(m["tq_pid"] == std::to_string(tqd.pid()));
    CHECK(m["tq_queue_ready{queue=\"emails\"}"] == "1");
    CHECK(m["tq_queue_leased{queue=\"emails\"}"] == "1");
    CHECK(m["tq_queue_enqueued_total{queue=\"emails\"}"] == "3");
    CHECK(m["tq_queue_acked_total{queue=\"emails\"}"] == "1");
    CHECK(m["tq_queue_ready{queue=\"orders.eu-1\"}"] == "1");
    CHECK(m["tq_queue_paused{queue=\"orders.eu-1\"}"] == "1");
    CHECK(m["tq_queue_paused{queue=\"emails\"}"] == "0");
    CHECK(m["tq_queue_ack_timeout_seconds{queue=\"emails\"}"] == "30");
    CHECK(m.count("tq_queue_head_wait_seconds{queue=\"emails\"}") == 1);
    // Two deliveries from emails, none from orders, in the histogram of waits.
    CHECK(m["tq_queue_wait_seconds_count{queue=\"emails\"}"] == "2");
    CHECK(m["tq_queue_wait_seconds_bucket{queue=\"emails\",le=\"+Inf\"}"] == "2");
    CHECK(m["tq_queue_wait_seconds_bucket{queue=\"emails\",le=\"3600\"}"] == "2");
    CHECK(m["tq_queue_wait_seconds_count{queue=\"orders.eu-1\"}"] == "0");
    CHECK(reply.body.find("# TYPE tq_queue_wait_seconds histogram\n") != std::string::npos);
    CHECK(reply.body.find("# TYPE tq_jobs_enqueued_total counter\n") != std::string::npos);
    CHECK(reply.body.find("# TYPE tq_queue_ready gauge\n") != std::string::npos);
    CHECK(reply.body.find("# HELP tq_loop_busy_seconds_total ") != std::string::npos);
    CHECK(reply.body.find("# TYPE tq_loop_max_busy_seconds gauge\n") != std::string::npos);
    CHECK(reply.body.find("# TYPE tq_loop_max_busy_1m_seconds gauge\n") != std::string::npos);

    // STATS agrees, figure for figure, on what did not move in between.
    for (const char* name : {"jobs_ready", "jobs_leased", "jobs_enqueued_total", "jobs_acked_total",
                             "queues", "wal_records_total"}) {
      INFO(name);
      CHECK(stat_via(s, name) == m[std::string("tq_") + name]);
    }

    // GET / answers the same; a query string (a scrape's params) is ignored;
    // a client that half-closes after its request still gets the answer.
    const HttpReply root = http_call(port, get_request("/"));
    CHECK(root.status == 200);
    CHECK(samples_of(root.body)["tq_queue_ready{queue=\"emails\"}"] == "1");
    CHECK(http_call(port, get_request("/metrics?module=tq")).status == 200);
    CHECK(http_call(port, "GET /metrics HTTP/1.0\n\n", true).status == 200);

    // The endpoint closes with the server.
    CHECK(tqd.stop(SIGTERM) == 0);
  }

  TEST_CASE("a producer refused FULL is counted - errors_total alone counts polling's EMPTY too") {
    TqdOptions o;
    o.config_yaml = kEnabled + "queues:\n  declare:\n    small: {max_size: 1}\n";
    TqdProcess tqd(o);
    const uint16_t port = metrics_port(tqd);
    auto s = tqd.socket();
    CHECK(call(s, "DEQUEUE small").rfind("ERROR EMPTY ", 0) == 0);
    CHECK(call(s, "ENQUEUE small one") == "OK 1");
    CHECK(call(s, "ENQUEUE small two").rfind("ERROR FULL ", 0) == 0);
    CHECK(call(s, "ENQUEUE small three").rfind("ERROR FULL ", 0) == 0);

    auto m = samples_of(http_call(port, get_request("/metrics")).body);
    CHECK(m["tq_jobs_refused_total"] == "2");
    CHECK(m["tq_queue_refused_total{queue=\"small\"}"] == "2");
    CHECK(m["tq_errors_total"] == "3");
    CHECK(stat_via(s, "jobs_refused_total") == "2");
    CHECK(stat_via(s, "refused_total", "small") == "2");
  }

  TEST_CASE("the disk reserve is shown as enforced - two log files when min_free_disk is less") {
    // An alert on the free space needs the line producers are refused at;
    // wal.min_free_disk alone is not it when it is under two log files.
    TqdOptions o;
    o.config_yaml = kEnabled +
                    "limits:\n  max_line_bytes: 1024\n  max_payload_bytes: 1024\n"
                    "wal:\n  segment_bytes: 64KiB\n  min_free_disk: 100KiB\n";
    TqdProcess tqd(o);
    const uint16_t port = metrics_port(tqd);
    auto m = samples_of(http_call(port, get_request("/metrics")).body);
    CHECK(m["tq_wal_disk_reserve_bytes"] == std::to_string(128 << 10));
    CHECK(m["tq_wal_disk_low"] == "0");
    // Its HELP names the reserve as enforced, not the setting it may exceed.
    const std::string body = http_call(port, get_request("/metrics")).body;
    CHECK(body.find("# HELP tq_wal_disk_low 1 while the log's disk has less free than "
                    "wal_disk_reserve_bytes") != std::string::npos);
    auto s = tqd.socket();
    CHECK(stat_via(s, "wal_disk_reserve_bytes") == std::to_string(128 << 10));
  }

  TEST_CASE("other paths are 404 whatever the method, other methods 405, garbage 400, 431") {
    TqdOptions o;
    o.config_yaml = kEnabled;
    TqdProcess tqd(o);
    const uint16_t port = metrics_port(tqd);

    CHECK(http_call(port, get_request("/nope")).status == 404);
    CHECK(http_call(port, get_request("/metrics/")).status == 404);
    const HttpReply post =
        http_call(port, "POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
    CHECK(post.status == 405);
    CHECK(has_header(post, "Allow: GET"));
    CHECK(has_header(post, "Connection: close"));
    const HttpReply head_metrics = http_call(port, "HEAD /metrics HTTP/1.1\r\n\r\n");
    CHECK(head_metrics.status == 405);
    CHECK(has_header(head_metrics, "Allow: GET"));
    CHECK(head_metrics.body.empty());
    // The health check takes HEAD too, and its 405 says so.
    const HttpReply post_health = http_call(port, "POST /healthz HTTP/1.1\r\n\r\n");
    CHECK(post_health.status == 405);
    CHECK(has_header(post_health, "Allow: GET, HEAD"));
    // A path that is not there is 404 whatever the method: there is no
    // resource whose methods an Allow could list.
    for (const std::string method : {"POST", "HEAD", "DELETE"}) {
      const HttpReply nowhere = http_call(port, method + " /nope HTTP/1.1\r\n\r\n");
      CHECK(nowhere.status == 404);
      CHECK(nowhere.head.find("\r\nAllow:") == std::string::npos);
      CHECK(nowhere.body.empty() == (method == "HEAD"));  // an answer to HEAD has no body
    }
    CHECK(http_call(port, "POST /metrics/ HTTP/1.1\r\n\r\n").status == 404);
    CHECK(http_call(port, "PING\r\n\r\n").status == 400);
    CHECK(http_call(port, "GET /metrics SMTP/1.0\r\n\r\n").status == 400);

    // 64 KiB of headers, well past the cap: refused, and answered (not reset)
    // though most of it was never read.
    std::string huge = "GET /metrics HTTP/1.1\r\n";
    while (huge.size() < (64 << 10)) huge += "X-Padding: " + std::string(100, 'a') + "\r\n";
    huge += "\r\n";
    const HttpReply big = http_call(port, huge);
    CHECK(big.status == 431);
    CHECK(has_header(big, "Connection: close"));

    // Neither the endpoint nor the queue server minded.
    CHECK(http_call(port, get_request("/metrics")).status == 200);
    auto s = tqd.socket();
    CHECK(call(s, "PING") == "OK PONG");
  }

  TEST_CASE("a silent client is closed, and one past the cap takes the oldest silent one's place") {
    TqdOptions o;
    o.config_yaml = kEnabled;
    TqdProcess tqd(o);
    const uint16_t port = metrics_port(tqd);

    // Sixteen connections that say nothing fill the endpoint. A scrape
    // that comes then is served, and the oldest of them closed: sixteen
    // idle connections once failed every scrape and health check (each
    // new one closed at once) for as long as they were renewed.
    std::vector<std::unique_ptr<PlainSocket>> silent;
    for (int i = 0; i < 16; ++i) silent.push_back(std::make_unique<PlainSocket>(port));
    PlainSocket extra(port);
    extra.send(get_request("/healthz"));
    bool closed = false;
    const std::string health = extra.read_to_end(10'000, &closed);
    CHECK(closed);
    CHECK(parse_reply(health).status == 200);
    CHECK(silent[0]->read_to_end(3'000, &closed).empty());
    CHECK(closed);

    // The others were kept: one of them is served.
    silent[2]->send(get_request("/metrics"));
    const std::string raw = silent[2]->read_to_end(10'000, &closed);
    CHECK(closed);
    CHECK(parse_reply(raw).status == 200);

    // One that sends half a request and stops is closed after the request
    // timeout (5 s), with nothing sent back.
    silent[1]->send("GET /metrics HTTP/1.1\r\n");
    const auto started = Clock::now();
    CHECK(silent[1]->read_to_end(15'000, &closed).empty());
    CHECK(closed);
    const auto waited =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
    CHECK(waited >= 3'000);  // not at once: it had its time
    CHECK(waited < 10'000);
  }

  TEST_CASE("a reload gives metrics.token to the next scrape") {
    TqdOptions o;
    o.config_yaml = "metrics:\n  listen: 127.0.0.1:0\n";
    TqdProcess tqd(o);
    const uint16_t port = metrics_port(tqd);
    const std::string request = "GET /metrics HTTP/1.1\r\nHost: localhost\r\n";
    REQUIRE(http_call(port, request + "\r\n").status == 200);
    std::ofstream(tqd.dir() + "/config.yaml", std::ios::trunc)
        << "metrics:\n  listen: 127.0.0.1:0\n  token: rotated-token\n";
    REQUIRE(kill(tqd.pid(), SIGHUP) == 0);
    REQUIRE(tqd.wait_for_log("settings read again", 5000));
    CHECK(http_call(port, request + "\r\n").status == 401);
    CHECK(http_call(port, request + "Authorization: Bearer rotated-token\r\n\r\n").status == 200);
    for (const std::string& line : tqd.log_lines()) {
      CHECK(line.find("rotated-token") == std::string::npos);
    }
  }

  TEST_CASE("a reload that removes metrics.token off loopback warns as the start does") {
    TqdOptions o;
    o.config_yaml = "metrics:\n  listen: 0.0.0.0:0\n  token: kept-for-now\n";
    TqdProcess tqd(o);
    REQUIRE(tqd.wait_for_log("metrics: serving Prometheus metrics", 5000));
    const std::string warning = "metrics.listen: 0.0.0.0 is not loopback";
    for (const std::string& line : tqd.log_lines()) {
      CHECK(line.find(warning) == std::string::npos);
    }
    std::ofstream(tqd.dir() + "/config.yaml", std::ios::trunc) << "metrics:\n  listen: 0.0.0.0:0\n";
    REQUIRE(kill(tqd.pid(), SIGHUP) == 0);
    REQUIRE(tqd.wait_for_log("settings read again", 5000));
    CHECK(tqd.wait_for_log(warning, 5000));
  }

  TEST_CASE("with metrics.token a scrape needs Authorization: Bearer <token>, else 401") {
    setenv("TQ_TEST_METRICS_TOKEN", "s3cret-token", 1);
    TqdOptions o;
    o.config_yaml =
        "metrics:\n  listen: 127.0.0.1:0\n  token: from-file\n"
        "  token_env: TQ_TEST_METRICS_TOKEN\n";
    TqdProcess tqd(o);
    unsetenv("TQ_TEST_METRICS_TOKEN");
    const uint16_t port = metrics_port(tqd);
    auto scrape = [&](const std::string& header) {
      return http_call(port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n" + header + "\r\n");
    };
    const HttpReply none = scrape("");
    CHECK(none.status == 401);
    CHECK(has_header(none, "WWW-Authenticate: Bearer realm=\"tq\""));
    CHECK(none.body.find("tq_") == std::string::npos);                   // not a figure
    CHECK(scrape("Authorization: Bearer from-file\r\n").status == 401);  // the variable wins
    CHECK(scrape("Authorization: Bearer s3cret-toke\r\n").status == 401);
    CHECK(scrape("Authorization: Basic czNjcmV0LXRva2Vu\r\n").status == 401);
    const HttpReply ok = scrape("Authorization: Bearer s3cret-token\r\n");
    CHECK(ok.status == 200);
    CHECK(ok.body.find("tq_jobs_ready ") != std::string::npos);
    // Header name and scheme in any case, spaces around the value.
    CHECK(scrape("authorization:   bearer s3cret-token  \r\n").status == 200);
    // Other paths say 404 without the token: they reveal nothing.
    CHECK(http_call(port, get_request("/nope")).status == 404);
    // The health check needs none: probes send no token, and it tells
    // nothing but whether jobs are taken.
    const HttpReply health = http_call(port, get_request("/healthz"));
    CHECK(health.status == 200);
    CHECK(health.body == "ok\n");
    CHECK(has_header(health, "Connection: close"));
    const HttpReply head = http_call(port, "HEAD /healthz HTTP/1.1\r\n\r\n");
    CHECK(head.status == 200);
    CHECK(head.body.empty());
    CHECK(has_header(head, "Content-Length: 3"));
  }

  TEST_CASE("off by default, a warning off loopback, and a taken port stops start-up") {
    {
      TqdProcess plain;
      for (const std::string& line : plain.log_lines()) {
        CHECK(line.find("metrics") == std::string::npos);
      }
    }
    {
      TqdOptions o;
      o.config_yaml = "metrics:\n  listen: 0.0.0.0:0\n";
      TqdProcess open(o);
      CHECK(open.wait_for_log("metrics.listen: 0.0.0.0 is not loopback"));
    }
    TqdOptions o;
    o.config_yaml = kEnabled;
    TqdProcess first(o);
    const uint16_t taken = metrics_port(first);
    const std::string dir = tq::testing::make_temp_dir();
    const std::string config = dir + "/config.yaml";
    { std::ofstream(config) << "metrics:\n  listen: 127.0.0.1:" << taken << "\n"; }
    auto [code, err] =
        tq::testing::run_tqd({"--config", config, "--port", "0", "--data-dir", dir + "/data"});
    CHECK(code == 1);
    CHECK(err.find("cannot listen for metrics on 127.0.0.1:" + std::to_string(taken) +
                   ": address already in use") != std::string::npos);
    CHECK(err.find("wal: replayed") == std::string::npos);  // reported before the replay
    tq::testing::remove_tree(dir);
  }
}

}  // namespace metrics_test
