// Reads a process's CPU time and memory from /proc (fields documented in
// proc(5)), and this process's own CPU time from getrusage.
#include "bench/process_usage.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace tq::bench {
namespace {

// "VmHWM:     1234 kB" -> bytes.
std::optional<uint64_t> status_kib(const std::string& status, const char* key) {
  size_t at = status.find(key);
  if (at == std::string::npos) return std::nullopt;
  unsigned long long kib = 0;
  if (std::sscanf(status.c_str() + at + std::strlen(key), ": %llu kB", &kib) != 1)
    return std::nullopt;
  return static_cast<uint64_t>(kib) * 1024;
}

}  // namespace

std::optional<ProcessUsage> read_process_usage(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid);
  std::ifstream stat_file(dir + "/stat");
  std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  // The command name, in parentheses, may hold spaces: count fields from the
  // last ')'. After it come field 3 (state) ... 14 (utime) and 15 (stime).
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(stat.substr(close + 1));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int index = 3; index <= 15 && (fields >> field); ++index) {
    if (index == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (index == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  if (!fields) return std::nullopt;

  std::ifstream status_file(dir + "/status");
  std::string status((std::istreambuf_iterator<char>(status_file)),
                     std::istreambuf_iterator<char>());
  ProcessUsage usage;
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  usage.cpu_seconds = static_cast<double>(utime + stime) / ticks;
  usage.rss_bytes = status_kib(status, "VmRSS").value_or(0);
  usage.peak_rss_bytes = status_kib(status, "VmHWM").value_or(0);
  return usage;
}

double own_cpu_seconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

}  // namespace tq::bench
