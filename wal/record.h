// Framing of one record and of a segment header (see format.h): encode into a
// buffer, decode from bytes. No I/O here, so every corner can be unit-tested.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "wal/format.h"

namespace tq::wal {

struct Record {
  uint8_t type = 0;
  uint64_t seq = 0;
  std::string_view body;  // points into the bytes it was decoded from
};

struct SegmentHeader {
  uint32_t ordinal = 0;    // 1 for a log's first segment, then +1 per segment
  uint64_t first_seq = 0;  // the seq of the segment's first record
  uint32_t version = kFormatVersion;  // written: always kFormatVersion but in tests
};

inline size_t record_size(size_t body_bytes) { return kRecordHeaderSize + body_bytes; }

// The record's body is `body` followed by `body_tail`: a caller whose body
// is a small encoded head and a large payload need not join them first.
void append_record(std::string& out, uint8_t type, uint64_t seq, std::string_view body,
                   std::string_view body_tail = {});
void append_segment_header(std::string& out, const SegmentHeader& header);

enum class Decoded {
  kRecord,       // a whole, intact record
  kEnd,          // a header of zeros: the written part of the segment ends here
  kTruncated,    // the bytes end inside the record's header or body
  kBadLength,    // the length field is impossible
  kBadChecksum,  // the bytes do not match their checksum
};

// Decodes the record at the start of `data`. On kRecord, *record and *size
// (header plus body) are set. On kTruncated and kBadChecksum, *size is the
// record's claimed size (header plus length) as far as it can be read.
Decoded decode_record(std::string_view data, Record* record, size_t* size);

// Parses the first kSegmentHeaderSize bytes; false (with *why) if they are
// not a valid header of a version we read.
bool parse_segment_header(std::string_view data, SegmentHeader* header, std::string* why);

// "00000000000000000042.wal" for first_seq 42; and back (0 if not a segment).
std::string segment_file_name(uint64_t first_seq);
uint64_t parse_segment_file_name(std::string_view name);

}  // namespace tq::wal
