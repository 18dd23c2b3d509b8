#include "server/connection.h"

#include <linux/sockios.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <utility>

#include "server/commands.h"
#include "server/connection_limits.h"
#include "server/listen_address.h"
#include "server/log.h"
#include "server/server.h"

namespace tq::server {
namespace {

using namespace connection_limits;

size_t request_weight(const protocol::Request& request) {
  return request.args.size() > kLightArgs ? request.args.size() * kArgWeight : 0;
}

// Takes the first n bytes out of `buffer`. After a big reply (a DEQUEUE ...
// COUNT batch), an idle connection would otherwise keep its capacity for as
// long as it lives.
void drop_front(std::string& buffer, size_t n) {
  buffer.erase(0, n);
  if (buffer.empty() && buffer.capacity() > kKeepBufferBytes) std::string().swap(buffer);
}

}  // namespace

struct Connection::WriteRequest {
  uv_write_t req{};
  std::string data;   // owned here until libuv is done with it
  size_t offset = 0;  // where the bytes to write start in data
};

Connection::Connection(Server& server, uint64_t id, protocol::ParserLimits limits, AuthState auth)
    : server_(server), id_(id), parser_(limits), auth_(std::move(auth)) {
  tcp_.data = this;
  last_request_ms_ = server_.loop_now_ms();
}

void Connection::use_tls(std::unique_ptr<TlsSession> session) {
  tls_ = std::move(session);
  // Bounded like a request (see enforce_timeouts), so a client that opens
  // the port and says nothing holds no slot.
  handshake_since_ms_ = server_.loop_now_ms();
}

bool Connection::start() {
  started_ = true;
  started_ms_ = server_.loop_now_ms();
  uv_tcp_nodelay(&tcp_, 1);
  // The wrong-password budget is per address: with either password set,
  // every connection needs its own (an empty one would be everyone's).
  if (auth_.has_password() || auth_.has_admin_password()) {
    if (const std::optional<sockaddr_storage> addr = peer())
      auth_.address = throttle_address(*addr);
  }
  int rc = uv_read_start(stream(), on_alloc, on_read);
  if (rc != 0) {
    LOG_WARN("connection %llu: cannot read: %s", static_cast<unsigned long long>(id_),
             uv_strerror(rc));
    close();
    return false;
  }
  reading_ = true;
  return true;
}

std::optional<sockaddr_storage> Connection::peer() const {
  sockaddr_storage addr{};
  int len = sizeof addr;
  if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return {};
  return addr;
}

std::string Connection::peer_address() const {
  const std::optional<sockaddr_storage> addr = peer();
  return addr ? host_of(*addr) : std::string();
}

std::string Connection::peer_endpoint() const {
  const std::optional<sockaddr_storage> addr = peer();
  return addr ? describe_address(*addr) : std::string();
}

ClientInfo Connection::describe(uint64_t now_ms, const engine::Engine& engine) const {
  ClientInfo info;
  info.id = id_;
  if (const std::optional<sockaddr_storage> addr = peer()) info.address = describe_address(*addr);
  info.age_ms = now_ms - std::min(now_ms, started_ms_);
  info.idle_ms = now_ms - std::min(now_ms, idle_since_ms());  // as idle_timeout counts
  info.last_command = last_command_;
  // Its book also remembers deliveries that ended elsewhere (expired, acked
  // by another connection) until the next prune: count only the jobs still
  // leased to it, in the same delivery.
  leases_.for_each([&](uint64_t id, uint64_t delivery) {
    const engine::Job* job = engine.find_job(id);
    if (job != nullptr && job->state == engine::JobState::kLeased && job->delivery() == delivery) {
      ++info.leases;
    }
  });
  info.waiting_on = waiting_on_;
  info.unsent_bytes = unsent_bytes();
  // One still in its handshake is named too: a crowd of them (a slow or
  // hostile client holding slots) must not pass for idle plaintext clients.
  if (tls_) info.tls = tls_->established() ? tls_->version() : "handshake";
  info.admin = auth_.admin;
  return info;
}

void Connection::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  // One buffer serves every connection: libuv reads one stream at a time and
  // the parser copies what it keeps.
  auto* self = static_cast<Connection*>(handle->data);
  *buf = self->server_.read_buffer();
}

