// The C++ client library for tqd: one typed call per command, each returning
// a value or a client::Error (client/error.h) that carries the server's ERROR
// code and message. Errors are values: nothing here throws, because a queue
// client's failures (a full queue, a lost connection) are ordinary outcomes
// that every caller must handle at the call site, not exceptional ones.
//
//   auto client = tq::client::Client::connect({.host = "127.0.0.1", .port = 8080});
//   if (!client) { std::cerr << client.error().to_string() << "\n"; return 1; }
//   auto id = client->enqueue("emails", "Send welcome email");
//   auto jobs = client->dequeue_many({"emails"}, {.wait = 10s});
//   for (const auto& job : *jobs) client->ack(job);
//
// Connections. A Client is one TCP connection, used by one thread at a time
// (make one per thread). Any failure that leaves the connection's state
// unknown (it broke, a reply timed out, a wait was cancelled, ERROR SHUTDOWN)
// closes it, and so does ERROR TIMEOUT (closed for limits.idle_timeout: a
// request that crossed that line was not run). With
// Options::reconnect.attempts > 0 the next call connects again first, and a
// call that is safe to send twice is sent again at once: reads, DEQUEUE (a
// lease whose reply was lost just runs out, and the job comes back), and
// enqueues, which then always carry a dedup KEY (yours, or one the client
// makes up), so a repeat is answered with the first job's id instead of
// storing it twice. Every other write (ACK, NACK, CREATE, ...) is never
// repeated after a lost reply: it fails with an error whose
// outcome_unknown() is true, and you decide. A request the server refused
// as it closed the connection (ERROR SHUTDOWN, TIMEOUT, MAXCONN:
// Error::server_closing()) was not run, so it goes again on a new
// connection whatever it is: an ACK sent while tqd restarts is done on the
// restarted tqd, which kept the lease. A request whose reply timed out is not sent again either:
// the server took it and said nothing (stopped, stalled), and a copy would wait as long, so such a
// call fails with kTimeout after one timeout and the next call connects again (where a TLS
// handshake or AUTH left unanswered ends the attempts with a kConnect error: nothing of that call
// was sent). Without a reconnect policy a lost connection stays lost until reconnect(); a call on a
// connection the server closed while it was idle fails at once, before
// sending, with a kConnect error (nothing was sent), or with the server's
// ERROR when it said one as it closed (MAXCONN: it turned the connection
// away; TIMEOUT: it sat idle too long); one made while a reply an earlier
// call gave up on (list(patience)) is still owed and does not come fails
// with kUnanswered (the connection is closed; nothing was sent either).
//
// TLS: Options::tls (client/tls_options.h); every connect and reconnect uses
// it, and a certificate that does not verify is a kConnect error.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "client/cancel_token.h"
#include "client/duration.h"
#include "client/error.h"
#include "client/job.h"
#include "client/line_socket.h"
#include "client/reply.h"
#include "client/tls_options.h"

namespace tq::client {

struct ReconnectPolicy {
  int attempts = 0;               // connection attempts after a loss; 0: never reconnect
  milliseconds first_delay{100};  // before the second attempt; doubles after each failure
  milliseconds max_delay{2000};   // the longest pause between attempts
  // When set (lasting() sets it), the pauses add up to this at most: the last
  // is cut short, so a program told to keep trying for 2 s does not pause
  // 3.1 s (100 ms doubling to 1.6 s).
  milliseconds span{0};
  // Called after a failed attempt, before the pause that precedes the next
  // one, on the thread making the call: how many attempts failed so far, why
  // the last one did, and the pause. Lets a program say that it is still
  // trying rather than seem to hang.
  std::function<void(int failed, const Error& why, milliseconds pause)> on_retry{};
  // Called when a call finds its connection lost (it broke under the call,
  // or the server had closed it) and is about to open a new one, on the
  // thread making the call: why. on_retry is called only once an attempt
  // fails, so a server that is back (or still accepting) at the first
  // attempt is told of here alone.
  std::function<void(const Error& why)> on_lost{};
  // When fired, ends the pauses: the call fails at once with kCancelled. A
  // call made after it fired still makes its first attempt (within the
  // timeout), so a worker that stops on it can hand back, on a new
  // connection, the job it holds. A call's own token (DequeueOptions::cancel)
  // ends the pauses too, and the attempts, and wins.
  const CancelToken* cancel = nullptr;

