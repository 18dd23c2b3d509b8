// LoadConnection: one non-blocking connection that keeps up to `pipeline`
// requests in flight, as a producer (enqueues) or a consumer (dequeue, then
// the ack of what it got, counted as one job). It is driven by the LoadLoop
// of one thread and touches nothing of other threads but RunControl.
//
// Replies come back in request order, so a ring of the requests in flight
// (kind, queue, start time) tells what each reply answers and how long it
// took. A consumer whose dequeue finds nothing backs off: that slot is
// parked, no new dequeue is sent except one probe per kEmptyBackoff, and the
// first lease ends the back-off. An empty queue is so polled about a thousand
// times a second per connection, not as fast as the server can say "empty"
// (which would bench EMPTY replies, not jobs).
//
// On a TLS connection (tq only) the same bytes go through a TlsStream: reads
// continue until it wants more from the socket, since it may hold replies the
// socket no longer shows, and an unsent tail is offered again, grown perhaps,
// until it is taken. A plaintext connection pays for this with a test of a
// pointer or a flag here and there, nothing per byte.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bench/blocking_socket.h"
#include "bench/error.h"
#include "bench/input_buffer.h"
#include "bench/payload.h"
#include "bench/protocol_adapter.h"
#include "bench/run_control.h"
#include "bench/thread_tally.h"
#include "bench/tls_stream.h"

namespace tq::bench {

// What every connection of a run shares, read-only.
struct LoadSpec {
  const ProtocolAdapter* adapter = nullptr;
  const char* target = "";  // for error messages
  std::vector<std::string> queues;
  size_t pipeline = 1;
  PayloadMaker payloads{100};
};

class LoadConnection {
 public:
  static constexpr uint64_t kEmptyBackoffNs = 1'000'000;

  // Takes ownership of `socket`, connected, set up (TLS too when it has a
  // session) and non-blocking.
  LoadConnection(ReleasedSocket socket, Role role, size_t home_queue, const LoadSpec& spec,
                 RunControl& control, ThreadTally& tally);
  ~LoadConnection();
  LoadConnection(const LoadConnection&) = delete;
  LoadConnection& operator=(const LoadConnection&) = delete;

  int fd() const { return fd_; }

  // Issues what the pipeline and the tickets allow, then sends.
  void pump(uint64_t now_ns);
  // Reads every reply that has arrived, answers leases with acks, refills.
  void on_readable(uint64_t now_ns);
  // Sends what an earlier send left over (TLS: or reads what waited for it).
  void on_writable(uint64_t now_ns);

  bool broken() const { return broken_; }
  bool wants_write() const {
    if (broken_) return false;
    if (tls_read_wants_write_) return true;
    return out_sent_ < out_.size() && !tls_write_wants_read_;
  }
  // A parked slot is due for a retry at this time (0: none parked).
  uint64_t resume_at_ns() const { return parked_ > 0 ? resume_at_ns_ : 0; }
  // Nothing in flight and nothing more to do (or broken).
  bool finished() const;

 private:
  struct InFlight {
    uint64_t started_ns;
    uint32_t queue;
    Request request;
  };

  size_t in_flight() const { return ring_count_; }
  void push(Request request, uint32_t queue, uint64_t started_ns);
  InFlight pop();
  void issue_requests(uint64_t now_ns);
  void parse_replies(uint64_t now_ns);
  void on_tls_readable(uint64_t now_ns);
  void flush();
  void flush_tls();
  void fail(const std::string& message);

  const int fd_;
  const std::unique_ptr<TlsStream> tls_;  // null: plaintext
  const Role role_;
  const uint32_t home_queue_;
  const LoadSpec& spec_;
  RunControl& control_;
  ThreadTally& tally_;

  std::vector<InFlight> ring_;  // requests in flight, oldest at ring_head_
  size_t ring_head_ = 0;
  size_t ring_count_ = 0;
  InputBuffer in_;
  std::string out_;  // requests not yet sent, from out_sent_ on
  size_t out_sent_ = 0;
  std::string payload_;     // scratch for the payload being written
  uint32_t dequeue_queue_;  // the queue a consumer dequeues from; moves on when empty
  size_t parked_ = 0;       // consumer slots idle because a dequeue found nothing
  uint64_t resume_at_ns_ = 0;
  bool broken_ = false;
  bool tls_read_wants_write_ = false;  // a read waits for the socket to take a record first
  bool tls_write_wants_read_ = false;  // a send waits for a record to arrive first
};

}  // namespace tq::bench
