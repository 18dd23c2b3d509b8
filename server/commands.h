// Command handlers: a parsed request in, the engine changed, a reply out.
// They know the protocol and the engine, nothing of sockets or the event
// loop, so every handler can be tested by calling dispatch() directly.
#pragma once

#include <string>

#include "protocol/request_parser.h"
#include "server/engine/engine.h"
#include "server/journal.h"
#include "server/stats.h"
#include "wal/log.h"

namespace tq::server {

struct CommandContext {
  engine::Engine& engine;
  ServerStats& stats;
  std::string& out;                // replies are appended here
  wal::Log* log = nullptr;         // to refuse writes while it fails; null: no log
  const Journal* journal = nullptr;
  bool close_after_reply = false;  // set by QUIT
};

// Runs one request and appends its whole reply to ctx.out.
void dispatch(CommandContext& ctx, const protocol::Request& request);

// The reply to a request the parser rejected.
void reply_parse_error(CommandContext& ctx, const protocol::ParseError& error);

// The whole "ERROR IO ..." line for a write the log could not take.
std::string io_error_reply(const wal::Log& log);

}  // namespace tq::server
