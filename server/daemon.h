// Everything tqd is, put together: the engine, the journal replaying the log
// into it, and the server on a libuv loop. main() builds one from the
// configuration; tests build one on a fault-injecting file system and run it
// on a thread of their own.
#pragma once

#include <uv.h>

#include <atomic>
#include <memory>
#include <string>

#include "server/config.h"
#include "server/config_source.h"
#include "server/engine/engine.h"
#include "server/journal.h"
#include "server/server.h"
#include "server/service_notify.h"
#include "server/stats.h"
#include "wal/file.h"
#include "wal/log.h"

namespace tq::server {

// Why start() did not serve, or kNone when it does. main() turns it into
// tqd's exit status, and systemd's Restart= retries only what a later
// start, with nothing changed, may get past.
enum class StartRefusal {
  kNone,
  kMayPassLater,  // the port or the log is held, the disk is full, an I/O error: exit 1
  kSettings,      // two listeners on one port, a port this user may not bind, a file where
                  // data_dir should be, declarations this log cannot take: exit 2
  kLogData,       // damage in the log: --wal-recover, or a person, has to decide (exit 65)
};

class Daemon {
 public:
  Daemon(const Config& config, wal::FileSystem& fs, const engine::Clock& clock);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Replays the log and starts listening; a refusal (having logged why) if
  // tqd cannot serve.
  StartRefusal start();
  // tqd --check-log: replays the log and applies the declared queues as
  // start() does, logging the same lines, and listens on nothing; false
  // (having logged why) if a start would refuse it. Run on a
  // wal::OverlayFileSystem, it changes no file.
  bool check_log();
  // Runs the loop until a signal or stop() has shut the server down; false
  // when the log could not be written and synced to its end at the stop
  // (records may be missing, and tqd exits 1: not a clean stop).
  bool run();
  // From any thread: begin a graceful shutdown.
  void stop();

  // SIGHUP and RELOAD read the settings again from `source` and apply what
  // may change while tqd runs (server/config_reload.h); without a call, or
  // without a config_path, they are refused. `requested_max_connections`:
  // limits.max_connections as read, before fit_open_file_limit lowered it,
  // so that a reload warns about the open-file limit only when the file
  // asks for another value.
  void reload_from(ConfigSource source, size_t requested_max_connections) {
    reload_source_ = std::move(source);
    requested_max_connections_ = requested_max_connections;
  }

  int port() const { return server_ ? server_->bound_port() : 0; }
  int metrics_port() const { return server_ ? server_->metrics_port() : 0; }
  engine::Engine& engine() { return engine_; }

 private:
  StartRefusal open_log();
  bool declare_queues();
  // Creates the queue if missing, applies its declared settings and sets its
  // schedules; false (having logged why) if it could not.
  bool declare_queue(const DeclaredQueue& declared);
  // The queue, created if missing; nullptr (having logged why) if it could
  // not be.
  engine::Queue* create_declared_queue(const std::string& name);
  // Logs a declaration's dead_letter_queue that names no queue, and that no
  // declaration will create.
  void warn_if_dead_letter_queue_missing(const DeclaredQueue& declared, const std::string& target);
  // Logs a queues.defaults.dead_letter_queue that names no queue: called
  // once the declared queues exist (at start-up, and at a reload that
  // changed the default).
  void warn_if_default_dead_letter_queue_missing();
  // SIGHUP or RELOAD (`trigger`, which starts each log line).
  ReloadOutcome reload(const char* trigger);
  // Sets a schedule config.yaml declares, unless the queue has it just so.
  bool declare_schedule(const std::string& queue_name, const DeclaredSchedule& declared);
  static void on_stop(uv_async_t* handle);
  // Tells a service manager (systemd Type=notify) that tqd serves, and
  // starts the watchdog's keep-alives when it asked for them.
  void notify_ready();
  static void on_watchdog(uv_timer_t* handle);
  // "serving on port 8080: 1204 jobs in 3 queues", for `systemctl status`.
  std::string status_line() const;
  // Once a second while serving: STATUS again when the line changed.
  static void on_status(uv_timer_t* handle);

  // The server holds a reference: a reload changes the live settings here.
  Config config_;
  ConfigSource reload_source_;            // reload_from(); empty: nothing to read again
  size_t requested_max_connections_ = 0;  // the file's, before the open-file limit
  wal::FileSystem& fs_;
  engine::Engine engine_;
  Journal journal_;
  ServerStats stats_;
  std::unique_ptr<wal::Log> log_;
  uv_loop_t loop_{};
  uv_async_t stop_{};
  ServiceNotifier notifier_;
  uv_timer_t watchdog_{};
  bool watchdog_started_ = false;
  bool watchdog_failing_ = false;  // the last keep-alive could not be sent
  uv_timer_t status_timer_{};
  bool status_started_ = false;
  std::string status_sent_;  // the STATUS line the manager has
  std::unique_ptr<Server> server_;
};

}  // namespace tq::server
