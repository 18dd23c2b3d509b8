#include "server/daemon.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "server/config_reload.h"
#include "server/log.h"
#include "server/queue_settings.h"
#include "wal/run_marker.h"

namespace tq::server {
namespace {

// The kernel's transparent huge page mode: "always", "madvise" or "never"
// (the bracketed word of the sysfs file), or "" where there is no such file.
std::string transparent_huge_page_mode() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  std::getline(in, line);
  const size_t open = line.find('[');
  const size_t close = line.find(']', open);
  if (open == std::string::npos || close == std::string::npos) return "";
  return line.substr(open + 1, close - open - 1);
}

// server.huge_pages asks; the kernel decides. Said at start, so an operator
// who turned it on knows whether it took.
void say_huge_pages(bool wanted) {
  if (!wanted) return;
  const std::string mode = transparent_huge_page_mode();
  if (mode == "always" || mode == "madvise") {
    LOG_INFO("server.huge_pages: job memory in transparent huge pages (kernel mode %s)",
             mode.c_str());
  } else {
    LOG_WARN(
        "server.huge_pages is on, but this kernel's transparent huge pages are %s "
        "(/sys/kernel/mm/transparent_hugepage/enabled): job memory stays in 4 KiB pages",
        mode.empty() ? "not available" : mode.c_str());
  }
}

// Says, loudly, each piece of damage that --wal-recover skipped.
class LoggingReporter final : public wal::Reporter {
 public:
  void dropped(const std::string& file, uint64_t offset, uint64_t bytes,
               const std::string& reason) override {
    LOG_ERROR("wal recover: DROPPED %llu bytes at %s offset %llu: %s",
              static_cast<unsigned long long>(bytes), file.c_str(),
              static_cast<unsigned long long>(offset), reason.c_str());
  }
};

engine::EngineLimits limits_of(const Config& config) {
  engine::EngineLimits limits;
  limits.auto_create_queues = config.auto_create_queues;
  limits.max_queues = config.max_queues;
  limits.max_jobs = config.max_jobs;
  limits.max_payload_total = config.max_payload_total;
  return limits;
}

uint64_t ids_issued_since_backup(int64_t made_at_ms, int64_t now_ms) {
  // At most one id per JOB record, and no tqd writes 2^24 records a second
  // (tq-bench's best is under 3M): so the seconds since the backup (plus
  // one, and never less than 2^32, for a clock set back) times 2^24 bound
  // what the original can have issued since. An unreadable marker gives
  // no time: 2^48, that rate for six months. Skipped ids cost nothing;
  // an id issued twice would let a late ACK or DELETE hit another job.
  constexpr uint64_t kMaxIdsPerSecond = uint64_t{1} << 24;
  if (made_at_ms < 0) return uint64_t{1} << 48;
  const uint64_t seconds =
      now_ms > made_at_ms ? static_cast<uint64_t>(now_ms - made_at_ms) / 1000 + 1 : 1;
  return std::max<uint64_t>(uint64_t{1} << 32,
                            std::min<uint64_t>(seconds, uint64_t{1} << 30) * kMaxIdsPerSecond);
}

}  // namespace

Daemon::Daemon(const Config& config, wal::FileSystem& fs, const engine::Clock& clock)
    : config_(config),
      fs_(fs),
      engine_(clock, limits_of(config), config.queue_defaults),
      journal_(engine_, config.compaction_ratio) {
  uv_loop_init(&loop_);
  uv_async_init(&loop_, &stop_, on_stop);
  stop_.data = this;
  // It must not keep the loop alive: the loop ends when the server has
  // closed its handles.
  uv_unref(reinterpret_cast<uv_handle_t*>(&stop_));
  stats_.started_at_ns = uv_hrtime();
  // Before replay, which allocates the most at once.
  engine_.prefault_job_memory();
  engine_.use_huge_pages_for_jobs(config.huge_pages);
  say_huge_pages(config.huge_pages);
}

Daemon::~Daemon() {
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&stop_))) {
    uv_close(reinterpret_cast<uv_handle_t*>(&stop_), nullptr);
  }
  if (watchdog_started_) uv_close(reinterpret_cast<uv_handle_t*>(&watchdog_), nullptr);
  if (status_started_) uv_close(reinterpret_cast<uv_handle_t*>(&status_timer_), nullptr);
  server_.reset();
  uv_run(&loop_, UV_RUN_DEFAULT);  // lets close callbacks run
  uv_loop_close(&loop_);
}

