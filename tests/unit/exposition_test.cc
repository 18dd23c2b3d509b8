// The Prometheus text (server/exposition.h) and the one list of figures it
// shares with STATS (server/figures.h).
#include <doctest/doctest.h>

#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "server/engine/clock.h"
#include "server/engine/engine.h"
#include "server/exposition.h"
#include "server/figures.h"

namespace exposition_test {

using namespace tq;
using server::ExpositionBuilder;
using server::Figure;
using server::FigureKind;
using server::FigureUnit;

namespace {

Figure gauge(std::string_view name, uint64_t value, FigureUnit unit = FigureUnit::kNone) {
  Figure f;
  f.name = name;
  f.value = value;
  f.unit = unit;
  f.help = "help";
  return f;
}

Figure counter(std::string_view name, uint64_t value, FigureUnit unit = FigureUnit::kNone) {
  Figure f = gauge(name, value, unit);
  f.kind = FigureKind::kCounter;
  return f;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool valid_metric_name(const std::string& name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  for (char ch : name) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '_' || ch == ':';
    if (!ok) return false;
  }
  return true;
}

// Checks the text against the format's rules and returns the samples
// (name with labels -> value): every family has one HELP and one TYPE line
// before its samples, its samples are together, names are valid, counters
// end in _total, and the text ends in a newline.
std::map<std::string, std::string> parse_exposition(const std::string& text) {
  REQUIRE(!text.empty());
  CHECK(text.back() == '\n');
  std::map<std::string, std::string> samples;
  std::set<std::string> finished;  // families whose samples are over
  std::string family;              // the one whose header came last
  std::string type;
  bool helped = false;
  for (const std::string& line : lines_of(text)) {
    INFO(line);
    if (line.rfind("# HELP ", 0) == 0) {
      if (!family.empty()) finished.insert(family);
      family = line.substr(7, line.find(' ', 7) - 7);
      CHECK(valid_metric_name(family));
      CHECK(finished.count(family) == 0);  // one header per family
      helped = true;
      type.clear();
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      CHECK(helped);
      std::stringstream words(line.substr(7));
      std::string name;
      words >> name >> type;
      CHECK(name == family);
      CHECK((type == "gauge" || type == "counter" || type == "histogram"));
      if (type == "counter") CHECK(family.size() > 6);
      if (type == "counter") CHECK(family.substr(family.size() - 6) == "_total");
      continue;
    }
    REQUIRE(!type.empty());  // a sample only after its family's TYPE
    const size_t space = line.rfind(' ');
    REQUIRE(space != std::string::npos);
    const std::string series = line.substr(0, space);
    const std::string name = series.substr(0, series.find('{'));
    if (type == "histogram") {
      CHECK((name == family + "_bucket" || name == family + "_sum" || name == family + "_count"));
    } else {
      CHECK(name == family);
    }
    CHECK(samples.count(series) == 0);
    samples[series] = line.substr(space + 1);
  }
  return samples;
}

}  // namespace

TEST_SUITE("exposition") {
  TEST_CASE("label values and help text are escaped as the format says") {
    CHECK(server::escape_label_value("plain") == "plain");
    CHECK(server::escape_label_value("a\"b") == "a\\\"b");
    CHECK(server::escape_label_value("a\\b") == "a\\\\b");
    CHECK(server::escape_label_value("a\nb") == "a\\nb");
    CHECK(server::escape_help("a\\b\nc \"quoted\"") == "a\\\\b\\nc \"quoted\"");
  }

  TEST_CASE("names carry base units and counters end in _total") {
    CHECK(server::exposition_name(gauge("jobs_ready", 1), "tq_") == "tq_jobs_ready");
    CHECK(server::exposition_name(counter("connections_refused", 1), "tq_") ==
          "tq_connections_refused_total");
    CHECK(server::exposition_name(counter("jobs_acked_total", 1), "tq_") == "tq_jobs_acked_total");
    CHECK(server::exposition_name(counter("wal_fsync_us_total", 1, FigureUnit::kMicroseconds),
                                  "tq_") == "tq_wal_fsync_seconds_total");
    CHECK(server::exposition_name(gauge("loop_max_busy_us", 1, FigureUnit::kMicroseconds), "tq_") ==
          "tq_loop_max_busy_seconds");
    CHECK(server::exposition_name(gauge("ack_timeout_ms", 1, FigureUnit::kMilliseconds),
                                  "tq_queue_") == "tq_queue_ack_timeout_seconds");
    CHECK(server::exposition_name(gauge("loop_busy_pct", 1, FigureUnit::kTenthsPercent), "tq_") ==
          "tq_loop_busy_ratio");
    CHECK(server::exposition_name(gauge("wal_last_backup_at_ms", 1, FigureUnit::kMilliseconds),
                                  "tq_") == "tq_wal_last_backup_timestamp_seconds");
    CHECK(server::exposition_name(gauge("paused_until_ms", 1, FigureUnit::kMilliseconds),
                                  "tq_queue_") == "tq_queue_paused_until_timestamp_seconds");
  }

  TEST_CASE("values are converted to seconds and ratios exactly") {
    ExpositionBuilder b;
    b.add_server({
        gauge("jobs_ready", 18446744073709551615ull),
        counter("busy_us_total", 1500, FigureUnit::kMicroseconds),
        gauge("max_us", 3'000'000, FigureUnit::kMicroseconds),
        gauge("last_us", 7, FigureUnit::kMicroseconds),
        gauge("timeout_ms", 30'500, FigureUnit::kMilliseconds),
        gauge("busy_pct", 375, FigureUnit::kTenthsPercent),
        gauge("idle_pct", 0, FigureUnit::kTenthsPercent),
    });
    auto samples = parse_exposition(b.finish());
    CHECK(samples["tq_jobs_ready"] == "18446744073709551615");  // no rounding through a double
    CHECK(samples["tq_busy_seconds_total"] == "0.0015");
    CHECK(samples["tq_max_seconds"] == "3");
    CHECK(samples["tq_last_seconds"] == "0.000007");
    CHECK(samples["tq_timeout_seconds"] == "30.5");
    CHECK(samples["tq_busy_ratio"] == "0.375");
    CHECK(samples["tq_idle_ratio"] == "0");
  }

  TEST_CASE("a figure gets HELP and TYPE lines and a word becomes an info series") {
    Figure version;
    version.name = "version";
    version.kind = FigureKind::kText;
    version.text = "1.2\"3";
    version.help = "The version\nof tqd \\ here.";
    Figure policy = version;
    policy.name = "wal_fsync";
    policy.text = "always";
    policy.label = "policy";
    ExpositionBuilder b;
    b.add_server({version, policy, counter("commands_total", 4)});
    const std::string text = b.finish();
    CHECK(text ==
          "# HELP tq_version_info The version\\nof tqd \\\\ here.\n"
          "# TYPE tq_version_info gauge\n"
          "tq_version_info{version=\"1.2\\\"3\"} 1\n"
          "# HELP tq_wal_fsync_info The version\\nof tqd \\\\ here.\n"
          "# TYPE tq_wal_fsync_info gauge\n"
          "tq_wal_fsync_info{policy=\"always\"} 1\n"
          "# HELP tq_commands_total help\n"
          "# TYPE tq_commands_total counter\n"
          "tq_commands_total 4\n");
    parse_exposition(text);
  }

  TEST_CASE("figures of one set share a family told apart by a label") {
    Figure ack = counter("commands_ack", 3);
    ack.family = "commands_by_verb";
    ack.label = "verb";
    ack.label_value = "ack";
    Figure put = ack;
    put.name = "commands_put";
    put.label_value = "put";
    put.value = 5;
    ExpositionBuilder b;
    b.add_server({ack, put});
    const std::string text = b.finish();
    CHECK(text ==
          "# HELP tq_commands_by_verb_total help\n"
          "# TYPE tq_commands_by_verb_total counter\n"
          "tq_commands_by_verb_total{verb=\"ack\"} 3\n"
          "tq_commands_by_verb_total{verb=\"put\"} 5\n");
  }

  TEST_CASE("per-queue figures are families of their own with the queue as a label") {
    // Real queues never have such names (PROTOCOL.md), but the text must stay
    // well-formed whatever a label holds.
    const std::string odd = "we\"ird\\name\nx";
    ExpositionBuilder b;
    b.add_server({gauge("jobs_ready", 5)});
    b.add_queue("emails", {gauge("ready", 2), counter("acked_total", 1)});
    b.add_queue(odd, {gauge("ready", 3), counter("acked_total", 0)});
    const std::string text = b.finish();
    CHECK(text ==
          "# HELP tq_jobs_ready help\n"
          "# TYPE tq_jobs_ready gauge\n"
          "tq_jobs_ready 5\n"
          "# HELP tq_queue_ready help\n"
          "# TYPE tq_queue_ready gauge\n"
          "tq_queue_ready{queue=\"emails\"} 2\n"
          "tq_queue_ready{queue=\"we\\\"ird\\\\name\\nx\"} 3\n"
          "# HELP tq_queue_acked_total help\n"
          "# TYPE tq_queue_acked_total counter\n"
          "tq_queue_acked_total{queue=\"emails\"} 1\n"
          "tq_queue_acked_total{queue=\"we\\\"ird\\\\name\\nx\"} 0\n");
    parse_exposition(text);
  }

  TEST_CASE("a queue's waits are a histogram - cumulative buckets in seconds, +Inf, sum, count") {
    engine::WaitHistogram emails;
    for (int64_t ms : {0, 10, 11, 4'000'000}) emails.record(ms);
    engine::WaitHistogram orders;
    ExpositionBuilder b;
    b.add_queue("emails", {gauge("ready", 1)});
    b.add_queue("orders", {gauge("ready", 0)});
    b.add_queue_histogram("emails", "tq_queue_wait_seconds", "waits", emails);
    b.add_queue_histogram("orders", "tq_queue_wait_seconds", "waits", orders);
    const std::string text = b.finish();
    auto samples = parse_exposition(text);  // one header for both queues
    CHECK(text.find("# TYPE tq_queue_wait_seconds histogram\n") != std::string::npos);
    CHECK(samples["tq_queue_wait_seconds_bucket{queue=\"emails\",le=\"0.01\"}"] == "2");
    CHECK(samples["tq_queue_wait_seconds_bucket{queue=\"emails\",le=\"0.025\"}"] == "3");
    CHECK(samples["tq_queue_wait_seconds_bucket{queue=\"emails\",le=\"0.25\"}"] == "3");
    CHECK(samples["tq_queue_wait_seconds_bucket{queue=\"emails\",le=\"3600\"}"] == "3");
    CHECK(samples["tq_queue_wait_seconds_bucket{queue=\"emails\",le=\"+Inf\"}"] == "4");
    CHECK(samples["tq_queue_wait_seconds_sum{queue=\"emails\"}"] == "4000.021");
    CHECK(samples["tq_queue_wait_seconds_count{queue=\"emails\"}"] == "4");
    CHECK(samples["tq_queue_wait_seconds_count{queue=\"orders\"}"] == "0");
    CHECK(samples["tq_queue_wait_seconds_sum{queue=\"orders\"}"] == "0");
    // Every bound is there, in order, and the counts never go down.
    uint64_t last = 0;
    for (size_t i = 0; i < engine::WaitHistogram::kBoundsMs.size(); ++i) {
      std::string le = std::to_string(engine::WaitHistogram::kBoundsMs[i] / 1000.0);
      le.erase(le.find_last_not_of('0') + 1);
      if (le.back() == '.') le.pop_back();
      INFO(le);
      const std::string series = "tq_queue_wait_seconds_bucket{queue=\"emails\",le=\"" + le + "\"}";
      REQUIRE(samples.count(series) == 1);
      const uint64_t n = std::stoull(samples[series]);
      CHECK(n >= last);
      last = n;
    }
  }

  TEST_CASE("max_head_wait_ms is the longest head wait of the queues that are not paused") {
    engine::ManualClock clock;
    engine::Engine engine{clock, engine::EngineLimits{}, engine::QueueSettings{}};
    server::ServerStats stats;
    const server::FigureSources sources{engine, stats};
    auto max_wait = [&] {
      for (const Figure& f : server::server_figures(sources)) {
        if (f.name == "max_head_wait_ms") return f.value;
      }
      FAIL("no max_head_wait_ms");
      return uint64_t{0};
    };
    CHECK(max_wait() == 0);  // no queues
    for (const char* name : {"held", "behind", "fresh"}) REQUIRE(engine.create_queue(name).ok());
    REQUIRE(engine.enqueue("held", "x", {}).ok());
    clock.advance_ms(60'000);
    REQUIRE(engine.enqueue("behind", "x", {}).ok());
    clock.advance_ms(7'000);
    REQUIRE(engine.enqueue("fresh", "x", {}).ok());
    clock.advance_ms(500);
    CHECK(max_wait() == 67'500);
    REQUIRE(engine.set_paused("held", true).ok());  // waits on purpose: not counted
    CHECK(max_wait() == 7'500);
  }

  TEST_CASE("without queues there are no per-queue families") {
    ExpositionBuilder b;
    b.add_server({gauge("queues", 0)});
    CHECK(b.finish() == "# HELP tq_queues help\n# TYPE tq_queues gauge\ntq_queues 0\n");
  }

  TEST_CASE(
      "made in steps, a scrape is what one go makes - a queue dropped meanwhile is left out") {
    // A scrape of many queues is made a few at a time, a turn of the loop
    // each (16 queues a step at the least, fewer only at the end).
    engine::ManualClock clock;
    engine::Engine engine{clock, engine::EngineLimits{}, engine::QueueSettings{}};
    for (int i = 0; i < 100; ++i) REQUIRE(engine.create_queue("q" + std::to_string(1000 + i)).ok());
    server::ServerStats stats;
    const server::FigureSources sources{engine, stats};
    server::ExpositionInSteps steps;
    size_t calls = 1;
    while (!steps.step(sources, std::chrono::nanoseconds(0))) ++calls;
    CHECK(calls == 7);                         // 16 queues a step: 100 in 7
    // The process's RSS moves between the two, and its uptime can pass a
    // whole second: those two lines are left out.
    auto without_process_figures = [](std::string text) {
      for (const char* line_start : {"\ntq_memory_rss_bytes ", "\ntq_uptime_seconds "}) {
        const size_t at = text.find(line_start);
        REQUIRE(at != std::string::npos);
        text.erase(at, text.find('\n', at + 1) - at);
      }
      return text;
    };
    CHECK(without_process_figures(steps.finish()) ==
          without_process_figures(server::metrics_exposition(sources)));

    // Between steps: a queue dropped ahead of the cursor is not in the body,
    // one dropped behind it is (as it was); one made ahead of it is.
    server::ExpositionInSteps again;
    REQUIRE_FALSE(again.step(sources, std::chrono::nanoseconds(0)));  // q1000 .. q1015
    REQUIRE(engine.drop("q1005").ok());
    REQUIRE(engine.drop("q1050").ok());
    REQUIRE(engine.create_queue("q1099a").ok());
    while (!again.step(sources, std::chrono::nanoseconds(0))) {
    }
    const std::string text = again.finish();
    CHECK(text.find("queue=\"q1005\"") != std::string::npos);
    CHECK(text.find("queue=\"q1050\"") == std::string::npos);
    CHECK(text.find("queue=\"q1099a\"") != std::string::npos);
  }

  TEST_CASE("every STATS figure is in the exposition once, well-formed, in base units") {
    engine::ManualClock clock;
    engine::Engine engine{clock, engine::EngineLimits{}, engine::QueueSettings{}};
    REQUIRE(engine.create_queue("emails").ok());
    REQUIRE(engine.create_queue("orders.eu-1:x").ok());
    server::ServerStats stats;
    const server::FigureSources sources{engine, stats};
    const std::vector<Figure> figures = server::server_figures(sources);
    const std::string text = server::metrics_exposition(sources);
    auto samples = parse_exposition(text);

    std::set<std::string> stats_names;
    size_t expected_samples = 0;
    for (const Figure& f : figures) {
      INFO(f.name);
      CHECK(stats_names.insert(std::string(f.name)).second);  // STATS names are unique
      CHECK(!f.help.empty());
      const std::string name = server::exposition_name(f, "tq_");
      for (const std::string unit : {"_us", "_ms", "_pct"}) {
        CHECK(name.find(unit + "_") == std::string::npos);
        CHECK(name.compare(name.size() - unit.size(), unit.size(), unit) != 0);
      }
      ++expected_samples;
      bool found = false;
      for (const auto& [series, value] : samples) {
        if (series.substr(0, series.find('{')) == name) found = true;
      }
      CHECK(found);
    }
    const std::vector<Figure> per_queue =
        server::queue_figures(*engine.find_queue("emails"), clock.now_ms());
    for (const Figure& f : per_queue) {
      INFO(f.name);
      CHECK(!f.help.empty());
      const std::string name = server::exposition_name(f, "tq_queue_");
      CHECK(samples.count(name + "{queue=\"emails\"}") == 1);
      CHECK(samples.count(name + "{queue=\"orders.eu-1:x\"}") == 1);
    }
    // And each queue's wait histogram: a bucket per bound, +Inf, _sum, _count.
    const size_t histogram_samples = engine::WaitHistogram::kBoundsMs.size() + 3;
    CHECK(samples.count("tq_queue_wait_seconds_count{queue=\"emails\"}") == 1);
    // No sample that no figure accounts for, and none missing.
    CHECK(samples.size() == expected_samples + 2 * (per_queue.size() + histogram_samples));
    CHECK(samples["tq_queues"] == "2");
    CHECK(samples["tq_wal_enabled"] == "0");  // no log: no other wal figure
    CHECK(text.find("tq_wal_fsync") == std::string::npos);
  }

  TEST_CASE("a queue's HELP says what its figures count - expiry after a delivery, DROP not") {
    engine::ManualClock clock;
    engine::QueueSettings settings;
    settings.ack_timeout_ms = 1'000;
    engine::Engine engine{clock, engine::EngineLimits{}, settings};
    REQUIRE(engine.create_queue("q").ok());
    REQUIRE(engine.enqueue("q", "x", {.ttl_ms = 500}).ok());
    REQUIRE(engine.dequeue("q").ok());
    clock.advance_ms(1'000);  // the lease runs out after the TTL did
    engine.expire_due();
    const engine::Queue& q = *engine.find_queue("q");
    REQUIRE(q.counters.expired == 1);
    REQUIRE(q.counters.dequeued == 1);
    std::map<std::string, std::string> help;
    for (const Figure& f : server::queue_figures(q, clock.now_ms())) {
      help[std::string(f.name)] = std::string(f.help);
    }
    // The job expired after its delivery, so not "before delivery".
    CHECK(help["expired_total"].find("before delivery") == std::string::npos);
    CHECK(help["expired_total"].find("lease that ran out") != std::string::npos);
    // A dropped queue's figures are gone with it: they never count a DROP.
    CHECK(help["deleted_total"].find("DROP") == std::string::npos);
    // A firing is refused for a TTL its queue's delay outlasts too, not by a
    // limit alone (engine_schedules_test).
    CHECK(help["schedule_refused_total"].find("TTL") != std::string::npos);
  }

  TEST_CASE("STATS shows a figure's value as counted - one decimal for a percentage") {
    Figure pct = gauge("loop_busy_pct", 375, FigureUnit::kTenthsPercent);
    CHECK(server::stats_value(pct) == "37.5");
    pct.value = 1000;
    CHECK(server::stats_value(pct) == "100.0");
    CHECK(server::stats_value(gauge("wal_max_fsync_us", 1500, FigureUnit::kMicroseconds)) ==
          "1500");
    Figure word;
    word.kind = FigureKind::kText;
    word.text = "never";
    CHECK(server::stats_value(word) == "never");
  }
}

}  // namespace exposition_test
