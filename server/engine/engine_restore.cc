// Replay: rebuilding the engine from log records. These calls trust the log:
// they set state as recorded, without the checks and side effects of the
// live operations, but they report to the observer exactly as the live ones
// do, so the journal's bookkeeping is built the same way both times.
#include <algorithm>

#include "server/engine/engine.h"

namespace tq::engine {

void Engine::restore_ids(uint64_t next_job_id, uint32_t next_queue_number) {
  next_job_id_ = std::max(next_job_id_, next_job_id);
  next_queue_number_ = std::max(next_queue_number_, next_queue_number);
}

Queue* Engine::restore_queue(uint32_t number, std::string_view name, const QueueSettings& settings,
                             bool paused, int64_t resume_at_ms,
                             std::map<std::string, Schedule> schedules) {
  Queue* queue = find_queue_by_number(number);
  if (Queue* holder = find_queue(name); holder != nullptr && holder != queue) {
    // A name is used again only after DROP, so the queue that still holds
    // it was dropped and its QUEUE_DROP record lost (--wal-recover skipped
    // it): drop it now, as the record would have.
    restore_drop_queue(holder->number);
  }
  if (queue == nullptr) {
    queue = add_queue(number, name, settings);
  } else {
    if (queue->name != name) {
      // A placeholder gets its real name (a queue is never renamed otherwise).
      auto node = queues_.extract(queue->name);
      node.key() = std::string(name);
      queue->name = std::string(name);
      queues_.insert(std::move(node));
    }
    queue->settings = settings;
    queue->placeholder = false;
    fill_rate(*queue, clock_.now_ms());
  }
  queue->paused = paused;
  queue->resume_at_ms = paused ? resume_at_ms : 0;  // past already: the first sweep resumes it
  // Due already (tqd was down when it came): the first sweep fires it. One
  // that slept (its zone was missing when it was last logged) and can be
  // read now wakes at its next time.
  for (auto& [key, s] : schedules) {
    if (s.next_ms == INT64_MAX && s.cron && !s.cron->zone_missing()) {
      s.next_ms = s.cron->next_after(clock_.now_ms());
    }
  }
  queue->schedules = std::move(schedules);
  count_schedule_payloads(queue);
  queue->refresh_schedule_at();
  settings_changed(queue);
  next_queue_number_ = std::max(next_queue_number_, number + 1);
  if (observer_) observer_->queue_saved(*queue);
  reschedule(queue);
  return queue;
}

void Engine::restore_drop_queue(uint32_t number) {
  if (Queue* queue = find_queue_by_number(number)) drop_queue(queue, false);
}

void Engine::restore_purge(uint32_t number) {
  Queue* queue = find_queue_by_number(number);
  if (queue == nullptr) return;
  if (observer_) observer_->queue_purged(*queue);
  destroy_waiting(queue);
  reschedule(queue);
}

void Engine::destroy_waiting(Queue* queue) {
  if (queue->groups.empty()) {
    // No group (or DROP, which forgot them): removing a job moves no other,
    // so each set is emptied whole, its jobs destroyed as they come out.
    // Popped one at a time, a PURGE of a million ready jobs held every
    // client for 164 ms (bench/stall.sh).
    // Only waiting jobs (ready, held, delayed) are in the TTL heap: all go.
    queue->ttl.clear();
    auto destroy = [this](Job* job) { destroy_taken(job); };
    queue->ready.take_all(destroy);
    queue->delayed.take_all(destroy);
    queue->held.take_all(destroy);
    return;
  }
  // Destroying a group's job may move the next from held to ready: take
  // from all three until none is left.
  for (;;) {
    Job* job = queue->ready.top();
    if (job == nullptr) job = queue->held.top();
    if (job == nullptr) job = queue->delayed.top();
    if (job == nullptr) return;
    destroy(job, true);
  }
}

Queue* Engine::queue_for_restore(uint32_t number) {
  if (Queue* queue = find_queue_by_number(number)) return queue;
  // Compaction can move a queue's record after its jobs' and keys': they wait
  // in a placeholder that the QUEUE record names later. "#N" cannot be a real
  // queue name, so it cannot collide with one; nor can it be written to the
  // log, so one left at the end must be given a real name (name_placeholders).
  Queue* queue = add_queue(number, "#" + std::to_string(number), defaults_);
  queue->placeholder = true;
  next_queue_number_ = std::max(next_queue_number_, number + 1);
  return queue;
}

Job* Engine::restore_job(const JobSnapshot& snap) {
  Queue* queue = queue_for_restore(snap.queue_number);
  // Ids only grow, so a job beyond every id seen so far is new: no lookup
  // (at a million jobs the lookups were a fifth of the replay).
  Job* job = snap.id >= next_job_id_ ? nullptr : jobs_.find(snap.id);
  if (job != nullptr && (job->queue != queue || job->payload() != snap.payload)) {
    // A job moved to its queue's dead_letter_queue: the newest record wins.
    // (A snapshot never changes a job's payload; if one did, so would it.)
    destroy(job);
    job = nullptr;
  }
  if (job == nullptr) {
    job = jobs_.emplace(snap.id, queue, snap.payload);
    payload_bytes_ += snap.payload.size();
  } else {
    unlink(job);
    // The newest record wins: a KICK records a job whose TTL it cleared
    // and whose death is over.
    if (JobExtras* extras = jobs_.extras(*job)) {
      extras->expires_at_ms = snap.expires_at_ms;
      extras->reason.clear();
    }
  }
  job->attempts = snap.attempts;
  job->kicks = snap.kicks;
  job->priority = snap.priority;
  set_extras(*job, snap.expires_at_ms, snap.max_attempts, snap.key, snap.group);
  if (!snap.origin.empty()) {
    // It moved here from the queue it died in: why, and from where.
    JobExtras& extras = jobs_.ensure_extras(*job);
    extras.origin = std::string(snap.origin);
    if (snap.state != JobState::kDead) extras.reason = std::string(snap.reason);
  }
  // Logs from before ready times were kept say 0: the wait counts from now.
  const int64_t ready_since = snap.deadline_ms > 0 ? snap.deadline_ms : clock_.coarse_now_ms();
  switch (snap.state) {
    case JobState::kReady: make_ready(job, ready_since); break;
    case JobState::kDelayed: make_delayed(job, snap.deadline_ms); break;
    // Until its lease ends, as before the restart (0 in older logs: not
    // known, and end_unknown_leases gives it back).
    case JobState::kLeased:
      make_leased(job, snap.deadline_ms);
      break;
    case JobState::kDead:
      put_dead(job, snap.reason, snap.deadline_ms);
      break;
    case JobState::kHeld:
      make_ready(job, ready_since);
      break;  // the log never says held
  }
  next_job_id_ = std::max(next_job_id_, snap.id + 1);
  if (!snap.key.empty() && !queue->schedules.empty()) {
    // A job put ready was ready from when it was put (a firing's too; a
    // compacted copy comes after the schedule's own record, and changes
    // nothing). A delayed one's put time is not known.
    const bool put_ready = snap.state == JobState::kReady && snap.deadline_ms > 0;
    restore_firing(queue, snap.key, snap.key_expires_ms, put_ready ? snap.deadline_ms : INT64_MIN);
  }
  // The record of the put that added the job's key stands for the key too.
  if (snap.key_expires_ms > clock_.now_ms() && !snap.key.empty()) {
    remember_key(queue, snap.key, snap.id, snap.key_expires_ms, true);
  }
  if (observer_) observer_->job_saved(*job);
  reschedule(queue);
  return job;
}

// A firing's job and the schedule's next time are two records (JOB, then
// SCHEDULE_FIRED), and a crash can keep the first and lose the second. The
// job's key names the firing, so its record moves the schedule on by
// itself. Before, the restart fired that time again, and the firing's key
// made the second job a duplicate only while it was kept: ten periods, a
// day at most. A key that is no schedule's next time (the usual case: the
// SCHEDULE_FIRED record, or a later copy of the queue's record, already
// moved it on) changes nothing; so does a key not kept until that time
// (a PUT's with that key, long before: live, the firing would have come).
// Engine::enqueue does the same for a PUT under such a key, so that a
// restart finds the schedule as the server had it.
//
// A firing that came late (tqd was down, the clock jumped) stood for every
// time up to when it was put: the schedule moves on past that, as
// fire_schedules moved it. Moved on by one time only, it went to a time
// that firing covered, and the restart put a second job for the same
// missed times.
void Engine::restore_firing(Queue* queue, std::string_view key, int64_t key_expires_ms,
                            int64_t put_at_ms) {
  if (!key.starts_with("schedule:")) return;
  for (auto& [name, s] : queue->schedules) {
    if (s.next_ms == INT64_MAX || key_expires_ms <= s.next_ms) continue;
    if (firing_key(name, s.next_ms) != key) continue;
    s.next_ms = s.next_after(std::max(s.next_ms, put_at_ms));
    ++s.fired;
    queue->refresh_schedule_at();
    return;
  }
}

void Engine::restore_lease(uint64_t id, uint32_t attempts, int64_t ends_ms) {
  Job* job = jobs_.find(id);
  if (job == nullptr) return;  // finished later, and compacted away
  unlink(job);
  job->attempts = attempts;
  make_leased(job, ends_ms);
  reschedule(job->queue);
}

void Engine::restore_release(uint64_t id, uint32_t attempts, int64_t ready_at_ms,
                             int64_t ready_since_ms) {
  Job* job = jobs_.find(id);
  if (job == nullptr) return;
  unlink(job);
  job->attempts = attempts;
  // A dead job released is a KICK's: its death is over, and its next
  // delivery is not its first (a late ACK is told so, as before the
  // restart). (A job that moved to a dead_letter_queue keeps why it died
  // there, whatever it goes through.)
  if (job->state == JobState::kDead) {
    ++job->kicks;
    if (JobExtras* extras = jobs_.extras(*job); extras != nullptr) extras->reason.clear();
  }
  if (ready_at_ms > 0) {
    make_delayed(job, ready_at_ms);
  } else {
    make_ready(job, ready_since_ms > 0 ? ready_since_ms : clock_.coarse_now_ms());
  }
  reschedule(job->queue);
}

void Engine::restore_dead(uint64_t id, std::string_view reason, int64_t died_at_ms) {
  Job* job = jobs_.find(id);
  if (job == nullptr) return;
  unlink(job);
  put_dead(job, reason, died_at_ms);
  reschedule(job->queue);
}

void Engine::restore_remove(uint64_t id) {
  if (Job* job = jobs_.find(id)) {
    Queue* queue = job->queue;
    destroy(job);
    reschedule(queue);
  }
}

void Engine::restore_dedup(uint32_t queue_number, std::string_view key, uint64_t job_id,
                           int64_t expires_ms) {
  if (expires_ms <= clock_.now_ms()) return;  // long gone
  Queue* queue = queue_for_restore(queue_number);
  remember_key(queue, key, job_id, expires_ms);
  reschedule(queue);
}

void Engine::restore_schedule_fired(uint32_t queue_number, std::string_view name, int64_t next_ms,
                                    uint64_t fired) {
  Queue* queue = find_queue_by_number(queue_number);
  if (queue == nullptr) return;
  auto it = queue->schedules.find(std::string(name));
  if (it == queue->schedules.end()) return;
  Schedule& s = it->second;
  s.fired = fired;
  // One asleep (a cron time zone this host's tzdata lacks, restore_queue)
  // stays asleep: its next time here was worked out where the zone was known.
  if (!(s.next_ms == INT64_MAX && s.cron && s.cron->zone_missing())) s.next_ms = next_ms;
  queue->refresh_schedule_at();
  reschedule(queue);
}

void Engine::finish_restore() {
  // Keys replay met out of order (moved by compaction) need no sorting:
  // dedup_order keeps them in time order as they come.
  for (auto& [name, queue] : queues_) reschedule(queue.get());
}

size_t Engine::end_unknown_leases() {
  size_t ended = 0;
  for (auto& [name, queue] : queues_) {
    // The leased heap puts the earliest end first: those of 0 (not known).
    for (Job* job = queue->leased.top(); job != nullptr && job->deadline_ms == 0;
         job = queue->leased.top()) {
      give_back(job, std::nullopt, "lease ended by a restart");
      ++ended;
    }
  }
  return ended;
}

size_t Engine::leases_running() const {
  const int64_t now = clock_.now_ms();
  size_t running = 0;
  for (const auto& [name, queue] : queues_) {
    for (const Job* job : queue->leased.items()) running += job->deadline_ms > now ? 1 : 0;
  }
  return running;
}

std::vector<const Queue*> Engine::placeholder_queues() const {
  std::vector<const Queue*> found;
  for (const auto& [name, queue] : queues_) {
    if (queue->placeholder) found.push_back(queue.get());
  }
  return found;
}

std::string Engine::recovered_name(const Queue& placeholder) const {
  const std::string base = "recovered-" + std::to_string(placeholder.number);
  std::string name = base;
  for (int n = 2; find_queue(name) != nullptr; ++n) name = base + "-" + std::to_string(n);
  return name;
}

std::vector<Queue*> Engine::name_placeholders() {
  std::vector<Queue*> named;
  for (const Queue* found : placeholder_queues()) {
    Queue* queue = find_queue_by_number(found->number);
    auto node = queues_.extract(queue->name);
    queue->name = recovered_name(*queue);
    node.key() = queue->name;
    queues_.insert(std::move(node));
    queue->placeholder = false;
    named.push_back(queue);
  }
  return named;
}

bool Engine::visit_jobs(JobCursor& cursor, size_t budget, const std::function<bool(Job&)>& visit) {
  if (cursor.done) return false;
  auto it = cursor.queue.empty() ? queues_.begin() : queues_.lower_bound(cursor.queue);
  if (it != queues_.end() && it->first != cursor.queue) {
    cursor.part = 0;  // the queue we were in is gone: start the next one
    cursor.index = 0;
  }
  while (it != queues_.end() && budget > 0) {
    Queue& queue = *it->second;
    cursor.queue = queue.name;
    // Part 0 is the ready set, walked by position; then the heaps.
    const std::vector<Job*>* heaps[] = {nullptr, &queue.delayed.items(), &queue.leased.items(),
                                        &queue.dead.items(), &queue.held.items()};
    constexpr int kParts = 5;
    while (cursor.part < kParts && budget > 0) {
      const size_t end = cursor.part == 0 ? queue.ready.positions() : heaps[cursor.part]->size();
      while (cursor.index < end && budget > 0) {
        --budget;
        Job* job = cursor.part == 0 ? queue.ready.at(cursor.index) : (*heaps[cursor.part])[cursor.index];
        ++cursor.index;
        if (job != nullptr && !visit(*job)) budget = 0;
      }
      if (cursor.index >= end) {
        ++cursor.part;
        cursor.index = 0;
      }
    }
    if (cursor.part >= kParts) {
      ++it;
      cursor.part = 0;
      cursor.index = 0;
      cursor.queue = it == queues_.end() ? std::string() : it->first;
    }
  }
  if (it == queues_.end()) {
    cursor.done = true;
    return false;
  }
  return true;
}

}  // namespace tq::engine
