#include "server/waiters.h"

#include <algorithm>

namespace tq::server {

WaiterTable::WaiterTable(engine::Engine& engine, Deliver deliver)
    : engine_(engine), deliver_(std::move(deliver)) {}

void WaiterTable::add(uint64_t connection_id, WaitRequest request) {
  const uint64_t seq = next_seq_++;
  for (engine::Queue* q : request.queues) {
    engine_.add_waiter(q);
    by_queue_[q->number].push_back(Entry{connection_id, seq});
  }
  deadlines_.push(Deadline{request.deadline_ms, seq, connection_id});
  by_connection_[connection_id] = Waiter{connection_id, seq, std::move(request)};
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

int64_t WaiterTable::next_deadline_ms() const {
  // Stale entries may make this early; expire() then finds nothing to do.
  return deadlines_.empty() ? INT64_MAX : deadlines_.top().at;
}

void WaiterTable::queue_dropping(engine::Queue* queue, const std::string& error) {
  std::vector<uint64_t> orphaned;
  for (auto& [connection_id, waiter] : by_connection_) {
    auto& qs = waiter.request.queues;
    auto it = std::find(qs.begin(), qs.end(), queue);
    if (it == qs.end()) continue;
    qs.erase(it);
    engine_.remove_waiter(queue);
    if (qs.empty()) orphaned.push_back(connection_id);
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
