// Fuzzes the command layer as a whole: a session of requests from two
// connections runs through RequestParser and dispatch() as server/connection.cc
// runs them, against one engine on a hand-driven clock, with what the
// server's loop does between requests done here too: the sweeper's
// expire_due (leases, delays, TTLs, schedules), blocked DEQUEUE ... WAITs
// served and timed out, KICK/REDRIVE/PURGE ... DEAD run on in steps. The
// input is the bytes the clients send, split at lines that begin with '~'
// (harness controls, see run_control: move the clock, switch connection,
// change the size of the pieces the parser is fed, disconnect...). The
// server has a password and an admin password: the first connection has
// logged in as the admin, the second must AUTH. The limits are small, so
// that the session reaches them. Beyond the
// sanitizers it asserts: each request gets exactly one whole reply (none
// while it waits, then exactly one), framed as its command's reply shape
// says, as the client library reads it; every ERROR carries a code
// PROTOCOL.md lists and none is INTERNAL; the jobs a DEQUEUE hands out
// exist, leased, under the lease token shown; the engine's indexes and counts
// agree with each other after every request and every turn of the loop;
// no connection waits in DEQUEUE ... WAIT on a queue that could deliver to
// it now (checked once the timers that are due have run);
// and, when the input asks ("~r"), the journal's records, replayed from
// the in-memory log into a fresh engine after a clean stop, give back the
// state the live engine ended with (the random replay test's fingerprint).
#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/command_table.h"
#include "protocol/reply_reader.h"
#include "protocol/request_parser.h"
#include "server/bulk_work.h"
#include "server/commands.h"
#include "server/engine/engine.h"
#include "server/journal.h"
#include "server/lease_book.h"
#include "server/waiters.h"
#include "tests/unit/engine_check.h"
#include "wal/log.h"
#include "wal/memory_file_system.h"

namespace {

using namespace tq;
using protocol::ReplyShape;
using protocol::RequestParser;

constexpr size_t kMaxRequests = 300;  // run per input, at most
constexpr size_t kMaxInput = 16 << 10;
constexpr int64_t kMaxStepMs = 10LL * 24 * 3600 * 1000;  // one ~t moves the clock this far at most
constexpr int kMaxTicks = 64;  // deadlines stepped through in one ~t, then the rest at once
const std::string kPassword = "pw";
const std::string kWalDir = "/d/wal";
const std::string kAdminPassword = "root";

// TQ_FUZZ_TRACE=1 prints each connection's replies and the controls, to
// read what an input does.
const bool kTrace = getenv("TQ_FUZZ_TRACE") != nullptr;

void trace(const char* what, uint64_t conn, std::string_view text) {
  if (kTrace) {
    fprintf(stderr, "[%llu] %s %.*s%s", static_cast<unsigned long long>(conn), what,
            static_cast<int>(text.size()), text.data(),
            text.empty() || text.back() != '\n' ? "\n" : "");
  }
}

[[noreturn]] void fail(const std::string& what, std::string_view reply) {
  fprintf(stderr, "commands_fuzz: %s\n--- reply ---\n%.*s\n---\n", what.c_str(),
          static_cast<int>(reply.size()), reply.data());
  abort();
}

// Checks that `reply` is exactly one whole reply of `shape`, read as the
// client library reads it (client/reply.cc), with a documented error code.
void check_reply(std::string_view reply, ReplyShape shape) {
  protocol::ReplyReader reader;
  reader.feed(reply);
  auto head = reader.take_line();
  if (!head) fail("no whole reply line", reply);
  auto parsed = protocol::parse_reply_line(*head);
  if (!parsed) fail("a reply that is neither OK nor ERROR", reply);
  if (!parsed->ok) {
    if (!parsed->code) fail("an error code PROTOCOL.md does not list", reply);
    if (*parsed->code == protocol::ErrorCode::kInternal) fail("ERROR INTERNAL", reply);
    shape = ReplyShape::kLine;  // an error is always one line
  } else if (shape != ReplyShape::kLine) {
    size_t n = 0;
    const std::string_view t = parsed->text;
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), n);
    if (ec != std::errc() || end != t.data() + t.size() || t.empty()) {
      fail("a framed reply that does not begin OK <count>", reply);
    }
    for (size_t i = 0; i < n; ++i) {
      auto line = reader.take_line();
      if (!line) fail("fewer lines than the count says", reply);
      if (shape != ReplyShape::kJobs) continue;
      // JOB <id> <bytes> <field>=<value>...
      std::string_view h = *line;
      if (h.substr(0, 4) != "JOB ") fail("a job without its JOB header", reply);
      h.remove_prefix(4);
      uint64_t id = 0;
      auto [id_end, id_ec] = std::from_chars(h.data(), h.data() + h.size(), id);
      if (id_ec != std::errc() || id_end == h.data() + h.size() || *id_end != ' ') {
        fail("a JOB header without an id", reply);
      }
      h.remove_prefix(static_cast<size_t>(id_end - h.data()) + 1);
      size_t bytes = 0;
      auto [b_end, b_ec] = std::from_chars(h.data(), h.data() + h.size(), bytes);
      if (b_ec != std::errc() || (b_end != h.data() + h.size() && *b_end != ' ')) {
        fail("a JOB header without its byte count", reply);
      }
      if (!reader.take_body(bytes)) fail("a job's payload not as long as its header says", reply);
    }
  }
  if (reader.buffered() != 0) fail("bytes after the reply", reply);
}

