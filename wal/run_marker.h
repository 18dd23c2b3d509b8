// Whether the last process to hold a log stopped cleanly, and under which
// fsync policy it ran.
//
// Why: under fsync=never or interval a power cut can lose records that were
// acknowledged, and when the loss ends exactly between two records nothing
// in the log shows it (zeros follow the last record, as after a clean stop).
// Job ids those records took would be issued again. The file RUNNING in the
// log's directory exists from open until a clean close and names the
// policy, so the next open knows that records may be missing and how many
// ids to skip.
//
// The marker is written before the first record of a run and synced (file
// and directory), so any run that wrote a record left one, unless its close
// was clean. It also names the machine's boot the run began in
// (FileSystem::boot_id): when the next open runs in the same boot, only the
// process crashed, and the page cache kept every write it made, synced or
// not (machine_restarted_since). Writing it is best effort: a full disk at start-up must not
// stop a server whose reads still work; a run without one is taken for
// clean, as logs from before the marker are.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "wal/file.h"
#include "wal/log_writer.h"

namespace tq::wal {

inline constexpr const char* kRunMarkerName = "RUNNING";

struct PreviousRun {
  bool clean = true;  // no marker: closed cleanly, or never opened
  FsyncPolicy policy = FsyncPolicy::kAlways;  // unclean: the policy it ran with
  bool unreadable = false;                    // the marker named no policy: kNever is assumed
  std::string boot_id;  // unclean: the boot it began in; empty when the marker does not say
  // Unclean: job ids that records up to this seq may have held were to be
  // skipped, and the run did not get that skip into its log (0: none).
  uint64_t lost_ids_seq_bound = 0;
};

// Whether writes `previous` made and had not synced may be gone: it did not
// stop cleanly, and the machine has restarted since (`boot_id` is this
// boot's), or that cannot be told. After a crash of the process alone they
// are all still there.
bool machine_restarted_since(const PreviousRun& previous, const std::string& boot_id);

// `names`: the directory's listing. A marker that cannot be read or parsed
// counts as an unclean run under fsync=never: it can only be assumed lossy.
PreviousRun read_run_marker(FileSystem& fs, const std::string& dir,
                            const std::vector<std::string>& names);

// What this run's marker names: its own policy, or an unclean run's before
// it when that one could lose more. That run's lost ids are skipped only in
// memory until this run writes: a crash before then must skip them again.
FsyncPolicy policy_to_mark(const PreviousRun& previous, FsyncPolicy current);

// Writes (or rewrites) the marker naming `policy`, this boot (or `boot_id`
// when given: see Log::open) and, when an open found ids that may have been
// lost, their seq bound, synced. The bound stays in the marker until the
// run's first batch, which records the skip in the log, is durable: the
// open removes what showed the loss (a torn record, files of zeros), so a
// crash before then must find it here.
Status write_run_marker(FileSystem& fs, const std::string& dir, FsyncPolicy policy,
                        uint64_t lost_ids_seq_bound = 0,
                        const std::optional<std::string>& boot_id = std::nullopt);

// At a clean close, once everything is durable.
Status remove_run_marker(FileSystem& fs, const std::string& dir);

// The CLOSED marker: the seq of the last record when the log was last closed
// cleanly. Seqs only grow and the newest file is never deleted, so a log
// that ends before it has lost its newest file(s) whole (deleted by hand,
// left out of a copy), which nothing in the files that remain can show.
inline constexpr const char* kClosedMarkerName = "CLOSED";

// The seq CLOSED names; 0 when there is none, or it cannot be read.
uint64_t read_closed_marker(FileSystem& fs, const std::string& dir,
                            const std::vector<std::string>& names);

// Writes (or rewrites in place: fixed width) CLOSED naming `last_seq`, synced.
Status write_closed_marker(FileSystem& fs, const std::string& dir, uint64_t last_seq);

// The NEWEST marker: while RUNNING exists, the first seq of the newest
// segment the run has made (0: none yet). After a crash nothing else says
// where the log ended: a newest file deleted by hand, or left out of a copy,
// reads as the log's end. So it is rewritten each time a segment is made,
// once the segment's name is durable and, under fsync=always, before any of
// its records is (the writer's thread does it: never the event loop). A
// separate file, not a line in RUNNING: tqds from before it compare
// RUNNING's whole text with a policy's name, and one that found more there
// would take a crash under always for one under never.
inline constexpr const char* kNewestMarkerName = "NEWEST";

// The seq NEWEST names (0: the log had no segment yet); nullopt when there
// is none, or it cannot be read.
std::optional<uint64_t> read_newest_marker(FileSystem& fs, const std::string& dir,
                                           const std::vector<std::string>& names);

// Writes (or rewrites in place: fixed width) NEWEST naming `first_seq`, synced.
Status write_newest_marker(FileSystem& fs, const std::string& dir, uint64_t first_seq);

// At a clean close, with RUNNING.
Status remove_newest_marker(FileSystem& fs, const std::string& dir);

// Whether a power cut may lose acknowledged records under `policy`.
inline bool may_lose_acknowledged(FsyncPolicy policy) { return policy != FsyncPolicy::kAlways; }

}  // namespace tq::wal
