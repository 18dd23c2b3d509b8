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
#include <optional>
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
  // Nothing by default.
  virtual std::vector<SetupStep> prepare_connection(Role role,
                                                    const std::vector<std::string>& queues,
                                                    size_t home_queue) const;

  virtual void append_enqueue(std::string& out, const std::string& queue,
                              std::string_view payload) const = 0;
  virtual void append_dequeue(std::string& out, const std::string& queue) const = 0;
  virtual void append_ack(std::string& out, const std::string& queue,
                          std::string_view token) const = 0;

  virtual ParsedReply parse_reply(Request request, std::string_view input) const = 0;
};

// For parse_reply: the reply's first line as a ParsedReply that consumes it
// and says kFailed (text: the line) until the adapter recognises it; nullopt
// until the whole line has arrived.
std::optional<ParsedReply> begin_reply(std::string_view input);
// For parse_reply: `bytes` of body after the first line, then "\r\n"
// (beanstalkd's and redis's framing). Returns the body and grows
// reply.consumed over it; nullopt while it is still arriving.
std::optional<std::string_view> take_body(std::string_view input, ParsedReply& reply, size_t bytes);

std::unique_ptr<ProtocolAdapter> make_tq_adapter();
std::unique_ptr<ProtocolAdapter> make_beanstalkd_adapter();
std::unique_ptr<ProtocolAdapter> make_redis_adapter();
std::unique_ptr<ProtocolAdapter> make_adapter(Target target);

}  // namespace tq::bench
