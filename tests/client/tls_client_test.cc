// The client library, tq and the producer over TLS, against a real tqd with a
// TLS listener beside its plaintext port and certificates made for the test
// (tests/support/tls_certs.h): what verifies and what does not, mutual TLS,
// large and pipelined transfers, a cancelled wait, and tq's --tls flags.
#include <doctest/doctest.h>

#include <csignal>
#include <thread>

#include "client/client.h"
#include "tests/client/cutting_proxy.h"
#include "tests/client/subprocess.h"
#include "tests/support/tls_certs.h"
#include "tests/support/tqd_process.h"

namespace tls_client_test {

using namespace std::chrono_literals;
using tq::client::CancelToken;
using tq::client::Client;
using tq::client::ErrorKind;
using tq::client::LineSocket;
using tq::client::Options;
using tq::client::TlsOptions;
using tq::testing::make_tls_files;
using tq::testing::run_program;
using tq::testing::TempDir;
using tq::testing::TlsFiles;
using tq::testing::TqdOptions;
using tq::testing::TqdProcess;

namespace {

TqdOptions tls_tqd_options(const TlsFiles& files, bool ask_for_client_cert) {
  TqdOptions options;
  options.config_yaml = "tls:\n  port: 0\n  cert_file: " + files.server_cert +
                        "\n  key_file: " + files.server_key + "\n";
  if (ask_for_client_cert) options.config_yaml += "  ca_file: " + files.ca_cert + "\n";
  return options;
}

// A tqd with a TLS listener (its certificate for localhost and 127.0.0.1,
// signed by files().ca_cert) beside its plaintext port. With
// `ask_for_client_cert`, clients must show a certificate from the same CA.
class TlsTqd {
 public:
  explicit TlsTqd(bool ask_for_client_cert = false)
      : files_(make_tls_files(dir_.path)),
        tqd_(tls_tqd_options(files_, ask_for_client_cert)),
        tls_port_(tqd_.tls_port()) {
    if (tls_port_ == 0) {
      for (const auto& line : tqd_.log_lines()) MESSAGE(line);
      FAIL("tqd did not log a TLS port");
    }
  }

  // A second, unrelated CA's files in the same directory.
  TlsFiles other_ca_files() const { return make_tls_files(dir_.path, "other-", "other CA"); }
  const TlsFiles& files() const { return files_; }
  TqdProcess& tqd() { return tqd_; }
  uint16_t tls_port() const { return tls_port_; }

  // TLS that trusts the test CA, nothing else set.
  TlsOptions trusting_test_ca() const {
    TlsOptions tls;
    tls.enabled = true;
    tls.ca_file = files_.ca_cert;
    return tls;
  }
  Options options(const TlsOptions& tls) const {
    Options options;
    options.port = tls_port_;
    options.tls = tls;
    return options;
  }

