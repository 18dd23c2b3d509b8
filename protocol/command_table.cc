// The table itself. Keep entries in Verb order: command_spec() indexes by it,
// and a static_assert below checks the count.
#include "protocol/command_table.h"

#include <array>
#include <bit>
#include <cstring>

namespace tq::protocol {
namespace {

constexpr ReplyShape kLine = ReplyShape::kLine;
constexpr ReplyShape kLines = ReplyShape::kCountedLines;
constexpr ReplyShape kJobs = ReplyShape::kJobs;

constexpr std::array<CommandSpec, static_cast<size_t>(Verb::kCount)> kCommands{{
    {Verb::kCreate, "CREATE", 1, 1, kWrites, -1, kLine, "CREATE <queue>", "create a queue",
     "Answers OK created <queue>, or ERROR EXISTS when it already exists.\n"
     "A queue name is 1-200 characters of A-Z a-z 0-9 . _ : -, not only digits,\n"
     "and not WAIT or COUNT in any case."},
    {Verb::kEnqueue, "ENQUEUE", 2, 2, kWrites | kRestOfLine, -1, kLine, "ENQUEUE <queue> <payload>",
     "add a job; the payload is the rest of the line",
     "Answers OK <id>. The payload keeps its inner spaces; it cannot hold a newline.\n"
     "PUT takes any bytes, and options (priority, delay, TTL, attempts, dedup key,\n"
     "group)."},
    {Verb::kPut, "PUT", 2, 16, kWrites, 1, kLine,
     "PUT <queue> <bytes> [PRIORITY n] [DELAY d] [AT t] [TTL d] [ATTEMPTS n] [KEY k] [GROUP g]",
     "add a job of any bytes, with options",
     "Send the line, then exactly <bytes> bytes of payload, then a line end.\n"
     "Answers OK <id>, or OK <id> DUPLICATE when KEY was seen within the queue's\n"
     "dedup window (nothing new is stored). PRIORITY: higher goes first (default 0).\n"
     "DELAY d: not before d from now (30, 30s, 500ms, 2m). AT t: not before Unix\n"
     "time t (seconds). TTL d: expires if not leased within d, or given back\n"
     "after (it must end after DELAY or AT). ATTEMPTS n:\n"
     "deliveries before dead letters (overrides the queue's). GROUP g: the queue\n"
     "delivers g's jobs one at a time, in the order they were put; each waits\n"
     "(held) until the one before it is acked, deleted, dead or expired.",
     "PUT <queue> <bytes> [options]"},
    {Verb::kDequeue, "DEQUEUE", 1, -1, kWrites | kMayBlock | kBigReply, -1, kLine,
     "DEQUEUE <queue>... [WAIT d] [COUNT n]", "lease the next ready job(s)",
     "Answers OK <id> <payload>, or ERROR EMPTY when no job is ready.\n"
     "Several queues (limits.max_batch at most): served by queue priority, then in\n"
     "the order given.\n"
     "WAIT d: block up to d until a job arrives (first come, first served).\n"
     "COUNT n: up to n jobs, framed: OK <k>, then per job a line\n"
     "JOB <id> <bytes> queue=<q> attempts=<a> lease=<t>, the payload bytes and a line\n"
     "end. A lease lasts the queue's ack timeout: ACK before then, or the job goes\n"
     "back. ACK <id>@<t> (NACK, FAIL, TOUCH too) ends this delivery and no later one."},
    {Verb::kAck, "ACK", 1, -1, kWrites, -1, kLine,
     "ACK <id>[@<lease>]... | ACK <queue> <id>[@<lease>]", "finish leased jobs: they are deleted",
     "Answers OK acked <id> (OK acked <n> for several). ERROR NOTFOUND when there is no\n"
     "such job (or it is in another queue), ERROR NOTLEASED when its lease expired.\n"
     "<id>@<lease>, with the lease= the job was delivered with: ERROR NOTLEASED, on\n"
     "any connection, once that delivery ended and the job was delivered again.\n"
     "With several ids (limits.max_batch at most; an id given twice counts once),\n"
     "those that can be acked are, and an error lists the rest.",
     "ACK <id>[@<lease>]..."},
    {Verb::kNack, "NACK", 1, 5, kWrites, -1, kLine, "NACK <id>[@<lease>] [DELAY d] [PRIORITY p]",
     "give a leased job back, to retry",
     "Answers OK nacked <id> (ready again, or after DELAY d, or after the queue's\n"
     "backoff), or OK dead <id> when it has used its attempts, or OK expired <id>\n"
     "when its TTL passed meanwhile. PRIORITY p gives the job a new priority.\n"
     "<id>@<lease>: only while that delivery lasts, as ACK's.",
     "NACK <id>[@<lease>] [options]"},
    {Verb::kFail, "FAIL", 2, 2, kWrites | kRestOfLine, -1, kLine, "FAIL <id>[@<lease>] <reason>",
     "send a leased job to dead letters",
     "Answers OK dead <id>. PEEK <queue> DEAD shows the reason.\n"
     "<id>@<lease>: only while that delivery lasts, as ACK's."},
    {Verb::kTouch, "TOUCH", 1, 2, kWrites, -1, kLine, "TOUCH <id>[@<lease>] [d]",
     "extend a lease (a heartbeat for long work)",
     "The lease now ends d from now (default: the queue's ack timeout).\n"
     "Answers OK touched <id> <ms> with the milliseconds left.\n"
     "<id>@<lease>: only while that delivery lasts, as ACK's."},
    {Verb::kDelete, "DELETE", 1, 1, kWrites, -1, kLine, "DELETE <id>", "delete a job in any state",
     "Answers OK deleted <id>. A plain id: a lease token (<id>@<lease>) is refused."},
    {Verb::kList, "LIST", 0, 0, kBigReply, -1, kLine, "LIST", "queue names, comma-separated",
     "Answers OK followed by the names in one line, sorted: OK emails,orders"},
    {Verb::kQueues, "QUEUES", 0, 0, kBigReply, -1, kLines, "QUEUES",
     "every queue with its job counts",
     "Answers OK <n>, then per queue: <name> ready=<r> held=<h> delayed=<d> leased=<l>\n"
     "dead=<x> paused=<0|1>."},
    {Verb::kPeek, "PEEK", 1, 3, kAdmin | kBigReply, -1, kJobs,
     "PEEK <queue> [READY|HELD|DELAYED|LEASED|DEAD] [n]",
     "look at the first n jobs in a state (default READY, 10)",
     "Answers OK <k>, then per job a line JOB <id> <bytes> queue=<q> state=<s>\n"
     "attempts=<a>, lease=<t> (leased jobs: the token ACK <id>@<t> takes),\n"
     "priority=<p> and when they apply at=<ms> (when it becomes ready,\n"
     "its lease ends, or it died), expires=<ms>, key=<k>, group=<g>, from=<queue it\n"
     "died in>, reason=<rest of line>; then the payload bytes and a line end. Times are Unix\n"
     "milliseconds. HELD: ready jobs waiting for an earlier job of their group.",
     "PEEK <queue> [state] [n]"},
    {Verb::kJob, "JOB", 1, 1, kBigReply, -1, kJobs, "JOB <id>", "look at one job by its id",
     "Answers OK 1 and the job framed as PEEK frames it (queue, state, attempts,\n"
     "lease, priority, at=, expires=, key=, group=, from=, reason=, then the payload); nothing\n"
     "changes. ERROR NOTFOUND when no job has that id: it never existed, or it\n"
     "finished (acked, deleted, expired, purged)."},
    {Verb::kKick, "KICK", 1, 2, kWrites | kAdmin | kLong, -1, kLine, "KICK <queue> [n] | KICK <id>",
     "give dead jobs another chance (all, n, or one by id)",
     "Moves dead jobs back to ready, oldest first, with their attempts reset.\n"
     "KICK <id> moves that one dead job, or makes that one delayed job ready now\n"
     "(ERROR NOTFOUND if it is neither).\n"
     "Answers OK kicked <k>."},
    {Verb::kRedrive, "REDRIVE", 1, 2, kWrites | kAdmin | kLong, -1, kLine, "REDRIVE <queue> [n]",
     "move a dead-letter queue's jobs back to where they died",
     "Moves the jobs that came to the queue as a dead_letter_queue (all, or the\n"
     "n oldest; ready, delayed or dead, not leased) back to the queues they died\n"
     "in, ready, attempts reset. Answers OK redriven <k>."},
    {Verb::kConfig, "CONFIG", 1, 19, kWrites | kAdmin, -1, kLines,
     "CONFIG <queue> [<key>=<value>...]", "read or change a queue's settings",
     "Answers OK <n> and the settings, one <key> <value> per line, after any change.\n"
     "Keys: ack_timeout, max_attempts, backoff_base, backoff_factor, backoff_max,\n"
     "backoff_jitter, dedup_window, max_size, priority, delay, ttl, ttl_dead_letter,\n"
     "max_leased, rate_limit, rate_window, dead_retention, dead_max, dead_letter_queue."},
    {Verb::kPause, "PAUSE", 1, 2, kWrites | kAdmin, -1, kLine, "PAUSE <queue> [d]",
     "stop deliveries from a queue (for d, or until RESUME)",
     "Answers OK paused <queue>. Jobs can still be enqueued. With d, deliveries\n"
     "start again by themselves after d; RESUME ends the pause sooner."},
    {Verb::kResume, "RESUME", 1, 1, kWrites | kAdmin, -1, kLine, "RESUME <queue>",
     "deliver from a paused queue again", "Answers OK resumed <queue>."},
    {Verb::kPurge, "PURGE", 1, 2, kWrites | kAdmin | kLong, -1, kLine, "PURGE <queue> [DEAD]",
     "delete every ready, held and delayed job, or every dead one",
     "Answers OK purged <n>. Leased and dead jobs stay.\n"
     "PURGE <queue> DEAD deletes the dead letters instead (nothing else)."},
    {Verb::kDrop, "DROP", 1, 1, kWrites | kAdmin, -1, kLine, "DROP <queue>",
     "delete a queue and all its jobs", "Answers OK dropped <queue>."},
    {Verb::kSchedule, "SCHEDULE", 1, 19, kWrites | kAdmin, 2, kLines,
     "SCHEDULE <queue> [<name> <bytes> (EVERY d | CRON m h dom mon dow [TZ zone]) [PRIORITY n] "
     "[TTL d] [ATTEMPTS n] [GROUP g]]",
     "put a job on a timetable, again and again; or list a queue's schedules",
     "With a name: send the line, then exactly <bytes> bytes of payload, then a line\n"
     "end. Each time the schedule comes due, the payload is put into the queue as a\n"
     "job with the options given. EVERY d: at each multiple of d in Unix time\n"
     "(EVERY 1h: on the hour). CRON: five fields, in UTC (*/15 * * * *, 0 3 * * MON-FRI)\n"
     "or @hourly, @daily, @weekly, @monthly, @yearly; TZ Europe/Berlin reads them on\n"
     "that zone's clock (a time clocks skip fires when they jump, a time that comes\n"
     "twice fires once, or twice with an hour field of *). A name scheduled already is\n"
     "replaced. Kept in the log; a time missed while tqd was down fires once when it\n"
     "is back. Answers OK <n> and a line per schedule (the one set, or every one):\n"
     "<name> next=<ms> fired=<jobs put> bytes=<n>, the job options set (priority=\n"
     "ttl= attempts= group= tz=), and last every=<ms>ms or cron=<expression>.",
     "SCHEDULE <queue> [<name> <bytes> ...]"},
    {Verb::kCancel, "CANCEL", 2, 2, kWrites | kAdmin, -1, kLine, "CANCEL <queue> <name>",
     "remove a schedule (SCHEDULE)",
     "Answers OK cancelled <name>, or ERROR NOTFOUND. Jobs it put already stay."},
    {Verb::kStats, "STATS", 0, 1, 0, -1, kLines, "STATS [queue]", "server or queue figures",
     "Answers OK <n> followed by n lines of <name> <value>."},
    {Verb::kClients, "CLIENTS", 0, 0, kAdmin | kBigReply, -1, kLines, "CLIENTS",
     "every connection: who, what, waiting",
     "Answers OK <n>, then per connection: id=<n> addr=<ip:port> age=<s>s idle=<s>s\n"
     "cmd=<last command> leases=<jobs it holds> wait=<queues it is blocked on, or ->\n"
     "unsent=<reply bytes not yet written>. The connection asking is in the list."},
    {Verb::kBackup, "BACKUP", 0, 1, kAdmin | kLong, -1, kLine, "BACKUP [name]",
     "copy the log as it is now into wal.backup_dir/<name>, while serving",
     "The copy is made on a thread; the loop goes on serving everyone, and only\n"
     "this connection waits. Answers OK backup <dir> segments=<n> bytes=<n> seq=<n>\n"
     "ms=<n> once the copy is on disk. The name: up to 100 letters, digits, . _ -,\n"
     "not starting with . or -; default tq-<UTC time>. One backup at a time\n"
     "(ERROR BUSY); a name used already is ERROR EXISTS. <dir> is a data\n"
     "directory: start tqd on (a copy of) it to restore."},
    {Verb::kReload, "RELOAD", 0, 0, kWrites | kAdmin, -1, kLine, "RELOAD",
     "read the settings file again and apply what may change while tqd runs",
     "As SIGHUP: limits, the log level, queue defaults and declarations, TLS files,\n"
     "metrics.token, wal.min_free_disk and a new password apply at once; the\n"
     "address, port, data_dir, the other wal.* keys and turning a password on or off\n"
     "wait for a restart. Answers OK reloaded\n"
     "applied=<keys> restart=<keys> (comma-separated, - for none), then failed=<keys>\n"
     "if a declared queue could not be applied; a file that cannot be used is\n"
     "ERROR BADCONFIG with the reason, and nothing changes."},
    {Verb::kAuth, "AUTH", 1, 1, kNoAuth, -1, kLine, "AUTH <password>",
     "authenticate the connection",
     "Needed when the server has auth.password set: until then, only PING, AUTH\n"
     "and QUIT are answered; anything else is ERROR NOAUTH. Answers OK authenticated;\n"
     "a wrong password is ERROR NOAUTH, and too many close the connection.\n"
     "With auth.admin_password set, admin commands (HELP <command> says which)\n"
     "need AUTH with that one, answered OK authenticated admin; AUTH again\n"
     "changes who the connection is. Without a password set: OK no password is set."},
    {Verb::kPing, "PING", 0, 0, kNoAuth, -1, kLine, "PING", "check the connection",
     "Answers OK PONG."},
    {Verb::kHelp, "HELP", 0, 1, 0, -1, kLines, "HELP [command]", "list commands, or explain one",
     "Answers OK <n> followed by n lines."},
    {Verb::kQuit, "QUIT", 0, 0, kNoAuth, -1, kLine, "QUIT", "close the connection",
     "Answers OK bye, then the server closes the connection."},
}};

static_assert(kCommands.size() == static_cast<size_t>(Verb::kCount));

constexpr char to_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; }

// Names packed into a word, eight bytes at most (the longest verb has seven):
// byte i of the word is byte i of the name, the rest zero. Every verb is
// letters only, and for a letter `c | 0x20` is its lower case whichever case
// c is in, while no other byte becomes a lower-case letter that way. So a
// name matches a verb, ignoring case, when it is as long and its word, with
// 0x20 set in each of its bytes, equals the verb's lower-case word: one
// comparison per candidate instead of a loop over the letters.
constexpr size_t kWordBytes = 8;
static_assert(std::endian::native == std::endian::little, "find_command packs names little-endian");

constexpr uint64_t lower_word(std::string_view verb) {
  uint64_t word = 0;
  for (size_t i = 0; i < verb.size(); ++i) {
    const auto lower = static_cast<uint64_t>(static_cast<unsigned char>(verb[i]) | 0x20);
    word |= lower << (8 * i);
  }
  return word;
}

// The table's entries by the first letter of their name, so that a lookup
// tries the few verbs that share its first letter (five at most) rather than
// all of them: every request is looked up. Built at compile time; a letter
// with more than kMaxPerLetter verbs, a name longer than a word or one that
// is not all upper-case letters fails the build.
constexpr size_t kMaxPerLetter = 6;
struct NameIndex {
  std::array<std::array<uint8_t, kMaxPerLetter>, 26> entries{};
  std::array<uint8_t, 26> count{};
  std::array<uint64_t, static_cast<size_t>(Verb::kCount)> words{};
};
constexpr NameIndex kNameIndex = [] {
  NameIndex index{};
  for (size_t i = 0; i < kCommands.size(); ++i) {
    const std::string_view name = kCommands[i].name;
    if (name.empty() || name.size() > kWordBytes) throw "verb longer than a word";
    for (char c : name) {
      if (c < 'A' || c > 'Z') throw "verb with a byte that is not an upper-case letter";
    }
    const auto letter = static_cast<size_t>(name[0] - 'A');
    index.entries.at(letter).at(index.count.at(letter)++) = static_cast<uint8_t>(i);
    index.words[i] = lower_word(name);
  }
  return index;
}();

// The name's bytes as a word, byte i at bits 8i (little-endian), for a
// name of 1 to 8 bytes. Two loads of four that may overlap rather than a
// memcpy of a size known only at run time, which is a call into libc.
uint64_t load_name(std::string_view name) {
  const char* p = name.data();
  const size_t n = name.size();
  if (n >= 4) {
    uint32_t low = 0;
    uint32_t high = 0;
    std::memcpy(&low, p, 4);
    std::memcpy(&high, p + n - 4, 4);
    return uint64_t{low} | (uint64_t{high} << (8 * (n - 4)));
  }
  uint64_t word = 0;
  for (size_t i = 0; i < n; ++i) word |= uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return word;
}

}  // namespace

