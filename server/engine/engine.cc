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
  auto queue = std::make_unique<Queue>();
  queue->number = next_queue_number_++;
  queue->name = std::string(name);
  queue->settings = defaults_;
  Queue* raw = queue.get();
  queues_.emplace(queue->name, std::move(queue));
  return raw;
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
  queue->leased.erase(job);
  --leased_count_;
  ++queue->counters.acked;
  ++counters_.acked;
  jobs_.remove(job);
  reschedule(queue);
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
      ++expired;
    }
    reschedule(queue);
  }
  return expired;
}

int64_t Engine::next_deadline_ms() const {
  return timers_.empty() ? INT64_MAX : timers_.top()->timer_at;
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
