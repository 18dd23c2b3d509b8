#include "server/engine/ready_set.h"

#include <algorithm>
#include <vector>

namespace tq::engine {

Job* ReadySet::live_job(const Lane& lane, uint64_t id) const {
  Job* job = table_->find(id);
  return job != nullptr && job->slot == kInFifo && job->priority == lane.priority &&
                 job->queue == owner_
             ? job
             : nullptr;
}

void ReadySet::push(Job* job) {
  // Most queues' jobs share one priority, the first lane's: it is looked
  // at before the map is searched (here and in erase).
  auto it = lanes_.begin();
  if (it == lanes_.end() || it->first != job->priority) {
    it = lanes_.try_emplace(job->priority).first;
  }
  Lane& lane = it->second;
  lane.priority = job->priority;
  if (job->id > lane.last_id) {
    lane.fifo.push_back(job->id);
    lane.last_id = job->id;
    job->slot = kInFifo;
    ++lane.live;
  } else {
    lane.returns.push(job);
  }
  ++size_;
}

void ReadySet::erase(Job* job) {
  auto it = lanes_.begin();  // never end(): the job is in a lane
  if (it->first != job->priority) it = lanes_.find(job->priority);
  Lane& lane = it->second;
  if (job->slot == kInFifo) {
    job->slot = kNoSlot;
    --lane.live;
    if (!lane.fifo.empty() && lane.fifo.front() == job->id) {
      // The usual case: the front is delivered. Stale ids behind it are
      // dropped by the next top(), which looks the new front up anyway.
      lane.fifo.pop_front();
    } else {
      compact(lane);  // the id stays behind, stale
    }
  } else {
    lane.returns.erase(job);
  }
  --size_;
  if (lane.empty()) lanes_.erase(it);
}

Job* ReadySet::trim(Lane& lane) {
  while (!lane.fifo.empty()) {
    if (Job* job = live_job(lane, lane.fifo.front())) return job;
    lane.fifo.pop_front();
  }
  return nullptr;
}

void ReadySet::compact(Lane& lane) {
  const size_t stale = lane.fifo.size() - lane.live;
  if (stale < 1024 || stale < lane.live) return;
  std::deque<uint64_t> kept;
  for (uint64_t id : lane.fifo) {
    if (live_job(lane, id) != nullptr) kept.push_back(id);
  }
  lane.fifo.swap(kept);
}

Job* ReadySet::top() {
  if (lanes_.empty()) return nullptr;
  Lane& lane = lanes_.begin()->second;
  Job* fifo = trim(lane);
  Job* back = lane.returns.top();
  if (fifo == nullptr) return back;
  if (back == nullptr) return fifo;
  return back->id < fifo->id ? back : fifo;
}

int64_t ReadySet::head_ready_since() const {
  int64_t earliest = INT64_MAX;
  for (const auto& [priority, lane] : lanes_) {
    for (uint64_t id : lane.fifo) {
      if (const Job* job = live_job(lane, id)) {
        earliest = std::min(earliest, job->deadline_ms);
        break;
      }
    }
    if (const Job* back = lane.returns.top()) earliest = std::min(earliest, back->deadline_ms);
  }
  return earliest;
}

void ReadySet::first(size_t n, const std::function<void(Job*)>& f) const {
  for (const auto& [priority, lane] : lanes_) {
    if (n == 0) return;
    // Merge the lane's FIFO (already in id order) with its heap's first n.
    std::vector<Job*> returns;
    lane.returns.first(n, [&](Job* j) { returns.push_back(j); });
    size_t r = 0;
    auto fifo = lane.fifo.begin();
    while (n > 0) {
      Job* next_fifo = nullptr;
      while (fifo != lane.fifo.end() && (next_fifo = live_job(lane, *fifo)) == nullptr) ++fifo;
      Job* next_return = r < returns.size() ? returns[r] : nullptr;
      if (next_fifo == nullptr && next_return == nullptr) break;
      if (next_return != nullptr && (next_fifo == nullptr || next_return->id < next_fifo->id)) {
        f(next_return);
        ++r;
      } else {
        f(next_fifo);
        ++fifo;
      }
      --n;
    }
  }
}

void ReadySet::for_each(const std::function<void(Job*)>& f) const {
  for (const auto& [priority, lane] : lanes_) {
    for (uint64_t id : lane.fifo) {
      if (Job* job = live_job(lane, id)) f(job);
    }
    for (Job* job : lane.returns.items()) f(job);
  }
}

size_t ReadySet::positions() const {
  size_t n = 0;
  for (const auto& [priority, lane] : lanes_) n += lane.fifo.size() + lane.returns.size();
  return n;
}

Job* ReadySet::at(size_t position) const {
  for (const auto& [priority, lane] : lanes_) {
    if (position < lane.fifo.size()) return live_job(lane, lane.fifo[position]);
    position -= lane.fifo.size();
    if (position < lane.returns.size()) return lane.returns.items()[position];
    position -= lane.returns.size();
  }
  return nullptr;
}

void ReadySet::append_fifo_ids(std::vector<uint64_t>* out) const {
  for (const auto& [priority, lane] : lanes_) {
    out->insert(out->end(), lane.fifo.begin(), lane.fifo.end());
  }
}

void ReadySet::append_returned_ids(std::vector<uint64_t>* out) const {
  for (const auto& [priority, lane] : lanes_) append_job_ids(lane.returns.items(), out);
}

void ReadySet::take_all(const std::function<void(Job*)>& f) {
  // Each job is handed over as its id comes up, while it is in cache: a
  // list of all of them first, then the frees, read a million jobs twice.
  std::map<int32_t, Lane, std::greater<>> lanes;
  lanes.swap(lanes_);
  size_ = 0;
  for (auto& [priority, lane] : lanes) {
    for (uint64_t id : lane.fifo) {
      if (Job* job = live_job(lane, id)) {
        job->slot = kNoSlot;
        f(job);
      }
    }
    lane.returns.take_all(f);
  }
}

void ReadySet::swap(ReadySet& other) noexcept {
  lanes_.swap(other.lanes_);
  std::swap(size_, other.size_);
}

size_t ReadySet::take_some(size_t max, const std::function<bool(const Job*)>& mine,
                           const std::function<void(Job*)>& f) {
  size_t taken = 0;
  while (taken < max && !lanes_.empty()) {
    auto it = lanes_.begin();
    Lane& lane = it->second;
    while (taken < max && !lane.fifo.empty()) {
      Job* job = live_job(lane, lane.fifo.front());
      lane.fifo.pop_front();
      if (job == nullptr || !mine(job)) continue;
      job->slot = kNoSlot;
      --lane.live;
      --size_;
      ++taken;
      f(job);
    }
    while (taken < max && !lane.returns.empty()) {
      Job* job = lane.returns.pop_back();
      --size_;
      ++taken;
      f(job);
    }
    if (lane.fifo.empty() && lane.returns.empty()) lanes_.erase(it);
  }
  return taken;
}

std::vector<Job*> ReadySet::jobs() const {
  std::vector<Job*> all;
  all.reserve(size_);
  for_each([&](Job* job) { all.push_back(job); });
  return all;
}

}  // namespace tq::engine
