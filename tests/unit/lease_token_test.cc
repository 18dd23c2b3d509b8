// Lease tokens: the lease= a delivered job carries, and ACK, NACK, FAIL and
// TOUCH with <id>@<lease>, which end that one delivery, from any connection,
// and nothing later (PROTOCOL.md, Workers).
#include <doctest/doctest.h>

#include <string>

#include "server/lease_book.h"
#include "tests/unit/command_session.h"

namespace lease_token_test {

using namespace tq;

using Session = tq::testing::CommandSession;

namespace {

// A session on queue q whose leases last a second, one job "work" in it.
void one_job(Session& s) {
  REQUIRE(s.run("CREATE q\nCONFIG q ack_timeout=1s\nENQUEUE q work\n").rfind("OK created q\n", 0) ==
          0);
}

// The lease runs out: back to ready (the sweeper's doing, in a server).
void lease_runs_out(Session& s) {
  s.clock.advance_ms(1000);
  s.engine.expire_due();
}

std::string stale(const std::string& now, const std::string& attempt, const std::string& yours) {
  return "ERROR NOTLEASED job 1 is in another delivery now (lease=" + now + ", attempt " + attempt +
         "), not lease=" + yours + ": yours ended; the worker holding it finishes it\n";
}

}  // namespace

TEST_SUITE("lease tokens") {
  TEST_CASE(
      "DEQUEUE COUNT, JOB and PEEK LEASED show a leased job's lease token - the one-line "
      "DEQUEUE does not change") {
    Session s;
    one_job(s);
    s.run("ENQUEUE q more\n");
    const int64_t t0 = s.clock.now_ms();
    CHECK(s.run("DEQUEUE q COUNT 1\n") == "OK 1\nJOB 1 4 queue=q attempts=1 lease=1\nwork\n");
    const std::string leased = "JOB 1 4 queue=q state=leased attempts=1 lease=1 priority=0 at=" +
                               std::to_string(t0 + 1000) + "\nwork\n";
    CHECK(s.run("JOB 1\n") == "OK 1\n" + leased);
    CHECK(s.run("PEEK q LEASED\n") == "OK 1\n" + leased);
    // Not leased: no token to show.
    CHECK(s.run("JOB 2\n") == "OK 1\nJOB 2 4 queue=q state=ready attempts=0 priority=0\nmore\n");
    CHECK(s.run("DEQUEUE q\n") == "OK 2 more\n");  // the seed's form, as it always was
    lease_runs_out(s);
    CHECK(s.run("JOB 1\n").find(" lease=") == std::string::npos);  // ready again
    // The next delivery, the next token: the attempt number, until a KICK.
    CHECK(s.run("DEQUEUE q COUNT 5\n") ==
          "OK 2\nJOB 1 4 queue=q attempts=2 lease=2\nwork\n"
          "JOB 2 4 queue=q attempts=2 lease=2\nmore\n");
  }

  TEST_CASE("<id>@<lease> ends the delivery it names, from any connection, in every verb") {
    Session s;
    one_job(s);
    server::LeaseBook worker, other;
    s.leases = &worker;
    REQUIRE(s.run("DEQUEUE q COUNT 1\n").find(" lease=1\n") != std::string::npos);
    s.leases = &other;  // a worker back on a new connection
    CHECK(s.run("TOUCH 1@1 5s\n") == "OK touched 1 5000\n");
    CHECK(s.run("NACK 1@1\n") == "OK nacked 1\n");
    s.leases = nullptr;  // no book at all: the token is the whole proof
    REQUIRE(s.run("DEQUEUE q COUNT 1\n").find(" lease=2\n") != std::string::npos);
    CHECK(s.run("FAIL 1@2 gave up\n") == "OK dead 1\n");
    REQUIRE(s.run("KICK 1\nDEQUEUE q COUNT 1\n").find(" lease=4294967297\n") != std::string::npos);
    CHECK(s.run("ACK q 1@4294967297\n") == "OK acked 1\n");
    s.run("ENQUEUE q next\nDEQUEUE q COUNT 1\n");  // job 2, lease=1
    CHECK(s.run("ACK 2@1\n") == "OK acked 2\n");
  }

  TEST_CASE("a stale token is refused once the job went to another worker - its holder keeps it") {
    Session s;
    one_job(s);
    server::LeaseBook late, current, fresh;
    s.leases = &late;
    REQUIRE(s.run("DEQUEUE q COUNT 1\n").find(" lease=1\n") != std::string::npos);
    lease_runs_out(s);
    // Ended, not yet delivered again: the engine says what became of the job.
    CHECK(s.run("ACK 1@1\n") ==
          "ERROR NOTLEASED cannot ack job 1: it is ready, not leased (it went back to the queue: "
          "nacked, or its lease ran out)\n");
    s.leases = &current;
    REQUIRE(s.run("DEQUEUE q COUNT 1\n").find(" lease=2\n") != std::string::npos);
    const engine::Job* job = s.engine.find_job(1);
    const int64_t lease_ends = job->deadline_ms;
    s.clock.advance_ms(100);
    // The late worker on a connection that was never handed the job: its
    // plain ACK would finish the other worker's delivery; its token does not.
    s.leases = &fresh;
    const std::string refused = stale("2", "2", "1");
    CHECK(s.run("ACK 1@1\n") == refused);
    CHECK(s.run("ACK q 1@1\n") == refused);
    CHECK(s.run("NACK 1@1 DELAY 1m\n") == refused);
    CHECK(s.run("FAIL 1@1 gave up\n") == refused);
    CHECK(s.run("TOUCH 1@1 10m\n") == refused);
    // The token outranks the connection's own book, both ways: the current
    // holder's connection naming the old delivery is refused ...
    s.leases = &current;
    CHECK(s.run("ACK 1@1\n") == refused);
    // ... and the late connection naming the current one (an operator who
    // read it from JOB) is let through: it says which delivery it ends.
    s.leases = &late;
    CHECK(s.run("TOUCH 1@2\n") == "OK touched 1 1000\n");
    // Untouched by the refusals: still the current worker's, same attempt.
    REQUIRE(s.engine.find_job(1) == job);
    CHECK(job->state == engine::JobState::kLeased);
    CHECK(job->attempts == 2);
    CHECK(job->deadline_ms == lease_ends + 100);  // the TOUCH 1@2, not 1@1's 10m
    CHECK(s.stats.errors_total == 7);
    s.leases = &current;
    CHECK(s.run("ACK 1@2\n") == "OK acked 1\n");
  }

  TEST_CASE("after a KICK the old token is refused, though the attempt number is the same") {
    Session s;
    s.run("CREATE q\nCONFIG q ack_timeout=1s max_attempts=1\nENQUEUE q work\n");
    REQUIRE(s.run("DEQUEUE q COUNT 1\n") == "OK 1\nJOB 1 4 queue=q attempts=1 lease=1\nwork\n");
    lease_runs_out(s);  // out of attempts: dead
    REQUIRE(s.run("KICK q\n") == "OK kicked 1\n");
    CHECK(s.run("DEQUEUE q COUNT 1\n") ==
          "OK 1\nJOB 1 4 queue=q attempts=1 lease=4294967297\nwork\n");
    // Whether lease=1 was given out before the KICK is not kept: the reply
    // says so, where a token of the same KICK count would be told apart.
    CHECK(s.run("ACK 1@1\n") ==
          "ERROR NOTLEASED job 1 is in delivery lease=4294967297 (attempt 1), after a KICK or "
          "REDRIVE started its attempts again: lease=1 came before that, if it was given out, "
          "and is over; the worker holding it finishes it\n");
    CHECK(s.run("ACK 1@4294967297\n") == "OK acked 1\n");
  }

  TEST_CASE("a token never given out is refused as such, not as a delivery that ended") {
    Session s;
    one_job(s);
    REQUIRE(s.run("DEQUEUE q COUNT 1\n").find(" lease=1\n") != std::string::npos);
    const std::string never =
        "ERROR NOTLEASED job 1 is in delivery lease=1 (attempt 1); lease=5 was never given out: "
        "check the token\n";
    CHECK(s.run("ACK 1@5\n") == never);
    CHECK(s.run("TOUCH 1@5 1m\n") == never);
    // Attempts count from 1: attempt 0 of a later KICK count is no token
    // either (lease=0 is refused as no token at all, below).
    CHECK(s.run("ACK 1@4294967296\n").find("lease=4294967296 was never given out") !=
          std::string::npos);
    CHECK(s.engine.find_job(1)->state == engine::JobState::kLeased);
    CHECK(s.run("ACK 1@1\n") == "OK acked 1\n");
  }

  TEST_CASE("ACK of several ids with one stale token acks the others and says which was not") {
    Session s;
    s.run("CREATE q\nENQUEUE q a\nENQUEUE q b\nENQUEUE q c\n");
    REQUIRE(s.run("DEQUEUE q COUNT 3\n").rfind("OK 3\n", 0) == 0);  // each lease=1
    REQUIRE(s.run("NACK 1\n") == "OK nacked 1\n");
    REQUIRE(s.run("DEQUEUE q COUNT 1\n").find("JOB 1 1 queue=q attempts=2 lease=2\n") == 5);
    CHECK(s.run("ACK 1@1 2@1 3\n") ==
          "ERROR NOTLEASED acked 2 of 3; " + stale("2", "2", "1").substr(16));
    CHECK(s.engine.find_job(1)->state == engine::JobState::kLeased);
    CHECK(s.engine.find_job(2) == nullptr);
    CHECK(s.engine.find_job(3) == nullptr);
    // A job that is gone makes it NOTFOUND, as for plain ids.
    CHECK(s.run("ACK 1@2 3@1\n") ==
          "ERROR NOTFOUND acked 1 of 2; no job 3 (never existed, or already finished)\n");
    CHECK(s.engine.find_job(1) == nullptr);
  }

  TEST_CASE("a job named twice is acked once - but not named two different ways") {
    Session s;
    s.run("CREATE q\nENQUEUE q a\nENQUEUE q b\n");
    REQUIRE(s.run("DEQUEUE q COUNT 2\n").rfind("OK 2\n", 0) == 0);
    CHECK(s.run("ACK 1@1 2 1 1@2\n") ==
          "ERROR BADFORMAT job 1 is given twice, as 1 and 1@1; none was acked\n");
    CHECK(s.run("ACK 1@1 1@2\n") ==
          "ERROR BADFORMAT job 1 is given twice, as 1@1 and 1@2; none was acked\n");
    CHECK(s.engine.find_job(1)->state == engine::JobState::kLeased);
    CHECK(s.engine.find_job(2)->state == engine::JobState::kLeased);
    CHECK(s.run("ACK 1@1 1@1\n") == "OK acked 1\n");
    CHECK(s.run("ACK 2 2\n") == "OK acked 2\n");
  }

  TEST_CASE("a malformed token is BADFORMAT, and with several ids none is acked") {
    Session s;
    s.run("CREATE q\nENQUEUE q a\nENQUEUE q b\n");
    REQUIRE(s.run("DEQUEUE q COUNT 2\n").rfind("OK 2\n", 0) == 0);
    const std::string bad_token =
        "' is not <id>@<lease>: a lease token is a positive whole number, as lease= shows it in "
        "DEQUEUE ... COUNT, PEEK and JOB\n";
    const std::string bad_id = "' is not <id>@<lease>: a job id is a positive whole number\n";
    for (const char* token :
         {"1@", "1@x", "1@-1", "1@+1", "1@0", "1@18446744073709551616", "1@1@1", "1@1x"}) {
      INFO(token);
      const std::string reply = "ERROR BADFORMAT '" + std::string(token) + bad_token;
      CHECK(s.run("ACK " + std::string(token) + "\n") == reply);
      CHECK(s.run("ACK 2 " + std::string(token) + "\n") == reply);
      CHECK(s.run("ACK q " + std::string(token) + "\n") == reply);
      CHECK(s.run("NACK " + std::string(token) + "\n") == reply);
      CHECK(s.run("FAIL " + std::string(token) + " bad\n") == reply);
      CHECK(s.run("TOUCH " + std::string(token) + " 1m\n") == reply);
    }
    for (const char* id : {"@1", "0@1", "x@1", "-1@1", "18446744073709551616@1", "@"}) {
      INFO(id);
      const std::string reply = "ERROR BADFORMAT '" + std::string(id) + bad_id;
      CHECK(s.run("ACK " + std::string(id) + "\n") == reply);
      CHECK(s.run("ACK 2 " + std::string(id) + "\n") == reply);
      CHECK(s.run("TOUCH " + std::string(id) + "\n") == reply);
    }
    // Nothing was acked, nacked, failed or touched.
    for (uint64_t id : {1, 2}) {
      const engine::Job* job = s.engine.find_job(id);
      REQUIRE(job != nullptr);
      CHECK(job->state == engine::JobState::kLeased);
      CHECK(job->attempts == 1);
      CHECK(job->deadline_ms == s.clock.now_ms() + 30'000);
    }
    CHECK(s.run("ACK 1@1 2@1\n") == "OK acked 2\n");
  }

  TEST_CASE("DELETE, JOB and KICK take a plain id - a lease token is refused") {
    Session s;
    s.run("CREATE q\nENQUEUE q a\nDEQUEUE q\n");
    const std::string refused =
        "ERROR BADFORMAT a job id is a positive whole number, got '1@1' (<id>@<lease>, with a "
        "lease token, is for ACK, NACK, FAIL and TOUCH)\n";
    CHECK(s.run("DELETE 1@1\n") == refused);
    CHECK(s.run("JOB 1@1\n") == refused);
    CHECK(s.run("KICK 1@1\n") == refused);
    CHECK(s.engine.find_job(1)->state == engine::JobState::kLeased);
    CHECK(s.run("DELETE 1\n") == "OK deleted 1\n");
  }
}

}  // namespace lease_token_test