  // A policy that keeps trying for `span`: enough attempts that the pauses
  // between them (100 ms, doubling, then every 2 s, the last cut to what is
  // left) add up to `span`, so a server that is back within it is reached
  // again. Each failed attempt takes time of its own too (up to the connect
  // timeout), so the last may come later. lasting(0) never reconnects.
  static ReconnectPolicy lasting(milliseconds span);
};

struct Options {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  // To connect, and for each wait on the server: a reply (or a send) that
  // makes no progress for this long fails with kTimeout; one whose bytes
  // keep coming is not cut off, however long it takes (a big payload on a
  // slow link). A DEQUEUE's WAIT is added to it.
  int timeout_ms = 5000;
  std::string password{};  // sent with AUTH after every connect, when not empty
  ReconnectPolicy reconnect{};
  TlsOptions tls{};  // TLS on every connect and reconnect (client/tls_options.h); default: none
};

// PUT's options (PROTOCOL.md, "PUT"); the defaults are the server's.
struct EnqueueOptions {
  int32_t priority = 0;                                       // higher is delivered first
  std::optional<milliseconds> delay{};                        // not ready before this long from now
  std::optional<std::chrono::system_clock::time_point> at{};  // or not before this time
                                                              // (sent in seconds, rounded up)
  std::optional<milliseconds> ttl{};   // expires if not leased by then (or given back after)
  std::optional<uint32_t> attempts{};  // deliveries before dead letters
  std::string key{};                   // dedup key: a repeat returns the first id
  std::string group{};                 // message group: its jobs go one at a time, in order
};

struct Enqueued {
  uint64_t id = 0;
  // The server had seen this key within the queue's dedup window and stored
  // nothing new; id is the first job's. Never set for a key the client made
  // up: only this call's own lost first attempt can have used that one.
  bool duplicate = false;
};

struct DequeueOptions {
  milliseconds wait{0};  // block up to this long while nothing is ready
  size_t count = 1;      // take up to this many jobs
  // Ends the wait early with kCancelled, closing the connection; tqd ends the
  // wait when it sees the close, so no job is handed to it (but for one it
  // handed out as the token fired: leased until its ack_timeout). Fired
  // before the call, it sends nothing (kCancelled, the connection kept). A
  // worker that stops on purpose may also use short waits and check its own
  // flag between them (examples/worker.cc).
  const CancelToken* cancel = nullptr;
};

enum class JobState { kReady, kDelayed, kLeased, kDead, kHeld };

// One line of QUEUES.
struct QueueInfo {
  std::string name;
  uint64_t ready = 0;
  uint64_t held = 0;  // ready, behind an earlier job of their group
  uint64_t delayed = 0;
  uint64_t leased = 0;
  uint64_t dead = 0;
  bool paused = false;
};

// SCHEDULE's timetable and the options of each job it puts (PROTOCOL.md,
// "SCHEDULE"): `every` a period, or else `cron` an expression, in UTC or in
// the IANA zone `tz` names (on that zone's clock, through its DST changes).
struct ScheduleOptions {
  std::optional<milliseconds> every{};
  std::string cron{};  // "0 3 * * MON-FRI", "@daily"
  std::string tz{};    // with cron: "Europe/Berlin"; empty: UTC
  int32_t priority = 0;
  std::optional<milliseconds> ttl{};
  std::optional<uint32_t> attempts{};
  std::string group{};
};

// One line of SCHEDULE's listing.
struct ScheduleInfo {
  std::string name;
  int64_t next_ms = 0;  // Unix ms of its next firing
  uint64_t fired = 0;   // jobs it has put
  std::string when;     // "every=60000ms" or "cron=0 3 * * *"
  Fields fields;        // every field, as sent
};

enum class NackOutcome {
  kRetry,    // back in the queue (now, after the delay, or after the backoff)
  kDead,     // it had used its attempts (or its TTL had passed): moved to dead letters
  kExpired,  // its TTL had passed during the lease: gone, as the queue keeps no expired jobs
};

class Client {
 public:
  // Connects (and authenticates) now.
  static Result<Client> connect(const Options& options);
  // A client that is not connected yet: reconnect() connects it.
  explicit Client(Options options);

