#include "server/engine/job.h"

#include <cstring>
#include <new>

namespace tq::engine {

const char* job_state_name(JobState state) {
  switch (state) {
    case JobState::kReady: return "ready";
    case JobState::kDelayed: return "delayed";
    case JobState::kLeased: return "leased";
    case JobState::kDead: return "dead";
  }
  return "?";
}

JobExtras& JobTable::ensure_extras(Job& job) {
  if (job.has_extras) return extras_.find(job.id)->second;
  JobExtras& extras = extras_[job.id];
  extras.job = &job;
  job.has_extras = true;
  return extras;
}

Job* JobTable::emplace(uint64_t id, Queue* queue, std::string_view payload) {
  if (size_ >= buckets_.size()) grow();
  Job* job = new (memory_.allocate(sizeof(Job) + payload.size())) Job{};
  job->id = id;
  job->queue = queue;
  job->slot = kNoSlot;
  job->payload_size = static_cast<uint32_t>(payload.size());
  if (!payload.empty()) std::memcpy(job + 1, payload.data(), payload.size());
  job->one_line = std::memchr(payload.data(), '\n', payload.size()) == nullptr &&
                  std::memchr(payload.data(), '\r', payload.size()) == nullptr;
  Job*& head = buckets_[bucket_of(id)];
  job->next_in_table = head;
  head = job;
  ++size_;
  return job;
}

void JobTable::free_job(Job* job) {
  if (job->has_extras) extras_.erase(job->id);
  const size_t bytes = sizeof(Job) + job->payload_size;
  job->~Job();
  memory_.deallocate(job, bytes);
}

JobTable::~JobTable() {
  for (Job* head : buckets_) {
    while (head != nullptr) {
      Job* next = head->next_in_table;
      free_job(head);
      head = next;
    }
  }
}

size_t JobTable::bucket_of(uint64_t id) const {
  // Ids are handed out in order and mostly looked up near each other (the
  // jobs just delivered are the ones acked), so keep neighbours in
  // neighbouring buckets, cache lines apart at most: the low bits, folded
  // with the bits above the table size so that ids a table's width apart
  // (or any other stride) still spread over all the buckets.
  return static_cast<size_t>(id ^ (id >> shift_)) & (buckets_.size() - 1);
}

Job* JobTable::find(uint64_t id) const {
  for (Job* job = buckets_[bucket_of(id)]; job != nullptr; job = job->next_in_table) {
    if (job->id == id) return job;
  }
  return nullptr;
}

void JobTable::erase(Job* job) {
  Job** link = &buckets_[bucket_of(job->id)];
  while (*link != job) link = &(*link)->next_in_table;
  *link = job->next_in_table;
  --size_;
  free_job(job);
}

void JobTable::reserve(size_t n) {
  size_t want = buckets_.size();
  while (want < n) want *= 2;
  if (want > buckets_.size()) rehash(want);
}

void JobTable::grow() { rehash(buckets_.size() * 2); }

void JobTable::rehash(size_t buckets) {
  std::vector<Job*> old(buckets, nullptr);
  old.swap(buckets_);
  shift_ = 0;
  while ((size_t{1} << shift_) < buckets) ++shift_;
  for (Job* head : old) {
    while (head != nullptr) {
      Job* next = head->next_in_table;
      Job*& bucket = buckets_[bucket_of(head->id)];
      head->next_in_table = bucket;
      bucket = head;
      head = next;
    }
  }
}

}  // namespace tq::engine

// A million pending jobs must fit in 200 MB: every byte here costs a MB.
static_assert(sizeof(tq::engine::Job) == 56, "Job grew: mind the memory budget (README, bench/)");
