// Reading one whole reply off a LineSocket, framed the way the command table
// says (protocol::ReplyShape): one line; "OK <n>" and n lines; or "OK <n>" and
// n framed jobs. This is the one place the client turns bytes into replies;
// the typed calls and the tq REPL both read through it.
//
// Invariant: read_reply() consumes exactly one reply, or fails; after a
// failure other than kServer the stream position is unknown and the caller
// must close the connection. An ERROR reply is always one line, whatever the
// shape, so it is consumed whole and the connection stays usable.
#pragma once

#include <string>
#include <vector>

#include "client/error.h"
#include "client/job.h"
#include "client/line_socket.h"
#include "protocol/command_table.h"

namespace tq::client {

struct Reply {
  protocol::ReplyShape shape = protocol::ReplyShape::kLine;
  std::string text;                // after "OK " on the first line ("" for a bare OK)
  std::vector<std::string> lines;  // kCountedLines: the n lines
  std::vector<Job> jobs;           // kJobs: the n jobs
  std::string raw;                 // every byte of the reply, as the server sent it
};

// Reads one reply of the given shape. An ERROR line becomes an Error of kind
// kServer.
Result<Reply> read_reply(LineSocket& socket, protocol::ReplyShape shape);

}  // namespace tq::client
