#include "protocol/reply_reader.h"

#include <cstring>

namespace tq::protocol {

void ReplyReader::feed(std::string_view bytes) {
  if (pos_ > 0) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(bytes);
}

std::optional<std::string_view> ReplyReader::take_line() {
  const size_t from = pos_ + scanned_;
  const void* nl = std::memchr(buf_.data() + from, '\n', buf_.size() - from);
  if (nl == nullptr) {
    scanned_ = buf_.size() - pos_;
    return std::nullopt;
  }
  scanned_ = 0;
  size_t end = static_cast<size_t>(static_cast<const char*>(nl) - buf_.data());
  std::string_view line(buf_.data() + pos_, end - pos_);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  pos_ = end + 1;
  return line;
}

std::optional<std::string_view> ReplyReader::take_body(size_t n) {
  size_t avail = buf_.size() - pos_;
  // Not n + 1: a garbled length at the top of size_t would wrap to 0, and
  // the byte before the body (the header's line end) be taken for its end.
  if (avail <= n) return std::nullopt;
  const char* body = buf_.data() + pos_;
  size_t terminator = 0;
  if (body[n] == '\n') {
    terminator = 1;
  } else if (body[n] == '\r') {
    if (avail - n < 2) return std::nullopt;
    if (body[n + 1] == '\n') terminator = 2;
  }
  if (terminator == 0) {
    broken_ = true;
    return std::nullopt;
  }
  pos_ += n + terminator;
  scanned_ = 0;
  return std::string_view(body, n);
}

std::optional<ReplyLine> parse_reply_line(std::string_view line) {
  ReplyLine reply;
  if (line.substr(0, 2) == "OK" && (line.size() == 2 || line[2] == ' ')) {
    reply.ok = true;
    reply.text = line.size() > 3 ? line.substr(3) : std::string_view{};
    return reply;
  }
  if (line.substr(0, 5) == "ERROR" && (line.size() == 5 || line[5] == ' ')) {
    std::string_view rest = line.size() > 6 ? line.substr(6) : std::string_view{};
    size_t space = rest.find(' ');
    reply.code_name = rest.substr(0, space);
    reply.code = parse_error_code(reply.code_name);
    reply.text = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
    return reply;
  }
  return std::nullopt;
}

}  // namespace tq::protocol
