// One line per event worth knowing, to stderr: a UTC timestamp, the level,
// the message. Each line goes out in one write(2), so lines from the WAL
// writer thread and the loop never interleave.
#pragma once

#include "server/config.h"

namespace tq::server {

void set_log_level(LogLevel level);
bool log_enabled(LogLevel level);

void log_write(LogLevel level, const char* format, ...) __attribute__((format(printf, 2, 3)));

// A line that is tqd's answer rather than an event: "tqd: <message>", with
// no timestamp or level, for --check-config, --check-log and settings a
// start cannot use, as a person at a terminal reads them. Under systemd's
// journal it starts with its priority too, as log_write's lines do, so
// `journalctl -p err` finds an ExecStartPre's refusal. Written whatever the
// log level.
void log_plain(LogLevel level, const char* format, ...) __attribute__((format(printf, 2, 3)));

#define TQ_LOG(level, ...)                                              \
  do {                                                                  \
    if (::tq::server::log_enabled(level)) ::tq::server::log_write(level, __VA_ARGS__); \
  } while (0)
#define LOG_DEBUG(...) TQ_LOG(::tq::server::LogLevel::kDebug, __VA_ARGS__)
#define LOG_INFO(...) TQ_LOG(::tq::server::LogLevel::kInfo, __VA_ARGS__)
#define LOG_WARN(...) TQ_LOG(::tq::server::LogLevel::kWarn, __VA_ARGS__)
#define LOG_ERROR(...) TQ_LOG(::tq::server::LogLevel::kError, __VA_ARGS__)

}  // namespace tq::server
