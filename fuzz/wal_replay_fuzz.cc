// Fuzzes start-up from a damaged disk: the bytes become a log segment (after
// a valid header, so the fuzzer gets past it) and tqd's whole replay path
// runs over them — segment reader, journal decoders, engine restore — with
// and without --wal-recover. Damage must come back as a Status, never as a
// crash, a hang or a sanitizer report.
#include <cstddef>
#include <cstdint>
#include <string>

#include "server/engine/engine.h"
#include "server/journal.h"
#include "wal/log.h"
#include "wal/memory_file_system.h"
#include "wal/record.h"

namespace {

class QuietReporter final : public tq::wal::Reporter {
 public:
  void dropped(const std::string&, uint64_t, uint64_t, const std::string&) override {}
};

void replay(const std::string& segment, bool recover) {
  tq::wal::MemoryFileSystem fs;
  fs.set_contents("/d/wal/" + tq::wal::segment_file_name(1), segment);
  tq::engine::ManualClock clock;
  tq::engine::Engine engine(clock, tq::engine::EngineLimits{}, tq::engine::QueueSettings{});
  tq::server::Journal journal(engine, 2.0);
  tq::wal::LogOptions options;
  options.dir = "/d/wal";
  options.segment_bytes = 1 << 16;
  options.recover = recover;
  options.spare_segment = false;  // replay is the target: no writer-side thread per input
  QuietReporter reporter;
  tq::wal::OpenSummary summary;
  auto log = tq::wal::Log::open(
      fs, options, reporter,
      [&](const tq::wal::Record& r, uint32_t s) { return journal.apply(r, s); }, &summary);
  if (!log) return;
  engine.finish_restore();
  engine.expire_due();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string segment;
  tq::wal::append_segment_header(segment, tq::wal::SegmentHeader{1, 1});
  segment.append(reinterpret_cast<const char*>(data), size);
  // Without --wal-recover, with room for the end marker after the input, so
  // that the records of a whole input are replayed rather than refused as a
  // file cut short; with it, as given, so that the cut is reported too.
  replay(segment + std::string(tq::wal::kEndMarkerRoom, '\0'), false);
  replay(segment, true);
  return 0;
}
