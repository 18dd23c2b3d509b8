// Workers blocked in DEQUEUE ... WAIT: who waits for which queues, in what
// order, until when. Plain C++ over the engine (no libuv), so its rules are
// tested without sockets.
//
// Fairness: waiters are served first come, first served per queue: each
// queue keeps the ids of its waiters in arrival order, and a waiter watching
// several queues is in each of their lists (removed lazily: when that queue
// reaches the entry, or in a sweep once ended waits' entries outnumber the
// live ones).
// Cost: a blocked waiter costs nothing until a job arrives for one of its
// queues or its deadline passes (one heap entry).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <queue>
#include <unordered_map>
#include <vector>

#include "server/engine/engine.h"

namespace tq::server {

struct WaitRequest {
  std::vector<engine::Queue*> queues;  // in the order the worker gave them
  size_t count = 1;                    // jobs at most, once any are ready
  bool framed = false;                 // COUNT was given: the reply is framed
  int64_t deadline_ms = 0;             // give up (EMPTY) at this time (the server's loop time)
  uint64_t max_bytes = UINT64_MAX;     // payload bytes in the reply at most (one job at least)
};

class WaiterTable {
 public:
  // Called with the jobs leased for a waiter (empty: it timed out), or with
  // a non-empty `error` line when the wait cannot go on (its queues were
  // dropped, the server is stopping).
  using Deliver = std::function<void(uint64_t connection_id, const WaitRequest& request,
                                     const std::vector<const engine::Job*>& jobs,
                                     const std::string& error)>;

  WaiterTable(engine::Engine& engine, Deliver deliver);
  WaiterTable(const WaiterTable&) = delete;
  WaiterTable& operator=(const WaiterTable&) = delete;

  void add(uint64_t connection_id, WaitRequest request);
  // The connection went away: forget its wait, if any.
  void cancel(uint64_t connection_id);
  // Serves waiters of every queue the engine says got ready jobs.
  void serve_ready();
  // Answers every waiter whose deadline has passed.
  void expire(int64_t now_ms);
  int64_t next_deadline_ms() const;
  // A queue is about to be dropped: waiters forget it; a waiter left with no
  // queue is answered with `error`.
  void queue_dropping(engine::Queue* queue, const std::string& error);
  // Answers every waiter with `error` (shutdown).
  void fail_all(const std::string& error);
  size_t size() const { return by_connection_.size(); }
  // Calls f for each wait in progress, in no particular order (for checks).
  void for_each(const std::function<void(uint64_t connection_id, const WaitRequest&)>& f) const {
    for (const auto& [connection_id, waiter] : by_connection_) f(connection_id, waiter.request);
  }
  // Entries in the queues' lists and the deadline heap, those of ended
  // waits included: what the table's memory grows with.
  size_t entries_kept() const;

 private:
  struct Waiter {
    uint64_t connection_id;
    uint64_t seq;  // which wait of that connection: older entries are stale
    WaitRequest request;
  };
  struct Entry {
    uint64_t connection_id;
    uint64_t seq;
  };

  // A list is swept of ended waits' entries no sooner than this.
  static constexpr size_t kSweepAtLeast = 16;

  void serve(engine::Queue* queue);
  // Rebuilds the deadline heap without the entries of ended waits.
  void sweep_deadlines();
  // Removes a waiter and its queues' waiter counts.
  Waiter take(uint64_t connection_id);

  engine::Engine& engine_;
  Deliver deliver_;
  std::unordered_map<uint64_t, Waiter> by_connection_;           // at most one wait each
  std::unordered_map<uint32_t, std::deque<Entry>> by_queue_;  // queue number -> waits, oldest first
  struct Deadline {
    int64_t at;
    uint64_t seq;
    uint64_t connection_id;
    bool operator>(const Deadline& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  std::priority_queue<Deadline, std::vector<Deadline>, std::greater<>> deadlines_;
  uint64_t next_seq_ = 1;

  bool current(const Entry& e) const {
    auto it = by_connection_.find(e.connection_id);
    return it != by_connection_.end() && it->second.seq == e.seq;
  }
};

}  // namespace tq::server
