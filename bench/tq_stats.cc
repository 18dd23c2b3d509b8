// STATS over a BlockingSocket: the count line, then that many name/value
// lines. A line without a value maps to an empty string.
#include "bench/tq_stats.h"

#include "bench/line_scan.h"

namespace tq::bench {

Result<TqStats> fetch_tq_stats(BlockingSocket& socket) {
  if (auto sent = socket.send_all("STATS\n"); !sent) return sent.error();
  auto head = socket.read_line();
  if (!head) return head.error();
  auto count =
      starts_with(*head, "OK ") ? parse_int(std::string_view(*head).substr(3)) : std::nullopt;
  if (!count || *count < 0) return Error{"STATS was answered '" + *head + "'"};
  TqStats stats;
  for (int64_t i = 0; i < *count; ++i) {
    auto line = socket.read_line();
    if (!line) return line.error();
    size_t space = line->find(' ');
    if (space == std::string::npos) {
      stats[*line] = "";
    } else {
      stats[line->substr(0, space)] = line->substr(space + 1);
    }
  }
  return stats;
}

uint64_t stat_number(const TqStats& stats, const std::string& name) {
  auto it = stats.find(name);
  if (it == stats.end()) return 0;
  auto v = parse_int(it->second);
  return v && *v > 0 ? static_cast<uint64_t>(*v) : 0;
}

bool wal_disabled(const TqStats& stats) {
  auto it = stats.find("wal_enabled");
  return it != stats.end() && it->second == "0";
}

}  // namespace tq::bench
