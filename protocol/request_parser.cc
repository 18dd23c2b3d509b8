#include "protocol/request_parser.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

namespace tq::protocol {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t'; }

// Every request is split into words here, so a byte's class comes from a
// table: one load and one test a byte rather than two comparisons.
constexpr std::array<bool, 256> kSpaceByte = [] {
  std::array<bool, 256> table{};
  table[' '] = table['\t'] = true;
  return table;
}();

const char* skip_spaces(const char* p, const char* end) {
  while (p != end && kSpaceByte[static_cast<unsigned char>(*p)]) ++p;
  return p;
}

const char* skip_word(const char* p, const char* end) {
  while (p != end && !kSpaceByte[static_cast<unsigned char>(*p)]) ++p;
  return p;
}

// " (limits.max_line_bytes)" after a TOOBIG's figure, so the user knows
// what to raise; nothing when the parser was not told.
std::string setting_note(std::string_view setting) {
  return setting.empty() ? std::string() : " (" + std::string(setting) + ")";
}

bool is_blank(std::string_view line) {
  for (char c : line) {
    if (!is_space(c)) return false;
  }
  return true;
}

// A PUT's byte count: decimal digits and nothing else, so "+5", "-5", "0x5"
// and "5x" are not counts (the line is BADFORMAT, and nothing is skipped).
// Digits past UINT64_MAX are still a count, of a body too long for any
// limit: they saturate, so the line is TOOBIG and the body skipped.
std::optional<uint64_t> byte_count(std::string_view word) {
  if (word.empty()) return std::nullopt;
  uint64_t n = 0;
  for (char c : word) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = static_cast<uint64_t>(c - '0');
    n = n > (UINT64_MAX - digit) / 10 ? UINT64_MAX : n * 10 + digit;
  }
  return n;
}

std::string usage_error(const CommandSpec& spec) {
  std::string msg = "wrong number of arguments for ";
  msg += spec.name;
  msg += "; usage: ";
  msg += spec.usage;
  return msg;
}

}  // namespace

void RequestParser::feed(std::string_view bytes) {
  // Compact here and only here: views handed out by next() stay valid until
  // the caller feeds more.
  if (pos_ > 0) {
    buf_.erase(0, pos_);
    scan_ -= pos_;
    pos_ = 0;
  }
  buf_.append(bytes);
}

void RequestParser::release_consumed(size_t keep) {
  if (pos_ != buf_.size() || buf_.capacity() <= keep) return;
  std::string().swap(buf_);
  pos_ = 0;
  scan_ = 0;
}

RequestParser::Result RequestParser::fail(ErrorCode code, std::string message,
                                          const CommandSpec* spec) {
  error_.code = code;
  error_.message = std::move(message);
  error_.spec = spec;
  return Result::kError;
}

RequestParser::Result RequestParser::next() {
  for (;;) {
    const size_t size = buf_.size();
    switch (state_) {
      case State::kDiscardBytes: {
        size_t skip = std::min(size - pos_, discard_left_);
        pos_ += skip;
        scan_ = pos_;
        discard_left_ -= skip;
        if (discard_left_ > 0) return Result::kNeedMore;
        state_ = State::kDiscardLine;  // then the body's own line end
        continue;
      }
      case State::kDiscardLine: {
        const void* nl = std::memchr(buf_.data() + pos_, '\n', size - pos_);
        if (nl == nullptr) {
          pos_ = scan_ = size;
          return Result::kNeedMore;
        }
        pos_ = scan_ = static_cast<size_t>(static_cast<const char*>(nl) - buf_.data()) + 1;
        state_ = State::kLine;
        if (body_after_line_) {
          discard_left_ = *body_after_line_;
          body_after_line_.reset();
          state_ = State::kDiscardBytes;
        }
        continue;
      }
      case State::kBody:
        return finish_body();
      case State::kLine: {
        const void* nl = std::memchr(buf_.data() + scan_, '\n', size - scan_);
        if (nl == nullptr) {
          scan_ = size;
          // The limit is on the line without its end: a '\r' that came last
          // may be the first half of "\r\n", its '\n' in the next read.
          size_t arrived = size - pos_;
          if (arrived > 0 && buf_[size - 1] == '\r') --arrived;
          if (arrived > limits_.max_line_bytes) return overlong_line(std::string::npos);
          return Result::kNeedMore;
        }
        size_t consumed = static_cast<size_t>(static_cast<const char*>(nl) - buf_.data()) + 1 - pos_;
        size_t len = consumed - 1;
        if (len > 0 && buf_[pos_ + len - 1] == '\r') --len;
        if (len > limits_.max_line_bytes) return overlong_line(pos_ + consumed);
        if (is_blank(std::string_view(buf_.data() + pos_, len))) {
          pos_ = scan_ = pos_ + consumed;
          continue;  // empty lines are ignored, as a person at nc expects
        }
        return parse_line(len, consumed);
      }
    }
  }
}

