// Fuzzes the request parser with arbitrary bytes fed in arbitrary pieces:
// whatever arrives, every request it hands out fits its command's arity, no
// buffer grows past the limits, and nothing crashes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "protocol/command_table.h"
#include "protocol/request_parser.h"

using tq::protocol::ParserLimits;
using tq::protocol::RequestParser;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  // The first byte picks the piece size, so splits are fuzzed too.
  const size_t piece = 1 + data[0] % 64;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  ParserLimits limits;
  limits.max_line_bytes = 256;
  limits.max_body_bytes = 512;
  RequestParser parser(limits);
  while (!input.empty()) {
    size_t n = std::min(piece, input.size());
    parser.feed(input.substr(0, n));
    input.remove_prefix(n);
    for (;;) {
      auto result = parser.next();
      if (result == RequestParser::Result::kNeedMore) break;
      if (result == RequestParser::Result::kRequest) {
        const auto& r = parser.request();
        const auto& spec = *r.spec;
        if (r.args.size() < static_cast<size_t>(spec.min_args)) abort();
        if (spec.max_args >= 0 && r.args.size() > static_cast<size_t>(spec.max_args)) abort();
        if (r.body.size() > limits.max_body_bytes) abort();
        (void)tq::protocol::reply_shape(spec, r.args);
      }
    }
    // Bounded memory: one line or one body (and its line) plus a piece.
    if (parser.buffered() > limits.max_line_bytes + limits.max_body_bytes + 2 * 64 + 8) abort();
  }
  return 0;
}
