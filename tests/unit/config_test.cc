#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "server/config.h"
#include "server/config_reload.h"
#include "server/server.h"

namespace config_test {

using namespace tq::server;

namespace {

// A socket bound to 127.0.0.1, on a port the kernel picked: the port.
std::string bound_loopback_port(int* fd) {
  *fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(*fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(*fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  socklen_t length = sizeof address;
  REQUIRE(::getsockname(*fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  return std::to_string(ntohs(address.sin_port));
}

// The loader's own list of a section's keys, from its "unknown key" message.
std::vector<std::string> known_keys(const std::string& section) {
  auto r = load_config_text(section + ":\n  zz_not_a_key: 1\n", "probe.yaml");
  REQUIRE_FALSE(r.config);
  const std::string marker = "expected one of: ";
  size_t at = r.error.find(marker);
  REQUIRE(at != std::string::npos);
  std::vector<std::string> keys;
  std::stringstream list(r.error.substr(at + marker.size()));
  std::string key;
  while (std::getline(list, key, ',')) {
    while (!key.empty() && (key.front() == ' ')) key.erase(0, 1);
    while (!key.empty() && (key.back() == ')')) key.pop_back();
    keys.push_back(key);
  }
  return keys;
}

}  // namespace

TEST_SUITE("config") {
  TEST_CASE("an empty document keeps every default") {
    auto r = load_config_text("", "test.yaml");
    REQUIRE(r.config);
    CHECK(r.config->port == 8080);
    CHECK(r.config->host == "127.0.0.1");
    CHECK(r.config->queue_defaults.ack_timeout_ms == 30'000);
    CHECK_FALSE(r.config->auto_create_queues);
    CHECK_FALSE(r.config->wal_sync_leases);
    CHECK(r.config->wal_enabled);  // durable unless asked otherwise
    CHECK_FALSE(r.config->metrics_enabled());  // no HTTP endpoint unless asked
  }

  TEST_CASE("the shipped config.yaml loads and states the defaults") {
    auto r = load_config_file(std::string(TQ_SOURCE_DIR) + "/config.yaml");
    INFO(r.error);
    REQUIRE(r.config);
    Config defaults;
    CHECK(r.config->port == defaults.port);
    CHECK(r.config->max_line_bytes == defaults.max_line_bytes);
    CHECK(r.config->max_connections == defaults.max_connections);
    CHECK(r.config->queue_defaults == defaults.queue_defaults);
    CHECK(r.config->max_jobs == defaults.max_jobs);
    CHECK(r.config->max_payload_total == defaults.max_payload_total);
    CHECK(r.config->max_wait_ms == defaults.max_wait_ms);
    CHECK(r.config->fsync == defaults.fsync);
    CHECK(r.config->wal_enabled == defaults.wal_enabled);
    CHECK(r.config->wal_sync_leases == defaults.wal_sync_leases);
    CHECK(r.config->segment_bytes == defaults.segment_bytes);
    CHECK(r.config->declared_queues.empty());
    CHECK(r.config->tcp_keepalive_ms == defaults.tcp_keepalive_ms);
    CHECK(r.config->huge_pages == defaults.huge_pages);
    CHECK(r.config->password == defaults.password);
    CHECK(r.config->password_env == defaults.password_env);
    CHECK(r.config->idle_timeout_ms == defaults.idle_timeout_ms);
    CHECK(r.config->request_timeout_ms == defaults.request_timeout_ms);
    CHECK(r.config->send_timeout_ms == defaults.send_timeout_ms);
    CHECK(r.config->max_auth_failures == defaults.max_auth_failures);
    CHECK(r.config->max_waiters == defaults.max_waiters);
    CHECK(r.config->max_batch_bytes == defaults.max_batch_bytes);
    CHECK(r.config->metrics_host == defaults.metrics_host);
    CHECK_FALSE(r.config->tls_enabled());
    CHECK(r.config->plaintext_enabled());
  }

  // The loader's own list of keys is the one in its "unknown key" message; a
  // key added to the loader but not to config.yaml or README fails here.
  TEST_CASE("config.yaml and README list every key the loader knows") {
    auto slurp = [](const std::string& path) {
      std::ifstream in(path);
      std::stringstream text;
      text << in.rdbuf();
      return text.str();
    };
    const std::string shipped = slurp(std::string(TQ_SOURCE_DIR) + "/config.yaml");
    const std::string readme = slurp(std::string(TQ_SOURCE_DIR) + "/README.md");
    REQUIRE_FALSE(shipped.empty());
    REQUIRE_FALSE(readme.empty());
    size_t checked = 0;
    for (const std::string section :
         {"server", "limits", "auth", "tls", "wal", "queues", "metrics"}) {
      for (const std::string& key : known_keys(section)) {
        INFO(section << "." << key);
        CHECK(shipped.find("\n  " + key + ":") != std::string::npos);
        if (key != "defaults" && key != "declare") {
          CHECK(readme.find("`" + section + "." + key + "`") != std::string::npos);
        }
        ++checked;
      }
    }
    CHECK(checked >= 30);  // the probe found the lists, not an empty one
  }

  TEST_CASE("a key with its value glued on is named, and its value not shown") {
    // "password:hunter2" with no space is one key (with no value): the
    // message goes to the log, and at a reload to RELOAD's reply.
    auto r = load_config_text("auth:\n  admin_password: x\n  password:hunter2\n", "t.yaml");
    REQUIRE_FALSE(r.config);
    CHECK(r.error.find("auth.password...") != std::string::npos);
    CHECK(r.error.find("hunter2") == std::string::npos);
    // A block scalar indented too little: the secret becomes a key.
    for (const char* text : {"auth:\n  password: |\n  hunter2-secret\n",
                             "metrics:\n  token: >-\n  hunter2-secret\n",
                             "auth:\n  password: |\nhunter2-secret\n"}) {
      INFO(text);
      r = load_config_text(text, "t.yaml");
      REQUIRE_FALSE(r.config);
      CHECK(r.error.find("hunter2") == std::string::npos);
    }
  }

  // A key added to the loader but not to the reload's table would be
  // neither applied nor reported by SIGHUP.
  TEST_CASE("a reload compares every key the loader knows") {
    const std::vector<std::string> compared = compared_setting_keys();
    size_t checked = 0;
    for (const std::string section :
         {"server", "limits", "auth", "tls", "wal", "queues", "metrics"}) {
      for (const std::string& key : known_keys(section)) {
        const std::string name = section + "." + key;
        INFO(name);
        if (name == "queues.defaults" || name == "queues.declare") continue;  // key by key
        CHECK(std::find(compared.begin(), compared.end(), name) != compared.end());
        ++checked;
      }
    }
    CHECK(checked >= 30);
  }

  TEST_CASE("queue defaults take CONFIG's keys, and declared queues keep what was written") {
    auto r = load_config_text(R"(
queues:
  defaults:
    max_attempts: 5
    backoff_base: 2s
    backoff_jitter: 0.25
  declare:
    emails:
      priority: 3
      ttl_dead_letter: true
    orders: {}
)", "t.yaml");
    INFO(r.error);
    REQUIRE(r.config);
    CHECK(r.config->queue_defaults.max_attempts == 5);
    CHECK(r.config->queue_defaults.backoff_base_ms == 2000);
    CHECK(r.config->queue_defaults.backoff_jitter == doctest::Approx(0.25));
    REQUIRE(r.config->declared_queues.size() == 2);
    CHECK(r.config->declared_queues[0].name == "emails");
    CHECK(r.config->declared_queues[0].settings ==
          std::vector<std::pair<std::string, std::string>>{{"priority", "3"}, {"ttl_dead_letter", "true"}});
    CHECK(r.config->declared_queues[1].settings.empty());
  }

  TEST_CASE("a declared queue's schedules: every or cron, a payload, PUT's options") {
    auto r = load_config_text(R"(
queues:
  declare:
    reports:
      priority: 2
      schedules:
        nightly: {cron: "0 3 * * MON-FRI", payload: build report, ttl: 1h, group: r}
        heartbeat: {every: 1m, payload: ping, priority: -3, attempts: 2}
        daily: {cron: "@DAILY", payload: d}
        spaced: {cron: "0  3 *   * *", payload: s}
        berlin: {cron: "30 6 * * *", tz: Europe/Berlin, payload: b}
)",
                              "t.yaml");
    INFO(r.error);
    REQUIRE(r.config);
    REQUIRE(r.config->declared_queues.size() == 1);
    const DeclaredQueue& q = r.config->declared_queues[0];
    CHECK(q.settings == std::vector<std::pair<std::string, std::string>>{{"priority", "2"}});
    REQUIRE(q.schedules.size() == 5);
    // A zone goes before the fields, as the engine keeps it.
    CHECK(q.schedules[4].cron == "CRON_TZ=Europe/Berlin 30 6 * * *");
    // Kept as the engine keeps them, so a restart finds them unchanged.
    CHECK(q.schedules[2].cron == "@daily");
    CHECK(q.schedules[3].cron == "0 3 * * *");
    CHECK(q.schedules[0].name == "nightly");
    CHECK(q.schedules[0].cron == "0 3 * * MON-FRI");
    CHECK(q.schedules[0].every_ms == 0);
    CHECK(q.schedules[0].payload == "build report");
    CHECK(q.schedules[0].ttl_ms == 3'600'000);
    CHECK(q.schedules[0].group == "r");
    CHECK(q.schedules[1].every_ms == 60'000);
    CHECK(q.schedules[1].priority == -3);
    CHECK(q.schedules[1].attempts == 2);
  }

  TEST_CASE("a bad declared schedule names its key, as SCHEDULE would say it") {
    auto error_of = [](const std::string& schedule) {
      auto r = load_config_text(
          "queues:\n  declare:\n    q:\n      schedules:\n        s: " + schedule + "\n", "t.yaml");
      CHECK_FALSE(r.config);
      return r.error;
    };
    CHECK(error_of("{cron: '0 25 * * *', payload: x}") ==
          "t.yaml: queues.declare.q.schedules.s.cron: cron field 2 (hour) '25': 25 is out of "
          "range 0-23");
    CHECK(error_of("{cron: '0 0 30 2 *', payload: x}") ==
          "t.yaml: queues.declare.q.schedules.s.cron: cron '0 0 30 2 *' never fires");
    CHECK(error_of("{every: 1m, cron: '@daily', payload: x}") ==
          "t.yaml: queues.declare.q.schedules.s: expected one of every and cron");
    CHECK(error_of("{cron: '0 3 * * *', tz: Mars/Olympus, payload: x}") ==
          "t.yaml: queues.declare.q.schedules.s.tz: unknown time zone 'Mars/Olympus' (an IANA "
          "name such as Europe/Berlin or America/New_York)");
    CHECK(error_of("{every: 1h, tz: Europe/Berlin, payload: x}") ==
          "t.yaml: queues.declare.q.schedules.s.tz: tz goes with cron; every counts in Unix time");
    CHECK(error_of("{payload: x}") ==
          "t.yaml: queues.declare.q.schedules.s: expected one of every and cron");
    CHECK(error_of("{every: 1m}") ==
          "t.yaml: queues.declare.q.schedules.s: expected a payload (the job each firing puts)");
    CHECK(error_of("{every: 500ms, payload: x}")
              .find("queues.declare.q.schedules.s.every: "
                    "expected a duration") != std::string::npos);
    CHECK(error_of("{every: 1m, payload: x, delay: 5s}")
              .find("queues.declare.q.schedules.s.delay: unknown key") != std::string::npos);
    auto r = load_config_text("queues:\n  defaults:\n    schedules: {}\n", "t.yaml");
    REQUIRE_FALSE(r.config);
    CHECK(r.error ==
          "t.yaml: queues.defaults.schedules: schedules belong to one queue: "
          "queues.declare.<queue>.schedules");
  }

  TEST_CASE("a bad queue setting names the queue and the key") {
    auto r = load_config_text("queues:\n  declare:\n    emails:\n      max_attempts: lots\n", "t.yaml");
    REQUIRE_FALSE(r.config);
    CHECK(r.error ==
          "t.yaml: queues.declare.emails.max_attempts: expected a whole number up to 1000000 (0: "
          "no limit), got 'lots'");
    r = load_config_text("queues:\n  defaults:\n    retries: 3\n", "t.yaml");
    REQUIRE_FALSE(r.config);
    CHECK(r.error.find("t.yaml: queues.defaults.retries: unknown setting 'retries'") == 0);
    r = load_config_text("queues:\n  declare:\n    '123':\n      priority: 1\n", "t.yaml");
    REQUIRE_FALSE(r.config);
    CHECK(r.error.find("t.yaml: queues.declare.123: not a valid queue name") == 0);
    r = load_config_text("queues:\n  declare:\n    jobs:\n      dead_letter_queue: jobs\n",
                         "t.yaml");
    REQUIRE_FALSE(r.config);
    CHECK(r.error ==
          "t.yaml: queues.declare.jobs.dead_letter_queue: a queue cannot be its own (without one, "
          "its dead letters stay in it)");
  }

  TEST_CASE("values are read with their units") {
    auto r = load_config_text(R"(
server:
  port: 9000
  log_level: debug
  shutdown_timeout: 1500ms
  huge_pages: true
limits:
  max_line_bytes: 64KiB
wal:
  enabled: false
  sync_leases: true
queues:
  auto_create: true
  defaults:
    ack_timeout: 2m
)", "t.yaml");
    INFO(r.error);
    REQUIRE(r.config);
    CHECK(r.config->port == 9000);
    CHECK(r.config->log_level == LogLevel::kDebug);
    CHECK(r.config->shutdown_timeout_ms == 1500);
    CHECK(r.config->huge_pages);
    CHECK(r.config->max_line_bytes == 64 * 1024);
    CHECK(r.config->wal_sync_leases);
    CHECK_FALSE(r.config->wal_enabled);
    CHECK(r.config->auto_create_queues);
    CHECK(r.config->queue_defaults.ack_timeout_ms == 120'000);
  }

  TEST_CASE("an unknown key is an error that names it") {
    auto r = load_config_text("server:\n  hots: 0.0.0.0\n", "t.yaml");
    REQUIRE_FALSE(r.config);
    CHECK(r.error.find("t.yaml: server.hots: unknown key") == 0);
  }

  TEST_CASE("a bad value is an error that names the key and the value") {
    auto r = load_config_text("server:\n  port: eighty\n", "t.yaml");
    REQUIRE_FALSE(r.config);
    CHECK(r.error == "t.yaml: server.port: expected a whole number from 0 to 65535, got 'eighty'");
    r = load_config_text("queues:\n  defaults:\n    ack_timeout: soon\n", "t.yaml");
    REQUIRE_FALSE(r.config);
    CHECK(r.error.find("t.yaml: queues.defaults.ack_timeout: expected a duration") == 0);
    // 0 would refuse every WAIT as too long; max_waiters: 0 is how WAIT is turned off.
    r = load_config_text("limits:\n  max_wait: 0\n", "t.yaml");
    REQUIRE_FALSE(r.config);
    CHECK(r.error.find("t.yaml: limits.max_wait: expected a duration such as 30s, 500ms or 2m, "
                       "from 1ms to") == 0);
    r = load_config_text("wal:\n  enabled: off-ish\n", "t.yaml");
    REQUIRE_FALSE(r.config);
    CHECK(r.error.find("t.yaml: wal.enabled: ") == 0);
    CHECK(r.error.find("off-ish") != std::string::npos);
    r = load_config_text("server:\n  huge_pages: 2MiB\n", "t.yaml");
    REQUIRE_FALSE(r.config);
    CHECK(r.error.find("t.yaml: server.huge_pages: ") == 0);
  }

  TEST_CASE("a key given twice, an empty data_dir or a directory as the file are errors") {
    auto r = load_config_text("server:\n  port: 1\nserver:\n  port: 2\n", "t.yaml");
    REQUIRE_FALSE(r.config);
    CHECK(r.error == "t.yaml: server: given twice");
    r = load_config_text("server:\n  port: 1\n  port: 2\n", "t.yaml");
    REQUIRE_FALSE(r.config);
    CHECK(r.error == "t.yaml: server.port: given twice");
    r = load_config_text("queues:\n  defaults:\n    priority: 1\n    priority: 2\n", "t.yaml");
    REQUIRE_FALSE(r.config);
    CHECK(r.error == "t.yaml: queues.defaults.priority: given twice");
    r = load_config_text("server:\n  data_dir: ''\n", "t.yaml");
    REQUIRE_FALSE(r.config);
    CHECK(r.error == "t.yaml: server.data_dir: expected a directory, got ''");
    r = load_config_text("server:\n  log_level: verbose\n", "t.yaml");
    REQUIRE_FALSE(r.config);
    CHECK(r.error ==
          "t.yaml: server.log_level: expected debug, info, warn or error, got 'verbose'");
    r = load_config_text("server:\n  log_level: WARN\n", "t.yaml");  // in any case
    REQUIRE(r.config);
    CHECK(r.config->log_level == LogLevel::kWarn);
    r = load_config_file(TQ_SOURCE_DIR);
    REQUIRE_FALSE(r.config);
    CHECK(r.error == std::string(TQ_SOURCE_DIR) + ": is a directory, not a configuration file");
  }

  TEST_CASE("tls keys come together - a port needs a certificate and key, and they need a port") {
    auto r = load_config_text(
        "tls:\n  port: 8443\n  cert_file: c.pem\n  key_file: k.pem\n  ca_file: ca.pem\n", "t.yaml");
    INFO(r.error);
    REQUIRE(r.config);
    CHECK(r.config->tls_enabled());
    CHECK(r.config->tls_port == 8443);
    CHECK(r.config->tls_cert_file == "c.pem");
    CHECK(r.config->tls_key_file == "k.pem");
    CHECK(r.config->tls_ca_file == "ca.pem");
    CHECK(r.config->plaintext_enabled());
    r = load_config_text(
        "tls:\n  port: 0\n  cert_file: c.pem\n  key_file: k.pem\n  plaintext: off\n", "t.yaml");
    REQUIRE(r.config);
    CHECK(r.config->tls_port == 0);
    CHECK_FALSE(r.config->plaintext_enabled());
    r = load_config_text("tls:\n  port: \"\"\n", "t.yaml");
    REQUIRE(r.config);
    CHECK_FALSE(r.config->tls_enabled());

    const std::pair<const char*, const char*> bad[] = {
        {"tls:\n  port: 8443\n  key_file: k.pem\n",
         "t.yaml: tls.cert_file: required with tls.port"},
        {"tls:\n  port: 8443\n  cert_file: c.pem\n",
         "t.yaml: tls.key_file: required with tls.port"},
        {"tls:\n  cert_file: c.pem\n  key_file: k.pem\n",
         "t.yaml: tls.port: required with tls.cert_file, tls.key_file and tls.ca_file (the port "
         "that speaks TLS, 0 for any)"},
        {"tls:\n  plaintext: false\n",
         "t.yaml: tls.plaintext: false needs tls.port, or tqd would listen nowhere"},
        {"tls:\n  port: 70000\n",
         "t.yaml: tls.port: expected a whole number from 0 to 65535, got '70000'"},
    };
    for (const auto& entry : bad) {
      const auto& yaml = entry.first;
      const auto& error = entry.second;
      INFO(yaml);
      r = load_config_text(yaml, "t.yaml");
      REQUIRE_FALSE(r.config);
      CHECK(r.error == error);
    }
  }

  TEST_CASE("metrics.listen takes host and port - empty is off, anything else is an error") {
    auto r = load_config_text("metrics:\n  listen: 127.0.0.1:9108\n", "t.yaml");
    INFO(r.error);
    REQUIRE(r.config);
    CHECK(r.config->metrics_enabled());
    CHECK(r.config->metrics_host == "127.0.0.1");
    CHECK(r.config->metrics_port == 9108);
    r = load_config_text("metrics:\n  listen: '[::1]:0'\n", "t.yaml");
    REQUIRE(r.config);
    CHECK(r.config->metrics_host == "::1");
    CHECK(r.config->metrics_port == 0);
    r = load_config_text("metrics:\n  listen: localhost:9108\n", "t.yaml");
    REQUIRE(r.config);
    CHECK(r.config->metrics_host == "localhost");
    r = load_config_text("metrics:\n  listen: \"\"\n", "t.yaml");
    REQUIRE(r.config);
    CHECK_FALSE(r.config->metrics_enabled());
    r = load_config_text("metrics:\n", "t.yaml");
    REQUIRE(r.config);
    CHECK_FALSE(r.config->metrics_enabled());

    for (const char* bad : {"9108", ":9108", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:http",
                            "::1:9108", "[::1]9108", "[]:9108", "127.0.0.1:-1", "a b:9108"}) {
      INFO(bad);
      r = load_config_text(std::string("metrics:\n  listen: '") + bad + "'\n", "t.yaml");
      REQUIRE_FALSE(r.config);
      CHECK(r.error == std::string("t.yaml: metrics.listen: expected host:port such as "
                                   "127.0.0.1:9108 or [::1]:9108 (empty: off), got '") +
                           bad + "'");
    }
    r = load_config_text("metrics:\n  listen: [1, 2]\n", "t.yaml");
    REQUIRE_FALSE(r.config);
    CHECK(r.error == "t.yaml: metrics.listen: expected a single value");
    r = load_config_text("metrics:\n  port: 9108\n", "t.yaml");
    REQUIRE_FALSE(r.config);
    CHECK(r.error ==
          "t.yaml: metrics: an unknown key at line 2 (not shown; expected one of: listen, token, "
          "token_env)");
    r = load_config_text("metrics:\n  listen: 127.0.0.1:1\n  listen: 127.0.0.1:2\n", "t.yaml");
    REQUIRE_FALSE(r.config);
    CHECK(r.error == "t.yaml: metrics.listen: given twice");
    r = load_config_text("metrics: 127.0.0.1:9108\n", "t.yaml");
    REQUIRE_FALSE(r.config);
    CHECK(r.error == "t.yaml: metrics: expected a mapping of keys");
  }

  TEST_CASE("broken YAML is one line with its position") {
    auto r = load_config_text("server: [1, 2\n", "t.yaml");
    REQUIRE_FALSE(r.config);
    CHECK(r.error.find("t.yaml: ") == 0);
    CHECK(r.error.find('\n') == std::string::npos);
    CHECK(r.error.find("line") != std::string::npos);
  }

  TEST_CASE("a missing file is an error") {
    auto r = load_config_file("/nonexistent/tq.yaml");
    REQUIRE_FALSE(r.config);
    CHECK(r.error ==
          "/nonexistent/tq.yaml: cannot open the configuration file: No such file or directory");
  }

  TEST_CASE("durations and sizes") {
    CHECK(parse_duration_ms("30", 1000) == 30'000);
    CHECK(parse_duration_ms("30s", 1) == 30'000);
    CHECK(parse_duration_ms("250ms", 1000) == 250);
    CHECK(parse_duration_ms("1h", 1) == 3'600'000);
    // Units in any case, as verbs and options are (DELAY 1H).
    CHECK(parse_duration_ms("1H", 1) == 3'600'000);
    CHECK(parse_duration_ms("500MS", 1) == 500);
    CHECK(parse_duration_ms("2Ms", 1) == 2);
    CHECK(parse_duration_ms("1D", 1) == 86'400'000);
    CHECK_FALSE(parse_duration_ms("1 fortnight", 1).has_value());
    CHECK_FALSE(parse_duration_ms("s", 1).has_value());
    CHECK(parse_size("64MiB") == 64ull << 20);
    CHECK(parse_size("100") == 100u);
    CHECK(parse_size("1GB") == 1'000'000'000u);
    CHECK_FALSE(parse_size("lots").has_value());
  }

  TEST_CASE("ratios are plain decimals - nan, inf, hex, exponents and signs are refused") {
    CHECK(parse_decimal("2") == 2.0);
    CHECK(parse_decimal("1.5") == 1.5);
    CHECK(parse_decimal("0.25") == 0.25);
    CHECK(parse_decimal(".5") == 0.5);
    for (const char* bad :
         {"nan", "NaN", "inf", "-inf", "0x10", "1e1", "-1", "+2", "1.2.3", ".", "", " 2", "2 "}) {
      INFO(bad);
      CHECK_FALSE(parse_decimal(bad).has_value());
    }
    auto r = load_config_text("queues:\n  defaults:\n    backoff_factor: nan\n", "t.yaml");
    REQUIRE_FALSE(r.config);
    CHECK(r.error ==
          "t.yaml: queues.defaults.backoff_factor: expected a number from 1 to 100, at most 3 "
          "decimals, got 'nan'");
    r = load_config_text("queues:\n  defaults:\n    backoff_jitter: 0.1234\n", "t.yaml");
    REQUIRE_FALSE(r.config);  // the log keeps thousandths: it would come back as 0.123
    r = load_config_text("wal:\n  compaction_ratio: inf\n", "t.yaml");
    REQUIRE_FALSE(r.config);
    CHECK(r.error == "t.yaml: wal.compaction_ratio: expected a number from 1.2 to 100, got 'inf'");
    r = load_config_text("queues:\n  defaults:\n    backoff_jitter: 0.5\n", "t.yaml");
    REQUIRE(r.config);
    CHECK(r.config->queue_defaults.backoff_jitter == 0.5);
  }

  TEST_CASE("booleans are spelt alike in config.yaml and in CONFIG") {
    for (const char* yes : {"true", "yes", "on", "1", "True", "TRUE", "Yes", "ON"}) {
      CHECK(parse_bool(yes) == true);
    }
    for (const char* no : {"false", "no", "off", "0", "False", "FALSE", "No", "OFF"}) {
      CHECK(parse_bool(no) == false);
    }
    for (const char* neither : {"", "tRUE", "y", "2", "enabled", " true", "truee", "oN"}) {
      CHECK_FALSE(parse_bool(neither).has_value());
    }
    // Both readers use it: a queue setting and a server key.
    auto loaded = load_config_text(
        "queues:\n  auto_create: 1\n  defaults:\n    ttl_dead_letter: on\n", "test.yaml");
    REQUIRE(loaded.config.has_value());
    CHECK(loaded.config->auto_create_queues);
    CHECK(loaded.config->queue_defaults.ttl_dead_letter);
  }

  TEST_CASE("metrics.listen on the protocol port is refused before the replay") {
    // Each address alone can be bound, so checking them one after the other
    // passed, and tqd failed only at listen(), after replaying the log.
    int probe = -1;
    const std::string port = bound_loopback_port(&probe);
    ::close(probe);
    auto r = load_config_text("server:\n  host: 127.0.0.1\n  port: " + port +
                                  "\nmetrics:\n  listen: 127.0.0.1:" + port + "\n",
                              "test.yaml");
    REQUIRE(r.config);
    std::string error;
    CHECK_FALSE(Server::check_address(*r.config, &error));
    CHECK(error.find("metrics") != std::string::npos);
  }

  TEST_CASE("--check-config's address check binds nothing, and finds listeners that clash") {
    auto apart = [](const std::string& yaml) {
      auto r = load_config_text(yaml, "test.yaml");
      REQUIRE(r.config);
      std::string error;
      return Server::check_addresses_apart(*r.config, &error) ? std::string("ok") : error;
    };
    // A port someone listens on is not its business (the running tqd does).
    int held = -1;
    const std::string port = bound_loopback_port(&held);
    REQUIRE(::listen(held, 1) == 0);
    CHECK(apart("server:\n  host: 127.0.0.1\n  port: " + port + "\n") == "ok");
    ::close(held);

    const std::string server = "server:\n  host: 127.0.0.1\n  port: 7000\n";
    CHECK(apart(server + "metrics:\n  listen: 127.0.0.1:7001\n") == "ok");
    CHECK(apart(server + "metrics:\n  listen: 127.0.0.2:7000\n") == "ok");
    CHECK(apart(server + "metrics:\n  listen: 127.0.0.1:7000\n")
              .find("cannot listen for metrics on 127.0.0.1:7000") == 0);
    // A wildcard takes the port on every address.
    CHECK(apart(server + "metrics:\n  listen: 0.0.0.0:7000\n")
              .find("the protocol's listener is on that port too") != std::string::npos);
    CHECK(apart("server:\n  host: 0.0.0.0\n  port: 7000\nmetrics:\n  listen: 127.0.0.1:7000\n")
              .find("the protocol's listener is on that port too") != std::string::npos);
    // :: takes IPv4's port too (dual-stack); 0.0.0.0 leaves IPv6's alone.
    CHECK(apart("server:\n  host: '::'\n  port: 7000\nmetrics:\n  listen: 127.0.0.1:7000\n")
              .find("the protocol's listener is on that port too") != std::string::npos);
    CHECK(apart("server:\n  host: 0.0.0.0\n  port: 7000\nmetrics:\n  listen: '[::1]:7000'\n") ==
          "ok");
    // Port 0 is a new port for each listener.
    CHECK(apart("server:\n  host: 127.0.0.1\n  port: 0\nmetrics:\n  listen: 127.0.0.1:0\n") ==
          "ok");
    CHECK(apart("server:\n  host: 999.1.1.1\n").find("cannot resolve server.host") == 0);
  }

  TEST_CASE("wal.backup_dir defaults beside the log, and may not be inside it") {
    Config c;
    c.data_dir = "/var/lib/tq";
    CHECK(c.backup_dir() == "/var/lib/tq/backups");
    CHECK(backup_dir_problem(c).empty());
    for (const char* inside :
         {"/var/lib/tq/wal", "/var/lib/tq/wal/", "/var/lib/tq/wal/b", "/var/lib/tq/x/../wal/b"}) {
      CAPTURE(inside);
      c.wal_backup_dir = inside;
      CHECK(backup_dir_problem(c).find("is inside the log's directory /var/lib/tq/wal") !=
            std::string::npos);
    }
    for (const char* outside : {"/var/lib/tq", "/var/lib/tq/wal2", "/srv/backups", "/var/lib"}) {
      CAPTURE(outside);
      c.wal_backup_dir = outside;
      CHECK(backup_dir_problem(c).empty());
    }
    // With retention, the data directory may not be in backup_dir: it could
    // be taken for an old backup (a restored log keeps its BACKUP marker).
    c.wal_backup_keep = 7;
    for (const char* holding : {"/var/lib/tq", "/var/lib/tq/", "/var/lib", "/var/lib/"}) {
      CAPTURE(holding);
      c.wal_backup_dir = holding;
      CHECK(backup_dir_problem(c).find("the data directory /var/lib/tq is inside") !=
            std::string::npos);
    }
    for (const char* apart : {"", "/var/lib/tq/backups", "/srv/backups", "/var/lib/tq2"}) {
      CAPTURE(apart);
      c.wal_backup_dir = apart;
      CHECK(backup_dir_problem(c).empty());
    }
    // Through a symbolic link too.
    char tmpl[] = "/tmp/tq-config-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    const std::string dir = tmpl;
    std::filesystem::create_directories(dir + "/real/live");
    std::filesystem::create_directory_symlink(dir + "/real", dir + "/link");
    c.data_dir = dir + "/real/live";
    c.wal_backup_dir = dir + "/link";
    CHECK(backup_dir_problem(c).find("is inside") != std::string::npos);
    c.wal_backup_keep = 0;  // without retention nothing is removed from it
    CHECK(backup_dir_problem(c).empty());
    c.wal_backup_dir = dir + "/link/live/wal/b";
    CHECK(backup_dir_problem(c).find("is inside the log's directory") != std::string::npos);
    // A link to what does not exist yet: a first start would create it.
    c.data_dir = dir + "/fresh";
    std::filesystem::create_directory_symlink(dir + "/fresh/wal/backups", dir + "/ahead");
    c.wal_backup_dir = dir + "/ahead";
    CHECK(backup_dir_problem(c).find("is inside the log's directory " + dir + "/fresh/wal") !=
          std::string::npos);
    // Relative links, links in links.
    std::filesystem::create_directory_symlink("fresh", dir + "/rel");
    std::filesystem::create_directory_symlink("rel/wal", dir + "/chain");
    c.wal_backup_dir = dir + "/chain/b";
    CHECK(backup_dir_problem(c).find("is inside the log's directory") != std::string::npos);
    c.wal_backup_dir = dir + "/rel/backups";
    CHECK(backup_dir_problem(c).empty());
    // A loop of links is not resolved (the kernel refuses it): no hang.
    std::filesystem::create_directory_symlink(dir + "/loop_b", dir + "/loop_a");
    std::filesystem::create_directory_symlink(dir + "/loop_a", dir + "/loop_b");
    c.wal_backup_dir = dir + "/loop_a/b";
    CHECK(backup_dir_problem(c).empty());
    std::filesystem::remove_all(dir);
    auto r = load_config_text("wal:\n  backup_dir: /srv/tq backups\n", "test");
    REQUIRE_FALSE(r.config);
    CHECK(r.error.find("wal.backup_dir") != std::string::npos);
  }
}

}  // namespace config_test
