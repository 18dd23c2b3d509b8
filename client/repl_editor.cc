#include "client/repl_editor.h"

#include <editline/readline.h>

#include <cstdlib>
#include <cstring>
#include <utility>

#include "client/history_file.h"

namespace tq::client {
namespace {

// libedit's readline interface calls plain functions; they reach the one
// editor through this pointer.
LineEditor::Completer* g_completer = nullptr;
std::vector<std::string> g_candidates;

// readline's generator protocol: called with state 0 first, then 1, 2, ...;
// returns one malloc'ed candidate per call and nullptr when done.
char* next_candidate(const char*, int state) {
  static size_t index = 0;
  if (state == 0) index = 0;
  if (index >= g_candidates.size()) return nullptr;
  return strdup(g_candidates[index++].c_str());
}

char** attempt_completion(const char*, int, int end) {
  rl_attempted_completion_over = 1;  // no file-name completion when we have nothing
  if (g_completer == nullptr) return nullptr;
  g_candidates = (*g_completer)(std::string_view(rl_line_buffer, static_cast<size_t>(end)));
  if (g_candidates.empty()) return nullptr;
  // "ack_timeout=" wants its value typed right after it, not after a space.
  bool open_ended = true;
  for (const auto& c : g_candidates) open_ended = open_ended && !c.empty() && c.back() == '=';
  rl_completion_append_character = open_ended ? '\0' : ' ';
  return rl_completion_matches("", next_candidate);
}

bool is_blank(const char* line) {
  for (; *line != '\0'; ++line) {
    if (*line != ' ' && *line != '\t') return false;
  }
  return true;
}

bool starts_with_auth(const char* line) {
  while (*line == ' ' || *line == '\t') ++line;
  return strncasecmp(line, "AUTH", 4) == 0 &&
         (line[4] == '\0' || line[4] == ' ' || line[4] == '\t');
}

}  // namespace

LineEditor::LineEditor(std::string history_path, Completer completer)
    : history_path_(std::move(history_path)), completer_(std::move(completer)) {
  g_completer = &completer_;
  rl_readline_name = "tq";  // "tq:" lines in ~/.editrc apply
  // Queue names may hold . : - and CONFIG settings are key=value: break words
  // at blanks only.
  static char word_breaks[] = " \t";
  rl_basic_word_break_characters = word_breaks;
  rl_completer_word_break_characters = word_breaks;
  rl_attempted_completion_function = attempt_completion;
  using_history();
  stifle_history(1000);
  if (!history_path_.empty()) read_history(history_path_.c_str());
}

LineEditor::~LineEditor() {
  g_completer = nullptr;
  rl_attempted_completion_function = nullptr;
}

std::optional<std::string> LineEditor::read_line(const std::string& prompt, LineKind kind) {
  // A body is data: Tab there inserts a tab, shown as one (inserting it from
  // the completion function put it in the line but not on the screen).
  rl_inhibit_completion = kind == LineKind::kBody ? 1 : 0;
  char* raw = readline(prompt.c_str());
  rl_inhibit_completion = 0;
  if (raw == nullptr) return std::nullopt;
  std::string line(raw);
  if (kind == LineKind::kCommand && !is_blank(raw) && !starts_with_auth(raw)) {
    add_history(raw);
    if (!history_path_.empty()) {
      // Saved after every line, so a session that is killed keeps its history.
      // (libedit returns an errno, or 0.)
      if (const int error = write_history(history_path_.c_str()); error != 0) {
        save_failure_ = std::strerror(error);
      }
      keep_private(history_path_);
    }
  }
  std::free(raw);
  return line;
}

std::optional<std::string> LineEditor::take_save_failure() {
  return std::exchange(save_failure_, std::nullopt);
}

}  // namespace tq::client