void Connection::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<Connection*>(stream->data);
  if (nread == 0) return;  // EAGAIN: nothing this time
  if (self->lingering_) {
    // Every reply is out: what the client sends now is not read. Its close
    // (EOF), or an error, ends the linger.
    if (nread < 0) self->close();
    return;
  }
  if (nread < 0) {
    if (nread == UV_EOF) {
      self->peer_finished_ = true;
      self->on_end_of_input();
    } else {
      LOG_DEBUG("connection %llu: read error: %s", static_cast<unsigned long long>(self->id_),
                uv_strerror(static_cast<int>(nread)));
      self->close();
    }
    return;
  }
  const std::string_view bytes(buf->base, static_cast<size_t>(nread));
  if (self->tls_) {
    self->read_tls(bytes);
    return;
  }
  self->take_input(bytes);
}

void Connection::take_input(std::string_view bytes) {
  parser_.feed(bytes);
  if (refusing_) {
    keep_refusing();
    return;
  }
  process();
  limit_input();
}

void Connection::limit_input() {
  // Requests sent behind a wait are kept until it ends. Past a request's
  // worth, the socket is left unread (TCP holds the client back), or one
  // client could fill tqd's memory behind a DEQUEUE ... WAIT 1h. Reading
  // again in resume(). The price: a client that closes with this much
  // unread does not end its wait at once.
  if (waiting_ && reading_ && parser_.buffered() > kInputHighWater) {
    uv_read_stop(stream());
    reading_ = false;
    input_held_ = true;
  }
}

void Connection::on_end_of_input() {
  // Stopping: what it sent is refused already, or will be as it reads.
  if (refusing_) {
    end_refusing();
    return;
  }
  // The client is done sending but may still read (nc -N, shutdown(2)):
  // answer what it sent, then close. A wait ends here, though: a worker
  // that closed while blocked in DEQUEUE ... WAIT looks the same as one
  // that half-closed, and handing it a job would strand that job in a
  // lease until its ack timeout while live workers wait (redis and
  // beanstalkd also drop a blocked client at EOF). Not a BACKUP's: it is
  // made either way, and `echo BACKUP | nc -N` should hear how it went,
  // and the replies to what it sent after; resume() comes back here then.
  // Nor while requests it sent wait to run: for their turn (a big reply
  // held back past the budget included) or for their replies to drain (a
  // TLS close_notify comes in the same read as the requests before it, and
  // they would go unanswered); next_turn(), resume() and
  // after_write_drained() come back here.
  if (deferred_ || stashed_ || turn_over_ || paused_) {
    input_ended_ = true;
    return;
  }
  // What is left is a request that will never be whole (printf 'PING' | nc
  // -N): say so, rather than close as if nothing had been sent. (Not after
  // QUIT: what follows it goes unanswered, whole or not.)
  if (!waiting_ && !closing_ && !draining_ && parser_.unanswered_request()) {
    std::string reply;
    protocol::append_error(reply, protocol::ErrorCode::kBadFormat,
                           "the input ended in the middle of a request (a line without its line "
                           "end, or a body short of its length): it was not run");
    send(reply);
  }
  end_wait();
  close_when_flushed();
}

void Connection::end_wait() {
  if (!waiting_ || deferred_) return;
  waiting_ = false;
  server_.waiters().cancel(id_);
}

void Connection::read_again() {
  input_held_ = false;  // limit_input() stops it again if need be
  if (uv_read_start(stream(), on_alloc, on_read) == 0) reading_ = true;
}

