// LineEditor: the tq prompt's line editing, history and Tab completion, on
// libedit (BSD licence, in Debian as libedit-dev) through its readline
// interface. It keeps history in a file across sessions and asks a Completer
// (repl_completion.h) for the candidates of the word under the cursor.
//
// Invariant: at most one LineEditor exists in a process (libedit's readline
// interface is global state); lines that start with AUTH are never written
// to the history, and the history file is readable by its owner only.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tq::client {

class LineEditor {
 public:
  // The candidates for the word that ends `line_before_cursor`.
  using Completer = std::function<std::vector<std::string>(std::string_view line_before_cursor)>;

  // history_path: where history is loaded from and saved to; empty: none.
  LineEditor(std::string history_path, Completer completer);
  ~LineEditor();
  LineEditor(const LineEditor&) = delete;
  LineEditor& operator=(const LineEditor&) = delete;

  enum class LineKind {
    kCommand,  // Tab completes; a non-blank line goes into the history
    kBody,     // a line of a PUT body: Tab is a tab, and nothing is remembered
  };

  // Shows the prompt and returns the line typed, without its newline, or
  // nullopt at end of input (Ctrl-D) or when a signal interrupted the
  // editing (Ctrl-C: the caller's handler knows which).
  std::optional<std::string> read_line(const std::string& prompt,
                                       LineKind kind = LineKind::kCommand);

  // Why the history file could not be saved after the last line, once:
  // libedit says nothing (a directory removed, a disk full mid-session).
  std::optional<std::string> take_save_failure();

 private:
  std::string history_path_;
  Completer completer_;
  std::optional<std::string> save_failure_;
};

}  // namespace tq::client
