// What the command handler files share: error replies, listings, argument
// parsing and job frames. Internal to the handlers.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/commands.h"

namespace tq::server::cmd {

using Lines = std::vector<std::pair<std::string, std::string>>;

void reply_error(CommandContext& ctx, protocol::ErrorCode code, std::string_view message);
void reply_error(CommandContext& ctx, const engine::Error& error);
// BADFORMAT "<what> given twice": an option or setting a request repeats is
// refused, not the last one winning. `what` is the canonical name, never the
// client's bytes.
void reply_given_twice(CommandContext& ctx, std::string_view what);
// "OK <n>" and n lines of "<name> <value>": the framing of every listing.
void reply_lines(CommandContext& ctx, const Lines& lines);
// "OK <word> <text>", e.g. "OK acked 7".
void reply_ok(CommandContext& ctx, std::string_view word, std::string_view text);

// A job id (a positive whole number); on failure replies BADFORMAT.
bool parse_id(CommandContext& ctx, std::string_view text, uint64_t* id);
// Only digits: a job id's shape, never a queue name's.
bool all_digits(std::string_view text);

// A job as ACK, NACK, FAIL and TOUCH name it: `<id>`, or `<id>@<lease>`
// with the lease token of the delivery the sender was handed
// (engine::Job::delivery(), shown as lease= in DEQUEUE ... COUNT, PEEK and
// JOB). A token fences the request to that one delivery, whatever the
// connection; without one, only the connection's LeaseBook can tell a late
// worker apart.
struct JobRef {
  uint64_t id = 0;
  std::optional<uint64_t> lease;  // none: a plain id, as clients before tokens send
};
// `<id>` or `<id>@<lease>`, each a positive whole number; on failure replies
// BADFORMAT.
bool parse_job_ref(CommandContext& ctx, std::string_view text, JobRef* ref);
// `17` or `17@3` (or a malformed try at one, such as `17@`, or `-5` when no
// queue has that name): a word that names a job, never a queue (a queue
// name is never only digits and never holds '@'), so ACK <queue> <id> and
// KICK <id> tell their forms apart.
bool names_job(const CommandContext& ctx, std::string_view text);
// A duration: 30, 30s, 500ms, 2m, 1h (a bare number is seconds), at most
// `max_ms` (30 days unless told; `max_setting` names the setting that sets
// a lower one); on failure replies BADFORMAT naming `what` and the bound.
bool parse_duration(CommandContext& ctx, std::string_view text, const char* what, int64_t* ms,
                    int64_t max_ms = engine::kMaxSettingDurationMs,
                    const char* max_setting = nullptr);
// A duration as a person reads it, in its largest whole unit: "30 days",
// "1 hour", "90 seconds", "1500ms".
std::string duration_words(int64_t ms);
bool parse_count(CommandContext& ctx, std::string_view text, const char* what, size_t max,
                 size_t* n);
// Case-insensitive match of an argument against an upper-case keyword.
bool is_keyword(std::string_view arg, std::string_view upper);

// "JOB <id> <bytes> <fields>\n<payload>\n"; `detailed` adds state, priority,
// times, key and reason (PEEK); expiry, key and reason come from `extras`,
// the job's when it has them.
void append_job_frame(std::string& out, const engine::Job& job, bool detailed,
                      const engine::JobExtras* extras = nullptr);
// Makes room in `out` for the frames of `jobs` before they are appended: a
// batch of big jobs grown by doubling copied and touched about as many bytes
// again (most of a 16 MiB PEEK's time was that copying and the page faults
// of the new buffers). Grows at least twofold, so that pipelined batches
// do not reallocate at each one.
void reserve_for_jobs(std::string& out, const std::vector<const engine::Job*>& jobs);

std::string num(uint64_t v);

// A job priority (PUT's PRIORITY, NACK's): a whole number that fits 32 bits,
// signed; on failure replies BADFORMAT.
bool parse_priority(CommandContext& ctx, std::string_view value, int32_t* priority);

// PUT's options, in keyword-value pairs (`allowed`: the keywords this verb
// takes, as the message for an unknown one lists them; a keyword of the
// caller's own, such as SCHEDULE's TZ, must be taken out of `args` first);
// false, with the reply written, on a bad one or one given twice.
bool parse_job_options(CommandContext& ctx, std::span<const std::string_view> args,
                       std::span<const char* const> allowed, const char* verb,
                       engine::EnqueueOptions* options);

// The handlers, by file.
void cmd_enqueue(CommandContext&, const protocol::Request&);
void cmd_put(CommandContext&, const protocol::Request&);
void cmd_dequeue(CommandContext&, const protocol::Request&);
void cmd_ack(CommandContext&, const protocol::Request&);
void cmd_nack(CommandContext&, const protocol::Request&);
void cmd_fail(CommandContext&, const protocol::Request&);
void cmd_touch(CommandContext&, const protocol::Request&);
void cmd_delete(CommandContext&, const protocol::Request&);
void cmd_create(CommandContext&, const protocol::Request&);
void cmd_queues(CommandContext&, const protocol::Request&);
void cmd_peek(CommandContext&, const protocol::Request&);
void cmd_job(CommandContext&, const protocol::Request&);
void cmd_kick(CommandContext&, const protocol::Request&);
void cmd_redrive(CommandContext&, const protocol::Request&);
void cmd_config(CommandContext&, const protocol::Request&);
void cmd_pause(CommandContext&, const protocol::Request&);
void cmd_resume(CommandContext&, const protocol::Request&);
void cmd_purge(CommandContext&, const protocol::Request&);
void cmd_drop(CommandContext&, const protocol::Request&);
void cmd_schedule(CommandContext&, const protocol::Request&);
void cmd_cancel(CommandContext&, const protocol::Request&);

}  // namespace tq::server::cmd
