#include "server/figures.h"

#include <uv.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "protocol/command_table.h"
#include "server/exposition.h"

#ifndef TQ_VERSION
#define TQ_VERSION "0.0.0"
#endif

namespace tq::server {
namespace {

constexpr size_t kVerbs = static_cast<size_t>(protocol::Verb::kCount);

// "commands_ack" for each verb, in the command table's order; the label
// value ("ack") is a view into it.
const std::array<std::string, kVerbs>& verb_figure_names() {
  static const std::array<std::string, kVerbs> names = [] {
    std::array<std::string, kVerbs> made;
    for (const auto& spec : protocol::all_commands()) {
      std::string name = "commands_";
      for (char ch : spec.name) name += static_cast<char>(ch - 'A' + 'a');
      made[static_cast<size_t>(spec.verb)] = std::move(name);
    }
    return made;
  }();
  return names;
}

// Not only before delivery: a job given back after its TTL (NACK, a lease
// that ran out) expires then.
constexpr std::string_view kExpiredHelp =
    "Jobs whose TTL ran out while they waited: ready, delayed, or given back by NACK or a "
    "lease that ran out.";

// Not only limits: a delay raised after a schedule was set outlasts its TTL.
constexpr std::string_view kScheduleRefusedHelp =
    "Schedule firings refused (max_size, the server's limits, a disk nearly full, a TTL the "
    "queue's delay outlasts): no job was put; the schedule goes on.";

class FigureList {
 public:
  void gauge(std::string_view name, uint64_t value, std::string_view help,
             FigureUnit unit = FigureUnit::kNone) {
    list.push_back(Figure{name, FigureKind::kGauge, unit, value, {}, help, {}, {}, {}});
  }
  void counter(std::string_view name, uint64_t value, std::string_view help,
               FigureUnit unit = FigureUnit::kNone) {
    list.push_back(Figure{name, FigureKind::kCounter, unit, value, {}, help, {}, {}, {}});
  }
  void flag(std::string_view name, bool value, std::string_view help) {
    gauge(name, value ? 1 : 0, help);
  }
  void text(std::string_view name, std::string_view word, std::string_view help,
            std::string_view label = {}) {
    list.push_back(
        Figure{name, FigureKind::kText, FigureUnit::kNone, 0, word, help, {}, label, {}});
  }

