// tq: the command-line client of tqd, in four modes chosen by how it is run.
//
//   tq [--host H] [--port P]              a prompt (standard input is a terminal)
//   tq [...] < commands.txt               each line a command, no prompt
//   tq [...] ENQUEUE emails hello         one command, then exit
//   tq [...] -- ENQUEUE emails --port     one command, every word after -- sent as it is
//   tq [...] --stat [queue]               a line of STATS a second (client/stat_view.h);
//                                         --stat=queue is the same
//   tq [...] --work q -- program [args]   runs the program for each job (client/work_mode.h)
//
// tq's options go before the command. A known option after it is refused
// rather than sent: `tq ENQUEUE q hi --port 9000` would otherwise put
// "hi --port 9000" into q on the default server. After `--` nothing is
// looked at, so a payload may hold any words.
//
// --tls, or any --tls-* option, makes the connection TLS (TlsOptions in
// client/tls_options.h says what each checks).
//
// Replies go to standard output, ERROR replies and tq's own messages to
// standard error (with --raw, every reply to standard output, as sent).
//
// Exit status: 0 when every command was answered OK (a DEQUEUE that found no
// job is OK too); 1 when one was answered ERROR (or refused before sending),
// the server's ERROR NOAUTH for a wrong or missing password included; 2 when
// tq could not reach the server or was used wrongly. The same ReplSession runs the commands
// in every mode.
#include <langinfo.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <clocale>
#include <csignal>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/cancel_token.h"
#include "client/cli_numbers.h"
#include "client/history_file.h"
#include "client/repl_completion.h"
#include "client/repl_editor.h"
#include "client/repl_session.h"
#include "client/request_line.h"
#include "client/stat_view.h"
#include "client/work_mode.h"
#include "protocol/command_table.h"

namespace {

using tq::client::ReplSession;
using Outcome = ReplSession::Outcome;

constexpr int kExitOk = 0;
constexpr int kExitServerError = 1;
constexpr int kExitNoServer = 2;
constexpr int kExitUsage = 2;  // wrong flags: the same status, as documented since the start

// Ctrl-C at the prompt abandons the line; during a command it ends the wait
// for the reply (the token wakes the socket's poll).
volatile sig_atomic_t g_interrupted = 0;
tq::client::CancelToken* g_cancel = nullptr;

void on_interrupt(int) {
  g_interrupted = 1;
  if (g_cancel != nullptr) g_cancel->cancel();
}

void catch_interrupts(tq::client::CancelToken* token) {
  g_cancel = token;
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: the line editor's read must return
  sigaction(SIGINT, &action, nullptr);
}

// tq --work: the first SIGINT, SIGTERM or SIGHUP (a closed terminal) stops
// taking jobs, the second stops the programs too (client/work_mode.h). The
// count is a lock-free atomic, so two signals at once in two threads are
// still two.
std::atomic<int> g_work_signals{0};
tq::client::CancelToken* g_work_stop = nullptr;
tq::client::CancelToken* g_work_abort = nullptr;

void on_work_signal(int) {
  const int saved_errno = errno;
  if (g_work_signals.fetch_add(1) == 0) {
    g_work_stop->cancel();
  } else {
    g_work_abort->cancel();
  }
  errno = saved_errno;
}

int run_work(const tq::client::Options& options, const tq::client::WorkSettings& settings) {
  static_assert(std::atomic<int>::is_always_lock_free);
  // Static: a signal that arrives after run_work returns, while tq exits,
  // still finds live tokens.
  static tq::client::CancelToken stop;
  static tq::client::CancelToken abort;
  g_work_stop = &stop;
  g_work_abort = &abort;
  struct sigaction action {};
  action.sa_handler = on_work_signal;
  sigemptyset(&action.sa_mask);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&action.sa_mask, s);
  action.sa_flags = SA_RESTART;
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaction(s, &action, nullptr);
  // A closed standard error (tq --work ... 2>&1 | head) must not kill tq and
  // orphan its programs; they get SIGPIPE's default back (client/job_program.cc).
  signal(SIGPIPE, SIG_IGN);
  // An ignored SIGCHLD, inherited from whoever started tq, has the kernel
  // reap the programs itself: waitpid would find none, and every run would
  // read as exit 127, its job retried.
  signal(SIGCHLD, SIG_DFL);
  return tq::client::run_work(options, settings, stop, abort, std::cerr);
}

