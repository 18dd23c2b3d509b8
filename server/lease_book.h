// The deliveries one connection was handed: job id -> which delivery of the
// job it was (Job::delivery()). A lease belongs to the job, so any connection may finish it
// (a worker that reconnected, an operator); but a connection that was handed
// an earlier delivery of a job now leased again, to someone else, is a worker
// whose lease ran out, and its late ACK, NACK, FAIL or TOUCH must not finish
// another worker's delivery. For a plain id this book is how the server
// tells; an id with its lease token (<id>@<lease>) says which delivery it
// means itself, on any connection, and the book is not asked
// (commands_leases.cc).
//
// Cost: every delivered job is one insert and every finished one an erase, on
// the hot path of a consume, so the table is a flat open-addressing one
// (linear probing, backward-shift deletion, no tombstones) that stays a few
// cache lines big for a worker with P jobs in flight.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace tq::server {

class LeaseBook {
 public:
  void record(uint64_t id, uint64_t delivery) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    size_t i = home(id);
    ++probes_;
    while (slots_[i].id != 0 && slots_[i].id != id) {
      i = (i + 1) & mask();
      ++probes_;
    }
    if (slots_[i].id == 0) ++size_;
    slots_[i] = Slot{id, delivery};
  }

  // Which delivery of `id` this connection was handed, if it was.
  std::optional<uint64_t> delivery_of(uint64_t id) const {
    if (slots_.empty()) return std::nullopt;
    for (size_t i = home(id); slots_[i].id != 0; i = (i + 1) & mask()) {
      if (slots_[i].id == id) return slots_[i].delivery;
    }
    return std::nullopt;
  }

  void forget(uint64_t id) {
    if (slots_.empty()) return;
    size_t hole = home(id);
    while (slots_[hole].id != id) {
      if (slots_[hole].id == 0) return;
      hole = (hole + 1) & mask();
    }
    // Pull later entries of the run back over the hole, so that a lookup
    // never stops early at an empty slot that used to be in its way.
    for (size_t next = (hole + 1) & mask(); slots_[next].id != 0; next = (next + 1) & mask()) {
      const size_t want = home(slots_[next].id);
      const bool stays =
          hole <= next ? (want > hole && want <= next) : (want > hole || want <= next);
      if (!stays) {
        slots_[hole] = slots_[next];
        hole = next;
      }
    }
    slots_[hole] = Slot{};
    --size_;
  }

  size_t size() const { return size_; }

  // Calls f(id, delivery) for every entry, in no particular order.
  template <typename F>
  void for_each(F f) const {
    for (const Slot& s : slots_) {
      if (s.id != 0) f(s.id, s.delivery);
    }
  }

  // Bounds the book of a connection that takes jobs and never finishes them:
  // once it holds `prune_at()` entries, the caller drops those `gone` says
  // are over (their jobs no longer exist).
  size_t prune_at() const { return prune_at_; }
  template <typename Gone>
  void prune(Gone gone) {
    std::vector<Slot> kept;
    for (const Slot& s : slots_) {
      if (s.id != 0 && !gone(s.id)) kept.push_back(s);
    }
    // The table is sized for what is kept before anything goes back in. The
    // entries come out in hash order, so put back into a table that starts
    // small and grows, they all land in one run: that made a prune quadratic
    // (0.5 s for 131,072 leases on one connection, every client waiting).
    bits_ = kMinBits;
    while ((size_t{1} << bits_) < 2 * (kept.size() + 1)) ++bits_;
    slots_.assign(size_t{1} << bits_, Slot{});
    size_ = 0;
    for (const Slot& s : kept) record(s.id, s.delivery);
    prune_at_ = size_ * 2 > kFirstPrune ? size_ * 2 : kFirstPrune;
  }

  // Slots record() has looked at, over the book's life: how crowded its
  // runs are (about one per record when they are short), for tests.
  uint64_t probes() const { return probes_; }

 private:
  struct Slot {
    uint64_t id = 0;  // 0: empty (job ids start at 1)
    uint64_t delivery = 0;
  };
  static constexpr size_t kFirstPrune = 4096;
  static constexpr unsigned kMinBits = 4;

  size_t mask() const { return slots_.size() - 1; }
  size_t home(uint64_t id) const {
    // Fibonacci hashing: the top bits of the product, as many as the table needs.
    return static_cast<size_t>((id * 0x9E3779B97F4A7C15ull) >> (64 - bits_));
  }
  void grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    bits_ = old.empty() ? kMinBits : bits_ + 1;
    slots_.assign(size_t{1} << bits_, Slot{});
    size_ = 0;
    for (const Slot& s : old) {
      if (s.id != 0) record(s.id, s.delivery);
    }
  }

  std::vector<Slot> slots_;
  unsigned bits_ = 0;
  size_t size_ = 0;
  size_t prune_at_ = kFirstPrune;
  uint64_t probes_ = 0;
};

}  // namespace tq::server
