// Runs every nc session written in PROTOCOL.md against a fresh tqd and
// checks the server answers exactly what the document shows.
//
// A session is a ```console block whose first line is "$ nc 127.0.0.1 8080".
// The lines after it alternate between a command (with, for PUT, the line
// of payload typed after it) and its reply; the test knows where a reply
// ends from the command table's reply shape, so the document needs no
// markers: it reads exactly as a terminal would show it. (Payloads in the
// document are one line, so a framed job is its header line and one more.)
// A block that starts tqd with "$ TQ_PASSWORD=<secret> build/tqd ..." before
// its nc line runs on a server of its own with that password.
#include <doctest/doctest.h>

#include <algorithm>
#include <memory>

#include <fstream>
#include <sstream>

#include "protocol/command_table.h"
#include "tests/support/tqd_process.h"

namespace transcript_test {

using tq::testing::TqdProcess;

namespace {

struct Session {
  int first_line;  // in PROTOCOL.md, for messages
  std::vector<std::string> lines;
  std::string password;  // the server's, when the block starts one with a password
};

std::vector<Session> sessions_in(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::vector<Session> sessions;
  std::string line;
  int number = 0;
  bool in_block = false;
  bool in_session = false;
  std::string password;  // set by a "$ TQ_PASSWORD=... build/tqd" line in this block
  const std::string password_prefix = "$ TQ_PASSWORD=";
  while (std::getline(in, line)) {
    ++number;
    if (!in_block) {
      in_block = line.rfind("```console", 0) == 0;
      password.clear();
      continue;
    }
    if (line.rfind("```", 0) == 0) {
      in_block = in_session = false;
      continue;
    }
    if (!in_session && line.rfind(password_prefix, 0) == 0) {
      size_t end = line.find(' ', password_prefix.size());
      password = line.substr(password_prefix.size(), end - password_prefix.size());
      continue;
    }
    if (line.rfind("$ nc 127.0.0.1 8080", 0) == 0) {
      sessions.push_back(Session{number, {}, password});
      in_session = true;
      continue;
    }
    if (in_session) sessions.back().lines.push_back(line);
  }
  return sessions;
}

std::vector<std::string_view> words(const std::string& line) {
  std::vector<std::string_view> out;
  std::string_view rest = line;
  while (!rest.empty()) {
    size_t space = rest.find(' ');
    if (space != 0) out.push_back(rest.substr(0, space));
    if (space == std::string_view::npos) break;
    rest.remove_prefix(space + 1);
  }
  return out;
}

const tq::protocol::CommandSpec* spec_of(const std::string& command) {
  auto w = words(command);
  return w.empty() ? nullptr : tq::protocol::find_command(w[0]);
}

// How many lines the reply to `command` has, given its first line.
size_t reply_lines(const std::string& command, const std::string& first) {
  const auto* spec = spec_of(command);
  if (spec == nullptr || first.rfind("OK ", 0) != 0) return 1;
  auto w = words(command);
  std::vector<std::string_view> args(w.begin() + 1, w.end());
  switch (tq::protocol::reply_shape(*spec, args)) {
    case tq::protocol::ReplyShape::kLine: return 1;
    case tq::protocol::ReplyShape::kCountedLines: return 1 + std::stoul(first.substr(3));
    case tq::protocol::ReplyShape::kJobs: return 1 + 2 * std::stoul(first.substr(3));
  }
  return 1;
}

}  // namespace

TEST_SUITE("transcript") {
  TEST_CASE("every nc session in PROTOCOL.md is what tqd answers") {
    auto sessions = sessions_in(std::string(TQ_SOURCE_DIR) + "/PROTOCOL.md");
    REQUIRE(sessions.size() >= 1);
    TqdProcess shared;  // one server: later sessions see what earlier ones did
    size_t with_password = 0;
    for (const Session& session : sessions) {
      std::unique_ptr<TqdProcess> own;
      if (!session.password.empty()) {
        tq::testing::TqdOptions options;
        options.config_yaml = "auth:\n  password: " + session.password + "\n";
        own = std::make_unique<TqdProcess>(options);
        ++with_password;
      }
      TqdProcess& tqd = own ? *own : shared;
      auto socket = tqd.socket();
      size_t i = 0;
      while (i < session.lines.size()) {
        const std::string& command = session.lines[i];
        INFO("PROTOCOL.md session at line " << session.first_line << ", command: " << command);
        std::string wire = command + "\n";
        ++i;
        const auto* spec = spec_of(command);
        // A body follows when the line has the argument that gives its
        // length (SCHEDULE <queue> alone lists, and has none).
        size_t words = 0;
        for (size_t at = 0; at < command.size();) {
          at = command.find_first_not_of(' ', at);
          if (at == std::string::npos) break;
          ++words;
          at = command.find(' ', at);
        }
        if (spec != nullptr && spec->body_length_arg >= 0 &&
            words > static_cast<size_t>(spec->body_length_arg) + 1) {
          REQUIRE(i < session.lines.size());
          wire += session.lines[i++] + "\n";  // the payload typed after the command
        }
        REQUIRE(socket.send(wire).ok());
        auto first = socket.read_line();
        REQUIRE(first.ok());
        size_t count = reply_lines(command, *first);
        std::vector<std::string> got{*first};
        for (size_t k = 1; k < count; ++k) {
          auto next = socket.read_line();
          REQUIRE(next.ok());
          got.push_back(*next);
        }
        for (const std::string& reply : got) {
          REQUIRE(i < session.lines.size());
          CHECK(reply == session.lines[i]);
          ++i;
        }
        if (command == "QUIT") break;
      }
    }
    CHECK(with_password >= 1);  // the AUTH session was found and run
  }
}

}  // namespace transcript_test
