// The server's upkeep, once a second and when idle: the disk's room for the
// log, the clients' memory, and giving freed memory back to the kernel.
#include "server/server.h"

#include <malloc.h>

#include <algorithm>

#include "server/log.h"

namespace tq::server {

void Server::on_housekeeping(uv_timer_t* handle) {
  auto* self = static_cast<Server*>(handle->data);
  const Config& c = self->config_;
  const uint64_t now = uv_now(self->loop_);
  // Job memory left empty for 5-10 s goes back to the kernel; a queue that
  // refills sooner keeps its pages (SlabAllocator says why).
  constexpr uint64_t kIdleMemoryTicks = 5;
  constexpr uint64_t kMemoryReleaseEveryMs = 10;  // between slices (on_memory_release)
  if (++self->housekeeping_ticks_ % kIdleMemoryTicks == 0 &&
      self->engine_.mark_idle_job_memory() > 0) {
    uv_timer_start(&self->memory_release_, on_memory_release, 0, kMemoryReleaseEveryMs);
  }
  self->maybe_release_freed_memory();
  // A server that runs for months sees its certificate age: warn again once
  // a day, not only at start-up and reload.
  constexpr uint64_t kTlsExpiryCheckTicks = 24 * 60 * 60;
  if (self->tls_ &&
      self->housekeeping_ticks_ - self->tls_expiry_checked_ticks_ >= kTlsExpiryCheckTicks) {
    self->warn_tls_expiry();
  }
  for (auto& [id, connection] : self->connections_) {
    switch (connection->enforce_timeouts(now, static_cast<uint64_t>(c.idle_timeout_ms),
                                         static_cast<uint64_t>(c.request_timeout_ms),
                                         static_cast<uint64_t>(c.send_timeout_ms))) {
      case Connection::Timeout::kNone:
        break;
      case Connection::Timeout::kIdle:
        ++self->stats_.timeouts_idle;
        break;
      case Connection::Timeout::kSlowRequest:
        ++self->stats_.timeouts_request;
        break;
      case Connection::Timeout::kNotReading:
        ++self->stats_.timeouts_send;
        break;
    }
  }
  self->limit_client_memory();
  self->sweep_if_clock_jumped();
  self->check_disk_room();
  self->warn_spare_failures();
}

void Server::warn_spare_failures() {
  if (log_ == nullptr) return;
  const wal::WriterStats w = log_->stats().writer;
  if (w.spare_failures <= spare_failures_seen_) return;
  spare_failures_seen_ = w.spare_failures;
  const uint64_t now = uv_now(loop_);
  if (last_spare_warning_ms_ != 0 && now - last_spare_warning_ms_ < 60'000) return;
  last_spare_warning_ms_ = now;
  LOG_WARN(
      "the next log file could not be made ahead (%s); the log makes it when it needs it, "
      "and that may fail the same way (wal_spare_segment_failures_total)",
      w.spare_last_failure.c_str());
}

void Server::check_disk_room() {
  // Why a reserve: segments are preallocated, so records only fail for room
  // when a new segment is made. A disk filled by tqd's own backlog then
  // refused every write, ACKs and DELETEs included: workers could not drain
  // it, and no space could come back (a restart gave a few dozen ACKs).
  // With the reserve, new jobs stop first and everything that drains goes on.
  if (log_ == nullptr) return;
  if (const wal::Status gone = log_->check_in_place(); !gone.ok()) {
    // Once: the log fails for good from here, and says so (take_log_progress
    // logs it). Replies waiting for records to be durable get ERROR IO now;
    // the next start there would find no log and begin an empty one, job
    // ids from 1 again.
    take_log_progress();
  }
  if (log_->directory_gone()) return;  // no disk left to measure, and nothing more to refuse
  disk_checked_segment_ = log_->current_segment();
  const uint64_t setting = config_.wal_min_free_disk;
  const uint64_t reserve = setting == 0 ? 0 : std::max(setting, 2 * log_->segment_bytes());
  // Shown as it is enforced, not as it was set: the floor of two log files
  // makes a small setting larger, and an alert on the free space wants it.
  stats_.disk_reserve_bytes = reserve;
  const wal::Result<uint64_t> free = log_->free_disk_bytes();
  if (!free) {
    // Unknown is not low: nothing is refused, or held back, for a figure
    // that cannot be had.
    if (!disk_check_failed_) {
      LOG_WARN(
          "cannot measure the free space of the log's disk: %s; wal.min_free_disk is not "
          "enforced until it can be",
          free.error().message().c_str());
    }
    disk_check_failed_ = true;
    if (journal_ != nullptr) journal_->set_disk_free(UINT64_MAX);
    engine_.open_intake();
    return;
  }
  disk_check_failed_ = false;
  stats_.disk_free_bytes = *free;
  if (journal_ != nullptr) journal_->set_disk_free(*free);
  // Back above it by a segment before new jobs are taken again: a file
  // deleted by a drain would otherwise let producers fill it at once, the
  // intake flapping with a warning each time.
  const bool was_low = !engine_.intake_open();  // closed only here
  const uint64_t threshold = was_low ? reserve + log_->segment_bytes() : reserve;
  const bool low = reserve > 0 && *free < threshold;
  auto mib = [](uint64_t bytes) {
    return bytes < (1u << 20) ? std::to_string(bytes >> 10) + " KiB"
                              : std::to_string(bytes >> 20) + " MiB";
  };
  if (low) {
    engine_.close_intake(
        "the disk holding the log has " + mib(*free) + " free, under wal.min_free_disk (" +
        mib(reserve) + (threshold > reserve ? ", and a log file more to take new jobs again" : "") +
        "): new jobs are refused until workers drain queues or space is freed; try again later");
  } else {
    engine_.open_intake();
  }
  if (low == was_low) return;
  if (low) {
    ++stats_.disk_low_total;
    LOG_WARN(
        "the log's disk has %s free, under wal.min_free_disk (%s): refusing new jobs (FULL) "
        "until there is more; ACK, DELETE and the rest are served",
        mib(*free).c_str(), mib(reserve).c_str());
  } else {
    LOG_INFO("the log's disk has %s free again: accepting new jobs", mib(*free).c_str());
  }
}

void Server::limit_client_memory() {
  // Each connection is bounded (a MiB of input behind a wait or in a line,
  // a MiB of replies plus one), but ten thousand of them are not: the sum
  // is the last line before the kernel's OOM killer, which would take every
  // client's jobs in memory with it. Once a second is enough to catch a
  // crowd that grows; one client alone cannot pass its own bounds. Only
  // clients that do not keep up are closed (Connection::stuck), the biggest
  // first: a worker reading a 16 MiB batch steadily holds as much as a
  // hostile client, and closing it would strand its batch in leases.
  std::vector<std::pair<size_t, Connection*>> stuck;
  uint64_t total = 0;
  const uint64_t now = uv_now(loop_);
  for (auto& [id, connection] : connections_) {
    const size_t bytes = connection->buffered_bytes();
    if (bytes == 0) continue;
    total += bytes;
    if (connection->stuck(now)) stuck.emplace_back(bytes, connection.get());
  }
  stats_.client_buffer_bytes = total;
  const uint64_t limit = config_.max_client_memory;
  if (limit == 0 || total <= limit) return;
  std::sort(stuck.begin(), stuck.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  const uint64_t before = total;
  for (const auto& [bytes, connection] : stuck) {
    if (total <= limit) break;
    LOG_WARN(
        "connection %llu (%s) closed: it held %zu bytes its client did not take, and all "
        "connections' buffers %llu, more than limits.max_client_memory (%llu)",
        static_cast<unsigned long long>(connection->id()), connection->peer_address().c_str(),
        bytes, static_cast<unsigned long long>(before), static_cast<unsigned long long>(limit));
    connection->close();
    total -= bytes;
    ++stats_.closed_over_memory;
  }
  stats_.client_buffer_bytes = total;
  if (total > limit && (last_memory_warning_ms_ == 0 || now - last_memory_warning_ms_ >= 60'000)) {
    last_memory_warning_ms_ = now;
    LOG_WARN(
        "connections' buffers hold %llu bytes, more than limits.max_client_memory (%llu), and "
        "their clients are reading: none closed for it (said once a minute)",
        static_cast<unsigned long long>(total), static_cast<unsigned long long>(limit));
  }
}

void Server::on_memory_release(uv_timer_t* handle) {
  auto* self = static_cast<Server*>(handle->data);
  // 1024 pages (4 MiB) a slice took about 0.4 ms here: a drained backlog of
  // 160 MB goes back in 0.4 s, with no iteration of the loop held long.
  constexpr size_t kPagesPerSlice = 1024;
  if (self->engine_.release_marked_job_memory(kPagesPerSlice) == 0) {
    uv_timer_stop(handle);
    self->heap_trim_due_ = true;  // a backlog drained: see maybe_release_freed_memory
  }
}

void Server::maybe_release_freed_memory() {
  // A drained backlog leaves the ready sets' and the journal's grown
  // buffers, and payloads over 200 bytes (malloc's, not the job pages'),
  // freed inside malloc's heap below memory still in use, where glibc does
  // not return them by itself: after 8 million jobs came and went, 65 MB of
  // heap and 64 MB of empty buckets stayed resident (RSS 145 MB with
  // nothing queued); malloc_trim gave 48 MB of it back, in a few ms.
  //
  // Due after the job pages of a drain went back, or once a second's look
  // saw 64 MiB of jobs held since the last time (a backlog of big payloads
  // has no job pages to give back). Only once little is left among the
  // freed memory: malloc_trim walks the heap's free chunks with its lock
  // held, and each live object among them costs it a walk and a madvise
  // (about a microsecond; a connection, with its buffers, 15-30): half a
  // million 1000-byte payloads still queued among the freed half took 45
  // ms, 200,000 dedup keys among freed 5000-byte dead reasons 261 ms, 8,000
  // connections waiting in DEQUEUE 170-265 ms. Few left, the free space
  // coalesces into a few chunks: about 40 ms a GB. (Not none left: a
  // schedule's firings keep a key each, and a dead job may stay for ever.)
  constexpr uint64_t kWorthTrimming = 64 << 20;
  constexpr size_t kFewObjects = 10'000;
  constexpr size_t kFewConnections = 1'000;
  // Jobs a PURGE or DROP removed (and their groups' entries) are still
  // allocated until freed, in steps: a trim then would walk them all.
  if (engine_.disposing()) return;
  const size_t jobs = engine_.job_count();
  const uint64_t held = engine_.payload_bytes() + jobs * sizeof(engine::Job);
  peak_held_since_trim_ = std::max(peak_held_since_trim_, held);
  if (!heap_trim_due_ && peak_held_since_trim_ < kWorthTrimming) return;
  const size_t keys = engine_.dedup_key_bytes() / engine::dedup_key_cost("");
  if (jobs + keys > kFewObjects || connections_.size() > kFewConnections) return;
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(&memory_release_))) return;
  heap_trim_due_ = false;
  peak_held_since_trim_ = 0;
  const uint64_t started = uv_hrtime();
  const size_t buckets = engine_.release_empty_job_table();
  malloc_trim(0);
  LOG_DEBUG("memory: gave back freed heap and %zu bytes of empty job buckets in %.2f ms", buckets,
            static_cast<double>(uv_hrtime() - started) / 1e6);
}

}  // namespace tq::server
