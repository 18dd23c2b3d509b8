#include "server/log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <sys/time.h>
#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace tq::server {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

// Whether stderr is systemd's journal stream ($JOURNAL_STREAM names its
// device and inode): then each line starts with its syslog priority, "<3>"
// for an error, which journald strips and keeps as the entry's priority, so
// `journalctl -u tqd -p warning` finds the warnings and errors.
bool stderr_is_journal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) return false;
  unsigned long long dev = 0;
  unsigned long long ino = 0;
  if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  return ::fstat(STDERR_FILENO, &st) == 0 && static_cast<unsigned long long>(st.st_dev) == dev &&
         static_cast<unsigned long long>(st.st_ino) == ino;
}

const char* journal_priority(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "<7>";
    case LogLevel::kInfo:
      return "<6>";
    case LogLevel::kWarn:
      return "<4>";
    case LogLevel::kError:
      return "<3>";
  }
  return "<6>";
}

// Looked at once: the stream tqd was started with stays its stderr.
bool journal_stream() {
  static const bool journal = stderr_is_journal();
  return journal;
}

// One whole line in one write(2); stderr may be a closed pipe, and a failed
// log line must not stop the server.
void write_line(char* line, size_t size, size_t len) {
  if (len > size - 2) len = size - 2;
  line[len++] = '\n';
  ssize_t ignored = ::write(STDERR_FILENO, line, len);
  (void)ignored;
}

}  // namespace

void set_log_level(LogLevel level) { g_level.store(static_cast<int>(level)); }

bool log_enabled(LogLevel level) { return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed); }

void log_write(LogLevel level, const char* format, ...) {
  char line[2048];
  timeval tv{};
  gettimeofday(&tv, nullptr);
  tm utc{};
  gmtime_r(&tv.tv_sec, &utc);
  int n = snprintf(line, sizeof line, "%s%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %-5s ",
                   journal_stream() ? journal_priority(level) : "", utc.tm_year + 1900,
                   utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                   static_cast<int>(tv.tv_usec / 1000), log_level_name(level));
  va_list args;
  va_start(args, format);
  int m = vsnprintf(line + n, sizeof line - static_cast<size_t>(n) - 1, format, args);
  va_end(args);
  write_line(line, sizeof line, static_cast<size_t>(n) + static_cast<size_t>(m < 0 ? 0 : m));
}

void log_plain(LogLevel level, const char* format, ...) {
  char line[4096];
  int n = snprintf(line, sizeof line, "%stqd: ", journal_stream() ? journal_priority(level) : "");
  va_list args;
  va_start(args, format);
  int m = vsnprintf(line + n, sizeof line - static_cast<size_t>(n) - 1, format, args);
  va_end(args);
  write_line(line, sizeof line, static_cast<size_t>(n) + static_cast<size_t>(m < 0 ? 0 : m));
}

}  // namespace tq::server
