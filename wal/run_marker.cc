#include "wal/run_marker.h"

#include <algorithm>
#include <charconv>

#include "wal/marker_file.h"

namespace tq::wal {
namespace {

// Fixed width, so that rewriting one policy over another in place is one
// small write inside one sector: it cannot leave a mix of the two. The
// boot id (36 characters on Linux) is padded, or cut, to 40; the seq bound
// of lost ids is padded to 20 (0: none), and always written, so that a
// rewrite without one overwrites one.
std::string contents_of(FsyncPolicy policy, std::string boot_id, uint64_t lost_ids_seq_bound) {
  std::string text = fsync_policy_name(policy);
  text.resize(8, ' ');
  boot_id.resize(40, ' ');
  std::string bound = std::to_string(lost_ids_seq_bound);
  bound.resize(20, ' ');
  return text + "\n" + boot_id + "\n" + bound + "\n";
}

// How much a power cut can lose under a policy: always < interval < never.
int loss_rank(FsyncPolicy policy) {
  switch (policy) {
    case FsyncPolicy::kAlways: return 0;
    case FsyncPolicy::kInterval: return 1;
    case FsyncPolicy::kNever: return 2;
  }
  return 2;
}

}  // namespace

FsyncPolicy policy_to_mark(const PreviousRun& previous, FsyncPolicy current) {
  if (previous.clean || loss_rank(previous.policy) <= loss_rank(current)) return current;
  return previous.policy;
}

PreviousRun read_run_marker(FileSystem& fs, const std::string& dir,
                            const std::vector<std::string>& names) {
  PreviousRun run;
  if (std::find(names.begin(), names.end(), kRunMarkerName) == names.end()) return run;
  run.clean = false;
  run.policy = FsyncPolicy::kNever;
  run.unreadable = true;
  const std::optional<std::string> text = read_marker_text(fs, dir, kRunMarkerName);
  if (!text) return run;
  // The policy; then, from markers that say them, the boot and the seq bound
  // of lost ids, each on a line of its own, padded with spaces.
  std::string_view rest = *text;
  auto next_line = [&rest] {
    const size_t end = rest.find('\n');
    std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    while (!line.empty() && line.back() == ' ') line.remove_suffix(1);
    return line;
  };
  const std::string_view name = next_line();
  run.boot_id = std::string(next_line());
  const std::string_view bound = next_line();
  uint64_t seq = 0;
  auto [end, ec] = std::from_chars(bound.data(), bound.data() + bound.size(), seq);
  if (!bound.empty() && ec == std::errc() && end == bound.data() + bound.size()) {
    run.lost_ids_seq_bound = seq;
  }
  for (FsyncPolicy policy : {FsyncPolicy::kAlways, FsyncPolicy::kInterval, FsyncPolicy::kNever}) {
    if (name == fsync_policy_name(policy)) {
      run.policy = policy;
      run.unreadable = false;
    }
  }
  return run;
}

bool machine_restarted_since(const PreviousRun& previous, const std::string& boot_id) {
  if (previous.clean) return false;
  if (previous.boot_id.empty() || boot_id.empty()) return true;  // cannot be told
  return boot_id.substr(0, 40) != previous.boot_id;
}

Status write_run_marker(FileSystem& fs, const std::string& dir, FsyncPolicy policy,
                        uint64_t lost_ids_seq_bound, const std::optional<std::string>& boot_id) {
  return write_marker_file(fs, dir, kRunMarkerName,
                           contents_of(policy, boot_id.value_or(fs.boot_id()), lost_ids_seq_bound));
}

Status remove_run_marker(FileSystem& fs, const std::string& dir) {
  return remove_marker_file(fs, dir, kRunMarkerName);
}

namespace {

// CLOSED and NEWEST: a seq in decimal.
std::optional<uint64_t> read_seq_marker(FileSystem& fs, const std::string& dir,
                                        const std::vector<std::string>& names, const char* name) {
  if (std::find(names.begin(), names.end(), name) == names.end()) return std::nullopt;
  const std::optional<std::string> text = read_marker_text(fs, dir, name);
  if (!text) return std::nullopt;
  uint64_t seq = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), seq);
  if (ec != std::errc() || end != text->data() + text->size()) return std::nullopt;
  return seq;
}

Status write_seq_marker(FileSystem& fs, const std::string& dir, const char* name, uint64_t seq) {
  std::string text = std::to_string(seq);
  text.resize(20, ' ');  // the widest seq: a rewrite is one write of one size
  return write_marker_file(fs, dir, name, text + "\n");
}

}  // namespace

uint64_t read_closed_marker(FileSystem& fs, const std::string& dir,
                            const std::vector<std::string>& names) {
  return read_seq_marker(fs, dir, names, kClosedMarkerName).value_or(0);
}

Status write_closed_marker(FileSystem& fs, const std::string& dir, uint64_t last_seq) {
  return write_seq_marker(fs, dir, kClosedMarkerName, last_seq);
}

std::optional<uint64_t> read_newest_marker(FileSystem& fs, const std::string& dir,
                                           const std::vector<std::string>& names) {
  return read_seq_marker(fs, dir, names, kNewestMarkerName);
}

Status write_newest_marker(FileSystem& fs, const std::string& dir, uint64_t first_seq) {
  return write_seq_marker(fs, dir, kNewestMarkerName, first_seq);
}

Status remove_newest_marker(FileSystem& fs, const std::string& dir) {
  return remove_marker_file(fs, dir, kNewestMarkerName);
}

}  // namespace tq::wal
