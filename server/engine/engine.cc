// Queues, enqueue and delivery, and the state changes every other part of
// the engine goes through (make_ready, make_delayed, make_leased, make_dead,
// unlink, destroy), so the indexes and counts stay in step in one place.
#include <algorithm>
#include <cmath>

#include "server/engine/engine.h"

namespace tq::engine {

// Declared in result.h: a name that does not exist can hold anything the
// client sent.
std::string quoted(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s = "'";
  for (unsigned char c : text.substr(0, 200)) {
    if (c >= 0x20 && c < 0x7f) {
      s += static_cast<char>(c);
    } else {
      s += "\\x";
      s += kHex[c >> 4];
      s += kHex[c & 15];
    }
  }
  s += "'";
  return s;
}

namespace {

bool equals_upper(std::string_view upper, std::string_view any) {
  if (upper.size() != any.size()) return false;
  for (size_t i = 0; i < any.size(); ++i) {
    char c = any[i];
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
    if (c != upper[i]) return false;
  }
  return true;
}

}  // namespace

Engine::Engine(const Clock& clock, EngineLimits limits, QueueSettings defaults, uint64_t seed)
    : clock_(clock),
      limits_(limits),
      defaults_(defaults),
      random_state_(seed == 0 ? 1 : seed),
      clock_seen_ms_(clock.now_ms()) {}

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
  return !all_digits && !dequeue_keyword(name);
}

bool Engine::dequeue_keyword(std::string_view name) {
  return equals_upper("WAIT", name) || equals_upper("COUNT", name);
}

bool Engine::valid_key(std::string_view key) {
  if (key.empty() || key.size() > 200) return false;
  for (char c : key) {
    if (c <= ' ' || c >= 0x7f) return false;
  }
  return true;
}

// --- Queues ---------------------------------------------------------------

Error Engine::invalid_name(std::string_view name) {
  std::string msg = "invalid queue name '";
  // Quote what was sent, made printable: it may be any bytes.
  for (char c : name.substr(0, 64)) msg += (c >= 0x20 && c < 0x7f) ? c : '?';
  msg += '\'';
  // Cut, it may look valid: its length is then most likely what is wrong.
  if (name.size() > 64) msg += " (" + std::to_string(name.size()) + " bytes, the first 64 shown)";
  msg +=
      ": use 1-200 characters of A-Z a-z 0-9 . _ : -, not only digits, not WAIT or COUNT in any "
      "case";
  return make_error(Errc::kBadArgument, std::move(msg));
}

Error Engine::invalid_schedule_name(std::string_view name) {
  return make_error(Errc::kBadArgument,
                    "a schedule name is 1-200 printable characters without spaces, got " +
                        quoted(name.substr(0, 64)) + (name.size() > 64 ? "..." : ""));
}

Result<Queue*> Engine::create_queue(std::string_view name) {
  if (!valid_queue_name(name)) return invalid_name(name);
  if (queues_.find(name) != queues_.end()) {
    return make_error(Errc::kExists, "queue " + quoted(name) + " already exists");
  }
  if (queues_.size() >= limits_.max_queues) {
    return make_error(Errc::kLimit, "cannot create " + quoted(name) +
                                        ": the server is at its limit of " +
                                        std::to_string(limits_.max_queues) +
                                        (limits_.max_queues == 1 ? " queue" : " queues") +
                                        " (limits.max_queues)");
  }
  Queue* queue = add_queue(next_queue_number_++, name, defaults_);
  if (queue == nullptr) return make_error(Errc::kExists, "queue " + quoted(name) + " exists");
  // The default dead_letter_queue is every other queue's: a queue is never
  // its own (CONFIG refuses that).
  if (queue->settings.dead_letter_queue == name) queue->settings.dead_letter_queue.clear();
  if (observer_) observer_->queue_saved(*queue);
  return queue;
}

Queue* Engine::add_queue(uint32_t number, std::string_view name, const QueueSettings& settings) {
  // Both indexes or neither: a queue in one and not the other would leave a
  // pointer to freed memory behind (or a queue no record can name).
  if (queues_by_number_.count(number) != 0) return nullptr;
  auto [it, inserted] = queues_.try_emplace(std::string(name));
  if (!inserted) return nullptr;
  it->second = std::make_unique<Queue>(&jobs_);
  Queue* raw = it->second.get();
  raw->number = number;
  raw->name = it->first;
  raw->settings = settings;
  settings_changed(raw);
  fill_rate(*raw, clock_.now_ms());
  queues_by_number_[number] = raw;
  return raw;
}

