// The engine's indexes and counts checked against each other, from outside:
// every job in the one structure its state names, in its queue and in the
// job table; each ready set in delivery order; each message group's
// members, leases and ready job as its entry says; the per-state counts and
// the table's size equal to what the structures hold. For the random replay
// test and the commands fuzz target, after every step.
#pragma once

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "server/engine/engine.h"

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

}  // namespace tq::testing
