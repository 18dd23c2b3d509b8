// The tq adapter: one text line per request and per reply (PROTOCOL.md).
//   ENQUEUE <queue> <payload>  ->  OK <id>
//   DEQUEUE <queue>            ->  OK <id> <payload>  |  ERROR EMPTY ...
//   ACK <id>                   ->  OK acked <id>
// Queues must exist before the run: prepare_target sends CREATE for each and
// accepts ERROR EXISTS, so a second run against the same server works.
#include "bench/line_scan.h"
#include "bench/protocol_adapter.h"

namespace tq::bench {
namespace {

class TqAdapter final : public ProtocolAdapter {
 public:
  std::vector<SetupStep> prepare_target(const std::vector<std::string>& queues) const override {
    std::vector<SetupStep> steps;
    for (const std::string& q : queues) {
      steps.push_back({"CREATE " + q + "\n", {"OK", "ERROR EXISTS"}});
    }
    return steps;
  }

  std::vector<SetupStep> prepare_connection(Role, const std::vector<std::string>&,
                                            size_t) const override {
    return {};
  }

  void append_enqueue(std::string& out, const std::string& queue,
                      std::string_view payload) const override {
    out += "ENQUEUE ";
    out += queue;
    out += ' ';
    out += payload;
    out += '\n';
  }

  void append_dequeue(std::string& out, const std::string& queue) const override {
    out += "DEQUEUE ";
    out += queue;
    out += '\n';
  }

  void append_ack(std::string& out, const std::string&, std::string_view token) const override {
    out += "ACK ";
    out += token;
    out += '\n';
  }

  ParsedReply parse_reply(Request request, std::string_view input) const override {
    auto scanned = scan_line(input);
    if (!scanned) return {};
    std::string_view line = scanned->line;
    ParsedReply reply;
    reply.consumed = scanned->consumed;
    reply.status = ReplyStatus::kFailed;
    reply.text = line;
    if (!starts_with(line, "OK ")) {
      if (request == Request::kDequeue && starts_with(line, "ERROR EMPTY")) {
        reply.status = ReplyStatus::kEmpty;
      }
      return reply;
    }
    if (request != Request::kDequeue) {
      reply.status = ReplyStatus::kDone;
      return reply;
    }
    // "OK <id> <payload>": the ack needs only the id.
    std::string_view rest = line.substr(3);
    size_t space = rest.find(' ');
    reply.token = rest.substr(0, space);
    if (!reply.token.empty()) reply.status = ReplyStatus::kLeased;
    return reply;
  }
};

}  // namespace

std::unique_ptr<ProtocolAdapter> make_tq_adapter() {
  return std::make_unique<TqAdapter>();
}

std::unique_ptr<ProtocolAdapter> make_adapter(Target target) {
  switch (target) {
    case Target::kTq:
      return make_tq_adapter();
    case Target::kBeanstalkd:
      return make_beanstalkd_adapter();
    case Target::kRedis:
      return make_redis_adapter();
  }
  return make_tq_adapter();
}

}  // namespace tq::bench
