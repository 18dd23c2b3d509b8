// Tab completion for the tq REPL, as a pure function of the line typed so far:
// verbs in the first word (and after HELP), queue names where a command takes
// one, and each command's keywords (DEQUEUE's WAIT and COUNT, PUT's options,
// PEEK's states, CONFIG's settings). The line editor (repl_editor.cc) only
// asks this function; keeping it free of the terminal lets it be unit-tested.
//
// Invariant: every candidate starts with the word being completed; verbs and
// keywords follow the case of what was typed (lower case if its first letter
// is), queue names match exactly. Queue names are fetched (a LIST round trip)
// only when the position takes a queue.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace tq::client {

// Candidates for the word at the end of `line` (the text before the cursor;
// after a space, a new empty word). Sorted, without duplicates.
std::vector<std::string> complete(std::string_view line,
                                  const std::function<std::vector<std::string>()>& queue_names);

}  // namespace tq::client