void Connection::read_tls(std::string_view ciphertext) {
  const bool was_established = tls_->established();
  if (!was_established && server_.handshake_budget_spent()) {
    hold_handshake(ciphertext);
    return;
  }
  std::string& plain = server_.tls_scratch();
  plain.clear();
  const uint64_t began_ns = was_established ? 0 : uv_hrtime();
  const TlsSession::Read outcome = tls_->receive(ciphertext, plain);
  if (!was_established) server_.spend_handshake_ns(uv_hrtime() - began_ns);
  if (outcome == TlsSession::Read::kPlaintext) {
    // Someone typed a command at the TLS port (nc, an old client): tell
    // them in words they can read, then close.
    ++server_.stats().tls_failures;
    tls_.reset();
    handshake_since_ms_ = 0;
    std::string reply;
    protocol::append_error(reply, protocol::ErrorCode::kTls,
                           "this port speaks TLS (tls.port): connect with TLS (tq --tls), or "
                           "to server.port without it");
    send(reply);
    close_when_flushed();
    return;
  }
  if (!was_established && tls_->established()) {
    ++server_.stats().tls_handshakes;
    handshake_since_ms_ = 0;
    LOG_DEBUG("connection %llu: %s", static_cast<unsigned long long>(id_),
              tls_->describe().c_str());
  }
  if (!tls_->output().empty()) server_.want_flush(*this);
  if (outcome == TlsSession::Read::kFailed) {
    ++server_.stats().tls_failures;
    LOG_DEBUG("connection %llu: TLS: %s", static_cast<unsigned long long>(id_),
              tls_->error().c_str());
    // Its alert, if OpenSSL made one, goes out first: the client learns why.
    close_when_flushed();
    return;
  }
  if (!plain.empty() && (!draining_ || refusing_)) take_input(plain);
  if (outcome == TlsSession::Read::kClosed) on_end_of_input();
}

void Connection::hold_handshake(std::string_view ciphertext) {
  // A handshake step costs the loop about 0.4 ms (P-256; more with RSA),
  // and a ClientHello costs its sender nothing: 2,000 of them sent at once
  // held the loop, and every other client, for 1.2 s in one iteration. Past
  // the budget the bytes wait here, and reading stops, for a later turn.
  handshake_held_.append(ciphertext);
  if (reading_) {
    uv_read_stop(stream());
    reading_ = false;
  }
  turn_over_ = true;
  server_.want_turn(*this, true);  // first in line, as they came
}

void Connection::next_handshake_step() {
  if (server_.handshake_budget_spent()) {
    // Still first in line, without another copy of its bytes: hundreds
    // waiting cost a look each an iteration, not a handshake.
    server_.want_turn(*this, true);
    return;
  }
  std::string held;
  held.swap(handshake_held_);
  turn_over_ = false;
  read_tls(held);
  if (!turn_over_ && !paused_ && !draining_ && !closing_ && !reading_) read_again();
}

bool Connection::defer_costly(bool turn, size_t weight, bool* overdrew) {
  if (!parser_.request().spec->has(protocol::kBigReply) && weight == 0) return false;
  if (turn && !*overdrew && server_.take_overdraft()) {
    *overdrew = true;
    return false;
  }
  stashed_ = true;
  wait_for_turn(*overdrew);
  return true;
}

bool Connection::defer_parsing(bool turn, bool overdrew) {
  if (parser_.buffered() <= kLongInput) return false;
  // A turn that may still take the overdraft parses: defer_costly decides.
  if (turn && !overdrew && server_.overdraft_left()) return false;
  wait_for_turn(overdrew);
  return true;
}

void Connection::wait_for_turn(bool overdrew) {
  if (reading_) {
    uv_read_stop(stream());
    reading_ = false;
  }
  turn_over_ = true;
  // Those held back wait in line, first come first served: one that just
  // ran on the overdraft goes behind them, or it would take it again next
  // time, and again, while the others wait.
  server_.want_turn(*this, !overdrew);
}

