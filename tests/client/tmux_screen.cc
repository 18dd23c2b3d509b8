#include "tests/client/tmux_screen.h"

#include <stdexcept>
#include <thread>

#include "tests/client/subprocess.h"
#include "tests/support/tqd_process.h"

namespace tq::testing {

int count_of(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

TmuxScreen::TmuxScreen(const std::string& command, int width, int height)
    : dir_(make_temp_dir()), socket_(dir_ + "/tmux.sock") {
  // remain-on-exit keeps the window (and its last screen) after the program
  // ends, so a test can read what it printed last and see that it exited.
  auto result = run_program(tmux({"new-session", "-d", "-s", "test", "-x", std::to_string(width),
                                  "-y", std::to_string(height), command, ";", "set-option", "-t",
                                  "test", "remain-on-exit", "on"}),
                            {}, {"TERM=xterm-256color"});
  if (result.status != 0) throw std::runtime_error("tmux new-session failed: " + result.err);
}

TmuxScreen::~TmuxScreen() {
  run_program(tmux({"kill-server"}));
  remove_tree(dir_);
}

std::vector<std::string> TmuxScreen::tmux(std::vector<std::string> args) const {
  // -f /dev/null: none of the user's tmux configuration.
  std::vector<std::string> argv = {"tmux", "-S", socket_, "-f", "/dev/null"};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

std::string TmuxScreen::run(const std::vector<std::string>& args) const {
  return run_program(tmux(args)).out;
}

void TmuxScreen::type(const std::string& text) {
  run({"send-keys", "-t", "test", "-l", text});
}

void TmuxScreen::press(const std::vector<std::string>& keys) {
  std::vector<std::string> args = {"send-keys", "-t", "test"};
  args.insert(args.end(), keys.begin(), keys.end());
  run(args);
}

std::string TmuxScreen::capture(bool escapes) const {
  std::vector<std::string> args = {"capture-pane", "-p", "-t", "test", "-S", "-"};
  if (escapes) args.push_back("-e");
  return run(args);
}

bool TmuxScreen::wait_for(const std::string& text, std::chrono::milliseconds timeout,
                          int times) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (count_of(capture(), text) >= times) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    // The screen offers nothing to block on: look again shortly, until the deadline.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

bool TmuxScreen::wait_for_exit(std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (run({"display-message", "-p", "-t", "test", "#{pane_dead}"}) == "1\n") return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace tq::testing
