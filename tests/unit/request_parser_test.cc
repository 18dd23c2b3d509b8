#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "protocol/request_parser.h"

namespace request_parser_test {

using namespace tq::protocol;

namespace {

// Pulls everything the parser can give into readable strings.
void drain(RequestParser& parser, std::vector<std::string>& out) {
  for (;;) {
    auto r = parser.next();
    if (r == RequestParser::Result::kNeedMore) return;
    if (r == RequestParser::Result::kError) {
      out.push_back("ERROR " + std::string(error_code_name(parser.error().code)));
      continue;
    }
    std::string s(parser.request().spec->name);
    for (auto arg : parser.request().args) s += "|" + std::string(arg);
    out.push_back(s);
  }
}

std::vector<std::string> parse_in_pieces(const std::string& input, const std::vector<size_t>& cuts,
                                         ParserLimits limits = {}) {
  RequestParser parser(limits);
  std::vector<std::string> out;
  size_t at = 0;
  for (size_t cut : cuts) {
    parser.feed(std::string_view(input).substr(at, cut - at));
    drain(parser, out);
    at = cut;
  }
  parser.feed(std::string_view(input).substr(at));
  drain(parser, out);
  return out;
}

std::vector<std::string> parse_whole(const std::string& input, ParserLimits limits = {}) {
  return parse_in_pieces(input, {}, limits);
}

}  // namespace

TEST_SUITE("request_parser") {
  TEST_CASE("the memory of a long line goes back once it is consumed, and parsing goes on") {
    RequestParser parser;
    parser.feed("ENQUEUE q " + std::string(900'000, 'x') + "\nPING\nENQ");
    std::vector<std::string> out;
    drain(parser, out);
    REQUIRE(out.size() == 2);
    CHECK(parser.memory_bytes() >= 900'000);
    parser.release_consumed(64 << 10);  // "ENQ" is not consumed: kept
    CHECK(parser.memory_bytes() >= 900'000);
    parser.feed("UEUE q short\n");
    drain(parser, out);
    REQUIRE(out.size() == 3);
    CHECK(out[2] == "ENQUEUE|q|short");
    parser.release_consumed(64 << 10);
    CHECK(parser.memory_bytes() < 64 << 10);
    CHECK(parser.buffered() == 0);
    parser.feed("PING\n");
    drain(parser, out);
    CHECK(out.back() == "PING");
  }

  TEST_CASE("one command, LF or CRLF") {
    CHECK(parse_whole("PING\n") == std::vector<std::string>{"PING"});
    CHECK(parse_whole("PING\r\n") == std::vector<std::string>{"PING"});
    CHECK(parse_whole("ping\r\n") == std::vector<std::string>{"PING"});
    CHECK(parse_whole("PING").empty());  // no line end yet
  }

  TEST_CASE("the payload is the rest of the line, inner and trailing spaces kept") {
    CHECK(parse_whole("ENQUEUE emails Send  welcome email \r\n") ==
          std::vector<std::string>{"ENQUEUE|emails|Send  welcome email "});
    CHECK(parse_whole("ENQUEUE\temails\t a\tb\n") ==
          std::vector<std::string>{"ENQUEUE|emails|a\tb"});
  }

  TEST_CASE("pipelined commands in one read come out in order") {
    auto got = parse_whole("CREATE q\nENQUEUE q a\r\nDEQUEUE q\nACK 1\nLIST\n");
    CHECK(got == std::vector<std::string>{"CREATE|q", "ENQUEUE|q|a", "DEQUEUE|q", "ACK|1", "LIST"});
  }

  TEST_CASE("a stream split at every byte parses the same as whole") {
    const std::string input =
        "CREATE emails\r\nENQUEUE emails Send welcome email\nDEQUEUE emails\r\n\r\n"
        "ACK emails 1\nBOGUS x\nACK\nLIST\r\n";
    const auto whole = parse_whole(input);
    REQUIRE(whole.size() == 7);
    for (size_t cut = 0; cut <= input.size(); ++cut) {
      CAPTURE(cut);
      CHECK(parse_in_pieces(input, {cut}) == whole);
    }
    std::vector<size_t> every;
    for (size_t i = 1; i < input.size(); ++i) every.push_back(i);
    CHECK(parse_in_pieces(input, every) == whole);
  }

  TEST_CASE("random splits parse the same as whole") {
    std::string input;
    for (int i = 0; i < 200; ++i) input += "ENQUEUE q payload number " + std::to_string(i) + "\r\n";
    const auto whole = parse_whole(input);
    REQUIRE(whole.size() == 200);
    std::mt19937 rng(42);
    for (int round = 0; round < 50; ++round) {
      std::vector<size_t> cuts;
      size_t at = 0;
      while (true) {
        at += 1 + rng() % 37;
        if (at >= input.size()) break;
        cuts.push_back(at);
      }
      CHECK(parse_in_pieces(input, cuts) == whole);
    }
  }

  TEST_CASE("words split at every run of spaces and tabs, whatever their bytes and lengths") {
    // Against the plain definition, with words of every length from 1 to
    // 20 (around the 8-byte steps a faster splitter would take), and bytes
    // that sit next to a space or a tab in value, or differ from one only
    // in the high bit.
    const std::string alphabet =
        std::string("aZ0!~\x08\x0b\x1f\x21\x89\xa0\xff\r", 13) + std::string(1, '\0');
    std::mt19937 rng(7);
    for (int round = 0; round < 3000; ++round) {
      std::vector<std::string> words;
      std::string line = "ACK";
      const int count = 1 + static_cast<int>(rng() % 5);
      for (int w = 0; w < count; ++w) {
        const int blanks = 1 + static_cast<int>(rng() % 3);
        for (int b = 0; b < blanks; ++b) line += (rng() % 2 == 0) ? ' ' : '\t';
        std::string word;
        const size_t length = 1 + rng() % 20;
        for (size_t k = 0; k < length; ++k) word += alphabet[rng() % alphabet.size()];
        if (word.back() == '\r') word.back() = 'r';  // a final CR would end the line
        words.push_back(word);
        line += word;
      }
      const int trailing = static_cast<int>(rng() % 3);
      for (int b = 0; b < trailing; ++b) line += ' ';
      std::string expected = "ACK";
      for (const std::string& word : words) expected += "|" + word;
      REQUIRE(parse_whole(line + "\n") == std::vector<std::string>{expected});
    }
  }

  TEST_CASE("empty and blank lines are ignored") {
    CHECK(parse_whole("\n\r\n   \n\t\r\nPING\n\n") == std::vector<std::string>{"PING"});
  }

  TEST_CASE("an over-long line is answered TOOBIG once and skipped through its newline") {
    ParserLimits limits;
    limits.max_line_bytes = 16;
    const std::string long_line = "ENQUEUE q " + std::string(100, 'x') + "\n";
    CHECK(parse_whole(long_line + "PING\n", limits) == std::vector<std::string>{"ERROR TOOBIG", "PING"});
    // The same, arriving a byte at a time: one error, not one per byte.
    std::vector<size_t> every;
    for (size_t i = 1; i < long_line.size() + 5; ++i) every.push_back(i);
    CHECK(parse_in_pieces(long_line + "PING\n", every, limits) ==
          std::vector<std::string>{"ERROR TOOBIG", "PING"});
    // Exactly at the limit is fine.
    CHECK(parse_whole("ENQUEUE q 123456\n", limits) == std::vector<std::string>{"ENQUEUE|q|123456"});
  }

  TEST_CASE("a line at the limit is fine with its CRLF split across reads") {
    ParserLimits limits;
    limits.max_line_bytes = 16;
    const std::string line = "ENQUEUE q 123456";  // 16 bytes
    const std::string stream = line + "\r\nPING\n";
    const std::vector<std::string> want{"ENQUEUE|q|123456", "PING"};
    CHECK(parse_whole(stream, limits) == want);
    CHECK(parse_in_pieces(stream, {line.size() + 1}, limits) == want);  // "\r" | "\n"
    // A '\r' that is part of the line counts: one byte over the limit.
    CHECK(parse_in_pieces(line + "\rx\nPING\n", {line.size() + 1}, limits) ==
          std::vector<std::string>{"ERROR TOOBIG", "PING"});
  }

  TEST_CASE("an endless line without newline does not grow the buffer") {
    ParserLimits limits;
    limits.max_line_bytes = 1024;
    RequestParser parser(limits);
    std::vector<std::string> out;
    for (int i = 0; i < 1000; ++i) {
      parser.feed(std::string(512, 'a'));
      drain(parser, out);
      CHECK(parser.buffered() <= 1024 + 512);
    }
    CHECK(out == std::vector<std::string>{"ERROR TOOBIG"});
    parser.feed("\nPING\n");
    drain(parser, out);
    CHECK(out == std::vector<std::string>{"ERROR TOOBIG", "PING"});
  }

  TEST_CASE("unknown verbs and binary garbage get UNKNOWN and the next line still works") {
    CHECK(parse_whole("FROB x\nPING\n") == std::vector<std::string>{"ERROR UNKNOWN", "PING"});
    std::string garbage("\x00\xff\x01\x02 zz\n", 8);
    CHECK(parse_whole(garbage + "PING\n") == std::vector<std::string>{"ERROR UNKNOWN", "PING"});
    RequestParser parser;
    parser.feed("\x1b[A\n");
    REQUIRE(parser.next() == RequestParser::Result::kError);
    CHECK(parser.error().message == "unknown command '\\x1b[A'; HELP lists the commands");
  }

  TEST_CASE("a PUT line that is refused skips its body too - the body is never run as commands") {
    std::string options;  // one more than PUT takes
    for (int i = 0; i < 8; ++i) options += " PRIORITY " + std::to_string(i);
    CHECK(parse_whole("PUT q 11" + options + "\nCREATE evil\nPING\n") ==
          std::vector<std::string>{"ERROR BADFORMAT", "PING"});
    ParserLimits limits;
    limits.max_line_bytes = 32;
    const std::string stream = "PUT q 9 KEY " + std::string(100, 'k') + "\r\nDROP evil\r\nPING\n";
    CHECK(parse_whole(stream, limits) == std::vector<std::string>{"ERROR TOOBIG", "PING"});
    std::vector<size_t> every;  // the line arrives in pieces: TOOBIG before its end is seen
    for (size_t i = 1; i < stream.size(); ++i) every.push_back(i);
    CHECK(parse_in_pieces(stream, every, limits) ==
          std::vector<std::string>{"ERROR TOOBIG", "PING"});
    // Without a usable length there is nothing to skip: the next line is a request.
    CHECK(parse_whole("PUT q abc\nPING\n") == std::vector<std::string>{"ERROR BADFORMAT", "PING"});
    CHECK(parse_whole("PUT q\nPING\n") == std::vector<std::string>{"ERROR BADFORMAT", "PING"});
  }

  TEST_CASE("a PUT byte count is decimal digits - anything else is BADFORMAT and skips nothing") {
    std::string too_many;  // one more argument than PUT takes: declared_body's path
    for (int i = 0; i < 8; ++i) too_many += " PRIORITY " + std::to_string(i);
    for (const std::string count : {"+4", "-4", "0x4", "4x"}) {
      CAPTURE(count);
      // No byte count, so no body to skip: its bytes are the next request.
      CHECK(parse_whole("PUT q " + count + "\nPING\n") ==
            std::vector<std::string>{"ERROR BADFORMAT", "PING"});
      CHECK(parse_whole("PUT q " + count + too_many + "\nPING\n") ==
            std::vector<std::string>{"ERROR BADFORMAT", "PING"});
    }
    CHECK(parse_whole("PUT q 0004\nPING\n") == std::vector<std::string>{"PUT|q|0004"});
    // Digits past 64 bits are a count, too long for any limit: TOOBIG, and
    // the body is skipped, as for any other count, however the line is refused.
    const std::string huge = "PUT q 99999999999999999999999";
    CHECK(parse_whole(huge + "\nPING\n") == std::vector<std::string>{"ERROR TOOBIG"});
    CHECK(parse_whole(huge + too_many + "\nPING\n") == std::vector<std::string>{"ERROR BADFORMAT"});
  }

  TEST_CASE("an error whose body is skipped says how many bytes go unanswered") {
    ParserLimits limits;
    limits.max_body_bytes = 10;
    limits.max_line_bytes = 64;
    RequestParser parser(limits);
    parser.feed("PUT q 2000000\n");
    REQUIRE(parser.next() == RequestParser::Result::kError);
    CHECK(parser.error().message ==
          "payload exceeds 10 bytes; the 2000000 bytes that follow are read as its body and "
          "dropped");
    RequestParser refused(limits);
    refused.feed("PUT q 5 A B C D E F G H I J K L M N O P Q\n");  // more words than PUT takes
    REQUIRE(refused.next() == RequestParser::Result::kError);
    CHECK(refused.error().message.find("; the 5 bytes that follow are read as its body") !=
          std::string::npos);
    RequestParser one(limits);
    one.feed("PUT q 1 A B C D E F G H I J K L M N O P Q\n");
    REQUIRE(one.next() == RequestParser::Result::kError);
    CHECK(one.error().message.find("; the 1 byte that follows is read as its body and dropped") !=
          std::string::npos);
    RequestParser overlong(limits);  // told before the line's end arrives
    overlong.feed("PUT q 7 " + std::string(100, 'x'));
    REQUIRE(overlong.next() == RequestParser::Result::kError);
    CHECK(overlong.error().message ==
          "line exceeds 64 bytes; the 7 bytes that follow are read as its body and dropped");
    RequestParser huge(limits);  // a count 64 bits cannot hold is not echoed as 2^64 - 1
    huge.feed("PUT q 99999999999999999999999\n");
    REQUIRE(huge.next() == RequestParser::Result::kError);
    CHECK(huge.error().message ==
          "payload exceeds 10 bytes; its byte count is 2^64 - 1 or more, so every byte that "
          "follows is read as its body and dropped: reconnect");
    RequestParser largest(limits);  // 2^64 - 1 itself: no count is bigger, and none is sent
    largest.feed("PUT q 18446744073709551615\n");
    REQUIRE(largest.next() == RequestParser::Result::kError);
    CHECK(largest.error().message.find("2^64 - 1 or more") != std::string::npos);
    RequestParser empty(limits);  // an empty body: nothing to tell
    empty.feed("PUT q 0 A B C D E F G H I J K L M N O P Q\n");
    REQUIRE(empty.next() == RequestParser::Result::kError);
    CHECK(empty.error().message.find("follow") == std::string::npos);
  }

  TEST_CASE("a request, or one being skipped, is in progress until it ends") {
    RequestParser parser;
    std::vector<std::string> out;
    parser.feed("PING\nENQ");
    drain(parser, out);
    CHECK(parser.mid_request());
    parser.feed("UEUE q x\n");
    drain(parser, out);
    CHECK_FALSE(parser.mid_request());
    // A body declared absurdly long is skipped for as long as bytes come, and
    // stays in progress, so request_timeout can end it.
    parser.feed("PUT q 18446744073709551615\nPING\n");
    drain(parser, out);
    CHECK(out == std::vector<std::string>{"PING", "ENQUEUE|q|x", "ERROR TOOBIG"});
    CHECK(parser.buffered() == 0);
    CHECK(parser.mid_request());
  }

  TEST_CASE("unanswered: a begun line or a body still to come, not blanks nor a skip") {
    RequestParser parser;
    std::vector<std::string> out;
    parser.feed("PING\n \t\r");
    drain(parser, out);
    CHECK(parser.mid_request());
    CHECK_FALSE(parser.unanswered_request());  // a blank line, ignored
    parser.feed("PI");
    drain(parser, out);
    CHECK(parser.unanswered_request());
    parser.feed("NG\nPUT q 3\nab");
    drain(parser, out);
    CHECK(parser.unanswered_request());  // the body is short
    parser.feed("cdef");
    drain(parser, out);
    // Its BADFORMAT is out; the rest of the line is skipped, answered already.
    CHECK(out.back() == "ERROR BADFORMAT");
    CHECK_FALSE(parser.unanswered_request());
    parser.feed("\nPUT q 18446744073709551615\nxx");
    drain(parser, out);
    CHECK(out.back() == "ERROR TOOBIG");
    CHECK(parser.mid_request());
    CHECK_FALSE(parser.unanswered_request());
  }

  TEST_CASE("arity is checked before any handler runs") {
    CHECK(parse_whole("ENQUEUE q\n") == std::vector<std::string>{"ERROR BADFORMAT"});
    CHECK(parse_whole("DEQUEUE\n") == std::vector<std::string>{"ERROR BADFORMAT"});
    CHECK(parse_whole("LIST extra\n") == std::vector<std::string>{"ERROR BADFORMAT"});
    CHECK(parse_whole("PING now\n") == std::vector<std::string>{"ERROR BADFORMAT"});
    RequestParser parser;
    parser.feed("ENQUEUE q\n");
    REQUIRE(parser.next() == RequestParser::Result::kError);
    CHECK(parser.error().message ==
          "wrong number of arguments for ENQUEUE; usage: ENQUEUE <queue> <payload>");
    CHECK(parser.error().spec == &command_spec(Verb::kEnqueue));
  }

  TEST_CASE("an error names the command only when its arguments are what is wrong") {
    // The server refuses a malformed admin command as NOPERM by this name.
    ParserLimits limits;
    limits.max_body_bytes = 4;
    RequestParser parser(limits);
    parser.feed("DROP\nSCHEDULE q n x EVERY 1h\nFETCH q\nPUT q 9\n123456789\n");
    REQUIRE(parser.next() == RequestParser::Result::kError);
    CHECK(parser.error().spec == &command_spec(Verb::kDrop));
    REQUIRE(parser.next() == RequestParser::Result::kError);
    CHECK(parser.error().spec == &command_spec(Verb::kSchedule));
    REQUIRE(parser.next() == RequestParser::Result::kError);
    CHECK(parser.error().spec == nullptr);  // an unknown verb
    REQUIRE(parser.next() == RequestParser::Result::kError);
    CHECK(parser.error().code == ErrorCode::kTooBig);
    CHECK(parser.error().spec == nullptr);  // size: the client needs to hear it
  }
}

}  // namespace request_parser_test
