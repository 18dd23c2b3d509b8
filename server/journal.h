// The journal: turns engine changes into log records, and log records back
// into engine state at start-up. It also decides what in the log is still
// live, and so which segments can go and when to compact.
//
// Liveness: every live job and queue remembers the segment holding its
// latest full record (JOB or QUEUE), and each segment counts how many such
// objects it holds. The oldest segments are deleted once their count is
// zero. When the log grows past `compaction_ratio` times the live bytes, a
// sweep re-records every live object that sits in an older segment, a
// bounded number per loop iteration, so those segments empty and go.
//
// The record types and bodies are documented in wal/FORMAT.md.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "server/engine/engine.h"
#include "wal/log.h"

namespace tq::server {

enum class RecordType : uint8_t {
  kMeta = 1,
  kQueue = 2,
  kQueueDrop = 3,
  kJob = 4,
  kLease = 5,
  kRelease = 6,
  kRemove = 7,
  kDead = 8,
  kPurge = 9,
  kDedup = 10,
  kScheduleFired = 11,
};

struct JournalStats {
  uint64_t live_objects = 0;
  uint64_t live_bytes = 0;        // bytes of the latest full record of each live object
  uint64_t compactions = 0;       // sweeps finished
  uint64_t moved_records = 0;     // full records re-written by sweeps
  bool compacting = false;
};

class Journal final : public engine::ChangeObserver {
 public:
  Journal(engine::Engine& engine, double compaction_ratio);
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // --- Start-up: feed every replayed record, then finish. ---
  wal::Status apply(const wal::Record& record, uint32_t segment);
  // After a recovery dropped records (before attach): moves the next job id
  // past every id a lost JOB record may have held, so that no id a client
  // was given is issued again. `seq_bound` is wal::OpenSummary::seq_bound.
  void skip_lost_ids(uint64_t seq_bound);
  // Ends replay; from here on every engine change is appended to `log`.
  void attach(wal::Log& log);
  // Appends the id counters (a META record) now: after skip_lost_ids, so
  // that the skip is in the log before anything else is (wal::Log keeps its
  // run marker until a run that follows a lossy crash has appended).
  void record_counters();

  // Once per loop iteration: deletes segments that hold nothing live, starts
  // a compaction sweep when the log is too big, and advances one under way.
  void maintain();
  // Re-records every live object now (after a recovery dropped damage), so
  // that every older segment can be deleted.
  void compact_all();

  JournalStats stats() const;

  // Free bytes on the log's disk, as last measured (unknown: no limit). A
  // sweep re-writes live records before old segments can go: one does not
  // start unless they fit in the current segment's room and the disk's,
  // or it would fill the disk it means to free. (Segments that hold
  // nothing live are deleted whatever the room; one long-lived record, a
  // queue's, keeps its segment and every later one until a sweep moves it,
  // which next_sweep_cut sees to.)
  void set_disk_free(uint64_t bytes) { disk_free_ = bytes; }

  // The newest record that brought a job or queue into being (or re-wrote
  // one): a reply that shows a job needs the log durable this far, so that
  // no worker ever sees an id a crash could take back and issue again.
  uint64_t newest_creation_seq() const { return newest_creation_seq_; }

  // engine::ChangeObserver
  void queue_saved(engine::Queue& queue) override;
  void schedules_fired(engine::Queue& queue,
                       const std::vector<const engine::Schedule*>& fired) override;
  void queue_dropped(engine::Queue& queue) override;
  void queue_purged(engine::Queue& queue) override;
  void job_saved(engine::Job& job) override;
  void job_leased(engine::Job& job) override;
  void job_released(engine::Job& job) override;
  void job_dead(engine::Job& job) override;
  void job_removed(engine::Job& job, bool in_bulk) override;
  void dedup_saved(engine::Queue& queue, const std::string& key, engine::DedupEntry& entry) override;
  void dedup_forgotten(engine::Queue& queue, engine::DedupEntry& entry) override;

 private:
  // Appends a record (or, during replay, notes the segment being replayed).
  uint32_t record(RecordType type, std::string_view body, std::string_view body_tail = {});
  void ref(uint32_t* slot, uint32_t segment, uint64_t bytes);
  void unref(uint32_t segment, uint64_t bytes);
  void delete_dead_segments();
  bool sweep_step(size_t budget);
  // Moves dedup keys in old segments forward; false when all are visited.
  bool sweep_keys(size_t budget);
  // Whether the last sweep's work is done: every segment below its cut is
  // deleted, or still holds something the sweep missed (then sweep again).
  bool last_sweep_settled() const;
  // Whether re-writing `bytes` fits the current segment's room and the
  // disk's free segments (set_disk_free).
  bool room_for(uint64_t bytes) const;
  // Where the next sweep should stop (records in segments below it move
  // forward): the current segment (the whole log, past compaction_ratio),
  // the oldest one's successor (that segment alone, when it is nearly
  // dead and holds dead ones behind it, or only the current one while the
  // disk reserve refuses new jobs), or 0: none now.
  uint32_t next_sweep_cut() const;
  // A name a QUEUE record may hold: a valid one, or WAIT or COUNT, which
  // older tqds took (warned about once a replay).
  bool logged_queue_name(std::string_view name);

  engine::Engine& engine_;
  const double compaction_ratio_;
  wal::Log* log_ = nullptr;         // nullptr while replaying
  uint32_t replay_segment_ = 0;
  std::set<std::string> zone_warned_;  // "<queue> <schedule>", warned once a replay
  std::set<std::string, std::less<>> keyword_queues_warned_;  // likewise, queues named WAIT/COUNT
  uint64_t meta_seq_ = 0;           // of the last META record replayed (0: none)
  uint64_t meta_next_job_id_ = 1;   // the next job id it held
  uint32_t last_segment_ = 0;       // to write a META record at the head of each segment
  uint64_t newest_creation_seq_ = 0;
  std::map<uint32_t, uint64_t> live_in_segment_;  // segment ordinal -> live objects
  uint64_t live_objects_ = 0;
  uint64_t live_bytes_ = 0;
  uint64_t disk_free_ = UINT64_MAX;
  std::string scratch_;             // reused record body buffer

  // The sweep under way: everything in a segment below cut_ moves forward.
  bool sweeping_ = false;
  uint32_t cut_ = 0;              // of the sweep under way, or of the last one
  engine::JobCursor cursor_;
  std::string key_cursor_queue_;   // the sweep's place among dedup keys: a queue,
  size_t key_cursor_bucket_ = 0;   // the next bucket of its key map,
  size_t key_cursor_buckets_ = 0;  // and the map's bucket count when its walk began
  bool keys_done_ = false;
  uint64_t compactions_ = 0;
  uint64_t moved_ = 0;
};

}  // namespace tq::server
