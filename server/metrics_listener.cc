#include "server/metrics_listener.h"

#include <algorithm>
#include <string_view>

#include "server/log.h"
#include "server/secret.h"

namespace tq::server {
namespace {

constexpr uint64_t kSweepEveryMs = 500;

enum class Route {
  kMetrics,
  kHealth,  // GET or HEAD
  kNotFound,
  kBadMethod,        // on the metrics: GET only
  kHealthBadMethod,  // on the health check: GET or HEAD
  kBadRequest,
};

// Where the request line of a whole request head sends it.
Route route(std::string_view head) {
  std::string_view line = head.substr(0, head.find('\n'));
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const size_t first = line.find(' ');
  const size_t second = first == std::string_view::npos ? first : line.find(' ', first + 1);
  if (second == std::string_view::npos || line.find(' ', second + 1) != std::string_view::npos) {
    return Route::kBadRequest;
  }
  const std::string_view method = line.substr(0, first);
  const std::string_view target = line.substr(first + 1, second - first - 1);
  const std::string_view version = line.substr(second + 1);
  if (method.empty() || target.empty() || version.substr(0, 7) != "HTTP/1.") {
    return Route::kBadRequest;
  }
  const std::string_view path = target.substr(0, target.find('?'));  // scrape params: ignored
  // The path first: a 405 says what the resource takes (its Allow), and a
  // path that is not there has no methods to list.
  if (path == "/healthz") {
    // Some load balancers check health with HEAD (RFC 9110: HEAD goes
    // wherever GET does).
    return method == "GET" || method == "HEAD" ? Route::kHealth : Route::kHealthBadMethod;
  }
  if (path != "/metrics" && path != "/") return Route::kNotFound;
  return method == "GET" ? Route::kMetrics : Route::kBadMethod;  // a scrape is always a GET
}

std::string http_head(std::string_view status, std::string_view content_type,
                      std::string_view extra_headers, size_t body_bytes) {
  std::string out = "HTTP/1.1 ";
  out += status;
  out += "\r\nContent-Type: ";
  out += content_type;
  out += "\r\nContent-Length: ";
  out += std::to_string(body_bytes);
  out += "\r\nConnection: close\r\n";
  out += extra_headers;
  out += "\r\n";
  return out;
}

std::string http_answer(std::string_view status, std::string_view content_type,
                        std::string_view extra_headers, std::string_view body) {
  std::string out = http_head(status, content_type, extra_headers, body.size());
  out += body;
  return out;
}

std::string plain_answer(std::string_view status, std::string_view extra_headers,
                         std::string_view body) {
  return http_answer(status, "text/plain; charset=utf-8", extra_headers, body);
}

// An answer to HEAD: the same head, Content-Length included, and no body
// (RFC 9110 9.3.2).
std::string without_body(std::string answer) {
  answer.resize(answer.find("\r\n\r\n") + 4);
  return answer;
}

bool same_word(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// The head sends `Authorization: Bearer <token>` (RFC 6750; Prometheus's
// `authorization` scrape setting). Header names and the scheme are case
// insensitive; the token is compared in constant time.
bool has_bearer_token(std::string_view head, std::string_view token) {
  bool found = false;
  size_t at = head.find('\n');  // past the request line
  while (at != std::string_view::npos && at + 1 < head.size()) {
    const size_t next = head.find('\n', at + 1);
    std::string_view line =
        head.substr(at + 1, next == std::string_view::npos ? next : next - at - 1);
    at = next;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || !same_word(line.substr(0, colon), "authorization")) {
      continue;
    }
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (value.size() < 7 || !same_word(value.substr(0, 7), "Bearer ")) continue;
    std::string_view sent = value.substr(7);
    while (!sent.empty() && sent.front() == ' ') sent.remove_prefix(1);
    found |= same_secret(sent, token);
  }
  return found;
}

// The end of the request head (the blank line), or npos.
size_t head_end(std::string_view request) {
  const size_t crlf = request.find("\r\n\r\n");
  const size_t lf = request.find("\n\n");
  return std::min(crlf, lf);
}

}  // namespace

// One scrape: its socket, the request read so far, and its deadline.
class MetricsListener::Client {
 public:
  Client(MetricsListener& owner, uint64_t id, uint64_t now_ms)
      : owner_(owner), id_(id), deadline_ms_(now_ms + kRequestTimeoutMs) {
    tcp_.data = this;
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  Client(Client&&) = delete;
  Client& operator=(Client&&) = delete;

  uv_tcp_t* tcp() { return &tcp_; }
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }

  void start() {
    if (uv_read_start(stream(), on_alloc, on_read) != 0) close();
  }

  // One step of this client's scrape body, answered once it is whole; true
  // when it needs no more steps (answered, or closing).
  bool step_body() {
    if (closing_ || !body_) return true;
    if (!body_->step()) return false;
    std::vector<std::string> pieces = body_->finish();
    body_.reset();
    size_t bytes = 0;
    for (const std::string& piece : pieces) bytes += piece.size();
    pieces.insert(pieces.begin(),
                  http_head("200 OK", "text/plain; version=0.0.4; charset=utf-8", "", bytes));
    answer(std::move(pieces));
    return true;
  }

  // Not while its body is being made: that takes as long as the server's
  // queues make it (and the scrapes before it in line), not the client;
  // its 10 s to read the answer start when the answer does.
  bool overdue(uint64_t now_ms) const { return !closing_ && !body_ && now_ms >= deadline_ms_; }
  // Connected, and its whole request not read yet.
  bool awaiting_request() const { return !closing_ && !answered_; }

  void close() {
    if (closing_) return;
    closing_ = true;
    uv_read_stop(stream());
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_close);
  }

 private:
  struct WriteRequest {
    uv_write_t req{};
    std::vector<std::string> data;  // owned here until libuv is done with it
  };

