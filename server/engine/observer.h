// What the engine tells whoever keeps its changes (the journal): every
// change to a job or a queue, as it happens, in order. The engine neither
// knows nor cares whether anyone listens.
//
// "saved" means the object's whole state should be recorded (it was created,
// or it is being moved forward by compaction); the other calls change one
// thing about an object whose whole state was recorded before.
#pragma once

namespace tq::engine {

struct Job;
struct Queue;

class ChangeObserver {
 public:
  virtual ~ChangeObserver() = default;
  virtual void queue_saved(Queue& queue) = 0;
  virtual void queue_dropped(Queue& queue) = 0;
  virtual void job_saved(Job& job) = 0;
  virtual void job_leased(Job& job) = 0;
  virtual void job_released(Job& job) = 0;  // back to ready (or delayed): lease expired
  virtual void job_removed(Job& job) = 0;   // gone for good: acked
};

}  // namespace tq::engine
