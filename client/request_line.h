// Building and checking request lines on the client side, before anything is
// sent. A value that would change a request's meaning on the wire (a queue
// name with a space in it, a reason with a line break) is refused here with
// kBadArgument, so nothing reaches the server that the caller did not mean.
//
// Invariant: a line that passes check_line() is exactly one request line; a
// word that passes check_word() is exactly one argument.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/duration.h"
#include "client/error.h"

namespace tq::client {

// A word in upper case (ASCII): verbs and keywords are matched this way.
std::string to_upper(std::string_view word);
// A whole, non-empty decimal number; nullopt for anything else.
std::optional<uint64_t> parse_u64(std::string_view text);

// Refuses a line holding '\n', or ending in '\r' (the wire's "\r\n").
Status check_line(std::string_view line);

// Refuses an empty word, or one holding a space, a tab or a control byte.
// `what` names it in the message ("queue name").
Status check_word(std::string_view word, std::string_view what);

// The words of a line, split at spaces and tabs as the server splits them.
std::vector<std::string_view> split_words(std::string_view line);
// "a,b" -> {"a", "b"}; empty parts are kept ("a," -> {"a", ""}, "" -> {""}).
std::vector<std::string_view> split_commas(std::string_view text);
// split_words, refusing a line with a line break.
Result<std::vector<std::string_view>> split_request(std::string_view line);

// The duration after a WAIT keyword among DEQUEUE's arguments; 0 when there
// is none or it cannot be read (the server will say why).
milliseconds wait_argument(const std::vector<std::string_view>& args);

}  // namespace tq::client
