// The table itself. Keep entries in Verb order: command_spec() indexes by it,
// and a static_assert below checks the count.
#include "protocol/command_table.h"

#include <array>

namespace tq::protocol {
namespace {

constexpr std::array<CommandSpec, static_cast<size_t>(Verb::kCount)> kCommands{{
    {Verb::kCreate, "CREATE", 1, 1, kWrites, -1, ReplyShape::kLine,
     "CREATE <queue>", "create a queue",
     "Answers OK created <queue>, or ERROR EXISTS when it already exists.\n"
     "A queue name is 1-200 characters of A-Z a-z 0-9 . _ : - and not only digits."},
    {Verb::kEnqueue, "ENQUEUE", 2, 2, kWrites | kRestOfLine, -1, ReplyShape::kLine,
     "ENQUEUE <queue> <payload>",
     "add a job; the payload is the rest of the line",
     "Answers OK <id>. The payload keeps its inner spaces; it cannot hold a newline."},
    {Verb::kDequeue, "DEQUEUE", 1, 1, kWrites, -1, ReplyShape::kLine,
     "DEQUEUE <queue>",
     "lease the next ready job",
     "Answers OK <id> <payload>, or ERROR EMPTY when no job is ready.\n"
     "The job is leased for the queue's ack timeout: ACK it before then,\n"
     "or it goes back to the queue and counts a delivery attempt."},
    {Verb::kAck, "ACK", 1, 2, kWrites, -1, ReplyShape::kLine,
     "ACK <id> | ACK <queue> <id>",
     "finish a leased job: it is deleted",
     "Answers OK acked <id>. ERROR NOTFOUND when there is no such job (or it is in\n"
     "another queue), ERROR NOTLEASED when its lease already expired."},
    {Verb::kList, "LIST", 0, 0, 0, -1, ReplyShape::kLine,
     "LIST", "queue names, comma-separated",
     "Answers OK followed by the names in one line, sorted: OK emails,orders"},
    {Verb::kPing, "PING", 0, 0, kNoAuth, -1, ReplyShape::kLine,
     "PING", "check the connection", "Answers OK PONG."},
    {Verb::kHelp, "HELP", 0, 1, kNoAuth, -1, ReplyShape::kCountedLines,
     "HELP [command]", "list commands, or explain one",
     "Answers OK <n> followed by n lines."},
    {Verb::kQuit, "QUIT", 0, 0, kNoAuth, -1, ReplyShape::kLine,
     "QUIT", "close the connection",
     "Answers OK bye, then the server closes the connection."},
    {Verb::kStats, "STATS", 0, 1, 0, -1, ReplyShape::kCountedLines,
     "STATS [queue]", "server or queue figures",
     "Answers OK <n> followed by n lines of <name> <value>."},
}};

static_assert(kCommands.size() == static_cast<size_t>(Verb::kCount));

constexpr char to_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; }

bool equals_ignoring_case(std::string_view upper, std::string_view any) {
  if (upper.size() != any.size()) return false;
  for (size_t i = 0; i < upper.size(); ++i) {
    if (upper[i] != to_upper(any[i])) return false;
  }
  return true;
}

}  // namespace

const CommandSpec* find_command(std::string_view name) {
  // A linear scan over a couple of dozen short names beats hashing: the first
  // byte rejects almost every candidate.
  for (const CommandSpec& spec : kCommands) {
    if (equals_ignoring_case(spec.name, name)) return &spec;
  }
  return nullptr;
}

const CommandSpec& command_spec(Verb verb) { return kCommands[static_cast<size_t>(verb)]; }

std::span<const CommandSpec> all_commands() { return kCommands; }

}  // namespace tq::protocol
