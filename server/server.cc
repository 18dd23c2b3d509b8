// The server's loop: accepting connections, each iteration's before-poll
// hook (turns, replies, the log's batches), the timers (sweeper, waits),
// signals and the stop. Its listeners and settings are server_listeners.cc's,
// its once-a-second upkeep server_upkeep.cc's.
#include "server/server.h"

#include <algorithm>
#include <memory>
#include <optional>

#include "server/commands.h"
#include "server/log.h"

namespace tq::server {

Server::Server(uv_loop_t* loop, const Config& config, engine::Engine& engine, ServerStats& stats,
               wal::Log* log, Journal* journal, wal::FileSystem& fs)
    : loop_(loop),
      config_(config),
      engine_(engine),
      stats_(stats),
      log_(log),
      journal_(journal),
      waiters_(engine,
               [this](uint64_t id, const WaitRequest& request,
                      const std::vector<const engine::Job*>& jobs, const std::string& error) {
                 auto it = connections_.find(id);
                 if (it != connections_.end()) it->second->finish_wait(jobs, request, error);
               }),
      backups_(loop, fs, config.backup_dir(), config.wal_backup_keep, config.data_dir, stats,
               [this](uint64_t id, const std::string& reply) {
                 if (reply.rfind("ERROR", 0) == 0) ++stats_.errors_total;
                 auto it = connections_.find(id);
                 if (it != connections_.end()) it->second->finish_deferred(reply);
                 // A shutdown waits for the backup before it closes the log.
                 close_handles_if_done();
               }),
      bulk_(uv_hrtime,
            [this](uint64_t id, const BulkTask& task, uint64_t elapsed_ns) {
              if (task.steps > 1) {
                LOG_INFO("%s: %zu job(s) in %d steps, %.3f s", bulk_title(task).c_str(), task.done,
                         task.steps, static_cast<double>(elapsed_ns) / 1e9);
              }
              auto it = connections_.find(id);
              if (it == connections_.end()) return;
              if (task.done > 0 && log_ != nullptr && !log_->healthy()) {
                // Its records may not be written: ERROR IO now, as for the
                // replies held when the log failed (the failure is reported
                // once; a reply held after it would wait for the disk).
                ++stats_.errors_total;
                it->second->finish_deferred(io_error_reply(*log_));
                return;
              }
              it->second->finish_deferred(bulk_reply(task), task.done > 0);
            }),
      read_buffer_(64 << 10) {
  take_request_limits();
  // The loop must count its idle time for STATS loop_* (before uv_run).
  uv_loop_configure(loop_, UV_METRICS_IDLE_TIME);
  uv_tcp_init(loop_, &listener_);
  listener_.data = this;
  uv_tcp_init(loop_, &tls_listener_);
  tls_listener_.data = this;
  uv_prepare_init(loop_, &before_poll_);
  before_poll_.data = this;
  uv_prepare_start(&before_poll_, on_before_poll);
  uv_idle_init(loop_, &run_again_);
  run_again_.data = this;
  uv_timer_init(loop_, &sweeper_);
  sweeper_.data = this;
  uv_timer_init(loop_, &shutdown_timer_);
  shutdown_timer_.data = this;
  uv_timer_init(loop_, &wait_timer_);
  wait_timer_.data = this;
  uv_timer_init(loop_, &housekeeping_);
  housekeeping_.data = this;
  uv_timer_init(loop_, &memory_release_);
  memory_release_.data = this;
  uv_timer_start(&housekeeping_, on_housekeeping, 1000, 1000);
  uv_timer_init(loop_, &unwaited_records_);
  unwaited_records_.data = this;
  uv_signal_init(loop_, &sigint_);
  sigint_.data = this;
  uv_signal_start(&sigint_, on_signal, SIGINT);
  uv_signal_init(loop_, &sigterm_);
  sigterm_.data = this;
  uv_signal_start(&sigterm_, on_signal, SIGTERM);
  uv_signal_init(loop_, &sighup_);
  sighup_.data = this;
  uv_signal_start(&sighup_, on_signal, SIGHUP);
  uv_async_init(loop_, &log_progress_, on_log_progress);
  log_progress_.data = this;
  if (log_ != nullptr) {
    // Runs on the writer thread: uv_async_send is the one libuv call that may.
    log_->set_progress_callback([this] { uv_async_send(&log_progress_); });
    log_->start();
  }
}

std::optional<BackupRefusal> Server::start_backup(uint64_t connection_id, const std::string& name) {
  // There is a log: BACKUP's handler answers NOLOG without one.
  if (shutting_down_) {
    return BackupRefusal{protocol::ErrorCode::kShutdown, "the server is stopping"};
  }
  return backups_.start(*log_, connection_id, name, engine_.now_ms());
}

void Server::start_bulk(uint64_t connection_id, BulkTask task) {
  bulk_.start(connection_id, std::move(task));
}

Server::~Server() {
  // main runs the loop until shutdown() has closed every handle; anything
  // still open here would be freed under libuv's feet.
  if (!handles_closed_) {
    LOG_ERROR("server destroyed with open handles");
  }
}

void Server::on_new_connection(uv_stream_t* listener, int status) {
  auto* self = static_cast<Server*>(listener->data);
  if (status < 0) {
    LOG_WARN("accept failed: %s", uv_strerror(status));
    return;
  }
  const bool tls = reinterpret_cast<uv_stream_t*>(&self->tls_listener_) == listener;
  if (self->accepts_left_ == 0) {
    // This iteration's share is taken: the connection waits in libuv, which
    // stops watching the listener meanwhile, and is accepted before the
    // next poll; the rest of the backlog then comes a share an iteration,
    // between the other clients' requests.
    (tls ? self->tls_accept_held_ : self->accept_held_) = true;
    return;
  }
  --self->accepts_left_;
  self->accept_one(tls);
}

void Server::accept_held() {
  for (const bool tls : {false, true}) {
    bool& held = tls ? tls_accept_held_ : accept_held_;
    if (!held) continue;
    held = false;
    uv_tcp_t* listener = tls ? &tls_listener_ : &listener_;
    // Closed meanwhile (a stop): libuv closes the connection it held.
    if (uv_is_closing(reinterpret_cast<uv_handle_t*>(listener))) continue;
    --accepts_left_;
    accept_one(tls);
  }
}

bool Server::may_release_socket(Connection& connection) {
  if (closes_left_ > 0) {
    --closes_left_;
    return true;
  }
  closes_held_.push_back(connection.id());
  return false;
}

void Server::release_held_sockets() {
  while (closes_left_ > 0 && !closes_held_.empty()) {
    auto it = connections_.find(closes_held_.front());
    closes_held_.pop_front();
    if (it == connections_.end()) continue;
    --closes_left_;
    it->second->release_socket();
  }
}

void Server::accept_one(bool tls) {
  uint64_t id = next_connection_id_++;
  protocol::ParserLimits limits;
  limits.max_line_bytes = config_.max_line_bytes;
  limits.max_body_bytes = config_.max_payload_bytes;
  limits.line_setting = "limits.max_line_bytes";
  limits.body_setting = "limits.max_payload_bytes";
  AuthState auth;
  auth.password = &config_.password;
  auth.admin_password = &config_.admin_password;
  auth.max_failures = config_.max_auth_failures;
  auth.throttle = &auth_throttle_;
  auto connection = std::make_unique<Connection>(*this, id, limits, std::move(auth));
  uv_tcp_init(loop_, connection->tcp());
  Connection* raw = connection.get();
  connections_.emplace(id, std::move(connection));
  uv_tcp_t* listener = tls ? &tls_listener_ : &listener_;
  if (uv_accept(reinterpret_cast<uv_stream_t*>(listener), raw->stream()) != 0) {
    raw->close();
    return;
  }
  // (No accept happens during shutdown: it closes the listener first, and
  // the kernel refuses new connections.)
  if (stats_.connections_current >= config_.max_connections) {
    ++stats_.connections_refused;
    if (tls) {
      // Saying why would take a handshake first: CPU for a client we turn
      // away, and a descriptor held for as long as it dawdles, when the
      // descriptors past max_connections are the ones the log needs.
      raw->close();
      return;
    }
    // Tell the client why rather than dropping it silently.
    std::string reply;
    protocol::append_error(reply, protocol::ErrorCode::kMaxConn,
                           "too many connections (limits.max_connections is " +
                               std::to_string(config_.max_connections) + ")");
    raw->send(reply);
    raw->close_when_flushed();
    // Written and closed now, not at the loop's next flush: libuv accepts
    // a whole backlog in one go, and a burst of refused connections each
    // holding its descriptor until then took the few kept for tqd's own
    // files (the log's next segment), and libuv closed the rest unanswered.
    raw->flush();
    return;
  }
  if (tls) raw->use_tls(std::make_unique<TlsSession>(tls_));
  ++stats_.connections_current;
  ++stats_.connections_total;
  if (config_.tcp_keepalive_ms > 0) {
    // Peers that vanished without a FIN (a pulled cable, a crashed host) are
    // found and closed instead of holding a slot for ever.
    uv_tcp_keepalive(raw->tcp(), 1, static_cast<unsigned>(std::max<int64_t>(1, config_.tcp_keepalive_ms / 1000)));
  }
  // CLIENTS names connections by id; this is where an id meets its address.
  LOG_DEBUG("connection %llu: accepted from %s%s", static_cast<unsigned long long>(id),
            raw->peer_endpoint().c_str(), tls ? " (TLS)" : "");
  raw->start();
}

void Server::want_flush(Connection& connection) {
  // Every request asks; the connection is listed once an iteration.
  if (connection.listed_for_flush) return;
  connection.listed_for_flush = true;
  flush_list_.push_back(connection.id());
}

void Server::wait_for_log(Connection& connection) {
  if (connection.listed_for_log) return;
  connection.listed_for_log = true;
  log_waiters_.push_back(connection.id());
}

void Server::on_log_progress(uv_async_t* handle) {
  static_cast<Server*>(handle->data)->take_log_progress();
}

void Server::take_log_progress() {
  Server* self = this;
  if (self->log_ == nullptr) return;
  wal::Log::Progress progress = self->log_->poll();
  if (progress.failed) {
    LOG_ERROR("log write failed: %s; refusing writes %s", self->log_->last_error().c_str(),
              refused_until(*self->log_).c_str());
  }
  if (progress.recovered) LOG_INFO("log writes work again; accepting writes");
  if (!progress.advanced && !progress.failed) return;

  const std::string io_error = progress.failed ? io_error_reply(*self->log_) : std::string();
  std::vector<uint64_t> waiters;
  waiters.swap(self->log_waiters_);
  for (uint64_t id : waiters) {
    auto it = self->connections_.find(id);
    if (it == self->connections_.end()) continue;
    Connection& connection = *it->second;
    if (progress.advanced) connection.log_advanced(self->log_->durable_seq());
    if (progress.failed) connection.log_failed(io_error);
    if (connection.waiting_for_log()) {
      self->log_waiters_.push_back(id);
    } else {
      connection.listed_for_log = false;
    }
  }
}

void Server::remove_connection(uint64_t id) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  // Refused connections never counted; the others did when they started.
  if (it->second->started()) --stats_.connections_current;
  waiters_.cancel(id);
  connections_.erase(it);
  close_handles_if_done();
}

