#include "server/engine/engine.h"

#include <algorithm>

namespace tq::engine {
namespace {

std::string quoted(std::string_view name) {
  std::string s = "'";
  s.append(name.substr(0, 200));
  s += "'";
  return s;
}

}  // namespace

Engine::Engine(const Clock& clock, EngineLimits limits, QueueSettings defaults)
    : clock_(clock), limits_(limits), defaults_(defaults) {}

bool Engine::valid_queue_name(std::string_view name) {
  if (name.empty() || name.size() > 200) return false;
  bool all_digits = true;
  for (char c : name) {
    bool digit = c >= '0' && c <= '9';
    bool ok = digit || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
              c == '_' || c == ':' || c == '-';
    if (!ok) return false;
    all_digits = all_digits && digit;
  }
  return !all_digits;
}

Result<Queue*> Engine::create_queue(std::string_view name) {
  if (!valid_queue_name(name)) {
    std::string msg = "invalid queue name '";
    // Quote what was sent, made printable: it may be any bytes.
    for (char c : name.substr(0, 64)) msg += (c >= 0x20 && c < 0x7f) ? c : '?';
    msg += "': use 1-200 characters of A-Z a-z 0-9 . _ : - and not only digits";
    return make_error(Errc::kBadArgument, std::move(msg));
  }
  if (queues_.find(name) != queues_.end()) {
    return make_error(Errc::kExists, "queue " + quoted(name) + " already exists");
  }
  if (queues_.size() >= limits_.max_queues) {
    return make_error(Errc::kLimit, "cannot create " + quoted(name) + ": the server holds " +
                                        std::to_string(limits_.max_queues) +
                                        " queues, its limit (queues.max_queues)");
  }
  Queue* queue = add_queue(next_queue_number_++, name, defaults_);
  if (observer_) observer_->queue_saved(*queue);
  return queue;
}

Queue* Engine::add_queue(uint32_t number, std::string_view name, const QueueSettings& settings) {
  auto queue = std::make_unique<Queue>();
  queue->number = number;
  queue->name = std::string(name);
  queue->settings = settings;
  Queue* raw = queue.get();
  queues_.emplace(queue->name, std::move(queue));
  queues_by_number_[number] = raw;
  return raw;
}

Queue* Engine::find_queue_by_number(uint32_t number) const {
  auto it = queues_by_number_.find(number);
  return it == queues_by_number_.end() ? nullptr : it->second;
}

Queue* Engine::find_queue(std::string_view name) const {
  auto it = queues_.find(name);
  return it == queues_.end() ? nullptr : it->second.get();
}

Error Engine::no_queue(std::string_view name) const {
  std::string msg = "queue " + quoted(name) + " does not exist";
  if (!limits_.auto_create_queues) msg += "; CREATE it first";
  return make_error(Errc::kNoQueue, std::move(msg));
}

Result<Queue*> Engine::queue_for_write(std::string_view name) {
  if (Queue* q = find_queue(name)) return q;
  if (!limits_.auto_create_queues) {
    if (!valid_queue_name(name)) return create_queue(name);  // for its clear message
    return no_queue(name);
  }
  return create_queue(name);
}

Result<uint64_t> Engine::enqueue(std::string_view queue_name, std::string_view payload) {
  Result<Queue*> found = queue_for_write(queue_name);
  if (!found.ok()) return found.error();
  Queue* queue = found.value();

  Job* job = jobs_.insert(make_job(next_job_id_++, queue, payload));
  make_ready(job);
  ++queue->counters.enqueued;
  ++counters_.enqueued;
  if (observer_) observer_->job_saved(*job);
  return job->id;
}

Result<const Job*> Engine::dequeue(std::string_view queue_name) {
  Queue* queue = find_queue(queue_name);
  if (queue == nullptr) return no_queue(queue_name);
  if (queue->ready.empty()) {
    return make_error(Errc::kEmpty, "queue " + quoted(queue_name) + " has no ready job");
  }
  Job* job = queue->ready.pop();
  job->state = JobState::kLeased;
  job->deadline_ms = clock_.now_ms() + queue->settings.ack_timeout_ms;
  ++job->attempts;
  queue->leased.push(job);
  ++leased_count_;
  ++queue->counters.dequeued;
  ++counters_.dequeued;
  reschedule(queue);
  if (observer_) observer_->job_leased(*job);
  return job;
}

Status Engine::ack(uint64_t id, std::optional<std::string_view> queue_name) {
  Job* job = jobs_.find(id);
  if (job == nullptr) {
    return make_error(Errc::kNotFound, "no job " + std::to_string(id) +
                                           " (never existed, or already acked)");
  }
  Queue* queue = job->queue;
  if (queue_name && *queue_name != queue->name) {
    return make_error(Errc::kNotFound, "job " + std::to_string(id) + " is not in queue " +
                                           quoted(*queue_name));
  }
  if (job->state != JobState::kLeased) {
    std::string msg = "job " + std::to_string(id) + " is " + job_state_name(job->state) +
                      ", not leased";
    msg += job->attempts == 0 ? ": it was never delivered"
                              : ": its lease expired and it went back to the queue";
    return make_error(Errc::kNotLeased, std::move(msg));
  }
  ++queue->counters.acked;
  ++counters_.acked;
  destroy(job);
  return Ok{};
}

size_t Engine::expire_due() {
  const int64_t now = clock_.now_ms();
  size_t expired = 0;
  while (!timers_.empty() && timers_.top()->timer_at <= now) {
    Queue* queue = timers_.top();
    while (!queue->leased.empty() && queue->leased.top()->deadline_ms <= now) {
      Job* job = queue->leased.pop();
      --leased_count_;
      ++queue->counters.timed_out;
      ++counters_.timed_out;
      make_ready(job);
      if (observer_) observer_->job_released(*job);
      ++expired;
    }
    reschedule(queue);
  }
  return expired;
}

int64_t Engine::next_deadline_ms() const {
  return timers_.empty() ? INT64_MAX : timers_.top()->timer_at;
}

void Engine::unlink(Job* job) {
  Queue* queue = job->queue;
  switch (job->state) {
    case JobState::kReady:
      queue->ready.erase(job);
      break;
    case JobState::kLeased:
      queue->leased.erase(job);
      --leased_count_;
      reschedule(queue);
      break;
    case JobState::kDelayed:
    case JobState::kDead:
      break;
  }
}

void Engine::destroy(Job* job) {
  if (observer_) observer_->job_removed(*job);
  unlink(job);
  jobs_.remove(job);  // the returned owner frees it
}

void Engine::restore_ids(uint64_t next_job_id, uint32_t next_queue_number) {
  next_job_id_ = std::max(next_job_id_, next_job_id);
  next_queue_number_ = std::max(next_queue_number_, next_queue_number);
}

Queue* Engine::restore_queue(uint32_t number, std::string_view name,
                             const QueueSettings& settings) {
  Queue* queue = find_queue_by_number(number);
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
  }
  next_queue_number_ = std::max(next_queue_number_, number + 1);
  if (observer_) observer_->queue_saved(*queue);
  return queue;
}

