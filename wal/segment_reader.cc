#include "wal/segment_reader.h"

#include <algorithm>

#include "wal/coding.h"

namespace tq::wal {
namespace {

bool all_zero(std::string_view bytes) {
  for (char c : bytes) {
    if (c != 0) return false;
  }
  return true;
}

// A disk writes a sector whole or not at all.
constexpr size_t kLostSectorBytes = 512;

// Whether the damage at `from`, in a record said to end at `to`, looks like
// a sector a power cut did not keep (still the zeros the segment was made
// of) with later ones of the same write kept: its bytes are zeros to the
// end of their 512-byte sector, or a whole aligned sector of zeros overlaps
// the record. The same bytes can be damage beside zeros that were written,
// so alone this is only the hint in an error; the rule that cuts lost
// writes also wants an unclean stop in another boot (segment_reader.h).
bool looks_like_lost_sector(std::string_view data, size_t from, size_t to) {
  constexpr size_t kSector = kLostSectorBytes;
  const size_t first_end = (from / kSector + 1) * kSector;
  if (first_end <= data.size() && all_zero(data.substr(from, first_end - from))) return true;
  for (size_t sector = from / kSector * kSector; sector < to && sector + kSector <= data.size();
       sector += kSector) {
    if (all_zero(data.substr(sector, kSector))) return true;
  }
  return false;
}

const char* describe(Decoded d) {
  switch (d) {
    case Decoded::kTruncated: return "record cut short";
    case Decoded::kBadLength: return "impossible record length";
    case Decoded::kBadChecksum: return "checksum mismatch";
    case Decoded::kEnd: return "data after the end marker";
    case Decoded::kRecord: return "record out of sequence";
  }
  return "damage";
}

// The next offset after `from` where an intact record with a seq above
// `after_seq` (and at most `max_seq`) starts, or data.size() if there is none.
size_t next_intact(std::string_view data, size_t from, uint64_t after_seq, uint64_t max_seq) {
  for (size_t at = from; at + kRecordHeaderSize <= data.size(); ++at) {
    // The seq and type first: the checksum hashes up to the rest of the data
    // at every byte, which made a damaged 32 MiB record take minutes.
    const uint64_t seq = get_fixed64(data.data() + at + 13);
    if (seq <= after_seq || seq > max_seq || data[at + 12] == 0) continue;
    Record r;
    size_t size = 0;
    if (decode_record(data.substr(at), &r, &size) == Decoded::kRecord && r.seq > after_seq) {
      return at;
    }
  }
  return data.size();
}

// Decodes the record at `at`. Where it reaches past `data` into the file's
// zero tail (a record may end in zero bytes), the zeros are supplied from
// `buffer`, which *record then points into. *end is where the record says
// it ends, which may be past `data` or past the end of the file (kTruncated),
// and is at least past its header.
Decoded decode_at(std::string_view data, uint64_t file_size, size_t at, Record* record, size_t* end,
                  std::string* buffer) {
  const std::string_view rest = data.substr(at);
  const uint64_t room = file_size > at ? file_size - at : 0;  // bytes the file has from `at`
  size_t size = 0;
  Decoded d = decode_record(rest, record, &size);
  if (d == Decoded::kTruncated && rest.size() < kRecordHeaderSize && room > rest.size()) {
    // The header itself ends in zeros: complete it to learn the length.
    buffer->assign(rest);
    buffer->resize(static_cast<size_t>(std::min<uint64_t>(room, kRecordHeaderSize)), '\0');
    d = decode_record(*buffer, record, &size);
  }
  const bool whole_header = rest.size() >= kRecordHeaderSize || room >= kRecordHeaderSize;
  if (d == Decoded::kTruncated && whole_header && size > rest.size() && size <= room) {
    buffer->assign(rest);
    buffer->resize(size, '\0');
    d = decode_record(*buffer, record, &size);
  }
  const bool sized = d == Decoded::kRecord || d == Decoded::kBadChecksum ||
                     (d == Decoded::kTruncated && whole_header);
  *end = at + (sized ? std::max(size, kRecordHeaderSize) : kRecordHeaderSize);
  return d;
}

// Whether the damage at `at`, and every damaged region after it, is what a
// power cut leaves of writes not yet synced: the first record of each region
// holds zeros a lost sector left (looks_like_lost_sector), or is cut short
// into the file's zero tail, and what lies between the regions is intact
// records, each seq one more than the last (the first after a region may
// skip the ones the region held). Returns how many of those there are, or -1
// when some region is anything else (damage).
int64_t intact_after_lost_writes(std::string_view data, uint64_t file_size, size_t at,
                                 uint64_t after_seq, uint64_t max_seq) {
  int64_t intact = 0;
  std::string buffer;
  size_t from = at;  // where a damaged region starts
  while (from < data.size()) {
    const size_t next = next_intact(data, from + 1, after_seq, max_seq);
    Record record;
    size_t end = 0;
    bool cut_short = false;
    if (next < data.size()) {
      // Its first record reaches the next intact one at most: a length that
      // says more is damaged, and zeros past it are other records' (payloads
      // hold zeros). Decoded in full, completed with the zero tail, it also
      // cost up to the rest of the file at every region.
      (void)decode_at(data.substr(0, next), next, from, &record, &end, &buffer);
      end = std::min(end, next);
    } else {
      const Decoded d = decode_at(data, file_size, from, &record, &end, &buffer);
      if (d == Decoded::kRecord && record.seq == after_seq + 1) return intact + 1;  // ends in zeros
      cut_short = (d == Decoded::kTruncated || d == Decoded::kBadChecksum) && end > data.size() &&
                  end <= file_size;
    }
    if (!cut_short &&
        !looks_like_lost_sector(data, from, std::max(end, from + kRecordHeaderSize))) {
      return -1;
    }
    for (from = next; from < data.size(); from = end) {
      // Only a header that names the next seq is worth its checksum: a
      // damaged one claiming a long length would cost that at every region.
      // One that ends in the zero tail is left to the region that follows.
      if (from != next && (from + kRecordHeaderSize > data.size() || data[from + 12] == 0 ||
                           get_fixed64(data.data() + from + 13) != after_seq + 1)) {
        break;
      }
      size_t size = 0;
      if (decode_record(data.substr(from), &record, &size) != Decoded::kRecord ||
          record.seq <= after_seq || record.seq > max_seq) {
        break;
      }
      end = from + size;
      ++intact;
      after_seq = record.seq;
    }
  }
  return intact;
}

}  // namespace

int64_t count_records_among_lost_writes(std::string_view data, uint64_t file_size,
                                        uint64_t first_seq) {
  if (file_size < kSegmentHeaderSize) return -1;  // cut short (scan_segment)
  const uint64_t max_seq = first_seq + data.size() / kRecordHeaderSize;
  SegmentHeader header;
  std::string why;
  if (!read_segment_header(data, file_size, &header, &why)) {
    // The header goes out with the first records: its sector lost, or never
    // written at all.
    if (!all_zero(data.substr(0, std::min<size_t>(data.size(), kLostSectorBytes)))) return -1;
    return intact_after_lost_writes(data, file_size, kSegmentHeaderSize, first_seq - 1, max_seq);
  }
  if (header.first_seq != first_seq) return -1;
  int64_t intact = 0;
  uint64_t last_seq = first_seq - 1;
  std::string buffer;
  for (size_t at = kSegmentHeaderSize; at < data.size();) {
    Record record;
    size_t end = 0;
    const Decoded d = decode_at(data, file_size, at, &record, &end, &buffer);
    if (d == Decoded::kRecord && record.seq == last_seq + 1) {
      ++intact;
      last_seq = record.seq;
      at = end;
      continue;
    }
    if (d == Decoded::kEnd && all_zero(data.substr(at))) break;
    if (d == Decoded::kRecord || end > file_size) return -1;
    const int64_t after = intact_after_lost_writes(data, file_size, at, last_seq, max_seq);
    return after < 0 ? -1 : intact + after;
  }
  return intact;
}

bool read_segment_header(std::string_view data, uint64_t file_size, SegmentHeader* header,
                         std::string* why) {
  if (data.size() >= kSegmentHeaderSize || file_size <= data.size()) {
    return parse_segment_header(data, header, why);
  }
  std::string completed(data);
  completed.resize(static_cast<size_t>(std::min<uint64_t>(file_size, kSegmentHeaderSize)), '\0');
  return parse_segment_header(completed, header, why);
}

// What makes a record cut short damage where it was not cut off: README
// says a crash's torn write at the newest file's end is cut off, and a bare
// "record cut short" gave the operator nothing to tell this one from it.
std::string why_not_a_crash(const ScanOptions& options, uint64_t expected) {
  if (options.synced_seq != 0 && expected <= options.synced_seq) {
    return ", before record " + std::to_string(options.synced_seq) +
           ", where the log ended when tqd last stopped cleanly (wal/CLOSED): that stop synced "
           "it whole, so no crash cut it short (damage)";
  }
  if (!options.is_newest) {
    return ", in a file before the newest: the log went on in later files, so no crash cut it "
           "short (damage)";
  }
  return "";
}

Result<SegmentScan> scan_segment(const std::string& file, std::string_view data, uint64_t file_size,
                                 const ScanOptions& options, Reporter& reporter,
                                 const RecordVisitor& visit) {
  SegmentScan scan;
  std::string why;
  uint64_t expected = options.expected_seq;
  // A segment before the newest is cut like the newest only after a power
  // cut under a policy that syncs the files it leaves in the background.
  const bool retired_may_cut = !options.is_newest && options.later_files_unsynced &&
                               options.unsynced_may_be_lost && !options.recover;
  if (!read_segment_header(data, file_size, &scan.header, &why)) {
    // A segment file gets its name only once it has its full size on disk
    // (log_writer.cc), so no crash leaves one shorter than a header: it was
    // cut short later, and what it held is lost. An older tqd's could
    // (ScanOptions::empty_newest_may_be_unallocated).
    const bool unallocated =
        options.is_newest && options.empty_newest_may_be_unallocated && file_size == 0;
    const bool cut_short = file_size < kSegmentHeaderSize && !unallocated;
    if (options.is_newest && !cut_short && all_zero(data)) {
      // Created, and the process died before the header was written: an
      // empty segment.
      scan.no_header = true;
      return scan;
    }
    // The header goes to disk with the segment's first records, in one
    // write: a power cut that lost its sector and kept later ones leaves a
    // segment nothing of which was synced (a sync covering those records
    // covers the header too).
    const uint64_t first = options.assumed.first_seq;
    if ((options.is_newest || retired_may_cut) && !cut_short && options.unsynced_may_be_lost &&
        !options.recover && first > options.synced_seq &&
        all_zero(data.substr(0, std::min<size_t>(data.size(), kLostSectorBytes)))) {
      const int64_t later = intact_after_lost_writes(data, file_size, kSegmentHeaderSize, first - 1,
                                                     first + data.size());
      if (later >= 0 && (options.is_newest || options.later_files_unsynced(true))) {
        scan.no_header = true;
        scan.lost_writes = true;
        scan.cut_after_lost_writes = static_cast<uint64_t>(later);
        return scan;
      }
    }
    if (cut_short) {
      why += " (" + std::to_string(file_size) +
             " bytes; segment files are created at full size, so it was cut short)";
    }
    if (!options.recover) return Status::corruption(file + " at offset 0: " + why);
    // The header only names the segment; each record after it is checked
    // on its own, so read them and let their seqs say what is missing.
    reporter.dropped(file, 0, std::min<uint64_t>(file_size, kSegmentHeaderSize),
                     why + (cut_short ? "; what it held is lost"
                                      : "; the records after it are read all the same"));
    scan.header = options.assumed;
    scan.header_damaged = true;
    scan.tail_lost = cut_short;
  }
  if (expected == 0) expected = scan.header.first_seq;
  if (!scan.header_damaged && scan.header.first_seq != expected) {
    if (!options.recover || scan.header.first_seq < expected) {
      return Status::corruption(file + ": starts at seq " + std::to_string(scan.header.first_seq) +
                                " but seq " + std::to_string(expected) +
                                " was expected (a segment is missing or out of place)");
    }
    reporter.dropped(file, 0, 0,
                     "records " + std::to_string(expected) + " to " +
                         std::to_string(scan.header.first_seq - 1) + " are missing");
    expected = scan.header.first_seq;
  }

  // No record in this file has a higher seq: they count up from its first
  // (which names the file), and each takes 21 bytes or more.
  const uint64_t max_seq =
      std::max(expected, scan.header.first_seq) + data.size() / kRecordHeaderSize;
  size_t at = kSegmentHeaderSize;
  scan.end_offset = at;
  std::string completed;  // a record that ends in the zeros after `data`
  while (at < data.size()) {
    Record record;
    size_t end = 0;
    const Decoded d = decode_at(data, file_size, at, &record, &end, &completed);
    if (d == Decoded::kRecord && record.seq == expected) {
      if (Status s = visit(record); s.ok()) {
        ++scan.records;
      } else if (options.recover) {
        // Intact, but the caller cannot apply it (written by a tqd with a
        // bug, or a newer one): recovery drops it like damage.
        reporter.dropped(file, at, end - at, s.message());
      } else {
        return Status::corruption(file + " at offset " + std::to_string(at) + ": " + s.message());
      }
      scan.last_seq = record.seq;
      ++expected;
      at = end;
      scan.end_offset = at;
      continue;
    }
    if (d == Decoded::kEnd && all_zero(data.substr(at))) break;  // the clean end
    if (d == Decoded::kRecord && record.seq > expected && options.recover) {
      // Records were lost before this one (dropped earlier, or a segment is
      // gone): say so, and carry on from here.
      reporter.dropped(file, at, 0,
                       "records " + std::to_string(expected) + " to " +
                           std::to_string(record.seq - 1) + " are missing");
      expected = record.seq;
      continue;
    }

    // Damage, or the tail of a write that never finished. A write is cut
    // short from some byte on: the rest of the record is the zeros the file
    // was made of, and so is everything after it. A record whose bytes are
    // all there (its last one is not zero) was written whole, and may have
    // been acknowledged: if it does not check, that is damage, wherever it
    // is. So is a record that claims to run past the data when an intact
    // later record follows it (a damaged length): a write cut short has
    // nothing written after it, and cutting there would zero records that
    // were acknowledged. And so is one that runs past the end of the file:
    // a segment file has its full size before it is named, and every record
    // is written inside it, so no crash leaves that. (Zeros a power cut left
    // in a written record are lost writes, not damage: see the header.)
    const bool past_end = end > file_size;
    // Cutting here would take records a clean stop synced: no crash did that.
    const bool may_cut = (options.is_newest || retired_may_cut) && expected > options.synced_seq;
    const bool cut_short = (d == Decoded::kTruncated || d == Decoded::kBadChecksum) && !past_end &&
                           end > data.size() &&
                           next_intact(data, at + 1, scan.last_seq, max_seq) >= data.size();
    int64_t cut_after = -1;
    if (may_cut && !options.recover && options.unsynced_may_be_lost && !cut_short && !past_end &&
        d != Decoded::kRecord) {
      cut_after = intact_after_lost_writes(data, file_size, at, scan.last_seq, max_seq);
    }
    if (may_cut && (cut_short || cut_after >= 0) &&
        (options.is_newest || options.later_files_unsynced(false))) {
      scan.torn_at = at;
      size_t last = data.size();
      while (last > at && data[last - 1] == 0) --last;
      scan.torn_bytes = last - at;
      // Before the newest file, a write cut short is lost writes too: later
      // files' were kept.
      scan.lost_writes = cut_after >= 0 || !options.is_newest;
      scan.cut_after_lost_writes = cut_after > 0 ? static_cast<uint64_t>(cut_after) : 0;
      break;
    }
    std::string reason = cut_short ? "record cut short" : describe(d);
    if (cut_short) reason += why_not_a_crash(options, expected);
    if (past_end && d != Decoded::kRecord) {
      reason = "record runs " + std::to_string(end - file_size) +
               " bytes past the end of the file (its length is damaged, or the file was cut "
               "short: segment files are created at full size)";
    } else if (d == Decoded::kRecord) {
      reason += " (seq " + std::to_string(record.seq) + " where " + std::to_string(expected) +
                " was expected)";
    } else if (d == Decoded::kBadChecksum && options.is_newest && end == data.size()) {
      reason += " in the last record, which is whole (damage, not a write cut short)";
    }
    if (!options.recover) {
      if ((options.is_newest || retired_may_cut) && !past_end && d != Decoded::kRecord &&
          looks_like_lost_sector(data, at, std::max(end, at + kRecordHeaderSize))) {
        reason +=
            " (zeros where records were, with records after them: what a power cut "
            "leaves when the disk kept a later part of a write and not this one)";
      }
      return Status::corruption(file + " at offset " + std::to_string(at) + ": " + reason);
    }
    size_t next = next_intact(data, at + 1, scan.last_seq, max_seq);
    size_t last = next;
    if (next >= data.size()) {
      while (last > at && data[last - 1] == 0) --last;
      reporter.dropped(file, at, last - at, reason + "; the rest of the segment is dropped");
      scan.tail_lost = true;
      break;
    }
    // Carry on from the next intact record, saying which seqs were lost.
    Record r;
    size_t s = 0;
    decode_record(data.substr(next), &r, &s);
    if (r.seq > expected) {
      reason += "; records " + std::to_string(expected) + " to " + std::to_string(r.seq - 1) +
                " lost";
    }
    reporter.dropped(file, at, last - at, reason);
    expected = r.seq;
    at = next;
  }
  if (scan.torn_at == 0 && !scan.tail_lost && !scan.header_damaged && scan.header.version >= 2 &&
      file_size - scan.end_offset < kEndMarkerRoom) {
    // The writer keeps room for an end marker after the last record, so
    // this file is shorter than it was made: cut from outside, perhaps
    // exactly between two records, and what followed is gone.
    const std::string after =
        scan.last_seq != 0 ? "seq " + std::to_string(scan.last_seq) : "its header";
    std::string reason = "the file ends " + std::to_string(file_size - scan.end_offset) +
                         " bytes after " + after +
                         ", with no room for the end marker the log always leaves: it was cut "
                         "short (a copy that stopped, or a file system that lost its end)";
    if (!options.recover) {
      return Status::corruption(file + " at offset " + std::to_string(scan.end_offset) + ": " +
                                reason + ", and records after it may be lost");
    }
    reporter.dropped(file, scan.end_offset, 0, reason + "; what followed it is lost");
    scan.tail_lost = true;
  }
  return scan;
}

}  // namespace tq::wal
