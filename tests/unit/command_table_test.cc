#include <doctest/doctest.h>

#include "protocol/command_table.h"

using namespace tq::protocol;

TEST_SUITE("command_table") {
  TEST_CASE("each verb sits at its own index") {
    auto commands = all_commands();
    REQUIRE(commands.size() == static_cast<size_t>(Verb::kCount));
    for (size_t i = 0; i < commands.size(); ++i) {
      CHECK(static_cast<size_t>(commands[i].verb) == i);
      CHECK(&command_spec(commands[i].verb) == &commands[i]);
    }
  }

  TEST_CASE("lookup ignores case and rejects near misses") {
    REQUIRE(find_command("enqueue") != nullptr);
    CHECK(find_command("EnQueue")->verb == Verb::kEnqueue);
    CHECK(find_command("ACK")->verb == Verb::kAck);
    CHECK(find_command("ENQUEUEX") == nullptr);
    CHECK(find_command("") == nullptr);
    CHECK(find_command("ENQ") == nullptr);
  }

  TEST_CASE("every command documents its usage starting with its own name") {
    for (const auto& spec : all_commands()) {
      CHECK(spec.usage.substr(0, spec.name.size()) == spec.name);
      CHECK(!spec.summary.empty());
      CHECK(spec.min_args >= 0);
      CHECK((spec.max_args < 0 || spec.max_args >= spec.min_args));
    }
  }
}
