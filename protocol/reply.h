// Reply formatting and the error codes of the wire protocol.
//
// Every reply starts with a line that begins with "OK" or "ERROR <CODE>" and
// ends with '\n'. Error codes are stable: programs branch on them, people read
// the message after them. A message is always one line: anything that could
// break the framing (control bytes, newlines) is escaped by append_error.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tq::protocol {

enum class ErrorCode : uint8_t {
  kBadFormat,  // arguments missing, extra or malformed
  kUnknown,    // no such command
  kNoQueue,    // the queue does not exist
  kNotFound,   // no such job
  kNotLeased,  // the job exists but is not leased, so it cannot be acked
  kTooBig,     // a line or payload over the configured limit
  kExists,     // the queue already exists
  kEmpty,      // no job is ready
  kLimit,      // a configured count limit (queues, waiters) is reached
  kMaxConn,    // too many connections
  kFull,       // a queue or the server holds as many jobs or bytes as allowed
  kIo,         // the log could not be written; the outcome may be unknown
  kNoAuth,     // authenticate first
  kShutdown,   // the server is stopping
  kInternal,   // a bug: please report it
  kTls,        // plaintext sent to the TLS port
  kBusy,       // one of its kind is under way already (BACKUP)
  kNoLog,      // needs the log, and wal.enabled is false
  kNoPerm,     // an admin command, and this connection is not admin
  kBadConfig,  // RELOAD: the settings file cannot be used; nothing changed
  kTimeout,    // the server closes the connection: a limits.*_timeout ran out
  kCount,
};

std::string_view error_code_name(ErrorCode code);

// Parses a code name ("NOTFOUND"); nullopt when it is not one of ours.
std::optional<ErrorCode> parse_error_code(std::string_view name);

// "ERROR <CODE> <message>\n", with the message made safe for one line.
void append_error(std::string& out, ErrorCode code, std::string_view message);

// "OK\n" or "OK <text>\n". The text must already be one line.
void append_ok(std::string& out, std::string_view text = {});

// Appends the decimal digits of v.
void append_number(std::string& out, uint64_t v);
void append_signed(std::string& out, int64_t v);

// Appends `bytes` with control characters and backslashes escaped (\n, \r, \t,
// \\, \xHH), so that arbitrary input can be quoted inside a one-line message.
void append_escaped(std::string& out, std::string_view bytes, size_t max_bytes = 64);

}  // namespace tq::protocol