Queue* Engine::find_queue(std::string_view name) const {
  if (last_found_ != nullptr && last_found_->name == name) return last_found_;
  auto it = queues_.find(name);
  if (it == queues_.end()) return nullptr;
  last_found_ = it->second.get();
  return last_found_;
}

Queue* Engine::find_queue_by_number(uint32_t number) const {
  auto it = queues_by_number_.find(number);
  return it == queues_by_number_.end() ? nullptr : it->second;
}

Error Engine::no_queue(std::string_view name) const {
  // A name no queue can have is a malformed request, not a queue to wait
  // for: a worker polling DEQUEUE on it would otherwise wait forever.
  if (!valid_queue_name(name)) return invalid_name(name);
  std::string msg = "queue " + quoted(name) + " does not exist";
  if (!limits_.auto_create_queues) msg += "; CREATE it first";
  return make_error(Errc::kNoQueue, std::move(msg));
}

Result<Queue*> Engine::queue_or_error(std::string_view name) const {
  if (Queue* q = find_queue(name)) return q;
  return no_queue(name);
}

Result<Queue*> Engine::queue_to_write(std::string_view name) const {
  if (Queue* q = find_queue(name)) return q;
  if (!limits_.auto_create_queues || !valid_queue_name(name)) return no_queue(name);
  return nullptr;
}

// --- Producers ------------------------------------------------------------

Status Engine::room_for_job(const Queue* queue, size_t payload_bytes, std::string_view key) const {
  if (queue != nullptr && queue->settings.max_size > 0 &&
      queue->active_count() >= queue->settings.max_size) {
    const size_t held = queue->active_count();
    return make_error(Errc::kFull, "queue " + quoted(queue->name) + " holds " +
                                       std::to_string(held) + (held == 1 ? " job" : " jobs") +
                                       ", its max_size; try again later");
  }
  // Jobs a PURGE or DROP removed are not counted, though freed a little
  // later: a server full until its operator purged takes new ones at once.
  // (max_payload_total, below, counts their bytes until they are freed,
  // tens of milliseconds a million: that memory is still held. Knowing
  // their sum at once would take a count kept at every change of state.)
  if (limits_.max_jobs > 0 && job_count() >= limits_.max_jobs) {
    return make_error(Errc::kFull, "the server holds " + std::to_string(job_count()) +
                                       " jobs, its limit (limits.max_jobs); try again later");
  }
  if (limits_.max_payload_total > 0 && payload_bytes > limits_.max_payload_total) {
    return make_error(Errc::kFull, "a " + std::to_string(payload_bytes) +
                                       "-byte payload is over limits.max_payload_total (" +
                                       std::to_string(limits_.max_payload_total) +
                                       " bytes): it can never be stored");
  }
  // Schedules' payloads count too: otherwise max_queues of them, 1 MiB
  // each, could take memory the limit means to bound. So do dedup keys,
  // which outlive their jobs.
  const uint64_t key_bytes = key.empty() ? 0 : dedup_key_cost(key);
  if (const uint64_t held = payload_bytes_ + schedule_payload_bytes_ + dedup_key_bytes_;
      limits_.max_payload_total > 0 &&
      held + payload_bytes + key_bytes > limits_.max_payload_total) {
    const std::string keys =
        dedup_key_bytes_ > 0 ? " and " + std::to_string(dedup_key_bytes_) + " in dedup keys" : "";
    return make_error(Errc::kFull, "the server holds " +
                                       std::to_string(payload_bytes_ + schedule_payload_bytes_) +
                                       " payload bytes in jobs and schedules" + keys +
                                       ", near its limit (limits.max_payload_total); "
                                       "try again later");
  }

  if (!intake_closed_.empty()) return make_error(Errc::kFull, intake_closed_);
  return Ok{};
}

void Engine::count_refused(Queue* queue) {
  // A queue that auto_create was to make does not exist yet: the server's
  // count is the only one.
  if (queue != nullptr) ++queue->counters.refused;
  ++counters_.refused;
}

