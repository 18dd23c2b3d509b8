#include <doctest/doctest.h>

#include <fstream>
#include <string>
#include <vector>

#include "protocol/command_table.h"

namespace command_table_test {

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

  TEST_CASE("lookup agrees with a letter-by-letter comparison for every byte in every place") {
    // find_command compares names a word at a time; this checks it against
    // the plain definition, with each byte of each verb replaced by each of
    // the 256 values, and with a byte added or removed.
    auto upper = [](unsigned char c) { return c >= 'a' && c <= 'z' ? c - 32 : c; };
    auto expected = [&](std::string_view name) -> const CommandSpec* {
      for (const auto& spec : all_commands()) {
        if (spec.name.size() != name.size()) continue;
        bool same = true;
        for (size_t i = 0; i < name.size(); ++i) {
          same = same && upper(static_cast<unsigned char>(name[i])) ==
                             static_cast<unsigned char>(spec.name[i]);
        }
        if (same) return &spec;
      }
      return nullptr;
    };
    size_t found = 0;
    for (const auto& spec : all_commands()) {
      const std::string name(spec.name);
      CHECK(find_command(name) == &spec);
      for (size_t i = 0; i < name.size(); ++i) {
        for (int byte = 0; byte < 256; ++byte) {
          std::string changed = name;
          changed[i] = static_cast<char>(byte);
          const CommandSpec* got = find_command(changed);
          if (got != nullptr) ++found;
          if (got != expected(changed)) FAIL_CHECK("'" << changed << "' at byte " << i);
        }
      }
      CHECK(find_command(name + "S") == expected(name + "S"));
      CHECK(find_command(name + std::string(1, '\0')) == nullptr);
      CHECK(find_command(name.substr(0, name.size() - 1)) ==
            expected(name.substr(0, name.size() - 1)));
    }
    // At least each verb with each of its letters in either case was found.
    size_t letters = 0;
    for (const auto& spec : all_commands()) letters += spec.name.size();
    CHECK(found >= 2 * letters);
    CHECK(find_command("CLIENTSX") == nullptr);
    CHECK(find_command("DEQUEUES!") == nullptr);
  }

  TEST_CASE("every command documents its usage starting with its own name") {
    for (const auto& spec : all_commands()) {
      CHECK(spec.usage.substr(0, spec.name.size()) == spec.name);
      CHECK(!spec.summary.empty());
      // HELP's list: a usage too wide for its column has a brief that fits.
      const std::string_view listed = spec.brief.empty() ? spec.usage : spec.brief;
      INFO(spec.name << " as HELP lists it: " << listed);
      CHECK(listed.substr(0, spec.name.size()) == spec.name);
      CHECK(listed.size() < kHelpUsageColumn);
      CHECK(spec.min_args >= 0);
      CHECK((spec.max_args < 0 || spec.max_args >= spec.min_args));
    }
  }

  TEST_CASE("PROTOCOL.md, README.md and config.yaml name exactly the admin commands") {
    auto text_of = [](const std::string& name) {
      std::ifstream in(std::string(TQ_SOURCE_DIR) + "/" + name);
      std::string text, line;
      while (std::getline(in, line)) {
        // prose wraps anywhere; config.yaml's comments wrap after "  # "
        const size_t start = line.find_first_not_of(" #");
        const bool yaml = name.ends_with(".yaml") && start != std::string::npos;
        text += (yaml ? line.substr(start) : line) + " ";
      }
      return text;
    };
    std::vector<std::string> admin;
    for (const auto& spec : all_commands()) {
      if (spec.has(kAdmin)) admin.push_back(std::string(spec.name));
    }
    REQUIRE(admin.size() >= 2);
    // "`A`, `B`, `C`", "`A`, `B` and `C`" and, in config.yaml, "(A, B, C)"
    std::string commas, prose, plain = "(";
    for (size_t i = 0; i < admin.size(); ++i) {
      commas += (i == 0 ? "" : ", ") + ("`" + admin[i] + "`");
      prose += (i == 0 ? "" : i + 1 == admin.size() ? " and " : ", ") + ("`" + admin[i] + "`");
      plain += (i == 0 ? "" : ", ") + admin[i];
    }
    CHECK(text_of("PROTOCOL.md").find(prose) != std::string::npos);
    CHECK(text_of("README.md").find(commas) != std::string::npos);
    CHECK(text_of("config.yaml").find(plain + ")") != std::string::npos);
  }

  TEST_CASE("HELP lists the commands in the order PROTOCOL.md explains them") {
    // Each "### `VERB ...`" heading names one or more verbs, each opening a
    // pair of backticks.
    std::ifstream in(std::string(TQ_SOURCE_DIR) + "/PROTOCOL.md");
    REQUIRE(in);
    std::string documented;
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("### `", 0) != 0) continue;
      size_t open = line.find('`');
      while (open != std::string::npos) {
        const size_t close = line.find('`', open + 1);
        if (close == std::string::npos) break;
        std::string verb = line.substr(open + 1, close - open - 1);
        verb = verb.substr(0, verb.find(' '));
        if (!documented.ends_with(" " + verb)) documented += " " + verb;
        open = line.find('`', close + 1);
      }
    }
    std::string listed;
    for (const auto& spec : all_commands()) listed += " " + std::string(spec.name);
    CHECK(listed == documented);
  }
}

}  // namespace command_table_test
