// tq --work: build/tq runs a program for each job of a real tqd. The programs
// are small sh scripts that write what they were given into a directory the
// test reads afterwards, or print a line the test waits for.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "client/work_mode.h"
#include "tests/client/cutting_proxy.h"
#include "tests/client/subprocess.h"
#include "tests/support/tqd_process.h"

namespace work_test {

using namespace std::chrono_literals;
using tq::testing::BackgroundProcess;
using tq::testing::run_program;
using tq::testing::TempDir;
using tq::testing::TqdProcess;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// tq --port <port> <args...>.
std::vector<std::string> tq_argv(uint16_t port, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {TQ_PATH, "--port", std::to_string(port)};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// That command, reading its standard error (where --work reports) and
// output as lines.
BackgroundProcess start_tq(uint16_t port, const std::vector<std::string>& args) {
  return BackgroundProcess(tq_argv(port, args), /*with_stderr=*/true);
}

BackgroundProcess start_tq(const TqdProcess& tqd, const std::vector<std::string>& args) {
  return start_tq(tqd.port(), args);
}

// Waits up to 10 s for `done` to hold, looking every 20 ms.
bool eventually(const std::function<bool()>& done) {
  const auto give_up = std::chrono::steady_clock::now() + 10s;
  while (!done()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

// A number from STATS.
uint64_t stat_of(tq::client::Client& client, const std::string& name) {
  auto stats = client.stats();
  REQUIRE(stats.ok());
  return std::stoull(tq::client::field(*stats, name));
}

// A --work program that says "started" and runs until `go` exists: the test
// decides when it ends, and so when tq sends its ACK.
std::vector<std::string> until_file(const std::string& go) {
  return {"sh", "-c", "echo started; while [ ! -e " + go + " ]; do sleep 0.05; done"};
}

// tq's arguments to run one job of queue "q" with until_file(go).
std::vector<std::string> one_job_until(const std::string& go) {
  std::vector<std::string> args = {"--work", "q", "--count", "1", "--"};
  for (const std::string& word : until_file(go)) args.push_back(word);
  return args;
}

size_t count_lines(const BackgroundProcess& tq, const std::string& needle) {
  size_t n = 0;
  for (const auto& line : tq.lines()) n += line.find(needle) != std::string::npos ? 1 : 0;
  return n;
}

std::string all_lines(const BackgroundProcess& tq) {
  std::string text;
  for (const auto& line : tq.lines()) text += line + "\n";
  return text;
}

tq::client::Client connect(const TqdProcess& tqd) {
  auto client = tq::client::Client::connect({.port = tqd.port()});
  REQUIRE(client.ok());
  return std::move(client).value();
}

// What the tests of a run's last request start from: tqd, a CuttingProxy
// before it, a client straight to tqd, and queue q holding one job, `id`
// (`settings` applied to q before it is put).
struct OneJobRun {
  TqdProcess tqd;
  tq::testing::CuttingProxy proxy{tqd.port()};
  TempDir dir;
  tq::client::Client client = connect(tqd);
  uint64_t id = 0;
  std::optional<BackgroundProcess> worker;  // tq --work, once start()ed

  explicit OneJobRun(const tq::client::Fields& settings = {}) {
    REQUIRE(client.create("q").ok());
    if (!settings.empty()) REQUIRE(client.config("q", settings).ok());
    auto put = client.enqueue("q", "x");
    REQUIRE(put.ok());
    id = *put;
  }

  // tq --work through the proxy, its program (one_job_until) started.
  BackgroundProcess& start() {
    worker.emplace(tq_argv(proxy.port(), one_job_until(dir.path + "/go")), /*with_stderr=*/true);
    REQUIRE(worker->wait_for_line("started", 10s).has_value());
    return *worker;
  }
  // Once the run's first TOUCH is through, the next is a third of the
  // lease off: the next request it sends is the ACK, after go().
  void wait_first_touch() {
    REQUIRE(eventually([&] { return stat_of(client, "commands_touch") >= 1; }));
  }
  void go() { std::ofstream(dir.path + "/go").close(); }

  // The run loses its job while out of reach: once its first TOUCH is
  // through, the server goes out of tq's reach, the run's delivery ends (an
  // operator's NACK) and `client` takes the job as another worker. Then the
  // program ends; tq cannot reach the server and tries again, and its next
  // try reaches tqd on a new connection. Returns the other worker's job,
  // once tq has exited (0).
  tq::client::Job hand_over_while_away() {
    wait_first_touch();
    const tq::testing::LoopbackSocket nobody = tq::testing::bind_loopback_socket();
    proxy.set_upstream(nobody.port);
    proxy.drop_all();
    REQUIRE(client.nack(id).ok());
    auto other = client.dequeue("q");
    REQUIRE((other.ok() && other->has_value()));
    const int tried = proxy.connections_accepted();
    go();
    REQUIRE(eventually([&] { return proxy.connections_accepted() > tried; }));
    proxy.set_upstream(tqd.port());
    CHECK(worker->wait_for_exit(20s) == 0);
    ::close(nobody.fd);
    return **other;
  }
};

}  // namespace

TEST_SUITE("tq --work") {
  TEST_CASE(
      "each job's payload is the program's standard input, its id, queue and attempt its "
      "environment, and exit 0 ACKs it") {
    TqdProcess tqd;
    TempDir out;
    auto client = connect(tqd);
    REQUIRE(client.create("emails").ok());
    const std::string body = "line one\nline two\\n\ttab\r\n";  // bytes the one-line form escapes
    auto put = client.put("emails", body);
    REQUIRE(put.ok());
    REQUIRE(client.enqueue("emails", "second").ok());

    BackgroundProcess tq = start_tq(tqd, {"--work", "emails", "--count", "2", "--", "sh", "-c",
                                          "cat > " + out.path +
                                              "/$TQ_JOB_ID.payload; "
                                              "echo \"$TQ_QUEUE $TQ_ATTEMPT\" > " +
                                              out.path + "/$TQ_JOB_ID.env"});
    CHECK(tq.wait_for_exit(20s) == 0);
    INFO(all_lines(tq));
    CHECK(read_file(out.path + "/1.payload") == body);
    CHECK(read_file(out.path + "/1.env") == "emails 1\n");
    CHECK(read_file(out.path + "/2.payload") == "second");
    CHECK(count_lines(tq, "job 1 from emails (attempt 1): exit 0 after ") == 1);
    CHECK(count_lines(tq, "; acked") == 2);
    // Both finished: nothing ready, nothing leased, and the server has no job 1.
    auto stats = client.stats("emails");
    REQUIRE(stats.ok());
    CHECK(tq::client::field(*stats, "ready") == "0");
    CHECK(tq::client::field(*stats, "leased") == "0");
    CHECK(client.job(1).error().is(tq::protocol::ErrorCode::kNotFound));
  }

  TEST_CASE(
      "a SIGCHLD ignored by whoever started tq does not hide how the programs end - exit 0 "
      "ACKs") {
    // An ignored SIGCHLD is inherited through exec, and has the kernel reap
    // children itself: tq's waitpid then found none, and read every run as
    // exit 127, to be retried.
    TqdProcess tqd;
    auto client = connect(tqd);
    REQUIRE(client.create("q").ok());
    REQUIRE(client.enqueue("q", "job").ok());
    BackgroundProcess tq({"bash", "-c", "trap '' CHLD; exec \"$@\"", "bash", TQ_PATH, "--port",
                          std::to_string(tqd.port()), "--work", "q", "--count", "1", "--", "true"},
                         /*with_stderr=*/true);
    CHECK(tq.wait_for_exit(20s) == 0);
    INFO(all_lines(tq));
    CHECK(count_lines(tq, "job 1 from q (attempt 1): exit 0 after ") == 1);
    CHECK(count_lines(tq, "; acked") == 1);
  }

  TEST_CASE(
      "a failing exit NACKs the job to be retried, and a --fail-exit status sends it to "
      "dead letters at once") {
    TqdProcess tqd;
    auto client = connect(tqd);
    REQUIRE(client.create("jobs").ok());
    REQUIRE(client.enqueue("jobs", "flaky").ok());  // 1: fails once, then works
    REQUIRE(client.enqueue("jobs", "bad").ok());    // 2: a job that can never work
    BackgroundProcess tq = start_tq(
        tqd, {"--work", "jobs", "--fail-exit", "65,78", "--count", "3", "--", "sh", "-c",
              "p=$(cat); [ \"$p\" = bad ] && exit 65; [ \"$TQ_ATTEMPT\" = 1 ] && exit 3; exit 0"});
    CHECK(tq.wait_for_exit(20s) == 0);
    INFO(all_lines(tq));
    CHECK(count_lines(tq, "job 1 from jobs (attempt 1): exit 3 after ") == 1);
    CHECK(count_lines(tq, "handed back to be retried (NACK)") == 1);
    CHECK(count_lines(tq, "job 1 from jobs (attempt 2): exit 0 after ") == 1);
    CHECK(count_lines(tq, "job 2 from jobs (attempt 1): exit 65 after ") == 1);
    CHECK(count_lines(tq, "failed: moved to dead letters") == 1);
    CHECK(client.job(1).error().is(tq::protocol::ErrorCode::kNotFound));  // acked
    auto dead = client.job(2);
    REQUIRE(dead.ok());
    CHECK(dead->state == "dead");
    CHECK(dead->reason == "failed: sh ended with exit 65");
  }

  TEST_CASE(
      "a program that runs past the queue's ack_timeout keeps its lease - the job runs once") {
    TqdProcess tqd;
    auto client = connect(tqd);
    REQUIRE(client.create("slow").ok());
    // A TOUCH each third of the lease: a 600 ms lease lapses only if tq is
    // held 400 ms, which a CI machine busy with other builds did to 300 ms
    // (a lease lost after 1.0 s of a 1.2 s program).
    REQUIRE(client.config("slow", {{"ack_timeout", "600ms"}}).ok());
    REQUIRE(client.enqueue("slow", "x").ok());
    // A second worker on the queue would take the job if its lease ran out.
    BackgroundProcess tq =
        start_tq(tqd, {"--work", "slow", "--count", "1", "--", "sh", "-c", "sleep 2"});
    CHECK(tq.wait_for_exit(20s) == 0);
    INFO(all_lines(tq));
    CHECK(count_lines(tq, "job 1 from slow (attempt 1): exit 0 after 2.") == 1);
    CHECK(count_lines(tq, "; acked") == 1);
    auto stats = client.stats("slow");
    REQUIRE(stats.ok());
    CHECK(tq::client::field(*stats, "timed_out_total") == "0");
    CHECK(client.job(1).error().is(tq::protocol::ErrorCode::kNotFound));
  }

  TEST_CASE("a server that stops answering does not hold up the watch on a program") {
    TqdProcess tqd;
    auto client = connect(tqd);
    REQUIRE(client.create("q").ok());
    REQUIRE(client.config("q", {{"ack_timeout", "1500ms"}}).ok());  // a TOUCH each 0.5 s
    REQUIRE(client.enqueue("q", "x").ok());
    BackgroundProcess tq = start_tq(
        tqd, {"--timeout", "30s", "--work", "q", "--count", "1", "--job-timeout", "1s", "--", "sh",
              "-c", "trap 'echo terminated; exit 1' TERM; echo started; sleep 60 & wait"});
    REQUIRE(tq.wait_for_line("started", 10s).has_value());
    // Stopped, tqd takes the TOUCHes but answers none of them.
    REQUIRE(kill(tqd.pid(), SIGSTOP) == 0);
    struct Continue {
      pid_t pid;
      ~Continue() { kill(pid, SIGCONT); }
    } resume{tqd.pid()};
    // Its --job-timeout stops the program while tqd is still stopped. A TOUCH
    // that waited for its answer as long as --timeout allows (30 s) held it up.
    const bool stopped_in_time = tq.wait_for_line("terminated", 10s).has_value();
    REQUIRE(kill(tqd.pid(), SIGCONT) == 0);
    CHECK(stopped_in_time);
    const bool handed_back =
        tq.wait_for_line("(stopped at --job-timeout 1.0s); handed back", 20s).has_value();
    INFO(all_lines(tq));
    CHECK(handed_back);
    CHECK(tq.wait_for_exit(20s) == 0);
    auto job = client.job(1);
    REQUIRE(job.ok());
    CHECK(job->state == "ready");
  }

  TEST_CASE(
      "--job-timeout stops a program that runs too long, with what it started, and retries "
      "the job") {
    TqdProcess tqd;
    auto client = connect(tqd);
    REQUIRE(client.create("hung").ok());
    REQUIRE(client.enqueue("hung", "x").ok());
    // The first attempt hangs in a child of the shell: stopping the program
    // must reach it too, or tq would wait for it.
    BackgroundProcess tq =
        start_tq(tqd, {"--work", "hung", "--job-timeout", "300ms", "--count", "2", "--", "sh", "-c",
                       "[ \"$TQ_ATTEMPT\" = 1 ] && sleep 60; exit 0"});
    CHECK(tq.wait_for_exit(20s) == 0);
    INFO(all_lines(tq));
    CHECK(count_lines(tq, "job 1 from hung (attempt 1): killed by SIGTERM after ") == 1);
    CHECK(count_lines(tq, "(stopped at --job-timeout 300ms); handed back to be retried") == 1);
    CHECK(count_lines(tq, "job 1 from hung (attempt 2): exit 0 after ") == 1);
    CHECK(client.job(1).error().is(tq::protocol::ErrorCode::kNotFound));
  }

  TEST_CASE("what a stopped program started is killed too, even when it ignores SIGTERM") {
    TqdProcess tqd;
    TempDir out;
    auto client = connect(tqd);
    REQUIRE(client.create("q").ok());
    REQUIRE(client.enqueue("q", "x").ok());
    const std::string pid_file = out.path + "/pid";
    // The --job-timeout must come after the inner sh has set its trap and
    // written its pid: two shells start first, and on a loaded machine that
    // took more than 300 ms, the stop found no such process and no pid file.
    BackgroundProcess tq = start_tq(
        tqd, {"--work", "q", "--job-timeout", "2s", "--count", "1", "--", "sh", "-c",
              "sh -c 'trap \"\" TERM; echo $$ > " + pid_file + "; exec sleep 60' & sleep 60"});
    CHECK(tq.wait_for_exit(20s) == 0);
    INFO(all_lines(tq));
    CHECK(count_lines(tq, "(stopped at --job-timeout 2.0s); handed back") == 1);
    const std::string pid = read_file(pid_file);
    REQUIRE_FALSE(pid.empty());
    // Gone, or a zombie waiting for its new parent to reap it.
    bool alive = true;
    for (int i = 0; i < 100 && alive; ++i) {
      const std::string stat = read_file("/proc/" + pid.substr(0, pid.size() - 1) + "/stat");
      alive = !stat.empty() && stat.find(") Z ") == std::string::npos;
      if (alive) std::this_thread::sleep_for(50ms);
    }
    CHECK_FALSE(alive);
  }

  TEST_CASE("a run rides out a server restart - its lease is kept, and it ACKs the job") {
    // A restart keeps leases to their ends, and the run's TOUCHes and ACK
    // on its new connection carry the job's lease token.
    TqdProcess first;
    const uint16_t port = first.port();
    {
      auto client = connect(first);
      REQUIRE(client.create("q").ok());
      REQUIRE(client.config("q", {{"ack_timeout", "6s"}}).ok());  // a TOUCH every 2 s
      REQUIRE(client.enqueue("q", "x").ok());
    }
    BackgroundProcess tq =
        start_tq(first, {"--work", "q", "--count", "1", "--", "sh", "-c", "echo started; sleep 3"});
    REQUIRE(tq.wait_for_line("started", 10s).has_value());
    REQUIRE(first.stop(SIGTERM) == 0);
    tq::testing::TqdOptions again;
    again.dir = first.dir();
    again.port = port;
    TqdProcess second(again);
    auto client = connect(second);
    auto taken = client.dequeue("q", 500ms);
    REQUIRE(taken.ok());
    CHECK_FALSE(taken->has_value());  // still the run's
    CHECK(tq.wait_for_exit(20s) == 0);
    INFO(all_lines(tq));
    CHECK(count_lines(tq, "; acked") == 1);
    CHECK(stat_of(client, "jobs_acked_total") == 1);
  }

  TEST_CASE("a job whose lease ended while the server was down is not finished by the old run") {
    TqdProcess first;
    const uint16_t port = first.port();
    {
      auto client = connect(first);
      REQUIRE(client.create("q").ok());
      REQUIRE(client.config("q", {{"ack_timeout", "1500ms"}}).ok());
      REQUIRE(client.enqueue("q", "x").ok());
    }
    // The program would run far past the restart: tq must stop it once it
    // learns the lease is lost. (It slept 4 s, and under 6 sanitized tests
    // at once it ended before tq learned, and was "too late to ACK".)
    BackgroundProcess tq =
        start_tq(first, {"--work", "q", "--count", "1", "--", "sh", "-c", "echo started; sleep 30"});
    REQUIRE(tq.wait_for_line("started", 10s).has_value());
    REQUIRE(first.stop(SIGTERM) == 0);
    // Down for longer than the lease: it ends while tqd is away (the
    // scenario, not a wait for something to happen).
    std::this_thread::sleep_for(2s);
    tq::testing::TqdOptions again;
    again.dir = first.dir();
    again.port = port;
    TqdProcess second(again);
    // Another worker takes the job the first sweep gave back.
    auto client = connect(second);
    auto taken = client.dequeue("q", 10s);
    REQUIRE(taken.ok());
    REQUIRE(taken->has_value());
    CHECK((*taken)->attempts == 2);
    CHECK(tq.wait_for_exit(40s) == 0);
    INFO(all_lines(tq));
    CHECK(count_lines(tq, "stopped, as its lease was lost") == 1);
    CHECK(count_lines(tq, "acked") == 0);
    // The new delivery is still the other worker's to finish.
    CHECK(client.ack(**taken).ok());
  }

  TEST_CASE(
      "on the workers' password, a job outlives a lost connection - its lease token keeps it the "
      "run's on the new one") {
    // The run's connection is replaced (closed as idle between two
    // TOUCHes); the TOUCHes and the ACK on the new one carry the job's lease
    // token, which the server takes from any connection while the delivery
    // lasts. With auth.admin_password set, nothing of it needs the admin's.
    tq::testing::TqdOptions options;
    options.config_yaml =
        "auth:\n  password: worker\n  admin_password: admin\nlimits:\n  idle_timeout: 1s\n";
    TqdProcess tqd(options);
    auto admin = tq::client::Client::connect({.port = tqd.port(), .password = "admin"});
    REQUIRE(admin.ok());
    REQUIRE(admin->create("q").ok());
    REQUIRE(admin->config("q", {{"ack_timeout", "6s"}}).ok());  // a TOUCH every 2 s
    auto id = admin->enqueue("q", "x");
    REQUIRE(id.ok());
    admin->close();
    BackgroundProcess tq = start_tq(tqd, {"--password", "worker", "--work", "q", "--count", "1",
                                          "--", "sh", "-c", "cat >/dev/null; sleep 3"});
    CHECK(tq.wait_for_exit(25s) == 0);
    INFO(all_lines(tq));
    CHECK(count_lines(tq, "no ACK") == 0);
    CHECK(count_lines(tq, "got no answer") == 0);
    auto after = tq::client::Client::connect({.port = tqd.port(), .password = "admin"});
    REQUIRE(after.ok());
    auto job = after->job(*id);
    REQUIRE_FALSE(job.ok());
    CHECK(job.error().is(tq::protocol::ErrorCode::kNotFound));  // acked: done once
    auto stats = after->stats();
    REQUIRE(stats.ok());
    CHECK(tq::client::field(*stats, "jobs_acked_total") == "1");
    CHECK(tq::client::field(*stats, "commands_denied_total") == "0");
    CHECK(tq::client::field(*stats, "commands_job") == "1");  // the one above: tq asked none
  }

  TEST_CASE(
      "an ACK whose reply was lost is sent again on a new connection - the job is acked once, "
      "and tq says so") {
    OneJobRun run;
    BackgroundProcess& tq = run.start();
    run.wait_first_touch();
    run.proxy.cut_after_next_request();  // carried out, its reply lost
    run.go();
    CHECK(tq.wait_for_exit(20s) == 0);
    INFO(all_lines(tq));
    CHECK(run.proxy.cuts_done() == 1);
    CHECK(count_lines(tq, "; ACK sent, its reply lost; sent again: NOTFOUND no job 1 ") == 1);
    CHECK(stat_of(run.client, "jobs_acked_total") == 1);
    CHECK(stat_of(run.client, "commands_ack") == 2);  // the first, and the one sent again
  }

  TEST_CASE("an ACK a stopping server refused unrun (SHUTDOWN) is sent again, and acks the job") {
    // A restart keeps the lease, so the ACK is still the run's to send: given
    // up on, the job ran again once its lease ended.
    OneJobRun run;
    BackgroundProcess& tq = run.start();
    run.wait_first_touch();
    run.proxy.refuse_next_request("ERROR SHUTDOWN the server is stopping\n");
    run.go();
    CHECK(tq.wait_for_exit(20s) == 0);
    INFO(all_lines(tq));
    CHECK(count_lines(tq, "; acked") == 1);
    CHECK(count_lines(tq, "refused") == 0);
    CHECK(stat_of(run.client, "jobs_acked_total") == 1);
    CHECK(stat_of(run.client, "commands_ack") == 1);  // the refused one never reached tqd
  }

  TEST_CASE(
      "an ACK sent again after the run's delivery went to another worker is refused - the other "
      "worker's delivery stands") {
    OneJobRun run;
    BackgroundProcess& tq = run.start();
    const tq::client::Job other = run.hand_over_while_away();
    CHECK(other.lease == 2u);
    INFO(all_lines(tq));
    CHECK(count_lines(tq,
                      "NOTLEASED job 1 is in another delivery now (lease=2, attempt 2), not "
                      "lease=1: yours ended") == 1);
    CHECK(count_lines(tq, "; acked") == 0);
    CHECK(stat_of(run.client, "commands_job") == 0);  // the token did it: no JOB asked
    CHECK(run.client.ack(other).ok());                // still the other worker's to finish
  }

  TEST_CASE(
      "against a tqd without lease tokens, a run asks JOB once its connection was lost, and ACKs "
      "the job that is still its own") {
    OneJobRun run;
    run.proxy.hide_lease_tokens();
    BackgroundProcess& tq = run.start();
    run.wait_first_touch();
    CHECK(stat_of(run.client, "commands_job") == 0);  // on the connection the job came on
    run.proxy.drop_all();
    run.go();
    CHECK(tq.wait_for_exit(20s) == 0);
    INFO(all_lines(tq));
    CHECK(count_lines(tq, "; acked") == 1);
    CHECK(stat_of(run.client, "jobs_acked_total") == 1);
    CHECK(stat_of(run.client, "commands_job") == 1);  // before the ACK, on the new connection
  }

  TEST_CASE(
      "against a tqd without lease tokens, an ACK on a new connection is not sent once JOB shows "
      "the job in another worker's delivery") {
    // Such a tqd tells a late worker apart only on the connection the job
    // came on: a plain ACK on another one would finish the other delivery.
    OneJobRun run;
    run.proxy.hide_lease_tokens();
    BackgroundProcess& tq = run.start();
    const tq::client::Job other = run.hand_over_while_away();
    INFO(all_lines(tq));
    CHECK(count_lines(tq, "; no ACK: its delivery is over (the job is now leased at attempt 2)") ==
          1);
    CHECK(count_lines(tq, "; acked") == 0);
    CHECK(stat_of(run.client, "jobs_acked_total") == 0);
    CHECK(run.client.ack(other).ok());  // still the other worker's to finish
  }

  TEST_CASE(
      "against a tqd without lease tokens, a TOUCH on a new connection is not sent once JOB "
      "shows the job in another worker's delivery - the program is stopped") {
    // A TOUCH every 2 s: the next one comes after the outage below, well
    // before tq could see a whole lease go by without one.
    OneJobRun run(tq::client::Fields{{"ack_timeout", "6s"}});
    run.proxy.hide_lease_tokens();
    BackgroundProcess& tq = run.start();
    run.wait_first_touch();
    const tq::testing::LoopbackSocket nobody = tq::testing::bind_loopback_socket();
    run.proxy.set_upstream(nobody.port);
    run.proxy.drop_all();
    REQUIRE(run.client.nack(run.id).ok());
    auto other = run.client.dequeue("q");
    REQUIRE((other.ok() && other->has_value()));
    run.proxy.set_upstream(run.tqd.port());
    // A plain TOUCH would have kept the other delivery alive, and the run
    // gone on to ACK it once the program ended.
    const bool lost =
        tq.wait_for_line("stopped, as its lease was lost (the job is now leased at attempt 2)", 10s)
            .has_value();
    run.go();
    CHECK(tq.wait_for_exit(20s) == 0);
    ::close(nobody.fd);
    INFO(all_lines(tq));
    CHECK(lost);
    CHECK(count_lines(tq, "acked") == 0);
    CHECK(stat_of(run.client, "jobs_acked_total") == 0);
    CHECK(run.client.ack(**other).ok());
  }

  TEST_CASE("a queue name no request can carry stops tq with 2 before it says it is running") {
    TqdProcess tqd;
    BackgroundProcess tq = start_tq(tqd, {"--work", "good,bad name", "--", "true"});
    CHECK(tq.wait_for_exit(10s) == 2);
    INFO(all_lines(tq));
    CHECK(count_lines(tq, "queue name 'bad name' holds a space or a control character") == 1);
    CHECK(count_lines(tq, "running") == 0);
  }

  TEST_CASE("a program that cannot be run hands its job back and stops tq with 2") {
    TqdProcess tqd;
    TempDir dir;
    auto client = connect(tqd);
    REQUIRE(client.create("q").ok());
    const std::string script = dir.path + "/job.sh";
    std::ofstream(script) << "#!/bin/sh\nexit 0\n";
    REQUIRE(chmod(script.c_str(), 0755) == 0);
    BackgroundProcess tq = start_tq(tqd, {"--work", "q", "--", script});
    REQUIRE(tq.wait_for_line("running", 10s).has_value());
    REQUIRE(unlink(script.c_str()) == 0);  // removed while tq runs
    REQUIRE(client.enqueue("q", "x").ok());
    CHECK(tq.wait_for_exit(20s) == 2);
    INFO(all_lines(tq));
    CHECK(count_lines(tq, "No such file or directory; handed back to be retried (NACK)") == 1);
    CHECK(count_lines(tq, "the program cannot be run; stopping") == 1);
    auto job = client.job(1);
    REQUIRE(job.ok());
    CHECK(job->state == "ready");
  }

  TEST_CASE("programs run side by side with --concurrency") {
    TqdProcess tqd;
    TempDir seen;
    auto client = connect(tqd);
    REQUIRE(client.create("batch").ok());
    for (int i = 0; i < 3; ++i) REQUIRE(client.enqueue("batch", "x").ok());
    // Each program marks itself, then waits up to 10 s for the other two: it
    // exits 0 only if all three ran at once.
    const std::string script = "touch " + seen.path + "/$TQ_JOB_ID; i=0; while [ $(ls " +
                               seen.path +
                               " | wc -l) -lt 3 ] && [ $i -lt 200 ]; do sleep 0.05; "
                               "i=$((i+1)); done; [ $(ls " +
                               seen.path + " | wc -l) -ge 3 ]";
    BackgroundProcess tq = start_tq(
        tqd, {"--work", "batch", "--concurrency", "3", "--count", "3", "--", "sh", "-c", script});
    CHECK(tq.wait_for_exit(30s) == 0);
    INFO(all_lines(tq));
    CHECK(count_lines(tq, "; acked") == 3);
    CHECK(count_lines(tq, "retried") == 0);
  }

  TEST_CASE(
      "the first SIGTERM lets the running program finish and ACKs its job, a second stops "
      "it and hands the job back") {
    TqdProcess tqd;
    auto client = connect(tqd);
    REQUIRE(client.create("q").ok());
    REQUIRE(client.enqueue("q", "x").ok());
    {
      BackgroundProcess tq =
          start_tq(tqd, {"--work", "q", "--", "sh", "-c", "echo started $TQ_JOB_ID; sleep 0.5"});
      REQUIRE(tq.wait_for_line("started 1", 10s).has_value());
      CHECK(tq.stop(SIGHUP, 10s) == 0);  // a closed terminal: as SIGTERM
      INFO(all_lines(tq));
      CHECK(count_lines(tq, "stopping: no more jobs are taken; 1 still running") == 1);
      CHECK(count_lines(tq, "job 1 from q (attempt 1): exit 0 after ") == 1);
      CHECK(client.job(1).error().is(tq::protocol::ErrorCode::kNotFound));
    }
    REQUIRE(client.enqueue("q", "y").ok());
    {
      BackgroundProcess tq = start_tq(
          tqd, {"--work", "q", "--", "sh", "-c", "echo started $TQ_JOB_ID; exec sleep 60"});
      REQUIRE(tq.wait_for_line("started 2", 10s).has_value());
      REQUIRE(kill(tq.pid(), SIGTERM) == 0);
      REQUIRE(tq.wait_for_line("stopping: no more jobs are taken", 10s).has_value());
      CHECK(tq.stop(SIGTERM, 10s) == 130);
      INFO(all_lines(tq));
      CHECK(count_lines(tq, "job 2 from q (attempt 1): killed by SIGTERM after ") == 1);
      CHECK(count_lines(tq, "(stopped by a second Ctrl-C or SIGTERM); handed back") == 1);
      auto job = client.job(2);
      REQUIRE(job.ok());
      CHECK(job->state == "ready");
    }
  }

  TEST_CASE(
      "a server or a queue that is not there yet is waited for, and a refused password "
      "ends it") {
    {
      // Bound, not listening: refused.
      const tq::testing::LoopbackSocket nobody = tq::testing::bind_loopback_socket();
      BackgroundProcess down(
          {TQ_PATH, "--port", std::to_string(nobody.port), "--work", "q", "--", "true"},
          /*with_stderr=*/true);
      auto waiting = down.wait_for_line("cannot reach the server", 10s);
      REQUIRE(waiting.has_value());
      CHECK(waiting->find("refused") != std::string::npos);
      CHECK(down.stop(SIGTERM, 10s) == 0);
      ::close(nobody.fd);
    }
    TqdProcess tqd;
    TempDir out;
    BackgroundProcess tq = start_tq(
        tqd, {"--work", "later", "--count", "1", "--", "sh", "-c", "cat > " + out.path + "/got"});
    auto waiting = tq.wait_for_line("cannot take jobs yet", 10s);
    REQUIRE(waiting.has_value());
    CHECK(waiting->find("NOQUEUE") != std::string::npos);
    auto client = connect(tqd);
    REQUIRE(client.create("later").ok());
    REQUIRE(client.enqueue("later", "finally").ok());
    CHECK(tq.wait_for_line("taking jobs now", 10s).has_value());
    CHECK(tq.wait_for_exit(20s) == 0);
    CHECK(read_file(out.path + "/got") == "finally");

    tq::testing::TqdOptions with_password;
    with_password.config_yaml = "auth:\n  password: s3cret\n";
    TqdProcess locked(with_password);
    BackgroundProcess refused =
        start_tq(locked, {"--password", "wrong", "--work", "q", "--", "true"});
    CHECK(refused.wait_for_exit(20s) == 1);
    CHECK(count_lines(refused, "NOAUTH") == 1);
  }

  TEST_CASE("wrong --work command lines exit 2 and say why, before connecting") {
    auto tq = [](std::vector<std::string> args) {
      args.insert(args.begin(), {TQ_PATH, "--port", "1"});
      return run_program(args);
    };
    auto no_program = tq({"--work", "emails"});
    CHECK(no_program.status == 2);
    CHECK(no_program.err.find("--work needs the program to run") != std::string::npos);
    auto missing = tq({"--work", "emails", "--", "no-such-program-tq"});
    CHECK(missing.status == 2);
    CHECK(missing.err == "tq: --work: no-such-program-tq: not found in PATH\n");
    TempDir dir;
    const std::string plain = dir.path + "/script.sh";
    std::ofstream(plain) << "echo hi\n";  // no x bit
    auto not_executable = tq({"--work", "emails", "--", plain});
    CHECK(not_executable.status == 2);
    CHECK(not_executable.err.find("not an executable file") != std::string::npos);
    CHECK(tq({"--work", "a,,b", "--", "true"}).status == 2);
    CHECK(tq({"--work", "a", "--fail-exit", "0", "--", "true"}).status == 2);
    CHECK(tq({"--work", "a", "--job-timeout", "soon", "--", "true"}).status == 2);
    CHECK(tq({"--work", "a", "--concurrency", "0", "--", "true"}).status == 2);
    CHECK(tq({"--work", "a", "--stat", "--", "true"}).status == 2);
    auto stray = tq({"--concurrency", "2", "LIST"});
    CHECK(stray.status == 2);
    CHECK(stray.err.find("go with --work") != std::string::npos);
  }
}

TEST_SUITE("tq --work's rules") {
  TEST_CASE("exit 0 ACKs, a --fail-exit status FAILs, anything else (a signal too) retries") {
    using tq::client::ProgramExit;
    using tq::client::Verdict;
    using tq::client::verdict_for;
    const std::vector<int> fail = {65, 78};
    CHECK(verdict_for(ProgramExit{.status = 0}, fail) == Verdict::kAck);
    CHECK(verdict_for(ProgramExit{.status = 65}, fail) == Verdict::kFail);
    CHECK(verdict_for(ProgramExit{.status = 78}, fail) == Verdict::kFail);
    CHECK(verdict_for(ProgramExit{.status = 1}, fail) == Verdict::kRetry);
    CHECK(verdict_for(ProgramExit{.status = 65}, {}) == Verdict::kRetry);
    // A signal is no exit status, even one whose number is listed.
    CHECK(verdict_for(ProgramExit{.signal = 65}, {65}) == Verdict::kRetry);
    CHECK(verdict_for(ProgramExit{.signal = SIGKILL}, fail) == Verdict::kRetry);
    CHECK(ProgramExit{.status = 3}.describe() == "exit 3");
    CHECK(ProgramExit{.signal = SIGKILL}.describe() == "killed by SIGKILL");
  }

  TEST_CASE("--fail-exit and --work lists are comma-separated, with nothing empty") {
    using tq::client::parse_exit_statuses;
    using tq::client::parse_queue_list;
    CHECK(parse_exit_statuses("65") == std::vector<int>{65});
    CHECK(parse_exit_statuses("65,78,255") == std::vector<int>{65, 78, 255});
    CHECK_FALSE(parse_exit_statuses(""));
    CHECK_FALSE(parse_exit_statuses("0"));
    CHECK_FALSE(parse_exit_statuses("256"));
    CHECK_FALSE(parse_exit_statuses("65,"));
    CHECK_FALSE(parse_exit_statuses("-1"));
    CHECK(parse_queue_list("emails") == std::vector<std::string>{"emails"});
    CHECK(parse_queue_list("a,b") == std::vector<std::string>{"a", "b"});
    CHECK_FALSE(parse_queue_list(""));
    CHECK_FALSE(parse_queue_list("a,"));
    CHECK_FALSE(parse_queue_list(",a"));
  }
}

}  // namespace work_test
