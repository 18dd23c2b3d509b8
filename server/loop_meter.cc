#include "server/loop_meter.h"

#include <algorithm>
#include <iterator>

namespace tq::server {

LoopMeter::Tick LoopMeter::tick(uint64_t now_ns, uint64_t idle_ns) {
  Tick tick;
  if (!started_) {
    started_ = true;
    last_now_ns_ = window_start_ns_ = start_ns_ = now_ns;
    last_idle_ns_ = idle_ns;
    return tick;
  }
  const uint64_t elapsed = now_ns > last_now_ns_ ? now_ns - last_now_ns_ : 0;
  const uint64_t idle = idle_ns > last_idle_ns_ ? idle_ns - last_idle_ns_ : 0;
  // Both clocks are read at slightly different moments; never below zero.
  tick.busy_ns = elapsed > idle && !discount_ ? elapsed - idle : 0;
  discount_ = false;
  last_now_ns_ = now_ns;
  last_idle_ns_ = idle_ns;

  ++stats_.iterations;
  stats_.busy_ns_total += tick.busy_ns;
  if (tick.busy_ns > stats_.max_busy_ns) stats_.max_busy_ns = tick.busy_ns;
  if (tick.busy_ns > kSlowNs) ++stats_.slow_iterations;
  note_recent(now_ns, tick.busy_ns);
  if (tick.busy_ns > kWarnNs && (!warned_ || now_ns - last_warn_ns_ >= kWarnEveryNs)) {
    tick.warn = true;
    warned_ = true;
    last_warn_ns_ = now_ns;
  }

  const uint64_t window = now_ns - window_start_ns_;
  if (window >= kWindowNs) {
    const uint64_t busy = stats_.busy_ns_total - window_busy_start_ns_;
    stats_.busy_pct = 100.0 * static_cast<double>(busy) / static_cast<double>(window);
    if (stats_.busy_pct > 100.0) stats_.busy_pct = 100.0;
    window_start_ns_ = now_ns;
    window_busy_start_ns_ = stats_.busy_ns_total;
  }
  return tick;
}

void LoopMeter::note_recent(uint64_t now_ns, uint64_t busy_ns) {
  const uint64_t slot = (now_ns > start_ns_ ? now_ns - start_ns_ : 0) / kRecentSlotNs;
  if (slot > recent_slot_) {
    // Slots no iteration ended in (an idle loop ticks at least every second,
    // but a stopped process does not) are empty; past kRecentSlots, all are.
    const uint64_t passed = slot - recent_slot_;
    for (uint64_t i = 1; i <= passed && i <= kRecentSlots; ++i) {
      recent_[(recent_slot_ + i) % kRecentSlots] = 0;
    }
    recent_slot_ = slot;
  }
  uint64_t& here = recent_[recent_slot_ % kRecentSlots];
  if (busy_ns > here) here = busy_ns;
}

LoopMeter::Stats LoopMeter::stats() const {
  Stats stats = stats_;
  stats.recent_max_busy_ns = *std::max_element(std::begin(recent_), std::end(recent_));
  return stats;
}

}  // namespace tq::server