class QuietReporter final : public wal::Reporter {
 public:
  void dropped(const std::string&, uint64_t, uint64_t, const std::string&) override {}
};

// The log as tqd's would be, in memory: small segments, so that a session
// rotates and compacts. The writer thread starts only at close().
wal::LogOptions log_options() {
  wal::LogOptions o;
  o.dir = kWalDir;
  o.segment_bytes = 8192;
  o.spare_segment = false;
  return o;
}

engine::EngineLimits engine_limits() {
  return engine::EngineLimits{
      .auto_create_queues = false, .max_queues = 4, .max_jobs = 300, .max_payload_total = 16 << 10};
}

// One client connection, as server/connection.cc keeps it.
struct Conn {
  uint64_t id = 0;
  std::unique_ptr<RequestParser> parser;
  server::LeaseBook leases;
  server::AuthState auth;
  bool waiting = false;   // blocked in DEQUEUE ... WAIT
  bool deferred = false;  // KICK or the like in steps
  std::string out;        // its replies (kept short: cleared once checked)
};

class Session final : public server::BulkService,
                      public server::ClientDirectory,
                      public server::BackupService,
                      public server::ReloadService {
 public:
  // `with_log`: the engine's changes go to a log in memory, as tqd's do,
  // for restart_and_compare(). Without, the session runs as tqd with
  // wal.enabled false (a log costs a writer thread when it closes).
  explicit Session(bool with_log)
      : engine_(clock_, engine_limits(), engine::QueueSettings{}),
        waiters_(engine_,
                 [this](uint64_t id, const server::WaitRequest& request,
                        const std::vector<const engine::Job*>& jobs,
                        const std::string& error) { finish_wait(id, request, jobs, error); }),
        bulk_([this] { return ++bulk_clock_; }, [this](uint64_t id, const server::BulkTask& task,
                                                       uint64_t) { finish_deferred(id, task); }) {
    limits_.max_wait_ms = 120'000;
    limits_.max_count = 20;
    limits_.max_batch_bytes = 2048;
    limits_.max_waiters = 2;
    limits_.max_payload_bytes = 512;
    for (size_t i = 0; i < 2; ++i) connect(i);
    if (!with_log) return;
    journal_ = std::make_unique<server::Journal>(engine_, 1.5);
    wal::OpenSummary summary;
    auto opened = wal::Log::open(
        fs_, log_options(), reporter_,
        [&](const wal::Record& r, uint32_t segment) { return journal_->apply(r, segment); },
        &summary);
    if (!opened) fail("cannot open the log: " + opened.error().message(), "");
    log_ = std::move(opened).value();
    engine_.finish_restore();
    journal_->attach(*log_);
    journal_->record_counters();
  }

  void run(std::string_view input) {
    // Pieces: the first is client bytes (unless the input begins with
    // '~'); each later one begins with its control line ("~..."), then
    // client bytes.
    size_t pos = 0;
    bool first = input.substr(0, 1) != "~";  // an input may begin with a control
    while (pos <= input.size() && requests_ < kMaxRequests) {
      size_t cut = input.find("\n~", pos);
      const size_t end = cut == std::string_view::npos ? input.size() : cut + 1;
      std::string_view piece = input.substr(pos, end - pos);
      if (!first) {
        const size_t nl = piece.find('\n');
        run_control(piece.substr(1, nl == std::string_view::npos ? piece.size() - 1 : nl - 1));
        piece = nl == std::string_view::npos ? std::string_view{} : piece.substr(nl + 1);
      }
      first = false;
      send(piece);
      if (cut == std::string_view::npos) break;
      pos = cut + 1;
    }
    // The loop goes on after the last request: what is due runs.
    advance(60'000);
  }

  // Stops as tqd does (the schedule times kept out of the log while the
  // intake was closed written, the log closed), starts again from the log
  // into a fresh engine, and checks that it holds what this one does (and,
  // whatever the clock did, that its indexes agree).
  void restart_and_compare() {
    if (!log_) return;
    trace("restart at", 0, std::to_string(clock_.now_ms()));
    engine_.expire_due();
    engine_.save_unlogged_schedules();
    // Replay frees at once what PURGE and DROP left to be freed in steps:
    // the payload bytes compared are those of the jobs left.
    engine_.finish_disposals();
    const std::string before = testing::engine_fingerprint(engine_);
    if (auto closed = log_->close(); !closed.ok()) fail("close: " + closed.message(), "");
    engine_.set_observer(nullptr);
    log_.reset();  // and its lock with it
    engine::ManualClock clock;
    clock.set_ms(clock_.now_ms());
    engine::Engine engine(clock, engine_limits(), engine::QueueSettings{});
    server::Journal journal(engine, 1.5);
    wal::OpenSummary summary;
    auto opened = wal::Log::open(
        fs_, log_options(), reporter_,
        [&](const wal::Record& r, uint32_t segment) { return journal.apply(r, segment); },
        &summary);
    if (!opened) fail("replay: " + opened.error().message(), "");
    engine.finish_restore();
    engine.expire_due();
    const std::string after = testing::engine_fingerprint(engine);
    // What time alone does (a delayed job becomes ready, a dedup key is
    // forgotten) is not logged: replay does it again by the clock. Once the
    // wall clock was set back, a restart so holds again what the live
    // engine let go before the step, until its time comes round (README,
    // The clock), and the two differ by design.
    if (before != after && !clock_went_back_)
      fail("replay differs from the live engine", testing::line_diff(before, after));
    const std::string broken = testing::check_engine_invariants(engine);
    if (!broken.empty()) fail("after replay the engine's indexes disagree: " + broken, "");
  }

  // server::BulkService
  void start_bulk(uint64_t connection_id, server::BulkTask task) override {
    bulk_.start(connection_id, std::move(task));
  }

  // server::BackupService: a backup would copy the log on another thread;
  // here one is always under way.
  std::optional<server::BackupRefusal> start_backup(uint64_t, const std::string&) override {
    return server::BackupRefusal{protocol::ErrorCode::kBusy, "a backup is being made (fuzz)"};
  }

  // server::ReloadService: the settings file, read again, is by turns
  // unusable, lowers the limits below what may be held, and puts them back.
  server::ReloadOutcome reload_settings() override {
    server::ReloadOutcome outcome;
    engine::EngineLimits limits = engine_limits();
    limits.auto_create_queues = engine_.limits().auto_create_queues;
    switch (reloads_++ % 3) {
      case 0:
        outcome.error = "config.yaml: line 3: not a map (fuzz)";
        return outcome;
      case 1:
        limits.max_queues = 2;
        limits.max_jobs = 8;
        limits.max_payload_total = 512;
        break;
      default:
        break;
    }
    engine_.set_limits(limits);
    outcome.applied = {"limits.max_queues", "limits.max_jobs", "limits.max_payload_total"};
    return outcome;
  }

  // server::ClientDirectory
  std::vector<server::ClientInfo> describe_clients() const override {
    std::vector<server::ClientInfo> clients;
    for (const Conn& c : conns_) {
      server::ClientInfo info;
      info.id = c.id;
      info.address = "127.0.0.1:" + std::to_string(40000 + c.id);
      info.leases = c.leases.size();
      info.admin = c.auth.admin;
      clients.push_back(info);
    }
    return clients;
  }

 private:
  // A control line: "t<ms>" lets the loop run that long; "j<ms>" (may be
  // negative) sets the wall clock on or back, the loop's clock not; "c<n>"
  // speaks as connection n % 2 from here; "s<n>" feeds the parser pieces of
  // n bytes; "x" disconnects the current connection (a new one takes its
  // place); "a" turns queues.auto_create on or off; "f" closes or opens
  // the intake (the log's disk running low). "r", anywhere in the input,
  // runs the whole session with a log and replays it at the end (see
  // LLVMFuzzerTestOneInput).
  void run_control(std::string_view line) {
    trace("~", conns_[current_].id,
          std::string(line) + " (at " + std::to_string(clock_.now_ms()) + ")");
    if (line.empty()) return;
    const char op = line[0];
    int64_t n = 0;
    bool negative = false;
    size_t i = 1;
    if (i < line.size() && line[i] == '-') negative = true, ++i;
    for (; i < line.size() && line[i] >= '0' && line[i] <= '9'; ++i) {
      if (n < kMaxStepMs) n = n * 10 + (line[i] - '0');
    }
    n = std::min(n, kMaxStepMs);
    if (negative) n = -n;
    switch (op) {
      case 't':
        advance(n < 0 ? -n : n);
        break;
      case 'j':
        if (n < 0) clock_went_back_ = true;
        clock_.advance_ms(n);
        loop_turn();
        break;
      case 'c':
        current_ = static_cast<size_t>(n < 0 ? -n : n) % 2;
        break;
      case 's':
        piece_ = static_cast<size_t>(std::clamp<int64_t>(n < 0 ? -n : n, 1, 4096));
        break;
      case 'x':
        disconnect(current_);
        break;
      case 'a': {
        engine::EngineLimits l = engine_.limits();
        l.auto_create_queues = !l.auto_create_queues;
        engine_.set_limits(l);
        break;
      }
      case 'f':
        if (engine_.intake_open()) {
          engine_.close_intake("the log's disk is low (fuzz)");
        } else {
          engine_.open_intake();
        }
        loop_turn();
        break;
      default:
        break;
    }
  }

  void connect(size_t slot) {
    Conn& c = conns_[slot];
    c.id = next_conn_id_++;
    protocol::ParserLimits pl;
    pl.max_line_bytes = 1024;
    pl.max_body_bytes = 512;
    c.parser = std::make_unique<RequestParser>(pl);
    c.leases = server::LeaseBook{};
    c.auth = server::AuthState{};
    c.auth.password = &kPassword;
    c.auth.admin_password = &kAdminPassword;
    c.auth.max_failures = 3;
    if (slot == 0) {
      // The first connection has logged in as the admin; the second starts
      // as a stranger and must AUTH.
      c.auth.authenticated = true;
      c.auth.admin = true;
    }
    c.waiting = false;
    c.deferred = false;
    c.out.clear();
  }

  void disconnect(size_t slot) {
    Conn& c = conns_[slot];
    // A wait ends; a task in steps goes on, its reply to nobody.
    if (c.waiting && !c.deferred) waiters_.cancel(c.id);
    connect(slot);
  }

  Conn* find_conn(uint64_t id) {
    for (Conn& c : conns_) {
      if (c.id == id) return &c;
    }
    return nullptr;
  }

  void send(std::string_view bytes) {
    while (!bytes.empty() && requests_ < kMaxRequests) {
      const size_t n = std::min(piece_, bytes.size());
      conns_[current_].parser->feed(bytes.substr(0, n));
      bytes.remove_prefix(n);
      process_all();
    }
  }

  // Runs what every connection that is not waiting has buffered, until none
  // can go on.
  void process_all() {
    bool again = true;
    while (again && requests_ < kMaxRequests) {
      again = false;
      for (size_t slot = 0; slot < 2; ++slot) {
        if (process(slot)) again = true;
      }
    }
  }

  // Runs the whole requests connection `slot` has buffered; true if it ran any.
  bool process(size_t slot) {
    bool ran = false;
    while (requests_ < kMaxRequests) {
      Conn& c = conns_[slot];
      if (c.waiting || c.deferred) break;
      const auto r = c.parser->next();
      if (r == RequestParser::Result::kNeedMore) break;
      ++requests_;
      ran = true;
      server::CommandContext ctx{engine_, stats_, c.out};
      ctx.log = log_.get();
      ctx.journal = journal_.get();
      ctx.backups = this;
      ctx.reloads = this;
      ctx.waiters = &waiters_;
      ctx.limits = &limits_;
      ctx.auth = &c.auth;
      ctx.leases = &c.leases;
      ctx.clients = this;
      ctx.bulk = this;
      ctx.connection_id = c.id;
      ctx.loop_now_ms = loop_now_ms();
      ctx.scratch = &scratch_;
      const size_t begin = c.out.size();
      ReplyShape shape = ReplyShape::kLine;
      if (r == RequestParser::Result::kError) {
        server::reply_parse_error(ctx, c.parser->error());
      } else {
        const protocol::Request& request = c.parser->request();
        shape = protocol::reply_shape(*request.spec, request.args);
        server::dispatch(ctx, request);
      }
      const std::string_view reply = std::string_view(c.out).substr(begin);
      trace("<", c.id, reply);
      if (ctx.wait || ctx.deferred) {
        if (!reply.empty()) fail("a reply to a request that waits", reply);
        if (ctx.wait) {
          c.waiting = true;
          waiters_.add(c.id, std::move(*ctx.wait));
        } else {
          c.waiting = true;
          c.deferred = true;
        }
      } else {
        check_reply(reply, shape);
        if (r == RequestParser::Result::kRequest &&
            c.parser->request().spec->verb == protocol::Verb::kDequeue) {
          check_delivered(reply, shape == ReplyShape::kJobs);
        }
      }
      c.out.clear();
      check_engine();
      // The request may have made jobs ready that someone waits for.
      waiters_.serve_ready();
      // Unless it left something due (a lowered dead_max, say), which the
      // loop's next turn runs, first.
      if (engine_.next_deadline_ms() > clock_.now_ms()) check_waiters();
      if (ctx.close_after_reply) {
        disconnect(slot);
        break;
      }
    }
    return ran;
  }

  // A DEQUEUE's reply, just made: every job it hands out exists, is leased,
  // once, and (framed) under the lease token its header gives.
  void check_delivered(std::string_view reply, bool framed) {
    if (reply.substr(0, 3) != "OK ") return;
    std::vector<uint64_t> ids;
    auto check = [&](uint64_t id, std::optional<uint64_t> lease) {
      const engine::Job* job = engine_.find_job(id);
      if (job == nullptr) fail("a delivered job that does not exist", reply);
      if (job->state != engine::JobState::kLeased) fail("a delivered job not leased", reply);
      if (lease && *lease != job->delivery()) fail("a lease token not the job's delivery", reply);
      for (uint64_t seen : ids) {
        if (seen == id) fail("a job delivered twice in one reply", reply);
      }
      ids.push_back(id);
    };
    auto number = [](std::string_view text) {
      uint64_t n = 0;
      std::from_chars(text.data(), text.data() + text.size(), n);
      return n;
    };
    if (!framed) {
      check(number(reply.substr(3)), std::nullopt);
      return;
    }
    // The shape was checked: each job is a header line and its payload.
    size_t pos = reply.find('\n') + 1;
    while (pos < reply.size()) {
      const size_t eol = reply.find('\n', pos);
      const std::string_view header = reply.substr(pos, eol - pos);
      const uint64_t id = number(header.substr(4));
      const size_t bytes_at = header.find(' ', 4) + 1;
      const uint64_t bytes = number(header.substr(bytes_at));
      const size_t lease_at = header.find(" lease=");
      std::optional<uint64_t> lease;
      if (lease_at != std::string_view::npos) lease = number(header.substr(lease_at + 7));
      check(id, lease);
      pos = eol + 1 + bytes + 1;
    }
  }

  void finish_wait(uint64_t id, const server::WaitRequest& request,
                   const std::vector<const engine::Job*>& jobs, const std::string& error) {
    Conn* c = find_conn(id);
    if (c == nullptr) fail("a wait answered for a connection that is gone", error);
    if (!c->waiting || c->deferred) fail("a wait answered for a connection not waiting", error);
    c->waiting = false;
    std::string out;
    trace("wait ended:", id, error.empty() ? "" : error);
    if (!error.empty()) {
      out = error;
      check_reply(out, ReplyShape::kLine);
    } else {
      server::append_delivery(out, jobs, request.framed, request.queues, engine_);
      server::record_deliveries(c->leases, engine_, jobs);
      check_reply(out, request.framed ? ReplyShape::kJobs : ReplyShape::kLine);
      check_delivered(out, request.framed);
    }
    trace("<", id, out);
  }

  void finish_deferred(uint64_t id, const server::BulkTask& task) {
    const std::string reply = server::bulk_reply(task);
    Conn* c = find_conn(id);
    if (c == nullptr) return;  // it disconnected
    if (!c->deferred) fail("a task's reply for a connection not waiting for one", reply);
    c->waiting = false;
    c->deferred = false;
    trace("<", id, reply);
    check_reply(reply, ReplyShape::kLine);
  }

  // What the server's loop does in one turn when nothing is read: the
  // bulk tasks' steps, the sweeper (when the engine has something due), the
  // waits that timed out; then the connections a reply let go on.
  // The engine is checked after every turn, but for those advance() takes
  // on the way (each check costs a walk of every job): after its last.
  void loop_turn(bool check = true) {
    engine_.follow_clock_set_back();  // as the housekeeping timer does, every second
    if (bulk_.busy()) {
      bulk_.run(engine_, 1);  // one step: the runner's clock moves one a read
      waiters_.serve_ready();
    }
    // What PURGE and DROP removed, a few jobs a turn (the server frees
    // thousands), so that their freeing spans later requests.
    if (engine_.disposing()) engine_.dispose_some(3);
    if (engine_.next_deadline_ms() <= clock_.now_ms()) {
      constexpr size_t kSweepSlice = 500;  // as Server::on_sweep
      for (int i = 0; i < 8; ++i) {
        if (engine_.expire_due(kSweepSlice) < kSweepSlice) break;
      }
      waiters_.serve_ready();
    }
    waiters_.expire(loop_now_ms());
    if (journal_) journal_->maintain();
    if (check) check_engine();
    if (engine_.next_deadline_ms() > clock_.now_ms()) check_waiters();
    process_all();
  }

  // Lets `ms` pass, the loop waking at each deadline on the way (the
  // engine's, a wait's), as its timers would.
  void advance(int64_t ms) {
    const int64_t target = clock_.now_ms() + ms;
    for (int tick = 0; tick < kMaxTicks && clock_.now_ms() < target; ++tick) {
      int64_t next = std::min(engine_.next_deadline_ms(), target);
      const int64_t wait_at = waiters_.next_deadline_ms();
      if (wait_at != INT64_MAX) next = std::min(next, wait_at - loop_now_ms() + clock_.now_ms());
      next = std::max(next, clock_.now_ms() + 1);
      loop_offset_ += next - clock_.now_ms();
      clock_.set_ms(next);
      loop_turn(false);
    }
    if (clock_.now_ms() < target) {
      loop_offset_ += target - clock_.now_ms();
      clock_.set_ms(target);
    }
    loop_turn();
    while (bulk_.busy()) loop_turn(false);
    check_engine();
  }

  int64_t loop_now_ms() const { return loop_offset_; }

  // No worker waits on a queue that could serve it now (a lost wake-up).
  void check_waiters() {
    const std::string stuck = testing::check_waiters_served(engine_, waiters_);
    if (!stuck.empty()) fail("a waiting worker is not served: " + stuck, "");
  }

  void check_engine() {
    const std::string broken = testing::check_engine_invariants(engine_);
    if (!broken.empty()) fail("the engine's indexes disagree: " + broken, "");
  }

  wal::MemoryFileSystem fs_;
  QuietReporter reporter_;
  engine::ManualClock clock_;
  int64_t loop_offset_ = 1'000'000;  // the loop's monotonic clock
  engine::Engine engine_;
  std::unique_ptr<server::Journal> journal_;  // with a log
  std::unique_ptr<wal::Log> log_;
  server::ServerStats stats_;
  server::RequestLimits limits_;
  server::HandlerScratch scratch_;
  server::WaiterTable waiters_;
  uint64_t bulk_clock_ = 0;
  server::BulkRunner bulk_;
  Conn conns_[2];
  uint64_t next_conn_id_ = 1;
  size_t current_ = 0;
  size_t piece_ = 13;
  size_t requests_ = 0;
  size_t reloads_ = 0;
  bool clock_went_back_ = false;  // a "~j" set the wall clock back
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), std::min(size, kMaxInput));
  // "~r" on a line of its own asks for the log and the replay check. Not
  // every input pays for it: closing the log takes its writer thread, tens
  // of milliseconds on a busy machine against one or two for the rest.
  const bool with_log = input.substr(0, 3) == "~r\n" || input.find("\n~r\n") != input.npos;
  Session session(with_log);
  session.run(input);
  session.restart_and_compare();
  return 0;
}
