// The request/reply cycle of one load connection. Every reply is matched to
// the oldest request in flight; a lease is answered at once with its ack,
// which takes over the lease's slot and start time, so a consumed job's
// latency runs from the dequeue being written to the ack's reply being read.
#include "bench/load_connection.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace tq::bench {
namespace {

const char* request_name(Request r) {
  switch (r) {
    case Request::kEnqueue:
      return "an enqueue";
    case Request::kDequeue:
      return "a dequeue";
    case Request::kAck:
      return "an ack";
  }
  return "a request";
}

}  // namespace

LoadConnection::LoadConnection(ReleasedSocket socket, Role role, size_t home_queue,
                               const LoadSpec& spec, RunControl& control, ThreadTally& tally)
    : fd_(socket.fd),
      tls_(std::move(socket.tls)),
      role_(role),
      home_queue_(static_cast<uint32_t>(home_queue)),
      spec_(spec),
      control_(control),
      tally_(tally),
      ring_(spec.pipeline),
      dequeue_queue_(static_cast<uint32_t>(home_queue)) {}

LoadConnection::~LoadConnection() {
  ::close(fd_);  // tls_ is freed after: SSL_free does not touch the socket
}

void LoadConnection::push(Request request, uint32_t queue, uint64_t started_ns) {
  ring_[(ring_head_ + ring_count_) % ring_.size()] = InFlight{started_ns, queue, request};
  ++ring_count_;
}

LoadConnection::InFlight LoadConnection::pop() {
  InFlight front = ring_[ring_head_];
  ring_head_ = (ring_head_ + 1) % ring_.size();
  --ring_count_;
  return front;
}

bool LoadConnection::finished() const {
  if (broken_) return true;
  if (in_flight() > 0) return false;
  if (control_.stopping()) return true;
  return role_ == Role::kProducer ? !control_.enqueues_left() : !control_.dequeues_left();
}

void LoadConnection::fail(const std::string& message) {
  broken_ = true;
  control_.fail(message);
}

void LoadConnection::pump(uint64_t now_ns) {
  issue_requests(now_ns);
  flush();
}

void LoadConnection::issue_requests(uint64_t now_ns) {
  if (broken_ || control_.stopping()) return;
  const ProtocolAdapter& adapter = *spec_.adapter;
  if (role_ == Role::kProducer) {
    const std::string& queue = spec_.queues[home_queue_];
    while (in_flight() < spec_.pipeline) {
      auto number = control_.claim_enqueue();
      if (!number) return;
      adapter.append_enqueue(out_, queue, spec_.payloads.make(payload_, *number));
      push(Request::kEnqueue, home_queue_, now_ns);
    }
    return;
  }
  if (parked_ > 0) {
    // Backing off after an empty dequeue: one probe per period, and a lease
    // ends the back-off (every slot refills then).
    if (now_ns < resume_at_ns_) return;
    resume_at_ns_ = now_ns + kEmptyBackoffNs;
    if (!control_.claim_dequeue()) {
      parked_ = 0;  // no job is left to wait for
      return;
    }
    --parked_;
    adapter.append_dequeue(out_, spec_.queues[dequeue_queue_]);
    push(Request::kDequeue, dequeue_queue_, now_ns);
    return;
  }
  while (in_flight() < spec_.pipeline) {
    if (!control_.claim_dequeue()) return;
    adapter.append_dequeue(out_, spec_.queues[dequeue_queue_]);
    push(Request::kDequeue, dequeue_queue_, now_ns);
  }
}

void LoadConnection::on_readable(uint64_t now_ns) {
  if (broken_) return;
  if (tls_) return on_tls_readable(now_ns);
  for (;;) {
    char* tail = in_.tail(16 * 1024);
    const size_t room = in_.tail_size();
    ssize_t n = ::recv(fd_, tail, room, 0);
    if (n > 0) {
      in_.commit(static_cast<size_t>(n));
      parse_replies(now_ns);
      if (broken_) return;
      if (static_cast<size_t>(n) < room) break;  // drained: the next recv would block
      continue;
    }
    if (n == 0) return fail(std::string(spec_.target) + " closed the connection");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    return fail("recv: " + errno_text(errno));
  }
  pump(now_ns);
}