RequestParser::Result RequestParser::overlong_line(size_t line_end) {
  // The words that matter (verb, queue, length) come first; a line this long
  // is long because of what follows them.
  constexpr size_t kHead = 4096;
  size_t arrived = buffered();
  if (line_end != std::string::npos) {
    arrived = line_end - pos_ - 1;  // without its line end
    if (arrived > 0 && buf_[pos_ + arrived - 1] == '\r') --arrived;
  }
  const bool cut = line_end == std::string::npos || arrived > kHead;
  const std::optional<uint64_t> body =
      declared_body(std::string_view(buf_.data() + pos_, std::min(arrived, kHead)), cut);
  fail(ErrorCode::kTooBig, "line exceeds " + std::to_string(limits_.max_line_bytes) + " bytes" +
                               setting_note(limits_.line_setting));
  if (line_end == std::string::npos) {
    pos_ = scan_ = buf_.size();
    state_ = State::kDiscardLine;
    body_after_line_ = body;
    if (body) say_body_skipped(*body);
  } else {
    pos_ = scan_ = line_end;
    if (body) skip_body(*body);
  }
  return Result::kError;
}

void RequestParser::skip_body(uint64_t bytes) {
  discard_left_ = bytes;
  state_ = State::kDiscardBytes;
  say_body_skipped(bytes);
}

void RequestParser::say_body_skipped(uint64_t bytes) {
  // Said, because nothing answers those bytes: a person who typed a wrong
  // count into nc would otherwise see every later line go unanswered.
  if (bytes == 0) return;
  if (bytes == UINT64_MAX) {
    // The count saturates there (byte_count): past what 64 bits hold, its
    // number is not the client's, and no connection lives to send that much.
    error_.message +=
        "; its byte count is 2^64 - 1 or more, so every byte that follows is read as its body and "
        "dropped: reconnect";
    return;
  }
  error_.message += "; the " + std::to_string(bytes) +
                    (bytes == 1 ? " byte that follows is" : " bytes that follow are") +
                    " read as its body and dropped";
}

std::optional<uint64_t> RequestParser::declared_body(std::string_view line, bool cut) const {
  size_t i = 0;
  auto word = [&]() {
    while (i < line.size() && is_space(line[i])) ++i;
    const size_t start = i;
    while (i < line.size() && !is_space(line[i])) ++i;
    if (cut && i == line.size()) return std::string_view{};  // it may go on
    return line.substr(start, i - start);
  };
  const CommandSpec* spec = find_command(word());
  if (spec == nullptr || spec->body_length_arg < 0) return std::nullopt;
  for (int skipped = 0; skipped < spec->body_length_arg; ++skipped) word();
  return byte_count(word());
}

