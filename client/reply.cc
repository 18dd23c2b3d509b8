#include "client/reply.h"

#include <charconv>
#include <string>

#include "protocol/reply_reader.h"

namespace tq::client {
namespace {

// Reads the count of an "OK <n>" head, bounded so that a garbled reply cannot
// make us reserve memory for billions of entries.
Result<size_t> parse_count(const std::string& text) {
  size_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty() || n > 10'000'000) {
    return make_error(ErrorKind::kProtocol, "expected OK <count>, got 'OK " + text + "'");
  }
  return n;
}

}  // namespace

Result<Reply> read_reply(LineSocket& socket, protocol::ReplyShape shape) {
  auto head = socket.read_line();
  if (!head) return head.error();
  auto parsed = protocol::parse_reply_line(*head);
  if (!parsed) return make_error(ErrorKind::kProtocol, "'" + *head + "' is neither OK nor ERROR");
  if (!parsed->ok) {
    Error e;
    e.kind = ErrorKind::kServer;
    e.code = std::string(parsed->code_name);
    e.message = std::string(parsed->text);
    return e;
  }

  Reply reply;
  reply.shape = shape;
  reply.text = std::string(parsed->text);
  reply.raw = *head + "\n";
  if (shape == protocol::ReplyShape::kLine) return reply;

  auto count = parse_count(reply.text);
  if (!count) return count.error();
  for (size_t i = 0; i < *count; ++i) {
    auto line = socket.read_line();
    if (!line) return line.error();
    reply.raw += *line + "\n";
    if (shape == protocol::ReplyShape::kCountedLines) {
      reply.lines.push_back(std::move(line).value());
      continue;
    }
    auto header = parse_job_header(*line);
    if (!header) {
      return make_error(ErrorKind::kProtocol, "expected JOB <id> <bytes> ..., got '" + *line + "'");
    }
    // Not waited for: its bytes would all be kept until the count came in.
    if (header->payload_bytes > protocol::kMaxReplyPayloadBytes) {
      return make_error(ErrorKind::kProtocol,
                        "a job of " + std::to_string(header->payload_bytes) +
                            " bytes, more than any tq server sends (" +
                            std::to_string(protocol::kMaxReplyPayloadBytes >> 20) + " MiB)");
    }
    auto payload = socket.read_body(header->payload_bytes);
    if (!payload) return payload.error();
    reply.raw += *payload + "\n";
    header->job.payload = std::move(payload).value();
    reply.jobs.push_back(std::move(header->job));
  }
  return reply;
}

}  // namespace tq::client
