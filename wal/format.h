// The on-disk format of the write-ahead log. wal/FORMAT.md says the same in
// prose; keep the two in step.
//
// A log is a directory of segment files named <first seq, 20 digits>.wal.
// A segment is a 32-byte header, then records back to back, then zeros to
// the end of the preallocated file (from version 2, at least an end marker's
// worth: see kEndMarkerRoom):
//
//   header: magic[8] "TQWAL\r\n\x1a" | version u32 | ordinal u32 |
//           first_seq u64 | checksum u64 (XXH3-64 of the 24 bytes before it)
//   record: checksum u64 | length u32 | type u8 | seq u64 | body[length]
//           checksum = XXH3-64 of everything after it: length, type, seq, body
//
// Integers are little-endian. Types are chosen by the log's user, but 0 is
// reserved: a record header of zeros marks the end of the written part.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tq::wal {

inline constexpr char kSegmentMagic[8] = {'T', 'Q', 'W', 'A', 'L', '\r', '\n', '\x1a'};
// The version new segments are written in, and the oldest one replay reads.
// Version 2 keeps room for the end marker after the last record (below);
// version 1 segments could be full to their last byte.
inline constexpr uint32_t kFormatVersion = 2;
inline constexpr uint32_t kOldestFormatVersion = 1;
inline constexpr size_t kSegmentHeaderSize = 32;
inline constexpr size_t kRecordHeaderSize = 21;  // checksum 8 + length 4 + type 1 + seq 8
// From version 2, a record goes into a segment only if an end marker (a
// record header of zeros) still fits after it, and a segment made for one
// long record is made that much longer. So a version 2 segment whose records
// reach closer to its end than this was cut short from outside (a copy that
// stopped, a file system that lost the file's end), and replay can say so
// even when the cut fell exactly between two records.
inline constexpr size_t kEndMarkerRoom = kRecordHeaderSize;
// The largest payload a job may have (limits.max_payload_bytes at most).
inline constexpr uint32_t kMaxPayloadBytes = 256u << 20;
// A longer length is corruption. A job's record holds its payload and, dead,
// its key, group and reason (a few KiB at most): room for all of them, or a
// job of the largest payload would be written and then refused by replay.
inline constexpr uint32_t kMaxRecordBody = kMaxPayloadBytes + (1u << 20);
// The largest segment file the log makes (wal.segment_bytes may be no larger):
// with kRecordHeaderSize it bounds how many records a segment can hold.
inline constexpr uint64_t kMaxSegmentBytes = 4ull << 30;
inline constexpr const char* kSegmentSuffix = ".wal";

}  // namespace tq::wal