  std::vector<Figure> list;
};

}  // namespace

std::vector<Figure> server_figures(const FigureSources& sources) {
  const engine::Engine& engine = sources.engine;
  const ServerStats& s = sources.stats;
  const engine::EngineCounters& c = engine.counters();
  const uint64_t uptime_seconds = (uv_hrtime() - s.started_at_ns) / 1'000'000'000;
  size_t rss = 0;
  if (uv_resident_set_memory(&rss) != 0) rss = 0;
  const engine::SlabAllocator::Stats jobs = engine.job_memory();
  const LoopMeter::Stats loop = s.loop.stats();
  using engine::JobState;
  constexpr FigureUnit kUs = FigureUnit::kMicroseconds;

  FigureList f;
  f.text("version", TQ_VERSION, "The version of tqd.");
  f.gauge("pid", static_cast<uint64_t>(uv_os_getpid()), "The process id of tqd.");
  f.gauge("uptime_seconds", uptime_seconds,
          "Seconds since tqd started, on a monotonic clock: a step of the wall clock does not "
          "move it.");
  f.gauge("connections_current", s.connections_current, "Client connections open now.");
  f.counter("connections_total", s.connections_total, "Client connections accepted.");
  f.counter("connections_refused", s.connections_refused,
            "Connections turned away with MAXCONN (limits.max_connections).");
  f.gauge("waiters", sources.waiters != nullptr ? sources.waiters->size() : 0,
          "Connections blocked in DEQUEUE ... WAIT.");
  f.gauge("queues", engine.queues().size(), "Queues.");
  f.gauge("jobs_ready", engine.count_in(JobState::kReady), "Jobs ready for delivery.");
  f.gauge("jobs_held", engine.count_in(JobState::kHeld),
          "Ready jobs waiting for an earlier job of their group (PUT ... GROUP) to finish.");
  f.gauge("jobs_delayed", engine.count_in(JobState::kDelayed),
          "Jobs waiting for a delay or a retry backoff to end.");
  f.gauge("jobs_leased", engine.count_in(JobState::kLeased),
          "Jobs delivered and not yet acknowledged.");
  f.gauge("jobs_dead", engine.count_in(JobState::kDead), "Jobs in dead letters.");
  f.gauge("jobs_freeing", engine.jobs_disposing(),
          "Jobs PURGE or DROP removed, still being freed a step at a time (payload_bytes counts "
          "them until then).");
  // A paused queue waits on purpose: it would hide the queues that do not.
  int64_t max_head_wait = 0;
  const int64_t now = engine.now_ms();
  for (const auto& [name, queue] : engine.queues()) {
    if (!queue->paused) max_head_wait = std::max(max_head_wait, queue->head_wait_ms(now));
  }
  f.gauge("max_head_wait_ms", static_cast<uint64_t>(max_head_wait),
          "The longest head_wait_ms of any queue that is not paused: how long ready jobs have "
          "waited for a worker where workers are furthest behind.",
          FigureUnit::kMilliseconds);
  f.gauge("payload_bytes", engine.payload_bytes(), "Payload bytes of every job held.");
  f.gauge("schedule_payload_bytes", engine.schedule_payload_bytes(),
          "Payload bytes of every schedule; limits.max_payload_total counts them with the jobs'.");
  f.gauge("dedup_key_bytes", engine.dedup_key_bytes(),
          "About the memory of the dedup keys remembered; limits.max_payload_total counts it with "
          "the payloads.");
  f.gauge("memory_rss_bytes", rss, "The process's resident set.");
  f.gauge("memory_jobs_bytes", jobs.used_bytes + jobs.large_bytes,
          "Memory in the pages and blocks holding jobs.");
  f.gauge("memory_jobs_reserve_bytes", jobs.reserve_bytes, "Emptied job pages kept for reuse.");
  f.counter("jobs_enqueued_total", c.enqueued, "Jobs stored by ENQUEUE, PUT and schedules.");
  f.counter("jobs_duplicates_total", c.duplicates,
            "PUTs answered with an earlier job's id (dedup KEY); nothing stored.");
  f.counter("jobs_dequeued_total", c.dequeued, "Deliveries (leases) of jobs.");
  f.counter("jobs_acked_total", c.acked, "Jobs acknowledged (ACK).");
  f.counter("jobs_nacked_total", c.nacked, "Jobs given back (NACK).");
  f.counter("jobs_timed_out_total", c.timed_out, "Leases that ran out before an ACK.");
  f.counter("jobs_dead_total", c.dead,
            "Jobs moved to dead letters (their queue's own, or its dead_letter_queue).");
  f.counter("jobs_dead_forwarded_total", c.dead_forwarded,
            "Of those, jobs moved to their queue's dead_letter_queue.");
  f.counter("jobs_expired_total", c.expired, kExpiredHelp);
  f.counter("jobs_deleted_total", c.deleted, "Jobs removed by DELETE, PURGE or DROP.");
  f.counter("jobs_kicked_total", c.kicked,
            "Jobs KICKed: dead ones given another chance, delayed ones made ready.");
  f.counter("jobs_redriven_total", c.redriven,
            "Jobs REDRIVE moved from a dead-letter queue back to the queues they died in.");
  f.counter("jobs_dead_discarded_total", c.dead_discarded,
            "Dead jobs deleted for their queue's dead_retention or dead_max.");
  f.counter("jobs_scheduled_total", c.scheduled, "Jobs put by schedules (SCHEDULE).");
  f.counter("schedule_refused_total", c.schedule_refused, kScheduleRefusedHelp);
  f.counter("jobs_refused_total", c.refused,
            "ENQUEUEs and PUTs answered ERROR FULL (a queue's max_size, limits.max_jobs or "
            "max_payload_total, wal.min_free_disk): producers pushed back, nothing stored.");
  f.counter("commands_total", s.commands_total, "Requests run.");
  f.counter("errors_total", s.errors_total, "ERROR replies of any kind.");
  f.counter("auth_failures_total", s.auth_failures, "Wrong AUTH passwords.");
  f.counter("commands_denied_total", s.commands_denied,
            "Admin commands refused (NOPERM): the connection had not authenticated as admin.");
  f.counter("closed_idle_total", s.timeouts_idle,
            "Connections closed for sending nothing (limits.idle_timeout).");
  f.counter("closed_slow_request_total", s.timeouts_request,
            "Connections closed for sending a request too slowly (limits.request_timeout).");
  f.counter("closed_not_reading_total", s.timeouts_send,
            "Connections closed for not reading their replies (limits.send_timeout).");
  f.counter("closed_over_memory_total", s.closed_over_memory,
            "Connections that did not keep up, closed because all connections' buffers passed "
            "limits.max_client_memory (the biggest first).");
  f.gauge("client_buffer_bytes", s.client_buffer_bytes,
          "Unsent replies and unread requests of all connections, at the last once-a-second "
          "check.");
  f.counter("tls_handshakes_total", s.tls_handshakes,
            "TLS connections that completed their handshake (tls.port).");
  f.counter("tls_failures_total", s.tls_failures,
            "TLS connections closed for a failed handshake, or for speaking plaintext.");
  f.gauge("tls_cert_expires_at_ms", static_cast<uint64_t>(s.tls_cert_expires_at_ms),
          "When the TLS certificate served to new connections expires (notAfter), Unix time; "
          "0: no TLS listener.",
          FigureUnit::kMilliseconds);
  f.counter("config_reloads_total", s.config_reloads,
            "Reloads of the settings (SIGHUP or RELOAD) that were read and applied, one that "
            "changed nothing included.");
  f.counter("config_reload_failures_total", s.config_reload_failures,
            "Reloads refused for a file that could not be read or used; nothing changed.");
  f.gauge("config_pending_restart", s.config_pending_restart,
          "Settings changed in the file at the last reload that apply only after a restart.");
  f.gauge("loop_busy_pct", static_cast<uint64_t>(std::llround(loop.busy_pct * 10)),
          "Share of the last second the event loop spent working.", FigureUnit::kTenthsPercent);
  f.counter("loop_busy_us_total", loop.busy_ns_total / 1000, "Time the event loop spent working.",
            kUs);
  f.counter("loop_iterations_total", loop.iterations, "Event loop iterations.");
  f.gauge("loop_max_busy_us", loop.max_busy_ns / 1000,
          "The longest single event loop iteration since tqd started, which every client waited "
          "through.",
          kUs);
  f.gauge("loop_max_busy_1m_us", loop.recent_max_busy_ns / 1000,
          "The longest single event loop iteration in the last minute (60-70 s).", kUs);
  f.counter("loop_slow_iterations_total", loop.slow_iterations,
            "Event loop iterations longer than 10 ms.");
  f.flag("wal_enabled", sources.log != nullptr,
         "1 when jobs are logged to disk; 0 (wal.enabled: false): no wal figures follow.");
  if (sources.log != nullptr) {
    const wal::LogStats w = sources.log->stats();
    const wal::WriterStats& ws = w.writer;
    f.text("wal_fsync", wal::fsync_policy_name(sources.log->policy()),
           "The log's wal.fsync policy.", "policy");
    f.flag("wal_healthy", w.healthy, "1 while the log can be written; 0: writes are refused.");
    f.gauge("wal_segments", w.segments, "Log files.");
    f.gauge("wal_bytes", w.bytes, "Bytes written across the log files.");
    f.counter("wal_records_total", w.records_appended, "Records appended to the log.");
    f.gauge("wal_last_seq", w.last_seq, "Number of the newest record appended.");
    f.gauge("wal_durable_seq", w.durable_seq,
            "Number of the newest record on disk as wal.fsync promises.");
    f.counter("wal_batches_total", ws.batches, "Batches written (group commit).");
    f.counter("wal_fsyncs_total", ws.fsyncs, "Syncs of the log.");
    f.counter("wal_spare_segments_used_total", ws.spare_segments_used,
              "Log files made ahead and taken into use.");
    f.counter("wal_spare_segment_failures_total", ws.spare_failures,
              "Log files that could not be made ahead (often a disk filling up); tqd's log "
              "says why.");
    f.gauge("wal_last_fsync_us", static_cast<uint64_t>(ws.last_fsync_us),
            "Duration of the last sync.", kUs);
    f.gauge("wal_max_fsync_us", static_cast<uint64_t>(ws.max_fsync_us),
            "Duration of the longest sync.", kUs);
    f.counter("wal_fsync_us_total", static_cast<uint64_t>(ws.fsync_us_total),
              "Time spent syncing the log.", kUs);
    f.counter("wal_io_errors_total", ws.io_errors, "Failed writes or syncs of the log.");
    f.counter("wal_segments_deleted_total", w.segments_deleted, "Log files deleted.");
    f.gauge("wal_disk_free_bytes", s.disk_free_bytes,
            "Free bytes on the log's disk, measured once a second and at each new log file.");
    f.gauge("wal_disk_reserve_bytes", s.disk_reserve_bytes,
            "Free bytes on the log's disk under which new jobs are refused (FULL): "
            "wal.min_free_disk, at least two log files; 0: no reserve.");
    f.flag("wal_disk_low", !sources.engine.intake_open(),
           "1 while the log's disk has less free than wal_disk_reserve_bytes (and until it has a "
           "log file more): new jobs are refused (FULL), the rest is served.");
    f.counter("wal_disk_low_total", s.disk_low_total,
              "Times the log's disk went below wal_disk_reserve_bytes.");
    if (sources.journal != nullptr) {
      const JournalStats j = sources.journal->stats();
      f.gauge("wal_live_bytes", j.live_bytes,
              "Bytes of log the live state needs, estimated per object (compaction_ratio "
              "applies to it).");
      f.counter("wal_compactions_total", j.compactions, "Log compactions finished.");
      f.counter("wal_moved_records_total", j.moved_records, "Records rewritten by compactions.");
      f.flag("wal_compacting", j.compacting, "1 while a compaction is under way.");
    }
    f.counter("wal_backups_total", s.backups, "Backups made (BACKUP).");
    f.counter("wal_backups_failed_total", s.backups_failed,
              "Backups that failed or were cancelled by a shutdown.");
    f.flag("wal_backup_running", s.backup_running, "1 while a backup is being made.");
    f.counter("wal_backups_removed_total", s.backups_removed,
              "Older backups removed after a new one, for wal.backup_keep.");
    f.counter("wal_backup_prune_errors_total", s.backup_prune_errors,
              "Backups after which an older one could not be removed (see the log).");
    f.gauge("wal_last_backup_at_ms", static_cast<uint64_t>(s.last_backup_at_ms),
            "When the newest backup was asked for (its contents' moment), Unix time: the last "
            "one made since start, or else the newest in wal.backup_dir at start-up; 0: none.",
            FigureUnit::kMilliseconds);
    f.gauge("wal_last_backup_bytes", s.last_backup_bytes, "Log bytes the last backup copied.");
    f.gauge("wal_last_backup_duration_ms", s.last_backup_duration_ms,
            "How long the last backup took, from BACKUP to its reply.", FigureUnit::kMilliseconds);
  }
  const auto& verb_names = verb_figure_names();
  for (const auto& spec : protocol::all_commands()) {
    const size_t verb = static_cast<size_t>(spec.verb);
    const std::string& name = verb_names[verb];
    Figure figure;
    figure.name = name;
    figure.kind = FigureKind::kCounter;
    figure.value = s.commands_by_verb[verb];
    figure.help = "Requests run, by verb.";
    figure.family = "commands_by_verb";
    figure.label = "verb";
    figure.label_value = std::string_view(name).substr(std::string_view("commands_").size());
    f.list.push_back(figure);
  }
  return std::move(f.list);
}

std::vector<Figure> queue_figures(const engine::Queue& q, int64_t now_ms) {
  const engine::QueueCounters& c = q.counters;
  FigureList f;
  f.flag("paused", q.paused, "1 while the queue is paused (PAUSE).");
  f.gauge("paused_until_ms", static_cast<uint64_t>(q.paused ? q.resume_at_ms : 0),
          "When a timed PAUSE ends, Unix time; 0 when not paused or paused until RESUME.",
          FigureUnit::kMilliseconds);
  f.gauge("ready", q.ready.size(), "Jobs ready for delivery.");
  f.gauge("head_wait_ms", static_cast<uint64_t>(q.head_wait_ms(now_ms)),
          "How long the ready jobs next in line (the first of each priority) have waited for a "
          "worker: the longest of them; 0 when none is ready.",
          FigureUnit::kMilliseconds);
  f.gauge("held", q.held.size(),
          "Ready jobs waiting for an earlier job of their group (PUT ... GROUP) to finish.");
  f.gauge("delayed", q.delayed.size(), "Jobs waiting for a delay or a retry backoff to end.");
  f.gauge("leased", q.leased.size(), "Jobs delivered and not yet acknowledged.");
  f.gauge("dead", q.dead.size(), "Jobs in dead letters.");
  f.gauge("waiters", q.waiters, "Connections blocked in DEQUEUE ... WAIT on the queue.");
  f.gauge("dedup_keys", q.dedup.size(), "PUT ... KEY keys remembered within dedup_window.");
  f.gauge("groups", q.groups.size(), "Message groups (PUT ... GROUP) with jobs that are not dead.");
  f.gauge("schedules", q.schedules.size(), "Schedules (SCHEDULE) of the queue.");
  f.counter("enqueued_total", c.enqueued, "Jobs stored by ENQUEUE, PUT and schedules.");
  f.counter("duplicates_total", c.duplicates,
            "PUTs answered with an earlier job's id (dedup KEY); nothing stored.");
  f.counter("dequeued_total", c.dequeued, "Deliveries (leases) of jobs.");
  f.counter("acked_total", c.acked, "Jobs acknowledged (ACK).");
  f.counter("nacked_total", c.nacked, "Jobs given back (NACK).");
  f.counter("timed_out_total", c.timed_out, "Leases that ran out before an ACK.");
  f.counter("dead_total", c.dead,
            "Jobs moved to dead letters (the queue's own, or its dead_letter_queue).");
  f.counter("dead_forwarded_total", c.dead_forwarded,
            "Of those, jobs moved to the queue's dead_letter_queue.");
  f.counter("dead_received_total", c.dead_received,
            "Jobs that died in a queue whose dead_letter_queue is this one, and moved here "
            "(enqueued_total does not count them).");
  f.counter("expired_total", c.expired, kExpiredHelp);
  // DROP deletes jobs too, but the queue's figures go with it.
  f.counter("deleted_total", c.deleted, "Jobs removed by DELETE or PURGE (PURGE ... DEAD too).");
  f.counter("kicked_total", c.kicked,
            "Jobs KICKed: dead ones given another chance, delayed ones made ready.");
  f.counter("redriven_total", c.redriven,
            "Jobs REDRIVE moved from this queue back to the queues they died in.");
  f.counter("redriven_in_total", c.redriven_in,
            "Jobs REDRIVE brought back to this queue, where they had died (enqueued_total does "
            "not count them).");
  f.counter("dead_discarded_total", c.dead_discarded,
            "Dead jobs deleted for the queue's dead_retention or dead_max.");
  f.counter("scheduled_total", c.scheduled, "Jobs put by the queue's schedules (SCHEDULE).");
  f.counter("schedule_refused_total", c.schedule_refused, kScheduleRefusedHelp);
  f.counter("refused_total", c.refused,
            "ENQUEUEs and PUTs to the queue answered ERROR FULL (its max_size, the server's "
            "limits, wal.min_free_disk): producers pushed back, nothing stored.");
  f.gauge("ack_timeout_ms", static_cast<uint64_t>(q.settings.ack_timeout_ms),
          "The queue's ack_timeout: how long a lease lasts.", FigureUnit::kMilliseconds);
  return std::move(f.list);
}

std::string stats_value(const Figure& figure) {
  if (figure.kind == FigureKind::kText) return std::string(figure.text);
  if (figure.unit == FigureUnit::kTenthsPercent) {
    return std::to_string(figure.value / 10) + "." + std::to_string(figure.value % 10);
  }
  return std::to_string(figure.value);
}

std::string metrics_exposition(const FigureSources& sources) {
  ExpositionInSteps text;
  while (!text.step(sources, std::chrono::nanoseconds::max())) {
  }
  return text.finish();
}

bool ExpositionInSteps::step(const FigureSources& sources, std::chrono::nanoseconds budget) {
  constexpr size_t kQueuesBetweenClockReads = 16;
  const auto start = std::chrono::steady_clock::now();
  if (!started_) {
    text_.add_server(server_figures(sources));
    started_ = true;
  }
  const int64_t now = sources.engine.now_ms();
  const auto& queues = sources.engine.queues();
  size_t added = 0;
  for (auto it = queues.lower_bound(next_queue_); it != queues.end(); ++it) {
    if (added > 0 && added % kQueuesBetweenClockReads == 0 &&
        std::chrono::steady_clock::now() - start >= budget) {
      next_queue_ = it->first;
      return false;
    }
    const auto& [name, queue] = *it;
    text_.add_queue(name, queue_figures(*queue, now));
    text_.add_queue_histogram(name, "tq_queue_wait_seconds",
                              "How long each delivered job had been ready before a worker took "
                              "it (to within a few milliseconds).",
                              queue->waits);
    ++added;
  }
  return true;
}

}  // namespace tq::server