std::string history_path() {
  if (const char* path = std::getenv("TQ_HISTFILE")) return path;
  if (const char* home = std::getenv("HOME")) return std::string(home) + "/.tq_history";
  return {};
}

// A body given over several lines is joined with the newlines between them.
template <typename NextLine>
std::optional<std::string> read_body_lines(size_t bytes, NextLine next_line) {
  std::string body;
  bool first = true;
  while (first || body.size() < bytes) {
    auto line = next_line();
    if (!line) return std::nullopt;
    if (!first) body += '\n';
    body += *line;
    first = false;
  }
  return body;
}

// The time of day in UTC, as tqd's log writes it: HH:MM:SS.
std::string utc_clock() {
  const std::time_t now = std::time(nullptr);
  std::tm parts{};
  gmtime_r(&now, &parts);
  char text[16];
  std::strftime(text, sizeof text, "%H:%M:%S", &parts);
  return text;
}

// A password refused, or missing, is said as in every other mode: the
// server's ERROR NOAUTH alone does not say where tq's password came from.
void say_stat_error(const tq::client::Error& error, bool password_given) {
  std::cerr << "ERROR " << error.to_string() << "\n";
  if (!error.is(tq::protocol::ErrorCode::kNoAuth)) return;
  std::cerr << (password_given
                    ? "tq: the server refused the password given with --password or TQ_PASSWORD\n"
                    : "tq: the server needs a password: give it with --password or TQ_PASSWORD\n");
}

// tq --stat [queue]: a StatView row every `interval`, `count` rows (0: until
// Ctrl-C, which ends it with 0). A server that stops answering gets a row
// saying so, and is tried again at the next one; an ERROR (no such queue, a
// password) ends it with 1.
int run_stat(tq::client::Options options, const std::string& queue,
             std::chrono::milliseconds interval, uint64_t count, tq::client::CancelToken& cancel) {
  using Clock = std::chrono::steady_clock;
  catch_interrupts(&cancel);
  options.reconnect.attempts = 1;  // each row tries once more
  auto client = tq::client::Client::connect(options);
  if (!client) {
    // A password the server refused is its ERROR NOAUTH: 1, as in every mode.
    if (client.error().kind == tq::client::ErrorKind::kServer) {
      say_stat_error(client.error(), !options.password.empty());
      return kExitServerError;
    }
    std::cerr << "tq: " << client.error().to_string() << "\n";
    return kExitNoServer;
  }
  const tq::client::StatView view(queue);
  const bool terminal = isatty(STDOUT_FILENO);
  std::optional<tq::client::Fields> previous;
  Clock::time_point previous_at;
  for (uint64_t row = 0; count == 0 || row < count; ++row) {
    if (row > 0 && !cancel.sleep_for_ms(static_cast<int>(interval.count()))) return kExitOk;
    auto sample = client->stats(queue, &cancel);  // Ctrl-C ends a wait for the reply too
    const Clock::time_point at = Clock::now();
    if (g_interrupted) return kExitOk;
    if (!sample && sample.error().kind == tq::client::ErrorKind::kServer) {
      say_stat_error(sample.error(), !options.password.empty());
      return kExitServerError;
    }
    // Titles again every screenful on a terminal; once into a file or a pipe.
    if (row == 0 || (terminal && row % 20 == 0)) std::cout << view.header() << "\n";
    if (!sample) {
      std::cout << utc_clock() << "  (no answer: " << sample.error().message << ")" << std::endl;
      previous.reset();  // the next row's rates would span the gap
      continue;
    }
    const auto elapsed =
        std::chrono::duration_cast<std::chrono::milliseconds>(at - previous_at).count();
    std::cout << view.row(utc_clock(), *sample, previous ? &*previous : nullptr, elapsed)
              << std::endl;
    previous = std::move(sample).value();
    previous_at = at;
  }
  return kExitOk;
}

