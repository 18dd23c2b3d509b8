// What /proc/<pid>/smaps says of a process's mappings: their VmFlags (two
// letters each: "hg" for MADV_HUGEPAGE, "nh" for MADV_NOHUGEPAGE) and
// whether the kernel would back them with transparent huge pages.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace tq::testing {

struct Mapping {
  uintptr_t start = 0;
  uintptr_t end = 0;
  std::vector<std::string> vm_flags;
  std::string thp_eligible;  // "1" or "0"; empty on kernels that do not say
  bool has(const std::string& flag) const {
    return std::find(vm_flags.begin(), vm_flags.end(), flag) != vm_flags.end();
  }
};

// Every mapping of the process (0: this one), in address order.
inline std::vector<Mapping> read_mappings(pid_t pid = 0) {
  std::ifstream smaps(pid == 0 ? "/proc/self/smaps" : "/proc/" + std::to_string(pid) + "/smaps");
  std::vector<Mapping> mappings;
  for (std::string line; std::getline(smaps, line);) {
    // A mapping's first line: "start-end perms offset dev inode [path]";
    // the fields under it are "Name: value".
    std::istringstream words(line);
    std::string first;
    words >> first;
    const size_t dash = first.find('-');
    if (dash != std::string::npos && first.back() != ':') {
      Mapping m;
      m.start = std::stoull(first.substr(0, dash), nullptr, 16);
      m.end = std::stoull(first.substr(dash + 1), nullptr, 16);
      mappings.push_back(std::move(m));
      continue;
    }
    if (mappings.empty()) continue;
    if (first == "THPeligible:") words >> mappings.back().thp_eligible;
    if (first == "VmFlags:") {
      for (std::string flag; words >> flag;) mappings.back().vm_flags.push_back(flag);
    }
  }
  return mappings;
}

// The mapping that holds `address` (an empty one if none does).
inline Mapping mapping_at(const void* address, pid_t pid = 0) {
  const auto at = reinterpret_cast<uintptr_t>(address);
  for (Mapping& m : read_mappings(pid)) {
    if (m.start <= at && at < m.end) return m;
  }
  return {};
}

// The kernel's transparent huge page mode: "always", "madvise" or "never";
// empty where it has none.
inline std::string transparent_huge_page_mode() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  std::getline(in, line);
  const size_t open = line.find('[');
  const size_t close = line.find(']');
  if (open == std::string::npos || close == std::string::npos) return "";
  return line.substr(open + 1, close - open - 1);
}

}  // namespace tq::testing
