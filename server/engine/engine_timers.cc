// What time does to jobs: leases run out (the job goes back, after its
// backoff, or to dead letters), delayed jobs become ready, TTLs expire, old
// dedup keys are forgotten. Every queue with something timed sits in one
// heap keyed by its earliest deadline, so a tick touches only what is due.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "server/engine/engine.h"

namespace tq::engine {
namespace {

// How long a firing's key is kept: ten periods, but at least a minute and
// at most a day, whatever the queue's dedup_window: an EVERY 1s schedule
// under a 30-day window kept 2.6 million keys, where one key a firing for
// ten periods keeps ten (sixty at the minute's floor). A restart after a
// crash between a firing's job and its schedule's new time no longer needs
// it to put that time only once: replay reads the firing from the job's
// record (restore_firing), however long tqd was down.
int64_t firing_key_ms(int64_t period_ms) {
  constexpr int64_t kMinute = 60'000;
  constexpr int64_t kDay = 86'400'000;
  return std::clamp(period_ms > kDay ? kDay : 10 * period_ms, kMinute, kDay);
}

}  // namespace

std::string firing_key(std::string_view name, int64_t due_ms) {
  constexpr size_t kMaxKeyBytes = 200;
  const std::string tail = "@" + std::to_string(due_ms);
  std::string key = "schedule:";
  if (key.size() + name.size() + tail.size() <= kMaxKeyBytes) {
    key += name;
  } else {
    uint64_t hash = 14695981039346656037ull;
    for (const char c : name) hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
    key += name.substr(0, 100);
    key += '~';
    key += hex;
  }
  return key + tail;
}

size_t Engine::expire_due(size_t budget) {
  const int64_t now = clock_.now_ms();
  size_t changed = 0;
  size_t forgotten = 0;
  auto spent = [&] { return changed + forgotten >= budget; };
  while (!spent() && !timers_.empty() && timers_.top()->timer_at <= now) {
    Queue* queue = timers_.top();
    while (Job* job = spent() ? nullptr : queue->leased.top()) {
      if (job->deadline_ms > now) break;
      ++queue->counters.timed_out;
      ++counters_.timed_out;
      // Ready from when the lease ended, however late this sweep.
      give_back(job, std::nullopt, "lease expired", job->deadline_ms);
      ++changed;
    }
    while (JobExtras* extras = spent() ? nullptr : queue->ttl.top()) {
      if (extras->expires_at_ms > now) break;
      expire_ttl(extras->job);
      ++changed;
    }
    while (Job* job = spent() ? nullptr : queue->delayed.top()) {
      if (job->deadline_ms > now) break;
      const int64_t due = job->deadline_ms;
      unlink(job);
      make_ready(job, due);  // not logged: replay computes it from the ready time
      ++changed;
    }
    changed += discard_old_dead(queue, now, budget - std::min(budget, changed + forgotten));
    if (queue->paused && queue->resume_at_ms > 0 && queue->resume_at_ms <= now) {
      apply_pause(queue, false, 0);  // a timed PAUSE is over
    }
    forgotten += forget_old_keys(queue, now, budget - std::min(budget, changed + forgotten));
    changed += fire_schedules(queue, now, budget - std::min(budget, changed + forgotten));
    // The rate limit's timer (see reschedule): it allows a delivery again.
    if (queue->settings.rate_limit > 0 && queue->waiters > 0 && can_deliver(*queue, now)) {
      signal_ready(queue);
    }
    reschedule(queue, now);  // still due, if the budget ran out: it stays on top
  }
  return changed;
}

int64_t Engine::next_deadline_ms() const {
  return timers_.empty() ? INT64_MAX : timers_.top()->timer_at;
}

bool Engine::follow_clock_set_back() {
  const int64_t now = clock_.now_ms();
  const bool set_back = now < clock_seen_ms_;
  clock_seen_ms_ = now;
  if (!set_back) return false;
  for (auto& [name, queue] : queues_) {
    // Only these have a rate timer (limit_deadline); reschedule reads the
    // bucket at `now`, which starts its count again from there.
    if (queue->settings.rate_limit > 0 && queue->waiters > 0) reschedule(queue.get(), now);
  }
  return true;
}

void Engine::expire_ttl(Job* job) {
  Queue* queue = job->queue;
  ++queue->counters.expired;
  ++counters_.expired;
  if (queue->settings.ttl_dead_letter) {
    unlink(job);
    make_dead(job, job->attempts == 0 ? std::string("ttl expired before delivery")
                                      : "ttl expired" + after_attempts(job->attempts));
  } else {
    destroy(job);
  }
}

void Engine::discard_oldest_dead(Queue* queue) {
  ++queue->counters.dead_discarded;
  ++counters_.dead_discarded;
  destroy(queue->dead.top());
}

size_t Engine::discard_old_dead(Queue* queue, int64_t now, size_t max) {
  const QueueSettings& s = queue->settings;
  size_t discarded = 0;
  while (discarded < max && !queue->dead.empty()) {
    const bool too_many = s.dead_max > 0 && queue->dead.size() > s.dead_max;
    const bool too_old =
        s.dead_retention_ms > 0 && queue->dead.top()->deadline_ms + s.dead_retention_ms <= now;
    if (!too_many && !too_old) break;
    discard_oldest_dead(queue);
    ++discarded;
  }
  return discarded;
}

size_t Engine::forget_old_keys(Queue* queue, int64_t now, size_t max) {
  size_t popped = 0;
  while (!queue->dedup_order.empty() && popped < max) {
    DedupNode* node = queue->dedup_order.top();
    if (node->second.expires_ms > now) break;
    queue->dedup_order.pop();
    forget_key(*queue, node->first, node->second);
    queue->dedup.erase(queue->dedup.find(node->first));  // by iterator: the key is the node's
    ++popped;
  }
  return popped;
}

size_t Engine::fire_schedules(Queue* queue, int64_t now, size_t max) {
  if (queue->schedule_at > now) return 0;
  std::vector<const Schedule*>& fired = fired_schedules_;
  fired.clear();
  bool stored = false;
  for (auto& [name, s] : queue->schedules) {
    if (fired.size() >= max) break;
    if (s.next_ms > now) continue;
    EnqueueOptions options;
    options.priority = s.priority;
    options.ttl_ms = s.ttl_ms;
    options.max_attempts = s.max_attempts;
    options.group = s.group;
    options.firing = true;
    const std::string key = firing_key(name, s.next_ms);
    options.key = key;
    int64_t next = s.next_after(now);
    options.key_expires_ms = now + firing_key_ms(next - now);
    auto put = enqueue(queue->name, s.payload, options);
    if (put.ok() && put.value().duplicate) {
      // That time's job is there already (a PUT with its key took its
      // place): not again. The times after it that passed meanwhile still
      // fire once: due now, so this sweep comes back for them.
      next = std::min(next, s.next_after(s.next_ms));
    } else if (put.ok()) {
      stored = true;
      ++s.fired;
      ++queue->counters.scheduled;
      ++counters_.scheduled;
    } else {
      ++queue->counters.schedule_refused;  // FULL: this firing is skipped, not retried
      ++counters_.schedule_refused;
    }
    // Times missed meanwhile (tqd was down, the loop was late) are skipped:
    // one job for all of them.
    s.next_ms = next;
    fired.push_back(&s);
  }
  if (fired.empty()) return 0;
  queue->refresh_schedule_at();
  // The new times are recorded by themselves, not in a new copy of the
  // queue's record: that holds every schedule's payload (up to 1 MiB), and
  // was written again at each firing. With the intake closed (the log's
  // disk low) and nothing put, they move on in memory only, leaving the
  // room kept for ACKs alone, until the intake opens or tqd stops cleanly
  // (save_unlogged_schedules); a crash meanwhile fires each one once at the
  // restart, as for times missed while tqd was down.
  if (!stored && !intake_open()) {
    queue->schedules_unlogged = true;
  } else if (observer_ && queue->schedules_unlogged) {
    // Others fired unlogged since the queue's record was last written:
    // their new times go with this firing's, in the whole record.
    observer_->queue_saved(*queue);
  } else if (observer_) {
    observer_->schedules_fired(*queue, fired);
  }
  reschedule(queue);
  return fired.size();
}

size_t Engine::save_unlogged_schedules() {
  if (observer_ == nullptr) return 0;
  size_t saved = 0;
  for (auto& [name, queue] : queues_) {
    if (!queue->schedules_unlogged) continue;
    observer_->queue_saved(*queue);  // clears the flag
    ++saved;
  }
  return saved;
}

void Engine::schedules_changed(Queue* queue, bool logged) {
  count_schedule_payloads(queue);
  queue->refresh_schedule_at();
  settings_changed(queue);
  if (observer_ && logged) observer_->queue_saved(*queue);
  reschedule(queue);
}

void Engine::count_schedule_payloads(Queue* queue) {
  uint64_t bytes = 0;
  for (const auto& [name, s] : queue->schedules) bytes += s.payload.size();
  schedule_payload_bytes_ = schedule_payload_bytes_ - queue->schedule_payload_bytes + bytes;
  queue->schedule_payload_bytes = bytes;
}

int64_t Engine::backoff_ms(const Queue& queue, uint32_t attempts) {
  const QueueSettings& s = queue.settings;
  if (s.backoff_base_ms <= 0) return 0;
  double wait = static_cast<double>(s.backoff_base_ms) *
                std::pow(s.backoff_factor, static_cast<double>(attempts > 0 ? attempts - 1 : 0));
  wait = std::min(wait, static_cast<double>(s.backoff_max_ms));
  if (s.backoff_jitter > 0) {
    // xorshift64: cheap, and seeded so a test sees the same waits every run.
    random_state_ ^= random_state_ << 13;
    random_state_ ^= random_state_ >> 7;
    random_state_ ^= random_state_ << 17;
    double unit = static_cast<double>(random_state_ >> 11) / static_cast<double>(1ull << 53);
    wait *= 1.0 + s.backoff_jitter * (2.0 * unit - 1.0);
  }
  return std::max<int64_t>(0, static_cast<int64_t>(wait));
}

int64_t Engine::limit_deadline(Queue* queue, int64_t now) {
  const QueueSettings& s = queue->settings;
  int64_t earliest = queue->schedule_at;
  if (queue->paused && queue->resume_at_ms > 0) earliest = std::min(earliest, queue->resume_at_ms);
  if (const Job* j = queue->dead.top()) {
    // The oldest dead job goes when its retention ends; at once when
    // dead_max was lowered below the count.
    if (s.dead_max > 0 && queue->dead.size() > s.dead_max) earliest = 0;
    if (s.dead_retention_ms > 0)
      earliest = std::min(earliest, j->deadline_ms + s.dead_retention_ms);
  }
  if (s.rate_limit > 0 && queue->waiters > 0 && !queue->paused && !queue->ready.empty()) {
    // Workers wait while the rate limit holds ready jobs back: wake them when
    // it allows the next delivery.
    earliest =
        std::min(earliest, next_rate_token_ms(*queue, now == kClockUnread ? clock_.now_ms() : now));
  }
  return earliest;
}

void Engine::reschedule(Queue* queue, int64_t now) {
  int64_t earliest = INT64_MAX;
  if (const Job* j = queue->leased.top()) earliest = std::min(earliest, j->deadline_ms);
  if (const Job* j = queue->delayed.top()) earliest = std::min(earliest, j->deadline_ms);
  if (const JobExtras* x = queue->ttl.top()) earliest = std::min(earliest, x->expires_at_ms);
  if (const DedupNode* key = queue->dedup_order.top()) {
    earliest = std::min(earliest, key->second.expires_ms);
  }
  // Most queues have none of what follows; one flag skips it (this runs
  // after every enqueue, delivery and ack).
  if (queue->limit_timers) earliest = std::min(earliest, limit_deadline(queue, now));
  if (earliest == queue->timer_at) return;
  queue->timer_at = earliest;
  if (earliest == INT64_MAX) {
    if (queue->timer_slot != kNoSlot) timers_.erase(queue);
  } else if (queue->timer_slot == kNoSlot) {
    timers_.push(queue);
  } else {
    timers_.update(queue);
  }
}

}  // namespace tq::engine
