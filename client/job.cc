#include "client/job.h"

#include <charconv>

namespace tq::client {
namespace {

template <typename Int>
std::optional<Int> parse_int(std::string_view text) {
  Int v{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

// Takes the next space-separated word off the front of text.
std::string_view next_word(std::string_view& text) {
  size_t space = text.find(' ');
  std::string_view word = text.substr(0, space);
  text = space == std::string_view::npos ? std::string_view{} : text.substr(space + 1);
  return word;
}

// Copies a known field into its typed member; false when the value is bad.
bool apply_field(Job& job, std::string_view name, std::string_view value) {
  if (name == "queue") {
    job.queue = value;
  } else if (name == "attempts") {
    auto v = parse_int<uint32_t>(value);
    if (!v) return false;
    job.attempts = *v;
  } else if (name == "lease") {
    job.lease = parse_int<uint64_t>(value);
    if (!job.lease) return false;
  } else if (name == "state") {
    job.state = value;
  } else if (name == "priority") {
    auto v = parse_int<int32_t>(value);
    if (!v) return false;
    job.priority = *v;
  } else if (name == "at") {
    job.at_ms = parse_int<int64_t>(value);
    if (!job.at_ms) return false;
  } else if (name == "expires") {
    job.expires_ms = parse_int<int64_t>(value);
    if (!job.expires_ms) return false;
  } else if (name == "key") {
    job.key = value;
  } else if (name == "group") {
    job.group = value;
  } else if (name == "from") {
    job.from = value;
  } else if (name == "reason") {
    job.reason = value;
  }
  return true;  // a field we do not know yet stays in job.fields only
}

}  // namespace

std::string field(const Fields& fields, std::string_view name) {
  for (const auto& [key, value] : fields) {
    if (key == name) return value;
  }
  return {};
}

std::optional<JobHeader> parse_job_header(std::string_view line) {
  if (next_word(line) != "JOB") return std::nullopt;
  auto id = parse_int<uint64_t>(next_word(line));
  auto bytes = parse_int<size_t>(next_word(line));
  if (!id || !bytes) return std::nullopt;
  JobHeader header{Job{}, *bytes};
  header.job.id = *id;
  while (!line.empty()) {
    // reason= runs to the end of the line, spaces included.
    bool rest_of_line = line.substr(0, 7) == "reason=";
    std::string_view word = rest_of_line ? line : next_word(line);
    if (rest_of_line) line = {};
    size_t eq = word.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    std::string_view name = word.substr(0, eq);
    std::string_view value = word.substr(eq + 1);
    if (!apply_field(header.job, name, value)) return std::nullopt;
    header.job.fields.emplace_back(name, value);
  }
  return header;
}

}  // namespace tq::client
