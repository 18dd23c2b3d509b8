// A program running in a pseudo-terminal, driven the way a person would: a
// private tmux server (its own socket in a temporary directory, no user
// configuration) runs the command in a detached window; the test types keys
// and reads the screen. wait_for() polls the screen until text appears or a
// deadline passes: the screen has no event to wait on, so this is a bounded
// poll, never a fixed sleep.
//
// Invariant: the tmux server belongs to this object and is killed (by its
// socket, nothing else) when the object goes away.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace tq::testing {

class TmuxScreen {
 public:
  // Runs `command` (a shell command line) in a width x height window.
  TmuxScreen(const std::string& command, int width = 120, int height = 40);
  ~TmuxScreen();
  TmuxScreen(const TmuxScreen&) = delete;
  TmuxScreen& operator=(const TmuxScreen&) = delete;

  // Types text as it is (no key names).
  void type(const std::string& text);
  // Presses keys by tmux name: "Enter", "Tab", "C-c", "C-d", "Up".
  void press(const std::vector<std::string>& keys);

  // The screen's text (and its scrollback), without colours; with
  // `escapes`, with the terminal's colour sequences.
  std::string capture(bool escapes = false) const;

  // True once the screen holds `text` `times` times or more; false at the
  // deadline.
  bool wait_for(const std::string& text,
                std::chrono::milliseconds timeout = std::chrono::seconds(10), int times = 1) const;

  // True once the program in the window has exited; false at the deadline.
  bool wait_for_exit(std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;

 private:
  std::vector<std::string> tmux(std::vector<std::string> args) const;
  std::string run(const std::vector<std::string>& args) const;

  std::string dir_;
  std::string socket_;
};

// How many times `needle` occurs in `text`.
int count_of(const std::string& text, const std::string& needle);

}  // namespace tq::testing
