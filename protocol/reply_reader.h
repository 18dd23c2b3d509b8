// The client side of the protocol: splits what a server sends into reply
// lines and byte bodies, and reads the first line of a reply.
//
// It keeps no knowledge of which command was sent: the caller knows what
// shape of reply to expect (one line, "OK <n>" and n lines, or framed jobs)
// and pulls lines and bodies accordingly. Views stay valid until feed().
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/reply.h"

namespace tq::protocol {

class ReplyReader {
 public:
  void feed(std::string_view bytes);

  // The next line without its '\n' (and '\r'), or nullopt until one is whole.
  std::optional<std::string_view> take_line();

  // Exactly n bytes followed by a line end, or nullopt until all have arrived.
  // A missing line end after them is a framing error: returns nullopt and sets
  // broken().
  std::optional<std::string_view> take_body(size_t n);

  bool broken() const { return broken_; }
  size_t buffered() const { return buf_.size() - pos_; }

 private:
  std::string buf_;
  size_t pos_ = 0;
  bool broken_ = false;
};

// The first line of a reply, taken apart.
struct ReplyLine {
  bool ok = false;                // began with "OK"
  std::optional<ErrorCode> code;  // for "ERROR <CODE> ...", when the code is known
  std::string_view code_name;     // the code as sent, even if unknown to us
  std::string_view text;          // after "OK " or after "ERROR <CODE> "
};

// nullopt when the line begins with neither "OK" nor "ERROR".
std::optional<ReplyLine> parse_reply_line(std::string_view line);

}  // namespace tq::protocol