void LoadConnection::on_tls_readable(uint64_t now_ns) {
  tls_read_wants_write_ = false;
  for (;;) {
    char* tail = in_.tail(16 * 1024);
    const TlsStream::Io io = tls_->read(tail, in_.tail_size());
    switch (io.status) {
      case TlsStream::Status::kDone:
        in_.commit(io.bytes);
        parse_replies(now_ns);
        if (broken_) return;
        continue;  // until kWantRead: OpenSSL may hold more than the socket shows
      case TlsStream::Status::kWantRead:
        break;
      case TlsStream::Status::kWantWrite:
        tls_read_wants_write_ = true;
        break;
      case TlsStream::Status::kClosed:
        return fail(std::string(spec_.target) + " closed the connection");
      case TlsStream::Status::kFailed:
        return fail(tls_->error());
    }
    break;
  }
  pump(now_ns);
}

void LoadConnection::parse_replies(uint64_t now_ns) {
  const ProtocolAdapter& adapter = *spec_.adapter;
  while (in_flight() > 0) {
    const Request request = ring_[ring_head_].request;
    ParsedReply reply = adapter.parse_reply(request, in_.unparsed());
    if (reply.status == ReplyStatus::kIncomplete) return;
    InFlight done = pop();
    switch (reply.status) {
      case ReplyStatus::kDone:
        if (request == Request::kEnqueue) {
          ++tally_.produced;
          tally_.produce_latency.record(now_ns - done.started_ns);
        } else {
          ++tally_.consumed;
          tally_.consume_latency.record(now_ns - done.started_ns);
        }
        tally_.last_completion_ns = now_ns;
        tally_.progress.store(tally_.produced + tally_.consumed, std::memory_order_relaxed);
        break;
      case ReplyStatus::kLeased:
        adapter.append_ack(out_, spec_.queues[done.queue], reply.token);
        push(Request::kAck, done.queue, done.started_ns);
        parked_ = 0;
        break;
      case ReplyStatus::kEmpty:
        ++tally_.empty_replies;
        control_.return_dequeue();
        ++parked_;
        resume_at_ns_ = now_ns + kEmptyBackoffNs;
        // Another queue may still hold jobs (beanstalkd ignores the name).
        dequeue_queue_ = static_cast<uint32_t>((dequeue_queue_ + 1) % spec_.queues.size());
        break;
      case ReplyStatus::kFailed:
      case ReplyStatus::kIncomplete:
        return fail(std::string(spec_.target) + " answered '" + std::string(reply.text) + "' to " +
                    request_name(request));
    }
    in_.consume(reply.consumed);
  }
  if (!in_.unparsed().empty()) {
    fail(std::string(spec_.target) + " sent bytes that answer no request: '" +
         std::string(in_.unparsed().substr(0, 80)) + "'");
  }
}

void LoadConnection::on_writable(uint64_t now_ns) {
  if (tls_read_wants_write_) return on_tls_readable(now_ns);  // which flushes too
  flush();
}

void LoadConnection::flush() {
  if (tls_) return flush_tls();
  while (!broken_ && out_sent_ < out_.size()) {
    ssize_t n = ::send(fd_, out_.data() + out_sent_, out_.size() - out_sent_, MSG_NOSIGNAL);
    if (n > 0) {
      out_sent_ += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    return fail("send: " + errno_text(errno));
  }
  out_.clear();
  out_sent_ = 0;
}

void LoadConnection::flush_tls() {
  tls_write_wants_read_ = false;
  while (!broken_ && out_sent_ < out_.size()) {
    // After a kWant*, the same bytes again: out_ only grows at the end until
    // all of it is sent (it may move, which the session accepts).
    const TlsStream::Io io = tls_->write(std::string_view(out_).substr(out_sent_));
    switch (io.status) {
      case TlsStream::Status::kDone:
        out_sent_ += io.bytes;
        continue;
      case TlsStream::Status::kWantWrite:
        return;
      case TlsStream::Status::kWantRead:
        tls_write_wants_read_ = true;  // the next on_readable sends again
        return;
      case TlsStream::Status::kClosed:
        return fail(std::string(spec_.target) + " closed the connection");
      case TlsStream::Status::kFailed:
        return fail(tls_->error());
    }
  }
  out_.clear();
  out_sent_ = 0;
}

}  // namespace tq::bench