void Server::want_resume(Connection& connection) { resume_list_.push_back(connection.id()); }

void Server::want_turn(Connection& connection, bool cut_short) {
  (cut_short ? cut_list_ : turn_list_).push_back(connection.id());
}

void Server::on_before_poll(uv_prepare_t* handle) {
  auto* self = static_cast<Server*>(handle->data);
  // Connections whose turn ended last iteration take the next one, once: a
  // turn that ends again waits for the next iteration. Those the budget cut
  // short go first, so that where it runs out moves on each iteration (the
  // poll phase's reads, which come before, are mostly other clients').
  // Handshakes held back get a budget of their own here: new ones in the
  // poll phase took that phase's, and would otherwise starve them.
  self->handshake_ns_left_ = kIterationWorkNs;
  self->accepts_left_ = kAcceptsPerIteration;
  self->accept_held();
  self->closes_left_ = kClosesPerIteration;
  self->release_held_sockets();
  self->turns_.swap(self->cut_list_);
  self->turns_.insert(self->turns_.end(), self->turn_list_.begin(), self->turn_list_.end());
  self->turn_list_.clear();
  for (uint64_t id : self->turns_) {
    auto it = self->connections_.find(id);
    if (it != self->connections_.end()) it->second->next_turn();
  }
  self->turns_.clear();
  // Connections whose wait ended run the requests that queued up behind it.
  while (!self->resume_list_.empty()) {
    std::vector<uint64_t> ids;
    ids.swap(self->resume_list_);
    for (uint64_t id : ids) {
      auto it = self->connections_.find(id);
      if (it != self->connections_.end()) it->second->resume();
    }
  }
  if (self->journal_ != nullptr) self->journal_->maintain();
  // Everything this iteration appended goes to the writer as one batch, once
  // the writer is done with the last (poll() first). With fsync=never or
  // interval it is written right here, and the replies it held can leave in
  // this same iteration.
  if (self->log_ != nullptr) {
    self->take_log_progress();
    self->flush_log();
    if (self->log_->current_segment() != self->disk_checked_segment_) self->check_disk_room();
    if (self->log_->policy() != wal::FsyncPolicy::kAlways) self->take_log_progress();
    self->backups_.poll();
  }
  // Replies of this iteration go out together: one write per connection.
  // Two lists swapped back and forth keep their capacity: no allocation an
  // iteration.
  self->flushing_.swap(self->flush_list_);
  const uint64_t seq_before_flush = self->log_ != nullptr ? self->log_->last_seq() : 0;
  for (uint64_t id : self->flushing_) {
    auto it = self->connections_.find(id);
    if (it == self->connections_.end()) continue;
    it->second->listed_for_flush = false;  // first: flush() may list it again
    it->second->flush();
  }
  self->flushing_.clear();
  if (self->shutting_down_) self->end_refusals_if_drained();
  // A KICK or the like of many jobs moves on by a few milliseconds of
  // steps: after the replies above went out, so that they do not wait for
  // them too (a PING waited about two iterations' worth of steps, 4-5 ms,
  // when they came first). Their records go to the log in the next
  // iteration, which comes at once: they are written.
  const uint64_t work_began_ns = uv_hrtime();
  if (self->bulk_.busy()) self->run_bulk();
  if (self->engine_.disposing()) self->dispose_some(work_began_ns);
  // A flush that drained a paused connection ran the requests it had
  // waiting: their replies, and the records they wrote, are for the next
  // iteration, which must not wait for an event. Nothing else may come: the
  // client sent everything and waits for the answers (a worker pulling big
  // batches stalled a second at each pause, until the housekeeping timer).
  const bool wrote = self->log_ != nullptr && self->log_->last_seq() != seq_before_flush;
  if (!self->flush_list_.empty() || !self->turn_list_.empty() || !self->cut_list_.empty() ||
      wrote || self->bulk_.busy() || self->engine_.disposing() || !self->closes_held_.empty()) {
    uv_idle_start(&self->run_again_, on_run_again);
  }
  self->arm_sweeper();
  self->arm_wait_timer();
  // The next iteration's budget, from its poll phase on: that phase's
  // replies and the next hook's are one iteration for loop_max_busy_us too.
  self->reply_budget_ = kIterationReplyBytes;
  self->overdraft_taken_ = false;
  self->handshake_ns_left_ = kIterationWorkNs;
  self->measure_iteration();  // last: this hook's replies are the iteration's work too
}