  // --- Producers -----------------------------------------------------------
  // CREATE; an existing queue is an error with code EXISTS.
  Status create(const std::string& queue);
  // PUT: the payload travels byte for byte. Returns the job's id.
  Result<uint64_t> enqueue(const std::string& queue, std::string_view payload,
                           const EnqueueOptions& options = {});
  // As enqueue, and says whether the key was a duplicate.
  Result<Enqueued> put(const std::string& queue, std::string_view payload,
                       const EnqueueOptions& options = {});
  // Many jobs into one queue, each with `options` (no key: a key names one
  // job), pipelined: sent in rounds of up to kPutRound requests, each
  // round's replies read before the next round goes, so a bulk load takes
  // a round trip per round rather than per job. A result per job, in order:
  // its id, or the server's error for that job (FULL, say). With a
  // reconnect policy each job carries a key of its own, a round whose
  // connection broke is sent again and stored once, and the jobs a server
  // refused as it closed (ERROR SHUTDOWN, TIMEOUT: not run) go again on a
  // new connection. When the connection cannot be had, each job of that
  // round carries the error (outcome_unknown() says whether it may be
  // stored) and the call stops: the vector is then shorter than `payloads`,
  // the rest not sent. An error of the call itself is an argument refused
  // before anything was sent.
  static constexpr size_t kPutRound = 128;
  Result<std::vector<Result<uint64_t>>> put_many(const std::string& queue,
                                                 std::span<const std::string_view> payloads,
                                                 const EnqueueOptions& options = {});

  // --- Workers -------------------------------------------------------------
  // DEQUEUE ... COUNT: leases up to options.count jobs from the first of
  // `queues` (by queue priority, then order) that has some; an empty vector
  // when none was ready within options.wait.
  Result<std::vector<Job>> dequeue_many(const std::vector<std::string>& queues,
                                        const DequeueOptions& options = {});
  // One job from one queue; nullopt when none was ready within `wait`.
  Result<std::optional<Job>> dequeue(const std::string& queue, milliseconds wait = milliseconds(0));
  //
  // ACK, NACK, FAIL and TOUCH take the Job a dequeue gave, or a bare id. A
  // Job carries its delivery's lease token (Job::lease), sent as
  // <id>@<lease>: once that delivery is over (its lease ran out, and the job
  // went to another worker) the server answers NOTLEASED, on this
  // connection or any later one, rather than finishing another worker's
  // delivery. A bare id is any delivery the job is in now; the server can
  // tell a late worker from it only on the connection the job was delivered
  // on (PROTOCOL.md, Workers).
  //
  // ACK: the job is finished and deleted.
  Status ack(const Job& job);
  Status ack(uint64_t id);
  // ACK of several, in one request: at most the server's limits.max_batch
  // (1000 by default), as DEQUEUE ... COUNT gives them; a job given twice
  // counts once. Returns how many were acked (all, or an error).
  Result<uint64_t> ack(std::span<const Job> jobs);
  Result<uint64_t> ack(std::span<const uint64_t> ids);
  // NACK: back for a retry, after `delay` or the queue's backoff; with
  // `priority`, at that priority from then on.
  Result<NackOutcome> nack(const Job& job, std::optional<milliseconds> delay = {},
                           std::optional<int32_t> priority = {});
  Result<NackOutcome> nack(uint64_t id, std::optional<milliseconds> delay = {},
                           std::optional<int32_t> priority = {});
  // FAIL: straight to dead letters with the reason (one line).
  Status fail(const Job& job, std::string_view reason);
  Status fail(uint64_t id, std::string_view reason);
  // TOUCH: the lease now ends `lease` from now (default: the queue's
  // ack_timeout). Returns the time left. With `patience`, waits at most that
  // long for the reply, as list(patience) does: a late reply is kTimeout and
  // owed, the connection kept (a heartbeat must not stop its caller for the
  // whole timeout when the server stalls).
  Result<milliseconds> touch(const Job& job, std::optional<milliseconds> lease = {},
                             std::optional<milliseconds> patience = {});
  Result<milliseconds> touch(uint64_t id, std::optional<milliseconds> lease = {},
                             std::optional<milliseconds> patience = {});
  // DELETE: removes a job in any state.
  Status delete_job(uint64_t id);

