#include "server/engine/job.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <new>

namespace tq::engine {

void append_job_ids(const std::vector<Job*>& jobs, std::vector<uint64_t>* out) {
  constexpr size_t kAhead = 16;
  const size_t n = jobs.size();
  for (size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) __builtin_prefetch(jobs[i + kAhead]);
    out->push_back(jobs[i]->id);
  }
}

const char* job_state_name(JobState state) {
  switch (state) {
    case JobState::kReady: return "ready";
    case JobState::kDelayed: return "delayed";
    case JobState::kLeased: return "leased";
    case JobState::kDead: return "dead";
    case JobState::kHeld:
      return "held";
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

namespace {

// Chains moved per emplace or erase while growing. Growth starts when the
// table holds as many jobs as the new array's half, so it is done after
// count / 2 / kChainsPerStep adds at most: long before the next doubling.
constexpr size_t kChainsPerStep = 4;
constexpr size_t kFirstBuckets = 1024;

// With a prefaulter, a full table asks for the next array and goes on
// filling (its load past 1, chains a little longer) until that array is
// faulted in, up to this many jobs per bucket before it doubles regardless.
// Asking only once full keeps the next array out of memory until needed.
constexpr size_t kMaxWaitingLoadQuarters = 5;  // 1.25

size_t mapped_bytes(size_t count) {
  const size_t page = 4096;
  return (count * sizeof(void*) + page - 1) / page * page;
}

}  // namespace

JobTable::JobTable() : table_(make_buckets(kFirstBuckets)) {}

JobTable::Buckets JobTable::make_buckets(size_t count) const {
  const size_t bytes = mapped_bytes(count);
  void* memory = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) throw std::bad_alloc();
  madvise(memory, bytes, MADV_NOHUGEPAGE);  // see the class comment
  Buckets b;
  b.heads = static_cast<Job**>(memory);
  b.count = count;
  while ((size_t{1} << b.shift) < count) ++b.shift;
  return b;
}

void JobTable::free_buckets(Buckets& b) {
  if (b.heads != nullptr) munmap(b.heads, mapped_bytes(b.count));
  b = Buckets{};
}

size_t JobTable::Buckets::index(uint64_t id) const {
  // Ids are handed out in order and mostly looked up near each other (the
  // jobs just delivered are the ones acked), so keep neighbours in
  // neighbouring buckets, cache lines apart at most: the low bits, folded
  // with the bits above the table size so that ids a table's width apart
  // (or any other stride) still spread over all the buckets.
  return static_cast<size_t>(id ^ (id >> shift)) & (count - 1);
}

void JobTable::grow_if_due() {
  if (size_ < table_.count) return;
  Prefaulter* prefaulter = memory_.prefaulter();
  if (prefaulter != nullptr && next_.heads == nullptr) {
    next_ = make_buckets(table_.count * 2);
    next_ready_ = std::make_shared<std::atomic<bool>>(false);
    prefaulter->populate(next_.heads, mapped_bytes(next_.count), next_ready_);
  }
  const bool waiting = next_.heads != nullptr && !next_ready_->load(std::memory_order_acquire);
  if (waiting && size_ < table_.count / 4 * kMaxWaitingLoadQuarters) return;
  start_growing(table_.count * 2);
}

Job* JobTable::emplace(uint64_t id, Queue* queue, std::string_view payload) {
  grow_if_due();
  move_chains(kChainsPerStep);
  Job* job = new (memory_.allocate(sizeof(Job) + payload.size())) Job{};
  job->id = id;
  job->queue = queue;
  job->slot = kNoSlot;
  job->payload_size = static_cast<uint32_t>(payload.size());
  if (!payload.empty()) std::memcpy(job + 1, payload.data(), payload.size());
  job->one_line = std::memchr(payload.data(), '\n', payload.size()) == nullptr &&
                  std::memchr(payload.data(), '\r', payload.size()) == nullptr;
  table_.push(job);
  ++size_;
  return job;
}

void JobTable::start_growing(size_t count) {
  finish_growing();  // never two old arrays at once
  draining_ = table_;
  if (next_.count == count) {
    table_ = next_;
    next_ = Buckets{};
  } else {
    free_buckets(next_);
    table_ = make_buckets(count);
  }
  next_ready_.reset();
  drained_ = 0;
}

void JobTable::move_chains(size_t n) {
  if (draining_.heads == nullptr) return;
  for (; drained_ < draining_.count && n > 0; ++drained_, --n) {
    Job* job = draining_.heads[drained_];
    draining_.heads[drained_] = nullptr;
    while (job != nullptr) {
      Job* next = job->next_in_table;
      table_.push(job);
      job = next;
    }
  }
  if (drained_ == draining_.count) free_buckets(draining_);
}

void JobTable::free_job(Job* job) {
  if (job->has_extras) extras_.erase(job->id);
  const size_t bytes = sizeof(Job) + job->payload_size;
  job->~Job();
  memory_.deallocate(job, bytes);
}

size_t JobTable::release_empty_buckets() {
  if (size_ != 0 || growing() || next_.heads != nullptr || table_.count <= kFirstBuckets) return 0;
  const size_t bytes = mapped_bytes(table_.count);
  if (madvise(table_.heads, bytes, MADV_DONTNEED) != 0) return 0;
  return bytes;
}

JobTable::~JobTable() {
  for (Buckets* b : {&table_, &draining_}) {
    for (size_t i = 0; i < b->count; ++i) {
      for (Job* job = b->heads[i]; job != nullptr;) {
        Job* next = job->next_in_table;
        free_job(job);
        job = next;
      }
    }
    free_buckets(*b);
  }
  free_buckets(next_);
}

Job* JobTable::Buckets::find(uint64_t id) const {
  for (Job* job = heads[index(id)]; job != nullptr; job = job->next_in_table) {
    if (job->id == id) return job;
  }
  return nullptr;
}

void JobTable::Buckets::push(Job* job) {
  Job*& head = heads[index(job->id)];
  job->next_in_table = head;
  head = job;
}

Job* JobTable::find(uint64_t id) const {
  if (Job* job = table_.find(id)) return job;
  return draining_.heads != nullptr ? draining_.find(id) : nullptr;
}

void JobTable::erase(Job* job) {
  Job** link = &table_.heads[table_.index(job->id)];
  while (*link != nullptr && *link != job) link = &(*link)->next_in_table;
  if (*link == nullptr) {
    // Not moved yet: still in the old array.
    link = &draining_.heads[draining_.index(job->id)];
    while (*link != job) link = &(*link)->next_in_table;
  }
  *link = job->next_in_table;
  --size_;
  free_job(job);
  move_chains(kChainsPerStep);
}

void JobTable::reserve(size_t n) {
  size_t want = table_.count;
  while (want < n) want *= 2;
  if (want > table_.count) start_growing(want);
  finish_growing();
}

}  // namespace tq::engine

// A million pending jobs must fit in 200 MB: every byte here costs a MB.
static_assert(sizeof(tq::engine::Job) == 56, "Job grew: mind the memory budget (README, bench/)");
