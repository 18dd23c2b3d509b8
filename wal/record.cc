#include "wal/record.h"

#include <xxhash.h>

#include <cstring>

#include "wal/coding.h"

namespace tq::wal {

void append_record(std::string& out, uint8_t type, uint64_t seq, std::string_view body,
                   std::string_view body_tail) {
  const size_t start = out.size();
  char header[kRecordHeaderSize] = {};  // the checksum's 8 bytes are filled in last
  char* p = store_fixed32(header + 8, static_cast<uint32_t>(body.size() + body_tail.size()));
  *p++ = static_cast<char>(type);
  store_fixed64(p, seq);
  out.append(header, sizeof header);
  out.append(body);
  out.append(body_tail);
  store_fixed64(out.data() + start, XXH3_64bits(out.data() + start + 8, out.size() - start - 8));
}

void append_segment_header(std::string& out, const SegmentHeader& header) {
  size_t start = out.size();
  out.append(kSegmentMagic, sizeof kSegmentMagic);
  put_fixed32(out, header.version);
  put_fixed32(out, header.ordinal);
  put_fixed64(out, header.first_seq);
  put_fixed64(out, XXH3_64bits(out.data() + start, 24));
}

Decoded decode_record(std::string_view data, Record* record, size_t* size) {
  *size = data.size();
  if (data.size() < kRecordHeaderSize) {
    bool zeros = true;
    for (char c : data) zeros = zeros && c == 0;
    return zeros ? Decoded::kEnd : Decoded::kTruncated;
  }
  uint64_t checksum = get_fixed64(data.data());
  uint32_t length = get_fixed32(data.data() + 8);
  auto type = static_cast<uint8_t>(data[12]);
  if (checksum == 0 && length == 0 && type == 0) return Decoded::kEnd;
  if (length > kMaxRecordBody) return Decoded::kBadLength;
  size_t total = kRecordHeaderSize + length;
  *size = total;
  if (data.size() < total) return Decoded::kTruncated;
  if (XXH3_64bits(data.data() + 8, total - 8) != checksum) return Decoded::kBadChecksum;
  if (type == 0) return Decoded::kBadChecksum;  // type 0 is never written
  record->type = type;
  record->seq = get_fixed64(data.data() + 13);
  record->body = data.substr(kRecordHeaderSize, length);
  return Decoded::kRecord;
}

bool parse_segment_header(std::string_view data, SegmentHeader* header, std::string* why) {
  if (data.size() < kSegmentHeaderSize) {
    *why = "file is shorter than a segment header";
    return false;
  }
  if (std::memcmp(data.data(), kSegmentMagic, sizeof kSegmentMagic) != 0) {
    *why = "not a tq log segment (bad magic)";
    return false;
  }
  if (XXH3_64bits(data.data(), 24) != get_fixed64(data.data() + 24)) {
    *why = "segment header checksum mismatch";
    return false;
  }
  uint32_t version = get_fixed32(data.data() + 8);
  if (version < kOldestFormatVersion || version > kFormatVersion) {
    *why = "segment format version " + std::to_string(version) + " (this tqd reads versions " +
           std::to_string(kOldestFormatVersion) + " to " + std::to_string(kFormatVersion) + ")";
    return false;
  }
  header->version = version;
  header->ordinal = get_fixed32(data.data() + 12);
  header->first_seq = get_fixed64(data.data() + 16);
  return true;
}

std::string segment_file_name(uint64_t first_seq) {
  char name[32];
  snprintf(name, sizeof name, "%020llu%s", static_cast<unsigned long long>(first_seq),
           kSegmentSuffix);
  return name;
}

uint64_t parse_segment_file_name(std::string_view name) {
  std::string_view suffix = kSegmentSuffix;
  if (name.size() != 20 + suffix.size() || name.substr(20) != suffix) return 0;
  uint64_t v = 0;
  for (char c : name.substr(0, 20)) {
    if (c < '0' || c > '9') return 0;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

}  // namespace tq::wal