void Connection::process(bool turn) {
  // The turn ends past kTurnBytes of replies, or sooner past what is left of
  // the iteration's (Server::reply_budget); after one request at least, so
  // that every connection that gets a turn makes progress.
  const size_t budget = server_.reply_budget();
  const bool cut_short = budget < kTurnBytes;
  const size_t turn_begins = out_.size();
  const size_t turn_ends = turn_begins + (cut_short ? budget : kTurnBytes);
  bool overdrew = false;  // this turn ran a request on the overdraft
  size_t charged = 0;     // request_weight of the requests it ran, and their log bytes
  while (!closing_ && !draining_ && !waiting_ && !turn_over_) {
    if (unsent_bytes() > kOutputHighWater) {
      if (reading_) {
        uv_read_stop(stream());
        reading_ = false;
      }
      paused_ = true;
      break;
    }
    if (out_.size() + charged > turn_ends) {
      if (reading_) {
        uv_read_stop(stream());
        reading_ = false;
      }
      turn_over_ = true;
      // One that ran on the overdraft goes behind those still waiting for
      // it (defer_costly), or it would take it again next time.
      server_.want_turn(*this, cut_short && !overdrew);
      break;
    }
    if (!stashed_ && server_.reply_budget() == 0 && defer_parsing(turn, overdrew)) break;
    auto result = stashed_ ? protocol::RequestParser::Result::kRequest : parser_.next();
    stashed_ = false;
    if (result == protocol::RequestParser::Result::kNeedMore) {
      // Part of a request waits for the rest: the clock of request_timeout.
      if (!parser_.mid_request()) {
        partial_since_ms_ = 0;
      } else if (partial_since_ms_ == 0) {
        partial_since_ms_ = server_.loop_now_ms();
      }
      break;
    }
    last_request_ms_ = server_.loop_now_ms();
    partial_since_ms_ = 0;
    if (result == protocol::RequestParser::Result::kRequest) {
      const size_t weight = request_weight(parser_.request());
      // Nearly always there is budget left, and nothing to decide.
      if (server_.reply_budget() == 0 && defer_costly(turn, weight, &overdrew)) break;
      charged += weight;
    }
    wal::Log* log = server_.log();
    CommandContext ctx{
        server_.engine(),   server_.stats(),           out_,   log,     server_.journal(),
        &server_.waiters(), &server_.request_limits(), &auth_, &leases_};
    const size_t begin = out_.size();
    const uint64_t seq_before = log != nullptr ? log->last_seq() : 0;
    ctx.clients = &server_;
    ctx.backups = &server_;
    ctx.reloads = &server_;
    ctx.bulk = &server_;
    ctx.connection_id = id_;
    ctx.loop_now_ms = static_cast<int64_t>(server_.loop_now_ms());
    ctx.scratch = &server_.handler_scratch();
    const uint64_t logged_before = log != nullptr ? log->appended_bytes() : 0;
    if (result == protocol::RequestParser::Result::kError) {
      reply_parse_error(ctx, parser_.error());
    } else {
      last_command_ = parser_.request().spec->name;
      dispatch(ctx, parser_.request());
    }
    // What it wrote to the log is charged too, byte for byte: a CONFIG or
    // SCHEDULE of a queue with a megabyte of schedules rewrites its record
    // and answers a few short lines, and a client pipelining 300 of them
    // held the loop for 2.2 s in one turn.
    if (log != nullptr) charged += static_cast<size_t>(log->appended_bytes() - logged_before);
    if (ctx.wait) {
      // No reply until a job comes or the time is up.
      waiting_ = true;
      waiting_on_.clear();
      for (const engine::Queue* queue : ctx.wait->queues) {
        if (!waiting_on_.empty()) waiting_on_ += ',';
        waiting_on_ += queue->name;
      }
      server_.waiters().add(id_, std::move(*ctx.wait));
      break;
    }
    if (ctx.deferred) {
      // BACKUP, a KICK in steps: the server answers when it is done.
      waiting_ = true;
      deferred_ = true;
      waiting_on_.clear();
      break;
    }
    const uint64_t seq_after = log != nullptr ? log->last_seq() : 0;
    if (ctx.wrote_only_leases && !server_.sync_leases()) {
      // DEQUEUE: only the records that brought its jobs into being must be
      // durable, not its leases nor other clients' acks.
      const Journal* journal = server_.journal();
      const uint64_t shown =
          journal != nullptr ? std::min(seq_before, journal->newest_creation_seq()) : seq_before;
      hold_or_release(begin, shown, false, ctx.vouches);
    } else {
      hold_or_release(begin, seq_after, seq_after != seq_before, ctx.vouches);
    }
    server_.want_flush(*this);
    // The request may have made jobs ready that someone is waiting for.
    server_.waiters().serve_ready();
    if (ctx.close_after_reply) close_when_flushed();
  }
  const size_t made = out_.size() > turn_begins ? out_.size() - turn_begins : 0;
  if (made + charged > 0) server_.spend_reply_budget(made + charged);
  // A long line or body came through: its buffer goes back (no request's
  // views are in use once it ran, but a stashed one's).
  if (!stashed_) parser_.release_consumed(kKeepBufferBytes);
}

void Connection::send(std::string_view bytes) {
  const size_t begin = out_.size();
  out_.append(bytes);
  hold_or_release(begin, 0, false, false);
  server_.want_flush(*this);
}

