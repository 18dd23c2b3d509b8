#include "client/request_line.h"

#include <charconv>
#include <string>

#include "protocol/command_table.h"

namespace tq::client {

std::string to_upper(std::string_view word) {
  std::string s(word);
  for (char& c : s) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return s;
}

std::optional<uint64_t> parse_u64(std::string_view text) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

Status check_line(std::string_view line) {
  if (line.find('\n') != std::string_view::npos) {
    return make_error(ErrorKind::kBadArgument,
                      "a request cannot contain a line break (a payload with line breaks goes "
                      "in a PUT body: printf 'a\\nb' | tq PUT <queue> 3)");
  }
  // A '\r' inside the line is the server's to judge (an ENQUEUE payload
  // keeps it); one at the end would be taken for half of a "\r\n" line end.
  if (!line.empty() && line.back() == '\r') {
    return make_error(ErrorKind::kBadArgument,
                      "a request cannot end with \\r: the server would read it as part of the "
                      "line end");
  }
  return Ok{};
}

Status check_word(std::string_view word, std::string_view what) {
  if (word.empty()) return make_error(ErrorKind::kBadArgument, std::string(what) + " is empty");
  for (unsigned char c : word) {
    if (c <= ' ' || c == 0x7f) {
      return make_error(ErrorKind::kBadArgument,
                        std::string(what) + " '" + std::string(word.substr(0, 64)) +
                            "' holds a space or a control character");
    }
  }
  return Ok{};
}

std::vector<std::string_view> split_words(std::string_view line) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) words.push_back(line.substr(start, i - start));
  }
  return words;
}

std::vector<std::string_view> split_commas(std::string_view text) {
  std::vector<std::string_view> parts;
  for (;;) {
    const size_t comma = text.find(',');
    parts.push_back(text.substr(0, comma));
    if (comma == std::string_view::npos) return parts;
    text.remove_prefix(comma + 1);
  }
}

Result<std::vector<std::string_view>> split_request(std::string_view line) {
  if (auto ok = check_line(line); !ok) return ok.error();
  return split_words(line);
}

milliseconds wait_argument(const std::vector<std::string_view>& args) {
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (protocol::equals_ignoring_case("WAIT", args[i]))
      return parse_duration(args[i + 1]).value_or(milliseconds(0));
  }
  return milliseconds(0);
}

}  // namespace tq::client