int run_interactive(ReplSession& session, tq::client::CancelToken& cancel) {
  catch_interrupts(&cancel);
  // libedit decodes what is typed by the locale's character type; in the
  // "C" locale a program starts in, it drops every byte above 127, so
  // "héllo" would be sent as "hllo". Only LC_CTYPE: numbers and messages
  // stay as they are.
  // A locale that is not installed (LANG passed in over ssh, a container
  // with C.UTF-8 only) leaves the C locale: then C.UTF-8, which Debian always
  // has, as terminals today send UTF-8.
  const char* locale = std::setlocale(LC_CTYPE, "");
  if (locale == nullptr || std::string_view(nl_langinfo(CODESET)) == "ANSI_X3.4-1968") {
    std::setlocale(LC_CTYPE, "C.UTF-8");
  }
  const std::string history = history_path();
  // libedit saves nothing, and says nothing, when the file cannot be written:
  // said here, once a session (at start, or at the first save that fails).
  bool history_unsaved_said = false;
  auto say_history_unsaved = [&](const char* when, const std::string& reason) {
    if (history_unsaved_said) return;
    std::cerr << "tq: history " << when << ": cannot write " << history << " (" << reason << ")\n";
    history_unsaved_said = true;
  };
  if (!history.empty()) {
    if (auto problem = tq::client::history_problem(history)) {
      say_history_unsaved("will not be saved", *problem);
    }
  }
  tq::client::LineEditor editor(history, [&](std::string_view line) {
    return tq::client::complete(line, [&] { return session.queue_names(); });
  });
  if (session.connect() == Outcome::kOk && session.check_answers() == Outcome::kOk) {
    std::cout << "Connected. HELP lists the commands; Tab completes; Ctrl-D leaves.\n";
  }
  auto body_from_prompt = [&](size_t bytes) {
    auto body = read_body_lines(
        bytes, [&] { return editor.read_line("... ", tq::client::LineEditor::LineKind::kBody); });
    // Ctrl-C or Ctrl-D left the cursor on the ... line: what tq says next
    // starts a line of its own, as after Ctrl-C at the prompt.
    if (!body) std::cout << "\n" << std::flush;
    return body;
  };
  for (;;) {
    g_interrupted = 0;
    auto line = editor.read_line(session.prompt());
    if (auto failure = editor.take_save_failure())
      say_history_unsaved("is no longer saved", *failure);
    if (!line) {
      std::cout << "\n";
      if (g_interrupted) continue;  // Ctrl-C: a fresh prompt
      return kExitOk;               // Ctrl-D
    }
    if (session.run(*line, body_from_prompt) == Outcome::kQuit) return kExitOk;
  }
}

int exit_status(Outcome outcome) {
  switch (outcome) {
    case Outcome::kOk:
    case Outcome::kQuit:
      return kExitOk;
    case Outcome::kServerError:
      return kExitServerError;
    case Outcome::kNoServer:
    case Outcome::kInterrupted:
      return kExitNoServer;
  }
  return kExitNoServer;
}