void Connection::hold_or_release(size_t begin, uint64_t seq, bool wrote, bool vouches) {
  const wal::Log* log = server_.log();
  // While the log fails, a read must not wait for records that cannot be
  // written; it shows memory, as it would anyway.
  if (!wrote && !vouches && (log == nullptr || !log->healthy())) seq = 0;
  const uint64_t durable = log != nullptr ? log->durable_seq() : 0;
  if (held_.empty() && seq <= durable) {
    released_ = out_.size();
    return;
  }
  const bool answers_io_error = wrote || vouches;
  if (!answers_io_error && !held_.empty() && !held_.back().answers_io_error &&
      held_.back().seq >= seq) {
    held_.back().end = out_.size();  // rides with the reply before it
  } else {
    held_.push_back(Held{std::max(seq, held_.empty() ? 0 : held_.back().seq), begin, out_.size(),
                         answers_io_error});
  }
  server_.wait_for_log(*this);
}

void Connection::finish_wait(const std::vector<const engine::Job*>& jobs,
                             const WaitRequest& request, const std::string& error) {
  if (!waiting_) return;
  waiting_ = false;
  waiting_on_.clear();
  wait_answered_ms_ = server_.loop_now_ms();
  const size_t begin = out_.size();
  if (!error.empty()) {
    out_ += error;
  } else {
    append_delivery(out_, jobs, request.framed, request.queues, server_.engine());
    record_deliveries(leases_, server_.engine(), jobs);
  }
  const wal::Log* log = server_.log();
  hold_or_release(begin, log != nullptr ? log->last_seq() : 0, !jobs.empty(), !jobs.empty());
  server_.want_flush(*this);
  server_.want_resume(*this);
}

void Connection::next_turn() {
  if (!handshake_held_.empty() && !closing_) {
    next_handshake_step();
    return;
  }
  turn_over_ = false;
  if (refusals_left_ && !refusal_.empty()) {
    // Stopping: its turn refuses more of what it sent.
    if (!closing_ && !deferred_) keep_refusing();
    return;
  }
  process(true);
  if (turn_over_) return;
  if (input_ended_ && !deferred_) {
    input_ended_ = false;
    on_end_of_input();
    return;
  }
  if (!paused_ && !draining_ && !closing_ && !reading_) read_again();
  limit_input();
}

void Connection::resume() {
  process();
  limit_input();
  if (input_held_ && !waiting_ && !paused_ && !turn_over_ && !draining_ && !closing_) {
    read_again();
  }
  if (input_ended_ && !deferred_ && !turn_over_) {  // else next_turn() ends it
    input_ended_ = false;
    on_end_of_input();
  }
}

void Connection::finish_deferred(std::string_view reply, bool wrote) {
  if (!deferred_) return;
  waiting_ = false;
  deferred_ = false;
  wait_answered_ms_ = server_.loop_now_ms();
  const size_t begin = out_.size();
  out_ += reply;
  const wal::Log* log = server_.log();
  hold_or_release(begin, wrote && log != nullptr ? log->last_seq() : 0, wrote, false);
  if (!refusal_.empty()) keep_refusing();
  server_.want_flush(*this);
  server_.want_resume(*this);
}

void Connection::log_advanced(uint64_t durable_seq) {
  while (!held_.empty() && held_.front().seq <= durable_seq) {
    released_ = held_.front().end;
    held_.pop_front();
  }
  if (held_.empty()) released_ = out_.size();
  server_.want_flush(*this);
}

void Connection::log_failed(const std::string& io_error) {
  if (held_.empty()) return;
  std::string tail;
  for (const Held& h : held_) {
    if (h.answers_io_error) {
      tail += io_error;
    } else {
      tail.append(out_, h.begin, h.end - h.begin);
    }
  }
  out_.resize(held_.front().begin);
  out_ += tail;
  released_ = out_.size();
  held_.clear();
  server_.want_flush(*this);
}

void Connection::consume(size_t n) {
  released_ -= n;
  for (Held& h : held_) {
    h.begin -= n;
    h.end -= n;
  }
}

void Connection::flush() {
  if (closing_ || in_flight_ > 0) return;  // the write callback flushes again
  if (tls_) {
    flush_tls();
    return;
  }
  if (released_ == 0) {
    after_write_drained();
    return;
  }
  const size_t ready = released_;
  const Written written = write_bytes(out_, ready);
  if (written == Written::kFailed) return;
  consume(ready);
  if (written == Written::kAll) after_write_drained();
}

