// How the tq REPL shows replies: jobs with their id and an indented payload,
// STATS as aligned columns, QUEUES and CLIENTS as tables, control bytes escaped, colour
// only when asked for, and --raw exactly as received.
#include <doctest/doctest.h>

#include "client/repl_render.h"

namespace render_test {

using tq::client::Job;
using tq::client::RenderStyle;
using tq::client::Reply;
using tq::protocol::ReplyShape;

namespace {

Reply lines_reply(std::vector<std::string> lines) {
  Reply reply;
  reply.shape = ReplyShape::kCountedLines;
  reply.text = std::to_string(lines.size());
  reply.lines = std::move(lines);
  return reply;
}

Job job(uint64_t id, std::string payload, tq::client::Fields fields) {
  Job j;
  j.id = id;
  j.payload = std::move(payload);
  j.fields = std::move(fields);
  return j;
}

}  // namespace

TEST_SUITE("tq rendering") {
  TEST_CASE("a one-line reply is the server's line") {
    Reply reply;
    reply.text = "created emails";
    CHECK(tq::client::render_reply({"CREATE", "emails"}, reply, {}) == "OK created emails\n");
    reply.text = "";
    CHECK(tq::client::render_reply({"LIST"}, reply, {}) == "OK\n");
  }

  TEST_CASE("a job shows its id and fields on one line and its payload indented below") {
    Reply reply;
    reply.shape = ReplyShape::kJobs;
    reply.jobs.push_back(job(6, "Welcome aboard", {{"queue", "emails"}, {"attempts", "1"}}));
    reply.jobs.push_back(job(7, "two\nlines", {{"queue", "emails"}, {"attempts", "2"}}));
    CHECK(tq::client::render_reply({"DEQUEUE", "emails", "COUNT", "2"}, reply, {}) ==
          "job 6  queue=emails attempts=1\n"
          "  Welcome aboard\n"
          "job 7  queue=emails attempts=2\n"
          "  two\n"
          "  lines\n");
    reply.jobs.clear();
    CHECK(tq::client::render_reply({"PEEK", "emails"}, reply, {}) == "(no jobs)\n");
  }

  TEST_CASE("PEEK times are shown in UTC and an empty payload is named") {
    Reply reply;
    reply.shape = ReplyShape::kJobs;
    reply.jobs.push_back(job(9, "", {{"state", "dead"}, {"at", "1795430011207"}}));
    CHECK(tq::client::render_reply({"PEEK", "q", "DEAD"}, reply, {}) ==
          "job 9  state=dead at=2026-11-23T10:33:31Z\n  (empty payload)\n");
  }

  TEST_CASE("SCHEDULE's next= is shown in UTC, the rest of each line as it came") {
    CHECK(tq::client::render_reply(
              {"SCHEDULE", "reports"},
              lines_reply({"nightly next=1795430011207 fired=3 bytes=12 tz=Europe/Berlin cron=0 3 "
                           "* * MON-FRI",
                           "tick next=1795430040000 fired=0 bytes=4 every=60000ms"}),
              {}) ==
          "nightly next=2026-11-23T10:33:31Z fired=3 bytes=12 tz=Europe/Berlin cron=0 3 * * "
          "MON-FRI\n"
          "tick next=2026-11-23T10:34:00Z fired=0 bytes=4 every=60000ms\n");
  }

  TEST_CASE("a queue without schedules says so rather than printing nothing") {
    CHECK(tq::client::render_reply({"SCHEDULE", "reports"}, lines_reply({}), {}) ==
          "(no schedules)\n");
    RenderStyle raw;
    raw.raw = true;
    Reply reply = lines_reply({});
    reply.raw = "OK 0\n";
    CHECK(tq::client::render_reply({"SCHEDULE", "reports"}, reply, raw) == "OK 0\n");
  }

  TEST_CASE("DEQUEUE's one-line reply is shown as a job too") {
    Reply reply;
    reply.text = "1 Send welcome email";
    CHECK(tq::client::render_reply({"dequeue", "emails"}, reply, {}) ==
          "job 1\n  Send welcome email\n");
  }

  TEST_CASE("STATS and CONFIG are aligned columns - QUEUES is a table") {
    CHECK(tq::client::render_reply({"STATS", "q"},
                                   lines_reply({"queue q", "ready 3", "dedup_keys 0"}),
                                   {}) == "queue       q\nready       3\ndedup_keys  0\n");
    CHECK(tq::client::render_reply(
              {"QUEUES"},
              lines_reply({"emails ready=3 delayed=1 leased=0 dead=0 paused=0",
                           "orders ready=12 delayed=0 leased=2 dead=1 paused=1"}),
              {}) ==
          "queue   ready  delayed  leased  dead  paused\n"
          "emails      3        1       0     0       0\n"
          "orders     12        0       2     1       1\n");
    CHECK(tq::client::render_reply({"QUEUES"}, lines_reply({}), {}) == "(no queues)\n");
  }

  TEST_CASE("CONFIG shows its spans in the largest whole unit - STATS and --raw as they came") {
    const Reply config = lines_reply({"ack_timeout 30000ms", "backoff_max 3600000ms",
                                      "rate_window 1500ms", "delay 0ms", "dedup_window 172800000ms",
                                      "max_attempts 5", "dead_letter_queue 60000ms"});
    CHECK(tq::client::render_reply({"config", "emails"}, config, {}) ==
          "ack_timeout        30s\n"
          "backoff_max        1h\n"
          "rate_window        1500ms\n"
          "delay              0\n"
          "dedup_window       2d\n"
          "max_attempts       5\n"
          "dead_letter_queue  60000ms\n");
    CHECK(tq::client::render_reply({"STATS", "q"}, lines_reply({"uptime 30000ms"}), {}) ==
          "uptime  30000ms\n");
    Reply raw = config;
    raw.raw = "OK 1\nack_timeout 30000ms\n";
    RenderStyle raw_style;
    raw_style.raw = true;
    CHECK(tq::client::render_reply({"CONFIG", "emails"}, raw, raw_style) == raw.raw);
  }

  TEST_CASE("CLIENTS is a table - numbers to the right, addresses, verbs and queues to the left") {
    CHECK(tq::client::render_reply(
              {"clients"},
              lines_reply({"id=5 addr=127.0.0.1:37754 age=3605s idle=12s cmd=ACK leases=4 "
                           "wait=- unsent=0",
                           "id=17 addr=[::1]:40114 age=48s idle=48s cmd=DEQUEUE leases=0 "
                           "wait=emails,orders unsent=655"}),
              {}) ==
          "id  addr               age  idle  cmd      leases  wait           unsent\n"
          " 5  127.0.0.1:37754  3605s   12s  ACK           4  -                   0\n"
          "17  [::1]:40114        48s   48s  DEQUEUE       0  emails,orders     655\n");
  }

  TEST_CASE("CLIENTS - a key only some lines have, and a bare word, get columns of their own") {
    CHECK(tq::client::render_reply(
              {"CLIENTS"},
              lines_reply({"id=1 addr=127.0.0.1:1 cmd=ACK unsent=0",
                           "id=2 addr=127.0.0.1:2 cmd=PEEK unsent=0 tls=TLSv1.3 admin",
                           "id=3 addr=127.0.0.1:3 cmd=DROP unsent=12 admin"}),
              {}) ==
          "id  addr         cmd   unsent  tls      admin\n"
          " 1  127.0.0.1:1  ACK        0\n"
          " 2  127.0.0.1:2  PEEK       0  TLSv1.3  yes\n"
          " 3  127.0.0.1:3  DROP      12           yes\n");
  }

  TEST_CASE("control bytes in a payload are escaped so they cannot drive the terminal") {
    CHECK(tq::client::printable("red \x1b[31m bell \x07 tab\tok \\") ==
          "red \\x1b[31m bell \\x07 tab\tok \\\\");
    // Text with nothing to escape keeps its backslashes as they are; text
    // that reads as an escape has them doubled, so it looks unlike the byte.
    CHECK(tq::client::printable("C:\\Users\\xampp \\d+") == "C:\\Users\\xampp \\d+");
    CHECK(tq::client::printable("C:\\Users \\x07") == "C:\\\\Users \\\\x07");
    CHECK(tq::client::printable("\x07") == "\\x07");
    CHECK(tq::client::printable("\\ and \x7f") == "\\\\ and \\x7f");
    CHECK(tq::client::printable(std::string(5000, 'x'), 10) ==
          "xxxxxxxxxx... (4990 more bytes; tq --raw shows all)");
    // C1 controls in UTF-8 (U+009B is a one-character CSI), not other letters.
    CHECK(tq::client::printable("csi \xc2\x9b"
                                "31m caf\xc3\xa9 \xc2\xa9") ==
          "csi \\xc2\\x9b"
          "31m caf\xc3\xa9 \xc2\xa9");
  }

  TEST_CASE("colour codes only when the style asks - raw is the bytes as received") {
    Reply reply;
    reply.text = "PONG";
    reply.raw = "OK PONG\n";
    CHECK(tq::client::render_reply({"PING"}, reply, {.colour = true}) ==
          "\x1b[32mOK\x1b[0m PONG\n");
    CHECK(tq::client::render_reply({"PING"}, reply, {.colour = false}).find('\x1b') ==
          std::string::npos);
    Reply jobs;
    jobs.shape = ReplyShape::kJobs;
    jobs.raw = "OK 1\nJOB 4 2 queue=q attempts=1\nhi\n";
    CHECK(tq::client::render_reply({"DEQUEUE", "q", "COUNT", "1"}, jobs, {.raw = true}) ==
          jobs.raw);

    tq::client::Error error{tq::client::ErrorKind::kServer, "NOQUEUE", "queue 'x' does not exist"};
    CHECK(tq::client::render_server_error(error, {}) == "ERROR NOQUEUE queue 'x' does not exist\n");
    CHECK(tq::client::render_server_error(error, {.colour = true}) ==
          "\x1b[1;31mERROR NOQUEUE\x1b[0m queue 'x' does not exist\n");
  }

  TEST_CASE("DEQUEUE's ERROR EMPTY reads as no jobs, with the server's reason - raw as sent") {
    tq::client::Error empty{tq::client::ErrorKind::kServer, "EMPTY", "queue 'q' is paused"};
    CHECK(tq::client::render_no_jobs(empty, {}) == "(no jobs: queue 'q' is paused)\n");
    CHECK(tq::client::render_no_jobs(empty, {.raw = true}) == "ERROR EMPTY queue 'q' is paused\n");
  }
}

}  // namespace render_test