void Engine::restore_drop_queue(uint32_t number) {
  Queue* queue = find_queue_by_number(number);
  if (queue == nullptr) return;
  while (Job* job = queue->ready.top()) destroy(job);
  while (Job* job = queue->leased.top()) destroy(job);
  if (queue->timer_slot != kNoSlot) timers_.erase(queue);
  if (observer_) observer_->queue_dropped(*queue);
  queues_by_number_.erase(number);
  queues_.erase(queue->name);
}

Job* Engine::restore_job(const JobSnapshot& snap) {
  Queue* queue = find_queue_by_number(snap.queue_number);
  if (queue == nullptr) {
    // "#N" cannot be a real queue name, so it cannot collide with one.
    queue = add_queue(snap.queue_number, "#" + std::to_string(snap.queue_number), defaults_);
    queue->placeholder = true;
    next_queue_number_ = std::max(next_queue_number_, snap.queue_number + 1);
  }
  Job* job = jobs_.find(snap.id);
  if (job != nullptr && (job->queue != queue || job->payload() != snap.payload)) {
    // A snapshot never changes a job's queue or payload; if it does, the
    // newest record wins.
    unlink(job);
    JobPtr old = jobs_.remove(job);
    job = nullptr;
    if (observer_) observer_->job_removed(*old);
  }
  if (job == nullptr) {
    job = jobs_.insert(make_job(snap.id, queue, snap.payload));
  } else {
    unlink(job);
  }
  job->attempts = snap.attempts;
  job->priority = snap.priority;
  if (snap.state == JobState::kLeased) {
    job->state = JobState::kLeased;
    job->deadline_ms = clock_.now_ms() + queue->settings.ack_timeout_ms;
    queue->leased.push(job);
    ++leased_count_;
    reschedule(queue);
  } else {
    make_ready(job);
  }
  next_job_id_ = std::max(next_job_id_, snap.id + 1);
  if (observer_) observer_->job_saved(*job);
  return job;
}

void Engine::restore_lease(uint64_t id, uint32_t attempts) {
  Job* job = jobs_.find(id);
  if (job == nullptr) return;  // acked later, and compacted away
  unlink(job);
  job->attempts = attempts;
  job->state = JobState::kLeased;
  job->deadline_ms = clock_.now_ms() + job->queue->settings.ack_timeout_ms;
  job->queue->leased.push(job);
  ++leased_count_;
  reschedule(job->queue);
}

void Engine::restore_release(uint64_t id, uint32_t attempts) {
  Job* job = jobs_.find(id);
  if (job == nullptr) return;
  unlink(job);
  job->attempts = attempts;
  make_ready(job);
}

void Engine::restore_remove(uint64_t id) {
  if (Job* job = jobs_.find(id)) destroy(job);
}

size_t Engine::finish_restore() {
  size_t released = 0;
  for (auto& [name, queue] : queues_) {
    while (Job* job = queue->leased.top()) {
      unlink(job);
      make_ready(job);
      ++released;
    }
  }
  return released;
}

std::vector<const Queue*> Engine::placeholder_queues() const {
  std::vector<const Queue*> found;
  for (const auto& [name, queue] : queues_) {
    if (queue->placeholder) found.push_back(queue.get());
  }
  return found;
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
    const std::vector<Job*>* parts[] = {&queue.ready.items(), &queue.leased.items()};
    constexpr int kParts = 2;
    while (cursor.part < kParts && budget > 0) {
      const std::vector<Job*>& items = *parts[cursor.part];
      while (cursor.index < items.size() && budget > 0) {
        --budget;
        if (!visit(*items[cursor.index++])) budget = 0;
      }
      if (cursor.index >= items.size()) {
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

void Engine::make_ready(Job* job) {
  job->state = JobState::kReady;
  job->deadline_ms = 0;
  job->queue->ready.push(job);
}

void Engine::reschedule(Queue* queue) {
  int64_t earliest = queue->leased.empty() ? INT64_MAX : queue->leased.top()->deadline_ms;
  if (earliest == queue->timer_at) return;
  queue->timer_at = earliest;
  if (earliest == INT64_MAX) {
    timers_.erase(queue);
  } else if (queue->timer_slot == kNoSlot) {
    timers_.push(queue);
  } else {
    timers_.update(queue);
  }
}

}  // namespace tq::engine