Result<Enqueued> Engine::enqueue(std::string_view queue_name, std::string_view payload,
                                 const EnqueueOptions& options) {
  if (!options.key.empty() && !valid_key(options.key)) {
    return make_error(Errc::kBadArgument,
                      "a dedup key is 1-200 printable characters without spaces");
  }
  if (!options.group.empty() && !valid_key(options.group)) {
    return make_error(Errc::kBadArgument,
                      "a group name is 1-200 printable characters without spaces");
  }
  Result<Queue*> found = queue_to_write(queue_name);
  if (!found.ok()) return found.error();
  Queue* queue = found.value();  // nullptr: auto_create makes it, once the job passed
  const QueueSettings& settings = queue != nullptr ? queue->settings : defaults_;
  // A job put without a TTL gets the queue's, counted from when it is due:
  // unlike a TTL given with the job, it cannot refuse a later start.
  const int64_t queue_ttl_ms = options.ttl_ms > 0 ? 0 : settings.ttl_ms;
  // One put without a time of its own waits the queue's delay; DELAY 0 is a
  // time of its own (now), as SQS's DelaySeconds=0 on a delay queue.
  const bool own_time = options.own_time || options.delay_ms > 0 || options.run_at_ms > 0;
  const int64_t delay_ms = own_time ? options.delay_ms : settings.delay_ms;
  // A plain job needs no time at all; reading the clock costs 3% of the
  // server's CPU in a produce benchmark, so read it only for an option.
  const bool timed = !options.key.empty() || options.ttl_ms > 0 || queue_ttl_ms > 0 ||
                     delay_ms > 0 || options.run_at_ms > 0;
  const int64_t now = timed ? clock_.now_ms() : 0;
  const int64_t due = std::max(options.run_at_ms, delay_ms > 0 ? now + delay_ms : 0);
  if (options.ttl_ms > 0) {
    if (due >= now + options.ttl_ms) {
      return make_error(Errc::kBadArgument, "its TTL (" + std::to_string(options.ttl_ms) +
                                                "ms) ends no later than it is due (" +
                                                std::to_string(due - now) + "ms from now" +
                                                (own_time ? "" : ", the queue's delay") +
                                                "): it could never be delivered");
    }
  }

  if (queue != nullptr && !options.key.empty()) {
    auto it = queue->dedup.find(options.key);
    if (it != queue->dedup.end() && now < it->second.expires_ms) {
      ++queue->counters.duplicates;
      ++counters_.duplicates;
      return Enqueued{it->second.job_id, true};
    }
  }
  if (Status room = room_for_job(queue, payload.size(), options.key); !room.ok()) {
    // A schedule's firing counts as schedule_refused instead (fire_schedules).
    if (!options.firing) count_refused(queue);
    return room.error();
  }
  if (queue == nullptr) {
    Result<Queue*> made = create_queue(queue_name);
    if (!made.ok()) return made.error();  // limits.max_queues
    queue = made.value();
  }

  Job* job = jobs_.emplace(next_job_id_++, queue, payload);
  payload_bytes_ += payload.size();
  job->priority = options.priority;
  const int64_t expires_at = options.ttl_ms > 0 ? now + options.ttl_ms
                             : queue_ttl_ms > 0 ? std::max(due, now) + queue_ttl_ms
                                                : 0;
  set_extras(*job, expires_at, options.max_attempts, options.key, options.group);
  if (due > now) {
    make_delayed(job, due);
  } else {
    make_ready(job, timed ? now : clock_.coarse_now_ms());
  }
  ++queue->counters.enqueued;
  ++counters_.enqueued;
  // The key before the job's record, which carries it: one record, so a
  // crash cannot keep the job and lose its key.
  if (!options.key.empty()) {
    const int64_t key_expires_ms =
        options.key_expires_ms > 0 ? options.key_expires_ms : now + queue->settings.dedup_window_ms;
    remember_key(queue, options.key, job->id, key_expires_ms, true);
    // A PUT under a schedule's firing key for its next time, kept past it,
    // takes that firing's place: the schedule moves on now, as replay moves
    // it on at this job's record. Left for the firing to find as a duplicate,
    // a restart before that time moved it on where the server had not.
    if (!options.firing && !queue->schedules.empty()) {
      restore_firing(queue, options.key, key_expires_ms, due > now ? INT64_MIN : now);
    }
  }
  if (observer_) observer_->job_saved(*job);
  reschedule(queue);
  return Enqueued{job->id, false};
}

void Engine::forget_key(Queue& queue, const std::string& key, DedupEntry& entry) {
  if (observer_) observer_->dedup_forgotten(queue, entry);
  dedup_key_bytes_ -= dedup_key_cost(key);
}

