// Inspection and repair: queue settings, pause, purge, drop, deleting one
// job, kicking dead letters back, sending a dead-letter queue's jobs back
// where they died (REDRIVE), and peeking at any state in order.
#include <algorithm>

#include "server/engine/engine.h"

namespace tq::engine {

Status Engine::configure(std::string_view queue_name, const QueueSettings& settings) {
  Result<Queue*> found = queue_or_error(queue_name);
  if (!found.ok()) return found.error();
  Queue* queue = found.value();
  if (queue->settings == settings) return Ok{};
  const bool new_rate = settings.rate_limit != queue->settings.rate_limit ||
                        settings.rate_window_ms != queue->settings.rate_window_ms;
  queue->settings = settings;
  settings_changed(queue);
  if (new_rate) fill_rate(*queue, clock_.now_ms());
  if (observer_) observer_->queue_saved(*queue);
  reschedule(queue);  // the dedup window may have moved
  // A higher max_leased or rate limit may let waiting workers in.
  if (queue->waiters > 0 && can_deliver(*queue)) signal_ready(queue);
  return Ok{};
}

Status Engine::set_paused(std::string_view queue_name, bool paused, int64_t resume_at_ms) {
  Result<Queue*> found = queue_or_error(queue_name);
  if (!found.ok()) return found.error();
  apply_pause(found.value(), paused, paused ? resume_at_ms : 0);
  return Ok{};
}

void Engine::apply_pause(Queue* queue, bool paused, int64_t resume_at_ms) {
  if (queue->paused == paused && queue->resume_at_ms == resume_at_ms) return;
  queue->paused = paused;
  queue->resume_at_ms = resume_at_ms;
  settings_changed(queue);
  if (observer_) observer_->queue_saved(*queue);
  // A timed pause has its end in the timer heap; a paused queue needs no
  // timer for its rate limit, a resumed one may.
  reschedule(queue);
  if (queue->waiters > 0 && can_deliver(*queue)) signal_ready(queue);
}

Result<size_t> Engine::purge(std::string_view queue_name) {
  Result<Queue*> found = queue_or_error(queue_name);
  if (!found.ok()) return found.error();
  Queue* queue = found.value();
  size_t removed = queue->ready.size() + queue->held.size() + queue->delayed.size();
  if (removed == 0) return size_t{0};
  if (observer_) observer_->queue_purged(*queue);
  dispose_waiting(queue);
  queue->counters.deleted += removed;
  counters_.deleted += removed;
  reschedule(queue);
  return removed;
}

Result<size_t> Engine::purge_dead(std::string_view queue_name, size_t max) {
  Result<Queue*> found = queue_or_error(queue_name);
  if (!found.ok()) return found.error();
  Queue* queue = found.value();
  // One REMOVE record each, as DELETE writes, not a PURGE record: a tqd
  // from before this would replay that as a purge of the ready jobs.
  // From the back of the heap's array: a leaf, so no other job moves (from
  // the top, each took a sift through a million-job heap: 55% of the time).
  size_t removed = 0;
  while (removed < max && !queue->dead.empty()) {
    destroy(queue->dead.items().back());
    ++removed;
  }
  queue->counters.deleted += removed;
  counters_.deleted += removed;
  reschedule(queue);
  return removed;
}

Status Engine::drop(std::string_view queue_name) {
  Result<Queue*> found = queue_or_error(queue_name);
  if (!found.ok()) return found.error();
  // Its jobs, leased and dead ones too, are deleted with it (jobs_deleted_total
  // says so); the queue's own counters go with the queue. Not in
  // restore_drop_queue: a replay counts nothing.
  counters_.deleted += found.value()->job_count();
  drop_queue(found.value(), true);
  return Ok{};
}

Result<const Schedule*> Engine::schedule(std::string_view queue_name, const ScheduleSpec& spec) {
  auto bad = [](std::string msg) { return make_error(Errc::kBadArgument, std::move(msg)); };
  // What needs no queue is checked before auto_create makes one: a
  // SCHEDULE refused for a bad name or timetable left an empty queue.
  if (!valid_key(spec.name)) return invalid_schedule_name(spec.name);
  if (!spec.job.group.empty() && !valid_key(spec.job.group)) {
    return bad("a group name is 1-200 printable characters without spaces");
  }
  Schedule s;
  s.name = std::string(spec.name);
  if (spec.every_ms > 0) {
    if (spec.every_ms < 1'000 || spec.every_ms > kMaxSettingDurationMs) {
      return bad("EVERY takes 1s to 30d; for longer, CRON");
    }
    s.every_ms = spec.every_ms;
  } else {
    std::string why;
    s.cron = CronSpec::parse(spec.cron, &why);
    if (!s.cron) return bad(why);
  }
  const int64_t now = clock_.now_ms();
  s.next_ms = s.next_after(now);
  if (s.next_ms == INT64_MAX) return bad("cron '" + s.cron->text() + "' never fires");
  // As a PUT: with auto_create on, a schedule makes its queue, once it
  // passed the checks below (a new queue's are of the default settings and
  // no schedules).
  Result<Queue*> found = queue_to_write(queue_name);
  if (!found.ok()) return found.error();
  Queue* queue = found.value();
  const int64_t delay_ms = queue != nullptr ? queue->settings.delay_ms : defaults_.delay_ms;
  // As PUT refuses one job that could never be delivered: every firing
  // would be refused (enqueue), with nothing but a counter to say why.
  if (spec.job.ttl_ms > 0 && delay_ms >= spec.job.ttl_ms) {
    return bad("its jobs' TTL (" + std::to_string(spec.job.ttl_ms) +
               "ms) ends no later than they are due (" + std::to_string(delay_ms) +
               "ms after each firing, the queue's delay): they could never be delivered");
  }
  s.payload = std::string(spec.payload);
  s.priority = spec.job.priority;
  s.ttl_ms = spec.job.ttl_ms;
  s.max_attempts = spec.job.max_attempts;
  s.group = std::string(spec.job.group);
  size_t payload_bytes = s.payload.size();
  if (queue != nullptr) {
    for (const auto& [name, other] : queue->schedules) {
      if (name != s.name) payload_bytes += other.payload.size();
    }
  }
  if (payload_bytes > kMaxSchedulePayloadBytes) {
    return make_error(Errc::kLimit, "the schedules of queue " + quoted(queue_name) +
                                        " would hold " + std::to_string(payload_bytes) +
                                        " payload bytes, over 1 MiB; keep schedule payloads "
                                        "small (a reference to the data, not the data)");
  }
  const uint64_t held_elsewhere = payload_bytes_ + schedule_payload_bytes_ -
                                  (queue != nullptr ? queue->schedule_payload_bytes : 0);
  if (!spec.declared && limits_.max_payload_total > 0 &&
      held_elsewhere + payload_bytes > limits_.max_payload_total) {
    return make_error(Errc::kFull, "with it the server would hold " +
                                       std::to_string(held_elsewhere + payload_bytes) +
                                       " payload bytes in jobs and schedules, over its limit "
                                       "(limits.max_payload_total, " +
                                       std::to_string(limits_.max_payload_total) + ")");
  }
  if (queue == nullptr) {
    Result<Queue*> made = create_queue(queue_name);
    if (!made.ok()) return made.error();  // limits.max_queues
    queue = made.value();
  }
  auto it = queue->schedules.find(s.name);
  if (it == queue->schedules.end()) {
    if (queue->schedules.size() >= kMaxSchedulesPerQueue) {
      return make_error(Errc::kLimit, "queue '" + queue->name + "' holds " +
                                          std::to_string(kMaxSchedulesPerQueue) +
                                          " schedules, the most a queue takes");
    }
    it = queue->schedules.emplace(s.name, std::move(s)).first;
  } else {
    s.fired = it->second.fired;  // the same schedule, changed
    it->second = std::move(s);
  }
  schedules_changed(queue);
  return &it->second;
}

Status Engine::unschedule(std::string_view queue_name, std::string_view name) {
  Result<Queue*> found = queue_or_error(queue_name);
  if (!found.ok()) return found.error();
  Queue* queue = found.value();
  // A name no schedule can have is the client's mistake, as in SCHEDULE,
  // not a schedule that went away.
  if (!valid_key(name)) return invalid_schedule_name(name);
  auto it = queue->schedules.find(std::string(name));
  if (it == queue->schedules.end()) {
    return make_error(Errc::kNotFound,
                      "no schedule " + quoted(name) + " in queue '" + queue->name + "'");
  }
  queue->schedules.erase(it);
  schedules_changed(queue);
  return Ok{};
}

Status Engine::remove(uint64_t id) {
  Job* job = live_job(id);
  if (job == nullptr) {
    return make_error(Errc::kNotFound, "no job " + std::to_string(id) +
                                           " (never existed, or already finished)");
  }
  Queue* queue = job->queue;
  ++queue->counters.deleted;
  ++counters_.deleted;
  destroy(job);
  reschedule(queue);
  return Ok{};
}

Result<size_t> Engine::kick(std::string_view queue_name, size_t max) {
  Result<Queue*> found = queue_or_error(queue_name);
  if (!found.ok()) return found.error();
  Queue* queue = found.value();
  size_t kicked = 0;
  while (kicked < max) {
    Job* job = queue->dead.top();  // the longest dead first
    if (job == nullptr) break;
    revive(job);
    ++kicked;
  }
  reschedule(queue);
  return kicked;
}

Result<size_t> Engine::redrive(std::string_view queue_name, size_t max) {
  Result<RedriveChoice> chosen = redrive_candidates(queue_name, max != SIZE_MAX);
  if (!chosen.ok()) return chosen.error();
  size_t moved = 0;
  while (moved < max && !chosen.value().done()) {
    moved += redrive_next(queue_name, chosen.value(), max - moved).value();
  }
  return moved;
}

Result<Engine::RedriveChoice> Engine::redrive_candidates(std::string_view queue_name,
                                                         bool oldest_first) const {
  Result<Queue*> found = queue_or_error(queue_name);
  if (!found.ok()) return found.error();
  const Queue* queue = found.value();
  RedriveChoice choice;
  std::vector<uint64_t>& ids = choice.ids;
  ids.reserve(queue->ready.size() + queue->delayed.size() + queue->dead.size());
  queue->ready.append_returned_ids(&ids);
  append_job_ids(queue->delayed.items(), &ids);
  append_job_ids(queue->dead.items(), &ids);
  choice.fifo_from = ids.size();
  queue->ready.append_fifo_ids(&ids);
  if (oldest_first) {
    // Sorted anyway: a repeated id is dropped here instead.
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    choice.fifo_from = ids.size();
  }
  return choice;
}

bool Engine::RedriveChoice::among_heap_ids(uint64_t id) {
  const auto heap_end = ids.begin() + static_cast<ptrdiff_t>(fifo_from);
  if (!heap_ids_sorted_) {
    std::sort(ids.begin(), heap_end);  // all tried already: their order is spent
    heap_ids_sorted_ = true;
  }
  return std::binary_search(ids.begin(), heap_end, id);
}

Result<size_t> Engine::redrive_next(std::string_view queue_name, RedriveChoice& choice,
                                    size_t max) {
  Result<Queue*> found = queue_or_error(queue_name);
  if (!found.ok()) return found.error();
  Queue* queue = found.value();
  const size_t end = choice.next + std::min(max, choice.ids.size() - choice.next);
  size_t moved = 0;
  OriginCache origins;
  for (size_t i = choice.next; i < end; ++i) {
    // Any id of the queue's, not checked yet (redrive_candidates), and
    // perhaps some time ago: it may have been acked, leased, deleted or
    // moved since, or been a job that was put in this queue.
    Job* job = live_job(choice.ids[i]);
    if (job == nullptr || job->queue != queue) continue;
    const bool from_fifo = i >= choice.fifo_from;
    const bool still_in_fifo = job->state == JobState::kReady && ReadySet::in_fifo(*job);
    if (from_fifo && !still_in_fifo && choice.among_heap_ids(job->id)) continue;
    Queue* origin = redrive_target(*job, queue, origins);
    if (origin == nullptr) continue;
    send_back(job, origin);
    ++moved;
  }
  choice.next = end;
  reschedule(queue);
  return moved;
}

Queue* Engine::redrive_target(const Job& job, const Queue* queue, OriginCache& origins) const {
  if (job.state != JobState::kReady && job.state != JobState::kDelayed &&
      job.state != JobState::kDead) {
    return nullptr;  // leased (a worker has it), or held in a group
  }
  const JobExtras* extras = jobs_.extras(job);
  if (extras == nullptr || extras->origin.empty()) return nullptr;
  // Dead letters mostly come from one queue or a few: one lookup by name
  // for each run of the same origin, not one a job.
  if (origins.queue == nullptr || extras->origin != origins.queue->name) {
    origins.queue = find_queue(extras->origin);
    if (origins.queue == nullptr) return nullptr;  // gone: the job stays
  }
  return origins.queue != queue ? origins.queue : nullptr;
}

void Engine::send_back(Job* job, Queue* origin) {
  ++job->queue->counters.redriven;
  ++origin->counters.redriven_in;
  ++counters_.redriven;
  unlink(job);
  JobExtras* extras = jobs_.extras(*job);  // it has them: its origin
  extras->origin.clear();                  // a fresh start: it may die and move again
  extras->reason.clear();
  extras->expires_at_ms = 0;  // the dead-letter queue's ttl stays there
  start_over_in(job, origin);
}

Status Engine::kick_job(uint64_t id) {
  Job* job = live_job(id);
  if (job == nullptr) {
    return make_error(Errc::kNotFound,
                      "no job " + std::to_string(id) + " (never existed, or already finished)");
  }
  if (job->state == JobState::kDelayed) {
    // As beanstalkd's kick-job: ready now rather than when its delay (a
    // DELAY, an AT, a retry's backoff) ends. Nothing else changes: not its
    // attempts (a retry stays a retry), not its TTL.
    unlink(job);
    make_ready(job, clock_.now_ms());
    if (observer_) observer_->job_released(*job);
    ++job->queue->counters.kicked;
    ++counters_.kicked;
    reschedule(job->queue);
    return Ok{};
  }
  if (job->state != JobState::kDead) {
    return make_error(Errc::kNotFound, "job " + std::to_string(id) + " is " +
                                           job_state_name(job->state) +
                                           ", not dead or delayed: KICK <id> moves those to ready");
  }
  revive(job);
  reschedule(job->queue);
  return Ok{};
}

void Engine::revive(Job* job) {
  unlink(job);
  job->attempts = 0;  // a fresh start: its old failures are why it died
  ++job->kicks;       // ... and its next delivery is not its first one again
  JobExtras* extras = jobs_.extras(*job);  // a dead job has them: its reason
  extras->reason.clear();
  // A KICK is an operator's explicit retry, so the job's TTL no longer
  // applies: kept, a job that died after its TTL would expire at once and
  // the KICK would delete it. A release record would bring the old expiry
  // back on replay, so such a job is recorded whole.
  const bool had_ttl = extras->expires_at_ms > 0;
  extras->expires_at_ms = 0;
  make_ready(job, clock_.now_ms());
  if (observer_) {
    if (had_ttl) {
      observer_->job_saved(*job);
    } else {
      observer_->job_released(*job);
    }
  }
  ++job->queue->counters.kicked;
  ++counters_.kicked;
}

Status Engine::peek(std::string_view queue_name, PeekState state, size_t n,
                    const std::function<void(const Job&)>& f) const {
  Result<Queue*> found = queue_or_error(queue_name);
  if (!found.ok()) return found.error();
  const Queue* queue = found.value();
  auto visit = [&](Job* job) { f(*job); };
  switch (state) {
    case PeekState::kReady: queue->ready.first(n, visit); break;
    case PeekState::kDelayed: queue->delayed.first(n, visit); break;
    case PeekState::kLeased: queue->leased.first(n, visit); break;
    case PeekState::kDead: queue->dead.first(n, visit); break;
    case PeekState::kHeld:
      queue->held.first(n, visit);
      break;
  }
  return Ok{};
}

}  // namespace tq::engine