bool Daemon::check_log() {
  if (!config_.wal_enabled) {
    LOG_ERROR("wal.enabled is false: there is no log to check");
    return false;
  }
  // The declared queues too, as start() does: one the log's queues leave no
  // room for (limits.max_queues) stops a start.
  return open_log() == StartRefusal::kNone && declare_queues();
}

StartRefusal Daemon::open_log() {
  if (!config_.wal_enabled) {
    LOG_WARN(
        "wal.enabled is false: jobs live in memory only and nothing is written to %s; "
        "stopping or restarting tqd loses every job",
        config_.data_dir.c_str());
    if (config_.wal_recover) LOG_WARN("wal recover: nothing to recover, the log is disabled");
    engine_.set_observer(nullptr);  // no records to encode for a log that is not there
    return StartRefusal::kNone;
  }
  wal::LogOptions options;
  options.dir = config_.data_dir + "/wal";
  options.fsync = config_.fsync;
  options.fsync_interval_ms = config_.fsync_interval_ms;
  options.segment_bytes = config_.segment_bytes;
  options.spare_segment = config_.wal_zero_fill;
  options.recover = config_.wal_recover;

  // Named as the operator set it: the file system's words alone ("create
  // directory x: Not a directory") do not say which setting to fix.
  if (wal::Status s = fs_.create_dir(config_.data_dir); !s.ok()) {
    LOG_ERROR("server.data_dir (--data-dir) cannot be used: %s", s.message().c_str());
    // A file in the directory's place stays there; a mount not there yet,
    // or a permission, may change without the settings.
    return s.code() == wal::Status::Code::kInvalidArgument ? StartRefusal::kSettings
                                                           : StartRefusal::kMayPassLater;
  }
  LoggingReporter reporter;
  wal::OpenSummary summary;
  const int64_t started = engine_.now_ms();
  auto opened = wal::Log::open(
      fs_, options, reporter,
      [&](const wal::Record& record, uint32_t segment) { return journal_.apply(record, segment); },
      &summary, [&](uint64_t bytes) {
        // A guess from a typical job record (~130 bytes for 100 of payload):
        // too small only costs the usual growth later; too big costs memory.
        engine_.reserve_jobs(static_cast<size_t>(std::min<uint64_t>(bytes / 128, config_.max_jobs)));
      });
  for (const std::string& removed : summary.removed) LOG_WARN("wal: removed %s", removed.c_str());
  if (!opened) {
    const wal::Status& s = opened.error();
    LOG_ERROR("cannot open the log in %s (server.data_dir): %s", options.dir.c_str(),
              s.message().c_str());
    if (s.code() == wal::Status::Code::kCorruption) {
      LOG_ERROR(
          "the files are left as they are; to start anyway, skipping the damaged "
          "records (what they held is lost: jobs they added are gone, and jobs they finished or "
          "moved may come back as they were before), run tqd with --wal-recover");
      // The same bytes refuse the next start the same way.
      return StartRefusal::kLogData;
    }
    return StartRefusal::kMayPassLater;  // the lock held, an I/O error
  }
  log_ = std::move(opened).value();
  // A new log makes its first file at its first write: on a disk with less
  // room than that file, tqd served, and refused the first CREATE with
  // ERROR IO. (A log that has files goes on: its current one has room, and
  // workers may need to drain it.)
  if (log_->current_segment() == 0) {
    const wal::Result<uint64_t> free = log_->free_disk_bytes();
    if (free && *free < log_->segment_bytes()) {
      LOG_ERROR(
          "cannot start a new log in %s: its disk has %llu KiB free, less than one log file "
          "(wal.segment_bytes, %llu KiB); free space there, or lower wal.segment_bytes",
          options.dir.c_str(), static_cast<unsigned long long>(*free >> 10),
          static_cast<unsigned long long>(log_->segment_bytes() >> 10));
      return StartRefusal::kMayPassLater;  // room may be made
    }
  }
  engine_.finish_restore();
  auto orphans = engine_.placeholder_queues();
  if (!orphans.empty() && !config_.wal_recover) {
    for (const engine::Queue* orphan : orphans) {
      LOG_ERROR(
          "cannot open the log: %zu job(s) belong to queue number %u, which has no QUEUE "
          "record; run tqd with --wal-recover to keep them in a new queue named %s",
          orphan->job_count(), orphan->number, engine_.recovered_name(*orphan).c_str());
    }
    return StartRefusal::kLogData;
  }
  if (summary.torn_lost_writes) {
    LOG_WARN(
        "wal: cut off the log at %s: zeros where records were, with %llu intact record(s) "
        "after them, after a run that did not stop cleanly: what a power cut leaves when the "
        "disk kept later parts of writes not yet synced and not earlier ones; under fsync: "
        "always none of them was acknowledged (a sync that covered them would have covered the "
        "zeros too); job ids go on past any they held",
        summary.torn.c_str(), static_cast<unsigned long long>(summary.cut_after_lost_writes));
  } else if (!summary.torn.empty()) {
    LOG_WARN(
        "wal: cut off a partial record at %s: a crash stopped its write (under fsync: "
        "always it was never acknowledged); job ids go on past any that lost records held",
        summary.torn.c_str());
  }
  if (summary.acknowledged_may_be_lost) {
    const std::string policy =
        summary.previous_policy_unknown
            ? std::string("unknown: its wal/RUNNING marker names none, so never is assumed")
            : std::string(wal::fsync_policy_name(summary.previous_policy));
    LOG_WARN(
        "wal: the previous run (fsync: %s) did not stop cleanly: if the machine lost power, "
        "changes acknowledged in its last moments are lost (the OS had not written them); "
        "job ids go on past any they took",
        policy.c_str());
  } else if (summary.previous_unclean) {
    LOG_INFO(
        "wal: the previous run (fsync: always) did not stop cleanly (a crash, SIGKILL or a "
        "power cut); every change it acknowledged was synced, and is here (a lease or a "
        "TOUCH's new end, unless wal.sync_leases, may not be: such a job is back with that "
        "delivery uncounted, or its lease ends where it was before the TOUCH)");
  }
  // Jobs lost that way, or with damage, or after a torn write, may have been
  // acknowledged: their ids must not be issued again (a late DELETE or JOB
  // for one would find someone else's job).
  // So may a log with no record left, only files of zeros.
  if (summary.only_zeros_left) {
    LOG_WARN(
        "wal: no record is left in the log, only files of zeros: the first start stopped "
        "before writing anything, or the disk lost synced data; job ids go on past any "
        "those files could have held");
  }
  if (summary.closed_at_seq_missing != 0) {
    // What took them, as a start without --wal-recover says: not "its newest
    // file(s) are missing" when the newest file is there and lost its end.
    LOG_WARN(
        "wal recover: the log ends before record %llu, where it ended when tqd last stopped "
        "cleanly (wal/%s): %s; what they held is lost, and job ids go on past any those records "
        "could have held",
        static_cast<unsigned long long>(summary.closed_at_seq_missing), wal::kClosedMarkerName,
        summary.closed_at_missing_cause.c_str());
  }
  if (summary.newest_missing_first_seq != 0) {
    LOG_WARN(
        "wal recover: the log's files from %s on are missing (the previous run, which did not "
        "stop cleanly, had started it: wal/NEWEST), and what they held is lost; job ids go on "
        "past any those records could have held",
        wal::segment_file_name(summary.newest_missing_first_seq).c_str());
  }
  if (summary.unrecorded_skip_seq_bound != 0) {
    LOG_WARN(
        "wal: the last start found job ids to skip (a cut or a loss) and stopped before its "
        "log recorded the skip (wal/%s says so): job ids go on past them again",
        wal::kRunMarkerName);
  }
  bool ids_may_be_lost = summary.ids_may_be_lost();
  if (ids_may_be_lost) journal_.skip_lost_ids(summary.seq_bound);
  if (summary.restored_backup_at_ms != 0) {
    // A backup's copy: the server it was taken from went on issuing ids.
    const uint64_t before = engine_.next_job_id();
    engine_.restore_ids(
        before + ids_issued_since_backup(summary.restored_backup_at_ms, engine_.now_ms()), 0);
    LOG_WARN(
        "wal: this log is a copy made by BACKUP, not yet written to since: job ids jump from "
        "%llu to %llu, past any the server it was copied from can have issued since",
        static_cast<unsigned long long>(before),
        static_cast<unsigned long long>(engine_.next_job_id()));
    ids_may_be_lost = true;  // the jump goes into the log before anything else
  }
  journal_.attach(*log_);
  if (ids_may_be_lost) journal_.record_counters();  // the skip goes into the log first
  // Their QUEUE records are written by compact_all() below.
  const std::vector<engine::Queue*> named = engine_.name_placeholders();
  for (const engine::Queue* queue : named) {
    LOG_ERROR(
        "wal recover: the QUEUE record of queue number %u was lost; its %zu job(s) are kept "
        "in a new queue named %s, with the default settings",
        queue->number, queue->job_count(), queue->name.c_str());
  }
  const size_t requeued = engine_.end_unknown_leases();
  LOG_INFO(
      "wal: replayed %llu records (%llu bytes, %zu segment(s)) in %lldms: %zu queues, %zu jobs "
      "(leased, kept until their leases end: %zu), next job id %llu; fsync=%s",
      static_cast<unsigned long long>(summary.records),
      static_cast<unsigned long long>(summary.bytes), summary.segments,
      static_cast<long long>(engine_.now_ms() - started), engine_.queues().size(),
      engine_.job_count(), engine_.leases_running(),
      static_cast<unsigned long long>(engine_.next_job_id()),
      wal::fsync_policy_name(config_.fsync));
  if (requeued > 0) {
    LOG_INFO(
        "wal: %zu leased job(s) from an older tqd's log, which does not say when their leases "
        "end, going back as if their leases ran out",
        requeued);
  }
  if (summary.dropped > 0) {
    LOG_WARN(
        "wal recover: %llu damaged region(s) dropped; rewriting the live state into a new "
        "segment so the damaged files can be deleted; job ids go on from %llu, past any "
        "id a dropped record may have held",
        static_cast<unsigned long long>(summary.dropped),
        static_cast<unsigned long long>(engine_.next_job_id()));
  }
  if (config_.wal_recover) {
    // Once, whatever it found: on a healthy log nothing else would show that
    // this start ran in recover mode (a flag left in a unit file, say).
    const bool recovered = summary.dropped > 0 || !named.empty() ||
                           summary.closed_at_seq_missing != 0 ||
                           summary.newest_missing_first_seq != 0;
    if (recovered) {
      LOG_INFO(
          "wal recover: ran in recover mode (--wal-recover): what it dropped or found lost "
          "is logged above");
    } else {
      LOG_INFO("wal recover: ran in recover mode (--wal-recover) and found nothing to drop");
    }
  }
  if (summary.dropped > 0 || !named.empty()) journal_.compact_all();
  return StartRefusal::kNone;
}