int run_script(ReplSession& session) {
  // A file written on Windows ends its lines, PUT bodies' too, with "\r\n";
  // the first line says which kind of file this is, so that a '\r' at the end
  // of a body line in a "\n" file stays part of the body.
  std::optional<bool> crlf;
  auto next_line = [&crlf]() -> std::optional<std::string> {
    std::string line;
    if (!std::getline(std::cin, line)) return std::nullopt;
    const bool ends_in_cr = !line.empty() && line.back() == '\r';
    if (!crlf) crlf = ends_in_cr;
    if (*crlf && ends_in_cr) line.pop_back();
    return line;
  };
  auto body_from_input = [&](size_t bytes) { return read_body_lines(bytes, next_line); };
  if (Outcome connected = session.connect(); connected != Outcome::kOk) {
    return exit_status(connected);
  }
  int status = kExitOk;
  while (auto line = next_line()) {
    switch (session.run(*line, body_from_input)) {
      case Outcome::kOk:
        break;
      case Outcome::kServerError:
        status = kExitServerError;
        break;
      case Outcome::kNoServer:
      case Outcome::kInterrupted:
        // The rest would run out of order. (Whether more lines follow is not
        // asked: a pipe still open would hold tq here.)
        std::cerr << "tq: the script stops here: no line after this one is run\n";
        return kExitNoServer;
      case Outcome::kQuit:
        return status;
    }
  }
  return status;
}

