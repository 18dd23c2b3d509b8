// Tab completion in the tq REPL, as a function of the line typed so far:
// verbs, queue names where a command takes one, and each command's keywords.
#include <doctest/doctest.h>

#include <algorithm>

#include "client/client.h"
#include "client/repl_completion.h"
#include "protocol/command_table.h"
#include "tests/support/tqd_process.h"

namespace completion_test {

using Words = std::vector<std::string>;

namespace {

int lookups = 0;

Words complete(std::string_view line) {
  return tq::client::complete(line, [] {
    ++lookups;
    return Words{"emails", "email_digest", "orders"};
  });
}

}  // namespace

TEST_SUITE("tq completion") {
  TEST_CASE("the first word completes to verbs in the case it was typed") {
    CHECK(complete("DE") == Words{"DELETE", "DEQUEUE"});
    CHECK(complete("de") == Words{"delete", "dequeue"});
    CHECK(complete("  enq") == Words{"enqueue"});
    CHECK(complete("").size() == tq::protocol::all_commands().size());
    CHECK(complete("FETCH").empty());
  }

  TEST_CASE("queue names complete where a command takes one - and are only looked up there") {
    lookups = 0;
    CHECK(complete("ENQUEUE em") == Words{"email_digest", "emails"});
    CHECK(complete("stats o") == Words{"orders"});
    CHECK(complete("PEEK ") == Words{"email_digest", "emails", "orders"});
    CHECK(lookups == 3);
    CHECK(complete("ENQUEUE emails hel").empty());  // a payload is not ours to guess
    CHECK(complete("ACK 12 1").empty());
    CHECK(complete("PI") == Words{"PING"});
    CHECK(lookups == 3);  // a payload, an id or a verb needs no LIST
  }

  TEST_CASE("DEQUEUE completes more queues then WAIT and COUNT - not after a keyword") {
    CHECK(complete("DEQUEUE emails ") == Words{"COUNT", "WAIT", "email_digest", "orders"});
    CHECK(complete("dequeue emails w") == Words{"wait"});
    CHECK(complete("DEQUEUE emails WAIT ").empty());
    // Each keyword once.
    CHECK(complete("DEQUEUE emails WAIT 5s ") == Words{"COUNT"});
    CHECK(complete("DEQUEUE emails COUNT 5 WAIT 1s ").empty());
  }

  TEST_CASE(
      "keywords - PEEK states, PUT options, NACK DELAY, CONFIG settings, PURGE DEAD, HELP verbs") {
    CHECK(complete("PEEK emails D") == Words{"DEAD", "DELAYED"});
    CHECK(complete("PUT emails 5 ") ==
          Words{"AT", "ATTEMPTS", "DELAY", "GROUP", "KEY", "PRIORITY", "TTL"});
    CHECK(complete("PEEK emails H") == Words{"HELD"});
    CHECK(complete("SCHEDULE emails nightly 6 ") == Words{"CRON", "EVERY"});
    CHECK(complete("PUT emails 5 PRIORITY ").empty());
    CHECK(complete("PUT emails 5 PRIORITY 3 t") == Words{"ttl"});
    // An option already given is not offered again; a value is not an option.
    CHECK(complete("PUT emails 5 PRIORITY 3 KEY DELAY GROUP g ") ==
          Words{"AT", "ATTEMPTS", "DELAY", "TTL"});
    CHECK(complete("NACK 7 ") == Words{"DELAY", "PRIORITY"});
    CHECK(complete("NACK 7 DELAY 5s ") == Words{"PRIORITY"});
    CHECK(complete("NACK 7 PRIORITY 1 ") == Words{"DELAY"});
    CHECK(complete("CONFIG emails max_") == Words{"max_attempts=", "max_leased=", "max_size="});
    CHECK(complete("CONFIG emails rate") == Words{"rate_limit=", "rate_window="});
    CHECK(complete("CONFIG emails tt") == Words{"ttl=", "ttl_dead_letter="});
    CHECK(complete("CONFIG emails del") == Words{"delay="});
    CHECK(complete("CONFIG emails ttl=5m tt") == Words{"ttl_dead_letter="});
    CHECK(complete("CONFIG emails dead_l") == Words{"dead_letter_queue="});
    // Its value is another queue's name.
    CHECK(complete("CONFIG emails dead_letter_queue=") ==
          Words{"dead_letter_queue=email_digest", "dead_letter_queue=orders"});
    CHECK(complete("CONFIG emails dead_letter_queue=o") == Words{"dead_letter_queue=orders"});
  }

  TEST_CASE(
      "CONFIG completes every setting a real tqd lists - and paused, which it cannot set, not") {
    tq::testing::TqdProcess tqd;
    auto client = tq::client::Client::connect({.host = "127.0.0.1", .port = tqd.port()});
    REQUIRE(client.ok());
    REQUIRE(client->create("emails").ok());
    auto settings = client->config("emails");
    REQUIRE(settings.ok());
    const Words offered = complete("CONFIG emails ");
    for (const auto& setting : *settings) {
      const auto& key = setting.first;
      INFO(key);
      const bool completed = std::find(offered.begin(), offered.end(), key + "=") != offered.end();
      CHECK(completed == (key != "paused"));
    }
    CHECK(offered.size() == settings->size() - 1);
    CHECK(complete("PURGE emails ") == Words{"DEAD"});
    CHECK(complete("help ac") == Words{"ack"});
  }
}

}  // namespace completion_test