bool Daemon::declare_queues() {
  // Every declared queue first: one may name another, declared after it, as
  // its dead_letter_queue.
  for (const DeclaredQueue& declared : config_.declared_queues) {
    if (create_declared_queue(declared.name) == nullptr) return false;
  }
  for (const DeclaredQueue& declared : config_.declared_queues) {
    if (!declare_queue(declared)) return false;
  }
  warn_if_default_dead_letter_queue_missing();
  return true;
}

engine::Queue* Daemon::create_declared_queue(const std::string& name) {
  if (engine::Queue* queue = engine_.find_queue(name)) return queue;
  auto created = engine_.create_queue(name);
  if (!created.ok()) {
    LOG_ERROR("queues.declare.%s: %s", name.c_str(), created.error().message.c_str());
    return nullptr;
  }
  LOG_INFO("created queue %s (declared in the configuration)", name.c_str());
  return created.value();
}

void Daemon::warn_if_dead_letter_queue_missing(const DeclaredQueue& declared,
                                               const std::string& target) {
  // Said of the declaration's own value only: one from queues.defaults
  // names the same queue for every queue, and is documented to wait for it.
  const bool named_here =
      std::any_of(declared.settings.begin(), declared.settings.end(),
                  [](const auto& setting) { return setting.first == "dead_letter_queue"; });
  // A queue declared too is created by its own declaration: at start-up
  // before this one, on a reload perhaps after it.
  const bool declared_too =
      std::any_of(config_.declared_queues.begin(), config_.declared_queues.end(),
                  [&](const DeclaredQueue& other) { return other.name == target; });
  if (target.empty() || !named_here || declared_too || engine_.find_queue(target) != nullptr) {
    return;
  }
  LOG_WARN(
      "queues.declare.%s.dead_letter_queue: queue %s does not exist: its jobs that die stay in "
      "its own dead letters until it does (declare it too)",
      declared.name.c_str(), target.c_str());
}