void Server::run_bulk() {
  if (log_ != nullptr && !log_->healthy()) {
    // Its changes could not be logged: it ends here, and its reply, which
    // counts jobs whose records did not make it, becomes ERROR IO.
    bulk_.finish_all();
    return;
  }
  bulk_.run(engine_, kIterationWorkNs);
  // Kicked and redriven jobs may be what workers wait for.
  waiters_.serve_ready();
}

void Server::dispose_some(uint64_t work_began_ns) {
  // A slice frees about 0.3 ms' worth of jobs (a cache miss or two each):
  // a million, purged, go in some forty iterations with clients served in
  // between, where they held everyone 54-74 ms in one go. One slice at
  // least, whatever the bulk tasks took of the budget they share.
  constexpr size_t kDisposeSlice = 4096;
  while (engine_.dispose_some(kDisposeSlice) && uv_hrtime() - work_began_ns < kIterationWorkNs) {
  }
}

void Server::measure_iteration() {
  const LoopMeter::Tick tick = stats_.loop.tick(uv_hrtime(), uv_metrics_idle_time(loop_));
  if (tick.warn) {
    LOG_WARN(
        "the event loop was busy for %llu ms in one iteration: every client waited that "
        "long (STATS loop_max_busy_1m_us, loop_slow_iterations_total)",
        static_cast<unsigned long long>(tick.busy_ns / 1000000));
  }
}

