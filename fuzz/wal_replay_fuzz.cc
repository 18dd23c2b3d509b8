// Fuzzes start-up from a damaged disk: the bytes become a log segment (after
// a valid header, so the fuzzer gets past it) and tqd's whole replay path
// runs over them — segment reader, journal decoders, engine restore — with
// and without --wal-recover, and with and without a RUNNING marker from
// another boot (a run that a power cut ended, whose lost writes replay cuts
// off), there also as the file before the newest under fsync=never (a cut
// there removes the newest). Damage must come back as a Status, never as a
// crash, a hang or a sanitizer report; and a cut must leave a log that the
// next start reads whole, to the same record.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "server/engine/engine.h"
#include "server/journal.h"
#include "wal/log.h"
#include "wal/memory_file_system.h"
#include "wal/record.h"
#include "wal/run_marker.h"

namespace {

const std::string kDir = "/d/wal";

class QuietReporter final : public tq::wal::Reporter {
 public:
  void dropped(const std::string&, uint64_t, uint64_t, const std::string&) override {}
};

struct Replayed {
  bool opened = false;
  uint64_t records = 0;  // the records replay applied
  bool torn = false;     // it cut a torn write or a power cut's lost writes off
  bool lost_writes = false;
  bool removed = false;  // it removed files as a power cut's lost writes
};

// Opens the log in `fs` as tqd would, and closes it again (cleanly, as a
// stop that follows would: CLOSED is written, RUNNING removed).
Replayed replay(tq::wal::MemoryFileSystem& fs, bool recover) {
  tq::engine::ManualClock clock;
  tq::engine::Engine engine(clock, tq::engine::EngineLimits{}, tq::engine::QueueSettings{});
  tq::server::Journal journal(engine, 2.0);
  tq::wal::LogOptions options;
  options.dir = kDir;
  options.segment_bytes = 1 << 16;
  options.recover = recover;
  options.spare_segment = false;  // replay is the target: no writer-side thread per input
  QuietReporter reporter;
  tq::wal::OpenSummary summary;
  auto log = tq::wal::Log::open(
      fs, options, reporter,
      [&](const tq::wal::Record& r, uint32_t s) { return journal.apply(r, s); }, &summary);
  if (!log) return Replayed{};
  engine.finish_restore();
  engine.expire_due();
  return Replayed{true, summary.records, !summary.torn.empty(), summary.torn_lost_writes,
                  summary.lost_writes_removed};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string segment;
  tq::wal::append_segment_header(segment, tq::wal::SegmentHeader{1, 1});
  segment.append(reinterpret_cast<const char*>(data), size);
  const std::string path = kDir + "/" + tq::wal::segment_file_name(1);
  // Without --wal-recover, with room for the end marker after the input, so
  // that the records of a whole input are replayed rather than refused as a
  // file cut short; with it, as given, so that the cut is reported too.
  for (const bool running : {false, true}) {
    tq::wal::MemoryFileSystem fs;
    fs.set_contents(path, segment + std::string(tq::wal::kEndMarkerRoom, '\0'));
    if (running) {
      (void)tq::wal::write_run_marker(fs, kDir, tq::wal::FsyncPolicy::kAlways);
      fs.lose_unsynced();  // the machine went down (all is synced): another boot
    }
    const Replayed first = replay(fs, false);
    if (first.lost_writes && !running) abort();  // only after a run that did not stop cleanly
    if (first.torn) {
      const Replayed again = replay(fs, false);
      if (!again.opened || again.torn || again.records != first.records) abort();
    }
  }
  {
    // The input as the file the writer was still syncing when the power
    // went (NEWEST names it), with a newer file after it.
    tq::wal::MemoryFileSystem fs;
    fs.set_contents(path, segment + std::string(tq::wal::kEndMarkerRoom, '\0'));
    std::string newest;
    tq::wal::append_segment_header(newest, tq::wal::SegmentHeader{2, 1000});
    tq::wal::append_record(newest, 1, 1000, "x");
    newest.resize(4096, '\0');
    fs.set_contents(kDir + "/" + tq::wal::segment_file_name(1000), newest);
    (void)tq::wal::write_run_marker(fs, kDir, tq::wal::FsyncPolicy::kNever);
    (void)tq::wal::write_newest_marker(fs, kDir, 1);
    fs.lose_unsynced();
    const Replayed first = replay(fs, false);
    if (first.torn && !first.removed) abort();  // the newest file is whole: only a cut before it
    if (first.removed) {
      // Cut in the input or at its clean end, the newer file removed.
      const Replayed again = replay(fs, false);
      if (!again.opened || again.torn || again.removed || again.records != first.records) abort();
    }
  }
  tq::wal::MemoryFileSystem fs;
  fs.set_contents(path, segment);
  if (size % 2 == 1) {
    (void)tq::wal::write_run_marker(fs, kDir, tq::wal::FsyncPolicy::kNever);
    fs.lose_unsynced();
  }
  replay(fs, true);
  return 0;
}