void Daemon::warn_if_default_dead_letter_queue_missing() {
  // Said once, of the default itself, not of each queue that takes it. The
  // queue may still come (a CREATE, a later declaration): the jobs wait in
  // their own dead letters until then, as documented; but more often the
  // name is a typo, or the queue was never declared.
  const std::string& target = config_.queue_defaults.dead_letter_queue;
  if (target.empty() || engine_.find_queue(target) != nullptr) return;
  LOG_WARN(
      "queues.defaults.dead_letter_queue: queue %s does not exist: jobs that die in the queues "
      "that take the default stay in their own dead letters until it does (declare it)",
      target.c_str());
}

bool Daemon::declare_queue(const DeclaredQueue& declared) {
  engine::Queue* queue = create_declared_queue(declared.name);
  if (queue == nullptr) return false;
  engine::QueueSettings settings = queue->settings;
  for (const auto& [key, value] : declared.settings) {
    (void)apply_queue_setting(settings, key, value);  // checked when the file was read
  }
  (void)engine_.configure(declared.name, settings);
  warn_if_dead_letter_queue_missing(declared, settings.dead_letter_queue);
  for (const DeclaredSchedule& declared_schedule : declared.schedules) {
    if (!declare_schedule(declared.name, declared_schedule)) return false;
  }
  return true;
}