  static void on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
    auto& buffer = static_cast<Client*>(handle->data)->owner_.read_buffer_;
    *buf = uv_buf_init(buffer.data(), static_cast<unsigned>(buffer.size()));
  }

  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    auto* self = static_cast<Client*>(stream->data);
    if (nread == 0 || self->closing_) return;
    if (nread < 0) {
      // EOF after the answer was sent: the client read it and is done. A
      // client that half-closed right after its request still gets the
      // answer: the close waits for the shutdown callback.
      self->eof_ = true;
      uv_read_stop(stream);
      if (nread != UV_EOF || !self->answered_ || self->shut_down_) self->close();
      return;
    }
    if (self->answered_) return;  // lingering: read and drop
    self->take(std::string_view(buf->base, static_cast<size_t>(nread)));
  }

  void take(std::string_view bytes) {
    const size_t room = kMaxRequestBytes - request_.size();
    request_.append(bytes.substr(0, room));
    const size_t end = head_end(request_);
    if (end == std::string::npos) {
      if (request_.size() >= kMaxRequestBytes) {
        answer(plain_answer(
            "431 Request Header Fields Too Large", "",
            "request too large: at most " + std::to_string(kMaxRequestBytes) + " bytes\n"));
      }
      return;
    }
    const std::string_view head = std::string_view(request_).substr(0, end);
    // An answer to a HEAD that reached a resource goes without its body.
    const bool head_method = head.rfind("HEAD ", 0) == 0;
    auto reply = [&](std::string response) {
      answer(head_method ? without_body(std::move(response)) : std::move(response));
    };
    switch (route(head)) {
      case Route::kMetrics:
        if (!owner_.token_.empty() && !has_bearer_token(head, owner_.token_)) {
          answer(plain_answer("401 Unauthorized", "WWW-Authenticate: Bearer realm=\"tq\"\r\n",
                              "send Authorization: Bearer <metrics.token>\n"));
          break;
        }
        // Made in steps (MetricsListener::on_step); what comes meanwhile is
        // dropped, as after an answer.
        body_ = owner_.render_();
        answered_ = true;
        request_.clear();
        request_.shrink_to_fit();
        owner_.want_steps(id_);
        break;
      case Route::kHealth: {
        // No token: a probe sends none, and the answer tells no more than
        // whether the server can take jobs.
        const std::string problem = owner_.health_();
        reply(problem.empty() ? plain_answer("200 OK", "", "ok\n")
                              : plain_answer("503 Service Unavailable", "", problem + "\n"));
        break;
      }
      case Route::kNotFound:
        reply(
            plain_answer("404 Not Found", "",
                         "not found: the metrics are at /metrics, the health check at /healthz\n"));
        break;
      case Route::kBadMethod:
        reply(plain_answer("405 Method Not Allowed", "Allow: GET\r\n", "only GET is served\n"));
        break;
      case Route::kHealthBadMethod:
        // Allow lists what the path takes (RFC 9110 15.5.6): a client
        // told GET alone would not try the HEAD its probe could use.
        reply(plain_answer("405 Method Not Allowed", "Allow: GET, HEAD\r\n",
                           "only GET and HEAD are served\n"));
        break;
      case Route::kBadRequest:
        answer(plain_answer("400 Bad Request", "", "not an HTTP/1 request\n"));
        break;
    }
  }

  // Writes the answer, then shuts the sending side; reading goes on (and
  // drops what comes) until the client closes or the linger runs out.
  void answer(std::string response) {
    std::vector<std::string> pieces;
    pieces.push_back(std::move(response));
    answer(std::move(pieces));
  }
  // The same, in pieces written in order as they are.
  void answer(std::vector<std::string> pieces) {
    answered_ = true;
    request_.clear();
    request_.shrink_to_fit();
    deadline_ms_ = uv_now(owner_.loop_) + kAnswerTimeoutMs;
    auto* req = new WriteRequest();
    req->data = std::move(pieces);
    std::vector<uv_buf_t> bufs;
    bufs.reserve(req->data.size());
    for (std::string& piece : req->data) {
      bufs.push_back(uv_buf_init(piece.data(), static_cast<unsigned>(piece.size())));
    }
    if (uv_write(&req->req, stream(), bufs.data(), static_cast<unsigned>(bufs.size()), on_write) !=
        0) {
      delete req;
      close();
      return;
    }
    if (uv_shutdown(&shutdown_, stream(), on_shutdown) != 0) close();
  }

  static void on_write(uv_write_t* req, int status) {
    auto* self = static_cast<Client*>(req->handle->data);
    delete reinterpret_cast<WriteRequest*>(req);
    // UV_ECANCELED: closing already; the shutdown callback sees the rest.
    if (status < 0 && status != UV_ECANCELED) self->close();
  }

  static void on_shutdown(uv_shutdown_t* req, int status) {
    auto* self = static_cast<Client*>(req->handle->data);
    if (self->closing_) return;
    if (status < 0 || self->eof_) {
      self->close();
      return;
    }
    self->shut_down_ = true;
    self->deadline_ms_ = uv_now(self->owner_.loop_) + kLingerMs;
  }

  static void on_close(uv_handle_t* handle) {
    auto* self = static_cast<Client*>(handle->data);
    self->owner_.remove(self->id_);  // destroys self
  }

  MetricsListener& owner_;
  const uint64_t id_;
  uv_tcp_t tcp_{};
  uv_shutdown_t shutdown_{};
  std::string request_;     // the request so far, at most kMaxRequestBytes
  std::unique_ptr<ScrapeBody> body_;  // a scrape's body being made
  uint64_t deadline_ms_;    // loop time (uv_now) at which the sweeper closes it
  bool answered_ = false;   // an answer is being written: what comes now is dropped
  bool shut_down_ = false;  // the answer is written and the sending side shut
  bool eof_ = false;        // the client will send nothing more
  bool closing_ = false;    // uv_close was called
};

MetricsListener::MetricsListener(uv_loop_t* loop, ListenAddress address, std::string token,
                                 std::function<std::unique_ptr<ScrapeBody>()> render,
                                 std::function<std::string()> health)
    : loop_(loop),
      address_(std::move(address)),
      token_(std::move(token)),
      render_(std::move(render)),
      health_(std::move(health)) {
  uv_tcp_init(loop_, &listener_);
  listener_.data = this;
  uv_timer_init(loop_, &sweeper_);
  sweeper_.data = this;
  uv_idle_init(loop_, &stepper_);
  stepper_.data = this;
  handles_open_ = 3;
}

MetricsListener::~MetricsListener() {
  // The owner runs the loop until close() has finished; anything still open
  // here would be freed under libuv's feet.
  if (handles_open_ > 0 || !clients_.empty()) {
    LOG_ERROR("metrics endpoint destroyed with open handles");
  }
}

bool MetricsListener::listen(std::string* error) {
  AddressList found = resolve(address_, error);
  if (!found) return false;
  int rc = uv_tcp_bind(&listener_, found->ai_addr, 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 64, on_connection);
  if (rc != 0) {
    *error = cannot_listen(address_, rc);
    return false;
  }
  sockaddr_storage bound{};
  int len = sizeof bound;
  uv_tcp_getsockname(&listener_, reinterpret_cast<sockaddr*>(&bound), &len);
  bound_port_ = port_of(bound);
  LOG_INFO("metrics: serving Prometheus metrics at http://%s/metrics",
           describe_address(bound).c_str());
  warn_if_open_to_all();
  return true;
}

