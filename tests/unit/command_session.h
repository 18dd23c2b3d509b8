// The command handlers' test bench: request lines run through the request
// parser and dispatch() as a connection runs them, against an engine with a
// hand-driven clock, so the handlers are tested without a socket or a sleep.
#pragma once

#include <string>

#include "protocol/request_parser.h"
#include "server/commands.h"

namespace tq::testing {

// One connection's session. Point `leases` at another LeaseBook to speak as
// another connection (the same engine, another worker).
struct CommandSession {
  engine::ManualClock clock;
  int64_t loop_now_ms = 0;  // the event loop's monotonic clock (CommandContext::loop_now_ms)
  engine::Engine engine{clock, engine::EngineLimits{}, engine::QueueSettings{}};
  server::ServerStats stats;
  server::AuthState* auth = nullptr;  // the connection's standing, when a password is set
  server::RequestLimits limits{};
  server::LeaseBook* leases = nullptr;  // the connection's deliveries
  bool closed = false;

  // Runs every whole request in `input` and returns every byte of the replies.
  std::string run(const std::string& input) {
    protocol::RequestParser parser;
    parser.feed(input);
    std::string out;
    for (;;) {
      auto r = parser.next();
      if (r == protocol::RequestParser::Result::kNeedMore) break;
      server::CommandContext ctx{engine, stats, out};
      ctx.auth = auth;
      ctx.limits = &limits;
      ctx.leases = leases;
      ctx.loop_now_ms = loop_now_ms;
      if (r == protocol::RequestParser::Result::kError) {
        server::reply_parse_error(ctx, parser.error());
      } else {
        server::dispatch(ctx, parser.request());
      }
      if (ctx.close_after_reply) {
        closed = true;
        break;
      }
    }
    return out;
  }
};

}  // namespace tq::testing