void Engine::remember_key(Queue* queue, std::string_view key, uint64_t job_id, int64_t expires_ms,
                          bool in_job_record) {
  auto [it, inserted] = queue->dedup.try_emplace(std::string(key));
  if (!inserted && observer_)
    observer_->dedup_forgotten(*queue, it->second);  // an old one, past its window
  DedupEntry& entry = it->second;
  entry.job_id = job_id;
  entry.expires_ms = expires_ms;
  entry.log_segment = 0;
  DedupNode* node = &*it;
  if (inserted) {
    dedup_key_bytes_ += dedup_key_cost(key);
    queue->dedup_order.push(node);
  } else {
    queue->dedup_order.update(node);  // later, unless dedup_window was lowered meanwhile
  }
  if (observer_ && !in_job_record) observer_->dedup_saved(*queue, it->first, entry);
}

// --- Workers --------------------------------------------------------------

void Engine::dequeue(std::span<Queue* const> queues, size_t max, std::vector<const Job*>* out,
                     uint64_t max_bytes) {
  if (queues.size() == 1) {
    if (can_deliver(*queues[0])) lease_from(*queues[0], max, out, max_bytes);
    return;
  }
  // Higher queue priority first; among equals, the order the worker gave.
  // Sorted once, not searched once per queue taken from: a worker may name
  // thousands of queues.
  dequeue_order_.assign(queues.begin(), queues.end());
  std::stable_sort(
      dequeue_order_.begin(), dequeue_order_.end(),
      [](const Queue* a, const Queue* b) { return a->settings.priority > b->settings.priority; });
  size_t taken = 0;
  uint64_t bytes = 0;
  // A worker asking for several may take the rest from the next queue.
  for (Queue* q : dequeue_order_) {
    if (taken >= max || bytes >= max_bytes) break;
    if (!can_deliver(*q)) continue;
    const Leased got = lease_from(*q, max - taken, out, max_bytes - bytes);
    taken += got.jobs;
    bytes += got.bytes;
  }
}

Engine::Leased Engine::lease_from(Queue& queue, size_t max, std::vector<const Job*>* out,
                                  uint64_t max_bytes) {
  const int64_t now = clock_.now_ms();
  const size_t limit =
      queue.settings.limits_delivery() ? std::min(max, delivery_room(queue, now)) : max;
  Leased got;
  while (got.jobs < limit && !queue.ready.empty()) {
    Job* job = queue.ready.top();
    // The byte budget stops the batch before the job that would pass it; the
    // first job goes whatever its size, or a big job could never be taken.
    if (!out->empty() && got.bytes + job->payload_size > max_bytes) break;
    queue.waits.record(now - job->deadline_ms);  // ready since then
    unlink(job);
    ++job->attempts;
    make_leased(job, now + queue.settings.ack_timeout_ms);
    ++queue.counters.dequeued;
    ++counters_.dequeued;
    if (observer_) observer_->job_leased(*job);
    out->push_back(job);
    got.bytes += job->payload_size;
    ++got.jobs;
  }
  if (queue.settings.rate_limit > 0) queue.rate_tokens -= static_cast<double>(got.jobs);
  reschedule(&queue);
  return got;
}

Result<const Job*> Engine::dequeue(std::string_view queue_name) {
  Queue* queue = find_queue(queue_name);
  if (queue == nullptr) return no_queue(queue_name);
  std::vector<const Job*> got;
  Queue* one[] = {queue};
  dequeue(one, 1, &got);
  if (got.empty()) {
    return make_error(Errc::kEmpty,
                      "queue " + quoted(queue_name) + " " + why_not_delivering(*queue));
  }
  return got.front();
}

Result<Job*> Engine::leased_job(uint64_t id, const char* verb) {
  Job* job = live_job(id);
  if (job == nullptr) {
    return make_error(Errc::kNotFound, "no job " + std::to_string(id) +
                                           " (never existed, or already finished)");
  }
  if (job->state != JobState::kLeased) {
    std::string msg = "cannot " + std::string(verb) + " job " + std::to_string(id) + ": it is " +
                      job_state_name(job->state) + ", not leased";
    if (job->state == JobState::kReady || job->state == JobState::kDelayed ||
        job->state == JobState::kHeld) {
      // KICK resets attempts: a kicked job not delivered since was delivered before.
      // So does a move to a dead_letter_queue, which keeps why the job died
      // (a KICK clears that).
      const JobExtras* x = jobs_.extras(*job);
      if (job->attempts > 0) {
        msg += " (it went back to the queue: nacked, or its lease ran out)";
      } else if (x != nullptr && !x->origin.empty() && !x->reason.empty()) {
        msg += " (it died in queue " + quoted(x->origin) +
               " and moved to this one, its dead_letter_queue, and was not delivered since)";
      } else {
        msg += job->kicks > 0 ? " (a KICK or REDRIVE put it back, and it was not delivered since)"
                              : " (it was never delivered)";
      }
    }
    return make_error(Errc::kNotLeased, std::move(msg));
  }
  return job;
}