ReloadOutcome Daemon::reload(const char* trigger) {
  ReloadOutcome outcome;
  auto refuse = [&](const std::string& why) {
    ++stats_.config_reload_failures;
    LOG_ERROR("%s: %s; nothing changed: tqd runs on with the settings it had", trigger,
              why.c_str());
    outcome.error = why;
    return outcome;
  };
  if (reload_source_.config_path.empty()) {
    return refuse("tqd was started without --config, so there is no file to read again");
  }
  ConfigResult read = read_config(reload_source_);
  if (!read.config) return refuse(read.error);
  Config next = std::move(*read.config);
  for (const std::string& note : read.notes) LOG_WARN("%s: %s", trigger, note.c_str());
  // Remembered only once the reload is applied: a refused reload must not
  // make the next one take this value for the running one.
  const size_t requested_max_connections = next.max_connections;
  if (next.max_connections != requested_max_connections_) {
    next.max_connections = fit_open_file_limit(next.max_connections);
  } else {
    next.max_connections = config_.max_connections;  // fitted already, and warned once
  }

  // What will run: the file's live settings beside the running values of
  // the others (wal.segment_bytes against a larger limits.max_line_bytes).
  Config merged = config_;
  take_live_settings(merged, next);
  for (const std::string& why : {segment_problem(merged), startup_problem(merged)}) {
    if (!why.empty()) {
      return refuse(why + " (with the settings that wait for a restart as they run now)");
    }
  }
  // Checked before anything changes, as at start-up: the files the running
  // TLS listener is to use (none when the file drops TLS: it keeps its own).
  std::shared_ptr<TlsContext> tls;
  if (config_.tls_enabled() && next.tls_enabled()) {  // else the listener keeps its files
    auto loaded = TlsContext::load(Server::tls_files(merged));
    if (!loaded) return refuse(loaded.error());
    tls = std::move(loaded.value());
  }

  const std::vector<SettingChange> changes = compare_settings(config_, next);
  const std::vector<DeclaredQueue> declarations = changed_declarations(config_, next);
  // Logged under the more verbose of the old and the new level: raising it
  // to warn must not hide the lines that say so, nor lowering it from warn.
  set_log_level(std::min(config_.log_level, merged.log_level));
  for (const SettingChange& c : changes) {
    if (c.needs_restart) {
      outcome.pending.push_back(c.key);
      // Port 0 is the port the kernel gave: say which that is.
      std::string still = c.before;
      if (c.before == "0" && (c.key == "server.port" || c.key == "tls.port")) {
        const int bound =
            c.key == "server.port" ? server_->bound_port() : server_->bound_tls_port();
        still = std::to_string(bound) + " (port 0: the kernel's choice)";
      }
      LOG_WARN("%s: %s changed (%s -> %s) but applies only after a restart; still %s", trigger,
               c.key.c_str(), c.before.c_str(), c.after.c_str(), still.c_str());
    } else if (c.key.rfind("queues.declare.", 0) != 0) {  // those: below, once applied
      outcome.applied.push_back(c.key);
      LOG_INFO("%s: %s: %s -> %s", trigger, c.key.c_str(), c.before.c_str(), c.after.c_str());
    }
  }
  // Files renewed in place (same paths, a new certificate or new client
  // CAs) are a change too: RELOAD's reply is how an operator checks that a
  // renewal took.
  const TlsContext* running_tls = server_->tls_context();
  auto applied_already = [&](const char* key) {
    return std::find(outcome.applied.begin(), outcome.applied.end(), key) != outcome.applied.end();
  };
  if (tls && running_tls != nullptr && !tls->same_certificate(*running_tls) &&
      !applied_already("tls.cert_file")) {
    outcome.applied.push_back("tls.cert_file");
    LOG_INFO("%s: tls.cert_file: a new certificate in the same file (was %s)", trigger,
             running_tls->summary().c_str());
  }
  if (tls && running_tls != nullptr && !tls->same_client_cas(*running_tls) &&
      !applied_already("tls.ca_file")) {
    outcome.applied.push_back("tls.ca_file");
    LOG_INFO("%s: tls.ca_file: new client CAs in the same file", trigger);
  }
  std::vector<DeclaredQueue> previous = std::move(config_.declared_queues);
  config_ = std::move(merged);
  requested_max_connections_ = requested_max_connections;
  engine_.set_limits(limits_of(config_));
  engine_.set_default_settings(config_.queue_defaults);
  server_->settings_changed(std::move(tls));

  // A declaration the file did not change is left alone: CONFIG changes made
  // at run time to its queue stand until the next start. One that cannot be
  // applied (limits.max_queues) is not remembered as applied, so the next
  // reload tries it again.
  for (const DeclaredQueue& declared : declarations) {
    const std::string key = "queues.declare." + declared.name;
    // While the log fails, writes are refused (ERROR IO): a declaration
    // would change queues no record can be written for, and hold RELOAD's
    // reply until the disk recovers.
    const bool log_failing = log_ != nullptr && !log_->healthy();
    if (log_failing) {
      LOG_ERROR("%s: %s: the log cannot be written (%s)", trigger, key.c_str(),
                log_->last_error().c_str());
    }
    if (!log_failing && declare_queue(declared)) {
      outcome.applied.push_back(key);
      LOG_INFO("%s: %s changed: applied", trigger, key.c_str());
      continue;
    }
    outcome.failed.push_back(key);
    LOG_WARN("%s: %s: not applied, or not in full (see above); the next reload tries again",
             trigger, key.c_str());
    auto named = [&](const DeclaredQueue& q) { return q.name == declared.name; };
    auto running =
        std::find_if(config_.declared_queues.begin(), config_.declared_queues.end(), named);
    auto before = std::find_if(previous.begin(), previous.end(), named);
    if (before != previous.end()) {
      *running = *before;
    } else {
      config_.declared_queues.erase(running);
    }
  }
  // Only when the reload changed it: a start said it already, and the
  // queues the file declares are all there by now.
  const bool default_dead_letter_queue_changed = std::any_of(
      changes.begin(), changes.end(),
      [](const SettingChange& c) { return c.key == "queues.defaults.dead_letter_queue"; });
  if (default_dead_letter_queue_changed) warn_if_default_dead_letter_queue_missing();
  ++stats_.config_reloads;
  stats_.config_pending_restart = outcome.pending.size();
  if (outcome.failed.empty()) {
    LOG_INFO("%s: settings read again from %s: %zu change(s) applied, %zu wait for a restart",
             trigger, reload_source_.config_path.c_str(), outcome.applied.size(),
             outcome.pending.size());
  } else {
    LOG_WARN(
        "%s: settings read again from %s: %zu change(s) applied, %zu wait for a restart, %zu "
        "declared queue(s) could not be applied",
        trigger, reload_source_.config_path.c_str(), outcome.applied.size(), outcome.pending.size(),
        outcome.failed.size());
  }
  set_log_level(config_.log_level);
  return outcome;
}

