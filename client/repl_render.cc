#include "client/repl_render.h"

#include <algorithm>
#include <charconv>
#include <ctime>
#include <optional>

#include "client/duration.h"
#include "client/request_line.h"
#include "protocol/command_table.h"

namespace tq::client {
namespace {

// SGR codes; applied only when the style asks for colour.
constexpr std::string_view kGreen = "\x1b[32m";
constexpr std::string_view kRed = "\x1b[1;31m";
constexpr std::string_view kBold = "\x1b[1m";
constexpr std::string_view kDim = "\x1b[2m";
constexpr std::string_view kCyan = "\x1b[36m";
constexpr std::string_view kReset = "\x1b[0m";

std::string paint(std::string_view text, std::string_view colour, const RenderStyle& style) {
  if (!style.colour) return std::string(text);
  return std::string(colour) + std::string(text) + std::string(kReset);
}

std::string pad(std::string_view text, size_t width) {
  std::string s(text);
  if (s.size() < width) s.resize(width, ' ');
  return s;
}

std::string pad_left(std::string_view text, size_t width) {
  std::string s(text);
  if (s.size() < width) s.insert(0, width - s.size(), ' ');
  return s;
}

// "1795430011207" (Unix ms) as "2026-11-19T08:33:31Z"; the input when it is
// not a number.
std::string utc_time(std::string_view unix_ms) {
  int64_t ms = 0;
  auto [end, ec] = std::from_chars(unix_ms.data(), unix_ms.data() + unix_ms.size(), ms);
  if (ec != std::errc() || end != unix_ms.data() + unix_ms.size()) return std::string(unix_ms);
  std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The payload, indented under its job's header line. `escaped`: the server
// has already escaped its line breaks (DEQUEUE's one-line form), so its
// backslashes are shown as they are.
std::string payload_block(std::string_view payload, const RenderStyle& style,
                          bool escaped = false) {
  if (payload.empty()) return "  " + paint("(empty payload)", kDim, style) + "\n";
  std::string shown = printable(payload, 4096, !escaped);
  std::string out;
  size_t start = 0;
  while (start <= shown.size()) {
    size_t nl = shown.find('\n', start);
    if (nl == std::string::npos) nl = shown.size();
    out += "  " + shown.substr(start, nl - start) + "\n";
    start = nl + 1;
  }
  return out;
}

std::string job_block(const Job& job, const RenderStyle& style) {
  std::string head = paint("job " + std::to_string(job.id), kBold, style);
  std::string fields;
  for (const auto& [name, value] : job.fields) {
    bool is_time = name == "at" || name == "expires";
    fields += " " + name + "=" + (is_time ? utc_time(value) : value);
  }
  if (!fields.empty()) head += " " + paint(fields, kDim, style);
  return head + "\n" + payload_block(job.payload, style);
}

// DEQUEUE's one-line form: "OK <id> <payload>".
std::string one_line_job(const std::string& text, const RenderStyle& style) {
  size_t space = text.find(' ');
  std::string id = text.substr(0, space);
  std::string payload = space == std::string::npos ? "" : text.substr(space + 1);
  return paint("job " + id, kBold, style) + "\n" + payload_block(payload, style, true);
}

// CONFIG's spans, which the server gives in milliseconds ("3600000ms"), in
// the largest whole unit ("1h"); anything else as it came, and the one
// setting whose value is a queue name (which may be "60000ms") too.
std::string readable_setting(std::string_view name, const std::string& value) {
  // Only what says "ms": a bare number (max_attempts 5) would read as seconds.
  if (name == "dead_letter_queue" || !std::string_view(value).ends_with("ms")) return value;
  const std::optional<milliseconds> ms = parse_duration(value);
  return ms ? readable_duration(*ms) : value;
}

// "<name> <value>" lines as two aligned columns.
std::string columns(const std::vector<std::string>& lines, const RenderStyle& style,
                    bool readable_spans = false) {
  size_t width = 0;
  for (const auto& line : lines)
    width = std::max(width, line.find(' ') == std::string::npos ? line.size() : line.find(' '));
  std::string out;
  for (const auto& line : lines) {
    size_t space = line.find(' ');
    std::string name = line.substr(0, space);
    std::string value = space == std::string::npos ? "" : line.substr(space + 1);
    if (readable_spans) value = readable_setting(name, value);
    out += paint(pad(name, width), kCyan, style) + "  " + value + "\n";
  }
  return out;
}

// A cell that reads as a number ("12", or a duration in seconds, "35s"): its
// column is aligned to the right.
bool numeric_cell(std::string_view cell) {
  if (!cell.empty() && cell.back() == 's') cell.remove_suffix(1);
  return !cell.empty() &&
         std::all_of(cell.begin(), cell.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Lines of "key=value" words as a table with the keys as its header. A first
// word without '=' (QUEUES' queue name) is a column headed `first`, aligned
// to the left; so are other columns unless they hold only numbers. Columns
// are by key, in the order they first appear, so a key only some lines have
// (CLIENTS' tls=) lines up under its own header; a word without '=' after
// the first (CLIENTS' admin) is a column of its own, "yes" where it stands.
std::string key_value_table(const std::vector<std::string>& lines, std::string_view first,
                            const RenderStyle& style) {
  std::vector<std::string> keys;  // "" for the leading bare word
  std::vector<std::string> headers;
  std::vector<bool> right;  // per column: aligned to the right
  std::vector<std::vector<std::pair<size_t, std::string>>> cells;  // per line: column, text
  auto column_of = [&](const std::string& key, std::string header, bool numeric) {
    for (size_t c = 0; c < keys.size(); ++c) {
      if (keys[c] == key) return c;
    }
    keys.push_back(key);
    headers.push_back(std::move(header));
    right.push_back(numeric);
    return keys.size() - 1;
  };
  for (const auto& line : lines) {
    std::vector<std::pair<size_t, std::string>> row;
    size_t start = 0;
    while (start < line.size()) {
      size_t space = line.find(' ', start);
      if (space == std::string::npos) space = line.size();
      std::string word = line.substr(start, space - start);
      size_t eq = word.find('=');
      if (eq == std::string::npos && start == 0) {
        row.emplace_back(column_of("", std::string(first), false), printable(word));
      } else if (eq == std::string::npos) {
        row.emplace_back(column_of(word, printable(word), false), "yes");
      } else {
        std::string key = word.substr(0, eq);
        row.emplace_back(column_of(key, printable(key), true), printable(word.substr(eq + 1)));
      }
      start = space + 1;
    }
    cells.push_back(std::move(row));
  }
  std::vector<std::vector<std::string>> rows;
  std::vector<size_t> widths(headers.size());
  for (size_t c = 0; c < headers.size(); ++c) widths[c] = headers[c].size();
  for (const auto& line : cells) {
    std::vector<std::string> row(headers.size());
    for (const auto& [c, text] : line) {
      row[c] = text;
      widths[c] = std::max(widths[c], text.size());
      right[c] = right[c] && numeric_cell(text);
    }
    rows.push_back(std::move(row));
  }
  auto format_row = [&](const std::vector<std::string>& row) {
    std::string out;
    for (size_t c = 0; c < row.size(); ++c) {
      if (c > 0) out += "  ";
      out += right[c] ? pad_left(row[c], widths[c]) : pad(row[c], widths[c]);
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
  };
  std::string out = paint(format_row(headers), kCyan, style) + "\n";
  for (const auto& row : rows) out += format_row(row) + "\n";
  return out;
}

// A SCHEDULE line ("nightly next=1795430011207 fired=3 ... cron=0 3 * * *")
// with its next= in UTC, as PEEK shows at=; the rest as it came (the cron
// expression at the end has spaces of its own, so it is no table).
std::string schedule_line(const std::string& line) {
  const size_t at = line.find(" next=");
  if (at == std::string::npos) return printable(line);
  const size_t value = at + 6;
  const size_t end = std::min(line.find(' ', value), line.size());
  return printable(line.substr(0, value) +
                   utc_time(std::string_view(line).substr(value, end - value)) + line.substr(end));
}

// QUEUES lines ("emails ready=3 delayed=1 ...") as a table with a header.
std::string queue_table(const std::vector<std::string>& lines, const RenderStyle& style) {
  if (lines.empty()) return paint("(no queues)", kDim, style) + "\n";
  return key_value_table(lines, "queue", style);
}

// A C0 control other than newline and tab, or DEL.
bool control_byte(unsigned char c) {
  return (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f;
}

// A C1 control (U+0080-U+009F) in UTF-8 starts at bytes[i]: a terminal acts
// on them (U+009B starts an escape sequence) as on the C0 ones.
bool c1_control_at(std::string_view bytes, size_t i) {
  return static_cast<unsigned char>(bytes[i]) == 0xc2 && i + 1 < bytes.size() &&
         (static_cast<unsigned char>(bytes[i + 1]) & 0xe0) == 0x80;
}

}  // namespace

std::string printable(std::string_view bytes, size_t max_bytes, bool escape_backslash) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  const size_t shown = std::min(bytes.size(), max_bytes);
  // Backslashes are doubled only when a byte was escaped, or the text holds
  // what reads as an escape (\x and two hex digits), so that \x07 the text
  // and \x07 the bell always look different; other text (a Windows path, a
  // regex) is shown as it is, as DEQUEUE's one line shows it.
  if (escape_backslash) {
    auto hex = [](char c) {
      return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    };
    bool ambiguous = false;
    for (size_t i = 0; i < shown && !ambiguous; ++i) {
      ambiguous = control_byte(static_cast<unsigned char>(bytes[i])) ||
                  c1_control_at(bytes.substr(0, shown), i) ||
                  (bytes[i] == '\\' && i + 3 < shown && bytes[i + 1] == 'x' && hex(bytes[i + 2]) &&
                   hex(bytes[i + 3]));
    }
    escape_backslash = ambiguous;
  }
  for (size_t i = 0; i < shown; ++i) {
    unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (c == '\\' && escape_backslash) {
      out += "\\\\";
    } else if (control_byte(c)) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else if (c1_control_at(bytes.substr(0, shown), i)) {
      const auto next = static_cast<unsigned char>(bytes[++i]);
      out += "\\xc2\\x";
      out += kHex[next >> 4];
      out += kHex[next & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (shown < bytes.size()) {
    out += "... (" + std::to_string(bytes.size() - shown) + " more bytes; tq --raw shows all)";
  }
  return out;
}

std::string render_reply(const std::vector<std::string_view>& words, const Reply& reply,
                         const RenderStyle& style) {
  if (style.raw) return reply.raw;
  const std::string verb = words.empty() ? "" : to_upper(words[0]);
  switch (reply.shape) {
    case protocol::ReplyShape::kLine:
      if (verb == "DEQUEUE") return one_line_job(reply.text, style);
      return paint("OK", kGreen, style) + (reply.text.empty() ? "" : " " + printable(reply.text)) +
             "\n";
    case protocol::ReplyShape::kCountedLines:
      if (verb == "QUEUES") return queue_table(reply.lines, style);
      if (verb == "CLIENTS") return key_value_table(reply.lines, "", style);
      if (verb == "STATS") return columns(reply.lines, style);
      if (verb == "CONFIG") return columns(reply.lines, style, true);
      // A queue without schedules: said, rather than nothing at all, which
      // reads as a command that did not run.
      if (verb == "SCHEDULE" && reply.lines.empty()) {
        return paint("(no schedules)", kDim, style) + "\n";
      }
      {
        std::string out;
        for (const auto& line : reply.lines)
          out += (verb == "SCHEDULE" ? schedule_line(line) : printable(line)) + "\n";
        return out;
      }
    case protocol::ReplyShape::kJobs: {
      if (reply.jobs.empty()) return paint("(no jobs)", kDim, style) + "\n";
      std::string out;
      for (const Job& job : reply.jobs) out += job_block(job, style);
      return out;
    }
  }
  return reply.raw;
}

std::string render_server_error(const Error& error, const RenderStyle& style) {
  std::string head = "ERROR " + error.code;
  std::string rest = error.message.empty() ? "" : " " + printable(error.message);
  return paint(head, kRed, style) + rest + "\n";
}

std::string render_no_jobs(const Error& empty, const RenderStyle& style) {
  if (style.raw) return render_server_error(empty, style);
  std::string why = empty.message.empty() ? "" : ": " + printable(empty.message);
  return paint("(no jobs" + why + ")", kDim, style) + "\n";
}

}  // namespace tq::client
