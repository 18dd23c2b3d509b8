// The engine's indexes and counts checked against each other, from outside:
// every job in the one structure its state names, in its queue and in the
// job table; each ready set in delivery order; each message group's
// members, leases and ready job as its entry says; the per-state counts and
// the table's size equal to what the structures hold. With the server's
// table of blocked DEQUEUEs, that none waits on a queue that could serve it.
// And a fingerprint of everything a restart must keep, to compare an engine
// with its replay. For the random replay test and the commands fuzz target.
#pragma once

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "server/engine/engine.h"
#include "server/waiters.h"

namespace tq::testing {

// The engine's indexes agree with each other: "" when they do, else what is wrong.
inline std::string check_engine_invariants(engine::Engine& e) {
  std::ostringstream bad;
  size_t counts[5] = {0, 0, 0, 0, 0};
  size_t total = 0;
  for (const auto& named : e.queues()) {
    // Not a structured binding: clang before 16 lets no lambda capture one.
    const auto& name = named.first;
    const auto& q = named.second;
    std::map<std::string, std::vector<const engine::Job*>> by_group;
    auto visit = [&](const engine::Job* j, engine::JobState expected) {
      ++total;
      ++counts[static_cast<size_t>(expected)];
      if (j->state != expected) {
        bad << "job " << j->id << " is in the " << engine::job_state_name(expected)
            << " structure but says " << engine::job_state_name(j->state) << "\n";
      }
      if (j->queue != q.get()) bad << "job " << j->id << " in the wrong queue\n";
      if (e.find_job(j->id) != j) bad << "job " << j->id << " not in the table\n";
      const engine::JobExtras* ex = e.extras_of(*j);
      if (ex != nullptr && !ex->group.empty() && expected != engine::JobState::kDead) {
        by_group[ex->group].push_back(j);
      }
    };
    {
      // Delivery order: priority, then id.
      std::vector<engine::Job*> order;
      q->ready.first(SIZE_MAX, [&](engine::Job* j) { order.push_back(j); });
      std::vector<engine::Job*> sorted = q->ready.jobs();
      std::sort(sorted.begin(), sorted.end(), engine::ReadyOrder{});
      if (order != sorted) bad << "queue " << name << " ready set out of order\n";
      if (!sorted.empty() && q->ready.top() != sorted.front()) {
        bad << "queue " << name << " ready top is " << q->ready.top()->id << " not "
            << sorted.front()->id << "\n";
      }
      if (sorted.size() != q->ready.size()) bad << "queue " << name << " ready size differs\n";
    }
    for (engine::Job* j : q->ready.jobs()) visit(j, engine::JobState::kReady);
    for (const engine::Job* j : q->held.items()) visit(j, engine::JobState::kHeld);
    for (const engine::Job* j : q->delayed.items()) visit(j, engine::JobState::kDelayed);
    for (const engine::Job* j : q->leased.items()) visit(j, engine::JobState::kLeased);
    for (const engine::Job* j : q->dead.items()) visit(j, engine::JobState::kDead);
    for (const auto& [gname, jobs] : by_group) {
      auto it = q->groups.find(gname);
      if (it == q->groups.end()) {
        bad << "queue " << name << " group " << gname << " has jobs but no entry\n";
        continue;
      }
      const engine::Group& g = it->second;
      std::set<uint64_t> ids;
      size_t leased = 0;
      size_t ready = 0;
      for (const engine::Job* j : jobs) {
        ids.insert(j->id);
        if (j->state == engine::JobState::kLeased) ++leased;
        if (j->state == engine::JobState::kReady) ++ready;
      }
      if (ids != g.members) bad << "queue " << name << " group " << gname << " members differ\n";
      if (leased != g.leased) bad << "queue " << name << " group " << gname << " leased differ\n";
      if (ready > 1)
        bad << "queue " << name << " group " << gname << " has " << ready << " ready\n";
      if (ready > 0 && leased > 0) {
        bad << "queue " << name << " group " << gname << " ready while one is leased\n";
      }
      if (leased > 1)
        bad << "queue " << name << " group " << gname << " has " << leased << " leased\n";
    }
    for (const auto& [gname, g] : q->groups) {
      if (by_group.count(gname) == 0)
        bad << "queue " << name << " group " << gname << " is empty\n";
    }
  }
  for (auto st : {engine::JobState::kReady, engine::JobState::kHeld, engine::JobState::kDelayed,
                  engine::JobState::kLeased, engine::JobState::kDead}) {
    if (e.count_in(st) != counts[static_cast<size_t>(st)]) {
      bad << "count of " << engine::job_state_name(st) << " is " << e.count_in(st) << ", not "
          << counts[static_cast<size_t>(st)] << "\n";
    }
  }
  if (total != e.job_count())
    bad << "job table holds " << e.job_count() << ", structures " << total << "\n";
  return bad.str();
}

// Liveness of blocked DEQUEUEs, checked once the loop has run the timers
// that are due and served the queues they signalled: no connection waits on
// a queue the engine could deliver from now (Engine::can_deliver: ready,
// not paused, under max_leased, a rate token left, its group not blocked:
// held jobs are not in the ready set). "" when none does. Deadlines reached
// (a delay, a lease, a timed PAUSE) change nothing until their timer runs,
// so they need no allowance here. The one allowed case: the rate limit's
// bucket refills continuously, and its timer is set to the whole millisecond
// after the next token, rounded up (Engine::next_rate_token_ms, at least 1 ms
// on), so for up to that millisecond can_deliver may see the token while the
// timer is still to come. (A wall clock set back leaves the rate timers late
// until Engine::follow_clock_set_back, which tqd calls every second: the
// caller's loop must call it at each turn, as the commands fuzz target's
// does.) Calls can_deliver, which brings a rate-limited queue's bucket up
// to now.
inline std::string check_waiters_served(engine::Engine& e, const server::WaiterTable& waiters) {
  std::ostringstream bad;
  const int64_t now = e.now_ms();
  waiters.for_each([&](uint64_t connection_id, const server::WaitRequest& request) {
    for (engine::Queue* q : request.queues) {
      if (!e.can_deliver(*q)) continue;
      const bool rate_timer_rounding = q->settings.rate_limit > 0 && q->timer_at <= now + 1;
      if (rate_timer_rounding) continue;
      bad << "connection " << connection_id << " waits on queue " << q->name
          << ", which can deliver now (ready=" << q->ready.size() << " leased=" << q->leased.size()
          << " max_leased=" << q->settings.max_leased << " rate_limit=" << q->settings.rate_limit
          << " tokens=" << q->rate_tokens << " timer_at=" << q->timer_at << " now=" << now << ")\n";
    }
  });
  return bad.str();
}

// Every job, whatever its state, with every field a restart must keep; the
// groups' bookkeeping; each queue's delivery order; the engine's counts.
inline std::string engine_fingerprint(engine::Engine& e) {
  std::ostringstream out;
  for (const auto& named : e.queues()) {
    // Not a structured binding: clang before 16 lets no lambda capture one.
    const auto& name = named.first;
    const auto& q = named.second;
    const engine::QueueSettings& s = q->settings;
    out << "queue " << name << " n=" << q->number << " ack=" << s.ack_timeout_ms
        << " max=" << s.max_attempts << " backoff=" << s.backoff_base_ms << "/" << s.backoff_factor
        << "/" << s.backoff_max_ms << "/" << s.backoff_jitter << " dedup=" << s.dedup_window_ms
        << " size=" << s.max_size << " prio=" << s.priority << " delay=" << s.delay_ms
        << " ttl=" << s.ttl_ms << " ttl_dl=" << s.ttl_dead_letter << " leased_max=" << s.max_leased
        << " rate=" << s.rate_limit << "/" << s.rate_window_ms
        << " dead_keep=" << s.dead_retention_ms << "/" << s.dead_max
        << " dlq=" << s.dead_letter_queue << " paused=" << q->paused << "/" << q->resume_at_ms
        << " sizes=" << q->ready.size() << "/" << q->held.size() << "/" << q->delayed.size() << "/"
        << q->leased.size() << "/" << q->dead.size() << "\n";
    // Delivery order of the ready set.
    out << "  order";
    q->ready.first(SIZE_MAX, [&](engine::Job* j) { out << " " << j->id; });
    out << "\n";
    std::map<std::string, const engine::Group*> groups;
    for (const auto& [gname, g] : q->groups) groups[gname] = &g;
    for (const auto& [gname, gp] : groups) {
      const engine::Group& g = *gp;
      out << "  group " << gname << " members=";
      for (uint64_t id : g.members) out << id << ",";
      out << " leased=" << g.leased << " released=" << (g.released ? g.released->id : 0)
          << " retrying=" << g.retrying << "\n";
    }
    std::map<std::string, std::pair<uint64_t, int64_t>> keys;
    for (const auto& [key, entry] : q->dedup) {
      if (entry.expires_ms > e.now_ms()) keys[key] = {entry.job_id, entry.expires_ms};
    }
    for (const auto& [key, entry] : keys) {
      out << "  key " << key << " -> " << entry.first << " @" << entry.second << "\n";
    }
    for (const auto& [sname, sc] : q->schedules) {
      out << "  schedule " << sname << " next=" << sc.next_ms << " fired=" << sc.fired << "\n";
    }
  }
  std::map<uint64_t, std::string> jobs;
  for (const auto& named : e.queues()) {
    const auto& q = named.second;
    auto add = [&](const engine::Job* j) {
      std::ostringstream o;
      const engine::JobExtras* ex = e.extras_of(*j);
      const bool grouped = ex != nullptr && !ex->group.empty();
      o << "job " << j->id << " q=" << j->queue->name << " s=" << engine::job_state_name(j->state)
        << " a=" << j->attempts << " k=" << int{j->kicks} << " p=" << j->priority;
      // A grouped ready job's wait starts again at a restart (by design).
      const bool ready_like =
          j->state == engine::JobState::kReady || j->state == engine::JobState::kHeld;
      if (!(ready_like && grouped)) o << " d=" << j->deadline_ms;
      if (ex != nullptr &&
          (ex->expires_at_ms != 0 || ex->max_attempts != 0 || !ex->dedup_key.empty() ||
           !ex->group.empty() || !ex->origin.empty() || !ex->reason.empty())) {
        o << " exp=" << ex->expires_at_ms << " max=" << ex->max_attempts
          << " key=" << ex->dedup_key.view() << " group=" << ex->group
          << " from=" << ex->origin.view() << " why=" << ex->reason.view();
      }
      o << " " << j->payload();
      jobs[j->id] = o.str();
    };
    for (engine::Job* j : q->ready.jobs()) add(j);
    for (const engine::Job* j : q->held.items()) add(j);
    for (const engine::Job* j : q->delayed.items()) add(j);
    for (const engine::Job* j : q->leased.items()) add(j);
    for (const engine::Job* j : q->dead.items()) add(j);
  }
  for (const auto& [id, line] : jobs) out << line << "\n";
  out << "counts";
  for (auto st : {engine::JobState::kReady, engine::JobState::kHeld, engine::JobState::kDelayed,
                  engine::JobState::kLeased, engine::JobState::kDead}) {
    out << " " << e.count_in(st);
  }
  out << " jobs=" << e.job_count() << " payload=" << e.payload_bytes()
      << " sched=" << e.schedule_payload_bytes() << " keys=" << e.dedup_key_bytes() << "\n";
  return out.str();
}

// The lines of `a` not in `b`, and of `b` not in `a`.
inline std::string line_diff(const std::string& a, const std::string& b) {
  auto lines = [](const std::string& s) {
    std::multiset<std::string> out;
    std::istringstream in(s);
    for (std::string line; std::getline(in, line);) out.insert(line);
    return out;
  };
  const auto la = lines(a);
  const auto lb = lines(b);
  std::string out;
  for (const auto& l : la)
    if (lb.count(l) == 0) out += "- " + l + "\n";
  for (const auto& l : lb)
    if (la.count(l) == 0) out += "+ " + l + "\n";
  return out;
}

}  // namespace tq::testing
