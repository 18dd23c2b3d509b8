// The beanstalkd adapter (its protocol.txt), with tubes as queues.
//   put <pri> <delay> <ttr> <bytes>\r\n<data>\r\n  ->  INSERTED <id>
//   reserve-with-timeout 0                         ->  RESERVED <id> <bytes>\r\n<data>\r\n
//                                                      | TIMED_OUT
//   delete <id>                                    ->  DELETED
// A producer connection `use`s its home tube once, before the run, so a put
// carries no tube name (that is how beanstalkd clients work); a consumer
// `watch`es every tube and ignores "default", and reserve takes from any.
// A reservation is beanstalkd's lease and delete its ack, so the two-step
// consume matches tq's DEQUEUE + ACK.
#include "bench/line_scan.h"
#include "bench/protocol_adapter.h"

namespace tq::bench {
namespace {

// Long enough that no job is handed out twice during a run.
constexpr const char* kTimeToRunSeconds = "60";

class BeanstalkdAdapter final : public ProtocolAdapter {
 public:
  std::vector<SetupStep> prepare_target(const std::vector<std::string>&) const override {
    return {};  // tubes exist as soon as they are used
  }

  std::vector<SetupStep> prepare_connection(Role role, const std::vector<std::string>& queues,
                                            size_t home_queue) const override {
    std::vector<SetupStep> steps;
    if (role == Role::kProducer) {
      steps.push_back({"use " + queues[home_queue] + "\r\n", {"USING"}});
      return steps;
    }
    for (const std::string& q : queues) steps.push_back({"watch " + q + "\r\n", {"WATCHING"}});
    bool watches_default = false;
    for (const std::string& q : queues) watches_default = watches_default || q == "default";
    if (!watches_default) steps.push_back({"ignore default\r\n", {"WATCHING"}});
    return steps;
  }

  void append_enqueue(std::string& out, const std::string&,
                      std::string_view payload) const override {
    out += "put 0 0 ";
    out += kTimeToRunSeconds;
    out += ' ';
    append_decimal(out, payload.size());
    out += "\r\n";
    out += payload;
    out += "\r\n";
  }

  void append_dequeue(std::string& out, const std::string&) const override {
    out += "reserve-with-timeout 0\r\n";
  }

  void append_ack(std::string& out, const std::string&, std::string_view token) const override {
    out += "delete ";
    out += token;
    out += "\r\n";
  }

  ParsedReply parse_reply(Request request, std::string_view input) const override {
    auto begun = begin_reply(input);
    if (!begun) return {};
    ParsedReply reply = *begun;
    std::string_view line = reply.text;
    switch (request) {
      case Request::kEnqueue:
        if (starts_with(line, "INSERTED ")) reply.status = ReplyStatus::kDone;
        return reply;
      case Request::kAck:
        if (line == "DELETED") reply.status = ReplyStatus::kDone;
        return reply;
      case Request::kDequeue:
        break;
    }
    if (line == "TIMED_OUT") {
      reply.status = ReplyStatus::kEmpty;
      return reply;
    }
    if (!starts_with(line, "RESERVED ")) return reply;
    // "RESERVED <id> <bytes>", then the body and "\r\n".
    std::string_view rest = line.substr(9);
    size_t space = rest.find(' ');
    if (space == std::string_view::npos) return reply;
    auto bytes = parse_int(rest.substr(space + 1));
    if (!bytes || *bytes < 0) return reply;
    if (!take_body(input, reply, static_cast<size_t>(*bytes))) return {};  // still on its way
    reply.token = rest.substr(0, space);
    reply.status = ReplyStatus::kLeased;
    return reply;
  }
};

}  // namespace

std::unique_ptr<ProtocolAdapter> make_beanstalkd_adapter() {
  return std::make_unique<BeanstalkdAdapter>();
}

}  // namespace tq::bench