int run_one(ReplSession& session, const std::string& line) {
  // PUT's body is standard input, whole; a final newline (echo's) is not part of it.
  auto body_from_stdin = [](size_t bytes) -> std::optional<std::string> {
    // From a terminal it would wait with no word of what for.
    if (isatty(STDIN_FILENO)) {
      std::cerr << "tq: type the " << bytes
                << "-byte body, then Enter and Ctrl-D (or pipe it in)\n";
    }
    std::string body((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    if (body.size() == bytes + 1 && body.back() == '\n') body.pop_back();
    return body;
  };
  if (Outcome connected = session.connect(); connected != Outcome::kOk) {
    return exit_status(connected);
  }
  return exit_status(session.run(line, body_from_stdin));
}

// How an option takes a value.
enum class OptionValue {
  kNone,          // a flag: --raw
  kJoinedOnly,    // only --stat=emails: in tq --stat emails, the queue is the command
  kJoinedOrNext,  // --port=9000 or --port 9000
};

// What an option's value is, with an example, for a message about one given
// without it.
std::string value_of(std::string_view option) {
  static const std::pair<std::string_view, std::string_view> kValues[] = {
      {"--host", "a name or an address, such as --host db1.example.com"},
      {"--port", "a port number, such as --port 9000"},
      {"--timeout", "a duration, such as --timeout 5s"},
      {"--password", "the password, such as --password s3cret (or set TQ_PASSWORD)"},
      {"--tls-ca", "a PEM file of CA certificates, such as --tls-ca ca.pem"},
      {"--tls-cert", "a PEM certificate file, such as --tls-cert client.pem"},
      {"--tls-key", "a PEM private key file, such as --tls-key client.key"},
      {"--tls-server-name", "a host name, such as --tls-server-name tq.example.com"},
      {"--interval", "a duration, such as --interval 2s"},
      {"--work", "queue names separated by commas, such as --work emails,sms -- ./program"},
      {"--concurrency", "how many programs run at once, such as --concurrency 4"},
      {"--job-timeout", "a duration, such as --job-timeout 10m"},
      {"--fail-exit", "exit statuses separated by commas, such as --fail-exit 65,78"},
      {"--count", "a number, such as --count 10"},
  };
  for (const auto& [name, value] : kValues) {
    if (name == option) return std::string(value);
  }
  return "write " + std::string(option) + " <value> or " + std::string(option) + "=<value>";
}

// tq's arguments (without the program name), split into its options and the
// command: the command starts at the first word that is not an option or an
// option's value, or after `--`. `option_value(name)` says how an option
// takes a value, and is nullopt for a name tq does not know.
struct SplitArguments {
  std::vector<std::string> options;  // for CLI11, in order
  std::vector<std::string> command;  // the words to send; empty: no command
  std::string error;                 // not empty: say this and exit 2
};

SplitArguments split_arguments(
    const std::vector<std::string>& args,
    const std::function<std::optional<OptionValue>(std::string_view)>& option_value) {
  auto option_name = [](std::string_view arg) { return arg.substr(0, arg.find('=')); };
  SplitArguments split;
  // The value of an option given as the next word: "tq --password PING"
  // takes PING for the password, and leaves no command.
  std::string_view last_option;
  std::string_view last_value;
  size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      split.command.assign(args.begin() + static_cast<ptrdiff_t>(i) + 1, args.end());
      return split;
    }
    if (arg.size() < 2 || arg[0] != '-') break;  // the command
    const std::string_view name = option_name(arg);
    const std::optional<OptionValue> takes = option_value(name);
    if (!takes) {
      split.error = "unknown option '" + arg + "' (tq --help lists them)";
      return split;
    }
    const bool joined = arg.find('=') != std::string::npos;
    // CLI11 would take --raw=false for no --raw, and say only "Could not
    // convert: --raw = x" of --raw=x.
    if (*takes == OptionValue::kNone && joined) {
      split.error = std::string(name) + " takes no value: write " + std::string(name) +
                    " alone, or leave it out";
      return split;
    }
    // CLI11 would say only "--port: 1 required UINT missing". "--" is no
    // value: it starts the command (tq --work emails -- ./send.sh).
    if (*takes == OptionValue::kJoinedOrNext && !joined &&
        (i + 1 == args.size() || args[i + 1] == "--")) {
      split.error = std::string(name) + " takes a value: " + value_of(name);
      return split;
    }
    // CLI11 would say "--port: 1 required UINT missing" of --port= too.
    if (*takes == OptionValue::kJoinedOrNext && joined && arg.back() == '=') {
      split.error = arg + " has no value after the '=': " + value_of(name);
      return split;
    }
    split.options.push_back(arg);
    last_value = {};
    if (*takes == OptionValue::kJoinedOrNext && !joined) {
      split.options.push_back(args[++i]);
      last_option = arg;
      last_value = args[i];
    }
  }
  split.command.assign(args.begin() + static_cast<ptrdiff_t>(i), args.end());
  // A value spelt as a verb (in any case), with nothing after it, is a command
  // whose option lost its value: running no command (or a prompt) instead
  // would hide the mistake. --password=PING still means that password.
  if (split.command.empty() && !last_value.empty()) {
    const tq::protocol::CommandSpec* verb = tq::protocol::find_command(last_value);
    if (verb != nullptr) {  // in any case, as tq ping runs PING
      split.error = std::string(last_option) + " took '" + std::string(last_value) +
                    "' as its value, and no command is left: give the value first (tq " +
                    std::string(last_option) + " <value> " + std::string(last_value) +
                    "), or write " + std::string(last_option) + "=" + std::string(last_value) +
                    " if that is the value";
    }
  }
  for (const std::string& word : split.command) {
    if (word.size() < 2 || word[0] != '-' || !option_value(option_name(word))) continue;
    // The options given before it stay before it (tq --stat --count ...
    // emails), by name: a value may be a password.
    std::string before;
    for (size_t k = 0; k < split.options.size(); ++k) {
      const std::string_view name = option_name(split.options[k]);
      const bool joined = split.options[k].find('=') != std::string::npos;
      const bool value_next = !joined && option_value(name) == OptionValue::kJoinedOrNext;
      before += std::string(name) + (joined || value_next ? " ... " : " ");
      if (value_next) ++k;  // its value, the next element
    }
    split.error = "'" + word + "' comes after the command; options go before it: tq " + before +
                  word + " ... " + split.command[0] + " ... (to send '" + word +
                  "' as part of the command, put -- before the command)";
    split.command.clear();
    return split;
  }
  return split;
}

