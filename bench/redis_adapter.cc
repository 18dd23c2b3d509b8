// The redis adapter: the "reliable queue" pattern on lists (RESP2), which has
// tq's two steps of lease and ack:
//   produce  LPUSH <q> <payload>                        ->  :<length>
//   lease    LMOVE <q> <q>:processing RIGHT LEFT        ->  $<n>\r\n<payload> | $-1 (empty)
//   ack      LREM <q>:processing 1 <payload>            ->  :1
// The list holds payloads, not ids, so the ack names the payload; tq-bench
// makes every payload unique (it starts with the job's number). LMOVE puts
// the job at the head of the processing list and LREM scans from the head,
// so an ack finds its job among the few in flight, not behind them all.
#include "bench/line_scan.h"
#include "bench/protocol_adapter.h"

namespace tq::bench {
namespace {

void append_bulk(std::string& out, std::string_view bytes) {
  out += '$';
  append_decimal(out, bytes.size());
  out += "\r\n";
  out += bytes;
  out += "\r\n";
}

void append_bulk_pair(std::string& out, std::string_view queue, std::string_view suffix) {
  out += '$';
  append_decimal(out, queue.size() + suffix.size());
  out += "\r\n";
  out += queue;
  out += suffix;
  out += "\r\n";
}

constexpr std::string_view kProcessingSuffix = ":processing";

class RedisAdapter final : public ProtocolAdapter {
 public:
  std::vector<SetupStep> prepare_target(const std::vector<std::string>&) const override {
    return {};  // lists exist as soon as they hold something
  }

  void append_enqueue(std::string& out, const std::string& queue,
                      std::string_view payload) const override {
    out += "*3\r\n$5\r\nLPUSH\r\n";
    append_bulk(out, queue);
    append_bulk(out, payload);
  }

  void append_dequeue(std::string& out, const std::string& queue) const override {
    out += "*5\r\n$5\r\nLMOVE\r\n";
    append_bulk(out, queue);
    append_bulk_pair(out, queue, kProcessingSuffix);
    out += "$5\r\nRIGHT\r\n$4\r\nLEFT\r\n";
  }

  void append_ack(std::string& out, const std::string& queue,
                  std::string_view token) const override {
    out += "*4\r\n$4\r\nLREM\r\n";
    append_bulk_pair(out, queue, kProcessingSuffix);
    out += "$1\r\n1\r\n";
    append_bulk(out, token);
  }

  ParsedReply parse_reply(Request request, std::string_view input) const override {
    auto begun = begin_reply(input);
    if (!begun) return {};
    ParsedReply reply = *begun;
    std::string_view line = reply.text;
    switch (request) {
      case Request::kEnqueue:
        if (starts_with(line, ":")) reply.status = ReplyStatus::kDone;
        return reply;
      case Request::kAck:
        // ":0" would mean the job was not in the processing list.
        if (line == ":1") reply.status = ReplyStatus::kDone;
        return reply;
      case Request::kDequeue:
        break;
    }
    if (line == "$-1" || line == "_") {
      reply.status = ReplyStatus::kEmpty;
      return reply;
    }
    if (!starts_with(line, "$")) return reply;
    auto bytes = parse_int(line.substr(1));
    if (!bytes || *bytes < 0) return reply;
    auto body = take_body(input, reply, static_cast<size_t>(*bytes));
    if (!body) return {};  // the body is still on its way
    reply.token = *body;
    reply.status = ReplyStatus::kLeased;
    return reply;
  }
};

}  // namespace

std::unique_ptr<ProtocolAdapter> make_redis_adapter() {
  return std::make_unique<RedisAdapter>();
}

}  // namespace tq::bench
