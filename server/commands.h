// Command handlers: a parsed request in, the engine changed, a reply out.
// They know the protocol and the engine, nothing of sockets or the event
// loop, so every handler can be tested by calling dispatch() directly.
//
// The handlers live in files by subject: commands.cc (dispatch and the
// informational verbs), commands_jobs.cc (producers, and workers taking
// jobs), commands_leases.cc (workers ending or extending a delivery),
// commands_queues.cc (queue administration), commands_schedules.cc.
#pragma once

#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "protocol/reply.h"
#include "protocol/request_parser.h"
#include "server/auth_throttle.h"
#include "server/bulk_work.h"
#include "server/engine/engine.h"
#include "server/journal.h"
#include "server/lease_book.h"
#include "server/stats.h"
#include "server/waiters.h"
#include "wal/log.h"

namespace tq::server {

// Vectors a handler fills and empties within one request, kept from one
// request to the next so that the common DEQUEUE allocates nothing. One per
// server: requests run one at a time.
struct HandlerScratch {
  std::vector<engine::Queue*> queues;
  std::unordered_set<engine::Queue*> seen;  // DEQUEUE's queues, when it names many
  std::vector<const engine::Job*> jobs;
};

// Bounds on what one request may ask for.
struct RequestLimits {
  int64_t max_wait_ms = 3'600'000;      // DEQUEUE ... WAIT
  size_t max_count = 1000;              // DEQUEUE ... COUNT, PEEK n
  uint64_t max_batch_bytes = 16 << 20;  // payload bytes in one DEQUEUE ... COUNT or PEEK reply
  size_t max_waiters = 10'000;          // connections blocked in DEQUEUE ... WAIT
  size_t max_payload_bytes = 1 << 20;   // an ENQUEUE's payload (the parser bounds a PUT body)
};
inline constexpr RequestLimits kDefaultRequestLimits{};

// Authentication: the server's password and one connection's standing.
struct AuthState {
  const std::string* password = nullptr;  // null or empty: no authentication
  const std::string* admin_password = nullptr;  // null or empty: no admin role
  bool authenticated = false;
  bool admin = false;                     // authenticated with the admin password
  size_t failures = 0;                    // wrong passwords on this connection
  size_t max_failures = 3;                // then the connection is closed
  AuthThrottle* throttle = nullptr;       // wrong passwords per address and second; null: none
  std::string address;                    // the client's, without its port (IPv6: its /64)
  bool has_password() const { return password != nullptr && !password->empty(); }
  bool has_admin_password() const { return admin_password != nullptr && !admin_password->empty(); }
  bool required() const { return has_password() && !authenticated; }
  // May run commands flagged kAdmin.
  bool may_admin() const { return !has_admin_password() || admin; }
};

// One connection as CLIENTS shows it.
struct ClientInfo {
  uint64_t id = 0;
  std::string address;            // ip:port; empty when the socket cannot say
  uint64_t age_ms = 0;            // since it connected
  uint64_t idle_ms = 0;           // since its last whole request
  std::string_view last_command;  // the verb, upper case; empty before the first
  size_t leases = 0;              // jobs delivered to it and still leased to it
  std::string waiting_on;         // DEQUEUE ... WAIT: its queues, comma-separated
  size_t unsent_bytes = 0;        // replies not yet written to it
  std::string tls;                // "TLSv1.3" once a TLS handshake is done; empty: plaintext
  bool admin = false;             // authenticated with auth.admin_password
};

// Who is connected, for CLIENTS: the server implements it; commands only ask.
class ClientDirectory {
 public:
  virtual ~ClientDirectory() = default;
  virtual std::vector<ClientInfo> describe_clients() const = 0;
};

// Why a backup could not start.
struct BackupRefusal {
  protocol::ErrorCode code;
  std::string message;
};

// Online backups, for BACKUP: the server makes them; commands only ask.
class BackupService {
 public:
  virtual ~BackupService() = default;
  // Starts a backup named `name` for connection `connection_id`, which then
  // waits for its reply; or says why not. Only with a log (CommandContext::log).
  virtual std::optional<BackupRefusal> start_backup(uint64_t connection_id,
                                                    const std::string& name) = 0;
};

// KICK, REDRIVE and PURGE ... DEAD of many jobs (server/bulk_work.h): the
// server runs their steps after the first; commands only ask.
class BulkService {
 public:
  virtual ~BulkService() = default;
  // Takes over `task` for connection `connection_id`, which then waits for
  // its reply.
  virtual void start_bulk(uint64_t connection_id, BulkTask task) = 0;
};

// What a reload of the settings did (RELOAD, SIGHUP).
struct ReloadOutcome {
  std::string error;                 // not empty: refused, nothing changed
  std::vector<std::string> applied;  // keys, as in config.yaml
  std::vector<std::string> pending;  // changed in the file, applied at the next start
  std::vector<std::string> failed;   // declared queues that could not be applied
};

// For RELOAD: the daemon reads its settings again.
class ReloadService {
 public:
  virtual ~ReloadService() = default;
  virtual ReloadOutcome reload_settings() = 0;
};

struct CommandContext {
  engine::Engine& engine;
  ServerStats& stats;
  std::string& out;                 // replies are appended here
  wal::Log* log = nullptr;          // to refuse writes while it fails; null: no log
  const Journal* journal = nullptr;
  WaiterTable* waiters = nullptr;   // null: DEQUEUE ... WAIT does not block
  // The server's (a pointer, not a copy: the context is made per request).
  const RequestLimits* limits = &kDefaultRequestLimits;
  AuthState* auth = nullptr;        // null: no authentication
  LeaseBook* leases = nullptr;      // this connection's deliveries; null: not kept
  const ClientDirectory* clients = nullptr;  // for CLIENTS; null: not available
  BackupService* backups = nullptr;          // for BACKUP; null: not available
  ReloadService* reloads = nullptr;          // for RELOAD; null: not available
  BulkService* bulk = nullptr;  // KICK and others of many jobs; null: they run in one go
  uint64_t connection_id = 0;                // the connection asking (BACKUP's reply)
  // The event loop's clock (uv_now: monotonic ms), which waits' deadlines
  // are on: the wall clock set back an hour must not make a WAIT an hour
  // longer, and nothing of a wait outlives the process.
  int64_t loop_now_ms = 0;
  HandlerScratch* scratch = nullptr;         // null: a handler uses its own
  bool close_after_reply = false;   // set by QUIT
  // Set by DEQUEUE and TOUCH: what they appended to the log is leases (and
  // upkeep such as TTL expiries). Unless wal.sync_leases is on, its reply then waits only
  // for the records that created the jobs it shows (Journal::
  // newest_creation_seq), not for its own nor for other clients' acks: a
  // lease lost in a crash costs an uncounted attempt (the job is ready
  // again after the restart) or a TOUCH's extension, never a job. It halves
  // the syncs a consumed job costs under fsync: always (the ACK's sync makes
  // the lease durable).
  bool wrote_only_leases = false;
  // Set by a reply that vouches for records it did not write: jobs handed out
  // (DEQUEUE), or a duplicate's "OK <id> DUPLICATE" (the first job is
  // stored). If the log fails before those records are durable, it must
  // become ERROR IO like a write's: a crash could still take the job, and its
  // id, back.
  bool vouches = false;
  // Set by a DEQUEUE ... WAIT that found nothing: no reply yet; the
  // connection blocks until the wait is served or times out.
  std::optional<WaitRequest> wait{};
  // Set by a BACKUP that started, or a KICK, REDRIVE or PURGE ... DEAD
  // with steps left: no reply yet; the connection waits until the server
  // finishes it (Connection::finish_deferred).
  bool deferred = false;
};

// Runs one request and appends its whole reply to ctx.out (or sets ctx.wait).
void dispatch(CommandContext& ctx, const protocol::Request& request);

// The reply to a request the parser rejected.
void reply_parse_error(CommandContext& ctx, const protocol::ParseError& error);

// The reply to DEQUEUE: "OK <id> <payload>", or framed jobs when `framed`.
// With no jobs: "OK 0" when framed, ERROR EMPTY when not.
// The engine says why a queue delivered nothing.
void append_delivery(std::string& out, const std::vector<const engine::Job*>& jobs, bool framed,
                     const std::vector<engine::Queue*>& queues, engine::Engine& engine);

// Notes jobs handed to a connection in its lease book, dropping entries of
// jobs that are gone once the book is big.
void record_deliveries(LeaseBook& book, const engine::Engine& engine,
                       const std::vector<const engine::Job*>& jobs);

// The whole "ERROR IO ..." line for a write the log could not take.
std::string io_error_reply(const wal::Log& log);
// The whole "ERROR TIMEOUT closing the connection: ..." line, the last a
// connection is sent when it is closed for limits.idle_timeout (`idle`) or
// limits.request_timeout, which is `timeout_ms`.
std::string timeout_notice(bool idle, uint64_t timeout_ms);
// How long an unhealthy log refuses writes: "until the disk recovers", or
// until a restart.
std::string refused_until(const wal::Log& log);

}  // namespace tq::server
