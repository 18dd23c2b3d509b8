// An incremental parser for the request side of the protocol: feed it bytes as
// they arrive, in pieces of any size, and pull whole requests out.
//
// A request is one line (LF or CRLF) whose first word names a command in the
// command table; a command with a body (PUT) is followed by exactly that many
// bytes and a line end. The parser checks the verb and the arity, so a
// Request it hands out always fits its CommandSpec. An error concerns one line
// only: the parser skips that line (or that body) and goes on with the next,
// so one bad command never desynchronises the stream.
//
// Memory: at most one line (max_line_bytes) or one body (max_body_bytes) plus
// what was fed but not yet pulled is held. Views in a Request point into the
// parser's buffer and stay valid until the next call to feed().
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/command_table.h"
#include "protocol/reply.h"

namespace tq::protocol {

struct ParserLimits {
  size_t max_line_bytes = 1 << 20;  // a longer line is answered TOOBIG and skipped
  size_t max_body_bytes = 1 << 20;  // a longer body is answered TOOBIG and skipped
  // What the user sets each limit with, named in its TOOBIG message
  // ("line exceeds 1024 bytes (limits.max_line_bytes)"); empty: not named.
  std::string_view line_setting;
  std::string_view body_setting;
};

struct Request {
  const CommandSpec* spec = nullptr;
  std::vector<std::string_view> args;  // arguments after the verb; args.size() fits spec
  std::string_view body;               // the body of a command that has one, else empty
};

struct ParseError {
  ErrorCode code = ErrorCode::kBadFormat;
  std::string message;
  // The command, when the line named one and its arguments are what is wrong
  // (arity, a body length that is not a number); null for an unknown verb and
  // for errors of size or framing.
  const CommandSpec* spec = nullptr;
};

class RequestParser {
 public:
  enum class Result { kNeedMore, kRequest, kError };

  explicit RequestParser(ParserLimits limits = {}) : limits_(limits) {}
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  void feed(std::string_view bytes);

  // Pulls the next request or error out of what was fed. After kRequest,
  // request() holds it; after kError, error() does.
  Result next();

  const Request& request() const { return request_; }
  const ParseError& error() const { return error_; }

  // Once everything fed has been consumed, gives back the buffer's memory if
  // it grew past `keep` bytes (a long line or body came through): idle, a
  // connection would otherwise hold it for as long as it lives. Invalidates
  // the views of the last request, like feed().
  void release_consumed(size_t keep);
  // The memory its buffer holds (at least buffered()).
  size_t memory_bytes() const { return buf_.capacity(); }
  // Bytes fed but not yet consumed: the part of a line or body still arriving.
  size_t buffered() const { return buf_.size() - pos_; }
  // A request (or the rest of one being skipped) has begun and not ended:
  // what request_timeout measures, so that a client cannot hold a connection
  // by feeding an endless line or a body it declared absurdly long.
  bool mid_request() const { return state_ != State::kLine || buffered() > 0; }
  // Part of a request that no reply has answered yet: a body still arriving,
  // or a line begun with something other than blanks (spaces, tabs, '\r':
  // a blank line is ignored). A request being skipped has had its error.
  bool unanswered_request() const;

 private:
  enum class State {
    kLine,          // reading a request line
    kBody,          // the line at pos_ is whole; waiting for its body
    kDiscardLine,   // skipping the rest of an over-long line, through '\n'
    kDiscardBytes,  // skipping an over-long body, then its line end
  };

  Result parse_line(size_t line_len, size_t consumed);
  Result finish_body();
  Result fail(ErrorCode code, std::string message, const CommandSpec* spec = nullptr);
  // After fail(): the `bytes` after the line are a body to skip, not
  // requests; the error says so.
  void skip_body(uint64_t bytes);
  void say_body_skipped(uint64_t bytes);
  // Answers a line over max_line_bytes; `line_end` is where its '\n' is, or
  // npos while it is still arriving.
  Result overlong_line(size_t line_end);
  // Splits `line` into request_.spec and request_.args; false on error.
  bool tokenize(std::string_view line);
  // The body length a rejected line declared, if it names a command with a
  // body and its length argument is a number: that body must be skipped too,
  // or its bytes would be taken for commands. `cut`: the line goes on past
  // `line`, so a word that reaches its end is not whole.
  std::optional<uint64_t> declared_body(std::string_view line, bool cut) const;

  ParserLimits limits_;
  std::string buf_;
  size_t pos_ = 0;   // first byte not yet consumed
  size_t scan_ = 0;  // where the search for '\n' resumes, so slow senders cost O(n)
  State state_ = State::kLine;
  size_t line_len_ = 0;     // kBody: length of the request line, without its end
  size_t line_total_ = 0;   // kBody: length of the request line with its end
  size_t body_len_ = 0;     // kBody: bytes of body expected
  size_t discard_left_ = 0; // kDiscardBytes: body bytes still to skip
  std::optional<uint64_t> body_after_line_;  // kDiscardLine: then skip this body
  Request request_;
  ParseError error_;
};

}  // namespace tq::protocol