Status Engine::check_ack_queue(uint64_t id, std::string_view queue_name) const {
  // A name no queue can have is a malformed request, as in every command.
  if (!valid_queue_name(queue_name)) return invalid_name(queue_name);
  if (find_queue(queue_name) == nullptr) return no_queue(queue_name);
  const Job* found = live_job(id);
  if (found != nullptr && queue_name != found->queue->name) {
    return make_error(Errc::kNotFound,
                      "job " + std::to_string(id) + " is not in queue " + quoted(queue_name));
  }
  return Ok{};
}

Status Engine::ack(uint64_t id, std::optional<std::string_view> queue_name) {
  if (queue_name) {
    if (Status in_queue = check_ack_queue(id, *queue_name); !in_queue.ok()) return in_queue;
  }
  Result<Job*> job = leased_job(id, "ack");
  if (!job.ok()) return job.error();
  Queue* queue = job.value()->queue;
  ++queue->counters.acked;
  ++counters_.acked;
  destroy(job.value());
  reschedule(queue);
  return Ok{};
}

Result<Requeue> Engine::nack(uint64_t id, std::optional<int64_t> delay_ms,
                             std::optional<int32_t> priority) {
  Result<Job*> found = leased_job(id, "nack");
  if (!found.ok()) return found.error();
  Job* job = found.value();
  ++job->queue->counters.nacked;
  ++counters_.nacked;
  // Set while the job is leased, so make_ready files it by the new priority.
  const bool reprioritised = priority.has_value() && *priority != job->priority;
  if (reprioritised) job->priority = *priority;
  Requeue outcome = give_back(job, delay_ms, "nacked");
  // The RELEASE (or DEAD) record does not carry a priority; a whole JOB
  // record after it does, and replay takes the newest. An expired job is
  // gone: nothing to record.
  if (reprioritised && outcome != Requeue::kExpired && observer_) observer_->job_saved(*job);
  return outcome;
}

Status Engine::fail(uint64_t id, std::string_view reason) {
  Result<Job*> job = leased_job(id, "fail");
  if (!job.ok()) return job.error();
  Queue* queue = job.value()->queue;
  unlink(job.value());
  make_dead(job.value(), "failed: " + std::string(reason));
  reschedule(queue);
  return Ok{};
}

Result<int64_t> Engine::touch(uint64_t id, std::optional<int64_t> extend_ms) {
  Result<Job*> found = leased_job(id, "touch");
  if (!found.ok()) return found.error();
  Job* job = found.value();
  const int64_t left = extend_ms.value_or(job->queue->settings.ack_timeout_ms);
  job->deadline_ms = clock_.now_ms() + left;
  job->queue->leased.update(job);
  reschedule(job->queue);
  // Logged: a lease is kept to its end across a restart.
  if (observer_) observer_->job_leased(*job);
  return left;
}

std::string Engine::why_not_delivering(Queue& queue) {
  if (queue.paused && queue.resume_at_ms > 0) {
    return "is paused for " +
           std::to_string(std::max<int64_t>(0, queue.resume_at_ms - clock_.now_ms())) + "ms more";
  }
  if (queue.paused) return "is paused";
  if (queue.ready.empty()) {
    // Jobs that are there but not ready yet: say so, or a worker (and whoever
    // reads its log) takes the queue for empty.
    std::string why = "has no ready job";
    if (!queue.held.empty()) {
      why +=
          ": " + std::to_string(queue.held.size()) + " held, each behind another job of its group";
    }
    if (const Job* next = queue.delayed.top()) {
      why += queue.held.empty() ? ": " : "; ";
      why += std::to_string(queue.delayed.size()) + " delayed, the next ready in " +
             std::to_string(std::max<int64_t>(0, next->deadline_ms - clock_.now_ms())) + "ms";
    }
    return why;
  }
  const QueueSettings& s = queue.settings;
  if (s.max_leased > 0 && queue.leased.size() >= s.max_leased) {
    return "is at max_leased=" + std::to_string(s.max_leased) + " (" +
           std::to_string(queue.leased.size()) + " leased, " + std::to_string(queue.ready.size()) +
           " ready)";
  }
  const int64_t now = clock_.now_ms();
  if (s.rate_limit > 0 && delivery_room(queue, now) == 0) {
    return "is at rate_limit=" + std::to_string(s.rate_limit) + " per " +
           std::to_string(s.rate_window_ms) + "ms: the next delivery in " +
           std::to_string(next_rate_token_ms(queue, now) - now) + "ms";
  }
  return "had no job to deliver";  // a limit let one through since the DEQUEUE looked
}