  // --- Queues --------------------------------------------------------------
  Result<std::vector<std::string>> list();
  // LIST for a caller that would rather go without the names than wait (tq's
  // Tab completion): it never connects, and waits at most `patience` for the
  // reply. A late reply is kTimeout, but the connection is kept: the reply is
  // owed, and the next call reads and drops it before sending anything (and
  // closes the connection, nothing sent, if it has not come within that
  // call's own timeout: a kUnanswered error).
  Result<std::vector<std::string>> list(milliseconds patience);
  Result<std::vector<QueueInfo>> queues();
  // PEEK: the first n jobs in a state, without changing anything.
  Result<std::vector<Job>> peek(const std::string& queue, JobState state = JobState::kReady,
                                size_t n = 10);
  // JOB: one job by id, in whatever state it is; a kServer error with
  // ErrorCode NOTFOUND when it finished or never existed.
  Result<Job> job(uint64_t id);
  // KICK: dead jobs (all, or the n longest dead) back to ready. Returns how many.
  Result<uint64_t> kick(const std::string& queue, std::optional<size_t> n = {});
  // KICK <id>: that one dead job back to ready, or that delayed job ready now;
  // NOTFOUND when it is neither.
  Status kick_job(uint64_t id);
  // REDRIVE: the jobs that came to `queue` as a dead_letter_queue (all, or
  // the n oldest) back to the queues they died in. Returns how many.
  Result<uint64_t> redrive(const std::string& queue, std::optional<size_t> n = {});
  // CONFIG: applies `changes` ({"max_attempts", "5"}, all or nothing) and
  // returns every setting.
  Result<Fields> config(const std::string& queue, const Fields& changes = {});
  // PAUSE: until resume(), or for `duration` when given.
  Status pause(const std::string& queue, std::optional<milliseconds> duration = {});
  Status resume(const std::string& queue);
  // PURGE: deletes ready, held and delayed jobs, or with `dead` the dead
  // ones instead; returns how many.
  Result<uint64_t> purge(const std::string& queue, bool dead = false);
  Status drop(const std::string& queue);
  // SCHEDULE: puts `payload` into the queue as a job on a timetable; a name
  // scheduled already is replaced. Returns the schedule as the server lists it.
  Result<ScheduleInfo> schedule(const std::string& queue, const std::string& name,
                                std::string_view payload, const ScheduleOptions& options);
  // SCHEDULE <queue>: the queue's schedules, by name.
  Result<std::vector<ScheduleInfo>> schedules(const std::string& queue);
  // CANCEL: removes a schedule; NOTFOUND when there is none by that name.
  Status cancel_schedule(const std::string& queue, const std::string& name);

  // --- Server --------------------------------------------------------------
  // STATS, or STATS <queue>: name/value pairs in the server's order.
  // `cancel`, when it fires, ends the wait for the reply (kCancelled).
  Result<Fields> stats(const std::string& queue = "", const CancelToken* cancel = nullptr);
  Status ping();
  // HELP or HELP <verb>: the server's lines.
  Result<std::vector<std::string>> help(const std::string& verb = "");
  // AUTH; on success the password is kept for reconnects.
  Status auth(const std::string& password);

  // --- Any request -----------------------------------------------------------
  // Sends one request line (and, for PUT, its body) and reads the whole reply,
  // framed as the command table says. This is what the tq REPL uses. It is
  // repeated after a reconnect only when the verb does not write. A body
  // that does not fit the line's byte count (another length, a count that
  // is no number, or one past 2^64 - 1, after which the server reads every
  // byte as body) is kBadArgument, and nothing is sent.
  Result<Reply> request(std::string_view line, std::string_view body = {},
                        const CancelToken* cancel = nullptr);
  // Sends one line and returns the text after "OK" of a one-line reply.
  Result<std::string> call(std::string_view line);
  // Sends one line and reads an "OK <n>" reply with its n lines.
  Result<std::vector<std::string>> call_lines(std::string_view line);

  // --- The connection ----------------------------------------------------------
  // Open, and not closed by the server while idle. Does not block.
  bool connected() const { return socket_.is_open() && !socket_.peer_closed(); }
  // When the server closed this connection after a last ERROR line of its own
  // (MAXCONN: it turned the connection away as it accepted it), that error.
  // A connection the server closed is closed by this call either way; an
  // open one is left as it is (nullopt).
  std::optional<Error> parting_error();
  // Closes the connection and makes one attempt to open (and authenticate) a
  // new one; `cancel` (Ctrl-C at the prompt) ends its waits.
  Status reconnect(const CancelToken* cancel = nullptr);
  void close() {
    socket_.close();
    owed_replies_ = 0;
  }
  // The password sent with AUTH after each connect (empty: none). A caller
  // that the server told the password is wrong clears it, so that reconnects
  // stop sending it: each wrong one counts against the server's AUTH
  // throttle for this address.
  void set_password(std::string password) { options_.password = std::move(password); }
  // "127.0.0.1:8080" ("[::1]:8080"), or "tls://127.0.0.1:8443" when the
  // connection is TLS.
  std::string address() const {
    return (options_.tls.enabled ? "tls://" : "") + host_port(options_.host, options_.port);
  }
  LineSocket& socket() { return socket_; }
  const Options& options() const { return options_; }

