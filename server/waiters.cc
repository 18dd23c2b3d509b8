#include "server/waiters.h"

#include <algorithm>

namespace tq::server {

WaiterTable::WaiterTable(engine::Engine& engine, Deliver deliver)
    : engine_(engine), deliver_(std::move(deliver)) {}

void WaiterTable::add(uint64_t connection_id, WaitRequest request) {
  const uint64_t seq = next_seq_++;
  for (engine::Queue* q : request.queues) {
    engine_.add_waiter(q);
    std::deque<Entry>& entries = by_queue_[q->number];
    // The entries of waits that ended elsewhere (served through another of
    // their queues, timed out, gone) stay until this queue serves them, and
    // a queue no job comes to would keep them all: a worker looping on
    // DEQUEUE busy idle WAIT ... left one on idle per wait. Swept once they
    // outnumber the live ones, so the list stays within twice its waiters.
    if (entries.size() >= 2 * static_cast<size_t>(q->waiters) + kSweepAtLeast) {
      std::erase_if(entries, [this](const Entry& e) { return !current(e); });
    }
    entries.push_back(Entry{connection_id, seq});
  }
  // The same for deadlines: a wait that was served keeps its heap entry
  // until its time, up to limits.max_wait (an hour) later.
  if (deadlines_.size() >= 2 * by_connection_.size() + kSweepAtLeast) sweep_deadlines();
  deadlines_.push(Deadline{request.deadline_ms, seq, connection_id});
  by_connection_[connection_id] = Waiter{connection_id, seq, std::move(request)};
}

void WaiterTable::sweep_deadlines() {
  std::vector<Deadline> live;
  live.reserve(by_connection_.size());
  while (!deadlines_.empty()) {
    const Deadline& d = deadlines_.top();
    if (current(Entry{d.connection_id, d.seq})) live.push_back(d);
    deadlines_.pop();
  }
  deadlines_ = decltype(deadlines_)(std::greater<>(), std::move(live));
}

WaiterTable::Waiter WaiterTable::take(uint64_t connection_id) {
  auto it = by_connection_.find(connection_id);
  Waiter waiter = std::move(it->second);
  by_connection_.erase(it);
  for (engine::Queue* q : waiter.request.queues) engine_.remove_waiter(q);
  // Its entries in by_queue_ and deadlines_ go stale and are skipped later.
  return waiter;
}

void WaiterTable::cancel(uint64_t connection_id) {
  if (by_connection_.count(connection_id)) take(connection_id);
}

void WaiterTable::serve_ready() {
  if (!engine_.has_ready_signals()) return;  // runs after every request: most find none
  for (engine::Queue* queue : engine_.take_ready_signals()) serve(queue);
}

void WaiterTable::serve(engine::Queue* queue) {
  auto list = by_queue_.find(queue->number);
  if (list == by_queue_.end()) return;
  std::deque<Entry>& entries = list->second;
  while (!entries.empty() && engine_.can_deliver(*queue)) {
    Entry entry = entries.front();
    entries.pop_front();
    if (!current(entry)) continue;  // served, timed out or gone already
    const uint64_t connection_id = entry.connection_id;
    const WaitRequest& request = by_connection_.at(connection_id).request;
    std::vector<const engine::Job*> jobs;
    engine_.dequeue(request.queues, request.count, &jobs, request.max_bytes);
    if (jobs.empty()) continue;
    Waiter waiter = take(connection_id);
    deliver_(connection_id, waiter.request, jobs, {});
  }
  if (entries.empty()) by_queue_.erase(list);
}

void WaiterTable::expire(int64_t now_ms) {
  while (!deadlines_.empty() && deadlines_.top().at <= now_ms) {
    Deadline d = deadlines_.top();
    deadlines_.pop();
    if (!current(Entry{d.connection_id, d.seq})) continue;
    Waiter waiter = take(d.connection_id);
    // A rate limit may let a job through at the very time the wait ends (its
    // timer and this one fire in either order): hand it out rather than EMPTY.
    std::vector<const engine::Job*> jobs;
    engine_.dequeue(waiter.request.queues, waiter.request.count, &jobs, waiter.request.max_bytes);
    deliver_(d.connection_id, waiter.request, jobs, {});
  }
}

size_t WaiterTable::entries_kept() const {
  size_t n = deadlines_.size();
  for (const auto& [number, entries] : by_queue_) n += entries.size();
  return n;
}

int64_t WaiterTable::next_deadline_ms() const {
  // Stale entries may make this early; expire() then finds nothing to do.
  return deadlines_.empty() ? INT64_MAX : deadlines_.top().at;
}

void WaiterTable::queue_dropping(engine::Queue* queue, const std::string& error) {
  std::vector<uint64_t> orphaned;
  for (auto& [connection_id, waiter] : by_connection_) {
    // Every copy: add() counted each (DEQUEUE lists a queue once, but a
    // copy left here would point at a freed queue).
    const size_t copies = std::erase(waiter.request.queues, queue);
    if (copies == 0) continue;
    for (size_t i = 0; i < copies; ++i) engine_.remove_waiter(queue);
    if (waiter.request.queues.empty()) orphaned.push_back(connection_id);
  }
  by_queue_.erase(queue->number);
  for (uint64_t connection_id : orphaned) {
    Waiter waiter = take(connection_id);
    deliver_(connection_id, waiter.request, {}, error);
  }
}

void WaiterTable::fail_all(const std::string& error) {
  std::vector<uint64_t> all;
  for (const auto& [connection_id, waiter] : by_connection_) all.push_back(connection_id);
  for (uint64_t connection_id : all) {
    Waiter waiter = take(connection_id);
    deliver_(connection_id, waiter.request, {}, error);
  }
}

}  // namespace tq::server
