// How the tq REPL shows a reply to a person: a job as its id, its fields and
// its payload indented below; STATS and CONFIG as aligned columns; QUEUES and
// CLIENTS as tables; everything else as the server's line. With `raw`, the reply's bytes
// exactly as the server sent them, for scripts that parse the protocol.
//
// Invariant: without raw, nothing the server sends can reach the terminal as
// a control sequence (payload bytes below 0x20, other than newline and tab,
// are shown escaped), and colour codes appear only when `colour` is set,
// which tq sets only when standard output is a terminal.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "client/error.h"
#include "client/reply.h"

namespace tq::client {

struct RenderStyle {
  bool colour = false;  // ANSI colours (only for a terminal)
  bool raw = false;     // the bytes as received
};

// The text to print for the reply to a request whose words are `words` (the
// verb first, any case). Ends with a newline.
std::string render_reply(const std::vector<std::string_view>& words, const Reply& reply,
                         const RenderStyle& style);

// A server's ERROR as its line ("ERROR NOQUEUE queue 'x' does not exist").
// Ends with a newline.
std::string render_server_error(const Error& error, const RenderStyle& style);

// DEQUEUE's ERROR EMPTY, which is no error to a person or a script: "(no jobs:
// queue 'x' has no ready job)", as DEQUEUE ... COUNT shows an empty reply.
// With raw, the server's line. Ends with a newline.
std::string render_no_jobs(const Error& empty, const RenderStyle& style);

// Shows bytes on a terminal: control bytes other than newline and tab become
// \xHH, so a payload cannot move the cursor or change colours; with
// escape_backslash, when any byte was so escaped or the text holds \x and two
// hex digits, a backslash becomes \\ (so an escape and the same text always
// look different). Long payloads are cut at
// max_bytes with a note.
std::string printable(std::string_view bytes, size_t max_bytes = 4096,
                      bool escape_backslash = true);

}  // namespace tq::client