void MetricsListener::set_token(std::string token) {
  const bool removed = !token_.empty() && token.empty();
  token_ = std::move(token);
  if (removed) warn_if_open_to_all();
}

void MetricsListener::warn_if_open_to_all() const {
  if (is_loopback(address_.host) || !token_.empty()) return;
  LOG_WARN(
      "metrics.listen: %s is not loopback, and the endpoint has no metrics.token: anyone "
      "who can reach it can read every figure and queue name; set one, or keep it to "
      "127.0.0.1 or a private network",
      address_.host.c_str());
}

void MetricsListener::on_connection(uv_stream_t* listener, int status) {
  auto* self = static_cast<MetricsListener*>(listener->data);
  if (status < 0) {
    LOG_WARN("metrics: accept failed: %s", uv_strerror(status));
    return;
  }
  self->accept_one();
}

void MetricsListener::accept_one() {
  const uint64_t id = next_id_++;
  bool full = clients_.size() >= kMaxClients;
  if (full) {
    // The oldest connection that has not sent its whole request goes, not
    // the new one: a scraper sends its request as it connects, so sixteen
    // connections that say nothing (for their 5 s, again and again) would
    // otherwise fail every scrape and health check. Ids grow with age.
    Client* oldest = nullptr;
    uint64_t oldest_id = UINT64_MAX;
    for (auto& [other_id, other] : clients_) {
      if (other->awaiting_request() && other_id < oldest_id) {
        oldest = other.get();
        oldest_id = other_id;
      }
    }
    if (oldest != nullptr) {
      LOG_DEBUG("metrics: %zu connections open; closing the oldest that sent no request",
                kMaxClients);
      oldest->close();
      full = false;
    }
  }
  auto client = std::make_unique<Client>(*this, id, uv_now(loop_));
  uv_tcp_init(loop_, client->tcp());
  Client* raw = client.get();
  clients_.emplace(id, std::move(client));
  if (uv_accept(reinterpret_cast<uv_stream_t*>(&listener_), raw->stream()) != 0 || full) {
    // Accepted only to be closed: the backlog must drain either way.
    if (full)
      LOG_DEBUG("metrics: %zu scrapes being answered already; closing another", kMaxClients);
    raw->close();
    return;
  }
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&sweeper_))) {
    uv_timer_start(&sweeper_, on_sweep, kSweepEveryMs, kSweepEveryMs);
  }
  raw->start();
}

void MetricsListener::on_sweep(uv_timer_t* timer) {
  auto* self = static_cast<MetricsListener*>(timer->data);
  const uint64_t now = uv_now(self->loop_);
  // close() only starts closing: the map changes in the close callbacks.
  for (auto& [id, client] : self->clients_) {
    if (client->overdue(now)) client->close();
  }
}

void MetricsListener::want_steps(uint64_t id) {
  rendering_.push_back(id);
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&stepper_))) uv_idle_start(&stepper_, on_step);
}

void MetricsListener::on_step(uv_idle_t* idle) {
  auto* self = static_cast<MetricsListener*>(idle->data);
  // One step a turn of the loop, for the oldest scrape still being made.
  while (!self->rendering_.empty()) {
    auto it = self->clients_.find(self->rendering_.front());
    const bool gone = it == self->clients_.end();
    if (gone || it->second->step_body()) self->rendering_.erase(self->rendering_.begin());
    if (!gone) break;
  }
  if (self->rendering_.empty()) uv_idle_stop(&self->stepper_);
}

void MetricsListener::remove(uint64_t id) {
  clients_.erase(id);
  if (clients_.empty() && !closed_) uv_timer_stop(&sweeper_);
}

void MetricsListener::close() {
  if (closed_) return;
  closed_ = true;
  auto closed = [](uv_handle_t* handle) {
    --static_cast<MetricsListener*>(handle->data)->handles_open_;
  };
  uv_close(reinterpret_cast<uv_handle_t*>(&listener_), closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&sweeper_), closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&stepper_), closed);
  for (auto& [id, client] : clients_) client->close();
}

}  // namespace tq::server