RequestParser::Result RequestParser::parse_line(size_t line_len, size_t consumed) {
  std::string_view line(buf_.data() + pos_, line_len);
  if (!tokenize(line)) {
    pos_ = scan_ = pos_ + consumed;
    if (auto body = declared_body(line, false)) skip_body(*body);
    return Result::kError;
  }
  const CommandSpec& spec = *request_.spec;
  if (spec.body_length_arg < 0 ||
      static_cast<size_t>(spec.body_length_arg) >= request_.args.size()) {
    pos_ = scan_ = pos_ + consumed;
    request_.body = {};
    return Result::kRequest;
  }

  const std::optional<uint64_t> count =
      byte_count(request_.args[static_cast<size_t>(spec.body_length_arg)]);
  if (!count) {
    pos_ = scan_ = pos_ + consumed;
    return fail(ErrorCode::kBadFormat,
                "body length must be a number of bytes; usage: " + std::string(spec.usage), &spec);
  }
  const uint64_t body_len = *count;
  if (body_len > limits_.max_body_bytes) {
    // Skip the body the client is about to send, so its bytes are not taken
    // for commands (beanstalkd does the same for JOB_TOO_BIG).
    pos_ = scan_ = pos_ + consumed;
    fail(ErrorCode::kTooBig, "payload exceeds " + std::to_string(limits_.max_body_bytes) +
                                 " bytes" + setting_note(limits_.body_setting));
    skip_body(body_len);
    return Result::kError;
  }
  line_len_ = line_len;
  line_total_ = consumed;
  body_len_ = body_len;
  state_ = State::kBody;
  return finish_body();
}

RequestParser::Result RequestParser::finish_body() {
  const size_t avail = buf_.size() - pos_;
  const size_t need = line_total_ + body_len_;
  if (avail < need + 1) return Result::kNeedMore;
  const char* body = buf_.data() + pos_ + line_total_;
  size_t terminator = 0;
  if (body[body_len_] == '\n') {
    terminator = 1;
  } else if (body[body_len_] == '\r') {
    if (avail < need + 2) return Result::kNeedMore;
    if (body[body_len_ + 1] == '\n') terminator = 2;
  }
  if (terminator == 0) {
    // The length did not match what was sent: skip to the next line end and
    // resynchronise there.
    pos_ = scan_ = pos_ + need;
    state_ = State::kDiscardLine;
    return fail(ErrorCode::kBadFormat, "the " + std::to_string(body_len_) +
                                           "-byte body must be followed by a line end");
  }
  // The line was tokenized when it arrived, but feed() may have moved the
  // buffer since: tokenize again (it succeeded once, it succeeds again).
  tokenize(std::string_view(buf_.data() + pos_, line_len_));
  request_.body = std::string_view(body, body_len_);
  pos_ = scan_ = pos_ + need + terminator;
  state_ = State::kLine;
  return Result::kRequest;
}

bool RequestParser::unanswered_request() const {
  if (state_ == State::kBody) return true;
  if (state_ != State::kLine) return false;
  return std::any_of(buf_.begin() + static_cast<ptrdiff_t>(pos_), buf_.end(),
                     [](char c) { return c != ' ' && c != '\t' && c != '\r' && c != '\n'; });
}

bool RequestParser::tokenize(std::string_view line) {
  const char* p = line.data();
  const char* const end = p + line.size();
  p = skip_spaces(p, end);
  const char* word_end = skip_word(p, end);
  const std::string_view verb(p, static_cast<size_t>(word_end - p));

  const CommandSpec* spec = find_command(verb);
  if (spec == nullptr) {
    std::string msg = "unknown command '";
    append_escaped(msg, verb, 32);
    msg += "'; HELP lists the commands";
    fail(ErrorCode::kUnknown, std::move(msg));
    return false;
  }
  request_.spec = spec;
  request_.args.clear();
  const size_t max_args = spec->max_args >= 0 ? static_cast<size_t>(spec->max_args) : SIZE_MAX;
  // The word that takes the rest of the line, spaces and all (a payload).
  const size_t rest_at = spec->has(kRestOfLine) ? max_args - 1 : SIZE_MAX;
  for (p = skip_spaces(word_end, end); p != end; p = skip_spaces(word_end, end)) {
    const size_t n = request_.args.size();
    if (n == max_args) {
      fail(ErrorCode::kBadFormat, usage_error(*spec), spec);
      return false;
    }
    word_end = n == rest_at ? end : skip_word(p, end);
    request_.args.emplace_back(p, static_cast<size_t>(word_end - p));
  }
  if (request_.args.size() < static_cast<size_t>(spec->min_args)) {
    fail(ErrorCode::kBadFormat, usage_error(*spec), spec);
    return false;
  }
  return true;
}

}  // namespace tq::protocol
