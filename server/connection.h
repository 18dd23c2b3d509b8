// One client connection: its socket, its request parser and its unsent
// replies.
//
// Lifetime (after uvw and Node's handle_wrap): a Connection cannot be copied
// or moved, because libuv holds a pointer to the uv_tcp_t inside it. close()
// may be called any number of times; the memory is freed only in libuv's close
// callback, after every pending write callback has run, by the Server that
// owns it.
//
// Replies are appended to an output buffer and written once per loop
// iteration, from the server's before-poll hook, so that many replies share
// one write. At most one write is in flight; the next waits for it. A client
// that does not read its replies stops being read from (back-pressure), so
// one slow client costs a bounded amount of memory and nobody else's time.
//
// Log before reply: a reply is held until the log is durable up to every
// record appended when it was made, so no client ever hears "OK" for a
// change a crash could undo. Replies leave in request order, so one waiting
// reply holds back those behind it. If the log fails, held replies to
// commands that wrote become "ERROR IO" (the outcome is unknown), the others
// go out as they are.
//
// connection.cc reads requests and writes replies; connection_ending.cc
// holds how a connection ends (timeouts, the stop's refusals, the linger,
// the close); connection_limits.h the bounds both keep to.
#pragma once

#include <uv.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "protocol/request_parser.h"
#include "server/commands.h"
#include "server/engine/job.h"
#include "server/tls.h"
#include "server/waiters.h"

namespace tq::server {

class Server;

class Connection {
 public:
  // `auth` is the server's password, limits and throttle; start() fills in
  // the client's address.
  Connection(Server& server, uint64_t id, protocol::ParserLimits limits, AuthState auth);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  Connection(Connection&&) = delete;
  Connection& operator=(Connection&&) = delete;
  ~Connection() = default;

  uint64_t id() const { return id_; }
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }
  uv_tcp_t* tcp() { return &tcp_; }

  // Speaks TLS from here on (admitted on tls.port): before start(), and
  // before anything is sent.
  void use_tls(std::unique_ptr<TlsSession> session);

  // Starts reading; false (and the connection closing) if libuv refuses.
  bool start();

  // Hands every buffered reply to libuv (the Server calls this before poll).
  void flush();

  // Stops reading and closes once every reply has been written. A client
  // still sending then gets the replies first: see linger().
  void close_when_flushed();

  // The server is stopping: requests this connection sent that were read
  // and not yet run (behind a DEQUEUE ... WAIT, a BACKUP or a KICK in steps,
  // or past the end of its turn) are each answered `refusal` and not run,
  // after the reply of the command it waits on (BACKUP's comes when the copy
  // ends); then it closes as close_when_flushed() does. A request not yet
  // whole (half a PUT body) gets nothing: it was not received. Until the
  // client closes, or a linger's time passes, or end_refusing(), it goes on
  // reading, and answers `refusal` to each request that still arrives.
  void stop_serving(std::string_view refusal);
  // Its replies are all out and it is kept open only to refuse what its
  // client may still send (stop_serving()).
  bool idle_refusing() const {
    return refusing_ && !refusals_left_ && !waiting_ && unsent_bytes() == 0;
  }
  // The shutdown has nothing else to wait for: stops reading, and closes
  // once the refusals it owes are written.
  void end_refusing();

  // Closes now, dropping unsent replies. Safe to call twice. The socket
  // goes now, or in a later iteration when this one's share of closes is
  // taken (Server::may_release_socket); meanwhile nothing more is read,
  // run or delivered, and only a write libuv already holds may go on. One
  // never admitted (refused) closes its socket now, outside the share.
  void close();
  // Closes the socket; the connection goes in libuv's close callback.
  void release_socket();

  bool closing() const { return closing_; }
  bool started() const { return started_; }

  // Appends a reply to be written at the next flush.
  void send(std::string_view bytes);

