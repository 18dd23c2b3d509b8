#include <doctest/doctest.h>

#include <random>
#include <string>

#include <xxhash.h>

#include "wal/coding.h"
#include "wal/record.h"

namespace wal_record_test {

using namespace tq::wal;

TEST_SUITE("wal_record") {
  TEST_CASE("records round-trip through encode and decode") {
    std::mt19937 rng(3);
    for (size_t size : {0u, 1u, 7u, 100u, 4096u, 70000u}) {
      std::string body(size, '\0');
      for (char& c : body) c = static_cast<char>(rng());
      std::string buf;
      append_record(buf, 42, 123456789, body);
      REQUIRE(buf.size() == record_size(size));
      Record r;
      size_t used = 0;
      REQUIRE(decode_record(buf, &r, &used) == Decoded::kRecord);
      CHECK(used == buf.size());
      CHECK(r.type == 42);
      CHECK(r.seq == 123456789);
      CHECK(r.body == body);
    }
  }

  TEST_CASE("every cut of a record is truncated, and zeros are the end marker") {
    std::string buf;
    append_record(buf, 1, 1, "hello world");
    for (size_t cut = 1; cut < buf.size(); ++cut) {
      Record r;
      size_t used = 0;
      CHECK(decode_record(std::string_view(buf).substr(0, cut), &r, &used) == Decoded::kTruncated);
    }
    Record r;
    size_t used = 0;
    CHECK(decode_record(std::string(40, '\0'), &r, &used) == Decoded::kEnd);
    CHECK(decode_record(std::string(5, '\0'), &r, &used) == Decoded::kEnd);
  }

  TEST_CASE("every single-bit flip is detected") {
    std::string clean;
    append_record(clean, 3, 77, "payload bytes that matter");
    for (size_t bit = 0; bit < clean.size() * 8; ++bit) {
      std::string bad = clean;
      bad[bit / 8] = static_cast<char>(bad[bit / 8] ^ (1 << (bit % 8)));
      Record r;
      size_t used = 0;
      Decoded d = decode_record(bad, &r, &used);
      CAPTURE(bit);
      CHECK(d != Decoded::kRecord);
    }
  }

  TEST_CASE("an impossible length is reported as such") {
    std::string buf;
    append_record(buf, 1, 1, "x");
    buf[8] = buf[9] = buf[10] = buf[11] = '\xff';
    Record r;
    size_t used = 0;
    CHECK(decode_record(buf, &r, &used) == Decoded::kBadLength);
  }

  TEST_CASE("the record of a job of the largest payload is not an impossible length") {
    // A dead job's JOB record: its head, key, group and reason, then a
    // payload of limits.max_payload_bytes at its largest. Only the header
    // is given: the rest is cut short, which is not damage of its length.
    const uint32_t body = kMaxPayloadBytes + 4096;
    std::string buf(kRecordHeaderSize, '\0');
    store_fixed64(buf.data(), 1);
    store_fixed32(buf.data() + 8, body);
    buf[12] = 4;
    Record r;
    size_t used = 0;
    CHECK(decode_record(buf, &r, &used) == Decoded::kTruncated);
    CHECK(used == record_size(body));
  }

  TEST_CASE("segment headers round-trip and reject damage") {
    std::string buf;
    append_segment_header(buf, SegmentHeader{7, 1000});
    REQUIRE(buf.size() == kSegmentHeaderSize);
    SegmentHeader h;
    std::string why;
    REQUIRE(parse_segment_header(buf, &h, &why));
    CHECK(h.ordinal == 7);
    CHECK(h.first_seq == 1000);
    CHECK(h.version == kFormatVersion);
    buf[20] ^= 1;
    CHECK_FALSE(parse_segment_header(buf, &h, &why));
    CHECK(why == "segment header checksum mismatch");
  }

  TEST_CASE("segment headers of version 1 are read, of a version after ours refused") {
    std::string old_one;
    append_segment_header(old_one, SegmentHeader{3, 50, 1});
    SegmentHeader h;
    std::string why;
    REQUIRE(parse_segment_header(old_one, &h, &why));
    CHECK(h.version == 1);
    CHECK(h.first_seq == 50);
    std::string newer;
    append_segment_header(newer, SegmentHeader{3, 50, kFormatVersion + 1});
    CHECK_FALSE(parse_segment_header(newer, &h, &why));
    CHECK(why == "segment format version " + std::to_string(kFormatVersion + 1) +
                     " (this tqd reads versions 1 to " + std::to_string(kFormatVersion) + ")");
  }

  TEST_CASE("segment file names sort like their numbers") {
    CHECK(segment_file_name(42) == "00000000000000000042.wal");
    CHECK(parse_segment_file_name("00000000000000000042.wal") == 42);
    CHECK(parse_segment_file_name("LOCK") == 0);
    CHECK(parse_segment_file_name("0000000000000000004x.wal") == 0);
    CHECK(segment_file_name(9) < segment_file_name(10));
  }

  TEST_CASE("the bytes are laid out as FORMAT.md says") {
    // Integers little-endian, varints LEB128: a log is read back on any
    // machine, so this is the format, not an implementation detail.
    std::string fixed;
    put_fixed32(fixed, 0x01020304u);
    put_fixed64(fixed, 0x0102030405060708ull);
    CHECK(fixed == std::string("\x04\x03\x02\x01\x08\x07\x06\x05\x04\x03\x02\x01", 12));
    CHECK(get_fixed32(fixed.data()) == 0x01020304u);
    CHECK(get_fixed64(fixed.data() + 4) == 0x0102030405060708ull);
    std::string varint;
    put_varint(varint, 300);
    put_signed_varint(varint, -2);
    CHECK(varint == std::string("\xac\x02\x03", 3));

    std::string record;
    append_record(record, 7, 0x0a0b0c0d0e0f1011ull, "ab", "cd");
    REQUIRE(record.size() == kRecordHeaderSize + 4);
    CHECK(record.substr(8, 4) == std::string("\x04\x00\x00\x00", 4));  // length
    CHECK(record[12] == 7);                                            // type
    CHECK(record.substr(13, 8) == std::string("\x11\x10\x0f\x0e\x0d\x0c\x0b\x0a", 8));
    CHECK(record.substr(21) == "abcd");  // a body given in two pieces is one body
    CHECK(get_fixed64(record.data()) == XXH3_64bits(record.data() + 8, record.size() - 8));
  }

  TEST_CASE("varints and zigzag") {
    std::string buf;
    for (uint64_t v : std::initializer_list<uint64_t>{0, 1, 127, 128, 300, ~0ull}) put_varint(buf, v);
    for (int64_t v : std::initializer_list<int64_t>{0, -1, 1, -1000000, INT64_MIN, INT64_MAX}) put_signed_varint(buf, v);
    put_bytes(buf, "abc");
    BodyReader in(buf);
    for (uint64_t v : std::initializer_list<uint64_t>{0, 1, 127, 128, 300, ~0ull}) CHECK(in.varint() == v);
    for (int64_t v : std::initializer_list<int64_t>{0, -1, 1, -1000000, INT64_MIN, INT64_MAX}) CHECK(in.signed_varint() == v);
    CHECK(in.bytes() == "abc");
    CHECK_FALSE(in.failed());
    CHECK(in.empty());
    in.varint();
    CHECK(in.failed());
  }
}

}  // namespace wal_record_test