// Under fsync=always every batch costs an fdatasync. Records no reply waits
// for (a DEQUEUE's leases, the sweeper's and the journal's upkeep) wait up to
// kUnwaitedRecordsMs for one that a reply does wait for, and share its sync: a
// worker's ACK comes one round trip after its DEQUEUE, so a consumed job costs
// one sync, not two. The bound keeps such records from waiting for long when
// nothing else comes.
constexpr uint64_t kUnwaitedRecordsMs = 10;

void Server::flush_log() {
  const bool defer =
      log_->policy() == wal::FsyncPolicy::kAlways && log_waiters_.empty() && !unwaited_due_;
  if (defer) {
    auto* timer = reinterpret_cast<uv_handle_t*>(&unwaited_records_);
    if (log_->has_unflushed() && !uv_is_active(timer)) {
      uv_timer_start(&unwaited_records_, on_unwaited_records, kUnwaitedRecordsMs, 0);
    }
    return;
  }
  log_->flush();
  unwaited_due_ = false;
  uv_timer_stop(&unwaited_records_);
}

void Server::on_unwaited_records(uv_timer_t* handle) {
  auto* self = static_cast<Server*>(handle->data);
  // The flush itself happens in this iteration's before-poll hook.
  self->unwaited_due_ = true;
}