  // The DEQUEUE ... WAIT this connection was blocked in is over: `jobs` were
  // leased for it (none: it timed out), or `error` is the whole reply.
  // Requests that arrived meanwhile run later, from the server's resume list.
  void finish_wait(const std::vector<const engine::Job*>& jobs, const WaitRequest& request,
                   const std::string& error);
  // The command this connection waits on (BACKUP, a KICK in steps) is
  // done: `reply` is its whole reply, held until the log holds what was
  // appended by then when `wrote`. Requests that arrived meanwhile run
  // after it.
  void finish_deferred(std::string_view reply, bool wrote = false);
  bool waiting() const { return waiting_; }

  // What CLIENTS shows about this connection at loop time `now_ms`.
  ClientInfo describe(uint64_t now_ms, const engine::Engine& engine) const;
  // What it holds in memory for its client: replies not yet sent and
  // requests read and not yet run (limits.max_client_memory).
  size_t buffered_bytes() const { return closing_ ? 0 : unsent_bytes() + parser_.buffered(); }
  // What it holds is there because its client does not keep up: it has
  // read none of its replies for a second (enforce_timeouts restarts that
  // clock whenever it reads some), or has been sending one request for a
  // second, or its input is held back behind a wait. A client that reads a
  // big batch steadily is not stuck, however much it holds.
  bool stuck(uint64_t now_ms) const;
  // The client's IP address as text ("" if the socket cannot say).
  std::string peer_address() const;
  // Its address and port, as CLIENTS shows them ("127.0.0.1:50286").
  std::string peer_endpoint() const;

  enum class Timeout { kNone, kIdle, kSlowRequest, kNotReading };
  // Closes the connection if it broke a timeout by `now_ms` (loop time);
  // returns which one, for the figures. Idle and slow clients are told why
  // first (part_with()); a handshake that did not finish, or a client that
  // does not read, is closed without a word: there is no session to say it
  // in, or nobody reading it.
  Timeout enforce_timeouts(uint64_t now_ms, uint64_t idle_ms, uint64_t request_ms,
                           uint64_t send_ms);
  // Runs the requests that wait in the parser (after a wait or a pause).
  void resume();
  // Its turn ended (kTurnBytes of replies): runs the next one and reads again.
  void next_turn();

  // The log is durable up to `durable_seq`: release the replies it covers.
  void log_advanced(uint64_t durable_seq);
  // The log failed: release every held reply, those that wrote as `io_error`.
  void log_failed(const std::string& io_error);
  bool waiting_for_log() const { return !held_.empty(); }
  // Whether the server has this connection on its list of log waiters.
  bool listed_for_log = false;
  // Whether it is on the server's list of connections to flush this iteration.
  bool listed_for_flush = false;

 private:
  struct WriteRequest;

  // A reply waiting for the log. Replies are contiguous in out_.
  struct Held {
    uint64_t seq;   // durable_seq must reach this
    size_t begin;   // its bytes in out_
    size_t end;
    bool answers_io_error;  // its command wrote records, or vouches for some
                            // (CommandContext::vouches): if the log fails first,
                            // the client gets ERROR IO instead
  };

  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_close(uv_handle_t* handle);

  // The client will send no more (EOF, or a TLS close_notify).
  void on_end_of_input();
  // Leaves the waiter table now, when the connection waits in DEQUEUE ...
  // WAIT: a connection that can take no job must not be handed one.
  void end_wait();
  // Reads again, after input was held back (a wait, a turn, a pause).
  void read_again();
  // Takes `ciphertext` into the TLS session and feeds what it decrypts to
  // the parser; a failure closes the connection (after its alert).
  void read_tls(std::string_view ciphertext);
  // Keeps ciphertext for the handshake's next step, for a later turn, when
  // this iteration's handshake budget is spent (Server::handshake_budget_spent).
  void hold_handshake(std::string_view ciphertext);
  void next_handshake_step();
  // Writes the first `n` bytes of `buffer` and, unless that failed, takes
  // them out of it. What the socket does not take at once goes into a write
  // request: the buffer itself when `n` is all of it (a big reply is not
  // copied again: 16 MiB of fresh pages cost tens of ms on some machines),
  // a copy of the rest otherwise.
  enum class Written { kAll, kQueued, kFailed };
  Written write_bytes(std::string& buffer, size_t n);
  void flush_tls();