void Connection::flush_tls() {
  // Replies are encrypted only once the handshake is done (none is made
  // before it: no request can arrive).
  if (released_ > 0 && tls_->established()) {
    if (!tls_->send(std::string_view(out_.data(), released_))) {
      LOG_DEBUG("connection %llu: TLS: %s", static_cast<unsigned long long>(id_),
                tls_->error().c_str());
      close();
      return;
    }
    const size_t sent = released_;
    drop_front(out_, sent);
    consume(sent);
  }
  std::string& wire = tls_->output();
  if (wire.empty()) {
    after_write_drained();
    return;
  }
  const Written written = write_bytes(wire, wire.size());
  if (written == Written::kFailed) return;
  if (written == Written::kAll) after_write_drained();
}

Connection::Written Connection::write_bytes(std::string& buffer, size_t n) {
  uv_buf_t buf = uv_buf_init(buffer.data(), static_cast<unsigned>(n));
  int written = uv_try_write(stream(), &buf, 1);
  if (written < 0 && written != UV_EAGAIN) {
    LOG_DEBUG("connection %llu: write error: %s", static_cast<unsigned long long>(id_),
              uv_strerror(written));
    close();
    return Written::kFailed;
  }
  const size_t done = written > 0 ? static_cast<size_t>(written) : 0;
  if (done == n) {
    drop_front(buffer, n);
    return Written::kAll;
  }
  // The socket is full: hand the rest to libuv, which writes it when it can.
  auto* req = new WriteRequest();
  if (n == buffer.size() && n > kKeepBufferBytes) {
    req->data = std::move(buffer);
    buffer = std::string();
    req->offset = done;
  } else {
    req->data.assign(buffer, done, n - done);
    drop_front(buffer, n);
  }
  in_flight_ = req->data.size() - req->offset;
  if (stalled_since_ms_ == 0) {
    stalled_since_ms_ = server_.loop_now_ms();
    stalled_queue_bytes_ = in_flight_ + socket_bytes(SIOCOUTQ);
  }
  uv_buf_t rest = uv_buf_init(req->data.data() + req->offset, static_cast<unsigned>(in_flight_));
  int rc = uv_write(&req->req, stream(), &rest, 1, on_write);
  if (rc != 0) {
    delete req;
    in_flight_ = 0;
    close();
    return Written::kFailed;
  }
  return Written::kQueued;
}

void Connection::on_write(uv_write_t* req, int status) {
  auto* request = reinterpret_cast<WriteRequest*>(req);
  auto* self = static_cast<Connection*>(req->handle->data);
  delete request;
  self->in_flight_ = 0;
  self->stalled_since_ms_ = 0;  // the client reads: progress
  if (status < 0) {
    // UV_ECANCELED: we are closing and libuv dropped the write; nothing to do.
    if (status != UV_ECANCELED) self->close();
    return;
  }
  self->flush();
}

void Connection::after_write_drained() {
  // More refusals once the client has read most of the last ones (the
  // server flushes them); none left, the connection ends below.
  if (refusals_left_ && !deferred_ && unsent_bytes() < kOutputLowWater) keep_refusing();
  if (draining_ && unsent_bytes() == 0 && !waiting_) {
    // Stopping, and kept open for the requests the client may still send:
    // each is answered ERROR SHUTDOWN, not dropped with the connection (an
    // ACK dropped so has an unknown outcome, and its job runs again). The
    // server ends this when nothing else holds the shutdown, or the
    // housekeeping after a linger's time (enforce_timeouts). Refusals
    // waiting for their turn (refuse_unrun) are made first.
    if (refusing_ || (refusals_left_ && turn_over_)) return;
    if (tls_ && tls_->established() && !tls_->notified()) {
      // The replies are out: end the TLS stream properly, then the socket.
      tls_->close_notify();
      flush();
      return;
    }
    linger();
    return;
  }
  if (paused_ && unsent_bytes() < kOutputLowWater) {
    paused_ = false;
    process();  // requests that arrived while we were paused
    if (std::exchange(input_ended_, false)) {
      on_end_of_input();  // or it waits again, for the rest to run
      return;
    }
    if (!paused_ && !turn_over_ && !draining_ && !closing_ && !reading_) read_again();
  }
}

}  // namespace tq::server