void Server::arm_timer(uv_timer_t* timer, uv_timer_cb callback, int64_t deadline_ms, int64_t now_ms,
                       int64_t* armed_ms) {
  if (handles_closed_ || deadline_ms == *armed_ms) return;
  *armed_ms = deadline_ms;
  if (deadline_ms == INT64_MAX) {
    uv_timer_stop(timer);
    return;
  }
  const int64_t wait = deadline_ms - now_ms;
  uv_timer_start(timer, callback, static_cast<uint64_t>(wait > 0 ? wait : 0), 0);
}

void Server::arm_wait_timer() {
  // Loop time: waits are the process's own, not deadlines kept in the log.
  arm_timer(&wait_timer_, on_wait_timeout, waiters_.next_deadline_ms(),
            static_cast<int64_t>(loop_now_ms()), &wait_timer_deadline_ms_);
}

void Server::on_run_again(uv_idle_t* handle) {
  uv_idle_stop(handle);  // once: the before-poll hook starts it again if need be
}

void Server::on_wait_timeout(uv_timer_t* handle) {
  auto* self = static_cast<Server*>(handle->data);
  self->wait_timer_deadline_ms_ = INT64_MAX;  // fired: re-armed before the next poll
  // A delay or a lease that ended by now has made a job ready that the
  // sweeper has not moved yet: its timer is due in this same iteration but
  // may fire after this one, or it was armed before the wall clock stepped
  // on. A wait ending now gets that job, not EMPTY.
  if (self->engine_.next_deadline_ms() <= self->engine_.now_ms()) self->sweep();
  self->waiters_.expire(static_cast<int64_t>(self->loop_now_ms()));
}

