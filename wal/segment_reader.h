// Reads the records of one segment, in order, checking each one.
//
// What counts as damage (LevelDB's rule, adapted to preallocated files):
// - A record cut short at the end of the *newest* segment (from some byte on,
//   the rest of it and everything after it are zeros, the file's preallocated
//   contents) is a write the process did not finish (a crash): the scan ends
//   cleanly before it and says so in `torn_at`, so the caller can log it and
//   cut it off. Nothing acknowledged can be in it: replies wait for the
//   write. A record whose last byte is there was written whole, so a
//   checksum mismatch in it is damage, even at the very end (unless a
//   sector of it is a power cut's lost writes, below).
// - After a run that did not stop cleanly, in a machine that has restarted
//   since (`unsynced_may_be_lost`), zeros where records were in the newest
//   segment, with intact records after them, are what a power cut leaves: the disk kept some pages
//   of writes not yet synced and not others (page writeback has no order). Every damaged region
//   from there on must look like that (a whole sector of zeros before the next intact record, or
//   zeros to the end of a sector, or a record cut short into the file's zero tail), and then the
//   scan ends before the first one as it does before a torn write (`torn_at`), counting the intact
//   records it cuts off with it
//   (`cut_after_lost_writes`). Under fsync=always none of them was
//   acknowledged: a sync that covered them covered the zeros too. Any other
//   damage there, and the same zeros after a clean stop or after a crash of
//   the process alone (its page cache kept every write), stay corruption
//   (LevelDB and etcd cut a log's unsynced tail the same way).
// - The same zeros, or a write cut short, in a segment before the newest
//   are cut the same way when the run synced the files it left in the
//   background (fsync=never or interval) and every later file holds only
//   what a power cut leaves of unsynced writes too
//   (`later_files_unsynced`, count_records_among_lost_writes): the caller
//   then removes those files.
// - Neither is cut off before a record that a clean stop synced
//   (`synced_seq`): that is damage too, and the file is left as it is.
// - A segment file has its full size on disk before it gets its name, and
//   records are only written inside it, so a crash never leaves a file
//   shorter than a header or a record running past the end of its file:
//   both are damage (the file was cut short), in the newest segment too.
//   `file_size` is what the file says of itself; the configured segment
//   size may have changed since it was made. From format version 2 the
//   writer also leaves room for an end marker after the last record, so a
//   segment whose records come closer to its end was cut short too, even
//   exactly between two records (format.h, kEndMarkerRoom).
// - Anything else that does not decode (a checksum mismatch, an impossible
//   length, data after the end marker, a sequence number out of order, a bad
//   header) is corruption. Without `recover` the scan stops with a Status
//   naming the file and offset and leaves the file alone. With `recover` it
//   reports the damaged bytes to the Reporter, skips to the next intact record
//   and goes on: the caller decided to drop them, and the Reporter says
//   exactly what was dropped. A bad header is skipped the same way: the
//   records after it carry their own checksums and seqs, and the caller
//   supplies what the header would have said (`assumed`). A record the
//   visitor refuses is reported and skipped the same way under `recover`.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "wal/record.h"
#include "wal/status.h"

namespace tq::wal {

class Reporter {
 public:
  virtual ~Reporter() = default;
  // `bytes` bytes starting at `offset` of `file` were dropped because `reason`.
  virtual void dropped(const std::string& file, uint64_t offset, uint64_t bytes,
                       const std::string& reason) = 0;
};

struct SegmentScan {
  SegmentHeader header;
  uint64_t end_offset = 0;  // just past the last intact record: where writing resumes
  uint64_t records = 0;
  uint64_t last_seq = 0;    // 0 when the segment holds no record
  uint64_t torn_at = 0;     // offset of a cut-off partial record; 0 when none
  uint64_t torn_bytes = 0;
  // torn_at starts zeros a power cut left among records (see above): how
  // many intact records after it were cut off with it; 0 for a torn write.
  bool lost_writes = false;
  uint64_t cut_after_lost_writes = 0;
  // The newest segment is all zeros: created, never written. Or, with
  // lost_writes, its first sector (the header's) is zeros and the rest is
  // a power cut's lost writes, as above: nothing in it was synced.
  bool no_header = false;
  bool header_damaged = false;  // recover: `header` is ScanOptions::assumed
  // recover: everything after the last intact record was dropped (or the file
  // was cut short), so how many records followed it is unknown.
  bool tail_lost = false;
};

struct ScanOptions {
  bool is_newest = false;     // the last segment: a torn tail is a crash, not damage
  bool recover = false;       // skip damage (reporting it) instead of failing
  // The run that wrote the log did not stop cleanly, and the machine has
  // restarted since (wal/run_marker.h, machine_restarted_since): a power
  // cut's zeros among the newest segment's records are its unsynced tail,
  // not damage.
  bool unsynced_may_be_lost = false;
  uint64_t expected_seq = 0;  // the seq the first record must have; 0: take the header's
  SegmentHeader assumed;      // recover: stands in for a damaged header
  // Records up to this seq were synced by a clean stop (CLOSED): no crash
  // leaves a torn write or lost writes among them, so neither is cut off
  // there; it is damage. 0: none known.
  uint64_t synced_seq = 0;
  // For a segment before the newest, when that run synced the segments it
  // left in the background (fsync=never or interval) and
  // unsynced_may_be_lost: a power cut just after a rotation can lose part of
  // this file's unsynced tail and keep later files' records. Asked only
  // when the scan would cut this file as it cuts the newest one: whether
  // every later file holds nothing but a power cut's lost writes too
  // (count_records_among_lost_writes). The writer syncs no file before the
  // files it left before it, so the zeros here say nothing after them was
  // synced. `whole_file`: this file goes too (its header's sector is
  // zeros). Unset: damage, as before.
  std::function<bool(bool whole_file)> later_files_unsynced;
  // The log may have been left by a tqd from before December 2 2026
  // (evening), which named a segment before it allocated it (open with
  // O_CREAT, then posix_fallocate): a crash between the two left the newest
  // file empty, 0 bytes, and that tqd's replay removed it as a segment
  // never written. Set by the open (log.cc) for a log that nothing newer
  // has written; otherwise such a file was cut short, and is damage.
  bool empty_newest_may_be_unallocated = false;
};

using RecordVisitor = std::function<Status(const Record& record)>;

// parse_segment_header on the file's bytes as scan_segment gets them: a
// header that ends in zero bytes is completed from the zeros after `data`.
bool read_segment_header(std::string_view data, uint64_t file_size, SegmentHeader* header,
                         std::string* why);

// `data` holds the file's bytes up to its last non-zero byte; the file is
// `file_size` bytes, zeros after `data`. A record that ends in zero bytes at
// the very end is completed from that zero tail.
// How many intact records a segment after a power cut's lost writes holds,
// when everything in it is what that leaves of writes not yet synced: a
// header naming `first_seq` (or its sector of zeros), intact records in seq
// order, lost sectors, a write cut short, zeros. -1 when anything in it is
// damage. `data` and `file_size` as for scan_segment.
int64_t count_records_among_lost_writes(std::string_view data, uint64_t file_size,
                                        uint64_t first_seq);

Result<SegmentScan> scan_segment(const std::string& file, std::string_view data, uint64_t file_size,
                                 const ScanOptions& options, Reporter& reporter,
                                 const RecordVisitor& visit);

}  // namespace tq::wal
