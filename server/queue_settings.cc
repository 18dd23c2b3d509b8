#include "server/queue_settings.h"

#include <charconv>
#include <cstdlib>

#include "server/config.h"
#include "server/engine/engine.h"

namespace tq::server {
namespace {

constexpr int64_t kMaxDurationMs = engine::kMaxSettingDurationMs;

std::optional<int64_t> duration(std::string_view value) {
  auto ms = parse_duration_ms(std::string(value), 1000);
  if (!ms || *ms > kMaxDurationMs) return std::nullopt;
  return ms;
}

std::optional<uint64_t> whole(std::string_view value, uint64_t max) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || end != value.data() + value.size() || v > max) return std::nullopt;
  return v;
}

// The log keeps these in thousandths: a finer value would not survive a
// restart as given, so it is refused rather than rounded behind your back.
std::optional<double> fraction(std::string_view value, double min, double max) {
  const size_t point = value.find('.');
  if (point != std::string_view::npos && value.size() - point - 1 > 3) return std::nullopt;
  auto v = parse_decimal(value);
  if (!v || *v < min || *v > max) return std::nullopt;
  return v;
}

std::string ms(int64_t v) { return std::to_string(v) + "ms"; }

std::string trimmed(double v) {
  std::string s = std::to_string(v);
  while (s.size() > 1 && s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

}  // namespace

const std::vector<std::string>& queue_setting_keys() {
  static const std::vector<std::string> keys = {
      "ack_timeout",    "max_attempts", "backoff_base",
      "backoff_factor", "backoff_max",  "backoff_jitter",
      "dedup_window",   "max_size",     "priority",
      "delay",          "ttl",          "ttl_dead_letter",
      "max_leased",     "rate_limit",   "rate_window",
      "dead_retention", "dead_max",     "dead_letter_queue"};
  return keys;
}

std::optional<std::string> apply_queue_setting(engine::QueueSettings& s, std::string_view key,
                                               std::string_view value) {
  auto bad = [&](const char* expected) {
    return std::string(key) + ": expected " + expected + ", got " +
           engine::quoted(value.substr(0, 64));
  };
  if (key == "ack_timeout") {
    auto v = duration(value);
    if (!v || *v < 1) return bad("a duration from 1ms to 30d, such as 30s or 500ms");
    s.ack_timeout_ms = *v;
  } else if (key == "max_attempts") {
    auto v = whole(value, 1'000'000);
    if (!v) return bad("a whole number up to 1000000 (0: no limit)");
    s.max_attempts = static_cast<uint32_t>(*v);
  } else if (key == "backoff_base") {
    auto v = duration(value);
    if (!v) return bad("a duration up to 30d, such as 1s (0: retry at once)");
    s.backoff_base_ms = *v;
  } else if (key == "backoff_factor") {
    auto v = fraction(value, 1.0, 100.0);
    if (!v) return bad("a number from 1 to 100, at most 3 decimals");
    s.backoff_factor = *v;
  } else if (key == "backoff_max") {
    auto v = duration(value);
    if (!v) return bad("a duration up to 30d, such as 10m");
    s.backoff_max_ms = *v;
  } else if (key == "backoff_jitter") {
    auto v = fraction(value, 0.0, 1.0);
    if (!v) return bad("a fraction from 0 to 1, at most 3 decimals");
    s.backoff_jitter = *v;
  } else if (key == "dedup_window") {
    auto v = duration(value);
    if (!v) return bad("a duration up to 30d, such as 5m");
    s.dedup_window_ms = *v;
  } else if (key == "max_size") {
    auto v = whole(value, UINT64_MAX);
    if (!v) return bad("a whole number (0: no limit)");
    s.max_size = *v;
  } else if (key == "priority") {
    int64_t v = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    if (ec != std::errc() || end != value.data() + value.size() || v < -1'000'000 || v > 1'000'000) {
      return bad("a whole number from -1000000 to 1000000");
    }
    s.priority = static_cast<int32_t>(v);
  } else if (key == "delay") {
    auto v = duration(value);
    if (!v) return bad("a duration up to 30d, such as 30s (0: jobs are ready when put)");
    s.delay_ms = *v;
  } else if (key == "ttl") {
    auto v = duration(value);
    if (!v) return bad("a duration up to 30d, such as 1h (0: jobs without a TTL never expire)");
    s.ttl_ms = *v;
  } else if (key == "ttl_dead_letter") {
    std::optional<bool> v = parse_bool(value);
    if (!v) return bad("true or false (yes/no, on/off and 1/0 too)");
    s.ttl_dead_letter = *v;
  } else if (key == "max_leased") {
    auto v = whole(value, engine::kMaxDeliveryLimit);
    if (!v) return bad("a whole number up to 1000000000 (0: no limit)");
    s.max_leased = *v;
  } else if (key == "rate_limit") {
    auto v = whole(value, engine::kMaxDeliveryLimit);
    if (!v)
      return bad("a whole number of deliveries per rate_window, up to 1000000000 (0: no limit)");
    s.rate_limit = *v;
  } else if (key == "rate_window") {
    auto v = duration(value);
    if (!v || *v < 1) return bad("a duration from 1ms to 30d, such as 1s or 1m");
    s.rate_window_ms = *v;
  } else if (key == "dead_retention") {
    auto v = duration(value);
    if (!v) return bad("a duration up to 30d, such as 7d (0: dead jobs are kept)");
    s.dead_retention_ms = *v;
  } else if (key == "dead_max") {
    auto v = whole(value, engine::kMaxDeliveryLimit);
    if (!v) return bad("a whole number up to 1000000000 (0: no limit)");
    s.dead_max = *v;
  } else if (key == "dead_letter_queue") {
    // "-" (as CONFIG lists it) or nothing: none. A queue named "-" cannot
    // be one; a name a queue can have otherwise.
    if (value.empty() || value == "-") {
      s.dead_letter_queue.clear();
    } else if (engine::Engine::valid_queue_name(value)) {
      s.dead_letter_queue = std::string(value);
    } else {
      return bad("a queue name, or - for none");
    }
  } else {
    std::string keys;
    for (const auto& k : queue_setting_keys()) keys += (keys.empty() ? "" : ", ") + k;
    return "unknown setting " + engine::quoted(key.substr(0, 64)) + " (settings: " + keys + ")";
  }
  return std::nullopt;
}

std::vector<std::pair<std::string, std::string>> describe_queue_settings(
    const engine::QueueSettings& s) {
  return {
      {"ack_timeout", ms(s.ack_timeout_ms)},
      {"max_attempts", std::to_string(s.max_attempts)},
      {"backoff_base", ms(s.backoff_base_ms)},
      {"backoff_factor", trimmed(s.backoff_factor)},
      {"backoff_max", ms(s.backoff_max_ms)},
      {"backoff_jitter", trimmed(s.backoff_jitter)},
      {"dedup_window", ms(s.dedup_window_ms)},
      {"max_size", std::to_string(s.max_size)},
      {"priority", std::to_string(s.priority)},
      {"delay", ms(s.delay_ms)},
      {"ttl", ms(s.ttl_ms)},
      {"ttl_dead_letter", s.ttl_dead_letter ? "true" : "false"},
      {"max_leased", std::to_string(s.max_leased)},
      {"rate_limit", std::to_string(s.rate_limit)},
      {"rate_window", ms(s.rate_window_ms)},
      {"dead_retention", ms(s.dead_retention_ms)},
      {"dead_max", std::to_string(s.dead_max)},
      {"dead_letter_queue", s.dead_letter_queue.empty() ? "-" : s.dead_letter_queue},
  };
}

}  // namespace tq::server
