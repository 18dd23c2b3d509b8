// The command table: every verb tq understands, with its arity, flags and
// help text. Existence and arity are checked here, once, for every command,
// before any handler runs (the model is Redis's command table), so a handler
// can index its arguments without checking how many there are.
//
// Invariant: the table is looked up by name, case insensitively; each Verb
// appears exactly once, at index static_cast<int>(verb). Verbs are in the
// order PROTOCOL.md explains them, which is the order HELP lists them in (a
// unit test compares the two).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace tq::protocol {

enum class Verb : uint8_t {
  kCreate,
  kEnqueue,
  kPut,
  kDequeue,
  kAck,
  kNack,
  kFail,
  kTouch,
  kDelete,
  kList,
  kQueues,
  kPeek,
  kJob,
  kKick,
  kRedrive,
  kConfig,
  kPause,
  kResume,
  kPurge,
  kDrop,
  kSchedule,
  kCancel,
  kStats,
  kClients,
  kBackup,
  kReload,
  kAuth,
  kPing,
  kHelp,
  kQuit,
  kCount,  // not a verb: the number of verbs
};

enum CommandFlag : uint32_t {
  kWrites = 1u << 0,      // may change state, and so append to the log
  kMayBlock = 1u << 1,    // may park the connection until a job or a timeout
  kNoAuth = 1u << 2,      // allowed before the connection has authenticated
  kRestOfLine = 1u << 3,  // the last argument is the rest of the line, spaces kept
  kAdmin = 1u << 4,       // inspects or repairs; with auth.admin_password, admins only
  kLong = 1u << 5,        // may answer only after a long while: BACKUP (work off the
                          // loop), KICK, REDRIVE, PURGE (many jobs, in steps)
  kBigReply = 1u << 6,    // its reply may be megabytes: payloads (DEQUEUE, PEEK, JOB),
                          // or a line per queue or connection (LIST, QUEUES, CLIENTS)
};

// How a successful reply is framed, so a client can read one without knowing
// the verb's details (an ERROR reply is always one line):
//   kLine          one line
//   kCountedLines  "OK <n>" and n lines
//   kJobs          "OK <n>" and n jobs, each a header line
//                  "JOB <id> <bytes> <field>=<value>..." then <bytes> bytes
//                  of payload and "\n"
enum class ReplyShape : uint8_t { kLine, kCountedLines, kJobs };

// HELP's list puts each summary after a column this wide: every usage, or
// its brief, is narrower.
inline constexpr size_t kHelpUsageColumn = 40;

struct CommandSpec {
  Verb verb;
  std::string_view name;      // upper case, as documented in PROTOCOL.md
  int min_args;               // arguments after the verb
  int max_args;               // -1: no upper bound
  uint32_t flags;             // CommandFlag bits
  int body_length_arg;        // index of the argument that gives a body's length, or -1
  ReplyShape reply;           // how a successful reply is framed
  std::string_view usage;     // one line: "ENQUEUE <queue> <payload>"
  std::string_view summary;   // one line: what it does
  std::string_view details;   // further lines for HELP <verb>, '\n'-separated, may be empty
  // HELP's list, for a usage too long for its column: a short one, the
  // options left to HELP <verb> ("PUT <queue> <bytes> [options]").
  std::string_view brief = {};

  bool has(CommandFlag f) const { return (flags & f) != 0; }
};

// Whether `any` is `upper` (upper case, ASCII) in any case: verbs, keywords,
// and the words of values (duration units, log levels) are read so.
bool equals_ignoring_case(std::string_view upper, std::string_view any);

// Looks a verb up case-insensitively; nullptr when there is no such verb.
const CommandSpec* find_command(std::string_view name);

const CommandSpec& command_spec(Verb verb);

// Every command, in the order HELP lists them.
std::span<const CommandSpec> all_commands();

// The shape of a successful reply to this request: the spec's, except that
// DEQUEUE with COUNT answers with framed jobs.
ReplyShape reply_shape(const CommandSpec& spec, std::span<const std::string_view> args);
// Whether this request may change state (kWrites), given its arguments:
// CONFIG <queue> and SCHEDULE <queue> alone only read, and are served while
// the log cannot be written.
bool request_writes(const CommandSpec& spec, std::span<const std::string_view> args);

}  // namespace tq::protocol