bool equals_ignoring_case(std::string_view upper, std::string_view any) {
  if (upper.size() != any.size()) return false;
  for (size_t i = 0; i < upper.size(); ++i) {
    if (upper[i] != to_upper(any[i])) return false;
  }
  return true;
}

const CommandSpec* find_command(std::string_view name) {
  if (name.empty() || name.size() > kWordBytes) return nullptr;
  const char first = to_upper(name[0]);
  if (first < 'A' || first > 'Z') return nullptr;
  uint64_t word = load_name(name);
  const uint64_t case_bits = 0x2020202020202020ull >> (8 * (kWordBytes - name.size()));
  word |= case_bits;
  const auto letter = static_cast<size_t>(first - 'A');
  for (size_t k = 0; k < kNameIndex.count[letter]; ++k) {
    const size_t entry = kNameIndex.entries[letter][k];
    if (kNameIndex.words[entry] == word && kCommands[entry].name.size() == name.size()) {
      return &kCommands[entry];
    }
  }
  return nullptr;
}

const CommandSpec& command_spec(Verb verb) { return kCommands[static_cast<size_t>(verb)]; }

std::span<const CommandSpec> all_commands() { return kCommands; }

bool request_writes(const CommandSpec& spec, std::span<const std::string_view> args) {
  if (!spec.has(kWrites)) return false;
  return !((spec.verb == Verb::kConfig || spec.verb == Verb::kSchedule) && args.size() == 1);
}

ReplyShape reply_shape(const CommandSpec& spec, std::span<const std::string_view> args) {
  if (spec.verb == Verb::kDequeue) {
    // Queue names are never COUNT, so the word after the first argument is the keyword.
    for (size_t i = 1; i < args.size(); ++i) {
      if (equals_ignoring_case("COUNT", args[i])) return ReplyShape::kJobs;
    }
  }
  return spec.reply;
}

}  // namespace tq::protocol
