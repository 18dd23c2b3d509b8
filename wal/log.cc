#include "wal/log.h"

#include <algorithm>
#include <functional>
#include <optional>
#include <utility>

#include "wal/run_marker.h"

namespace tq::wal {

Log::Log(LogOptions options) : options_(std::move(options)) {}

Log::~Log() {
  if (!closed_) (void)close();
}

namespace {

// Passes reports on, counting them for the summary.
class CountingReporter final : public Reporter {
 public:
  CountingReporter(Reporter& inner, uint64_t* count) : inner_(inner), count_(count) {}
  void dropped(const std::string& file, uint64_t offset, uint64_t bytes,
               const std::string& reason) override {
    ++*count_;
    inner_.dropped(file, offset, bytes, reason);
  }

 private:
  Reporter& inner_;
  uint64_t* count_;
};

// Each segment's ordinal, from its header. Recovery reads past a damaged
// header (scan_segment), and ordinals only keep segments in order, so one is
// inferred from the neighbours: one more than the segment before, or, before
// the first intact header, one less than the segment after.
std::vector<uint32_t> ordinals_of(const std::vector<std::unique_ptr<FileBytes>>& files,
                                  const std::vector<uint64_t>& file_sizes) {
  const size_t n = files.size();
  std::vector<uint32_t> ordinals(n, 0);  // 0 until known
  for (size_t i = 0; i < n; ++i) {
    SegmentHeader header;
    std::string why;
    if (read_segment_header(files[i]->bytes(), file_sizes[i], &header, &why)) {
      ordinals[i] = header.ordinal;
    }
  }
  for (size_t i = 1; i < n; ++i) {
    if (ordinals[i] == 0 && ordinals[i - 1] != 0) ordinals[i] = ordinals[i - 1] + 1;
  }
  for (size_t i = n; i-- > 1;) {
    if (ordinals[i - 1] == 0 && ordinals[i] > 1) ordinals[i - 1] = ordinals[i] - 1;
  }
  for (size_t i = 0; i < n; ++i) {
    if (ordinals[i] == 0) ordinals[i] = i == 0 ? 1 : ordinals[i - 1] + 1;
  }
  return ordinals;
}

// After a crash that may have lost acknowledged records, the next start
// skips ids past the rest of the newest file and this many segments more
// (OpenSummary::seq_bound).
constexpr uint64_t kLostSegmentsMargin = 4;

// Ends the reason a file after a cut before the newest is removed, after
// the count of its intact records.
constexpr const char* kWhyNoneSynced =
    " intact record(s), none of them synced: under fsync: never or interval a file the log has "
    "left is synced in the background, and no later file before it)";

// The log's files as Log::open maps them, oldest first.
struct MappedFiles {
  const std::vector<uint64_t>& first_seqs;
  const std::vector<std::unique_ptr<FileBytes>>& bytes;
  const std::vector<uint64_t>& sizes;
};

// How far a start after a crash under never or interval skips ids, at the
// least, when its log ends at `resumes_after` (OpenSummary::seq_bound).
uint64_t lost_ids_skipped_to(uint64_t resumes_after, uint64_t segment_bytes) {
  return resumes_after + kLostSegmentsMargin * segment_bytes / kRecordHeaderSize;
}

// Whether the files from `from` on hold only what a power cut leaves of
// writes not yet synced (count_records_among_lost_writes), with each one's
// count of intact records in *counts, so that the log may be cut before
// them and they removed. Their records' seqs must also lie within what a
// start after a second crash, before the first batch after this start is
// synced (it holds the id skip), skips ids past: that start no longer sees
// them, and its log ends at `resumes_after` or later.
bool only_lost_writes_from(const MappedFiles& files, size_t from, uint64_t resumes_after,
                           uint64_t segment_bytes, std::vector<int64_t>* counts) {
  const uint64_t skipped_to = lost_ids_skipped_to(resumes_after, segment_bytes);
  counts->clear();
  for (size_t j = from; j < files.first_seqs.size(); ++j) {
    if (files.first_seqs[j] - 1 + files.sizes[j] / kRecordHeaderSize > skipped_to) return false;
    const int64_t n = count_records_among_lost_writes(files.bytes[j]->bytes(), files.sizes[j],
                                                      files.first_seqs[j]);
    if (n < 0) return false;
    counts->push_back(n);
  }
  return true;
}

// What the open found of the newest file, for a log that ends before the
// record CLOSED names (closed_gap_cause).
struct NewestFound {
  std::string name;   // the newest file (only its name); "" when there is none
  uint64_t end = 0;   // where its intact records end
  uint64_t size = 0;  // its size
  // Recovery dropped damage at its end: from `end` on, or, with
  // `lost_whole`, all of it (it was then removed).
  bool damaged = false;
  // Why none of its records is left ("it holds only zeros"); "" when some are.
  std::string lost_whole;
};

// Why a log ends before the record CLOSED names: which records are missing
// and what took them. They went with newer files (deleted, left out of a
// copy) or, when the newest file left has room for more or holds only
// zeros, maybe from it (zeros where that stop had synced records); under
// recovery, with the newest file's end, or the whole file, when recovery
// found it cut short or damaged and dropped it. Naming only missing files
// sent operators looking for files that were all there. `*named_file`: the
// cause names the newest file, not only missing ones.
std::string closed_gap_cause(uint64_t last_seq, uint64_t closed_at, const NewestFound& newest,
                             bool* named_file) {
  const std::string records = "records " + std::to_string(last_seq + 1) + " to " +
                              std::to_string(closed_at) + " are missing: ";
  const std::string files = "its newest file(s) are missing, deleted or left out of a copy";
  *named_file = true;
  if (newest.damaged) {
    const std::string lost = newest.lost_whole.empty()
                                 ? "the end of " + newest.name + " lost them (from offset " +
                                       std::to_string(newest.end) +
                                       " on it is cut short or damaged, and was dropped)"
                                 : newest.name + " lost them (" + newest.lost_whole + ")";
    return records + lost + ", or newer file(s) held some of them and are missing too";
  }
  if (!newest.lost_whole.empty()) {
    return records + files + ", or " + newest.name + " lost them (" + newest.lost_whole +
           ", where that stop had synced records)";
  }
  if (!newest.name.empty() && newest.size >= newest.end + kRecordHeaderSize + kEndMarkerRoom) {
    return records + files + ", or the end of " + newest.name + " lost them (zeros from offset " +
           std::to_string(newest.end) + " on, where that stop had synced records)";
  }
  *named_file = false;
  return files;
}

}  // namespace

Result<std::unique_ptr<Log>> Log::open(FileSystem& fs, const LogOptions& options,
                                       Reporter& outer_reporter, const ReplayVisitor& visit,
                                       OpenSummary* summary,
                                       const std::function<void(uint64_t)>& sizing) {
  CountingReporter reporter(outer_reporter, &summary->dropped);
  std::unique_ptr<Log> log(new Log(options));
  if (Status s = fs.create_dir(options.dir); !s.ok()) return s;
  auto lock = fs.lock(options.dir + "/LOCK");
  if (!lock) return lock.error();
  log->lock_ = std::move(lock).value();

  auto names = fs.list(options.dir);
  if (!names) return names.error();
  std::vector<uint64_t> first_seqs;
  for (const std::string& name : *names) {
    if (uint64_t seq = parse_segment_file_name(name); seq != 0) first_seqs.push_back(seq);
  }
  std::sort(first_seqs.begin(), first_seqs.end());

  // Map every segment first, so the caller can size its tables for what
  // replay is about to bring.
  std::vector<std::unique_ptr<FileBytes>> files;
  std::vector<uint64_t> file_sizes;
  uint64_t total = 0;
  for (uint64_t first_seq : first_seqs) {
    uint64_t file_size = 0;
    auto contents = fs.read_file(options.dir + "/" + segment_file_name(first_seq), &file_size);
    if (!contents) return contents.error();
    total += (*contents)->bytes().size();
    files.push_back(std::move(contents).value());
    file_sizes.push_back(file_size);
  }
  if (sizing) sizing(total);

  const std::vector<uint32_t> ordinals = ordinals_of(files, file_sizes);
  const PreviousRun previous = read_run_marker(fs, options.dir, *names);
  // Only a machine's crash loses writes that were not synced: after the
  // process's alone, zeros among records are damage.
  const bool unsynced_may_be_lost = machine_restarted_since(previous, fs.boot_id());
  summary->restored_backup_at_ms = read_backup_marker(fs, options.dir, *names);
  // A backup's copy ends where the backup did, before the server it came
  // from closed: only a log of its own is held to its CLOSED.
  const uint64_t closed_at =
      summary->restored_backup_at_ms == 0 ? read_closed_marker(fs, options.dir, *names) : 0;
  uint64_t expected = 0;
  bool newest_tail_lost = false;
  uint64_t torn_room = 0;  // records that could have followed a torn write (see below)
  uint64_t zeros_bound = 0;  // the highest seq a removed file of zeros could have held
  uint64_t lost_writes_bound = 0;  // ... and one whose header a power cut lost
  uint64_t newest_size = 0;  // of the segment writing resumes in
  NewestFound newest_found;  // the newest file, as far as a log ending before CLOSED needs it
  // Files of no use found by the scan, and why: removed only once NEWEST no
  // longer names them (below), and not at all when the open is refused.
  std::vector<std::pair<std::string, std::string>> useless;
  struct Cut {
    std::string path;
    uint64_t at = 0;
    uint64_t bytes = 0;
  };
  std::optional<Cut> cut;  // a torn write or a power cut's lost writes
  // After a crash, NEWEST names the newest segment the run made (below); 0
  // when it made none.
  const std::optional<uint64_t> newest_marked =
      previous.clean ? std::nullopt : read_newest_marker(fs, options.dir, *names);
  const uint64_t newest_at = newest_marked.value_or(0);
  // Under never and interval the writer syncs a file it has left in the
  // background, and syncs no file before those left before it: a power cut
  // just after a rotation can leave a file before the newest with zeros
  // where its last records were, and later files holding records none of
  // which was synced. The log is then cut there, and the later files go.
  // Only in a file from the one NEWEST names on: the writer names a new
  // segment there once every file before it is synced, so zeros in an
  // older one are damage (a sector gone bad), and the synced files after
  // them stay, for --wal-recover. Nor without NEWEST (a tqd from before it).
  const bool background_synced_files_may_be_lost = unsynced_may_be_lost &&
                                                   may_lose_acknowledged(previous.policy) &&
                                                   !options.recover && newest_marked.has_value();
  std::vector<int64_t> later_records;  // in each file after i, when they are only lost writes
  // A tqd from before December 2 2026 (evening) could leave an empty newest
  // file (ScanOptions::empty_newest_may_be_unallocated). It wrote format
  // version 1 and none of the markers: any of them, or a version 2 segment,
  // says a newer tqd wrote here last, and it names only full-size files.
  // (The tqds of December 2 to 5 left logs like that too: an empty file in
  // one was cut from outside, and is taken for the crash all the same; it
  // can hide only records after the last one read.)
  const auto has_marker = [&](const char* marker) {
    return std::find(names->begin(), names->end(), marker) != names->end();
  };
  const bool written_by_pre_marker_tqd = previous.clean && !has_marker(kClosedMarkerName) &&
                                         !has_marker(kNewestMarkerName) &&
                                         summary->restored_backup_at_ms == 0;
  uint32_t version_before = 1;  // of the segment before the one scanned; none counts as 1
  const MappedFiles mapped{first_seqs, files, file_sizes};
  // Removes the files from `from` on (only_lost_writes_from said so, with
  // `counts`), which follow `after`, bounding the seqs they could hold; how
  // many intact records went with them.
  auto drop_unsynced_from = [&](size_t from, const std::vector<int64_t>& counts,
                                const std::string& after) {
    uint64_t dropped = 0;
    for (size_t j = from; j < first_seqs.size(); ++j) {
      const uint64_t intact = static_cast<uint64_t>(counts.at(j - from));
      dropped += intact;
      useless.emplace_back(options.dir + "/" + segment_file_name(first_seqs[j]),
                           "it follows " + after +
                               ", and holds only what a power cut leaves of writes not yet "
                               "synced (" +
                               std::to_string(intact) + kWhyNoneSynced);
      lost_writes_bound =
          std::max(lost_writes_bound, first_seqs[j] - 1 + file_sizes[j] / kRecordHeaderSize);
      summary->lost_writes_removed = true;
    }
    return dropped;
  };
  for (size_t i = 0; i < first_seqs.size(); ++i) {
    const bool newest = i + 1 == first_seqs.size();
    const std::string name = segment_file_name(first_seqs[i]);
    const std::string path = options.dir + "/" + name;
    const uint64_t file_size = file_sizes[i];
    std::string_view data = files[i]->bytes();
    const uint32_t ordinal = ordinals[i];
    if (i > 0 && background_synced_files_may_be_lost && expected > closed_at &&
        first_seqs[i - 1] >= newest_at && first_seqs[i] > expected) {
      // The file before this one ends cleanly short of this one's first
      // seq: its unsynced end was lost whole, from the start of a record
      // (where its last sync left it), and writes to this file were kept.
      // As with zeros in it (below): nothing from here on was synced.
      std::vector<int64_t> counts;
      if (only_lost_writes_from(mapped, i, first_seqs[i - 1] - 1, options.segment_bytes, &counts)) {
        drop_unsynced_from(i, counts,
                           "records " + std::to_string(expected) + " to " +
                               std::to_string(first_seqs[i] - 1) + " lost from the end of " +
                               segment_file_name(first_seqs[i - 1]));
        break;
      }
    }
    std::function<bool(bool whole_file)> later_files_unsynced;
    if (!newest && background_synced_files_may_be_lost && first_seqs[i] >= newest_at) {
      later_files_unsynced = [&, i](bool whole_file) {
        // The log then ends in this file, or, when it goes whole, in the one
        // before it: with none before, a start after a second crash begins
        // from nothing, and skips ids past the margin alone.
        const uint64_t resumes_after = whole_file && i == 0 ? 0 : first_seqs[i] - 1;
        if (whole_file && first_seqs[i] - 1 + file_sizes[i] / kRecordHeaderSize >
                              lost_ids_skipped_to(resumes_after, options.segment_bytes)) {
          return false;
        }
        return only_lost_writes_from(mapped, i + 1, resumes_after, options.segment_bytes,
                                     &later_records);
      };
    }
    const ScanOptions scan_options{
        .is_newest = newest,
        .recover = options.recover,
        .unsynced_may_be_lost = unsynced_may_be_lost,
        .expected_seq = expected,
        .assumed = SegmentHeader{ordinal, first_seqs[i]},
        .synced_seq = closed_at,
        .later_files_unsynced = later_files_unsynced,
        .empty_newest_may_be_unallocated = written_by_pre_marker_tqd && version_before == 1};
    auto visit_record = [&](const Record& record) { return visit(record, ordinal); };
    auto scan = scan_segment(path, data, file_size, scan_options, reporter, visit_record);
    if (!scan) return scan.error();
    if (newest) newest_tail_lost = scan->tail_lost;
    newest_found.damaged = newest && scan->tail_lost;  // recover: its end was dropped
    const SegmentHeader& header = scan->header;
    // Cut before the newest file (above): the files after it go, with what
    // their records' seqs could have reached.
    const bool cut_before_newest = !newest && (scan->torn_at != 0 || scan->no_header);
    const uint64_t cut_later =  // intact records in them
        cut_before_newest
            ? drop_unsynced_from(i + 1, later_records, "the zeros a power cut left in " + name)
            : 0;
    if (scan->no_header && !options.recover && i > 0 && first_seqs[i] > expected &&
        !previous.clean &&
        (!may_lose_acknowledged(previous.policy) || first_seqs[i - 1] < newest_at)) {
      // The file before this one ends short of its first seq, and was
      // synced whole before this one was written (under always, or NEWEST
      // names a later file): the records missing from its end are damage,
      // which no power cut's loss of this file explains.
      return Status::corruption(path + ": named for seq " + std::to_string(first_seqs[i]) +
                                " but seq " + std::to_string(expected) +
                                " was expected (records are missing from the end of " +
                                segment_file_name(first_seqs[i - 1]) +
                                ", which was synced before this file was written)");
    }
    if (scan->no_header) {
      // Created and never written before a crash, or never synced: nothing
      // to keep.
      const uint64_t could_hold = first_seqs[i] - 1 + file_size / kRecordHeaderSize;
      if (scan->lost_writes) {
        useless.emplace_back(
            path, "its first sector, the header's, is zeros, with " +
                      std::to_string(scan->cut_after_lost_writes + cut_later) +
                      " intact record(s) after it, after a run that did not stop cleanly: a "
                      "power cut's lost writes, none of them synced (under fsync: always, none "
                      "acknowledged)");
        lost_writes_bound = std::max(lost_writes_bound, could_hold);
        summary->lost_writes_removed = true;
      } else {
        // Named for a record a clean stop had synced: not a file that was
        // never written, but one that lost what it held.
        const bool held_records = closed_at >= first_seqs[i];
        useless.emplace_back(
            path, file_size == 0 ? "it is empty (0 bytes): an older tqd named it and "
                                   "stopped before it allocated it, never written"
                  : held_records ? "it holds only zeros, where tqd's last clean stop had synced "
                                   "records (wal/CLOSED)"
                                 : "it holds only zeros (created, never written)");
        if (newest) {
          newest_found = {
              .name = name,
              .lost_whole = file_size == 0 ? "it is empty (0 bytes)" : "it holds only zeros"};
        }
        zeros_bound = std::max(zeros_bound, could_hold);
      }
      if (cut_before_newest) break;
      continue;
    }
    if (newest && options.recover && scan->last_seq == 0) {
      // Nothing intact is left in it, and the rewrite that follows a
      // recovery starts a segment named by the next seq: this one's name.
      // Sharing it would put the new records into this file, and deleting
      // this segment would then delete them.
      useless.emplace_back(path, "no intact record is left in it");
      newest_found = {
          .name = name, .damaged = true, .lost_whole = "no intact record is left in it"};
      expected = std::max(expected, first_seqs[i]);
      continue;
    }
    if (!log->segments_.empty() && header.ordinal <= log->segments_.back().ordinal) {
      return Status::corruption(path + ": segment ordinal " + std::to_string(header.ordinal) +
                                " does not follow " + std::to_string(log->segments_.back().ordinal));
    }
    if (scan->torn_at != 0) {
      summary->torn = path + " offset " + std::to_string(scan->torn_at) + " (" +
                      std::to_string(scan->torn_bytes) + " bytes)";
      summary->torn_lost_writes = scan->lost_writes;
      summary->cut_after_lost_writes = scan->cut_after_lost_writes + cut_later;
      // A crash cut a write short: tqd's (a SIGKILL can end a write part
      // way; that record was not acknowledged yet) or the machine's. After
      // the machine's, under fsync=never or interval, the torn record and
      // any written after it may have been acknowledged and lost with the
      // unsynced pages: as many as fit in the rest of this file and one
      // more (the next segment may have been lost whole, its name not yet
      // synced). Which crash it was cannot be told, and a jump in ids costs
      // nothing, so the bound covers both.
      torn_room = (file_size - scan->torn_at + file_size) / kRecordHeaderSize;
      // Zeroed once no check below refuses the open (the files are then
      // left as they are for --wal-recover).
      cut = Cut{path, scan->torn_at, scan->torn_bytes};
    }
    // The file is named by its first seq; the name is what finds it again.
    log->segments_.push_back(Segment{header.ordinal, first_seqs[i], scan->end_offset});
    version_before = header.version;
    newest_size = file_size;
    newest_found.name = name;  // the newest file left so far
    newest_found.end = scan->end_offset;
    newest_found.size = file_size;
    log->total_bytes_ += scan->end_offset;
    summary->records += scan->records;
    summary->bytes += scan->end_offset;
    ++summary->segments;
    files[i].reset();  // unmap as soon as it is read
    if (scan->last_seq != 0) {
      expected = scan->last_seq + 1;
    } else if (scan->header_damaged) {
      expected = std::max(expected, first_seqs[i]);  // its records, if any, are lost
    } else {
      expected = header.first_seq;
    }
    if (cut_before_newest) break;
  }
  if (expected != 0) log->next_seq_ = expected;
  log->durable_seq_ = log->next_seq_ - 1;
  // Older segments' lost records are bounded by the next segment's first
  // seq; the newest segment's lost tail only by what a segment can hold.
  summary->seq_bound =
      log->next_seq_ - 1 + (newest_tail_lost ? kMaxSegmentBytes / kRecordHeaderSize : torn_room);
  // A file removed above (zeros only) was still named by its first seq: the
  // segment before it held records up to that seq, lost tail or not.
  if (!first_seqs.empty()) summary->seq_bound = std::max(summary->seq_bound, first_seqs.back() - 1);
  summary->seq_bound = std::max(summary->seq_bound, lost_writes_bound);
  // A log with no record left, only files of zeros, is what a crash leaves
  // only before a new log's first record (every segment starts with a META
  // record, written before the segments before it are deleted). Otherwise
  // the disk lost what was synced, and the zeros may have held records up to
  // what their size allows.
  if (summary->records == 0 && zeros_bound > 0) {
    summary->only_zeros_left = true;
    summary->seq_bound = std::max(summary->seq_bound, zeros_bound);
  }

  if (closed_at > log->next_seq_ - 1) {
    bool named_file = false;
    const std::string cause =
        closed_gap_cause(log->next_seq_ - 1, closed_at, newest_found, &named_file);
    if (!options.recover) {
      return Status::corruption(
          "the log ends at record " + std::to_string(log->next_seq_ - 1) +
          ", but when tqd last stopped cleanly it ended at record " + std::to_string(closed_at) +
          " (wal/" + kClosedMarkerName + "): " + cause +
          (named_file ? "; put back what is missing" : "; put them back") +
          " (to start a new, empty log on purpose, remove the whole wal directory)");
    }
    summary->closed_at_missing_cause = cause;
    summary->closed_at_seq_missing = closed_at;
    summary->seq_bound = std::max(summary->seq_bound, closed_at);
  }
  // The same loss after a crash: NEWEST names the newest segment the run
  // made, and no file from it on is here (one of zeros, removed above, was
  // here: a crash just after a rotation leaves one). No crash loses a file
  // whole: its name was durable before NEWEST named it. A backup's copy is
  // exempt, as from CLOSED: restored over a crashed log's directory, it is
  // older than that log's markers. So is a log holding a record at or past
  // NEWEST's seq: a tqd from before NEWEST removed the file of zeros it
  // named and wrote on in the file before (this tqd moves NEWEST first).
  if (newest_at != 0 && (first_seqs.empty() || first_seqs.back() < newest_at) &&
      log->next_seq_ <= newest_at && summary->restored_backup_at_ms == 0) {
    if (!options.recover) {
      const std::string found =
          first_seqs.empty() ? std::string("the log has no file")
                             : "the log's newest file is " + segment_file_name(first_seqs.back());
      return Status::corruption(
          found + ", but tqd, which did not stop cleanly, had started " +
          segment_file_name(newest_at) + " (wal/" + kNewestMarkerName +
          "): its newest file(s) are missing, deleted or left out of a copy; put them back (to "
          "start a new, empty log on purpose, remove the whole wal directory)");
    }
    summary->newest_missing_first_seq = newest_at;
    // How many records that file held cannot be known: as many as a
    // segment of the largest size can.
    summary->seq_bound =
        std::max(summary->seq_bound, newest_at - 1 + kMaxSegmentBytes / kRecordHeaderSize);
  }

  if (!previous.clean) {
    // The run before may have died between a write and its sync (a kill):
    // what replay just read may be in the page cache only, and a power cut
    // would still take it. Replies vouch for replayed records without
    // waiting (a DEQUEUE hands out a job, a DUPLICATE names one), and under
    // always nothing would make the ids they hold skipped after that power
    // cut: so they are made durable before the log calls them so.
    for (const Segment& segment : log->segments_) {
      auto file =
          fs.open_for_write(options.dir + "/" + segment_file_name(segment.first_seq), false, 0);
      if (!file) return file.error();
      Status s = (*file)->sync();
      Status closed = (*file)->close();
      if (!s.ok()) return s;
      if (!closed.ok()) return closed;
    }
    if (Status s = fs.sync_dir(options.dir); !s.ok()) return s;
  }
  summary->previous_unclean = !previous.clean;
  if (!previous.clean && previous.lost_ids_seq_bound != 0) {
    summary->unrecorded_skip_seq_bound = previous.lost_ids_seq_bound;
    summary->seq_bound = std::max(summary->seq_bound, previous.lost_ids_seq_bound);
  }
  if (!previous.clean && may_lose_acknowledged(previous.policy)) {
    log->after_lossy_crash_ = true;
    summary->acknowledged_may_be_lost = true;
    summary->previous_policy = previous.policy;
    summary->previous_policy_unknown = previous.unreadable;
    const uint64_t newest_file = log->segments_.empty() ? 0 : newest_size;
    const uint64_t newest_used = log->segments_.empty() ? 0 : log->segments_.back().bytes;
    const uint64_t room = (newest_file - std::min(newest_file, newest_used)) +
                          kLostSegmentsMargin * std::max(newest_file, options.segment_bytes);
    summary->seq_bound += room / kRecordHeaderSize;
  }
  log->sync_first_batch_ = !previous.clean || options.recover;
  log->backup_marker_ = summary->restored_backup_at_ms != 0;
  log->backup_marker_off_pending_ = log->backup_marker_;
  // RUNNING, with the bound of the ids to skip, goes before anything below
  // removes a sign of a loss (NEWEST naming a missing file, files of zeros,
  // a torn record): nothing else would make a crash before the first batch,
  // which records the skip, skip as far again (under never and interval the
  // marker's policy makes it skip, but only by what the log's end allows).
  // The bound goes once that batch is durable. After a clean stop there is
  // no RUNNING yet, and NEWEST goes first: RUNNING makes the next open read
  // it.
  const FsyncPolicy marked = policy_to_mark(previous, options.fsync);
  const uint64_t lost_ids_seq_bound = summary->ids_may_be_lost() ? summary->seq_bound : 0;
  // A start that cuts a power cut's lost writes (the zeros, the files after
  // them) keeps the boot they were written in until its first batch, which
  // the bound makes synced, rewrites the marker: killed before its cut is on
  // disk, the start after it, in this same boot, must still take the zeros
  // for lost writes, not damage, or it refuses the log.
  std::optional<std::string> boot;
  if (summary->torn_lost_writes || summary->lost_writes_removed) boot = previous.boot_id;
  auto write_running = [&] {
    (void)write_run_marker(fs, options.dir, marked, lost_ids_seq_bound, boot);  // best effort
  };
  if (!previous.clean) write_running();
  // NEWEST names the segment writing resumes in before the files of zeros
  // go, and before RUNNING, new after a clean stop, makes the next open read
  // it: a crash in between must not leave it naming a file removed here. If
  // it cannot be written, none is better than a stale one (best effort).
  const uint64_t resumed = log->segments_.empty() ? 0 : log->segments_.back().first_seq;
  if (!write_newest_marker(fs, options.dir, resumed).ok()) {
    (void)remove_newest_marker(fs, options.dir);
  }
  if (previous.clean) write_running();
  // Once the first batch is durable, the marker names this run's policy
  // under always, and no bound under any policy.
  log->marker_after_first_batch_ =
      options.fsync == FsyncPolicy::kAlways ? FsyncPolicy::kAlways : marked;
  log->marker_upgrade_pending_ =
      (options.fsync == FsyncPolicy::kAlways && marked != options.fsync) || lost_ids_seq_bound != 0;
  if (lost_ids_seq_bound != 0) log->sync_first_batch_ = true;
  // Newest first: a crash part way leaves the log a prefix of its files
  // (ext4 and XFS journal unlinks in order), which the next start cuts the
  // same way, not a file missing between two.
  std::sort(useless.begin(), useless.end(), std::greater<>());
  for (const auto& [path, why] : useless) {
    if (Status s = fs.remove(path); !s.ok()) return s;
    summary->removed.push_back(path + ": " + why);
  }
  if (!useless.empty()) {
    if (Status s = fs.sync_dir(options.dir); !s.ok()) return s;
  }
  if (cut) {
    // Zero the partial record (after a power cut's zeros, everything from
    // them on) so that nothing after our next write can ever be mistaken
    // for data. Once the files after it are gone: a crash in between must
    // not leave them after a file that ends before their first seq (a
    // segment missing, damage), but a cut the next start makes again.
    auto file = fs.open_for_write(cut->path, false, 0);
    if (!file) return file.error();
    Status s = (*file)->write_at(cut->at, std::string(cut->bytes, '\0'));
    if (s.ok()) s = (*file)->sync();
    if (!s.ok()) return s;
  }
  log->fs_ = &fs;

  log->writer_ = std::make_unique<LogWriter>(
      fs, options.dir, options.fsync, options.fsync_interval_ms, options.segment_bytes,
      options.retry_interval_ms, options.spare_segment, [raw = log.get()] {
        if (raw->progress_callback_) raw->progress_callback_();
      });
  if (!log->segments_.empty()) {
    const uint64_t first_seq = log->segments_.back().first_seq;
    if (Status s = log->writer_->resume(first_seq, newest_size); !s.ok()) return s;
  }
  return log;
}

void Log::set_progress_callback(std::function<void()> callback) {
  progress_callback_ = std::move(callback);
}

void Log::start() { writer_->start(); }

Log::Appended Log::append(uint8_t type, std::string_view body, std::string_view body_tail) {
  const uint64_t size = record_size(body.size() + body_tail.size());
  // An end marker must still fit after the record (kEndMarkerRoom); a
  // record too long for any segment goes into one that holds only its
  // header, made long enough for both (LogWriter).
  bool rotate = segments_.empty() || rotate_next_ ||
                (segments_.back().bytes + size + kEndMarkerRoom > options_.segment_bytes &&
                 segments_.back().bytes > kSegmentHeaderSize);
  if (rotate) {
    rotate_next_ = false;
    Segment next{segments_.empty() ? 1 : segments_.back().ordinal + 1, next_seq_, 0};
    Chunk chunk;
    chunk.bytes = take_buffer();
    chunk.ordinal = next.ordinal;
    chunk.first_seq = next.first_seq;
    chunk.opens_segment = true;
    chunk.offset = 0;
    append_segment_header(chunk.bytes, SegmentHeader{next.ordinal, next.first_seq});
    next.bytes = chunk.bytes.size();
    total_bytes_ += chunk.bytes.size();
    appended_bytes_ += chunk.bytes.size();
    segments_.push_back(next);
    pending_.chunks.push_back(std::move(chunk));
  }
  Segment& segment = segments_.back();
  // A chunk of its own past kChunkBytes: one string for a whole batch grew
  // by doubling, and while the writer synced the last batch, a batch of
  // hundreds of MB (a client rewriting a queue of a megabyte of schedules)
  // was copied whole at each doubling, 100-240 ms of the loop at a time.
  constexpr size_t kChunkBytes = size_t{2} << 20;
  if (pending_.chunks.empty() || pending_.chunks.back().ordinal != segment.ordinal ||
      pending_.chunks.back().bytes.size() >= kChunkBytes) {
    Chunk chunk;
    chunk.bytes = take_buffer();
    chunk.ordinal = segment.ordinal;
    chunk.first_seq = segment.first_seq;
    chunk.offset = segment.bytes;
    pending_.chunks.push_back(std::move(chunk));
  }
  Chunk& chunk = pending_.chunks.back();
  const uint64_t seq = next_seq_++;
  append_record(chunk.bytes, type, seq, body, body_tail);
  chunk.last_seq = seq;
  segment.bytes += size;
  total_bytes_ += size;
  appended_bytes_ += size;
  ++records_appended_;
  return Appended{seq, segment.ordinal};
}

void Log::flush() {
  if (writer_->busy()) return;
  if (pending_.chunks.empty() && pending_.delete_first_seqs.empty()) return;
  Batch batch;
  std::swap(batch, pending_);
  if (marker_upgrade_pending_ && !batch.chunks.empty()) {
    batch.run_marker_after = marker_after_first_batch_;
    marker_upgrade_pending_ = false;
  }
  if (sync_first_batch_ && !batch.chunks.empty()) {
    batch.sync = true;
    sync_first_batch_ = false;
  }
  if (backup_marker_off_pending_ && !batch.chunks.empty()) {
    // The first batch holds the caller's id jump: synced, whatever the
    // policy, before the marker that makes every start jump goes.
    batch.sync = true;
    batch.backup_marker_off_after = true;
    backup_marker_off_pending_ = false;
  }
  writer_->submit(std::move(batch));
}

std::string Log::take_buffer() {
  if (spare_buffers_.empty()) return {};
  std::string buffer = std::move(spare_buffers_.back());
  spare_buffers_.pop_back();
  return buffer;
}

void Log::apply(WriterReport& report, Progress* progress) {
  // Kept up to a bound, so that a burst's big batch does not stay resident.
  constexpr size_t kMaxSpareBuffers = 4;
  constexpr size_t kMaxSpareBufferBytes = size_t{4} << 20;
  for (std::string& buffer : report.spent) {
    if (spare_buffers_.size() < kMaxSpareBuffers && buffer.capacity() <= kMaxSpareBufferBytes) {
      spare_buffers_.push_back(std::move(buffer));
    }
  }
  if (report.durable_seq > durable_seq_) {
    durable_seq_ = report.durable_seq;
    progress->advanced = true;
  }
  if (report.failure) {
    healthy_ = false;
    if (report.lasting) failed_until_restart_ = true;
    last_error_ = report.failure->message();
    progress->failed = true;
  }
  // A writer's retry that worked after the directory went wrote to files no
  // start will find: still failed.
  if (report.recovered && !directory_gone_) {
    healthy_ = true;
    progress->recovered = true;
  }
  for (uint64_t first_seq : report.deleted) {
    auto it = std::find_if(segments_.begin(), segments_.end(),
                           [&](const Segment& s) { return s.first_seq == first_seq; });
    if (it == segments_.end()) continue;
    total_bytes_ -= it->bytes;
    segments_.erase(it);
    ++segments_deleted_;
  }
}

Log::Progress Log::poll() {
  Progress progress;
  WriterReport report = writer_->take_report();
  apply(report, &progress);
  if (gone_unreported_) {
    gone_unreported_ = false;
    progress.failed = true;
  }
  return progress;
}

Status Log::check_in_place() {
  if (directory_gone_ || lock_ == nullptr) return Status();
  Status s = lock_->still_in_place();
  if (s.ok()) return s;
  directory_gone_ = true;
  gone_unreported_ = true;
  healthy_ = false;
  failed_until_restart_ = true;
  last_error_ = s.message();
  return s;
}

void Log::delete_segments_before(uint32_t ordinal) {
  if (pinned_) {
    delete_after_unpin_ = std::max(delete_after_unpin_, ordinal);
    return;
  }
  for (Segment& s : segments_) {
    if (s.ordinal >= ordinal || &s == &segments_.back()) break;
    if (s.deleting) continue;
    s.deleting = true;
    pending_.delete_first_seqs.push_back(s.first_seq);
  }
}

BackupPlan Log::pin_for_backup() {
  pinned_ = true;
  BackupPlan plan;
  plan.dir = options_.dir;
  plan.last_seq = last_seq();
  for (const Segment& s : segments_) {
    // Already asked to go: the writer may delete it at any moment, and
    // everything that replaced it was appended before the request.
    if (s.deleting) continue;
    plan.segments.push_back(SegmentCopy{segment_file_name(s.first_seq), s.bytes});
  }
  return plan;
}

void Log::unpin_for_backup() {
  pinned_ = false;
  const uint32_t ordinal = std::exchange(delete_after_unpin_, 0);
  if (ordinal != 0) delete_segments_before(ordinal);
}

LogStats Log::stats() {
  LogStats s;
  s.segments = segments_.size();
  s.bytes = total_bytes_;
  s.records_appended = records_appended_;
  s.last_seq = last_seq();
  s.durable_seq = durable_seq_;
  s.segments_deleted = segments_deleted_;
  s.healthy = healthy_;
  s.last_error = last_error_;
  s.writer = writer_->stats();
  return s;
}

Status Log::close() {
  if (closed_ || !writer_) return Status();  // closed, or never opened
  closed_ = true;
  // Records appended before start() (a start-up that failed after writing
  // some) need the thread to be written; waiting for a thread that never
  // ran would wait for ever.
  writer_->start();
  Progress ignored;
  for (;;) {
    // A writer retrying a batch the disk refused (a full disk) retries until
    // told to stop: waiting for it would hold the shutdown until space came
    // back. What it holds was never acknowledged (replies wait for the log).
    if (!healthy_) break;
    if (writer_->busy()) {
      writer_->wait_idle();
      WriterReport report = writer_->take_report();
      apply(report, &ignored);
      if (report.failure) break;  // the disk refuses: give up rather than hang
      continue;
    }
    if (!pending_.chunks.empty() || !pending_.delete_first_seqs.empty()) {
      flush();
      continue;
    }
    break;
  }
  Status s = writer_->stop();
  WriterReport last = writer_->take_report();
  apply(last, &ignored);
  // Everything is durable: the next open need not fear lost records. (If
  // this fails, it only costs the next run a jump in job ids.) CLOSED first:
  // where the log ends now, so that the next open can tell it whole.
  if (s.ok() && healthy_ && fs_ != nullptr && (!after_lossy_crash_ || records_appended_ > 0)) {
    (void)write_closed_marker(*fs_, options_.dir, last_seq());
    if (remove_run_marker(*fs_, options_.dir).ok()) (void)remove_newest_marker(*fs_, options_.dir);
  }
  if (s.ok() && healthy_ && fs_ != nullptr && backup_marker_ && records_appended_ > 0) {
    (void)remove_backup_marker(*fs_, options_.dir);
  }
  if (s.ok() && directory_gone_) {
    return Status::io_error(last_error_ + ": what was written since went to files no start finds");
  }
  return s;
}

}  // namespace tq::wal
