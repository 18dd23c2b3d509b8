// Freeing what PURGE and DROP removed, a step at a time (disposal.h).

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>

#include "server/engine/engine.h"

namespace tq::engine {

namespace {

size_t& count_of(size_t (&counts)[5], JobState state) {
  return counts[static_cast<size_t>(state)];
}

// Frees up to about `max` nodes of the groups' member sets, and the groups
// emptied; returns how many. A group of a million jobs has a million nodes
// in its set: a set that fits in the budget goes whole (a walk that frees
// each node, 20-40 ns of it), a bigger one a member at a time (each erase
// rebalances the tree: 250 ns).
size_t free_group_members(std::unordered_map<std::string, Group>& groups, size_t max) {
  size_t work = 0;
  while (work < max && !groups.empty()) {
    auto it = groups.begin();
    std::set<uint64_t>& members = it->second.members;
    if (members.size() <= max - work) {
      work += members.size() + 1;
      groups.erase(it);
      continue;
    }
    while (work < max && !members.empty()) {
      members.erase(members.begin());
      ++work;
    }
  }
  return work;
}

}  // namespace

void Engine::dispose_waiting(Queue* queue) {
  const auto next = static_cast<uint8_t>(queue->generation + 1);
  for (const auto& d : disposals_) {
    if (d->queue == queue && d->dropped == nullptr && d->generation == next) {
      // Its jobs would join the queue's waiting ones again.
      finish_disposals();
      break;
    }
  }
  auto d = std::make_unique<Disposal>(&jobs_, queue);
  d->generation = queue->generation;
  d->ready.swap(queue->ready);
  d->delayed.swap(queue->delayed);
  d->held.swap(queue->held);
  d->ttl.swap(queue->ttl);
  count_of(state_counts_, JobState::kReady) -= d->ready.size();
  count_of(state_counts_, JobState::kDelayed) -= d->delayed.size();
  count_of(state_counts_, JobState::kHeld) -= d->held.size();
  d->left = d->ready.size() + d->delayed.size() + d->held.size();
  jobs_disposing_ += d->left;
  queue->generation = next;
  if (!queue->groups.empty()) {
    // What stays of a group is its leased job, if any (dead jobs have left
    // their groups): it starts the group again, as it would joining an
    // empty one. A few jobs: the leased ones, not the purged.
    d->groups.swap(queue->groups);
    for (Job* job : queue->leased.items()) {
      if (const std::string* group = group_name(*job)) join_group(job, *group);
    }
  }
  disposals_.push_back(std::move(d));
}

void Engine::drop_queue(Queue* queue, bool in_steps) {
  if (observer_) observer_->queue_dropped(*queue);
  // Nothing to settle: every job goes. In steps, they are freed with the jobs.
  std::unordered_map<std::string, Group> groups;
  groups.swap(queue->groups);
  if (!in_steps) {
    destroy_waiting(queue);
    for (DeadlineHeap* heap : {&queue->leased, &queue->dead}) {
      while (Job* job = heap->top()) destroy(job, true);
    }
    for (auto& [key, entry] : queue->dedup) forget_key(*queue, key, entry);
  }
  if (queue->timer_slot != kNoSlot) timers_.erase(queue);
  schedule_payload_bytes_ -= queue->schedule_payload_bytes;
  queues_by_number_.erase(queue->number);
  if (last_found_ == queue) last_found_ = nullptr;
  auto node = queues_.extract(queue->name);
  if (!in_steps) return;  // node frees the queue
  queue->dropped = true;
  auto d = std::make_unique<Disposal>(&jobs_, queue);
  d->dropped = std::move(node.mapped());
  d->groups.swap(groups);
  count_of(state_counts_, JobState::kReady) -= queue->ready.size();
  count_of(state_counts_, JobState::kDelayed) -= queue->delayed.size();
  count_of(state_counts_, JobState::kHeld) -= queue->held.size();
  count_of(state_counts_, JobState::kLeased) -= queue->leased.size();
  count_of(state_counts_, JobState::kDead) -= queue->dead.size();
  d->left = queue->job_count();
  jobs_disposing_ += d->left;
  disposals_.push_back(std::move(d));
}

bool Engine::dispose_some(size_t max) {
  while (max > 0 && !disposals_.empty()) {
    Disposal& d = *disposals_.front();
    const size_t work = dispose_from(d, max);
    assert(work > 0 || d.done());
    if (work == 0) {
      // Its sets hold fewer jobs than it counted (a bug): never spin on it.
      jobs_disposing_ -= d.left;
      d.left = 0;
      d.groups.clear();
    }
    max -= std::min(max, work);
    if (d.done()) disposals_.pop_front();  // a dropped queue goes with it
  }
  return !disposals_.empty();
}

size_t Engine::forget_dropped_keys(Queue& dropped, size_t max) {
  // Half a million, forgotten and freed in one go, held every client 0.34 s.
  // The heap first, without touching the entries it points at: they go
  // below, and its order no longer matters.
  dropped.dedup_order.abandon();
  size_t work = 0;
  while (work < max && !dropped.dedup.empty()) {
    auto it = dropped.dedup.begin();
    forget_key(dropped, it->first, it->second);
    dropped.dedup.erase(it);
    ++work;
  }
  return work;
}

size_t Engine::dispose_from(Disposal& d, size_t max) {
  // A DROP's dedup keys and the groups first, so that jobs_freeing, which
  // counts the jobs, is not 0 while any of it is left.
  Queue* dropped = d.dropped.get();
  size_t work = dropped != nullptr ? forget_dropped_keys(*dropped, max) : 0;
  work += free_group_members(d.groups, max - std::min(max, work));
  const size_t budget = max - std::min(max, work);
  size_t freed = 0;
  auto free = [&](Job* job) {
    // No record: the PURGE or QUEUE_DROP record says it all. The journal
    // counts the job's JOB record dead, as at any removal.
    if (observer_) observer_->job_removed(*job, true);
    payload_bytes_ -= job->payload_size;
    jobs_.erase(job);
    ++freed;
  };
  // Unlinked from nothing else: the sets they are in are the disposal's,
  // and the TTL heap, the groups and the queue's timer forgot them already.
  auto take = [&](auto& heap) {
    while (freed < budget && !heap.empty()) free(heap.pop_back());
  };
  if (dropped != nullptr) {
    dropped->ready.take_some(
        budget, [](const Job*) { return true; }, free);
    take(dropped->delayed);
    take(dropped->held);
    take(dropped->leased);
    take(dropped->dead);
  } else {
    const uint8_t generation = d.generation;
    d.ready.take_some(
        budget, [generation](const Job* job) { return job->generation == generation; }, free);
    take(d.delayed);
    take(d.held);
  }
  d.left -= freed;
  jobs_disposing_ -= freed;
  return work + freed;
}

}  // namespace tq::engine
