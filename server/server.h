// The network server: the listener, every connection, the timers and the
// per-iteration hook, all on one libuv loop; and, when metrics.listen is
// set, the metrics endpoint (server/metrics_listener.h) on the same loop.
//
// Before the loop waits for I/O (a uv_prepare_t, Redis's beforeSleep), it
// lets the journal do its upkeep, hands the records of the iteration to the
// log's writer thread (group commit), writes the replies that are free to go
// and re-arms the sweeper at the engine's next deadline. When the writer
// reports progress (a uv_async_t), held replies are released. Nothing here
// blocks on the disk.
//
// Shutdown: stop accepting, stop reading, send what is owed, close; handles
// are closed last so that uv_run returns and main can exit 0.
#pragma once

#include <uv.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "server/backup.h"
#include "server/commands.h"
#include "server/config.h"
#include "server/connection.h"
#include "server/engine/engine.h"
#include "server/journal.h"
#include "server/metrics_listener.h"
#include "server/stats.h"
#include "server/tls.h"
#include "server/waiters.h"
#include "wal/log.h"

namespace tq::server {

class Server final : public ClientDirectory,
                     public BackupService,
                     public ReloadService,
                     public BulkService {
 public:
  // `log` and `journal` may be null (no durability: tests of the network
  // side); otherwise the log is started by the server and closed at shutdown.
  // `fs` is where BACKUP writes (the log's file system).
  Server(uv_loop_t* loop, const Config& config, engine::Engine& engine, ServerStats& stats,
         wal::Log* log = nullptr, Journal* journal = nullptr,
         wal::FileSystem& fs = wal::posix_file_system());
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();

  // Binds and listens, and starts the metrics endpoint when metrics.listen
  // is set; false with a one-line reason in *error.
  bool listen(std::string* error);
  // Before the log is replayed (seconds, for a big one): whether listen()
  // will be able to bind server.host and server.port (and metrics.listen),
  // so that a wrong host or a taken port is reported at once rather than
  // after the replay. *uv_error as check_addresses gives it.
  static bool check_address(const Config& config, std::string* error, int* uv_error = nullptr);
  // What `tqd --check-config` checks, beside a running tqd that holds the
  // ports: the addresses resolve and no two take the same port. Binds nothing.
  static bool check_addresses_apart(const Config& config, std::string* error,
                                    bool* clashed = nullptr);
  // The tls.* files of `config`, for TlsContext::load.
  static TlsFiles tls_files(const Config& config);
  int bound_port() const { return bound_port_; }
  // The metrics endpoint's port (metrics.listen), 0 when there is none.
  int metrics_port() const { return metrics_ ? metrics_->bound_port() : 0; }
  int bound_tls_port() const { return bound_tls_port_; }
  // The TLS listener's context (its certificate); null without TLS.
  const TlsContext* tls_context() const { return tls_.get(); }

  // Begins a graceful shutdown; a second call closes every connection now.
  void shutdown(const char* reason);
  // SIGHUP and RELOAD call this (the daemon reads the settings again);
  // without it both are refused.
  // Its argument says who asked ("SIGHUP", "RELOAD"), for the log.
  void on_reload(std::function<ReloadOutcome(const char*)> f) { on_reload_ = std::move(f); }
  // ReloadService: RELOAD.
  ReloadOutcome reload_settings() override;
  // BulkService: KICK, REDRIVE and PURGE ... DEAD of many jobs.
  void start_bulk(uint64_t connection_id, BulkTask task) override;
  // After a reload has changed the settings the server was built with
  // (server/config_reload.h): takes the request limits and the metrics token
  // from them, and `tls` (the new TLS files, loaded) for new connections
  // when there is a TLS listener.
  void settings_changed(std::shared_ptr<TlsContext> tls);
  // After the loop ended: whether the log (if any) wrote and synced all it
  // had when it closed.
  bool log_closed_cleanly() const { return !log_close_failed_; }
  // Called once, with the reason, when a graceful shutdown begins (the
  // daemon tells the service manager).
  void on_shutdown(std::function<void(const char* reason)> f) { on_shutdown_ = std::move(f); }

  // For connections.
  engine::Engine& engine() { return engine_; }
  ServerStats& stats() { return stats_; }
  wal::Log* log() { return log_; }
  const Journal* journal() const { return journal_; }
  void want_flush(Connection& connection);
  // The connection holds replies until the log is durable far enough.
  void wait_for_log(Connection& connection);
  // A connection that is closing asks whether its socket may go in this
  // iteration; past the iteration's share (kClosesPerIteration) it is kept,
  // and Connection::release_socket() is called in a later one.
  bool may_release_socket(Connection& connection);
  WaiterTable& waiters() { return waiters_; }
  const RequestLimits& request_limits() const { return request_limits_; }
  HandlerScratch& handler_scratch() { return handler_scratch_; }
  bool sync_leases() const { return config_.wal_sync_leases; }
  uint64_t loop_now_ms() const { return uv_now(loop_); }
  // Runs the connection's buffered requests before the loop next waits.
  void want_resume(Connection& connection);
  // Gives the connection another turn in the next iteration, after the
  // other clients' (Connection::next_turn); one the budget cut short goes
  // before those that had a whole turn.
  void want_turn(Connection& connection, bool cut_short);
  // Reply bytes the connections may still make in this iteration of the
  // loop (kIterationReplyBytes from the end of the before-poll hook on): a
  // turn ends sooner when it is spent (Connection::process).
  size_t reply_budget() const { return reply_budget_; }
  void spend_reply_budget(size_t bytes) {
    reply_budget_ -= bytes < reply_budget_ ? bytes : reply_budget_;
  }
  // Once the budget is spent, a request whose reply may be megabytes
  // (kBigReply) waits for a later turn, but for one an iteration, taken by
  // the first such connection whose turn comes (Connection::process): so a
  // dozen clients asking for 16 MiB each at once do not hold the loop for
  // all of them in one go, and every one of them still gets its turn.
  bool take_overdraft() { return !std::exchange(overdraft_taken_, true); }
  bool overdraft_left() const { return !overdraft_taken_; }
  // TLS handshake steps (the ClientHello's key exchange and signature) share
  // kIterationWorkNs of the loop's time in the poll phase, and as much again
  // in the turns after it: a connection whose step would start past it holds
  // its bytes and takes a turn (Connection::read_tls).
  bool handshake_budget_spent() const { return handshake_ns_left_ == 0; }
  void spend_handshake_ns(uint64_t ns) { handshake_ns_left_ -= std::min(ns, handshake_ns_left_); }
  void remove_connection(uint64_t id);
  // ClientDirectory: every admitted connection, by id.
  std::vector<ClientInfo> describe_clients() const override;
  // BackupService: BACKUP.
  std::optional<BackupRefusal> start_backup(uint64_t connection_id,
                                            const std::string& name) override;
  // Where a TLS connection decrypts what it read (one at a time, as reads).
  std::string& tls_scratch() { return tls_scratch_; }
  uv_buf_t read_buffer() {
    return uv_buf_init(read_buffer_.data(), static_cast<unsigned>(read_buffer_.size()));
  }

 private:
  static void on_new_connection(uv_stream_t* listener, int status);
  static void on_before_poll(uv_prepare_t* handle);
  // Runs steps of the KICKs and the like under way, or ends them when the
  // log has failed.
  void run_bulk();
  // Frees jobs a PURGE or DROP removed, until kIterationWorkNs have passed
  // since `work_began_ns` (the bulk tasks' steps share that budget).
  void dispose_some(uint64_t work_began_ns);
  // Feeds STATS loop_* and warns of an iteration clients will have noticed.
  void measure_iteration();
  static void on_sweep(uv_timer_t* handle);
  // Expires leases, ends delays and the like that are due, for a bounded
  // time, and serves the waiters the jobs they made ready.
  void sweep();
  static void on_signal(uv_signal_t* handle, int signum);
  static void on_shutdown_deadline(uv_timer_t* handle);
  static void on_log_progress(uv_async_t* handle);
  static void on_wait_timeout(uv_timer_t* handle);
  static void on_housekeeping(uv_timer_t* handle);
  // limits.max_client_memory: adds up every connection's buffers and, past
  // the limit, closes those holding the most until it is met.
  void limit_client_memory();
  // Measures the log's disk and closes or opens the engine's intake by
  // wal.min_free_disk: once a second, at each new log file (a burst fills
  // one in well under a second), and after a reload.
  void check_disk_room();
  // Once a second: says why a spare log file could not be made (tried again
  // every 10 s), at most once a minute.
  void warn_spare_failures();
  static void on_run_again(uv_idle_t* handle);
  static void on_memory_release(uv_timer_t* handle);
  // Once a second: after a drained backlog, once little is left (few jobs,
  // keys, connections), the job table's empty buckets and what malloc holds
  // free go back too.
  void maybe_release_freed_memory();
  static void on_unwaited_records(uv_timer_t* handle);

  // Hands the iteration's records to the log's writer, or (fsync=always,
  // nobody waiting) lets them wait a little for company.
  void flush_log();

  // Starts `timer` as a one-shot at `deadline_ms` (on the clock that reads
  // `now_ms`; INT64_MAX: stop it), unless it is armed for that deadline
  // already.
  void arm_timer(uv_timer_t* timer, uv_timer_cb callback, int64_t deadline_ms, int64_t now_ms,
                 int64_t* armed_ms);
  void arm_wait_timer();
  // Learns what the log's writer finished and releases the replies it held.
  void take_log_progress();
  void report_sweeps();

  // What the sweeper did since it last said so in the log.
  struct SweepReport {
    uint64_t timed_out = 0;
    uint64_t expired = 0;
    uint64_t dead = 0;
    int64_t logged_at_ms = 0;
  };
  SweepReport sweep_report_;

  // `tls`: from the TLS listener.
  void accept_one(bool tls);
  // Accepts the connection a listener holds since the last iteration's
  // share of accepts ran out (on_new_connection).
  void accept_held();
  void take_request_limits();
  // Logs the certificate in use, and warns when it has expired or soon will.
  void log_tls_certificate(const char* event);
  // Warns when the certificate expires within 14 days, or has.
  void warn_tls_expiry();
  void arm_sweeper();
  // Once a second: the sweeper's timer re-armed if the wall clock has
  // passed its deadline (it jumped forward).
  void sweep_if_clock_jumped();
  void close_handles_if_done();
  // Stopping: closes the connections kept open to refuse late requests
  // (Connection::stop_serving) once they are all that is left.
  void end_refusals_if_drained();
  // What keeps the server from taking jobs now, for GET /healthz: empty
  // when nothing does.
  std::string health_problem() const;

  uv_loop_t* loop_;
  const Config& config_;
  engine::Engine& engine_;
  ServerStats& stats_;

  uv_tcp_t listener_{};              // plaintext, server.port
  uv_tcp_t tls_listener_{};          // tls.port
  std::shared_ptr<TlsContext> tls_;  // null: no TLS
  uv_prepare_t before_poll_{};
  // Started by the before-poll hook when it made work of its own (a
  // connection un-paused by a flush ran requests): an active idle handle
  // keeps the next poll from waiting, so that work goes out at once.
  uv_idle_t run_again_{};
  uv_timer_t sweeper_{};
  uv_timer_t shutdown_timer_{};
  std::function<void(const char*)> on_shutdown_;
  std::function<ReloadOutcome(const char*)> on_reload_;
  uv_signal_t sigint_{};
  uv_signal_t sigterm_{};
  uv_signal_t sighup_{};  // on_reload_
  wal::Log* log_;
  Journal* journal_;
  uv_async_t log_progress_{};
  uv_timer_t wait_timer_{};
  uv_timer_t housekeeping_{};  // once a second: connection timeouts, idle job memory
  uint64_t housekeeping_ticks_ = 0;
  uint64_t tls_expiry_checked_ticks_ = 0;  // housekeeping_ticks_ at the last expiry warning check
  bool heap_trim_due_ = false;           // the job pages of a drain went back
  uint64_t peak_held_since_trim_ = 0;    // job bytes held at a housekeeping tick, at most
  uint32_t disk_checked_segment_ = 0;    // the log file current at the last check_disk_room
  bool disk_check_failed_ = false;
  uint64_t spare_failures_seen_ = 0;
  uint64_t last_spare_warning_ms_ = 0;   // said once, until a check works again
  uint64_t last_memory_warning_ms_ = 0;  // limit_client_memory, at most once a minute
  uv_timer_t memory_release_{};    // while idle job memory is marked: a slice every few ms
  uv_timer_t unwaited_records_{};  // bounds how long flush_log() defers records
  bool unwaited_due_ = false;
  int64_t wait_timer_deadline_ms_ = INT64_MAX;
  WaiterTable waiters_;
  AuthThrottle auth_throttle_;  // wrong passwords, per client address and second
  RequestLimits request_limits_;
  HandlerScratch handler_scratch_;
  std::vector<uint64_t> resume_list_;  // connection ids with requests to run after a wait
  std::vector<uint64_t> turn_list_;    // connection ids whose turn ended (want_turn)
  std::vector<uint64_t> cut_list_;     // those whose turn the budget cut short (first)
  std::vector<uint64_t> turns_;        // the ones taking their turn now
  // Replies all connections make in one iteration, at most (about: past it,
  // each that takes a turn still runs one request). kTurnBytes bounds each
  // client's share, this their sum: 100 clients pipelining STATS took 256 KiB
  // turns each, 25 MiB of replies in one iteration (0.6-0.9 s), and another
  // client's PING waited up to 1.1 s; with 1 MiB, about 20 ms and 30 ms. 2
  // and 4 MiB measured 30 and 56 ms, and no faster for workers pipelining
  // DEQUEUE ... COUNT 1000 batches (1, 8 or 30 of them; nor less CPU).
  static constexpr size_t kIterationReplyBytes = 1 << 20;
  // How long the sweeper, and the steps of a KICK or the like of many jobs
  // (BulkRunner), may each run in one iteration before the loop serves the
  // clients again (about: a slice of work more may run). A KICK of a
  // million dead jobs, 2.3 s of the loop in one go, then let another
  // client's PING through within 10 ms (bench/RESULTS.md).
  static constexpr uint64_t kIterationWorkNs = 2'000'000;
  size_t reply_budget_ = kIterationReplyBytes;
  bool overdraft_taken_ = false;       // take_overdraft(), this iteration
  uint64_t handshake_ns_left_ = kIterationWorkNs;  // spend_handshake_ns()
  // Connections accepted at most an iteration: each costs about 20 us here
  // (accept4, the keepalive options, epoll_ctl), and 4,000 workers
  // reconnecting at once held every client 80 ms in one iteration.
  static constexpr size_t kAcceptsPerIteration = 64;
  size_t accepts_left_ = kAcceptsPerIteration;
  // A listener whose next connection libuv took and holds for us, past
  // the share: it watches the listener again once that one is accepted.
  bool accept_held_ = false;
  bool tls_accept_held_ = false;
  // Sockets released at most an iteration: each close costs about 10 us
  // here (epoll_ctl, close, the FIN it sends), and a fleet of 4,000
  // workers stopping at once brought all their FINs into one iteration.
  // Admitted connections only: refused ones close at once
  // (Connection::close), at most kAcceptsPerIteration of them an iteration.
  static constexpr size_t kClosesPerIteration = 64;
  size_t closes_left_ = kClosesPerIteration;
  // Closing connections past the share, in the order they closed.
  std::deque<uint64_t> closes_held_;
  void release_held_sockets();
  std::vector<uint64_t> log_waiters_;  // connection ids holding replies for the log

  std::unique_ptr<MetricsListener> metrics_;  // null: metrics.listen is off
  BackupRunner backups_;
  // KICK and others of many jobs: their steps after the first, run by the
  // before-poll hook, at most kIterationWorkNs of them an iteration.
  BulkRunner bulk_;
  std::unordered_map<uint64_t, std::unique_ptr<Connection>> connections_;
  std::vector<uint64_t> flush_list_;  // ids, not pointers: a connection may close first
  std::vector<uint64_t> flushing_;    // the list being flushed, while flush_list_ fills again
  std::vector<char> read_buffer_;
  std::string tls_scratch_;
  uint64_t next_connection_id_ = 1;
  int64_t sweeper_deadline_ms_ = INT64_MAX;  // what the sweeper timer is armed for
  int bound_port_ = 0;
  int bound_tls_port_ = 0;
  bool listening_ = false;
  bool tls_listening_ = false;
  bool shutting_down_ = false;
  bool handles_closed_ = false;
  bool log_close_failed_ = false;  // see log_closed_cleanly()
};

}  // namespace tq::server
