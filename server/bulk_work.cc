#include "server/bulk_work.h"

#include <algorithm>

namespace tq::server {

engine::Status run_bulk_step(engine::Engine& engine, BulkTask& task, size_t max_jobs) {
  const engine::Queue* queue = engine.find_queue(task.queue);
  const bool first = task.steps++ == 0;
  if (first) {
    if (queue != nullptr) {
      task.queue_number = queue->number;
      // The dead jobs there are now, at most: jobs that die meanwhile (a
      // worker failing every job at once) would keep KICK going for ever.
      if (task.kind != BulkTask::Kind::kRedrive) {
        task.left = std::min(task.left, queue->dead.size());
      }
    }
  } else if (queue == nullptr || queue->number != task.queue_number) {
    // Dropped since, and perhaps created again (DROP and CREATE in one
    // read): a queue of that name now is another, whose jobs it never took.
    task.finished = true;
    return engine::make_error(engine::Errc::kNoQueue, "queue " + task.queue + " was dropped");
  }
  const size_t n = std::min(task.left, max_jobs);
  engine::Result<size_t> did = size_t{0};
  switch (task.kind) {
    case BulkTask::Kind::kKick:
      did = engine.kick(task.queue, n);
      break;
    case BulkTask::Kind::kPurgeDead:
      did = engine.purge_dead(task.queue, n);
      break;
    case BulkTask::Kind::kRedrive:
      if (first) {
        // Every id it may move, unchecked (a copy of the queue's lists),
        // oldest first when it moves only some: each step checks its share.
        auto chosen = engine.redrive_candidates(task.queue, task.left != SIZE_MAX);
        if (!chosen.ok()) {
          task.finished = true;
          return chosen.error();
        }
        task.chosen_ids = std::move(chosen.value());
      }
      // No more ids than moves left: none beyond REDRIVE's n.
      did = engine.redrive_next(task.queue, task.chosen_ids, n);
      break;
  }
  if (!did.ok()) {
    task.finished = true;
    return did.error();
  }
  task.done += did.value();
  task.left -= did.value();
  if (task.kind == BulkTask::Kind::kRedrive) {
    if (task.chosen_ids.done()) task.left = 0;  // every id tried
  } else if (did.value() < n) {
    task.left = 0;  // fewer than asked for: none are left
  }
  if (task.left == 0) task.finished = true;
  return engine::Ok{};
}

std::string bulk_reply(const BulkTask& task) {
  const char* word = "kicked";
  if (task.kind == BulkTask::Kind::kRedrive) word = "redriven";
  if (task.kind == BulkTask::Kind::kPurgeDead) word = "purged";
  return std::string("OK ") + word + " " + std::to_string(task.done) + "\n";
}

std::string bulk_title(const BulkTask& task) {
  const char* verb = "KICK ";
  if (task.kind == BulkTask::Kind::kRedrive) verb = "REDRIVE ";
  if (task.kind == BulkTask::Kind::kPurgeDead) verb = "PURGE ";
  std::string title = verb + task.queue;
  if (task.kind == BulkTask::Kind::kPurgeDead) title += " DEAD";
  return title;
}

void BulkRunner::start(uint64_t connection_id, BulkTask task) {
  tasks_.push_back(Entry{connection_id, std::move(task), clock_()});
}

bool BulkRunner::run(engine::Engine& engine, uint64_t budget_ns) {
  const uint64_t began = clock_();
  // Round the tasks, a step each, from where the last run stopped: with
  // several under way, each moves on.
  while (!tasks_.empty()) {
    if (next_ >= tasks_.size()) next_ = 0;
    BulkTask& task = tasks_[next_].task;
    (void)run_bulk_step(engine, task, kBulkStepJobs);  // an error finishes it
    if (task.finished) {
      finish(next_);  // the next one moves into its place
    } else {
      ++next_;
    }
    if (clock_() - began >= budget_ns) break;
  }
  return !tasks_.empty();
}

void BulkRunner::finish_all() {
  while (!tasks_.empty()) finish(tasks_.size() - 1);
  next_ = 0;
}

void BulkRunner::finish(size_t index) {
  Entry entry = std::move(tasks_[index]);
  tasks_.erase(tasks_.begin() + static_cast<std::ptrdiff_t>(index));
  done_(entry.connection_id, entry.task, clock_() - entry.started_ns);
}

}  // namespace tq::server
