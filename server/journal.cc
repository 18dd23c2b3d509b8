#include "server/journal.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "server/log.h"
#include "wal/coding.h"

namespace tq::server {
namespace {

using engine::DedupEntry;
using engine::Job;
using engine::JobState;
using engine::Queue;

// How much log a live object accounts for. It must give the same answer when
// the object is recorded and when it is removed, so it depends only on what
// never changes.
uint64_t accounted_bytes(const Job& job) {
  return wal::record_size(job.payload_size + 16);
}
constexpr uint64_t kDedupBytes = 64;

// Sweeps move at most this many objects, or this many bytes, per iteration,
// so the loop is never held up for long; and look at no more jobs than
// kSweepVisitsPerStep, most of which a sweep of the oldest segment passes
// over (a look is a compare: 32768 of them, among 750,000 jobs, took at most
// 0.3 ms here).
constexpr size_t kSweepJobsPerStep = 4096;
constexpr uint64_t kSweepBytesPerStep = 4u << 20;
constexpr size_t kSweepVisitsPerStep = 32768;

// Optional JOB record fields, present when their flag bit is set.
enum JobFlag : uint8_t {
  kHasExpiry = 1,
  kHasMaxAttempts = 2,
  kHasKey = 4,
  kHasReason = 8,
  kHasGroup = 16,
  kHasOrigin = 32,  // the queue it died in, when it moved to a dead_letter_queue
  kHasKicks = 64,   // how often KICK, REDRIVE or such a move started it over
  // When its dedup key is remembered until: set in the record of the put
  // that added the key, so the key and its job are one record. Two records
  // (a JOB, then a DEDUP) could be parted by a crash, the JOB kept and the
  // key lost, and the retry of the unanswered PUT then stored the job twice.
  kHasKeyExpiry = 128,
};
constexpr uint8_t kAllJobFlags = 255;

// QUEUE record flag bits.
enum QueueFlag : uint8_t {
  kPaused = 1,
  kTtlDeadLetter = 2,
};

// Fractions (factor, jitter) travel as thousandths: exact enough, and the
// record stays integers only.
uint64_t thousandths(double v) { return static_cast<uint64_t>(std::llround(v * 1000.0)); }

void encode_queue(std::string& out, const Queue& q) {
  const engine::QueueSettings& s = q.settings;
  wal::put_varint(out, q.number);
  wal::put_bytes(out, q.name);
  wal::put_varint(out, static_cast<uint64_t>(s.ack_timeout_ms));
  wal::put_varint(out, s.max_attempts);
  wal::put_varint(out, static_cast<uint64_t>(s.backoff_base_ms));
  wal::put_varint(out, thousandths(s.backoff_factor));
  wal::put_varint(out, static_cast<uint64_t>(s.backoff_max_ms));
  wal::put_varint(out, thousandths(s.backoff_jitter));
  wal::put_varint(out, static_cast<uint64_t>(s.dedup_window_ms));
  wal::put_varint(out, s.max_size);
  wal::put_signed_varint(out, s.priority);
  out += static_cast<char>((q.paused ? kPaused : 0) | (s.ttl_dead_letter ? kTtlDeadLetter : 0));
  // Settings added later go after the flags; a record without them (an
  // older log) leaves them at their defaults.
  wal::put_varint(out, s.max_leased);
  wal::put_varint(out, s.rate_limit);
  wal::put_varint(out, static_cast<uint64_t>(s.rate_window_ms));
  wal::put_varint(out, static_cast<uint64_t>(s.dead_retention_ms));
  wal::put_varint(out, s.dead_max);
  wal::put_varint(out, static_cast<uint64_t>(q.resume_at_ms));
  wal::put_varint(out, q.schedules.size());
  for (const auto& [name, sc] : q.schedules) {
    wal::put_bytes(out, sc.name);
    wal::put_varint(out, static_cast<uint64_t>(sc.every_ms));
    wal::put_bytes(out, sc.cron ? std::string_view(sc.cron->text()) : std::string_view());
    wal::put_bytes(out, sc.payload);
    wal::put_signed_varint(out, sc.priority);
    wal::put_varint(out, static_cast<uint64_t>(sc.ttl_ms));
    wal::put_varint(out, sc.max_attempts);
    wal::put_bytes(out, sc.group);
    wal::put_varint(out, static_cast<uint64_t>(sc.next_ms));
    wal::put_varint(out, sc.fired);
  }
  // Settings added since the schedules: after them, where a tqd from
  // before them stops reading.
  wal::put_varint(out, static_cast<uint64_t>(s.ttl_ms));
  wal::put_varint(out, static_cast<uint64_t>(s.delay_ms));
  wal::put_bytes(out, s.dead_letter_queue);
}

// The schedules at the end of a QUEUE record (none in a record from before
// SCHEDULE); false when they do not decode. `zone_warned` holds
// "<queue> <schedule>" for each schedule whose zone was warned about
// already: the record comes again at every SCHEDULE, CANCEL and CONFIG of
// the queue (and, in logs from before SCHEDULE_FIRED, at every firing), and
// is replayed each time.
bool decode_schedules(wal::BodyReader& in, std::string_view queue,
                      std::map<std::string, engine::Schedule>* out,
                      std::set<std::string>* zone_warned) {
  if (in.empty()) return true;
  const uint64_t count = in.varint();
  if (count > engine::kMaxSchedulesPerQueue) return false;
  uint64_t payload_bytes = 0;
  for (uint64_t i = 0; i < count && !in.failed(); ++i) {
    engine::Schedule sc;
    sc.name = std::string(in.bytes());
    sc.every_ms = static_cast<int64_t>(in.varint());
    std::string_view cron = in.bytes();
    sc.payload = std::string(in.bytes());
    const int64_t priority = in.signed_varint();
    sc.ttl_ms = static_cast<int64_t>(in.varint());
    const uint64_t max_attempts = in.varint();
    sc.group = std::string(in.bytes());
    sc.next_ms = static_cast<int64_t>(in.varint());
    sc.fired = in.varint();
    payload_bytes += sc.payload.size();
    // As SCHEDULE checks them: a value it would refuse (a TTL that
    // overflows a deadline) is damage, not a schedule.
    if (sc.every_ms < 0 || sc.every_ms > engine::kMaxSettingDurationMs || sc.ttl_ms < 0 ||
        sc.ttl_ms > engine::kMaxSettingDurationMs || sc.next_ms < 0 || priority < INT32_MIN ||
        priority > INT32_MAX || max_attempts > engine::kMaxJobAttempts ||
        payload_bytes > engine::kMaxSchedulePayloadBytes || !engine::Engine::valid_key(sc.name) ||
        (!sc.group.empty() && !engine::Engine::valid_key(sc.group))) {
      return false;
    }
    sc.priority = static_cast<int32_t>(priority);
    sc.max_attempts = static_cast<uint32_t>(max_attempts);
    if (sc.every_ms == 0) {
      std::string why;
      // A zone this host's tzdata lacks keeps the schedule, asleep: losing
      // it, or the whole log, to a missing package would be worse.
      sc.cron = engine::CronSpec::parse(cron, &why, true);
      if (!sc.cron) return false;
      auto first_warning = [&] {
        return zone_warned->emplace(std::string(queue) + " " + sc.name).second;
      };
      if (sc.cron->zone_missing()) {
        if (first_warning()) {
          LOG_WARN(
              "schedule %s of queue %.*s: unknown time zone '%.*s' (tzdata does not have it "
              "here): it will not fire until tqd starts with one that has it; SCHEDULE it again "
              "or CANCEL it",
              sc.name.c_str(), static_cast<int>(queue.size()), queue.data(),
              static_cast<int>(sc.cron->zone_name().size()), sc.cron->zone_name().data());
        }
        sc.next_ms = INT64_MAX;
      } else if (sc.cron->zone_name() == "localtime" && first_warning()) {
        LOG_WARN(
            "schedule %s of queue %.*s: time zone 'localtime' (this host's zone, which "
            "SCHEDULE now refuses) kept as an older tqd wrote it; SCHEDULE it again with a "
            "named zone",
            sc.name.c_str(), static_cast<int>(queue.size()), queue.data());
      }
    }
    std::string name = sc.name;
    (*out)[name] = std::move(sc);
  }
  return !in.failed();
}

// A job record's body but its payload, which follows (Journal::record's
// tail): the payload is copied once, into the log's batch. `key_expires_ms`:
// not 0 when the record also stands for the job's dedup key (kHasKeyExpiry).
void encode_job_head(std::string& out, const Job& job, const engine::JobExtras* x,
                     int64_t key_expires_ms) {
  uint8_t flags = 0;
  if (x != nullptr) {
    if (x->expires_at_ms > 0) flags |= kHasExpiry;
    if (x->max_attempts > 0) flags |= kHasMaxAttempts;
    if (!x->dedup_key.empty()) flags |= kHasKey;
    // Dead, or moved to a dead_letter_queue (which keeps why it died).
    if (!x->reason.empty()) flags |= kHasReason;
    if (!x->group.empty()) flags |= kHasGroup;
    if (!x->origin.empty()) flags |= kHasOrigin;
  }
  if (job.kicks > 0) flags |= kHasKicks;
  if (key_expires_ms > 0 && (flags & kHasKey)) flags |= kHasKeyExpiry;
  // Held is ready waiting its group's turn: replay works it out again.
  const JobState state = job.state == JobState::kHeld ? JobState::kReady : job.state;
  char fixed[9 * wal::kMaxVarintBytes];  // eight varints at most, and three bytes
  char* p = wal::store_varint(fixed, job.id);
  p = wal::store_varint(p, job.queue->number);
  *p++ = static_cast<char>(state);
  p = wal::store_varint(p, job.attempts);
  p = wal::store_varint(p, wal::zigzag(job.priority));
  p = wal::store_varint(p, static_cast<uint64_t>(job.deadline_ms));
  *p++ = static_cast<char>(flags);
  if (flags & kHasExpiry) p = wal::store_varint(p, static_cast<uint64_t>(x->expires_at_ms));
  if (flags & kHasMaxAttempts) p = wal::store_varint(p, x->max_attempts);
  if (flags & kHasKicks) *p++ = static_cast<char>(job.kicks);
  if (flags & kHasKeyExpiry) p = wal::store_varint(p, static_cast<uint64_t>(key_expires_ms));
  out.append(fixed, p);
  if (flags & kHasKey) wal::put_bytes(out, x->dedup_key);
  if (flags & kHasReason) wal::put_bytes(out, x->reason);
  if (flags & kHasGroup) wal::put_bytes(out, x->group);
  if (flags & kHasOrigin) wal::put_bytes(out, x->origin);
}

wal::Status bad_body(const char* type) {
  return wal::Status::corruption(std::string("undecodable ") + type + " record body");
}

}  // namespace

Journal::Journal(engine::Engine& engine, double compaction_ratio)
    : engine_(engine), compaction_ratio_(compaction_ratio) {
  engine_.set_observer(this);
}

// --- Replay -------------------------------------------------------------------

wal::Status Journal::apply(const wal::Record& record, uint32_t segment) {
  replay_segment_ = segment;
  wal::BodyReader in(record.body);
  switch (static_cast<RecordType>(record.type)) {
    case RecordType::kMeta: {
      uint64_t next_job = in.varint();
      uint64_t next_queue = in.varint();
      if (in.failed()) return bad_body("META");
      engine_.restore_ids(next_job, static_cast<uint32_t>(next_queue));
      meta_seq_ = record.seq;
      meta_next_job_id_ = next_job;
      return {};
    }
    case RecordType::kQueue: {
      auto number = static_cast<uint32_t>(in.varint());
      std::string_view name = in.bytes();
      engine::QueueSettings s;
      s.ack_timeout_ms = static_cast<int64_t>(in.varint());
      if (in.empty() && !in.failed()) {
        // Written before queues had more settings than the ack timeout (the
        // first tqd that kept a log): the rest are this server's defaults,
        // as that tqd's own replay gave them, and the queue is not paused.
        if (!logged_queue_name(name)) return bad_body("QUEUE");
        const int64_t ack_timeout_ms = s.ack_timeout_ms;
        s = engine_.default_settings();
        s.ack_timeout_ms = ack_timeout_ms;
        engine_.restore_queue(number, name, s, false, 0, {});
        return {};
      }
      s.max_attempts = static_cast<uint32_t>(in.varint());
      s.backoff_base_ms = static_cast<int64_t>(in.varint());
      s.backoff_factor = static_cast<double>(in.varint()) / 1000.0;
      s.backoff_max_ms = static_cast<int64_t>(in.varint());
      s.backoff_jitter = static_cast<double>(in.varint()) / 1000.0;
      s.dedup_window_ms = static_cast<int64_t>(in.varint());
      s.max_size = in.varint();
      s.priority = static_cast<int32_t>(in.signed_varint());
      uint8_t flags = in.byte();
      if (!in.empty()) {  // written since max_leased and the rate limit exist
        s.max_leased = in.varint();
        s.rate_limit = in.varint();
        s.rate_window_ms = static_cast<int64_t>(in.varint());
        if (s.max_leased > engine::kMaxDeliveryLimit || s.rate_limit > engine::kMaxDeliveryLimit ||
            s.rate_window_ms < 1 || s.rate_window_ms > engine::kMaxSettingDurationMs) {
          return bad_body("QUEUE");
        }
      }
      if (!in.empty()) {  // and since dead_retention and dead_max exist
        s.dead_retention_ms = static_cast<int64_t>(in.varint());
        s.dead_max = in.varint();
        if (s.dead_retention_ms < 0 || s.dead_retention_ms > engine::kMaxSettingDurationMs ||
            s.dead_max > engine::kMaxDeliveryLimit) {
          return bad_body("QUEUE");
        }
      }
      int64_t resume_at_ms = 0;
      if (!in.empty()) {  // and since PAUSE takes a duration
        resume_at_ms = static_cast<int64_t>(in.varint());
        if (resume_at_ms < 0) return bad_body("QUEUE");
      }
      std::map<std::string, engine::Schedule> schedules;  // and since SCHEDULE
      if (!decode_schedules(in, name, &schedules, &zone_warned_)) return bad_body("QUEUE");
      if (!in.empty()) {  // and since queues have a TTL
        s.ttl_ms = static_cast<int64_t>(in.varint());
        if (s.ttl_ms < 0 || s.ttl_ms > engine::kMaxSettingDurationMs) return bad_body("QUEUE");
      }
      if (!in.empty()) {  // and since queues have a delay
        s.delay_ms = static_cast<int64_t>(in.varint());
        if (s.delay_ms < 0 || s.delay_ms > engine::kMaxSettingDurationMs) return bad_body("QUEUE");
      }
      if (!in.empty()) {  // and since queues have a dead_letter_queue
        s.dead_letter_queue = std::string(in.bytes());
        if (!s.dead_letter_queue.empty() && !logged_queue_name(s.dead_letter_queue)) {
          return bad_body("QUEUE");
        }
      }
      if (in.failed() || !logged_queue_name(name)) return bad_body("QUEUE");
      s.ttl_dead_letter = (flags & kTtlDeadLetter) != 0;
      if (const Queue* old = engine_.find_queue(name); old != nullptr && old->number != number) {
        LOG_ERROR(
            "wal: queue %.*s is created again (number %u) while number %u still holds the "
            "name: its DROP record was lost, so it is dropped now with its %zu job(s)",
            static_cast<int>(name.size()), name.data(), number, old->number, old->job_count());
      }
      engine_.restore_queue(number, name, s, (flags & kPaused) != 0, resume_at_ms,
                            std::move(schedules));
      return {};
    }
    case RecordType::kQueueDrop:
    case RecordType::kPurge: {
      auto number = static_cast<uint32_t>(in.varint());
      if (in.failed()) return bad_body("QUEUE_DROP/PURGE");
      if (static_cast<RecordType>(record.type) == RecordType::kPurge) {
        engine_.restore_purge(number);
      } else {
        engine_.restore_drop_queue(number);
      }
      return {};
    }
    case RecordType::kJob: {
      engine::JobSnapshot snap;
      snap.id = in.varint();
      snap.queue_number = static_cast<uint32_t>(in.varint());
      uint8_t state = in.byte();
      snap.attempts = static_cast<uint32_t>(in.varint());
      snap.priority = static_cast<int32_t>(in.signed_varint());
      snap.deadline_ms = static_cast<int64_t>(in.varint());
      uint8_t flags = in.byte();
      if (flags & kHasExpiry) snap.expires_at_ms = static_cast<int64_t>(in.varint());
      if (flags & kHasMaxAttempts) snap.max_attempts = static_cast<uint32_t>(in.varint());
      if (flags & kHasKicks) snap.kicks = in.byte();
      if (flags & kHasKeyExpiry) snap.key_expires_ms = static_cast<int64_t>(in.varint());
      if (flags & kHasKey) snap.key = in.bytes();
      if (flags & kHasReason) snap.reason = in.bytes();
      if (flags & kHasGroup) snap.group = in.bytes();
      if (flags & kHasOrigin) snap.origin = in.bytes();
      snap.payload = in.rest();
      if (in.failed() || snap.id == 0 || state > static_cast<uint8_t>(JobState::kDead) ||
          flags > kAllJobFlags) {
        return bad_body("JOB");
      }
      snap.state = static_cast<JobState>(state);
      engine_.restore_job(snap);
      return {};
    }
    case RecordType::kLease: {
      uint64_t id = in.varint();
      auto attempts = static_cast<uint32_t>(in.varint());
      // When the lease ends (added later: 0, not known, in older records).
      auto ends = in.empty() ? 0 : static_cast<int64_t>(in.varint());
      if (in.failed()) return bad_body("LEASE");
      engine_.restore_lease(id, attempts, ends);
      return {};
    }
    case RecordType::kRelease: {
      uint64_t id = in.varint();
      auto attempts = static_cast<uint32_t>(in.varint());
      auto ready_at = static_cast<int64_t>(in.varint());
      // Ready since (added later: an older record ends before it).
      auto ready_since = in.empty() ? 0 : static_cast<int64_t>(in.varint());
      if (in.failed()) return bad_body("RELEASE");
      engine_.restore_release(id, attempts, ready_at, ready_since);
      return {};
    }
    case RecordType::kRemove: {
      uint64_t id = in.varint();
      if (in.failed()) return bad_body("REMOVE");
      engine_.restore_remove(id);
      return {};
    }
    case RecordType::kDead: {
      uint64_t id = in.varint();
      auto died_at = static_cast<int64_t>(in.varint());
      std::string_view reason = in.bytes();
      if (in.failed()) return bad_body("DEAD");
      engine_.restore_dead(id, reason, died_at);
      return {};
    }
    case RecordType::kDedup: {
      auto number = static_cast<uint32_t>(in.varint());
      std::string_view key = in.bytes();
      uint64_t job_id = in.varint();
      auto expires = static_cast<int64_t>(in.varint());
      if (in.failed()) return bad_body("DEDUP");
      engine_.restore_dedup(number, key, job_id, expires);
      return {};
    }
    case RecordType::kScheduleFired: {
      auto number = static_cast<uint32_t>(in.varint());
      const uint64_t count = in.varint();
      // Each entry is at least 3 bytes: a count past them is damage, not
      // a reason to loop.
      if (in.failed() || count == 0 || count > record.body.size()) {
        return bad_body("SCHEDULE_FIRED");
      }
      // Read whole before any of it is applied: a body that does not
      // decode changes nothing, as with every other record.
      struct Fired {
        std::string_view name;
        int64_t next_ms;
        uint64_t fired;
      };
      std::vector<Fired> entries;
      entries.reserve(count);
      for (uint64_t i = 0; i < count; ++i) {
        std::string_view name = in.bytes();
        auto next = static_cast<int64_t>(in.varint());
        uint64_t fired = in.varint();
        if (in.failed() || next < 0 || name.empty()) return bad_body("SCHEDULE_FIRED");
        entries.push_back({name, next, fired});
      }
      for (const Fired& e : entries) {
        engine_.restore_schedule_fired(number, e.name, e.next_ms, e.fired);
      }
      return {};
    }
  }
  return wal::Status::corruption("unknown record type " + std::to_string(record.type));
}

bool Journal::logged_queue_name(std::string_view name) {
  if (engine::Engine::valid_queue_name(name)) return true;
  // The first tqds took any name of A-Z a-z 0-9 . _ : - that was not only
  // digits; WAIT and COUNT became DEQUEUE's keywords later, and CREATE
  // refuses them since. A log may still hold such a queue: replay keeps it
  // (PEEK, JOB, CONFIG, DROP reach it by name; DEQUEUE cannot).
  if (!engine::Engine::dequeue_keyword(name)) return false;
  if (keyword_queues_warned_.emplace(name).second) {
    LOG_WARN(
        "wal: queue '%.*s' (a name older tqds took) is kept, but DEQUEUE reads it as its "
        "keyword and cannot deliver from it: move its jobs (PEEK, JOB) to a queue of another "
        "name, then DROP it",
        static_cast<int>(name.size()), name.data());
  }
  return true;
}

void Journal::skip_lost_ids(uint64_t seq_bound) {
  // Ids are issued in increasing order, each written at once in a JOB record,
  // and every record takes one seq. So after the META record at seq M that
  // holds the next id N, fewer than S - M new ids can have been issued by
  // seq S: the next id is at most N + (S - M). Compaction's JOB records
  // re-write old ids, which only makes the bound looser. Replay saw the last
  // intact META (a later, lost one would only bound tighter); seq_bound is
  // at least every seq ever written, lost records included. With no META
  // replayed, M = 0 and N = 1: a log starts with seq 1 and job id 1. Ids
  // skipped this way are harmless; an id issued twice is not.
  if (seq_bound > meta_seq_) engine_.restore_ids(meta_next_job_id_ + (seq_bound - meta_seq_), 0);
}

void Journal::attach(wal::Log& log) {
  log_ = &log;
  last_segment_ = log.current_segment();
}

// --- Recording --------------------------------------------------------------

uint32_t Journal::record(RecordType type, std::string_view body, std::string_view body_tail) {
  if (log_ == nullptr) return replay_segment_;
  wal::Log::Appended appended = log_->append(static_cast<uint8_t>(type), body, body_tail);
  if (type == RecordType::kJob || type == RecordType::kQueue) newest_creation_seq_ = appended.seq;
  if (appended.segment != last_segment_) {
    // Every segment carries the id counters, so they survive the deletion of
    // the segments that issued the ids.
    last_segment_ = appended.segment;
    record_counters();
  }
  return appended.segment;
}

void Journal::record_counters() {
  if (log_ == nullptr) return;
  std::string meta;
  wal::put_varint(meta, engine_.next_job_id());
  wal::put_varint(meta, engine_.next_queue_number());
  last_segment_ = log_->append(static_cast<uint8_t>(RecordType::kMeta), meta).segment;
}

void Journal::ref(uint32_t* slot, uint32_t segment, uint64_t bytes) {
  if (*slot != 0) {
    --live_in_segment_[*slot];  // moved forward: same object, new place
  } else {
    ++live_objects_;
    live_bytes_ += bytes;
  }
  ++live_in_segment_[segment];
  *slot = segment;
}

void Journal::unref(uint32_t segment, uint64_t bytes) {
  if (segment == 0) return;
  --live_in_segment_[segment];
  --live_objects_;
  live_bytes_ -= bytes;
}

void Journal::queue_saved(Queue& queue) {
  scratch_.clear();
  encode_queue(scratch_, queue);
  // Counted at its real size: its schedules can make it large, and it can
  // grow or shrink from one save to the next.
  const uint64_t bytes = wal::record_size(scratch_.size());
  if (queue.log_segment != 0) live_bytes_ = live_bytes_ - queue.log_bytes + bytes;
  ref(&queue.log_segment, record(RecordType::kQueue, scratch_), bytes);
  queue.log_bytes = bytes;
  queue.schedules_unlogged = false;  // the record holds every schedule's time
}

void Journal::schedules_fired(Queue& queue, const std::vector<const engine::Schedule*>& fired) {
  scratch_.clear();
  wal::put_varint(scratch_, queue.number);
  wal::put_varint(scratch_, fired.size());
  for (const engine::Schedule* s : fired) {
    wal::put_bytes(scratch_, s->name);
    wal::put_varint(scratch_, static_cast<uint64_t>(s->next_ms));
    wal::put_varint(scratch_, s->fired);
  }
  record(RecordType::kScheduleFired, scratch_);
}

void Journal::queue_dropped(Queue& queue) {
  scratch_.clear();
  wal::put_varint(scratch_, queue.number);
  record(RecordType::kQueueDrop, scratch_);
  unref(queue.log_segment, queue.log_bytes);
  queue.log_segment = 0;
}

void Journal::queue_purged(Queue& queue) {
  scratch_.clear();
  wal::put_varint(scratch_, queue.number);
  record(RecordType::kPurge, scratch_);
}

void Journal::job_saved(Job& job) {
  scratch_.clear();
  const engine::JobExtras* extras = engine_.extras_of(job);
  // The put that added the job's key (Engine::enqueue) leaves the key
  // unrecorded: this record carries it, and holds its place in the log.
  DedupEntry* key = nullptr;
  if (extras != nullptr && !extras->dedup_key.empty()) {
    auto it = job.queue->dedup.find(extras->dedup_key.view());
    if (it != job.queue->dedup.end() && it->second.job_id == job.id &&
        it->second.log_segment == 0) {
      key = &it->second;
    }
  }
  encode_job_head(scratch_, job, extras, key != nullptr ? key->expires_ms : 0);
  const uint32_t segment = record(RecordType::kJob, scratch_, job.payload());
  ref(&job.log_segment, segment, accounted_bytes(job));
  if (key != nullptr) ref(&key->log_segment, segment, kDedupBytes);
}

void Journal::job_leased(Job& job) {
  char body[3 * wal::kMaxVarintBytes];
  char* end = wal::store_varint(body, job.id);
  end = wal::store_varint(end, job.attempts);
  end = wal::store_varint(end, static_cast<uint64_t>(job.deadline_ms));  // the lease's end
  record(RecordType::kLease, std::string_view(body, static_cast<size_t>(end - body)));
}

void Journal::job_released(Job& job) {
  scratch_.clear();
  wal::put_varint(scratch_, job.id);
  wal::put_varint(scratch_, job.attempts);
  if (job.state == JobState::kDelayed) {
    wal::put_varint(scratch_, static_cast<uint64_t>(job.deadline_ms));
  } else {
    wal::put_varint(scratch_, 0);  // ready now, and since when
    wal::put_varint(scratch_, static_cast<uint64_t>(job.deadline_ms));
  }
  record(RecordType::kRelease, scratch_);
}

void Journal::job_dead(Job& job) {
  scratch_.clear();
  wal::put_varint(scratch_, job.id);
  wal::put_varint(scratch_, static_cast<uint64_t>(job.deadline_ms));
  const engine::JobExtras* extras = engine_.extras_of(job);
  wal::put_bytes(scratch_, extras != nullptr ? extras->reason.view() : std::string_view());
  record(RecordType::kDead, scratch_);
}

void Journal::job_removed(Job& job, bool in_bulk) {
  if (!in_bulk) {
    char body[wal::kMaxVarintBytes];
    const char* end = wal::store_varint(body, job.id);
    record(RecordType::kRemove, std::string_view(body, static_cast<size_t>(end - body)));
  }
  unref(job.log_segment, accounted_bytes(job));
  job.log_segment = 0;
}

void Journal::dedup_saved(Queue& queue, const std::string& key, DedupEntry& entry) {
  scratch_.clear();
  wal::put_varint(scratch_, queue.number);
  wal::put_bytes(scratch_, key);
  wal::put_varint(scratch_, entry.job_id);
  wal::put_varint(scratch_, static_cast<uint64_t>(entry.expires_ms));
  ref(&entry.log_segment, record(RecordType::kDedup, scratch_), kDedupBytes);
}

void Journal::dedup_forgotten(Queue&, DedupEntry& entry) {
  // Nothing to record: replay forgets keys older than the window by itself.
  unref(entry.log_segment, kDedupBytes);
  entry.log_segment = 0;
}

// --- Upkeep -----------------------------------------------------------------

void Journal::delete_dead_segments() {
  const uint32_t oldest = log_->oldest_segment();
  const uint32_t current = log_->current_segment();
  uint32_t upto = oldest;
  while (upto < current) {
    auto it = live_in_segment_.find(upto);
    if (it != live_in_segment_.end()) {
      if (it->second != 0) break;
      live_in_segment_.erase(it);
    }
    ++upto;
  }
  if (upto > oldest) log_->delete_segments_before(upto);
}

bool Journal::sweep_step(size_t budget) {
  uint64_t moved_bytes = 0;
  size_t moved = 0;
  return engine_.visit_jobs(cursor_, kSweepVisitsPerStep, [&](Job& job) {
    if (job.log_segment != 0 && job.log_segment < cut_) {
      job_saved(job);
      ++moved_;
      ++moved;
      moved_bytes += job.payload_size;
    }
    return moved_bytes < kSweepBytesPerStep && moved < budget;
  });
}

// Walks each queue's key map bucket by bucket, not its expiry heap: a key
// forgotten between two steps reorders the heap, and a walk by heap index
// then skipped live keys (about 8% of them in a review's probe), whose
// segments only a whole second sweep could free. Bucket positions hold
// still while keys are erased; a key added meanwhile is already past the
// cut. Only a rehash (an insert that grew the map) moves keys between
// buckets, and then the queue's walk starts over: the keys already moved
// are past the cut, so it repeats reads, not writes.
bool Journal::sweep_keys(size_t budget) {
  const auto& queues = engine_.queues();
  auto it = key_cursor_queue_.empty() ? queues.begin() : queues.lower_bound(key_cursor_queue_);
  while (it != queues.end() && budget > 0) {
    Queue& queue = *it->second;
    if (queue.name != key_cursor_queue_ || queue.dedup.bucket_count() != key_cursor_buckets_) {
      key_cursor_queue_ = queue.name;
      key_cursor_buckets_ = queue.dedup.bucket_count();
      key_cursor_bucket_ = 0;
    }
    // A bucket costs one from the budget, and so does each key in it: a map
    // emptied by a burst of forgotten keys keeps its buckets.
    while (key_cursor_bucket_ < key_cursor_buckets_ && budget > 0) {
      const size_t bucket = key_cursor_bucket_++;
      --budget;
      for (auto entry = queue.dedup.begin(bucket); entry != queue.dedup.end(bucket); ++entry) {
        if (budget > 0) --budget;
        DedupEntry& e = entry->second;
        if (e.log_segment != 0 && e.log_segment < cut_) {
          dedup_saved(queue, entry->first, e);
          ++moved_;
        }
      }
    }
    if (key_cursor_bucket_ >= key_cursor_buckets_) {
      ++it;
      key_cursor_bucket_ = 0;
      key_cursor_buckets_ = 0;
      key_cursor_queue_ = it == queues.end() ? std::string() : it->first;
    }
  }
  return it != queues.end();
}

bool Journal::last_sweep_settled() const {
  if (log_->oldest_segment() >= cut_) return true;
  for (const auto& [segment, live] : live_in_segment_) {
    if (segment >= cut_) break;
    if (live > 0) return true;  // missed by the sweep: only a new one can move it
  }
  return false;
}

bool Journal::room_for(uint64_t bytes) const {
  // The current segment's room needs no more disk (it is preallocated);
  // past it, each new segment takes a whole one.
  const uint64_t head = log_->head_room();
  if (bytes <= head) return true;
  const uint64_t segment = log_->segment_bytes();
  const uint64_t over = bytes - head;
  const uint64_t segments = over / segment + (over % segment != 0 ? 1 : 0);
  return segments <= disk_free_ / segment;
}

uint32_t Journal::next_sweep_cut() const {
  // Asked every loop iteration while no sweep runs: the cheap tests first.
  if (!log_->healthy()) return 0;
  const uint64_t segment = log_->segment_bytes();
  const uint32_t oldest = log_->oldest_segment();
  const uint32_t current = log_->current_segment();
  // The whole log. A sweep can only empty the segments before the current
  // one, so it leaves about live + one segment behind; starting only past
  // ratio x live + one segment means each sweep frees at least
  // (ratio - 1) x live, and sweeps never chase their own tail.
  const double limit =
      compaction_ratio_ * static_cast<double>(live_bytes_) + static_cast<double>(segment);
  const bool too_big =
      static_cast<double>(log_->total_bytes()) > limit && log_->total_bytes() > 2 * segment;
  // Or the oldest segment alone, when little in it keeps it and the dead
  // segments after it: segments go from the oldest end only, so a queue's
  // record (or a long-delayed job) there held every later one while a
  // backlog that filled the disk was drained, until the whole log was
  // ratio x live; the ACKs' records then filled the disk's reserve. Only
  // with a dead segment right behind it: one a drain is part way through
  // holds jobs about to be finished, and moving them would write them twice.
  // Or, while wal.min_free_disk refuses new jobs, with the current segment
  // right behind it: a drained log of two files is not "too big", and
  // nothing else would free the file that keeps the disk under its reserve
  // (refused jobs write nothing, so nothing would ever change).
  auto live_in = [&](uint32_t s) {
    auto it = live_in_segment_.find(s);
    return it == live_in_segment_.end() ? uint64_t{0} : it->second;
  };
  const bool next_is_current = oldest + 1 == current;
  const bool oldest_alone =
      next_is_current ? !engine_.intake_open() : oldest + 1 < current && live_in(oldest + 1) == 0;
  // Until the last sweep's segments are deleted the log looks as big as
  // before; sweeping again then would move everything again for nothing.
  if ((!too_big && !oldest_alone) || !last_sweep_settled()) return 0;
  if (too_big && room_for(live_bytes_)) return current;
  if (!oldest_alone) return 0;
  const uint64_t objects = live_in(oldest);
  if (objects == 0) return 0;  // delete_dead_segments deletes it
  // Its cost, estimated at the mean size of a live object, must be at most
  // a quarter of the segments it frees: counted only as far as needed.
  const uint64_t cost = objects * (live_bytes_ / std::max<uint64_t>(live_objects_, 1) + 1);
  uint64_t freed = next_is_current ? 1 : 2;
  for (uint32_t s = oldest + 2; cost > freed * segment / 4 && s < current && live_in(s) == 0; ++s) {
    ++freed;
  }
  if (cost > freed * segment / 4 || !room_for(cost)) return 0;
  return oldest + 1;
}

void Journal::maintain() {
  if (log_ == nullptr) return;
  delete_dead_segments();
  if (!sweeping_) {
    const uint32_t cut = next_sweep_cut();
    if (cut == 0) return;
    sweeping_ = true;
    cut_ = cut;
    cursor_ = engine::JobCursor{};
    key_cursor_queue_.clear();
    key_cursor_bucket_ = 0;
    key_cursor_buckets_ = 0;
    keys_done_ = false;
    for (const auto& [name, queue] : engine_.queues()) {
      if (queue->log_segment < cut_) {
        queue_saved(*queue);
        ++moved_;
      }
    }
  }
  if (!log_->healthy()) return;  // moving records while writes fail only queues more
  if (!keys_done_) {
    keys_done_ = !sweep_keys(kSweepJobsPerStep);
    return;
  }
  if (!sweep_step(kSweepJobsPerStep)) {
    sweeping_ = false;
    ++compactions_;
  }
}

void Journal::compact_all() {
  if (log_ == nullptr) return;
  log_->rotate();
  // The META record opens the new segment even when nothing is live, so
  // that every older segment (damage included) can go.
  scratch_.clear();
  wal::put_varint(scratch_, engine_.next_job_id());
  wal::put_varint(scratch_, engine_.next_queue_number());
  last_segment_ = log_->append(static_cast<uint8_t>(RecordType::kMeta), scratch_).segment;
  cut_ = last_segment_;
  for (const auto& [name, queue] : engine_.queues()) queue_saved(*queue);
  key_cursor_queue_.clear();
  key_cursor_bucket_ = 0;
  key_cursor_buckets_ = 0;
  while (sweep_keys(SIZE_MAX)) {
  }
  cursor_ = engine::JobCursor{};
  while (engine_.visit_jobs(cursor_, SIZE_MAX, [&](Job& job) {
    job_saved(job);
    return true;
  })) {
  }
  sweeping_ = false;
  ++compactions_;
  delete_dead_segments();
}

JournalStats Journal::stats() const {
  JournalStats s;
  s.live_objects = live_objects_;
  s.live_bytes = live_bytes_;
  s.compactions = compactions_;
  s.moved_records = moved_;
  s.compacting = sweeping_;
  return s;
}

}  // namespace tq::server
