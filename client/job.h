// What the client library hands back for a job: client::Job, filled from a
// framed job of a DEQUEUE ... COUNT or PEEK reply (PROTOCOL.md, "Jobs"):
//
//   JOB <id> <bytes> queue=<q> [state=..] attempts=<a> [lease=..] [priority=..
//       at=.. expires=.. key=.. group=.. from=..] [reason=<rest of the line>]
//   <bytes> bytes of payload, then "\n"
//
// Invariant: payload holds the job's bytes exactly as stored, newlines and
// zero bytes included; `fields` keeps every header field in the order the
// server sent it, so a field this client does not know yet is not lost.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tq::client {

using Fields = std::vector<std::pair<std::string, std::string>>;

// The value of `name` in a listing or a job header; empty when absent.
std::string field(const Fields& fields, std::string_view name);

struct Job {
  uint64_t id = 0;
  std::string payload;
  std::string queue;      // empty only from the one-line DEQUEUE form
  uint32_t attempts = 0;  // deliveries so far, this one included
  // The lease token of the delivery the job is in, when it is leased
  // (DEQUEUE ... COUNT, JOB, PEEK LEASED); none from the one-line DEQUEUE or
  // a tqd older than tokens. Client::ack(job) and the rest send it, so the
  // server refuses them once this delivery is over, on any connection.
  std::optional<uint64_t> lease;

  // PEEK adds these (DEQUEUE leaves them at their defaults):
  std::string state;  // ready, held, delayed, leased or dead
  int32_t priority = 0;
  std::optional<int64_t> at_ms;       // Unix ms: becomes ready, lease ends, or died
  std::optional<int64_t> expires_ms;  // Unix ms: its TTL runs out
  std::string key;                    // dedup key
  std::string group;                  // message group
  std::string from;                   // the queue it died in, when it moved to a dead_letter_queue
  std::string reason;                 // why it died (a dead job, or one that moved so)

  Fields fields;  // every header field, as sent
};

// The parts of a job header line, before its payload has been read.
struct JobHeader {
  Job job;               // everything but the payload
  size_t payload_bytes;  // how many bytes to read next
};

// Parses "JOB <id> <bytes> <field>=<value>..."; nullopt when it is not one.
std::optional<JobHeader> parse_job_header(std::string_view line);

}  // namespace tq::client
