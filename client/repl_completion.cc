#include "client/repl_completion.h"

#include <algorithm>

#include "client/request_line.h"
#include "protocol/command_table.h"

namespace tq::client {
namespace {

using protocol::Verb;

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool starts_with_ignoring_case(std::string_view word, std::string_view prefix) {
  return word.size() >= prefix.size() &&
         to_upper(word.substr(0, prefix.size())) == to_upper(prefix);
}

// Keywords (upper case) that match the partial word, in the partial word's case.
void add_keywords(const std::vector<std::string_view>& keywords, std::string_view partial,
                  std::vector<std::string>& out) {
  const bool lower = !partial.empty() && partial[0] >= 'a' && partial[0] <= 'z';
  for (std::string_view k : keywords) {
    if (starts_with_ignoring_case(k, partial)) out.push_back(lower ? to_lower(k) : std::string(k));
  }
}

void add_verbs(std::string_view partial, std::vector<std::string>& out) {
  std::vector<std::string_view> verbs;
  for (const auto& spec : protocol::all_commands()) verbs.push_back(spec.name);
  add_keywords(verbs, partial, out);
}

void add_queues(const std::function<std::vector<std::string>()>& queue_names,
                std::string_view partial, const std::vector<std::string_view>& already,
                std::vector<std::string>& out) {
  for (const std::string& name : queue_names()) {
    if (name.compare(0, partial.size(), partial) != 0) continue;
    if (std::find(already.begin(), already.end(), name) != already.end()) continue;
    out.push_back(name);
  }
}

// The keywords not yet among the words (compared ignoring case): each
// option is given once.
std::vector<std::string_view> unused(std::vector<std::string_view> keywords,
                                     const std::vector<std::string_view>& words) {
  std::erase_if(keywords, [&](std::string_view k) {
    return std::any_of(words.begin(), words.end(),
                       [&](std::string_view w) { return to_upper(w) == k; });
  });
  return keywords;
}

// CONFIG's one setting whose value is a queue name.
constexpr std::string_view kDeadLetterKey = "dead_letter_queue=";

// Commands whose first argument is a queue name.
bool takes_queue_first(Verb verb) {
  switch (verb) {
    case Verb::kCreate:
    case Verb::kEnqueue:
    case Verb::kPut:
    case Verb::kDequeue:
    case Verb::kAck:  // ACK <queue> <id>, the original worker's form
    case Verb::kPeek:
    case Verb::kKick:
    case Verb::kRedrive:
    case Verb::kConfig:
    case Verb::kPause:
    case Verb::kResume:
    case Verb::kPurge:
    case Verb::kDrop:
    case Verb::kSchedule:
    case Verb::kCancel:
    case Verb::kStats:
      return true;
    default:
      return false;
  }
}

}  // namespace

std::vector<std::string> complete(std::string_view line,
                                  const std::function<std::vector<std::string>()>& queue_names) {
  std::vector<std::string_view> words = split_words(line);
  const bool new_word = line.empty() || line.back() == ' ' || line.back() == '\t';
  std::string_view partial = new_word || words.empty() ? std::string_view{} : words.back();
  if (!new_word && !words.empty()) words.pop_back();
  const size_t position = words.size();  // 0: the verb

  std::vector<std::string> out;
  if (position == 0) {
    add_verbs(partial, out);
  } else if (const protocol::CommandSpec* spec = protocol::find_command(words[0])) {
    const Verb verb = spec->verb;
    const std::string previous = to_upper(words.back());
    if (verb == Verb::kHelp && position == 1) {
      add_verbs(partial, out);
    } else if (verb == Verb::kDequeue) {
      // Queues until a keyword; a keyword's value is not ours to guess.
      if (previous != "WAIT" && previous != "COUNT") {
        bool keywords_started = false;
        for (size_t w = 1; w < words.size(); ++w) {
          std::string u = to_upper(words[w]);
          keywords_started = keywords_started || u == "WAIT" || u == "COUNT";
        }
        if (!keywords_started)
          add_queues(queue_names, partial, {words.begin() + 1, words.end()}, out);
        if (position >= 2) add_keywords(unused({"WAIT", "COUNT"}, words), partial, out);
      }
    } else if (position == 1 && takes_queue_first(verb)) {
      add_queues(queue_names, partial, {}, out);
    } else if (verb == Verb::kPeek && position == 2) {
      add_keywords({"READY", "HELD", "DELAYED", "LEASED", "DEAD"}, partial, out);
    } else if (verb == Verb::kPurge && position == 2) {
      add_keywords({"DEAD"}, partial, out);
    } else if (verb == Verb::kSchedule && position == 4) {
      add_keywords({"EVERY", "CRON"}, partial, out);
    } else if (verb == Verb::kPut && position >= 3 && (position - 3) % 2 == 0) {
      std::vector<std::string_view> options;  // the option names, not their values
      for (size_t w = 3; w < words.size(); w += 2) options.push_back(words[w]);
      add_keywords(unused({"PRIORITY", "DELAY", "AT", "TTL", "ATTEMPTS", "KEY", "GROUP"}, options),
                   partial, out);
    } else if (verb == Verb::kNack && (position == 2 || position == 4)) {
      std::vector<std::string_view> options;
      if (position == 4) options.push_back(words[2]);
      add_keywords(unused({"DELAY", "PRIORITY"}, options), partial, out);
    } else if (verb == Verb::kConfig && position >= 2 &&
               partial.substr(0, kDeadLetterKey.size()) == kDeadLetterKey) {
      // Its value is another queue: offered whole, "dead_letter_queue=<name>".
      const std::string_view name = partial.substr(kDeadLetterKey.size());
      std::vector<std::string> names;
      add_queues(queue_names, name, {words[1]}, names);
      for (const std::string& n : names) out.push_back(std::string(kDeadLetterKey) + n);
    } else if (verb == Verb::kConfig && position >= 2) {
      for (std::string_view key :
           {"ack_timeout=", "max_attempts=", "backoff_base=", "backoff_factor=", "backoff_max=",
            "backoff_jitter=", "dedup_window=", "max_size=", "priority=", "delay=", "ttl=",
            "ttl_dead_letter=", "max_leased=", "rate_limit=", "rate_window=", "dead_retention=",
            "dead_max=", "dead_letter_queue="}) {
        const bool set = std::any_of(words.begin() + 2, words.end(), [&](std::string_view w) {
          return w.substr(0, key.size()) == key;
        });
        if (!set && key.substr(0, partial.size()) == partial) out.emplace_back(key);
      }
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace tq::client
