#include <doctest/doctest.h>

#include <algorithm>

#include <signal.h>

#include <chrono>
#include <fstream>

#include "tests/support/tqd_process.h"

using tq::testing::run_tqd;
using tq::testing::TqdProcess;

TEST_SUITE("shutdown") {
  TEST_CASE("SIGTERM: open connections are closed, tqd logs and exits 0 promptly") {
    TqdProcess tqd;
    auto idle = tqd.socket();
    auto busy = tqd.client();
    REQUIRE(busy.create("q").ok());
    auto started = std::chrono::steady_clock::now();
    CHECK(tqd.stop(SIGTERM) == 0);
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(5));
    auto lines = tqd.log_lines();
    auto has = [&](const std::string& needle) {
      return std::any_of(lines.begin(), lines.end(),
                         [&](const std::string& l) { return l.find(needle) != std::string::npos; });
    };
    CHECK(has("SIGTERM: shutting down (2 connection(s) open)"));
    CHECK(has("stopped"));
    CHECK_FALSE(idle.read_line().ok());  // closed by the server
  }

  TEST_CASE("SIGINT: requests already received are answered before the close") {
    TqdProcess tqd;
    auto s = tqd.socket();
    REQUIRE(s.send("CREATE q\nPING\n").ok());
    CHECK(*s.read_line() == "OK created q");
    CHECK(*s.read_line() == "OK PONG");
    CHECK(tqd.stop(SIGINT) == 0);
  }
}

TEST_SUITE("command_line") {
  TEST_CASE("--version and --help") {
    auto [code, err] = run_tqd({"--version"});
    CHECK(code == 0);
    auto [help_code, help] = run_tqd({"--help"});
    CHECK(help_code == 0);
  }

  TEST_CASE("an unknown flag is one clear line and exit 2") {
    auto [code, err] = run_tqd({"--frobnicate"});
    CHECK(code == 2);
    CHECK(err.find("tqd: ") == 0);
    CHECK(err.find("--frobnicate") != std::string::npos);
    CHECK(std::count(err.begin(), err.end(), '\n') == 1);
  }

  TEST_CASE("a bad config file names the key and exits 2") {
    std::string dir = tq::testing::make_temp_dir();
    std::string path = dir + "/bad.yaml";
    std::ofstream(path) << "server:\n  port: 99999\n";
    auto [code, err] = run_tqd({"--config", path});
    CHECK(code == 2);
    CHECK(err == "tqd: " + path + ": server.port: expected a whole number from 0 to 65535, got '99999'\n");
    tq::testing::remove_tree(dir);
  }

  TEST_CASE("a port in use is one clear line and exit 1, before any log is read") {
    TqdProcess first;
    const std::string dir = tq::testing::make_temp_dir();
    auto [code, err] =
        run_tqd({"--port", std::to_string(first.port()), "--data-dir", dir + "/data"});
    CHECK(code == 1);
    CHECK(err.find("cannot listen on 127.0.0.1:" + std::to_string(first.port()) +
                   ": address already in use") != std::string::npos);
    CHECK(err.find("wal: replayed") == std::string::npos);  // reported before the replay
    tq::testing::remove_tree(dir);
  }
}
