#include "client/client.h"

#include <charconv>

namespace tq::client {
namespace {

Error protocol_error(std::string message) {
  Error e;
  e.kind = ErrorKind::kProtocol;
  e.message = std::move(message);
  return e;
}

std::optional<uint64_t> parse_u64(std::string_view text) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

bool has_line_break(std::string_view s) { return s.find_first_of("\r\n") != std::string_view::npos; }

}  // namespace

std::string field(const Fields& fields, std::string_view name) {
  for (const auto& [key, value] : fields) {
    if (key == name) return value;
  }
  return {};
}

Result<Client> Client::connect(const Options& options) {
  auto socket = LineSocket::connect(options.host, options.port, options.timeout_ms);
  if (!socket) return socket.error();
  return Client(std::move(socket).value(), options);
}

Result<std::string> Client::read_ok_line() {
  auto line = socket_.read_line();
  if (!line) return line.error();
  auto reply = protocol::parse_reply_line(*line);
  if (!reply) return protocol_error("'" + *line + "'");
  if (!reply->ok) {
    Error e;
    e.kind = ErrorKind::kServer;
    e.code = std::string(reply->code_name);
    e.message = std::string(reply->text);
    return e;
  }
  return std::string(reply->text);
}

Result<std::string> Client::call(std::string_view line) {
  if (has_line_break(line)) return protocol_error("a command cannot contain a line break");
  std::string wire(line);
  wire += '\n';
  if (auto sent = socket_.send(wire); !sent) return sent.error();
  return read_ok_line();
}

Result<std::vector<std::string>> Client::call_lines(std::string_view line) {
  auto head = call(line);
  if (!head) return head.error();
  auto count = parse_u64(*head);
  if (!count) return protocol_error("expected OK <count>, got 'OK " + *head + "'");
  std::vector<std::string> lines;
  lines.reserve(*count);
  for (uint64_t i = 0; i < *count; ++i) {
    auto next = socket_.read_line();
    if (!next) return next.error();
    lines.push_back(std::move(next).value());
  }
  return lines;
}

Status Client::create(const std::string& queue) {
  auto reply = call("CREATE " + queue);
  if (!reply) return reply.error();
  return Ok{};
}

Result<uint64_t> Client::enqueue(const std::string& queue, const std::string& payload) {
  auto reply = call("ENQUEUE " + queue + " " + payload);
  if (!reply) return reply.error();
  auto id = parse_u64(*reply);
  if (!id) return protocol_error("expected OK <id>, got 'OK " + *reply + "'");
  return *id;
}

Result<std::optional<Job>> Client::dequeue(const std::string& queue) {
  auto reply = call("DEQUEUE " + queue);
  if (!reply) {
    if (reply.error().is(protocol::ErrorCode::kEmpty)) return std::optional<Job>{};
    return reply.error();
  }
  std::string_view text = *reply;
  size_t space = text.find(' ');
  auto id = parse_u64(text.substr(0, space));
  if (!id) return protocol_error("expected OK <id> <payload>, got 'OK " + *reply + "'");
  Job job;
  job.id = *id;
  if (space != std::string_view::npos) job.payload = std::string(text.substr(space + 1));
  return std::optional<Job>(std::move(job));
}

Status Client::ack(uint64_t id) {
  auto reply = call("ACK " + std::to_string(id));
  if (!reply) return reply.error();
  return Ok{};
}

Result<std::vector<std::string>> Client::list() {
  auto reply = call("LIST");
  if (!reply) return reply.error();
  std::vector<std::string> names;
  std::string_view text = *reply;
  while (!text.empty()) {
    size_t comma = text.find(',');
    names.emplace_back(text.substr(0, comma));
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return names;
}

Result<Fields> Client::stats(const std::string& queue) {
  auto lines = call_lines(queue.empty() ? "STATS" : "STATS " + queue);
  if (!lines) return lines.error();
  Fields fields;
  for (const std::string& line : *lines) {
    size_t space = line.find(' ');
    fields.emplace_back(line.substr(0, space),
                        space == std::string::npos ? "" : line.substr(space + 1));
  }
  return fields;
}

Status Client::ping() {
  auto reply = call("PING");
  if (!reply) return reply.error();
  return Ok{};
}

}  // namespace tq::client
