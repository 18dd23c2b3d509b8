#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "server/config.h"
#include "server/config_reload.h"
#include "server/config_source.h"

namespace config_reload_test {

using namespace tq::server;

namespace {

Config parse(const std::string& yaml) {
  ConfigResult r = load_config_text(yaml, "test.yaml");
  REQUIRE_MESSAGE(r.config, r.error);
  return *r.config;
}

const SettingChange* find_change(const std::vector<SettingChange>& changes,
                                 const std::string& key) {
  for (const SettingChange& c : changes) {
    if (c.key == key) return &c;
  }
  return nullptr;
}

}  // namespace

TEST_SUITE("config reload") {
  TEST_CASE("the same settings make no change") {
    const Config a = parse("limits:\n  max_batch: 10\nqueues:\n  declare:\n    emails: {}\n");
    CHECK(compare_settings(a, a).empty());
    CHECK(changed_declarations(a, a).empty());
  }

  TEST_CASE("limits and the log level apply at once, and are shown as they are written") {
    const Config running = parse("");
    const Config next = parse(
        "server:\n  log_level: debug\n  shutdown_timeout: 90s\nlimits:\n  max_batch: 10\n"
        "  max_line_bytes: 64KiB\n  idle_timeout: 2m\n");
    const auto changes = compare_settings(running, next);
    REQUIRE(changes.size() == 5);
    const SettingChange* batch = find_change(changes, "limits.max_batch");
    REQUIRE(batch != nullptr);
    CHECK(batch->before == "1000");
    CHECK(batch->after == "10");
    CHECK_FALSE(batch->needs_restart);
    const SettingChange* line = find_change(changes, "limits.max_line_bytes");
    REQUIRE(line != nullptr);
    CHECK(line->before == "1MiB");
    CHECK(line->after == "64KiB");
    const SettingChange* idle = find_change(changes, "limits.idle_timeout");
    REQUIRE(idle != nullptr);
    CHECK(idle->before == "0");
    CHECK(idle->after == "2m");
    CHECK(find_change(changes, "server.shutdown_timeout")->after == "90s");
    CHECK(find_change(changes, "server.log_level")->after == "debug");

    Config live = running;
    take_live_settings(live, next);
    CHECK(live.max_batch == 10);
    CHECK(live.max_line_bytes == 64 * 1024);
    CHECK(live.idle_timeout_ms == 120'000);
    CHECK(live.log_level == LogLevel::kDebug);
    CHECK(live.shutdown_timeout_ms == 90'000);
    CHECK(compare_settings(live, next).empty());
  }

  TEST_CASE("what the listeners and the log were opened with waits for a restart") {
    const Config running = parse("");
    const Config next = parse(
        "server:\n  port: 9000\n  data_dir: /elsewhere\nwal:\n  fsync: never\n"
        "  segment_bytes: 2MiB\n  compaction_ratio: 4\nmetrics:\n  listen: 127.0.0.1:9108\n");
    const auto changes = compare_settings(running, next);
    for (const std::string key : {"server.port", "server.data_dir", "wal.fsync",
                                  "wal.segment_bytes", "wal.compaction_ratio", "metrics.listen"}) {
      INFO(key);
      const SettingChange* c = find_change(changes, key);
      REQUIRE(c != nullptr);
      CHECK(c->needs_restart);
    }
    CHECK(find_change(changes, "wal.fsync")->before == "always");
    CHECK(find_change(changes, "wal.fsync")->after == "never");
    CHECK(find_change(changes, "metrics.listen")->before == "(off)");
    CHECK(find_change(changes, "metrics.listen")->after == "127.0.0.1:9108");
    CHECK(changes.size() == 6);  // metrics.listen's host and port are one key

    Config live = running;
    take_live_settings(live, next);
    CHECK(live.port == running.port);
    CHECK(live.data_dir == running.data_dir);
    CHECK(live.fsync == running.fsync);
    CHECK(live.segment_bytes == running.segment_bytes);
    CHECK(live.compaction_ratio == running.compaction_ratio);
    CHECK_FALSE(live.metrics_enabled());
  }

  TEST_CASE("a new password applies at once, but turning one on or off waits for a restart") {
    const Config open = parse("");
    const Config first = parse("auth:\n  password: first-secret\n");
    const Config second = parse("auth:\n  password: second-secret\n");

    auto changes = compare_settings(first, second);
    REQUIRE(changes.size() == 1);
    CHECK(changes[0].key == "auth.password");
    CHECK(changes[0].before == "set");  // never the password itself
    CHECK(changes[0].after == "a new one");
    CHECK_FALSE(changes[0].needs_restart);
    Config live = first;
    take_live_settings(live, second);
    CHECK(live.password == "second-secret");

    // Connections already open were let in without one.
    changes = compare_settings(open, first);
    REQUIRE(changes.size() == 1);
    CHECK(changes[0].before == "empty");
    CHECK(changes[0].needs_restart);
    live = open;
    take_live_settings(live, first);
    CHECK(live.password.empty());

    changes = compare_settings(first, open);
    REQUIRE(changes.size() == 1);
    CHECK(changes[0].needs_restart);
    live = first;
    take_live_settings(live, open);
    CHECK(live.password == "first-secret");
  }

  TEST_CASE("the metrics token applies at once, and is never shown") {
    const Config running = parse("metrics:\n  listen: 127.0.0.1:9108\n");
    const Config next = parse("metrics:\n  listen: 127.0.0.1:9108\n  token: scrape-secret\n");
    const auto changes = compare_settings(running, next);
    REQUIRE(changes.size() == 1);
    CHECK(changes[0].key == "metrics.token");
    CHECK(changes[0].after == "set");
    CHECK_FALSE(changes[0].needs_restart);
    Config live = running;
    take_live_settings(live, next);
    CHECK(live.metrics_token == "scrape-secret");
  }

  TEST_CASE("queue defaults are compared key by key") {
    const Config running = parse("");
    const Config next = parse("queues:\n  defaults:\n    max_attempts: 5\n    ack_timeout: 1m\n");
    const auto changes = compare_settings(running, next);
    REQUIRE(changes.size() == 2);
    const SettingChange* attempts = find_change(changes, "queues.defaults.max_attempts");
    REQUIRE(attempts != nullptr);
    CHECK(attempts->before == "0");
    CHECK(attempts->after == "5");
    CHECK_FALSE(attempts->needs_restart);
    REQUIRE(find_change(changes, "queues.defaults.ack_timeout") != nullptr);
    Config live = running;
    take_live_settings(live, next);
    CHECK(live.queue_defaults.max_attempts == 5);
    CHECK(live.queue_defaults.ack_timeout_ms == 60'000);
  }

  TEST_CASE("declared queues: new and changed ones are listed, unchanged and removed ones not") {
    const Config running = parse(
        "queues:\n  declare:\n    emails:\n      max_attempts: 5\n    reports: {}\n"
        "    gone: {}\n");
    const Config next = parse(
        "queues:\n  declare:\n    emails:\n      max_attempts: 7\n    reports: {}\n"
        "    fresh:\n      schedules:\n        tick: {every: 1m, payload: ping}\n");
    const auto declared = changed_declarations(running, next);
    REQUIRE(declared.size() == 2);
    CHECK(declared[0].name == "emails");
    CHECK(declared[1].name == "fresh");
    REQUIRE(declared[1].schedules.size() == 1);
    CHECK(declared[1].schedules[0].every_ms == 60'000);

    const auto changes = compare_settings(running, next);
    REQUIRE(changes.size() == 2);
    CHECK(find_change(changes, "queues.declare.emails") != nullptr);
    CHECK(find_change(changes, "queues.declare.fresh") != nullptr);

    // A schedule's payload alone is a change of its queue's declaration.
    const Config payload = parse(
        "queues:\n  declare:\n    fresh:\n      schedules:\n        tick: {every: 1m, payload: "
        "pong}\n");
    const Config before_payload = parse(
        "queues:\n  declare:\n    fresh:\n      schedules:\n        tick: {every: 1m, payload: "
        "ping}\n");
    CHECK(changed_declarations(before_payload, payload).size() == 1);
  }

  TEST_CASE("a declaration written another way is no change") {
    const Config a = parse(
        "queues:\n  declare:\n    emails:\n      max_attempts: 5\n      ack_timeout: 30s\n"
        "      schedules:\n        a: {every: 1m, payload: x}\n        b: {every: 2m, payload: "
        "y}\n");
    const Config b = parse(
        "queues:\n  declare:\n    emails:\n      ack_timeout: 30000ms\n      max_attempts: 5\n"
        "      schedules:\n        b: {every: 2m, payload: y}\n        a: {every: 60s, payload: "
        "x}\n");
    CHECK(changed_declarations(a, b).empty());
    CHECK(compare_settings(a, b).empty());
    // A key no longer declared is a change (it is not reset, but it is said).
    const Config c = parse(
        "queues:\n  declare:\n    emails:\n      max_attempts: 5\n"
        "      schedules:\n        a: {every: 1m, payload: x}\n        b: {every: 2m, payload: "
        "y}\n");
    CHECK(changed_declarations(a, c).size() == 1);
  }

  TEST_CASE("TLS files apply at once only while a TLS listener runs before and after") {
    const Config on = parse("tls:\n  port: 0\n  cert_file: a.pem\n  key_file: a.key\n");
    const Config renewed = parse("tls:\n  port: 0\n  cert_file: b.pem\n  key_file: b.key\n");
    const Config off = parse("");
    CHECK_FALSE(find_change(compare_settings(on, renewed), "tls.cert_file")->needs_restart);
    CHECK(find_change(compare_settings(on, off), "tls.cert_file")->needs_restart);
    CHECK(find_change(compare_settings(off, on), "tls.cert_file")->needs_restart);
    Config live = on;
    take_live_settings(live, off);
    CHECK(live.tls_cert_file == "a.pem");  // the running listener keeps its files
  }

  TEST_CASE("the metrics token waits for a restart when no endpoint runs") {
    const Config running = parse("");
    const Config next = parse("metrics:\n  listen: 127.0.0.1:9108\n  token: scrape-secret\n");
    const auto changes = compare_settings(running, next);
    const SettingChange* token = find_change(changes, "metrics.token");
    REQUIRE(token != nullptr);
    CHECK(token->needs_restart);
    CHECK(token->after == "set");
    Config live = running;
    take_live_settings(live, next);
    CHECK(live.metrics_token.empty());
  }

  TEST_CASE("a setting a flag or the environment overrides is named in a note, its value not") {
    char path[] = "/tmp/tq-config-source-XXXXXX";
    const int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);  // written below by name
    std::ofstream(path) << "server:\n  port: 9000\n  log_level: warn\n"
                           "auth:\n  password_env: TQ_TEST_SOURCE_PW\n  password: in-the-file\n";
    REQUIRE(setenv("TQ_TEST_SOURCE_PW", "from-the-env", 1) == 0);
    ConfigSource source;
    source.config_path = path;
    source.port = 9001;
    source.log_level = "warn";  // the same as the file: nothing to say
    ConfigResult read = read_config(source);
    unsetenv("TQ_TEST_SOURCE_PW");
    std::remove(path);
    REQUIRE_MESSAGE(read.config, read.error);
    CHECK(read.config->port == 9001);
    CHECK(read.config->password == "from-the-env");
    REQUIRE(read.notes.size() == 2);
    CHECK(read.notes[0] == "server.port in " + std::string(path) + " is not used: --port wins");
    CHECK(read.notes[1].rfind("auth.password in " + std::string(path) +
                                  " is not used: $TQ_TEST_SOURCE_PW is set, and wins",
                              0) == 0);
    for (const std::string& note : read.notes) {
      CHECK(note.find("in-the-file") == std::string::npos);
      CHECK(note.find("from-the-env") == std::string::npos);
    }
  }

  TEST_CASE(
      "--data-dir over the shipped ./data is said nothing of - over another directory it is") {
    // The systemd unit passes --data-dir and installs config.yaml as it
    // is: a note at every start and reload would teach people to skip them.
    char path[] = "/tmp/tq-config-source-XXXXXX";
    const int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    ConfigSource source;
    source.config_path = path;
    source.data_dir = "/var/lib/tq";
    std::ofstream(path) << "server:\n  data_dir: ./data\n";
    ConfigResult shipped = read_config(source);
    REQUIRE_MESSAGE(shipped.config, shipped.error);
    CHECK(shipped.config->data_dir == "/var/lib/tq");
    CHECK(shipped.notes.empty());
    std::ofstream(path) << "server:\n  data_dir: /srv/tq\n";
    ConfigResult own = read_config(source);
    std::remove(path);
    REQUIRE_MESSAGE(own.config, own.error);
    REQUIRE(own.notes.size() == 1);
    CHECK(own.notes[0] ==
          "server.data_dir in " + std::string(path) + " is not used: --data-dir wins");
  }
}

}  // namespace config_reload_test