namespace {

bool same_schedule(const engine::Schedule& s, const DeclaredSchedule& d) {
  return s.every_ms == d.every_ms && (s.cron ? s.cron->text() : std::string()) == d.cron &&
         s.payload == d.payload && s.priority == d.priority && s.ttl_ms == d.ttl_ms &&
         s.max_attempts == d.attempts && s.group == d.group;
}

}  // namespace

bool Daemon::declare_schedule(const std::string& queue_name, const DeclaredSchedule& declared) {
  // Left as it is when the log has it already: setting it again would move
  // its next firing past a time it missed while tqd was down, which must
  // still fire once now.
  const engine::Queue* queue = engine_.find_queue(queue_name);
  const auto it = queue->schedules.find(declared.name);
  if (it != queue->schedules.end() && same_schedule(it->second, declared)) return true;
  engine::ScheduleSpec spec;
  spec.name = declared.name;
  spec.every_ms = declared.every_ms;
  spec.cron = declared.cron;
  spec.payload = declared.payload;
  spec.job.priority = declared.priority;
  spec.job.ttl_ms = declared.ttl_ms;
  spec.job.max_attempts = declared.attempts;
  spec.job.group = declared.group;
  spec.declared = true;
  const bool replacing = it != queue->schedules.end();
  auto made = engine_.schedule(queue_name, spec);
  if (!made.ok()) {
    LOG_ERROR("queues.declare.%s.schedules.%s: %s", queue_name.c_str(), declared.name.c_str(),
              made.error().message.c_str());
    return false;
  }
  LOG_INFO("%s schedule %s of queue %s (declared in the configuration)",
           replacing ? "replaced" : "created", declared.name.c_str(), queue_name.c_str());
  // Set whatever the limit (a backlog must not keep tqd from starting), but
  // its firings are refused while the server is over it: say so once.
  const uint64_t limit = engine_.limits().max_payload_total;
  const uint64_t held = engine_.payload_bytes() + engine_.schedule_payload_bytes();
  if (limit > 0 && held + declared.payload.size() > limit) {
    LOG_WARN(
        "queues.declare.%s.schedules.%s: the server holds %llu payload bytes in jobs and "
        "schedules, limits.max_payload_total is %llu: its jobs are refused (FULL, counted in "
        "schedule_refused_total) until there is room",
        queue_name.c_str(), declared.name.c_str(), static_cast<unsigned long long>(held),
        static_cast<unsigned long long>(limit));
  }
  return true;
}