void Engine::add_waiter(Queue* queue) {
  ++queue->waiters;
  // A waiter on a queue held back by its rate limit needs a timer for when
  // the limit lets a delivery through; reschedule() sets one while there are
  // waiters.
  if (queue->settings.rate_limit > 0) reschedule(queue);
}

size_t Engine::delivery_room(Queue& queue, int64_t now) {
  const QueueSettings& s = queue.settings;
  size_t room = SIZE_MAX;
  if (s.max_leased > 0) {
    room = s.max_leased > queue.leased.size() ? s.max_leased - queue.leased.size() : 0;
  }
  if (s.rate_limit > 0) {
    refill_rate(queue, now == kClockUnread ? clock_.now_ms() : now);
    room = std::min(room, static_cast<size_t>(std::max(0.0, queue.rate_tokens)));
  }
  return room;
}

void Engine::refill_rate(Queue& queue, int64_t now) {
  const QueueSettings& s = queue.settings;
  // A wall clock set back starts the count again from the new time rather
  // than holding deliveries until it catches up.
  const int64_t elapsed = std::max<int64_t>(0, now - queue.rate_checked_ms);
  queue.rate_checked_ms = now;
  const auto limit = static_cast<double>(s.rate_limit);
  queue.rate_tokens =
      std::min(limit, queue.rate_tokens + static_cast<double>(elapsed) * limit /
                                              static_cast<double>(s.rate_window_ms));
}

void Engine::fill_rate(Queue& queue, int64_t now) {
  queue.rate_tokens = static_cast<double>(queue.settings.rate_limit);
  queue.rate_checked_ms = now;
}

int64_t Engine::next_rate_token_ms(Queue& queue, int64_t now) {
  const QueueSettings& s = queue.settings;
  if (s.rate_limit == 0) return INT64_MAX;
  refill_rate(queue, now);
  if (queue.rate_tokens >= 1.0) return INT64_MAX;
  const double wait = (1.0 - queue.rate_tokens) * static_cast<double>(s.rate_window_ms) /
                      static_cast<double>(s.rate_limit);
  // At least 1 ms on: a timer due now that found no token would be rescheduled
  // for now again, forever.
  return now + std::max<int64_t>(1, static_cast<int64_t>(std::ceil(wait)));
}

std::vector<Queue*> Engine::take_ready_signals() {
  std::vector<Queue*> signals;
  signals.swap(ready_signals_);
  return signals;
}

void Engine::fill_extras(Job& job, int64_t expires_at_ms, uint32_t max_attempts,
                         std::string_view key, std::string_view group) {
  JobExtras& extras = jobs_.ensure_extras(job);
  if (expires_at_ms > 0) extras.expires_at_ms = expires_at_ms;
  if (max_attempts > 0) extras.max_attempts = max_attempts;
  if (!key.empty()) extras.dedup_key = std::string(key);
  if (!group.empty()) extras.group = std::string(group);
}

uint32_t Engine::max_attempts_of(const Job& job) const {
  const JobExtras* extras = jobs_.extras(job);
  if (extras != nullptr && extras->max_attempts > 0) return extras->max_attempts;
  return job.queue->settings.max_attempts;
}

// --- State changes ----------------------------------------------------------

void Engine::make_ready(Job* job, int64_t ready_since_ms) {
  Queue* queue = job->queue;
  job->deadline_ms = ready_since_ms;
  job->generation = queue->generation;
  JobExtras* extras = jobs_.extras(*job);
  if (extras != nullptr && extras->expires_at_ms > 0) queue->ttl.push(extras);
  if (extras != nullptr && !extras->group.empty()) {
    // Held until regroup() finds it is its group's turn.
    job->state = JobState::kHeld;
    queue->held.push(job);
    ++state_counts_[static_cast<size_t>(JobState::kHeld)];
    join_group(job, extras->group);
    return;
  }
  job->state = JobState::kReady;
  queue->ready.push(job);
  ++state_counts_[static_cast<size_t>(JobState::kReady)];
  // Tell the server that someone waiting here can be served.
  if (queue->waiters > 0 && !queue->paused) signal_ready(queue);
}