 private:
  TempDir dir_;  // first in, last out: the certificates outlive tqd
  TlsFiles files_;
  TqdProcess tqd_;
  uint16_t tls_port_;
};

// Why a call failed, for a REQUIRE's message (doctest builds the message
// even when the call succeeded).
template <typename T>
std::string why(const tq::client::Result<T>& result) {
  return result.ok() ? std::string() : result.error().to_string();
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_SUITE("client TLS") {
  TEST_CASE("a full cycle over TLS with the CA as ca_file - create, enqueue, dequeue, ack") {
    TlsTqd server;
    auto client = Client::connect(server.options(server.trusting_test_ca()));
    REQUIRE_MESSAGE(client.ok(), why(client));
    CHECK(client->connected());  // an idle TLS connection is not mistaken for a closed one
    CHECK(client->address() == "tls://127.0.0.1:" + std::to_string(server.tls_port()));
    REQUIRE(client->create("emails").ok());
    auto id = client->enqueue("emails", "Send welcome email");
    REQUIRE(id.ok());
    auto job = client->dequeue("emails");
    REQUIRE(job.ok());
    REQUIRE(job->has_value());
    CHECK((*job)->id == *id);
    CHECK((*job)->payload == "Send welcome email");
    CHECK(client->ack(*id).ok());
    auto gone = client->job(*id);
    REQUIRE_FALSE(gone.ok());
    CHECK(gone.error().is(tq::protocol::ErrorCode::kNotFound));
    CHECK(client->connected());
  }

  TEST_CASE("the plaintext port keeps working beside the TLS one - the same queues on both") {
    TlsTqd server;
    auto secure = Client::connect(server.options(server.trusting_test_ca()));
    REQUIRE_MESSAGE(secure.ok(), why(secure));
    REQUIRE(secure->create("q").ok());
    auto id = secure->enqueue("q", "over TLS");
    REQUIRE(id.ok());

    Client plain = server.tqd().client();
    CHECK(plain.address() == "127.0.0.1:" + std::to_string(server.tqd().port()));
    auto job = plain.dequeue("q");
    REQUIRE(job.ok());
    REQUIRE(job->has_value());
    CHECK((*job)->payload == "over TLS");
    CHECK(plain.ack(*id).ok());
  }

  TEST_CASE("a server certificate another CA signed fails to connect - certificate verify failed") {
    TlsTqd server;
    TlsOptions tls = server.trusting_test_ca();
    tls.ca_file = server.other_ca_files().ca_cert;
    auto client = Client::connect(server.options(tls));
    REQUIRE_FALSE(client.ok());
    CHECK(client.error().kind == ErrorKind::kConnect);
    const std::string& message = client.error().message;
    CHECK_MESSAGE(contains(message, "certificate verify failed"), message);
    CHECK_MESSAGE(contains(message, "127.0.0.1:" + std::to_string(server.tls_port())), message);
  }

  TEST_CASE("a certificate for another name fails - server_name example.com - localhost passes") {
    TlsTqd server;
    TlsOptions tls = server.trusting_test_ca();
    tls.server_name = "example.com";
    auto wrong = Client::connect(server.options(tls));
    REQUIRE_FALSE(wrong.ok());
    CHECK(wrong.error().kind == ErrorKind::kConnect);
    CHECK_MESSAGE(contains(wrong.error().message, "certificate verify failed"),
                  wrong.error().message);
    CHECK_MESSAGE(contains(wrong.error().message, "example.com"), wrong.error().message);

    // The certificate names localhost: as server_name, and as the host.
    tls.server_name = "localhost";
    auto named = Client::connect(server.options(tls));
    REQUIRE_MESSAGE(named.ok(), why(named));
    CHECK(named->ping().ok());
    Options by_name = server.options(server.trusting_test_ca());
    by_name.host = "localhost";
    auto by_host = Client::connect(by_name);
    REQUIRE_MESSAGE(by_host.ok(), why(by_host));
    CHECK(by_host->ping().ok());
  }

  TEST_CASE("verify=false connects despite a CA that did not sign the server's certificate") {
    TlsTqd server;
    TlsOptions tls = server.trusting_test_ca();
    tls.ca_file = server.other_ca_files().ca_cert;
    tls.server_name = "example.com";
    tls.verify = false;
    auto client = Client::connect(server.options(tls));
    REQUIRE_MESSAGE(client.ok(), why(client));
    CHECK(client->ping().ok());
  }

  TEST_CASE("mutual TLS - no client certificate is refused, the CA's one is let in") {
    TlsTqd server(/*ask_for_client_cert=*/true);
    // TLS 1.3 finishes the client's side of the handshake before the server
    // has looked at the certificate: the refusal may come with the first reply.
    // Either way the message names the server's reason, with a hint.
    auto refused = [&](const TlsOptions& tls, const std::string& reason) {
      auto client = Client::connect(server.options(tls));
      if (!client) {
        INFO(client.error().to_string());
        CHECK(client.error().message.find(reason) != std::string::npos);
        return client.error().kind == ErrorKind::kConnect;
      }
      auto pong = client->ping();
      if (pong.ok()) return false;
      INFO(pong.error().to_string());
      CHECK(pong.error().message.find(reason) != std::string::npos);
      return pong.error().kind != ErrorKind::kServer;
    };
    CHECK(refused(server.trusting_test_ca(),
                  "certificate required (tqd asks for a client certificate: --tls-cert and "
                  "--tls-key)"));

    TlsOptions foreign = server.trusting_test_ca();
    const TlsFiles other = server.other_ca_files();
    foreign.cert_file = other.client_cert;
    foreign.key_file = other.client_key;
    CHECK(refused(foreign, "(tqd does not accept this client certificate)"));

    TlsOptions mine = server.trusting_test_ca();
    mine.cert_file = server.files().client_cert;
    mine.key_file = server.files().client_key;
    auto client = Client::connect(server.options(mine));
    REQUIRE_MESSAGE(client.ok(), why(client));
    CHECK(client->ping().ok());
    REQUIRE(client->create("q").ok());
    CHECK(client->enqueue("q", "from a known client").ok());

    // A certificate without its key is refused before connecting.
    TlsOptions half = server.trusting_test_ca();
    half.cert_file = server.files().client_cert;
    auto lonely = Client::connect(server.options(half));
    REQUIRE_FALSE(lonely.ok());
    CHECK(lonely.error().kind == ErrorKind::kConnect);
    CHECK_MESSAGE(contains(lonely.error().message, "key"), lonely.error().message);
  }

  TEST_CASE("a 1 MiB payload travels both ways over TLS - PUT, then DEQUEUE") {
    TlsTqd server;
    auto client = Client::connect(server.options(server.trusting_test_ca()));
    REQUIRE_MESSAGE(client.ok(), why(client));
    REQUIRE(client->create("big").ok());
    std::string payload(1 << 20, '\0');
    for (size_t i = 0; i < payload.size(); ++i)
      payload[i] = static_cast<char>((i * 7 + i / 997) & 0xff);
    auto id = client->enqueue("big", payload);
    REQUIRE_MESSAGE(id.ok(), why(id));
    auto jobs = client->dequeue_many({"big"}, {.wait = 0ms, .count = 1, .cancel = nullptr});
    REQUIRE(jobs.ok());
    REQUIRE(jobs->size() == 1);
    CHECK((*jobs)[0].id == *id);
    CHECK((*jobs)[0].payload.size() == payload.size());
    CHECK((*jobs)[0].payload == payload);
  }

  TEST_CASE("2,000 ENQUEUEs sent in one go over TLS - 2,000 replies in order") {
    TlsTqd server;
    auto socket =
        LineSocket::connect("127.0.0.1", server.tls_port(), 10'000, server.trusting_test_ca());
    REQUIRE_MESSAGE(socket.ok(), why(socket));
    REQUIRE(socket->send("CREATE burst\n").ok());
    REQUIRE(socket->read_line().value() == "OK created burst");
    constexpr int kJobs = 2000;
    std::string burst;
    for (int i = 1; i <= kJobs; ++i)
      burst += "ENQUEUE burst job number " + std::to_string(i) + "\n";
    REQUIRE(socket->send(burst).ok());
    for (int i = 1; i <= kJobs; ++i) {
      auto line = socket->read_line();
      REQUIRE_MESSAGE(line.ok(), "reply " << i << ": " << why(line));
      REQUIRE(*line == "OK " + std::to_string(i));
    }
    Client plain = server.tqd().client();
    CHECK(tq::client::field(plain.stats("burst").value(), "ready") == std::to_string(kJobs));
  }

  TEST_CASE("a client that half-closes over TLS sends close_notify and still gets every reply") {
    TlsTqd server;
    auto socket =
        LineSocket::connect("127.0.0.1", server.tls_port(), 5000, server.trusting_test_ca());
    REQUIRE_MESSAGE(socket.ok(), why(socket));
    REQUIRE(socket->send("CREATE q\nENQUEUE q a\nLIST\n").ok());
    socket->shutdown_write();
    CHECK(socket->read_line().value() == "OK created q");
    CHECK(socket->read_line().value() == "OK 1");
    CHECK(socket->read_line().value() == "OK q");
    CHECK_FALSE(socket->read_line().ok());  // then the server closes
  }

  TEST_CASE("a DEQUEUE WAIT over TLS ends at once when its CancelToken fires") {
    TlsTqd server;
    auto client = Client::connect(server.options(server.trusting_test_ca()));
    REQUIRE_MESSAGE(client.ok(), why(client));
    REQUIRE(client->create("q").ok());
    CancelToken cancel;
    std::thread canceller([&] {
      Client watcher = server.tqd().client();
      const auto deadline = std::chrono::steady_clock::now() + 10s;
      while (std::chrono::steady_clock::now() < deadline) {
        auto stats = watcher.stats("q");
        if (!stats.ok() || tq::client::field(*stats, "waiters") == "1") break;
      }
      cancel.cancel();
    });
    const auto started = std::chrono::steady_clock::now();
    auto jobs = client->dequeue_many({"q"}, {.wait = 60s, .count = 1, .cancel = &cancel});
    canceller.join();
    REQUIRE_FALSE(jobs.ok());
    CHECK(jobs.error().kind == ErrorKind::kCancelled);
    CHECK(std::chrono::steady_clock::now() - started < 30s);
    CHECK_FALSE(client->socket().is_open());

    // tqd saw the connection end and dropped the waiter: a job put now stays.
    Client watcher = server.tqd().client();
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    std::string waiters;
    while (std::chrono::steady_clock::now() < deadline) {
      waiters = tq::client::field(watcher.stats("q").value(), "waiters");
      if (waiters == "0") break;
    }
    CHECK(waiters == "0");
    REQUIRE(watcher.enqueue("q", "kept").ok());
    CHECK(tq::client::field(watcher.stats("q").value(), "ready") == "1");
  }

  TEST_CASE("a TLS client at a plaintext port fails with a clear error, not a hang") {
    TlsTqd server;
    Options options = server.options(server.trusting_test_ca());
    options.port = server.tqd().port();
    options.timeout_ms = 3000;
    const auto started = std::chrono::steady_clock::now();
    auto client = Client::connect(options);
    REQUIRE_FALSE(client.ok());
    CHECK(client.error().kind == ErrorKind::kConnect);
    CHECK_MESSAGE(contains(client.error().message, "TLS handshake failed"), client.error().message);
    CHECK(std::chrono::steady_clock::now() - started < 10s);
  }

  TEST_CASE("an idle TLS connection is connected until the server is gone") {
    TlsTqd server;
    auto client = Client::connect(server.options(server.trusting_test_ca()));
    REQUIRE_MESSAGE(client.ok(), why(client));
    REQUIRE(client->ping().ok());
    CHECK(client->connected());
    server.tqd().stop(SIGKILL);
    // The kernel closes tqd's sockets as it dies; peer_closed() does not block.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (client->connected() && std::chrono::steady_clock::now() < deadline) {
    }
    CHECK_FALSE(client->connected());
    auto lost = client->ping();
    REQUIRE_FALSE(lost.ok());
    CHECK(lost.error().kind == ErrorKind::kConnect);  // known not to be sent
  }

  TEST_CASE("a TLS handshake left unanswered ends the reconnect attempts - a kConnect error") {
    // A stalled tqd (SIGSTOP) has each new connection accepted by the
    // kernel and answers no handshake: each reconnect attempt waited a
    // whole timeout for it, up to 20 of them with lasting(30s), pauses
    // between.
    TlsTqd server;
    tq::testing::CuttingProxy proxy(server.tls_port());
    Options options = server.options(server.trusting_test_ca());
    options.port = proxy.port();
    options.timeout_ms = 200;
    options.reconnect.attempts = 3;
    options.reconnect.first_delay = 10ms;
    auto client = Client::connect(options);
    REQUIRE_MESSAGE(client.ok(), why(client));
    REQUIRE(tq::testing::stop_and_wait(server.tqd().pid()));
    auto stalled = client->ping();  // its reply times out: the connection is closed
    auto unsent = client->ping();   // connects again; the handshake gets no answer
    REQUIRE(kill(server.tqd().pid(), SIGCONT) == 0);
    REQUIRE_FALSE(stalled.ok());
    CHECK(stalled.error().kind == ErrorKind::kTimeout);
    REQUIRE_FALSE(unsent.ok());
    INFO(unsent.error().to_string());
    CHECK(unsent.error().kind == ErrorKind::kConnect);
    CHECK(contains(unsent.error().message, "TLS handshake failed: no answer"));
    CHECK(proxy.connections_accepted() == 2);  // one attempt, not one per attempt allowed
    CHECK(client->ping().ok());
  }

  TEST_CASE("tq --tls-ca sends one command over TLS - plain to the TLS port fails, exit 2") {
    TlsTqd server;
    const std::string port = std::to_string(server.tls_port());
    const std::string& ca = server.files().ca_cert;
    auto pong = run_program({TQ_PATH, "--tls-ca", ca, "--port", port, "PING"});
    CHECK(pong.status == 0);
    CHECK(pong.out == "OK PONG\n");
    CHECK(pong.err.empty());

    auto plain = run_program({TQ_PATH, "--port", port, "--timeout", "5s", "PING"});
    CHECK(plain.status != 0);
    CHECK_FALSE(plain.err.empty());
    CHECK(plain.out.empty());

    // --tls alone trusts the system's CAs, and none of them signed the test CA.
    auto untrusted = run_program({TQ_PATH, "--tls", "--port", port, "PING"});
    CHECK(untrusted.status == 2);
    CHECK_MESSAGE(contains(untrusted.err, "certificate verify failed"), untrusted.err);

    auto insecure = run_program({TQ_PATH, "--tls-insecure", "--port", port, "PING"});
    CHECK(insecure.status == 0);
    CHECK(insecure.out == "OK PONG\n");

    auto named = run_program(
        {TQ_PATH, "--tls-ca", ca, "--tls-server-name", "example.com", "--port", port, "PING"});
    CHECK(named.status == 2);
    CHECK_MESSAGE(contains(named.err, "example.com"), named.err);

    auto half = run_program({TQ_PATH, "--tls-ca", ca, "--tls-cert", server.files().client_cert,
                             "--port", port, "PING"});
    CHECK(half.status == 2);
    CHECK_MESSAGE(contains(half.err, "--tls-key"), half.err);
  }

  TEST_CASE("tq --tls-cert and --tls-key pass mutual TLS") {
    TlsTqd server(/*ask_for_client_cert=*/true);
    const std::string port = std::to_string(server.tls_port());
    auto pong = run_program({TQ_PATH, "--tls-ca", server.files().ca_cert, "--tls-cert",
                             server.files().client_cert, "--tls-key", server.files().client_key,
                             "--port", port, "PING"});
    CHECK(pong.status == 0);
    CHECK(pong.out == "OK PONG\n");
  }

  TEST_CASE("tq without a client certificate says tqd asks for one - it does not reconnect") {
    TlsTqd server(/*ask_for_client_cert=*/true);
    const std::string port = std::to_string(server.tls_port());
    // The command comes a moment after the handshake, as a person types it:
    // by then tqd's refusal (an alert, after the client's handshake under
    // TLS 1.3) has arrived, and the REPL's check of the connection finds it.
    const std::string line = "(sleep 0.5; echo PING) | " + std::string(TQ_PATH) + " --tls-ca " +
                             server.files().ca_cert + " --port " + port;
    auto refused = run_program({"/bin/sh", "-c", line});
    CHECK(refused.status == 2);
    CHECK_MESSAGE(contains(refused.err, "certificate required (tqd asks for a client certificate"),
                  refused.err);
    CHECK_MESSAGE(!contains(refused.err, "reconnected"), refused.err);
  }

  TEST_CASE("the producer and worker examples take --tls-ca") {
    TlsTqd server;
    const std::string port = std::to_string(server.tls_port());
    auto produced = run_program({PRODUCER_PATH, "emails", "over", "TLS", "--tls-ca",
                                 server.files().ca_cert, "--port", port});
    CHECK(produced.status == 0);
    CHECK(produced.out == "enqueued job 1 to emails: over TLS\n");

    tq::testing::BackgroundProcess worker(
        {WORKER_PATH, "emails", "--tls-ca", server.files().ca_cert, "--port", port});
    CHECK(worker.wait_for_line("at tls://127.0.0.1:" + port, 10s).has_value());
    CHECK(worker.wait_for_line("job 1 done (ACK)", 10s).has_value());
    CHECK(worker.stop(SIGINT, 10s) == 0);
  }
}

}  // namespace tls_client_test
