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
    auto begun = begin_reply(input);
    if (!begun) return {};
    ParsedReply reply = *begun;
    std::string_view line = reply.text;
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

std::vector<SetupStep> ProtocolAdapter::prepare_connection(Role, const std::vector<std::string>&,
                                                           size_t) const {
  return {};
}

std::optional<ParsedReply> begin_reply(std::string_view input) {
  auto scanned = scan_line(input);
  if (!scanned) return std::nullopt;
  ParsedReply reply;
  reply.consumed = scanned->consumed;
  reply.status = ReplyStatus::kFailed;
  reply.text = scanned->line;
  return reply;
}

std::optional<std::string_view> take_body(std::string_view input, ParsedReply& reply,
                                          size_t bytes) {
  const size_t total = reply.consumed + bytes + 2;
  if (input.size() < total) return std::nullopt;
  std::string_view body = input.substr(reply.consumed, bytes);
  reply.consumed = total;
  return body;
}

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
