// ProtocolAdapter: the only part of tq-bench that knows which server it talks
// to. It writes the bytes of the three requests a benchmark needs (enqueue,
// dequeue, ack) and recognises their replies; connections, threads, the event
// loop and pipelining are shared by every target, so the client spends the
// same effort on each and differences in the results are the servers'.
//
// Adapters hold no per-connection state and are shared by all threads: every
// method is const. A reply is parsed from the front of the bytes received so
// far; the views in ParsedReply point into that input and live until the
// caller consumes it.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bench/options.h"

namespace tq::bench {

enum class Role { kProducer, kConsumer };

enum class Request : unsigned char { kEnqueue, kDequeue, kAck };

enum class ReplyStatus {
  kIncomplete,  // not all of the reply has arrived
  kDone,        // the enqueue or ack succeeded
  kLeased,      // the dequeue returned a job; `token` is what its ack needs
  kEmpty,       // the dequeue found no job ready
  kFailed,      // anything else; `text` is the reply, for the error message
};

struct ParsedReply {
  ReplyStatus status = ReplyStatus::kIncomplete;
  size_t consumed = 0;     // bytes of the input that this reply took
  std::string_view token;  // kLeased: a job id, or the payload itself for redis
  std::string_view text;   // kFailed: the offending reply line
};

// A request sent before the measured run, answered by one line that must
// begin with one of the accepted prefixes.
struct SetupStep {
  std::string command;
  std::vector<std::string> accepted;
};

class ProtocolAdapter {
 public:
  virtual ~ProtocolAdapter() = default;

  // Sent once, on a connection of its own, before any load connection opens:
  // e.g. CREATE for tq.
  virtual std::vector<SetupStep> prepare_target(const std::vector<std::string>& queues) const = 0;

  // Sent on each load connection before the run: e.g. beanstalkd's `use` for
  // a producer (which then always puts into `home_queue`) and `watch` for a
  // consumer.
  virtual std::vector<SetupStep> prepare_connection(Role role,
                                                    const std::vector<std::string>& queues,
                                                    size_t home_queue) const = 0;

  virtual void append_enqueue(std::string& out, const std::string& queue,
                              std::string_view payload) const = 0;
  virtual void append_dequeue(std::string& out, const std::string& queue) const = 0;
  virtual void append_ack(std::string& out, const std::string& queue,
                          std::string_view token) const = 0;

  virtual ParsedReply parse_reply(Request request, std::string_view input) const = 0;
};

std::unique_ptr<ProtocolAdapter> make_tq_adapter();
std::unique_ptr<ProtocolAdapter> make_beanstalkd_adapter();
std::unique_ptr<ProtocolAdapter> make_redis_adapter();
std::unique_ptr<ProtocolAdapter> make_adapter(Target target);

}  // namespace tq::bench
