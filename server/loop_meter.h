// How busy the event loop is: the time it spends running callbacks, as
// opposed to waiting in epoll for something to do.
//
// Why an operator wants it: tqd serves every client from one thread, so a
// loop busy near 100% is the server's ceiling (more clients only queue up),
// and one long iteration is a latency spike for every client at once (a
// PURGE of a million jobs, a burst of huge payloads). STATS shows both, and
// the server logs an iteration long enough for clients to notice.
//
// The longest iteration is kept twice. Since start (max_busy_ns) it says
// the worst ever, and one slow iteration at start-up (the log's replay)
// pins it there for good. Over the last minute (recent_max_busy_ns) it
// says whether the loop stalls now: a gauge that a scrape every minute or
// more often always catches a stall in, and that falls back once the loop
// is smooth again. It is kept as the longest of each 10 s slot, the one
// under way and the six before it, so it covers 60 to 70 s.
//
// Pure arithmetic on the times it is given, so tests drive it with made-up
// clocks; the server feeds it uv_hrtime() and uv_metrics_idle_time() once
// per iteration.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tq::server {

class LoopMeter {
 public:
  // An iteration busier than this is counted as slow.
  static constexpr uint64_t kSlowNs = 10'000'000;
  // One busier than this is worth a log line; at most one per kWarnEveryNs.
  static constexpr uint64_t kWarnNs = 100'000'000;
  static constexpr uint64_t kWarnEveryNs = 10'000'000'000;
  // loop_busy_pct covers the last window of at least this long.
  static constexpr uint64_t kWindowNs = 1'000'000'000;
  // recent_max_busy_ns: the longest of kRecentSlots slots this long.
  static constexpr uint64_t kRecentSlotNs = 10'000'000'000;
  static constexpr size_t kRecentSlots = 7;

  struct Stats {
    uint64_t iterations = 0;
    uint64_t busy_ns_total = 0;
    uint64_t max_busy_ns = 0;         // the busiest single iteration since start
    uint64_t recent_max_busy_ns = 0;  // the busiest of the last 60-70 s
    uint64_t slow_iterations = 0;     // busier than kSlowNs
    double busy_pct = 0;              // over the last full window
  };

  struct Tick {
    uint64_t busy_ns = 0;  // this iteration's
    bool warn = false;     // log it (busier than kWarnNs, not warned lately)
  };

  // Once per iteration, at the same point of it: `now_ns` a monotonic clock,
  // `idle_ns` the loop's total time spent waiting for events so far. The
  // first call only sets the starting point.
  Tick tick(uint64_t now_ns, uint64_t idle_ns);
  // The iteration under way reads as idle at its tick. For one a signal
  // interrupted: libuv (1.44) restarts epoll_wait after EINTR without
  // counting the time it had waited, so an idle server's SIGHUP read as a
  // busy iteration of up to a second, with a warning in the log.
  void discount_iteration() { discount_ = true; }

  // A copy: recent_max_busy_ns is worked out from the slots when asked.
  Stats stats() const;

 private:
  // Takes `busy_ns`, an iteration that ended at `now_ns`, into its slot,
  // emptying the slots that time has left behind.
  void note_recent(uint64_t now_ns, uint64_t busy_ns);

  bool started_ = false;
  bool discount_ = false;
  uint64_t last_now_ns_ = 0;
  uint64_t last_idle_ns_ = 0;
  uint64_t window_start_ns_ = 0;
  uint64_t window_busy_start_ns_ = 0;  // busy_ns_total when the window began
  bool warned_ = false;
  uint64_t last_warn_ns_ = 0;
  uint64_t start_ns_ = 0;               // slots are counted from the first tick
  uint64_t recent_slot_ = 0;            // the slot under way: (now - start_ns_) / kRecentSlotNs
  uint64_t recent_[kRecentSlots] = {};  // each slot's busiest, at slot % kRecentSlots
  Stats stats_;
};

}  // namespace tq::server