StartRefusal Daemon::start() {
  std::string address_error;
  int bind_error = 0;
  if (!Server::check_address(config_, &address_error, &bind_error)) {
    // Two of its own listeners on one port (metrics.listen or tls.port on
    // server.port) clash at every start: the settings, as --check-config
    // says, in its words. So does a port this user may not bind. Else a
    // name that does not resolve yet, at boot, or a port another process
    // holds.
    std::string clash_error;
    bool clash = false;
    if (!Server::check_addresses_apart(config_, &clash_error, &clash) && clash) {
      LOG_ERROR("%s", clash_error.c_str());
      return StartRefusal::kSettings;
    }
    LOG_ERROR("%s", address_error.c_str());
    return bind_error == UV_EACCES ? StartRefusal::kSettings : StartRefusal::kMayPassLater;
  }
  if (StartRefusal refused = open_log(); refused != StartRefusal::kNone) return refused;
  // A limit, or a schedule, the log's queues leave no way to apply: they
  // are the same at the next start.
  if (!declare_queues()) return StartRefusal::kSettings;
  server_ = std::make_unique<Server>(&loop_, config_, engine_, stats_, log_.get(),
                                     log_ != nullptr ? &journal_ : nullptr, fs_);
  std::string error;
  if (!server_->listen(&error)) {
    LOG_ERROR("%s", error.c_str());
    server_->shutdown("start-up failed");
    uv_run(&loop_, UV_RUN_DEFAULT);
    return StartRefusal::kMayPassLater;  // the port taken, by a tqd that is stopping, say
  }
  server_->on_reload([this](const char* trigger) { return reload(trigger); });
  server_->on_shutdown([this](const char* reason) {
    // systemd shows the unit as deactivating, not failed, while the
    // connections drain (up to server.shutdown_timeout).
    std::string why;
    if (status_started_) uv_timer_stop(&status_timer_);  // "stopping" stays the status
    const std::string state = std::string("STOPPING=1\nSTATUS=stopping: ") + reason + "\n";
    if (!notifier_.notify(state, &why)) LOG_WARN("%s", why.c_str());
  });
  std::error_code ec;
  const std::string data_dir = std::filesystem::absolute(config_.data_dir, ec).lexically_normal().string();
  LOG_INFO(
      "tqd %s started (pid %d): config=%s data_dir=%s password=%s admin_password=%s auto_create=%s "
      "ack_timeout=%lldms log_level=%s",
      TQ_VERSION, static_cast<int>(getpid()),
      config_.source.empty() ? "(defaults)" : config_.source.c_str(),
      ec ? config_.data_dir.c_str() : data_dir.c_str(), config_.password.empty() ? "off" : "on",
      config_.admin_password.empty() ? "off" : "on", config_.auto_create_queues ? "true" : "false",
      static_cast<long long>(config_.queue_defaults.ack_timeout_ms),
      log_level_name(config_.log_level));
  notify_ready();
  return StartRefusal::kNone;
}