  // Runs every whole request in the parser until it needs more bytes, or the
  // output is over the high-water mark, or the connection is done, or its
  // turn is over. `turn`: called for its turn (next_turn), which may take
  // the iteration's overdraft (Server::take_overdraft).
  void process(bool turn = false);
  // The iteration's reply budget is spent, and the request just parsed may
  // make a big reply, or is costly to run (its request_weight): it is kept
  // in the parser (stashed_) for the next turn. *overdrew: this turn ran one
  // on the overdraft already (it takes one).
  bool defer_costly(bool turn, size_t weight, bool* overdrew);
  // The budget is spent and more than a long request's worth of input waits
  // unparsed: it is parsed in the next turn (unless this turn may still
  // take the overdraft). Parsing a long line costs as much as running it.
  bool defer_parsing(bool turn, bool overdrew);
  // Stops reading; the next turn comes in the next iteration.
  void wait_for_turn(bool overdrew);
  // Stops reading while a wait holds more than a request's worth of input.
  void limit_input();
  // Releases or holds the reply at out_[begin, end) made by a command that
  // left the log at `seq` and did (or did not) append to it; `vouches`: the
  // reply speaks for records it did not write (CommandContext::vouches).
  void hold_or_release(size_t begin, uint64_t seq, bool wrote, bool vouches);
  // The first n bytes of out_ were sent (to libuv, or into the TLS
  // session) and taken out of it: moves the released and held offsets back
  // by as much.
  void consume(size_t n);
  void after_write_drained();
  // What ioctl `request` says of the socket in bytes (FIONREAD: received,
  // not read; SIOCOUTQ: sent, not acknowledged by the client); 0 if it
  // cannot say.
  size_t socket_bytes(unsigned long request) const;
  // The socket's TCP state (TCP_ESTABLISHED, TCP_CLOSE_WAIT, ...; 0 if unknown).
  int tcp_state() const;
  // Answers the whole requests left in the parser with refusal_, as many as
  // fit under the output's high-water mark and in the turn's share of the
  // iteration's reply budget (one at least); after_write_drained() answers
  // the rest as the client reads, next_turn() those the budget held back
  // (refusals_left_).
  void refuse_unrun();
  // While refusing_: refuses what the parser holds (refuse_unrun()), and
  // reads on while the output has room, or stops reading until it has.
  void keep_refusing();
  // Feeds bytes read to the parser, and runs (or, while refusing_,
  // refuses) the requests they complete.
  void take_input(std::string_view bytes);
  // The last step of close_when_flushed(), every reply written. close() on a
  // socket with unread input sends an RST, and so does input that arrives
  // after it; the client's kernel then drops what it had received and not
  // yet read: replies to a client still sending (a pipeline cut by QUIT, or
  // by a shutdown) were lost. So when input is waiting, or replies are not
  // yet acknowledged, send a FIN after the replies instead, and read and
  // discard until the client closes too, or kLingerMs passes (Apache's
  // lingering close). Otherwise, and for a connection never admitted,
  // close at once.
  void linger();
  // Closes after one last line, `notice` (ERROR TIMEOUT: why), so that the
  // client reads why rather than a bare EOF. It goes after the replies the
  // client is owed, as close_when_flushed() sends them; a client that does
  // not read them is closed kLingerMs from now all the same (see
  // enforce_timeouts), so nothing waits on it longer than a linger.
  void part_with(std::string_view notice, uint64_t now_ms);
  static void on_shutdown(uv_shutdown_t* req, int status);
  size_t unsent_bytes() const {
    return out_.size() + in_flight_ + (tls_ ? tls_->output().size() : 0);
  }
  // The client's socket address; nullopt if the socket cannot say.
  std::optional<sockaddr_storage> peer() const;