void Engine::make_delayed(Job* job, int64_t ready_at_ms) {
  job->state = JobState::kDelayed;
  job->generation = job->queue->generation;
  job->deadline_ms = ready_at_ms;
  job->queue->delayed.push(job);
  ++state_counts_[static_cast<size_t>(JobState::kDelayed)];
  JobExtras* extras = jobs_.extras(*job);
  if (extras != nullptr && extras->expires_at_ms > 0) job->queue->ttl.push(extras);
  if (extras != nullptr && !extras->group.empty()) join_group(job, extras->group);
}

void Engine::make_leased(Job* job, int64_t until_ms) {
  job->state = JobState::kLeased;
  job->deadline_ms = until_ms;
  job->queue->leased.push(job);
  ++state_counts_[static_cast<size_t>(JobState::kLeased)];
  if (const std::string* group = group_name(*job)) join_group(job, *group);
}

void Engine::join_group(Job* job, const std::string& name) {
  Group& group = job->queue->groups[name];
  group.members.insert(job->id);
  if (job->state == JobState::kLeased) ++group.leased;
  // Delivered before (a KICK starts attempts again): its retry keeps its place.
  if (job->attempts > 0) group.retrying = job->id;
  regroup(job->queue, name);
}

void Engine::regroup(Queue* queue, const std::string& name) {
  auto it = queue->groups.find(name);
  if (it == queue->groups.end()) return;  // the queue is being dropped
  Group& group = it->second;
  Job* next = nullptr;
  if (group.leased == 0 && !group.members.empty()) {
    Job* first = jobs_.find(group.retrying != 0 ? group.retrying : *group.members.begin());
    if (first->state == JobState::kReady || first->state == JobState::kHeld) next = first;
  }
  if (group.released != next) {
    if (Job* back = group.released) {
      queue->ready.erase(back);
      --state_counts_[static_cast<size_t>(JobState::kReady)];
      back->state = JobState::kHeld;
      queue->held.push(back);
      ++state_counts_[static_cast<size_t>(JobState::kHeld)];
    }
    if (next != nullptr) {
      queue->held.erase(next);
      --state_counts_[static_cast<size_t>(JobState::kHeld)];
      // Held, it waited for its group, not for a worker: its wait for one
      // starts now (and, across a restart, from the replay).
      next->deadline_ms = std::max(next->deadline_ms, clock_.coarse_now_ms());
      next->state = JobState::kReady;
      queue->ready.push(next);
      ++state_counts_[static_cast<size_t>(JobState::kReady)];
      if (queue->waiters > 0 && !queue->paused) signal_ready(queue);
    }
    group.released = next;
  }
  if (group.empty()) queue->groups.erase(it);
}

void Engine::make_dead(Job* job, std::string reason) {
  Queue* queue = job->queue;
  ++queue->counters.dead;
  ++counters_.dead;
  if (Queue* target = dead_letter_target(*job)) return forward_dead(job, target, std::move(reason));
  // One in, the oldest out: dead letters stay at dead_max. The oldest goes
  // before the new one is in, so it is never the new one, whatever the
  // times (two deaths in one millisecond, a wall clock set back). Lowering
  // dead_max leaves more to delete, which expire_due does a budget at a time.
  if (queue->settings.dead_max > 0 && queue->dead.size() == queue->settings.dead_max) {
    discard_oldest_dead(queue);
  }
  put_dead(job, reason, clock_.now_ms());
  if (observer_) observer_->job_dead(*job);
}

Queue* Engine::dead_letter_target(const Job& job) const {
  const std::string& name = job.queue->settings.dead_letter_queue;
  if (name.empty() || name == job.queue->name) return nullptr;
  const JobExtras* extras = jobs_.extras(job);
  if (extras != nullptr && !extras->origin.empty()) return nullptr;  // it moved once already
  Queue* target = find_queue(name);
  return target != nullptr && !target->placeholder ? target : nullptr;
}

void Engine::forward_dead(Job* job, Queue* target, std::string reason) {
  Queue* source = job->queue;
  JobExtras& extras = jobs_.ensure_extras(*job);
  // unlink() took it out of its group; the group is the old queue's.
  const std::string group = std::move(extras.group);
  extras.group.clear();
  extras.reason = std::move(reason);
  extras.origin = source->name;
  extras.max_attempts = 0;
  const int64_t ttl_ms = target->settings.ttl_ms;
  extras.expires_at_ms = ttl_ms > 0 ? clock_.now_ms() + ttl_ms : 0;
  ++source->counters.dead_forwarded;
  ++counters_.dead_forwarded;
  ++target->counters.dead_received;
  if (!group.empty()) regroup(source, group);  // the group's next job may go
  start_over_in(job, target);                  // the caller reschedules the old queue
}

