// Fuzzes what follows a QUEUE record's fixed settings: the later groups
// (delivery limits, dead-letter retention, a timed pause) and the
// schedules. wal_replay_fuzz cannot reach these bytes: a mutated record
// fails its checksum first. Whatever the bytes, replay refuses the record
// or takes it, and the engine then runs 1,200 years of its timers without
// a sanitizer report or an endless sweep.
#include <cstddef>
#include <cstdint>
#include <string>

#include "server/engine/engine.h"
#include "server/journal.h"
#include "wal/coding.h"
#include "wal/record.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A QUEUE record up to its flags, as encode_queue writes it: queue 1, "q",
  // the default settings.
  std::string body;
  tq::wal::put_varint(body, 1);
  tq::wal::put_bytes(body, "q");
  for (uint64_t v : {30'000, 0, 0, 2'000, 3'600'000, 0, 300'000, 0}) tq::wal::put_varint(body, v);
  tq::wal::put_signed_varint(body, 0);
  body += '\0';
  body.append(reinterpret_cast<const char*>(data), size);

  tq::engine::ManualClock clock;
  tq::engine::Engine engine(clock, tq::engine::EngineLimits{}, tq::engine::QueueSettings{});
  tq::server::Journal journal(engine, 2.0);
  const auto queue_record = static_cast<uint8_t>(tq::server::RecordType::kQueue);
  (void)journal.apply(tq::wal::Record{queue_record, 1, body}, 1);
  engine.finish_restore();
  for (int i = 0; i < 3; ++i) {
    clock.advance_ms(400LL * 366 * 86'400'000);
    engine.expire_due(1'000);
  }
  return 0;
}