std::vector<ClientInfo> Server::describe_clients() const {
  std::vector<ClientInfo> clients;
  clients.reserve(connections_.size());
  const uint64_t now = loop_now_ms();
  for (const auto& [id, connection] : connections_) {
    if (connection->started() && !connection->closing()) {
      clients.push_back(connection->describe(now, engine_));
    }
  }
  std::sort(clients.begin(), clients.end(),
            [](const ClientInfo& a, const ClientInfo& b) { return a.id < b.id; });
  return clients;
}

void Server::sweep_if_clock_jumped() {
  // The sweeper's timer counts loop (monotonic) time from when it was armed
  // for a wall-clock deadline. The wall clock set forward since (an NTP
  // step, a host resumed from suspend, which monotonic time skips) made
  // that deadline, and others, due before the timer ends: a delayed job
  // waited the whole step more. Forgetting what it was armed for re-arms it
  // at once, before the next poll.
  if (sweeper_deadline_ms_ != INT64_MAX && sweeper_deadline_ms_ <= engine_.now_ms()) {
    sweeper_deadline_ms_ = INT64_MAX;
  }
  // Set back, it left the rate limit's timers a step late: the engine sets
  // them again, and the sweeper is armed for them before the next poll.
  engine_.follow_clock_set_back();
}

void Server::arm_sweeper() {
  arm_timer(&sweeper_, on_sweep, engine_.next_deadline_ms(), engine_.now_ms(),
            &sweeper_deadline_ms_);
}

void Server::on_sweep(uv_timer_t* handle) {
  static_cast<Server*>(handle->data)->sweep();
}

void Server::sweep() {
  sweeper_deadline_ms_ = INT64_MAX;  // re-armed before the next poll
  const engine::EngineCounters before = engine_.counters();
  // Bounded, so that a million leases running out at once (or a million
  // jobs delayed to the same second) cannot hold every client up for the
  // whole of it: what is left is still due, so the before-poll hook re-arms
  // this timer at zero and the next turn of the loop goes on, after I/O.
  // Bounded in time, not in jobs: a lease that runs out costs about 1 µs
  // (a RELEASE record), a job whose TTL sends it to a dead-letter queue
  // 6-7 µs (recorded whole, with where it came from): 10,000 of those, the
  // old bound, held the loop 66 ms.
  constexpr size_t kSweepSlice = 500;
  const uint64_t began_ns = uv_hrtime();
  size_t changed = 0;
  for (;;) {
    const size_t slice = engine_.expire_due(kSweepSlice);
    changed += slice;
    // A slice not used up: nothing more is due (or only dedup keys to
    // forget, which the next sweep takes).
    if (slice < kSweepSlice || uv_hrtime() - began_ns >= kIterationWorkNs) break;
  }
  if (changed > 0) {
    const engine::EngineCounters& after = engine_.counters();
    sweep_report_.timed_out += after.timed_out - before.timed_out;
    sweep_report_.expired += after.expired - before.expired;
    sweep_report_.dead += after.dead - before.dead;
    report_sweeps();
  }
  // Leases that ran out and delays that ended make jobs ready for waiters.
  waiters_.serve_ready();
}

