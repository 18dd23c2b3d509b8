// An engine with one queue "q" and a hand-driven clock, and the steps the
// engine tests take with it: enqueue, lease, configure, let time pass.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "server/engine/engine.h"

namespace tq::testing {

struct EngineFixture {
  engine::ManualClock clock;
  engine::Engine engine{clock, engine::EngineLimits{}, engine::QueueSettings{}};

  EngineFixture() { REQUIRE(engine.create_queue("q").ok()); }

  uint64_t put(const std::string& payload, engine::EnqueueOptions options = {},
               const std::string& queue = "q") {
    auto r = engine.enqueue(queue, payload, options);
    REQUIRE(r.ok());
    return r.value().id;
  }
  void put_n(int n, const std::string& queue = "q") {
    for (int i = 0; i < n; ++i) put("job " + std::to_string(i), {}, queue);
  }
  // Leases one job and returns its id, or 0.
  uint64_t take(const std::string& queue = "q") {
    auto job = engine.dequeue(queue);
    return job.ok() ? job.value()->id : 0;
  }
  std::string take_payload(const std::string& queue = "q") {
    auto job = engine.dequeue(queue);
    return job.ok() ? std::string(job.value()->payload()) : "";
  }
  // Leases up to n jobs from the given queues, as DEQUEUE ... COUNT n does.
  std::vector<uint64_t> take_many(size_t n, const std::vector<std::string>& names = {"q"}) {
    std::vector<engine::Queue*> queues;
    for (const auto& name : names) queues.push_back(engine.find_queue(name));
    std::vector<const engine::Job*> got;
    engine.dequeue(queues, n, &got);
    std::vector<uint64_t> ids;
    for (const engine::Job* job : got) ids.push_back(job->id);
    return ids;
  }
  // The message of the EMPTY a DEQUEUE gets now (it must get one).
  std::string empty_reason(const std::string& queue = "q") {
    auto job = engine.dequeue(queue);
    REQUIRE_FALSE(job.ok());
    CHECK(job.error().code == engine::Errc::kEmpty);
    return job.error().message;
  }
  void configure(const std::function<void(engine::QueueSettings&)>& change,
                 const std::string& queue = "q") {
    engine::QueueSettings s = engine.find_queue(queue)->settings;
    change(s);
    REQUIRE(engine.configure(queue, s).ok());
  }
  engine::Queue& queue(const std::string& name = "q") { return *engine.find_queue(name); }
  void advance(int64_t ms) {
    clock.advance_ms(ms);
    engine.expire_due();
  }
  // Whether the engine reported the queue for its waiting workers since the
  // last look.
  bool signalled(const std::string& name = "q") {
    auto signals = engine.take_ready_signals();
    return std::find(signals.begin(), signals.end(), &queue(name)) != signals.end();
  }
};

}  // namespace tq::testing