std::string Daemon::status_line() const {
  auto count = [](size_t n, const char* what) {
    return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
  };
  std::string ports;
  if (config_.plaintext_enabled()) ports = "port " + std::to_string(port());
  if (config_.tls_enabled()) {
    ports +=
        (ports.empty() ? "TLS port " : ", TLS port ") + std::to_string(server_->bound_tls_port());
  }
  return "serving on " + ports + ": " + count(engine_.job_count(), "job") + " in " +
         count(engine_.queues().size(), "queue");
}

void Daemon::on_status(uv_timer_t* handle) {
  auto* self = static_cast<Daemon*>(handle->data);
  std::string line = self->status_line();
  if (line == self->status_sent_) return;
  // A failure is the watchdog's to report: this line is only shown.
  std::string ignored;
  if (self->notifier_.notify("STATUS=" + line + "\n", &ignored))
    self->status_sent_ = std::move(line);
}

void Daemon::notify_ready() {
  std::string error;
  if (!notifier_.open_from_environment(&error)) LOG_WARN("%s", error.c_str());
  if (!notifier_.enabled()) return;
  status_sent_ = status_line();
  const std::string state = "READY=1\nSTATUS=" + status_sent_ + "\n";
  if (!notifier_.notify(state, &error)) LOG_WARN("%s", error.c_str());
  // The counts change as tqd serves; `systemctl status` should not show
  // those of the start for weeks. One datagram a second at most, and none
  // while nothing changes.
  uv_update_time(&loop_);  // the loop has not turned since the replay: from now, not then
  uv_timer_init(&loop_, &status_timer_);
  status_timer_.data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(&status_timer_));  // shutdown does not wait for it
  uv_timer_start(&status_timer_, on_status, 1000, 1000);
  status_started_ = true;
  const uint64_t usec = notifier_.watchdog_usec();
  if (usec == 0) return;
  // Twice per period, as sd_watchdog_enabled(3) advises: one late tick must
  // not be taken for a hung loop. The timer fires from the loop itself, so
  // a loop that stops turning stops the keep-alives.
  const uint64_t every_ms = std::max<uint64_t>(1, usec / 2000);
  uv_timer_init(&loop_, &watchdog_);
  watchdog_.data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(&watchdog_));  // shutdown does not wait for it
  uv_timer_start(&watchdog_, on_watchdog, every_ms, every_ms);
  watchdog_started_ = true;
  LOG_INFO("service manager watchdog: a keep-alive every %llums",
           static_cast<unsigned long long>(every_ms));
}

void Daemon::on_watchdog(uv_timer_t* handle) {
  auto* self = static_cast<Daemon*>(handle->data);
  std::string error;
  const bool sent = self->notifier_.notify("WATCHDOG=1\n", &error);
  // Once per run of failures, not once per tick.
  if (!sent && !self->watchdog_failing_) LOG_WARN("%s", error.c_str());
  self->watchdog_failing_ = !sent;
}

bool Daemon::run() {
  uv_run(&loop_, UV_RUN_DEFAULT);
  if (server_ && !server_->log_closed_cleanly()) {
    LOG_ERROR("stopped without closing the log cleanly (see above): the next start replays what "
              "is on disk");
    return false;
  }
  LOG_INFO("stopped");
  return true;
}

void Daemon::stop() { uv_async_send(&stop_); }

void Daemon::on_stop(uv_async_t* handle) {
  auto* self = static_cast<Daemon*>(handle->data);
  if (self->server_) self->server_->shutdown("stop requested");
}

}  // namespace tq::server
