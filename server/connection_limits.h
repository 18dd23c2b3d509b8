// The bounds a connection keeps to: how much it buffers, how long its turn
// and its closing last. Shared by connection.cc (requests and replies) and
// connection_ending.cc (how a connection ends); nothing else includes it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tq::server::connection_limits {

// Past this much unsent output we stop reading the client's requests; below
// the low mark we read again. Keeps a pipelining client that does not read
// from growing our memory without bound.
inline constexpr size_t kOutputHighWater = 1 << 20;
// Unparsed input kept behind a wait, at most (about: one read more).
inline constexpr size_t kInputHighWater = 1 << 20;
inline constexpr size_t kOutputLowWater = 256 << 10;
// Replies one connection makes in one turn, at most (about: one reply
// more). Past it the connection stops reading and takes its next turn in
// the next iteration, after the other clients: without turns, each client
// that pipelined STATS or HELP held the loop for about 2 MiB of replies
// (40 ms), and 100 of them for seconds. Smaller turns cost a client that
// pipelines big DEQUEUE ... COUNT batches more iterations (64 KiB measured
// slower; 256 KiB not, within the noise). A turn ends sooner when the
// iteration's budget for all connections is spent (Server::reply_budget).
inline constexpr size_t kTurnBytes = 256 << 10;
// A request of many arguments (ACK's ids, DEQUEUE's queues) costs work for
// each: about a microsecond, as much as 64 bytes of replies. It is charged
// so, in the turn and the iteration's budget, or a client pipelining ACKs of
// a thousand ids (short replies) ran hundreds of them in one turn, and a few
// such clients held the others for seconds.
inline constexpr size_t kLightArgs = 16;
inline constexpr size_t kArgWeight = 64;
// Parsing costs too: a request line of a thousand words takes about 50 us
// to split, before its weight is known. With the iteration's budget spent,
// a connection holding more than this much unparsed input waits for its
// turn before it is parsed, or 2,000 connections each sending one DEQUEUE
// of 1,000 queues were all split in one iteration (128 ms), even though
// all but a few of them then waited.
inline constexpr size_t kLongInput = 2048;
// How long a closing connection reads and discards what a client still
// sends, so that the replies it was sent arrive (see linger()). Checked by
// the once-a-second housekeeping, so two to three seconds in all.
inline constexpr uint64_t kLingerMs = 2000;
// A connection's output buffers keep up to this much capacity between
// replies; a bigger one is given back once written.
inline constexpr size_t kKeepBufferBytes = 64 << 10;
// The longest a TLS handshake may take when limits.request_timeout is 0
// ("never", for requests): a handshake that never ends is never a client's
// right, and it holds a descriptor.
inline constexpr uint64_t kHandshakeMs = 10'000;

}  // namespace tq::server::connection_limits
