// Schedules (SCHEDULE), with a hand-driven clock: when they fire, what the
// jobs they put look like, what a late sweep does, and what they refuse.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "server/engine/engine.h"
#include "tests/unit/engine_fixture.h"

namespace engine_schedules_test {

using namespace tq::engine;

namespace {

// 2026-12-03 14:05:30 UTC, and some times after it.
constexpr int64_t kNow = 1'796'306'730'000;
constexpr int64_t k1406 = 1'796'306'760'000;
constexpr int64_t k1415 = 1'796'307'300'000;
constexpr int64_t k1500 = 1'796'310'000'000;
constexpr int64_t kTomorrow0300 = 1'796'353'200'000;
constexpr int64_t kAfter0300 = 1'796'439'600'000;

ScheduleSpec every(std::string_view name, int64_t ms, std::string_view payload = "x") {
  ScheduleSpec spec;
  spec.name = name;
  spec.every_ms = ms;
  spec.payload = payload;
  return spec;
}

ScheduleSpec cron(std::string_view name, std::string_view expression,
                  std::string_view payload = "x", EnqueueOptions job = {}) {
  ScheduleSpec spec;
  spec.name = name;
  spec.cron = expression;
  spec.payload = payload;
  spec.job = job;
  return spec;
}

struct Fixture : tq::testing::EngineFixture {
  Fixture() { clock.set_ms(kNow); }
  const Schedule& add(ScheduleSpec spec) {
    auto made = engine.schedule("q", spec);
    REQUIRE(made.ok());
    return *made.value();
  }
  Error refused(ScheduleSpec spec) {
    auto made = engine.schedule("q", spec);
    REQUIRE_FALSE(made.ok());
    return made.error();
  }
  void advance_to(int64_t ms) {
    clock.set_ms(ms);
    engine.expire_due();
  }
};

}  // namespace

TEST_SUITE("engine_schedules") {
  TEST_CASE("EVERY fires at each multiple of its period, and each firing puts one job") {
    Fixture f;
    const Schedule& s = f.add(every("tick", 60'000, "tick!"));
    CHECK(s.next_ms == k1406);  // the next whole minute, not a minute from now
    CHECK(f.engine.next_deadline_ms() == k1406);
    f.advance_to(k1406 - 1);
    CHECK(f.queue().ready.empty());
    f.advance_to(k1406);
    auto job = f.engine.dequeue("q");
    REQUIRE(job.ok());
    CHECK(job.value()->payload() == "tick!");
    REQUIRE(f.engine.ack(job.value()->id).ok());
    CHECK(s.next_ms == k1406 + 60'000);
    CHECK(s.fired == 1);
    f.advance_to(k1406 + 60'000);
    CHECK(f.queue().ready.size() == 1);
    CHECK(f.queue().counters.scheduled == 2);
    CHECK(f.queue().counters.enqueued == 2);
    CHECK(f.engine.counters().scheduled == 2);
  }

  TEST_CASE("each firing's job carries its own dedup key: the schedule and the time it was due") {
    Fixture f;
    f.add(every("tick", 60'000));
    const std::string long_name(200, 'n');  // too long to go into a key whole
    f.add(every(long_name, 60'000));
    f.advance_to(k1406);
    REQUIRE(f.queue().ready.size() == 2);
    std::vector<std::string> keys;
    for (uint64_t id : {1, 2}) {
      const JobExtras* extras = f.engine.extras_of(*f.engine.find_job(id));
      REQUIRE(extras != nullptr);
      keys.push_back(extras->dedup_key.str());
    }
    std::sort(keys.begin(), keys.end());
    CHECK(keys[1] == "schedule:tick@" + std::to_string(k1406));
    CHECK(keys[0].rfind("schedule:" + std::string(100, 'n') + "~", 0) == 0);
    CHECK(keys[0].size() == 9 + 100 + 1 + 16 + 1 + std::to_string(k1406).size());
    // Kept ten periods, whatever the queue's dedup_window: enough for a
    // restart, not a key a firing for the whole window.
    CHECK(f.queue().dedup.at(keys[1]).expires_ms == k1406 + 10 * 60'000);
    ScheduleSpec fast = every("fast", 1'000);
    f.add(fast);
    f.advance_to(k1406 + 1'000);
    CHECK(f.queue().dedup.at("schedule:fast@" + std::to_string(k1406 + 1'000)).expires_ms ==
          k1406 + 1'000 + 60'000);  // at least a minute
    f.advance_to(k1406 + 60'000);  // the next time: new keys, new jobs
    CHECK(f.queue().ready.size() == 6);  // and "fast" once, for the seconds it missed
    CHECK(f.queue().counters.duplicates == 0);
  }

  TEST_CASE("a sweep that comes late fires once for every time it missed, then keeps the timetable") {
    Fixture f;
    const Schedule& s = f.add(every("tick", 60'000, "x"));
    f.advance_to(k1415 + 30'000);  // nine minutes missed
    CHECK(f.queue().ready.size() == 1);
    CHECK(s.fired == 1);
    CHECK(s.next_ms == k1415 + 60'000);
  }

  TEST_CASE("CRON fires at the times it names, in UTC, and its jobs get the options given") {
    Fixture f;
    EnqueueOptions job;
    job.priority = 4;
    job.ttl_ms = 3'600'000;
    job.max_attempts = 2;
    job.group = "reports";
    const Schedule& s =
        f.add(cron("nightly", "0   3 * * *", "build report", job));
    CHECK(s.cron->text() == "0 3 * * *");
    CHECK(s.next_ms == kTomorrow0300);
    f.advance_to(kTomorrow0300);
    REQUIRE(f.queue().ready.size() == 1);
    CHECK(s.next_ms == kAfter0300);
    auto peeked = f.engine.peek("q", PeekState::kReady, 1, [&](const Job& j) {
      CHECK(j.payload() == "build report");
      CHECK(j.priority == 4);
      const JobExtras* x = f.engine.extras_of(j);
      REQUIRE(x != nullptr);
      CHECK(x->expires_at_ms == kTomorrow0300 + 3'600'000);
      CHECK(x->max_attempts == 2);
      CHECK(x->group == "reports");
    });
    REQUIRE(peeked.ok());
  }

  TEST_CASE(
      "a schedule without a TTL puts jobs with the queue's ttl, one with a TTL keeps its own") {
    Fixture f;
    f.configure([](QueueSettings& s) { s.ttl_ms = 10'000; });
    f.add(every("plain", 60'000, "plain"));
    ScheduleSpec own = every("own", 60'000, "own");
    own.job.ttl_ms = 3'600'000;
    f.add(own);
    f.advance_to(k1406);
    REQUIRE(f.queue().ready.size() == 2);
    auto peeked = f.engine.peek("q", PeekState::kReady, 2, [&](const Job& j) {
      const JobExtras* x = f.engine.extras_of(j);
      REQUIRE(x != nullptr);
      CHECK(x->expires_at_ms == k1406 + (j.payload() == "plain" ? 10'000 : 3'600'000));
    });
    REQUIRE(peeked.ok());
  }

  TEST_CASE("a schedule's jobs wait the queue's delay, as any job put without one") {
    Fixture f;
    f.configure([](QueueSettings& s) { s.delay_ms = 10'000; });
    f.add(every("plain", 60'000, "plain"));
    f.advance_to(k1406);
    CHECK(f.queue().ready.empty());
    REQUIRE(f.queue().delayed.size() == 1);
    f.advance_to(k1406 + 10'000);
    CHECK(f.queue().ready.size() == 1);
  }

  TEST_CASE("a schedule whose TTL the queue's delay outlasts is refused - and one made before") {
    // Every firing would be refused, with only a counter to show it.
    Fixture f;
    f.configure([](QueueSettings& s) { s.delay_ms = 10'000; });
    ScheduleSpec short_lived = every("short", 60'000);
    short_lived.job.ttl_ms = 10'000;
    CHECK(f.refused(short_lived).message ==
          "its jobs' TTL (10000ms) ends no later than they are due (10000ms after each firing, "
          "the queue's delay): they could never be delivered");
    short_lived.job.ttl_ms = 10'001;
    f.add(short_lived);
    // A delay raised since: each firing is refused and counted, and the
    // schedule goes on.
    f.configure([](QueueSettings& s) { s.delay_ms = 20'000; });
    f.advance_to(k1406);
    CHECK(f.queue().delayed.empty());
    CHECK(f.queue().counters.schedule_refused == 1);
  }

  TEST_CASE("a schedule named again is replaced and keeps its count, and CANCEL stops it") {
    Fixture f;
    f.add(every("tick", 60'000, "old"));
    f.advance_to(k1406);
    const Schedule& s = f.add(every("tick", 3'600'000, "new"));
    CHECK(f.queue().schedules.size() == 1);
    CHECK(s.fired == 1);
    CHECK(s.next_ms == k1500);
    CHECK(s.payload == "new");
    REQUIRE(f.engine.unschedule("q", "tick").ok());
    CHECK(f.queue().schedules.empty());
    f.advance_to(k1500);
    CHECK(f.queue().ready.size() == 1);  // the old one's job only
    auto gone = f.engine.unschedule("q", "tick");
    REQUIRE_FALSE(gone.ok());
    CHECK(gone.error().code == Errc::kNotFound);
    CHECK(gone.error().message == "no schedule 'tick' in queue 'q'");
    CHECK(f.engine.next_deadline_ms() == INT64_MAX);  // nothing timed is left
  }

  TEST_CASE("a firing the queue refuses is counted and skipped, and the next one comes") {
    Fixture f;
    f.configure([](QueueSettings& s) { s.max_size = 1; });
    const Schedule& s = f.add(every("tick", 60'000, "x"));
    f.put("filler");
    f.advance_to(k1406);
    CHECK(f.queue().ready.size() == 1);
    CHECK(f.queue().counters.schedule_refused == 1);
    CHECK(f.queue().counters.refused == 0);  // a firing is not a producer's job
    CHECK(f.engine.counters().refused == 0);
    CHECK(s.fired == 0);
    CHECK(s.next_ms == k1406 + 60'000);
    f.take();
    REQUIRE(f.engine.ack(f.queue().leased.top()->id).ok());
    f.advance_to(k1406 + 60'000);
    CHECK(f.queue().ready.size() == 1);
    CHECK(s.fired == 1);
  }

  TEST_CASE("what SCHEDULE refuses - names, periods, cron errors, a cron that never fires, too many") {
    Fixture f;
    CHECK(f.refused(every("two words", 60'000)).message ==
          "a schedule name is 1-200 printable characters without spaces, got 'two words'");
    CHECK(f.refused(every(std::string(201, 'n'), 60'000)).message ==
          "a schedule name is 1-200 printable characters without spaces, got '" +
              std::string(64, 'n') + "'...");
    CHECK(f.refused(every("fast", 500)).message ==
          "EVERY takes 1s to 30d; for longer, CRON");
    CHECK(f.refused(cron("c", "0 25 * * *")).message ==
          "cron field 2 (hour) '25': 25 is out of range 0-23");
    CHECK(f.refused(cron("c", "0 0 30 2 *")).message == "cron '0 0 30 2 *' never fires");
    EnqueueOptions bad_group;
    bad_group.group = "a b";
    ScheduleSpec grouped = every("g", 60'000);
    grouped.job = bad_group;
    CHECK(f.refused(grouped).code == Errc::kBadArgument);
    for (size_t i = 0; i < kMaxSchedulesPerQueue; ++i) {
      f.add(every("s" + std::to_string(i), 60'000));
    }
    CHECK(f.refused(every("one-more", 60'000)).code == Errc::kLimit);
    f.add(every("s7", 120'000));  // replacing one is still fine
    auto no_queue = f.engine.schedule("nope", every("x", 60'000));
    REQUIRE_FALSE(no_queue.ok());
    CHECK(no_queue.error().code == Errc::kNoQueue);
  }

  TEST_CASE("a SCHEDULE refused for its name or timetable leaves no queue auto_create made") {
    // Found in review: the queue was made first, and stayed (in the log,
    // and counted in max_queues) though the schedule was refused.
    Fixture f;
    f.engine.set_limits(EngineLimits{.auto_create_queues = true});
    CHECK_FALSE(f.engine.schedule("new", cron("nightly", "0 25 * * *")).ok());
    CHECK_FALSE(f.engine.schedule("new", cron("nightly", "0 0 30 2 *")).ok());
    CHECK_FALSE(f.engine.schedule("new", every("tick", 999)).ok());
    CHECK_FALSE(f.engine.schedule("new", every("bad name", 60'000)).ok());
    CHECK(f.engine.find_queue("new") == nullptr);
    CHECK(f.engine.schedule("new", every("tick", 60'000)).ok());  // a good one makes it
    CHECK(f.engine.find_queue("new") != nullptr);
  }

  TEST_CASE("a SCHEDULE refused for its TTL or payload leaves no queue auto_create made") {
    // Those checks read the queue's delay and schedules: a new queue's are
    // the defaults and none, and the queue is made only once they pass.
    tq::engine::ManualClock clock;
    clock.set_ms(kNow);
    QueueSettings defaults;
    defaults.delay_ms = 5'000;
    Engine engine(clock, EngineLimits{.auto_create_queues = true, .max_payload_total = 1000},
                  defaults);
    EnqueueOptions short_ttl;
    short_ttl.ttl_ms = 1'000;
    const Error ttl = engine.schedule("new", cron("nightly", "0 3 * * *", "x", short_ttl)).error();
    CHECK(ttl.code == Errc::kBadArgument);
    CHECK(ttl.message.find("the queue's delay") != std::string::npos);
    const std::string big(2000, 'x');
    CHECK(engine.schedule("new", every("tick", 60'000, big)).error().code == Errc::kFull);
    CHECK(engine.find_queue("new") == nullptr);
    CHECK(engine.queues().empty());
    engine.set_limits(EngineLimits{.auto_create_queues = true});
    const std::string too_big(kMaxSchedulePayloadBytes + 1, 'x');
    CHECK(engine.schedule("new", every("tick", 60'000, too_big)).error().code == Errc::kLimit);
    CHECK(engine.find_queue("new") == nullptr);
    CHECK(engine.schedule("new", every("tick", 60'000, big)).ok());  // a good one makes it
    CHECK(engine.find_queue("new") != nullptr);
  }

  TEST_CASE("the payloads of a queue's schedules add up to 1 MiB at most") {
    Fixture f;
    const std::string half(kMaxSchedulePayloadBytes / 2, 'x');
    f.add(every("a", 60'000, half));
    f.add(every("b", 60'000, half));
    Error over = f.refused(every("c", 60'000, "y"));
    CHECK(over.code == Errc::kLimit);
    CHECK(over.message.find("would hold 1048577 payload bytes, over 1 MiB") != std::string::npos);
    f.add(every("b", 60'000, half.substr(1)));  // a replaced one counts its new payload only
    f.add(every("c", 60'000, "y"));
  }

  TEST_CASE("schedule payloads count in limits.max_payload_total with the jobs'") {
    Fixture f;
    f.engine.set_limits(EngineLimits{.max_payload_total = 1'000});
    REQUIRE(f.engine.create_queue("other").ok());
    REQUIRE(f.engine.schedule("other", every("a", 60'000, std::string(600, 'a'))).ok());
    CHECK(f.engine.schedule_payload_bytes() == 600);
    // A job fits beside it only within what is left.
    CHECK(f.engine.enqueue("q", std::string(500, 'j')).error().code == Errc::kFull);
    f.put(std::string(300, 'j'));
    // So does another schedule; replacing one counts its new payload only.
    Error full = f.refused(every("b", 60'000, std::string(200, 'b')));
    CHECK(full.code == Errc::kFull);
    CHECK(full.message.find("would hold 1100 payload bytes") != std::string::npos);
    REQUIRE(f.engine.schedule("other", every("a", 60'000, std::string(650, 'a'))).ok());
    CHECK(f.engine.schedule_payload_bytes() == 650);
    // CANCEL and DROP give the bytes back.
    REQUIRE(f.engine.unschedule("other", "a").ok());
    CHECK(f.engine.schedule_payload_bytes() == 0);
    f.add(every("b", 60'000, std::string(200, 'b')));
    REQUIRE(f.engine.schedule("other", every("c", 60'000, std::string(100, 'c'))).ok());
    CHECK(f.engine.schedule_payload_bytes() == 300);
    REQUIRE(f.engine.drop("other").ok());
    CHECK(f.engine.schedule_payload_bytes() == 200);
    // One from config.yaml is counted, never refused: a backlog that fills
    // the limit must not keep tqd from starting.
    f.put(std::string(450, 'j'));  // 950 of 1000 held
    const std::string payload(300, 'd');  // outlives the spec, which views it
    ScheduleSpec declared = every("d", 60'000, payload);
    declared.declared = true;
    f.add(declared);
    CHECK(f.engine.schedule_payload_bytes() == 500);
  }

  TEST_CASE("a cron schedule whose next time is decades off keeps it after a firing") {
    Fixture f;
    f.clock.set_ms(1'961'539'200'000);                        // 2032-02-28 00:00 UTC
    const Schedule& s = f.add(cron("leap", "0 0 29 2 */2"));  // Feb 29th on Sun, Tue, Thu, Sat
    f.advance_to(s.next_ms);                                  // 2032-02-29, a Sunday
    CHECK(s.fired == 1);
    CHECK(s.next_ms == 2'466'547'200'000);  // 2048-02-29, a Saturday
  }

  TEST_CASE("a queue dropped and created again starts its new schedules' timer") {
    Fixture f;
    f.add(every("a", 60'000));
    REQUIRE(f.engine.drop("q").ok());
    REQUIRE(f.engine.create_queue("q").ok());
    f.add(every("b", 60'000));
    CHECK(f.engine.next_deadline_ms() == k1406);
    f.advance_to(k1406);
    CHECK(f.queue().ready.size() == 1);
  }

  TEST_CASE("PURGE leaves schedules alone, DROP takes them with the queue") {
    Fixture f;
    f.add(every("tick", 60'000, "x"));
    f.advance_to(k1406);
    REQUIRE(f.engine.purge("q").ok());
    CHECK(f.queue().schedules.size() == 1);
    REQUIRE(f.engine.drop("q").ok());
    CHECK(f.engine.next_deadline_ms() == INT64_MAX);
    f.advance_to(k1415);
    CHECK(f.engine.job_count() == 0);
  }

  TEST_CASE("a paused queue's schedules still put jobs - a pause holds deliveries, not producers") {
    Fixture f;
    f.add(every("tick", 60'000, "x"));
    REQUIRE(f.engine.set_paused("q", true).ok());
    f.advance_to(k1406);
    CHECK(f.queue().ready.size() == 1);
  }
}

}  // namespace engine_schedules_test
