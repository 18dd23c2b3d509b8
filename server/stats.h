// Server-wide figures shown by STATS, kept by the server and the command
// handlers. The engine keeps its own job counters; this is what only the
// network side knows.
#pragma once

#include <array>
#include <cstdint>

#include "protocol/command_table.h"
#include "server/loop_meter.h"

namespace tq::server {

struct ServerStats {
  // uv_hrtime() when tqd started: uptime counts on this monotonic clock, so
  // an NTP step or a clock set by hand does not move it.
  uint64_t started_at_ns = 0;
  uint64_t connections_current = 0;
  uint64_t connections_total = 0;
  uint64_t connections_refused = 0;  // over limits.max_connections
  uint64_t commands_total = 0;
  uint64_t errors_total = 0;         // ERROR replies of any kind
  uint64_t auth_failures = 0;        // wrong AUTH passwords
  uint64_t commands_denied = 0;      // admin commands refused (NOPERM)
  uint64_t timeouts_idle = 0;        // connections closed for each timeout
  uint64_t timeouts_request = 0;
  uint64_t timeouts_send = 0;
  uint64_t closed_over_memory = 0;   // closed for limits.max_client_memory
  uint64_t client_buffer_bytes = 0;  // all connections' buffers, at the last check
  // The log's disk (wal.min_free_disk), at the last check; while it is low,
  // the engine's intake is closed.
  uint64_t disk_free_bytes = 0;
  uint64_t disk_reserve_bytes = 0;  // the free space under which intake closes; 0: none
  uint64_t disk_low_total = 0;  // times it went low
  uint64_t tls_handshakes = 0;  // TLS connections that completed their handshake
  uint64_t tls_failures = 0;    // TLS connections closed for a failed handshake or plaintext
  int64_t tls_cert_expires_at_ms = 0;  // the served certificate's notAfter, Unix ms; 0: no TLS
  // SIGHUP (server/config_reload.h).
  uint64_t config_reloads = 0;          // settings read again and applied
  uint64_t config_reload_failures = 0;  // a file that could not be read: nothing changed
  uint64_t config_pending_restart = 0;  // settings changed in the file that wait for a restart
  // BACKUP (server/backup.h).
  uint64_t backups = 0;         // finished
  uint64_t backups_failed = 0;  // failed or cancelled
  uint64_t backups_removed = 0;  // older backups removed for wal.backup_keep
  uint64_t backup_prune_errors = 0;  // retention runs that could not remove one
  bool backup_running = false;
  int64_t last_backup_at_ms = 0;  // when the last finished one was asked for (wall clock)
  uint64_t last_backup_bytes = 0;
  uint64_t last_backup_duration_ms = 0;
  std::array<uint64_t, static_cast<size_t>(protocol::Verb::kCount)> commands_by_verb{};
  LoopMeter loop;  // how busy the event loop is
};

}  // namespace tq::server