void Engine::start_over_in(Job* job, Queue* queue) {
  job->queue = queue;
  job->attempts = 0;
  ++job->kicks;  // its next delivery is not one it had before
  make_ready(job, clock_.now_ms());
  if (observer_) observer_->job_saved(*job);  // its whole state, in its queue now
  reschedule(queue);                          // its TTL there, if it has one
}

void Engine::put_dead(Job* job, std::string_view reason, int64_t died_at_ms) {
  job->state = JobState::kDead;
  job->deadline_ms = died_at_ms;
  jobs_.ensure_extras(*job).reason = std::string(reason);
  job->queue->dead.push(job);
  ++state_counts_[static_cast<size_t>(JobState::kDead)];
  // It left its group (unlink): the group's next job may go.
  if (const std::string* group = group_name(*job)) regroup(job->queue, *group);
}

void Engine::unlink(Job* job) {
  Queue* queue = job->queue;
  switch (job->state) {
    case JobState::kReady: queue->ready.erase(job); break;
    case JobState::kDelayed: queue->delayed.erase(job); break;
    case JobState::kLeased:
      queue->leased.erase(job);
      // Under max_leased, an ended lease may let a waiting worker in.
      if (queue->waiters > 0 && queue->settings.max_leased > 0 && !queue->paused &&
          !queue->ready.empty()) {
        signal_ready(queue);
      }
      break;
    case JobState::kDead: queue->dead.erase(job); break;
    case JobState::kHeld:
      queue->held.erase(job);
      break;
  }
  unlink_rest(job);
}

void Engine::unlink_rest(Job* job) {
  Queue* queue = job->queue;
  --state_counts_[static_cast<size_t>(job->state)];
  JobExtras* extras = jobs_.extras(*job);
  if (extras == nullptr) return;  // most jobs
  if (extras->ttl_slot != kNoSlot) queue->ttl.erase(extras);
  if (!extras->group.empty() && job->state != JobState::kDead) leave_group(job, extras->group);
}

void Engine::leave_group(Job* job, const std::string& name) {
  auto it = job->queue->groups.find(name);
  if (it == job->queue->groups.end()) return;  // the queue is being dropped
  Group& group = it->second;
  group.members.erase(job->id);
  if (job->state == JobState::kLeased) --group.leased;
  if (group.released == job) group.released = nullptr;
  if (group.retrying == job->id) group.retrying = 0;
}

void Engine::destroy(Job* job, bool logged_in_bulk) {
  if (observer_) observer_->job_removed(*job, logged_in_bulk);
  unlink(job);
  // Its group's next job may go now.
  if (const std::string* group = group_name(*job)) regroup(job->queue, *group);
  payload_bytes_ -= job->payload_size;
  jobs_.erase(job);
}

void Engine::destroy_taken(Job* job) {
  if (observer_) observer_->job_removed(*job, true);
  unlink_rest(job);
  payload_bytes_ -= job->payload_size;
  jobs_.erase(job);
}

std::string Engine::after_attempts(uint32_t attempts) {
  return " after " + std::to_string(attempts) + " attempt" + (attempts == 1 ? "" : "s");
}

Requeue Engine::give_back(Job* job, std::optional<int64_t> delay_ms, const char* why,
                          int64_t ended_at_ms) {
  Queue* queue = job->queue;
  const JobExtras* extras = jobs_.extras(*job);
  if (extras != nullptr && extras->expires_at_ms > 0 && extras->expires_at_ms <= clock_.now_ms()) {
    // Its TTL passed during the lease: it expires now, which the caller can
    // tell its client, rather than at the next sweep behind its back.
    const bool dead_letter = queue->settings.ttl_dead_letter;
    expire_ttl(job);
    reschedule(queue);
    return dead_letter ? Requeue::kDead : Requeue::kExpired;
  }
  unlink(job);
  const uint32_t limit = max_attempts_of(*job);
  Requeue outcome;
  if (limit > 0 && job->attempts >= limit) {
    make_dead(job, why + after_attempts(job->attempts));
    outcome = Requeue::kDead;
  } else {
    const int64_t wait = delay_ms.value_or(backoff_ms(*queue, job->attempts));
    if (wait > 0) {
      make_delayed(job, clock_.now_ms() + wait);
      outcome = Requeue::kDelayed;
    } else {
      make_ready(job, ended_at_ms > 0 ? ended_at_ms : clock_.now_ms());
      outcome = Requeue::kReady;
    }
    if (observer_) observer_->job_released(*job);
  }
  reschedule(queue);
  return outcome;
}

}  // namespace tq::engine
