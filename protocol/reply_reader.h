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

// No payload tqd sends is longer (wal::kMaxPayloadBytes: no job can hold
// more). A framed job whose header announces more is not tqd speaking, and a
// reader that waited for its bytes would keep all that came.
inline constexpr size_t kMaxReplyPayloadBytes = size_t{256} << 20;

// No reply line tqd sends is longer: the longest holds one payload, escaped
// (DEQUEUE's one-line reply turns each \n, \r and \ into two bytes, so up
// to twice that), and a few short words before it. More than this without
// a line end is not tqd speaking (some other service on the port), and a
// reader that kept it all would grow without end.
inline constexpr size_t kMaxReplyLineBytes = 2 * kMaxReplyPayloadBytes + 4096;

class ReplyReader {
 public:
  explicit ReplyReader(size_t max_line_bytes = kMaxReplyLineBytes)
      : max_line_bytes_(max_line_bytes) {}

  void feed(std::string_view bytes);

  // The next line without its '\n' (and '\r'), or nullopt until one is whole.
  // Each call looks only at bytes fed since the last, so a long line costs
  // its length once, not once per feed().
  std::optional<std::string_view> take_line();
  // True once more than max_line_bytes have come without a line end: the
  // line will never be whole, and the caller should give up on the stream.
  bool line_too_long() const { return scanned_ > max_line_bytes_; }

  // Exactly n bytes followed by a line end, or nullopt until all have arrived.
  // A missing line end after them is a framing error: returns nullopt and sets
  // broken().
  std::optional<std::string_view> take_body(size_t n);

  bool broken() const { return broken_; }
  size_t buffered() const { return buf_.size() - pos_; }

 private:
  std::string buf_;
  size_t pos_ = 0;
  size_t scanned_ = 0;  // bytes from pos_ known to hold no '\n'
  size_t max_line_bytes_;
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