  Server& server_;
  const uint64_t id_;
  uv_tcp_t tcp_{};
  std::unique_ptr<TlsSession> tls_;  // null: plaintext
  protocol::RequestParser parser_;
  std::string out_;          // replies not yet handed to libuv
  size_t released_ = 0;      // out_[0, released_) may be written; the rest is held
  std::deque<Held> held_;    // replies in out_ after released_, oldest first
  size_t in_flight_ = 0;     // bytes in the one uv_write under way
  bool reading_ = false;     // uv_read_start is in effect
  bool paused_ = false;      // not reading because the client is not reading its replies
  bool input_held_ = false;  // not reading: a wait holds a request's worth of input
  // Not reading: its turn (of requests, or refusals while stopping) is
  // over, the next comes next iteration.
  bool turn_over_ = false;
  // parser_.request() holds a request parsed and not run yet (defer_costly):
  // the next process() runs it first. Its views stay valid: nothing is fed
  // to the parser while the turn is over (reading stopped).
  bool stashed_ = false;
  bool draining_ = false;    // no more requests; close when the output is written
  bool closing_ = false;     // uv_close was called
  bool lingering_ = false;   // replies written and FIN sent; discarding input until EOF
  bool peer_finished_ = false;  // the client's FIN was read: it sends nothing more
  uv_shutdown_t shutdown_req_{};
  bool started_ = false;     // admitted: counted in connections_current
  bool waiting_ = false;     // blocked in DEQUEUE ... WAIT, BACKUP or a KICK in steps:
                             // later requests wait too
  bool deferred_ = false;    // the wait is a BACKUP's or KICK's (finish_deferred ends it)
  bool input_ended_ = false;  // the client half-closed during a BACKUP: after it, end as at EOF
  std::string refusal_;       // stop_serving(): the reply to requests left unrun; empty: none
  bool refusals_left_ = false;  // refuse_unrun() stopped at the high-water mark
  // The shutdown drains: what the client still sends is read and refused,
  // not dropped, since refusing_since_ms_ (loop time).
  bool refusing_ = false;
  uint64_t refusing_since_ms_ = 0;
  AuthState auth_;
  LeaseBook leases_;  // the jobs delivered here, to refuse a late worker's ACK
  // For CLIENTS.
  std::string_view last_command_;  // the last request's verb (static storage)
  std::string waiting_on_;         // while waiting_: its queues, comma-separated
  // Loop times (uv_now, ms) for the timeouts.
  uint64_t started_ms_ = 0;         // when it was admitted
  uint64_t last_request_ms_ = 0;    // the last whole request (or the connection's start)
  // When the last wait (DEQUEUE ... WAIT, BACKUP) was answered: idle_timeout
  // counts from then too, so a long-polling worker has the whole timeout to
  // do the job it got and ACK it.
  uint64_t wait_answered_ms_ = 0;
  uint64_t idle_since_ms() const { return std::max(last_request_ms_, wait_answered_ms_); }
  // stalled_since_ms_: the bytes libuv still had to write when it was last
  // checked; fewer since means the client reads, slowly or not.
  size_t stalled_queue_bytes_ = 0;
  uint64_t partial_since_ms_ = 0;   // a request has been arriving since; 0: none
  uint64_t handshake_since_ms_ = 0;  // a TLS handshake has been under way since; 0: none
  // Ciphertext read while the iteration's handshake budget was spent: the
  // next step of the handshake runs on it in this connection's next turn.
  std::string handshake_held_;
  uint64_t stalled_since_ms_ = 0;   // replies have waited for the client since; 0: none
  uint64_t linger_since_ms_ = 0;    // lingering_ since
  uint64_t parting_since_ms_ = 0;   // part_with() since; 0: not parting
};

}  // namespace tq::server
