#include <doctest/doctest.h>
#include <uv.h>

#include <algorithm>
#include <string>
#include <string_view>

#include "server/command_support.h"
#include "server/listen_address.h"
#include "server/queue_settings.h"
#include "tests/unit/command_session.h"

namespace commands_test {

using namespace tq;

using Session = tq::testing::CommandSession;

TEST_SUITE("commands") {
  TEST_CASE("wrong passwords are throttled per client address - others still get in") {
    Session s;
    const std::string password = "s3cret";
    server::AuthThrottle throttle;
    auto connection = [&](const char* address) {
      server::AuthState a;
      a.password = &password;
      a.max_failures = 1000;
      a.throttle = &throttle;
      a.address = address;
      return a;
    };
    server::AuthState guesser = connection("203.0.113.9");
    s.auth = &guesser;
    for (uint64_t i = 0; i < server::AuthThrottle::kFailuresPerSecond; ++i) {
      REQUIRE(s.run("AUTH guess\n") == "ERROR NOAUTH wrong password\n");
    }
    CHECK(s.run("AUTH s3cret\n") ==
          "ERROR NOAUTH too many wrong passwords from this address; try again in a second\n");
    CHECK(s.closed);
    CHECK_FALSE(guesser.authenticated);

    server::AuthState other = connection("198.51.100.7");  // someone else, same second
    s.auth = &other;
    s.closed = false;
    CHECK(s.run("AUTH s3cret\n") == "OK authenticated\n");

    s.loop_now_ms += 1000;  // the guesser's second is over
    server::AuthState again = connection("203.0.113.9");
    s.auth = &again;
    s.closed = false;
    CHECK(s.run("AUTH s3cret\n") == "OK authenticated\n");
    CHECK(s.stats.auth_failures == server::AuthThrottle::kFailuresPerSecond);
  }

  TEST_CASE("wrong passwords count per IPv4 address, per IPv6 /64, a mapped IPv4 as itself") {
    auto key = [](const char* text) {
      sockaddr_storage address{};
      if (std::string_view(text).find(':') == std::string_view::npos) {
        REQUIRE(uv_ip4_addr(text, 8080, reinterpret_cast<sockaddr_in*>(&address)) == 0);
      } else {
        REQUIRE(uv_ip6_addr(text, 8080, reinterpret_cast<sockaddr_in6*>(&address)) == 0);
      }
      return server::throttle_address(address);
    };
    CHECK(key("203.0.113.9") == "203.0.113.9");
    CHECK(key("::ffff:203.0.113.9") == "203.0.113.9");  // a dual-stack listener's IPv4 client
    CHECK(key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64");
    CHECK(key("2001:db8:1:2:bbbb::7") == key("2001:db8:1:2:aaaa::1"));  // one host's /64
    CHECK(key("2001:db8:1:3::1") != key("2001:db8:1:2::1"));
  }

  TEST_CASE("the wrong-password throttle counts its second on the loop's clock, not the wall's") {
    Session s;
    const std::string password = "s3cret";
    server::AuthThrottle throttle;
    auto connection = [&] {
      server::AuthState a;
      a.password = &password;
      a.max_failures = 1000;
      a.throttle = &throttle;
      a.address = "203.0.113.9";
      return a;
    };
    server::AuthState guesser = connection();
    s.auth = &guesser;
    for (uint64_t i = 0; i < server::AuthThrottle::kFailuresPerSecond; ++i) {
      REQUIRE(s.run("AUTH guess\n") == "ERROR NOAUTH wrong password\n");
    }
    s.clock.advance_ms(-3'600'000);  // the wall clock set back an hour (an NTP step)
    s.loop_now_ms += 1000;           // and a second later
    server::AuthState again = connection();
    s.auth = &again;
    s.closed = false;
    CHECK(s.run("AUTH s3cret\n") == "OK authenticated\n");
  }

  TEST_CASE("before AUTH even a malformed request is NOAUTH - nothing about the commands leaks") {
    Session s;
    const std::string password = "s3cret";
    server::AuthState a;
    a.password = &password;
    s.auth = &a;
    const std::string noauth = "ERROR NOAUTH authenticate first: AUTH <password>\n";
    CHECK(s.run("FOO\n") == noauth);
    CHECK(s.run("LIST extra\n") == noauth);
    CHECK(s.run("CREATE\n") == noauth);
    CHECK(s.run("PING\n") == "OK PONG\n");
  }

  TEST_CASE(
      "DEQUEUE COUNT stops before the job that would pass max_batch_bytes - one job at least") {
    Session s;
    s.limits.max_batch_bytes = 5;
    s.run("CREATE q\nENQUEUE q abc\nENQUEUE q def\nENQUEUE q toolong\n");
    const std::string first = s.run("DEQUEUE q COUNT 5\n");
    CHECK(first.rfind("OK 1\n", 0) == 0);  // abc; abc+def would be 6 bytes
    CHECK(first.find("abc") != std::string::npos);
    CHECK(s.run("DEQUEUE q COUNT 5\n").rfind("OK 1\n", 0) == 0);  // def
    const std::string big = s.run("DEQUEUE q COUNT 5\n");         // over the budget alone
    CHECK(big.rfind("OK 1\n", 0) == 0);
    CHECK(big.find("toolong") != std::string::npos);
  }

  TEST_CASE("ENQUEUE keeps to max_payload_bytes as PUT does - a bigger payload is TOOBIG") {
    Session s;
    s.limits.max_payload_bytes = 10;
    s.run("CREATE q\n");
    CHECK(s.run("ENQUEUE q 0123456789\n") == "OK 1\n");
    CHECK(s.run("ENQUEUE q 0123456789a\n") ==
          "ERROR TOOBIG payload exceeds 10 bytes (limits.max_payload_bytes)\n");
    CHECK(s.engine.find_job(2) == nullptr);
    CHECK(s.run("ENQUEUE q next\n") == "OK 2\n");  // and the connection goes on
  }

  TEST_CASE("PEEK stops before the job that would pass max_batch_bytes - one job at least") {
    // PEEK big 1000 of 1 MiB jobs once put a gigabyte into one connection.
    Session s;
    s.limits.max_batch_bytes = 6;
    s.run("CREATE q\nENQUEUE q toolong\nENQUEUE q abc\nENQUEUE q def\nENQUEUE q g\n");
    CHECK(s.run("PEEK q 10\n").rfind("OK 1\n", 0) == 0);  // toolong, alone over the budget
    s.run("DELETE 1\n");
    const std::string peeked = s.run("PEEK q 10\n");
    CHECK(peeked.rfind("OK 2\n", 0) == 0);  // abc and def; g would make 7 bytes
    CHECK(peeked.find("def\n") != std::string::npos);
    CHECK(peeked.find("g\n") == std::string::npos);
  }

  TEST_CASE("duration_words: the largest whole unit, as a person reads it") {
    CHECK(server::cmd::duration_words(30LL * 86'400'000) == "30 days");
    CHECK(server::cmd::duration_words(86'400'000) == "1 day");
    CHECK(server::cmd::duration_words(3'600'000) == "1 hour");
    CHECK(server::cmd::duration_words(90'000) == "90 seconds");
    CHECK(server::cmd::duration_words(120'000) == "2 minutes");
    CHECK(server::cmd::duration_words(1500) == "1500ms");
    CHECK(server::cmd::duration_words(0) == "0ms");
  }

  TEST_CASE("errors show odd bytes of a name escaped, and say why a duration is too long") {
    Session s;
    // A name no queue can have is BADFORMAT, as CREATE says, not a queue to
    // wait for; its odd bytes are shown as '?'.
    CHECK(s.run(std::string("DEQUEUE a\x01\x7f\xff\n")) ==
          "ERROR BADFORMAT invalid queue name 'a\x3f\x3f\x3f': use 1-200 characters of A-Z a-z 0-9 "
          ". _ : -, "
          "not only digits, not WAIT or COUNT in any case\n");
    // A name too long is quoted cut, so the message says it was: the part
    // shown is valid, and only the length tells why it was refused.
    CHECK(s.run("CREATE " + std::string(201, 'a') + "\n") ==
          "ERROR BADFORMAT invalid queue name '" + std::string(64, 'a') +
              "' (201 bytes, the first 64 shown): use 1-200 characters of A-Z a-z 0-9 . _ : -, "
              "not only digits, not WAIT or COUNT in any case\n");
    s.run("CREATE q\nENQUEUE q x\nDEQUEUE q\n");
    CHECK(s.run("NACK 1 DELAY 31d\n") ==
          "ERROR BADFORMAT DELAY takes a duration such as 30, 30s, 500ms or 2m, at most 30 days, "
          "got '31d'\n");
  }

  TEST_CASE("CONFIG, CANCEL and SCHEDULE show control bytes a client sent escaped") {
    Session s;
    s.run("CREATE q\n");
    auto error_of = [&](const std::string& request) {
      const std::string reply = s.run(request);
      CHECK(reply.find('\x1b') == std::string::npos);
      return reply;
    };
    CHECK(error_of("CONFIG q \x1b[2Jred=5\n")
              .rfind("ERROR BADFORMAT unknown setting '\\x1b[2Jred' (settings: ack_timeout,", 0) ==
          0);
    CHECK(error_of("CONFIG q max_size=\x1b[2J\n") ==
          "ERROR BADFORMAT max_size: expected a whole number (0: no limit), got '\\x1b[2J'\n");
    CHECK(error_of("CANCEL q \x1b[2J\n") ==
          "ERROR BADFORMAT a schedule name is 1-200 printable characters without spaces, got "
          "'\\x1b[2J'\n");
    CHECK(error_of("CANCEL q nosuch\n") == "ERROR NOTFOUND no schedule 'nosuch' in queue 'q'\n");
    CHECK(error_of("SCHEDULE q s 1 CRON \x1b[2J * * * *\nx\n") ==
          "ERROR BADFORMAT cron field 1 (minute) '\\x1b[2J': '\\x1b[2J' is not a number\n");
    CHECK(error_of("SCHEDULE q s 1 CRON @\x1b[2J\nx\n")
              .rfind("ERROR BADFORMAT unknown cron shortcut '@\\x1b[2J' (expected", 0) == 0);
    CHECK(error_of("SCHEDULE q s 1 CRON @daily TZ \x1b[2J\nx\n")
              .rfind("ERROR BADFORMAT unknown time zone '\\x1b[2J' (an IANA name", 0) == 0);
  }

  TEST_CASE("a worker whose lease ran out cannot finish the job another worker now holds") {
    Session s;
    server::LeaseBook late, current;
    s.run("CREATE q\nCREATE other\nCONFIG q ack_timeout=1s\nENQUEUE q work\n");
    s.leases = &late;
    REQUIRE(s.run("DEQUEUE q\n") == "OK 1 work\n");
    s.clock.advance_ms(1000);
    s.engine.expire_due();  // the lease ran out: back to ready
    s.leases = &current;
    REQUIRE(s.run("DEQUEUE q\n") == "OK 1 work\n");  // attempt 2, to someone else
    s.leases = &late;
    const std::string refused =
        "ERROR NOTLEASED job 1 was delivered again (attempt 2) after your delivery of it ended; "
        "the worker holding it now finishes it\n";
    CHECK(s.run("ACK 1\n") == refused);
    CHECK(s.run("ACK q 1\n") == refused);
    CHECK(s.run("NACK 1\n") == refused);
    CHECK(s.run("FAIL 1 gave up\n") == refused);
    CHECK(s.run("TOUCH 1\n") == refused);
    CHECK(s.run("ACK 1 2\n").find("acked 0 of 2; job 1 was delivered again") != std::string::npos);
    // A wrong queue is answered as for anyone: the queue is checked first.
    CHECK(s.run("ACK other 1\n") == "ERROR NOTFOUND job 1 is not in queue 'other'\n");
    CHECK(s.run("ACK nosuch 1\n") ==
          "ERROR NOQUEUE queue 'nosuch' does not exist; CREATE it first\n");
    CHECK(s.run("ACK bad/name 1\n").rfind("ERROR BADFORMAT invalid queue name 'bad/name'", 0) == 0);
    s.leases = &current;
    CHECK(s.run("TOUCH 1 5s\n") == "OK touched 1 5000\n");
    CHECK(s.run("ACK 1\n") == "OK acked 1\n");
    CHECK_FALSE(current.delivery_of(1).has_value());  // finished: forgotten
  }

  TEST_CASE("a worker that gave a job back itself cannot finish it once another worker has it") {
    // Its own NACK, or its FAIL and then a KICK or a dead-letter queue: the
    // job goes on, and the connection's book must still know its delivery.
    Session s;
    server::LeaseBook late, current;
    s.run("CREATE q\nCREATE dlq\nCONFIG q dead_letter_queue=dlq\nENQUEUE q one\nENQUEUE q two\n");
    s.run("ENQUEUE q three\n");
    s.leases = &late;
    REQUIRE(s.run("DEQUEUE q\n") == "OK 1 one\n");
    REQUIRE(s.run("NACK 1\n") == "OK nacked 1\n");
    REQUIRE(s.run("DEQUEUE q\n") == "OK 1 one\n");  // its own again: its to finish
    REQUIRE(s.run("NACK 1\n") == "OK nacked 1\n");
    REQUIRE(s.run("DEQUEUE q\n") == "OK 1 one\n");
    REQUIRE(s.run("NACK 1\n") == "OK nacked 1\n");
    s.leases = &current;
    REQUIRE(s.run("DEQUEUE q\n") == "OK 1 one\n");
    s.leases = &late;
    const std::string refused = "ERROR NOTLEASED job 1 was delivered again (attempt 4) after";
    CHECK(s.run("ACK 1\n").rfind(refused, 0) == 0);
    CHECK(s.run("TOUCH 1\n").rfind(refused, 0) == 0);
    CHECK(s.run("NACK 1\n").rfind(refused, 0) == 0);
    CHECK(s.run("FAIL 1 late\n").rfind(refused, 0) == 0);
    // FAIL, then the job moves to dlq and a worker there takes it.
    REQUIRE(s.run("DEQUEUE q\n") == "OK 2 two\n");
    REQUIRE(s.run("FAIL 2 broken\n") == "OK dead 2\n");
    s.leases = &current;
    REQUIRE(s.run("DEQUEUE dlq\n") == "OK 2 two\n");
    s.leases = &late;
    CHECK(s.run("ACK 2\n").rfind("ERROR NOTLEASED job 2 was delivered again", 0) == 0);
    // FAIL, KICK: the job is back in q with its attempts at 0.
    s.run("CONFIG q dead_letter_queue=-\n");
    REQUIRE(s.run("DEQUEUE q\n") == "OK 3 three\n");
    REQUIRE(s.run("FAIL 3 broken\n") == "OK dead 3\n");
    REQUIRE(s.run("KICK 3\n") == "OK kicked 1\n");
    s.leases = &current;
    REQUIRE(s.run("DEQUEUE q\n") == "OK 3 three\n");
    s.leases = &late;
    CHECK(s.run("ACK 3\n").rfind("ERROR NOTLEASED job 3 was delivered again", 0) == 0);
    s.leases = &current;
    CHECK(s.run("ACK 1 2 3\n") == "OK acked 3\n");
    CHECK(current.size() == 0);
  }

  TEST_CASE("a KICK starts attempts again, but a late worker's delivery is still told apart") {
    Session s;
    server::LeaseBook late, current;
    s.run("CREATE q\nCONFIG q ack_timeout=1s max_attempts=1\nENQUEUE q work\n");
    s.leases = &late;
    REQUIRE(s.run("DEQUEUE q\n") == "OK 1 work\n");  // attempt 1
    s.clock.advance_ms(1000);
    s.engine.expire_due();                          // out of attempts: dead
    REQUIRE(s.run("KICK q\n") == "OK kicked 1\n");  // attempts back to 0
    s.leases = &current;
    REQUIRE(s.run("DEQUEUE q\n") == "OK 1 work\n");  // attempt 1 again
    s.leases = &late;
    CHECK(s.run("ACK 1\n").rfind("ERROR NOTLEASED job 1 was delivered again", 0) == 0);
    s.leases = &current;
    CHECK(s.run("ACK 1\n") == "OK acked 1\n");
  }

  TEST_CASE("NACK PRIORITY gives the job a new priority, with DELAY in either order") {
    Session s;
    s.run("CREATE q\nENQUEUE q old\nENQUEUE q new\n");
    REQUIRE(s.run("DEQUEUE q\n") == "OK 1 old\n");
    CHECK(s.run("NACK 1 PRIORITY -5\n") == "OK nacked 1\n");
    CHECK(s.run("DEQUEUE q\n") == "OK 2 new\n");  // the lower priority waits behind it
    CHECK(s.run("DEQUEUE q\n") == "OK 1 old\n");
    CHECK(s.run("NACK 1 PRIORITY 9 DELAY 1s\n") == "OK nacked 1\n");
    CHECK(s.engine.find_job(1)->priority == 9);
    CHECK(s.engine.find_job(1)->state == engine::JobState::kDelayed);
    CHECK(s.run("NACK 2 PRIORITY 1 PRIORITY 2\n") == "ERROR BADFORMAT PRIORITY given twice\n");
    CHECK(s.run("NACK 2 PRIORITY\n") == "ERROR BADFORMAT option PRIORITY needs a value\n");
    CHECK(s.run("NACK 2 PRIORITY 2147483648\n") ==
          "ERROR BADFORMAT PRIORITY takes a whole number from -2147483648 to 2147483647, got "
          "'2147483648'\n");
    CHECK(s.engine.find_job(2)->state == engine::JobState::kLeased);  // refused: still leased
  }

  TEST_CASE("NACK of a job whose TTL passed during its lease answers that it expired") {
    Session s;
    s.run("CREATE q\n");
    REQUIRE(s.run("PUT q 1 TTL 1s\nx\nPUT q 1 TTL 1s\ny\n") == "OK 1\nOK 2\n");
    REQUIRE(s.run("DEQUEUE q COUNT 2\n").rfind("OK 2\n", 0) == 0);
    s.clock.advance_ms(1'500);
    CHECK(s.run("NACK 1\n") == "OK expired 1\n");
    CHECK(s.run("JOB 1\n").rfind("ERROR NOTFOUND", 0) == 0);
    s.run("CONFIG q ttl_dead_letter=true\n");
    CHECK(s.run("NACK 2\n") == "OK dead 2\n");
    CHECK(s.run("PUT q 1 DELAY 2s TTL 1s\nz\n")
              .rfind(
                  "ERROR BADFORMAT its TTL (1000ms) ends no later than it is due (2000ms from now)",
                  0) == 0);
  }

  TEST_CASE("a dead job shows no expires= - its TTL no longer applies") {
    Session s;
    s.run("CREATE q\n");
    REQUIRE(s.run("PUT q 1 TTL 1h\nx\n") == "OK 1\n");
    CHECK(s.run("JOB 1\n").find(" expires=") != std::string::npos);
    REQUIRE(s.run("DEQUEUE q\n") == "OK 1 x\n");
    CHECK(s.run("JOB 1\n").find(" expires=") != std::string::npos);  // a NACK after it expires
    REQUIRE(s.run("FAIL 1 bad\n") == "OK dead 1\n");
    const std::string dead = s.run("PEEK q DEAD\n");
    CHECK(dead.find(" reason=failed: bad") != std::string::npos);
    CHECK(dead.find(" expires=") == std::string::npos);
    CHECK(s.run("JOB 1\n").find(" expires=") == std::string::npos);
    s.clock.advance_ms(2 * 3'600'000);  // past the TTL: still dead, not expired
    CHECK(s.run("JOB 1\n").find(" state=dead ") != std::string::npos);
  }

  TEST_CASE("KICK <id> moves that one dead job back, and refuses a job neither dead nor delayed") {
    Session s;
    s.run("CREATE q\nENQUEUE q one\nENQUEUE q two\nENQUEUE q three\n");
    REQUIRE(s.run("DEQUEUE q COUNT 2\n").rfind("OK 2\n", 0) == 0);
    REQUIRE(s.run("FAIL 1 bad\nFAIL 2 bad\n") == "OK dead 1\nOK dead 2\n");
    CHECK(s.run("KICK 2\n") == "OK kicked 1\n");  // not the oldest: the one named
    CHECK(s.run("TOUCH 2\n") ==
          "ERROR NOTLEASED cannot touch job 2: it is ready, not leased (a KICK or REDRIVE put it "
          "back, and "
          "it was not delivered since)\n");
    CHECK(s.engine.find_job(2)->state == engine::JobState::kReady);
    CHECK(s.engine.find_job(2)->attempts == 0);
    CHECK(s.engine.find_job(1)->state == engine::JobState::kDead);
    CHECK(s.run("KICK 3\n") ==
          "ERROR NOTFOUND job 3 is ready, not dead or delayed: KICK <id> moves those to ready\n");
    CHECK(s.run("KICK 99\n").rfind("ERROR NOTFOUND no job 99", 0) == 0);
    CHECK(s.run("KICK 0\n").rfind("ERROR BADFORMAT", 0) == 0);
    CHECK(s.run("KICK 1 5\n").rfind("ERROR BADFORMAT", 0) == 0);  // 1 is no queue name
    CHECK(s.run("KICK q\n") == "OK kicked 1\n");                  // job 1, the one left
    // A delayed job, as beanstalkd's kick-job: ready now.
    s.run("PUT q 5 DELAY 1h\nlater\n");
    CHECK(s.run("KICK 4\n") == "OK kicked 1\n");
    CHECK(s.engine.find_job(4)->state == engine::JobState::kReady);
  }

  TEST_CASE(
      "a connection that was never handed the job may finish it - a reconnected worker, an "
      "operator") {
    Session s;
    server::LeaseBook worker, other;
    s.run("CREATE q\nENQUEUE q work\n");
    s.leases = &worker;
    REQUIRE(s.run("DEQUEUE q\n") == "OK 1 work\n");
    s.leases = &other;
    CHECK(s.run("TOUCH 1 5s\n") == "OK touched 1 5000\n");
    CHECK(s.run("ACK 1\n") == "OK acked 1\n");
  }

  TEST_CASE("ACK with two numbers is two ids, never a queue named by digits") {
    Session s;
    CHECK(s.run("ACK 0 2\n") == "ERROR BADFORMAT a job id is a positive whole number, got '0'\n");
    CHECK(s.run("ACK 99999999999999999999 2\n").rfind("ERROR BADFORMAT a job id", 0) == 0);
  }

  TEST_CASE("a negative number no queue is named after is a bad id in ACK and KICK") {
    // "-1" is a valid queue name; these answered NOQUEUE ... CREATE it first.
    Session s;
    CHECK(s.run("ACK -1 3\n") == "ERROR BADFORMAT a job id is a positive whole number, got '-1'\n");
    CHECK(s.run("KICK -5\n") == "ERROR BADFORMAT a job id is a positive whole number, got '-5'\n");
    // With such a queue, the word names it, as before.
    s.run("CREATE -1\nENQUEUE -1 x\nDEQUEUE -1\n");
    CHECK(s.run("ACK -1 1\n") == "OK acked 1\n");
    CHECK(s.run("KICK -1\n") == "OK kicked 0\n");
  }

  TEST_CASE("ACK takes at most limits.max_batch ids, each counted once") {
    Session s;
    s.run("CREATE k\nENQUEUE k a\nENQUEUE k b\nDEQUEUE k COUNT 2\n");
    std::string many = "ACK";
    for (int i = 0; i < 1001; ++i) many += " 1";
    CHECK(s.run(many + "\n") ==
          "ERROR BADFORMAT ACK takes at most 1000 ids (limits.max_batch), got 1001; none was "
          "acked\n");
    CHECK(s.engine.find_job(1)->state == engine::JobState::kLeased);
    CHECK(s.run("ACK 2 1 2 1\n") == "OK acked 2\n");
    s.run("ENQUEUE k c\nDEQUEUE k\n");            // job 3
    CHECK(s.run("ACK 3 3\n") == "OK acked 3\n");  // one job: named, as ACK 3 would
    // Refused too as ACK 1 would be (PROTOCOL.md: "ACK 5 5 is ACK 5").
    CHECK(s.run("ACK 1 1\n") == s.run("ACK 1\n"));
    CHECK(s.run("ACK 1 1\n").rfind("ERROR NOTFOUND no job 1", 0) == 0);
  }

  TEST_CASE("DEQUEUE names at most limits.max_batch queues, repeats included") {
    Session s;
    s.run("CREATE k\nENQUEUE k a\n");
    std::string many = "DEQUEUE";
    for (int i = 0; i < 1000; ++i) many += " k";
    CHECK(s.run(many + " COUNT 5\n").rfind("OK 1\n", 0) == 0);
    CHECK(s.run(many + " k\n") ==
          "ERROR BADFORMAT DEQUEUE names at most 1000 queues (limits.max_batch)\n");
    // Said before any name is looked up: the first may not exist.
    CHECK(s.run("DEQUEUE nosuch" + many.substr(7) + " WAIT 1s\n") ==
          "ERROR BADFORMAT DEQUEUE names at most 1000 queues (limits.max_batch)\n");
  }

  TEST_CASE("ACK with a queue name and several ids says which forms ACK takes") {
    Session s;
    s.run("CREATE k\nENQUEUE k a\nENQUEUE k b\nDEQUEUE k COUNT 2\n");
    const std::string forms =
        "ERROR BADFORMAT 'k' is not a job id; ACK takes ACK <id>[@<lease>]... or ACK <queue> "
        "<id>[@<lease>] (one id after a queue name)\n";
    CHECK(s.run("ACK k 1 2\n") == forms);
    CHECK(s.engine.find_job(1)->state == engine::JobState::kLeased);  // none acked
    CHECK(s.run("ACK k 1\n") == "OK acked 1\n");
    CHECK(s.run("ACK 2 k\n") == "ERROR BADFORMAT a job id is a positive whole number, got 'k'\n");
  }

  TEST_CASE("DEQUEUE names a queue once however often it is given, and EMPTY names ten at most") {
    Session s;
    std::string create;
    std::string names;
    for (int i = 0; i < 12; ++i) {
      create += "CREATE q" + std::to_string(i) + "\n";
      names += " q" + std::to_string(i);
    }
    s.run(create);
    CHECK(s.run("DEQUEUE" + names + names + "\n") ==
          "ERROR EMPTY no ready job in q0 q1 q2 q3 q4 q5 q6 q7 q8 q9 and 2 more\n");
    s.run("PAUSE q11\n");
    CHECK(s.run("DEQUEUE q11 q0 q0 q11\n") ==
          "ERROR EMPTY nothing to deliver: 'q11' is paused; 'q0' has no ready job\n");
    // A queue with delayed jobs is not only empty: the reasons are named.
    s.run("PUT q1 1 AT 4000000000\nx\n");
    CHECK(s.run("DEQUEUE q0 q1\n")
              .rfind(
                  "ERROR EMPTY nothing to deliver: 'q0' has no ready job; 'q1' has no ready job: 1 "
                  "delayed, the next ready in ",
                  0) == 0);
    REQUIRE(s.run("DELETE 1\n") == "OK deleted 1\n");
    s.run("ENQUEUE q3 a\nENQUEUE q3 b\nENQUEUE q5 c\n");
    // q3 given three times is still one queue: its two jobs, then q5's.
    CHECK(s.run("DEQUEUE q3 q3 q5 q3 COUNT 10\n").rfind("OK 3\n", 0) == 0);
    CHECK(s.engine.find_queue("q3")->waiters == 0);
  }

  TEST_CASE("FULL names the setting that was reached") {
    engine::ManualClock clock;
    engine::Engine engine{clock, engine::EngineLimits{.max_payload_total = 4},
                          engine::QueueSettings{}};
    REQUIRE(engine.create_queue("q").ok());
    REQUIRE(engine.enqueue("q", "abc").ok());
    auto full = engine.enqueue("q", "de");
    REQUIRE_FALSE(full.ok());
    CHECK(full.error().message.find("(limits.max_payload_total)") != std::string::npos);
    // A payload bigger than the whole limit is not asked to try again later.
    auto never = engine.enqueue("q", "12345");
    REQUIRE_FALSE(never.ok());
    CHECK(never.error().message ==
          "a 5-byte payload is over limits.max_payload_total (4 bytes): it can never be stored");
  }

  TEST_CASE("an option error says which option, and whether it is unknown or lacks a value") {
    Session s;
    s.run("CREATE q\n");
    const std::string options = "options: PRIORITY, DELAY, AT, TTL, ATTEMPTS, KEY, GROUP";
    CHECK(s.run("PUT q 1 FLAVOR\nx\n") ==
          "ERROR BADFORMAT unknown PUT option 'FLAVOR'; " + options + "\n");
    CHECK(s.run("PUT q 1 PRIORITY 1 extra\nx\n") ==
          "ERROR BADFORMAT unknown PUT option 'extra'; " + options + "\n");
    CHECK(s.run("PUT q 1 DELAY\nx\n") == "ERROR BADFORMAT option DELAY needs a value\n");
    CHECK(s.run("PUT q 1 PRIORITY 2147483648\nx\n") ==
          "ERROR BADFORMAT PRIORITY takes a whole number from -2147483648 to 2147483647, got "
          "'2147483648'\n");
    CHECK(s.run("SCHEDULE q s 1 EVERY 1s FOO 3\nx\n") ==
          "ERROR BADFORMAT unknown SCHEDULE option 'FOO'; options: PRIORITY, TTL, ATTEMPTS, GROUP, "
          "TZ\n");
    CHECK(s.run("SCHEDULE q s 1 CRON @daily PRIORITY 1 FOO 3 TZ UTC\nx\n")
              .rfind("ERROR BADFORMAT unknown SCHEDULE option 'FOO'", 0) == 0);
    // The timing again among the options is no unknown option.
    CHECK(s.run("SCHEDULE q s 1 EVERY 1s every 2s\nx\n") == "ERROR BADFORMAT EVERY given twice\n");
    CHECK(s.run("SCHEDULE q s 1 CRON @daily PRIORITY 1 CRON @hourly\nx\n") ==
          "ERROR BADFORMAT CRON given twice\n");
    CHECK(s.run("SCHEDULE q s 1 EVERY 1s CRON @daily\nx\n") ==
          "ERROR BADFORMAT a schedule takes EVERY or CRON, not both\n");
    CHECK(s.run("PUT q 1 AT 253402300799\nx\n") ==
          "ERROR BADFORMAT AT takes a Unix time in seconds, 0 to 100000000000 (the year 5138), got "
          "'253402300799'\n");
    CHECK(s.run("PUT q 1 AT 1e9\nx\n").rfind("ERROR BADFORMAT AT takes a Unix time", 0) == 0);
    CHECK(s.run("PUT q 1 AT 100000000000\nx\n") == "OK 1\n");  // the bound itself is taken
    s.run("DELETE 1\n");
    CHECK(s.run("DEQUEUE q COUNT 1 other\n") ==
          "ERROR BADFORMAT after the queues, DEQUEUE takes WAIT <d> and COUNT <n>, got 'other' "
          "(queue names go first)\n");
    CHECK(s.run("DEQUEUE q COUNT\n") == "ERROR BADFORMAT COUNT needs a value\n");
    // A mistyped option reads as a queue name: the error says what the
    // options are, past the first name.
    CHECK(s.run("DEQUEUE q WIAT 5\n") ==
          "ERROR NOQUEUE queue 'WIAT' does not exist; CREATE it first (DEQUEUE's options, after "
          "the queue names: WAIT <d>, COUNT <n>)\n");
    CHECK(s.run("DEQUEUE nope WAIT 5\n") ==
          "ERROR NOQUEUE queue 'nope' does not exist; CREATE it first\n");
    // WAIT's bound is limits.max_wait (an hour here), said so for any bad value.
    CHECK(s.run("DEQUEUE q WAIT 2h\n") ==
          "ERROR BADFORMAT WAIT takes a duration such as 30, 30s, 500ms or 2m, at most 1 hour "
          "(limits.max_wait), got '2h'\n");
    CHECK(s.run("DEQUEUE q WAIT 1.5s\n").find("at most 1 hour (limits.max_wait), got '1.5s'") !=
          std::string::npos);
    CHECK(s.run("NACK 1 FOO 1\n") ==
          "ERROR BADFORMAT unknown NACK option 'FOO'; options: DELAY, PRIORITY\n");
    CHECK(s.run("NACK 1 DELAY\n") == "ERROR BADFORMAT option DELAY needs a value\n");
    CHECK(s.run("QUEUES\n").find("q ready=0") != std::string::npos);  // nothing was stored
  }

  TEST_CASE("an option given twice is refused, not the last one winning - and nothing changes") {
    Session s;
    s.run("CREATE q\nENQUEUE q a\nENQUEUE q b\n");
    // A refused PUT or SCHEDULE line still has its body skipped: the body
    // here is a request, and it is never run.
    CHECK(s.run("PUT q 4 PRIORITY 1 PRIORITY 2\nPING\nPING\n") ==
          "ERROR BADFORMAT PRIORITY given twice\nOK PONG\n");
    CHECK(s.run("PUT q 1 key k1 GROUP g KEY k2\nx\n") == "ERROR BADFORMAT KEY given twice\n");
    CHECK(s.run("SCHEDULE q s 4 EVERY 1h TTL 1m ttl 2m\nPING\nPING\n") ==
          "ERROR BADFORMAT TTL given twice\nOK PONG\n");
    CHECK(s.run("SCHEDULE q\n") == "OK 0\n");
    CHECK(s.run("DEQUEUE q COUNT 1 COUNT 2\n") == "ERROR BADFORMAT COUNT given twice\n");
    CHECK(s.run("DEQUEUE q WAIT 1s COUNT 1 wait 2s\n") == "ERROR BADFORMAT WAIT given twice\n");
    CHECK(s.run("CONFIG q ack_timeout=5s max_size=3 ack_timeout=6s\n") ==
          "ERROR BADFORMAT ack_timeout given twice\n");
    CHECK(s.engine.find_queue("q")->settings.ack_timeout_ms == 30'000);  // all or nothing
    CHECK(s.engine.find_queue("q")->settings.max_size == 0);
    CHECK(s.run("PEEK q READY DEAD\n") ==
          "ERROR BADFORMAT a state given twice; usage: PEEK <queue> "
          "[READY|HELD|DELAYED|LEASED|DEAD] [n]\n");
    CHECK(s.run("PEEK q 5 6\n").rfind("ERROR BADFORMAT a number given twice; usage: PEEK", 0) == 0);
    CHECK(s.run("PEEK q 5 BOGUS\n").rfind("ERROR BADFORMAT PEEK takes", 0) == 0);  // not a number
    CHECK(s.run("QUEUES\n") == "OK 1\nq ready=2 held=0 delayed=0 leased=0 dead=0 paused=0\n");
    REQUIRE(s.run("DEQUEUE q\n") == "OK 1 a\n");
    CHECK(s.run("NACK 1 DELAY 1s DELAY 2s\n") == "ERROR BADFORMAT DELAY given twice\n");
    CHECK(s.engine.find_job(1)->state == engine::JobState::kLeased);  // refused: still leased
    // DELAY and AT are two options, not one given twice: the later time wins.
    const int64_t now_s = s.clock.now_ms() / 1000;
    CHECK(s.run("PUT q 1 DELAY 1h AT " + std::to_string(now_s + 60) + "\nx\n") == "OK 3\n");
    CHECK(s.engine.find_job(3)->deadline_ms == s.clock.now_ms() + 3'600'000);
    CHECK(s.run("PUT q 1 AT " + std::to_string(now_s + 7200) + " DELAY 1m\nx\n") == "OK 4\n");
    CHECK(s.engine.find_job(4)->deadline_ms == (now_s + 7200) * 1000);
  }

  TEST_CASE("on a delay queue, PUT ... DELAY 0 and AT 0 are ready at once - a time of their own") {
    Session s;
    s.run("CREATE q\n");
    REQUIRE(s.run("CONFIG q delay=1h\n").rfind("OK", 0) == 0);
    CHECK(s.run("PUT q 1\na\n") == "OK 1\n");
    CHECK(s.run("PUT q 1 DELAY 0\nb\n") == "OK 2\n");
    CHECK(s.run("PUT q 1 AT 0\nc\n") == "OK 3\n");
    CHECK(s.engine.find_job(1)->state == engine::JobState::kDelayed);
    CHECK(s.engine.find_job(2)->state == engine::JobState::kReady);
    CHECK(s.engine.find_job(3)->state == engine::JobState::kReady);
    // A TTL is checked against the job's own time, not the queue's delay.
    CHECK(s.run("PUT q 1 DELAY 0 TTL 1s\nd\n") == "OK 4\n");
    CHECK(s.run("PUT q 1 TTL 1s\ne\n") ==
          "ERROR BADFORMAT its TTL (1000ms) ends no later than it is due (3600000ms from now, the "
          "queue's delay): it could never be delivered\n");
  }

  TEST_CASE("PEEK says which states it takes when a word is neither a state nor a number") {
    Session s;
    s.run("CREATE k\n");
    CHECK(s.run("PEEK k BOGUS\n") ==
          "ERROR BADFORMAT PEEK takes a state (READY, HELD, DELAYED, LEASED, DEAD) or a number "
          "from 1 to 1000, got 'BOGUS'\n");
    CHECK(s.run("PEEK k 5 -1\n").rfind("ERROR BADFORMAT PEEK takes a state (READY,", 0) == 0);
    // A number out of range is still told its range alone.
    CHECK(s.run("PEEK k 0\n") == "ERROR BADFORMAT PEEK takes a number from 1 to 1000, got '0'\n");
    CHECK(s.run("PEEK k held 3\n") == "OK 0\n");
  }

  TEST_CASE("KICK <queue> n takes any count a 64-bit number holds") {
    Session s;
    s.run("CREATE k\nENQUEUE k a\nDEQUEUE k\nFAIL 1 broken\n");
    CHECK(s.run("KICK k 18446744073709551615\n") == "OK kicked 1\n");
    CHECK(s.run("KICK k 18446744073709551616\n") ==
          "ERROR BADFORMAT KICK takes a number from 1 to 18446744073709551615, got "
          "'18446744073709551616'\n");
  }

  TEST_CASE("PURGE <queue> DEAD, in any case, and any other word is refused") {
    Session s;
    s.run("CREATE k\nENQUEUE k a\nENQUEUE k b\nDEQUEUE k\nFAIL 1 broken\n");
    CHECK(s.run("PURGE k later\n") ==
          "ERROR BADFORMAT PURGE takes DEAD or nothing after the queue, got 'later'\n");
    CHECK(s.engine.job_count() == 2);
    CHECK(s.run("PURGE k dead\n") == "OK purged 1\n");
    CHECK(s.run("JOB 1\n").rfind("ERROR NOTFOUND", 0) == 0);
    CHECK(s.run("PURGE k\n") == "OK purged 1\n");
    CHECK(s.engine.job_count() == 0);
  }

  TEST_CASE("CONFIG paused=... says paused is read-only and what changes it") {
    Session s;
    s.run("CREATE k\n");
    const std::string read_only =
        "ERROR BADFORMAT paused is read-only here: PAUSE <queue> and RESUME <queue> change it\n";
    CHECK(s.run("CONFIG k paused=true\n") == read_only);
    CHECK(s.run("CONFIG k max_size=5 paused=false\n") == read_only);
    CHECK(s.engine.find_queue("k")->settings.max_size == 0);  // nothing was changed
    CHECK_FALSE(s.engine.find_queue("k")->paused);
    CHECK(s.run("CONFIG k\n").find("\npaused false\n") != std::string::npos);
  }

  TEST_CASE("CONFIG takes every setting at once - the table's arity follows the settings") {
    Session s;
    s.run("CREATE k\n");
    std::string all = "CONFIG k";
    for (const auto& [key, value] : tq::server::describe_queue_settings({})) {
      all += " " + key + "=" + value;
    }
    const std::string reply = s.run(all + "\n");
    CHECK(reply.rfind("OK " + std::to_string(tq::server::queue_setting_keys().size() + 1) + "\n",
                      0) == 0);
  }

  TEST_CASE(
      "CONFIG dead_letter_queue names another queue that exists - or - and nothing clears it") {
    Session s;
    s.run("CREATE k\nCREATE k-dead\n");
    CHECK(s.run("CONFIG k dead_letter_queue=k-daed\n") ==
          "ERROR NOQUEUE dead_letter_queue: queue 'k-daed' does not exist; CREATE it first\n");
    CHECK(s.run("CONFIG k dead_letter_queue=k\n") ==
          "ERROR BADFORMAT dead_letter_queue: a queue cannot be its own (without one, its dead "
          "letters stay in it)\n");
    CHECK(s.run("CONFIG k dead_letter_queue=a/b\n") ==
          "ERROR BADFORMAT dead_letter_queue: expected a queue name, or - for none, got 'a/b'\n");
    CHECK(s.engine.find_queue("k")->settings.dead_letter_queue.empty());
    CHECK(s.run("CONFIG k dead_letter_queue=k-dead\n").find("\ndead_letter_queue k-dead\n") !=
          std::string::npos);
    // Once set, other changes do not ask for the queue again (it may be gone).
    s.run("DROP k-dead\n");
    CHECK(s.run("CONFIG k max_size=3\n").rfind("OK ", 0) == 0);
    CHECK(s.run("CONFIG k dead_letter_queue=-\n").find("\ndead_letter_queue -\n") !=
          std::string::npos);
    s.run("CREATE k-dead\nCONFIG k dead_letter_queue=k-dead\n");
    CHECK(s.run("CONFIG k dead_letter_queue=\n").find("\ndead_letter_queue -\n") !=
          std::string::npos);
  }

  TEST_CASE("a job in a dead_letter_queue shows where it died and why - REDRIVE sends it back") {
    Session s;
    s.run("CREATE k\nCREATE k-dead\nCONFIG k dead_letter_queue=k-dead\nENQUEUE k pay 42\n");
    s.run("DEQUEUE k\nFAIL 1 card declined\n");
    CHECK(s.run("PEEK k-dead READY\n") ==
          "OK 1\nJOB 1 6 queue=k-dead state=ready attempts=0 priority=0 from=k "
          "reason=failed: card declined\npay 42\n");
    CHECK(s.run("PEEK k DEAD\n") == "OK 0\n");
    // A stale ACK: the job is not leased (it moved), nor in the queue named.
    CHECK(s.run("ACK 1\n") ==
          "ERROR NOTLEASED cannot ack job 1: it is ready, not leased (it died in queue 'k' and "
          "moved to this one, its dead_letter_queue, and was not delivered since)\n");
    CHECK(s.run("ACK k 1\n") == "ERROR NOTFOUND job 1 is not in queue 'k'\n");
    CHECK(s.run("REDRIVE k-dead 0\n") ==
          "ERROR BADFORMAT REDRIVE takes a number from 1 to 18446744073709551615, got '0'\n");
    CHECK(s.run("REDRIVE k-dead\n") == "OK redriven 1\n");
    CHECK(s.run("PEEK k\n") == "OK 1\nJOB 1 6 queue=k state=ready attempts=0 priority=0\npay 42\n");
    CHECK(s.run("REDRIVE k-dead\n") == "OK redriven 0\n");
  }

  TEST_CASE("a dead_letter_queue at its max_size still takes the jobs that die") {
    Session s;
    s.run("CREATE k\nCREATE k-dead\nCONFIG k dead_letter_queue=k-dead\n");
    s.run("CONFIG k-dead max_size=1\nENQUEUE k-dead filler\nENQUEUE k pay 42\n");
    CHECK(s.run("ENQUEUE k-dead more\n").rfind("ERROR FULL", 0) == 0);
    s.run("DEQUEUE k\n");
    CHECK(s.run("FAIL 2 card declined\n") == "OK dead 2\n");
    CHECK(s.run("PEEK k-dead READY\n").rfind("OK 2\n", 0) == 0);
  }

  TEST_CASE("CONFIG takes setting names in any case, as verbs and options are") {
    Session s;
    s.run("CREATE k\n");
    const std::string listing = "OK " + std::to_string(server::queue_setting_keys().size() + 1);
    CHECK(s.run("CONFIG k Max_Attempts=7 ACK_TIMEOUT=5s\n").rfind(listing + "\n", 0) == 0);
    CHECK(s.engine.find_queue("k")->settings.max_attempts == 7);
    CHECK(s.engine.find_queue("k")->settings.ack_timeout_ms == 5000);
    CHECK(s.run("CONFIG k PAUSED=true\n") ==
          "ERROR BADFORMAT paused is read-only here: PAUSE <queue> and RESUME <queue> change it\n");
    CHECK(s.run("CONFIG k max_size=1 MAX_SIZE=2\n") == "ERROR BADFORMAT max_size given twice\n");
    CHECK(s.engine.find_queue("k")->settings.max_size == 0);
  }

  TEST_CASE("the throttle's table is bounded - past it, new addresses share one budget") {
    server::AuthThrottle throttle;
    const size_t limit = server::AuthThrottle::kMaxAddresses;
    for (size_t i = 0; i < limit; ++i) throttle.failed("10.0." + std::to_string(i), 0);
    CHECK(throttle.tracked() == limit);
    for (uint64_t i = 0; i < server::AuthThrottle::kFailuresPerSecond; ++i) {
      CHECK(throttle.allowed("fresh-" + std::to_string(i), 10));
      throttle.failed("fresh-" + std::to_string(i), 10);
    }
    CHECK(throttle.tracked() == limit);  // none of them got a row of its own
    CHECK_FALSE(throttle.allowed("one-more", 20));
    CHECK(throttle.allowed("10.0.1", 20));  // a tracked address keeps its own budget
    throttle.failed("late", 1000);          // the first second is over: rows go
    CHECK(throttle.tracked() == 1);
    CHECK(throttle.allowed("one-more", 1000));
  }

  TEST_CASE("the seed's five commands answer exactly one line each") {
    Session s;
    CHECK(s.run("CREATE emails\n") == "OK created emails\n");
    CHECK(s.run("CREATE emails\n") == "ERROR EXISTS queue 'emails' already exists\n");
    CHECK(s.run("ENQUEUE emails Send welcome email\n") == "OK 1\n");
    CHECK(s.run("ENQUEUE emails Send  password reset\n") == "OK 2\n");
    CHECK(s.run("DEQUEUE emails\n") == "OK 1 Send welcome email\n");
    CHECK(s.run("ACK 1\n") == "OK acked 1\n");
    CHECK(s.run("ACK 1\n") == "ERROR NOTFOUND no job 1 (never existed, or already finished)\n");
    CHECK(s.run("DEQUEUE emails\n") == "OK 2 Send  password reset\n");
    CHECK(s.run("ACK emails 2\n") == "OK acked 2\n");
    CHECK(s.run("DEQUEUE emails\n") == "ERROR EMPTY queue 'emails' has no ready job\n");
    CHECK(s.run("LIST\n") == "OK emails\n");
  }

  TEST_CASE("JOB shows one job by id in each state it passes through, and changes nothing") {
    Session s;
    const int64_t t0 = s.clock.now_ms();
    s.run("CREATE emails\nCONFIG emails ack_timeout=30s\n");
    CHECK(s.run("PUT emails 5 PRIORITY 3 KEY welcome-7\nhello\n") == "OK 1\n");
    CHECK(s.run("JOB 1\n") ==
          "OK 1\nJOB 1 5 queue=emails state=ready attempts=0 priority=3 key=welcome-7\nhello\n");
    CHECK(s.run("JOB 1\n") == s.run("JOB 1\n"));  // looking twice changes nothing
    CHECK(s.run("DEQUEUE emails\n") == "OK 1 hello\n");
    CHECK(s.run("JOB 1\n") ==
          "OK 1\nJOB 1 5 queue=emails state=leased attempts=1 lease=1 priority=3 at=" +
              std::to_string(t0 + 30'000) + " key=welcome-7\nhello\n");
    s.clock.advance_ms(5'000);
    CHECK(s.run("FAIL 1 smtp said no\n").rfind("OK", 0) == 0);
    CHECK(s.run("JOB 1\n") == "OK 1\nJOB 1 5 queue=emails state=dead attempts=1 priority=3 at=" +
                                  std::to_string(t0 + 5'000) +
                                  " key=welcome-7 reason=failed: smtp said no\nhello\n");
    s.run("KICK emails\nDEQUEUE emails\nACK 1\n");
    CHECK(s.run("JOB 1\n") ==
          "ERROR NOTFOUND no job 1 (never existed, or finished: acked, deleted, expired or "
          "purged)\n");
    CHECK(s.run("JOB 0\n") == "ERROR BADFORMAT a job id is a positive whole number, got '0'\n");
  }

  TEST_CASE("LIST is one comma-separated line, sorted - bare OK when there is none") {
    Session s;
    CHECK(s.run("LIST\n") == "OK\n");
    s.run("CREATE orders\nCREATE emails\nCREATE audit\n");
    CHECK(s.run("LIST\n") == "OK audit,emails,orders\n");
  }

  TEST_CASE("ACK <queue> <id> checks the queue") {
    Session s;
    s.run("CREATE a\nCREATE b\nENQUEUE a x\nDEQUEUE a\n");
    CHECK(s.run("ACK b 1\n") == "ERROR NOTFOUND job 1 is not in queue 'b'\n");
    // A name no queue can have is malformed, as in every other command.
    CHECK(s.run("ACK a/b 1\n").find("ERROR BADFORMAT invalid queue name 'a/b'") == 0);
    CHECK(s.run("ACK WAIT 1\n").find("ERROR BADFORMAT invalid queue name 'WAIT'") == 0);
    // A queue that is not there is NOQUEUE, as in every other command.
    CHECK(s.run("ACK nosuch 1\n").rfind("ERROR NOQUEUE", 0) == 0);
    CHECK(s.run("ACK a 1\n") == "OK acked 1\n");
  }

  TEST_CASE("bad arguments get BADFORMAT with the reason") {
    Session s;
    CHECK(s.run("ACK abc\n") == "ERROR BADFORMAT a job id is a positive whole number, got 'abc'\n");
    CHECK(s.run("ACK 0\n") == "ERROR BADFORMAT a job id is a positive whole number, got '0'\n");
    CHECK(s.run("CREATE 123\n").find("ERROR BADFORMAT invalid queue name '123'") == 0);
    CHECK(s.run("ENQUEUE nope x\n") == "ERROR NOQUEUE queue 'nope' does not exist; CREATE it first\n");
    CHECK(s.stats.errors_total == 4);
  }

  TEST_CASE("PING, QUIT, HELP") {
    Session s;
    CHECK(s.run("PING\n") == "OK PONG\n");
    std::string help = s.run("HELP\n");
    CHECK(help.rfind("OK ", 0) == 0);
    size_t count = std::stoul(help.substr(3));
    CHECK(count == protocol::all_commands().size());
    CHECK(static_cast<size_t>(std::count(help.begin(), help.end(), '\n')) == count + 1);
    CHECK(s.run("HELP ack\n").rfind("OK ", 0) == 0);
    CHECK(s.run("HELP ack\n").find("admin command") == std::string::npos);
    CHECK(s.run("HELP drop\n").find("An admin command: with auth.admin_password set") !=
          std::string::npos);
    CHECK(s.run("HELP nope\n") == "ERROR UNKNOWN no command 'nope'; HELP lists the commands\n");
    // HELP CONFIG names every setting CONFIG takes.
    std::vector<std::string> words;
    for (std::string word; char c : s.run("HELP CONFIG\n") + " ") {
      if (c == ' ' || c == ',' || c == '.' || c == '\n') {
        if (!word.empty()) words.push_back(std::move(word));
        word.clear();
      } else {
        word += c;
      }
    }
    for (const std::string& key : server::queue_setting_keys()) {
      INFO(key);
      CHECK(std::find(words.begin(), words.end(), key) != words.end());
    }
    CHECK(s.run("QUIT\nPING\n") == "OK bye\n");
    CHECK(s.closed);
  }

  TEST_CASE("STATS counts jobs and commands - STATS <queue> shows one queue") {
    Session s;
    s.run("CREATE q\nENQUEUE q a\nENQUEUE q b\nDEQUEUE q\nACK 1\nDEQUEUE q\n");
    std::string stats = s.run("STATS\n");
    CHECK(stats.find("\njobs_ready 0\n") != std::string::npos);
    CHECK(stats.find("\njobs_leased 1\n") != std::string::npos);
    CHECK(stats.find("\njobs_enqueued_total 2\n") != std::string::npos);
    CHECK(stats.find("\njobs_acked_total 1\n") != std::string::npos);
    CHECK(stats.find("\ncommands_dequeue 2\n") != std::string::npos);
    CHECK(stats.find("\nqueues 1\n") != std::string::npos);
    std::string queue_stats = s.run("STATS q\n");
    CHECK(queue_stats.rfind("OK 32\nqueue q\npaused 0\npaused_until_ms 0\nready 0\nhead_wait_ms "
                            "0\nheld 0\ndelayed 0\nleased 1\ndead 0\n",
                            0) == 0);
    CHECK(queue_stats.find("\nenqueued_total 2\ndup") != std::string::npos);
    CHECK(queue_stats.find("\ndequeued_total 2\nacked_total 1\n") != std::string::npos);
    CHECK(queue_stats.find("\nack_timeout_ms 30000\n") != std::string::npos);
    CHECK(s.run("STATS nope\n") == "ERROR NOQUEUE queue 'nope' does not exist; CREATE it first\n");
  }
}

}  // namespace commands_test