void Server::report_sweeps() {
  // One line at most every ten seconds: expiries can come by the thousand.
  const int64_t now = engine_.now_ms();
  if (now - sweep_report_.logged_at_ms < 10'000) return;
  SweepReport& r = sweep_report_;
  if (r.timed_out + r.expired + r.dead > 0) {
    LOG_INFO("sweeper: %llu lease(s) ran out, %llu job(s) expired before delivery (TTL), %llu "
             "moved to dead letters",
             static_cast<unsigned long long>(r.timed_out), static_cast<unsigned long long>(r.expired),
             static_cast<unsigned long long>(r.dead));
  }
  r = SweepReport{};
  r.logged_at_ms = now;
}

void Server::on_signal(uv_signal_t* handle, int signum) {
  auto* self = static_cast<Server*>(handle->data);
  self->stats_.loop.discount_iteration();
  if (signum == SIGHUP) {
    // Its default would kill tqd on the spot. Operators send it expecting a
    // reload (systemctl reload, a renewed certificate).
    if (!self->on_reload_) {
      LOG_WARN("SIGHUP ignored: nothing reloads this server's settings");
      return;
    }
    (void)self->on_reload_("SIGHUP");  // it logs what it did
    // A declaration may have let waiting workers in (a higher max_leased or
    // rate_limit): RELOAD's connection serves them after its command.
    self->waiters_.serve_ready();
    return;
  }
  self->shutdown(signum == SIGINT ? "SIGINT" : "SIGTERM");
}

void Server::shutdown(const char* reason) {
  if (shutting_down_) {
    LOG_WARN("%s again: closing every connection now", reason);
    for (auto& [id, connection] : connections_) connection->close();
    return;
  }
  shutting_down_ = true;
  LOG_INFO("%s: shutting down (%zu connection(s) open)", reason, connections_.size());
  if (on_shutdown_) on_shutdown_(reason);
  std::string stopping;
  protocol::append_error(stopping, protocol::ErrorCode::kShutdown, "the server is stopping");
  waiters_.fail_all(stopping);
  backups_.cancel();
  bulk_.finish_all();  // each answers with what it did by now
  if (listening_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
    listening_ = false;
  }
  if (tls_listening_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&tls_listener_), nullptr);
    tls_listening_ = false;
  }
  if (metrics_) metrics_->close();  // a scrape in progress is cut short
  for (auto& [id, connection] : connections_) connection->stop_serving(stopping);
  uv_timer_start(&shutdown_timer_, on_shutdown_deadline,
                 static_cast<uint64_t>(config_.shutdown_timeout_ms), 0);
  close_handles_if_done();
}

void Server::end_refusals_if_drained() {
  // Connections kept open only to refuse what their clients may still send
  // wait for the rest of the shutdown (a backup, replies still being read):
  // once nothing else holds it, they close, and tqd stops at once. (An
  // iteration's look at each connection, while stopping only.)
  if (backups_.running()) return;
  for (auto& [id, connection] : connections_) {
    if (!connection->closing() && !connection->idle_refusing()) return;
  }
  for (auto& [id, connection] : connections_) connection->end_refusing();
}

void Server::on_shutdown_deadline(uv_timer_t* handle) {
  auto* self = static_cast<Server*>(handle->data);
  LOG_WARN("shutdown: %zu connection(s) still open after %lldms; closing them",
           self->connections_.size(), static_cast<long long>(self->config_.shutdown_timeout_ms));
  for (auto& [id, connection] : self->connections_) connection->close();
}

std::string Server::health_problem() const {
  // (Stopping needs no answer: the endpoint closes when shutdown starts.)
  // A log that cannot be written refuses every change: retrying, it may
  // come back (a disk freed), and /healthz with it. Why is in tqd's log,
  // not here: this answer needs no token.
  if (log_ != nullptr && !log_->healthy()) return "the log cannot be written; see tqd's log";
  return {};
}

void Server::close_handles_if_done() {
  if (!shutting_down_ || handles_closed_ || !connections_.empty()) return;
  // The copy reads the log's files and holds its pin: the log closes after.
  if (backups_.running()) return;
  handles_closed_ = true;
  if (log_ != nullptr) {
    // Schedule times kept out of the log while its disk was low: a few
    // queue records, from the room kept for draining, so that the restart
    // does not fire those times again.
    engine_.save_unlogged_schedules();
    // Every connection is gone; write and sync what is left, then stop the
    // writer thread (no more progress callbacks after this).
    wal::Status s = log_->close();
    if (!s.ok()) {
      LOG_ERROR("closing the log: %s", s.message().c_str());
      log_close_failed_ = true;
    }
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&log_progress_), nullptr);
  for (uv_tcp_t* listener : {&listener_, &tls_listener_}) {
    if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(listener))) {
      uv_close(reinterpret_cast<uv_handle_t*>(listener), nullptr);
    }
  }
  if (metrics_) metrics_->close();
  uv_close(reinterpret_cast<uv_handle_t*>(&before_poll_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&run_again_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sweeper_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&shutdown_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&wait_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&housekeeping_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&memory_release_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&unwaited_records_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigint_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigterm_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sighup_), nullptr);
}

}  // namespace tq::server
