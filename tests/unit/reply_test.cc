#include <doctest/doctest.h>

#include <cstdint>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "protocol/reply.h"
#include "protocol/reply_reader.h"
#include "wal/format.h"

namespace reply_test {

using namespace tq::protocol;

TEST_SUITE("reply") {
  TEST_CASE("errors are one line with a stable code") {
    std::string out;
    append_error(out, ErrorCode::kNotFound, "no job 7\r\nOK fake");
    CHECK(out == "ERROR NOTFOUND no job 7  OK fake\n");
  }

  TEST_CASE("a message's control bytes become spaces: no escape sequence reaches a terminal") {
    std::string out;
    append_error(out, ErrorCode::kBadConfig, "bad \x1b[2Jvalue\ta\x7f\x01 caf\xc3\xa9");
    CHECK(out == "ERROR BADCONFIG bad  [2Jvalue a   caf\xc3\xa9\n");
  }

  TEST_CASE("numbers are written as std::to_string writes them") {
    std::vector<uint64_t> values = {0,   1,   9,    10,    11,      99,         100,
                                    101, 999, 1000, 65535, 1234567, UINT64_MAX, UINT64_MAX - 1};
    for (uint64_t p = 10; p <= 10'000'000'000'000'000'000ull; p *= 10) {
      values.insert(values.end(), {p - 1, p, p + 1});
      if (p > UINT64_MAX / 10) break;
    }
    std::mt19937_64 rng(11);
    for (int i = 0; i < 10000; ++i) values.push_back(rng() >> (rng() % 64));
    for (uint64_t v : values) {
      std::string out = "x";
      append_number(out, v);
      REQUIRE(out == "x" + std::to_string(v));
    }
  }

  TEST_CASE("every code name parses back to its code") {
    for (int i = 0; i < static_cast<int>(ErrorCode::kCount); ++i) {
      auto code = static_cast<ErrorCode>(i);
      CHECK(parse_error_code(error_code_name(code)) == code);
    }
    CHECK_FALSE(parse_error_code("NOPE").has_value());
  }

  TEST_CASE("PROTOCOL.md's table of errors has a row for every code, and only for those") {
    // Programs branch on the code: one the server can send and the table
    // does not explain, or a row for a code it never sends, misleads them.
    std::ifstream in(std::string(TQ_SOURCE_DIR) + "/PROTOCOL.md");
    REQUIRE(in);
    std::set<std::string> documented;
    bool in_errors = false;
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("## ", 0) == 0) in_errors = line == "## Errors";
      if (!in_errors || line.rfind("| `", 0) != 0) continue;
      const size_t close = line.find('`', 3);
      REQUIRE(close != std::string::npos);
      documented.insert(line.substr(3, close - 3));
    }
    std::set<std::string> codes;
    for (int i = 0; i < static_cast<int>(ErrorCode::kCount); ++i) {
      codes.insert(std::string(error_code_name(static_cast<ErrorCode>(i))));
    }
    CHECK(documented == codes);
  }

  TEST_CASE("escaping makes any bytes printable and bounded") {
    std::string out;
    append_escaped(out, std::string_view("a\nb\\\x01\xff", 6), 64);
    CHECK(out == "a\\nb\\\\\\x01\\xff");
    out.clear();
    append_escaped(out, "abcdef", 3);
    CHECK(out == "abc...");
  }

  TEST_CASE("reply lines are taken apart") {
    auto ok = parse_reply_line("OK 12 hello world");
    REQUIRE(ok);
    CHECK(ok->ok);
    CHECK(ok->text == "12 hello world");
    auto bare = parse_reply_line("OK");
    REQUIRE(bare);
    CHECK(bare->text.empty());
    auto err = parse_reply_line("ERROR EMPTY queue 'q' has no ready job");
    REQUIRE(err);
    CHECK_FALSE(err->ok);
    CHECK(err->code == ErrorCode::kEmpty);
    CHECK(err->text == "queue 'q' has no ready job");
    CHECK_FALSE(parse_reply_line("OKAY").has_value());
    CHECK_FALSE(parse_reply_line("hello").has_value());
  }

  TEST_CASE("the reply reader splits lines and bodies across pieces") {
    ReplyReader reader;
    reader.feed("OK 1\r\nJOB 5");
    CHECK(reader.take_line() == "OK 1");
    CHECK_FALSE(reader.take_line().has_value());
    reader.feed("\nab");
    CHECK(reader.take_line() == "JOB 5");
    CHECK_FALSE(reader.take_body(3).has_value());
    reader.feed("c\r");
    CHECK_FALSE(reader.take_body(3).has_value());
    reader.feed("\n");
    CHECK(reader.take_body(3) == "abc");
    reader.feed("xyzQ");
    CHECK_FALSE(reader.take_body(3).has_value());
    CHECK(reader.broken());
  }

  TEST_CASE("a line longer than any tqd sends is given up on, one at the limit is read") {
    // The limit must hold tqd's longest line: a job's largest payload and
    // the words before it.
    static_assert(kMaxReplyLineBytes >= tq::wal::kMaxPayloadBytes + 1024);
    // DEQUEUE's one-line reply escapes a payload with line breaks: \n, \r
    // and \ take two bytes each.
    static_assert(kMaxReplyLineBytes >= 2 * size_t{tq::wal::kMaxPayloadBytes} + 1024);
    ReplyReader reader(8);
    reader.feed("OK 1");
    CHECK_FALSE(reader.take_line().has_value());
    reader.feed("2345");  // 8 bytes, no line end yet: still a line
    CHECK_FALSE(reader.take_line().has_value());
    CHECK_FALSE(reader.line_too_long());
    reader.feed("\r\nOK 123456");
    CHECK(reader.take_line() == "OK 12345");
    CHECK_FALSE(reader.line_too_long());
    CHECK_FALSE(reader.take_line().has_value());
    CHECK(reader.line_too_long());  // 9 bytes and no end
  }

  TEST_CASE("a long line fed in small pieces is read whole, its CR and LF in two pieces") {
    ReplyReader reader;
    std::string line = "OK 7 ";
    reader.feed(line);
    for (int i = 0; i < 1000; ++i) {
      const std::string piece(37, static_cast<char>('a' + i % 26));
      line += piece;
      reader.feed(piece);
      CHECK_FALSE(reader.take_line().has_value());
    }
    reader.feed("\r");
    CHECK_FALSE(reader.take_line().has_value());
    reader.feed("\nOK 8\n");
    CHECK(reader.take_line() == line);
    CHECK(reader.take_line() == "OK 8");
    CHECK_FALSE(reader.line_too_long());
  }

  TEST_CASE("a body length at the top of size_t waits for the bytes, it does not wrap") {
    // A garbled or hostile JOB header: tq once took the header's own line
    // end for the body's, and aborted building a string of SIZE_MAX bytes.
    ReplyReader reader;
    reader.feed("JOB 1 18446744073709551615 queue=q\nabc\n");
    CHECK(reader.take_line() == "JOB 1 18446744073709551615 queue=q");
    CHECK_FALSE(reader.take_body(SIZE_MAX).has_value());
    CHECK_FALSE(reader.take_body(SIZE_MAX - 1).has_value());
    CHECK_FALSE(reader.broken());
    CHECK(reader.take_body(3) == "abc");
  }
}

}  // namespace reply_test