 private:
  // May a request be sent again after the connection broke under it?
  enum class Repeat { kNever, kSafe };

  // Sends `wire`, reads a reply of `shape`; handles a lost connection as the
  // header comment says. With `keep_if_late` (one-line replies only), a reply
  // that does not come within read_timeout_ms is owed instead of closing the
  // connection.
  Result<Reply> exchange(std::string_view wire, protocol::ReplyShape shape, Repeat repeat,
                         int read_timeout_ms, const CancelToken* cancel, bool keep_if_late = false);
  // As exchange, for `wire` holding `count` requests (pipelined): each
  // reply, or its ERROR. After a lost connection the whole wire is sent
  // again when `repeat` allows; keep_if_late applies to a single request.
  // `lost_a_send`, if given, is set when a send of the wire was lost after
  // it went out, so the server may have run requests whose reply came from
  // a later send (an ERROR SHUTDOWN there does not mean "never run").
  Result<std::vector<Result<Reply>>> exchange_many(std::string_view wire, size_t count,
                                                   protocol::ReplyShape shape, Repeat repeat,
                                                   int read_timeout_ms, const CancelToken* cancel,
                                                   bool keep_if_late = false,
                                                   bool* lost_a_send = nullptr);
  // PUT's request line and body (a key of our own when we may repeat it), and
  // whether the key is ours; an argument that would change the request is
  // refused.
  struct PutWire {
    std::string wire;
    bool key_is_ours = false;
  };
  Result<PutWire> put_wire(const std::string& queue, std::string_view payload,
                           const EnqueueOptions& options);
  static Result<Enqueued> parse_put_reply(const Reply& reply, bool key_is_ours);
  // ACK, NACK, FAIL and TOUCH of one delivery: `ref` is "<id>" or
  // "<id>@<lease>" (the id is `id`); the public calls are these.
  Status ack_ref(const std::string& ref);
  Result<uint64_t> ack_refs(const std::vector<std::string>& refs);
  Result<NackOutcome> nack_ref(const std::string& ref, std::optional<milliseconds> delay,
                               std::optional<int32_t> priority);
  Status fail_ref(const std::string& ref, std::string_view reason);
  Result<milliseconds> touch_ref(uint64_t id, const std::string& ref,
                                 std::optional<milliseconds> lease,
                                 std::optional<milliseconds> patience);
  // Reads and drops the owed replies. When one does not come in time the
  // connection is closed (or, with keep_if_late, left owing).
  Status settle_owed_replies(int timeout_ms, const CancelToken* cancel, bool keep_if_late);
  // Connects if needed (and allowed by the policy).
  Status ensure_connected(const CancelToken* cancel);
  // An AUTH that fails without the server's answer is a kConnect error
  // (nothing of the caller's was sent); *unanswered, when given, says
  // whether the server took the connection and then let the TLS handshake
  // or AUTH time out.
  Status connect_once(const CancelToken* cancel = nullptr, bool* unanswered = nullptr);
  // exchange() of one line with a one-line reply; returns the text after OK.
  // With `patience`, that is the wait for the reply, and a late one is owed
  // (keep_if_late); without, options_.timeout_ms.
  Result<std::string> line_call(std::string_view line, Repeat repeat,
                                std::optional<milliseconds> patience = {});
  std::string generated_key();

  Options options_;
  LineSocket socket_;
  std::mt19937_64 key_random_;
  uint64_t keys_made_ = 0;
  // One-line replies the server still owes this connection for requests a
  // patient call gave up on. A one-line reply that times out has not been
  // read at all (LineSocket hands out whole lines only), so dropping that
  // many lines puts the stream back in step.
  int owed_replies_ = 0;
  // connect_once() is sending AUTH: a connection found closed is not replaced.
  bool authenticating_ = false;
};

}  // namespace tq::client
