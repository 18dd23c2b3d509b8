// The tq REPL driven as a person drives it: build/tq runs in a pseudo-terminal
// (a private tmux server); the test types, presses Tab, Ctrl-C and the
// arrows, and reads the screen.
#include <doctest/doctest.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <csignal>

#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include "client/history_file.h"
#include "tests/client/cutting_proxy.h"
#include "tests/client/subprocess.h"
#include "tests/client/tmux_screen.h"
#include "tests/support/tqd_process.h"

namespace repl_pty_test {

using namespace std::chrono_literals;
using tq::testing::count_of;
using tq::testing::CuttingProxy;
using tq::testing::TempDir;
using tq::testing::TmuxScreen;
using tq::testing::TqdProcess;

namespace {

std::string tq_command(uint16_t port, const std::string& history) {
  return "TQ_HISTFILE=" + history + " " + TQ_PATH + " --port " + std::to_string(port);
}

// The prompt as the screen shows it: tmux drops a line's trailing spaces.
std::string prompt(uint16_t port) {
  return "tq 127.0.0.1:" + std::to_string(port) + ">";
}

// Types a line and presses Enter.
void enter(TmuxScreen& screen, const std::string& line) {
  screen.type(line);
  screen.press({"Enter"});
}

// The column where the value after `key` starts, on the screen line that
// begins with `key` and a space; npos when there is none.
size_t value_column(const std::string& screen, const std::string& key) {
  size_t at = screen.find("\n" + key + " ");
  if (at == std::string::npos) return std::string::npos;
  size_t line_start = at + 1;
  size_t value = screen.find_first_not_of(' ', line_start + key.size());
  return value - line_start;
}

// The server's count of wrong passwords, asked with the right one.
std::string auth_failures(const TqdProcess& tqd, const std::string& password) {
  tq::client::Options options;
  options.port = tqd.port();
  options.password = password;
  auto client = tq::client::Client::connect(options);
  REQUIRE(client.ok());
  auto stats = client->stats();
  REQUIRE(stats.ok());
  return tq::client::field(*stats, "auth_failures_total");
}

std::string file_text(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// At the prompt, creates emails, stops tqd (SIGSTOP: left stopped), and
// completes "STATS em<Tab>ails": whether the prompt showed the line, which
// it does once the completion has given up on the server.
bool tab_on_a_stopped_server(TmuxScreen& screen, const TqdProcess& tqd) {
  const std::string p = prompt(tqd.port());
  REQUIRE(screen.wait_for(p));
  enter(screen, "CREATE emails");
  REQUIRE(screen.wait_for("OK created emails"));
  REQUIRE(kill(tqd.pid(), SIGSTOP) == 0);
  screen.type("STATS em");
  screen.press({"Tab"});
  screen.type("ails");
  return screen.wait_for(p + " STATS emails", 10s);
}

}  // namespace

TEST_SUITE("tq REPL in a terminal") {
  TEST_CASE("a prompt with the address - commands, completion, help, readable jobs and STATS") {
    TqdProcess tqd;
    TempDir home;
    TmuxScreen screen(tq_command(tqd.port(), home.path + "/history"));
    const std::string p = prompt(tqd.port());
    REQUIRE(screen.wait_for(p));
    CHECK(screen.capture().find("Connected. HELP lists the commands") != std::string::npos);

    enter(screen, "CREATE emails");
    REQUIRE(screen.wait_for("OK created emails"));
    CHECK(screen.capture(true).find("\x1b[") != std::string::npos);  // colours on a terminal

    // Tab completes the verb, then the queue name (from LIST).
    screen.type("ENQ");
    screen.press({"Tab"});
    REQUIRE(screen.wait_for(p + " ENQUEUE"));
    screen.type("em");
    screen.press({"Tab"});
    REQUIRE(screen.wait_for(p + " ENQUEUE emails"));
    enter(screen, "hello from a terminal");
    REQUIRE(screen.wait_for("OK 1"));
    CHECK(screen.capture().find(p + " ENQUEUE emails hello from a terminal") != std::string::npos);

    // Two candidates: a second Tab lists them.
    enter(screen, "CREATE email_digest");
    REQUIRE(screen.wait_for("OK created email_digest"));
    screen.type("stats em");
    screen.press({"Tab"});
    screen.press({"Tab"});
    REQUIRE(screen.wait_for("email_digest  emails"));
    screen.type("s");
    screen.press({"Enter"});
    REQUIRE(screen.wait_for("dedup_keys"));
    const std::string stats = screen.capture();
    CHECK(value_column(stats, "queue") != std::string::npos);
    CHECK(value_column(stats, "queue") == value_column(stats, "ack_timeout_ms"));
    CHECK(value_column(stats, "ready") == value_column(stats, "duplicates_total"));

    enter(screen, "DEQUEUE emails COUNT 1");
    REQUIRE(screen.wait_for("job 1  queue=emails attempts=1 lease=1"));
    CHECK(screen.capture().find(
              "job 1  queue=emails attempts=1 lease=1\n  hello from a terminal\n") !=
          std::string::npos);

    enter(screen, "help");
    REQUIRE(screen.wait_for("In tq: Tab completes"));
    CHECK(screen.capture().find("DEQUEUE <queue>... [WAIT d] [COUNT n]") != std::string::npos);
    enter(screen, "help ack");
    REQUIRE(screen.wait_for("finish leased jobs: they are deleted"));

    // A multi-line PUT body at a continuation prompt.
    enter(screen, "PUT emails 9");
    REQUIRE(screen.wait_for("... "));
    enter(screen, "two");
    enter(screen, "lines");
    REQUIRE(screen.wait_for("OK 2"));
  }

  TEST_CASE("--raw at the prompt - HELP is the server's reply alone, without tq's tips") {
    TqdProcess tqd;
    TempDir home;
    TmuxScreen screen(tq_command(tqd.port(), home.path + "/history") + " --raw");
    const std::string p = prompt(tqd.port());
    REQUIRE(screen.wait_for(p));
    enter(screen, "help");
    // The next prompt: the reply, and whatever tq adds to it, came before it.
    REQUIRE(screen.wait_for(p, 10s, 2));
    const std::string shown = screen.capture();
    CHECK(shown.find("DEQUEUE <queue>... [WAIT d] [COUNT n]") != std::string::npos);
    CHECK(shown.find("In tq: Tab completes") == std::string::npos);
  }

  TEST_CASE("a port that is not a tq server is told at the prompt's start, not 'Connected'") {
    // Another program's port (here one that answers as an HTTP server
    // does), or tqd's TLS port without --tls: the connection opens, so
    // only the PING at start shows the person it is the wrong port.
    const tq::testing::LoopbackSocket bound = tq::testing::bind_loopback_socket();
    REQUIRE(::listen(bound.fd, 4) == 0);
    std::thread server([&] {
      pollfd p{bound.fd, POLLIN, 0};
      const int conn = ::poll(&p, 1, 10'000) == 1 ? ::accept(bound.fd, nullptr, nullptr) : -1;
      ::close(bound.fd);
      char buf[256];
      pollfd in{conn, POLLIN, 0};  // bounded: a tq that sends nothing fails the test
      if (conn >= 0 && ::poll(&in, 1, 10'000) == 1 && ::recv(conn, buf, sizeof buf, 0) > 0) {
        const std::string http = "HTTP/1.1 400 Bad Request\r\n\r\n";
        (void)::send(conn, http.data(), http.size(), MSG_NOSIGNAL);
      }
      if (conn >= 0) ::close(conn);
    });
    TempDir home;
    TmuxScreen screen(tq_command(bound.port, home.path + "/history"));
    const bool told = screen.wait_for("is neither OK nor ERROR");
    server.join();
    REQUIRE(told);
    REQUIRE(screen.wait_for("(not connected)>"));
    const std::string shown = screen.capture();
    CHECK(shown.find("tq: no answer to PING: 'HTTP/1.1 400 Bad Request'") != std::string::npos);
    CHECK(shown.find("Connected.") == std::string::npos);
  }

  TEST_CASE("Ctrl-C abandons a line at the prompt and ends a long wait - the session goes on") {
    TqdProcess tqd;
    TempDir home;
    TmuxScreen screen(tq_command(tqd.port(), home.path + "/history"));
    const std::string p = prompt(tqd.port());
    REQUIRE(screen.wait_for(p));
    enter(screen, "CREATE q");
    REQUIRE(screen.wait_for("OK created q"));

    screen.type("half typed");
    REQUIRE(screen.wait_for("half typed"));
    screen.press({"C-c"});
    REQUIRE(screen.wait_for(p, 10s, 3));  // a fresh prompt
    enter(screen, "PING");
    REQUIRE(screen.wait_for("OK PONG"));
    CHECK(screen.capture().find("half typedPING") == std::string::npos);

    enter(screen, "DEQUEUE q WAIT 1h");
    // Press Ctrl-C once the server holds the wait.
    auto watcher = tqd.client();
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto stats = watcher.stats("q");
      if (stats.ok() && tq::client::field(*stats, "waiters") == "1") break;
    }
    screen.press({"C-c"});
    REQUIRE(screen.wait_for("tq: interrupted; closed the connection"));
    enter(screen, "PING");
    REQUIRE(screen.wait_for("OK PONG", 10s, 2));
    CHECK(screen.capture().find("tq: reconnected to 127.0.0.1:") != std::string::npos);
  }

  TEST_CASE("Tab while the server hangs gives up within a moment - the session stays in step") {
    TqdProcess tqd;
    TempDir home;
    // A long --timeout: a completion that waited for it would hold the prompt a minute.
    TmuxScreen screen(tq_command(tqd.port(), home.path + "/history") + " --timeout 60s");
    const bool prompt_answered = tab_on_a_stopped_server(screen, tqd);
    REQUIRE(kill(tqd.pid(), SIGCONT) == 0);
    REQUIRE(prompt_answered);

    // The LIST the completion sent is answered late; its reply is dropped, and
    // STATS gets its own, on the same connection.
    screen.press({"Enter"});
    REQUIRE(screen.wait_for("dedup_keys"));
    const std::string shown = screen.capture();
    CHECK(shown.find("reconnected") == std::string::npos);
    CHECK(shown.find("tq: ") == std::string::npos);
  }

  TEST_CASE("a command after an unanswered Tab says it was not sent, and why") {
    TqdProcess tqd;
    TempDir home;
    TmuxScreen screen(tq_command(tqd.port(), home.path + "/history") + " --timeout 1s");
    const bool prompt_answered = tab_on_a_stopped_server(screen, tqd);
    // Still stopped: the completion's reply is still owed when STATS goes.
    if (prompt_answered) screen.press({"Enter"});
    const bool told = screen.wait_for(
        "tq: STATS was not sent (the unanswered request was the LIST that Tab sends for queue "
        "names)",
        10s);
    REQUIRE(kill(tqd.pid(), SIGCONT) == 0);
    REQUIRE(prompt_answered);
    REQUIRE(told);
    const std::string shown = screen.capture();
    CHECK(shown.find("tq: not sent: the server did not answer an earlier request") !=
          std::string::npos);
    CHECK(shown.find("cannot connect") == std::string::npos);
    enter(screen, "PING");
    REQUIRE(screen.wait_for("OK PONG", 10s));
  }

  TEST_CASE(
      "what is typed is sent byte for byte - letters beyond ASCII in a payload and a PUT body") {
    TqdProcess tqd;
    TempDir home;
    // Also with a locale that is not installed: tq falls back to C.UTF-8.
    std::string lang = "C.UTF-8";
    SUBCASE("installed") {
      lang = "C.UTF-8";
    }
    SUBCASE("not installed") {
      lang = "xx_XX.UTF-8";
    }
    TmuxScreen screen("LANG=" + lang +
                      " LC_ALL= " + tq_command(tqd.port(), home.path + "/history"));
    const std::string p = prompt(tqd.port());
    REQUIRE(screen.wait_for(p));
    enter(screen, "CREATE q");
    REQUIRE(screen.wait_for("OK created q"));
    const std::string typed = "h\u00e9llo w\u00f6rld \u65e5\u672c";  // héllo wörld, two CJK letters
    enter(screen, "ENQUEUE q " + typed);
    REQUIRE(screen.wait_for("OK 1"));
    const std::string body = "caf\u00e9";  // 5 bytes
    enter(screen, "PUT q 5");
    REQUIRE(screen.wait_for("..."));
    enter(screen, body);
    REQUIRE(screen.wait_for("OK 2"));

    auto client = tqd.client();
    auto first = client.dequeue("q");
    REQUIRE(first.ok());
    REQUIRE(first->has_value());
    CHECK((*first)->payload == typed);
    auto second = client.dequeue("q");
    REQUIRE(second.ok());
    REQUIRE(second->has_value());
    CHECK((*second)->payload == body);
  }

  TEST_CASE("a PUT body at the ... prompt - Tab is a tab there, Ctrl-C abandons the PUT") {
    TqdProcess tqd;
    TempDir home;
    TmuxScreen screen(tq_command(tqd.port(), home.path + "/history"));
    const std::string p = prompt(tqd.port());
    REQUIRE(screen.wait_for(p));
    enter(screen, "CREATE q");
    REQUIRE(screen.wait_for("OK created q"));

    enter(screen, "PUT q 3");
    REQUIRE(screen.wait_for("..."));
    screen.type("a");
    screen.press({"Tab"});
    screen.type("b");
    // The tab is on the screen as typed (to the next tab stop), not only in the line.
    REQUIRE(screen.wait_for("... a   b"));
    enter(screen, "");
    REQUIRE(screen.wait_for("OK 1"));

    enter(screen, "PUT q 10");
    REQUIRE(screen.wait_for("...", 10s, 2));
    screen.type("abc");
    screen.press({"C-c"});
    REQUIRE(screen.wait_for("tq: PUT not sent: its body was left before 10 bytes"));
    // On a line of its own, not after what was typed at the ... prompt.
    CHECK(screen.capture().find("\ntq: PUT not sent: its body") != std::string::npos);
    enter(screen, "PING");
    REQUIRE(screen.wait_for("OK PONG"));

    auto client = tqd.client();
    auto job = client.dequeue("q");
    REQUIRE(job.ok());
    REQUIRE(job->has_value());
    CHECK((*job)->payload == "a\tb");
    CHECK_FALSE(client.dequeue("q").value().has_value());  // the abandoned PUT sent nothing
  }

  TEST_CASE("history outlives the session - Up recalls the last command - the file is private") {
    TqdProcess tqd;
    TempDir home;
    const std::string history = home.path + "/history";
    const std::string p = prompt(tqd.port());
    {
      TmuxScreen first(tq_command(tqd.port(), history));
      REQUIRE(first.wait_for(p));
      enter(first, "LIST");
      REQUIRE(first.wait_for("\nOK\n"));
      enter(first, "AUTH not-kept");
      REQUIRE(first.wait_for("OK no password is set"));
      enter(first, "PING");
      REQUIRE(first.wait_for("OK PONG"));
      first.press({"C-d"});
      REQUIRE(first.wait_for_exit());
    }
    struct stat info {};
    REQUIRE(stat(history.c_str(), &info) == 0);
    CHECK((info.st_mode & 0777) == 0600);

    TmuxScreen second(tq_command(tqd.port(), history));
    REQUIRE(second.wait_for(p));
    second.press({"Up"});
    REQUIRE(second.wait_for(p + " PING"));
    second.press({"Up"});
    REQUIRE(second.wait_for(p + " LIST"));  // AUTH lines are never kept
  }

  TEST_CASE("NO_COLOR set and not empty turns colours off - set empty, it does not") {
    TqdProcess tqd;
    TempDir home;
    for (const char* value : {"", "1"}) {
      CAPTURE(value);
      TmuxScreen screen(std::string("NO_COLOR=") + value + " " +
                        tq_command(tqd.port(), home.path + "/history"));
      REQUIRE(screen.wait_for(prompt(tqd.port())));
      enter(screen, "PING");
      REQUIRE(screen.wait_for("OK PONG"));
      const bool coloured = screen.capture(true).find("\x1b[") != std::string::npos;
      CHECK(coloured == (*value == '\0'));  // no-color.org: "set and not empty"
      screen.press({"C-d"});
      REQUIRE(screen.wait_for_exit());
    }
  }

  TEST_CASE("a one-shot PUT reading its body from the terminal says so") {
    TqdProcess tqd;
    TempDir home;
    const std::string port = std::to_string(tqd.port());
    REQUIRE(tq::testing::run_program({TQ_PATH, "--port", port, "CREATE", "q"}).status == 0);
    TmuxScreen screen(tq_command(tqd.port(), home.path + "/history") + " PUT q 5");
    REQUIRE(screen.wait_for("tq: type the 5-byte body, then Enter and Ctrl-D (or pipe it in)"));
    enter(screen, "hello");  // the line's end is not the body's (as with echo)
    screen.press({"C-d"});
    REQUIRE(screen.wait_for_exit());
    auto taken = tq::testing::run_program({TQ_PATH, "--raw", "--port", port, "DEQUEUE", "q"});
    CHECK(taken.out == "OK 1 hello\n");
  }

  TEST_CASE("only a regular history file is made private - not a link, not a device or FIFO") {
    TempDir home;
    const std::string target = home.path + "/shared";
    const std::string link = home.path + "/link";
    { std::ofstream(target) << "LIST\n"; }
    REQUIRE(chmod(target.c_str(), 0644) == 0);
    REQUIRE(symlink(target.c_str(), link.c_str()) == 0);
    tq::client::keep_private(link);
    struct stat info {};
    REQUIRE(stat(target.c_str(), &info) == 0);
    CHECK((info.st_mode & 0777) == 0644);
    // Not a regular file (TQ_HISTFILE=/dev/null turns history off; a FIFO
    // here, so that a failure does not break this machine's /dev/null).
    const std::string fifo = home.path + "/fifo";
    REQUIRE(mkfifo(fifo.c_str(), 0644) == 0);
    REQUIRE(chmod(fifo.c_str(), 0644) == 0);
    tq::client::keep_private(fifo);
    REQUIRE(stat(fifo.c_str(), &info) == 0);
    CHECK((info.st_mode & 0777) == 0644);
    tq::client::keep_private(target);
    REQUIRE(stat(target.c_str(), &info) == 0);
    CHECK((info.st_mode & 0777) == 0600);
  }

  TEST_CASE("a history file that cannot be written is said once at start, with the reason") {
    TempDir home;
    // Can be saved: an existing file, one not made yet (and not made by
    // asking), /dev/null (history off).
    const std::string existing = home.path + "/existing";
    { std::ofstream(existing) << "LIST\n"; }
    CHECK_FALSE(tq::client::history_problem(existing).has_value());
    const std::string later = home.path + "/later";
    CHECK_FALSE(tq::client::history_problem(later).has_value());
    CHECK(access(later.c_str(), F_OK) != 0);
    CHECK_FALSE(tq::client::history_problem("/dev/null").has_value());
    // Cannot (tests may run as root, for whom every permission is granted:
    // a directory that is not there, and a file where a directory should be).
    CHECK(tq::client::history_problem(home.path + "/missing/history") ==
          std::optional<std::string>("No such file or directory"));
    CHECK(tq::client::history_problem(existing + "/history") ==
          std::optional<std::string>("Not a directory"));

    TqdProcess tqd;
    const std::string unwritable = home.path + "/missing/history";
    TmuxScreen screen(tq_command(tqd.port(), unwritable));
    const std::string p = prompt(tqd.port());
    REQUIRE(screen.wait_for(p));
    enter(screen, "PING");
    enter(screen, "PING");
    REQUIRE(screen.wait_for("OK PONG", 10s, 2));
    const std::string warning = "tq: history will not be saved: cannot write " + unwritable +
                                " (No such file or directory)";
    CHECK(count_of(screen.capture(), warning) == 1);
  }

  TEST_CASE(
      "a history file that can no longer be written is said once, at the first save that fails") {
    TempDir home;
    const std::string directory = home.path + "/sub";
    REQUIRE(mkdir(directory.c_str(), 0700) == 0);
    const std::string history = directory + "/history";
    TqdProcess tqd;
    TmuxScreen screen(tq_command(tqd.port(), history));
    REQUIRE(screen.wait_for(prompt(tqd.port())));
    enter(screen, "PING");
    REQUIRE(screen.wait_for("OK PONG"));
    CHECK(access(history.c_str(), F_OK) == 0);  // saved
    // Gone mid-session (tests may run as root, for whom every permission is
    // granted: the directory goes instead).
    tq::testing::remove_tree(directory);
    for (int i = 0; i < 3; ++i) enter(screen, "PING");
    REQUIRE(screen.wait_for("OK PONG", 10s, 4));
    const std::string warning =
        "tq: history is no longer saved: cannot write " + history + " (No such file or directory)";
    CHECK(count_of(screen.capture(), warning) == 1);
    CHECK(count_of(screen.capture(), "history will not be saved") == 0);  // not at start
  }

  TEST_CASE("connection loss - a clear message and a reconnect, never a crash") {
    TqdProcess tqd;
    CuttingProxy proxy(tqd.port());
    TempDir home;
    TmuxScreen screen(tq_command(proxy.port(), home.path + "/history"));
    const std::string p = prompt(proxy.port());
    REQUIRE(screen.wait_for(p));
    enter(screen, "CREATE q");
    REQUIRE(screen.wait_for("OK created q"));

    // The server closes the idle connection: replaced before the next command.
    proxy.drop_all();
    enter(screen, "LIST");
    REQUIRE(screen.wait_for("tq: the server had closed the connection; reconnected"));
    REQUIRE(screen.wait_for("OK q"));

    // Lost under a write: said so, and reconnected.
    proxy.cut_after_next_request();
    enter(screen, "ENQUEUE q maybe");
    REQUIRE(screen.wait_for("tq: connection lost: server closed the connection"));
    REQUIRE(screen.wait_for("tq: ENQUEUE may or may not have run"));
    REQUIRE(screen.wait_for("tq: reconnected to"));

    // The server goes away: each command says it cannot connect; tq stays.
    REQUIRE(tqd.stop(SIGTERM) == 0);
    TmuxScreen direct(tq_command(tqd.port(), home.path + "/history"));
    REQUIRE(direct.wait_for("tq: cannot connect: 127.0.0.1:" + std::to_string(tqd.port())));
    const std::string down = "tq 127.0.0.1:" + std::to_string(tqd.port()) + " (not connected)>";
    REQUIRE(direct.wait_for(down));
    enter(direct, "LIST");
    REQUIRE(direct.wait_for("tq: not connected: 127.0.0.1:"));
    REQUIRE(direct.wait_for(down, 10s, 2));
    enter(direct, "PING");
    REQUIRE(direct.wait_for(down, 10s, 3));
    CHECK_FALSE(direct.wait_for_exit(0ms));
  }

  TEST_CASE("a wrong --password is reported once and not sent again - AUTH at the prompt is kept") {
    tq::testing::TqdOptions options;
    options.config_yaml = "auth:\n  password: s3cret\n";
    TqdProcess tqd(options);
    CuttingProxy proxy(tqd.port());
    TempDir home;
    const std::string history = home.path + "/history";
    TmuxScreen screen(tq_command(proxy.port(), history) + " --password guess");
    const std::string p = prompt(proxy.port());
    REQUIRE(screen.wait_for("ERROR NOAUTH wrong password"));
    REQUIRE(
        screen.wait_for("tq: the server refused the password given with --password or "
                        "TQ_PASSWORD\ntq: it will not be sent again; type AUTH <password> "
                        "to give another"));
    REQUIRE(screen.wait_for(p));  // connected, without a password

    enter(screen, "LIST");
    REQUIRE(screen.wait_for("ERROR NOAUTH authenticate first"));
    enter(screen, "PING");
    REQUIRE(screen.wait_for("OK PONG"));
    CHECK(count_of(screen.capture(), "wrong password") == 1);
    CHECK(auth_failures(tqd, "s3cret") == "1");

    enter(screen, "AUTH s3cret");
    REQUIRE(screen.wait_for("OK authenticated"));
    enter(screen, "CREATE q");
    REQUIRE(screen.wait_for("OK created q"));

    // A reconnect authenticates with the password typed at the prompt.
    proxy.drop_all();
    enter(screen, "LIST");
    REQUIRE(screen.wait_for("tq: the server had closed the connection; reconnected"));
    REQUIRE(screen.wait_for("OK q"));
    CHECK(count_of(screen.capture(), "wrong password") == 1);
    CHECK(auth_failures(tqd, "s3cret") == "1");

    screen.press({"C-d"});
    REQUIRE(screen.wait_for_exit());
    const std::string saved = file_text(history);
    CHECK(saved.find("PING") != std::string::npos);  // libedit writes a space as \040
    CHECK(saved.find("s3cret") == std::string::npos);
  }

  TEST_CASE("a server back with another password - refused once, then AUTH with the new one") {
    TempDir data;
    tq::testing::TqdOptions first;
    first.dir = data.path;
    first.config_yaml = "auth:\n  password: first\n";
    auto before = std::make_unique<TqdProcess>(first);
    CuttingProxy proxy(before->port());
    TmuxScreen screen(tq_command(proxy.port(), data.path + "/history") + " --password first");
    const std::string p = prompt(proxy.port());
    REQUIRE(screen.wait_for(p));
    enter(screen, "CREATE q");
    REQUIRE(screen.wait_for("OK created q"));

    REQUIRE(before->stop(SIGTERM) == 0);
    tq::testing::TqdOptions second = first;
    second.config_yaml = "auth:\n  password: second\n";
    TqdProcess after(second);
    proxy.set_upstream(after.port());
    proxy.drop_all();

    enter(screen, "LIST");
    REQUIRE(screen.wait_for("ERROR NOAUTH wrong password"));
    REQUIRE(
        screen.wait_for("tq: the server refused the password given with --password or "
                        "TQ_PASSWORD\ntq: it will not be sent again; type AUTH <password> "
                        "to give another"));
    REQUIRE(screen.wait_for("tq: reconnected to 127.0.0.1:" + std::to_string(proxy.port()) +
                            " without a password; LIST was not sent"));
    enter(screen, "PING");
    REQUIRE(screen.wait_for("OK PONG"));
    enter(screen, "AUTH second");
    REQUIRE(screen.wait_for("OK authenticated"));
    enter(screen, "LIST");
    REQUIRE(screen.wait_for("OK q"));
    CHECK(count_of(screen.capture(), "wrong password") == 1);
    CHECK(auth_failures(after, "second") == "1");
  }
}

}  // namespace repl_pty_test
