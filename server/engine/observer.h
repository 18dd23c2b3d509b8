// What the engine tells whoever keeps its changes (the journal): every
// change to a job, a queue or a dedup key, as it happens, in order. The
// engine neither knows nor cares whether anyone listens.
//
// "saved" means the object's whole state should be recorded (it was
// created, or it is being moved forward by compaction); the other calls
// change one thing about an object whose whole state was recorded before.
#pragma once

#include <string>
#include <vector>

namespace tq::engine {

struct Job;
struct Queue;
struct DedupEntry;
struct Schedule;

class ChangeObserver {
 public:
  virtual ~ChangeObserver() = default;
  virtual void queue_saved(Queue& queue) = 0;    // created, configured, paused, resumed
  // Schedules of the queue fired: their next time and count of jobs put
  // changed, nothing else about the queue (the jobs are job_saved).
  virtual void schedules_fired(Queue& queue, const std::vector<const Schedule*>& fired) = 0;
  virtual void queue_dropped(Queue& queue) = 0;  // its jobs' removals follow, in bulk
  virtual void queue_purged(Queue& queue) = 0;   // its ready and delayed jobs' removals follow, in bulk
  virtual void job_saved(Job& job) = 0;          // enqueued; KICKed with its TTL cleared
  virtual void job_leased(Job& job) = 0;         // delivered, or its lease extended (TOUCH)
  virtual void job_released(Job& job) = 0;       // back to ready or delayed: lease ran out, NACK, KICK
  virtual void job_dead(Job& job) = 0;           // moved to dead letters (reason in extras)
  // Gone for good (ACK, DELETE, TTL). `in_bulk`: covered by a queue_dropped
  // or queue_purged just before, nothing more to record.
  virtual void job_removed(Job& job, bool in_bulk) = 0;
  virtual void dedup_saved(Queue& queue, const std::string& key, DedupEntry& entry) = 0;
  virtual void dedup_forgotten(Queue& queue, DedupEntry& entry) = 0;
};

}  // namespace tq::engine