// CLI11's usage line, with the command tq's own parsing takes after the options.
class UsageFormatter : public CLI::Formatter {
 public:
  std::string make_usage(const CLI::App*, std::string) const override {
    return "Usage: tq [OPTIONS] [--] [COMMAND...]\n";
  }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "tq: the command-line client of tqd. Without a command it opens a prompt (or, when\n"
      "standard input is not a terminal, runs one command per input line); with one it\n"
      "runs it and exits 0 on OK, 1 on ERROR, 2 when the server cannot be reached.\n"
      "Options go before the command; after --, every word is sent as it is.",
      "tq"};
  app.formatter(std::make_shared<UsageFormatter>());
  // A wrong flag reads as tq's own errors do ("tq: --timeout: expected ...").
  app.failure_message(
      [](const CLI::App*, const CLI::Error& e) { return "tq: " + std::string(e.what()) + "\n"; });
  app.set_version_flag("--version", "tq " TQ_VERSION);
  tq::client::Options options;
  std::string timeout = "5s";
  bool raw = false;
  bool tls_insecure = false;
  bool no_colour = false;
  app.add_option("--host", options.host, "server address")->capture_default_str();
  app.add_option("--port", options.port, "server port")
      ->capture_default_str()
      ->check(tq::client::whole_number(1, 65535));
  app.add_option("--timeout", timeout,
                 "to connect, and to wait for each reply (DEQUEUE adds its WAIT)")
      ->capture_default_str();
  app.add_option("--password", options.password,
                 "sent with AUTH on connecting (default: $TQ_PASSWORD)");
  bool tls = false;
  app.add_flag("--tls", tls,
               "connect with TLS, trusting the system's CAs and checking the certificate's name");
  app.add_option("--tls-ca", options.tls.ca_file,
                 "trust the CAs in this PEM file instead of the system's (implies --tls)")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-cert", options.tls.cert_file,
                 "client certificate (PEM), for a server that asks for one; needs --tls-key "
                 "(implies --tls)")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", options.tls.key_file,
                 "the client certificate's private key (PEM) (implies --tls)")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-server-name", options.tls.server_name,
                 "the name the server's certificate must be for, and the SNI sent (default: "
                 "--host) (implies --tls)");
  app.add_flag("--tls-insecure", tls_insecure,
               "do not check the server's certificate at all: encrypted, but anyone in the "
               "middle can pose as the server (implies --tls)");
  app.add_flag("--raw", raw, "print replies exactly as the server sends them");
  app.add_flag("--no-color", no_colour, "no colours, even on a terminal (so does $NO_COLOR)");
  // Each --stat's value: empty, or the queue of --stat=emails (tq --stat
  // emails gives it as the command). A vector, so that --stat twice is still
  // --stat, as when it was a flag.
  std::vector<std::string> stat_values;
  std::string interval = "1s";
  uint64_t count = 0;
  app.add_option("--stat", stat_values,
                 "a line a second of the server's STATS (or a queue's: tq --stat emails): jobs in "
                 "each state, and enqueues, deliveries, acks and lease timeouts per second")
      ->expected(0, 1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->type_name("[QUEUE]");
  app.add_option("--interval", interval, "--stat: time between lines")->capture_default_str();
  std::string work_queues;
  tq::client::WorkSettings work;
  std::string job_timeout = "0";
  std::string fail_exits;
  app.add_option("--work", work_queues,
                 "run a program for each job from these queues (a,b,...): tq --work emails -- "
                 "./send.sh. Exit 0 ACKs the job, a --fail-exit status FAILs it, any other NACKs "
                 "it (retried)");
  app.add_option("--concurrency", work.concurrency, "--work: programs run at once (1 to 1000)")
      ->capture_default_str()
      ->check(tq::client::whole_number(1, 1000));
  app.add_option("--job-timeout", job_timeout,
                 "--work: stop a program that runs longer (SIGTERM, SIGKILL 5s later) and retry "
                 "its job (0: no limit)")
      ->capture_default_str();
  app.add_option("--fail-exit", fail_exits,
                 "--work: exit statuses (a,b,...) that FAIL the job: to dead letters, not retried");
  app.add_option("--count", count,
                 "--stat: stop after this many lines; --work: after this many jobs, up to "
                 "1000000000 (0: at Ctrl-C)")
      ->capture_default_str()
      ->check(tq::client::whole_number(0, 1'000'000'000));
  app.footer(
      "Examples:\n"
      "  tq                                  a prompt on 127.0.0.1:8080\n"
      "  tq ENQUEUE emails Send welcome email\n"
      "  printf 'hello' | tq PUT emails 5 PRIORITY 3\n"
      "  tq --port 9000 LIST                 options go before the command\n"
      "  tq -- ENQUEUE notes try --port      after --, every word is sent as it is\n"
      "  tq --port 9000 < commands.txt\n"
      "  tq --stat emails                    a line a second: jobs waiting, in progress, per "
      "second\n"
      "  tq --work emails -- ./send.sh       each job's payload on the program's standard input\n"
      "  tq --tls-ca ca.pem --port 8443 PING  TLS, trusting the CA that signed tqd's certificate");

  // CLI11 parses the options only; the command is split off first (see
  // split_arguments), so that a misplaced option is an error, not a payload.
  auto option_value = [&](std::string_view name) -> std::optional<OptionValue> {
    const CLI::Option* option = app.get_option_no_throw(std::string(name));
    if (option == nullptr || option->get_positional()) return std::nullopt;
    if (option->get_expected_max() == 0) return OptionValue::kNone;
    return option->get_expected_min() == 0 ? OptionValue::kJoinedOnly : OptionValue::kJoinedOrNext;
  };
  SplitArguments split =
      split_arguments(std::vector<std::string>(argv + 1, argv + argc), option_value);
  if (!split.error.empty()) {
    std::cerr << "tq: " << split.error << "\n";
    return kExitUsage;
  }
  std::vector<char*> option_argv = {argv[0]};
  for (std::string& option : split.options) option_argv.push_back(option.data());
  try {
    app.parse(static_cast<int>(option_argv.size()), option_argv.data());
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  auto timeout_ms = tq::client::parse_duration(timeout);
  if (!timeout_ms || timeout_ms->count() <= 0) {
    std::cerr << "tq: --timeout: expected a duration above 0, such as 5s or 500ms, got '" << timeout
              << "'\n";
    return kExitUsage;
  }
  options.timeout_ms = static_cast<int>(std::min<int64_t>(timeout_ms->count(), INT32_MAX));
  options.tls.enabled = tls || tls_insecure || !options.tls.ca_file.empty() ||
                        !options.tls.cert_file.empty() || !options.tls.key_file.empty() ||
                        !options.tls.server_name.empty();
  options.tls.verify = !tls_insecure;
  if (options.tls.cert_file.empty() != options.tls.key_file.empty()) {
    std::cerr << "tq: --tls-cert and --tls-key go together: a client certificate and its key\n";
    return kExitUsage;
  }
  // --password '' means none, even with TQ_PASSWORD set.
  if (app.count("--password") == 0) {
    if (const char* password = std::getenv("TQ_PASSWORD")) options.password = password;
  }
  if (const size_t colon = options.host.rfind(':');
      colon != std::string::npos && options.host.find(':') == colon &&
      tq::client::parse_u64(std::string_view(options.host).substr(colon + 1))) {
    std::cerr << "tq: --host takes a name or an address, without a port: --host "
              << options.host.substr(0, colon) << " --port " << options.host.substr(colon + 1)
              << "\n";
    return kExitUsage;
  }

  const bool stat = app.count("--stat") > 0;
  if (app.count("--work") > 0) {
    if (stat) {
      std::cerr << "tq: --work and --stat are two modes; give one\n";
      return kExitUsage;
    }
    auto queues = tq::client::parse_queue_list(work_queues);
    if (!queues) {
      std::cerr << "tq: --work: expected queue names separated by commas (--work emails,sms), "
                   "got '"
                << work_queues << "'\n";
      return kExitUsage;
    }
    work.queues = std::move(*queues);
    work.program = split.command;
    if (work.program.empty()) {
      std::cerr << "tq: --work needs the program to run for each job: tq --work " << work_queues
                << " -- ./program [args]\n";
      return kExitUsage;
    }
    if (auto problem = tq::client::program_problem(work.program[0])) {
      std::cerr << "tq: --work: " << *problem << "\n";
      return kExitUsage;
    }
    auto limit = tq::client::parse_duration(job_timeout);
    if (!limit) {
      std::cerr << "tq: --job-timeout: expected a duration such as 10m or 30s, got '" << job_timeout
                << "'\n";
      return kExitUsage;
    }
    work.job_timeout = *limit;
    if (!fail_exits.empty()) {
      auto statuses = tq::client::parse_exit_statuses(fail_exits);
      if (!statuses) {
        std::cerr << "tq: --fail-exit: expected exit statuses from 1 to 255 separated by "
                     "commas (--fail-exit 65,78), got '"
                  << fail_exits << "'\n";
        return kExitUsage;
      }
      work.fail_exits = std::move(*statuses);
    }
    work.max_jobs = count;
    return run_work(options, work);
  }
  if (app.count("--concurrency") + app.count("--job-timeout") + app.count("--fail-exit") > 0) {
    std::cerr << "tq: --concurrency, --job-timeout and --fail-exit go with --work\n";
    return kExitUsage;
  }
  if (stat) {
    auto every = tq::client::parse_duration(interval);
    if (!every || every->count() <= 0 || every->count() > INT32_MAX) {
      std::cerr << "tq: --interval: expected a duration above 0, such as 1s or 500ms, got '"
                << interval << "'\n";
      return kExitUsage;
    }
    std::vector<std::string> queues = split.command;
    for (const std::string& value : stat_values) {
      if (!value.empty()) queues.push_back(value);
    }
    if (queues.size() > 1) {
      std::cerr << "tq: --stat takes one queue name at most (tq --stat emails)\n";
      return kExitUsage;
    }
    tq::client::CancelToken cancel;
    return run_stat(options, queues.empty() ? "" : queues[0], *every, count, cancel);
  }
  if (app.count("--interval") > 0) {
    std::cerr << "tq: --interval goes with --stat (tq --stat --interval 2s emails)\n";
    return kExitUsage;
  }
  if (app.count("--count") > 0) {
    std::cerr << "tq: --count goes with --stat or --work (tq --work --count 10 emails -- prog)\n";
    return kExitUsage;
  }
  // NO_COLOR's convention (no-color.org): set and not empty.
  const char* no_color_env = std::getenv("NO_COLOR");
  const bool colour = !raw && !no_colour && (no_color_env == nullptr || *no_color_env == '\0');
  const tq::client::RenderStyle style{colour && isatty(STDOUT_FILENO), raw};
  const tq::client::RenderStyle error_style{colour && isatty(STDERR_FILENO), raw};
  const std::vector<std::string>& command = split.command;
  const ReplSession::Mode mode = !command.empty()       ? ReplSession::Mode::kOneCommand
                                 : isatty(STDIN_FILENO) ? ReplSession::Mode::kPrompt
                                                        : ReplSession::Mode::kScript;
  tq::client::CancelToken cancel;
  ReplSession session(options, style, error_style, mode, std::cout, std::cerr, &cancel);

  if (!command.empty()) {
    std::string line;
    for (const auto& word : command) line += (line.empty() ? "" : " ") + word;
    while (!line.empty() && line.back() == '\r') line.pop_back();  // as run() does
    if (const auto words = tq::client::split_words(line); words.empty() || words[0][0] == '#') {
      std::cerr << "tq: the command is empty (or a # comment); tq --help shows how to give one\n";
      return kExitUsage;
    }
    return run_one(session, line);
  }
  return mode == ReplSession::Mode::kPrompt ? run_interactive(session, cancel)
                                            : run_script(session);
}
