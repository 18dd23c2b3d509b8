// How a connection ends: the timeouts that end it, the stop that refuses
// what it still sends, the linger that lets its last replies arrive, and
// the close itself, whose socket may wait for a later iteration's share
// (Server::may_release_socket). Requests and replies are connection.cc's.
#include "server/connection.h"

#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <string>
#include <string_view>
#include <utility>

#include "server/connection_limits.h"
#include "server/log.h"
#include "server/server.h"

namespace tq::server {

using namespace connection_limits;

bool Connection::stuck(uint64_t now_ms) const {
  constexpr uint64_t kStuckMs = 1000;
  if (closing_) return false;
  return input_held_ || (stalled_since_ms_ != 0 && now_ms - stalled_since_ms_ >= kStuckMs) ||
         (partial_since_ms_ != 0 && now_ms - partial_since_ms_ >= kStuckMs);
}

int Connection::tcp_state() const {
  uv_os_fd_t fd = -1;
  tcp_info info{};
  socklen_t length = sizeof info;
  if (uv_fileno(reinterpret_cast<const uv_handle_t*>(&tcp_), &fd) != 0 ||
      getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) {
    return 0;
  }
  return info.tcpi_state;
}

size_t Connection::socket_bytes(unsigned long request) const {
  uv_os_fd_t fd = -1;
  int bytes = 0;
  if (uv_fileno(reinterpret_cast<const uv_handle_t*>(&tcp_), &fd) != 0 ||
      ioctl(fd, request, &bytes) != 0 || bytes < 0) {
    return 0;
  }
  return static_cast<size_t>(bytes);
}

void Connection::linger() {
  if (lingering_ || closing_) return;
  // A refused connection (MAXCONN) was never admitted: lingering would let
  // a flood of them hold file descriptors past max_connections, the
  // descriptors the log needs to open its next segment.
  // Input waiting would make close() reset the connection now; replies the
  // client has not acknowledged would be reset by whatever it sends next.
  // Neither once its FIN was read: nothing can come after it, and close()
  // sends what is left, then FIN. Not asked then, because a fleet of
  // workers stopping at once brings thousands of FINs into one iteration,
  // and the two ioctls were a quarter of the time each close took.
  const bool at_risk =
      started_ && !peer_finished_ && (socket_bytes(FIONREAD) > 0 || socket_bytes(SIOCOUTQ) > 0);
  if (!at_risk || uv_shutdown(&shutdown_req_, stream(), on_shutdown) != 0) {
    close();
    return;
  }
  lingering_ = true;
  // After the refusals of a shutdown, one bound for both (about 3 s in
  // all): a client that keeps sending must not keep tqd up for two.
  linger_since_ms_ = refusing_since_ms_ != 0 ? refusing_since_ms_ : server_.loop_now_ms();
  if (uv_read_start(stream(), on_alloc, on_read) == 0) reading_ = true;
}

void Connection::on_shutdown(uv_shutdown_t* req, int status) {
  // UV_ECANCELED: closed meanwhile, and close() is a no-op.
  if (status < 0) static_cast<Connection*>(req->handle->data)->close();
}

Connection::Timeout Connection::enforce_timeouts(uint64_t now_ms, uint64_t idle_ms,
                                                 uint64_t request_ms, uint64_t send_ms) {
  if (closing_) return Timeout::kNone;
  if (refusing_) {
    // Stopping: a linger's time for what the client still sends, and
    // nothing else (shutdown_timeout bounds a client that does not read).
    if (now_ms - refusing_since_ms_ >= kLingerMs) end_refusing();
    return Timeout::kNone;
  }
  if (lingering_ || parting_since_ms_ != 0) {
    // Closing already. A parting line and the linger after it share one
    // bound, from the timeout on: the client has that long to read them.
    const uint64_t since = parting_since_ms_ != 0 ? parting_since_ms_ : linger_since_ms_;
    if (now_ms - since >= kLingerMs) close();
    return Timeout::kNone;
  }
  if (waiting_ && !deferred_ && input_held_) {
    // Not reading (limit_input), so its close was never seen: a worker
    // that pipelined a MiB behind its WAIT and then went away would be
    // handed the next job. The socket's state says whether it went.
    switch (tcp_state()) {
      case TCP_CLOSE:  // reset
        LOG_DEBUG("connection %llu: reset while it waited", static_cast<unsigned long long>(id_));
        close();
        return Timeout::kNone;
      case TCP_CLOSE_WAIT:  // its end of input: what reading would have found
        on_end_of_input();
        return Timeout::kNone;
      default:
        break;
    }
  }
  Timeout broken = Timeout::kNone;
  const char* why = nullptr;
  std::string notice;  // the last line, if the client is told why
  if (stalled_since_ms_ != 0) {
    // A client that reads, however slowly, is not stalled: the clock starts
    // again whenever less is left for it to read than when last looked at,
    // in libuv's queue (a big reply is one write, done only once all of it
    // is read) and in the socket's send buffer (libuv is told to write more
    // only once much of that is free again: seconds, at a slow reader's pace).
    const size_t queued = uv_stream_get_write_queue_size(stream()) + socket_bytes(SIOCOUTQ);
    if (queued < stalled_queue_bytes_) {
      stalled_since_ms_ = now_ms;
      stalled_queue_bytes_ = queued;
    }
  }
  if (send_ms > 0 && stalled_since_ms_ != 0 && now_ms - stalled_since_ms_ >= send_ms) {
    broken = Timeout::kNotReading;
    why = "not reading its replies";
  } else if (handshake_since_ms_ != 0 &&
             now_ms - handshake_since_ms_ >= (request_ms > 0 ? request_ms : kHandshakeMs)) {
    broken = Timeout::kSlowRequest;
    why = "too slow to finish its TLS handshake";
  } else if (request_ms > 0 && partial_since_ms_ != 0 && now_ms - partial_since_ms_ >= request_ms) {
    broken = Timeout::kSlowRequest;
    why = "too slow to send a request";
    notice = timeout_notice(false, request_ms);
  } else if (idle_ms > 0 && !waiting_ && !turn_over_ && held_.empty() && in_flight_ == 0 &&
             partial_since_ms_ == 0 && now_ms - idle_since_ms() >= idle_ms) {
    // (A client in the middle of a request is slow, not idle: that is
    // request_timeout's business; one whose requests wait for their turn
    // is waiting for tqd.)
    broken = Timeout::kIdle;
    why = "idle";
    notice = timeout_notice(true, idle_ms);
  }
  if (why != nullptr) {
    LOG_DEBUG("connection %llu: %s: closing", static_cast<unsigned long long>(id_), why);
    // A TLS handshake not finished has no session to say it in.
    if (notice.empty() || handshake_since_ms_ != 0) {
      close();
    } else {
      part_with(notice, now_ms);
    }
  }
  return broken;
}

void Connection::part_with(std::string_view notice, uint64_t now_ms) {
  // What the parser holds (half a request) is not run, as on close(), and
  // nothing comes after the notice (stop_serving() leaves it alone).
  parting_since_ms_ = now_ms;
  send(notice);
  close_when_flushed();
}

void Connection::close_when_flushed() {
  if (closing_ || draining_) return;
  draining_ = true;
  // No more requests, so no wait either (a TLS stream that failed while its
  // worker waited): a job handed to it now could not be delivered.
  end_wait();
  if (reading_) {
    uv_read_stop(stream());
    reading_ = false;
  }
  server_.want_flush(*this);  // so that an idle connection closes now
}

void Connection::stop_serving(std::string_view refusal) {
  if (closing_ || parting_since_ms_ != 0) return;
  refusal_ = refusal;
  // Not one closing already (QUIT): what follows its last request goes
  // unanswered. Nor one never admitted (MAXCONN): it holds no slot to keep.
  refusing_ = started_ && !draining_;
  if (refusing_) refusing_since_ms_ = server_.loop_now_ms();
  close_when_flushed();
  keep_refusing();
}

void Connection::keep_refusing() {
  // A BACKUP's reply is not written yet: finish_deferred() refuses the rest
  // after it, in order. Meanwhile the input waits in the parser, up to a
  // request's worth, as behind any wait.
  if (!deferred_) refuse_unrun();
  const bool room = refusing_ && !closing_ && !refusals_left_ &&
                    (!deferred_ || parser_.buffered() <= kInputHighWater);
  if (room && !reading_) {
    read_again();
  } else if (!room && reading_) {
    // The client does not read its refusals: TCP holds it back, and a
    // flood costs no more memory than one read.
    uv_read_stop(stream());
    reading_ = false;
  }
}

void Connection::end_refusing() {
  if (!refusing_) return;
  refusing_ = false;
  if (reading_) {
    uv_read_stop(stream());
    reading_ = false;
  }
  server_.want_flush(*this);  // after_write_drained() closes it once its refusals are out
}

void Connection::refuse_unrun() {
  if (turn_over_) {
    // Its turn is listed already (this refusal's, or a request's from before
    // the stop): it refuses them then (next_turn), and reading stops till.
    refusals_left_ = stashed_ || parser_.buffered() > 0;
    return;
  }
  const size_t begin = out_.size();
  // Charged to the turn and the iteration's budget as process() charges
  // replies, after one refusal at least: uncharged, a client flooding
  // requests during a drain had about a megabyte of refusals made for it
  // at each read, and the loop refused for it while the others waited.
  const size_t budget = server_.reply_budget();
  const bool cut_short = budget < kTurnBytes;
  const size_t turn_ends = begin + (cut_short ? budget : kTurnBytes);
  if (std::exchange(stashed_, false)) out_ += refusal_;
  // Bounded as replies are: a megabyte of two-byte lines held behind a
  // wait would be 19 MB of refusals at once, on every such connection.
  refusals_left_ = true;
  while (unsent_bytes() < kOutputHighWater) {
    if (out_.size() > begin && out_.size() >= turn_ends) {
      // Reading stops (keep_refusing: refusals are left) until its turn.
      turn_over_ = true;
      server_.want_turn(*this, cut_short);
      break;
    }
    if (parser_.next() == protocol::RequestParser::Result::kNeedMore) {
      refusals_left_ = false;
      break;
    }
    out_ += refusal_;
  }
  if (out_.size() == begin) return;
  server_.spend_reply_budget(out_.size() - begin);
  hold_or_release(begin, 0, false, false);  // after the replies held before them
  server_.want_flush(*this);
}

void Connection::close() {
  if (closing_) return;
  closing_ = true;
  // Why, when it was not the client's doing, is logged before (a timeout, an
  // error); this line ends every connection's story at debug.
  LOG_DEBUG("connection %llu: closed", static_cast<unsigned long long>(id_));
  // Now, not when libuv's close callback removes the connection: a job that
  // comes before then (a reset, or a timeout, and an ENQUEUE read in the
  // same turn of the loop) would be leased to a connection that can no
  // longer get it, and held until its ack timeout while live workers wait.
  end_wait();
  if (reading_) {
    uv_read_stop(stream());
    reading_ = false;
  }
  // Closed for every purpose from here on: the socket itself may wait for a
  // later iteration's share (Server::may_release_socket). Not a refused one
  // (MAXCONN, never admitted): it goes now, as its refusal was written now
  // (Server::accept_one). Refusals are bounded by the accepts' share
  // already; taking the closes' share too, in a flood at max_connections
  // they held descriptors past max_connections (where tqd's own files are)
  // behind the held closes, and left departed clients' closes, and the
  // slots they free, waiting longer each iteration.
  if (!started_ || server_.may_release_socket(*this)) release_socket();
}

void Connection::release_socket() {
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_close);
}

void Connection::on_close(uv_handle_t* handle) {
  auto* self = static_cast<Connection*>(handle->data);
  self->server_.remove_connection(self->id_);  // destroys self
}

}  // namespace tq::server
